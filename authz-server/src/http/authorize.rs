//! `/authorize` (RFC 6749 §4.1.1, OAuth 2.1 §4.1) and the consent step.
//!
//! Order matters: the client and its exact redirect URI are validated before
//! anything else; until both are known good, errors are an HTML page and
//! never a redirect (RFC 6749 §4.1.2.1 — no open redirector). After that,
//! errors go back to the client with `state` and `iss` (RFC 9207).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use gateway_common::crypto::{hash_secret, random_token};

use super::browser::{
    browser_id, client_redirect, csrf_issue, csrf_take, current_session, error_redirect,
    load_request, set_browser_cookie,
};
use super::Form;
use crate::html;
use crate::protocol::error::OAuthError;
use crate::protocol::records::{
    authreq_key, code_key, consent_key, AuthRequest, ClientRecord, CodeRecord, ConsentRecord,
};
use crate::protocol::redirect_uri;
use crate::state::AppState;

fn internal(e: impl std::fmt::Display) -> OAuthError {
    OAuthError::Internal(e.to_string())
}

fn page_error(status: StatusCode, msg: &str) -> HttpResponse {
    html::error_page(status, "Authorization request refused", msg)
}

/// `GET /authorize`.
pub async fn authorize(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let q = Form::from_bytes(req.query_string().as_bytes());
    // 1. The client, then the exact redirect URI. Nothing here redirects.
    let client_id = match q.one("client_id") {
        Ok(Some(c)) => c.to_string(),
        Ok(None) => {
            return page_error(
                StatusCode::BAD_REQUEST,
                "The request names no client (client_id is missing).",
            )
        }
        Err(_) => return page_error(StatusCode::BAD_REQUEST, "client_id appears more than once."),
    };
    let client = match state.find_client(&client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return page_error(
                StatusCode::BAD_REQUEST,
                "The application is not registered with this server.",
            )
        }
        Err(OAuthError::InvalidClient(m)) => return page_error(StatusCode::BAD_REQUEST, &m),
        Err(e) => {
            return page_error(
                crate::http::error::status_of(&e),
                "The server cannot check the application right now.",
            )
        }
    };
    let redirect = match q.one("redirect_uri") {
        Ok(Some(r)) => match redirect_uri::find_match(&client.metadata.redirect_uris, r) {
            Some(_) => r.to_string(),
            None => {
                return page_error(
                    StatusCode::BAD_REQUEST,
                    "The redirect URI does not match any registered for this application.",
                )
            }
        },
        Ok(None) => match client.metadata.redirect_uris.as_slice() {
            [only] => only.clone(),
            _ => {
                return page_error(
                    StatusCode::BAD_REQUEST,
                    "redirect_uri is required for this application.",
                )
            }
        },
        Err(_) => {
            return page_error(
                StatusCode::BAD_REQUEST,
                "redirect_uri appears more than once.",
            )
        }
    };
    let st = match q.one("state") {
        Ok(s) if s.is_none_or(|s| s.len() <= 2048) => s.map(str::to_string),
        _ => None,
    };
    match validate_rest(&state, &q, &client) {
        Ok((scope, resources, challenge)) => {
            let (browser, set_cookie) = match browser_id(&req, &state) {
                Some(b) => (b, false),
                None => (random_token(32), true),
            };
            let request_id = random_token(24);
            let ar = AuthRequest {
                client_id: client.client_id.clone(),
                redirect_uri: redirect.clone(),
                state: st.clone(),
                scope,
                resources,
                code_challenge: challenge,
                browser_hash: hash_secret(&browser),
                exp: state.now() + state.config.session_timeout.as_secs(),
                device: None,
            };
            let saved = match serde_json::to_vec(&ar) {
                Ok(raw) => {
                    state
                        .store
                        .put(
                            &authreq_key(&request_id),
                            &raw,
                            Some(state.config.session_timeout),
                        )
                        .await
                }
                Err(e) => return error_redirect(&state, &redirect, st.as_deref(), &internal(e)),
            };
            if let Err(e) = saved {
                return error_redirect(&state, &redirect, st.as_deref(), &OAuthError::from(e));
            }
            let next = match current_session(&req, &state).await {
                Ok(Some(_)) => format!("/consent?req={request_id}"),
                _ => format!("/signin?req={request_id}"),
            };
            let mut resp = HttpResponse::Found();
            resp.insert_header((header::LOCATION, next))
                .insert_header((header::CACHE_CONTROL, "no-store"));
            if set_cookie {
                set_browser_cookie(&mut resp, &state, &browser);
            }
            resp.finish()
        }
        Err(e) => error_redirect(&state, &redirect, st.as_deref(), &e),
    }
}

