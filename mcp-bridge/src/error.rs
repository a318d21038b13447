//! The HTTP boundary's errors and their one mapping to status and JSON-RPC body.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Value};

use crate::jsonrpc::{self, code, FrameError};

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("not acceptable: the client must accept application/json or text/event-stream")]
    NotAcceptable,
    #[error("unsupported media type: POST bodies must be application/json")]
    UnsupportedMediaType,
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("{0}")]
    Frame(FrameError),
    #[error("batches are only allowed with protocol version 2025-03-26")]
    BatchNotAllowed,
    #[error("initialize must be sent alone")]
    InitializeInBatch,
    #[error("a JSON-RPC response cannot be sent here")]
    ResponseNotAllowed,
    #[error("Mcp-Session-Id header is required")]
    MissingSession,
    #[error("session not found")]
    UnknownSession,
    #[error("unsupported protocol version")]
    UnsupportedVersion(String),
    #[error("header mismatch: {message}")]
    HeaderMismatch { id: Option<Value>, message: String },
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("too many sessions")]
    TooManySessions,
    /// The caller's user or client holds its share of the sessions; other callers
    /// still get theirs. `id`: the refused `initialize`, when there is one.
    #[error("too many open sessions for this {scope}")]
    SessionLimit {
        scope: LimitScope,
        limit: usize,
        retry_after_secs: u64,
        id: Option<Value>,
    },
    #[error("the MCP server could not be started")]
    SpawnFailed,
    #[error("the MCP server is busy")]
    UpstreamBusy,
    #[error("the MCP server did not answer initialization")]
    UpstreamInitFailed,
}

/// Whose share of the session cap ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    User,
    Client,
}

impl std::fmt::Display for LimitScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LimitScope::User => "user",
            LimitScope::Client => "client",
        })
    }
}

impl BridgeError {
    /// Status, JSON-RPC error code and client-facing message. No `_` arm: a new variant
    /// forces a decision here.
    fn parts(&self) -> (StatusCode, i64, String) {
        match self {
            // MCP transports, security warning: invalid Origin → 403.
            BridgeError::Forbidden(why) => (
                StatusCode::FORBIDDEN,
                code::INVALID_REQUEST,
                format!("Forbidden: {why}"),
            ),
            BridgeError::NotAcceptable => (
                StatusCode::NOT_ACCEPTABLE,
                code::INVALID_REQUEST,
                self.to_string(),
            ),
            BridgeError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code::INVALID_REQUEST,
                self.to_string(),
            ),
            BridgeError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                code::INVALID_REQUEST,
                self.to_string(),
            ),
            BridgeError::Frame(e) => (StatusCode::BAD_REQUEST, e.code(), e.to_string()),
            BridgeError::BatchNotAllowed
            | BridgeError::InitializeInBatch
            | BridgeError::ResponseNotAllowed
            | BridgeError::MissingSession => (
                StatusCode::BAD_REQUEST,
                code::INVALID_REQUEST,
                self.to_string(),
            ),
            BridgeError::UnknownSession => (
                StatusCode::NOT_FOUND,
                code::SESSION_NOT_FOUND,
                self.to_string(),
            ),
            BridgeError::UnsupportedVersion(v) => (
                StatusCode::BAD_REQUEST,
                code::INVALID_REQUEST,
                format!("unsupported MCP-Protocol-Version {v:?}"),
            ),
            BridgeError::HeaderMismatch { message, .. } => (
                StatusCode::BAD_REQUEST,
                code::HEADER_MISMATCH,
                format!("Header mismatch: {message}"),
            ),
            BridgeError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                code::INVALID_REQUEST,
                self.to_string(),
            ),
            BridgeError::TooManySessions => (
                StatusCode::SERVICE_UNAVAILABLE,
                code::SERVER_UNAVAILABLE,
                self.to_string(),
            ),
            // RFC 6585 §4: the caller, not the server, is over a limit; Retry-After says
            // when an idle session of theirs would expire.
            BridgeError::SessionLimit { scope, limit, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                code::SESSION_LIMIT,
                format!(
                    "Too many open sessions for this {scope} (limit {limit}): close one \
                     (DELETE, or end its SSE stream) or wait for an idle one to expire"
                ),
            ),
            BridgeError::SpawnFailed | BridgeError::UpstreamInitFailed => (
                StatusCode::BAD_GATEWAY,
                code::SERVER_UNAVAILABLE,
                self.to_string(),
            ),
            BridgeError::UpstreamBusy => (
                StatusCode::SERVICE_UNAVAILABLE,
                code::SERVER_UNAVAILABLE,
                self.to_string(),
            ),
        }
    }

    fn body(&self) -> Value {
        let (_, c, message) = self.parts();
        match self {
            BridgeError::UnsupportedVersion(v) => jsonrpc::error_with_data(
                None,
                c,
                &message,
                json!({ "supported": crate::version::SUPPORTED, "requested": v }),
            ),
            BridgeError::HeaderMismatch { id, .. } => jsonrpc::error(id.as_ref(), c, &message),
            BridgeError::SessionLimit {
                scope,
                limit,
                retry_after_secs,
                id,
            } => jsonrpc::error_with_data(
                id.as_ref(),
                c,
                &message,
                json!({ "scope": scope.to_string(), "limit": limit, "retryAfter": retry_after_secs }),
            ),
            BridgeError::Forbidden(_)
            | BridgeError::NotAcceptable
            | BridgeError::UnsupportedMediaType
            | BridgeError::PayloadTooLarge
            | BridgeError::Frame(_)
            | BridgeError::BatchNotAllowed
            | BridgeError::InitializeInBatch
            | BridgeError::ResponseNotAllowed
            | BridgeError::MissingSession
            | BridgeError::UnknownSession
            | BridgeError::MethodNotAllowed
            | BridgeError::TooManySessions
            | BridgeError::SpawnFailed
            | BridgeError::UpstreamBusy
            | BridgeError::UpstreamInitFailed => jsonrpc::error(None, c, &message),
        }
    }
}

