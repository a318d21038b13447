//! Hostile-load benchmark: `mcp-gateway up` as its own process (release
//! build, embedded store, `builtin:echo`), one flood at a time for
//! `--secs` seconds (default 30) from attacker addresses on the loopback
//! range, while a legitimate client — the MCP TypeScript SDK walking the
//! whole path (sign-in, tool call, refresh, revocation) — runs again and
//! again beside it. Prints per flood: the legitimate runs' success rate and
//! p99 duration, the flood's own requests and how many were refused, and
//! the gateway's peak RSS and peak open file descriptors.
//!
//! ```text
//! bash bench/hostile.sh [--secs 30]
//! ```
//!
//! All traffic goes to 127.0.0.0/8; every flood loop is bounded in count and
//! time and stops by itself.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark driver: a failure aborts the run

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_tests::abuse_support::{attacker, client_from, hidden, raw};
use tokio::io::AsyncBufReadExt;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The gateway process and what it printed.
struct Up {
    child: tokio::process::Child,
    pid: u32,
    issuer: String,
    mcp_url: String,
    user: String,
    password: String,
    _dir: tempfile::TempDir,
}

async fn start_up(binary: &str) -> Up {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(binary)
        .args(["up", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .env("TRUSTED_PROXIES", "127.0.0.1")
        .env("CIMD_ALLOW_PRIVATE", "true")
        // The legitimate client runs dozens of times as one user, and each run
        // leaves its three sessions to idle expiry: a user's share (512 of
        // 1024) holds all of them; the bridge-sessions flood fills another
        // user's share and must leave the rest to everyone else.
        // Every legitimate run registers a new client (the SDK's dynamic
        // registration) from 127.0.0.1: ~100 a minute, over the default 30 a
        // minute per address that a real client never comes near.
        .env("RATE_LIMIT_REGISTER_PER_ADDRESS", "600")
        .env("BRIDGE_MAX_SESSIONS", "1024")
        .env("BRIDGE_MAX_SESSIONS_PER_USER", "512")
        .env("BRIDGE_MAX_SESSIONS_PER_CLIENT", "1024")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut mcp_url, mut issuer, mut creds) = (None, None, None);
    while let Some(line) = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
        .await
        .expect("the gateway printed its URLs")
        .unwrap()
    {
        let value = || line.rsplit(' ').next().unwrap_or("").to_string();
        if line.contains("MCP URL") {
            mcp_url = Some(value());
        } else if line.contains("Issuer:") {
            issuer = Some(value());
        } else if line.contains("Sign in as:") {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let n = parts.len();
            creds = Some((parts[n - 3].to_string(), parts[n - 1].to_string()));
        } else if line.contains("Press Ctrl-C") {
            break;
        }
    }
    let (user, password) = creds.expect("a first user");
    Up {
        child,
        pid,
        issuer: issuer.unwrap(),
        mcp_url: mcp_url.unwrap(),
        user,
        password,
        _dir: dir,
    }
}

/// (RSS KiB, open fds) of a process.
fn footprint(pid: u32) -> (u64, u64) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
    (rss, fds)
}

#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    refused: AtomicU64,
}

