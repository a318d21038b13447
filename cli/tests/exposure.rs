//! One-machine mode on the open internet (issue 16): `mcp-gateway up` in-process.
//! A Host that is not the gateway's is refused before any URL is built from it, and
//! never comes back in a header; `/metrics` and the revocation feed answer direct
//! loopback clients and a scraper with `METRICS_TOKEN`, not proxied requests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code fails loudly

use std::net::SocketAddr;

use gateway_common::config::Source;
use mcp_gateway::up::{self, UpArgs};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "scraper-0123456789abcdef0123456789abcdef";

async fn start(dir: &std::path::Path, env: Source) -> up::Running {
    up::start(
        &UpArgs {
            host: "127.0.0.1".into(),
            port: 0,
            data_dir: dir.to_path_buf(),
            mcp_command: "builtin:echo".into(),
        },
        &env,
        gateway_common::clock::system(),
    )
    .await
    .unwrap()
}

/// One request written byte for byte (`Connection: close`); the whole response as text.
async fn raw(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).unwrap_or("0").parse().unwrap_or(0);
    (status, text)
}

fn get(path: &str, host: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
}

#[actix_web::test]
async fn a_foreign_host_is_refused_and_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), Source::default()).await;
    let addr = running.addr;
    let ours = addr.to_string();

    // Ours: the challenge points at our own metadata.
    let (status, text) = raw(addr, &get("/mcp", &ours)).await;
    assert_eq!(status, 401, "{text}");
    let expected =
        format!("resource_metadata=\"http://{ours}/.well-known/oauth-protected-resource/mcp\"");
    assert!(text.contains(&expected), "{text}");

    // Hosts that would have shaped WWW-Authenticate, or pointed clients elsewhere.
    for host in [
        "evil.example",
        "evil.example\", error=\"injected",
        &format!("{ours}.evil.example"),
        &format!("{ours}@evil.example"),
        "127.0.0.1:1",
    ] {
        for path in [
            "/mcp",
            "/.well-known/oauth-authorization-server",
            "/authorize",
        ] {
            let (status, text) = raw(addr, &get(path, host)).await;
            assert_eq!(status, 421, "{host} {path}: {text}");
            let lower = text.to_ascii_lowercase();
            assert!(!lower.contains("evil"), "{text}");
            assert!(!lower.contains("injected"), "{text}");
            assert!(!lower.contains("www-authenticate"), "{text}");
            assert!(
                text.contains("the Host header names a host this gateway does not serve"),
                "{text}"
            );
        }
    }
    // No Host at all is a bad request (RFC 9112 §3.2).
    let (status, text) = raw(addr, "GET /mcp HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status, 400, "{text}");
    assert!(!text.to_ascii_lowercase().contains("www-authenticate"));
    running.handle.stop(false).await;
}

#[actix_web::test]
async fn metrics_and_the_revocation_feed_are_for_local_clients_and_the_scraper() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), Source::from_pairs([("METRICS_TOKEN", TOKEN)])).await;
    let base = running.issuer.clone();
    let http = reqwest::Client::new();

    // Direct from this machine: served (the in-process verifier's own feed connected
    // the same way, or `up` would not have become ready).
    let r = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("mcp_bridge_sessions_active"));
    let r = http
        .get(format!("{base}/revocations"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Through a proxy or tunnel (forwarding headers): refused without the token, with
    // a wrong one, and under an encoded spelling of the path.
    let proxied = [
        ("x-forwarded-for", "203.0.113.7"),
        ("forwarded", "for=203.0.113.7"),
        ("x-real-ip", "203.0.113.7"),
    ];
    for path in [
        "/metrics",
        "/revocations",
        "/revocations/stream",
        "/revocation%73",
        "/%6detrics",
    ] {
        for (name, value) in proxied {
            for auth in [None, Some("Bearer wrong".to_string()), Some(TOKEN.into())] {
                let mut rb = http.get(format!("{base}{path}")).header(name, value);
                if let Some(a) = &auth {
                    rb = rb.header("authorization", a);
                }
                let r = rb.send().await.unwrap();
                assert_eq!(
                    r.status(),
                    StatusCode::UNAUTHORIZED,
                    "{path} {name} {auth:?}"
                );
                assert_eq!(
                    r.headers().get("www-authenticate").unwrap(),
                    "Bearer realm=\"metrics\""
                );
                let body = r.text().await.unwrap();
                assert!(
                    !body.contains("mcp_bridge") && !body.contains("revoked"),
                    "{body}"
                );
                assert!(body.contains("METRICS_TOKEN"), "{body}");
            }
        }
    }

    // The scraper with its token is served wherever it comes from.
    let bearer = format!("Bearer {TOKEN}");
    let r = http
        .get(format!("{base}/metrics"))
        .header("x-forwarded-for", "203.0.113.7")
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("authz_"));
    let r = http
        .get(format!("{base}/revocations"))
        .header("forwarded", "for=203.0.113.7")
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = http
        .get(format!("{base}/revocations/stream"))
        .header("x-forwarded-for", "203.0.113.7")
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    drop(r);

    // Everything else is unaffected by the forwarding headers.
    let r = http
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    running.handle.stop(false).await;
}

#[actix_web::test]
async fn without_a_scraper_token_only_local_clients_read_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), Source::default()).await;
    let base = running.issuer.clone();
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    for path in ["/metrics", "/revocations", "/revocations/stream"] {
        let r = http
            .get(format!("{base}{path}"))
            .header("x-forwarded-for", "203.0.113.7")
            .header("authorization", format!("Bearer {TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(r.headers().get("www-authenticate").is_none());
    }
    running.handle.stop(false).await;
    // A token too short to be a machine secret stops start-up, naming the variable.
    let other = tempfile::tempdir().unwrap();
    let err = up::start(
        &UpArgs {
            host: "127.0.0.1".into(),
            port: 0,
            data_dir: other.path().to_path_buf(),
            mcp_command: "builtin:echo".into(),
        },
        &Source::from_pairs([("METRICS_TOKEN", "hunter2")]),
        gateway_common::clock::system(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("METRICS_TOKEN"), "{err}");
}
