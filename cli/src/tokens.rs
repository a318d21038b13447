//! `mcp-gateway tokens list|revoke|revoke-user|purge-expired`.
//!
//! Access tokens are JWTs the store never holds; what it holds per
//! authorization is a refresh family (`authz:refresh:<family>`) naming its
//! newest access token (jti + exp). Every access token of an authorization
//! carries the grant's `sid`, so revoking the authorization revokes them all.

use std::fmt::Write as _;

use gateway_common::revocation::{RevocationEvent, REVOKED_PREFIX};
use gateway_store::Store;
use mcp_authz::protocol::records::{
    AuthRequest, ClientRecord, CodeRecord, RefreshFamily, SessionRecord,
};
use serde::de::DeserializeOwned;

use crate::error::{AdminError, AdminResult};
use crate::records::{families, is_user, read_all, CLIENT_PREFIX, FAMILY_PREFIX, SESSION_PREFIX};
use crate::revoke::{revoke_access_token, revoke_family};

pub async fn list(
    store: &dyn Store,
    user: Option<&str>,
    client: Option<&str>,
) -> AdminResult<Vec<RefreshFamily>> {
    Ok(families(store)
        .await?
        .into_iter()
        .filter(|f| user.is_none_or(|u| is_user(&f.user, u)))
        .filter(|f| client.is_none_or(|c| f.client_id == c))
        .collect())
}

pub fn render_list(fams: &[RefreshFamily], now: u64) -> String {
    let mut out =
        String::from("FAMILY\tCLIENT\tUSER\tSCOPE\tREFRESH_EXPIRES\tREVOKED\tLAST_ACCESS_TOKEN\n");
    for f in fams {
        let live: Vec<String> = f
            .last_access
            .iter()
            .filter(|t| t.exp > now)
            .map(|t| format!("{}(exp {})", t.jti, t.exp))
            .collect();
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            f.family_id,
            f.client_id,
            f.user.sub,
            f.scope,
            f.exp,
            f.revoked,
            if live.is_empty() {
                "-".to_string()
            } else {
                live.join(",")
            }
        );
    }
    out
}

/// What `tokens revoke` acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// A whole authorization (refresh family), with this many access tokens.
    Family {
        family_id: String,
        access_tokens: usize,
    },
    /// One access token by `jti`.
    AccessToken { jti: String },
}

/// `tokens revoke JTI_OR_REFRESH`: a refresh token (`<family>.<secret>`), a
/// family id, or an access token's `jti`.
pub async fn revoke(store: &dyn Store, now: u64, what: &str) -> AdminResult<Revoked> {
    // A refresh token is `<family>.<secret>`; the family part names the
    // authorization. A Python gateway token brought over by `import-python`
    // names its family one way (`imported_family_id`).
    let family_id = mcp_authz::protocol::token::parse_refresh_token(what)
        .map(|(f, _)| f)
        .unwrap_or(what);
    let imported = mcp_authz::protocol::token::imported_family_id(what);
    for family_id in std::iter::once(family_id).chain(imported.as_deref()) {
        if let Some(n) = revoke_family(store, now, family_id).await? {
            return Ok(Revoked::Family {
                family_id: family_id.to_string(),
                access_tokens: n,
            });
        }
    }
    for f in families(store).await? {
        if let Some(t) = f.last_access.as_ref().filter(|t| t.jti == what) {
            if !revoke_access_token(store, now, &t.jti, t.exp).await? {
                return Err(AdminError::NotFound(format!(
                    "access token {what} has already expired"
                )));
            }
            return Ok(Revoked::AccessToken {
                jti: what.to_string(),
            });
        }
    }
    Err(AdminError::NotFound(format!(
        "no refresh token, authorization or newest access token {what} (an older access token goes with its authorization: revoke the family)"
    )))
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UserRevocation {
    pub families_revoked: usize,
    pub access_tokens_revoked: usize,
    pub sessions_ended: usize,
}

impl std::fmt::Display for UserRevocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "revoked {} authorization(s) and {} access token(s); ended {} browser session(s)",
            self.families_revoked, self.access_tokens_revoked, self.sessions_ended
        )
    }
}

