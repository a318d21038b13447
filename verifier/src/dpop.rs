//! DPoP at the ForwardAuth layer (RFC 9449 §7): sender-constrained tokens
//! checked for every MCP service behind the proxy.
//!
//! * A token bound to a key (`cnf.jkt`) is accepted only as
//!   `Authorization: DPoP <token>` with a `DPoP` proof by that key; as a bearer
//!   token, or without a proof, it is refused (401 `DPoP` challenge).
//! * The proof must match the client's request as the proxy forwarded it:
//!   `htm` = the original method, `htu` = `<X-Forwarded-Proto>://<X-Forwarded-Host><path>`
//!   (query ignored), `ath` = the hash of the presented token, `iat` within
//!   `DPOP_PROOF_MAX_AGE` (+ `DPOP_CLOCK_LEEWAY` ahead), and its `jti` unseen.
//! * Replay: each proof `jti` is remembered until the proof would be too old
//!   anyway. Per replica in memory; with `REDIS_URL` also in Redis (`SET NX`),
//!   so a proof replayed to another verifier replica is refused too.
//! * `MCP_<NAME>_DPOP=required`: bearer tokens are refused for that service.
//! * `DPOP_NONCE_REQUIRED=true`: proofs must carry a nonce of ours
//!   (`use_dpop_nonce` + `DPoP-Nonce` otherwise, RFC 9449 §9). Replicas accept
//!   each other's nonces when they share `DPOP_NONCE_SECRET`.
//!
//! Pure but for the replay memory: no await; the Redis half of replay is
//! [`DpopState::claim_shared`], called by the HTTP adapter after an allow.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use gateway_common::config::{ConfigError, Source};
use gateway_common::dpop::{self as proof, NonceKey, ProofCheck, ProofError};

use crate::forwarded::{AuthorizationHeader, ForwardedRequest};
use crate::token::Extracted;

/// Seconds a nonce period lasts (a nonce is accepted for up to two).
pub const NONCE_PERIOD: u64 = 60;

/// The verifier's DPoP settings.
#[derive(Debug, Clone)]
pub struct DpopConfig {
    /// Services (by name) that accept DPoP-bound tokens only.
    pub required: Vec<String>,
    /// `DPOP_NONCE_REQUIRED` (default false).
    pub nonce_required: bool,
    /// `DPOP_NONCE_SECRET` (shared by replicas), else random per process.
    pub nonces: NonceKey,
    /// `DPOP_PROOF_MAX_AGE` (default 60 s).
    pub max_age: u64,
    /// `DPOP_CLOCK_LEEWAY` (default 5 s): how far ahead `iat` may be.
    pub leeway: u64,
}

impl DpopConfig {
    pub fn from_source(src: &Source, service_names: &[&str]) -> Result<Self, ConfigError> {
        let mut required = Vec::new();
        for name in service_names {
            let var = format!("MCP_{}_DPOP", name.to_ascii_uppercase());
            match src.get(&var).map(|v| v.trim().to_ascii_lowercase()) {
                None => {}
                Some(v) if v.is_empty() || v == "allowed" || v == "optional" => {}
                Some(v) if v == "required" => required.push((*name).to_string()),
                Some(v) => {
                    return Err(ConfigError::new(
                        &var,
                        format!("must be required or allowed, got {v:?}"),
                        "required",
                    ))
                }
            }
        }
        let window = gateway_common::dpop::ProofWindow::from_source(src)?;
        Ok(Self {
            required,
            nonce_required: src.bool("DPOP_NONCE_REQUIRED", false)?,
            nonces: match src.get("DPOP_NONCE_SECRET") {
                Some(s) => NonceKey::from_secret(s.as_bytes(), NONCE_PERIOD),
                None => NonceKey::random(NONCE_PERIOD),
            },
            max_age: window.max_age,
            leeway: window.leeway,
        })
    }

    pub fn requires(&self, service: &str) -> bool {
        self.required.iter().any(|s| s == service)
    }
}

/// The `DPoP` request header as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProofHeader<'a> {
    #[default]
    Absent,
    One(&'a [u8]),
    /// Sent more than once: refused (RFC 9449 §4.3 item 1).
    Several,
}

impl<'a> ProofHeader<'a> {
    /// From the values of the `DPoP` header.
    pub fn from_values(mut values: impl Iterator<Item = &'a [u8]>) -> Self {
        match (values.next(), values.next()) {
            (None, _) => ProofHeader::Absent,
            (Some(one), None) => ProofHeader::One(one),
            (Some(_), Some(_)) => ProofHeader::Several,
        }
    }
}

/// How the token was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    Dpop,
}

