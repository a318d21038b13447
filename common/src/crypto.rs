//! Small primitives for secrets: random tokens, hashing at rest, constant-time
//! comparison.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A URL-safe random token with `bytes` bytes of entropy.
///
/// From `rand`'s thread-local generator: a CSPRNG (ChaCha12) seeded from the
/// operating system and reseeded from it every 64 KiB, so a registration's three
/// random values cost no system call each (`OsRng` made one per value, a visible
/// share of a registration's time at the socket).
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// SHA-256 hex of a high-entropy secret (client secrets, refresh tokens,
/// registration access tokens). These are random 256-bit values, so a fast hash
/// is enough to make a stolen store useless; passwords use argon2 instead.
pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    // Into a fixed buffer: `hex::encode`'s character iterator cost more than
    // the hash itself (a refresh hashes four secrets).
    let mut out = [0u8; 64];
    if hex::encode_to_slice(digest, &mut out).is_ok() {
        if let Ok(hex) = std::str::from_utf8(&out) {
            return hex.to_owned();
        }
    }
    // Not reached (32 bytes are 64 ASCII hex digits); the same text, slower.
    hex::encode(digest)
}

/// Compare two byte strings in constant time (for equal lengths).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Check a presented secret against its stored hash in constant time.
pub fn verify_secret(presented: &str, stored_hash: &str) -> bool {
    ct_eq(hash_secret(presented).as_bytes(), stored_hash.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_secret_is_the_hex_of_sha256() {
        // FIPS 180-2 appendix B.1.
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hashed_secret_verifies_only_itself() {
        let s = random_token(32);
        let h = hash_secret(&s);
        assert!(verify_secret(&s, &h));
        assert!(!verify_secret(&format!("{s}x"), &h));
        assert_ne!(random_token(32), s);
        assert_eq!(s.len(), 43);
    }
}
