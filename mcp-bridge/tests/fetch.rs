//! The built-in fetch server against a local HTTP server: Markdown, robots.txt, the SSRF
//! filter on every address form, and the size and time limits.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use bytes::Bytes;
use mcp_bridge::fetch::{FetchConfig, FetchError, Fetcher};
use serde_json::{json, Value};

const PAGE: &str = "<!doctype html><html><head><title>Test page</title><style>p{color:red}</style>\
<script>document.write('hidden')</script></head><body><h1>Catalog</h1>\
<p>The gateway serves <strong>many</strong> services, see <a href=\"https://example.com/docs\">the docs</a>.</p>\
<ul><li>echo</li><li>fetch</li></ul></body></html>";

struct Site {
    addr: std::net::SocketAddr,
    /// Requests that reached the server, robots.txt included.
    hits: Arc<AtomicUsize>,
    private_hits: Arc<AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

/// A local site on port 0. `robots_status`: what /robots.txt answers.
async fn site(robots_status: u16) -> Site {
    let hits = Arc::new(AtomicUsize::new(0));
    let private_hits = Arc::new(AtomicUsize::new(0));
    let (h, p) = (hits.clone(), private_hits.clone());
    let server = HttpServer::new(move || {
        let (h, p) = (h.clone(), p.clone());
        App::new()
            .wrap_fn(move |req, srv| {
                h.fetch_add(1, Ordering::SeqCst);
                if req.path().starts_with("/private") {
                    p.fetch_add(1, Ordering::SeqCst);
                }
                actix_web::dev::Service::call(srv, req)
            })
            .route(
                "/robots.txt",
                web::get().to(move || async move {
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(robots_status).unwrap())
                        .content_type("text/plain")
                        .body("# robots for the test site\nUser-agent: ModelContextProtocol\nDisallow: /private\n")
                }),
            )
            .route(
                "/page",
                web::get().to(|| async { HttpResponse::Ok().content_type("text/html; charset=utf-8").body(PAGE) }),
            )
            .route(
                "/private/secret",
                web::get().to(|| async { HttpResponse::Ok().content_type("text/html").body("<p>secret</p>") }),
            )
            .route(
                "/moved",
                web::get().to(|| async {
                    HttpResponse::Found().insert_header(("location", "/page")).finish()
                }),
            )
            .route(
                "/data.json",
                web::get().to(|| async { HttpResponse::Ok().content_type("application/json").body("{\"a\":1}") }),
            )
            .route(
                "/big",
                web::get().to(|| async {
                    // 8 MiB in 64 KiB chunks: more than any limit a test sets.
                    let chunks = futures_util::stream::iter(
                        (0..128).map(|_| Ok::<_, std::convert::Infallible>(Bytes::from(vec![b'x'; 64 * 1024]))),
                    );
                    HttpResponse::Ok().content_type("text/plain").streaming(chunks)
                }),
            )
            .route(
                "/slow",
                web::get().to(|| async {
                    // Headers and a first chunk, then nothing, ever.
                    let first = futures_util::stream::once(async {
                        Ok::<_, std::convert::Infallible>(Bytes::from_static(b"<html><body><p>start"))
                    });
                    let never = futures_util::stream::pending::<Result<Bytes, std::convert::Infallible>>();
                    HttpResponse::Ok().content_type("text/html").streaming(futures_util::StreamExt::chain(first, never))
                }),
            )
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    Site {
        addr,
        hits,
        private_hits,
        handle,
    }
}

fn fetcher(allow_private: bool) -> Arc<Fetcher> {
    Fetcher::new(FetchConfig {
        allow_private,
        ..FetchConfig::default()
    })
}

async fn failed(f: &Fetcher, args: Value) -> String {
    match f.call(&args).await {
        Err(FetchError::Failed(m)) => m,
        other => panic!("expected a failure for {args}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_becomes_markdown_and_reads_in_windows() {
    let s = site(200).await;
    let f = fetcher(true);
    let url = format!("http://{}/page", s.addr);
    let text = f.call(&json!({ "url": url })).await.unwrap();
    assert!(text.starts_with(&format!("Contents of {url}:\n")), "{text}");
    assert!(text.contains("# Catalog"), "{text}");
    assert!(text.contains("**many**"), "{text}");
    assert!(
        text.contains("[the docs](https://example.com/docs)"),
        "{text}"
    );
    assert!(
        !text.contains("document.write") && !text.contains("color:red"),
        "{text}"
    );
    // A window and the note saying where to read on.
    let part = f
        .call(&json!({ "url": url, "max_length": 10 }))
        .await
        .unwrap();
    assert!(part.contains("start_index of 10"), "{part}");
    // Raw: the HTML as served; redirects followed; non-HTML returned with the reference's prefix.
    let raw = f.call(&json!({ "url": url, "raw": true })).await.unwrap();
    assert!(
        raw.contains("<h1>Catalog</h1>") && raw.starts_with("Content type text/html"),
        "{raw}"
    );
    let moved = f
        .call(&json!({ "url": format!("http://{}/moved", s.addr) }))
        .await
        .unwrap();
    assert!(moved.contains("# Catalog"), "{moved}");
    let data = f
        .call(&json!({ "url": format!("http://{}/data.json", s.addr) }))
        .await
        .unwrap();
    assert!(
        data.starts_with("Content type application/json cannot be simplified"),
        "{data}"
    );
    assert!(data.ends_with("{\"a\":1}"), "{data}");
    s.handle.stop(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robots_txt_is_honoured_as_the_reference_does() {
    let s = site(200).await;
    let f = fetcher(true);
    let url = format!("http://{}/private/secret", s.addr);
    let m = failed(&f, json!({ "url": url })).await;
    assert!(
        m.contains(&format!("robots.txt (http://{}/robots.txt)", s.addr)),
        "{m}"
    );
    assert!(
        m.contains("<useragent>ModelContextProtocol/1.0 (Autonomous; "),
        "{m}"
    );
    assert!(m.contains(&format!("<url>{url}</url>")), "{m}");
    assert!(m.contains("Disallow: /private"), "{m}");
    assert_eq!(
        s.private_hits.load(Ordering::SeqCst),
        0,
        "the page was never requested"
    );
    // Ignored on request, as the reference's --ignore-robots-txt.
    let ignoring = Fetcher::new(FetchConfig {
        allow_private: true,
        ignore_robots: true,
        ..FetchConfig::default()
    });
    assert!(ignoring
        .call(&json!({ "url": url }))
        .await
        .unwrap()
        .contains("secret"));
    s.handle.stop(false).await;
    // 401/403 on robots.txt: autonomous fetching assumed forbidden.
    let closed = site(403).await;
    let m = failed(&f, json!({ "url": format!("http://{}/page", closed.addr) })).await;
    assert!(
        m.contains("received status 403 so assuming that autonomous fetching is not allowed"),
        "{m}"
    );
    closed.handle.stop(false).await;
    // Another 4xx: no robots.txt, everything allowed.
    let missing = site(404).await;
    let ok = f
        .call(&json!({ "url": format!("http://{}/private/secret", missing.addr) }))
        .await
        .unwrap();
    assert!(ok.contains("secret"), "{ok}");
    missing.handle.stop(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_private_address_form_is_refused_before_a_connection() {
    let s = site(200).await;
    let f = fetcher(false);
    let port = s.addr.port();
    for url in [
        format!("http://127.0.0.1:{port}/page"),
        format!("http://127.1:{port}/page"),
        format!("http://2130706433:{port}/page"),
        format!("http://0x7f000001:{port}/page"),
        format!("http://0177.0.0.1:{port}/page"),
        format!("http://[::1]:{port}/page"),
        format!("http://[::ffff:127.0.0.1]:{port}/page"),
        format!("http://[::ffff:7f00:1]:{port}/page"),
        format!("http://0.0.0.0:{port}/page"),
        // A name resolving to loopback: refused after resolution, never dialled.
        format!("http://localhost:{port}/page"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.1.2.3/".to_string(),
        "http://[fd00::1]/".to_string(),
        "http://[fe80::1]/".to_string(),
    ] {
        let m = failed(&f, json!({ "url": url })).await;
        assert!(
            m.contains("not a public address") || m.contains("resolves to no public address"),
            "{url}: {m}"
        );
    }
    assert_eq!(
        s.hits.load(Ordering::SeqCst),
        0,
        "no request reached the local server"
    );
    s.handle.stop(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_slow_pages_are_cut_off() {
    let s = site(200).await;
    let f = Fetcher::new(FetchConfig {
        allow_private: true,
        max_bytes: 100_000,
        timeout: Duration::from_secs(2),
        ..FetchConfig::default()
    });
    let big = f
        .call(
            &json!({ "url": format!("http://{}/big", s.addr), "raw": true, "max_length": 999_999 }),
        )
        .await
        .unwrap();
    assert!(
        big.contains("cut off after 100000 bytes (FETCH_MAX_BYTES)"),
        "{}",
        &big[big.len() - 200..]
    );
    assert!(big.contains(&"x".repeat(100_000)) && !big.contains(&"x".repeat(100_001)));
    let m = failed(&f, json!({ "url": format!("http://{}/slow", s.addr) })).await;
    assert!(m.contains("FETCH_TIMEOUT"), "{m}");
    s.handle.stop(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fetch_tool_is_served_over_streamable_http_without_sessions() {
    let s = site(200).await;
    let mut cfg = common::echo();
    cfg.command = mcp_bridge::Command::BuiltinFetch(FetchConfig {
        allow_private: true,
        ..FetchConfig::default()
    });
    let b = common::start(cfg).await;
    let c = reqwest::Client::new();
    let post = |body: Value| {
        c.post(common::mcp_url(&b))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .body(body.to_string())
            .send()
    };
    let list: Value = post(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tool = &list["result"]["tools"][0];
    assert_eq!(tool["name"], json!("fetch"));
    let mut props: Vec<&String> = tool["inputSchema"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    props.sort();
    assert_eq!(props, ["max_length", "raw", "start_index", "url"]);
    assert_eq!(tool["inputSchema"]["required"], json!(["url"]));
    let call: Value = post(json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
        "params":{"name":"fetch","arguments":{"url": format!("http://{}/page", s.addr)}}}))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert!(
        call["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("# Catalog"),
        "{call}"
    );
    let refused: Value = post(json!({"jsonrpc":"2.0","id":3,"method":"tools/call",
        "params":{"name":"fetch","arguments":{"url": format!("http://{}/private/secret", s.addr)}}}))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(refused["error"]["code"], json!(-32603), "{refused}");
    assert_eq!(b.bridge.session_count(), 0);
    b.stop().await;
    s.handle.stop(false).await;
}
