//! Signing keys: generated on first start, kept encrypted at rest in the store,
//! published at `/jwks` (current and previous, RFC 7517), rotated with overlap.
//!
//! # Keeping keys at rest
//!
//! The key set lives in the store (record [`KEYS_RECORD`]) so every instance
//! sharing a store signs with the same key. It is sealed with
//! ChaCha20-Poly1305 under a key-encryption key (KEK):
//!
//! * when `GATEWAY_JWT_SECRET` is set (the Python gateway's variable, accepted
//!   for drop-in compatibility), the KEK is HKDF-SHA256 of that secret — every
//!   instance with the same secret can open the set; required with Redis;
//! * otherwise a random 32-byte KEK is created once in a file with mode 0600
//!   beside the embedded store (`KEY_ENCRYPTION_KEY_FILE`, default
//!   `<dir of STORE_PATH>/authz-key-encryption.key`), so copying the store alone
//!   does not leak the signing key.
//!
//! A stolen store therefore yields only ciphertext. A wrong KEK fails start-up
//! with a clear message instead of silently generating a new key.
//!
//! # Rotation
//!
//! [`KeyManager::rotate`] makes a fresh key current and keeps the old one as
//! `previous`, still published for verification until the next rotation — so
//! tokens signed just before a rotation stay valid for their lifetime as long
//! as the rotation interval exceeds the access-token lifetime. Rotation runs on
//! command and every `KEY_ROTATION_INTERVAL`; the swap is a compare-and-swap, so
//! two instances never both rotate.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use arc_swap::ArcSwap;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use gateway_common::claims::{AccessClaims, ACCESS_TOKEN_TYP};
use gateway_common::clock::SharedClock;
use gateway_common::keys::{JwkSet, KeyTable};
use gateway_store::Store;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header, Validation};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::config::{Config, SigningAlg};

pub const KEYS_RECORD: &str = "authz:signing-keys";

/// One private key as stored (inside the sealed set).
#[derive(Clone, Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    alg: String,
    /// PKCS#8 PEM.
    pem: String,
    created: u64,
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredKeySet {
    current: StoredKey,
    #[serde(default)]
    previous: Option<StoredKey>,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    v: u8,
    nonce: String,
    ct: String,
}

/// The key-encryption key; `Debug` prints nothing.
struct Kek([u8; 32]);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(..)")
    }
}

impl Kek {
    fn from_secret(secret: &SecretString) -> Self {
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(
            Some(b"mcp-authz/key-encryption/v1"),
            secret.expose_secret().as_bytes(),
        );
        let mut out = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit; expand cannot fail.
        let _ = hk.expand(b"signing-keys", &mut out);
        Kek(out)
    }

    /// Reads the KEK file, or creates it with mode 0600.
    fn from_file(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = std::fs::metadata(path)?.permissions().mode();
                    if mode & 0o077 != 0 {
                        bail!(
                            "key-encryption key file {} is readable by others (mode {:o}); run chmod 600 on it",
                            path.display(),
                            mode & 0o777
                        );
                    }
                }
                let bytes = hex::decode(text.trim())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| {
                        anyhow!("key-encryption key file {} is malformed", path.display())
                    })?;
                Ok(Kek(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                use std::io::Write;
                match opts.open(path) {
                    Ok(mut f) => {
                        f.write_all(hex::encode(key).as_bytes())?;
                        f.sync_all()?;
                        Ok(Kek(key))
                    }
                    // Another process created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::from_file(path)
                    }
                    Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
                }
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// A separate key for `purpose`, so one sealed value cannot stand in for another kind.
    fn derive(&self, purpose: &str) -> [u8; 32] {
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"mcp-authz/derived/v1"), &self.0);
        let mut out = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit; expand cannot fail.
        let _ = hk.expand(purpose.as_bytes(), &mut out);
        out
    }

    fn seal(&self, set: &StoredKeySet) -> anyhow::Result<Vec<u8>> {
        let cipher = ChaCha20Poly1305::new(&Key::from(self.0));
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let plain = serde_json::to_vec(set)?;
        let ct = cipher
            .encrypt(&Nonce::from(nonce), plain.as_slice())
            .map_err(|_| anyhow!("sealing the key set failed"))?;
        Ok(serde_json::to_vec(&Sealed {
            v: 1,
            nonce: STANDARD.encode(nonce),
            ct: STANDARD.encode(ct),
        })?)
    }

    fn open(&self, raw: &[u8]) -> anyhow::Result<StoredKeySet> {
        let sealed: Sealed = serde_json::from_slice(raw).context("stored key set is malformed")?;
        let nonce = STANDARD.decode(&sealed.nonce)?;
        let ct = STANDARD.decode(&sealed.ct)?;
        if sealed.v != 1 || nonce.len() != 12 {
            bail!("stored key set has an unknown format");
        }
        let cipher = ChaCha20Poly1305::new(&Key::from(self.0));
        let nonce: [u8; 12] = nonce
            .try_into()
            .map_err(|_| anyhow!("stored key set has an unknown format"))?;
        let plain = cipher.decrypt(&Nonce::from(nonce), ct.as_slice()).map_err(|_| {
            anyhow!("cannot decrypt the stored signing keys: GATEWAY_JWT_SECRET (or the key-encryption key file) differs from the one that sealed them")
        })?;
        Ok(serde_json::from_slice(&plain)?)
    }
}

