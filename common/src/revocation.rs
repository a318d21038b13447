//! Revocation events: published by the authz-server, consumed by verifiers.
//!
//! Transport: the store's publish/subscribe channel [`REVOCATION_CHANNEL`] when
//! Redis is shared; otherwise the authz-server's `GET /revocations` snapshot and
//! `GET /revocations/stream` (server-sent events, one [`RevocationEvent`] JSON per
//! `data:` line). A record `revoked:<jti>` with TTL until the token's `exp` lets a
//! reconnecting consumer catch up (list by prefix).

use serde::{Deserialize, Serialize};

pub const REVOCATION_CHANNEL: &str = "mcp-gateway:revocations";
pub const REVOKED_PREFIX: &str = "revoked:";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationEvent {
    /// What is revoked: an access token's `jti`, or a whole grant's
    /// [`grant_revocation_id`] (every access token whose `sid` names it).
    pub jti: String,
    /// The token's `exp`; after it the id need not be remembered.
    pub exp: u64,
}

/// Snapshot served at `GET /revocations`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationSnapshot {
    pub revoked: Vec<RevocationEvent>,
}

/// The revoked id that stands for every access token of one grant (claim
/// `sid`). Its own namespace: a `jti` is a UUID and never starts so.
pub fn grant_revocation_id(sid: &str) -> String {
    format!("grant:{sid}")
}

pub fn revoked_key(jti: &str) -> String {
    format!("{REVOKED_PREFIX}{jti}")
}

/// The shared secret verifiers present to follow the authz-server's feed
/// (`REVOCATION_FEED_SECRET`, or a file named by `REVOCATION_FEED_SECRET_FILE`).
/// The feed is a long-lived stream and lists revoked ids: only verifiers need
/// it, so it is not public. Without a secret the authz-server serves it to
/// loopback peers only (one machine). `Debug` prints nothing.
#[derive(Clone)]
pub struct FeedSecret(String);

impl std::fmt::Debug for FeedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FeedSecret(<redacted>)")
    }
}

impl FeedSecret {
    pub const VAR: &'static str = "REVOCATION_FEED_SECRET";
    pub const FILE_VAR: &'static str = "REVOCATION_FEED_SECRET_FILE";

    /// Reads the secret (inline or from a file; at least 32 characters).
    pub fn from_source(
        src: &crate::config::Source,
    ) -> Result<Option<Self>, crate::config::ConfigError> {
        use crate::config::ConfigError;
        let example = "a random string: mcp-gateway generate-secrets";
        let (var, value) = match (src.get(Self::VAR), src.get(Self::FILE_VAR)) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    Self::VAR,
                    format!("set either {} or {}, not both", Self::VAR, Self::FILE_VAR),
                    example,
                ))
            }
            (Some(v), None) => (Self::VAR, v.to_string()),
            (None, Some(path)) => (
                Self::FILE_VAR,
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        ConfigError::new(
                            Self::FILE_VAR,
                            format!("cannot read {path}: {e}"),
                            "/run/secrets/revocation-feed",
                        )
                    })?
                    .trim()
                    .to_string(),
            ),
            (None, None) => return Ok(None),
        };
        if value.len() < 32 || value.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(ConfigError::new(
                var,
                "must be at least 32 printable characters without spaces",
                example,
            ));
        }
        Ok(Some(Self(value)))
    }

    /// The `Authorization` header value a verifier sends.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Whether an `Authorization` header carries this secret (constant time).
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        authorization.is_some_and(|v| crate::crypto::ct_eq(v, self.bearer().as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Source;

    #[test]
    fn the_feed_secret_is_checked_and_never_printed() {
        let s = "s".repeat(40);
        let secret = FeedSecret::from_source(&Source::from_pairs([(FeedSecret::VAR, s.as_str())]))
            .expect("valid")
            .expect("set");
        assert!(secret.accepts(Some(format!("Bearer {s}").as_bytes())));
        assert!(!secret.accepts(Some(format!("Bearer {s}x").as_bytes())));
        assert!(!secret.accepts(None));
        assert!(!format!("{secret:?}").contains(&s));
        let short = FeedSecret::from_source(&Source::from_pairs([(FeedSecret::VAR, "short")]));
        assert!(short.unwrap_err().to_string().contains(FeedSecret::VAR));
        assert!(FeedSecret::from_source(&Source::from_pairs([("X", "y")]))
            .expect("ok")
            .is_none());
    }
}
