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
//! # Rotation without a 401 window
//!
//! The set holds the `current` key (signs), the `next` key (published in
//! `/jwks`, not yet signing) and `retired` keys (published, no longer
//! signing, each until every token it signed has expired). A rotation
//! promotes `next` only once it has been published for `KEY_PUBLISH_LEAD`
//! (at least the verifiers' `JWKS_REFRESH_INTERVAL` plus this server's
//! `KEY_RELOAD_INTERVAL`), so every verifier holds a key before the first
//! token it signs; the key it replaces stays published for the access-token
//! lifetime (plus the reload interval and clock leeway), however many
//! rotations follow. Rotation runs on command and every
//! `KEY_ROTATION_INTERVAL`; every change is a compare-and-swap, so two
//! instances never both rotate.

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

use crate::config::{Config, KeyConfig, SigningAlg};

pub const KEYS_RECORD: &str = "authz:signing-keys";

/// One private key as stored (inside the sealed set).
#[derive(Clone, Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    alg: String,
    /// PKCS#8 PEM.
    pem: String,
    /// When it was created, which is when it was first published.
    created: u64,
    /// When it signs (is or becomes current); `None` for a `next` key no
    /// rotation has asked for yet. Absent in sets written before rotation
    /// lead times: such a current key signs since `created`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signs_from: Option<u64>,
}

impl StoredKey {
    fn signs_since(&self) -> u64 {
        self.signs_from.unwrap_or(self.created)
    }
}

/// A key that no longer signs, published until `until`.
#[derive(Clone, Serialize, Deserialize)]
struct RetiredKey {
    #[serde(flatten)]
    key: StoredKey,
    until: u64,
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredKeySet {
    current: StoredKey,
    /// Written by versions with one previous key; read once and moved to `retired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous: Option<StoredKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next: Option<StoredKey>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    retired: Vec<RetiredKey>,
}

/// How the set moves on; see [`advance`].
#[derive(Debug, Clone, Copy)]
struct Schedule {
    lead: u64,
    /// How long after it stops signing a key may still have signed a token
    /// that has not expired: token lifetime + reload interval + leeway.
    retire_after: u64,
    interval: Option<u64>,
}

/// Clock skew a verifier tolerates on `exp` (its `CLOCK_LEEWAY` default is 30 s).
const RETIRE_LEEWAY: u64 = 60;

/// One step of the key set's life at time `now`, as a pure function of the
/// set (`fresh` makes a key when one is needed). Returns the new set, or
/// `None` when nothing changes. Steps: a legacy `previous` becomes retired;
/// a `next` whose time has come becomes current (the old current retired);
/// a scheduled rotation asks `next` to sign once it has been published for
/// the lead time; a missing (or wrong-algorithm) `next` is created; retired
/// keys past their time are dropped.
fn advance(
    mut set: StoredKeySet,
    now: u64,
    sched: Schedule,
    wanted_alg: &str,
    fresh: &mut dyn FnMut() -> anyhow::Result<StoredKey>,
) -> anyhow::Result<Option<StoredKeySet>> {
    let mut changed = false;
    if let Some(prev) = set.previous.take() {
        set.retired.push(RetiredKey {
            key: prev,
            until: now + sched.retire_after,
        });
        changed = true;
    }
    if let Some(interval) = sched.interval {
        if let Some(next) = set.next.as_mut() {
            if next.signs_from.is_none() && now >= set.current.signs_since() + interval {
                next.signs_from = Some(now.max(next.created + sched.lead));
                changed = true;
            }
        }
    }
    if set
        .next
        .as_ref()
        .and_then(|n| n.signs_from)
        .is_some_and(|t| t <= now)
    {
        if let Some(next) = set.next.take() {
            let old = std::mem::replace(&mut set.current, next);
            set.retired.push(RetiredKey {
                key: old,
                until: now + sched.retire_after,
            });
            changed = true;
        }
    }
    if set.next.as_ref().is_none_or(|n| n.alg != wanted_alg) {
        set.next = Some(fresh()?);
        changed = true;
    }
    let before = set.retired.len();
    set.retired.retain(|r| r.until > now);
    changed |= set.retired.len() != before;
    Ok(changed.then_some(set))
}

/// What a rotation on command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The key that signs after the rotation.
    pub kid: String,
    /// From when it signs (now, or once it has been published for the lead time).
    pub signs_from: u64,
    /// Whether it already signs.
    pub immediate: bool,
}

