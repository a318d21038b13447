//! MCP requests the tests make with a token (MCP 2025-06-18, Streamable
//! HTTP): `initialize`, to see whether the token gets through, and any
//! JSON-RPC message within a session.

/// POST an `initialize` request to `mcp_url` with `token` as the bearer;
/// the HTTP status of the answer.
pub async fn initialize_status(
    http: &reqwest::Client,
    mcp_url: &str,
    token: &str,
    client_name: &str,
) -> reqwest::Result<u16> {
    let body = serde_json::json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},
        "clientInfo":{"name":client_name,"version":"1"}}});
    Ok(http
        .post(mcp_url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&body)
        .send()
        .await?
        .status()
        .as_u16())
}

/// POSTs one JSON-RPC message with `token` (and a session, if any): the
/// status, the `Mcp-Session-Id` answered, and the body.
pub async fn post_rpc(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    session: Option<&str>,
    body: serde_json::Value,
) -> reqwest::Result<(u16, Option<String>, String)> {
    let mut req = http
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&body);
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    let sid = r
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((status, sid, r.text().await?))
}
