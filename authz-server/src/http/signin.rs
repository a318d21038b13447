//! Sign-in pages: the password form, the known-browser cookie, and opening
//! the session once a provider has named the user (cookies and CSRF tokens:
//! [`super::browser`]).

use actix_web::cookie::Cookie;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use gateway_common::crypto::{hash_secret, random_token};

use super::browser::{
    build_cookie, cookie_name, cookie_value, csrf_issue, csrf_take, load_request, SESSION_COOKIE,
};
use super::Form;
use crate::html;
use crate::protocol::error::OAuthError;
use crate::protocol::records::{session_key, SessionRecord};
use crate::signin::{Identity, SignInStart};
use crate::state::AppState;

/// Set after a successful password sign-in: this browser has signed in as
/// the account before, so the per-account throttle does not apply to it
/// (a flood of wrong passwords from elsewhere cannot keep its user out).
const KNOWN_COOKIE: &str = "authz_known";
/// How long a browser stays known.
const KNOWN_FOR: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 3600);

async fn render_form(
    state: &AppState,
    request_id: &str,
    browser_hash: &str,
    client_name: &str,
    error: Option<&str>,
    username: &str,
    status: StatusCode,
) -> HttpResponse {
    let csrf = match csrf_issue(state, request_id, browser_hash, "signin").await {
        Ok(c) => c,
        Err(e) => return html::server_error_page(&e, "sign-in"),
    };
    let page = html::signin_page(&html::SignInForm {
        request_id,
        csrf: &csrf,
        client_name,
        error,
        username,
    });
    html::respond(status, page, &[])
}

async fn client_name(state: &AppState, client_id: &str) -> String {
    match state.find_client(client_id).await {
        Ok(Some(c)) => c.display_name().to_string(),
        _ => client_id.to_string(),
    }
}

/// `GET /signin?req=…[&idp=…]`: the chooser, the form, or a redirect upstream.
pub async fn signin_form(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let q = Form::from_bytes(req.query_string().as_bytes());
    let request_id = q.one("req").ok().flatten().unwrap_or("").to_string();
    let (ar, _) = match load_request(&req, &state, &request_id).await {
        Ok(Some(x)) => x,
        Ok(None) => return html::expired_page(),
        Err(e) => return html::server_error_page(&e, "sign-in"),
    };
    let name = client_name(&state, &ar.client_id).await;
    let wanted = q.one("idp").ok().flatten();
    let provider = match (wanted, state.providers.as_slice()) {
        (_, []) => {
            return html::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in unavailable",
                "No sign-in method is configured on this server.",
            )
        }
        (None, [only]) => only.clone(),
        (None, many) => {
            let choices: Vec<html::Choice<'_>> = many
                .iter()
                .map(|p| html::Choice {
                    id: p.id(),
                    label: p.label(),
                })
                .collect();
            return html::respond(
                StatusCode::OK,
                html::chooser_page(&request_id, &name, &choices),
                &[],
            );
        }
        (Some(id), all) => match all.iter().find(|p| p.id() == id) {
            Some(p) => p.clone(),
            None => return html::expired_page(),
        },
    };
    match provider.start(&request_id).await {
        Ok(SignInStart::Form) => {
            render_form(
                &state,
                &request_id,
                &ar.browser_hash,
                &name,
                None,
                "",
                StatusCode::OK,
            )
            .await
        }
        Ok(SignInStart::Redirect(url)) => HttpResponse::Found()
            .insert_header((header::LOCATION, url))
            .finish(),
        Err(e) => html::server_error_page(&OAuthError::Unavailable(e.to_string()), "sign-in"),
    }
}

