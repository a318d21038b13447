//! Rate and size limits for the endpoints anyone can call: registrations per
//! address, token and authorization requests per client and per address, and
//! the size of request headers and bodies (RFC 9700 §4.x does not fix numbers;
//! RFC 7591 §5 and RFC 6749 §10.10 ask servers to bound abuse). Over a limit:
//! `429 Too Many Requests` with `Retry-After` (RFC 6585 §4, RFC 9110 §10.2.3)
//! and an RFC 6749 §5.2-style JSON body.
//!
//! Token buckets, in memory, per instance: with several authz-servers behind a
//! balancer each enforces its own share. The limiter lives in the shared state
//! (one per process, not per actix worker). Configured by `RATE_LIMIT_*`:
//!
//! | variable | default |
//! |---|---|
//! | `RATE_LIMIT_ENABLED` | `true` |
//! | `RATE_LIMIT_REGISTER_PER_ADDRESS` | 30 per minute |
//! | `RATE_LIMIT_TOKEN_PER_CLIENT` | 120 per minute |
//! | `RATE_LIMIT_TOKEN_PER_ADDRESS` | 600 per minute |
//! | `RATE_LIMIT_AUTHORIZE_PER_CLIENT` | 120 per minute |
//! | `RATE_LIMIT_AUTHORIZE_PER_ADDRESS` | 600 per minute |
//! | `RATE_LIMIT_MAX_BODY_BYTES` | 16384 |
//! | `RATE_LIMIT_MAX_HEADER_BYTES` | 16384 |
//!
//! A per-minute value is also the burst: a bucket holds one minute's allowance.
//! `0` disables that one limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse};
use bytes::BytesMut;
use futures_util::StreamExt;
use gateway_common::clock::SharedClock;
use gateway_common::config::{ConfigError, Source};

use crate::state::AppState;

/// Buckets kept before idle (full) ones are dropped.
const MAX_TRACKED_KEYS: usize = 100_000;

/// The configured limits. A rate of 0 means "no limit".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub enabled: bool,
    pub register_per_address: u64,
    pub token_per_client: u64,
    pub token_per_address: u64,
    pub authorize_per_client: u64,
    pub authorize_per_address: u64,
    pub max_body_bytes: usize,
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            enabled: true,
            register_per_address: 30,
            token_per_client: 120,
            token_per_address: 600,
            authorize_per_client: 120,
            authorize_per_address: 600,
            max_body_bytes: 16 * 1024,
            max_header_bytes: 16 * 1024,
        }
    }
}

impl Limits {
    /// Reads `RATE_LIMIT_*`; every error names its variable (one line).
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let d = Self::default();
        let size = |key: &str, default: usize| -> Result<usize, ConfigError> {
            let v = src.u64(key, default as u64)?;
            if v < 1024 {
                return Err(ConfigError::new(
                    key,
                    format!("must be at least 1024 bytes, got {v}"),
                    &default.to_string(),
                ));
            }
            usize::try_from(v)
                .map_err(|_| ConfigError::new(key, "is too large", &default.to_string()))
        };
        Ok(Self {
            enabled: src.bool("RATE_LIMIT_ENABLED", d.enabled)?,
            register_per_address: src
                .u64("RATE_LIMIT_REGISTER_PER_ADDRESS", d.register_per_address)?,
            token_per_client: src.u64("RATE_LIMIT_TOKEN_PER_CLIENT", d.token_per_client)?,
            token_per_address: src.u64("RATE_LIMIT_TOKEN_PER_ADDRESS", d.token_per_address)?,
            authorize_per_client: src
                .u64("RATE_LIMIT_AUTHORIZE_PER_CLIENT", d.authorize_per_client)?,
            authorize_per_address: src
                .u64("RATE_LIMIT_AUTHORIZE_PER_ADDRESS", d.authorize_per_address)?,
            max_body_bytes: size("RATE_LIMIT_MAX_BODY_BYTES", d.max_body_bytes)?,
            max_header_bytes: size("RATE_LIMIT_MAX_HEADER_BYTES", d.max_header_bytes)?,
        })
    }
}

/// Which limit a key counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    RegisterAddress,
    TokenClient,
    TokenAddress,
    AuthorizeClient,
    AuthorizeAddress,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    /// Unix seconds of the last refill.
    at: u64,
}

/// One limiter per process, shared by every worker.
#[derive(Debug)]
pub struct RateLimiter {
    pub limits: Limits,
    clock: SharedClock,
    buckets: Mutex<HashMap<(Kind, String), Bucket>>,
}

