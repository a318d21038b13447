//! Verifier benchmark. Run: `cargo run --release -p mcp-verifier --example bench_verify`
//! (optional: `-- --seconds 3 --connections 32`; `-- --policy-only` runs only
//! the tool-policy scenario, `-- --dpop-only` only the DPoP one,
//! `-- --metrics-cost [--rounds N]` only what recording metrics costs a cached
//! `/verify`, issue 19).
//!
//! Side by side with the Python gateway's `/verify` (PyPI
//! `mcp-oauth-dynamicclient==0.2.0`, issue 5 target ≥ 50×): `bench/run.sh
//! verify` starts it against a private Redis, obtains a valid token from it and
//! passes `--python-url URL --python-creds FILE [--python-pid PID]
//! [--redis-url URL] [--rounds N]`. The same client, connections and duration
//! then load both; the rounds alternate the two sides; a verifier fed by that
//! same Redis (pub/sub revocations) is the one compared when `--redis-url` is given.
//!
//! One run prints:
//! * requests/s, p50 and p99 for `/verify` with a cached valid token, a valid
//!   token never seen before, a bad token (forged signature), and a no-op 200
//!   endpoint served by the same binary, all over keep-alive HTTP/1.1 against
//!   127.0.0.1 with fixed concurrency and a bounded duration;
//! * an in-process microbenchmark: one ES256 signature check vs. a full
//!   first-seen decision vs. a cached decision; then a DPoP-bound token
//!   (cached) with a fresh proof on every request beside the cached bearer
//!   token and one ES256 check (issue 22 goal: DPoP ≤ cached bearer + 1.15 ×
//!   one ES256 check);
//! * resident memory of a verifier process idle and with one million revoked ids;
//! * revocation propagation (p50/p99/max) across three verifier processes.
//!
//! The verifier runs as a child process (this same example binary with
//! `--serve`, one actix worker) so its memory can be read from /proc and the
//! load generator (one tokio thread, hand-written HTTP/1.1 client so the client
//! costs as little as possible) does not share its heap. Keys and revocations
//! come from the in-process authz contract server used by the tests.

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_common::clock::{Clock, SystemClock};
use gateway_common::config::Source;
use gateway_common::revocation::RevocationEvent;
use gateway_testkit::raw_http::RawConn;
use mcp_verifier::forwarded::{AuthorizationHeader, ForwardedRequest};
use mcp_verifier::{Decision, VerifierConfig};
use support::*;

const RESOURCE: &str = "https://echo.example.test/mcp";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve") {
        return serve_child(args.iter().any(|a| a == "--no-metrics"));
    }
    if args.get(1).map(String::as_str) == Some("--raw-es256") {
        let seconds = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
        return raw_es256(Duration::from_secs(seconds));
    }
    let arg = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let seconds = arg("--seconds", 3);
    let connections = arg("--connections", 32) as usize;
    let text = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let compare = Compare {
        rounds: arg("--rounds", 1).max(1) as usize,
        redis_url: text("--redis-url"),
        python: match (text("--python-url"), text("--python-creds")) {
            (Some(url), Some(creds)) => Some(Python {
                addr: url
                    .strip_prefix("http://")
                    .ok_or_else(|| anyhow::anyhow!("--python-url must be http://host:port"))?
                    .trim_end_matches('/')
                    .parse()?,
                token: serde_json::from_slice::<serde_json::Value>(&std::fs::read(creds)?)?
                    ["access_token"]
                    .as_str()
                    .ok_or_else(|| anyhow::anyhow!("no access_token in --python-creds"))?
                    .to_string(),
                pid: text("--python-pid").and_then(|p| p.parse().ok()),
            }),
            _ => None,
        },
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    if args.iter().any(|a| a == "--policy-only") {
        // Just the issue-11 scenario (tool policy vs. cached verify).
        return rt.block_on(local.run_until(async {
            let key = TestKey::generate("bench");
            let authz = Authz::start(jwks(&[&key])).await;
            let token = key.sign(&claims(RESOURCE, SystemClock.now_secs()));
            policy_overhead(&authz, &token).await
        }));
    }
    if args.iter().any(|a| a == "--metrics-cost") {
        return rt.block_on(local.run_until(async {
            let key = TestKey::generate("bench");
            let authz = Authz::start(jwks(&[&key])).await;
            let token = key.sign(&claims(RESOURCE, SystemClock.now_secs()));
            metrics_cost(
                &authz,
                &token,
                Duration::from_secs(seconds),
                connections,
                arg("--rounds", 5).max(1) as usize,
            )
            .await
        }));
    }
    if args.iter().any(|a| a == "--dpop-only") {
        // Just the issue-22 scenario (DPoP proof vs. cached bearer and ES256).
        return rt.block_on(local.run_until(async {
            let key = TestKey::generate("bench");
            let authz = Authz::start(jwks(&[&key])).await;
            dpop_overhead(&authz, &key).await
        }));
    }
    rt.block_on(local.run_until(bench(Duration::from_secs(seconds), connections, compare)))
}

