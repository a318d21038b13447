//! The Streamable HTTP endpoint (MCP 2025-03-26 .. 2025-11-25, and 2026-07-28 stateless
//! requests on the same path). Handlers are thin: they check the HTTP contract, then hand
//! JSON-RPC messages to the session's upstream.
//!
//! `handlers.rs` has POST, GET and DELETE; `stateless.rs` the requests that
//! have no session; `request.rs` reads a request; `sse_body.rs` is the body of
//! an SSE response; `mirrored.rs` checks 2026-07-28 mirrored headers;
//! `relay.rs` is what handlers share when they hand a message upstream.

mod handlers;
mod mirrored;
mod relay;
mod request;
mod sse_body;
mod stateless;

use std::sync::Arc;

use actix_web::web;

use crate::bridge::Bridge;

pub use handlers::{delete, get, method_not_allowed, post};
pub use mirrored::check_mirrored_headers;
pub use relay::admit;
pub use request::{accepts, context, header_str, identity, read_body, Accepts};
pub use sse_body::{sse_response, SseBody};

pub const SESSION_HEADER: &str = "mcp-session-id";

pub const VERSION_HEADER: &str = "mcp-protocol-version";

pub const METHOD_HEADER: &str = "mcp-method";

pub const NAME_HEADER: &str = "mcp-name";

/// Identity header names set by the verifier (shared contract).
pub const IDENTITY_HEADERS: [&str; 5] = [
    "x-user-id",
    "x-user-name",
    "x-user-email",
    "x-client-id",
    "x-scopes",
];

pub type Shared = web::Data<Arc<Bridge>>;
