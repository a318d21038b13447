//! The built-in diagnostic MCP server (`BRIDGE_COMMAND=builtin:echo`), answered in process.
//!
//! Tools:
//! - `echo`: returns its arguments (`message` as text when given);
//! - `whoami`: the identity headers the bridge received from the verifier;
//! - `request_context`: the request's headers (secrets removed), session id and protocol
//!   version — what an operator needs to debug an OAuth setup end to end.

use serde_json::{json, Value};

use crate::identity::Identity;
use crate::jsonrpc::{self, code};

/// What the bridge knows about the HTTP request that carried a message.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RequestContext {
    pub identity: Identity,
    /// Header names lower-cased; credentials never included (see [`is_secret_header`]).
    pub headers: Vec<(String, String)>,
    pub session_id: Option<String>,
    pub protocol_version: String,
    pub transport: &'static str,
}

/// Headers that carry credentials. The bridge never forwards them and never shows them.
pub fn is_secret_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie" | "x-api-key"
    ) || [
        "token",
        "secret",
        "password",
        "api-key",
        "apikey",
        "credential",
    ]
    .iter()
    .any(|w| n.contains(w))
}

const SERVER_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

fn tools() -> Value {
    json!([
        {
            "name": "echo",
            "description": "Returns its input unchanged.",
            "inputSchema": {
                "type": "object",
                "properties": { "message": { "type": "string", "description": "Text to echo back" } },
                "additionalProperties": true
            }
        },
        {
            "name": "whoami",
            "description": "Shows the identity headers (X-User-Id, X-User-Name, X-User-Email, X-Client-Id, X-Scopes) the bridge received.",
            "inputSchema": { "type": "object", "properties": {} }
        },
        {
            "name": "request_context",
            "description": "Shows the request headers (credentials removed), session id and protocol version the bridge saw.",
            "inputSchema": { "type": "object", "properties": {} }
        }
    ])
}

fn text_result(text: String, structured: Value) -> Value {
    json!({
        "content": [{ "type": "text", "text": text }],
        "structuredContent": structured,
        "isError": false
    })
}

/// Answers one message; `None` for notifications and responses.
pub fn handle(message: &Value, ctx: Option<&RequestContext>) -> Option<Value> {
    let id = message.get("id")?;
    let method = message.get("method")?.as_str()?;
    let empty = RequestContext::default();
    let ctx = ctx.unwrap_or(&empty);
    let params = message.get("params").cloned().unwrap_or(Value::Null);
    let reply = match method {
        "initialize" => {
            let requested = params
                .get("protocolVersion")
                .and_then(Value::as_str)
                .unwrap_or("2025-03-26");
            // Lifecycle §version negotiation: echo the client's version if supported,
            // else offer our latest.
            let version = if SERVER_VERSIONS.contains(&requested) {
                requested
            } else {
                SERVER_VERSIONS[SERVER_VERSIONS.len() - 1]
            };
            jsonrpc::result(
                id,
                json!({
                    "protocolVersion": version,
                    "capabilities": { "tools": { "listChanged": false } },
                    "serverInfo": { "name": "mcp-bridge-echo", "version": env!("CARGO_PKG_VERSION") },
                    "instructions": "Diagnostic server of the MCP gateway: call whoami to see who the gateway thinks you are."
                }),
            )
        }
        "ping" => jsonrpc::result(id, json!({})),
        "tools/list" => jsonrpc::result(id, json!({ "tools": tools() })),
        "tools/call" => {
            let name = params
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let args = params
                .get("arguments")
                .cloned()
                .unwrap_or_else(|| json!({}));
            match name {
                "echo" => {
                    let text = match args.get("message").and_then(Value::as_str) {
                        Some(m) => m.to_string(),
                        None => args.to_string(),
                    };
                    jsonrpc::result(id, text_result(text, args))
                }
                "whoami" => {
                    let who = json!(ctx.identity);
                    jsonrpc::result(id, text_result(who.to_string(), who))
                }
                "request_context" => {
                    let headers: serde_json::Map<String, Value> = ctx
                        .headers
                        .iter()
                        .filter(|(k, _)| !is_secret_header(k))
                        .map(|(k, v)| (k.clone(), json!(v)))
                        .collect();
                    let out = json!({
                        "headers": headers,
                        "session_id": ctx.session_id,
                        "protocol_version": ctx.protocol_version,
                        "transport": ctx.transport,
                        "identity": ctx.identity,
                    });
                    jsonrpc::result(id, text_result(out.to_string(), out))
                }
                other => jsonrpc::error(
                    Some(id),
                    code::INVALID_PARAMS,
                    &format!("unknown tool: {other}"),
                ),
            }
        }
        "resources/list" => jsonrpc::result(id, json!({ "resources": [] })),
        "prompts/list" => jsonrpc::result(id, json!({ "prompts": [] })),
        _ => jsonrpc::error(Some(id), code::METHOD_NOT_FOUND, "method not found"),
    };
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: Value, ctx: &RequestContext) -> Value {
        handle(
            &json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":name,"arguments":args}}),
            Some(ctx),
        )
        .unwrap()
    }

    #[test]
    fn echo_returns_its_input() {
        let r = call(
            "echo",
            json!({"message":"hi","n":1}),
            &RequestContext::default(),
        );
        assert_eq!(r["id"], json!(5));
        assert_eq!(r["result"]["content"][0]["text"], json!("hi"));
        assert_eq!(r["result"]["structuredContent"]["n"], json!(1));
    }

    #[test]
    fn request_context_never_shows_credentials() {
        let ctx = RequestContext {
            identity: Identity {
                user_id: "u1".into(),
                ..Identity::default()
            },
            headers: vec![
                ("authorization".into(), "Bearer secret".into()),
                ("cookie".into(), "s=1".into()),
                ("x-refresh-token".into(), "t".into()),
                ("x-user-id".into(), "u1".into()),
            ],
            session_id: Some("sid".into()),
            protocol_version: "2025-06-18".into(),
            transport: "streamable-http",
        };
        let r = call("request_context", json!({}), &ctx);
        let text = r["result"]["content"][0]["text"].as_str().unwrap();
        assert!(!text.contains("Bearer") && !text.contains("s=1") && !text.contains("refresh"));
        assert_eq!(
            r["result"]["structuredContent"]["headers"]["x-user-id"],
            json!("u1")
        );
        assert_eq!(
            call("whoami", json!({}), &ctx)["result"]["structuredContent"]["user_id"],
            json!("u1")
        );
    }

    #[test]
    fn negotiates_and_refuses_unknown_methods() {
        let init = handle(
            &json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2099-01-01"}}),
            None,
        )
        .unwrap();
        assert_eq!(init["result"]["protocolVersion"], json!("2025-11-25"));
        let unknown = handle(
            &json!({"jsonrpc":"2.0","id":2,"method":"server/discover"}),
            None,
        )
        .unwrap();
        assert_eq!(jsonrpc::error_code(&unknown), Some(code::METHOD_NOT_FOUND));
        assert!(handle(
            &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
            None
        )
        .is_none());
    }
}