/// The Python gateway's `/verify`, already running (see `bench/run.sh`).
struct Python {
    addr: SocketAddr,
    /// A valid access token it issued itself.
    token: String,
    pid: Option<u32>,
}

struct Compare {
    rounds: usize,
    redis_url: Option<String>,
    python: Option<Python>,
}

fn rss_kib_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `--raw-es256 SECONDS`: the raw ES256 verification rate of this CPU, the
/// anchor of `bench/run.sh`'s forged-token row. One thread checks one valid
/// signature over and over, with the verifier's own ES256 check (the key
/// parsed once, [`mcp_verifier::jwt::verify_es256_parsed`]), for the given
/// time; prints `<verifications/s>`.
fn raw_es256(duration: Duration) -> anyhow::Result<()> {
    let key = TestKey::generate("bench");
    let keys = gateway_common::keys::KeyTable::from_jwks(&jwks(&[&key]));
    let token = key.sign(&claims(RESOURCE, SystemClock.now_secs()));
    let vk = keys.get("bench").ok_or_else(|| anyhow::anyhow!("key"))?;
    let (msg, sig) = token
        .rsplit_once('.')
        .ok_or_else(|| anyhow::anyhow!("jwt"))?;
    let check = mcp_verifier::jwt::verify_es256_parsed(vk)
        .ok_or_else(|| anyhow::anyhow!("not an ES256 key"))?;
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < duration {
        for _ in 0..100 {
            anyhow::ensure!(check(msg.as_bytes(), sig));
        }
        n += 100;
    }
    println!("{:.0}", n as f64 / started.elapsed().as_secs_f64());
    Ok(())
}

/// Child mode: a verifier process (config from the environment) that also
/// serves `/noop`, the baseline. `no_metrics`: built with
/// `Metrics::not_recording` (`--metrics-cost`).
fn serve_child(no_metrics: bool) -> anyhow::Result<()> {
    let config = VerifierConfig::from_source(&Source::from_process()?)?;
    actix_web::rt::System::new().block_on(async move {
        let clock = gateway_common::clock::system();
        let metrics = if no_metrics {
            mcp_verifier::metrics::Metrics::not_recording()
        } else {
            mcp_verifier::metrics::Metrics::new()
        };
        let (verifier, _tasks) = mcp_verifier::start_verifier(
            mcp_verifier::Verifier::with_metrics(config.clone(), clock, metrics),
        );
        let v = Arc::clone(&verifier);
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .configure(mcp_verifier::configure(Arc::clone(&v)))
                .route(
                    "/noop",
                    actix_web::web::get().to(|| async { actix_web::HttpResponse::Ok().finish() }),
                )
        })
        .workers(1)
        // SIGINT stops it cleanly: bench/instructions.sh runs it under
        // callgrind, which writes its counts when the process exits.
        .shutdown_timeout(1)
        .bind(config.listen)?;
        println!("LISTEN {}", server.addrs()[0]);
        server.run().await?;
        Ok(())
    })
}

struct Proc {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn rss_kib(&self) -> u64 {
        rss_kib_of(self.child.id())
    }
}

async fn spawn_verifier(authz: &Authz) -> anyhow::Result<Proc> {
    spawn_verifier_with(authz, None).await
}

/// A verifier process; with `redis_url`, revocations come from Redis pub/sub.
async fn spawn_verifier_with(authz: &Authz, redis_url: Option<&str>) -> anyhow::Result<Proc> {
    spawn_verifier_recording(authz, redis_url, true).await
}

/// [`spawn_verifier_with`]; `recording: false` builds it with `Metrics::not_recording`.
async fn spawn_verifier_recording(
    authz: &Authz,
    redis_url: Option<&str>,
    recording: bool,
) -> anyhow::Result<Proc> {
    use std::io::BufRead;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--serve");
    if !recording {
        cmd.arg("--no-metrics");
    }
    cmd.env("AUTH_ISSUER", ISSUER)
        .env("AUTHZ_URL", &authz.url)
        .env("VERIFIER_LISTEN", "127.0.0.1:0")
        .env("MCP_ECHO_ENABLED", "true")
        .env("MCP_ECHO_URL", RESOURCE)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(url) = redis_url {
        cmd.env("REDIS_URL", url);
    }
    let mut child = cmd.spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    // From here on, Drop kills the child whatever goes wrong.
    let mut p = Proc {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let line = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .map(|_| line)
        }),
    )
    .await
    .map_err(|_| anyhow::anyhow!("the verifier child did not bind within 60 s"))???;
    p.addr = line
        .trim()
        .strip_prefix("LISTEN ")
        .ok_or_else(|| anyhow::anyhow!("child said {line:?}"))?
        .parse()?;
    let addr = p.addr;
    gateway_testkit::wait_for_http(&format!("http://{addr}/ready"), Duration::from_secs(120))
        .await?;
    Ok(p)
}

