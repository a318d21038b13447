//! Budgets for what anyone can ask without credentials, as plain logic (no
//! actix, no store): request rates per key ([`KeyedLimit`], GCRA through
//! `governor`) and growing delays after failed guesses ([`FailureThrottle`]).
//!
//! Keys are fixed-size ([`Key`], 16 bytes): a peer address (IPv6 by its /64,
//! the unit one subscriber gets), or a hash of a *verified* name (an
//! authenticated client, an account that was tried). Never a raw string a
//! caller typed: a 15 KB `client_id` costs the same 16 bytes as any other, and
//! nobody can spend somebody else's budget by naming them.
//!
//! Memory is bounded by bytes: each table holds at most `max_keys` entries of
//! a fixed size ([`BYTES_PER_ENTRY`] is the estimate used to turn a byte
//! budget into a key count). When a table is full of live entries, requests
//! from keys it does not know share one overflow bucket until the background
//! prune ([`KeyedLimit::prune`]) frees room: known keys keep their own buckets,
//! and the table never grows.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use dashmap::DashMap;
use gateway_common::clock::SharedClock;
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
use sha2::{Digest, Sha256};

/// A limiter key: 16 bytes, whatever it stands for.
pub type Key = [u8; 16];

/// What one table entry costs, key and state and map overhead included (an
/// upper estimate for a `DashMap<[u8; 16], AtomicU64>`).
pub const BYTES_PER_ENTRY: usize = 64;

/// The key of a peer address: IPv4 as itself (mapped), IPv6 by its /64 — one
/// subscriber usually holds a whole /64, so counting single IPv6 addresses
/// would let one attacker own 2^64 budgets.
pub fn address_key(ip: IpAddr) -> Key {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => {
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&v6.octets()[..8]);
            // Distinct from every mapped IPv4 key (those start with 80 zero bits).
            k[15] = 1;
            k
        }
    }
}

/// The key of a name within a domain (`"client"`, `"account"`): the first 128
/// bits of SHA-256, so a name of any length costs 16 bytes.
pub fn name_key(domain: &str, name: &str) -> Key {
    let mut h = Sha256::new();
    h.update(domain.as_bytes());
    h.update([0u8]);
    h.update(name.as_bytes());
    let full = h.finalize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&full[..16]);
    k
}

/// A governor state store with a fixed capacity: known keys keep their own
/// state; unknown keys share `overflow` while the table is full.
#[derive(Debug)]
pub struct BoundedStore<K: Hash + Eq> {
    map: DashMap<K, InMemoryState>,
    max_keys: usize,
    overflow: InMemoryState,
}

impl<K: Hash + Eq + Clone> BoundedStore<K> {
    pub fn new(max_keys: usize) -> Self {
        Self {
            map: DashMap::new(),
            max_keys: max_keys.max(1),
            overflow: InMemoryState::default(),
        }
    }
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if let Some(state) = self.map.get(key) {
            return state.measure_and_replace(&NotKeyed::NonKey, f);
        }
        if self.map.len() >= self.max_keys {
            return self.overflow.measure_and_replace(&NotKeyed::NonKey, f);
        }
        let state = self.map.entry(key.clone()).or_default();
        state.measure_and_replace(&NotKeyed::NonKey, f)
    }
}

/// The theoretical arrival time a state holds (`None`: never used).
fn tat(state: &InMemoryState) -> Option<Nanos> {
    // A decision function that refuses to write only reads.
    match state.measure_and_replace(&NotKeyed::NonKey, Err::<((), Nanos), _>) {
        Ok(()) | Err(None) => None,
        Err(Some(n)) => Some(n),
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        self.map
            .retain(|_, state| tat(state).is_some_and(|t| t > drop_below));
    }

    fn shrink_to_fit(&self) {
        self.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// Our clock seam as governor's clock, so tests drive limiters with the same
/// virtual time as everything else.
#[derive(Debug, Clone)]
pub struct SeamClock(pub SharedClock);

impl Clock for SeamClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(self.0.now_nanos())
    }
}

