//! What one-machine mode answers, and to whom.
//!
//! * The `Host` header must name this gateway (its bound authority, or `localhost` on the
//!   same port). The guard builds `resource_metadata` URLs from it (RFC 9728 §5.1), so an
//!   unchecked Host would put the caller's bytes into `WWW-Authenticate`; any other Host
//!   is a misdirected request (RFC 9110 §15.5.20: 421), and a missing one is 400
//!   (RFC 9112 §3.2). The refusal never repeats what was sent.
//! * `/metrics` and the revocation feed (`/revocations`, `/revocations/stream`: the ids
//!   of revoked tokens) are operator surfaces. They answer a client on this machine that
//!   connected directly (a loopback peer whose request carries no forwarding header: a
//!   tunnel or reverse proxy in front of `up` forwards the internet from loopback too),
//!   or a scraper presenting `Authorization: Bearer <METRICS_TOKEN>`. This check sits at
//!   the one-machine router, so the authz-server's own feed authentication, when
//!   configured, applies on top of it.

use std::net::SocketAddr;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use actix_web::{web, HttpResponse};
use gateway_common::config::{ConfigError, Source};
use gateway_common::crypto;

/// Headers a proxy or tunnel adds; their presence means the peer is not the client.
const FORWARDING_HEADERS: [&str; 7] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "cf-connecting-ip",
    "true-client-ip",
];

/// Shortest accepted `METRICS_TOKEN`: a scraper secret is machine-made, not remembered.
const MIN_TOKEN_CHARS: usize = 32;

/// The one-machine app's answer to "who may see what" (in app data).
pub struct Exposure {
    /// Lower-cased `host[:port]` values this gateway serves.
    hosts: Vec<String>,
    /// SHA-256 hex of `METRICS_TOKEN` (compared in constant time; never the token).
    scraper_token_hash: Option<String>,
}

impl std::fmt::Debug for Exposure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exposure")
            .field("hosts", &self.hosts)
            .field("scraper_token", &self.scraper_token_hash.is_some())
            .finish()
    }
}

impl Exposure {
    /// The hosts served at `addr` (its authority; with a loopback address also
    /// `localhost` on that port), and the scraper token from `METRICS_TOKEN` or
    /// `METRICS_TOKEN_FILE`.
    pub fn from_source(src: &Source, addr: SocketAddr) -> Result<Self, ConfigError> {
        let authority = match addr {
            SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        };
        let mut hosts = vec![authority];
        if addr.ip().is_loopback() {
            hosts.push(format!("localhost:{}", addr.port()));
        }
        Ok(Self {
            hosts,
            scraper_token_hash: scraper_token(src)?.map(|t| crypto::hash_secret(&t)),
        })
    }

    /// Whether `host` (a raw `Host` value) names this gateway.
    pub fn serves_host(&self, host: &[u8]) -> bool {
        self.hosts
            .iter()
            .any(|h| h.as_bytes().eq_ignore_ascii_case(host))
    }

    /// Whether the request may read an operator surface: a direct loopback client, or
    /// the scraper token.
    fn may_read_operator_surface(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Access {
        let proxied = FORWARDING_HEADERS.iter().any(|h| headers.contains_key(*h));
        if !proxied && peer.is_some_and(|p| p.ip().is_loopback()) {
            return Access::Granted;
        }
        let Some(expected) = &self.scraper_token_hash else {
            return Access::LocalOnly;
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer);
        match presented {
            Some(token) if crypto::verify_secret(token, expected) => Access::Granted,
            Some(_) | None => Access::TokenRequired,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Granted,
    /// No scraper token is configured: only direct loopback clients get in.
    LocalOnly,
    /// A scraper token is configured and was not presented correctly.
    TokenRequired,
}

/// The credentials of `Bearer <token>` (RFC 6750 §2.1; the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// `METRICS_TOKEN` (inline) or `METRICS_TOKEN_FILE` (its first line), not both.
fn scraper_token(src: &Source) -> Result<Option<String>, ConfigError> {
    const INLINE_EXAMPLE: &str = "$(openssl rand -hex 32)";
    const FILE_EXAMPLE: &str = "/run/secrets/metrics-token";
    let (var, example, token) = match (src.get("METRICS_TOKEN"), src.get("METRICS_TOKEN_FILE")) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "METRICS_TOKEN",
                "and METRICS_TOKEN_FILE are both set; set one",
                INLINE_EXAMPLE,
            ))
        }
        (Some(inline), None) => ("METRICS_TOKEN", INLINE_EXAMPLE, inline.to_string()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new(
                    "METRICS_TOKEN_FILE",
                    format!("cannot be read ({})", e.kind()),
                    FILE_EXAMPLE,
                )
            })?;
            let first = text.lines().next().unwrap_or_default().trim().to_string();
            ("METRICS_TOKEN_FILE", FILE_EXAMPLE, first)
        }
    };
    if token.chars().count() < MIN_TOKEN_CHARS || !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ConfigError::new(
            var,
            format!("must hold at least {MIN_TOKEN_CHARS} printable characters without spaces"),
            example,
        ));
    }
    Ok(Some(token))
}

/// Paths of the operator surfaces, as the router sees them (percent-decoded where the
/// router decodes, so an encoded spelling cannot reach the route past this check).
fn is_operator_surface(path: &str) -> bool {
    matches!(path, "/metrics" | "/revocations" | "/revocations/stream")
}

