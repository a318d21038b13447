//! Revocation exactly as the authorization server does it
//! (`mcp_authz::issue::{revoke_access_token, revoke_family}`): a
//! `revoked:<jti>` record living until the token's `exp` plus an event on
//! `REVOCATION_CHANNEL` for verifiers, and a family marked revoked by
//! compare-and-swap. Those functions take the running server's state (signing
//! keys included); the CLI must revoke without loading or creating keys, so it
//! carries out the same steps on the same shared types.

use std::time::Duration;

use gateway_common::revocation::{
    grant_revocation_id, revoked_key, RevocationEvent, REVOCATION_CHANNEL,
};
use gateway_store::Store;
use mcp_authz::records::{family_key, grant_sid, RefreshFamily};

use crate::error::{corrupt, AdminResult};

/// Revokes one access token; a token already past `exp` needs nothing.
/// Returns whether a revocation was published.
pub async fn revoke_access_token(
    store: &dyn Store,
    now: u64,
    jti: &str,
    exp: u64,
) -> AdminResult<bool> {
    if exp <= now {
        return Ok(false);
    }
    let event = RevocationEvent {
        jti: jti.to_string(),
        exp,
    };
    let key = revoked_key(jti);
    let raw = serde_json::to_vec(&event).map_err(|e| corrupt(&key, e))?;
    store
        .put(&key, &raw, Some(Duration::from_secs(exp - now)))
        .await?;
    store.publish(REVOCATION_CHANNEL, &raw).await?;
    Ok(true)
}

/// The family record's lifetime, as the server computes it: until its refresh
/// token and its last access token have both lapsed.
pub fn family_ttl(now: u64, f: &RefreshFamily) -> Duration {
    Duration::from_secs(f.exp.max(f.last_access_exp()).saturating_sub(now).max(1))
}

/// Marks a family revoked and revokes its access tokens (one revocation of
/// the grant's `sid`, which every access token of the grant carries). Returns
/// the number of revocations published (0 when its last access token has
/// already lapsed), or `None` if no such family.
pub async fn revoke_family(
    store: &dyn Store,
    now: u64,
    family_id: &str,
) -> AdminResult<Option<usize>> {
    let key = family_key(family_id);
    let mut last_access_exp = 0;
    // A concurrent refresh may rotate the record between read and swap; retry.
    for _ in 0..8 {
        let Some(raw) = store.get(&key).await? else {
            return Ok(None);
        };
        let mut fam: RefreshFamily = serde_json::from_slice(&raw).map_err(|e| corrupt(&key, e))?;
        last_access_exp = fam.last_access_exp();
        if fam.revoked {
            break;
        }
        fam.revoked = true;
        let new = serde_json::to_vec(&fam).map_err(|e| corrupt(&key, e))?;
        if store
            .compare_and_swap(&key, &raw, Some(&new), Some(family_ttl(now, &fam)))
            .await?
        {
            break;
        }
    }
    let id = grant_revocation_id(&grant_sid(family_id));
    let published = revoke_access_token(store, now, &id, last_access_exp).await?;
    Ok(Some(usize::from(published)))
}
