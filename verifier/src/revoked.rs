//! The in-memory set of revoked token ids (`jti`), kept current by the feed.
//!
//! Ids are stored as a keyed 64-bit hash with the token's `exp`, so a million
//! revoked ids cost about 35 MB whatever their length. A hash collision can only
//! refuse a valid token (about one chance in 10^13 per token with a million
//! entries), never accept a revoked one. Entries go once their token could no
//! longer be accepted anyway (`exp` + leeway).

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::RwLock;

/// The already-uniform 64-bit id hash, used as its own table hash.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
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

type IdTable = HashMap<u64, u64, BuildHasherDefault<IdentityHasher>>;

#[derive(Debug)]
pub struct RevokedSet {
    /// Keyed per process so nobody can aim collisions at a chosen token.
    key: RandomState,
    ids: RwLock<IdTable>,
}

impl Default for RevokedSet {
    fn default() -> Self {
        Self {
            key: RandomState::new(),
            ids: RwLock::new(IdTable::default()),
        }
    }
}

impl RevokedSet {
    pub fn id_hash(&self, jti: &str) -> u64 {
        self.key.hash_one(jti)
    }

    pub fn contains_hash(&self, id: u64) -> bool {
        match self.ids.read() {
            Ok(ids) => ids.contains_key(&id),
            // A writer panicked mid-update: trust nothing.
            Err(_) => true,
        }
    }

    /// A token's own id or its grant's, under one lock (the hot path).
    pub fn contains_either(&self, id: u64, grant: Option<u64>) -> bool {
        match self.ids.read() {
            Ok(ids) => ids.contains_key(&id) || grant.is_some_and(|g| ids.contains_key(&g)),
            Err(_) => true,
        }
    }

    pub fn contains(&self, jti: &str) -> bool {
        self.contains_hash(self.id_hash(jti))
    }

    /// Adds one id; true if it was new.
    pub fn insert(&self, jti: &str, exp: u64) -> bool {
        let id = self.id_hash(jti);
        match self.ids.write() {
            Ok(mut ids) => ids.insert(id, exp).is_none(),
            Err(_) => false,
        }
    }

    /// Adds many ids under one lock (a snapshot). Revocation is never undone,
    /// so a snapshot is merged, not swapped in.
    pub fn extend<'a>(&self, events: impl IntoIterator<Item = (&'a str, u64)>) -> usize {
        let hashed: Vec<(u64, u64)> = events
            .into_iter()
            .map(|(jti, exp)| (self.id_hash(jti), exp))
            .collect();
        self.extend_hashed(hashed)
    }

    /// [`Self::extend`] for ids already hashed with [`Self::id_hash`].
    pub fn extend_hashed(&self, hashed: Vec<(u64, u64)>) -> usize {
        let Ok(mut ids) = self.ids.write() else {
            return 0;
        };
        ids.reserve(hashed.len());
        let before = ids.len();
        ids.extend(hashed);
        ids.len() - before
    }

    /// Drops ids whose tokens expired more than `leeway` seconds before `now`.
    pub fn prune(&self, now: u64, leeway: u64) -> usize {
        let Ok(mut ids) = self.ids.write() else {
            return 0;
        };
        let before = ids.len();
        ids.retain(|_, exp| exp.saturating_add(leeway) > now);
        let removed = before - ids.len();
        if removed > 0 && ids.capacity() > 4 * ids.len().max(1024) {
            ids.shrink_to_fit();
        }
        removed
    }

    pub fn len(&self) -> usize {
        self.ids.read().map(|ids| ids.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_remembered_until_expiry_plus_leeway() {
        let set = RevokedSet::default();
        assert!(set.insert("a", 100));
        assert!(!set.insert("a", 100));
        assert_eq!(set.extend([("b", 200), ("c", 300)]), 2);
        assert!(set.contains("a") && set.contains("b") && !set.contains("z"));
        assert_eq!(set.prune(120, 10), 1);
        assert!(!set.contains("a") && set.contains("b"));
        assert_eq!(set.len(), 2);
    }
}