impl RateLimiter {
    pub fn new(limits: Limits, clock: SharedClock) -> Self {
        Self {
            limits,
            clock,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from `key`'s bucket for a limit of `per_minute`;
    /// `Err(seconds)` until the next token is due.
    fn take(&self, kind: Kind, key: &str, per_minute: u64) -> Result<(), u64> {
        if !self.limits.enabled || per_minute == 0 {
            return Ok(());
        }
        let now = self.clock.now_secs();
        let capacity = per_minute as f64;
        let per_sec = capacity / 60.0;
        let Ok(mut map) = self.buckets.lock() else {
            // A poisoned lock: a bug elsewhere; do not turn it into an outage.
            return Ok(());
        };
        if map.len() >= MAX_TRACKED_KEYS {
            // Forget buckets that have refilled: they hold no state worth keeping.
            map.retain(|_, b| (now.saturating_sub(b.at) as f64) * per_sec < capacity);
        }
        let b = map.entry((kind, key.to_string())).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let elapsed = now.saturating_sub(b.at) as f64;
        b.tokens = (b.tokens + elapsed * per_sec).min(capacity);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - b.tokens) / per_sec).ceil() as u64).max(1))
        }
    }
}

/// Why a request was stopped before its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("too many requests; retry after {0} s")]
    TooMany(u64),
    #[error("the request body is too large")]
    BodyTooLarge,
    #[error("the request headers are too large")]
    HeadersTooLarge,
}

/// The one mapping of a limit to its answer (RFC 6749 §5.2 body shape).
pub fn limit_response(e: LimitError) -> HttpResponse {
    let (status, code, retry) = match e {
        // `temporarily_unavailable` is the registered OAuth error for "try later" (RFC 6749 §4.1.2.1).
        LimitError::TooMany(s) => (
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            Some(s),
        ),
        LimitError::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", None),
        LimitError::HeadersTooLarge => (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "invalid_request",
            None,
        ),
    };
    let mut resp = HttpResponse::build(status);
    resp.insert_header((header::CACHE_CONTROL, "no-store"));
    if let Some(s) = retry {
        resp.insert_header((header::RETRY_AFTER, s.to_string()));
    }
    resp.json(serde_json::json!({"error": code, "error_description": e.to_string()}))
}

/// Which endpoint a middleware guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Register,
    Token,
    Authorize,
    /// Sizes only.
    Other,
}

/// `/register`: registrations per address.
pub async fn register(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    guard(Endpoint::Register, req, next).await
}

/// `/token`: per client and per address.
pub async fn token(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    guard(Endpoint::Token, req, next).await
}

/// `/authorize`: per client and per address.
pub async fn authorize(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    guard(Endpoint::Authorize, req, next).await
}

/// Body and header sizes only (`/revoke`, `/introspect`, `/register/{id}`).
pub async fn sizes(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    guard(Endpoint::Other, req, next).await
}

