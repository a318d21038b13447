//! 2026-07-28 mirrored request headers (`Mcp-Method`, `Mcp-Name`) checked
//! against the body; their values are decoded by [`gateway_common::mcp_header`].

use serde_json::Value;

use crate::jsonrpc::Message;

/// Checks the mirrored request headers of a 2026-07-28 request against the body
/// ("Server Validation"): `Mcp-Method` always; `Mcp-Name` for tools/call, prompts/get
/// (params.name) and resources/read (params.uri); `_meta` protocol version.
pub fn check_mirrored_headers(
    method_header: Option<&str>,
    name_header: Option<&str>,
    version_header: &str,
    m: &Message,
) -> Result<(), String> {
    let method = m.method().unwrap_or_default();
    match method_header {
        None => return Err("required header Mcp-Method is missing".into()),
        Some(h) if h != method => {
            return Err(format!(
                "Mcp-Method header value {h:?} does not match body value {method:?}"
            ))
        }
        Some(_) => {}
    }
    let field = match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    };
    if let Some(field) = field {
        let body = m
            .params()
            .and_then(|p| p.get(field))
            .and_then(Value::as_str);
        let header = name_header.map(gateway_common::mcp_header::decode);
        match (header, body) {
            (None, _) => return Err("required header Mcp-Name is missing".into()),
            (Some(None), _) => return Err("Mcp-Name header is not valid base64 UTF-8".into()),
            (Some(Some(h)), Some(b)) if h == b => {}
            (Some(Some(h)), b) => {
                return Err(format!(
                    "Mcp-Name header value {h:?} does not match body value {:?}",
                    b.unwrap_or_default()
                ))
            }
        }
    }
    let meta_version = m
        .params()
        .and_then(|p| p.get("_meta"))
        .and_then(|meta| meta.get("io.modelcontextprotocol/protocolVersion"))
        .and_then(Value::as_str);
    if let Some(v) = meta_version {
        if v != version_header {
            return Err(format!(
                "MCP-Protocol-Version header value {version_header:?} does not match body value {v:?}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc;
    use serde_json::json;

    fn msg(v: Value) -> Message {
        jsonrpc::classify(v).unwrap()
    }

    #[test]
    fn mirrored_headers_must_match_the_body() {
        let call = msg(
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo",
            "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}),
        );
        assert!(
            check_mirrored_headers(Some("tools/call"), Some("echo"), "2026-07-28", &call).is_ok()
        );
        assert!(check_mirrored_headers(
            Some("tools/call"),
            Some("=?base64?ZWNobw==?="),
            "2026-07-28",
            &call
        )
        .is_ok());
        assert!(
            check_mirrored_headers(Some("tools/list"), Some("echo"), "2026-07-28", &call).is_err()
        );
        assert!(
            check_mirrored_headers(Some("tools/call"), Some("other"), "2026-07-28", &call).is_err()
        );
        assert!(check_mirrored_headers(Some("tools/call"), None, "2026-07-28", &call).is_err());
        assert!(check_mirrored_headers(None, Some("echo"), "2026-07-28", &call).is_err());
        assert!(check_mirrored_headers(
            Some("tools/call"),
            Some("=?base64?!!?="),
            "2026-07-28",
            &call
        )
        .is_err());
        let read = msg(
            json!({"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}),
        );
        assert!(check_mirrored_headers(
            Some("resources/read"),
            Some("file:///a"),
            "2026-07-28",
            &read
        )
        .is_ok());
        let list = msg(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}));
        assert!(check_mirrored_headers(Some("tools/list"), None, "2026-07-28", &list).is_ok());
        let stale = msg(json!({"jsonrpc":"2.0","id":1,"method":"tools/list",
            "params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25"}}}));
        assert!(check_mirrored_headers(Some("tools/list"), None, "2026-07-28", &stale).is_err());
    }
}
