//! The one MCP request the OAuth tests make with a token: `initialize`
//! (MCP 2025-06-18, Streamable HTTP), to see whether the token gets through.

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
