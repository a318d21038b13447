//! The official TypeScript SDK client against the built-in echo server.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly
mod common;

use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_client_uses_builtin_echo_and_never_sees_the_token() {
    let s = common::start(common::echo()).await;
    let url = common::mcp_url(&s);
    let out = common::scenarios(&url, &["echo", "legacy", "concurrent"], json!({}), |_| {}).await;
    assert_eq!(
        out[0]["tools"],
        json!(["echo", "request_context", "whoami"])
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_client_uses_the_stateless_echo_without_a_session() {
    let mut cfg = common::echo();
    cfg.command = mcp_bridge::Command::BuiltinEchoStateless;
    let s = common::start(cfg).await;
    let out = common::scenarios(&common::mcp_url(&s), &["stateless"], json!({}), |_| {}).await;
    assert_eq!(out[0]["session"], json!(null));
    assert_eq!(s.bridge.session_count(), 0);
    s.stop().await;
}
