//! `POST /token` (RFC 6749 §3.2): `authorization_code`, `refresh_token`, the
//! device code and `client_credentials`; DPoP-bound when a proof comes along
//! (RFC 9449, `http::machine`).

use gateway_common::audit::AuditEvent;
use gateway_common::flow::FlowStep;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use gateway_common::crypto::{hash_secret, random_token};

use super::client_auth::{authenticate, Public};
use super::{no_store_json, Form};
use crate::issue::{self, TokenResponse};
use crate::protocol::error::OAuthError;
use crate::protocol::records::{
    code_key, code_used_key, family_key, ClientRecord, CodeRecord, CodeUse,
};
use crate::protocol::registration::{GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN};
use crate::protocol::token::{self as logic, RefreshDecision};
use crate::state::AppState;
use gateway_common::dpop::ValidProof;

fn internal(e: impl std::fmt::Display) -> OAuthError {
    OAuthError::Internal(e.to_string())
}

pub async fn token(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let result = handle(&req, &body, &state).await;
    match &result {
        Ok(_) => {}
        Err(e) => state.metrics.token_error(e.code()),
    }
    result
}

async fn handle(
    req: &HttpRequest,
    body: &[u8],
    state: &AppState,
) -> Result<HttpResponse, OAuthError> {
    let form = Form::parse(req, body)?;
    let grant = form.required("grant_type")?.to_string();
    // A refresh reads the client and the family: both reads go out together
    // (one round trip to the store instead of two). Nothing is decided from
    // the family until the client has authenticated.
    let family_read = async {
        if grant != GRANT_REFRESH_TOKEN {
            return Ok(None);
        }
        match form.one("refresh_token") {
            Ok(Some(t)) => match logic::split_refresh_token(t) {
                Some((family_id, _)) => state.store.get(&family_key(&family_id)).await.map(Some),
                None => Ok(None),
            },
            _ => Ok(None),
        }
    };
    let (client, family_raw) = tokio::join!(
        authenticate(state, req, &form, Public::Identify),
        family_read
    );
    let client = client?;
    // The per-client budget counts only clients that proved who they are
    // (a secret): a public client's id is just a string anyone can send, so
    // it is never a key (its requests spend their address's budget).
    if client.metadata.token_endpoint_auth_method.is_confidential() {
        state
            .rate_limits
            .token_client(&client.client_id)
            .map_err(|wait| {
                state.metrics.limited("token_client");
                OAuthError::TooManyRequests(wait)
            })?;
    }
    // RFC 9449: a DPoP proof binds what this request issues to its key.
    let dpop = super::machine::token_proof(state, req).await?;
    let dpop = dpop.as_ref();
    let resp = match grant.as_str() {
        GRANT_AUTHORIZATION_CODE => code_grant(state, &client, &form, dpop).await?,
        GRANT_REFRESH_TOKEN => {
            refresh_grant(state, &client, &form, family_raw?.flatten(), dpop).await?
        }
        crate::protocol::client_credentials::GRANT_CLIENT_CREDENTIALS => {
            super::machine::client_credentials_grant(state, &client, &form, dpop).await?
        }
        crate::protocol::device::GRANT_DEVICE_CODE => {
            super::device::device_grant(state, &client, &form, dpop).await?
        }
        other => {
            return Err(OAuthError::UnsupportedGrantType(format!(
                "grant_type {other} is not supported"
            )))
        }
    };
    state.metrics.token_issued(&grant);
    Ok(no_store_json(StatusCode::OK, &resp))
}

