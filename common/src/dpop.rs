//! DPoP (RFC 9449): proof validation shared by the authz-server (`/token`) and
//! the verifier (every request to an MCP service), key thumbprints (RFC 7638),
//! the access-token hash `ath`, and stateless server nonces.
//!
//! Pure: a proof, the request it came with and `now` in, a [`ValidProof`] or a
//! [`ProofError`] out. Replay (the proof's `jti`) is the caller's to remember:
//! the authz-server keeps it in the store, the verifier in memory or Redis.
//!
//! Checks (RFC 9449 §4.3), in order, so nothing unauthenticated is parsed
//! further than needed: one JWS in compact form; header `typ` = `dpop+jwt`, an
//! asymmetric `alg` we support, a public `jwk` (no private members) whose key
//! type fits `alg`, no `crit`; the signature with that key; then the claims:
//! `jti` present, `htm` = the request method, `htu` = the request URL (query
//! and fragment ignored, scheme and host case-insensitively, default ports
//! dropped), `iat` within the window, and `ath` = hash of the access token when
//! one is presented. The `nonce` claim is handed back for the caller's check.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{
    ParsedPublicKey, VerificationAlgorithm, ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED,
    ED25519,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use crate::config::{ConfigError, Source};
use sha2::{Digest, Sha256};

/// The `typ` header of a DPoP proof (RFC 9449 §4.2).
pub const DPOP_TYP: &str = "dpop+jwt";

/// The `Authorization` scheme for DPoP-bound tokens and the token type in
/// token responses (RFC 9449 §7.1, §5).
pub const DPOP_SCHEME: &str = "DPoP";

/// Signing algorithms accepted for proofs, as advertised in
/// `dpop_signing_alg_values_supported` and the `algs` challenge parameter.
/// Asymmetric only (RFC 9449 §4.2: `none` and MAC algorithms are refused).
pub const SUPPORTED_ALGS: &[&str] = &[
    "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA",
];

/// [`SUPPORTED_ALGS`] space-separated, for `WWW-Authenticate: DPoP algs="…"`.
pub fn algs_param() -> String {
    SUPPORTED_ALGS.join(" ")
}

/// Longest proof accepted before anything is decoded (an RSA-4096 proof with
/// its key is about 1.5 KB).
pub const MAX_PROOF_BYTES: usize = 4096;

/// The time window a proof's `iat` must fall in, the same at the
/// authorization server and the verifier: `DPOP_PROOF_MAX_AGE` (default 60 s,
/// 1 to 3600) back, `DPOP_CLOCK_LEEWAY` (default 5 s) ahead (RFC 9449 §11.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofWindow {
    pub max_age: u64,
    pub leeway: u64,
}

impl ProofWindow {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let max_age = src.seconds("DPOP_PROOF_MAX_AGE", 60)?.as_secs();
        if max_age == 0 || max_age > 3600 {
            return Err(ConfigError::new(
                "DPOP_PROOF_MAX_AGE",
                "must be between 1 and 3600 seconds",
                "60",
            ));
        }
        Ok(Self {
            max_age,
            leeway: src.seconds("DPOP_CLOCK_LEEWAY", 5)?.as_secs(),
        })
    }
}

/// Why a proof was refused. Each is `invalid_dpop_proof` to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the DPoP proof is not a well-formed JWT")]
    Malformed,
    #[error("the DPoP proof typ is not dpop+jwt")]
    WrongType,
    #[error("the DPoP proof alg is not supported")]
    UnsupportedAlg,
    #[error("the DPoP proof jwk is missing, private or does not fit alg")]
    BadKey,
    #[error("the DPoP proof signature does not verify")]
    BadSignature,
    #[error("the DPoP proof has no jti")]
    MissingJti,
    #[error("the DPoP proof htm does not match the request method")]
    WrongMethod,
    #[error("the DPoP proof htu does not match the request URL")]
    WrongUrl,
    #[error("the DPoP proof iat is outside the accepted window")]
    Stale,
    #[error("the DPoP proof ath does not match the access token")]
    WrongAth,
    #[error("the DPoP proof key does not match the token's binding")]
    WrongKey,
    #[error("the DPoP proof was already used")]
    Replayed,
}

