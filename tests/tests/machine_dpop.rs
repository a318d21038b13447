//! Issue 22: machine clients and DPoP through the real proxies, with the
//! configs shipped in `deploy/`.
//!
//! * `dpop_machine_client_behind_each_proxy`: behind Traefik, nginx and Caddy
//!   (concurrently), a service configured `MCP_ECHO_DPOP=required` with server
//!   nonces at both the authorization server and the verifier. A Rust client on
//!   the kept crates (`gateway_testkit::dpop`) registers with `private_key_jwt`,
//!   gets a DPoP-bound token with `client_credentials` (nonce dance at
//!   `/token`), and calls tools on the real bridge with a fresh proof per
//!   request (nonce dance at the verifier). A replayed assertion, a token
//!   request without a proof, a replayed proof and a bound token without a
//!   proof are each refused with the right error.
//! * `sdk_machine_clients`: the TypeScript SDK's own `ClientCredentialsProvider`
//!   (`client_secret_basic`) and `PrivateKeyJwtProvider` get tokens and call
//!   tools through Caddy, starting from the MCP URL alone.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use gateway_testkit::dpop::DpopKey;
use gateway_testkit::oauth;
use gateway_tests::proxy::{start_behind, ProxyKind};
use gateway_tests::stack::{McpServer, StackSpec};
use serde_json::{json, Value};

const SPEC: StackSpec = StackSpec {
    authz: 1,
    verifiers: 1,
    redis: false,
    mcp: McpServer::Echo,
};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// One `/token` request: client_credentials with a fresh assertion (unless
/// `assertion` is given) and, with `dpop`, a proof (nonce dance included).
async fn token(
    http: &reqwest::Client,
    origin: &str,
    client_id: &str,
    auth_key: &DpopKey,
    dpop: Option<&DpopKey>,
    assertion: Option<&str>,
) -> anyhow::Result<(u16, Value, String)> {
    let mut nonce: Option<String> = None;
    for _ in 0..2 {
        let a = match assertion {
            Some(a) => a.to_string(),
            None => auth_key.client_assertion(client_id, origin),
        };
        let resource = format!("{origin}/mcp");
        let form = [
            ("grant_type", "client_credentials"),
            ("resource", resource.as_str()),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", a.as_str()),
        ];
        let mut req = http.post(format!("{origin}/token")).form(&form);
        if let Some(k) = dpop {
            req = req.header(
                "DPoP",
                k.proof("POST", &format!("{origin}/token"), None, nonce.as_deref()),
            );
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let fresh = r
            .headers()
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body: Value = r.json().await?;
        if status == 400 && body["error"] == "use_dpop_nonce" && nonce.is_none() {
            nonce = Some(fresh.context("use_dpop_nonce without a DPoP-Nonce header")?);
            continue;
        }
        return Ok((status, body, a));
    }
    bail!("the nonce dance at /token did not end")
}

/// An MCP client speaking Streamable HTTP with a DPoP proof on every request.
struct McpDpop<'a> {
    http: &'a reqwest::Client,
    url: String,
    token: String,
    key: &'a DpopKey,
    nonce: Option<String>,
    session: Option<String>,
    last_proof: Option<String>,
    nonce_dances: usize,
}

impl McpDpop<'_> {
    async fn send(&mut self, msg: &Value) -> anyhow::Result<(u16, String, Option<Value>)> {
        for _ in 0..2 {
            let proof = self
                .key
                .proof("POST", &self.url, Some(&self.token), self.nonce.as_deref());
            self.last_proof = Some(proof.clone());
            let mut req = self
                .http
                .post(&self.url)
                .header("Authorization", format!("DPoP {}", self.token))
                .header("DPoP", proof)
                .header("Accept", "application/json, text/event-stream")
                .json(msg);
            if let Some(s) = &self.session {
                req = req.header("Mcp-Session-Id", s);
            }
            let r = req.send().await?;
            let status = r.status().as_u16();
            let www = r
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            if status == 401 && www.contains("use_dpop_nonce") {
                self.nonce = r
                    .headers()
                    .get("dpop-nonce")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                ensure!(self.nonce.is_some(), "use_dpop_nonce without DPoP-Nonce");
                self.nonce_dances += 1;
                continue;
            }
            if let Some(s) = r.headers().get("mcp-session-id") {
                self.session = Some(s.to_str()?.to_string());
            }
            let text = r.text().await?;
            // JSON, or SSE whose data line holds the JSON-RPC response.
            let body = serde_json::from_str(&text).ok().or_else(|| {
                text.lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .find_map(|d| serde_json::from_str(d.trim()).ok())
            });
            return Ok((status, www, body));
        }
        bail!("the nonce dance at the verifier did not end")
    }
}

