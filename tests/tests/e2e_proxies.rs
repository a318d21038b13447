//! The whole path through real reverse proxies (issue 7), with the configs
//! shipped in `deploy/` rendered by `deploy/render.sh` (only ports and
//! upstreams differ): the official MCP
//! TypeScript SDK client (`tests/js/e2e_client.mjs`) starts with nothing but
//! `http://127.0.0.1:<proxy>/mcp` and walks 401 → protected resource metadata
//! → authorization server metadata → registration (or a Client ID Metadata
//! Document) → sign-in through the server's pages → token → initialize, list
//! and call tools on a real MCP server → refresh (rotated, reuse refused) →
//! revocation refused.
//!
//! The matrix, every cell concurrently (each has its own services, proxy and
//! ports), timed and printed (`cargo test -p gateway-tests --test e2e_proxies
//! -- --nocapture` shows it):
//!
//! | proxy   | services                                          | client                  | MCP server        |
//! |---------|---------------------------------------------------|-------------------------|-------------------|
//! | Traefik | 1 authz, 1 verifier, embedded store               | registration (RFC 7591) | builtin:echo      |
//! | nginx   | 1 authz, 1 verifier, embedded store               | registration            | builtin:echo      |
//! | Caddy   | 1 authz, 1 verifier, embedded store               | registration            | server-everything |
//! | each    | 1 authz, 1 verifier, embedded store               | metadata document       | builtin:echo      |
//! | Caddy   | 2 authz, 3 verifiers, one Redis (round robin)     | registration            | builtin:echo      |
//! | Caddy   | 2 authz, 3 verifiers, one Redis (round robin)     | metadata document       | builtin:echo      |
//! | Traefik | 2 authz, 3 verifiers, one Redis (round robin)     | registration            | builtin:echo      |
//! | nginx   | 2 authz, 3 verifiers, one Redis (round robin)     | registration            | builtin:echo      |
//!
//! Every shipped config lists several verifiers and authorization servers
//! (rendered from `VERIFIER_ADDRS`/`_URLS` and `AUTHZ_ADDRS`/`_URLS`). With
//! several verifiers the revoked token must be refused by every one of them
//! (twice as many refusals in a row as there are verifiers).
//!
//! The SDK's own `clientMetadataUrl` property insists on https; the
//! authorization server checks certificates against public roots only and has
//! no test-only trust anchor. So the metadata-document cells give the SDK an
//! http document URL (allowed on loopback by the test-only
//! `CIMD_ALLOW_PRIVATE=true`) as stored client information, and
//! `sdk_metadata_url_needs_https_and_a_trusted_certificate` pins down both
//! halves: the SDK refuses http, and with https it uses the URL as client_id
//! without registering, while the server refuses a self-signed document.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use gateway_tests::client_document::{ClientDocument, TlsClientDocument};
use gateway_tests::proxy::{start_behind, ProxyKind};
use gateway_tests::stack::{metric_sum, McpServer, StackSpec};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    /// Dynamic Client Registration (RFC 7591).
    Registration,
    /// A Client ID Metadata Document on loopback.
    MetadataDocument,
}

#[derive(Debug, Clone, Copy)]
struct Cell {
    proxy: ProxyKind,
    spec: StackSpec,
    client: Client,
}

