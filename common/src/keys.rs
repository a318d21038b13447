//! Key sets: the JWKS the authz-server publishes and the per-`kid` table the
//! verifier compiles from it.

use std::collections::HashMap;

pub use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};

/// One verification key with its algorithm pinned (a token whose header names a
/// different `alg` is refused: RFC 8725 §3.1).
#[derive(Clone)]
pub struct VerificationKey {
    pub alg: Algorithm,
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("alg", &self.alg)
            .finish()
    }
}

/// `kid` → key. Keys without `kid` or without a usable algorithm are skipped.
#[derive(Debug, Clone, Default)]
pub struct KeyTable {
    keys: HashMap<String, VerificationKey>,
}

impl KeyTable {
    pub fn from_jwks(set: &JwkSet) -> Self {
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            let Some(alg) = jwk_algorithm(jwk) else {
                continue;
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid, VerificationKey { alg, key });
            }
        }
        Self { keys }
    }

    pub fn get(&self, kid: &str) -> Option<&VerificationKey> {
        self.keys.get(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

fn jwk_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    use jsonwebtoken::jwk::KeyAlgorithm as K;
    match jwk.common.key_algorithm? {
        K::ES256 => Some(Algorithm::ES256),
        K::ES384 => Some(Algorithm::ES384),
        K::RS256 => Some(Algorithm::RS256),
        K::RS384 => Some(Algorithm::RS384),
        K::RS512 => Some(Algorithm::RS512),
        K::PS256 => Some(Algorithm::PS256),
        K::EdDSA => Some(Algorithm::EdDSA),
        // Symmetric keys are never published and never accepted from a JWKS.
        _ => None,
    }
}
