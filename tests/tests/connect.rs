//! `mcp-connect`: the MCP TypeScript SDK's stdio client transport spawns
//! `mcp-connect <url>` (tests/js/connect_client.mjs), which signs in by
//! OAuth and relays to the one-machine gateway; plus raw stdio checks of exit
//! codes and session loss, and `mcp-bridge connect <url>` (older client
//! configurations) reaching `mcp-connect`.
//!
//! The `mcp-connect` and `mcp-bridge` binaries are found next to this test executable
//! (`target/debug/`): `cargo test --workspace` builds them; with `cargo test -p
//! gateway-tests`, run `cargo build -p mcp-connect -p mcp-bridge` first.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use gateway_common::config::Source;
use gateway_tests::connect_support::{bridge_bin, sdk_client, token_files, StdioPeer};
use mcp_gateway::up::{self, UpArgs};
use serde_json::{json, Value};

async fn gateway(dir: &Path, env: &[(&str, &str)]) -> (up::Running, String, String) {
    gateway_with(dir, env, "builtin:echo").await
}

async fn gateway_with(
    dir: &Path,
    env: &[(&str, &str)],
    mcp_command: &str,
) -> (up::Running, String, String) {
    let args = UpArgs {
        host: "127.0.0.1".into(),
        port: 0,
        data_dir: dir.to_path_buf(),
        mcp_command: mcp_command.into(),
    };
    let running = up::start(
        &args,
        &Source::from_pairs(env.iter().copied()),
        gateway_common::clock::system(),
    )
    .await
    .unwrap();
    let (user, password) = running
        .created_user
        .clone()
        .expect("first run creates a user");
    (running, user, password)
}

#[actix_web::test]
async fn sdk_stdio_client_calls_tools_through_connect_and_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let (running, user, pw) = gateway(dir.path(), &[]).await;
    let work = tempfile::tempdir().unwrap();

    let run = sdk_client("tools", &running.mcp_url, work.path(), (&user, &pw), &[]).await;
    assert_eq!(run.names(), ["initialized", "tools", "tool_call", "done"]);
    assert!(run.step("tools")["names"]
        .as_array()
        .unwrap()
        .contains(&json!("echo")));
    // One browser sign-in, with RFC 9207 `iss` in the authorization response.
    assert_eq!(run.step("done")["sign_ins"], json!(["signed-in iss"]));

    // Tokens stored per server, private to the user.
    let files = token_files(work.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let saved: Value = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_eq!(saved["resource"], running.mcp_url.as_str());
    assert_eq!(saved["issuer"], running.issuer.as_str());

    // A second run uses the stored tokens: no new sign-in.
    let again = sdk_client("tools", &running.mcp_url, work.path(), (&user, &pw), &[]).await;
    assert_eq!(again.step("done")["sign_ins"], json!(["signed-in iss"]));
    running.handle.stop(false).await;
}

/// `node` from PATH, absolute: the bridged child gets a clean environment.
fn node() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("node"))
        .find(|p| p.is_file())
        .expect("node on PATH")
        .display()
        .to_string()
}

#[actix_web::test]
async fn server_to_client_requests_are_relayed_both_ways() {
    // server-everything's sampling tool sends `sampling/createMessage` to the client in
    // the middle of a tools/call; the SDK client answers it through connect.
    let everything = gateway_testkit::js_dir()
        .join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let command = shell_words_join(&[&node(), everything.to_str().unwrap(), "stdio"]);
    let dir = tempfile::tempdir().unwrap();
    let (running, user, pw) = gateway_with(dir.path(), &[], &command).await;
    let work = tempfile::tempdir().unwrap();
    let run = sdk_client("sampling", &running.mcp_url, work.path(), (&user, &pw), &[]).await;
    assert_eq!(
        run.names(),
        ["initialized", "tools", "tool_call", "sampled", "done"]
    );
    running.handle.stop(false).await;
}

