//! What the authorization server keeps in the store, and under which keys.
//!
//! Secrets are never stored: client secrets, registration access tokens,
//! refresh tokens, authorization codes, session ids and CSRF tokens are kept as
//! SHA-256 hashes (high-entropy random values; see `gateway_common::crypto`).

use serde::{Deserialize, Serialize};

use crate::protocol::identity::Identity;

pub fn client_key(client_id: &str) -> String {
    format!("authz:client:{client_id}")
}
pub fn code_key(code_hash: &str) -> String {
    format!("authz:code:{code_hash}")
}
/// What the first redemption of a code issued, kept so a replay can revoke it (RFC 6749 §4.1.2).
pub fn code_used_key(code_hash: &str) -> String {
    format!("authz:code-used:{code_hash}")
}
pub fn family_key(family_id: &str) -> String {
    format!("authz:refresh:{family_id}")
}

/// The `sid` claim of a grant's access tokens: derived from the family id
/// (which is the first half of every refresh token of the grant) so that
/// resource servers, who see the claim, learn nothing they could refresh with.
pub fn grant_sid(family_id: &str) -> String {
    let mut h = gateway_common::crypto::hash_secret(&format!("sid:{family_id}"));
    h.truncate(32);
    h
}
pub fn session_key(session_hash: &str) -> String {
    format!("authz:session:{session_hash}")
}
pub fn authreq_key(request_id: &str) -> String {
    format!("authz:authreq:{request_id}")
}
pub fn csrf_key(token_hash: &str) -> String {
    format!("authz:csrf:{token_hash}")
}
pub fn consent_key(sub: &str, client_id: &str) -> String {
    format!("authz:consent:{sub}:{client_id}")
}

/// `token_endpoint_auth_method` values we implement (RFC 7591 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    None,
    ClientSecretBasic,
    ClientSecretPost,
    /// RFC 7523 §2.2 / RFC 7591: a JWT signed with a key from the client's
    /// registered `jwks` or `jwks_uri` (see `crate::protocol::private_key_jwt`).
    PrivateKeyJwt,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }
    pub fn parse(v: &str) -> Option<Self> {
        match v {
            "none" => Some(AuthMethod::None),
            "client_secret_basic" => Some(AuthMethod::ClientSecretBasic),
            "client_secret_post" => Some(AuthMethod::ClientSecretPost),
            "private_key_jwt" => Some(AuthMethod::PrivateKeyJwt),
            _ => None,
        }
    }
    pub fn is_confidential(self) -> bool {
        !matches!(self, AuthMethod::None)
    }
    /// Whether the client authenticates with a secret we issue.
    pub fn has_secret(self) -> bool {
        matches!(
            self,
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
        )
    }
}

/// Client metadata as accepted at registration (RFC 7591 §2). Fields we do not
/// interpret are kept in `extra` and returned as they were sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientMetadata {
    pub redirect_uris: Vec<String>,
    pub token_endpoint_auth_method: AuthMethod,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Where a client's metadata came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientSource {
    /// RFC 7591 dynamic registration.
    Registered,
    /// A Client ID Metadata Document fetched from the https `client_id`.
    MetadataDocument,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientRecord {
    pub client_id: String,
    pub source: ClientSource,
    pub issued_at: u64,
    /// Unix time the registration lapses; `None`: never (`CLIENT_LIFETIME=0`).
    pub expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_token_hash: Option<String>,
    pub metadata: ClientMetadata,
}

impl ClientRecord {
    pub fn display_name(&self) -> &str {
        self.metadata
            .client_name
            .as_deref()
            .unwrap_or(&self.client_id)
    }
    pub fn allows_grant(&self, grant: &str) -> bool {
        self.metadata.grant_types.iter().any(|g| g == grant)
    }
}

/// An authorization code's grant, stored under the code's hash, taken once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeRecord {
    pub client_id: String,
    /// The redirect URI exactly as presented at /authorize (RFC 6749 §4.1.3).
    pub redirect_uri: String,
    pub user: Identity,
    pub scope: String,
    pub resources: Vec<String>,
    pub code_challenge: String,
    pub exp: u64,
}

/// What the first redemption of a code issued.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeUse {
    pub jti: String,
    pub access_exp: u64,
    pub family_id: String,
}

/// An issued access token (the newest of a grant: its expiry bounds how long
/// a revocation of the grant must be remembered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveToken {
    pub jti: String,
    pub exp: u64,
}

/// A refresh-token family (one per authorization). Only the newest token is
/// valid; a rotated one coming back means the family leaked, and the whole
/// family is revoked (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshFamily {
    pub family_id: String,
    pub client_id: String,
    pub user: Identity,
    pub scope: String,
    pub resources: Vec<String>,
    pub current_hash: String,
    /// Hash prefixes of tokens rotated away before generations existed
    /// (emptied by the next rotation; see `token::recognise`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_hashes: Vec<String>,
    /// How many times the family has rotated; every token carries the
    /// generation it was issued at, so an older one is recognised as reuse
    /// for the family's whole life (RFC 9700 §4.14.2).
    #[serde(default)]
    pub generation: u64,
    pub revoked: bool,
    /// When the current refresh token lapses.
    pub exp: u64,
    /// The newest access token issued under this grant. Every access token
    /// of the grant carries its `sid` ([`grant_sid`]), so one revocation
    /// covers them all and the record stays one size however often it is
    /// refreshed.
    #[serde(default)]
    pub last_access: Option<LiveToken>,
    /// The DPoP key (RFC 7638 thumbprint) a public client's refresh tokens are
    /// bound to (RFC 9449 §5): a refresh needs a proof by this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
}

impl RefreshFamily {
    /// When the last access token of the grant lapses (0: none issued).
    pub fn last_access_exp(&self) -> u64 {
        self.last_access.as_ref().map_or(0, |t| t.exp)
    }
}

/// The signed-in user of a browser.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    pub user: Identity,
    pub exp: u64,
}

/// An /authorize request that passed validation, waiting for sign-in and consent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub scope: String,
    pub resources: Vec<String>,
    pub code_challenge: String,
    /// Binds the request to the browser that started it (cookie value hash).
    pub browser_hash: String,
    pub exp: u64,
    /// Set when this request approves a device (RFC 8628): the device code's
    /// hash. Consent then answers the device instead of redirecting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// A single-use form token, bound to one request and one browser.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CsrfRecord {
    pub request_id: String,
    pub browser_hash: String,
    pub purpose: String,
}

/// Consent a user gave a client, remembered until revoked.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConsentRecord {
    pub scopes: Vec<String>,
    pub resources: Vec<String>,
}

impl ConsentRecord {
    pub fn covers(&self, scope: &str, resources: &[String]) -> bool {
        scope
            .split_ascii_whitespace()
            .all(|s| self.scopes.iter().any(|g| g == s))
            && resources.iter().all(|r| self.resources.contains(r))
    }
}
