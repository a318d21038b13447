//! Device authorization grant (RFC 8628) over HTTP: `POST /device_authorization`
//! (§3.1–3.2), the user-code page `GET/POST /device` (§3.3), and the
//! `urn:ietf:params:oauth:grant-type:device_code` grant at `/token` (§3.4–3.5).
//!
//! The user-code page reuses sign-in and consent: a valid code becomes a
//! pending request (bound to this browser) whose consent answers the device
//! instead of redirecting anywhere.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use gateway_common::crypto::{hash_secret, random_token};
use serde::Serialize;

use super::browser::{browser_cookie, browser_id, csrf_issue, csrf_take, current_session};
use super::client_auth::{authenticate, presented, Public};
use super::{no_store_json, Form};
use crate::html;
use crate::issue::{self, TokenResponse};
use crate::protocol::device::{
    self as logic, device_key, display_user_code, normalize_user_code, user_code_key, DeviceRecord,
    DeviceStatus, Poll, GRANT_DEVICE_CODE,
};
use crate::protocol::error::OAuthError;
use crate::protocol::records::{authreq_key, AuthRequest, ClientRecord};
use crate::protocol::registration::GRANT_REFRESH_TOKEN;
use crate::signin::Identity;
use crate::state::AppState;

fn internal(e: impl std::fmt::Display) -> OAuthError {
    OAuthError::Internal(e.to_string())
}

/// RFC 8628 §3.2 device authorization response.
#[derive(Debug, Serialize)]
struct DeviceAuthorization {
    device_code: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: String,
    expires_in: u64,
    interval: u64,
}

/// `POST /device_authorization`.
pub async fn device_authorization(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let form = Form::parse(&req, &body)?;
    // A metadata document can never allow this grant (`cimd::DOCUMENT_GRANTS`):
    // refused before any fetch, so this unauthenticated route never dials out.
    if state
        .cimd
        .is_document_url(presented(&req, &form)?.client_id())
        && !crate::cimd::DOCUMENT_GRANTS.contains(&GRANT_DEVICE_CODE)
    {
        return Err(OAuthError::UnauthorizedClient(
            "a metadata-document client may not use the device_code grant".into(),
        ));
    }
    let client = authenticate(&state, &req, &form, Public::Identify).await?;
    if !client.allows_grant(GRANT_DEVICE_CODE) {
        return Err(OAuthError::UnauthorizedClient(
            "this client may not use the device_code grant".into(),
        ));
    }
    let scope = state.resolve_scope(form.one("scope")?, &client)?;
    let resources = state.resolve_resources(&form.all("resource"))?;
    let device_code = random_token(32);
    let lifetime = state.config.device_code_lifetime;
    let now = state.now();
    let mut user_code = logic::new_user_code();
    let device_hash = hash_secret(&device_code);
    // A user-code collision is astronomically rare; put_if_absent makes it harmless.
    let mut placed = false;
    for _ in 0..4 {
        if state
            .store
            .put_if_absent(
                &user_code_key(&user_code),
                device_hash.as_bytes(),
                Some(lifetime),
            )
            .await?
        {
            placed = true;
            break;
        }
        user_code = logic::new_user_code();
    }
    if !placed {
        return Err(OAuthError::Unavailable("no free user code".into()));
    }
    let rec = DeviceRecord {
        client_id: client.client_id.clone(),
        scope,
        resources,
        user_code: user_code.clone(),
        status: DeviceStatus::Pending,
        interval: state.config.device_poll_interval.as_secs(),
        last_poll: None,
        exp: now + lifetime.as_secs(),
    };
    state
        .store
        .put(
            &device_key(&device_hash),
            &serde_json::to_vec(&rec).map_err(internal)?,
            Some(logic::record_ttl(rec.exp, now)),
        )
        .await?;
    let iss = &state.config.issuer;
    let shown = display_user_code(&user_code);
    Ok(no_store_json(
        StatusCode::OK,
        &DeviceAuthorization {
            device_code,
            verification_uri: format!("{iss}/device"),
            verification_uri_complete: format!("{iss}/device?user_code={shown}"),
            user_code: shown,
            expires_in: lifetime.as_secs(),
            interval: rec.interval,
        },
    ))
}

async fn render_entry(
    state: &AppState,
    req: &HttpRequest,
    code: &str,
    error: Option<&str>,
    status: StatusCode,
) -> HttpResponse {
    let (browser, set_cookie) = match browser_id(req, state) {
        Some(b) => (b, false),
        None => (random_token(32), true),
    };
    let csrf = match csrf_issue(state, "device", &hash_secret(&browser), "device").await {
        Ok(c) => c,
        Err(e) => return html::server_error_page(&e, "device"),
    };
    let page = html::device_page(&csrf, code, error);
    let mut resp = html::respond(status, page, &[]);
    if set_cookie {
        let _ = resp.add_cookie(&browser_cookie(state, &browser));
    }
    resp
}

/// `GET /device[?user_code=…]`: the page where the user types the code.
pub async fn device_form(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let q = Form::from_bytes(req.query_string().as_bytes());
    let code = q.one("user_code").ok().flatten().unwrap_or("");
    let code: String = code.chars().take(32).collect();
    render_entry(&state, &req, &code, None, StatusCode::OK).await
}