/// `actix_web::middleware::from_fn(gate)` around the whole one-machine app, with
/// `web::Data<Exposure>` in app data.
pub async fn gate<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B, BoxBody>>, actix_web::Error> {
    let Some(exposure) = req.app_data::<web::Data<Exposure>>().cloned() else {
        let resp = refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the gateway's exposure rules are not configured",
        );
        return Ok(req.into_response(resp).map_into_right_body());
    };
    let refused = match req.headers().get(header::HOST) {
        None => Some(refusal(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "a Host header is required",
        )),
        Some(host) if !exposure.serves_host(host.as_bytes()) => Some(refusal(
            StatusCode::MISDIRECTED_REQUEST,
            "invalid_request",
            "the Host header names a host this gateway does not serve",
        )),
        Some(_) if is_operator_surface(req.match_info().as_str()) => {
            match exposure.may_read_operator_surface(req.peer_addr(), req.headers()) {
                Access::Granted => {
                    // The authorization server's own feed check defers to this
                    // decision (it would otherwise want REVOCATION_FEED_SECRET).
                    req.extensions_mut()
                        .insert(mcp_authz::http::revoke::FeedAccessGranted);
                    None
                }
                Access::LocalOnly => Some(refusal(
                    StatusCode::FORBIDDEN,
                    "access_denied",
                    "served only to clients on this machine that connect directly; set \
                     METRICS_TOKEN to let a scraper in",
                )),
                Access::TokenRequired => {
                    let mut r = refusal(
                        StatusCode::UNAUTHORIZED,
                        "invalid_token",
                        "a scraper must present Authorization: Bearer <METRICS_TOKEN>",
                    );
                    r.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        header::HeaderValue::from_static("Bearer realm=\"metrics\""),
                    );
                    Some(r)
                }
            }
        }
        Some(_) => None,
    };
    match refused {
        Some(resp) => Ok(req.into_response(resp).map_into_right_body()),
        None => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
    }
}

fn refusal(status: StatusCode, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "error": error, "error_description": description }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposure(token: Option<&str>) -> Exposure {
        let src = match token {
            Some(t) => Source::from_pairs([("METRICS_TOKEN", t)]),
            None => Source::default(),
        };
        Exposure::from_source(&src, "127.0.0.1:8080".parse().unwrap()).unwrap()
    }

    #[test]
    fn only_our_hosts_are_served() {
        let e = exposure(None);
        for ok in ["127.0.0.1:8080", "LOCALHOST:8080", "localhost:8080"] {
            assert!(e.serves_host(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "127.0.0.1:8081",
            "127.0.0.1",
            "evil.example",
            "127.0.0.1:8080\", error=\"x",
            "127.0.0.1:8080.evil.example",
            "",
        ] {
            assert!(!e.serves_host(bad.as_bytes()), "{bad}");
        }
        let v6 = Exposure::from_source(&Source::default(), "[::1]:9".parse().unwrap()).unwrap();
        assert!(v6.serves_host(b"[::1]:9") && v6.serves_host(b"localhost:9"));
    }

    #[test]
    fn operator_surfaces_need_a_direct_loopback_peer_or_the_token() {
        let token = "t".repeat(40);
        let e = exposure(Some(&token));
        let local: Option<SocketAddr> = Some("127.0.0.1:5000".parse().unwrap());
        let remote: Option<SocketAddr> = Some("203.0.113.9:5000".parse().unwrap());
        let mut h = HeaderMap::new();
        assert_eq!(e.may_read_operator_surface(local, &h), Access::Granted);
        assert_eq!(
            e.may_read_operator_surface(remote, &h),
            Access::TokenRequired
        );
        h.insert(
            header::HeaderName::from_static("x-forwarded-for"),
            header::HeaderValue::from_static("203.0.113.9"),
        );
        assert_eq!(
            e.may_read_operator_surface(local, &h),
            Access::TokenRequired
        );
        h.insert(
            header::AUTHORIZATION,
            header::HeaderValue::from_str(&format!("bearer {token}")).unwrap(),
        );
        assert_eq!(e.may_read_operator_surface(local, &h), Access::Granted);
        h.insert(
            header::AUTHORIZATION,
            header::HeaderValue::from_str(&format!("Bearer {token}x")).unwrap(),
        );
        assert_eq!(
            e.may_read_operator_surface(remote, &h),
            Access::TokenRequired
        );
        assert_eq!(
            exposure(None).may_read_operator_surface(remote, &h),
            Access::LocalOnly
        );
    }

    #[test]
    fn scraper_token_config_errors_name_the_variable() {
        let short = Source::from_pairs([("METRICS_TOKEN", "short")]);
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(
            Exposure::from_source(&short, addr).unwrap_err().var,
            "METRICS_TOKEN"
        );
        let both = Source::from_pairs([
            ("METRICS_TOKEN", "a".repeat(40).as_str()),
            ("METRICS_TOKEN_FILE", "/x"),
        ]);
        assert_eq!(
            Exposure::from_source(&both, addr).unwrap_err().var,
            "METRICS_TOKEN"
        );
        let missing = Source::from_pairs([("METRICS_TOKEN_FILE", "/definitely/not/here")]);
        assert_eq!(
            Exposure::from_source(&missing, addr).unwrap_err().var,
            "METRICS_TOKEN_FILE"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, format!("{}\n", "k".repeat(40))).unwrap();
        let from_file = Source::from_pairs([("METRICS_TOKEN_FILE", file.to_str().unwrap())]);
        let e = Exposure::from_source(&from_file, addr).unwrap();
        assert_eq!(
            e.scraper_token_hash.as_deref(),
            Some(crypto::hash_secret(&"k".repeat(40)).as_str())
        );
    }
}