/// `tokens revoke-user USER` (the `sub`, e.g. `local:alice`, or the login
/// name): every authorization of the user, and their browser sessions so a
/// new authorization needs a fresh sign-in.
pub async fn revoke_user(store: &dyn Store, now: u64, user: &str) -> AdminResult<UserRevocation> {
    let mut report = UserRevocation::default();
    for f in families(store).await? {
        if !is_user(&f.user, user) || f.revoked {
            continue;
        }
        if let Some(n) = revoke_family(store, now, &f.family_id).await? {
            report.families_revoked += 1;
            report.access_tokens_revoked += n;
        }
    }
    for (key, s) in read_all::<SessionRecord>(store, SESSION_PREFIX).await? {
        if is_user(&s.user, user) && store.delete(&key).await? {
            report.sessions_ended += 1;
        }
    }
    Ok(report)
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PurgeReport {
    pub deleted: usize,
    /// Past their recorded expiry but stored without a TTL: kept, because a
    /// record without a TTL was meant to be permanent (or written by hand).
    pub kept_without_ttl: usize,
}

impl std::fmt::Display for PurgeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "purged {} expired record(s); kept {} past-expiry record(s) that have no TTL",
            self.deleted, self.kept_without_ttl
        )
    }
}

/// The expiry a record carries in its own body.
fn logical_expiry<T: DeserializeOwned>(raw: &[u8], exp: impl Fn(T) -> Option<u64>) -> Option<u64> {
    serde_json::from_slice::<T>(raw).ok().and_then(exp)
}

/// `tokens purge-expired`: deletes records whose own expiry has passed but
/// which are still stored (a store TTL that outlives the record's meaning:
/// written by an older version, or a clock that moved). Listing uses SCAN
/// (`keys_with_prefix`), never KEYS. A record without a TTL is never
/// "expired": it is counted and kept.
pub async fn purge_expired(store: &dyn Store, now: u64) -> AdminResult<PurgeReport> {
    type ExpFn = fn(&[u8]) -> Option<u64>;
    let kinds: [(&str, ExpFn); 6] = [
        (FAMILY_PREFIX, |raw| {
            logical_expiry::<RefreshFamily>(raw, |f| Some(f.exp.max(f.last_access_exp())))
        }),
        (CLIENT_PREFIX, |raw| {
            logical_expiry::<ClientRecord>(raw, |c| c.expires_at)
        }),
        (SESSION_PREFIX, |raw| {
            logical_expiry::<SessionRecord>(raw, |s| Some(s.exp))
        }),
        ("authz:code:", |raw| {
            logical_expiry::<CodeRecord>(raw, |c| Some(c.exp))
        }),
        ("authz:authreq:", |raw| {
            logical_expiry::<AuthRequest>(raw, |r| Some(r.exp))
        }),
        (REVOKED_PREFIX, |raw| {
            logical_expiry::<RevocationEvent>(raw, |e| Some(e.exp))
        }),
    ];
    let mut report = PurgeReport::default();
    for (prefix, expiry) in kinds {
        for key in store.keys_with_prefix(prefix).await? {
            let Some(raw) = store.get(&key).await? else {
                continue;
            };
            let Some(exp) = expiry(&raw) else { continue };
            if exp > now {
                continue;
            }
            match store.ttl(&key).await? {
                None => {}
                Some(None) => report.kept_without_ttl += 1,
                // Delete only the bytes we judged, so a record rewritten
                // meanwhile (a refresh rotating the family) survives.
                Some(Some(_)) if store.compare_and_swap(&key, &raw, None, None).await? => {
                    report.deleted += 1;
                }
                Some(Some(_)) => {}
            }
        }
    }
    Ok(report)
}
