//! Per-tool authorization on the body path, with the official TypeScript SDK
//! client (tests/js/tool_policy.mjs) against the built-in echo server (tools
//! echo, whoami, request_context), plus raw HTTP for the header rules.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code fails loudly
mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use gateway_common::config::Source;
use mcp_bridge::tool_gate::ToolGate;
use serde_json::{json, Value};

const ONE_TOOL: &str = r#"
[services.echo]
default = "deny"

[[services.echo.rules]]
name = "ada may echo"
effect = "allow"
users = ["ada"]
tools = ["echo"]
"#;

struct Env {
    serving: mcp_bridge::Serving,
    dir: tempfile::TempDir,
}

impl Env {
    async fn start(policy: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("policy.toml"), policy).unwrap();
        let mut cfg = common::echo();
        cfg.tool_gate = ToolGate::from_source(&Source::from_pairs([
            ("TOOL_POLICY_FILE", p(&dir.path().join("policy.toml"))),
            ("TOOL_POLICY_SERVICE", "echo"),
            ("AUDIT_LOG_FILE", p(&dir.path().join("audit.jsonl"))),
        ]))
        .unwrap();
        assert!(cfg.tool_gate.is_some());
        Env {
            serving: common::start(cfg).await,
            dir,
        }
    }

    fn url(&self) -> String {
        common::mcp_url(&self.serving)
    }

    fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["event"] == "tool_call")
            .collect()
    }

    /// The tool-call lines once there are `n` (the writer is asynchronous:
    /// a request never waits for the disk).
    async fn audit_once(&self, n: usize) -> Vec<Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let lines = self.audit();
            if lines.len() >= n || std::time::Instant::now() > deadline {
                return lines;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn user(name: &str) -> Value {
    json!({
        "X-User-Id": format!("local:{name}"),
        "X-User-Name": name,
        "X-User-Email": format!("{name}@example.com"),
        "X-Client-Id": "sdk-test",
        "X-Scopes": "mcp",
    })
}

/// Runs tests/js/tool_policy.mjs once; returns its report.
async fn sdk(url: &str, args: Value) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js/tool_policy.mjs");
    let out = tokio::process::Command::new(common::node())
        .arg(&script)
        .arg(url)
        .env(
            "SDK_DIR",
            common::js_modules().join("@modelcontextprotocol/sdk"),
        )
        .env("SCENARIO_ARGS", args.to_string())
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
    let report: Value = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no report from node: {text}"));
    assert_eq!(report["ok"], true, "{report}");
    report
}

