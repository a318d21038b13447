//! Footprint of `mcp-gateway up` serving the whole service catalog, as its own
//! process: every catalog service whose server is installed is enabled (the
//! built-ins, the pinned `.test-venv` and `tests/js` servers; the others are
//! named and skipped). Prints the time from spawn to ready (the launch banner,
//! printed once the guard can vouch for tokens), the resident memory of the
//! process tree idle, and again with one MCP session open on every service
//! (each server's process started by it), and once those sessions are closed.
//!
//! ```text
//! bash bench/catalog.sh
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark driver: a failure aborts the run

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use gateway_tests::faults_support::{authorize, browser, exchange, pkce, register_public};
use mcp_bridge::config::resolve_program;
use mcp_gateway::catalog::CATALOG;
use serde_json::json;
use tokio::io::AsyncBufReadExt;

fn search_path() -> String {
    let root = gateway_testkit::repo_root();
    format!(
        "{}:{}:{}",
        root.join(".test-venv/bin").display(),
        root.join("tests/js/node_modules/.bin").display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())
    )
}

/// Every process under `root` (itself included): pid → (name, RSS KiB).
fn tree(root: u32) -> BTreeMap<u32, (String, u64)> {
    let mut parent = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`: comm may hold spaces, so split after `)`.
        let ppid = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent.insert(pid, ppid);
        }
    }
    let mut out = BTreeMap::new();
    for &pid in parent.keys() {
        let mut p = pid;
        while p != root && p > 1 {
            p = parent.get(&p).copied().unwrap_or(0);
        }
        if p != root {
            continue;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let rss = field("VmRSS:")
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let name = cmdline
            .split('\0')
            .filter(|a| !a.is_empty())
            .map(|a| a.rsplit('/').next().unwrap_or(a))
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        out.insert(pid, (name, rss));
    }
    out
}

fn print_tree(label: &str, root: u32) -> u64 {
    let t = tree(root);
    let total: u64 = t.values().map(|(_, rss)| rss).sum();
    println!(
        "{label}: {:.1} MiB over {} process(es)",
        total as f64 / 1024.0,
        t.len()
    );
    for (pid, (name, rss)) in &t {
        println!("    {pid:>7} {:>8.1} MiB  {name}", *rss as f64 / 1024.0);
    }
    total
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let binary = std::env::var("MCP_GATEWAY_BIN").expect("MCP_GATEWAY_BIN: the mcp-gateway binary");
    let path = search_path();
    let mut enabled = Vec::new();
    for e in CATALOG {
        let program = e.command.split_whitespace().next().unwrap_or("");
        if e.command.starts_with("builtin:") || resolve_program(program, &path).is_some() {
            enabled.push(e);
        } else {
            println!(
                "skipped {}: {program} is not installed ({})",
                e.name, e.install
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(&binary);
    cmd.args(["up", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .env_clear()
        .env("PATH", &path)
        .env("HOME", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for e in &enabled {
        cmd.env(
            format!("MCP_{}_ENABLED", e.name.to_ascii_uppercase()),
            "true",
        );
    }
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let pid = child.id().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut issuer, mut creds, mut urls) = (None, None, BTreeMap::new());
    while let Some(line) = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
        .await
        .expect("the gateway printed its banner")
        .unwrap()
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        if line.contains("Issuer:") {
            issuer = words.last().map(|s| s.to_string());
        } else if line.contains("Sign in as:") {
            let n = words.len();
            creds = Some((words[n - 3].to_string(), words[n - 1].to_string()));
        } else if let [name, url] = words.as_slice() {
            if url.starts_with("http://") {
                urls.insert(name.to_string(), url.to_string());
            }
        }
        if line.contains("Press Ctrl-C") {
            break;
        }
    }
    let ready = started.elapsed();
    // Keep draining the banner's pipe so the gateway never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let issuer = issuer.expect("an issuer line");
    let (user, password) = creds.expect("a first user");
    println!(
        "services: {} ({})",
        urls.len(),
        urls.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    println!("time to ready: {} ms", ready.as_millis());
    // Idle: settled after start-up (allocator arenas, the first key fetch).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = print_tree("idle RSS", pid);

    let http = reqwest::Client::new();
    let b = browser().unwrap();
    let (client_id, _) = register_public(&http, &issuer).await.unwrap();
    let mut sessions = Vec::new();
    for (name, url) in &urls {
        let (verifier, challenge) = pkce();
        let code = authorize(&b, &issuer, &client_id, (&user, &password), &challenge, url)
            .await
            .unwrap()
            .code;
        let tokens = exchange(&http, &issuer, &client_id, &code, &verifier, url)
            .await
            .unwrap();
        let token = tokens["access_token"].as_str().unwrap().to_string();
        let t0 = Instant::now();
        let (status, sid, _) = gateway_testkit::mcp::post_rpc(
            &http,
            url,
            &token,
            None,
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "footprint", "version": "0"}}}),
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{name}: initialize");
        let sid = sid.as_deref();
        gateway_testkit::mcp::post_rpc(
            &http,
            url,
            &token,
            sid,
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        )
        .await
        .unwrap();
        let (status, _, body) = gateway_testkit::mcp::post_rpc(
            &http,
            url,
            &token,
            sid,
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        )
        .await
        .unwrap();
        assert!(
            status == 200 && body.contains("\"tools\""),
            "{name}: tools/list {status} {body}"
        );
        println!(
            "  {name}: first session (initialize + tools/list) in {} ms",
            t0.elapsed().as_millis()
        );
        sessions.push((url.clone(), token, sid.map(str::to_string)));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let open = print_tree("RSS with one session open on each service", pid);
    for (url, token, sid) in &sessions {
        if let Some(sid) = sid {
            http.delete(url)
                .bearer_auth(token)
                .header("mcp-session-id", sid)
                .header("mcp-protocol-version", "2025-06-18")
                .send()
                .await
                .unwrap();
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let closed = print_tree("RSS after those sessions ended", pid);
    println!(
        "summary: ready {} ms, idle {:.1} MiB, one session each {:.1} MiB, after {:.1} MiB",
        ready.as_millis(),
        idle as f64 / 1024.0,
        open as f64 / 1024.0,
        closed as f64 / 1024.0
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
}