impl Cell {
    fn services(&self) -> String {
        let store = if self.spec.redis {
            "one Redis"
        } else {
            "embedded"
        };
        format!(
            "{} authz, {} verifier{}, {store}",
            self.spec.authz,
            self.spec.verifiers,
            if self.spec.verifiers == 1 { "" } else { "s" }
        )
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Timing {
    start: Duration,
    client: Duration,
    total: Duration,
}

/// A cell normally takes well under 20 s, even with every cell at once on 2 cores.
const CELL_TIMEOUT: Duration = Duration::from_secs(150);

const SINGLE_ECHO: StackSpec = StackSpec {
    authz: 1,
    verifiers: 1,
    redis: false,
    mcp: McpServer::Echo,
};

const SHARED_REDIS: StackSpec = StackSpec {
    authz: 2,
    verifiers: 3,
    redis: true,
    mcp: McpServer::Echo,
};

fn matrix() -> Vec<Cell> {
    let mut cells = Vec::new();
    for proxy in [ProxyKind::Traefik, ProxyKind::Nginx, ProxyKind::Caddy] {
        let spec = StackSpec {
            // One proxy in front of a real npm MCP server, the others the built-in echo.
            mcp: if proxy == ProxyKind::Caddy {
                McpServer::Everything
            } else {
                McpServer::Echo
            },
            ..SINGLE_ECHO
        };
        cells.push(Cell {
            proxy,
            spec,
            client: Client::Registration,
        });
        cells.push(Cell {
            proxy,
            spec: SINGLE_ECHO,
            client: Client::MetadataDocument,
        });
    }
    for client in [Client::Registration, Client::MetadataDocument] {
        cells.push(Cell {
            proxy: ProxyKind::Caddy,
            spec: SHARED_REDIS,
            client,
        });
    }
    for proxy in [ProxyKind::Traefik, ProxyKind::Nginx] {
        cells.push(Cell {
            proxy,
            spec: SHARED_REDIS,
            client: Client::Registration,
        });
    }
    cells
}

fn step<'a>(steps: &'a [Value], name: &str) -> anyhow::Result<&'a Value> {
    steps
        .iter()
        .find(|s| s["step"] == name)
        .with_context(|| format!("no {name} step in {steps:?}"))
}

