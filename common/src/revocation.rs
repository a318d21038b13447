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
