//! The Redis backend: shared by every instance that points at the same Redis.
//!
//! Connections are multiplexed async connections made by deadpool-redis's
//! connection manager, one per thread (why not checked out of its pool: see
//! `Links`), never a blocking client. The atomic operations are
//! single Redis commands or one Lua script, never read-then-write from here:
//! * take → `GETDEL` (Redis ≥ 6.2);
//! * put-if-absent → `SET NX PX`;
//! * compare-and-swap → [`CAS_SCRIPT`] (`EVALSHA`, falling back to `EVAL`);
//! * replace-if-equal (a refresh family's rotation) → `MULTI PTTL SET XX GET PX
//!   EXEC`, a displaced record put back with the script;
//! * sets with TTL → `MULTI SADD PEXPIRE EXEC`;
//! * prefix listing → `SCAN MATCH <escaped prefix>* COUNT`, never `KEYS`.
//!
//! Publish/subscribe uses a dedicated connection per subscriber (a connection in
//! subscribe mode cannot run other commands, so it cannot be a shared one).
//!
//! One Redis server or a managed primary is what this targets. Beyond that:
//! Sentinel is reached through a proxy/VIP that follows the primary (or by
//! switching this module to `redis::sentinel`); Redis Cluster would need hash
//! tags so a record's keys share a slot — none of our operations spans two keys,
//! so only `SCAN` (per node) would change.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::redis::{self, AsyncCommands};
use futures_util::stream::{BoxStream, StreamExt};

use crate::{Store, StoreError, StoreResult, Ttl};

/// Keys fetched per `SCAN` step: big enough to be quick, small enough that the
/// server never blocks for long.
const SCAN_COUNT: usize = 1000;

/// Per-thread shared connections kept at most (see `Links`).
const MAX_THREAD_CONNECTIONS: usize = 64;

/// How long to wait for a connection before reporting the store unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection attempt (name lookup, TCP, handshake). A lookup whose UDP
/// packet is lost waits out the resolver's retransmission timer (glibc: 5 s,
/// `options timeout` in resolv.conf), which alone would use the whole
/// `CONNECT_TIMEOUT`; a fresh attempt asks again and is usually answered at
/// once (seen with podman's network DNS in the compose run).
const CONNECT_ATTEMPT: Duration = Duration::from_millis(1500);

/// How long one command may wait for Redis's answer. The client library's
/// own defaults (1 s to connect, 500 ms per answer) turned a slow name
/// lookup or a briefly starved Redis on a busy host (containers sharing two
/// cores) into a 503 on the first request after a start; a Redis that is
/// really gone still fails fast (connection refused).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);

/// An example printed in configuration errors.
pub const EXAMPLE_URL: &str = "redis://redis:6379/0";

/// Compare-and-swap in one step (Lua scripts run atomically, Redis `EVAL`).
/// `KEYS[1]` = key; `ARGV[1]` = expected; `ARGV[2]` = mode (`del`, `set`,
/// `setpx`); `ARGV[3]` = new value; `ARGV[4]` = TTL in milliseconds.
/// An absent key reads as `false`, which never equals a string.
pub const CAS_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1])
if current ~= ARGV[1] then
  return 0
end
if ARGV[2] == 'del' then
  redis.call('DEL', KEYS[1])