/// Runs one cell: services, proxy, the SDK client; checks every step.
async fn run(cell: Cell) -> anyhow::Result<Timing> {
    let t0 = Instant::now();
    let (stack, proxy) = start_behind(cell.proxy, cell.spec, &[]).await?;
    let document = match cell.client {
        Client::Registration => None,
        Client::MetadataDocument => Some(ClientDocument::start().await?),
    };
    let start = t0.elapsed();
    let origin = stack.origin.clone();
    let http = reqwest::Client::new();

    // What the client will discover, through the proxy.
    let as_meta: Value = http
        .get(format!("{origin}/.well-known/oauth-authorization-server"))
        .send()
        .await?
        .json()
        .await?;
    ensure!(as_meta["issuer"] == origin.as_str(), "issuer {as_meta}");
    if document.is_some() {
        ensure!(
            as_meta["client_id_metadata_document_supported"] == true,
            "metadata documents not advertised: {as_meta}"
        );
    }

    let t1 = Instant::now();
    let revoked_checks = (2 * cell.spec.verifiers).to_string();
    let mut env: Vec<(&str, &str)> = vec![("REVOKED_CHECKS", revoked_checks.as_str())];
    if let Some(doc) = &document {
        env.push(("CLIENT_METADATA_URL", doc.url.as_str()));
    }
    let steps = gateway_tests::run_sdk_client(&stack.mcp_url(), &stack.user, &stack.password, &env)
        .await
        .with_context(|| format!("proxy log:\n{}", proxy.log()))?;
    let client = t1.elapsed();

    let names: Vec<&str> = steps.iter().filter_map(|s| s["step"].as_str()).collect();
    ensure!(
        names
            == [
                "challenge",
                "registered",
                "token",
                "tool_call",
                "refresh",
                "revoked",
                "done"
            ],
        "steps {names:?}"
    );
    // 401 from the verifier, through the proxy, naming the PRM on the proxy origin.
    let www = step(&steps, "challenge")?["www_authenticate"]
        .as_str()
        .unwrap_or_default();
    let prm =
        format!("Bearer resource_metadata=\"{origin}/.well-known/oauth-protected-resource/mcp\"");
    ensure!(www.starts_with(&prm), "challenge {www:?}, want {prm:?}…");
    let registered = step(&steps, "registered")?;
    let client_id = registered["client_id"].as_str().unwrap_or_default();
    match &document {
        None => {
            ensure!(registered["via"] == "registration", "{registered}");
            ensure!(
                !client_id.is_empty() && !client_id.starts_with("http"),
                "{registered}"
            );
        }
        Some(doc) => {
            ensure!(client_id == doc.url, "{registered}");
            ensure!(
                doc.fetches() >= 1,
                "the authorization server never fetched the document"
            );
        }
    }
    let token = step(&steps, "token")?;
    ensure!(
        token["scope"]
            .as_str()
            .is_some_and(|s| s.split(' ').any(|s| s == "mcp")),
        "{token}"
    );
    ensure!(
        token["expires_in"].as_u64().is_some_and(|e| e > 0),
        "{token}"
    );
    let tool_call = step(&steps, "tool_call")?;
    ensure!(
        tool_call["tools"].as_u64().is_some_and(|n| n >= 1),
        "{tool_call}"
    );
    ensure!(
        tool_call["session"].is_string(),
        "no Mcp-Session-Id: {tool_call}"
    );
    if cell.spec.mcp == McpServer::Everything {
        // server-everything lists far more than the built-in echo's tools.
        ensure!(
            tool_call["tools"].as_u64().is_some_and(|n| n > 3),
            "{tool_call}"
        );
    }
    let refresh = step(&steps, "refresh")?;
    ensure!(
        refresh["rotated"] == true && refresh["reuse_refused"] == true,
        "{refresh}"
    );
    let revoked = step(&steps, "revoked")?;
    ensure!(
        revoked["refused_after_ms"]
            .as_u64()
            .is_some_and(|ms| ms < 3000),
        "{revoked}"
    );
    ensure!(
        revoked["consecutive_refusals"].as_u64() == Some(2 * cell.spec.verifiers as u64),
        "{revoked}"
    );

    // Round robin: every replica took part.
    if cell.spec.authz > 1 || cell.spec.verifiers > 1 {
        for a in &stack.authz {
            let text = http
                .get(format!("http://{}/metrics", a.addr))
                .send()
                .await?
                .text()
                .await?;
            let events = metric_sum(
                &text,
                &[
                    "authz_tokens_issued",
                    "authz_token_errors",
                    "authz_registrations",
                    "authz_revocations",
                    "authz_sign_ins",
                ],
            );
            ensure!(
                events > 0.0,
                "authz-server {} handled none of the flow:\n{text}",
                a.addr
            );
        }
        for v in &stack.verifiers {
            let text = http
                .get(format!("http://{}/metrics", v.addr))
                .send()
                .await?
                .text()
                .await?;
            let checks = metric_sum(&text, &["mcp_verifier_verify_duration_seconds_count"]);
            ensure!(
                checks > 0.0,
                "verifier {} checked no request:\n{text}",
                v.addr
            );
        }
    }

    drop(proxy);
    if let Some(doc) = document {
        doc.stop().await;
    }
    stack.stop().await;
    Ok(Timing {
        start,
        client,
        total: t0.elapsed(),
    })
}