impl ProofError {
    /// Text for `error_description` (no quotes or backslashes).
    pub fn description(self) -> &'static str {
        match self {
            ProofError::Malformed => "The DPoP proof is not a well-formed JWT",
            ProofError::WrongType => "The DPoP proof typ must be dpop+jwt",
            ProofError::UnsupportedAlg => "The DPoP proof alg is not supported",
            ProofError::BadKey => "The DPoP proof jwk is missing, private or does not fit alg",
            ProofError::BadSignature => "The DPoP proof signature is invalid",
            ProofError::MissingJti => "The DPoP proof has no jti",
            ProofError::WrongMethod => "The DPoP proof htm does not match the request method",
            ProofError::WrongUrl => "The DPoP proof htu does not match the request URL",
            ProofError::Stale => "The DPoP proof iat is too old or in the future",
            ProofError::WrongAth => "The DPoP proof ath does not match the access token",
            ProofError::WrongKey => "The DPoP proof key is not the key the token is bound to",
            ProofError::Replayed => "The DPoP proof was already used",
        }
    }
}

/// What a proof must match.
#[derive(Debug, Clone, Copy)]
pub struct ProofCheck<'a> {
    /// The request method (`POST`).
    pub method: &'a str,
    /// The request URL as the client addressed it: `https://host[:port]/path[?query]`.
    pub url: &'a str,
    /// The access token presented with the proof: `ath` must be its hash.
    /// `None` at the token endpoint (no `ath` expected there).
    pub access_token: Option<&'a str>,
    pub now: u64,
    /// How old `iat` may be, in seconds.
    pub max_age: u64,
    /// How far in the future `iat` may be (clock skew), in seconds.
    pub leeway: u64,
}

/// A proof that passed every check but replay and nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidProof {
    /// RFC 7638 SHA-256 thumbprint of the proof key, base64url: `cnf.jkt`.
    pub jkt: String,
    pub jti: String,
    pub iat: u64,
    /// The `nonce` claim, for the caller to check against its own nonces.
    pub nonce: Option<String>,
}

impl ValidProof {
    /// Until when the proof's `jti` must be remembered to refuse a replay.
    pub fn replay_until(&self, check: &ProofCheck<'_>) -> u64 {
        self.iat
            .max(check.now)
            .saturating_add(check.max_age)
            .saturating_add(check.leeway)
    }
}

#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    typ: Option<String>,
    alg: String,
    #[serde(default)]
    jwk: Option<PublicJwk>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// The public members of a JWK; any private member makes the key refused.
