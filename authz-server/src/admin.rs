//! Store-only operations on the authorization server's records, shared by
//! the server's own endpoints (RFC 7592 `DELETE /register/{id}`, token
//! revocation) and the operator CLI (`mcp-gateway clients delete`, `revoke`),
//! so a client deleted either way loses exactly the same things.
//!
//! They take the store and the time as arguments and need no signing keys:
//! the CLI runs them against a data directory without loading keys.

use std::time::Duration;

use gateway_common::flow::{flow_client_prefix, parse_flow_key};
use gateway_common::revocation::{
    grant_revocation_id, revoked_key, RevocationEvent, REVOCATION_CHANNEL,
};
use gateway_store::{Store, StoreError};
use serde::de::DeserializeOwned;

use crate::protocol::records::{
    client_key, family_key, grant_sid, ClientRecord, ConsentRecord, RefreshFamily,
};

pub const CLIENT_PREFIX: &str = "authz:client:";
pub const FAMILY_PREFIX: &str = "authz:refresh:";
pub const CONSENT_PREFIX: &str = "authz:consent:";
pub const SESSION_PREFIX: &str = "authz:session:";

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("record {key} is not readable ({detail}); was it written by another version?")]
    Corrupt { key: String, detail: String },
    #[error("{0}")]
    NotFound(String),
}

pub type AdminResult<T> = Result<T, AdminError>;

pub fn corrupt(key: &str, e: impl std::fmt::Display) -> AdminError {
    AdminError::Corrupt {
        key: key.to_string(),
        detail: e.to_string(),
    }
}

/// A record decoded as `T`; `None` when absent (or expired).
pub async fn read<T: DeserializeOwned>(store: &dyn Store, key: &str) -> AdminResult<Option<T>> {
    match store.get(key).await? {
        None => Ok(None),
        Some(raw) => serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| corrupt(key, e)),
    }
}

/// Every live record under `prefix` (SCAN, never KEYS), decoded as `T`.
/// Records that vanish between the scan and the read are skipped.
pub async fn read_all<T: DeserializeOwned>(
    store: &dyn Store,
    prefix: &str,
) -> AdminResult<Vec<(String, T)>> {
    let mut keys = store.keys_with_prefix(prefix).await?;
    keys.sort();
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        if let Some(v) = read(store, &key).await? {
            out.push((key, v));
        }
    }
    Ok(out)
}

pub async fn clients(store: &dyn Store) -> AdminResult<Vec<ClientRecord>> {
    Ok(read_all::<ClientRecord>(store, CLIENT_PREFIX)
        .await?
        .into_iter()
        .map(|(_, c)| c)
        .collect())
}

pub async fn families(store: &dyn Store) -> AdminResult<Vec<RefreshFamily>> {
    Ok(read_all::<RefreshFamily>(store, FAMILY_PREFIX)
        .await?
        .into_iter()
        .map(|(_, f)| f)
        .collect())
}

/// Consent records as (key, user sub, record) for one client. The key is
/// `authz:consent:<sub>:<client_id>`; subs contain `:` (`local:alice`), so the
/// client id is matched as the suffix.
pub async fn consents_of_client(
    store: &dyn Store,
    client_id: &str,
) -> AdminResult<Vec<(String, String, ConsentRecord)>> {
    let suffix = format!(":{client_id}");
    Ok(read_all::<ConsentRecord>(store, CONSENT_PREFIX)
        .await?
        .into_iter()
        .filter_map(|(key, rec)| {
            let sub = key
                .strip_prefix(CONSENT_PREFIX)?
                .strip_suffix(&suffix)?
                .to_string();
            Some((key, sub, rec))
        })
        .collect())
}

/// Publishes the revocation of one access token: a `revoked:<jti>` record
/// living until the token's `exp`, and an event on [`REVOCATION_CHANNEL`]
/// that verifiers apply at once. A token already past `exp` needs nothing.
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

/// How long a family record is kept: until its refresh token and its last
/// access token have both lapsed (a revoked family must still say so).
pub fn family_ttl(now: u64, f: &RefreshFamily) -> Duration {
    Duration::from_secs(f.exp.max(f.last_access_exp()).saturating_sub(now).max(1))
}

/// What revoking a family did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyRevocation {
    /// This call marked it revoked (false: it already was).
    pub newly_revoked: bool,
    /// A revocation of its access tokens was published (false: the last one had lapsed).
    pub access_published: bool,
}

/// Marks a family revoked (so neither its current nor any rotated refresh
/// token works) and revokes its access tokens: one revocation of the grant's
/// `sid`, which every access token of the grant carries, kept until the
/// newest of them lapses. `None` if there is no such family.
pub async fn revoke_family(
    store: &dyn Store,
    now: u64,
    family_id: &str,
) -> AdminResult<Option<FamilyRevocation>> {
    let key = family_key(family_id);
    let mut last_access_exp = 0;
    let mut newly_revoked = false;
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
            newly_revoked = true;
            break;
        }
    }
    let id = grant_revocation_id(&grant_sid(family_id));
    let access_published = revoke_access_token(store, now, &id, last_access_exp).await?;
    Ok(Some(FamilyRevocation {
        newly_revoked,
        access_published,
    }))
}

/// What deleting a client did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeleteReport {
    pub clients_deleted: usize,
    pub families_revoked: usize,
    pub access_tokens_revoked: usize,
    pub consents_deleted: usize,
}

impl DeleteReport {
    pub fn add(&mut self, o: &DeleteReport) {
        self.clients_deleted += o.clients_deleted;
        self.families_revoked += o.families_revoked;
        self.access_tokens_revoked += o.access_tokens_revoked;
        self.consents_deleted += o.consents_deleted;
    }
}

impl std::fmt::Display for DeleteReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "deleted {} client(s); revoked {} authorization(s) and {} access token(s); removed {} consent(s)",
            self.clients_deleted, self.families_revoked, self.access_tokens_revoked, self.consents_deleted
        )
    }
}

/// Deletes a client with everything it holds: every access token of its
/// grants is revoked (published to verifiers, which cut them off at once),
/// then its refresh families, consents and flow records are removed, then the
/// registration itself. Nothing of the client stays listed.
///
/// Tokens go first: a failure part-way leaves the client in place, so the
/// operation can simply be run again.
pub async fn delete_client(
    store: &dyn Store,
    now: u64,
    client_id: &str,
) -> AdminResult<DeleteReport> {
    let key = client_key(client_id);
    if store.get(&key).await?.is_none() {
        return Err(AdminError::NotFound(format!("no client {client_id}")));
    }
    let mut report = DeleteReport::default();
    for f in families(store).await? {
        if f.client_id != client_id {
            continue;
        }
        if !f.revoked {
            if let Some(r) = revoke_family(store, now, &f.family_id).await? {
                report.families_revoked += 1;
                report.access_tokens_revoked += usize::from(r.access_published);
            }
        }
        // The grant's `revoked:` record outlives the family: a refresh token
        // of a deleted client has no client to be used with.
        store.delete(&family_key(&f.family_id)).await?;
    }
    for (key, _, _) in consents_of_client(store, client_id).await? {
        if store.delete(&key).await? {
            report.consents_deleted += 1;
        }
    }
    for key in store
        .keys_with_prefix(&flow_client_prefix(client_id))
        .await?
    {
        // The prefix alone could also cover a client id that extends this one past a `:`.
        if parse_flow_key(&key).is_some_and(|(c, _)| c == client_id) {
            store.delete(&key).await?;
        }
    }
    if store.delete(&key).await? {
        report.clients_deleted = 1;
    }
    Ok(report)
}
