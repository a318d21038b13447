//! RFC 7591 dynamic client registration and RFC 7592 management.
//!
//! Secrets are stored hashed, so they are shown once. RFC 7592 reads and
//! updates therefore cannot repeat the client secret: the response omits it
//! (the client keeps the one it got at registration), and — because the
//! registration access token is hashed too — every read or update issues a
//! fresh registration access token (RFC 7592 §3 allows rotating it; the client
//! must use the new one from then on). The registration access token is only
//! accepted here, and access tokens are never accepted here.

use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use gateway_common::crypto::{hash_secret, random_token, verify_secret};

use super::no_store_json;
use crate::protocol::error::OAuthError;
use crate::protocol::records::{client_key, ClientRecord, ClientSource};
use crate::protocol::registration::{information_response, take_metadata, MAX_BODY};
use crate::state::AppState;

fn internal(e: impl std::fmt::Display) -> OAuthError {
    OAuthError::Internal(e.to_string())
}

fn parse_json(req: &HttpRequest, body: &Bytes) -> Result<serde_json::Value, OAuthError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/json")
    {
        return Err(OAuthError::InvalidClientMetadata(
            "the body must be application/json".into(),
        ));
    }
    if body.len() > MAX_BODY {
        return Err(OAuthError::InvalidClientMetadata(
            "the body is too large".into(),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|_| OAuthError::InvalidClientMetadata("the body is not valid JSON".into()))
}

/// `CLIENT_CREDENTIALS_ENABLED=false`: no client registers for the grant.
fn machine_grant_allowed(
    state: &AppState,
    metadata: &crate::protocol::records::ClientMetadata,
) -> Result<(), OAuthError> {
    let wants = metadata
        .grant_types
        .iter()
        .any(|g| g == crate::protocol::client_credentials::GRANT_CLIENT_CREDENTIALS);
    if wants && !state.config.machine.enabled {
        return Err(OAuthError::InvalidClientMetadata(
            "the client_credentials grant is disabled on this server".into(),
        ));
    }
    Ok(())
}

fn client_uri(state: &AppState, client_id: &str) -> String {
    format!("{}/register/{client_id}", state.config.issuer)
}

fn ttl(state: &AppState, rec: &ClientRecord) -> Option<Duration> {
    rec.expires_at
        .map(|e| Duration::from_secs(e.saturating_sub(state.now()).max(1)))
}

/// `POST /register` (RFC 7591 §3.1): 201 with the client information response.
pub async fn register(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let value = parse_json(&req, &body)?;
    let metadata = take_metadata(value, &state.config.scopes_supported)?;
    machine_grant_allowed(&state, &metadata)?;
    let now = state.now();
    // A time-ordered id (RFC 9562 §5.7): each registration's records land at
    // the right-hand edge of the embedded store's B-tree, so a group commit
    // of many registrations rewrites a few pages instead of one path per
    // client. A client id is public (RFC 7591 §3.2.1 issues it to anyone who
    // registers; nothing is authorized by knowing it), so ordering costs no
    // secrecy. Past the millisecond it holds a counter seeded at random each
    // millisecond and 32 random bits, so ids from several instances do not
    // collide.
    let client_id = uuid::Uuid::now_v7().to_string();
    let secret = metadata
        .token_endpoint_auth_method
        .has_secret()
        .then(|| random_token(32));
    let registration_token = random_token(32);
    let rec = ClientRecord {
        client_id: client_id.clone(),
        source: ClientSource::Registered,
        issued_at: now,
        expires_at: state.config.client_lifetime.map(|l| now + l.as_secs()),
        secret_hash: secret.as_deref().map(hash_secret),
        registration_token_hash: Some(hash_secret(&registration_token)),
        metadata,
    };
    let raw = serde_json::to_vec(&rec).map_err(internal)?;
    // One record per registration. The flow trail's "registered" step
    // (`mcp-gateway flows`) is this record's `issued_at`: a flow record of
    // its own would say the same thing again, cost a second write, and be
    // one more key for every unauthenticated request (RFC 7591 §3 lets
    // anyone register).
    state
        .store
        .put(&client_key(&client_id), &raw, ttl(&state, &rec))
        .await?;
    state.metrics.registrations.inc();
    // No log line of its own: the audit event below says the same, and a
    // formatted event costs as much as the rest of the registration.
    state.audit(gateway_common::audit::AuditEvent::ClientRegistered {
        client_id: client_id.clone(),
        via: "dcr",
        client_name: rec.metadata.client_name.clone(),
    });
    let uri = client_uri(&state, &client_id);
    let body = information_response(&rec, secret.as_deref(), Some(&registration_token), &uri);
    Ok(no_store_json(StatusCode::CREATED, &body))
}

/// The client a registration access token manages (RFC 7592 §2), with its stored bytes.
async fn authorized(
    req: &HttpRequest,
    state: &AppState,
) -> Result<(ClientRecord, Vec<u8>), OAuthError> {
    let client_id = req.match_info().get("client_id").unwrap_or("");
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| {
            OAuthError::InvalidToken("a registration access token is required".into())
        })?;
    // RFC 7592 §2: an unknown client and a wrong token look the same (401), so ids cannot be probed.
    let denied = || {
        OAuthError::InvalidToken(
            "the registration access token is not valid for this client".into(),
        )
    };
    let raw = state
        .store
        .get(&client_key(client_id))
        .await?
        .ok_or_else(denied)?;
    let rec: ClientRecord = serde_json::from_slice(&raw).map_err(internal)?;
    let ok = rec
        .registration_token_hash
        .as_deref()
        .is_some_and(|h| verify_secret(token, h));
    if !ok || rec.expires_at.is_some_and(|e| e <= state.now()) {
        return Err(denied());
    }
    Ok((rec, raw))
}