elseif ARGV[2] == 'set' then
  redis.call('SET', KEYS[1], ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
end
return 1
";

/// A store in Redis.
pub struct RedisStore {
    /// Command connections: made, shared per thread, lent between threads.
    links: Arc<Links>,
    /// For subscriber connections, which cannot be multiplexed.
    client: redis::Client,
    cas: redis::Script,
}

/// The command connections of one store.
///
/// One multiplexed connection per thread, made by the manager on that
/// thread, so its I/O task runs where the requests do (an actix worker is a
/// one-thread runtime: no cross-thread wake-up per command) and concurrent
/// commands of the thread go out pipelined on it. Checking a pool object out
/// per operation instead cost an extra round trip each time (deadpool-redis
/// checks an idle object with `UNWATCH` + `PING`), which more than halved the
/// refresh grant's throughput (authz-server/examples/bench_tokens.rs). All are
/// dropped after a connection-level error; the next operation on each thread
/// connects anew.
///
/// A thread that has none yet borrows another thread's while its own is made
/// in the background. Without that, a thread's first operation waited for a
/// connection of its own even when the process already had a working one,
/// and a name lookup that kept stalling (podman's network DNS while
/// containers start) failed every operation on that thread for as long as it
/// stalled: the compose run's authorization server answered `/ready` with 503
/// for up to 53 s although its start-up thread had reached Redis at once.
struct Links {
    /// Makes (and sets up: database, password, TLS) command connections.
    manager: deadpool_redis::Manager,
    /// `host:port/db`, safe to log (no credentials).
    display: String,
    by_thread: std::sync::Mutex<HashMap<std::thread::ThreadId, Link>>,
}

enum Link {
    Ready(redis::aio::MultiplexedConnection),
    /// A connection for this thread is being made in the background.
    Connecting,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.links.display)
            .finish_non_exhaustive()
    }
}

/// A checked Redis URL: `redis://` or `rediss://` (TLS), a host, an optional
/// port, and an optional database index as the path (`/0`). `rediss://…#insecure`
/// skips certificate verification — only for a self-signed test server.
#[derive(Clone)]
pub struct RedisUrl {
    url: url::Url,
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RedisUrl").field(&self.display()).finish()
    }
}

impl RedisUrl {
    /// Checks `raw` and applies `password` when the URL carries none (the
    /// `REDIS_PASSWORD` convention). Error texts never repeat the URL, which may
    /// hold a password.
    pub fn parse(raw: &str, password: Option<&str>) -> StoreResult<Self> {
        let mut url = url::Url::parse(raw.trim()).map_err(|e| {
            StoreError::Config(format!(
                "is not a valid URL ({e}); expected redis://[:password@]host[:port][/db]"
            ))
        })?;
        match url.scheme() {
            "redis" | "rediss" => {}
            other => {
                return Err(StoreError::Config(format!(
                    "must use the redis:// or rediss:// (TLS) scheme, not {other}://"
                )))
            }
        }
        match url.host_str() {
            Some(h) if !h.is_empty() => {}
            Some(_) | None => return Err(StoreError::Config("must name a host".into())),
        }
        let db = url.path().trim_matches('/');
        if !db.is_empty() && db.parse::<u16>().is_err() {
            return Err(StoreError::Config(format!(
                "has path /{db}, but the path must be a database index such as /0"
            )));
        }
        if url.query().is_some() {
            return Err(StoreError::Config(
                "must not have a query string; put the database index in the path (/0)".into(),
            ));
        }
        match url.fragment() {
            None => {}
            Some("insecure") if url.scheme() == "rediss" => {}
            Some(_) => {
                return Err(StoreError::Config(
                    "may only have the fragment #insecure, and only with rediss://".into(),
                ))
            }
        }
        if let Some(pw) = password.filter(|p| !p.is_empty()) {
            if url.password().is_none() {
                url.set_password(Some(pw)).map_err(|()| {
                    StoreError::Config("cannot carry a password (REDIS_PASSWORD)".into())
                })?;
            }
        }
        Ok(Self { url })
    }

    /// `rediss://host:port/db` without credentials, for logs.
    pub fn display(&self) -> String {
        let port = self.url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let db = self.url.path().trim_matches('/');
        format!(
            "{}://{}{}/{}",
            self.url.scheme(),
            self.url.host_str().unwrap_or_default(),
            port,
            if db.is_empty() { "0" } else { db }
        )
    }

    pub fn is_tls(&self) -> bool {
        self.url.scheme() == "rediss"
    }