async fn dpop_cell(kind: ProxyKind) -> anyhow::Result<()> {
    let (stack, proxy) = start_behind(
        kind,
        SPEC,
        &[
            ("MCP_ECHO_DPOP", "required"),
            ("DPOP_NONCE_REQUIRED", "true"),
            ("DPOP_NONCE_SECRET", "machine-dpop-test-secret"),
        ],
    )
    .await?;
    let name = kind.name();
    let origin = stack.origin.clone();
    let http = reqwest::Client::new();

    // Discovery says what this server does.
    let meta: Value = http
        .get(format!("{origin}/.well-known/oauth-authorization-server"))
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        meta["dpop_signing_alg_values_supported"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("ES256")))
            && meta["token_endpoint_auth_methods_supported"]
                .as_array()
                .is_some_and(|a| a.contains(&json!("private_key_jwt")))
            && meta["token_endpoint_auth_signing_alg_values_supported"]
                .as_array()
                .is_some_and(|a| a.contains(&json!("ES256")))
            && meta["grant_types_supported"]
                .as_array()
                .is_some_and(|a| a.contains(&json!("client_credentials"))),
        "{name}: metadata {meta}"
    );
    let prm: Value = http
        .get(format!("{origin}/.well-known/oauth-protected-resource/mcp"))
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        prm["dpop_bound_access_tokens_required"] == true,
        "{name}: {prm}"
    );

    // A machine client with a key instead of a secret.
    let auth_key = DpopKey::generate();
    let mut jwk = auth_key.jwk.clone();
    jwk["kid"] = json!("auth-1");
    let reg = oauth::register(
        &http,
        &origin,
        &json!({
            "client_name": "nightly job",
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [jwk]},
        }),
    )
    .await?;
    ensure!(reg.get("client_secret").is_none(), "{name}: {reg}");
    let client_id = reg["client_id"].as_str().unwrap_or_default().to_string();

    // A token without a proof: this service takes DPoP-bound tokens only.
    let (status, body, _) = token(&http, &origin, &client_id, &auth_key, None, None).await?;
    ensure!(
        status == 400 && body["error"] == "invalid_dpop_proof",
        "{name}: bearer token for a DPoP-only service: {status} {body}"
    );

    // With a proof (after the nonce dance): a DPoP-bound token, no refresh token.
    let dpop_key = DpopKey::generate();
    let (status, body, used) =
        token(&http, &origin, &client_id, &auth_key, Some(&dpop_key), None).await?;
    ensure!(status == 200, "{name}: token {status} {body}");
    ensure!(
        body["token_type"] == "DPoP" && body.get("refresh_token").is_none(),
        "{name}: {body}"
    );
    let access = body["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // The same assertion again is refused: its jti is spent.
    let (status, body, _) = token(
        &http,
        &origin,
        &client_id,
        &auth_key,
        Some(&dpop_key),
        Some(&used),
    )
    .await?;
    ensure!(
        status == 401 && body["error"] == "invalid_client",
        "{name}: replayed assertion: {status} {body}"
    );

    // Tools through the proxy, a fresh proof on every request.
    let url = stack.mcp_url();
    let mut mcp = McpDpop {
        http: &http,
        url: url.clone(),
        token: access.clone(),
        key: &dpop_key,
        nonce: None,
        session: None,
        last_proof: None,
        nonce_dances: 0,
    };
    let (status, www, body) = mcp
        .send(
            &json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion":"2025-06-18","capabilities":{},
            "clientInfo":{"name":"dpop-test","version":"1"}}}),
        )
        .await?;
    ensure!(status == 200, "{name}: initialize {status} {www} {body:?}");
    ensure!(
        mcp.nonce_dances == 1,
        "{name}: the verifier asked for no nonce"
    );
    let (status, _, _) = mcp
        .send(&json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .await?;
    ensure!(
        status == 202 || status == 200,
        "{name}: initialized {status}"
    );
    let (status, www, body) = mcp
        .send(&json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"whoami","arguments":{}}}))
        .await?;
    ensure!(status == 200, "{name}: tools/call {status} {www}");
    let text = body
        .as_ref()
        .and_then(|b| b["result"]["content"][0]["text"].as_str())
        .unwrap_or_default()
        .to_string();
    ensure!(
        text.contains(&client_id),
        "{name}: the machine client is the caller: {text} {body:?}"
    );

    // The last proof again: replay.
    let replay = http
        .post(&url)
        .header("Authorization", format!("DPoP {access}"))
        .header("DPoP", mcp.last_proof.clone().unwrap_or_default())
        .header("Mcp-Session-Id", mcp.session.clone().unwrap_or_default())
        .header("Accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc":"2.0","id":3,"method":"tools/list"}))
        .send()
        .await?;
    let www = replay
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    ensure!(
        replay.status() == 401 && www.starts_with("DPoP ") && www.contains("invalid_dpop_proof"),
        "{name}: replayed proof: {} {www}",
        replay.status()
    );
    // The bound token without a proof.
    let bare = http
        .post(&url)
        .header("Authorization", format!("DPoP {access}"))
        .json(&json!({"jsonrpc":"2.0","id":4,"method":"tools/list"}))
        .send()
        .await?;
    let www = bare
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    ensure!(
        bare.status() == 401 && www.starts_with("DPoP ") && www.contains("algs=\""),
        "{name}: bound token without proof: {} {www}",
        bare.status()
    );

    drop(proxy);
    stack.stop().await;
    Ok(())
}