/// `POST /device`: a valid code becomes a pending request → sign-in → consent.
pub async fn device_submit(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let form = Form::from_bytes(&body);
    let field = |n: &str| form.one(n).ok().flatten().unwrap_or("").to_string();
    let typed: String = field("user_code").chars().take(32).collect();
    let Some(browser) = browser_id(&req, &state) else {
        return render_entry(
            &state,
            &req,
            &typed,
            Some("Your session expired. Enter the code again."),
            StatusCode::FORBIDDEN,
        )
        .await;
    };
    let browser_hash = hash_secret(&browser);
    match csrf_take(&state, &field("csrf"), "device", &browser_hash, "device").await {
        Ok(true) => {}
        Ok(false) => {
            return html::error_page(
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form was already used or has expired. Open the device page again.",
            )
        }
        Err(e) => return html::server_error_page(&e, "device"),
    }
    // RFC 8628 §5.1: user codes are short, so guessing is throttled — per
    // address, with growing delays after wrong codes (the same throttle as
    // wrong passwords: one guessing budget per address).
    let limits = &state.rate_limits;
    let address = super::rate_limit::peer_key(&req, &state);
    if limits.guessing_enabled() {
        if let Err(wait) = limits.guess_address.check(&address) {
            state.metrics.limited("device_code_throttle");
            let message = format!("Too many wrong codes. Wait {wait} seconds, then try again.");
            let mut resp = render_entry(
                &state,
                &req,
                &typed,
                Some(&message),
                StatusCode::TOO_MANY_REQUESTS,
            )
            .await;
            if let Ok(v) = header::HeaderValue::from_str(&wait.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return resp;
        }
    }
    let bad = || async {
        if limits.guessing_enabled() {
            limits.guess_address.failed(&address);
        }
        render_entry(
            &state,
            &req,
            &typed,
            Some("That code is not valid or has expired. Check the code shown on your device."),
            StatusCode::BAD_REQUEST,
        )
        .await
    };
    let Some(code) = normalize_user_code(&typed) else {
        return bad().await;
    };
    let device_hash = match state.store.get(&user_code_key(&code)).await {
        Ok(Some(h)) => String::from_utf8_lossy(&h).into_owned(),
        Ok(None) => return bad().await,
        Err(e) => return html::server_error_page(&e.into(), "device"),
    };
    let rec: DeviceRecord = match state.store.get(&device_key(&device_hash)).await {
        Ok(Some(raw)) => match serde_json::from_slice(&raw) {
            Ok(r) => r,
            Err(e) => return html::server_error_page(&internal(e), "device"),
        },
        Ok(None) => return bad().await,
        Err(e) => return html::server_error_page(&e.into(), "device"),
    };
    if rec.status != DeviceStatus::Pending || rec.exp <= state.now() {
        return bad().await;
    }
    let request_id = random_token(24);
    let ar = AuthRequest {
        client_id: rec.client_id.clone(),
        redirect_uri: String::new(),
        state: None,
        scope: rec.scope.clone(),
        resources: rec.resources.clone(),
        code_challenge: String::new(),
        browser_hash,
        exp: state.now() + state.config.session_timeout.as_secs(),
        device: Some(device_hash),
    };
    let saved = match serde_json::to_vec(&ar) {
        Ok(raw) => state
            .store
            .put(
                &authreq_key(&request_id),
                &raw,
                Some(state.config.session_timeout),
            )
            .await
            .map_err(OAuthError::from),
        Err(e) => Err(internal(e)),
    };
    if let Err(e) = saved {
        return html::server_error_page(&e, "device");
    }
    limits.guess_address.succeeded(&address);
    let next = match current_session(&req, &state).await {
        Ok(Some(_)) => format!("/consent?req={request_id}"),
        _ => format!("/signin?req={request_id}"),
    };
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, next))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// The consent decision for a device: approve with `user`, or deny (`None`).
/// The user code stops working either way.
pub async fn answer_device(
    state: &AppState,
    device_hash: &str,
    user: Option<&Identity>,
) -> HttpResponse {
    let key = device_key(device_hash);
    let raw = match state.store.get(&key).await {
        Ok(Some(raw)) => raw,
        Ok(None) => return device_gone(),
        Err(e) => return html::server_error_page(&e.into(), "device"),
    };
    let Ok(mut rec) = serde_json::from_slice::<DeviceRecord>(&raw) else {
        return device_gone();
    };
    let now = state.now();
    if rec.status != DeviceStatus::Pending || rec.exp <= now {
        return device_gone();
    }
    rec.status = match user {
        Some(u) => DeviceStatus::Approved(u.clone()),
        None => DeviceStatus::Denied,
    };
    let ttl = logic::record_ttl(rec.exp, now);
    let next = match serde_json::to_vec(&rec) {
        Ok(n) => n,
        Err(e) => return html::server_error_page(&internal(e), "device"),
    };
    match state
        .store
        .compare_and_swap(&key, &raw, Some(&next), Some(ttl))
        .await
    {
        Ok(true) => {}
        Ok(false) => return device_gone(),
        Err(e) => return html::server_error_page(&e.into(), "device"),
    }
    let _ = state.store.delete(&user_code_key(&rec.user_code)).await;
    if user.is_some() {
        state.flow(&rec.client_id, gateway_common::flow::FlowStep::Authorized);
    }
    match user {
        Some(_) => html::message_page(
            StatusCode::OK,
            "Device connected",
            "You can close this window and go back to your device.",
        ),
        None => html::message_page(
            StatusCode::OK,
            "Device not connected",
            "You denied the request. The device gets no access.",
        ),
    }
}

