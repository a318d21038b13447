//! DNS-rebinding defence and CORS, in front of every bridge endpoint.
//!
//! MCP 2025-11-25 transports, security warning: validate `Origin` on every connection and
//! answer 403 when it is present and not allowed. `Host` is checked too: a rebound DNS name
//! arrives with the attacker's host name, which the allow-list does not contain.

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpResponse, ResponseError};
use gateway_common::authority::split_host_port;

use crate::bridge::Bridge;
use crate::config::{normalize_origin, Config};
use crate::error::BridgeError;

const ALLOW_HEADERS: &str = "content-type, accept, authorization, dpop, mcp-session-id, mcp-protocol-version, last-event-id, mcp-method, mcp-name";
const EXPOSE_HEADERS: &str = "Mcp-Session-Id, MCP-Protocol-Version, WWW-Authenticate, DPoP-Nonce";

/// Host name (and port) of a `Host` header value or an allow-list entry,
/// lower-cased ([`split_host_port`]); a value with a malformed port is taken
/// whole, as a name that matches only itself.
fn split_host(raw: &str) -> (String, Option<u16>) {
    let raw = raw.trim();
    split_host_port(raw).unwrap_or_else(|| (raw.to_ascii_lowercase(), None))
}

/// Whether the `Host` header names this bridge. Entries without a port match any port.
pub fn host_allowed(cfg: &Config, host: Option<&str>) -> bool {
    if cfg.allowed_hosts.is_empty() {
        return true;
    }
    let Some(host) = host else {
        return false;
    };
    let (name, port) = split_host(host);
    cfg.allowed_hosts.iter().any(|entry| {
        let (ename, eport) = split_host(entry);
        ename == name && (eport.is_none() || eport == port)
    })
}

/// Whether a browser page at `origin` may call us: listed, or same-origin with a
/// validated `Host`.
pub fn origin_allowed(cfg: &Config, origin: &str, host: Option<&str>) -> bool {
    let Some(norm) = normalize_origin(origin) else {
        return false;
    };
    if cfg.allowed_origins.contains(&norm) {
        return true;
    }
    let Some(host) = host else {
        return false;
    };
    url::Url::parse(&norm)
        .ok()
        .and_then(|u| {
            let h = u.host_str()?.to_ascii_lowercase();
            Some(match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h,
            })
        })
        .is_some_and(|authority| authority == host.trim().to_ascii_lowercase())
}

fn cors_headers(resp: &mut actix_web::http::header::HeaderMap, origin: &str) {
    if let Ok(v) = header::HeaderValue::from_str(origin) {
        resp.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    resp.insert(header::VARY, header::HeaderValue::from_static("Origin"));
    resp.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        header::HeaderValue::from_static(EXPOSE_HEADERS),
    );
}

pub async fn security(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let Some(bridge) = req.app_data::<web::Data<Arc<Bridge>>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let cfg = &bridge.cfg;
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    if !host_allowed(cfg, host.as_deref()) {
        bridge.metrics.http_rejections.inc();
        tracing::warn!(host = ?host, "refused a request for a host not in BRIDGE_ALLOWED_HOSTS");
        let resp = BridgeError::Forbidden("host not allowed").error_response();
        return Ok(req.into_response(resp).map_into_right_body());
    }
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(o) = &origin {
        if !origin_allowed(cfg, o, host.as_deref()) {
            bridge.metrics.http_rejections.inc();
            tracing::warn!(origin = %o, "refused a request from an origin not in BRIDGE_ALLOWED_ORIGINS");
            let resp = BridgeError::Forbidden("origin not allowed").error_response();
            return Ok(req.into_response(resp).map_into_right_body());
        }
    }
    if req.method() == Method::OPTIONS {
        let mut resp = HttpResponse::NoContent();
        resp.insert_header((header::ALLOW, "GET, POST, DELETE, OPTIONS"));
        if origin.is_some() {
            resp.insert_header((
                header::ACCESS_CONTROL_ALLOW_METHODS,
                "GET, POST, DELETE, OPTIONS",
            ))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"));
        }
        let mut resp = resp.finish();
        if let Some(o) = &origin {
            cors_headers(resp.headers_mut(), o);
        }
        return Ok(req.into_response(resp).map_into_right_body());
    }
    let mut res = next.call(req).await?;
    if let Some(o) = &origin {
        cors_headers(res.headers_mut(), o);
    }
    Ok(res.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Command;

    fn cfg(hosts: &[&str], origins: &[&str]) -> Config {
        let mut c = Config::for_command(Command::BuiltinEcho);
        c.allowed_hosts = hosts.iter().map(|s| s.to_string()).collect();
        c.allowed_origins = origins.iter().map(|s| s.to_string()).collect();
        c
    }

    #[test]
    fn hosts_match_by_name_and_optional_port() {
        let c = cfg(
            &["localhost", "127.0.0.1", "[::1]", "mcp.example.com:443"],
            &[],
        );
        assert!(host_allowed(&c, Some("localhost:3000")));
        assert!(host_allowed(&c, Some("LOCALHOST")));
        assert!(host_allowed(&c, Some("[::1]:8080")));
        assert!(host_allowed(&c, Some("mcp.example.com:443")));
        assert!(!host_allowed(&c, Some("mcp.example.com:8443")));
        assert!(!host_allowed(&c, Some("evil.example:3000")));
        assert!(!host_allowed(&c, None));
        assert!(host_allowed(&cfg(&[], &[]), Some("anything")));
    }

    #[test]
    fn origins_are_listed_or_same_origin() {
        let c = cfg(&[], &["https://app.example.com"]);
        assert!(origin_allowed(&c, "https://app.example.com", Some("x")));
        assert!(origin_allowed(
            &c,
            "http://localhost:3000",
            Some("localhost:3000")
        ));
        assert!(!origin_allowed(
            &c,
            "http://evil.example",
            Some("localhost:3000")
        ));
        assert!(!origin_allowed(&c, "null", Some("localhost:3000")));
    }
}