impl std::fmt::Display for Rotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.immediate {
            write!(f, "{}", self.kid)
        } else {
            write!(
                f,
                "{} (published now in /jwks; signs from unix time {}, once every verifier has it)",
                self.kid, self.signs_from
            )
        }
    }
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
    /// The `next` key once a rotation has set its time: it signs from then on.
    pub next: Option<(SigningKey, u64)>,
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
    schedule: Schedule,
    reload_interval: Duration,
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
        signs_from: None,
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
            use aws_lc_rs::encoding::AsDer as _;
            let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
            let der = key
                .as_der()
                .map_err(|_| anyhow::anyhow!("RSA key encoding failed"))?;
            p256::pkcs8::der::pem::encode_string("PRIVATE KEY", LineEnding::LF, der.as_ref())
                .map_err(|e| anyhow::anyhow!("RSA key encoding failed: {e}"))?
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

/// Reads an existing key-encryption key file (never creates one).
fn existing_kek_file(cfg: &KeyConfig) -> anyhow::Result<Option<(Kek, std::path::PathBuf)>> {
    for path in std::iter::once(&cfg.key_encryption_key_file).chain(cfg.legacy_key_file.iter()) {
        if path.exists() {
            return Ok(Some((Kek::from_file(path)?, path.clone())));
        }
    }
    Ok(None)
}

/// The key-encryption key for a store that already holds `raw`, and the
/// opened set. With `GATEWAY_JWT_SECRET` set but the set sealed by the key
/// file (the secret was added after the first start, as `generate-secrets`
/// does), the set is opened with the file and re-sealed under the secret
/// (`resealed` is then the new sealed value to store).
fn open_existing(
    cfg: &KeyConfig,
    raw: &[u8],
) -> anyhow::Result<(Kek, StoredKeySet, Option<Vec<u8>>)> {
    match &cfg.key_encryption_secret {
        Some(secret) => {
            let kek = Kek::from_secret(secret);
            match kek.open(raw) {
                Ok(set) => Ok((kek, set, None)),
                Err(secret_err) => {
                    let Some((file_kek, path)) = existing_kek_file(cfg)? else {
                        return Err(secret_err);
                    };
                    let Ok(set) = file_kek.open(raw) else {
                        return Err(secret_err);
                    };
                    tracing::info!(file = %path.display(), "re-sealing the signing keys under GATEWAY_JWT_SECRET (they were sealed with the key file)");
                    let resealed = kek.seal(&set)?;
                    Ok((kek, set, Some(resealed)))
                }
            }
        }
        None => match existing_kek_file(cfg)? {
            Some((kek, _)) => {
                let set = kek.open(raw)?;
                Ok((kek, set, None))
            }
            None => bail!(
                "the store holds signing keys sealed with a key-encryption key, but {} is missing and GATEWAY_JWT_SECRET is not set: restore that file (or set GATEWAY_JWT_SECRET to the secret that sealed them)",
                cfg.key_encryption_key_file.display()
            ),
        },
    }
}

/// What [`reseal`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reseal {
    /// The store holds no key set.
    NoKeys,
    /// The set is now sealed under the new secret.
    Resealed,
    /// Sealed with this key file (no secret yet): the next start re-seals it
    /// under the secret, reading the file once.
    SealedByFile(std::path::PathBuf),
}