    pub fn has_password(&self) -> bool {
        self.url.password().is_some()
    }
}

impl RedisStore {
    /// Prepares connections to `url`; `password` is used when the URL has none.
    ///
    /// No connection is made here (a Redis that starts after us is fine); use
    /// [`Store::ping`] for readiness. A malformed URL is a [`StoreError::Config`]
    /// that says what is wrong.
    pub async fn connect(url: &str, password: Option<&str>) -> StoreResult<Self> {
        Self::from_url(RedisUrl::parse(url, password)?)
    }

    pub fn from_url(url: RedisUrl) -> StoreResult<Self> {
        let client = redis::Client::open(url.url.as_str())
            .map_err(|e| StoreError::Config(format!("is not usable: {e}")))?;
        let manager = deadpool_redis::Manager::new_with_config(
            url.url.as_str(),
            redis::AsyncConnectionConfig::new()
                // Ours (`connect_with_retries`) ends an attempt first.
                .set_connection_timeout(Some(CONNECT_ATTEMPT + Duration::from_millis(500)))
                .set_response_timeout(Some(RESPONSE_TIMEOUT)),
        )
        .map_err(|e| StoreError::Config(format!("is not usable: {e}")))?;
        Ok(Self {
            links: Arc::new(Links {
                manager,
                display: url.display(),
                by_thread: std::sync::Mutex::new(HashMap::new()),
            }),
            client,
            cas: redis::Script::new(CAS_SCRIPT),
        })
    }

    async fn conn(&self) -> StoreResult<redis::aio::MultiplexedConnection> {
        if let Some(c) = Links::ready_or_lend(&self.links) {
            return Ok(c);
        }
        let c = self.links.connect_with_retries().await?;
        self.links.keep(c.clone());
        Ok(c)
    }

    /// Maps an error; a broken connection is forgotten (see `Links`).
    fn failed(&self, e: redis::RedisError) -> StoreError {
        if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
            || e.is_unrecoverable_error()
        {
            if let Ok(mut g) = self.links.by_thread.lock() {
                g.clear();
            }
        }
        redis_error(e)
    }
}

impl Links {
    /// This thread's connection; else another thread's, lent while this
    /// thread's own is made in the background (one attempt at a time per
    /// thread); else `None`: no connection anywhere, the caller makes one.
    fn ready_or_lend(links: &Arc<Self>) -> Option<redis::aio::MultiplexedConnection> {
        let me = std::thread::current().id();
        let mut g = links.by_thread.lock().ok()?;
        if let Some(Link::Ready(c)) = g.get(&me) {
            return Some(c.clone());
        }
        let lent = g.values().find_map(|l| match l {
            Link::Ready(c) => Some(c.clone()),
            Link::Connecting => None,
        })?;
        if !g.contains_key(&me) {
            Self::bound(&mut g);
            g.insert(me, Link::Connecting);
            let links = Arc::clone(links);
            // Spawned here, so the connection's I/O task runs on this
            // thread's runtime (an actix worker's).
            tokio::spawn(async move {
                let made = links.connect_with_retries().await;
                if let Ok(mut g) = links.by_thread.lock() {
                    match made {
                        Ok(c) => {
                            Self::bound(&mut g);
                            g.insert(me, Link::Ready(c));
                        }
                        // The next operation on the thread tries again.
                        Err(_) => {
                            if matches!(g.get(&me), Some(Link::Connecting)) {
                                g.remove(&me);
                            }
                        }
                    }
                }
            });
        }
        Some(lent)
    }

    /// Keeps `c` as this thread's connection.
    fn keep(&self, c: redis::aio::MultiplexedConnection) {
        if let Ok(mut g) = self.by_thread.lock() {
            Self::bound(&mut g);
            g.insert(std::thread::current().id(), Link::Ready(c));
        }
    }