#[actix_web::test]
async fn dpop_machine_client_behind_each_proxy() {
    let cells = [ProxyKind::Traefik, ProxyKind::Nginx, ProxyKind::Caddy].map(|kind| async move {
        tokio::time::timeout(Duration::from_secs(150), dpop_cell(kind))
            .await
            .map_err(|_| anyhow::anyhow!("timed out"))
            .and_then(|r| r)
            .with_context(|| kind.name())
    });
    let results = futures_join(cells).await;
    let failed: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.err().map(|e| format!("{e:#}")))
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

async fn futures_join<F: std::future::Future>(cells: [F; 3]) -> Vec<F::Output> {
    let [a, b, c] = cells;
    let (a, b, c) = tokio::join!(a, b, c);
    vec![a, b, c]
}

#[actix_web::test]
async fn sdk_machine_clients() {
    gateway_tests::require_js_deps().unwrap();
    let (stack, proxy) = start_behind(ProxyKind::Caddy, SPEC, &[]).await.unwrap();
    let origin = stack.origin.clone();
    let http = reqwest::Client::new();
    let url = stack.mcp_url();

    // client_secret_basic, as the SDK's ClientCredentialsProvider describes itself.
    let reg = oauth::register(
        &http,
        &origin,
        &json!({"client_name": "sdk-basic", "redirect_uris": [], "grant_types": ["client_credentials"],
               "token_endpoint_auth_method": "client_secret_basic"}),
    )
    .await
    .unwrap();
    let basic_id = reg["client_id"].as_str().unwrap().to_string();
    let secret = reg["client_secret"].as_str().unwrap().to_string();
    let run = gateway_tests::run_js(
        "machine_client.mjs",
        &[
            ("MCP_URL", url.as_str()),
            ("ISSUER", origin.as_str()),
            ("CLIENT_ID", basic_id.as_str()),
            ("CLIENT_SECRET", secret.as_str()),
        ],
    )
    .await
    .unwrap();
    check_sdk_run("ClientCredentialsProvider", &run, &basic_id, true);

    // private_key_jwt with the SDK's PrivateKeyJwtProvider (ES256, aud = issuer).
    let key = DpopKey::generate();
    let reg = oauth::register(
        &http,
        &origin,
        &json!({"client_name": "sdk-jwt", "redirect_uris": [], "grant_types": ["client_credentials"],
               "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [key.jwk.clone()]}}),
    )
    .await
    .unwrap();
    let jwt_id = reg["client_id"].as_str().unwrap().to_string();
    let run = gateway_tests::run_js(
        "machine_client.mjs",
        &[
            ("MCP_URL", url.as_str()),
            ("ISSUER", origin.as_str()),
            ("CLIENT_ID", jwt_id.as_str()),
            ("CLIENT_KEY_PEM", key.pkcs8_pem.as_str()),
        ],
    )
    .await
    .unwrap();
    check_sdk_run("PrivateKeyJwtProvider", &run, &jwt_id, false);

    // An assertion replayed by someone who saw it is refused.
    let assertion = key.client_assertion(&jwt_id, &origin);
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let r = http
            .post(format!("{origin}/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", assertion.as_str()),
            ])
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, vec![200, 401], "a replayed assertion is refused");
    drop(proxy);
    stack.stop().await;
}

fn check_sdk_run(what: &str, run: &gateway_tests::JsRun, client_id: &str, basic: bool) {
    assert!(run.success, "{what}: {:?}\n{}", run.lines, run.stderr);
    let tools = run.lines.iter().find(|l| l["step"] == "tools").unwrap();
    assert!(
        tools["tools"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("whoami"))),
        "{what}: {tools}"
    );
    let reqs = tools["token_requests"].as_array().unwrap();
    assert!(
        reqs.iter()
            .any(|r| r["status"] == 200 && r["auth"] == basic),
        "{what}: token requests {reqs:?}"
    );
    let call = run.lines.iter().find(|l| l["step"] == "call").unwrap();
    assert!(
        call["text"]
            .as_str()
            .unwrap_or_default()
            .contains(client_id),
        "{what}: {call}"
    );
}