/// Before `GATEWAY_JWT_SECRET` changes to `new_secret`: re-seals the stored
/// key set under it (opened with the current configuration), so no
/// documented command can leave the keys sealed under a lost key.
pub async fn reseal(
    store: &dyn Store,
    cfg: &KeyConfig,
    new_secret: &str,
) -> anyhow::Result<Reseal> {
    let Some(raw) = store.get(KEYS_RECORD).await? else {
        return Ok(Reseal::NoKeys);
    };
    let new = Kek::from_secret(&SecretString::from(new_secret.to_string()));
    if new.open(&raw).is_ok() {
        return Ok(Reseal::Resealed);
    }
    if cfg.key_encryption_secret.is_none() {
        let Some((kek, path)) = existing_kek_file(cfg)? else {
            bail!(
                "the store holds signing keys but the key-encryption key file {} is missing: restore it first",
                cfg.key_encryption_key_file.display()
            );
        };
        kek.open(&raw)?;
        return Ok(Reseal::SealedByFile(path));
    }
    let (_, set, _) = open_existing(cfg, &raw)?;
    if !store
        .compare_and_swap(KEYS_RECORD, &raw, Some(&new.seal(&set)?), None)
        .await?
    {
        bail!("the key set changed while it was being re-sealed (a rotation?); run again");
    }
    Ok(Reseal::Resealed)
}

impl KeyManager {
    /// Loads the key set from the store, creating (or importing) it on first
    /// start. Fails when the stored set cannot be decrypted.
    pub async fn init(
        store: Arc<dyn Store>,
        config: &Config,
        clock: SharedClock,
    ) -> anyhow::Result<Self> {
        Self::load(store, &config.keys, &config.issuer, clock, true).await
    }

    /// Opens the key set a gateway has created, for `rotate-keys`: needs no
    /// issuer, and creates nothing (no key set, no key file) when there is none.
    pub async fn open(
        store: Arc<dyn Store>,
        config: &KeyConfig,
        clock: SharedClock,
    ) -> anyhow::Result<Self> {
        Self::load(store, config, "", clock, false).await
    }

