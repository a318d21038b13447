//! Verified-token cache: a repeated token costs a SHA-256 and a lookup instead
//! of a signature check.
//!
//! Invariants:
//! * keyed by SHA-256 of the token, so the map never holds a token;
//! * bounded: at most `capacity` entries (sharded; a full shard first drops
//!   expired entries, then an arbitrary one);
//! * never serves an entry at or past its token's `exp` (no leeway here: a token
//!   inside its leeway window is simply verified again);
//! * revocation purges the entries for the id — and callers still check the
//!   revoked set on every hit, which closes the race of a verification that
//!   finished just after the purge.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::identity::Verified;

const SHARDS: usize = 16;

/// SHA-256 of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    pub fn of(token: impl AsRef<[u8]>) -> Self {
        Self(Sha256::digest(token.as_ref()).into())
    }

    /// One byte of the hash (shard selection).
    pub(crate) fn byte(&self, i: usize) -> u8 {
        self.0[i % 32]
    }

    fn prefix(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_le_bytes(b)
    }
}

impl Hash for TokenKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already a cryptographic hash: its first 8 bytes are a fine table hash.
        state.write_u64(self.prefix());
    }
}

/// The table hash of a [`TokenKey`]: its first 8 bytes as they are.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashMap<TokenKey, Arc<Verified>, BuildHasherDefault<PassThrough>>;

#[derive(Debug)]
pub struct TokenCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
}

impl TokenCache {
    /// `capacity` 0 disables caching.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
        }
    }

    fn shard(&self, key: &TokenKey) -> &Mutex<Shard> {
        // The table uses the low bits of the prefix; pick the shard from the high byte.
        &self.shards[usize::from(key.0[31]) % SHARDS]
    }

    /// The cached verification, unless the token has reached `exp`.
    pub fn get(&self, key: &TokenKey, now: u64) -> Option<Arc<Verified>> {
        let mut shard = self.shard(key).lock().ok()?;
        let hit = shard.get(key)?;
        if now >= hit.exp {
            shard.remove(key);
            return None;
        }
        Some(Arc::clone(hit))
    }

    pub fn insert(&self, key: TokenKey, value: Arc<Verified>, now: u64) {
        if self.per_shard == 0 || now >= value.exp {
            return;
        }
        let Ok(mut shard) = self.shard(&key).lock() else {
            return;
        };
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.retain(|_, v| now < v.exp);
            if shard.len() >= self.per_shard {
                if let Some(victim) = shard.keys().next().copied() {
                    shard.remove(&victim);
                }
            }
        }
        shard.insert(key, value);
    }

    /// Drops every entry for a revoked id.
    pub fn purge_id(&self, id_hash: u64) {
        for shard in &self.shards {
            if let Ok(mut shard) = shard.lock() {
                shard.retain(|_, v| v.id_hash != id_hash && v.grant_hash != Some(id_hash));
            }
        }
    }

    pub fn clear(&self) {
        for shard in &self.shards {
            if let Ok(mut shard) = shard.lock() {
                shard.clear();
            }
        }
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.len()).unwrap_or(0))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::tests::verified;

    #[test]
    fn entries_expire_at_exp_and_are_purged_by_id() {
        let cache = TokenCache::new(100);
        let k = TokenKey::of("t1");
        cache.insert(k, verified(7, 100), 50);
        assert!(cache.get(&k, 99).is_some());
        assert!(cache.get(&k, 100).is_none());
        assert!(cache.is_empty());
        cache.insert(k, verified(7, 100), 50);
        cache.insert(TokenKey::of("t2"), verified(8, 100), 50);
        cache.purge_id(7);
        assert!(cache.get(&k, 60).is_none());
        assert!(cache.get(&TokenKey::of("t2"), 60).is_some());
        // an already expired token is never stored
        cache.insert(TokenKey::of("t3"), verified(9, 10), 50);
        assert!(cache.get(&TokenKey::of("t3"), 5).is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = TokenCache::new(64);
        for i in 0..10_000 {
            cache.insert(TokenKey::of(i.to_string()), verified(i, 1_000), 1);
        }
        assert!(cache.len() <= 64, "{}", cache.len());
        let disabled = TokenCache::new(0);
        disabled.insert(TokenKey::of("x"), verified(1, 1_000), 1);
        assert!(disabled.is_empty());
    }
}
