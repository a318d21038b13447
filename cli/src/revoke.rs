//! Revocation exactly as the authorization server does it: the same
//! functions ([`mcp_authz::admin`]), which need only the store, so the CLI
//! revokes without loading or creating signing keys.

use gateway_store::Store;

use crate::error::AdminResult;

/// Revokes one access token; a token already past `exp` needs nothing.
/// Returns whether a revocation was published.
pub async fn revoke_access_token(
    store: &dyn Store,
    now: u64,
    jti: &str,
    exp: u64,
) -> AdminResult<bool> {
    Ok(mcp_authz::admin::revoke_access_token(store, now, jti, exp).await?)
}

/// Marks a family revoked and revokes its access tokens. Returns the number
/// of revocations published (0 when its last access token has already
/// lapsed), or `None` if no such family.
pub async fn revoke_family(
    store: &dyn Store,
    now: u64,
    family_id: &str,
) -> AdminResult<Option<usize>> {
    Ok(mcp_authz::admin::revoke_family(store, now, family_id)
        .await?
        .map(|r| usize::from(r.access_published)))
}