/// Each flood: runs until `stop`, bounded by `max` requests.
async fn flood(kind: &str, up: Arc<Up>, stop: Arc<AtomicBool>, counts: Arc<Counts>) {
    let addr: SocketAddr = up.issuer.trim_start_matches("http://").parse().unwrap();
    let max = 2_000_000u64;
    let count = |refused: bool| {
        counts.sent.fetch_add(1, Ordering::Relaxed);
        if refused {
            counts.refused.fetch_add(1, Ordering::Relaxed);
        }
    };
    match kind {
        // Held feed streams through a proxy, from 50 addresses, up to 5000 held.
        "feed-streams" => {
            let mut held = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && held.len() < 5000 {
                let from: IpAddr = attacker(2 + (i % 50) as u8).parse().unwrap();
                let req = format!(
                    "GET /revocations/stream HTTP/1.1\r\nHost: {addr}\r\nX-Forwarded-For: 203.0.113.{}\r\n\r\n",
                    i % 250
                );
                let (s, status) = raw(from, addr, req).await;
                count(!status.as_deref().is_some_and(|s| s.contains(" 200")));
                held.push(s);
                i += 1;
            }
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        // A chosen client's id at /token and /authorize, as fast as it goes.
        "client-id" => {
            let c = client_from(&attacker(2));
            let victim = format!("{}/clients/victim.json", up.issuer);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < max {
                let r = c
                    .post(format!("{}/token", up.issuer))
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", "x.1.y"),
                        ("client_id", victim.as_str()),
                    ])
                    .send()
                    .await;
                count(r.map_or(true, |r| r.status() == 429));
                n += 1;
            }
        }
        // Wrong passwords for the real user from 100 rotating addresses.
        "passwords" => {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && n < max {
                let b = client_from(&attacker(10 + (n % 100) as u8));
                let r = b
                    .post(format!("{}/register", up.issuer))
                    .json(&serde_json::json!({"redirect_uris": ["http://127.0.0.1:9/cb"], "token_endpoint_auth_method": "none"}))
                    .send()
                    .await;
                let Ok(r) = r else { continue };
                if r.status() != 201 {
                    count(true);
                    n += 1;
                    continue;
                }
                let id = r.json::<serde_json::Value>().await.unwrap()["client_id"]
                    .as_str()
                    .unwrap()
                    .to_string();
                for _ in 0..5 {
                    let authorize = format!("{}/authorize?response_type=code&client_id={id}&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&state=s", up.issuer);
                    let Ok(r) = b.get(&authorize).send().await else {
                        break;
                    };
                    let Some(next) = r
                        .headers()
                        .get("location")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                    else {
                        count(true);
                        break;
                    };
                    let Ok(page) = b.get(format!("{}{next}", up.issuer)).send().await else {
                        break;
                    };
                    let page = page.text().await.unwrap_or_default();
                    let (Some(req), Some(csrf)) = (hidden(&page, "req"), hidden(&page, "csrf"))
                    else {
                        count(true);
                        break;
                    };
                    let r = b
                        .post(format!("{}/signin", up.issuer))
                        .form(&[
                            ("req", req.as_str()),
                            ("csrf", csrf.as_str()),
                            ("username", up.user.as_str()),
                            ("password", "wrong"),
                        ])
                        .send()
                        .await;
                    count(r.map_or(true, |r| r.status() == 429));
                    n += 1;
                }
            }
        }
        // Device pages (each writes a CSRF record) and wrong user codes.
        "device" => {
            let c = client_from(&attacker(2));
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < max {
                let r = c.get(format!("{}/device", up.issuer)).send().await;
                let Ok(r) = r else { continue };
                if r.status() == 429 {
                    count(true);
                    n += 1;
                    continue;
                }
                let page = r.text().await.unwrap_or_default();
                let csrf = hidden(&page, "csrf").unwrap_or_default();
                let r = c
                    .post(format!("{}/device", up.issuer))
                    .form(&[("csrf", csrf.as_str()), ("user_code", "BCDF-GHJK")])
                    .send()
                    .await;
                count(r.map_or(true, |r| r.status() == 429));
                n += 1;
            }
        }
        // Distinct metadata-document URLs at the endpoints that never need them.
        // A second signed-in user opening sessions until the bridge is full.
        "bridge-sessions" => {
            use gateway_tests::faults_support as fs;
            mcp_gateway::users::add_user(
                &up._dir.path().join("users"),
                "mallory",
                "mallory-pass-1",
            )
            .unwrap();
            let browser = fs::browser().unwrap();
            let (client_id, _) = fs::register_public(&browser, &up.issuer).await.unwrap();
            let (verifier, challenge) = fs::pkce();
            let code = fs::authorize(
                &browser,
                &up.issuer,
                &client_id,
                ("mallory", "mallory-pass-1"),
                &challenge,
                &up.mcp_url,
            )
            .await
            .unwrap()
            .code;
            let token = fs::exchange(
                &browser,
                &up.issuer,
                &client_id,
                &code,
                &verifier,
                &up.mcp_url,
            )
            .await
            .unwrap()["access_token"]
                .as_str()
                .unwrap()
                .to_string();
            let http = reqwest::Client::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && n < max {
                let r = http
                    .post(&up.mcp_url)
                    .bearer_auth(&token)
                    .header("accept", "application/json, text/event-stream")
                    .json(&serde_json::json!({
                        "jsonrpc": "2.0", "id": n, "method": "initialize",
                        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                   "clientInfo": {"name": "flood", "version": "1"}}
                    }))
                    .send()
                    .await;
                count(r.map_or(true, |r| r.status() == 429));
                n += 1;
            }
        }
        "metadata-documents" => {
            let c = client_from(&attacker(2));
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && n < max {
                let id = format!("http://127.0.0.1:9/doc/{n}.json");
                let path = ["/revoke", "/introspect", "/device_authorization"][(n % 3) as usize];
                let r = c
                    .post(format!("{}{path}", up.issuer))
                    .form(&[("client_id", id.as_str()), ("token", "x")])
                    .send()
                    .await;
                count(r.map_or(true, |r| r.status() == 429));
                n += 1;
            }
        }
        other => panic!("unknown flood {other}"),
    }
}