type Governor<C> = RateLimiter<Key, BoundedStore<Key>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// A request rate per key: `per_minute` sustained, a minute's worth as burst.
/// `per_minute == 0` means no limit.
#[derive(Debug)]
pub struct KeyedLimit<C: Clock = SeamClock> {
    limiter: Option<Governor<C>>,
    clock: C,
}

impl KeyedLimit<SeamClock> {
    pub fn new(per_minute: u32, max_keys: usize, clock: SharedClock) -> Self {
        Self::with_clock(per_minute, max_keys, SeamClock(clock))
    }
}

impl<C: Clock + Clone> KeyedLimit<C> {
    pub fn with_clock(per_minute: u32, max_keys: usize, clock: C) -> Self {
        let limiter = NonZeroU32::new(per_minute).map(|n| {
            RateLimiter::new(
                Quota::per_minute(n),
                BoundedStore::new(max_keys),
                clock.clone(),
            )
        });
        Self { limiter, clock }
    }

    /// Counts one request for `key`; `Err(seconds)` to wait when over budget.
    pub fn check(&self, key: &Key) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Forgets keys whose bucket has refilled (their state equals a fresh one).
    pub fn prune(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// Keys tracked now (for metrics and tests).
    pub fn tracked(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }
}

/// How delays grow after failed attempts: `free` failures cost nothing, then
/// each one doubles the wait, from `base` up to `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub free: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// The wait after the `failures`-th consecutive failure.
    pub fn delay(&self, failures: u32) -> Duration {
        if failures <= self.free {
            return Duration::ZERO;
        }
        let doublings = (failures - self.free - 1).min(30);
        self.base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.cap)
            .min(self.cap)
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    /// Unix seconds before which the next attempt is refused.
    blocked_until: u64,
    last: u64,
}

/// Growing delays after failed guesses (passwords, user codes), per key.
/// Only failures count, and a success clears its key, so a legitimate user
/// who gets in never carries a penalty forward.
#[derive(Debug)]
pub struct FailureThrottle {
    policy: Backoff,
    clock: SharedClock,
    max_keys: usize,
    /// Entries idle this long are forgotten.
    forget_after: u64,
    map: Mutex<HashMap<Key, Failures>>,
}