async fn code_grant(
    state: &AppState,
    client: &ClientRecord,
    form: &Form<'_>,
    dpop: Option<&ValidProof>,
) -> Result<TokenResponse, OAuthError> {
    if !client.allows_grant(GRANT_AUTHORIZATION_CODE) {
        return Err(OAuthError::UnauthorizedClient(
            "this client may not use authorization_code".into(),
        ));
    }
    let code = form.required("code")?;
    let code_hash = hash_secret(code);
    // Taken atomically: of any number of concurrent redemptions, one gets it.
    let Some(raw) = state.store.take(&code_key(&code_hash)).await? else {
        // A second use: revoke what the first use issued (RFC 6749 §4.1.2, RFC 9700 §4.2.4).
        if let Some(used) = state.store.get(&code_used_key(&code_hash)).await? {
            if let Ok(used) = serde_json::from_slice::<CodeUse>(&used) {
                tracing::warn!(client_id = %client.client_id, "authorization code replayed; revoking its tokens");
                issue::revoke_access_token(state, &used.jti, used.access_exp).await?;
                issue::revoke_family(state, &used.family_id).await?;
            }
        }
        return Err(OAuthError::InvalidGrant(
            "the code is invalid, expired or already used".into(),
        ));
    };
    let rec: CodeRecord = serde_json::from_slice(&raw).map_err(internal)?;
    let aud = logic::check_code_grant(
        &rec,
        &client.client_id,
        form.one("redirect_uri")?,
        form.one("code_verifier")?,
        &form.all("resource"),
        state.now(),
    )?;
    state.config.dpop.check_audience(&aud, dpop.is_some())?;
    let jkt = dpop.map(|p| p.jkt.as_str());
    let jti = issue::new_jti();
    let family_id = random_token(16);
    let access_exp = state.now() + state.config.access_token_lifetime.as_secs();
    // Written before the tokens exist, so a replay racing this request still finds what to revoke.
    let marker = CodeUse {
        jti: jti.clone(),
        access_exp,
        family_id: family_id.clone(),
    };
    let keep = state
        .config
        .access_token_lifetime
        .max(state.config.code_lifetime)
        + Duration::from_secs(60);
    state
        .store
        .put(
            &code_used_key(&code_hash),
            &serde_json::to_vec(&marker).map_err(internal)?,
            Some(keep),
        )
        .await?;

    let with_refresh = client.allows_grant(GRANT_REFRESH_TOKEN);
    let minted = issue::mint_access_token_bound(
        state,
        &jti,
        &client.client_id,
        &rec.user,
        &rec.scope,
        &aud,
        with_refresh.then_some(family_id.as_str()),
        jkt,
    )?;
    let refresh_token = if with_refresh {
        // RFC 9449 §5: a public client's refresh tokens are bound to its key.
        let public = !client.metadata.token_endpoint_auth_method.is_confidential();
        Some(
            issue::new_family_bound(
                state,
                &family_id,
                &client.client_id,
                &rec.user,
                &rec.scope,
                &rec.resources,
                &minted,
                jkt.filter(|_| public),
            )
            .await?,
        )
    } else {
        None
    };
    state.audit(AuditEvent::TokenIssued {
        client_id: client.client_id.clone(),
        user: rec.user.sub.clone(),
        jti: jti.clone(),
        grant: GRANT_AUTHORIZATION_CODE,
    });
    state.flow(&client.client_id, FlowStep::TokenIssued);
    state
        .document_client_completed_step(&client.client_id)
        .await;
    Ok(TokenResponse {
        access_token: minted.token,
        token_type: super::machine::token_type(jkt.is_some()),
        expires_in: state.config.access_token_lifetime.as_secs(),
        refresh_token,
        scope: rec.scope,
    })
}