fn refused(report: &Value, tool: &str) {
    let c = &report["calls"][tool];
    assert_eq!(c["ok"], false, "{tool} should be refused: {report}");
    assert_eq!(c["code"], -32003, "{report}");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("Forbidden by the gateway's tool policy"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_user_allowed_one_tool_sees_and_calls_only_that_tool() {
    let env = Env::start(ONE_TOOL).await;
    let url = env.url();
    for legacy in [false, true] {
        let r = sdk(
            &url,
            json!({"user": user("ada"), "calls": ["echo", "whoami"], "legacy": legacy}),
        )
        .await;
        assert_eq!(r["tools"], json!(["echo"]), "legacy={legacy}: {r}");
        assert_eq!(r["calls"]["echo"], json!({"ok": true, "text": "hi"}));
        refused(&r, "whoami");
    }
    let r = sdk(&url, json!({"user": user("bob"), "calls": ["echo"]})).await;
    assert_eq!(r["tools"], json!([]), "{r}");
    refused(&r, "echo");

    let audit = env.audit_once(5).await;
    let calls: Vec<(&str, &str, &str, &str)> = audit
        .iter()
        .map(|a| {
            (
                a["user_name"].as_str().unwrap(),
                a["tool"].as_str().unwrap(),
                a["decision"].as_str().unwrap(),
                a["rule"].as_str().unwrap(),
            )
        })
        .collect();
    let allowed = ("ada", "echo", "allow", "ada may echo");
    let denied = ("ada", "whoami", "deny", "default");
    assert_eq!(
        calls,
        vec![
            allowed,
            denied,
            allowed,
            denied,
            ("bob", "echo", "deny", "default")
        ]
    );
    for a in &audit {
        assert_eq!(a["source"], "bridge");
        assert_eq!(a["service"], "echo");
        assert_eq!(a["client_id"], "sdk-test");
        assert!(a["latency_us"].is_u64());
    }
    assert_eq!(audit[0]["error"], false);

    let metrics = reqwest::get(format!("http://{}/metrics", env.serving.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("mcp_bridge_tool_policy_allowed_total 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mcp_bridge_tool_policy_denied_total 3\n"),
        "{metrics}"
    );
    env.serving.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_policy_change_takes_effect_without_restart() {
    let env = Env::start(ONE_TOOL).await;
    let url = env.url();
    let r = sdk(&url, json!({"user": user("ada"), "calls": ["whoami"]})).await;
    assert_eq!(r["tools"], json!(["echo"]));
    refused(&r, "whoami");

    std::fs::write(
        env.dir.path().join("policy.toml"),
        ONE_TOOL.replace(r#"tools = ["echo"]"#, r#"tools = ["echo", "whoami"]"#),
    )
    .unwrap();
    // The client reconnects until the new list shows (bounded), then calls.
    let r = sdk(
        &url,
        json!({"user": user("ada"), "calls": ["whoami", "request_context"],
               "wait_for_tools": ["echo", "whoami"], "timeout_ms": 10000}),
    )
    .await;
    assert_eq!(r["calls"]["whoami"]["ok"], true, "{r}");
    refused(&r, "request_context");
    env.serving.stop().await;
}

async fn post(url: &str, headers: &[(&str, &str)], body: Value) -> (u16, Value) {
    let mut rb = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("x-user-name", "ada")
        .header("x-user-id", "local:ada");
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    let session = r
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    let mut v: Value = r.json().await.unwrap_or(Value::Null);
    if let Some(s) = session {
        v["_session"] = json!(s);
    }
    (status, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_must_match_the_body_and_stateless_denials_carry_the_id() {
    let env = Env::start(ONE_TOOL).await;
    let url = env.url();

    // Stateful (2025-06-18): mirrored headers are optional, but must not lie.
    let (status, init) = post(
        &url,
        &[],
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion":"2025-06-18","capabilities":{},
            "clientInfo":{"name":"raw","version":"1"}}}),
    )
    .await;
    assert_eq!(status, 200, "{init}");
    let sid = init["_session"].as_str().unwrap().to_string();
    let stateful = [
        ("mcp-session-id", sid.as_str()),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    let whoami = json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
        "params":{"name":"whoami","arguments":{}}});
    let mut lying = stateful.to_vec();
    lying.extend([("mcp-method", "tools/call"), ("mcp-name", "echo")]);
    let (status, body) = post(&url, &lying, whoami.clone()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], -32020);
    assert_eq!(body["id"], 2);
    // Without headers the body decides: refused, with the request's id, HTTP 200.
    let (status, body) = post(&url, &stateful, whoami.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], 2);
    assert_eq!(body["error"]["code"], -32003);

    // Stateless (2026-07-28).
    let stateless = |name: &'static str| {
        vec![
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", name),
        ]
    };
    let call = |id: u64, name: &str| {
        json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
            "params":{"name":name,"arguments":{"message":"x"}}})
    };
    let (status, body) = post(&url, &stateless("whoami"), call(9, "whoami")).await;
    assert_eq!((status, &body["id"]), (200, &json!(9)), "{body}");
    assert_eq!(body["error"]["code"], -32003);
    let (status, body) = post(&url, &stateless("echo"), call(10, "echo")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], 10);
    assert!(body["result"].is_object(), "{body}");
    let (status, body) = post(
        &url,
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/list"),
        ],
        json!({"jsonrpc":"2.0","id":11,"method":"tools/list"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["echo"]);
    env.serving.stop().await;
}
