//! Access-token claims (RFC 9068 profile, RFC 8707 audience binding).

use serde::{Deserialize, Serialize};

/// Claims of an access token issued by the authz-server.
///
/// `aud` holds the canonical URL(s) of the MCP resource(s) the token was issued
/// for (RFC 8707 §2); the verifier refuses a token whose `aud` does not name the
/// service the request is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// Stable user id (`github:<id>`, `oidc:<sub>`, `local:<name>`).
    pub sub: String,
    pub aud: Audience,
    pub exp: u64,
    pub iat: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    pub jti: String,
    pub client_id: String,
    /// Space-separated scopes (RFC 9068 §2.2.3).
    #[serde(default)]
    pub scope: String,
    /// Human login name (GitHub login, OIDC preferred_username, local user name).
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Organisations and `org/team` memberships known at issue time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Which upstream identity provider signed the user in (`github`, `oidc`, `local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<String>,
    /// The grant (refresh-token family) this token was issued under, as an
    /// opaque id: revoking the grant publishes one revocation,
    /// [`crate::revocation::grant_revocation_id`], that covers every access
    /// token carrying it, so a grant need not remember each token it issued.
    /// (The name is OpenID Connect's session id claim: a grant is the
    /// client's session with the user.) Absent for tokens without a grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// RFC 7800 confirmation: the key the token is bound to (RFC 9449 §6.1
    /// `jkt`, DPoP). A bound token is accepted only with a proof by that key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// The `cnf` claim (RFC 7800 §3.1) as DPoP uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// RFC 7638 SHA-256 thumbprint of the proof key, base64url (RFC 9449 §6.1).
    pub jkt: String,
}

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn contains(&self, resource: &str) -> bool {
        match self {
            Audience::One(a) => a == resource,
            Audience::Many(list) => list.iter().any(|a| a == resource),
        }
    }

    pub fn as_vec(&self) -> Vec<String> {
        match self {
            Audience::One(a) => vec![a.clone()],
            Audience::Many(list) => list.clone(),
        }
    }
}

impl AccessClaims {
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split_ascii_whitespace()
    }

    pub fn has_scope(&self, wanted: &str) -> bool {
        self.scopes().any(|s| s == wanted)
    }
}

/// The JWT `typ` header value for access tokens (RFC 9068 §2.1), so that an
/// access token cannot be confused with an id_token or any other JWT we sign.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_accepts_string_or_array() {
        let one: Audience = serde_json::from_str(r#""https://a/mcp""#).unwrap();
        let many: Audience = serde_json::from_str(r#"["https://a/mcp","https://b/mcp"]"#).unwrap();
        assert!(one.contains("https://a/mcp"));
        assert!(!one.contains("https://a/mcp/"));
        assert!(many.contains("https://b/mcp"));
        assert!(!many.contains("https://c/mcp"));
    }
}
