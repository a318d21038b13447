//! Access-token (JWT, RFC 9068) verification against the in-memory key table.
//! No I/O; time is an argument.
//!
//! Checks, in order, cheapest first, so that a forged token costs a
//! public-key operation only when nothing cheaper refuses it: three parts; the
//! JOSE header (`kid` required, `alg` must be the key's own — RFC 8725 §3.1 —
//! `typ` must be `at+jwt` — RFC 9068 §4 — and no `crit`); `iss` byte for byte
//! and `exp`/`nbf` with leeway, read from the payload; the signature; then the
//! full claims, parsed only once the signature holds. The audience is checked per request by the caller, because a
//! verified token is cached once and used against one service at a time.

use std::borrow::Cow;
use std::collections::HashMap;

use aws_lc_rs::signature::{ParsedPublicKey, ECDSA_P256_SHA256_FIXED};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gateway_common::claims::{AccessClaims, ACCESS_TOKEN_TYP};
use gateway_common::keys::{KeyTable, VerificationKey};
use jsonwebtoken::Algorithm;
use serde::Deserialize;

/// Why a token was refused. Every variant is a 401 `invalid_token`
/// (RFC 6750 §3.1); the variant is kept for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is not a well-formed JWT")]
    Malformed,
    #[error("token header has no kid")]
    MissingKid,
    #[error("token kid is not in the key set")]
    UnknownKid,
    #[error("token alg is not the key's algorithm")]
    AlgorithmMismatch,
    #[error("token typ is not at+jwt")]
    WrongType,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token issuer is not ours")]
    WrongIssuer,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
}

/// The JOSE header, borrowed from the decoded bytes (no allocation unless a
/// value carries escapes).
#[derive(Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(default, borrow)]
    kid: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    typ: Option<Cow<'a, str>>,
    /// RFC 7515 §4.1.11: we understand no extensions, so any `crit` is refused.
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// What is checked of the claims before the signature: issuer and time
/// window, borrowed (the full claims are parsed once the signature holds).
#[derive(Deserialize)]
struct Window<'a> {
    #[serde(borrow)]
    iss: Cow<'a, str>,
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
}

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone)]
pub struct Expectations {
    pub issuer: String,
    pub leeway_secs: u64,
}

/// The verifier's key set: the table from the JWKS, and the ES256 keys
/// parsed once for aws-lc (a point on the curve, checked once, instead of on
/// every signature check).
#[derive(Debug, Default)]
pub struct Keys {
    pub table: KeyTable,
    es256: HashMap<String, Es256Key>,
}

struct Es256Key(ParsedPublicKey);

impl std::fmt::Debug for Es256Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Es256Key")
    }
}

impl Keys {
    pub fn new(table: KeyTable) -> Self {
        let es256 = table
            .kids()
            .filter_map(|kid| {
                let k = table.get(kid)?;
                parse_es256(k).map(|p| (kid.to_string(), Es256Key(p)))
            })
            .collect();
        Self { table, es256 }
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }
}

fn parse_es256(k: &VerificationKey) -> Option<ParsedPublicKey> {
    if k.alg != Algorithm::ES256 {
        return None;
    }
    ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, k.key.try_get_as_bytes().ok()?).ok()
}

/// Longest JOSE header we decode (ours is about 60 bytes).
const MAX_HEADER_B64: usize = 1024;
/// base64url of an ES256 signature: 64 bytes (R ‖ S, RFC 7518 §3.4).
const ES256_SIG_B64: usize = 86;

/// Verifies signature and issuer, and the time window at `now`.
pub fn verify(
    token: &str,
    keys: &KeyTable,
    expect: &Expectations,
    now: u64,
) -> Result<AccessClaims, TokenError> {
    verify_with(token, keys, None, expect, now)
}

/// [`verify`] with the parsed keys of [`Keys`].
pub fn verify_keys(
    token: &str,
    keys: &Keys,
    expect: &Expectations,
    now: u64,
) -> Result<AccessClaims, TokenError> {
    verify_with(token, &keys.table, Some(&keys.es256), expect, now)
}