    /// Threads come and go (a runtime's blocking pool): past a bound, start
    /// over rather than keep a connection per thread ever seen.
    fn bound(g: &mut HashMap<std::thread::ThreadId, Link>) {
        if g.len() >= MAX_THREAD_CONNECTIONS {
            g.clear();
        }
    }

    /// A new command connection: attempts of `CONNECT_ATTEMPT` each while
    /// they time out, within `CONNECT_TIMEOUT` in all; any other failure
    /// (refused, bad password) is reported at once.
    async fn connect_with_retries(&self) -> StoreResult<redis::aio::MultiplexedConnection> {
        use deadpool::managed::Manager as _;
        let unavailable = |m: String| {
            StoreError::Unavailable(format!("connecting to Redis at {}: {m}", self.display))
        };
        let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let attempt = tokio::time::timeout(left.min(CONNECT_ATTEMPT), self.manager.create());
            let timed_out = match attempt.await {
                Ok(Ok(c)) => return Ok(c),
                Ok(Err(e)) if e.is_timeout() => e.to_string(),
                Ok(Err(e)) => {
                    return Err(match connect_error(e) {
                        StoreError::Unavailable(m) => unavailable(m),
                        other => other,
                    })
                }
                Err(_) => "timed out".to_string(),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(unavailable(timed_out));
            }
        }
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn put(&self, key: &str, value: &[u8], ttl: Ttl) -> StoreResult<()> {
        let mut c = self.conn().await?;
        match ttl.map(ttl_millis) {
            None => c.set::<_, _, ()>(key, value).await,
            // A zero TTL: the record would be dead on arrival (and Redis
            // rejects PX 0).
            Some(0) => c.del::<_, ()>(key).await,
            Some(ms) => c.pset_ex::<_, _, ()>(key, value, ms).await,
        }
        .map_err(|e| self.failed(e))
    }