#[actix_web::test]
async fn sdk_client_walks_the_whole_path_behind_each_proxy() {
    gateway_tests::require_js_deps().unwrap();
    let t0 = Instant::now();
    let cells = matrix();
    // Concurrently: every cell has its own services, ports, temp dirs and proxy.
    let handles: Vec<_> = cells
        .iter()
        .map(|&cell| {
            actix_web::rt::spawn(async move {
                let t = Instant::now();
                let result = tokio::time::timeout(CELL_TIMEOUT, run(cell))
                    .await
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("no result within {CELL_TIMEOUT:?}")));
                result.map_err(|e| (e, t.elapsed()))
            })
        })
        .collect();
    let mut results = Vec::new();
    for h in handles {
        results.push(
            h.await
                .unwrap_or_else(|e| Err((anyhow::anyhow!("cell panicked: {e}"), Duration::ZERO))),
        );
    }

    let mut table = String::from(
        "\nproxy    services                        client             MCP server         result   start  client  total\n",
    );
    let mut failures = String::new();
    for (cell, result) in cells.iter().zip(&results) {
        let client = match cell.client {
            Client::Registration => "registration",
            Client::MetadataDocument => "metadata document",
        };
        // A failed cell shows how long it ran before failing.
        let t = match result {
            Ok(t) => *t,
            Err((_, total)) => Timing {
                total: *total,
                ..Timing::default()
            },
        };
        let _ = writeln!(
            table,
            "{:<8} {:<31} {:<18} {:<18} {:<7} {:>5.1}s {:>6.1}s {:>5.1}s",
            cell.proxy.name(),
            cell.services(),
            client,
            cell.spec.mcp.name(),
            if result.is_ok() { "ok" } else { "FAILED" },
            t.start.as_secs_f64(),
            t.client.as_secs_f64(),
            t.total.as_secs_f64(),
        );
        if let Err((e, _)) = result {
            let _ = writeln!(
                failures,
                "\n== {} / {} / {client}: {e:?}",
                cell.proxy.name(),
                cell.services()
            );
        }
    }
    let _ = writeln!(
        table,
        "wall clock, all cells concurrently: {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    println!("{table}");
    assert!(failures.is_empty(), "{table}{failures}");
}

#[actix_web::test]
async fn sdk_metadata_url_needs_https_and_a_trusted_certificate() {
    gateway_tests::require_js_deps().unwrap();
    let t0 = Instant::now();
    let (stack, proxy) = start_behind(ProxyKind::Nginx, SINGLE_ECHO, &[])
        .await
        .unwrap();
    let https_doc = TlsClientDocument::start().await.unwrap();
    let http_doc = ClientDocument::start().await.unwrap();
    let mcp_url = stack.mcp_url();
    let run = gateway_tests::run_js(
        "cimd_sdk_probe.mjs",
        &[
            ("MCP_URL", mcp_url.as_str()),
            ("CLIENT_METADATA_URL", https_doc.url.as_str()),
            ("HTTP_METADATA_URL", http_doc.url.as_str()),
        ],
    )
    .await
    .unwrap();
    assert!(
        run.success && run.lines.len() == 1,
        "probe failed: {:?}\n{}\nproxy log:\n{}",
        run.lines,
        run.stderr,
        proxy.log()
    );
    let r = &run.lines[0];
    assert_eq!(
        r["sdk_refuses_http"], true,
        "the SDK now takes an http clientMetadataUrl: let e2e_client.mjs use the property ({r})"
    );
    assert_eq!(http_doc.fetches(), 0, "refused before any request");
    // https: the SDK's URL-based client id, no registration.
    assert_eq!(r["result"], "REDIRECT", "{r}");
    assert_eq!(r["registrations"], 0, "{r}");
    assert_eq!(r["client_id"], https_doc.url.as_str(), "{r}");
    // The server fetched it, refused the self-signed certificate, and said so
    // on a page, without redirecting (the redirect URI is not known to be the client's).
    assert_eq!(r["authorize_status"], 400, "{r}");
    assert!(r["authorize_location"].is_null(), "{r}");
    assert!(
        r["authorize_body"]
            .as_str()
            .is_some_and(|b| b.contains("metadata document")),
        "{r}"
    );
    assert!(
        https_doc.log().contains("alert"),
        "the authorization server never tried (and refused) the TLS handshake: {}",
        https_doc.log()
    );
    drop(proxy);
    http_doc.stop().await;
    stack.stop().await;
    println!(
        "nginx    1 authz, 1 verifier, embedded  SDK clientMetadataUrl (https, self-signed): refused as expected  {:.1}s",
        t0.elapsed().as_secs_f64()
    );
}