/// Takes the token out of `Authorization: Bearer …` or `Authorization: DPoP …`.
pub fn extract(
    header: AuthorizationHeader<'_>,
    max_token_bytes: usize,
) -> (Extracted<&str>, Scheme) {
    let (located, scheme) = locate(header, max_token_bytes);
    (crate::token::checked(located), scheme)
}

/// [`extract`] without the token's syntax check (see [`crate::token::locate`]).
pub(crate) fn locate(
    header: AuthorizationHeader<'_>,
    max_token_bytes: usize,
) -> (Extracted<&[u8]>, Scheme) {
    if let AuthorizationHeader::One(raw) = header {
        if raw.len() > 4 && raw[..4].eq_ignore_ascii_case(b"DPoP") && raw[4] == b' ' {
            return (
                crate::token::locate_after_scheme(&raw[4..], max_token_bytes),
                Scheme::Dpop,
            );
        }
    }
    (
        crate::token::locate(header, max_token_bytes),
        Scheme::Bearer,
    )
}

/// Why DPoP refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopDeny {
    /// A bound token, or a service that wants DPoP, without a usable proof.
    #[error("a DPoP proof is required")]
    ProofRequired,
    /// `Authorization: DPoP` with a token that is not bound to a key.
    #[error("the token is not DPoP-bound")]
    NotBound,
    #[error("{0}")]
    Invalid(ProofError),
    /// The proof lacks a (fresh) nonce of ours; the value is a new one.
    #[error("a DPoP nonce is required")]
    UseNonce(String),
}

impl DpopDeny {
    /// `error` and `error_description` of the `DPoP` challenge.
    pub fn challenge(&self) -> (&'static str, &'static str) {
        match self {
            DpopDeny::ProofRequired => (
                "invalid_token",
                "This token must be presented as a DPoP token with a DPoP proof",
            ),
            DpopDeny::NotBound => (
                "invalid_token",
                "The DPoP scheme needs a DPoP-bound access token",
            ),
            DpopDeny::Invalid(e) => ("invalid_dpop_proof", e.description()),
            DpopDeny::UseNonce(_) => (
                "use_dpop_nonce",
                "Resource server requires nonce in DPoP proof",
            ),
        }
    }
}

/// A proof accepted here whose `jti` the shared (Redis) memory must still claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofSeen {
    pub key: String,
    pub ttl: u64,
}

const SHARDS: usize = 16;

/// Per-replica memory of proof `jti`s (keyed hashes) until they lapse.
#[derive(Debug)]
pub struct ReplayCache {
    shards: Vec<Mutex<HashMap<u64, u64>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for ReplayCache {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }
}

impl ReplayCache {
    /// Remembers `(jkt, jti)` until `until`; false if it was already there.
    pub fn first_use(&self, jkt: &str, jti: &str, until: u64, now: u64) -> bool {
        let mut h = self.hasher.build_hasher();
        jkt.hash(&mut h);
        jti.hash(&mut h);
        let id = h.finish();
        let shard = &self.shards[(id as usize) % SHARDS];
        let Ok(mut map) = shard.lock() else {
            return false;
        };
        if map.len() >= 4096 {
            map.retain(|_, exp| *exp > now);
        }
        match map.get(&id) {
            Some(exp) if *exp > now => false,
            _ => {
                map.insert(id, until);
                true
            }
        }
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |m| m.len()))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The verifier's DPoP state: settings, replay memory, the shared store.
#[derive(Debug)]
pub struct DpopState {
    pub config: DpopConfig,
    pub replay: ReplayCache,
    /// Proof keys parsed once per client key (see [`proof::ProofKeys`]).
    pub keys: proof::ProofKeys,
    shared: OnceLock<Arc<dyn gateway_store::Store>>,
}

impl DpopState {
    pub fn new(config: DpopConfig) -> Self {
        Self {
            config,
            replay: ReplayCache::default(),
            keys: proof::ProofKeys::default(),
            shared: OnceLock::new(),
        }
    }

    /// Replay memory shared by every replica (the Redis of `REDIS_URL`).
    pub fn set_shared(&self, store: Arc<dyn gateway_store::Store>) {
        let _ = self.shared.set(store);
    }

    pub fn is_shared(&self) -> bool {
        self.shared.get().is_some()
    }

    /// Claims a proof `jti` in the shared memory: false if another replica
    /// (or this one) saw it. A store failure refuses (fail closed).
    pub async fn claim_shared(&self, seen: &ProofSeen) -> bool {
        let Some(store) = self.shared.get() else {
            return true;
        };
        match store
            .put_if_absent(&seen.key, b"1", Some(Duration::from_secs(seen.ttl.max(1))))
            .await
        {
            Ok(first) => first,
            Err(e) => {
                tracing::warn!(error = %e, "DPoP replay check: Redis unavailable; refusing");
                false
            }
        }
    }

