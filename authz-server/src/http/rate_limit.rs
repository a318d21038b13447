//! The budgets of every endpoint that answers without credentials, as actix
//! middleware over [`crate::limits`]. Over a limit: `429 Too Many Requests`
//! with `Retry-After` (RFC 6585 §4, RFC 9110 §10.2.3) and an RFC 6749
//! §5.2-style JSON body.
//!
//! Every limit keys on something verified: the peer address as seen through
//! `TRUSTED_PROXIES` ([`client_ip`]), or — at `/token` — the client once it
//! has authenticated. The budgets themselves: [`crate::budgets`].

use std::net::IpAddr;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use bytes::BytesMut;
use futures_util::StreamExt;

use crate::limits::{address_key, Key};
use crate::state::AppState;

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

/// Which budget a middleware spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Register,
    Token,
    Authorize,
    /// Every other endpoint that answers without credentials.
    Public,
}

/// `/register`: registrations per address.
pub async fn register(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    guard(Endpoint::Register, req, next).await
}

/// `/token`: per address here; per authenticated client in the handler.
pub async fn token(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    guard(Endpoint::Token, req, next).await
}

/// `/authorize`: per address.
pub async fn authorize(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    guard(Endpoint::Authorize, req, next).await
}

/// Sign-in, device, consent, `/revoke`, `/introspect`, `/device_authorization`,
/// `/register/{id}`: per address, and sizes.
pub async fn public(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    guard(Endpoint::Public, req, next).await
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
        state.metrics.limited(match endpoint {
            Endpoint::Register => "register",
            Endpoint::Token => "token",
            Endpoint::Authorize => "authorize",
            Endpoint::Public => "public",
        });
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
    let key = peer_key(req.request(), &state);
    let budget = match endpoint {
        Endpoint::Register => &limiter.register,
        Endpoint::Token => &limiter.token_address,
        Endpoint::Authorize => &limiter.authorize,
        Endpoint::Public => &limiter.public,
    };
    if let Err(retry) = budget.check(&key) {
        return stop(req, LimitError::TooMany(retry));
    }
    // Bodies are read here, bounded, before any handler buffers them.
    if endpoint != Endpoint::Authorize {
        let mut body = BytesMut::new();
        let mut payload = req.take_payload();
        while let Some(chunk) = payload.next().await {
            body.extend_from_slice(&chunk?);
            if body.len() > limiter.limits.max_body_bytes {
                return stop(req, LimitError::BodyTooLarge);
            }
        }
        req.set_payload(Payload::from(body.freeze()));
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// The client's address as `TRUSTED_PROXIES` lets us see it.
pub fn client_ip(req: &HttpRequest, state: &AppState) -> Option<IpAddr> {
    let xff = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok());
    state
        .config
        .trusted_proxies
        .client_address(req.peer_addr().map(|a| a.ip()), xff)
}

/// The limiter key of the client's address (no address: one shared key).
pub fn peer_key(req: &HttpRequest, state: &AppState) -> Key {
    client_ip(req, state).map_or([0xff; 16], address_key)
}

#[cfg(test)]
mod tests {
    use super::*;

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
