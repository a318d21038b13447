//! Who a token speaks for, whatever the sign-in that established it.

use serde::{Deserialize, Serialize};

/// A signed-in user, as carried into codes, refresh families and tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Stable id: `local:<name>`, `github:<id>`, `oidc:<sub>`.
    pub sub: String,
    /// Login name shown to people and put in the token's `name`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// `local`, `github`, `oidc`.
    pub idp: String,
    /// The upstream provider's access token, sealed (`KeyManager::seal_bytes`),
    /// kept so a refresh can re-check the allowlists (GitHub). Never in a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_token: Option<String>,
    /// Unix time the allowlists were last checked with the upstream provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<u64>,
}