/// `raw`: the family record, read beside the client authentication.
async fn refresh_grant(
    state: &AppState,
    client: &ClientRecord,
    form: &Form<'_>,
    raw: Option<Vec<u8>>,
    dpop: Option<&ValidProof>,
) -> Result<TokenResponse, OAuthError> {
    if !client.allows_grant(GRANT_REFRESH_TOKEN) {
        return Err(OAuthError::UnauthorizedClient(
            "this client may not use refresh_token".into(),
        ));
    }
    let presented = form.required("refresh_token")?;
    let invalid =
        || OAuthError::InvalidGrant("the refresh token is invalid, expired or revoked".into());
    // Ours, or a Python gateway token brought over by `mcp-gateway import-python`.
    let (family_id, generation) = logic::split_refresh_token(presented).ok_or_else(invalid)?;
    let family_id: &str = &family_id;
    let presented_hash = hash_secret(presented);
    let presented_parts = logic::Presented {
        family_id,
        generation,
        hash: &presented_hash,
    };
    let key = family_key(family_id);
    let Some(raw) = raw else {
        return Err(invalid());
    };
    let family = issue::parse_family(&raw)?;
    let now = state.now();
    match logic::check_refresh(&family, &client.client_id, &presented_parts, now) {
        RefreshDecision::Rotate => {}
        RefreshDecision::RevokeFamily => {
            tracing::warn!(client_id = %client.client_id, "rotated refresh token reused; revoking its family");
            state.audit(AuditEvent::RefreshReuseDetected {
                client_id: client.client_id.clone(),
                user: family.user.sub.clone(),
            });
            issue::revoke_family(state, family_id).await?;
            return Err(invalid());
        }
        RefreshDecision::Refuse(why) => return Err(OAuthError::InvalidGrant(why.into())),
    }
    crate::protocol::dpop::check_refresh_binding(family.jkt.as_deref(), dpop)?;
    let scope = logic::narrow_scope(&family.scope, form.one("scope")?)?;
    let aud = logic::narrow_resources(&family.resources, &form.all("resource"))?;
    state.config.dpop.check_audience(&aud, dpop.is_some())?;
    let jkt = dpop.map(|p| p.jkt.as_str());
    let user = recheck_user(state, &family, family_id).await?;
    let jti = issue::new_jti();
    let access_exp = now + state.config.access_token_lifetime.as_secs();
    let new_token = logic::mint_refresh_token(family_id, family.generation.saturating_add(1));
    let next = logic::rotated(
        &family,
        hash_secret(&new_token),
        now + state.config.refresh_token_lifetime.as_secs(),
        &jti,
        access_exp,
    );
    let mut next = next;
    next.user = user;
    let next_raw = serde_json::to_vec(&next).map_err(internal)?;
    // Rotation is a compare-and-swap: of two requests with the same token, one wins;
    // the loser presented a token that is now rotated — reuse — and the family goes.
    // That revocation is the write `replace_if_equal` needs after a loss: it
    // supersedes whatever the losing write left (RFC 9700 §4.14.2).
    if !state
        .store
        .replace_if_equal(&key, &raw, &next_raw, issue::family_ttl(state, &next))
        .await?
    {
        tracing::warn!(client_id = %client.client_id, "concurrent refresh with one token; revoking its family");
        state.audit(AuditEvent::RefreshReuseDetected {
            client_id: client.client_id.clone(),
            user: next.user.sub.clone(),
        });
        issue::revoke_family(state, family_id).await?;
        return Err(invalid());
    }
    let minted = issue::mint_access_token_bound(
        state,
        &jti,
        &client.client_id,
        &next.user,
        &scope,
        &aud,
        Some(family_id),
        jkt,
    )?;
    state.audit(AuditEvent::TokenRefreshed {
        client_id: client.client_id.clone(),
        user: next.user.sub.clone(),
        jti: jti.clone(),
    });
    state.flow(&client.client_id, FlowStep::Refreshed);
    Ok(TokenResponse {
        access_token: minted.token,
        token_type: super::machine::token_type(jkt.is_some()),
        expires_in: state.config.access_token_lifetime.as_secs(),
        refresh_token: Some(new_token),
        scope,
    })
}

/// Asks the user's identity provider again, when it wants to (GitHub: every
/// `GITHUB_RECHECK_INTERVAL`). Someone taken off the allowlists loses the
/// whole grant: the family is revoked and the client gets `invalid_grant`.
async fn recheck_user(
    state: &AppState,
    family: &crate::protocol::records::RefreshFamily,
    family_id: &str,
) -> Result<crate::signin::Identity, OAuthError> {
    use crate::signin::SignInError;
    let Some(provider) = state.providers.iter().find(|p| p.id() == family.user.idp) else {
        return Ok(family.user.clone());
    };
    match provider.recheck(&family.user, state.now()).await {
        Ok(None) => Ok(family.user.clone()),
        Ok(Some(fresh)) => Ok(fresh),
        Err(SignInError::Refused(why)) | Err(SignInError::Upstream(why)) => {
            tracing::info!(sub = %family.user.sub, reason = %why, "user no longer allowed; revoking the grant");
            issue::revoke_family(state, family_id).await?;
            Err(OAuthError::InvalidGrant(
                "the user is no longer allowed to sign in".into(),
            ))
        }
        Err(SignInError::Unavailable(why)) => Err(OAuthError::Unavailable(why)),
    }
}
