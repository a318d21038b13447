//! DPoP at the token endpoint (RFC 9449 §5, §8): the authorization server's
//! settings and decisions. Pure; the proof itself is checked by
//! `gateway_common::dpop`, its `jti` made single-use by `http::machine`.
//!
//! * A `DPoP` header at `/token` with a valid proof (`htm` POST, `htu` the
//!   advertised token endpoint `<issuer>/token`) binds the access token to the
//!   proof key: `cnf.jkt`, `token_type: DPoP`.
//! * Refresh tokens of public clients are bound to the same key (§5): a
//!   refresh needs a proof by it. Confidential clients authenticate anyway, so
//!   their refresh tokens are not bound, and each refresh may bind anew.
//! * `DPOP_NONCE_REQUIRED=true`: proofs must carry a nonce of ours; without
//!   one the answer is 400 `use_dpop_nonce` with a fresh `DPoP-Nonce` (§8).
//! * `MCP_<NAME>_DPOP=required`: tokens for that service are issued only
//!   DPoP-bound (a request without a proof is `invalid_dpop_proof`); the
//!   verifier reads the same variable and refuses bearer use.

use gateway_common::config::{ConfigError, Source};
use gateway_common::dpop::{NonceKey, ValidProof};

use crate::protocol::error::OAuthError;

/// Seconds a nonce period lasts (a nonce is accepted for up to two).
pub const NONCE_PERIOD: u64 = 60;

#[derive(Debug, Clone)]
pub struct DpopSettings {
    /// `DPOP_NONCE_REQUIRED` (default false).
    pub nonce_required: bool,
    /// From `DPOP_NONCE_SECRET`, else `GATEWAY_JWT_SECRET` (shared by every
    /// instance), else random per process.
    pub nonces: NonceKey,
    /// `DPOP_PROOF_MAX_AGE` (default 60 s): how old a proof's `iat` may be.
    pub max_age: u64,
    /// `DPOP_CLOCK_LEEWAY` (default 5 s): how far in the future `iat` may be.
    pub leeway: u64,
    /// Resources whose tokens must be DPoP-bound (`MCP_<NAME>_DPOP=required`).
    pub required: Vec<String>,
}

/// `MCP_<NAME>_DPOP`: `required` or `allowed` (the default).
pub fn service_requires_dpop(src: &Source, name: &str) -> Result<bool, ConfigError> {
    let var = format!("MCP_{}_DPOP", name.to_ascii_uppercase());
    match src.get(&var).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v.is_empty() || v == "allowed" || v == "optional" => Ok(false),
        Some(v) if v == "required" => Ok(true),
        Some(v) => Err(ConfigError::new(
            &var,
            format!("must be required or allowed, got {v:?}"),
            "required",
        )),
    }
}

impl DpopSettings {
    /// `services`: `(name, resource)` pairs.
    pub fn from_source(src: &Source, services: &[(String, String)]) -> Result<Self, ConfigError> {
        let secret = src
            .get("DPOP_NONCE_SECRET")
            .or_else(|| src.get("GATEWAY_JWT_SECRET"));
        let nonces = match secret {
            Some(s) => NonceKey::from_secret(s.as_bytes(), NONCE_PERIOD),
            None => NonceKey::random(NONCE_PERIOD),
        };
        let window = gateway_common::dpop::ProofWindow::from_source(src)?;
        let mut required = Vec::new();
        for (name, resource) in services {
            if service_requires_dpop(src, name)? {
                required.push(resource.clone());
            }
        }
        Ok(Self {
            nonce_required: src.bool("DPOP_NONCE_REQUIRED", false)?,
            nonces,
            max_age: window.max_age,
            leeway: window.leeway,
            required,
        })
    }

    /// Whether `resource` only gets DPoP-bound tokens.
    pub fn requires(&self, resource: &str) -> bool {
        self.required.iter().any(|r| r == resource)
    }

    /// The nonce check of a proof that passed every other check.
    pub fn check_nonce(&self, proof: &ValidProof, now: u64) -> Result<(), OAuthError> {
        if !self.nonce_required {
            return Ok(());
        }
        match proof.nonce.as_deref() {
            Some(n) if self.nonces.accepts(n, now) => Ok(()),
            _ => Err(OAuthError::UseDpopNonce(self.nonces.issue(now))),
        }
    }

