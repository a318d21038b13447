//! Faults (issue 9), each with real processes: redis-server stopped and
//! restarted on the same port, the `mcp-authz` binary killed with SIGKILL under
//! load, a verifier started before its authz-server, and MCP children that
//! hang, flood stderr or write garbage.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure is a test failure

use std::time::{Duration, Instant};

use gateway_common::config::Source;
use gateway_testkit::oauth;
use gateway_tests::faults_support::*;
use serde_json::{json, Value};

/// Redis stops while everything serves: the authz-server answers 503
/// `temporarily_unavailable` (no store detail), the verifier keeps answering
/// from memory until REVOCATION_STALENESS_BOUND, then fails closed; Redis comes
/// back on the same port and both recover by themselves, data intact (AOF).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_outage_gives_503_fails_closed_after_the_bound_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut redis = DurableRedis::start(dir.path()).await.unwrap();
    let (users, _) = users_file(dir.path()).unwrap();
    let (listener, port) = loopback_listener().unwrap();
    let src = authz_source(dir.path(), &users, port).with("REDIS_URL", &redis.url());
    let (addr, state, handle) = start_authz_on(&src, Some(listener)).await.unwrap();
    let base = format!("http://{addr}");
    eprintln!("authz-server up at {base}");
    let http = reqwest::Client::new();

    let vsrc = Source::from_pairs([
        ("VERIFIER_LISTEN", "127.0.0.1:0".to_string()),
        ("AUTH_ISSUER", base.clone()),
        ("AUTHZ_URL", base.clone()),
        ("REDIS_URL", redis.url()),
        ("REVOCATION_STALENESS_BOUND", "3".into()),
        ("MCP_ECHO_ENABLED", "true".into()),
        ("MCP_ECHO_URL", RESOURCE.into()),
    ]);
    let verifier = mcp_verifier::serve(mcp_verifier::VerifierConfig::from_source(&vsrc).unwrap())
        .await
        .unwrap();
    let vaddr = verifier.addr;
    gateway_testkit::wait_for_http(&format!("http://{vaddr}/ready"), Duration::from_secs(20))
        .await
        .unwrap();
    eprintln!("verifier ready");
    let token = mint(&state).unwrap();
    assert_eq!(verify_status(&http, vaddr, &token).await, 200);
    let (client_id, reg_token) = register_public(&http, &base).await.unwrap();

    eprintln!("client registered; stopping Redis");
    redis.stop();
    let stopped = Instant::now();
    // Within the bound the verifier answers from memory.
    assert_eq!(verify_status(&http, vaddr, &token).await, 200);
    let r = oauth::register_raw(
        &http,
        &base,
        &json!({"redirect_uris": ["http://127.0.0.1:1/cb"]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(
        !body.to_string().to_lowercase().contains("redis"),
        "store detail leaked: {body}"
    );
    let r = http.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    // Past the bound: fail closed, 503 (not 200, not a 401 that would send clients to sign in).
    assert!(
        eventually(Duration::from_secs(15), || {
            let http = http.clone();
            let token = token.clone();
            async move { verify_status(&http, vaddr, &token).await == 503 }
        })
        .await,
        "the verifier kept serving without its revocation feed"
    );
    assert!(
        stopped.elapsed() >= Duration::from_secs(2),
        "failed closed before the staleness bound: {:?}",
        stopped.elapsed()
    );

    redis.restart().await.unwrap();
    let t = Instant::now();
    assert!(
        eventually(Duration::from_secs(30), || {
            let http = http.clone();
            let base = base.clone();
            async move { register_public(&http, &base).await.is_ok() }
        })
        .await,
        "the authz-server did not recover when Redis returned"
    );
    eprintln!(
        "authz-server recovered {:?} after Redis restarted",
        t.elapsed()
    );
    // The client registered before the outage is still there (AOF, fsync always).
    let r = http
        .get(format!("{base}/register/{client_id}"))
        .bearer_auth(&reg_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        eventually(Duration::from_secs(30), || {
            let http = http.clone();
            let token = token.clone();
            async move { verify_status(&http, vaddr, &token).await == 200 }
        })
        .await,
        "the verifier did not recover when Redis returned"
    );
    eprintln!("verifier recovered {:?} after Redis restarted", t.elapsed());
    verifier.stop().await;
    handle.stop(false).await;
}

/// A verifier started while its authz-server is down is not ready (and says
/// so), then becomes ready by itself once the authz-server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_verifier_started_before_the_authz_server_becomes_ready_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (users, _) = users_file(dir.path()).unwrap();
    // Bound now, served later: until then the verifier's requests wait unanswered.
    let (listener, port) = loopback_listener().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let vsrc = Source::from_pairs([
        ("VERIFIER_LISTEN", "127.0.0.1:0".to_string()),
        ("AUTH_ISSUER", base.clone()),
        ("AUTHZ_URL", base.clone()),
        ("MCP_ECHO_ENABLED", "true".into()),
        ("MCP_ECHO_URL", RESOURCE.into()),
    ]);
    let verifier = mcp_verifier::serve(mcp_verifier::VerifierConfig::from_source(&vsrc).unwrap())
        .await
        .unwrap();
    let vaddr = verifier.addr;
    let http = reqwest::Client::new();
    let ready = format!("http://{vaddr}/ready");
    gateway_testkit::wait_for_http(&format!("http://{vaddr}/health"), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(http.get(&ready).send().await.unwrap().status(), 503);

    let (_, state, handle) =
        start_authz_on(&authz_source(dir.path(), &users, port), Some(listener))
            .await
            .unwrap();
    let t = Instant::now();
    assert!(
        eventually(Duration::from_secs(30), || {
            let http = http.clone();
            let ready = ready.clone();
            async move {
                http.get(&ready)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            }
        })
        .await,
        "the verifier never became ready"
    );
    eprintln!(
        "verifier ready {:?} after the authz-server started",
        t.elapsed()
    );
    assert_eq!(
        verify_status(&http, vaddr, &mint(&state).unwrap()).await,
        200
    );
    verifier.stop().await;
    handle.stop(false).await;
}

/// The `mcp-authz` binary (embedded store) is killed with SIGKILL while
/// clients register and refresh; restarted on the same store, every client it
/// answered 201 for is there, the consent is remembered, and the refresh token
/// it last handed out still rotates.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn authz_killed_with_sigkill_under_load_loses_no_client_consent_or_refresh_token() {
    let dir = tempfile::tempdir().unwrap();
    let (users, password) = users_file(dir.path()).unwrap();
    // The binary's port is in its issuer: a port taken before it binds means
    // another attempt on another port. (The restart below needs the same
    // port back, which is what the test is about.)
    let (dir_ref, users_ref) = (dir.path(), users.as_path());
    let (port, src, mut child) = gateway_testkit::retry_on_port_taken(|port| async move {
        let src = authz_source(dir_ref, users_ref, port).with("RATE_LIMIT_ENABLED", "false");
        let log = dir_ref.join(format!("authz-{port}.log"));
        let mut child = spawn_authz_binary_logged(&src, &log)?;
        gateway_testkit::wait_listening(
            &mut child.0,
            port,
            || std::fs::read_to_string(&log).unwrap_or_default(),
            Duration::from_secs(30),
        )
        .await?;
        Ok((port, src, child))
    })
    .await
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    gateway_testkit::wait_for_http(&format!("{base}/ready"), Duration::from_secs(30))
        .await
        .unwrap();
    let http = reqwest::Client::new();

    // One user flow: session, consent, refresh token.
    let (client_id, _) = register_public(&http, &base).await.unwrap();
    let browser = browser().unwrap();
    let (v, c) = pkce();
    let a = authorize(&browser, &base, &client_id, (USER, &password), &c, RESOURCE)
        .await
        .unwrap();
    assert!(!a.consent_remembered);
    let tokens = exchange(&http, &base, &client_id, &a.code, &v, RESOURCE)
        .await
        .unwrap();
    let mut refresh_token = tokens["refresh_token"].as_str().unwrap().to_string();

    // Load: registrations and refreshes until the kill.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked_count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut registrars = Vec::new();
    for _ in 0..4 {
        let (http, base, stop, count) = (
            http.clone(),
            base.clone(),
            stop.clone(),
            acked_count.clone(),
        );
        registrars.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match register_public(&http, &base).await {
                    Ok(c) => {
                        acked.push(c);
                        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    // Its own stop flag: a kill between the store write and the response would
    // leave the client holding a rotated-away token, whose next use is reuse
    // (refused by design, RFC 9700 §4.14.2) — so refreshes stop just before the kill.
    let stop_refresh = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let refresher = {
        let (http, base, stop, client_id) = (
            http.clone(),
            base.clone(),
            stop_refresh.clone(),
            client_id.clone(),
        );
        let mut current = refresh_token.clone();
        tokio::spawn(async move {
            let mut rotations = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let Ok(r) = refresh(&http, &base, &client_id, &current).await else {
                    break;
                };
                if r.status() != 200 {
                    break;
                }
                let Ok(v) = r.json::<Value>().await else {
                    break;
                };
                current = v["refresh_token"].as_str().unwrap_or_default().to_string();
                rotations += 1;
            }
            (current, rotations)
        })
    };
    // Let load build up, then kill mid-flight.
    assert!(
        eventually(Duration::from_secs(20), || {
            let n = acked_count.load(std::sync::atomic::Ordering::SeqCst);
            async move { n >= 40 }
        })
        .await,
        "the authz-server did not take load"
    );
    stop_refresh.store(true, std::sync::atomic::Ordering::SeqCst);
    let (last_refresh, rotations) = refresher.await.unwrap();
    assert!(rotations > 0, "no refresh went through before the kill");
    let pid = nix::unistd::Pid::from_raw(child.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    let _ = child.0.wait();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut acked = Vec::new();
    for r in registrars {
        acked.extend(r.await.unwrap());
    }
    assert!(
        acked.len() >= 5,
        "too little load before the kill: {}",
        acked.len()
    );
    eprintln!(
        "killed with {} registrations and {rotations} refresh rotations acknowledged",
        acked.len()
    );
    refresh_token = last_refresh;

    let _child = spawn_authz_binary(&src).unwrap();
    gateway_testkit::wait_for_http(&format!("{base}/ready"), Duration::from_secs(30))
        .await
        .unwrap();
    for (id, reg) in &acked {
        let r = http
            .get(format!("{base}/register/{id}"))
            .bearer_auth(reg)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "client {id} acknowledged before the kill is gone"
        );
    }
    // The refresh token last handed out still rotates.
    let r = refresh(&http, &base, &client_id, &refresh_token)
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    // Session and consent survived: no sign-in page, no consent page.
    let (_, c) = pkce();
    let again = authorize(&browser, &base, &client_id, (USER, &password), &c, RESOURCE)
        .await
        .unwrap();
    assert!(again.consent_remembered, "consent lost in the crash");
}

/// Writes `script` (Python) to `dir` and returns a BRIDGE_COMMAND for it.
fn python_child(dir: &std::path::Path, name: &str, script: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, script).unwrap();
    format!("python3 -u {}", path.display())
}

/// A stdio MCP server that misbehaves on request: `tools/call` with name
/// `hang` never answers; every message is preceded by a garbage stdout line
/// and 64 KiB of stderr.
const MISBEHAVING_SERVER: &str = r#"
import json, sys
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except Exception:
        continue
    sys.stderr.write("noise " * 10000 + "\n")
    sys.stderr.flush()
    print("this is not json {{{", flush=True)
    print("[1, 2", flush=True)
    print(json.dumps({"jsonrpc": "1.0", "id": 99, "result": {}}), flush=True)
    if "id" not in msg:
        continue
    method = msg.get("method")
    if method == "initialize":
        result = {"protocolVersion": msg["params"].get("protocolVersion", "2025-06-18"),
                  "capabilities": {"tools": {}}, "serverInfo": {"name": "bad", "version": "0"}}
    elif method == "tools/call" and msg["params"].get("name") == "hang":
        continue
    elif method == "tools/call":
        result = {"content": [{"type": "text", "text": "ok"}]}
    else:
        result = {}
    print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}), flush=True)
