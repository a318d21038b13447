//! One conformance suite for every `Store` backend.
//!
//! Each case is a plain async function over a [`Harness`] (an `Arc<dyn Store>`
//! plus a private key namespace and a way to let time pass). The
//! `conformance!` macro turns every case into two tests, `<case>::embedded` and
//! `<case>::redis`, so `cargo test redis` or `cargo test take` select either axis.
//!
//! Embedded: a fresh redb file in a temp dir per test, time from a `ManualClock`.
//! Redis: one private `redis-server` shared by the tests of this binary while
//! any of them runs (it stops when the last one finishes); tests stay apart by
//! key namespace. Redis time is real, so expiry is observed by polling with a
//! deadline, never by sleeping a guessed amount.

// The cases are helper functions, not `#[test]`s, so clippy's
// allow-unwrap-in-tests does not reach them; a panic is the failure report here.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_util::{stream, StreamExt};
use gateway_common::clock::ManualClock;
use gateway_store::{EmbeddedStore, RedisStore, Store, StoreError};
use gateway_testkit::RedisServer;
use tokio::sync::Barrier;

const START: u64 = 1_700_000_000;
const DEADLINE: Duration = Duration::from_secs(10);

static SHARED_REDIS: tokio::sync::Mutex<Weak<RedisServer>> =
    tokio::sync::Mutex::const_new(Weak::new());

/// The binary's private redis-server, started by the first test that needs it.
async fn shared_redis() -> Arc<RedisServer> {
    let mut slot = SHARED_REDIS.lock().await;
    if let Some(server) = slot.upgrade() {
        return server;
    }
    let server = Arc::new(RedisServer::start().await.expect("redis-server starts"));
    *slot = Arc::downgrade(&server);
    server
}

struct Harness {
    store: Arc<dyn Store>,
    ns: String,
    /// Virtual time (embedded); `None` means real time (Redis).
    clock: Option<Arc<ManualClock>>,
    _redis: Option<Arc<RedisServer>>,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    async fn embedded(case: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(START);
        let store = EmbeddedStore::open_with_clock(dir.path().join("store.redb"), clock.clone())
            .await
            .unwrap();
        Self {
            store: Arc::new(store),
            ns: format!("{case}:"),
            clock: Some(clock),
            _redis: None,
            _dir: Some(dir),
        }
    }

    async fn redis(case: &str) -> Self {
        let server = shared_redis().await;
        let store = RedisStore::connect(&server.url(0), None).await.unwrap();
        store.ping().await.unwrap();
        Self {
            store: Arc::new(store),
            ns: format!("{case}:"),
            clock: None,
            _redis: Some(server),
            _dir: None,
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.ns)
    }

    /// A TTL that this backend lets pass quickly: virtual seconds for the
    /// embedded store, a fraction of a real second for Redis.
    fn short_ttl(&self) -> Duration {
        match self.clock {
            Some(_) => Duration::from_secs(10),
            None => Duration::from_millis(300),
        }
    }