    async fn put_if_absent(&self, key: &str, value: &[u8], ttl: Ttl) -> StoreResult<bool> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("NX");
        match ttl.map(ttl_millis) {
            None => {}
            Some(0) => return Ok(false),
            Some(ms) => {
                cmd.arg("PX").arg(ms);
            }
        }
        let mut c = self.conn().await?;
        let reply: Option<String> = cmd.query_async(&mut c).await.map_err(|e| self.failed(e))?;
        Ok(reply.is_some())
    }

    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let mut c = self.conn().await?;
        c.get(key).await.map_err(|e| self.failed(e))
    }

    async fn delete(&self, key: &str) -> StoreResult<bool> {
        let mut c = self.conn().await?;
        let n: u64 = c.del(key).await.map_err(|e| self.failed(e))?;
        Ok(n > 0)
    }

    async fn take(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let mut c = self.conn().await?;
        redis::cmd("GETDEL")
            .arg(key)
            .query_async(&mut c)
            .await
            .map_err(|e| self.failed(e))
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &[u8],
        new: Option<&[u8]>,
        ttl: Ttl,
    ) -> StoreResult<bool> {
        let ttl_ms = ttl.map(ttl_millis);
        let (mode, value) = match (new, ttl_ms) {
            (None, _) | (Some(_), Some(0)) => ("del", &b""[..]),
            (Some(v), None) => ("set", v),
            (Some(v), Some(_)) => ("setpx", v),
        };
        let mut c = self.conn().await?;
        let swapped: i64 = self
            .cas
            .key(key)
            .arg(expected)
            .arg(mode)
            .arg(value)
            .arg(ttl_ms.unwrap_or(0))
            .invoke_async(&mut c)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(swapped == 1)
    }

    /// `SET … XX GET PX` instead of [`CAS_SCRIPT`]: a refresh grant's swap
    /// then costs Redis one native command instead of a script call, the
    /// larger part of Redis's work per refresh (bench/README.md). `PTTL` goes
    /// in the same `MULTI` so that a displaced record can be put back exactly,
    /// lifetime included; putting it back is a compare-and-swap, so a record
    /// changed again meanwhile is left as it is (see the trait's contract).
    async fn replace_if_equal(
        &self,
        key: &str,
        expected: &[u8],
        new: &[u8],
        ttl: Duration,
    ) -> StoreResult<bool> {
        let ms = ttl_millis(ttl);
        if ms == 0 {
            // A zero lifetime deletes (`compare_and_swap`'s meaning).
            return self
                .compare_and_swap(key, expected, Some(new), Some(ttl))
                .await;
        }
        let mut c = self.conn().await?;
        let (old_ttl_ms, old): (i64, Option<Vec<u8>>) = redis::pipe()
            .atomic()
            .cmd("PTTL")
            .arg(key)
            .cmd("SET")
            .arg(key)
            .arg(new)
            .arg("XX")
            .arg("GET")
            .arg("PX")
            .arg(ms)
            .query_async(&mut c)
            .await
            .map_err(|e| self.failed(e))?;
        let Some(old) = old else {
            // No record: `XX` wrote nothing.
            return Ok(false);
        };
        if old == expected {
            return Ok(true);
        }
        // `PTTL` ran in the same `MULTI` as the `SET` that displaced `old`.
        let restore_ttl = match u64::try_from(old_ttl_ms) {
            // -1: it had no expiry.
            Err(_) if old_ttl_ms == -1 => None,
            // Expiring within the millisecond (0); -2 (absent) cannot come
            // with a displaced value. The shortest lifetime that is not a
            // deletion.
            Ok(0) | Err(_) => Some(Duration::from_millis(1)),
            Ok(ms) => Some(Duration::from_millis(ms)),
        };
        self.compare_and_swap(key, new, Some(&old), restore_ttl)
            .await?;
        Ok(false)
    }

    async fn ttl(&self, key: &str) -> StoreResult<Option<Ttl>> {
        let mut c = self.conn().await?;
        let ms: i64 = c.pttl(key).await.map_err(|e| self.failed(e))?;
        Ok(match ms {
            -2 => None,
            -1 => Some(None),
            ms => Some(Some(Duration::from_millis(ms.max(0).unsigned_abs()))),
        })
    }

    async fn set_add(&self, set: &str, member: &str, ttl: Ttl) -> StoreResult<()> {
        let mut pipe = redis::pipe();
        pipe.atomic().sadd(set, member).ignore();
        if let Some(ms) = ttl.map(ttl_millis) {
            // PEXPIRE 0 deletes the set, the meaning of a zero TTL.
            pipe.pexpire(set, i64::try_from(ms).unwrap_or(i64::MAX))
                .ignore();
        }
        let mut c = self.conn().await?;
        pipe.query_async::<()>(&mut c)
            .await
            .map_err(|e| self.failed(e))
    }

    async fn set_remove(&self, set: &str, member: &str) -> StoreResult<bool> {
        let mut c = self.conn().await?;
        let n: u64 = c.srem(set, member).await.map_err(|e| self.failed(e))?;
        Ok(n > 0)
    }

    async fn set_members(&self, set: &str) -> StoreResult<Vec<String>> {
        let mut c = self.conn().await?;
        c.smembers(set).await.map_err(|e| self.failed(e))
    }

    async fn keys_with_prefix(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let pattern = format!("{}*", escape_glob(prefix));
        let mut c = self.conn().await?;
        let mut keys = std::collections::BTreeSet::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(&mut c)
                .await
                .map_err(|e| self.failed(e))?;
            // SCAN may return a key twice; the set removes duplicates.
            keys.extend(
                batch
                    .into_iter()
                    .filter_map(|k| String::from_utf8(k).ok())
                    .filter(|k| k.starts_with(prefix)),
            );
            if next == 0 {
                break;
            }
            cursor = next;
        }
        Ok(keys.into_iter().collect())
    }

    async fn publish(&self, channel: &str, payload: &[u8]) -> StoreResult<()> {
        let mut c = self.conn().await?;
        c.publish::<_, _, ()>(channel, payload)
            .await
            .map_err(|e| self.failed(e))
    }

    async fn subscribe(&self, channel: &str) -> StoreResult<BoxStream<'static, Vec<u8>>> {
        let mut pubsub = tokio::time::timeout(CONNECT_TIMEOUT, self.client.get_async_pubsub())
            .await
            .map_err(|_| StoreError::Unavailable("timed out connecting to Redis".into()))?
            .map_err(|e| self.failed(e))?;
        // Returns once Redis has confirmed the subscription, so anything
        // published after this call is delivered.
        pubsub
            .subscribe(channel)
            .await
            .map_err(|e| self.failed(e))?;
        // The stream ends when the connection's driver stops (connection lost).
        Ok(pubsub
            .into_on_message()
            .map(|msg| msg.get_payload_bytes().to_vec())
            .boxed())
    }

    async fn ping(&self) -> StoreResult<()> {
        let mut c = self.conn().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .map_err(|e| self.failed(e))
            .map(drop)
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

/// Milliseconds for `PX`/`PEXPIRE`, rounded up so a sub-millisecond TTL is not
/// mistaken for zero.
fn ttl_millis(ttl: Duration) -> u64 {
    let ms = ttl.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// Escapes Redis glob metacharacters so `prefix` matches only itself in
/// `SCAN MATCH` (`*`, `?`, `[`, `]` and the escape `\`).
pub fn escape_glob(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 4);
    for ch in prefix.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

fn redis_error(e: redis::RedisError) -> StoreError {
    // Unreachable, dropped, still loading its data, or refusing our
    // credentials: either way the store cannot serve us now.
    let unusable = matches!(
        e.kind(),
        redis::ErrorKind::AuthenticationFailed
            | redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading)
    ) || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"));
    if unusable
        || e.is_io_error()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_connection_dropped()
    {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Backend(e.to_string())
    }
}

/// A connection that cannot be set up (refused, bad password, TLS) means the
/// store is unavailable to us.
fn connect_error(e: redis::RedisError) -> StoreError {
    match redis_error(e) {
        StoreError::Backend(m) | StoreError::Config(m) | StoreError::Unavailable(m) => {
            StoreError::Unavailable(m)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(escape_glob("plain:"), "plain:");
        assert_eq!(escape_glob(r"a*b?c[d]e\f"), r"a\*b\?c\[d\]e\\f");
    }

    #[test]
    fn ttls_round_up_to_a_millisecond() {
        assert_eq!(ttl_millis(Duration::ZERO), 0);
        assert_eq!(ttl_millis(Duration::from_nanos(1)), 1);
        assert_eq!(ttl_millis(Duration::from_millis(1500)), 1500);
        assert_eq!(ttl_millis(Duration::MAX), u64::MAX);
    }

    #[test]
    fn urls_are_checked_and_the_password_is_applied_only_when_missing() {
        let u = RedisUrl::parse("redis://redis:6379/2", Some("pw")).unwrap();
        assert!(u.has_password());
        assert_eq!(u.display(), "redis://redis:6379/2");
        assert!(!format!("{u:?}").contains("pw"));
        let u = RedisUrl::parse("rediss://:inurl@cache.example#insecure", Some("other")).unwrap();
        assert!(u.is_tls());
        assert_eq!(u.url.password(), Some("inurl"));
        assert_eq!(u.display(), "rediss://cache.example/0");

        for (bad, says) in [
            ("localhost:6379", "redis://"),
            ("http://redis:6379", "not http://"),
            ("redis://redis:notaport", "invalid port"),
            ("redis://redis:6379/zero", "database index"),
            ("redis://redis:6379/0?db=1", "query"),
            ("redis:///0", "host"),
            ("redis://redis#insecure", "#insecure"),
        ] {
            match RedisUrl::parse(bad, None) {
                Err(StoreError::Config(m)) => assert!(m.contains(says), "{bad}: {m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }
}
