//! The official MCP TypeScript SDK (`@modelcontextprotocol/sdk`, pinned in
//! tests/js) runs discovery → registration → authorization → token → refresh
//! against the server: `tests/js/sdk_flow.mjs`, run with node.
#![allow(clippy::unwrap_used)] // test bodies are shared by both stores, outside #[test] fns

mod common;

use common::*;

async fn typescript_sdk_completes_the_flow(b: Backend) {
    let s = start_with(b, &[("MCP_ECHO_URL", "{base}/mcp")]).await;
    let js = gateway_testkit::js_dir();
    let sdk = js.join("node_modules/@modelcontextprotocol/sdk/dist/esm/client/auth.js");
    assert!(
        sdk.exists(),
        "run scripts/test.sh to install tests/js: {}",
        sdk.display()
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/sdk_flow.mjs");
    let out = tokio::process::Command::new("node")
        .arg(&script)
        .current_dir(&js)
        .env("MCP_URL", s.url("/mcp"))
        .env("SDK_AUTH_MODULE", &sdk)
        .env("USERNAME", USER)
        .env("PASSWORD", PASSWORD)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "node failed:\n{stdout}\n{stderr}");
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(result["ok"], true);
    assert_eq!(result["aud"], s.url("/mcp"));
}

both_stores!(typescript_sdk_completes_the_flow);