/// A key ready to sign.
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    signer: crate::signer::Signer,
    created: u64,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

#[derive(Debug)]
pub struct LoadedKeys {
    pub current: SigningKey,
    pub jwks: JwkSet,
    pub table: KeyTable,
}

#[derive(Debug)]
pub struct KeyManager {
    store: Arc<dyn Store>,
    kek: Kek,
    alg: SigningAlg,
    issuer: String,
    clock: SharedClock,
    rotation_interval: Option<Duration>,
    loaded: ArcSwap<LoadedKeys>,
}

fn alg_of(name: &str) -> anyhow::Result<Algorithm> {
    match name {
        "ES256" => Ok(Algorithm::ES256),
        "RS256" => Ok(Algorithm::RS256),
        "EdDSA" => Ok(Algorithm::EdDSA),
        other => bail!("stored key has unsupported algorithm {other}"),
    }
}

fn encoding_key(alg: Algorithm, pem: &str) -> anyhow::Result<EncodingKey> {
    Ok(match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem.as_bytes())?,
        Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes())?,
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes())?,
        other => bail!("unsupported signing algorithm {other:?}"),
    })
}

/// The public JWK of a private key, with `kid` = its RFC 7638 thumbprint.
fn public_jwk(alg: Algorithm, pem: &str) -> anyhow::Result<Jwk> {
    let key = encoding_key(alg, pem)?;
    let mut jwk = Jwk::from_encoding_key(&key, alg)?;
    let kid = jwk.thumbprint(ThumbprintHash::SHA256)?;
    jwk.common.key_id = Some(kid);
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok(jwk)
}

fn make_stored(alg: SigningAlg, pem: String, now: u64) -> anyhow::Result<StoredKey> {
    let jwk = public_jwk(alg.jwt(), &pem)?;
    Ok(StoredKey {
        kid: jwk.common.key_id.clone().unwrap_or_default(),
        alg: alg.name().to_string(),
        pem,
        created: now,
    })
}

/// A fresh private key as PKCS#8 PEM.
pub fn generate_pem(alg: SigningAlg) -> anyhow::Result<String> {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let mut rng = rand::rngs::OsRng;
    let pem = match alg {
        SigningAlg::Es256 => p256::SecretKey::random(&mut rng)
            .to_pkcs8_pem(LineEnding::LF)?
            .to_string(),
        SigningAlg::Rs256 => {
            use rsa::pkcs8::EncodePrivateKey as _;
            rsa::RsaPrivateKey::new(&mut rng, 2048)?
                .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)?
                .to_string()
        }
        SigningAlg::EdDsa => {
            use ed25519_dalek::pkcs8::EncodePrivateKey as _;
            // PKCS#8 v1 (no embedded public key): the form jsonwebtoken reads.
            let sk = ed25519_dalek::SigningKey::generate(&mut rng);
            ed25519_dalek::pkcs8::KeypairBytes {
                secret_key: sk.to_bytes(),
                public_key: None,
            }
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)?
            .to_string()
        }
    };
    Ok(pem)
}