"#;

/// A child that floods stderr, writes garbage to stdout and hangs on one
/// request: the bridge stays responsive, times the hung request out with a
/// JSON-RPC error, and serves the next request in the same session.
#[actix_web::test]
async fn a_misbehaving_mcp_child_does_not_take_the_bridge_down() {
    let dir = tempfile::tempdir().unwrap();
    let search_path =
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let src = Source::from_pairs([
        ("BRIDGE_LISTEN", "127.0.0.1:0".to_string()),
        (
            "BRIDGE_COMMAND",
            python_child(dir.path(), "bad.py", MISBEHAVING_SERVER),
        ),
        ("BRIDGE_REQUEST_TIMEOUT", "2".into()),
        ("BRIDGE_JSON_RESPONSE", "true".into()),
        ("PATH", search_path),
    ]);
    let bridge = mcp_bridge::serve(mcp_bridge::Config::from_source(&src).unwrap())
        .await
        .unwrap();
    let url = format!("http://{}/mcp", bridge.addr);
    let http = reqwest::Client::new();
    let post = |body: Value, session: Option<String>| {
        let mut r = http
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .json(&body);
        if let Some(s) = session {
            r = r.header("mcp-session-id", s);
        }
        r.send()
    };
    let r = post(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "faults", "version": "0"}}}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let session = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
    let init: Value = r.json().await.unwrap();
    assert_eq!(init["result"]["serverInfo"]["name"], "bad", "{init}");
    post(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        Some(session.clone()),
    )
    .await
    .unwrap();

    // The hung request: answered with an error within the request timeout.
    let t = Instant::now();
    let hung = post(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "hang", "arguments": {}}}),
        Some(session.clone()),
    );
    // Meanwhile the bridge answers its health check and other sessions' requests.
    let health = http
        .get(format!("http://{}/health", bridge.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let r = tokio::time::timeout(Duration::from_secs(15), hung)
        .await
        .expect("the bridge never answered the hung request")
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["code"].is_i64(),
        "expected a JSON-RPC error: {body}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());

    // The same session still works: garbage lines were skipped, not fatal.
    let r = post(
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "echo", "arguments": {}}}),
        Some(session.clone()),
    )
    .await
    .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["result"]["content"][0]["text"], "ok", "{body}");
    bridge.stop().await;
}
