//! JSON-RPC 2.0 vocabulary that the bridge and `mcp-connect` share: the error codes
//! they answer with and how a message id is kept as a map key.

use serde_json::Value;

/// JSON-RPC 2.0 §5.1 and MCP error codes.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Implementation-defined server error (JSON-RPC §5.1 reserves -32000..-32099):
    /// the MCP server behind the bridge (or the remote behind `mcp-connect`) is gone or
    /// could not be reached.
    pub const SERVER_UNAVAILABLE: i64 = -32000;
    /// Session unknown or ended (the TypeScript SDK uses the same code).
    pub const SESSION_NOT_FOUND: i64 = -32001;
    /// The request outlived `BRIDGE_REQUEST_TIMEOUT`.
    pub const REQUEST_TIMEOUT: i64 = -32002;
    /// The caller's user or client already holds its share of the bridge's sessions
    /// (-32003 is the tool policy's refusal).
    pub const SESSION_LIMIT: i64 = -32004;
    /// The client cancelled the request (`notifications/cancelled`); the code LSP uses,
    /// since MCP defines none (the client ignores the response anyway).
    pub const REQUEST_CANCELLED: i64 = -32800;
    /// MCP 2026-07-28 `HeaderMismatch`: mirrored headers disagree with the body.
    pub const HEADER_MISMATCH: i64 = -32020;
}

/// A request or notification id, kept as the JSON the peer sent (number or string).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdKey(String);

impl IdKey {
    pub fn of(id: &Value) -> Self {
        Self(id.to_string())
    }
}