#[derive(Deserialize)]
struct PublicJwk {
    kty: String,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    d: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    p: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    k: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    htm: Option<String>,
    #[serde(default)]
    htu: Option<String>,
    #[serde(default)]
    iat: Option<serde_json::Number>,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// Parses an algorithm name we accept for proofs.
fn proof_alg(name: &str) -> Option<Algorithm> {
    if !SUPPORTED_ALGS.contains(&name) {
        return None;
    }
    name.parse().ok()
}

/// The verification key and RFC 7638 thumbprint input of a public JWK, if it fits `alg`.
fn key_of(jwk: &PublicJwk, alg: Algorithm) -> Result<(DecodingKey, String), ProofError> {
    if jwk.d.is_some() || jwk.p.is_some() || jwk.k.is_some() {
        return Err(ProofError::BadKey);
    }
    fn s(v: &Option<String>) -> Result<&str, ProofError> {
        v.as_deref().ok_or(ProofError::BadKey)
    }
    // JSON string literal of a member value (base64url and curve names need no
    // escaping, but a hostile value must not break the canonical form).
    let j = |v: &str| serde_json::to_string(v).map_err(|_| ProofError::BadKey);
    match (jwk.kty.as_str(), alg) {
        ("EC", Algorithm::ES256 | Algorithm::ES384) => {
            let want = if alg == Algorithm::ES256 {
                "P-256"
            } else {
                "P-384"
            };
            let (crv, x, y) = (s(&jwk.crv)?, s(&jwk.x)?, s(&jwk.y)?);
            if crv != want {
                return Err(ProofError::BadKey);
            }
            let key = DecodingKey::from_ec_components(x, y).map_err(|_| ProofError::BadKey)?;
            let canonical = format!(
                "{{\"crv\":{},\"kty\":\"EC\",\"x\":{},\"y\":{}}}",
                j(crv)?,
                j(x)?,
                j(y)?
            );
            Ok((key, canonical))
        }
        (
            "RSA",
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => {
            let (n, e) = (s(&jwk.n)?, s(&jwk.e)?);
            // RFC 7518 §3.3: at least 2048 bits.
            if URL_SAFE_NO_PAD.decode(n).map_or(0, |b| b.len()) < 256 {
                return Err(ProofError::BadKey);
            }
            let key = DecodingKey::from_rsa_components(n, e).map_err(|_| ProofError::BadKey)?;
            let canonical = format!("{{\"e\":{},\"kty\":\"RSA\",\"n\":{}}}", j(e)?, j(n)?);
            Ok((key, canonical))
        }
        ("OKP", Algorithm::EdDSA) => {
            let (crv, x) = (s(&jwk.crv)?, s(&jwk.x)?);
            if crv != "Ed25519" {
                return Err(ProofError::BadKey);
            }
            let key = DecodingKey::from_ed_components(x).map_err(|_| ProofError::BadKey)?;
            let canonical = format!("{{\"crv\":{},\"kty\":\"OKP\",\"x\":{}}}", j(crv)?, j(x)?);
            Ok((key, canonical))
        }
        _ => Err(ProofError::BadKey),
    }
}

fn b64_sha256(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(data))
}

/// The `ath` claim for an access token: base64url(SHA-256(token)) (RFC 9449 §4.2).
pub fn ath(access_token: &str) -> String {
    b64_sha256(access_token.as_bytes())
}

/// The RFC 7638 SHA-256 thumbprint of a public JWK given as JSON, base64url.
pub fn jwk_thumbprint(jwk: &serde_json::Value) -> Option<String> {
    let parsed: PublicJwk = serde_json::from_value(jwk.clone()).ok()?;
    let alg = match parsed.kty.as_str() {
        "EC" if parsed.crv.as_deref() == Some("P-384") => Algorithm::ES384,
        "EC" => Algorithm::ES256,
        "RSA" => Algorithm::RS256,
        "OKP" => Algorithm::EdDSA,
        _ => return None,
    };
    key_of(&parsed, alg)
        .ok()
        .map(|(_, canonical)| b64_sha256(canonical.as_bytes()))
}

/// A proof key checked and parsed once: what its header allows and the
/// key's thumbprint. Built only from a header that passed every header check
/// (`typ`, `alg`, `jwk`, no `crit`), so equal header bytes give an equal key.
struct ProofKey {
    verifier: KeyVerifier,
    /// RFC 7638 thumbprint, base64url.
    jkt: String,
}

enum KeyVerifier {
    /// Elliptic-curve and Ed25519 keys, parsed once into aws-lc's form
    /// (jsonwebtoken re-parses the key on every check).
    Parsed {
        key: ParsedPublicKey,
        /// Length of the raw signature: R ‖ S for ECDSA (RFC 7518 §3.4), 64 for Ed25519.
        signature_len: usize,
    },
    Rsa {
        key: DecodingKey,
        alg: Algorithm,
    },
}

impl ProofKey {
    /// Checks the header (RFC 9449 §4.3 items 4–7) and parses its key.
    fn from_header(header_b64: &str) -> Result<Self, ProofError> {
        let header_json = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| ProofError::Malformed)?;
        let header: Header =
            serde_json::from_slice(&header_json).map_err(|_| ProofError::Malformed)?;
        if header.crit.is_some() {
            return Err(ProofError::Malformed);
        }
        if !header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(DPOP_TYP))
        {
            return Err(ProofError::WrongType);
        }
        let alg = proof_alg(&header.alg).ok_or(ProofError::UnsupportedAlg)?;
        let jwk = header.jwk.as_ref().ok_or(ProofError::BadKey)?;
        let (key, canonical) = key_of(jwk, alg)?;
        let parsed: Option<(&'static dyn VerificationAlgorithm, usize)> = match alg {
            Algorithm::ES256 => Some((&ECDSA_P256_SHA256_FIXED, 64)),
            Algorithm::ES384 => Some((&ECDSA_P384_SHA384_FIXED, 96)),
            Algorithm::EdDSA => Some((&ED25519, 64)),
            _ => None,
        };
        let verifier = match parsed {
            Some((algorithm, signature_len)) => {
                let bytes = key.try_get_as_bytes().map_err(|_| ProofError::BadKey)?;
                KeyVerifier::Parsed {
                    key: ParsedPublicKey::new(algorithm, bytes).map_err(|_| ProofError::BadKey)?,
                    signature_len,
                }
            }
            None => KeyVerifier::Rsa { key, alg },
        };
        Ok(Self {
            verifier,
            jkt: b64_sha256(canonical.as_bytes()),
        })
    }

    fn signature_ok(&self, message: &[u8], signature_b64: &str) -> bool {
        match &self.verifier {
            KeyVerifier::Parsed { key, signature_len } => {
                // decode_slice wants room for a whole last quantum.
                let mut sig = [0u8; 99];
                signature_b64.len() <= 132
                    && URL_SAFE_NO_PAD
                        .decode_slice(signature_b64, &mut sig)
                        .is_ok_and(|n| {
                            n == *signature_len && key.verify_sig(message, &sig[..n]).is_ok()
                        })
            }
            KeyVerifier::Rsa { key, alg } => {
                jsonwebtoken::crypto::verify(signature_b64, message, key, *alg).unwrap_or(false)
            }
        }
    }
}

