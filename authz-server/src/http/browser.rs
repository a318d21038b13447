//! The browser's side of an authorization: the browser and session cookies,
//! single-use CSRF tokens, the pending request bound to this browser, and the
//! redirect back to the client. Shared by the authorization, sign-in and
//! device pages, which otherwise do not call each other.
//!
//! Cookies are HttpOnly, SameSite=Lax, `Path=/`; under an https issuer they are
//! `Secure` and use the `__Host-` prefix (no `Domain`, so a sibling host cannot
//! set them). The session lives for `SESSION_TIMEOUT`.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use gateway_common::crypto::{hash_secret, random_token};

use crate::html;
use crate::protocol::error::OAuthError;
use crate::protocol::records::{
    authreq_key, csrf_key, session_key, AuthRequest, CsrfRecord, SessionRecord,
};
use crate::state::AppState;

fn internal(e: impl std::fmt::Display) -> OAuthError {
    OAuthError::Internal(e.to_string())
}

pub(crate) const BROWSER_COOKIE: &str = "authz_browser";
pub(crate) const SESSION_COOKIE: &str = "authz_session";
pub(crate) fn cookie_name(state: &AppState, base: &str) -> String {
    if state.config.https() {
        format!("__Host-{base}")
    } else {
        base.to_string()
    }
}

pub(crate) fn build_cookie(state: &AppState, base: &str, value: &str) -> Cookie<'static> {
    Cookie::build(cookie_name(state, base), value.to_string())
        .path("/")
        .http_only(true)
        .secure(state.config.https())
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::seconds(
            i64::try_from(state.config.session_timeout.as_secs()).unwrap_or(900),
        ))
        .finish()
}

pub(crate) fn cookie_value(req: &HttpRequest, name: &str) -> Option<String> {
    req.cookie(name)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// The random id of this browser (binds pending requests and CSRF tokens to
/// it). Only the name this server sets is read: under an https issuer that is
/// the `__Host-` one, which a sibling host or a plain-http page cannot plant
/// (RFC 6265bis §4.1.3.2); an unprefixed cookie is ignored there.
pub fn browser_id(req: &HttpRequest, state: &AppState) -> Option<String> {
    cookie_value(req, &cookie_name(state, BROWSER_COOKIE))
}

pub fn browser_cookie(state: &AppState, value: &str) -> Cookie<'static> {
    build_cookie(state, BROWSER_COOKIE, value)
}

pub fn set_browser_cookie(resp: &mut HttpResponseBuilder, state: &AppState, value: &str) {
    resp.cookie(build_cookie(state, BROWSER_COOKIE, value));
}

/// The signed-in user of this browser, if the session is live.
pub async fn current_session(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Option<SessionRecord>, OAuthError> {
    let Some(sid) = cookie_value(req, &cookie_name(state, SESSION_COOKIE)) else {
        return Ok(None);
    };
    let Some(raw) = state.store.get(&session_key(&hash_secret(&sid))).await? else {
        return Ok(None);
    };
    let rec: SessionRecord =
        serde_json::from_slice(&raw).map_err(|e| OAuthError::Internal(e.to_string()))?;
    Ok((rec.exp > state.now()).then_some(rec))
}

/// A fresh single-use form token for `purpose` on request `request_id`.
pub async fn csrf_issue(
    state: &AppState,
    request_id: &str,
    browser_hash: &str,
    purpose: &str,
) -> Result<String, OAuthError> {
    let token = random_token(24);
    let rec = CsrfRecord {
        request_id: request_id.to_string(),
        browser_hash: browser_hash.to_string(),
        purpose: purpose.to_string(),
    };
    let raw = serde_json::to_vec(&rec).map_err(|e| OAuthError::Internal(e.to_string()))?;
    state
        .store
        .put(
            &csrf_key(&hash_secret(&token)),
            &raw,
            Some(state.config.session_timeout),
        )
        .await?;
    Ok(token)
}

/// Consumes a form token; true only once, and only for the same request, browser and purpose.
pub async fn csrf_take(
    state: &AppState,
    token: &str,
    request_id: &str,
    browser_hash: &str,
    purpose: &str,
) -> Result<bool, OAuthError> {
    if token.is_empty() || token.len() > 128 {
        return Ok(false);
    }
    let Some(raw) = state.store.take(&csrf_key(&hash_secret(token))).await? else {
        return Ok(false);
    };
    let Ok(rec) = serde_json::from_slice::<CsrfRecord>(&raw) else {
        return Ok(false);
    };
    Ok(rec.request_id == request_id && rec.browser_hash == browser_hash && rec.purpose == purpose)
}

/// The redirect back to the client: `params` appended to the redirect URI's query, plus `iss`.
pub fn client_redirect(
    state: &AppState,
    redirect_uri: &str,
    params: &[(&str, &str)],
) -> HttpResponse {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return html::error_page(
            StatusCode::BAD_REQUEST,
            "Invalid redirect",
            "The redirect URI is malformed.",
        );
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        // RFC 9207 §2: mix-up defence.
        q.append_pair("iss", &state.config.issuer);
    }
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, url.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// RFC 6749 §4.1.2.1 error response to the (validated) redirect URI.
pub fn error_redirect(
    state: &AppState,
    redirect_uri: &str,
    st: Option<&str>,
    err: &OAuthError,
) -> HttpResponse {
    let parts = err.parts();
    let mut params = vec![("error", parts.code)];
    if let Some(d) = parts.description {
        params.push(("error_description", d));
    }
    if let Some(s) = st {
        params.push(("state", s));
    }
    client_redirect(state, redirect_uri, &params)
}

/// A pending request that belongs to this browser.
pub async fn load_request(
    req: &HttpRequest,
    state: &AppState,
    request_id: &str,
) -> Result<Option<(AuthRequest, Vec<u8>)>, OAuthError> {
    if request_id.is_empty() || request_id.len() > 64 {
        return Ok(None);
    }
    let Some(raw) = state.store.get(&authreq_key(request_id)).await? else {
        return Ok(None);
    };
    let ar: AuthRequest = serde_json::from_slice(&raw).map_err(internal)?;
    let browser = browser_id(req, state)
        .map(|b| hash_secret(&b))
        .unwrap_or_default();
    if !gateway_common::crypto::ct_eq(browser.as_bytes(), ar.browser_hash.as_bytes())
        || ar.exp <= state.now()
    {
        return Ok(None);
    }
    Ok(Some((ar, raw)))
}