fn verify_request(token: &str) -> Vec<u8> {
    format!(
        "GET /verify HTTP/1.1\r\nHost: verifier\r\nX-Forwarded-Method: POST\r\nX-Forwarded-Proto: https\r\n\
         X-Forwarded-Host: echo.example.test\r\nX-Forwarded-Uri: /mcp\r\nX-Forwarded-For: 203.0.113.5\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    )
    .into_bytes()
}

struct LoadResult {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    statuses: std::collections::BTreeMap<u16, u64>,
}

/// `connections` keep-alive connections for `duration`; request `i` of the run
/// is `make(i)`.
async fn load(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    make: Arc<dyn Fn(usize) -> Vec<u8>>,
) -> anyhow::Result<LoadResult> {
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let make = Arc::clone(&make);
        let counter = Arc::clone(&counter);
        tasks.push(tokio::task::spawn_local(async move {
            let mut conn = RawConn::connect(addr).await?;
            let mut lat = Vec::with_capacity(100_000);
            let mut statuses = std::collections::BTreeMap::new();
            while Instant::now() < deadline {
                let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let req = make(i);
                let t = Instant::now();
                let status = conn.send(&req).await?.status;
                lat.push(t.elapsed().as_nanos() as u64);
                *statuses.entry(status).or_insert(0u64) += 1;
            }
            anyhow::Ok((lat, statuses))
        }));
    }
    let mut all = Vec::new();
    let mut statuses = std::collections::BTreeMap::new();
    for t in tasks {
        let (lat, st) = t.await??;
        all.extend(lat);
        for (k, v) in st {
            *statuses.entry(k).or_insert(0) += v;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    Ok(LoadResult {
        rps: all.len() as f64 / elapsed,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        statuses,
    })
}

fn print_row(name: &str, r: &LoadResult) {
    println!(
        "  {name:<28} {:>10.0} req/s   p50 {:>8.1} µs   p99 {:>8.1} µs   statuses {:?}",
        r.rps, r.p50_us, r.p99_us, r.statuses
    );
}

async fn bench(duration: Duration, connections: usize, compare: Compare) -> anyhow::Result<()> {
    let key = TestKey::generate("bench");
    let stranger = TestKey::generate("bench");
    let authz = Authz::start(jwks(&[&key])).await;
    let now = SystemClock.now_secs();

    println!("== verifier benchmark: {connections} connections, {}s per scenario, 1 server worker, 1 client thread", duration.as_secs());
    let a = spawn_verifier(&authz).await?;
    println!(
        "  RSS idle (keys loaded, feed connected, no requests yet): {:.1} MiB",
        a.rss_kib() as f64 / 1024.0
    );

    // --- HTTP load ---
    let noop: Arc<dyn Fn(usize) -> Vec<u8>> =
        Arc::new(|_| b"GET /noop HTTP/1.1\r\nHost: verifier\r\n\r\n".to_vec());
    let cached_token = key.sign(&claims(RESOURCE, now));
    let cached_req = verify_request(&cached_token);
    let cached: Arc<dyn Fn(usize) -> Vec<u8>> = Arc::new(move |_| cached_req.clone());
    let fresh_count = 15_000;
    let t = Instant::now();
    let fresh_reqs: Vec<Vec<u8>> = (0..fresh_count)
        .map(|_| verify_request(&key.sign(&claims(RESOURCE, now))))
        .collect();
    println!(
        "  (minted {fresh_count} distinct tokens in {:.1}s)",
        t.elapsed().as_secs_f64()
    );
    let fresh_reqs = Arc::new(fresh_reqs);
    let fr = Arc::clone(&fresh_reqs);
    let fresh: Arc<dyn Fn(usize) -> Vec<u8>> = Arc::new(move |i| fr[i % fr.len()].clone());
    let bad_req = verify_request(&stranger.sign(&claims(RESOURCE, now)));
    let bad: Arc<dyn Fn(usize) -> Vec<u8>> = Arc::new(move |_| bad_req.clone());

    // warm-up
    let _ = load(
        a.addr,
        connections,
        Duration::from_millis(500),
        Arc::clone(&cached),
    )
    .await?;

    let r_noop = load(a.addr, connections, duration, noop).await?;
    let r_cached = load(a.addr, connections, duration, cached).await?;
    let r_fresh = load(a.addr, connections, duration, fresh).await?;
    let r_bad = load(a.addr, connections, duration, bad).await?;
    println!("\n-- HTTP /verify over keep-alive --");
    print_row("no-op 200 (/noop)", &r_noop);
    print_row("cached valid token", &r_cached);
    print_row("never-seen valid token", &r_fresh);
    print_row("bad token (forged sig)", &r_bad);
    let fresh_served = r_fresh.rps * duration.as_secs_f64();
    if fresh_served > fresh_count as f64 {
        println!("  note: the never-seen run served more requests than distinct tokens; some were cache hits");
    }
    println!(
        "  ratios: cached/no-op = {:.2}   never-seen/no-op = {:.2}   bad/no-op = {:.2}",
        r_cached.rps / r_noop.rps,
        r_fresh.rps / r_noop.rps,
        r_bad.rps / r_noop.rps
    );

    if let Some(py) = &compare.python {
        side_by_side(
            &authz,
            &compare,
            py,
            &cached_token,
            &r_fresh,
            duration,
            connections,
        )
        .await?;
    }

    // --- in-process microbenchmark ---
    println!("\n-- in-process (no HTTP) --");
    let config = VerifierConfig::from_source(&source(&authz, RESOURCE))?;
    let (verifier, _tasks) = mcp_verifier::start(config, gateway_common::clock::system());
    gateway_testkit::wait_for_http(
        &format!("http://{}/jwks", authz.addr),
        Duration::from_secs(5),
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while verifier.readiness().keys == 0 || !verifier.readiness().ready {
        anyhow::ensure!(Instant::now() < deadline, "in-process verifier not ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let keys = gateway_common::keys::KeyTable::from_jwks(&jwks(&[&key]));
    let vk = keys.get("bench").ok_or_else(|| anyhow::anyhow!("key"))?;
    let (msg, sig) = cached_token
        .rsplit_once('.')
        .ok_or_else(|| anyhow::anyhow!("jwt"))?;
    // Interleaved blocks, median per block: the machine is shared, so a
    // burst of someone else's work must not land on one side only.
    let block = 200;
    let rounds = 15;
    let fresh_tokens: Vec<String> = (0..block * rounds)
        .map(|_| key.sign(&claims(RESOURCE, now)))
        .collect();
    let check = |token: &str| {
        let auth = format!("Bearer {token}");
        let req = ForwardedRequest {
            method: "POST",
            proto: "https",
            host: "echo.example.test",
            uri: "/mcp",
            authorization: AuthorizationHeader::One(auth.as_bytes()),
            cors_preflight: false,
            wants_html: false,
        };
        matches!(verifier.check(&req), Decision::Allow(_))
    };
    let (mut sig_runs, mut first_runs, mut cached_runs) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds {
        let t = Instant::now();
        for _ in 0..block {
            assert!(jsonwebtoken::crypto::verify(
                sig,
                msg.as_bytes(),
                &vk.key,
                vk.alg
            )?);
        }
        sig_runs.push(t.elapsed().as_secs_f64() * 1e6 / block as f64);
        let t = Instant::now();
        for tok in &fresh_tokens[r * block..(r + 1) * block] {
            assert!(check(tok));
        }
        first_runs.push(t.elapsed().as_secs_f64() * 1e6 / block as f64);
        let t = Instant::now();
        for _ in 0..block * 50 {
            assert!(check(&cached_token));
        }
        cached_runs.push(t.elapsed().as_secs_f64() * 1e6 / (block * 50) as f64);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let sig_us = median(&mut sig_runs);
    let first_us = median(&mut first_runs);
    let cached_us = median(&mut cached_runs);
    println!("  one ES256 signature check:      {sig_us:>8.2} µs");
    println!(
        "  first-seen token, full decision: {first_us:>8.2} µs  ({:.3}× the signature check; {:+.1}%)",
        first_us / sig_us,
        (first_us / sig_us - 1.0) * 100.0
    );
    println!(
        "  cached token, full decision:     {cached_us:>8.2} µs  ({:.1}× faster than first-seen)",
        first_us / cached_us
    );

    policy_overhead(&authz, &cached_token).await?;
    dpop_overhead(&authz, &key).await?;

    // --- revocation propagation across three verifier processes ---
    let b = spawn_verifier(&authz).await?;
    let c = spawn_verifier(&authz).await?;
    let procs = [&a, &b, &c];
    let mut conns = Vec::new();
    for p in procs {
        conns.push(RawConn::connect(p.addr).await?);
    }
    let mut lat_ms = Vec::new();
    let rounds = 100;
    for _ in 0..rounds {
        let cl = claims(RESOURCE, now);
        let req = verify_request(&key.sign(&cl));
        for s in conns.iter_mut() {
            anyhow::ensure!(s.send(&req).await?.status == 200, "warm-up refused");
        }
        let revoked_at = Instant::now();
        authz.revoke(&cl.jti, cl.exp);
        for s in conns.iter_mut() {
            loop {
                if s.send(&req).await?.status == 401 {
                    break;
                }
                anyhow::ensure!(
                    revoked_at.elapsed() < Duration::from_secs(5),
                    "revocation never arrived"
                );
            }
            lat_ms.push(revoked_at.elapsed().as_secs_f64() * 1000.0);
        }
    }
    lat_ms.sort_by(|x, y| x.total_cmp(y));
    let pct = |p: f64| lat_ms[((lat_ms.len() as f64 * p) as usize).min(lat_ms.len() - 1)];
    println!("\n-- revocation propagation, 3 verifier processes, {rounds} revocations --");
    println!(
        "  revoke → refused:  p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        pct(0.5),
        pct(0.99),
        lat_ms[lat_ms.len() - 1]
    );
    drop((b, c));

    // --- memory with one million revoked ids ---
    let million: Vec<RevocationEvent> = (0..1_000_000u32)
        .map(|_| RevocationEvent {
            jti: uuid::Uuid::new_v4().to_string(),
            exp: now + 3600,
        })
        .collect();
    let big = Authz::start_with(jwks(&[&key]), million, Duration::from_secs(15)).await;
    let t = Instant::now();
    let d = spawn_verifier(&big).await?;
    let loaded = t.elapsed();
    let ready: serde_json::Value = reqwest::get(format!("http://{}/ready", d.addr))
        .await?
        .json()
        .await?;
    println!("\n-- memory (VmRSS of a verifier process) --");
    println!(
        "  after every load above:     {:>7.1} MiB   (caches full; the idle figure is printed at start)",
        a.rss_kib() as f64 / 1024.0
    );
    println!(
        "  with {} revoked ids:  {:>7.1} MiB   (snapshot loaded and ready in {:.1}s)",
        ready["revoked_ids"],
        d.rss_kib() as f64 / 1024.0,
        loaded.as_secs_f64()
    );
    Ok(())
}

/// Issue 11: the tool policy's cost on the header path. Two in-process
/// verifiers, one without `TOOL_POLICY_FILE` and one with a 12-rule policy
/// (globs, teams, emails, scopes; the deciding rule is the last; also with 2), the same
/// cached token; a cached verify vs. the same verify plus `Mcp-Method:
/// tools/call` / `Mcp-Name: echo` decided by the policy. Interleaved blocks,
/// medians. No audit sink is set (the policy's cost, not the log's).
async fn policy_overhead(authz: &Authz, cached_token: &str) -> anyhow::Result<()> {
    for (deny_rules, about_caller) in [(1, false), (11, false), (11, true)] {
        policy_overhead_with(authz, cached_token, deny_rules, about_caller).await?;
    }
    Ok(())
}

async fn policy_overhead_with(
    authz: &Authz,
    cached_token: &str,
    deny_rules: usize,
    about_caller: bool,
) -> anyhow::Result<()> {
    use mcp_verifier::tool_policy::McpCall;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("policy.toml");
    let mut policy = String::from("[services.echo]\ndefault = \"deny\"\n");
    for i in 0..deny_rules {
        // Rules about other people (teams, domains) are settled once per
        // token; rules naming this caller are matched on every call (the worst case).
        let who = if about_caller {
            "users = [\"octocat\"]".to_string()
        } else {
            format!("teams = [\"acme/team{i}\"]\nemails = [\"@blocked{i}.example\"]")
        };
        policy.push_str(&format!(
            "[[services.echo.rules]]\neffect = \"deny\"\n{who}\ntools = [\"admin_{i}_*\", \"*_danger{i}\"]\n"
        ));
    }
    policy.push_str("[[services.echo.rules]]\neffect = \"allow\"\nusers = [\"octocat\"]\nscopes = [\"mcp\"]\ntools = [\"ec*\", \"search_*\"]\n");
    std::fs::write(&path, policy)?;
    let plain_cfg = VerifierConfig::from_source(&source(authz, RESOURCE))?;
    let policy_cfg = VerifierConfig::from_source(
        &source(authz, RESOURCE).with("TOOL_POLICY_FILE", &path.display().to_string()),
    )?;
    let (plain, _t1) = mcp_verifier::start(plain_cfg, gateway_common::clock::system());
    let (gated, _t2) = mcp_verifier::start(policy_cfg, gateway_common::clock::system());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !plain.readiness().ready || !gated.readiness().ready {
        anyhow::ensure!(Instant::now() < deadline, "in-process verifiers not ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let auth = format!("Bearer {cached_token}");
    let req = ForwardedRequest {
        method: "POST",
        proto: "https",
        host: "echo.example.test",
        uri: "/mcp",
        authorization: AuthorizationHeader::One(auth.as_bytes()),
        cors_preflight: false,
        wants_html: false,
    };
    let call = McpCall::from_headers(Some(b"tools/call"), Some(b"echo"))
        .ok_or_else(|| anyhow::anyhow!("call"))?;
    let denied = McpCall::from_headers(Some(b"tools/call"), Some(b"admin_0_x"))
        .ok_or_else(|| anyhow::anyhow!("call"))?;
    anyhow::ensure!(matches!(plain.check(&req), Decision::Allow(_)));
    anyhow::ensure!(matches!(
        gated.check_call(&req, Some(&call)),
        Decision::Allow(_)
    ));
    anyhow::ensure!(matches!(
        gated.check_call(&req, Some(&denied)),
        Decision::Deny(_)
    ));
    let (block, rounds) = (20_000, 15);
    let (mut base, mut with) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let time = |f: &dyn Fn() -> bool| {
            let t = Instant::now();
            for _ in 0..block {
                assert!(f());
            }
            t.elapsed().as_secs_f64() * 1e9 / block as f64
        };
        let b = || matches!(plain.check(&req), Decision::Allow(_));
        let w = || matches!(gated.check_call(&req, Some(&call)), Decision::Allow(_));
        // Alternate who goes first so drift on the shared machine hits both.
        if r % 2 == 0 {
            base.push(time(&b));
            with.push(time(&w));
        } else {
            with.push(time(&w));
            base.push(time(&b));
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (b, w) = (median(&mut base), median(&mut with));
    let extra = (w / b - 1.0) * 100.0;
    println!(
        "\n-- tool policy (issue 11), in-process, cached token, {} rules (the last decides; {}) --",
        deny_rules + 1,
        if about_caller {
            "all name this caller"
        } else {
            "the others name other people"
        }
    );
    println!("  cached verify:                  {b:>8.0} ns");
    println!("  cached verify + tool policy:    {w:>8.0} ns");
    println!(
        "  ratio {:.3}  ({extra:+.1}% extra; target ≤ 5%: {})",
        w / b,
        if extra <= 5.0 { "MET" } else { "NOT MET" }
    );
    Ok(())
}

/// Ours (cached valid token) and the Python gateway's `/verify` (a valid token
/// it issued), same request bytes but the token, same client, connections and
/// duration; rounds alternate who goes first; medians are compared.
async fn side_by_side(
    authz: &Authz,
    compare: &Compare,
    py: &Python,
    cached_token: &str,
    r_fresh: &LoadResult,
    duration: Duration,
    connections: usize,
) -> anyhow::Result<()> {
    let ours = spawn_verifier_with(authz, compare.redis_url.as_deref()).await?;
    let ours_req = verify_request(cached_token);
    let ours_load: Arc<dyn Fn(usize) -> Vec<u8>> = Arc::new(move |_| ours_req.clone());
    let py_req = verify_request(&py.token);
    let py_load: Arc<dyn Fn(usize) -> Vec<u8>> = Arc::new(move |_| py_req.clone());
    let py_rss_before = py.pid.map(rss_kib_of);
    // Warm both (the Python side builds its validator on first use).
    let _ = load(
        ours.addr,
        connections,
        Duration::from_millis(500),
        Arc::clone(&ours_load),
    )
    .await?;
    let _ = load(
        py.addr,
        connections,
        Duration::from_millis(500),
        Arc::clone(&py_load),
    )
    .await?;
    let (mut o, mut p) = (Vec::new(), Vec::new());
    for round in 0..compare.rounds {
        if round % 2 == 1 {
            p.push(load(py.addr, connections, duration, Arc::clone(&py_load)).await?);
        }
        o.push(load(ours.addr, connections, duration, Arc::clone(&ours_load)).await?);
        if round % 2 == 0 {
            p.push(load(py.addr, connections, duration, Arc::clone(&py_load)).await?);
        }
    }
    let feed = if compare.redis_url.is_some() {
        "revocations by pub/sub from the same Redis"
    } else {
        "revocations by the authz stream"
    };
    println!(
        "\n-- side by side with the Python gateway's /verify (mcp-oauth-dynamicclient 0.2.0), {} round(s) --",
        compare.rounds
    );
    println!("  ours: one verifier process, 1 worker, {feed}");
    println!("  python: mcp-oauth-server (one uvicorn process), RS256, one Redis GET per request");
    for (i, (a, b)) in o.iter().zip(&p).enumerate() {
        print_row(&format!("round {} ours (cached)", i + 1), a);
        print_row(&format!("round {} python", i + 1), b);
    }
    let all_ok = |v: &[LoadResult]| v.iter().all(|r| r.statuses.keys().all(|s| *s == 200));
    anyhow::ensure!(
        all_ok(&o) && all_ok(&p),
        "a valid token was refused; the comparison is void"
    );
    let med = |mut v: Vec<LoadResult>| {
        v.sort_by(|a, b| a.rps.total_cmp(&b.rps));
        v.swap_remove(v.len() / 2)
    };
    let (o, p) = (med(o), med(p));
    println!(
        "\n  {:<30} {:>12} {:>10} {:>10}",
        "median, valid token", "req/s", "p50 ms", "p99 ms"
    );
    for (name, r) in [
        ("ours, cached", &o),
        ("ours, never-seen (above)", r_fresh),
        ("python 0.2.0", &p),
    ] {
        println!(
            "  {name:<30} {:>12.0} {:>10.3} {:>10.3}",
            r.rps,
            r.p50_us / 1000.0,
            r.p99_us / 1000.0
        );
    }
    let verdict = |x: f64| if x >= 50.0 { "MET" } else { "NOT MET" };
    let cached_ratio = o.rps / p.rps;
    let fresh_ratio = r_fresh.rps / p.rps;
    println!(
        "  ratio ours/python req/s:  cached {cached_ratio:.1}×  never-seen {fresh_ratio:.1}×   target ≥ 50×: cached {}, never-seen {}",
        verdict(cached_ratio),
        verdict(fresh_ratio)
    );
    println!("  p99 python/ours:  {:.1}× (cached)", p.p99_us / o.p99_us);
    if let Some(pid) = py.pid {
        println!(
            "  RSS: ours {:.1} MiB   python {:.1} MiB before this load, {:.1} MiB after",
            ours.rss_kib() as f64 / 1024.0,
            py_rss_before.unwrap_or(0) as f64 / 1024.0,
            rss_kib_of(pid) as f64 / 1024.0
        );
    }
    Ok(())
}

/// Issue 19: what recording the metrics (decision counter, latency histogram,
/// cache-hit counter, the two clock reads) costs a cached `/verify`, side by
/// side in one run. Over HTTP: two verifier processes alike but for
/// `Metrics::not_recording`, loaded in alternating rounds (the order flips
/// each round, so drift on a shared machine hits both), medians compared.
/// In process: the recording work itself, ns per request, recording vs not,
/// as a share of the time one cached `/verify` takes over HTTP.
async fn metrics_cost(
    authz: &Authz,
    token: &str,
    duration: Duration,
    connections: usize,
    rounds: usize,
) -> anyhow::Result<()> {
    use mcp_verifier::metrics::Metrics;
    let on = spawn_verifier_recording(authz, None, true).await?;
    let off = spawn_verifier_recording(authz, None, false).await?;
    let req = verify_request(token);
    let make: Arc<dyn Fn(usize) -> Vec<u8>> = Arc::new(move |_| req.clone());
    // Warm both: the first request verifies the signature and fills the cache.
    for p in [&on, &off] {
        let _ = load(
            p.addr,
            connections,
            Duration::from_millis(500),
            Arc::clone(&make),
        )
        .await?;
    }
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        if round % 2 == 1 {
            without.push(load(off.addr, connections, duration, Arc::clone(&make)).await?);
        }
        with.push(load(on.addr, connections, duration, Arc::clone(&make)).await?);
        if round % 2 == 0 {
            without.push(load(off.addr, connections, duration, Arc::clone(&make)).await?);
        }
    }
    let all_ok = |v: &[LoadResult]| v.iter().all(|r| r.statuses.keys().all(|s| *s == 200));
    anyhow::ensure!(
        all_ok(&with) && all_ok(&without),
        "a valid token was refused; the comparison is void"
    );
    println!(
        "-- metrics cost on a cached /verify (issue 19: <= 3%), {rounds} alternating round(s) of {}s, {connections} connections, one verifier process each (1 worker) --",
        duration.as_secs()
    );
    for (i, (a, b)) in with.iter().zip(&without).enumerate() {
        print_row(&format!("round {} recording", i + 1), a);
        print_row(&format!("round {} not recording", i + 1), b);
    }
    let median = |v: &[LoadResult]| {
        let mut r: Vec<f64> = v.iter().map(|r| r.rps).collect();
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    };
    // Per-round ratios too: each pair ran back to back.
    let mut ratios: Vec<f64> = with
        .iter()
        .zip(&without)
        .map(|(a, b)| b.rps / a.rps)
        .collect();
    ratios.sort_by(f64::total_cmp);
    let (w, wo) = (median(&with), median(&without));
    let http_cost = (wo / w - 1.0) * 100.0;
    println!(
        "  median req/s: recording {w:.0}, not recording {wo:.0}; time per request recording/not = {:.4} -> cost {http_cost:+.2}% (median of per-round ratios {:+.2}%, range {:+.2}% .. {:+.2}%)",
        wo / w,
        (ratios[ratios.len() / 2] - 1.0) * 100.0,
        (ratios[0] - 1.0) * 100.0,
        (ratios[ratios.len() - 1] - 1.0) * 100.0,
    );

    // In process: exactly the work recording adds to one request.
    let (rec, idle) = (Metrics::new(), Metrics::not_recording());
    let reason = mcp_verifier::decision::Reason::ALL[0];
    let block = 200_000;
    let time = |m: &Metrics| {
        let t = Instant::now();
        for _ in 0..block {
            let started = std::hint::black_box(m).start();
            m.cache_hit();
            m.record(reason, std::hint::black_box(started));
        }
        t.elapsed().as_secs_f64() * 1e9 / block as f64
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for r in 0..15 {
        if r % 2 == 0 {
            a.push(time(&rec));
            b.push(time(&idle));
        } else {
            b.push(time(&idle));
            a.push(time(&rec));
        }
    }
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (a, b) = (a[a.len() / 2], b[b.len() / 2]);
    let per_request_ns = 1e9 / w;
    println!(
        "  in process: the recording work {a:.1} ns/request vs {b:.1} ns not recording = {:.1} ns, {:.2}% of one cached /verify over HTTP ({per_request_ns:.0} ns at {w:.0} req/s)",
        a - b,
        (a - b) / per_request_ns * 100.0
    );
    let verdict = if http_cost <= 3.0 { "MET" } else { "NOT MET" };
    println!("  target <= 3% (HTTP, median): {verdict}");
    Ok(())
}

/// Issue 22: a DPoP-bound token, cached, with a fresh proof on every request
/// (signature, `htm`/`htu`/`ath`/`iat`, thumbprint, replay memory), beside the
/// cached bearer token and one ES256 signature check, interleaved in one run.
async fn dpop_overhead(authz: &Authz, key: &TestKey) -> anyhow::Result<()> {
    use gateway_testkit::dpop::DpopKey;
    use mcp_verifier::ProofHeader;
    let config = VerifierConfig::from_source(&source(authz, RESOURCE))?;
    let (verifier, _tasks) = mcp_verifier::start(config, gateway_common::clock::system());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !verifier.readiness().ready {
        anyhow::ensure!(Instant::now() < deadline, "in-process verifier not ready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let now = SystemClock.now_secs();
    let client = DpopKey::generate();
    let mut bound = claims(RESOURCE, now);
    bound.cnf = Some(gateway_common::claims::Confirmation {
        jkt: client.thumbprint(),
    });
    let bound = key.sign(&bound);
    let bearer = key.sign(&claims(RESOURCE, now));
    let keys = gateway_common::keys::KeyTable::from_jwks(&jwks(&[key]));
    let vk = keys.get(&key.kid).ok_or_else(|| anyhow::anyhow!("key"))?;
    let (msg, sig) = bearer
        .rsplit_once('.')
        .ok_or_else(|| anyhow::anyhow!("jwt"))?;
    let url = "https://echo.example.test/mcp".to_string();
    let block = 200;
    let rounds = 31;
    // Proofs are the client's work: made beforehand, each with its own jti.
    let proofs: Vec<String> = (0..block * rounds)
        .map(|_| client.proof("POST", &url, Some(&bound), None))
        .collect();
    let bearer_auth = format!("Bearer {bearer}");
    let dpop_auth = format!("DPoP {bound}");
    fn request(auth: &str) -> ForwardedRequest<'_> {
        ForwardedRequest {
            method: "POST",
            proto: "https",
            host: "echo.example.test",
            uri: "/mcp",
            authorization: AuthorizationHeader::One(auth.as_bytes()),
            cors_preflight: false,
            wants_html: false,
        }
    }
    let bearer_req = request(&bearer_auth);
    let dpop_req = request(&dpop_auth);
    // Warm: both tokens verified once and cached.
    assert!(matches!(verifier.check(&bearer_req), Decision::Allow(_)));
    let (mut sig_runs, mut cached_runs, mut dpop_runs) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds {
        let t = Instant::now();
        for _ in 0..block {
            assert!(jsonwebtoken::crypto::verify(
                sig,
                msg.as_bytes(),
                &vk.key,
                vk.alg
            )?);
        }
        sig_runs.push(t.elapsed().as_secs_f64() * 1e6 / block as f64);
        let t = Instant::now();
        for _ in 0..block * 50 {
            assert!(matches!(verifier.check(&bearer_req), Decision::Allow(_)));
        }
        cached_runs.push(t.elapsed().as_secs_f64() * 1e6 / (block * 50) as f64);
        let t = Instant::now();
        for proof in &proofs[r * block..(r + 1) * block] {
            let d = verifier.check_with_proof(&dpop_req, None, ProofHeader::One(proof.as_bytes()));
            assert!(matches!(d, Decision::Allow(_)), "{d:?}");
        }
        dpop_runs.push(t.elapsed().as_secs_f64() * 1e6 / block as f64);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let fastest = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    // Other work on the machine only ever adds time to a round, so the
    // fastest round of each scenario is the closest to the code's own cost
    // (the goal is judged on it); the medians are printed beside it.
    let (sig_min, cached_min, dpop_min) = (
        fastest(&sig_runs),
        fastest(&cached_runs),
        fastest(&dpop_runs),
    );
    let sig_us = median(&mut sig_runs);
    let cached_us = median(&mut cached_runs);
    let dpop_us = median(&mut dpop_runs);
    let overhead_median = (dpop_us - cached_us) / sig_us;
    let overhead = (dpop_min - cached_min) / sig_min;
    println!(
        "\n-- DPoP (in-process, token cached, fresh proof per request; {rounds} rounds: fastest / median) --"
    );
    println!("  one ES256 signature check:        {sig_min:>8.2} / {sig_us:>8.2} µs");
    println!("  cached bearer token, decision:    {cached_min:>8.2} / {cached_us:>8.2} µs");
    println!(
        "  DPoP-bound cached token + proof:  {dpop_min:>8.2} / {dpop_us:>8.2} µs  (= cached bearer + {overhead:.3} × one ES256 check; {overhead_median:.3} by medians; goal ≤ 1.15: {})",
        if overhead <= 1.15 { "met" } else { "NOT met" }
    );
    Ok(())
}
