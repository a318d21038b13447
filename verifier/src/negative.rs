//! Refused-token cache: a token that failed verification for a reason that
//! cannot change (its signature, its shape, its issuer) is refused again for
//! the cost of a lookup instead of a signature check. A client retrying a
//! broken token, or someone replaying one, then costs about what a valid
//! cached token costs.
//!
//! Invariants:
//! * keyed by SHA-256 of the exact token ([`TokenKey`]), so the map never
//!   holds a token, and a token differing in one byte is a different entry;
//! * bounded: at most `capacity` entries, evicted first in, first out (a ring
//!   of keys beside the map), so a flood of distinct forged tokens costs O(1)
//!   per insertion and only pushes older entries out;
//! * only verdicts that a new key set cannot change are kept for good: an
//!   expired token stays expired, a malformed one malformed; a bad signature
//!   is about the key its `kid` named, so [`NegativeCache::clear`] runs
//!   whenever the key set is replaced. An unknown `kid` or a token not valid
//!   yet is never kept (a key may be published, time passes).

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Mutex;

use crate::cache::{PassThrough, TokenKey};
use crate::jwt::TokenError;

const SHARDS: usize = 8;

struct Shard {
    map: HashMap<TokenKey, TokenError, BuildHasherDefault<PassThrough>>,
    /// Insertion order; `ring[next]` is the oldest entry once the ring is full.
    ring: Vec<TokenKey>,
    next: usize,
}

#[derive(Debug)]
pub struct NegativeCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("len", &self.map.len())
            .finish()
    }
}

impl NegativeCache {
    /// `capacity` 0 disables it.
    pub fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS);
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::default(),
                        ring: Vec::new(),
                        next: 0,
                    })
                })
                .collect(),
            per_shard,
        }
    }

    /// Whether a verdict about this token may be kept (see the module doc).
    pub fn keeps(e: TokenError) -> bool {
        match e {
            TokenError::Malformed
            | TokenError::MissingKid
            | TokenError::AlgorithmMismatch
            | TokenError::WrongType
            | TokenError::BadSignature
            | TokenError::WrongIssuer
            | TokenError::Expired => true,
            TokenError::UnknownKid | TokenError::NotYetValid => false,
        }
    }

    fn shard(&self, key: &TokenKey) -> &Mutex<Shard> {
        &self.shards[usize::from(key.byte(30)) % SHARDS]
    }

    /// The earlier verdict about this exact token, if one is kept.
    pub fn get(&self, key: &TokenKey) -> Option<TokenError> {
        if self.per_shard == 0 {
            return None;
        }
        let shard = self.shard(key).lock().ok()?;
        shard.map.get(key).copied()
    }

    /// Keeps a verdict (ignored unless [`NegativeCache::keeps`] it).
    pub fn insert(&self, key: TokenKey, e: TokenError) {
        if self.per_shard == 0 || !Self::keeps(e) {
            return;
        }
        let Ok(mut shard) = self.shard(&key).lock() else {
            return;
        };
        if shard.map.insert(key, e).is_some() {
            return;
        }
        if shard.ring.len() < self.per_shard {
            shard.ring.push(key);
        } else {
            let slot = shard.next;
            let oldest = std::mem::replace(&mut shard.ring[slot], key);
            shard.map.remove(&oldest);
            shard.next = (slot + 1) % self.per_shard;
        }
    }

    /// Forgets everything (the key set changed).
    pub fn clear(&self) {
        for shard in &self.shards {
            if let Ok(mut s) = shard.lock() {
                s.map.clear();
                s.ring.clear();
                s.next = 0;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.map.len()).unwrap_or(0))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_lasting_verdicts_about_the_exact_token() {
        let c = NegativeCache::new(64);
        c.insert(TokenKey::of("a.b.c"), TokenError::BadSignature);
        assert_eq!(
            c.get(&TokenKey::of("a.b.c")),
            Some(TokenError::BadSignature)
        );
        assert_eq!(c.get(&TokenKey::of("a.b.d")), None, "one byte differs");
        c.insert(TokenKey::of("x"), TokenError::UnknownKid);
        c.insert(TokenKey::of("y"), TokenError::NotYetValid);
        assert_eq!(c.get(&TokenKey::of("x")), None, "a key may be published");
        assert_eq!(c.get(&TokenKey::of("y")), None, "time passes");
        c.clear();
        assert!(c.is_empty());
    }

    #[test]
    fn stays_bounded_and_evicts_the_oldest() {
        let c = NegativeCache::new(64);
        for i in 0..10_000 {
            c.insert(TokenKey::of(i.to_string()), TokenError::BadSignature);
        }
        assert!(c.len() <= 64, "{}", c.len());
        assert!(c.get(&TokenKey::of("9999")).is_some(), "the newest is kept");
        assert!(c.get(&TokenKey::of("0")).is_none(), "the oldest is gone");
        let off = NegativeCache::new(0);
        off.insert(TokenKey::of("x"), TokenError::BadSignature);
        assert!(off.get(&TokenKey::of("x")).is_none());
    }
}
