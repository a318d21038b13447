//! Benchmark: `tools/call` echo latency (p50/p99), throughput and resident memory.
//!
//! Run with `mcp-bridge/bench/run.sh` (release build). Compares, side by side:
//! - server-everything's own Streamable HTTP mode (`node dist/index.js streamableHttp`),
//! - the bridge around `node dist/index.js stdio`, per-session and shared children,
//! - the bridge's built-in echo server (bridge overhead alone),
//! - any extra proxy named in `BENCH_EXTRA` (`name=command line with {port}`; `;`-separated),
//!   e.g. supergateway, mcp-proxy, mcp-streamablehttp-proxy installed outside the repo.
//!
//! Memory is the RSS of the whole process tree (server + children) after opening
//! 1, 10 and 100 sessions, each initialized and used once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ACCEPT: &str = "application/json, text/event-stream";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn everything() -> PathBuf {
    repo().join("tests/js/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proc {
    child: std::process::Child,
    url: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        // The bridge ends its children on SIGTERM/ctrl-c; kill the whole group to be sure.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "port {port} never opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spawn(
    program: &str,
    args: &[String],
    env: &[(&str, String)],
    url_path: &str,
    port: u16,
) -> Proc {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.clone())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    Proc {
        child,
        url: format!("http://127.0.0.1:{port}{url_path}"),
    }
}

fn bridge_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("mcp-bridge")
}

async fn start_bridge(model: &str, command: &str) -> Proc {
    let port = free_port();
    let p = spawn(
        bridge_bin().to_str().unwrap(),
        &[],
        &[
            ("BRIDGE_LISTEN", format!("127.0.0.1:{port}")),
            ("BRIDGE_COMMAND", command.to_string()),
            ("BRIDGE_PROCESS_MODEL", model.to_string()),
            ("BRIDGE_MAX_SESSIONS", "1000".into()),
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("RUST_LOG", "warn".into()),
        ],
        "/mcp",
        port,
    );
    wait_port(port).await;
    p
}

async fn start_native() -> Proc {
    let port = free_port();
    let p = spawn(
        "node",
        &[everything().display().to_string(), "streamableHttp".into()],
        &[
            ("PORT", port.to_string()),
            ("PATH", std::env::var("PATH").unwrap_or_default()),
        ],
        "/mcp",
        port,
    );
    wait_port(port).await;
    p
}

async fn start_extra(command: &str) -> Proc {
    let port = free_port();
    let line = command.replace("{port}", &port.to_string());
    let words = shell_words::split(&line).unwrap();
    let p = spawn(
        &words[0],
        &words[1..],
        &[("PATH", std::env::var("PATH").unwrap_or_default())],
        "/mcp",
        port,
    );
    wait_port(port).await;
    p
}

/// The JSON-RPC message in a JSON or SSE body whose id is `id`.
fn find_response(body: &str, id: &Value) -> Option<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        return (v["id"] == *id).then_some(v);
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v["id"] == *id)
}

struct Session {
    url: String,
    sid: Option<String>,
    next: u64,
}

