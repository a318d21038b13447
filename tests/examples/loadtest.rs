//! Sustained mixed load against the one-machine gateway (`mcp_gateway::up`,
//! in this process, embedded store, `builtin:echo`): registrations, refresh
//! rotations, verified MCP pings and tool calls at a fixed total rate. Prints
//! error counts, p50/p99 per kind, and resident memory (this process: gateway
//! plus load generator) at start and end.
//!
//! ```text
//! cargo run --release -p gateway-tests --example loadtest -- [--secs 180] [--rate 40]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)] // a load-test driver: a failure aborts the run

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway_common::config::Source;
use gateway_tests::faults_support::{authorize, browser, exchange, pkce, refresh, register_public};
use mcp_gateway::up::{self, UpArgs};
use serde_json::{json, Value};

const FAMILIES: usize = 8;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// One signed-in client: its rotating refresh token, access token and MCP session.
struct Family {
    client_id: String,
    refresh: String,
    access: String,
    session: String,
}

#[derive(Default)]
struct Stats {
    latencies: Mutex<BTreeMap<&'static str, Vec<Duration>>>,
    errors: Mutex<BTreeMap<&'static str, u64>>,
}

impl Stats {
    fn record(&self, kind: &'static str, took: Duration, ok: Result<(), String>) {
        self.latencies
            .lock()
            .unwrap()
            .entry(kind)
            .or_default()
            .push(took);
        if let Err(e) = ok {
            *self.errors.lock().unwrap().entry(kind).or_default() += 1;
            eprintln!("{kind} error: {e}");
        }
    }
}

async fn mcp_post(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    session: Option<&str>,
    body: Value,
) -> Result<reqwest::Response, String> {
    let mut r = http
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&body);
    if let Some(s) = session {
        r = r.header("mcp-session-id", s);
    }
    r.send().await.map_err(|e| e.to_string())
}

async fn mcp_session(http: &reqwest::Client, url: &str, token: &str) -> String {
    let r = mcp_post(
        http,
        url,
        token,
        None,
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "loadtest", "version": "0"}}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "initialize");
    let s = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
    let _ = r.bytes().await;
    mcp_post(
        http,
        url,
        token,
        Some(&s),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await
    .unwrap();
    s
}

/// A JSON-RPC answer in JSON or as an SSE stream: whether it carries `result`.
async fn has_result(r: reqwest::Response) -> Result<(), String> {
    let status = r.status();
    let text = r.text().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{status}: {text}"));
    }
    let ok = text.lines().any(|l| {
        let l = l.strip_prefix("data:").unwrap_or(l).trim();
        serde_json::from_str::<Value>(l).is_ok_and(|v| v.get("result").is_some())
    });
    if ok {
        Ok(())
    } else {
        Err(format!("no result: {text}"))
    }
}

fn main() -> anyhow::Result<()> {
    let secs = arg("--secs", 180);
    let rate = arg("--rate", 40).max(1);
    actix_web::rt::System::new().block_on(run(secs, rate))
}