fn device_gone() -> HttpResponse {
    html::error_page(
        StatusCode::BAD_REQUEST,
        "Code expired",
        "This device code was already used or has expired. Start again on your device.",
    )
}

/// `/token` with `grant_type=urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 §3.4).
pub async fn device_grant(
    state: &AppState,
    client: &ClientRecord,
    form: &Form<'_>,
    dpop: Option<&gateway_common::dpop::ValidProof>,
) -> Result<TokenResponse, OAuthError> {
    if !client.allows_grant(GRANT_DEVICE_CODE) {
        return Err(OAuthError::UnauthorizedClient(
            "this client may not use the device_code grant".into(),
        ));
    }
    let device_code = form.required("device_code")?;
    if device_code.len() > 128 {
        return Err(OAuthError::InvalidGrant("unknown device code".into()));
    }
    let key = device_key(&hash_secret(device_code));
    let Some(raw) = state.store.get(&key).await? else {
        return Err(OAuthError::InvalidGrant(
            "the device code is invalid or was already used".into(),
        ));
    };
    let rec: DeviceRecord = serde_json::from_slice(&raw).map_err(internal)?;
    let now = state.now();
    let ttl = logic::record_ttl(rec.exp, now);
    match logic::poll(&rec, &client.client_id, now) {
        Poll::WrongClient => Err(OAuthError::InvalidGrant(
            "the device code was issued to another client".into(),
        )),
        Poll::Expired => {
            let _ = state.store.delete(&key).await;
            Err(OAuthError::ExpiredToken(
                "the device code has expired; start again".into(),
            ))
        }
        Poll::Pending(next) => {
            let next_raw = serde_json::to_vec(&*next).map_err(internal)?;
            // Lost race: another poll changed it; either way the answer is "not yet".
            let _ = state
                .store
                .compare_and_swap(&key, &raw, Some(&next_raw), Some(ttl))
                .await?;
            Err(OAuthError::AuthorizationPending(
                "the user has not approved the device yet".into(),
            ))
        }
        Poll::SlowDown(next) => {
            let next_raw = serde_json::to_vec(&*next).map_err(internal)?;
            let _ = state
                .store
                .compare_and_swap(&key, &raw, Some(&next_raw), Some(ttl))
                .await?;
            Err(OAuthError::SlowDown(format!(
                "polling too fast; wait {} seconds between requests",
                next.interval
            )))
        }
        Poll::Denied => {
            let _ = state.store.compare_and_swap(&key, &raw, None, None).await?;
            Err(OAuthError::DeviceDenied(
                "the user denied the device".into(),
            ))
        }
        Poll::Approved(user) => {
            // A service that requires DPoP refuses a bearer grant before the
            // code is spent, so the client can retry with a proof.
            state
                .config
                .dpop
                .check_audience(&rec.resources, dpop.is_some())?;
            // Single use: only the poll that removes the record gets tokens.
            if !state.store.compare_and_swap(&key, &raw, None, None).await? {
                return Err(OAuthError::InvalidGrant(
                    "the device code was already used".into(),
                ));
            }
            let jti = issue::new_jti();
            let family_id = random_token(16);
            let with_refresh = client.allows_grant(GRANT_REFRESH_TOKEN);
            // RFC 9449 §5: tokens of any grant bind to the proof's key; a
            // public client's refresh tokens too (device clients mostly are).
            let jkt = dpop.map(|p| p.jkt.as_str());
            let minted = issue::mint_access_token_bound(
                state,
                &jti,
                &client.client_id,
                &user,
                &rec.scope,
                &rec.resources,
                with_refresh.then_some(family_id.as_str()),
                jkt,
            )?;
            let refresh_token = if with_refresh {
                let public = !client.metadata.token_endpoint_auth_method.is_confidential();
                Some(
                    issue::new_family_bound(
                        state,
                        &family_id,
                        &client.client_id,
                        &user,
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
            state.audit(gateway_common::audit::AuditEvent::TokenIssued {
                client_id: client.client_id.clone(),
                user: user.sub.clone(),
                jti: jti.clone(),
                grant: "urn:ietf:params:oauth:grant-type:device_code",
            });
            state.flow(
                &client.client_id,
                gateway_common::flow::FlowStep::TokenIssued,
            );
            Ok(TokenResponse {
                access_token: minted.token,
                token_type: super::machine::token_type(jkt.is_some()),
                expires_in: state.config.access_token_lifetime.as_secs(),
                refresh_token,
                scope: rec.scope,
            })
        }
    }
}