impl ResponseError for BridgeError {
    fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status_code());
        if matches!(self, BridgeError::MethodNotAllowed) {
            resp.insert_header((header::ALLOW, "GET, POST, DELETE, OPTIONS"));
        }
        if let BridgeError::SessionLimit {
            retry_after_secs, ..
        } = self
        {
            resp.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        resp.content_type("application/json")
            .body(self.body().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_transport_spec() {
        assert_eq!(
            BridgeError::Frame(FrameError::NotJson).status_code(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            BridgeError::Frame(FrameError::NotJson).body()["error"]["code"],
            json!(code::PARSE_ERROR)
        );
        assert_eq!(
            BridgeError::UnknownSession.status_code(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            BridgeError::MissingSession.status_code(),
            StatusCode::BAD_REQUEST
        );
        let m = BridgeError::HeaderMismatch {
            id: Some(json!(4)),
            message: "x".into(),
        };
        assert_eq!(m.body()["id"], json!(4));
        assert_eq!(m.body()["error"]["code"], json!(-32020));
        let r = BridgeError::MethodNotAllowed.error_response();
        assert!(r.headers().contains_key(header::ALLOW));
        let limit = BridgeError::SessionLimit {
            scope: LimitScope::User,
            limit: 16,
            retry_after_secs: 42,
            id: Some(json!(1)),
        };
        assert_eq!(limit.status_code(), StatusCode::TOO_MANY_REQUESTS);
        let body = limit.body();
        assert_eq!(body["id"], json!(1));
        assert_eq!(body["error"]["code"], json!(code::SESSION_LIMIT));
        assert_eq!(body["error"]["data"]["scope"], json!("user"));
        let r = limit.error_response();
        assert_eq!(r.headers().get(header::RETRY_AFTER).unwrap(), "42");
    }
}