fn shell_words_join(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[actix_web::test]
async fn client_id_metadata_document_instead_of_registration() {
    let doc = gateway_tests::client_document::ClientDocument::start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // CIMD_ALLOW_PRIVATE: the document is served over http from loopback (tests only).
    let (running, user, pw) = gateway(dir.path(), &[("CIMD_ALLOW_PRIVATE", "true")]).await;
    let work = tempfile::tempdir().unwrap();
    let run = sdk_client(
        "tools",
        &running.mcp_url,
        work.path(),
        (&user, &pw),
        &["--client-metadata-url", &doc.url],
    )
    .await;
    assert!(run.step("tool_call").is_object());
    let files = token_files(work.path());
    let saved: Value = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_eq!(
        saved["client_id"],
        doc.url.as_str(),
        "no dynamic registration"
    );
    assert!(
        doc.fetches() >= 1,
        "the authorization server read the document"
    );
    running.handle.stop(false).await;
    doc.stop().await;
}

#[actix_web::test]
async fn tokens_are_refreshed_ahead_of_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let (running, user, pw) = gateway(dir.path(), &[("ACCESS_TOKEN_LIFETIME", "5")]).await;
    let work = tempfile::tempdir().unwrap();
    let run = sdk_client("refresh", &running.mcp_url, work.path(), (&user, &pw), &[]).await;
    let refreshed = run.step("refreshed");
    assert_eq!(refreshed["ahead"], true, "{refreshed}");
    assert_eq!(refreshed["sign_ins"], 1, "a refresh needs no new sign-in");
    running.handle.stop(false).await;
}

#[actix_web::test]
async fn revocation_leads_to_reauthorization() {
    let dir = tempfile::tempdir().unwrap();
    let (running, user, pw) = gateway(dir.path(), &[]).await;
    let work = tempfile::tempdir().unwrap();
    let run = sdk_client("revoke", &running.mcp_url, work.path(), (&user, &pw), &[]).await;
    let r = run.step("reauthorized");
    assert_eq!(r["sign_ins"], 2, "{r}");
    assert_eq!(r["new_token"], true, "{r}");
    assert_eq!(r["refresh_refused"], true, "{r}");
    running.handle.stop(false).await;
}

#[actix_web::test]
async fn device_flow_signs_in_without_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let (running, user, pw) = gateway(dir.path(), &[("DEVICE_POLL_INTERVAL", "1")]).await;
    let work = tempfile::tempdir().unwrap();
    let run = sdk_client(
        "tools",
        &running.mcp_url,
        work.path(),
        (&user, &pw),
        &["--device"],
    )
    .await;
    assert!(
        run.names().contains(&"device_approved"),
        "{:?}",
        run.names()
    );
    assert_eq!(
        run.step("done")["sign_ins"],
        json!([]),
        "no browser was opened"
    );
    assert!(run.step("tool_call").is_object());
    assert_eq!(token_files(work.path()).len(), 1);
    running.handle.stop(false).await;
}

async fn plain_bridge(extra: &[(&str, &str)]) -> mcp_bridge::Serving {
    let mut pairs = vec![
        ("BRIDGE_COMMAND", "builtin:echo"),
        ("BRIDGE_LISTEN", "127.0.0.1:0"),
    ];
    pairs.extend_from_slice(extra);
    let cfg = mcp_bridge::Config::from_source(&Source::from_pairs(pairs)).unwrap();
    mcp_bridge::serve(cfg).await.unwrap()
}

#[actix_web::test]
async fn a_remote_without_auth_needs_no_oauth() {
    let serving = plain_bridge(&[]).await;
    let url = format!("http://{}/mcp", serving.addr);
    let work = tempfile::tempdir().unwrap();
    let run = sdk_client("tools", &url, work.path(), ("nobody", "none"), &[]).await;
    assert_eq!(run.names(), ["initialized", "tools", "tool_call", "done"]);
    assert_eq!(run.step("done")["sign_ins"], json!([]));
    assert!(token_files(work.path()).is_empty(), "no 401, no tokens");
    serving.stop().await;
}

#[actix_web::test]
async fn mcp_bridge_connect_runs_mcp_connect_with_the_same_arguments() {
    let serving = plain_bridge(&[]).await;
    let url = format!("http://{}/mcp", serving.addr);
    let work = tempfile::tempdir().unwrap();
    let store = work.path().to_str().unwrap().to_string();
    let mut peer = StdioPeer::spawn_via_bridge(&[&url, "--token-store", &store], &[]).unwrap();
    let init = peer.initialize(1).await.unwrap();
    assert!(init["result"]["protocolVersion"].is_string(), "{init}");
    let listed = peer.request(2, "tools/list", json!({})).await.unwrap();
    assert!(
        listed["result"]["tools"]
            .as_array()
            .is_some_and(|t| !t.is_empty()),
        "{listed}"
    );
    let (code, stderr) = peer.close().await.unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    serving.stop().await;
}

