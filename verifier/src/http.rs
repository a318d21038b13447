//! The actix adapter: `/verify` (any method), `/health`, `/ready`, `/metrics`.
//! Thin: headers in, [`Verifier::check`], response out.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};

use crate::decision::{Decision, Deny, DenyResponse, Reason};
use crate::forwarded::{self, AuthorizationHeader, ForwardedRequest, HeaderView, VerifyRequest};
use crate::tool_policy::{denial_body, McpCall};
use crate::verifier::Verifier;

struct ActixHeaders<'a>(&'a HeaderMap);

impl HeaderView for ActixHeaders<'_> {
    fn first(&self, name: &str) -> Option<&[u8]> {
        self.0.get(name).map(HeaderValue::as_bytes)
    }
    fn count(&self, name: &str) -> usize {
        self.0.get_all(name).count()
    }
}

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
        let name = |s: &str, fallback: &'static str| {
            HeaderName::from_str(s).unwrap_or(HeaderName::from_static(fallback))
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
        cfg.route("/health", web::get().to(health))
            .route("/ready", web::get().to(ready))
            .route("/metrics", web::get().to(metrics));
    }
}

/// Mounts only `/verify` (for an app that already has its own `/health`,
/// `/ready` and `/metrics`; see [`Verifier::readiness`] and
/// [`Verifier::render_metrics`] to include ours there).
pub fn configure_verify(verifier: Arc<Verifier>) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        let names = Names::new(&verifier);
        cfg.app_data(web::Data::from(Arc::clone(&verifier)))
            .app_data(web::Data::new(names))
            .route("/verify", web::route().to(verify));
    }
}

async fn verify(req: HttpRequest, v: web::Data<Verifier>, names: web::Data<Names>) -> HttpResponse {
    let started = Instant::now();
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
                req.headers().get_all("dpop").map(HeaderValue::as_bytes),
            );
            let decision = v.check_with_proof(&fwd, call.as_ref(), proof);
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
                        .insert_header((header::CACHE_CONTROL, "no-store"))
                        .content_type("application/json")
                        .body(denial_body(call));
                    v.metrics().record(Reason::ToolDenied, started.elapsed());
                    return r;
                }
            }
            respond(&fwd, decision, &names)
        }
        Err(e) => {
            tracing::warn!(error = %e, "refusing unusable forwarded headers");
            let denial = crate::decision::Denial::new(crate::decision::Deny::Forwarded(e), None);
            let reason = denial.deny.reason();
            (deny_response(&denial.render(false), false), reason)
        }
    };
    v.metrics().record(reason, started.elapsed());
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
            let id = allowed.who.identity();
            let mut r = HttpResponse::Ok();
            // Every header, even empty: a proxy copying response headers must
            // overwrite any client-sent copy (Caddy, Traefik authResponseHeaders).
            set(&mut r, &names.user_id, &id.user_id);
            set(&mut r, &names.user_name, &id.user_name);
            set(&mut r, &names.user_email, &id.user_email);
            set(&mut r, &names.client_id, &id.client_id);
            set(&mut r, &names.scopes, &id.scopes);
            set(&mut r, &names.token, allowed.forward_token.unwrap_or(""));
            r.insert_header((header::CACHE_CONTROL, "no-store"));
            (r.finish(), allowed.reason)
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

fn set(r: &mut HttpResponseBuilder, name: &HeaderName, value: &str) {
    let value = HeaderValue::from_bytes(value.as_bytes()).unwrap_or(HeaderValue::from_static(""));
    r.insert_header((name.clone(), value));
}

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
    r.insert_header((header::CACHE_CONTROL, "no-store"));
    if html {
        r.content_type("text/html; charset=utf-8").body(format!(
            "<!doctype html><meta charset=utf-8><title>{status}</title>\
             <h1>{status}</h1><p>{}.</p><p>MCP clients sign in through OAuth; \
             this address is not meant to be opened in a browser.</p>",
            d.description,
            status = d.status
        ))
    } else {
        r.content_type("application/json").body(
            serde_json::json!({"error": d.error, "error_description": d.description}).to_string(),
        )
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