/// Copies the browser's cookies from `from` to `to` without its session, so
/// the next run types the password (and keeps its known-browser cookie).
fn forget_session(from: &str, to: &str) {
    let Ok(text) = std::fs::read_to_string(from) else {
        return;
    };
    let mut hosts: Vec<(String, Vec<(String, String)>)> =
        serde_json::from_str(&text).unwrap_or_default();
    for (_, cookies) in &mut hosts {
        cookies.retain(|(name, _)| !name.ends_with("authz_session"));
    }
    let _ = std::fs::write(to, serde_json::to_string(&hosts).unwrap_or_default());
}

fn p99(mut v: Vec<Duration>) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len()) - 1]
}

#[tokio::main]
async fn main() {
    let secs = arg("--secs", 30);
    let binary =
        std::env::var("MCP_GATEWAY_BIN").unwrap_or_else(|_| "target/release/mcp-gateway".into());
    println!("hostile-load benchmark: {secs} s per flood, legitimate SDK client alongside");
    println!(
        "{:<20} {:>10} {:>10} {:>12} {:>12} {:>10} {:>14} {:>12}",
        "flood",
        "legit ok",
        "legit runs",
        "legit p99",
        "flood sent",
        "refused",
        "peak RSS MiB",
        "peak fds"
    );
    for kind in [
        "feed-streams",
        "client-id",
        "passwords",
        "device",
        "metadata-documents",
        "bridge-sessions",
    ] {
        let up = Arc::new(start_up(&binary).await);
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        // The user's browser signs in once before the flood starts; later runs
        // are a returning user whose browser keeps its cookies (but types the
        // password every time: the session cookie is dropped per run).
        let jar_dir = tempfile::tempdir().unwrap();
        let jar0 = jar_dir.path().join("first.json");
        let jar0 = jar0.to_str().unwrap().to_string();
        let jar = jar_dir.path().join("cookies.json");
        let jar = jar.to_str().unwrap().to_string();
        let _ = gateway_tests::run_sdk_client(
            &up.mcp_url,
            &up.user,
            &up.password,
            &[("COOKIE_JAR_FILE", jar0.as_str())],
        )
        .await;
        let legit_env = [("COOKIE_JAR_FILE", jar.as_str())];
        let flooder = tokio::spawn(flood(
            kind,
            Arc::clone(&up),
            Arc::clone(&stop),
            Arc::clone(&counts),
        ));
        // The legitimate client, again and again, while the flood runs.
        let deadline = Instant::now() + Duration::from_secs(secs);
        let (mut ok, mut runs, mut durations) = (0u32, 0u32, Vec::new());
        let (mut peak_rss, mut peak_fds) = footprint(up.pid);
        let watcher = {
            let pid = up.pid;
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut peak = (0, 0);
                while !stop.load(Ordering::Relaxed) {
                    let (r, f) = footprint(pid);
                    peak = (peak.0.max(r), peak.1.max(f));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                peak
            })
        };
        while Instant::now() < deadline {
            forget_session(&jar0, &jar);
            let t = Instant::now();
            let r = gateway_tests::run_sdk_client(&up.mcp_url, &up.user, &up.password, &legit_env)
                .await;
            durations.push(t.elapsed());
            runs += 1;
            match r {
                Ok(_) => ok += 1,
                Err(e) => eprintln!("{kind}: legitimate run failed: {e}"),
            }
        }
        stop.store(true, Ordering::Relaxed);
        let _ = tokio::time::timeout(Duration::from_secs(30), flooder).await;
        let (r, f) = watcher.await.unwrap_or((0, 0));
        peak_rss = peak_rss.max(r);
        peak_fds = peak_fds.max(f);
        println!(
            "{:<20} {:>9.0}% {:>10} {:>10.2}s {:>12} {:>10} {:>14.1} {:>12}",
            kind,
            100.0 * f64::from(ok) / f64::from(runs.max(1)),
            runs,
            p99(durations).as_secs_f64(),
            counts.sent.load(Ordering::Relaxed),
            counts.refused.load(Ordering::Relaxed),
            peak_rss as f64 / 1024.0,
            peak_fds
        );
        let mut up = Arc::try_unwrap(up).ok().expect("flood finished");
        let _ = up.child.kill().await;
    }
}