/// Proof keys already parsed, by the exact bytes of the proof header that
/// carried them. A client signs every proof with the same key, so its header
/// segment repeats byte for byte and only the first proof pays for decoding
/// the header, parsing the key and hashing its thumbprint.
///
/// Bounded: a key enters only once a proof signed by it has verified, and a
/// full table drops one entry for each new one, so a flood of new keys costs
/// other clients a re-parse at worst, never a refusal.
pub struct ProofKeys {
    entries: Mutex<HashMap<Box<str>, Arc<ProofKey>>>,
    capacity: usize,
}

impl std::fmt::Debug for ProofKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofKeys")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Default for ProofKeys {
    fn default() -> Self {
        Self::with_capacity(1024)
    }
}

impl ProofKeys {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, header_b64: &str) -> Option<Arc<ProofKey>> {
        self.entries.lock().ok()?.get(header_b64).cloned()
    }

    fn insert(&self, header_b64: &str, key: Arc<ProofKey>) {
        let Ok(mut map) = self.entries.lock() else {
            return;
        };
        if map.len() >= self.capacity {
            if let Some(old) = map.keys().next().cloned() {
                map.remove(&old);
            }
        }
        map.insert(header_b64.into(), key);
    }

    /// [`validate`], with the proof key taken from (or added to) this table.
    pub fn validate(&self, proof: &str, check: &ProofCheck<'_>) -> Result<ValidProof, ProofError> {
        validate_with(proof, check, Some(self))
    }
}

/// Validates a DPoP proof against the request it came with.
pub fn validate(proof: &str, check: &ProofCheck<'_>) -> Result<ValidProof, ProofError> {
    validate_with(proof, check, None)
}

fn validate_with(
    proof: &str,
    check: &ProofCheck<'_>,
    keys: Option<&ProofKeys>,
) -> Result<ValidProof, ProofError> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(ProofError::Malformed);
    }
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProofError::Malformed);
    };
    let (key, known) = match keys.and_then(|k| k.get(header_b64)) {
        Some(key) => (key, true),
        None => (Arc::new(ProofKey::from_header(header_b64)?), false),
    };
    let signed_len = header_b64.len() + 1 + payload_b64.len();
    if !key.signature_ok(&proof.as_bytes()[..signed_len], signature_b64) {
        return Err(ProofError::BadSignature);
    }
    if let (Some(keys), false) = (keys, known) {
        keys.insert(header_b64, key.clone());
    }

    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| ProofError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| ProofError::Malformed)?;
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or(ProofError::MissingJti)?;
    if claims.htm.as_deref() != Some(check.method) {
        return Err(ProofError::WrongMethod);
    }
    if !claims
        .htu
        .as_deref()
        .is_some_and(|htu| htu_matches(htu, check.url))
    {
        return Err(ProofError::WrongUrl);
    }
    let iat = claims
        .iat
        .and_then(|n| n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)))
        .ok_or(ProofError::Malformed)?;
    if iat > check.now.saturating_add(check.leeway)
        || iat
            .saturating_add(check.max_age)
            .saturating_add(check.leeway)
            < check.now
    {
        return Err(ProofError::Stale);
    }
    if let Some(token) = check.access_token {
        if claims.ath.as_deref() != Some(ath(token).as_str()) {
            return Err(ProofError::WrongAth);
        }
    }
    Ok(ValidProof {
        jkt: key.jkt.clone(),
        jti,
        iat,
        nonce: claims.nonce,
    })
}

/// Whether a proof's `htu` names the request URL (RFC 9449 §4.3 item 9):
/// query and fragment ignored; scheme and host compared case-insensitively,
/// default ports dropped, percent-encoding normalized (RFC 3986 §6.2.2–6.2.3).
pub fn htu_matches(htu: &str, request_url: &str) -> bool {
    // Clients copy the URL they called, so the two are usually the same
    // bytes: then, for a URL already in the form parsing would give, they
    // match without parsing either (two parses are a tenth of a proof check).
    if htu == request_url && is_plain_url(htu) {
        return true;
    }
    htu_matches_parsed(htu, request_url)
}