impl FailureThrottle {
    pub fn new(policy: Backoff, max_keys: usize, clock: SharedClock) -> Self {
        // Forget a key once its longest possible delay has passed twice over.
        let forget_after = policy.cap.as_secs().saturating_mul(2).max(600);
        Self {
            policy,
            clock,
            max_keys: max_keys.max(1),
            forget_after,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds)` while `key` must wait before its next attempt.
    pub fn check(&self, key: &Key) -> Result<(), u64> {
        let now = self.clock.now_secs();
        let Ok(map) = self.map.lock() else {
            return Ok(());
        };
        match map.get(key) {
            Some(f) if f.blocked_until > now => Err(f.blocked_until - now),
            _ => Ok(()),
        }
    }

    /// Records a failed attempt; returns the wait it earned (0 while free).
    pub fn failed(&self, key: &Key) -> u64 {
        let now = self.clock.now_secs();
        let Ok(mut map) = self.map.lock() else {
            return 0;
        };
        if !map.contains_key(key) && map.len() >= self.max_keys {
            // Full of live keys: this one is not tracked (the per-account
            // throttle and the per-address request rate still apply).
            return 0;
        }
        let f = map.entry(*key).or_insert(Failures {
            count: 0,
            blocked_until: 0,
            last: now,
        });
        if now.saturating_sub(f.last) > self.forget_after {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
        let wait = self.policy.delay(f.count).as_secs();
        f.blocked_until = now + wait;
        wait
    }

    /// A success: the key starts over.
    pub fn succeeded(&self, key: &Key) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(key);
        }
    }

    /// Forgets keys idle past their longest delay.
    pub fn prune(&self) {
        let now = self.clock.now_secs();
        if let Ok(mut map) = self.map.lock() {
            map.retain(|_, f| {
                f.blocked_until > now || now.saturating_sub(f.last) <= self.forget_after
            });
            map.shrink_to_fit();
        }
    }

    pub fn tracked(&self) -> usize {
        self.map.lock().map_or(0, |m| m.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_common::clock::ManualClock;
    use governor::clock::FakeRelativeClock;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        assert_eq!(
            address_key(ip("2001:db8:1:2::1")),
            address_key(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            address_key(ip("2001:db8:1:2::1")),
            address_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            address_key(ip("192.0.2.1")),
            address_key(ip("::ffff:192.0.2.1"))
        );
        assert_ne!(address_key(ip("::")), address_key(ip("0.0.0.0")));
    }

    #[test]
    fn a_bucket_holds_one_minute_and_refills_steadily() {
        let clock = FakeRelativeClock::default();
        let l = KeyedLimit::with_clock(30, 100, clock.clone());
        let a = name_key("t", "a");
        for _ in 0..30 {
            assert_eq!(l.check(&a), Ok(()));
        }
        // 30/min: one every 2 s.
        assert_eq!(l.check(&a), Err(2));
        assert_eq!(l.check(&name_key("t", "b")), Ok(()), "per key");
        clock.advance(Duration::from_secs(2));
        assert_eq!(l.check(&a), Ok(()));
        assert!(l.check(&a).is_err());
        clock.advance(Duration::from_secs(3600));
        for _ in 0..30 {
            assert_eq!(l.check(&a), Ok(()), "capped at the burst");
        }
        assert!(l.check(&a).is_err());
    }

    #[test]
    fn zero_means_unlimited() {
        let l = KeyedLimit::with_clock(0, 10, FakeRelativeClock::default());
        for _ in 0..1000 {
            assert_eq!(l.check(&[0; 16]), Ok(()));
        }
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn a_full_table_never_grows_and_known_keys_keep_their_budget() {
        let clock = FakeRelativeClock::default();
        let l = KeyedLimit::with_clock(2, 8, clock.clone());
        let known = name_key("t", "known");
        assert_eq!(l.check(&known), Ok(()));
        // A flood of distinct keys: the table stops at its size...
        for i in 0..10_000u32 {
            let _ = l.check(&name_key("t", &i.to_string()));
        }
        assert_eq!(l.tracked(), 8);
        // ...the flood shares one overflow bucket (empty now)...
        assert!(l.check(&name_key("t", "newcomer")).is_err());
        // ...and the known key still has its own.
        assert_eq!(l.check(&known), Ok(()));
        // Once buckets refill, pruning frees the table.
        clock.advance(Duration::from_secs(120));
        l.prune();
        assert_eq!(l.tracked(), 0);
        assert_eq!(l.check(&name_key("t", "newcomer")), Ok(()));
    }

    #[test]
    fn delays_grow_then_cap_and_success_clears() {
        let clock = ManualClock::new(1_000);
        let policy = Backoff {
            free: 3,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        };
        let t = FailureThrottle::new(policy, 100, clock.clone());
        let k = name_key("account", "alice");
        for _ in 0..3 {
            assert_eq!(t.check(&k), Ok(()));
            assert_eq!(t.failed(&k), 0);
        }
        assert_eq!(t.failed(&k), 1);
        assert_eq!(t.check(&k), Err(1));
        clock.advance(Duration::from_secs(1));
        assert_eq!(t.check(&k), Ok(()));
        assert_eq!(t.failed(&k), 2);
        clock.advance(Duration::from_secs(2));
        assert_eq!(t.failed(&k), 4);
        for _ in 0..20 {
            t.failed(&k);
        }
        assert_eq!(t.check(&k), Err(60), "capped");
        t.succeeded(&k);
        assert_eq!(t.check(&k), Ok(()));
        assert_eq!(policy.delay(1_000_000), Duration::from_secs(60));
    }

    #[test]
    fn the_throttle_table_is_bounded_and_pruned() {
        let clock = ManualClock::new(0);
        let policy = Backoff {
            free: 0,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
        };
        let t = FailureThrottle::new(policy, 4, clock.clone());
        for i in 0..100u32 {
            t.failed(&name_key("a", &i.to_string()));
        }
        assert_eq!(t.tracked(), 4);
        clock.advance(Duration::from_secs(10_000));
        t.prune();
        assert_eq!(t.tracked(), 0);
    }
}
