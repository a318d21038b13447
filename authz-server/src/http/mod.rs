//! HTTP adapters (actix-web). Thin: parse the request, call the protocol
//! logic, shape the answer. One file per endpoint group.

pub mod authorize;
pub mod browser;
pub mod client_auth;
pub mod connections;
pub mod device;
pub mod discovery;
pub mod error;
pub mod health;
pub mod machine;
pub mod rate_limit;
pub mod register;
pub mod revoke;
pub mod signin;
pub mod signin_upstream;
pub mod token;

use actix_cors::Cors;
use actix_web::http::header;
use actix_web::middleware::from_fn;
use actix_web::{web, HttpRequest, HttpResponse};
use std::borrow::Cow;

use crate::protocol::error::OAuthError;
use crate::state::AppState;

/// Mounts every route of the authorization server on `cfg`.
pub fn configure(cfg: &mut web::ServiceConfig, state: AppState) {
    cfg.app_data(web::Data::new(state))
        .app_data(web::PayloadConfig::new(64 * 1024))
        // The busiest endpoint first: the router tries resources in order, and
        // each pattern with a `{…}` segment costs a regex match.
        .service(
            web::resource("/token")
                .wrap(from_fn(rate_limit::token))
                .wrap(cors())
                .route(web::post().to(token::token)),
        )
        // Registration next: it too answers strangers at volume, and the
        // discovery patterns below are regexes.
        .service(
            web::resource("/register")
                .wrap(from_fn(rate_limit::register))
                .wrap(cors())
                .route(web::post().to(register::register)),
        )
        // Discovery (RFC 8414, OpenID Connect Discovery, RFC 9728); browsers read these cross-origin.
        .service(
            web::resource([
                "/.well-known/oauth-authorization-server",
                "/.well-known/oauth-authorization-server/{tail:.*}",
            ])
            .wrap(cors())
            .route(web::get().to(discovery::authorization_server_metadata)),
        )
        .service(
            web::resource([
                "/.well-known/openid-configuration",
                "/.well-known/openid-configuration/{tail:.*}",
            ])
            .wrap(cors())
            .route(web::get().to(discovery::authorization_server_metadata)),
        )
        .service(
            web::resource([
                "/.well-known/oauth-protected-resource",
                "/.well-known/oauth-protected-resource/{tail:.*}",
            ])
            .wrap(cors())
            .route(web::get().to(discovery::protected_resource_metadata)),
        )
        .service(
            web::resource(["/jwks", "/.well-known/jwks.json"])
                .wrap(cors())
                .route(web::get().to(discovery::jwks)),
        )
        .service(
            web::resource("/register/{client_id}")
                .wrap(from_fn(rate_limit::public))
                .wrap(cors())
                .route(web::get().to(register::read))
                .route(web::put().to(register::update))
                .route(web::delete().to(register::delete)),
        )
        .service(
            web::resource("/authorize")
                .wrap(from_fn(rate_limit::authorize))
                .route(web::get().to(authorize::authorize)),
        )
        .service(
            web::resource("/signin")
                .wrap(from_fn(rate_limit::public))
                .route(web::get().to(signin::signin_form))
                .route(web::post().to(signin::signin_submit)),
        )
        .service(
            web::resource("/callback/{idp}")
                .wrap(from_fn(rate_limit::public))
                .route(web::get().to(signin_upstream::callback)),
        )
        // RFC 8628: device authorization and the user-code page.
        .service(
            web::resource("/device_authorization")
                .wrap(from_fn(rate_limit::public))
                .wrap(cors())
                .route(web::post().to(device::device_authorization)),
        )
        .service(
            web::resource("/device")
                .wrap(from_fn(rate_limit::public))
                .route(web::get().to(device::device_form))
                .route(web::post().to(device::device_submit)),
        )
        .service(
            web::resource("/consent/revoke")
                .wrap(from_fn(rate_limit::public))
                .route(web::get().to(authorize::consent_revoke_form))
                .route(web::post().to(authorize::consent_revoke)),
        )
        .service(
            web::resource("/consent")
                .wrap(from_fn(rate_limit::public))
                .route(web::get().to(authorize::consent_form))
                .route(web::post().to(authorize::consent_submit)),
        )
        .service(
            web::resource("/revoke")
                .wrap(from_fn(rate_limit::public))
                .wrap(cors())
                .route(web::post().to(revoke::revoke)),
        )
        .service(
            web::resource("/introspect")
                .wrap(from_fn(rate_limit::public))
                .route(web::post().to(revoke::introspect)),
        )
        .service(web::resource("/revocations").route(web::get().to(revoke::snapshot)))
        .service(web::resource("/revocations/stream").route(web::get().to(revoke::stream)))
        .service(web::resource("/health").route(web::get().to(health::health)))
        .service(web::resource("/ready").route(web::get().to(health::ready)))
        .service(web::resource("/metrics").route(web::get().to(health::metrics)));
}

