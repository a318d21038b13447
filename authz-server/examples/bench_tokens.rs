//! Throughput of the token endpoint's refresh grant and of `/register`, over
//! HTTP, on the embedded store and on Redis — and, when given a running Python
//! gateway auth service (PyPI `mcp-oauth-dynamicclient==0.2.0`), the same two
//! figures for it, measured in the same run by the same client against the
//! same Redis, with ratios (issue 3 target: ≥ 20× its tokens/s).
//!
//! The side-by-side run is driven by `bench/run.sh authz` (it starts the
//! Redis and the Python service and obtains the Python credentials). Alone:
//! `cargo run --release -p mcp-authz --example bench_tokens -- [--requests N]
//! [--concurrency C] [--rounds R] [--max-seconds S] [--redis-url URL]
//! [--python-url URL --python-creds FILE]`
//!
//! Load: `concurrency` workers, each sending its requests one after another on
//! its own keep-alive connection, `requests` per scenario in all, and no
//! worker starts a request after `max-seconds`. Only to 127.0.0.1. The workers
//! share one thread and a minimal HTTP/1.1 client
//! (`gateway_testkit::raw_http`): on two cores the load generator competes
//! with the servers it measures, and a full client (reqwest) took about as
//! much CPU per request as our token endpoint. Both sides get the same client.
//!
//! Refresh: every worker owns one refresh-token family. Ours rotates the
//! refresh token on every use (so each request depends on the previous
//! answer); the Python service never rotates, so its workers present the same
//! refresh token again. Both sides authenticate as a confidential client with
//! `client_secret_post` and send the same form fields.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark driver: failing loudly is right

// As the shipped binaries do (see authz-server/src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_common::clock::{system, SharedClock};
use gateway_common::config::Source;
use gateway_store::{EmbeddedStore, RedisStore, Store};
use gateway_testkit::raw_http::{self, RawConn};
use gateway_testkit::{free_port, wait_for_http, RedisServer};
use mcp_authz::signin::Identity;
use mcp_authz::Config;
use serde_json::{json, Value};

const RESOURCE: &str = "https://echo.example.com/mcp";

struct Args {
    requests: usize,
    concurrency: usize,
    rounds: usize,
    max_seconds: u64,
    redis_url: Option<String>,
    python_url: Option<String>,
    python_creds: Option<PathBuf>,
}

fn parse_args() -> Args {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let num = |name: &str, default: usize| {
        get(name)
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{name} takes a number"))
            })
            .unwrap_or(default)
    };
    Args {
        requests: num("--requests", 4000),
        concurrency: num("--concurrency", 16).max(1),
        rounds: num("--rounds", 1).max(1),
        max_seconds: num("--max-seconds", 30) as u64,
        redis_url: get("--redis-url"),
        python_url: get("--python-url"),
        python_creds: get("--python-creds").map(PathBuf::from),
    }
}

/// One scenario's outcome.
#[derive(Clone, Copy)]
struct Rate {
    per_s: f64,
    done: usize,
    p50_ms: f64,
    p99_ms: f64,
}