/// Everything after client and redirect URI: returns (scope, resources, code_challenge).
fn validate_rest(
    state: &AppState,
    q: &Form<'_>,
    client: &ClientRecord,
) -> Result<(String, Vec<String>, String), OAuthError> {
    match q.one("response_type")? {
        Some("code") => {}
        Some(_) => {
            return Err(OAuthError::UnsupportedResponseType(
                "only response_type=code is supported".into(),
            ))
        }
        None => {
            return Err(OAuthError::InvalidRequest(
                "response_type is required".into(),
            ))
        }
    }
    let challenge = q.one("code_challenge")?.ok_or_else(|| {
        OAuthError::InvalidRequest("code_challenge is required (PKCE S256)".into())
    })?;
    // RFC 7636 §4.3: an absent method means `plain`, which we do not accept.
    if q.one("code_challenge_method")? != Some("S256") {
        return Err(OAuthError::InvalidRequest(
            "code_challenge_method must be S256".into(),
        ));
    }
    if !gateway_common::pkce::valid_challenge(challenge) {
        return Err(OAuthError::InvalidRequest(
            "code_challenge is malformed".into(),
        ));
    }
    let scope = state.resolve_scope(q.one("scope")?, client)?;
    let resources = state.resolve_resources(&q.all("resource"))?;
    Ok((scope, resources, challenge.to_string()))
}

/// Issues the code for an approved request and redirects to the client (RFC 6749 §4.1.2).
async fn issue_code(
    state: &AppState,
    ar: &AuthRequest,
    user: &crate::signin::Identity,
) -> HttpResponse {
    let code = random_token(32);
    let now = state.now();
    let rec = CodeRecord {
        client_id: ar.client_id.clone(),
        redirect_uri: ar.redirect_uri.clone(),
        user: user.clone(),
        scope: ar.scope.clone(),
        resources: ar.resources.clone(),
        code_challenge: ar.code_challenge.clone(),
        exp: now + state.config.code_lifetime.as_secs(),
    };
    let saved = match serde_json::to_vec(&rec) {
        Ok(raw) => state
            .store
            .put(
                &code_key(&hash_secret(&code)),
                &raw,
                Some(state.config.code_lifetime),
            )
            .await
            .map_err(OAuthError::from),
        Err(e) => Err(internal(e)),
    };
    if let Err(e) = saved {
        return error_redirect(state, &ar.redirect_uri, ar.state.as_deref(), &e);
    }
    state.flow(&ar.client_id, gateway_common::flow::FlowStep::Authorized);
    state.document_client_completed_step(&ar.client_id).await;
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = ar.state.as_deref() {
        params.push(("state", s));
    }
    client_redirect(state, &ar.redirect_uri, &params)
}

