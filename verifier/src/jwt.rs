//! Access-token (JWT, RFC 9068) verification against the in-memory key table.
//! No I/O; time is an argument.
//!
//! Checks, in order, so that nothing unauthenticated is parsed further than
//! needed: three parts; the JOSE header (`kid` required, `alg` must be the
//! key's own — RFC 8725 §3.1 — `typ` must be `at+jwt` — RFC 9068 §4 — and no
//! `crit`); the signature; then the claims (`iss` byte for byte, `exp`/`nbf`
//! with leeway). The audience is checked per request by the caller, because a
//! verified token is cached once and used against one service at a time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gateway_common::claims::{AccessClaims, ACCESS_TOKEN_TYP};
use gateway_common::keys::KeyTable;
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

#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    /// RFC 7515 §4.1.11: we understand no extensions, so any `crit` is refused.
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone)]
pub struct Expectations {
    pub issuer: String,
    pub leeway_secs: u64,
}

/// Verifies signature and issuer, and the time window at `now`.
pub fn verify(
    token: &str,
    keys: &KeyTable,
    expect: &Expectations,
    now: u64,
) -> Result<AccessClaims, TokenError> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header_json = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| TokenError::Malformed)?;
    let header: JoseHeader =
        serde_json::from_slice(&header_json).map_err(|_| TokenError::Malformed)?;
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

    let signed_len = header_b64.len() + 1 + payload_b64.len();
    let message = &token.as_bytes()[..signed_len];
    match jsonwebtoken::crypto::verify(signature_b64, message, &key.key, key.alg) {
        Ok(true) => {}
        Ok(false) | Err(_) => return Err(TokenError::BadSignature),
    }

    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| TokenError::Malformed)?;
    let claims: AccessClaims =
        serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    if claims.iss != expect.issuer {
        return Err(TokenError::WrongIssuer);
    }
    check_time(&claims, now, expect.leeway_secs)?;
    Ok(claims)
}

/// `exp` (RFC 7519 §4.1.4: not on or after it) and `nbf` (§4.1.5), each with leeway.
pub fn check_time(claims: &AccessClaims, now: u64, leeway: u64) -> Result<(), TokenError> {
    if now >= claims.exp.saturating_add(leeway) {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = claims.nbf {
        if nbf > now.saturating_add(leeway) {
            return Err(TokenError::NotYetValid);
        }
    }
    Ok(())
}
