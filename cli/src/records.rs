//! Reading the authorization server's records (layouts and key names are
//! `mcp_authz::protocol::records`, readers `mcp_authz::admin`; the CLI defines none of its own).

pub use mcp_authz::admin::{
    clients, consents_of_client, families, read, read_all, CLIENT_PREFIX, CONSENT_PREFIX,
    FAMILY_PREFIX, SESSION_PREFIX,
};

/// Whether `who` names this user: the stable `sub` (`local:alice`) or the login name.
pub fn is_user(user: &mcp_authz::signin::Identity, who: &str) -> bool {
    user.sub == who || user.name == who
}