async fn run(secs: u64, rate: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // The load comes from one address: lift the per-address limits for the run.
    let env = Source::from_pairs([("RATE_LIMIT_ENABLED", "false"), ("LOG_LEVEL", "warn")]);
    let running = up::start(
        &UpArgs {
            host: "127.0.0.1".into(),
            port: 0,
            data_dir: dir.path().to_path_buf(),
            mcp_command: "builtin:echo".into(),
        },
        &env,
        gateway_common::clock::system(),
    )
    .await?;
    let (user, password) = running
        .created_user
        .clone()
        .expect("first run creates a user");
    let base = format!("http://{}", running.addr);
    let mcp = format!("{base}/mcp");
    eprintln!("issuer {}, serving on {base}", running.issuer);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;

    let mut families = Vec::new();
    for _ in 0..FAMILIES {
        let (client_id, _) = register_public(&http, &base).await?;
        let (v, c) = pkce();
        let a = authorize(
            &browser()?,
            &base,
            &client_id,
            (&user, &password),
            &c,
            &running.mcp_url,
        )
        .await?;
        let t = exchange(&http, &base, &client_id, &a.code, &v, &running.mcp_url).await?;
        let access = t["access_token"].as_str().unwrap_or_default().to_string();
        let session = mcp_session(&http, &mcp, &access).await;
        families.push(Arc::new(tokio::sync::Mutex::new(Family {
            client_id,
            refresh: t["refresh_token"].as_str().unwrap_or_default().to_string(),
            access,
            session,
        })));
    }
    let rss_start = rss_kib();
    println!(
        "load: {rate} req/s for {secs} s against {base} (mix: 10% register, 20% refresh, 35% ping, 35% tools/call); RSS at start {} MiB",
        rss_start / 1024
    );

    let stats = Arc::new(Stats::default());
    let sent = Arc::new(AtomicU64::new(0));
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut tasks = Vec::new();
    let mut last_report = Instant::now();
    let mut n: u64 = 0;
    while start.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        n += 1;
        let (http, base, mcp, stats) = (http.clone(), base.clone(), mcp.clone(), stats.clone());
        let fam = families[(n as usize) % FAMILIES].clone();
        sent.fetch_add(1, Ordering::Relaxed);
        let kind = match n % 20 {
            0 | 1 => "register",
            2..=5 => "refresh",
            6..=12 => "ping",
            _ => "tools/call",
        };
        tasks.push(actix_web::rt::spawn(async move {
            let t = Instant::now();
            let result = match kind {
                "register" => register_public(&http, &base)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                "refresh" => {
                    let mut f = fam.lock().await;
                    match refresh(&http, &base, &f.client_id, &f.refresh).await {
                        Ok(r) if r.status() == 200 => {
                            let v: Value = r.json().await.unwrap_or_default();
                            f.refresh = v["refresh_token"].as_str().unwrap_or_default().into();
                            f.access = v["access_token"].as_str().unwrap_or_default().into();
                            Ok(())
                        }
                        Ok(r) => Err(format!("{}: {:?}", r.status(), r.text().await)),
                        Err(e) => Err(e.to_string()),
                    }
                }
                "ping" => {
                    let (access, session) = {
                        let f = fam.lock().await;
                        (f.access.clone(), f.session.clone())
                    };
                    match mcp_post(
                        &http,
                        &mcp,
                        &access,
                        Some(&session),
                        json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
                    )
                    .await
                    {
                        Ok(r) => has_result(r).await,
                        Err(e) => Err(e),
                    }
                }
                _ => {
                    let (access, session) = {
                        let f = fam.lock().await;
                        (f.access.clone(), f.session.clone())
                    };
                    match mcp_post(
                        &http,
                        &mcp,
                        &access,
                        Some(&session),
                        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                               "params": {"name": "echo", "arguments": {"message": "load"}}}),
                    )
                    .await
                    {
                        Ok(r) => has_result(r).await,
                        Err(e) => Err(e),
                    }
                }
            };
            stats.record(kind, t.elapsed(), result);
        }));
        if tasks.len() > 256 {
            tasks.retain(|t| !t.is_finished());
        }
        if last_report.elapsed() >= Duration::from_secs(30) {
            last_report = Instant::now();
            println!(
                "  t={:>4.0}s sent={} RSS={} MiB",
                start.elapsed().as_secs_f64(),
                sent.load(Ordering::Relaxed),
                rss_kib() / 1024
            );
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let rss_end = rss_kib();
    let elapsed = start.elapsed();
    let total = sent.load(Ordering::Relaxed);
    println!(
        "sent {total} requests in {:.1} s ({:.1} req/s)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    let errors = stats.errors.lock().unwrap().clone();
    let mut all_errors = 0;
    for (kind, lat) in stats.latencies.lock().unwrap().iter_mut() {
        lat.sort();
        let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
        let e = errors.get(kind).copied().unwrap_or(0);
        all_errors += e;
        println!(
            "{kind:>10}: n={:>6} errors={e:>4} p50={:>7.2?} p99={:>7.2?} max={:>7.2?}",
            lat.len(),
            pct(0.50),
            pct(0.99),
            lat[lat.len() - 1]
        );
    }
    println!(
        "errors total: {all_errors}; RSS start {} MiB, end {} MiB ({:+} MiB)",
        rss_start / 1024,
        rss_end / 1024,
        (rss_end as i64 - rss_start as i64) / 1024
    );
    running.handle.stop(true).await;
    if all_errors > 0 {
        anyhow::bail!("{all_errors} errors");
    }
    Ok(())
}