    async fn load(
        store: Arc<dyn Store>,
        config: &KeyConfig,
        issuer: &str,
        clock: SharedClock,
        create: bool,
    ) -> anyhow::Result<Self> {
        let now = clock.now_secs();
        let schedule = Schedule {
            lead: config.publish_lead.as_secs(),
            retire_after: config.token_lifetime.as_secs()
                + config.reload_interval.as_secs()
                + RETIRE_LEEWAY,
            interval: config.key_rotation_interval.map(|d| d.as_secs()),
        };
        let imported = match &config.imported_rsa_pem {
            Some(pem) => Some(make_stored(
                SigningAlg::Rs256,
                crate::signer::validate_rsa_pem(pem.expose_secret())?,
                now,
            )?),
            None => None,
        };
        let (kek, mut set, mut raw) = match store.get(KEYS_RECORD).await? {
            Some(raw) => {
                let (kek, set, resealed) = open_existing(config, &raw)?;
                match resealed {
                    Some(sealed) => {
                        if store
                            .compare_and_swap(KEYS_RECORD, &raw, Some(&sealed), None)
                            .await?
                        {
                            (kek, set, sealed)
                        } else {
                            let raw = store
                                .get(KEYS_RECORD)
                                .await?
                                .ok_or_else(|| anyhow!("key set vanished"))?;
                            let set = kek.open(&raw)?;
                            (kek, set, raw)
                        }
                    }
                    None => (kek, set, raw),
                }
            }
            None if !create => bail!(
                "the store holds no signing keys yet: start the gateway once (it creates them), then rotate"
            ),
            None => {
                let kek = match &config.key_encryption_secret {
                    Some(secret) => Kek::from_secret(secret),
                    None => match existing_kek_file(config)? {
                        Some((kek, _)) => kek,
                        None => Kek::from_file(&config.key_encryption_key_file)?,
                    },
                };
                let mut current = match &imported {
                    Some(k) => k.clone(),
                    None => make_stored(
                        config.jwt_algorithm,
                        generate_pem(config.jwt_algorithm)?,
                        now,
                    )?,
                };
                // Nothing holds an older key yet: the first one signs at once.
                current.signs_from = Some(now);
                let set = StoredKeySet {
                    current,
                    previous: None,
                    next: None,
                    retired: Vec::new(),
                };
                let sealed = kek.seal(&set)?;
                if store.put_if_absent(KEYS_RECORD, &sealed, None).await? {
                    tracing::info!(kid = %set.current.kid, alg = %set.current.alg, "created signing key");
                    (kek, set, sealed)
                } else {
                    // Another instance created it first.
                    let raw = store
                        .get(KEYS_RECORD)
                        .await?
                        .ok_or_else(|| anyhow!("key set vanished"))?;
                    let set = kek.open(&raw)?;
                    (kek, set, raw)
                }
            }
        };
        // A newly imported key (or a changed JWT_ALGORITHM) becomes current
        // at once (the operator asked for it); the old one stays published.
        if create {
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
            if let Some(mut new_current) = replacement {
                new_current.signs_from = Some(now);
                let mut next = set.clone();
                let old = std::mem::replace(&mut next.current, new_current);
                next.retired.push(RetiredKey {
                    key: old,
                    until: now + schedule.retire_after,
                });
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
        }
        let _ = raw;
        let loaded = build(&set, now)?;
        let manager = Self {
            store,
            kek,
            alg: config.jwt_algorithm,
            issuer: issuer.to_string(),
            clock,
            schedule,
            reload_interval: config.reload_interval,
            loaded: ArcSwap::from_pointee(loaded),
        };
        if create {
            // Publishes a `next` key from the first start on.
            manager.upkeep_once().await?;
        }
        Ok(manager)
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

    /// Signs access-token claims: header `typ: at+jwt` (RFC 9068 §2.1) and
    /// `kid`. The `next` key signs from its time on even before this
    /// instance's upkeep has promoted it, so all instances switch together.
    pub fn sign(&self, claims: &AccessClaims) -> anyhow::Result<String> {
        let keys = self.loaded.load();
        let key = match &keys.next {
            Some((next, from)) if self.clock.now_secs() >= *from => next,
            _ => &keys.current,
        };
        let mut header = Header::new(key.alg);
        header.typ = Some(ACCESS_TOKEN_TYP.to_string());
        header.kid = Some(key.kid.clone());
        key.signer.sign(&header, claims)
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

    /// Re-reads the set (another instance may have rotated) and rebuilds
    /// what is published (retired keys drop out when their time is up).
    pub async fn reload(&self) -> anyhow::Result<()> {
        if let Some(raw) = self.store.get(KEYS_RECORD).await? {
            let set = self.kek.open(&raw)?;
            self.loaded
                .store(Arc::new(build(&set, self.clock.now_secs())?));
        }
        Ok(())
    }

    fn fresh_key(&self, now: u64) -> anyhow::Result<StoredKey> {
        make_stored(self.alg, generate_pem(self.alg)?, now)
    }

    /// Applies `change` then [`advance`] to the stored set by compare-and-swap
    /// (retried on a concurrent change), stores the result and loads it.
    async fn update(
        &self,
        change: &(dyn Fn(&mut StoredKeySet, u64) -> bool + Sync),
    ) -> anyhow::Result<StoredKeySet> {
        for _ in 0..8 {
            let now = self.clock.now_secs();
            let raw = self
                .store
                .get(KEYS_RECORD)
                .await?
                .ok_or_else(|| anyhow!("no key set in the store"))?;
            let mut set = self.kek.open(&raw)?;
            let signing_before = set.current.kid.clone();
            let changed = change(&mut set, now);
            let mut fresh = || self.fresh_key(now);
            let next = match advance(set.clone(), now, self.schedule, self.alg.name(), &mut fresh)?
            {
                Some(next) => next,
                None if changed => set,
                None => {
                    self.loaded.store(Arc::new(build(&set, now)?));
                    return Ok(set);
                }
            };
            if self
                .store
                .compare_and_swap(KEYS_RECORD, &raw, Some(&self.kek.seal(&next)?), None)
                .await?
            {
                if next.current.kid != signing_before {
                    tracing::info!(kid = %next.current.kid, "rotated signing key");
                }
                self.loaded.store(Arc::new(build(&next, now)?));
                return Ok(next);
            }
        }
        bail!("the key set kept changing under a concurrent writer; try again")
    }

    /// One upkeep step: promote a due `next` key, rotate on schedule, publish
    /// a `next` key if there is none, drop retired keys past their time.
    pub async fn upkeep_once(&self) -> anyhow::Result<()> {
        self.update(&|_, _| false).await.map(|_| ())
    }

    /// Rotation on command: the `next` key (published since its creation)
    /// signs as soon as it has been published for `KEY_PUBLISH_LEAD` — at
    /// once when it already has; the current one stays published until its
    /// tokens have expired.
    pub async fn rotate(&self) -> anyhow::Result<Rotation> {
        let lead = self.schedule.lead;
        let set = self
            .update(&|set, now| {
                match set.next.as_mut() {
                    Some(next) => {
                        let due = now.max(next.created + lead);
                        next.signs_from = Some(next.signs_from.map_or(due, |t| t.min(due)));
                    }
                    // Cannot happen after `advance`; the next step creates one,
                    // and the following rotation uses it.
                    None => return false,
                }
                true
            })
            .await?;
        let now = self.clock.now_secs();
        // Either promoted (the new current) or waiting as `next`.
        let (key, immediate) = match &set.next {
            Some(n) if n.signs_from.is_some_and(|t| t > now) => (n, false),
            _ => (&set.current, true),
        };
        Ok(Rotation {
            kid: key.kid.clone(),
            signs_from: key.signs_since(),
            immediate,
        })
    }

    /// Background upkeep every `KEY_RELOAD_INTERVAL`: pick up changes by other
    /// instances, rotate on schedule, retire and publish keys.
    pub fn spawn_upkeep(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        let every = self.reload_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = self.upkeep_once().await {
                    tracing::warn!(error = %e, "signing key upkeep failed");
                }
            }
        })
    }
}

