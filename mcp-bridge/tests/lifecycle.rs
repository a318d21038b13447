//! The `mcp-bridge` binary at the edges of its life: `--help`/`--version`
//! without configuration, SIGTERM when idle (it exits; the time is printed,
//! not asserted), and a tool call in flight at SIGTERM that still gets its
//! answer before the bridge exits.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::time::Duration;

use gateway_testkit::process::{check_help_and_version, Service};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-bridge");
/// Not a timing check: only how long to wait before calling it a hang.
const HANG_GUARD: Duration = Duration::from_secs(60);

#[test]
fn help_and_version_need_no_configuration() {
    check_help_and_version(Path::new(BIN), "mcp-bridge").unwrap();
}

#[tokio::test]
async fn sigterm_when_idle_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut bridge = Service::start(
        Path::new(BIN),
        &[],
        &[
            ("BRIDGE_COMMAND", "builtin:echo"),
            ("BRIDGE_LISTEN", "127.0.0.1:0"),
            ("LOG_FORMAT", "json"),
        ],
        dir.path(),
    )
    .await
    .unwrap();
    gateway_testkit::wait_for_http(
        &format!("http://{}/health", bridge.addr),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    bridge.terminate().unwrap();
    let (status, took) = bridge.exit(HANG_GUARD).await.unwrap();
    assert!(status.success(), "{status}\n{}", bridge.output());
    println!(
        "mcp-bridge: idle exit {:.2} s after SIGTERM",
        took.as_secs_f64()
    );
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut r = http
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .header("X-User-Id", "local:alice")
        .json(&body);
    if let Some(s) = session {
        r = r
            .header("Mcp-Session-Id", s)
            .header("MCP-Protocol-Version", "2025-06-18");
    }
    r.send().await.unwrap()
}

/// Polls for `path` to exist (the fixture server's signal).
async fn appears(path: &Path) -> bool {
    for _ in 0..6000 {
        if path.exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn a_call_in_flight_at_sigterm_is_answered_before_the_exit() {
    let dir = tempfile::tempdir().unwrap();
    let held = dir.path().join("held");
    let release = dir.path().join("release");
    let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/held_server.py");
    let command = format!("python3 {}", server.display());
    let (held_s, release_s) = (held.display().to_string(), release.display().to_string());
    let mut bridge = Service::start(
        Path::new(BIN),
        &[],
        &[
            ("BRIDGE_COMMAND", command.as_str()),
            ("BRIDGE_LISTEN", "127.0.0.1:0"),
            ("BRIDGE_JSON_RESPONSE", "true"),
            ("BRIDGE_ENV_HELD_FILE", held_s.as_str()),
            ("BRIDGE_ENV_RELEASE_FILE", release_s.as_str()),
            // Far longer than the test needs: the call is released, not timed out.
            ("SHUTDOWN_TIMEOUT", "120"),
            ("LOG_FORMAT", "json"),
        ],
        dir.path(),
    )
    .await
    .unwrap();
    let url = format!("http://{}/mcp", bridge.addr);
    let http = reqwest::Client::new();
    let init = post(
        &http,
        &url,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "lifecycle-test", "version": "1"}}}),
    )
    .await;
    assert_eq!(init.status(), 200, "{}", bridge.output());
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let r = post(
        &http,
        &url,
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(r.status(), 202);
    let call = {
        let (http, url, session) = (http.clone(), url.clone(), session.clone());
        tokio::spawn(async move {
            let r = post(
                &http,
                &url,
                Some(&session),
                json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                       "params": {"name": "hold", "arguments": {}}}),
            )
            .await;
            (r.status(), r.text().await.unwrap_or_default())
        })
    };
    assert!(appears(&held).await, "the call never reached the server");

    bridge.terminate().unwrap();
    // Draining: the listener is closed (a new connection is refused) while
    // the call is still held.
    let mut refused = false;
    for _ in 0..6000 {
        if tokio::net::TcpStream::connect(bridge.addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        refused,
        "still accepting after SIGTERM:\n{}",
        bridge.output()
    );
    assert!(
        !call.is_finished(),
        "the held call ended before its release"
    );
    std::fs::write(&release, "").unwrap();

    let (status, body) = call.await.unwrap();
    assert_eq!(status, 200, "{body}\n{}", bridge.output());
    assert!(body.contains("released"), "{body}");
    let (exit, took) = bridge.exit(HANG_GUARD).await.unwrap();
    assert!(exit.success(), "{exit}\n{}", bridge.output());
    println!(
        "mcp-bridge: exit {:.2} s after the drained call was released",
        took.as_secs_f64()
    );
}