/// `GET /consent?req=…`: the consent page, or straight back to the client when
/// this user already allowed this client these scopes and resources.
pub async fn consent_form(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let request_id = Form::from_bytes(req.query_string().as_bytes())
        .one("req")
        .ok()
        .flatten()
        .unwrap_or("")
        .to_string();
    let (ar, raw) = match load_request(&req, &state, &request_id).await {
        Ok(Some(x)) => x,
        Ok(None) => return html::expired_page(),
        Err(e) => return html::server_error_page(&e, "authorization"),
    };
    let session = match current_session(&req, &state).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, format!("/signin?req={request_id}")))
                .finish()
        }
        Err(e) => return html::server_error_page(&e, "authorization"),
    };
    let client = match state.find_client(&ar.client_id).await {
        Ok(Some(c)) => c,
        Ok(None) | Err(_) => return html::expired_page(),
    };
    let remembered = match state
        .store
        .get(&consent_key(&session.user.sub, &ar.client_id))
        .await
    {
        Ok(Some(raw)) => serde_json::from_slice::<ConsentRecord>(&raw).unwrap_or_default(),
        Ok(None) => ConsentRecord::default(),
        Err(e) => return html::server_error_page(&e.into(), "authorization"),
    };
    if remembered.covers(&ar.scope, &ar.resources) {
        // Single use: only the caller that takes the request issues its code.
        return match state
            .store
            .compare_and_swap(&authreq_key(&request_id), &raw, None, None)
            .await
        {
            Ok(true) => match &ar.device {
                Some(device) => {
                    super::device::answer_device(&state, device, Some(&session.user)).await
                }
                None => issue_code(&state, &ar, &session.user).await,
            },
            Ok(false) => html::expired_page(),
            Err(e) => html::server_error_page(&e.into(), "authorization"),
        };
    }
    let csrf = match csrf_issue(&state, &request_id, &ar.browser_hash, "consent").await {
        Ok(c) => c,
        Err(e) => return html::server_error_page(&e, "authorization"),
    };
    let host = if ar.device.is_some() {
        "your device (no redirect)".to_string()
    } else {
        url::Url::parse(&ar.redirect_uri)
            .ok()
            .map(|u| match (u.host_str(), u.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_string(),
                (None, _) => format!("{}:", u.scheme()),
            })
            .unwrap_or_default()
    };
    let scopes: Vec<&str> = ar.scope.split_ascii_whitespace().collect();
    let page = html::consent_page(&html::ConsentForm {
        request_id: &request_id,
        csrf: &csrf,
        client_name: client.display_name(),
        client_id: &client.client_id,
        redirect_host: &host,
        scopes: &scopes,
        resources: &ar.resources,
        user: &session.user.name,
    });
    let targets: Vec<String> = html::redirect_target_source(&ar.redirect_uri)
        .into_iter()
        .collect();
    html::respond(StatusCode::OK, page, &targets)
}

/// `POST /consent`: allow or deny.
pub async fn consent_submit(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let form = Form::from_bytes(&body);
    let request_id = form.one("req").ok().flatten().unwrap_or("").to_string();
    let csrf = form.one("csrf").ok().flatten().unwrap_or("");
    let (ar, raw) = match load_request(&req, &state, &request_id).await {
        Ok(Some(x)) => x,
        Ok(None) => return html::expired_page(),
        Err(e) => return html::server_error_page(&e, "authorization"),
    };
    match csrf_take(&state, csrf, &request_id, &ar.browser_hash, "consent").await {
        Ok(true) => {}
        Ok(false) => {
            return html::error_page(
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form was already used or has expired. Start again from the application.",
            )
        }
        Err(e) => return html::server_error_page(&e, "authorization"),
    }
    let session = match current_session(&req, &state).await {
        Ok(Some(s)) => s,
        Ok(None) => return html::expired_page(),
        Err(e) => return html::server_error_page(&e, "authorization"),
    };
    // Take the request atomically: one decision, one code.
    match state
        .store
        .compare_and_swap(&authreq_key(&request_id), &raw, None, None)
        .await
    {
        Ok(true) => {}
        Ok(false) => return html::expired_page(),
        Err(e) => return html::server_error_page(&e.into(), "authorization"),
    }
    let allowed = form.one("decision").ok().flatten() == Some("allow");
    if let (Some(device), false) = (&ar.device, allowed) {
        state.audit(gateway_common::audit::AuditEvent::DeviceDenied {
            user: session.user.sub.clone(),
            client_id: ar.client_id.clone(),
        });
        return super::device::answer_device(&state, device, None).await;
    }
    if !allowed {
        return error_redirect(
            &state,
            &ar.redirect_uri,
            ar.state.as_deref(),
            &OAuthError::AccessDenied("the user denied the request".into()),
        );
    }
    let key = consent_key(&session.user.sub, &ar.client_id);
    let mut consent = match state.store.get(&key).await {
        Ok(Some(raw)) => serde_json::from_slice::<ConsentRecord>(&raw).unwrap_or_default(),
        Ok(None) => ConsentRecord::default(),
        Err(e) => return html::server_error_page(&e.into(), "authorization"),
    };
    for s in ar.scope.split_ascii_whitespace() {
        if !consent.scopes.iter().any(|x| x == s) {
            consent.scopes.push(s.to_string());
        }
    }
    for r in &ar.resources {
        if !consent.resources.contains(r) {
            consent.resources.push(r.clone());
        }
    }
    if let Ok(raw) = serde_json::to_vec(&consent) {
        if let Err(e) = state.store.put(&key, &raw, None).await {
            return html::server_error_page(&e.into(), "authorization");
        }
    }
    state.audit(gateway_common::audit::AuditEvent::ConsentGranted {
        user: session.user.sub.clone(),
        client_id: ar.client_id.clone(),
        scope: ar.scope.clone(),
    });
    match &ar.device {
        Some(device) => super::device::answer_device(&state, device, Some(&session.user)).await,
        None => issue_code(&state, &ar, &session.user).await,
    }
}

