//! Built-in servers that keep no session: every request is answered on its own, so a
//! client needs no `initialize` round trip first (2026-07-28 stateless requests) and
//! an older client that does initialize gets no `Mcp-Session-Id` (2025-06-18 transports,
//! "Session Management" 1: assigning one is the server's choice) and sends none after.
//!
//! - `builtin:echo-stateless`: the diagnostic tools of [`crate::echo`];
//! - `builtin:fetch`: the `fetch` tool of [`crate::fetch`].

use std::sync::Arc;

use serde_json::{json, Value};

use crate::echo::{self, RequestContext};
use crate::fetch::Fetcher;
use crate::jsonrpc::{self, code};

/// Revisions a native server answers, oldest first (2024-11-05 needs a session: legacy SSE).
const VERSIONS: &[&str] = &["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"];

#[derive(Debug)]
pub enum Native {
    EchoStateless,
    Fetch(Arc<Fetcher>),
}

impl Native {
    fn server_name(&self) -> &'static str {
        match self {
            Native::EchoStateless => "mcp-bridge-echo-stateless",
            Native::Fetch(_) => "mcp-bridge-fetch",
        }
    }

    fn instructions(&self) -> &'static str {
        match self {
            Native::EchoStateless => "Diagnostic server of the MCP gateway without sessions: call whoami to see who the gateway thinks you are.",
            Native::Fetch(_) => "Fetches public web pages and returns them as Markdown.",
        }
    }

    /// Answers one message; `None` for notifications and responses (nothing to do).
    pub async fn handle(&self, message: &Value, ctx: &RequestContext) -> Option<Value> {
        let id = message.get("id")?;
        let method = message.get("method")?.as_str()?;
        let params = message.get("params").cloned().unwrap_or(Value::Null);
        let info = json!({ "name": self.server_name(), "version": env!("CARGO_PKG_VERSION") });
        let capabilities = json!({ "tools": { "listChanged": false } });
        let reply = match method {
            "initialize" => {
                let asked = params.get("protocolVersion").and_then(Value::as_str);
                // Lifecycle, "Version Negotiation": the client's revision if we speak it
                // (2026-07-28 has no initialize, so the newest that has one), else our latest.
                let version = asked
                    .filter(|v| VERSIONS.contains(v) && !crate::version::is_stateless(v))
                    .unwrap_or("2025-11-25");
                jsonrpc::result(
                    id,
                    json!({
                        "protocolVersion": version,
                        "capabilities": capabilities,
                        "serverInfo": info,
                        "instructions": self.instructions(),
                    }),
                )
            }
            // 2026-07-28 "Discovery": what an initialize would have told.
            "server/discover" => jsonrpc::result(
                id,
                json!({
                    "supportedVersions": VERSIONS,
                    "capabilities": capabilities,
                    "serverInfo": info,
                    "instructions": self.instructions(),
                }),
            ),
            "ping" => jsonrpc::result(id, json!({})),
            "resources/list" => jsonrpc::result(id, json!({ "resources": [] })),
            "prompts/list" => jsonrpc::result(id, json!({ "prompts": [] })),
            "tools/list" | "tools/call" => match self {
                Native::EchoStateless => echo::handle(message, Some(ctx))?,
                Native::Fetch(f) => f.handle(id, method, &params).await,
            },
            _ => jsonrpc::error(Some(id), code::METHOD_NOT_FOUND, "method not found"),
        };
        Some(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stateless_echo_discovers_initializes_and_calls() {
        let n = Native::EchoStateless;
        let ctx = RequestContext::default();
        let d = n
            .handle(
                &json!({"jsonrpc":"2.0","id":1,"method":"server/discover"}),
                &ctx,
            )
            .await
            .unwrap();
        assert!(d["result"]["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("2026-07-28")));
        let init = n
            .handle(
                &json!({"jsonrpc":"2.0","id":2,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}),
                &ctx,
            )
            .await
            .unwrap();
        assert_eq!(init["result"]["protocolVersion"], json!("2025-06-18"));
        assert_eq!(
            init["result"]["serverInfo"]["name"],
            json!("mcp-bridge-echo-stateless")
        );
        let call = n
            .handle(
                &json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}),
                &ctx,
            )
            .await
            .unwrap();
        assert_eq!(call["result"]["content"][0]["text"], json!("hi"));
        assert!(n
            .handle(
                &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
                &ctx
            )
            .await
            .is_none());
    }
}