/// Browser clients call discovery, registration, token and revocation from
/// other origins; no cookies are involved there, so any origin may.
fn cors() -> Cors {
    Cors::default()
        .allow_any_origin()
        .allowed_methods(["GET", "POST", "PUT", "DELETE", "OPTIONS"])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .allowed_header("mcp-protocol-version")
        .allowed_header("dpop")
        .expose_headers([header::WWW_AUTHENTICATE])
        .expose_headers(["dpop-nonce"])
        .max_age(3600)
}

/// JSON 404 for anything unrouted (never a framework default body).
pub async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({"error": "not_found"}))
}

/// A parsed `application/x-www-form-urlencoded` body (or query string),
/// borrowing from it: only a value that was percent-encoded is copied.
#[derive(Debug, Default)]
pub struct Form<'a> {
    pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> Form<'a> {
    pub fn parse(req: &HttpRequest, body: &'a [u8]) -> Result<Self, OAuthError> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(OAuthError::InvalidRequest(
                "the body must be application/x-www-form-urlencoded (RFC 6749 §3.2)".into(),
            ));
        }
        Ok(Self::from_bytes(body))
    }

    pub fn from_bytes(body: &'a [u8]) -> Self {
        Self {
            pairs: url::form_urlencoded::parse(body).collect(),
        }
    }

    /// A parameter that may appear at most once (RFC 6749 §3.1, §3.2); empty counts as absent.
    pub fn one(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        let mut found = self
            .pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_ref());
        let first = found.next();
        if found.next().is_some() {
            return Err(OAuthError::InvalidRequest(format!(
                "{name} appears more than once"
            )));
        }
        Ok(first.filter(|v| !v.is_empty()))
    }

    /// Whether the parameter was sent at all (even empty).
    pub fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.to_string())
            .collect()
    }

    pub fn required(&self, name: &str) -> Result<&str, OAuthError> {
        self.one(name)?
            .ok_or_else(|| OAuthError::InvalidRequest(format!("{name} is required")))
    }
}

/// The host the request was addressed to: `X-Forwarded-Host` from a trusted proxy, else `Host`.
pub fn request_host(req: &HttpRequest, state: &AppState) -> Option<String> {
    let peer = req.peer_addr().map(|a| a.ip());
    if state.config.trusted_proxies.trusts(peer) {
        if let Some(h) = req
            .headers()
            .get("x-forwarded-host")
            .and_then(|v| v.to_str().ok())
        {
            return h.split(',').next().map(|h| h.trim().to_ascii_lowercase());
        }
    }
    req.headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(|h| h.trim().to_ascii_lowercase())
}

/// JSON with `Cache-Control: no-store` (RFC 6749 §5.1).
pub fn no_store_json(
    status: actix_web::http::StatusCode,
    body: &impl serde::Serialize,
) -> HttpResponse {
    // What `HttpResponseBuilder::json` does, into a buffer sized for our
    // answers (a token or client information response) rather than grown
    // from 128 bytes.
    let mut json = Vec::with_capacity(1024);
    match serde_json::to_writer(&mut json, body) {
        Ok(()) => HttpResponse::build(status)
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .content_type(header::HeaderValue::from_static("application/json"))
            .body(json),
        Err(e) => HttpResponse::from_error(actix_web::error::JsonPayloadError::Serialize(e)),
    }
}