/// `GET /consent/revoke?client_id=…`: the signed-in user withdraws the consent
/// remembered for one application (it is remembered until revoked).
pub async fn consent_revoke_form(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let client_id = Form::from_bytes(req.query_string().as_bytes())
        .one("client_id")
        .ok()
        .flatten()
        .unwrap_or("")
        .to_string();
    let session = match current_session(&req, &state).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return html::error_page(
                StatusCode::UNAUTHORIZED,
                "Not signed in",
                "Sign in through an application first, then come back to this page.",
            )
        }
        Err(e) => return html::server_error_page(&e, "authorization"),
    };
    let Some(browser) = browser_id(&req, &state) else {
        return html::expired_page();
    };
    // Only a name to show: never a reason to fetch a metadata document.
    let name = match state.find_known_client(&client_id).await {
        Ok(Some(c)) => c.display_name().to_string(),
        _ => client_id.clone(),
    };
    let csrf = match csrf_issue(
        &state,
        &format!("revoke:{client_id}"),
        &hash_secret(&browser),
        "revoke-consent",
    )
    .await
    {
        Ok(c) => c,
        Err(e) => return html::server_error_page(&e, "authorization"),
    };
    html::respond(
        StatusCode::OK,
        html::revoke_consent_page(&csrf, &client_id, &name, &session.user.name),
        &[],
    )
}

/// `POST /consent/revoke`: forgets the consent; the next authorization asks again.
pub async fn consent_revoke(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let form = Form::from_bytes(&body);
    let client_id = form
        .one("client_id")
        .ok()
        .flatten()
        .unwrap_or("")
        .to_string();
    let csrf = form.one("csrf").ok().flatten().unwrap_or("");
    let browser = browser_id(&req, &state)
        .map(|b| hash_secret(&b))
        .unwrap_or_default();
    match csrf_take(
        &state,
        csrf,
        &format!("revoke:{client_id}"),
        &browser,
        "revoke-consent",
    )
    .await
    {
        Ok(true) => {}
        Ok(false) => {
            return html::error_page(
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form was already used or has expired.",
            )
        }
        Err(e) => return html::server_error_page(&e, "authorization"),
    }
    let session = match current_session(&req, &state).await {
        Ok(Some(s)) => s,
        Ok(None) => return html::expired_page(),
        Err(e) => return html::server_error_page(&e, "authorization"),
    };
    match state
        .store
        .delete(&consent_key(&session.user.sub, &client_id))
        .await
    {
        Ok(existed) => {
            if existed {
                state.audit(gateway_common::audit::AuditEvent::ConsentRevoked {
                    user: session.user.sub.clone(),
                    client_id: client_id.clone(),
                });
            }
            html::message_page(
                StatusCode::OK,
                "Access withdrawn",
                "The application will ask for your permission again next time.",
            )
        }
        Err(e) => html::server_error_page(&e.into(), "authorization"),
    }
}
