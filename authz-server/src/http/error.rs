//! Where an [`OAuthError`] becomes an HTTP response: status, `Cache-Control:
//! no-store`, `WWW-Authenticate`, `Retry-After`, `DPoP-Nonce` and the RFC 6749
//! §5.2 JSON body. The decisions are [`OAuthError::parts`]; this only writes them.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::protocol::error::OAuthError;

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'a str>,
}

/// The HTTP status of an error.
pub fn status_of(e: &OAuthError) -> StatusCode {
    StatusCode::from_u16(e.parts().status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        status_of(self)
    }

    fn error_response(&self) -> HttpResponse {
        let parts = self.parts();
        let status = status_of(self);
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::info!(error = parts.code, "request refused");
        }
        let mut resp = HttpResponse::build(status);
        resp.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        if let OAuthError::UseDpopNonce(nonce) = self {
            if let Ok(v) = HeaderValue::from_str(nonce) {
                resp.insert_header(("DPoP-Nonce", v));
            }
        }
        if let Some(ch) = parts
            .challenge
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            resp.insert_header((header::WWW_AUTHENTICATE, ch));
        }
        if let Some(secs) = parts.retry_after {
            resp.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        resp.json(ErrorBody {
            error: parts.code,
            error_description: parts.description,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_is_a_valid_http_status() {
        let all = [
            OAuthError::InvalidRequest(String::new()),
            OAuthError::InvalidClient(String::new()),
            OAuthError::TooManyRequests(3),
            OAuthError::Unavailable(String::new()),
            OAuthError::Internal(String::new()),
            OAuthError::AccessDenied(String::new()),
        ];
        for e in all {
            assert_eq!(status_of(&e).as_u16(), e.parts().status, "{e}");
        }
    }

    #[test]
    fn the_response_carries_the_challenge_and_retry_after() {
        let r = OAuthError::InvalidClient("x".into()).error_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers().get(header::WWW_AUTHENTICATE).is_some());
        assert_eq!(r.headers().get(header::CACHE_CONTROL).unwrap(), "no-store");
        let r = OAuthError::TooManyRequests(7).error_response();
        assert_eq!(r.headers().get(header::RETRY_AFTER).unwrap(), "7");
    }
}