async fn rpc(c: &reqwest::Client, s: &mut Session, method: &str, params: Value) -> Value {
    s.next += 1;
    let id = json!(s.next);
    let mut rb = c
        .post(&s.url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .header("mcp-protocol-version", "2025-06-18");
    if let Some(sid) = &s.sid {
        rb = rb.header("mcp-session-id", sid);
    }
    let body = json!({"jsonrpc":"2.0","id":id,"method":method,"params":params});
    let r = rb.body(body.to_string()).send().await.unwrap();
    if let Some(sid) = r.headers().get("mcp-session-id") {
        s.sid = Some(sid.to_str().unwrap().to_string());
    }
    let text = r.text().await.unwrap();
    find_response(&text, &id).unwrap_or_else(|| panic!("no response to {method}: {text}"))
}

async fn open(c: &reqwest::Client, url: &str) -> Session {
    let mut s = Session {
        url: url.to_string(),
        sid: None,
        next: 0,
    };
    let init = rpc(
        c,
        &mut s,
        "initialize",
        json!({"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}),
    )
    .await;
    assert!(init["result"].is_object(), "{init}");
    let mut rb = c
        .post(url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
        .header("mcp-protocol-version", "2025-06-18");
    if let Some(sid) = &s.sid {
        rb = rb.header("mcp-session-id", sid);
    }
    rb.body(json!({"jsonrpc":"2.0","method":"notifications/initialized"}).to_string())
        .send()
        .await
        .unwrap();
    s
}

async fn echo(c: &reqwest::Client, s: &mut Session) {
    let r = rpc(
        c,
        s,
        "tools/call",
        json!({"name":"echo","arguments":{"message":"ping"}}),
    )
    .await;
    assert!(r["result"].is_object(), "{r}");
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

struct Latency {
    p50: f64,
    p99: f64,
    rps: f64,
}

async fn measure(url: &str, n: usize, concurrency: usize) -> Latency {
    let c = reqwest::Client::new();
    let mut s = open(&c, url).await;
    for _ in 0..100 {
        echo(&c, &mut s).await;
    }
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        echo(&c, &mut s).await;
        lat.push(t.elapsed());
    }
    lat.sort();
    // Throughput: `concurrency` sessions calling in parallel.
    let mut sessions = Vec::new();
    for _ in 0..concurrency {
        sessions.push(open(&c, url).await);
    }
    let per = n / concurrency;
    let t = Instant::now();
    let tasks: Vec<_> = sessions
        .into_iter()
        .map(|mut s| {
            let c = c.clone();
            tokio::spawn(async move {
                for _ in 0..per {
                    echo(&c, &mut s).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let rps = (per * concurrency) as f64 / t.elapsed().as_secs_f64();
    Latency {
        p50: pct(&lat, 0.5),
        p99: pct(&lat, 0.99),
        rps,
    }
}

/// kB of resident memory of `root` and every descendant.
fn tree_rss_kb(root: u32) -> u64 {
    let mut parent: HashMap<u32, u32> = HashMap::new();
    let mut rss: HashMap<u32, u64> = HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        for line in status.lines() {
            if let Some(v) = line.strip_prefix("PPid:") {
                parent.insert(pid, v.trim().parse().unwrap_or(0));
            }
            if let Some(v) = line.strip_prefix("VmRSS:") {
                rss.insert(
                    pid,
                    v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0),
                );
            }
        }
    }
    let in_tree = |mut p: u32| loop {
        if p == root {
            return true;
        }
        match parent.get(&p) {
            Some(&pp) if pp != 0 && pp != p => p = pp,
            _ => return false,
        }
    };
    rss.iter()
        .filter(|(p, _)| in_tree(**p))
        .map(|(_, r)| *r)
        .sum()
}

async fn memory(p: &Proc, counts: &[usize]) -> Vec<u64> {
    let c = reqwest::Client::new();
    let mut open_sessions = Vec::new();
    let mut out = Vec::new();
    for &n in counts {
        while open_sessions.len() < n {
            let mut s = open(&c, &p.url).await;
            echo(&c, &mut s).await;
            open_sessions.push(s);
        }
        out.push(tree_rss_kb(p.child.id()));
    }
    out
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let conc = 8;
    let counts = [1usize, 10, 100];
    let node_cmd = format!("node {} stdio", everything().display());
    let extras: Vec<(String, String)> = std::env::var("BENCH_EXTRA")
        .unwrap_or_default()
        .split(';')
        .filter_map(|e| {
            e.split_once('=')
                .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
        })
        .collect();

    println!("tools/call echo, {n} sequential calls after 100 warm-up (p50/p99), then {conc} sessions in parallel (calls/s)");
    println!(
        "{:<34} {:>9} {:>9} {:>10}",
        "target", "p50 ms", "p99 ms", "calls/s"
    );
    let mut rows: Vec<(String, Latency)> = Vec::new();
    {
        let p = start_native().await;
        rows.push((
            "server-everything native HTTP".into(),
            measure(&p.url, n, conc).await,
        ));
    }
    for model in ["session", "shared"] {
        let p = start_bridge(model, &node_cmd).await;
        rows.push((
            format!("bridge ({model}) + everything"),
            measure(&p.url, n, conc).await,
        ));
    }
    {
        let p = start_bridge("session", "builtin:echo").await;
        rows.push(("bridge builtin:echo".into(), measure(&p.url, n, conc).await));
    }
    for (name, cmd) in &extras {
        let p = start_extra(cmd).await;
        rows.push((name.clone(), measure(&p.url, n, conc).await));
    }
    for (name, l) in &rows {
        println!("{name:<34} {:>9.3} {:>9.3} {:>10.0}", l.p50, l.p99, l.rps);
    }
    let native = &rows[0].1;
    for (name, l) in rows.iter().skip(1) {
        println!(
            "  {name}: p50 {:+.3} ms vs native ({:.2}x), throughput {:.2}x native",
            l.p50 - native.p50,
            l.p50 / native.p50,
            l.rps / native.rps
        );
    }

    if std::env::var("BENCH_SKIP_MEMORY").is_ok() {
        return;
    }
    println!("\nresident memory of the process tree (MiB) with 1 / 10 / 100 open sessions");
    let mut mem: Vec<(String, Vec<u64>)> = Vec::new();
    {
        let p = start_native().await;
        mem.push((
            "server-everything native HTTP".into(),
            memory(&p, &counts).await,
        ));
    }
    for model in ["shared", "session"] {
        let p = start_bridge(model, &node_cmd).await;
        mem.push((
            format!("bridge ({model}) + everything"),
            memory(&p, &counts).await,
        ));
    }
    for (name, cmd) in &extras {
        let p = start_extra(cmd).await;
        mem.push((name.clone(), memory(&p, &counts).await));
    }
    for (name, m) in &mem {
        let mib: Vec<String> = m
            .iter()
            .map(|k| format!("{:.1}", *k as f64 / 1024.0))
            .collect();
        println!(
            "{name:<34} {}   (100/1 = {:.2}x)",
            mib.join(" / "),
            m[2] as f64 / m[0].max(1) as f64
        );
    }
}
