//! The actix adapter: `/verify` (any method), `/health`, `/ready`, `/metrics`.
//! Thin: headers in, [`Verifier::check`], response out.

use std::str::FromStr;
use std::sync::Arc;

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::decision::{Decision, Deny, DenyResponse, Reason, Who};
use crate::forwarded::{self, AuthorizationHeader, ForwardedRequest, HeaderView, VerifyRequest};
use crate::identity::HeaderValues;
use crate::tool_policy::{denial_body, McpCall};
use crate::verifier::Verifier;

struct ActixHeaders<'a>(&'a HeaderMap);

/// The names `/verify` reads, made once: looking a header up by `&str` parses
/// and validates the name on every call (a tenth of a cached verify).
static KNOWN: [HeaderName; 13] = [
    HeaderName::from_static("x-forwarded-method"),
    HeaderName::from_static("x-original-method"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-forwarded-uri"),
    HeaderName::from_static("x-original-uri"),
    HeaderName::from_static("host"),
    HeaderName::from_static("authorization"),
    HeaderName::from_static("access-control-request-method"),
    HeaderName::from_static("accept"),
    HeaderName::from_static("mcp-method"),
    HeaderName::from_static("mcp-name"),
];

impl ActixHeaders<'_> {
    /// A `match` compiles to a switch on the length and one comparison,
    /// where a scan of [`KNOWN`] compared up to thirteen names per lookup.
    fn known(name: &str) -> Option<&'static HeaderName> {
        let i = match name {
            "x-forwarded-method" => 0,
            "x-original-method" => 1,
            "x-forwarded-proto" => 2,
            "x-forwarded-host" => 3,
            "x-original-url" => 4,
            "x-forwarded-uri" => 5,
            "x-original-uri" => 6,
            "host" => 7,
            "authorization" => 8,
            "access-control-request-method" => 9,
            "accept" => 10,
            "mcp-method" => 11,
            "mcp-name" => 12,
            _ => return None,
        };
        KNOWN.get(i)
    }
}

impl HeaderView for ActixHeaders<'_> {
    fn first(&self, name: &str) -> Option<&[u8]> {
        match Self::known(name) {
            Some(k) => self.0.get(k),
            None => self.0.get(name),
        }
        .map(HeaderValue::as_bytes)
    }
    fn count(&self, name: &str) -> usize {
        match Self::known(name) {
            Some(k) => self.0.get_all(k).count(),
            None => self.0.get_all(name).count(),
        }
    }
}

/// Looked up by a name made once, like [`KNOWN`] (RFC 9449 §4.1).
static DPOP: HeaderName = HeaderName::from_static("dpop");

/// Identity header names, parsed once.
#[derive(Clone)]
struct Names {
    user_id: HeaderName,
    user_name: HeaderName,
    user_email: HeaderName,
    client_id: HeaderName,
    scopes: HeaderName,
    token: HeaderName,
}

impl Names {
    fn new(v: &Verifier) -> Self {
        let h = &v.config().headers;
        // Validated as tokens by the config parser; the fallbacks never apply.
        // A default name is made static: cloning it into every response then
        // costs no reference count (a parsed name is shared bytes).
        let name = |s: &str, default: &'static str| {
            if s.eq_ignore_ascii_case(default) {
                return HeaderName::from_static(default);
            }
            HeaderName::from_str(s).unwrap_or(HeaderName::from_static(default))
        };
        Self {
            user_id: name(&h.user_id, "x-user-id"),
            user_name: name(&h.user_name, "x-user-name"),
            user_email: name(&h.user_email, "x-user-email"),
            client_id: name(&h.client_id, "x-client-id"),
            scopes: name(&h.scopes, "x-scopes"),
            token: name(&h.token, "x-access-token"),
        }
    }
}

/// Mounts `/verify`, `/health`, `/ready` and `/metrics`.
pub fn configure(verifier: Arc<Verifier>) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        configure_verify(Arc::clone(&verifier))(cfg);
        configure_probes(Arc::clone(&verifier))(cfg);
    }
}

/// Mounts `/health`, `/ready` and `/metrics` (without `/verify`).
pub fn configure_probes(verifier: Arc<Verifier>) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::from(Arc::clone(&verifier)))
            .route("/health", web::get().to(health))
            .route("/ready", web::get().to(ready))
            .route("/metrics", web::get().to(metrics));
    }
}

/// What `/verify` needs, in one piece of app data (one lookup per request).
struct VerifyCtx {
    verifier: Arc<Verifier>,
    names: Names,
}

/// Mounts only `/verify` (for an app that already has its own `/health`,
/// `/ready` and `/metrics`; see [`Verifier::readiness`] and
/// [`Verifier::render_metrics`] to include ours there).
pub fn configure_verify(verifier: Arc<Verifier>) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        let names = Names::new(&verifier);
        cfg.app_data(web::Data::from(Arc::clone(&verifier)))
            .app_data(web::Data::new(VerifyCtx {
                verifier: Arc::clone(&verifier),
                names,
            }))
            .route("/verify", web::route().to(verify));
    }
}