fn verify_with(
    token: &str,
    keys: &KeyTable,
    es256: Option<&HashMap<String, Es256Key>>,
    expect: &Expectations,
    now: u64,
) -> Result<AccessClaims, TokenError> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    if header_b64.len() > MAX_HEADER_B64 {
        return Err(TokenError::Malformed);
    }
    let mut header_buf = [0u8; MAX_HEADER_B64 * 3 / 4 + 3];
    let n = URL_SAFE_NO_PAD
        .decode_slice(header_b64, &mut header_buf)
        .map_err(|_| TokenError::Malformed)?;
    let header: JoseHeader =
        serde_json::from_slice(&header_buf[..n]).map_err(|_| TokenError::Malformed)?;
    if header.crit.is_some() {
        return Err(TokenError::Malformed);
    }
    let kid = header.kid.ok_or(TokenError::MissingKid)?;
    let key = keys.get(&kid).ok_or(TokenError::UnknownKid)?;
    let alg: Algorithm = header
        .alg
        .parse()
        .map_err(|_| TokenError::AlgorithmMismatch)?;
    if alg != key.alg {
        return Err(TokenError::AlgorithmMismatch);
    }
    let typ_ok = header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) || t.eq_ignore_ascii_case("application/at+jwt")
    });
    if !typ_ok {
        return Err(TokenError::WrongType);
    }

    // Every cheap check before the signature: the issuer and the time window
    // cost a decode and a scan of the payload; the signature costs a
    // public-key operation.
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| TokenError::Malformed)?;
    let window: Window = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    if window.iss != expect.issuer {
        return Err(TokenError::WrongIssuer);
    }
    check_window(window.exp, window.nbf, now, expect.leeway_secs)?;

    let signed_len = header_b64.len() + 1 + payload_b64.len();
    let message = &token.as_bytes()[..signed_len];
    let parsed = es256.and_then(|m| m.get(kid.as_ref()));
    let good = match parsed {
        Some(Es256Key(pk)) => es256_ok(pk, message, signature_b64),
        None => verify_signature(key, message, signature_b64),
    };
    if !good {
        return Err(TokenError::BadSignature);
    }

    let claims: AccessClaims =
        serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    Ok(claims)
}

/// The signature check alone, with the key as the JWKS gave it (any of the
/// key set's algorithms).
pub fn verify_signature(key: &VerificationKey, message: &[u8], signature_b64: &str) -> bool {
    matches!(
        jsonwebtoken::crypto::verify(signature_b64, message, &key.key, key.alg),
        Ok(true)
    )
}

/// The ES256 signature check as [`verify_keys`] does it, with a key parsed
/// once (`None` if `key` is not an ES256 key).
pub fn verify_es256_parsed(key: &VerificationKey) -> Option<impl Fn(&[u8], &str) -> bool> {
    let pk = parse_es256(key)?;
    Some(move |message: &[u8], signature_b64: &str| es256_ok(&pk, message, signature_b64))
}

fn es256_ok(pk: &ParsedPublicKey, message: &[u8], signature_b64: &str) -> bool {
    // decode_slice wants room for a whole last quantum.
    let mut sig = [0u8; 66];
    signature_b64.len() == ES256_SIG_B64
        && URL_SAFE_NO_PAD
            .decode_slice(signature_b64, &mut sig)
            .is_ok_and(|n| n == 64 && pk.verify_sig(message, &sig[..64]).is_ok())
}

/// `exp` (RFC 7519 §4.1.4: not on or after it) and `nbf` (§4.1.5), each with leeway.
pub fn check_time(claims: &AccessClaims, now: u64, leeway: u64) -> Result<(), TokenError> {
    check_window(claims.exp, claims.nbf, now, leeway)
}

fn check_window(exp: u64, nbf: Option<u64>, now: u64, leeway: u64) -> Result<(), TokenError> {
    if now >= exp.saturating_add(leeway) {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = nbf {
        if nbf > now.saturating_add(leeway) {
            return Err(TokenError::NotYetValid);
        }
    }
    Ok(())
}