/// `POST /signin`: checks the form credentials with the chosen form provider.
pub async fn signin_submit(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let form = Form::from_bytes(&body);
    let field = |n: &str| form.one(n).ok().flatten().unwrap_or("").to_string();
    let request_id = field("req");
    let (ar, _) = match load_request(&req, &state, &request_id).await {
        Ok(Some(x)) => x,
        Ok(None) => return html::expired_page(),
        Err(e) => return html::server_error_page(&e, "sign-in"),
    };
    match csrf_take(
        &state,
        &field("csrf"),
        &request_id,
        &ar.browser_hash,
        "signin",
    )
    .await
    {
        Ok(true) => {}
        Ok(false) => {
            return html::error_page(
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form was already used or has expired. Start again from the application.",
            )
        }
        Err(e) => return html::server_error_page(&e, "sign-in"),
    }
    let idp = match field("idp") {
        s if s.is_empty() => "local".to_string(),
        s => s,
    };
    let Some(provider) = state.providers.iter().find(|p| p.id() == idp).cloned() else {
        return html::expired_page();
    };
    let username = field("username");
    let address = super::rate_limit::peer_key(&req, &state);
    let account = crate::limits::name_key("account", &format!("{idp}:{username}"));
    let known = match known_browser(&req, &state, &account).await {
        Ok(k) => k,
        Err(e) => return html::server_error_page(&e, "sign-in"),
    };
    let limits = &state.rate_limits;
    let blocked = if limits.guessing_enabled() {
        limits.guess_address.check(&address).and_then(|()| {
            if known {
                Ok(())
            } else {
                limits.guess_account.check(&account)
            }
        })
    } else {
        Ok(())
    };
    if let Err(wait) = blocked {
        state.metrics.limited("signin_throttle");
        let name = client_name(&state, &ar.client_id).await;
        let message = format!("Too many failed attempts. Wait {wait} seconds, then try again.");
        let mut resp = render_form(
            &state,
            &request_id,
            &ar.browser_hash,
            &name,
            Some(&message),
            &username,
            StatusCode::TOO_MANY_REQUESTS,
        )
        .await;
        if let Ok(v) = header::HeaderValue::from_str(&wait.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
    // argon2id holds ~19 MiB while it runs: a bounded number at once, the
    // rest wait their turn (and give up with 503 rather than pile up).
    let permit =
        match tokio::time::timeout(std::time::Duration::from_secs(10), limits.hashing.acquire())
            .await
        {
            Ok(Ok(p)) => p,
            _ => {
                state.metrics.limited("password_hashing");
                return html::error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Busy",
                    "The server is busy checking other sign-ins. Try again in a moment.",
                );
            }
        };
    let verdict = provider
        .verify_password(&username, &field("password"))
        .await;
    drop(permit);
    match verdict {
        Ok(Some(identity)) => {
            state.metrics.sign_ins.inc();
            state.audit(sign_in_event(&idp, &identity.sub, None));
            limits.guess_address.succeeded(&address);
            // The account's counter is left to decay: a success must not
            // hand an attacker a fresh set of free guesses.
            let known_cookie = match remember_browser(&state, &account).await {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "known-browser record not written");
                    None
                }
            };
            let mut resp = finish_sign_in(&state, &request_id, identity).await;
            if let Some(c) = known_cookie {
                let _ = resp.add_cookie(&c);
            }
            resp
        }
        Ok(None) => {
            if limits.guessing_enabled() {
                limits.guess_address.failed(&address);
                if !known {
                    limits.guess_account.failed(&account);
                }
            }
            state.metrics.failed_sign_ins.inc();
            // The claimed name, bounded: it is outside input.
            let claimed: String = username.chars().take(64).collect();
            state.audit(sign_in_event(
                &idp,
                &claimed,
                Some("wrong username or password"),
            ));
            tracing::info!(idp = %idp, "sign-in refused");
            let name = client_name(&state, &ar.client_id).await;
            render_form(
                &state,
                &request_id,
                &ar.browser_hash,
                &name,
                Some("Wrong username or password."),
                &username,
                StatusCode::UNAUTHORIZED,
            )
            .await
        }
        Err(e) => html::server_error_page(&OAuthError::Unavailable(e.to_string()), "sign-in"),
    }
}

/// Whether this browser signed in as `account` before (its known-browser
/// cookie names a live record for that account).
async fn known_browser(
    req: &HttpRequest,
    state: &AppState,
    account: &crate::limits::Key,
) -> Result<bool, OAuthError> {
    let Some(token) = cookie_value(req, &cookie_name(state, KNOWN_COOKIE)) else {
        return Ok(false);
    };
    let Some(raw) = state.store.get(&known_key(&hash_secret(&token))).await? else {
        return Ok(false);
    };
    Ok(gateway_common::crypto::ct_eq(
        &raw,
        hex::encode(account).as_bytes(),
    ))
}

/// Records this browser as known for `account`; the cookie to set.
async fn remember_browser(
    state: &AppState,
    account: &crate::limits::Key,
) -> Result<Cookie<'static>, OAuthError> {
    let token = random_token(24);
    state
        .store
        .put(
            &known_key(&hash_secret(&token)),
            hex::encode(account).as_bytes(),
            Some(KNOWN_FOR),
        )
        .await?;
    let mut c = build_cookie(state, KNOWN_COOKIE, &token);
    c.set_max_age(actix_web::cookie::time::Duration::seconds(
        i64::try_from(KNOWN_FOR.as_secs()).unwrap_or(i64::MAX),
    ));
    Ok(c)
}

fn known_key(token_hash: &str) -> String {
    format!("authz:known:{token_hash}")
}

/// The audit line of a sign-in attempt; `failure` is its reason.
pub fn sign_in_event(
    idp: &str,
    user: &str,
    failure: Option<&str>,
) -> gateway_common::audit::AuditEvent {
    gateway_common::audit::AuditEvent::SignIn {
        provider: idp.to_string(),
        user: user.to_string(),
        success: failure.is_none(),
        reason: failure.map(str::to_string),
    }
}

/// Every provider ends here: open the session, set its cookie, go to consent.
pub async fn finish_sign_in(
    state: &AppState,
    request_id: &str,
    identity: Identity,
) -> HttpResponse {
    let sid = random_token(32);
    let rec = SessionRecord {
        user: identity,
        exp: state.now() + state.config.session_timeout.as_secs(),
    };
    let saved = match serde_json::to_vec(&rec) {
        Ok(raw) => state
            .store
            .put(
                &session_key(&hash_secret(&sid)),
                &raw,
                Some(state.config.session_timeout),
            )
            .await
            .map_err(OAuthError::from),
        Err(e) => Err(OAuthError::Internal(e.to_string())),
    };
    if let Err(e) = saved {
        return html::server_error_page(&e, "sign-in");
    }
    tracing::info!(sub = %rec.user.sub, idp = %rec.user.idp, "signed in");
    HttpResponse::SeeOther()
        .cookie(build_cookie(state, SESSION_COOKIE, &sid))
        .insert_header((header::LOCATION, format!("/consent?req={request_id}")))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}