/// Parses an imported RSA key (PKCS#1 or PKCS#8), requires ≥ 2048 bits, and
/// returns it as PKCS#8 PEM.
pub fn validate_rsa_pem(pem: &str) -> anyhow::Result<String> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPrivateKey::from_pkcs1_pem(pem)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs8_pem(pem))
        .map_err(|_| anyhow!("not an RSA private key"))?;
    if key.size() < 256 {
        bail!("RSA key shorter than 2048 bits");
    }
    Ok(key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)?.to_string())
}

impl KeyManager {
    /// Loads the key set from the store, creating (or importing) it on first
    /// start. Fails when the stored set cannot be decrypted.
    pub async fn init(
        store: Arc<dyn Store>,
        config: &Config,
        clock: SharedClock,
    ) -> anyhow::Result<Self> {
        let kek = match &config.key_encryption_secret {
            Some(secret) => Kek::from_secret(secret),
            None => Kek::from_file(&config.key_encryption_key_file)?,
        };
        let now = clock.now_secs();
        let imported = match &config.imported_rsa_pem {
            Some(pem) => Some(make_stored(
                SigningAlg::Rs256,
                validate_rsa_pem(pem.expose_secret())?,
                now,
            )?),
            None => None,
        };
        let (mut set, mut raw) = match store.get(KEYS_RECORD).await? {
            Some(raw) => (kek.open(&raw)?, raw),
            None => {
                let current = match &imported {
                    Some(k) => k.clone(),
                    None => make_stored(
                        config.jwt_algorithm,
                        generate_pem(config.jwt_algorithm)?,
                        now,
                    )?,
                };
                let set = StoredKeySet {
                    current,
                    previous: None,
                };
                let sealed = kek.seal(&set)?;
                if store.put_if_absent(KEYS_RECORD, &sealed, None).await? {
                    tracing::info!(kid = %set.current.kid, alg = %set.current.alg, "created signing key");
                    (set, sealed)
                } else {
                    // Another instance created it first.
                    let raw = store
                        .get(KEYS_RECORD)
                        .await?
                        .ok_or_else(|| anyhow!("key set vanished"))?;
                    (kek.open(&raw)?, raw)
                }
            }
        };
        // A newly imported key (or a changed JWT_ALGORITHM) becomes current; the old one stays for verification.
        let wanted_alg = config.jwt_algorithm.name();
        let replacement = match &imported {
            Some(k) if k.kid != set.current.kid => Some(k.clone()),
            Some(_) => None,
            None if set.current.alg != wanted_alg => Some(make_stored(
                config.jwt_algorithm,
                generate_pem(config.jwt_algorithm)?,
                now,
            )?),
            None => None,
        };
        if let Some(new_current) = replacement {
            let next = StoredKeySet {
                previous: Some(set.current.clone()),
                current: new_current,
            };
            let sealed = kek.seal(&next)?;
            if store
                .compare_and_swap(KEYS_RECORD, &raw, Some(&sealed), None)
                .await?
            {
                tracing::info!(kid = %next.current.kid, "switched signing key");
                set = next;
                raw = sealed;
            } else if let Some(latest) = store.get(KEYS_RECORD).await? {
                set = kek.open(&latest)?;
                raw = latest;
            }
        }
        let _ = raw;
        let loaded = build(&set)?;
        Ok(Self {
            store,
            kek,
            alg: config.jwt_algorithm,
            issuer: config.issuer.clone(),
            clock,
            rotation_interval: config.key_rotation_interval,
            loaded: ArcSwap::from_pointee(loaded),
        })
    }