    /// Lets `ttl` pass, then waits until every key in `keys` is gone.
    /// Embedded: moves the clock one second short (the records must still be
    /// there), then onto their expiry. Redis: polls until the keys have
    /// expired, failing at a deadline.
    async fn let_expire(&self, keys: &[&str], ttl: Duration) {
        match &self.clock {
            Some(clock) => {
                clock.advance(ttl - Duration::from_secs(1));
                for key in keys {
                    assert!(
                        self.store.ttl(key).await.unwrap().is_some(),
                        "{key} expired a second early"
                    );
                }
                clock.advance(Duration::from_secs(1));
            }
            None => {
                let deadline = Instant::now() + DEADLINE;
                for key in keys {
                    while self.store.ttl(key).await.unwrap().is_some() {
                        assert!(Instant::now() < deadline, "{key} never expired");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn embedded() {
                super::$case(super::Harness::embedded(stringify!($case)).await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn redis() {
                super::$case(super::Harness::redis(stringify!($case)).await).await;
            }
        }
    )*};
}

conformance!(
    put_get_overwrite_delete,
    records_expire_after_their_ttl,
    ttl_reports_remaining_life_and_some_none_without_expiry,
    put_if_absent_writes_only_once,
    take_returns_a_value_once,
    fifty_concurrent_takers_exactly_one_wins,
    compare_and_swap_succeeds_fails_and_deletes,
    fifty_concurrent_swaps_exactly_one_wins,
    replace_if_equal_replaces_a_match_and_puts_back_what_it_displaced,
    fifty_concurrent_replacements_exactly_one_wins,
    sets_add_remove_and_list_members,
    keys_with_prefix_lists_over_a_thousand_keys_and_escapes_globs,
    publish_reaches_every_subscriber_of_the_channel,
    ping_and_backend_name,
);

async fn put_get_overwrite_delete(h: Harness) {
    let s = &h.store;
    let k = h.key("record");
    assert_eq!(s.get(&k).await.unwrap(), None);
    s.put(&k, b"one", None).await.unwrap();
    assert_eq!(s.get(&k).await.unwrap().as_deref(), Some(&b"one"[..]));
    s.put(&k, b"two", None).await.unwrap();
    assert_eq!(s.get(&k).await.unwrap().as_deref(), Some(&b"two"[..]));
    // Binary values and the empty value survive as they are.
    let bin = h.key("binary");
    s.put(&bin, &[0, 255, 10, 13, 0], None).await.unwrap();
    assert_eq!(s.get(&bin).await.unwrap(), Some(vec![0, 255, 10, 13, 0]));
    let empty = h.key("empty");
    s.put(&empty, b"", None).await.unwrap();
    assert_eq!(s.get(&empty).await.unwrap(), Some(Vec::new()));

    assert!(s.delete(&k).await.unwrap());
    assert!(
        !s.delete(&k).await.unwrap(),
        "deleting twice reports nothing deleted"
    );
    assert_eq!(s.get(&k).await.unwrap(), None);
    // A zero TTL stores nothing (the record would be dead on arrival).
    s.put(&k, b"gone", Some(Duration::ZERO)).await.unwrap();
    assert_eq!(s.get(&k).await.unwrap(), None);
}

async fn records_expire_after_their_ttl(h: Harness) {
    let s = &h.store;
    let ttl = h.short_ttl();
    let (short, long, forever) = (h.key("short"), h.key("long"), h.key("forever"));
    let (set, taken) = (h.key("set"), h.key("taken"));
    s.put(&short, b"s", Some(ttl)).await.unwrap();
    s.put(&taken, b"t", Some(ttl)).await.unwrap();
    s.put(&long, b"l", Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    s.put(&forever, b"f", None).await.unwrap();
    s.set_add(&set, "member", Some(ttl)).await.unwrap();

    h.let_expire(&[&short, &set, &taken], ttl).await;
    assert_eq!(s.get(&short).await.unwrap(), None);
    assert_eq!(s.ttl(&short).await.unwrap(), None);
    assert_eq!(
        s.take(&taken).await.unwrap(),
        None,
        "an expired record was taken"
    );
    assert!(!s.delete(&short).await.unwrap());
    assert!(
        !s.compare_and_swap(&short, b"s", Some(b"x"), None)
            .await
            .unwrap(),
        "an expired record was swapped"
    );
    assert!(s.set_members(&set).await.unwrap().is_empty());
    assert_eq!(
        s.keys_with_prefix(&h.ns).await.unwrap(),
        vec![forever.clone(), long.clone()],
        "expired keys were listed"
    );
    assert_eq!(s.get(&long).await.unwrap().as_deref(), Some(&b"l"[..]));
    assert_eq!(s.get(&forever).await.unwrap().as_deref(), Some(&b"f"[..]));
    // The dead record's name is free again.
    assert!(s.put_if_absent(&short, b"again", None).await.unwrap());
    assert_eq!(s.get(&short).await.unwrap().as_deref(), Some(&b"again"[..]));
}

async fn ttl_reports_remaining_life_and_some_none_without_expiry(h: Harness) {
    let s = &h.store;
    let k = h.key("k");
    assert_eq!(s.ttl(&k).await.unwrap(), None, "absent key");
    s.put(&k, b"v", None).await.unwrap();
    assert_eq!(s.ttl(&k).await.unwrap(), Some(None), "key without expiry");

    s.put(&k, b"v", Some(Duration::from_secs(100)))
        .await
        .unwrap();
    let left = s.ttl(&k).await.unwrap().flatten().expect("a remaining TTL");
    assert!(
        left <= Duration::from_secs(100) && left > Duration::from_secs(90),
        "{left:?}"
    );
    if h.clock.is_some() {
        assert_eq!(left, Duration::from_secs(100), "virtual time has not moved");
    }
    // Overwriting without a TTL makes the record permanent (like Redis SET).
    s.put(&k, b"w", None).await.unwrap();
    assert_eq!(s.ttl(&k).await.unwrap(), Some(None));
    // A swap with a TTL sets it; one without clears it.
    assert!(s
        .compare_and_swap(&k, b"w", Some(b"x"), Some(Duration::from_secs(50)))
        .await
        .unwrap());
    let left = s.ttl(&k).await.unwrap().flatten().expect("a remaining TTL");
    assert!(
        left <= Duration::from_secs(50) && left > Duration::from_secs(40),
        "{left:?}"
    );
    assert!(s
        .compare_and_swap(&k, b"x", Some(b"y"), None)
        .await
        .unwrap());
    assert_eq!(s.ttl(&k).await.unwrap(), Some(None));
    // Sets have a TTL too.
    let set = h.key("set");
    s.set_add(&set, "m", None).await.unwrap();
    assert_eq!(s.ttl(&set).await.unwrap(), Some(None));
}

async fn put_if_absent_writes_only_once(h: Harness) {
    let s = &h.store;
    let k = h.key("jti");
    assert!(s
        .put_if_absent(&k, b"first", Some(Duration::from_secs(60)))
        .await
        .unwrap());
    assert!(!s.put_if_absent(&k, b"second", None).await.unwrap());
    assert_eq!(s.get(&k).await.unwrap().as_deref(), Some(&b"first"[..]));
    let left = s.ttl(&k).await.unwrap().flatten();
    assert!(left.is_some(), "the failed write must not touch the TTL");
    assert!(s.delete(&k).await.unwrap());
    assert!(s.put_if_absent(&k, b"third", None).await.unwrap());
    assert_eq!(s.get(&k).await.unwrap().as_deref(), Some(&b"third"[..]));
}

async fn take_returns_a_value_once(h: Harness) {
    let s = &h.store;
    let k = h.key("code");
    assert_eq!(s.take(&k).await.unwrap(), None, "nothing to take");
    s.put(&k, b"grant", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(s.take(&k).await.unwrap().as_deref(), Some(&b"grant"[..]));
    assert_eq!(s.take(&k).await.unwrap(), None, "taken twice");
    assert_eq!(s.get(&k).await.unwrap(), None);
    assert!(!s.delete(&k).await.unwrap());
}

/// RFC 6749 §4.1.2: an authorization code is used at most once, however many
/// requests race for it.
async fn fifty_concurrent_takers_exactly_one_wins(h: Harness) {
    const TAKERS: usize = 50;
    for round in 0..5 {
        let k = h.key(&format!("code-{round}"));
        h.store.put(&k, b"the-grant", None).await.unwrap();
        let start = Arc::new(Barrier::new(TAKERS));
        let tasks: Vec<_> = (0..TAKERS)
            .map(|_| {
                let (store, start, k) = (h.store.clone(), start.clone(), k.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    store.take(&k).await.unwrap()
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            if let Some(v) = t.await.unwrap() {
                winners.push(v);
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {} takers got the grant",
            winners.len()
        );
        assert_eq!(winners[0], b"the-grant");
        assert_eq!(h.store.get(&k).await.unwrap(), None);
    }
}

async fn compare_and_swap_succeeds_fails_and_deletes(h: Harness) {
    let s = &h.store;
    let k = h.key("refresh");
    assert!(
        !s.compare_and_swap(&k, b"v1", Some(b"v2"), None)
            .await
            .unwrap(),
        "absent"
    );
    assert_eq!(
        s.get(&k).await.unwrap(),
        None,
        "a failed swap must not create"
    );

    s.put(&k, b"v1", None).await.unwrap();
    assert!(!s
        .compare_and_swap(&k, b"other", Some(b"v2"), None)
        .await
        .unwrap());
    assert_eq!(s.get(&k).await.unwrap().as_deref(), Some(&b"v1"[..]));
    // A prefix of the value is not the value.
    assert!(!s
        .compare_and_swap(&k, b"v", Some(b"v2"), None)
        .await
        .unwrap());

    assert!(s
        .compare_and_swap(&k, b"v1", Some(b"v2"), None)
        .await
        .unwrap());
    assert_eq!(s.get(&k).await.unwrap().as_deref(), Some(&b"v2"[..]));
    assert!(
        !s.compare_and_swap(&k, b"v1", Some(b"v3"), None)
            .await
            .unwrap(),
        "stale"
    );
    assert_eq!(s.get(&k).await.unwrap().as_deref(), Some(&b"v2"[..]));

    assert!(
        s.compare_and_swap(&k, b"v2", None, None).await.unwrap(),
        "delete"
    );
    assert_eq!(s.get(&k).await.unwrap(), None);
    assert!(!s.compare_and_swap(&k, b"v2", None, None).await.unwrap());

    // Binary values compare byte for byte.
    s.put(&k, &[0, 1, 2], None).await.unwrap();
    assert!(!s
        .compare_and_swap(&k, &[0, 1, 3], Some(&[9]), None)
        .await
        .unwrap());
    assert!(s
        .compare_and_swap(&k, &[0, 1, 2], Some(&[9]), None)
        .await
        .unwrap());
    assert_eq!(s.get(&k).await.unwrap(), Some(vec![9]));
}

/// Which swap [`race_from_generation_0`] runs.
#[derive(Clone, Copy)]
enum Swap {
    CompareAndSwap,
    ReplaceIfEqual,
}

/// Fifty tasks, released together, each try to move `k` from
/// `generation-0` to a value of its own; returns the values that won.
async fn race_from_generation_0(h: &Harness, k: &str, swap: Swap) -> Vec<String> {
    const SWAPPERS: usize = 50;
    h.store.put(k, b"generation-0", None).await.unwrap();
    let start = Arc::new(Barrier::new(SWAPPERS));
    let tasks: Vec<_> = (0..SWAPPERS)
        .map(|i| {
            let (store, start, k) = (h.store.clone(), start.clone(), k.to_string());
            tokio::spawn(async move {
                start.wait().await;
                let new = format!("generation-1-by-{i}");
                let won = match swap {
                    Swap::CompareAndSwap => store
                        .compare_and_swap(&k, b"generation-0", Some(new.as_bytes()), None)
                        .await
                        .unwrap(),
                    Swap::ReplaceIfEqual => store
                        .replace_if_equal(
                            &k,
                            b"generation-0",
                            new.as_bytes(),
                            Duration::from_secs(60),
                        )
                        .await
                        .unwrap(),
                };
                won.then_some(new)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        winners.extend(t.await.unwrap());
    }
    winners
}

/// Refresh-token rotation (OAuth 2.1 §4.3.1): of many concurrent rotations of
/// the same token, exactly one succeeds.
async fn fifty_concurrent_swaps_exactly_one_wins(h: Harness) {
    let k = h.key("family");
    let winners = race_from_generation_0(&h, &k, Swap::CompareAndSwap).await;
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(
        h.store.get(&k).await.unwrap().as_deref(),
        Some(winners[0].as_bytes())
    );
}

/// The refresh grant's rotation (`Store::replace_if_equal`): a match is
/// replaced with its new lifetime; a mismatch leaves the record as it was,
/// lifetime included (Redis writes first and puts it back); no record stays
/// no record.
async fn replace_if_equal_replaces_a_match_and_puts_back_what_it_displaced(h: Harness) {
    let s = &h.store;
    let k = h.key("family");
    let ttl = Duration::from_secs(100);
    assert!(!s.replace_if_equal(&k, b"v1", b"v2", ttl).await.unwrap());
    assert_eq!(
        s.get(&k).await.unwrap(),
        None,
        "a lost replacement must not create"
    );

    s.put(&k, b"v1", Some(Duration::from_secs(50)))
        .await
        .unwrap();
    assert!(!s.replace_if_equal(&k, b"other", b"v2", ttl).await.unwrap());
    assert_eq!(s.get(&k).await.unwrap().as_deref(), Some(&b"v1"[..]));
    let left = s
        .ttl(&k)
        .await
        .unwrap()
        .flatten()
        .expect("the old lifetime");
    assert!(
        left <= Duration::from_secs(50) && left > Duration::from_secs(40),
        "the displaced record keeps its own lifetime: {left:?}"
    );
    // A prefix of the value is not the value.
    assert!(!s.replace_if_equal(&k, b"v", b"v2", ttl).await.unwrap());
    assert_eq!(s.get(&k).await.unwrap().as_deref(), Some(&b"v1"[..]));

    assert!(s.replace_if_equal(&k, b"v1", b"v2", ttl).await.unwrap());
    assert_eq!(s.get(&k).await.unwrap().as_deref(), Some(&b"v2"[..]));
    let left = s
        .ttl(&k)
        .await
        .unwrap()
        .flatten()
        .expect("the new lifetime");
    assert!(left <= ttl && left > Duration::from_secs(90), "{left:?}");
    assert!(
        !s.replace_if_equal(&k, b"v1", b"v3", ttl).await.unwrap(),
        "stale"
    );
    assert_eq!(s.get(&k).await.unwrap().as_deref(), Some(&b"v2"[..]));

    // A record without expiry is put back without one.
    s.put(&k, b"forever", None).await.unwrap();
    assert!(!s.replace_if_equal(&k, b"v2", b"v3", ttl).await.unwrap());
    assert_eq!(s.get(&k).await.unwrap().as_deref(), Some(&b"forever"[..]));
    assert_eq!(s.ttl(&k).await.unwrap(), Some(None));
}

/// Refresh-token rotation through `replace_if_equal`: of many concurrent
/// rotations of the same token, exactly one succeeds. What the record holds
/// afterwards may be a loser's (the contract: each loser then revokes the
/// family), but never the replaced generation.
async fn fifty_concurrent_replacements_exactly_one_wins(h: Harness) {
    let k = h.key("family");
    let winners = race_from_generation_0(&h, &k, Swap::ReplaceIfEqual).await;
    assert_eq!(winners.len(), 1, "{winners:?}");
    let left = h.store.get(&k).await.unwrap().expect("a record");
    let left = String::from_utf8(left).unwrap();
    assert!(left.starts_with("generation-1-by-"), "{left}");
}

async fn sets_add_remove_and_list_members(h: Harness) {
    let s = &h.store;
    let set = h.key("tokens-of-alice");
    assert!(s.set_members(&set).await.unwrap().is_empty());
    assert!(!s.set_remove(&set, "x").await.unwrap(), "absent set");
    for m in ["a", "b", "a", "c d", "ü"] {
        s.set_add(&set, m, None).await.unwrap();
    }
    let members: BTreeSet<_> = s.set_members(&set).await.unwrap().into_iter().collect();
    assert_eq!(members, ["a", "b", "c d", "ü"].map(String::from).into());
    assert_eq!(s.keys_with_prefix(&h.ns).await.unwrap(), vec![set.clone()]);

    assert!(s.set_remove(&set, "a").await.unwrap());
    assert!(!s.set_remove(&set, "a").await.unwrap(), "removed twice");
    let members: BTreeSet<_> = s.set_members(&set).await.unwrap().into_iter().collect();
    assert_eq!(members, ["b", "c d", "ü"].map(String::from).into());

    // Sets are independent of each other.
    let other = h.key("tokens-of-bob");
    s.set_add(&other, "b", None).await.unwrap();
    assert_eq!(s.set_members(&other).await.unwrap(), vec!["b".to_string()]);

    // A set emptied of its members no longer exists.
    for m in ["b", "c d", "ü"] {
        assert!(s.set_remove(&set, m).await.unwrap());
    }
    assert_eq!(s.ttl(&set).await.unwrap(), None);
    assert_eq!(s.keys_with_prefix(&h.ns).await.unwrap(), vec![other]);

    // A TTL given with a later add applies to the whole set.
    s.set_add(&set, "x", None).await.unwrap();
    s.set_add(&set, "y", Some(Duration::from_secs(100)))
        .await
        .unwrap();
    assert!(s.ttl(&set).await.unwrap().flatten().is_some());
    assert_eq!(s.set_members(&set).await.unwrap().len(), 2);
}

async fn keys_with_prefix_lists_over_a_thousand_keys_and_escapes_globs(h: Harness) {
    const KEYS: usize = 1200;
    let s = &h.store;
    // Glob metacharacters in the prefix must match only themselves.
    let prefix = h.key(r"re*vo?ked[x]\:");
    let wanted: BTreeSet<String> = (0..KEYS).map(|i| format!("{prefix}{i:05}")).collect();
    let decoys = [
        h.key(r"reXvo?ked[x]\:1"), // `*` as a glob would match
        h.key(r"re*voZked[x]\:2"), // `?` as a glob would match
        h.key(r"re*vo?kedx\:3"),   // `[x]` as a glob would match
        h.key(r"re*vo?ked[x]:4"),  // `\:` as an escape would match
        h.key(r"re*vo?ked[x"),     // shorter than the prefix
        h.key(r"rf*vo?ked[x]\:5"), // sorts after
    ];
    stream::iter(wanted.iter().chain(decoys.iter()))
        .map(|k| async move { s.put(k, b"1", None).await })
        .buffer_unordered(16)
        .for_each(|r| async move { r.unwrap() })
        .await;

    let listed = s.keys_with_prefix(&prefix).await.unwrap();
    assert_eq!(listed.len(), KEYS, "no duplicates, no decoys, none missing");
    let listed: BTreeSet<String> = listed.into_iter().collect();
    assert_eq!(listed, wanted);
    // A prefix with no glob characters, and one matching nothing.
    assert_eq!(
        s.keys_with_prefix(&h.key("rf")).await.unwrap(),
        vec![decoys[5].clone()]
    );
    assert!(s
        .keys_with_prefix(&h.key("nothing"))
        .await
        .unwrap()
        .is_empty());
}

async fn publish_reaches_every_subscriber_of_the_channel(h: Harness) {
    let s = &h.store;
    let channel = h.key("revocations");
    let elsewhere = h.key("other-channel");
    // Nobody listening: publishing is not an error.
    s.publish(&channel, b"lost").await.unwrap();

    let mut first = s.subscribe(&channel).await.unwrap();
    let mut second = s.subscribe(&channel).await.unwrap();
    let mut other = s.subscribe(&elsewhere).await.unwrap();
    s.publish(&channel, b"event-1").await.unwrap();
    s.publish(&channel, &[0, 159, 146, 150]).await.unwrap();
    s.publish(&elsewhere, b"marker").await.unwrap();

    for sub in [&mut first, &mut second] {
        let got = tokio::time::timeout(DEADLINE, sub.by_ref().take(2).collect::<Vec<_>>())
            .await
            .expect("events arrive");
        assert_eq!(got, vec![b"event-1".to_vec(), vec![0, 159, 146, 150]]);
    }
    // The other channel's subscriber saw only its own event (published last).
    let got = tokio::time::timeout(DEADLINE, other.next())
        .await
        .expect("marker arrives");
    assert_eq!(got.as_deref(), Some(&b"marker"[..]));

    // A dropped subscriber does not disturb the others.
    drop(first);
    s.publish(&channel, b"event-3").await.unwrap();
    let got = tokio::time::timeout(DEADLINE, second.next())
        .await
        .expect("event arrives");
    assert_eq!(got.as_deref(), Some(&b"event-3"[..]));
}

async fn ping_and_backend_name(h: Harness) {
    h.store.ping().await.unwrap();
    let expected = if h.clock.is_some() {
        "embedded"
    } else {
        "redis"
    };
    assert_eq!(h.store.backend(), expected);
}

// ---- embedded only ----------------------------------------------------------

/// Close and reopen: live records (and sets) are all there, dead ones are gone —
/// physically, not just hidden: moving the clock back does not revive them.
#[tokio::test]
async fn embedded_restart_keeps_live_records_and_drops_expired_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.redb");
    let clock = ManualClock::new(START);
    let store = EmbeddedStore::open_with_clock(&path, clock.clone())
        .await
        .unwrap();
    store.put("live:forever", b"f", None).await.unwrap();
    store
        .put("live:hour", b"h", Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    store
        .put("dead:soon", b"s", Some(Duration::from_secs(10)))
        .await
        .unwrap();
    store.put("dead:taken", b"t", None).await.unwrap();
    assert!(store.take("dead:taken").await.unwrap().is_some());
    store.set_add("live:set", "m1", None).await.unwrap();
    store.set_add("live:set", "m2", None).await.unwrap();
    store
        .set_add("dead:set", "m", Some(Duration::from_secs(10)))
        .await
        .unwrap();
    drop(store);

    clock.advance(Duration::from_secs(10));
    let store = EmbeddedStore::open_with_clock(&path, clock.clone())
        .await
        .unwrap();
    assert_eq!(
        store.get("live:forever").await.unwrap().as_deref(),
        Some(&b"f"[..])
    );
    assert_eq!(
        store.get("live:hour").await.unwrap().as_deref(),
        Some(&b"h"[..])
    );
    assert_eq!(
        store.ttl("live:hour").await.unwrap(),
        Some(Some(Duration::from_secs(3590)))
    );
    let mut members = store.set_members("live:set").await.unwrap();
    members.sort();
    assert_eq!(members, ["m1", "m2"]);
    assert_eq!(store.get("dead:soon").await.unwrap(), None);
    assert_eq!(store.get("dead:taken").await.unwrap(), None);
    assert!(store.set_members("dead:set").await.unwrap().is_empty());
    assert_eq!(
        store.keys_with_prefix("").await.unwrap(),
        ["live:forever", "live:hour", "live:set"]
    );
    assert_eq!(
        store.purge_expired().await.unwrap(),
        0,
        "open already purged"
    );

    clock.set(START);
    assert_eq!(
        store.get("dead:soon").await.unwrap(),
        None,
        "revived: not purged"
    );
    assert!(store.set_members("dead:set").await.unwrap().is_empty());
}

#[tokio::test]
async fn embedded_purge_removes_dead_records_and_sets() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let store = EmbeddedStore::open_with_clock(dir.path().join("s.redb"), clock.clone())
        .await
        .unwrap();
    for i in 0..3 {
        store
            .put(&format!("k{i}"), b"v", Some(Duration::from_secs(5)))
            .await
            .unwrap();
    }
    store
        .put("keep", b"v", Some(Duration::from_secs(6)))
        .await
        .unwrap();
    store
        .set_add("set", "m", Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(store.purge_expired().await.unwrap(), 0, "nothing dead yet");
    clock.advance(Duration::from_secs(5));
    assert_eq!(store.purge_expired().await.unwrap(), 4);
    clock.set(START);
    assert_eq!(store.keys_with_prefix("").await.unwrap(), ["keep"]);
}

#[tokio::test]
async fn embedded_reopen_waits_for_a_dropped_handle_and_sees_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    for round in 0..3u8 {
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&path).await.unwrap());
        for earlier in 0..round {
            assert_eq!(
                store.get(&format!("round-{earlier}")).await.unwrap(),
                Some(vec![earlier])
            );
        }
        store
            .put(&format!("round-{round}"), &[round], None)
            .await
            .unwrap();
    }
}

// ---- redis only -------------------------------------------------------------

#[tokio::test]
async fn redis_malformed_url_is_a_config_error_naming_the_problem() {
    for (url, says) in [
        ("redis//redis:6379", "not a valid URL"),
        ("http://redis:6379/0", "redis:// or rediss://"),
        ("redis://redis:99999/0", "invalid port"),
        ("redis://redis:6379/first", "database index"),
    ] {
        match RedisStore::connect(url, None).await {
            Err(StoreError::Config(m)) => assert!(m.contains(says), "{url}: {m}"),
            other => panic!("{url}: expected a config error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn redis_password_from_the_separate_setting_and_db_index_are_used() {
    let server = RedisServer::start_with(Some("s3cret pw")).await.unwrap();
    let bare = |db: u8| format!("redis://127.0.0.1:{}/{db}", server.port);

    let without = RedisStore::connect(&bare(0), None).await.unwrap();
    assert!(
        matches!(without.ping().await, Err(StoreError::Unavailable(_))),
        "no password must not get in"
    );
    let db1 = RedisStore::connect(&bare(1), Some("s3cret pw"))
        .await
        .unwrap();
    db1.ping().await.unwrap();
    // The password in the URL wins over the separate one.
    let db2 = RedisStore::connect(&server.url(2), Some("wrong"))
        .await
        .unwrap();
    db2.ping().await.unwrap();

    db1.put("same-key", b"in db 1", None).await.unwrap();
    assert_eq!(
        db2.get("same-key").await.unwrap(),
        None,
        "databases are separate"
    );
    assert_eq!(
        db1.get("same-key").await.unwrap().as_deref(),
        Some(&b"in db 1"[..])
    );
    let debug = format!("{db1:?} {db2:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
}

#[tokio::test]
async fn redis_subscription_ends_and_calls_fail_unavailable_when_the_server_goes() {
    let mut server = RedisServer::start().await.unwrap();
    let store = RedisStore::connect(&server.url(0), None).await.unwrap();
    let mut events = store.subscribe("chan").await.unwrap();
    store.publish("chan", b"before").await.unwrap();
    let got = tokio::time::timeout(DEADLINE, events.next()).await.unwrap();
    assert_eq!(got.as_deref(), Some(&b"before"[..]));

    server.stop();
    let end = tokio::time::timeout(DEADLINE, events.next()).await;
    assert_eq!(
        end,
        Ok(None),
        "the stream must end when the connection is lost"
    );
    match store.get("k").await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert!(matches!(
        store.subscribe("chan").await,
        Err(StoreError::Unavailable(_))
    ));
}

/// `rediss://` (TLS) against a redis-server with a throwaway self-signed
/// certificate (`#insecure` skips verification of that certificate).
#[tokio::test]
async fn redis_over_tls_with_rediss_url() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(made.success());
    // The TLS port is on redis-server's command line: a port taken before it
    // binds means another attempt on another port.
    let (cert_ref, key_ref, dir_ref) = (&cert, &key, dir.path());
    let (port, _guard) = gateway_testkit::retry_on_port_taken(|port| async move {
        let log = dir_ref.join(format!("redis-{port}.log"));
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--tls-auth-clients",
                "no",
            ])
            .arg("--tls-cert-file")
            .arg(cert_ref)
            .arg("--tls-key-file")
            .arg(key_ref)
            .arg("--dir")
            .arg(dir_ref)
            .arg("--logfile")
            .arg(&log)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let mut guard = gateway_testkit::ChildGuard(child);
        gateway_testkit::wait_listening(
            &mut guard.0,
            port,
            || std::fs::read_to_string(&log).unwrap_or_default(),
            DEADLINE,
        )
        .await?;
        Ok((port, guard))
    })
    .await
    .unwrap();

    let store = RedisStore::connect(&format!("rediss://127.0.0.1:{port}/0#insecure"), None)
        .await
        .unwrap();
    store.ping().await.unwrap();
    store.put("over-tls", b"yes", None).await.unwrap();
    assert_eq!(
        store.take("over-tls").await.unwrap().as_deref(),
        Some(&b"yes"[..])
    );
    // Plain redis:// to a TLS port does not work: TLS is really in use.
    let plain = RedisStore::connect(&format!("redis://127.0.0.1:{port}/0"), None)
        .await
        .unwrap();
    assert!(plain.ping().await.is_err());
}

/// A TCP relay to Redis that forwards the connections it is told to and holds
/// the others open without a byte either way: a Redis host whose name lookup
/// or handshake stalls for new connections while older ones work (podman's
/// network DNS while containers start).
struct StallingRelay {
    port: u16,
    /// Connections accepted so far.
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    /// Connections forwarded so far.
    forwarded: Arc<std::sync::atomic::AtomicUsize>,
    /// While set, new connections are held instead of forwarded.
    stall: Arc<std::sync::atomic::AtomicBool>,
    _runtime: tokio::runtime::Runtime,
}

impl StallingRelay {
    fn start(redis_port: u16) -> Self {
        use std::sync::atomic::Ordering::SeqCst;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let forwarded = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stall = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (a, f, s) = (accepted.clone(), forwarded.clone(), stall.clone());
        runtime.spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                a.fetch_add(1, SeqCst);
                if s.load(SeqCst) {
                    held.push(inbound);
                    continue;
                }
                f.fetch_add(1, SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", redis_port)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self {
            port,
            accepted,
            forwarded,
            stall,
            _runtime: runtime,
        }
    }
}

type Job = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A current-thread runtime on its own thread that keeps running between
/// jobs (an actix worker): a connection made there keeps its I/O task there.
struct Worker {
    jobs: Option<tokio::sync::mpsc::UnboundedSender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    fn start() -> Self {
        let (jobs, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                while let Some(job) = rx.recv().await {
                    job.await;
                }
            });
        });
        Self {
            jobs: Some(jobs),
            thread: Some(thread),
        }
    }

    /// Runs `f` on this worker's thread and waits for its answer.
    fn run<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .as_ref()
            .unwrap()
            .send(Box::pin(async move {
                let _ = tx.send(f.await);
            }))
            .map_err(|_| "worker gone")
            .unwrap();
        rx.blocking_recv().unwrap()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A thread with no Redis connection of its own is served on another
/// thread's while its own cannot be made, and uses its own once it can.
#[test]
fn redis_thread_without_a_connection_borrows_one_while_its_own_stalls() {
    use std::sync::atomic::Ordering::SeqCst;
    let setup = tokio::runtime::Runtime::new().unwrap();
    let server = setup.block_on(RedisServer::start()).unwrap();
    let relay = StallingRelay::start(server.port);
    let store: Arc<dyn Store> = Arc::new(
        setup
            .block_on(RedisStore::connect(
                &format!("redis://127.0.0.1:{}/0", relay.port),
                None,
            ))
            .unwrap(),
    );
    let (first, second) = (Worker::start(), Worker::start());
    let s = store.clone();
    first
        .run(async move { s.put("lent", b"value", None).await })
        .unwrap();
    assert_eq!(relay.forwarded.load(SeqCst), 1);

    // From now on no new connection gets through.
    relay.stall.store(true, SeqCst);
    for _ in 0..3 {
        let s = store.clone();
        let got = second.run(async move { s.get("lent").await });
        assert_eq!(
            got.unwrap().as_deref(),
            Some(&b"value"[..]),
            "served on the first thread's connection"
        );
    }
    // The second thread did try a connection of its own (held by the relay):
    // one attempt at a time, not one per operation.
    let deadline = Instant::now() + DEADLINE;
    while relay.accepted.load(SeqCst) < 2 {
        assert!(
            Instant::now() < deadline,
            "no connection attempt of its own"
        );
        std::thread::yield_now();
    }

    // Once new connections get through, the second thread gets its own: its
    // stalled attempts run out (CONNECT_TIMEOUT) and the next one is
    // forwarded, while every operation meanwhile is served.
    relay.stall.store(false, SeqCst);
    let deadline = Instant::now() + Duration::from_secs(60);
    while relay.forwarded.load(SeqCst) < 2 {
        assert!(
            Instant::now() < deadline,
            "the second thread never made its own connection"
        );
        let s = store.clone();
        let got = second.run(async move { s.get("lent").await });
        assert_eq!(got.unwrap().as_deref(), Some(&b"value"[..]));
        std::thread::sleep(Duration::from_millis(50));
    }
    drop((first, second));
    drop(server);
}