/// `http(s)://host[:port]/path` in lower case with a non-empty DNS name or
/// IPv4 host, a port in range, and a path of unreserved characters and `/`
/// only: a string `url::Url` parses and serialises unchanged, with no user
/// information, query or fragment, so byte equality is the full comparison.
fn is_plain_url(u: &str) -> bool {
    let Some(rest) = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
    else {
        return false;
    };
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                // Punycode labels are decoded and checked by the parser.
                && !label.starts_with("xn--")
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
        // An all-numeric last label is an IPv4 address only in dotted-quad
        // form; anything else numeric is left to the parser.
        && host
            .rsplit('.')
            .next()
            .is_some_and(|last| {
                // WHATWG URL §3.5 "ends in a number": digits, or `0x` and hex.
                let numeric = last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x");
                !numeric || is_dotted_quad(host)
            });
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && !p.starts_with('0')
            && p.parse::<u16>().is_ok()
            // A default port is dropped by the parser: not the same bytes.
            && !matches!((u.starts_with("https"), p), (true, "443") | (false, "80"))
    });
    let path_ok = path.starts_with('/')
        && !path.contains("/./")
        && !path.contains("/../")
        && !path.ends_with("/.")
        && !path.ends_with("/..")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'~' | b'.'));
    host_ok && port_ok && path_ok
}

fn is_dotted_quad(host: &str) -> bool {
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && (p.len() == 1 || !p.starts_with('0'))
                && p.parse::<u8>().is_ok()
        })
}

fn htu_matches_parsed(htu: &str, request_url: &str) -> bool {
    let (Ok(a), Ok(b)) = (url::Url::parse(htu), url::Url::parse(request_url)) else {
        return false;
    };
    matches!(a.scheme(), "http" | "https")
        && a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
        && a.username().is_empty()
        && a.password().is_none()
        && a.path() == b.path()
}

/// A key of this process's (or this deployment's) DPoP nonces: stateless, so
/// no store is touched to issue or check one. A nonce is the period it was
/// issued in and an HMAC of it; it is accepted during that period and the next.
/// Replicas that share `secret` accept each other's nonces.
#[derive(Clone)]
pub struct NonceKey {
    key: [u8; 32],
    period: u64,
}

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceKey")
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

type HmacSha256 = Hmac<Sha256>;

impl NonceKey {
    /// From a shared secret (any length; hashed to the key). `period` seconds, at least 1.
    pub fn from_secret(secret: &[u8], period: u64) -> Self {
        let mut key = [0u8; 32];
        key.copy_from_slice(&Sha256::digest(
            [b"dpop-nonce:".as_slice(), secret].concat(),
        ));
        Self {
            key,
            period: period.max(1),
        }
    }

    /// A random key: nonces only this process accepts.
    pub fn random(period: u64) -> Self {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        Self::from_secret(&secret, period)
    }

    fn tag(&self, window: u64) -> Option<[u8; 16]> {
        let mut mac = HmacSha256::new_from_slice(&self.key).ok()?;
        mac.update(&window.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        Some(out)
    }

    /// A fresh nonce for `now`.
    pub fn issue(&self, now: u64) -> String {
        let window = now / self.period;
        let mut raw = window.to_be_bytes().to_vec();
        raw.extend_from_slice(&self.tag(window).unwrap_or_default());
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Whether `nonce` is one of ours from this period or the previous one.
    pub fn accepts(&self, nonce: &str, now: u64) -> bool {
        let Ok(raw) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        if raw.len() != 24 {
            return false;
        }
        let mut w = [0u8; 8];
        w.copy_from_slice(&raw[..8]);
        let window = u64::from_be_bytes(w);
        let current = now / self.period;
        if window != current && window.saturating_add(1) != current {
            return false;
        }
        let Some(tag) = self.tag(window) else {
            return false;
        };
        crate::crypto::ct_eq(&tag, &raw[8..])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use jsonwebtoken::{EncodingKey, Header as JwtHeader};
    use serde_json::json;

    /// A fresh P-256 key with its public JWK.
    struct Key {
        enc: EncodingKey,
        jwk: serde_json::Value,
    }

    fn key() -> Key {
        use p256::pkcs8::EncodePrivateKey;
        let sk = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let der = sk.to_pkcs8_der().unwrap();
        let enc = EncodingKey::from_ec_der(der.as_bytes());
        let point = sk.verifying_key().to_encoded_point(false);
        let jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
        });
        Key { enc, jwk }
    }

    fn proof(k: &Key, claims: serde_json::Value) -> String {
        proof_with(k, "dpop+jwt", "ES256", claims)
    }

    fn proof_with(k: &Key, typ: &str, alg: &str, claims: serde_json::Value) -> String {
        let mut h = JwtHeader::new(Algorithm::ES256);
        h.typ = Some(typ.into());
        h.jwk = Some(serde_json::from_value(k.jwk.clone()).unwrap());
        let mut out = jsonwebtoken::encode(&h, &claims, &k.enc).unwrap();
        if alg != "ES256" {
            // Re-label the header (the signature then no longer matters: refused before).
            let mut header: serde_json::Value = serde_json::from_slice(
                &URL_SAFE_NO_PAD
                    .decode(out.split('.').next().unwrap())
                    .unwrap(),
            )
            .unwrap();
            header["alg"] = json!(alg);
            let rest = out.split_once('.').unwrap().1.to_string();
            out = format!(
                "{}.{rest}",
                URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap())
            );
        }
        out
    }