    /// Refuses an unbound token for an audience that requires DPoP.
    pub fn check_audience(&self, aud: &[String], bound: bool) -> Result<(), OAuthError> {
        if bound {
            return Ok(());
        }
        match aud.iter().find(|r| self.requires(r)) {
            Some(r) => Err(OAuthError::InvalidDpopProof(format!(
                "{r} accepts DPoP-bound tokens only: send a DPoP proof"
            ))),
            None => Ok(()),
        }
    }
}

/// The refresh-token binding rule (RFC 9449 §5): a family bound to a key
/// needs a proof by that key.
pub fn check_refresh_binding(
    family_jkt: Option<&str>,
    proof: Option<&ValidProof>,
) -> Result<(), OAuthError> {
    match (family_jkt, proof) {
        (None, _) => Ok(()),
        (Some(want), Some(p)) if p.jkt == want => Ok(()),
        (Some(_), Some(_)) => Err(OAuthError::InvalidDpopProof(
            "the refresh token is bound to another DPoP key".into(),
        )),
        (Some(_), None) => Err(OAuthError::InvalidDpopProof(
            "the refresh token is DPoP-bound: send a DPoP proof by its key".into(),
        )),
    }
}

/// The single `DPoP` header value, if any (RFC 9449 §4.3: exactly one).
pub fn one_proof<'a>(values: &[&'a [u8]]) -> Result<Option<&'a str>, OAuthError> {
    match values {
        [] => Ok(None),
        [one] => std::str::from_utf8(one)
            .map(|s| Some(s.trim()))
            .map_err(|_| OAuthError::InvalidDpopProof("the DPoP header is not text".into())),
        _ => Err(OAuthError::InvalidDpopProof(
            "send exactly one DPoP header".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn proof(jkt: &str, nonce: Option<&str>) -> ValidProof {
        ValidProof {
            jkt: jkt.into(),
            jti: "j".into(),
            iat: 0,
            nonce: nonce.map(str::to_string),
        }
    }

    fn settings(nonce_required: bool) -> DpopSettings {
        let src = Source::from_pairs([
            ("MCP_ECHO_DPOP", "required".to_string()),
            ("DPOP_NONCE_REQUIRED", nonce_required.to_string()),
            ("DPOP_NONCE_SECRET", "s".to_string()),
        ]);
        DpopSettings::from_source(
            &src,
            &[
                ("echo".into(), "https://e/mcp".into()),
                ("time".into(), "https://t/mcp".into()),
            ],
        )
        .unwrap()
    }

    #[test]
    fn required_services_refuse_unbound_tokens() {
        let s = settings(false);
        assert!(s.requires("https://e/mcp") && !s.requires("https://t/mcp"));
        assert_eq!(
            s.check_audience(&["https://e/mcp".into()], false)
                .unwrap_err()
                .code(),
            "invalid_dpop_proof"
        );
        assert!(s.check_audience(&["https://e/mcp".into()], true).is_ok());
        assert!(s.check_audience(&["https://t/mcp".into()], false).is_ok());
        let bad = Source::from_pairs([("MCP_ECHO_DPOP", "sometimes".to_string())]);
        assert_eq!(
            DpopSettings::from_source(&bad, &[("echo".into(), "x".into())])
                .unwrap_err()
                .var,
            "MCP_ECHO_DPOP"
        );
    }

    #[test]
    fn the_nonce_dance() {
        let s = settings(true);
        let e = s.check_nonce(&proof("k", None), 1000).unwrap_err();
        let OAuthError::UseDpopNonce(nonce) = e else {
            panic!("{e:?}")
        };
        assert!(s.check_nonce(&proof("k", Some(&nonce)), 1010).is_ok());
        assert!(s.check_nonce(&proof("k", Some("forged")), 1010).is_err());
        assert!(settings(false).check_nonce(&proof("k", None), 1000).is_ok());
    }

    #[test]
    fn bound_refresh_tokens_need_their_key() {
        assert!(check_refresh_binding(None, None).is_ok());
        assert!(check_refresh_binding(Some("k"), Some(&proof("k", None))).is_ok());
        assert!(check_refresh_binding(Some("k"), Some(&proof("other", None))).is_err());
        assert!(check_refresh_binding(Some("k"), None).is_err());
        assert_eq!(one_proof(&[]).unwrap(), None);
        assert_eq!(one_proof(&[b"a.b.c"]).unwrap(), Some("a.b.c"));
        assert!(one_proof(&[b"a", b"b"]).is_err());
    }
}