fn rate(started: Instant, mut lat: Vec<Duration>) -> Rate {
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Rate {
        per_s: lat.len() as f64 / elapsed,
        done: lat.len(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

/// The same registration body for both sides: a confidential web client.
fn registration_body() -> Value {
    json!({
        "redirect_uris": ["http://127.0.0.1:9/cb"],
        "client_name": "bench",
        "token_endpoint_auth_method": "client_secret_post",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    })
}

/// `http://127.0.0.1:PORT` → the socket address.
fn addr_of(base: &str) -> SocketAddr {
    base.trim_start_matches("http://").parse().unwrap()
}

/// Registrations/s: `requests` POSTs to `{base}/register`, each must be 201.
async fn registrations(base: &str, requests: usize, concurrency: usize, max: Duration) -> Rate {
    let per_worker = requests / concurrency;
    let addr = addr_of(base);
    let body = serde_json::to_vec(&registration_body()).unwrap();
    let started = Instant::now();
    let deadline = started + max;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let body = body.clone();
        tasks.push(tokio::task::spawn_local(async move {
            let mut conn = RawConn::connect(addr).await.unwrap();
            let mut lat = Vec::with_capacity(per_worker);
            for _ in 0..per_worker {
                if Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                let r = conn
                    .post("/register", "application/json", &body)
                    .await
                    .unwrap();
                assert_eq!(r.status, 201, "{addr}/register");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    rate(started, lat)
}

/// Confidential client credentials and one refresh token per worker.
#[derive(Clone)]
struct Families {
    client_id: String,
    client_secret: String,
    refresh_tokens: Vec<String>,
}

/// Refresh grants/s: worker `w` refreshes family `w` in sequence; when the
/// answer carries a new refresh token (rotation) the next request uses it.
async fn refreshes(
    base: &str,
    families: &Families,
    requests: usize,
    concurrency: usize,
    max: Duration,
) -> (Rate, Vec<String>) {
    let per_worker = requests / concurrency;
    let addr = addr_of(base);
    let started = Instant::now();
    let deadline = started + max;
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let client_id = families.client_id.clone();
        let client_secret = families.client_secret.clone();
        let mut rt = families.refresh_tokens[w % families.refresh_tokens.len()].clone();
        tasks.push(tokio::task::spawn_local(async move {
            let mut conn = RawConn::connect(addr).await.unwrap();
            let mut lat = Vec::with_capacity(per_worker);
            for _ in 0..per_worker {
                if Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                let body = raw_http::form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", client_secret.as_str()),
                    ("refresh_token", rt.as_str()),
                ]);
                let r = conn
                    .post("/token", "application/x-www-form-urlencoded", &body)
                    .await
                    .unwrap();
                assert_eq!(r.status, 200, "{addr}/token");
                let v: Value = serde_json::from_slice(&r.body).unwrap();
                assert!(v["access_token"].is_string());
                if let Some(next) = v["refresh_token"].as_str() {
                    rt = next.to_string();
                }
                lat.push(t.elapsed());
            }
            (lat, rt)
        }));
    }
    let mut lat = Vec::new();
    let mut next = Vec::new();
    for t in tasks {
        let (l, rt) = t.await.unwrap();
        lat.extend(l);
        next.push(rt);
    }
    (rate(started, lat), next)
}

/// Our authz-server on a free loopback port, with `store`.
struct Ours {
    base: String,
    state: mcp_authz::AppState,
    handle: actix_web::dev::ServerHandle,
}

async fn start_ours(store: Arc<dyn Store>) -> Ours {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = Config::from_source(&Source::from_pairs([
        ("AUTH_ISSUER", base.as_str()),
        ("AUTHZ_LISTEN", &format!("127.0.0.1:{port}")),
        (
            "GATEWAY_JWT_SECRET",
            "bench-secret-bench-secret-bench-secret",
        ),
        ("MCP_ECHO_ENABLED", "true"),
        ("MCP_ECHO_URL", RESOURCE),
        // Throughput, not abuse resistance, is measured here; the Python
        // service has no rate limit either.
        ("RATE_LIMIT_ENABLED", "false"),
    ]))
    .unwrap();
    let clock: SharedClock = system();
    let state = mcp_authz::build_state(config, store, clock).await.unwrap();
    let (_, server) = mcp_authz::serve_state(state.clone()).unwrap();
    let handle = server.handle();
    tokio::spawn(server);
    wait_for_http(&format!("{base}/health"), Duration::from_secs(10))
        .await
        .unwrap();
    Ours {
        base,
        state,
        handle,
    }
}

/// One registered confidential client and `n` refresh-token families, made
/// directly in the store (there is no browser sign-in in a benchmark).
async fn our_families(http: &reqwest::Client, ours: &Ours, n: usize) -> Families {
    let r: Value = http
        .post(format!("{}/register", ours.base))
        .json(&registration_body())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = r["client_id"].as_str().unwrap().to_string();
    let client_secret = r["client_secret"].as_str().unwrap().to_string();
    let user = Identity {
        sub: "local:bench".into(),
        name: "bench".into(),
        email: None,
        groups: vec![],
        idp: "local".into(),
        ..Identity::default()
    };
    let resources = vec![RESOURCE.to_string()];
    let mut refresh_tokens = Vec::with_capacity(n);
    for w in 0..n {
        let family = format!(
            "bench{w}{}",
            gateway_common::crypto::random_token(8).replace(['-', '_'], "")
        );
        let jti = mcp_authz::issue::new_jti();
        let first = mcp_authz::issue::mint_access_token(
            &ours.state,
            &jti,
            &client_id,
            &user,
            "mcp",
            &resources,
            Some(&family),
        )
        .unwrap();
        refresh_tokens.push(
            mcp_authz::issue::new_family(
                &ours.state,
                &family,
                &client_id,
                &user,
                "mcp",
                &resources,
                &first,
            )
            .await
            .unwrap(),
        );
    }
    Families {
        client_id,
        client_secret,
        refresh_tokens,
    }
}

fn print_rate(label: &str, what: &str, r: &Rate) {
    println!(
        "  {label:<28} {what:<14} {:>9.0} /s   p50 {:>7.2} ms   p99 {:>7.2} ms   ({} requests)",
        r.per_s, r.p50_ms, r.p99_ms, r.done
    );
}

fn median(mut v: Vec<Rate>) -> Rate {
    v.sort_by(|a, b| a.per_s.total_cmp(&b.per_s));
    v[v.len() / 2]
}

fn http_client(concurrency: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap()
}

/// One thread for the load generator (see the module docs); the servers run
/// on their own worker threads.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    tokio::task::LocalSet::new().run_until(run()).await;
}

async fn run() {
    if let Some(dir) = std::env::args().skip_while(|a| a != "--fixture").nth(1) {
        return fixture(PathBuf::from(dir)).await;
    }
    let a = parse_args();
    let max = Duration::from_secs(a.max_seconds);
    println!(
        "== mcp-authz token benchmark: ES256, HTTP/1.1 keep-alive on 127.0.0.1, concurrency {}, \
         {} requests per scenario (cap {}s), {} round(s)",
        a.concurrency, a.requests, a.max_seconds, a.rounds
    );
    let http = http_client(a.concurrency);

    // Embedded store: ours only (the Python service has no embedded store).
    let dir = tempfile::tempdir().unwrap();
    let embedded: Arc<dyn Store> = Arc::new(
        EmbeddedStore::open(dir.path().join("bench.redb"))
            .await
            .unwrap(),
    );
    let ours = start_ours(embedded).await;
    let reg = registrations(&ours.base, a.requests, a.concurrency, max).await;
    let fam = our_families(&http, &ours, a.concurrency).await;
    let (tok, _) = refreshes(&ours.base, &fam, a.requests, a.concurrency, max).await;
    print_rate("ours, embedded store", "refresh grant", &tok);
    print_rate("ours, embedded store", "registrations", &reg);
    ours.handle.stop(true).await;

    // Redis: the given one (shared with the Python service) or a private one.
    let _own_redis;
    let redis_url = match &a.redis_url {
        Some(u) => u.clone(),
        None => {
            let r = RedisServer::start()
                .await
                .expect("redis-server must be installed");
            let u = r.url(0);
            _own_redis = r;
            u
        }
    };
    let store: Arc<dyn Store> = Arc::new(RedisStore::connect(&redis_url, None).await.unwrap());
    let ours = start_ours(store).await;
    let mut ours_fam = our_families(&http, &ours, a.concurrency).await;

    let python = match (&a.python_url, &a.python_creds) {
        (Some(url), Some(path)) => {
            let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            let fam = Families {
                client_id: v["client_id"].as_str().unwrap().to_string(),
                client_secret: v["client_secret"].as_str().unwrap().to_string(),
                refresh_tokens: v["refresh_tokens"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_string())
                    .collect(),
            };
            Some((url.clone(), fam))
        }
        _ => None,
    };

    // Rounds interleave the two sides (alternating who goes first), so a burst
    // of other work on this shared machine does not land on one side only.
    let (mut o_tok, mut o_reg, mut p_tok, mut p_reg) = (vec![], vec![], vec![], vec![]);
    for round in 0..a.rounds {
        let python_first = round % 2 == 1;
        for side in [python_first, !python_first] {
            if side {
                if let Some((url, fam)) = &python {
                    let r = registrations(url, a.requests, a.concurrency, max).await;
                    let (t, _) = refreshes(url, fam, a.requests, a.concurrency, max).await;
                    p_reg.push(r);
                    p_tok.push(t);
                }
            } else {
                let r = registrations(&ours.base, a.requests, a.concurrency, max).await;
                let (t, next) =
                    refreshes(&ours.base, &ours_fam, a.requests, a.concurrency, max).await;
                ours_fam.refresh_tokens = next;
                o_reg.push(r);
                o_tok.push(t);
            }
        }
    }
    ours.handle.stop(true).await;
    let (o_tok, o_reg) = (median(o_tok), median(o_reg));
    print_rate("ours, redis", "refresh grant", &o_tok);
    print_rate("ours, redis", "registrations", &o_reg);

    let Some(_) = python else {
        println!("  python gateway (mcp-oauth-dynamicclient 0.2.0): not measured (run bench/run.sh authz)");
        return;
    };
    let (p_tok, p_reg) = (median(p_tok), median(p_reg));
    print_rate("python 0.2.0, redis", "refresh grant", &p_tok);
    print_rate("python 0.2.0, redis", "registrations", &p_reg);

    println!(
        "\n-- side by side, same Redis, same client, median of {} round(s) --",
        a.rounds
    );
    println!(
        "  {:<24} {:>12} {:>14} {:>14}   target",
        "", "ours (redis)", "python 0.2.0", "ours/python"
    );
    let tok_ratio = o_tok.per_s / p_tok.per_s;
    let reg_ratio = o_reg.per_s / p_reg.per_s;
    println!(
        "  {:<24} {:>12.0} {:>14.0} {:>13.1}×   ≥ 20×  {}",
        "refresh grant tokens/s",
        o_tok.per_s,
        p_tok.per_s,
        tok_ratio,
        if tok_ratio >= 20.0 { "MET" } else { "NOT MET" }
    );
    println!(
        "  {:<24} {:>12.0} {:>14.0} {:>13.1}×   (none)",
        "registrations/s", o_reg.per_s, p_reg.per_s, reg_ratio
    );
    println!(
        "  {:<24} {:>12.2} {:>14.2} {:>13.1}×",
        "refresh p99 ms",
        o_tok.p99_ms,
        p_tok.p99_ms,
        p_tok.p99_ms / o_tok.p99_ms
    );
}

/// `--fixture DIR [--families N] [--files K]`: credentials for the socket
/// benchmark (`bench/run.sh`), made against the store the configuration in the
/// environment names (`REDIS_URL` or `STORE_PATH`, with the same
/// `GATEWAY_JWT_SECRET`, `AUTH_ISSUER` and services as the server that will be
/// measured, so it finds the same signing key). Writes, each 0600 in DIR:
/// `refresh-<k>.txt` for k < K — a registered confidential client
/// (`client_id client_secret` on the first line) and N refresh-token families
/// of it, one token a line; one file per load run, since a run may end with a
/// rotation whose answer it never read — and `access.txt` (a valid access
/// token for the echo service). Then exits, closing the store (the
/// embedded store is one process's at a time).
async fn fixture(dir: PathBuf) {
    let args: Vec<String> = std::env::args().collect();
    let num = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| v.parse().expect("a number"))
    };
    let (families, files) = (num("--families", 64), num("--files", 3));
    let src = Source::from_process().unwrap();
    let mut config = Config::from_source(&src).unwrap();
    // A private listener for the registration; the measured server binds AUTHZ_LISTEN later.
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let store = gateway_store::config::open_from_config(&src).await.unwrap();
    let state = mcp_authz::build_state(config, store, system())
        .await
        .unwrap();
    let (addr, server) = mcp_authz::serve_state(state.clone()).unwrap();
    let handle = server.handle();
    tokio::spawn(server);
    let ours = Ours {
        base: format!("http://{addr}"),
        state,
        handle,
    };
    wait_for_http(&format!("{}/health", ours.base), Duration::from_secs(10))
        .await
        .unwrap();
    let http = http_client(4);
    let write = |name: &str, text: &str| {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.join(name))
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    };
    for k in 0..files {
        let fam = our_families(&http, &ours, families).await;
        write(
            &format!("refresh-{k}.txt"),
            &format!(
                "{} {}\n{}\n",
                fam.client_id,
                fam.client_secret,
                fam.refresh_tokens.join("\n")
            ),
        );
    }
    let user = Identity {
        sub: "local:bench".into(),
        name: "bench".into(),
        idp: "local".into(),
        ..Identity::default()
    };
    let access = mcp_authz::issue::mint_access_token(
        &ours.state,
        &mcp_authz::issue::new_jti(),
        "bench-client",
        &user,
        "mcp",
        &[RESOURCE.to_string()],
        None,
    )
    .unwrap()
    .token;
    write("access.txt", &(access + "\n"));
    ours.handle.stop(true).await;
    std::process::exit(0);
}
