//! Bridge fairness (issue 16): one signed-in user, or one client, holds at most its share
//! of the sessions, on Streamable HTTP and the legacy HTTP+SSE transport alike. A user
//! at the cap gets 429 with a JSON-RPC error and `Retry-After`; another user's official
//! TypeScript SDK client still opens a session and calls a tool on the real
//! server-everything child; refused attempts start no process and hold no descriptor.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code fails loudly
mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use mcp_bridge::error::LimitScope;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};

const PER_USER: usize = 3;
const PER_CLIENT: usize = 5;

fn who(user: &str, client: &str) -> [(&'static str, String); 5] {
    [
        ("x-user-id", format!("local:{user}")),
        ("x-user-name", user.to_string()),
        ("x-user-email", format!("{user}@example.com")),
        ("x-client-id", client.to_string()),
        ("x-scopes", "mcp".to_string()),
    ]
}

fn init(id: u64) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},
        "clientInfo":{"name":"flood","version":"1"}}})
}

/// A Streamable HTTP `initialize` as `user` of `client`.
async fn open(c: &Client, url: &str, user: &str, client: &str, id: u64) -> Response {
    let mut rb = c
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json");
    for (k, v) in who(user, client) {
        rb = rb.header(k, v);
    }
    rb.json(&init(id)).send().await.unwrap()
}

async fn open_ok(c: &Client, url: &str, user: &str, client: &str, id: u64) -> String {
    let r = open(c, url, user, client, id).await;
    assert_eq!(r.status(), StatusCode::OK, "{user} opens session {id}");
    r.headers()
        .get("mcp-session-id")
        .expect("a session id")
        .to_str()
        .unwrap()
        .to_string()
}

/// A legacy `GET /sse` as `user` of `client`; the response holds the session open.
async fn open_legacy(c: &Client, base: &str, user: &str, client: &str) -> Response {
    let mut rb = c
        .get(format!("{base}/sse"))
        .header("accept", "text/event-stream");
    for (k, v) in who(user, client) {
        rb = rb.header(k, v);
    }
    rb.send().await.unwrap()
}

/// Asserts a refusal for the caller's share: 429, `Retry-After`, JSON-RPC error -32004
/// naming whose share ran out, with the refused request's id.
async fn assert_refused(r: Response, scope: &str, limit: usize, id: Option<u64>) {
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&retry), "Retry-After {retry}");
    assert!(r.headers().get("mcp-session-id").is_none());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["id"], id.map_or(Value::Null, |i| json!(i)), "{body}");
    assert_eq!(body["error"]["code"], -32004, "{body}");
    assert_eq!(body["error"]["data"]["scope"], scope, "{body}");
    assert_eq!(body["error"]["data"]["limit"], limit, "{body}");
    assert_eq!(body["error"]["data"]["retryAfter"], retry, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "Too many open sessions for this {scope} (limit {limit})"
        )),
        "{message}"
    );
}

/// The official SDK client (tests/js/tool_policy.mjs) as `user`: connects, lists
/// tools, calls `echo`, closes. Returns its report.
async fn sdk(url: &str, user: &str, client: &str, legacy: bool) -> Value {
    let headers: serde_json::Map<String, Value> = who(user, client)
        .into_iter()
        .map(|(k, v)| (k.to_string(), Value::String(v)))
        .collect();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js/tool_policy.mjs");
    let out = tokio::process::Command::new(common::node())
        .arg(&script)
        .arg(url)
        .env(
            "SDK_DIR",
            common::js_modules().join("@modelcontextprotocol/sdk"),
        )
        .env(
            "SCENARIO_ARGS",
            json!({"user": headers, "calls": ["echo"], "legacy": legacy}).to_string(),
        )
        .current_dir(gateway_testkit::js_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("the SDK client finishes")
        .expect("node runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no report from node: {text}"))
}

fn assert_tool_call_works(report: &Value) {
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(
        report["calls"]["echo"],
        json!({"ok": true, "text": "Echo: hi"}),
        "{report}"
    );
}