    /// Encrypts a small secret (an upstream identity provider's token) under a
    /// key derived from the key-encryption key for `purpose` (HKDF-SHA256), so
    /// it is never at rest in the clear and never readable with the signing-key seal.
    pub fn seal_bytes(&self, purpose: &str, plain: &[u8]) -> anyhow::Result<String> {
        let cipher = ChaCha20Poly1305::new(&Key::from(self.kek.derive(purpose)));
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(&Nonce::from(nonce), plain)
            .map_err(|_| anyhow!("sealing failed"))?;
        Ok(format!(
            "{}.{}",
            STANDARD.encode(nonce),
            STANDARD.encode(ct)
        ))
    }

    /// Opens what [`KeyManager::seal_bytes`] sealed for the same `purpose`.
    pub fn open_bytes(&self, purpose: &str, sealed: &str) -> anyhow::Result<Vec<u8>> {
        let (n, c) = sealed
            .split_once('.')
            .ok_or_else(|| anyhow!("sealed value is malformed"))?;
        let nonce: [u8; 12] = STANDARD
            .decode(n)?
            .try_into()
            .map_err(|_| anyhow!("sealed value is malformed"))?;
        let cipher = ChaCha20Poly1305::new(&Key::from(self.kek.derive(purpose)));
        cipher
            .decrypt(&Nonce::from(nonce), STANDARD.decode(c)?.as_slice())
            .map_err(|_| anyhow!("cannot open the sealed value"))
    }

    pub fn current(&self) -> Arc<LoadedKeys> {
        self.loaded.load_full()
    }

    pub fn jwks(&self) -> JwkSet {
        self.loaded.load().jwks.clone()
    }

    /// Signs access-token claims: header `typ: at+jwt` (RFC 9068 §2.1) and `kid`.
    pub fn sign(&self, claims: &AccessClaims) -> anyhow::Result<String> {
        let keys = self.loaded.load();
        let mut header = Header::new(keys.current.alg);
        header.typ = Some(ACCESS_TOKEN_TYP.to_string());
        header.kid = Some(keys.current.kid.clone());
        keys.current.signer.sign(&header, claims)
    }

    /// Verifies one of our own access tokens (signature by a published key with
    /// its pinned algorithm, `typ`, issuer). Expiry is left to the caller, who
    /// holds the clock.
    pub fn verify(&self, token: &str) -> Option<AccessClaims> {
        if token.len() > 8192 {
            return None;
        }
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.typ.as_deref() != Some(ACCESS_TOKEN_TYP) {
            return None;
        }
        let keys = self.loaded.load();
        let key = keys.table.get(header.kid.as_deref()?)?;
        if key.alg != header.alg {
            return None;
        }
        let mut v = Validation::new(key.alg);
        v.validate_exp = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        v.set_issuer(&[self.issuer.as_str()]);
        jsonwebtoken::decode::<AccessClaims>(token, &key.key, &v)
            .ok()
            .map(|d| d.claims)
    }

    /// Re-reads the set (another instance may have rotated).
    pub async fn reload(&self) -> anyhow::Result<()> {
        if let Some(raw) = self.store.get(KEYS_RECORD).await? {
            let set = self.kek.open(&raw)?;
            if set.current.kid != self.loaded.load().current.kid {
                self.loaded.store(Arc::new(build(&set)?));
            }
        }
        Ok(())
    }

    /// Makes a fresh key current; the old one stays published as `previous`.
    pub async fn rotate(&self) -> anyhow::Result<String> {
        let raw = self
            .store
            .get(KEYS_RECORD)
            .await?
            .ok_or_else(|| anyhow!("no key set in the store"))?;
        let set = self.kek.open(&raw)?;
        let next = StoredKeySet {
            previous: Some(set.current),
            current: make_stored(self.alg, generate_pem(self.alg)?, self.clock.now_secs())?,
        };
        if !self
            .store
            .compare_and_swap(KEYS_RECORD, &raw, Some(&self.kek.seal(&next)?), None)
            .await?
        {
            // Someone else rotated at the same moment; adopt theirs.
            self.reload().await?;
            return Ok(self.loaded.load().current.kid.clone());
        }
        let kid = next.current.kid.clone();
        self.loaded.store(Arc::new(build(&next)?));
        tracing::info!(kid = %kid, "rotated signing key");
        Ok(kid)
    }