    /// The `DPoP-Nonce` to send with a challenge, when nonces are required.
    pub fn challenge_nonce(&self, now: u64) -> Option<String> {
        self.config
            .nonce_required
            .then(|| self.config.nonces.issue(now))
    }

    /// Decides DPoP for a token that verified and whose audience fits.
    /// `bound`: the token's `cnf.jkt`. `Ok(Some(_))`: a proof was accepted,
    /// and the shared memory must still claim it.
    #[allow(clippy::too_many_arguments)]
    pub fn check(
        &self,
        req: &ForwardedRequest<'_>,
        service: &str,
        bound: Option<&str>,
        token: &[u8],
        scheme: Scheme,
        header: ProofHeader<'_>,
        now: u64,
    ) -> Result<Option<ProofSeen>, DpopDeny> {
        let jkt = match (bound, scheme) {
            (None, Scheme::Bearer) => {
                if self.config.requires(service) {
                    return Err(DpopDeny::ProofRequired);
                }
                return Ok(None);
            }
            (None, Scheme::Dpop) => return Err(DpopDeny::NotBound),
            // RFC 9449 §7.2: a bound token as a bearer token is refused.
            (Some(_), Scheme::Bearer) => return Err(DpopDeny::ProofRequired),
            (Some(jkt), Scheme::Dpop) => jkt,
        };
        let raw = match header {
            ProofHeader::Absent => return Err(DpopDeny::ProofRequired),
            ProofHeader::Several => return Err(DpopDeny::Invalid(ProofError::Malformed)),
            ProofHeader::One(raw) => {
                std::str::from_utf8(raw).map_err(|_| DpopDeny::Invalid(ProofError::Malformed))?
            }
        };
        // Located, not yet checked when it came from the cache; as text
        // only here, for the proof's `ath` (RFC 9449 §4.3).
        let token =
            std::str::from_utf8(token).map_err(|_| DpopDeny::Invalid(ProofError::Malformed))?;
        let url = format!("{}://{}{}", req.proto, req.host, req.path());
        let check = ProofCheck {
            method: req.method,
            url: &url,
            access_token: Some(token),
            now,
            max_age: self.config.max_age,
            leeway: self.config.leeway,
        };
        let valid = self
            .keys
            .validate(raw.trim(), &check)
            .map_err(DpopDeny::Invalid)?;
        if valid.jkt != jkt {
            return Err(DpopDeny::Invalid(ProofError::WrongKey));
        }
        if self.config.nonce_required
            && !valid
                .nonce
                .as_deref()
                .is_some_and(|n| self.config.nonces.accepts(n, now))
        {
            return Err(DpopDeny::UseNonce(self.config.nonces.issue(now)));
        }
        let until = valid.replay_until(&check);
        if !self.replay.first_use(&valid.jkt, &valid.jti, until, now) {
            return Err(DpopDeny::Invalid(ProofError::Replayed));
        }
        Ok(self.is_shared().then(|| ProofSeen {
            key: format!(
                "verifier:dpop-jti:{}",
                gateway_common::crypto::hash_secret(&format!("{}\n{}", valid.jkt, valid.jti))
            ),
            ttl: until.saturating_sub(now),
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn schemes_are_told_apart() {
        let h = |s: &'static str| AuthorizationHeader::One(s.as_bytes());
        assert_eq!(
            extract(h("DPoP abc.def"), 64),
            (Extracted::Token("abc.def"), Scheme::Dpop)
        );
        assert_eq!(
            extract(h("dpop abc"), 64),
            (Extracted::Token("abc"), Scheme::Dpop)
        );
        assert_eq!(
            extract(h("Bearer abc"), 64),
            (Extracted::Token("abc"), Scheme::Bearer)
        );
        assert_eq!(extract(h("DPoPabc"), 64).0, Extracted::None);
        assert_eq!(extract(h("DPoP a b"), 64).0, Extracted::Malformed);
    }

    #[test]
    fn the_replay_cache_remembers_until_expiry() {
        let c = ReplayCache::default();
        assert!(c.first_use("k", "j", 100, 10));
        assert!(!c.first_use("k", "j", 100, 50));
        assert!(c.first_use("k2", "j", 100, 50));
        assert!(c.first_use("k", "j", 200, 100), "lapsed");
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn config() {
        let src = Source::from_pairs([("MCP_ECHO_DPOP", "required"), ("MCP_TIME_DPOP", "allowed")]);
        let c = DpopConfig::from_source(&src, &["echo", "time"]).unwrap();
        assert!(c.requires("echo") && !c.requires("time"));
        let bad = Source::from_pairs([("MCP_ECHO_DPOP", "yes")]);
        assert_eq!(
            DpopConfig::from_source(&bad, &["echo"]).unwrap_err().var,
            "MCP_ECHO_DPOP"
        );
    }
}