/// Descriptors open in this process (the bridge runs in it).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn held(s: &mcp_bridge::Serving, user: &str) -> usize {
    s.bridge
        .session_count_of(LimitScope::User, &format!("local:{user}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_at_the_cap_is_refused_and_others_keep_working() {
    let mut cfg = common::everything();
    cfg.max_sessions_per_user = PER_USER;
    cfg.max_sessions_per_client = PER_CLIENT;
    let s = common::start(cfg).await;
    let url = common::mcp_url(&s);
    let base = format!("http://{}", s.addr);
    let c = Client::new();

    // Mallory fills her share: each session is one server-everything child.
    let mut mallory = Vec::new();
    for id in 1..=PER_USER as u64 {
        mallory.push(open_ok(&c, &url, "mallory", "shared-app", id).await);
    }
    assert_eq!(s.bridge.session_count(), PER_USER);
    assert_eq!(s.bridge.children_alive(), PER_USER);
    let spawned = s.bridge.children_spawned();

    // Then every further attempt, on either transport, is refused before a child starts.
    let fds = open_fds();
    for id in 100..150 {
        assert_refused(
            open(&c, &url, "mallory", "shared-app", id).await,
            "user",
            PER_USER,
            Some(id),
        )
        .await;
    }
    for _ in 0..10 {
        assert_refused(
            open_legacy(&c, &base, "mallory", "shared-app").await,
            "user",
            PER_USER,
            None,
        )
        .await;
    }
    assert_eq!(
        s.bridge.children_spawned(),
        spawned,
        "60 refusals, no child"
    );
    assert_eq!(s.bridge.session_count(), PER_USER);
    assert_eq!(s.bridge.children_alive(), PER_USER);
    // A child costs three pipes; 60 refused opens that each leaked one would add 180.
    let grown = open_fds().saturating_sub(fds);
    eprintln!(
        "after 60 refusals: {} sessions, {} children alive, {} started in all, descriptors +{grown}",
        s.bridge.session_count(),
        s.bridge.children_alive(),
        s.bridge.children_spawned()
    );
    // The other test of this binary runs meanwhile and opens its own
    // connections in this process: a few descriptors of slack, far below
    // the 60 (or 180) a leak per refusal would show.
    assert!(grown <= 24, "descriptors grew by {grown} over 60 refusals");

    // Another user, with the SDK, on both transports: session, tools, a call.
    assert_tool_call_works(&sdk(&url, "ada", "ada-app", false).await);
    assert_tool_call_works(&sdk(&url, "ada", "ada-app", true).await);
    assert_eq!(held(&s, "mallory"), PER_USER);

    // The client's share spans its users: Eve, on Mallory's client, gets the rest of it.
    let mut eve = Vec::new();
    for id in 1..=(PER_CLIENT - PER_USER) as u64 {
        eve.push(open_ok(&c, &url, "eve", "shared-app", id).await);
    }
    assert_refused(
        open(&c, &url, "eve", "shared-app", 9).await,
        "client",
        PER_CLIENT,
        Some(9),
    )
    .await;
    // The same user on another client is limited by their own share only.
    open_ok(&c, &url, "eve", "eve-app", 10).await;
    assert_tool_call_works(&sdk(&url, "ada", "ada-app", false).await);

    // DELETE frees a slot: Mallory takes it back with a legacy SSE session, and is at
    // her cap again (counted across transports).
    let mut delete = c.delete(&url).header("mcp-session-id", &mallory[0]);
    for (k, v) in who("mallory", "shared-app") {
        delete = delete.header(k, v);
    }
    assert_eq!(delete.send().await.unwrap().status(), StatusCode::OK);
    let mut legacy = open_legacy(&c, &base, "mallory", "shared-app").await;
    assert_eq!(legacy.status(), StatusCode::OK);
    let endpoint = legacy.chunk().await.unwrap().expect("the endpoint event");
    assert!(String::from_utf8_lossy(&endpoint).starts_with("event: endpoint\n"));
    assert_refused(
        open(&c, &url, "mallory", "shared-app", 200).await,
        "user",
        PER_USER,
        Some(200),
    )
    .await;

    // Idle expiry frees slots too (the reaper's clock moved past BRIDGE_IDLE_TIMEOUT):
    // the idle Streamable sessions end; the connected SSE stream is busy and stays.
    let idle = s.bridge.cfg.idle_timeout.expect("an idle timeout");
    s.bridge
        .reap(Instant::now() + idle + Duration::from_secs(1));
    assert_eq!(held(&s, "mallory"), 1, "only Mallory's SSE session is left");
    assert_eq!(held(&s, "eve"), 0);
    for id in 300..(300 + PER_USER as u64 - 1) {
        open_ok(&c, &url, "mallory", "shared-app", id).await;
    }
    assert_refused(
        open(&c, &url, "mallory", "shared-app", 400).await,
        "user",
        PER_USER,
        Some(400),
    )
    .await;
    assert_eq!(held(&s, "mallory"), PER_USER);
    drop(legacy);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_at_the_cap_reaches_the_sdk_client_as_an_error() {
    let mut cfg = common::echo();
    cfg.max_sessions_per_user = 1;
    let s = common::start(cfg).await;
    let url = common::mcp_url(&s);
    let c = Client::new();
    open_ok(&c, &url, "mallory", "app", 1).await;
    let r = sdk(&url, "mallory", "app", false).await;
    assert_eq!(r["ok"], false, "{r}");
    let error = r["error"].as_str().unwrap();
    assert!(error.contains("-32004"), "{error}");
    assert!(
        error.contains("Too many open sessions for this user"),
        "{error}"
    );
    assert_tool_call_works_echo(&sdk(&url, "ada", "app", false).await);
    s.stop().await;
}

/// The built-in echo answers `echo` with the message itself.
fn assert_tool_call_works_echo(report: &Value) {
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["calls"]["echo"]["ok"], true, "{report}");
}