/// The hot path: no span, no request id, no allocation for a cached token
/// beyond actix's own (the identity header values are shared with the cache).
async fn verify(req: HttpRequest, ctx: web::Data<VerifyCtx>) -> HttpResponse {
    let (v, names) = (&*ctx.verifier, &ctx.names);
    let started = v.metrics().start();
    let headers = ActixHeaders(req.headers());
    let uri = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let raw = VerifyRequest {
        peer: req.peer_addr().map(|a| a.ip()),
        method: req.method().as_str(),
        scheme: "http",
        uri,
        headers: &headers,
    };
    let (response, reason) = match forwarded::reconstruct(&raw, &v.config().trusted_proxies) {
        Ok(fwd) => {
            // Tool policy on the header path (MCP 2026-07-28 mirrors the
            // method and name; no body needed).
            let call =
                McpCall::from_headers(headers.first("mcp-method"), headers.first("mcp-name"));
            let proof = crate::dpop::ProofHeader::from_values(
                req.headers().get_all(&DPOP).map(HeaderValue::as_bytes),
            );
            let decision = v.check_refetching(&fwd, call.as_ref(), proof).await;
            // DPoP with shared replay memory: the proof's jti must be new in Redis too.
            let decision = match decision {
                Decision::Allow(a) => {
                    let replayed = match &a.dpop {
                        Some(seen) => v.claim_proof(&fwd, seen).await,
                        None => None,
                    };
                    match replayed {
                        Some(denial) => Decision::Deny(denial),
                        None => Decision::Allow(a),
                    }
                }
                d => d,
            };
            if let (Decision::Deny(d), Some(call)) = (&decision, &call) {
                if d.deny == Deny::ToolNotAllowed {
                    let r = HttpResponse::Forbidden()
                        .insert_header((header::CACHE_CONTROL, NO_STORE))
                        .content_type("application/json")
                        .body(denial_body(call));
                    v.metrics().record(Reason::ToolDenied, started);
                    return r;
                }
            }
            respond(&fwd, decision, names)
        }
        Err(e) => {
            tracing::warn!(error = %e, "refusing unusable forwarded headers");
            let denial = crate::decision::Denial::new(crate::decision::Deny::Forwarded(e), None);
            let reason = denial.deny.reason();
            (deny_response(&denial.render(false), false), reason)
        }
    };
    v.metrics().record(reason, started);
    response
}

/// Turns a decision into the answer the proxy acts on.
fn respond(
    fwd: &ForwardedRequest<'_>,
    decision: Decision<'_>,
    names: &Names,
) -> (HttpResponse, Reason) {
    match decision {
        Decision::Allow(allowed) => {
            static NOBODY: std::sync::OnceLock<HeaderValues> = std::sync::OnceLock::new();
            let values = match &allowed.who {
                Who::Token(v) => v.header_values.get(&v.identity),
                Who::Anonymous => NOBODY
                    .get_or_init(HeaderValues::default)
                    .get(allowed.who.identity()),
            };
            let mut r = HttpResponse::new(StatusCode::OK);
            let h = r.headers_mut();
            // Every header, even empty: a proxy copying response headers must
            // overwrite any client-sent copy (Caddy, Traefik authResponseHeaders).
            let [user_id, user_name, user_email, client_id, scopes] = values;
            h.insert(names.user_id.clone(), user_id.clone());
            h.insert(names.user_name.clone(), user_name.clone());
            h.insert(names.user_email.clone(), user_email.clone());
            h.insert(names.client_id.clone(), client_id.clone());
            h.insert(names.scopes.clone(), scopes.clone());
            let token = match allowed.forward_token {
                None => HeaderValue::from_static(""),
                Some(t) => HeaderValue::from_bytes(t).unwrap_or(HeaderValue::from_static("")),
            };
            h.insert(names.token.clone(), token);
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
            (r, allowed.reason)
        }
        Decision::Deny(denial) => {
            let token_sent = !matches!(fwd.authorization, AuthorizationHeader::Absent);
            let reason = denial.deny.reason();
            if reason != Reason::NoToken {
                tracing::debug!(
                    reason = reason.as_str(),
                    host = fwd.host,
                    path = fwd.path(),
                    "denied"
                );
            }
            (
                deny_response(&denial.render(token_sent), fwd.wants_html),
                reason,
            )
        }
    }
}

const NO_STORE: &str = "no-store";

fn deny_response(d: &DenyResponse, html: bool) -> HttpResponse {
    let status = StatusCode::from_u16(d.status).unwrap_or(StatusCode::UNAUTHORIZED);
    let mut r = HttpResponse::build(status);
    if let Some(challenge) = &d.www_authenticate {
        if let Ok(v) = HeaderValue::from_str(challenge) {
            r.insert_header((header::WWW_AUTHENTICATE, v));
        }
    }
    if let Some(secs) = d.retry_after {
        r.insert_header((header::RETRY_AFTER, secs.to_string()));
    }
    if let Some(nonce) = d.dpop_nonce.as_deref() {
        if let Ok(v) = HeaderValue::from_str(nonce) {
            r.insert_header(("dpop-nonce", v));
        }
    }
    r.insert_header((header::CACHE_CONTROL, NO_STORE));
    if html {
        r.content_type("text/html; charset=utf-8").body(format!(
            "<!doctype html><meta charset=utf-8><title>{status}</title>\
             <h1>{status}</h1><p>{}.</p><p>MCP clients sign in through OAuth; \
             this address is not meant to be opened in a browser.</p>",
            d.description,
            status = d.status
        ))
    } else {
        // RFC 6750 §3 / RFC 6749 §5.2 fields, serialised without a map in between.
        #[derive(serde::Serialize)]
        struct Body<'a> {
            error: &'a str,
            error_description: &'a str,
        }
        let body = serde_json::to_vec(&Body {
            error: d.error,
            error_description: d.description,
        })
        .unwrap_or_default();
        r.content_type("application/json").body(body)
    }
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

async fn ready(v: web::Data<Verifier>) -> HttpResponse {
    let r = v.readiness();
    let mut b = if r.ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    b.insert_header((header::CACHE_CONTROL, "no-store")).json(r)
}

async fn metrics(v: web::Data<Verifier>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(v.render_metrics())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_name_maps_to_itself() {
        for k in &KNOWN {
            assert_eq!(ActixHeaders::known(k.as_str()), Some(k));
        }
        assert_eq!(ActixHeaders::known("x-forwarded-for"), None);
    }
}
