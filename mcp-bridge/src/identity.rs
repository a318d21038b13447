//! Who is calling: the identity the verifier vouched for.

/// Identity headers set by the verifier. Always all present upstream of us; empty if unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    pub user_id: String,
    pub user_name: String,
    pub user_email: String,
    pub client_id: String,
    pub scopes: String,
}
