//! Storage for the gateway: one trait, two backends.
//!
//! * [`redis_store::RedisStore`] — shared by several instances (deadpool-redis).
//! * [`embedded::EmbeddedStore`] — on-disk, no server process, one machine.
//!
//! [`open_from_config`] picks one: `REDIS_URL` set → Redis, else the embedded
//! store at `STORE_PATH`.
//!
//! Invariants every backend keeps (checked by the conformance suite in
//! `tests/conformance.rs` against both):
//! * a record past its TTL is never returned;
//! * [`Store::take`] hands a value to exactly one caller, however many race for
//!   it ("a code is never usable twice": RFC 6749 §4.1.2);
//! * [`Store::compare_and_swap`] replaces a value only if it still holds the
//!   expected bytes, atomically (refresh-token rotation, OAuth 2.1 §4.3.1);
//! * listing by prefix never blocks the store (SCAN, never KEYS).

use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::BoxStream;

/// Storage failures. Callers map these to 503 (the store is down) without
/// leaking backend text to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store backend error: {0}")]
    Backend(String),
    #[error("invalid store configuration: {0}")]
    Config(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A record's time to live. `None` means it never expires.
pub type Ttl = Option<Duration>;

#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Writes (or overwrites) a record.
    async fn put(&self, key: &str, value: &[u8], ttl: Ttl) -> StoreResult<()>;

    /// Writes only if no live record exists; true when written.
    async fn put_if_absent(&self, key: &str, value: &[u8], ttl: Ttl) -> StoreResult<bool>;

    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;

    /// Deletes a record; true if a live one existed.
    async fn delete(&self, key: &str) -> StoreResult<bool>;

    /// Reads and deletes in one atomic step (Redis GETDEL). At most one caller
    /// ever receives a given record.
    async fn take(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;

    /// Atomically: if the live record equals `expected`, replace it with `new`
    /// (or delete it when `new` is `None`) and return true; otherwise change
    /// nothing and return false.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &[u8],
        new: Option<&[u8]>,
        ttl: Ttl,
    ) -> StoreResult<bool>;

    /// Replaces the live record with `new` (expiring after `ttl`) if it equals
    /// `expected`; true when replaced. Exactly one of several concurrent
    /// callers with the same `expected` gets true.
    ///
    /// Weaker than [`Store::compare_and_swap`] on the losing side, and only for
    /// a record whose every lost race is followed by a write that supersedes
    /// it (a refresh family: the loser revokes it). A backend may write `new`
    /// before it can compare, and put back what it displaced when it differs:
    /// until then, or if several losers raced, the record may hold a loser's
    /// `new` instead. Nothing is created where there was no record. The
    /// default is [`Store::compare_and_swap`], which never writes on a loss.
    async fn replace_if_equal(
        &self,
        key: &str,
        expected: &[u8],
        new: &[u8],
        ttl: Duration,
    ) -> StoreResult<bool> {
        self.compare_and_swap(key, expected, Some(new), Some(ttl))
            .await
    }

    /// Remaining lifetime: `Ok(None)` if absent, `Ok(Some(None))` if it never expires.
    async fn ttl(&self, key: &str) -> StoreResult<Option<Ttl>>;

    /// Adds a member to a set; the set's TTL is set to `ttl` when given.
    async fn set_add(&self, set: &str, member: &str, ttl: Ttl) -> StoreResult<()>;

    async fn set_remove(&self, set: &str, member: &str) -> StoreResult<bool>;

    async fn set_members(&self, set: &str) -> StoreResult<Vec<String>>;

    /// Keys of live records starting with `prefix`, collected in batches that do
    /// not block the store (Redis SCAN with MATCH).
    async fn keys_with_prefix(&self, prefix: &str) -> StoreResult<Vec<String>>;

    /// Publishes an event to every current subscriber of `channel`, in this
    /// process and (for Redis) every process sharing the store.
    async fn publish(&self, channel: &str, payload: &[u8]) -> StoreResult<()>;

    /// Events published on `channel` from now on. The stream ends when the
    /// connection is lost; the caller resubscribes and catches up.
    async fn subscribe(&self, channel: &str) -> StoreResult<BoxStream<'static, Vec<u8>>>;

    /// Cheap liveness check for `/ready`.
    async fn ping(&self) -> StoreResult<()>;

    /// Which backend this is (`redis`, `embedded`), for logs and health output.
    fn backend(&self) -> &'static str;
}

pub mod config;
pub mod embedded;
pub mod redis_store;

pub use config::{open_from_config, StoreConfig};
pub use embedded::EmbeddedStore;
pub use redis_store::RedisStore;