fn signing_key(k: &StoredKey) -> anyhow::Result<SigningKey> {
    let alg = alg_of(&k.alg)?;
    Ok(SigningKey {
        kid: k.kid.clone(),
        alg,
        signer: crate::signer::Signer::from_pem(alg, &k.pem)?,
    })
}

fn published(k: &StoredKey) -> anyhow::Result<Jwk> {
    let alg = alg_of(&k.alg)?;
    Ok(with_kid(public_jwk(alg, &k.pem)?, &k.kid, alg))
}

/// What is served and signed with at `now`: the current key, the next one,
/// and retired ones still within their time.
fn build(set: &StoredKeySet, now: u64) -> anyhow::Result<LoadedKeys> {
    let mut keys = vec![published(&set.current)?];
    let mut next = None;
    if let Some(n) = &set.next {
        keys.push(published(n)?);
        if let Some(from) = n.signs_from {
            next = Some((signing_key(n)?, from));
        }
    }
    if let Some(prev) = &set.previous {
        keys.push(published(prev)?);
    }
    for r in set.retired.iter().filter(|r| r.until > now) {
        keys.push(published(&r.key)?);
    }
    let jwks = JwkSet { keys };
    let table = KeyTable::from_jwks(&jwks);
    Ok(LoadedKeys {
        current: signing_key(&set.current)?,
        next,
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
                next: None,
                retired: Vec::new(),
            };
            let loaded = build(&set, 1).unwrap();
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
            next: None,
            retired: Vec::new(),
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
        use p256::pkcs8::der::pem;
        // PKCS#1 is the `privateKey` inside a generated key's PKCS#8 (RFC 5208 §5).
        let pkcs8_pem = generate_pem(SigningAlg::Rs256).unwrap();
        let (_, pkcs8_der) = pem::decode_vec(pkcs8_pem.as_bytes()).unwrap();
        let info = p256::pkcs8::PrivateKeyInfo::try_from(pkcs8_der.as_slice()).unwrap();
        let pkcs1 =
            pem::encode_string("RSA PRIVATE KEY", pem::LineEnding::LF, info.private_key).unwrap();
        let pkcs8 = crate::signer::validate_rsa_pem(&pkcs1).unwrap();
        assert!(pkcs8.contains("BEGIN PRIVATE KEY"));
        // The same key as PKCS#8 comes back unchanged.
        assert_eq!(
            crate::signer::validate_rsa_pem(&pkcs8_pem).unwrap(),
            pkcs8_pem
        );
        let e = crate::signer::validate_rsa_pem(RSA_1024_PKCS1).unwrap_err();
        assert!(e.to_string().contains("2048"), "{e}");
        let e =
            crate::signer::validate_rsa_pem(&generate_pem(SigningAlg::Es256).unwrap()).unwrap_err();
        assert!(e.to_string().contains("not an RSA private key"), "{e}");
    }

    /// A 1024-bit RSA key (`openssl genrsa -traditional 1024`), too short to import.
    const RSA_1024_PKCS1: &str = "-----BEGIN RSA PRIVATE KEY-----\n\
MIICXgIBAAKBgQChjIy3GE4mTdtJtexNMnqgyhhjU3tka8yQC4mUhZ86KBdK0u9H\n\
std3LtkiDsVqGC0QvZkQlA+0mv+Z3eXMNNNEMrLdKtifxH8qFMd5qLQZvZPWc5Fe\n\
hIzM3NrYaGBQxUTIOrqdkhZqmsAMZ9qJ82oM0PvrY+CQwWpx2STJE1Cy6QIDAQAB\n\
AoGAIJ/UrwkuhxfECD/AB9sA3sXRZQWv7pjCh/h8gUz22fTMt2Sfw/f/AWepm/Il\n\
tgZJ246egbWU8mE26yjfxnyIiXQJkCUgKllHprXLywn1svbi8ADQf2oIrA0B5P8s\n\
QQTLx/9GxLEgG+pOp0KfH/g5D7B5dF/yhqTGqw12IKbSdY0CQQDUG6Wszlv4skl0\n\
znvtk4Wjx95poZDlk4/ko83kOVj6WT7F42qB/J0kEa03uJYC67gpamoZYGgB1kTk\n\
hi4y6bCzAkEAwvqOnh+hGK/12r7F38liIJt1rJRTz14DAYAjCpkf45X4E2+BDfUl\n\
wTd7HQ2mqKd+WNJYMw8q1N55W0R8QhSj8wJBAJOR2KZtvBc/E1QtBJO5+1SDjf43\n\
5jOTgp00Sd7q9zjWNpI/Mq7VLg8WLUmDJvtJPIuz+bVGGZaNmMjVgfbyF3kCQQCv\n\
Z9URr4avvOzCg0lkD7l1eCWewjm7nem6WdosWKD1jx8D7RX+xoHWluDsvDEoHLZv\n\
lZu/I2/23MX0M2JN2F+9AkEAhD+ejtBmrIxCXVkam/BI1Yrr17o2/ouVU+qVs/6x\n\
a7FRclN3iFY7IyJHPEdlQDNfODT+Psi7tZcWVRhhE+ojXg==\n\
-----END RSA PRIVATE KEY-----\n";

    fn key(n: u64, created: u64) -> StoredKey {
        StoredKey {
            kid: format!("k{n}"),
            alg: "ES256".into(),
            pem: String::new(),
            created,
            signs_from: None,
        }
    }

    /// `advance` with keys numbered in creation order (no crypto needed).
    fn step(set: StoredKeySet, now: u64, sched: Schedule, counter: &mut u64) -> StoredKeySet {
        let mut fresh = || {
            *counter += 1;
            Ok(key(*counter, now))
        };
        advance(set.clone(), now, sched, "ES256", &mut fresh)
            .unwrap()
            .unwrap_or(set)
    }

    fn kids(rs: &[RetiredKey]) -> Vec<&str> {
        rs.iter().map(|r| r.key.kid.as_str()).collect()
    }

    #[test]
    fn a_key_signs_only_after_its_lead_and_retired_keys_outlive_their_tokens() {
        let sched = Schedule {
            lead: 360,
            retire_after: 3600 + 60 + RETIRE_LEEWAY,
            interval: Some(1000),
        };
        let mut n = 1;
        let mut first = key(1, 0);
        first.signs_from = Some(0);
        let set = StoredKeySet {
            current: first,
            previous: None,
            next: None,
            retired: Vec::new(),
        };
        // A next key is published from the start, not signing.
        let set = step(set, 0, sched, &mut n);
        assert_eq!(
            (
                set.current.kid.as_str(),
                set.next.as_ref().unwrap().kid.as_str()
            ),
            ("k1", "k2")
        );
        assert_eq!(set.next.as_ref().unwrap().signs_from, None);
        assert!(step(set.clone(), 999, sched, &mut n).current.kid == "k1");
        // Three scheduled rotations within one token lifetime: every key they
        // replaced stays published.
        let set = step(set, 1000, sched, &mut n);
        let set = step(set, 2000, sched, &mut n);
        let set = step(set, 3000, sched, &mut n);
        assert_eq!(set.current.kid, "k4");
        assert_eq!(kids(&set.retired), ["k1", "k2", "k3"]);
        assert_eq!(set.next.as_ref().unwrap().kid, "k5");
        let loaded_kids = |set: &StoredKeySet, now: u64| -> Vec<String> {
            let mut v = vec![set.current.kid.clone()];
            v.extend(set.next.iter().map(|k| k.kid.clone()));
            v.extend(
                set.retired
                    .iter()
                    .filter(|r| r.until > now)
                    .map(|r| r.key.kid.clone()),
            );
            v
        };
        assert_eq!(loaded_kids(&set, 3000), ["k4", "k5", "k1", "k2", "k3"]);
        // k1 stopped signing at 1000: published until its last token expired.
        let later = step(set.clone(), 1000 + sched.retire_after - 1, sched, &mut n);
        assert!(kids(&later.retired).contains(&"k1"));
        let later = step(set.clone(), 1000 + sched.retire_after, sched, &mut n);
        assert!(!kids(&later.retired).contains(&"k1"));

        // On command right after a rotation: the new next key (published at
        // 3000) may sign only from 3000 + lead.
        let mut asked = set.clone();
        if let Some(next) = asked.next.as_mut() {
            next.signs_from = Some(3001u64.max(next.created + sched.lead));
        }
        let early = step(asked.clone(), 3359, sched, &mut n);
        assert_eq!(
            early.current.kid, "k4",
            "not before it has been published for the lead"
        );
        let due = step(asked, 3360, sched, &mut n);
        assert_eq!(due.current.kid, "k5");
        assert_eq!(kids(&due.retired), ["k1", "k2", "k3", "k4"]);
    }

    #[test]
    fn a_legacy_previous_key_becomes_retired_and_stays_published() {
        let sched = Schedule {
            lead: 10,
            retire_after: 100,
            interval: None,
        };
        let mut n = 10;
        let set = StoredKeySet {
            current: key(1, 0),
            previous: Some(key(0, 0)),
            next: None,
            retired: Vec::new(),
        };
        let set = step(set, 50, sched, &mut n);
        assert!(set.previous.is_none());
        assert_eq!(kids(&set.retired), ["k0"]);
        assert_eq!(set.retired[0].until, 150);
        assert_eq!(set.next.as_ref().unwrap().kid, "k11");
        // No schedule: nothing rotates by itself.
        assert_eq!(step(set, 10_000, sched, &mut n).current.kid, "k1");
    }
}
