//! `mcp-gateway clients list|show|delete|delete-test`.

use std::fmt::Write as _;

use gateway_store::Store;
use mcp_authz::protocol::records::{client_key, ClientRecord, RefreshFamily};

use crate::error::{AdminError, AdminResult};
use crate::records::{clients, consents_of_client, families, read};

/// One line of `clients list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSummary {
    pub client_id: String,
    pub name: Option<String>,
    pub issued_at: u64,
    pub expires_at: Option<u64>,
    /// Refresh families (authorizations) that are not revoked.
    pub active_families: usize,
}

pub async fn list(store: &dyn Store) -> AdminResult<Vec<ClientSummary>> {
    let fams = families(store).await?;
    Ok(clients(store)
        .await?
        .into_iter()
        .map(|c| ClientSummary {
            active_families: fams
                .iter()
                .filter(|f| f.client_id == c.client_id && !f.revoked)
                .count(),
            name: c.metadata.client_name.clone(),
            issued_at: c.issued_at,
            expires_at: c.expires_at,
            client_id: c.client_id,
        })
        .collect())
}

pub fn render_list(rows: &[ClientSummary]) -> String {
    let mut out = String::from("CLIENT_ID\tNAME\tISSUED_AT\tEXPIRES_AT\tACTIVE_AUTHORIZATIONS\n");
    for r in rows {
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            r.client_id,
            r.name.as_deref().unwrap_or("-"),
            r.issued_at,
            r.expires_at.map_or("never".to_string(), |e| e.to_string()),
            r.active_families
        );
    }
    out
}

/// `clients show ID`: the record (secrets are stored hashed and never shown)
/// with its authorizations and consents.
#[derive(Debug)]
pub struct ClientDetail {
    pub client: ClientRecord,
    pub families: Vec<RefreshFamily>,
    pub consent_users: Vec<String>,
}

pub async fn show(store: &dyn Store, client_id: &str) -> AdminResult<ClientDetail> {
    let client: ClientRecord = read(store, &client_key(client_id))
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no client {client_id}")))?;
    let families = families(store)
        .await?
        .into_iter()
        .filter(|f| f.client_id == client_id)
        .collect();
    let consent_users = consents_of_client(store, client_id)
        .await?
        .into_iter()
        .map(|(_, sub, _)| sub)
        .collect();
    Ok(ClientDetail {
        client,
        families,
        consent_users,
    })
}

pub fn render_show(d: &ClientDetail) -> String {
    let c = &d.client;
    let mut out = String::new();
    let _ = writeln!(out, "client_id:        {}", c.client_id);
    let _ = writeln!(out, "name:             {}", c.display_name());
    let _ = writeln!(out, "source:           {:?}", c.source);
    let _ = writeln!(
        out,
        "auth method:      {}",
        c.metadata.token_endpoint_auth_method.as_str()
    );
    let _ = writeln!(
        out,
        "redirect_uris:    {}",
        c.metadata.redirect_uris.join(" ")
    );
    let _ = writeln!(
        out,
        "grant_types:      {}",
        c.metadata.grant_types.join(" ")
    );
    let _ = writeln!(out, "issued_at:        {}", c.issued_at);
    let _ = writeln!(
        out,
        "expires_at:       {}",
        c.expires_at.map_or("never".to_string(), |e| e.to_string())
    );
    let _ = writeln!(out, "consented users:  {}", d.consent_users.join(" "));
    let _ = writeln!(out, "authorizations:   {}", d.families.len());
    for f in &d.families {
        let _ = writeln!(
            out,
            "  {}  user={} scope={:?} refresh_exp={} revoked={} last_access_exp={}",
            f.family_id,
            f.user.sub,
            f.scope,
            f.exp,
            f.revoked,
            f.last_access_exp()
        );
    }
    out
}

pub use mcp_authz::admin::DeleteReport;

/// Deletes a client with everything it holds (the implementation behind
/// RFC 7592 `DELETE /register/{id}` too): its access tokens are revoked at
/// the verifiers, its refresh families, consents and flow records removed,
/// then the registration itself.
pub async fn delete(store: &dyn Store, now: u64, client_id: &str) -> AdminResult<DeleteReport> {
    Ok(mcp_authz::admin::delete_client(store, now, client_id).await?)
}

/// `clients delete-test --name-pattern GLOB`: deletes every client whose
/// `client_name` matches (clients without a name never match). With
/// `dry_run`, only lists them.
pub async fn delete_matching(
    store: &dyn Store,
    now: u64,
    pattern: &str,
    dry_run: bool,
) -> AdminResult<(Vec<String>, DeleteReport)> {
    let mut matched = Vec::new();
    let mut total = DeleteReport::default();
    for c in clients(store).await? {
        let Some(name) = c.metadata.client_name.as_deref() else {
            continue;
        };
        if !crate::glob::matches(pattern, name) {
            continue;
        }
        matched.push(format!("{}\t{name}", c.client_id));
        if !dry_run {
            total.add(&delete(store, now, &c.client_id).await?);
        }
    }
    Ok((matched, total))
}