    const URL: &str = "https://echo.example.com/mcp";

    fn check(token: Option<&str>) -> ProofCheck<'_> {
        ProofCheck {
            method: "POST",
            url: URL,
            access_token: token,
            now: 1_000_000,
            max_age: 60,
            leeway: 5,
        }
    }

    fn claims(token: Option<&str>) -> serde_json::Value {
        let mut c = json!({"jti": "j1", "htm": "POST", "htu": URL, "iat": 1_000_000});
        if let Some(t) = token {
            c["ath"] = json!(ath(t));
        }
        c
    }

    #[test]
    fn a_good_proof_gives_the_key_thumbprint() {
        let k = key();
        let p = proof(&k, claims(Some("tok")));
        let v = validate(&p, &check(Some("tok"))).unwrap();
        assert_eq!(v.jkt, jwk_thumbprint(&k.jwk).unwrap());
        assert_eq!((v.jti.as_str(), v.iat, v.nonce), ("j1", 1_000_000, None));
        // At the token endpoint no ath is expected.
        let p = proof(&k, claims(None));
        assert!(validate(&p, &check(None)).is_ok());
    }

    /// A proof signed with a key of another algorithm (aws-lc generates it).
    fn foreign_proof(alg: Algorithm, claims: serde_json::Value) -> (String, serde_json::Value) {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{
            EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P384_SHA384_FIXED_SIGNING,
        };
        let rng = SystemRandom::new();
        let (enc, jwk) = match alg {
            Algorithm::ES384 => {
                let der =
                    EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, der.as_ref())
                    .unwrap();
                let point = pair.public_key().as_ref().to_vec();
                let jwk = json!({
                    "kty": "EC", "crv": "P-384",
                    "x": URL_SAFE_NO_PAD.encode(&point[1..49]),
                    "y": URL_SAFE_NO_PAD.encode(&point[49..]),
                });
                (EncodingKey::from_ec_der(der.as_ref()), jwk)
            }
            Algorithm::EdDSA => {
                let der = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
                let pair = Ed25519KeyPair::from_pkcs8(der.as_ref()).unwrap();
                let jwk = json!({
                    "kty": "OKP", "crv": "Ed25519",
                    "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
                });
                (EncodingKey::from_ed_der(der.as_ref()), jwk)
            }
            other => panic!("no test key for {other:?}"),
        };
        let mut h = JwtHeader::new(alg);
        h.typ = Some("dpop+jwt".into());
        h.jwk = Some(serde_json::from_value(jwk.clone()).unwrap());
        (jsonwebtoken::encode(&h, &claims, &enc).unwrap(), jwk)
    }

    /// Replaces the signature with another valid-looking one of the same length.
    fn with_flipped_signature(proof: &str) -> String {
        let (signed, sig) = proof.rsplit_once('.').unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
        raw[10] ^= 1;
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(raw))
    }

    #[test]
    fn es384_and_eddsa_proofs_verify_with_and_without_the_key_table() {
        for alg in [Algorithm::ES384, Algorithm::EdDSA] {
            let (p, jwk) = foreign_proof(alg, claims(Some("tok")));
            let keys = ProofKeys::default();
            let plain = validate(&p, &check(Some("tok"))).unwrap();
            assert_eq!(plain.jkt, jwk_thumbprint(&jwk).unwrap(), "{alg:?}");
            assert_eq!(keys.validate(&p, &check(Some("tok"))).unwrap(), plain);
            // Second time from the table: same answer.
            assert_eq!(keys.validate(&p, &check(Some("tok"))).unwrap(), plain);
            assert_eq!(keys.len(), 1);
            let bad = with_flipped_signature(&p);
            assert_eq!(
                validate(&bad, &check(Some("tok"))),
                Err(ProofError::BadSignature),
                "{alg:?}"
            );
            assert_eq!(
                keys.validate(&bad, &check(Some("tok"))),
                Err(ProofError::BadSignature),
                "{alg:?}"
            );
        }
    }

    #[test]
    fn the_key_table_gives_the_same_answers_as_a_fresh_parse() {
        let k = key();
        let keys = ProofKeys::default();
        let good = proof(&k, claims(Some("tok")));
        let cases = [
            good.clone(),
            with_flipped_signature(&good),
            proof(
                &k,
                json!({"jti": "j2", "htm": "GET", "htu": URL, "iat": 1_000_000, "ath": ath("tok")}),
            ),
            proof(&k, claims(Some("other"))),
            proof_with(&k, "jwt", "ES256", claims(Some("tok"))),
            proof_with(&k, "dpop+jwt", "HS256", claims(Some("tok"))),
        ];
        // Twice over: the second pass meets the key in the table.
        for _ in 0..2 {
            for p in &cases {
                assert_eq!(
                    keys.validate(p, &check(Some("tok"))),
                    validate(p, &check(Some("tok")))
                );
            }
        }
        assert_eq!(keys.len(), 1, "one client key, one entry");
    }

    #[test]
    fn only_keys_whose_proof_verified_enter_the_table_and_it_stays_bounded() {
        let keys = ProofKeys::with_capacity(3);
        let k = key();
        let bad = with_flipped_signature(&proof(&k, claims(None)));
        assert_eq!(
            keys.validate(&bad, &check(None)),
            Err(ProofError::BadSignature)
        );
        assert!(keys.is_empty(), "a proof that did not verify adds nothing");
        for _ in 0..10 {
            let p = proof(&key(), claims(None));
            assert!(keys.validate(&p, &check(None)).is_ok());
            assert!(keys.len() <= 3);
        }
        // A key evicted by others still works: it is parsed again.
        assert!(keys
            .validate(&proof(&k, claims(None)), &check(None))
            .is_ok());
        assert_eq!(keys.len(), 3);
    }

    #[test]
    fn rfc7638_thumbprint_example() {
        // RFC 7638 §3.1.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            jwk_thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn every_mismatch_is_refused_with_its_reason() {
        let k = key();
        let e = |claims: serde_json::Value, c: ProofCheck<'_>| {
            validate(&proof(&k, claims), &c).unwrap_err()
        };
        let mut c = claims(Some("tok"));
        c["htm"] = json!("GET");
        assert_eq!(e(c, check(Some("tok"))), ProofError::WrongMethod);
        let mut c = claims(Some("tok"));
        c["htu"] = json!("https://echo.example.com/other");
        assert_eq!(e(c, check(Some("tok"))), ProofError::WrongUrl);
        let mut c = claims(Some("tok"));
        c["htu"] = json!("https://evil.example.com/mcp");
        assert_eq!(e(c, check(Some("tok"))), ProofError::WrongUrl);
        // A proof for another token.
        assert_eq!(
            e(claims(Some("other")), check(Some("tok"))),
            ProofError::WrongAth
        );
        assert_eq!(e(claims(None), check(Some("tok"))), ProofError::WrongAth);
        let mut c = claims(Some("tok"));
        c["iat"] = json!(1_000_000 - 66);
        assert_eq!(e(c, check(Some("tok"))), ProofError::Stale);
        let mut c = claims(Some("tok"));
        c["iat"] = json!(1_000_000 + 6);
        assert_eq!(e(c, check(Some("tok"))), ProofError::Stale);
        let mut c = claims(Some("tok"));
        c.as_object_mut().unwrap().remove("jti");
        assert_eq!(e(c, check(Some("tok"))), ProofError::MissingJti);
        // Inside the window and leeway: fine.
        let mut c = claims(Some("tok"));
        c["iat"] = json!(1_000_000 - 65);
        assert!(validate(&proof(&k, c), &check(Some("tok"))).is_ok());
    }

    #[test]
    fn header_rules() {
        let k = key();
        let c = claims(None);
        assert_eq!(
            validate(&proof_with(&k, "JWT", "ES256", c.clone()), &check(None)).unwrap_err(),
            ProofError::WrongType
        );
        assert_eq!(
            validate(
                &proof_with(&k, "dpop+jwt", "HS256", c.clone()),
                &check(None)
            )
            .unwrap_err(),
            ProofError::UnsupportedAlg
        );
        assert_eq!(
            validate(&proof_with(&k, "dpop+jwt", "none", c.clone()), &check(None)).unwrap_err(),
            ProofError::UnsupportedAlg
        );
        // ES384 header with a P-256 key: the key does not fit.
        assert_eq!(
            validate(
                &proof_with(&k, "dpop+jwt", "ES384", c.clone()),
                &check(None)
            )
            .unwrap_err(),
            ProofError::BadKey
        );
        // A tampered payload.
        let p = proof(&k, c);
        let mut parts: Vec<&str> = p.split('.').collect();
        let other = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&json!({"jti":"j2","htm":"POST","htu":URL,"iat":1_000_000}))
                .unwrap(),
        );
        parts[1] = &other;
        assert_eq!(
            validate(&parts.join("."), &check(None)).unwrap_err(),
            ProofError::BadSignature
        );
        assert_eq!(
            validate("a.b", &check(None)).unwrap_err(),
            ProofError::Malformed
        );
        assert_eq!(
            validate(&"a".repeat(MAX_PROOF_BYTES + 1), &check(None)).unwrap_err(),
            ProofError::Malformed
        );
    }

    #[test]
    fn private_keys_in_the_header_are_refused() {
        let mut k = key();
        k.jwk["d"] = json!("Ig5cZmjdg9Zn7Mc5xRsLe0N_Y_hTnsWTkhYIJ6Xne9k");
        // jsonwebtoken's Jwk type drops unknown members; build the header by hand.
        let header = json!({"typ":"dpop+jwt","alg":"ES256","jwk":k.jwk});
        let p = proof(&k, claims(None));
        let rest = p.split_once('.').unwrap().1;
        let forged = format!(
            "{}.{rest}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap())
        );
        assert_eq!(
            validate(&forged, &check(None)).unwrap_err(),
            ProofError::BadKey
        );
    }

    #[test]
    fn htu_normalization() {
        assert!(htu_matches(
            "HTTPS://Echo.Example.com:443/mcp",
            "https://echo.example.com/mcp?x=1"
        ));
        assert!(htu_matches(
            "http://127.0.0.1:8080/mcp#f",
            "http://127.0.0.1:8080/mcp"
        ));
        assert!(!htu_matches(
            "http://127.0.0.1:8081/mcp",
            "http://127.0.0.1:8080/mcp"
        ));
        assert!(!htu_matches(
            "http://echo.example.com/mcp",
            "https://echo.example.com/mcp"
        ));
        assert!(!htu_matches(
            "https://echo.example.com/mcp/",
            "https://echo.example.com/mcp"
        ));
        assert!(!htu_matches("/mcp", "https://echo.example.com/mcp"));
    }

    #[test]
    fn plain_urls_are_the_ones_the_parser_keeps_as_they_are() {
        for plain in [
            "https://echo.example.com/mcp",
            "http://127.0.0.1:8080/mcp",
            "https://a-b.example/x/y_z~.v",
            "http://localhost:65535/",
        ] {
            assert!(is_plain_url(plain), "{plain}");
            assert_eq!(url::Url::parse(plain).unwrap().as_str(), plain);
        }
        for not_plain in [
            "https://Echo.example.com/mcp",
            "https://echo.example.com:443/mcp",
            "http://echo.example.com:80/mcp",
            "https://echo.example.com/a/../mcp",
            "https://echo.example.com/mcp?x",
            "https://u@echo.example.com/mcp",
            "https://echo.example.com",
            "https://1.2.3/mcp",
            "https://0x7f.1/mcp",
            "https://a.0x7f/mcp",
            "https://xn--zz.example/mcp",
            "https://01.2.3.4/mcp",
            "https://h:0/mcp",
            "https://h:65536/mcp",
            "https://-h/mcp",
            "https://h/%41",
            "ftp://h/mcp",
        ] {
            assert!(!is_plain_url(not_plain), "{not_plain}");
        }
    }

    proptest::proptest! {
        /// The shortcut never decides differently from the full comparison.
        #[test]
        fn the_shortcut_agrees_with_parsing(
            scheme in proptest::sample::select(vec!["http", "https", "HTTP", "ftp"]),
            host in "[a-zA-Z0-9.-]{0,12}",
            port in proptest::option::of("[0-9]{1,6}"),
            path in "[a-zA-Z0-9/._~%?#@-]{0,12}",
        ) {
            let u = match port {
                Some(p) => format!("{scheme}://{host}:{p}{path}"),
                None => format!("{scheme}://{host}{path}"),
            };
            proptest::prop_assert_eq!(htu_matches(&u, &u), htu_matches_parsed(&u, &u), "{}", u);
        }
    }

    #[test]
    fn nonces_live_two_periods_and_only_with_their_key() {
        let n = NonceKey::from_secret(b"s", 60);
        let issued = n.issue(6_000);
        assert!(n.accepts(&issued, 6_000));
        assert!(n.accepts(&issued, 6_119));
        assert!(!n.accepts(&issued, 6_120));
        assert!(!n.accepts(&issued, 5_999));
        assert!(!NonceKey::from_secret(b"t", 60).accepts(&issued, 6_000));
        assert!(NonceKey::from_secret(b"s", 60).accepts(&issued, 6_000));
        assert!(!n.accepts("garbage", 6_000));
        assert!(!n.accepts(&issued[1..], 6_000));
    }
}
