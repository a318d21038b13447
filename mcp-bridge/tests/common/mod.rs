//! Shared test harness: the bridge in-process on port 0 and the SDK client scenarios.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use mcp_bridge::config::{resolve_program, Command, Config};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

pub fn search_path() -> String {
    std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())
}

pub fn node() -> PathBuf {
    resolve_program("node", &search_path()).expect("node on PATH")
}

pub fn js_modules() -> PathBuf {
    gateway_testkit::js_dir().join("node_modules")
}

pub fn mcp_server(name: &str) -> PathBuf {
    js_modules()
        .join("@modelcontextprotocol")
        .join(name)
        .join("dist/index.js")
}

/// A config running `node <server-everything> stdio`.
pub fn everything() -> Config {
    node_server("server-everything", &["stdio"])
}

pub fn node_server(name: &str, args: &[&str]) -> Config {
    let mut a = vec![mcp_server(name).display().to_string()];
    a.extend(args.iter().map(|s| s.to_string()));
    let mut c = Config::for_command(Command::Exec {
        program: node(),
        args: a,
    });
    c.child_env = vec![("PATH".into(), search_path())];
    c
}

pub fn echo() -> Config {
    Config::for_command(Command::BuiltinEcho)
}

pub async fn start(cfg: Config) -> mcp_bridge::Serving {
    let s = mcp_bridge::serve(cfg).await.expect("bridge starts");
    gateway_testkit::wait_for_http(
        &format!("http://{}/health", s.addr),
        Duration::from_secs(10),
    )
    .await
    .expect("bridge healthy");
    s
}

pub fn mcp_url(s: &mcp_bridge::Serving) -> String {
    format!("http://{}/mcp", s.addr)
}

/// Runs scenarios in one node process; `on_mark` is called for each `MARK <what>` line.
pub async fn scenarios(
    url: &str,
    names: &[&str],
    extra: Value,
    mut on_mark: impl FnMut(&str),
) -> Vec<Value> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js/scenarios.mjs");
    let mut child = tokio::process::Command::new(node())
        .arg(&script)
        .arg(url)
        .args(names)
        .env("SDK_DIR", js_modules().join("@modelcontextprotocol/sdk"))
        .env("SCENARIO_ARGS", extra.to_string())
        .current_dir(gateway_testkit::js_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut out = Vec::new();
    let read = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(mark) = line.strip_prefix("MARK ") {
                on_mark(mark);
            } else if let Ok(v) = serde_json::from_str::<Value>(&line) {
                out.push(v);
            } else {
                eprintln!("node: {line}");
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(150), read)
        .await
        .expect("scenarios finish in time");
    let _ = child.wait().await;
    for v in &out {
        assert_eq!(v["ok"], Value::Bool(true), "scenario failed: {}", v);
    }
    assert_eq!(out.len(), names.len(), "every scenario reported: {out:?}");
    out
}