/// Stores `rec` with a fresh registration access token, if the stored record is still `old_raw`.
async fn save_rotated(
    state: &AppState,
    mut rec: ClientRecord,
    old_raw: &[u8],
) -> Result<(ClientRecord, String), OAuthError> {
    let token = random_token(32);
    rec.registration_token_hash = Some(hash_secret(&token));
    let raw = serde_json::to_vec(&rec).map_err(internal)?;
    if !state
        .store
        .compare_and_swap(
            &client_key(&rec.client_id),
            old_raw,
            Some(&raw),
            ttl(state, &rec),
        )
        .await?
    {
        return Err(OAuthError::InvalidToken(
            "the registration changed concurrently; use the newest token".into(),
        ));
    }
    Ok((rec, token))
}

/// `GET /register/{client_id}` (RFC 7592 §2.1).
pub async fn read(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let (rec, raw) = authorized(&req, &state).await?;
    let (rec, token) = save_rotated(&state, rec, &raw).await?;
    let uri = client_uri(&state, &rec.client_id);
    let body = information_response(&rec, None, Some(&token), &uri);
    Ok(no_store_json(StatusCode::OK, &body))
}

/// `PUT /register/{client_id}` (RFC 7592 §2.2): replaces the metadata.
pub async fn update(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let (rec, raw) = authorized(&req, &state).await?;
    let value = parse_json(&req, &body)?;
    if value.get("client_id").and_then(|v| v.as_str()) != Some(rec.client_id.as_str()) {
        return Err(OAuthError::InvalidRequest(
            "client_id in the body must equal the client being updated".into(),
        ));
    }
    if let Some(sent) = value.get("client_secret").and_then(|v| v.as_str()) {
        // RFC 7592 §2.2: a secret in the body must be the current one.
        if !rec
            .secret_hash
            .as_deref()
            .is_some_and(|h| verify_secret(sent, h))
        {
            return Err(OAuthError::InvalidRequest(
                "client_secret does not match".into(),
            ));
        }
    }
    let metadata = take_metadata(value, &state.config.scopes_supported)?;
    machine_grant_allowed(&state, &metadata)?;
    let was_confidential = rec.metadata.token_endpoint_auth_method.has_secret();
    let confidential = metadata.token_endpoint_auth_method.has_secret();
    // A client that becomes confidential gets a secret (shown now, once); one that becomes public loses it.
    let new_secret = (confidential && !was_confidential).then(|| random_token(32));
    let mut next = rec.clone();
    next.metadata = metadata;
    next.secret_hash = match (&new_secret, confidential) {
        (Some(s), _) => Some(hash_secret(s)),
        (None, true) => rec.secret_hash.clone(),
        (None, false) => None,
    };
    let (next, token) = save_rotated(&state, next, &raw).await?;
    let uri = client_uri(&state, &next.client_id);
    let body = information_response(&next, new_secret.as_deref(), Some(&token), &uri);
    Ok(no_store_json(StatusCode::OK, &body))
}

/// `DELETE /register/{client_id}` (RFC 7592 §2.3): 204. The client loses
/// everything it holds, exactly as with `mcp-gateway clients delete`: its
/// access tokens are revoked at the verifiers, its refresh tokens, consents
/// and flow records removed (one implementation: [`crate::admin::delete_client`]).
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let (rec, _) = authorized(&req, &state).await?;
    let report = match crate::admin::delete_client(&*state.store, state.now(), &rec.client_id).await
    {
        Ok(r) => r,
        // Deleted concurrently (by another request or the operator): the outcome asked for.
        Err(crate::admin::AdminError::NotFound(_)) => crate::admin::DeleteReport::default(),
        Err(e) => return Err(crate::issue::admin_error(e)),
    };
    tracing::info!(client_id = %rec.client_id, %report, "client deleted");
    state.audit(gateway_common::audit::AuditEvent::ClientDeleted {
        client_id: rec.client_id.clone(),
        authorizations_revoked: report.families_revoked,
        consents_removed: report.consents_deleted,
    });
    Ok(HttpResponse::NoContent()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}