async fn guard(
    endpoint: Endpoint,
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let limiter = &state.rate_limits;
    let stop = |req: ServiceRequest, e: LimitError| {
        tracing::info!(error = %e, path = req.path(), "request refused by a limit");
        Ok(req.into_response(limit_response(e)).map_into_right_body())
    };
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes > limiter.limits.max_header_bytes {
        return stop(req, LimitError::HeadersTooLarge);
    }
    // Buffer the body (bounded) so the client id can be read and the handler still gets it.
    let mut body = BytesMut::new();
    if endpoint != Endpoint::Authorize {
        let mut payload = req.take_payload();
        while let Some(chunk) = payload.next().await {
            body.extend_from_slice(&chunk?);
            if body.len() > limiter.limits.max_body_bytes {
                return stop(req, LimitError::BodyTooLarge);
            }
        }
    }
    let body = body.freeze();
    let address = client_address(&req, &state);
    let l = &limiter.limits;
    let verdict = match endpoint {
        Endpoint::Register => limiter.take(Kind::RegisterAddress, &address, l.register_per_address),
        Endpoint::Token => limiter
            .take(Kind::TokenAddress, &address, l.token_per_address)
            .and_then(|()| match token_client_id(&req, &body) {
                Some(id) => limiter.take(Kind::TokenClient, &id, l.token_per_client),
                None => Ok(()),
            }),
        Endpoint::Authorize => limiter
            .take(Kind::AuthorizeAddress, &address, l.authorize_per_address)
            .and_then(|()| {
                let id = url::form_urlencoded::parse(req.query_string().as_bytes())
                    .find(|(k, _)| k == "client_id")
                    .map(|(_, v)| v.into_owned());
                match id {
                    Some(id) => limiter.take(Kind::AuthorizeClient, &id, l.authorize_per_client),
                    None => Ok(()),
                }
            }),
        Endpoint::Other => Ok(()),
    };
    if let Err(retry) = verdict {
        return stop(req, LimitError::TooMany(retry));
    }
    if endpoint != Endpoint::Authorize {
        req.set_payload(Payload::from(body));
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// The client's address: the peer, or — when the peer is a trusted proxy — the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy (the
/// left part of the list is whatever the client chose to send).
fn client_address(req: &ServiceRequest, state: &AppState) -> String {
    let peer = req.peer_addr().map(|a| a.ip());
    let trusted = &state.config.trusted_proxies;
    if trusted.trusts(peer) {
        let from_header = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .filter_map(|s| s.parse::<IpAddr>().ok())
            .find(|ip| !trusted.trusts(Some(*ip)));
        if let Some(ip) = from_header {
            return ip.to_string();
        }
    }
    peer.map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
}

/// The client id of a token request: `Authorization: Basic` (RFC 6749 §2.3.1)
/// or the `client_id` form field. Unverified: only a bucket key.
fn token_client_id(req: &ServiceRequest, body: &[u8]) -> Option<String> {
    use base64::Engine;
    if let Some(v) = req.headers().get(header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        if let Some((scheme, rest)) = v.split_once(' ') {
            if scheme.eq_ignore_ascii_case("basic") {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(rest.trim())
                    .ok()?;
                let text = String::from_utf8(raw).ok()?;
                return text.split_once(':').map(|(id, _)| id.to_string());
            }
        }
    }
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "client_id")
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_common::clock::ManualClock;

    fn limiter(clock: std::sync::Arc<ManualClock>) -> RateLimiter {
        RateLimiter::new(Limits::default(), clock)
    }

    #[test]
    fn a_bucket_holds_one_minute_and_refills_steadily() {
        let clock = ManualClock::new(1_000);
        let l = limiter(clock.clone());
        for _ in 0..30 {
            assert_eq!(l.take(Kind::RegisterAddress, "a", 30), Ok(()));
        }
        // 30/min: one token every 2 s.
        assert_eq!(l.take(Kind::RegisterAddress, "a", 30), Err(2));
        assert_eq!(l.take(Kind::RegisterAddress, "b", 30), Ok(()), "per key");
        clock.advance(std::time::Duration::from_secs(2));
        assert_eq!(l.take(Kind::RegisterAddress, "a", 30), Ok(()));
        assert!(l.take(Kind::RegisterAddress, "a", 30).is_err());
        clock.advance(std::time::Duration::from_secs(3600));
        for _ in 0..30 {
            assert_eq!(
                l.take(Kind::RegisterAddress, "a", 30),
                Ok(()),
                "capped at the burst"
            );
        }
        assert!(l.take(Kind::RegisterAddress, "a", 30).is_err());
    }

    #[test]
    fn zero_or_disabled_means_unlimited() {
        let clock = ManualClock::new(0);
        let l = limiter(clock.clone());
        for _ in 0..1000 {
            assert_eq!(l.take(Kind::TokenClient, "c", 0), Ok(()));
        }
        let off = RateLimiter::new(
            Limits {
                enabled: false,
                ..Limits::default()
            },
            clock,
        );
        for _ in 0..1000 {
            assert_eq!(off.take(Kind::TokenClient, "c", 1), Ok(()));
        }
    }

    #[test]
    fn config_errors_name_the_variable() {
        let src = Source::from_pairs([("RATE_LIMIT_TOKEN_PER_CLIENT", "lots")]);
        let e = Limits::from_source(&src).unwrap_err().to_string();
        assert!(e.contains("RATE_LIMIT_TOKEN_PER_CLIENT"), "{e}");
        assert!(!e.contains('\n'));
        let src = Source::from_pairs([("RATE_LIMIT_MAX_BODY_BYTES", "10")]);
        let e = Limits::from_source(&src).unwrap_err().to_string();
        assert!(e.contains("RATE_LIMIT_MAX_BODY_BYTES"), "{e}");
        let src = Source::from_pairs([("RATE_LIMIT_REGISTER_PER_ADDRESS", "5")]);
        assert_eq!(Limits::from_source(&src).unwrap().register_per_address, 5);
    }

    #[test]
    fn the_answer_is_429_with_retry_after_and_an_oauth_body() {
        let r = limit_response(LimitError::TooMany(7));
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers().get(header::RETRY_AFTER).unwrap(), "7");
        assert_eq!(
            limit_response(LimitError::BodyTooLarge).status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }
}