    /// Rotates when the current key is older than the configured interval.
    pub async fn rotate_if_due(&self) -> anyhow::Result<bool> {
        let Some(interval) = self.rotation_interval else {
            return Ok(false);
        };
        self.reload().await?;
        let created = self.loaded.load().current.created;
        if self.clock.now_secs() >= created.saturating_add(interval.as_secs()) {
            self.rotate().await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Background upkeep: pick up rotations by other instances and rotate on schedule.
    pub fn spawn_upkeep(self: Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = self.reload().await {
                    tracing::warn!(error = %e, "reloading signing keys failed");
                }
                if let Err(e) = self.rotate_if_due().await {
                    tracing::warn!(error = %e, "signing key upkeep failed");
                }
            }
        })
    }
}

fn build(set: &StoredKeySet) -> anyhow::Result<LoadedKeys> {
    let alg = alg_of(&set.current.alg)?;
    let current = SigningKey {
        kid: set.current.kid.clone(),
        alg,
        signer: crate::signer::Signer::from_pem(alg, &set.current.pem)?,
        created: set.current.created,
    };
    let mut keys = vec![with_kid(
        public_jwk(alg, &set.current.pem)?,
        &set.current.kid,
        alg,
    )];
    if let Some(prev) = &set.previous {
        let palg = alg_of(&prev.alg)?;
        keys.push(with_kid(public_jwk(palg, &prev.pem)?, &prev.kid, palg));
    }
    let jwks = JwkSet { keys };
    let table = KeyTable::from_jwks(&jwks);
    Ok(LoadedKeys {
        current,
        jwks,
        table,
    })
}

fn with_kid(mut jwk: Jwk, kid: &str, alg: Algorithm) -> Jwk {
    jwk.common.key_id = Some(kid.to_string());
    jwk.common.key_algorithm = Some(alg.into());
    jwk
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_generates_a_key_that_signs_and_publishes() {
        for alg in [SigningAlg::Es256, SigningAlg::EdDsa, SigningAlg::Rs256] {
            let pem = generate_pem(alg).unwrap();
            let stored = make_stored(alg, pem, 1).unwrap();
            let set = StoredKeySet {
                current: stored,
                previous: None,
            };
            let loaded = build(&set).unwrap();
            assert_eq!(loaded.jwks.keys.len(), 1);
            assert!(loaded.table.get(&loaded.current.kid).is_some(), "{alg:?}");
            let json = serde_json::to_string(&loaded.jwks).unwrap();
            assert!(
                !json.contains("\"d\""),
                "private part published for {alg:?}"
            );
        }
    }

    #[test]
    fn sealed_set_opens_only_with_the_same_kek() {
        let set = StoredKeySet {
            current: make_stored(
                SigningAlg::Es256,
                generate_pem(SigningAlg::Es256).unwrap(),
                1,
            )
            .unwrap(),
            previous: None,
        };
        let a = Kek::from_secret(&SecretString::from("a".repeat(32)));
        let b = Kek::from_secret(&SecretString::from("b".repeat(32)));
        let sealed = a.seal(&set).unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("PRIVATE KEY"));
        assert_eq!(a.open(&sealed).unwrap().current.kid, set.current.kid);
        assert!(b
            .open(&sealed)
            .err()
            .unwrap()
            .to_string()
            .contains("GATEWAY_JWT_SECRET"));
    }

    #[test]
    fn kek_file_is_created_0600_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/kek");
        let a = Kek::from_file(&path).unwrap();
        let b = Kek::from_file(&path).unwrap();
        assert_eq!(a.0, b.0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(Kek::from_file(&path).is_err());
        }
    }

    #[test]
    fn imported_pkcs1_rsa_key_is_accepted_and_short_keys_refused() {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let pkcs1 = key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        let pkcs8 = validate_rsa_pem(&pkcs1).unwrap();
        assert!(pkcs8.contains("BEGIN PRIVATE KEY"));
        let small = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024).unwrap();
        assert!(
            validate_rsa_pem(&small.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap()).is_err()
        );
    }
}