#[tokio::test]
async fn mcp_bridge_connect_without_mcp_connect_names_it() {
    // The bridge alone in a directory, and a PATH where mcp-connect is not either.
    let dir = tempfile::tempdir().unwrap();
    let lone = dir.path().join("mcp-bridge");
    std::fs::copy(bridge_bin().unwrap(), &lone).unwrap();
    let out = tokio::process::Command::new(&lone)
        .args(["connect", "https://svc.example.com/mcp"])
        .env_clear()
        .env("PATH", dir.path())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(127), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.starts_with("mcp-bridge connect: cannot run mcp-connect")
            && stderr.contains("install it"),
        "{stderr}"
    );
}

#[actix_web::test]
async fn a_remote_that_is_down_exits_69_with_one_line() {
    // Bound by nobody else, and refusing every connection.
    let down = gateway_testkit::RefusingPort::new().unwrap();
    let port = down.port;
    let work = tempfile::tempdir().unwrap();
    let store = work.path().to_str().unwrap().to_string();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let mut peer = StdioPeer::spawn(&[&url, "--token-store", &store], &[]).unwrap();
    peer.send(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}))
        .await
        .unwrap();
    let (code, stderr) = peer.exit().await.unwrap();
    assert_eq!(code, Some(69), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains(&format!("remote http://127.0.0.1:{port} is unreachable")),
        "{stderr}"
    );
}

#[actix_web::test]
async fn a_refusing_remote_exits_77() {
    // The bridge's DNS-rebinding guard answers 403 to a Host it does not serve.
    let serving = plain_bridge(&[("BRIDGE_ALLOWED_HOSTS", "mcp.example.com")]).await;
    let url = format!("http://{}/mcp", serving.addr);
    let work = tempfile::tempdir().unwrap();
    let store = work.path().to_str().unwrap().to_string();
    let mut peer = StdioPeer::spawn(&[&url, "--token-store", &store], &[]).unwrap();
    peer.send(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}))
        .await
        .unwrap();
    let (code, stderr) = peer.exit().await.unwrap();
    assert_eq!(code, Some(77), "{stderr}");
    assert!(stderr.contains("refused access: 403"), "{stderr}");
    serving.stop().await;
}

#[actix_web::test]
async fn a_lost_session_is_reported_and_reinitialized() {
    let serving = plain_bridge(&[]).await;
    let url = format!("http://{}/mcp", serving.addr);
    let work = tempfile::tempdir().unwrap();
    let store = work.path().to_str().unwrap().to_string();
    let mut peer = StdioPeer::spawn(&[&url, "--token-store", &store], &[]).unwrap();
    let init = peer.initialize(1).await.unwrap();
    assert!(init["result"]["protocolVersion"].is_string(), "{init}");
    let ctx = peer
        .request(
            2,
            "tools/call",
            json!({"name": "request_context", "arguments": {}}),
        )
        .await
        .unwrap();
    let text = ctx["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    let ctx: Value = serde_json::from_str(&text).unwrap();
    let session = ctx["session_id"].as_str().unwrap().to_string();
    // connect sent the negotiated version and the session on later requests.
    assert_eq!(
        ctx["protocol_version"], init["result"]["protocolVersion"],
        "{ctx}"
    );

    // The session ends at the server.
    let del = reqwest::Client::new()
        .delete(&url)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert!(del.status().is_success(), "{}", del.status());

    let gone = peer
        .request(
            3,
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "x"}}),
        )
        .await
        .unwrap();
    assert_eq!(gone["error"]["code"], -32001, "{gone}");

    // The next initialize starts a new session and everything works again.
    peer.initialize(4).await.unwrap();
    let echo = peer
        .request(
            5,
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "back again"}}),
        )
        .await
        .unwrap();
    assert!(echo.to_string().contains("back again"), "{echo}");
    let (code, _) = peer.close().await.unwrap();
    assert_eq!(code, Some(0));
    serving.stop().await;
}
