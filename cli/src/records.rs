//! Reading the authorization server's records (layouts and key names are
//! `mcp_authz::records`; the CLI defines none of its own).

use gateway_store::Store;
use mcp_authz::records::{ClientRecord, ConsentRecord, RefreshFamily};
use serde::de::DeserializeOwned;

use crate::error::{corrupt, AdminResult};

pub const CLIENT_PREFIX: &str = "authz:client:";
pub const FAMILY_PREFIX: &str = "authz:refresh:";
pub const CONSENT_PREFIX: &str = "authz:consent:";
pub const SESSION_PREFIX: &str = "authz:session:";

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

/// Whether `who` names this user: the stable `sub` (`local:alice`) or the login name.
pub fn is_user(user: &mcp_authz::signin::Identity, who: &str) -> bool {
    user.sub == who || user.name == who
}
