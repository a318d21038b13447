//! The Streamable HTTP contract checked with raw HTTP: every status code the transport
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly
//! specs name, sessions, versions, batches, origins, CORS, stateless 2026-07-28 requests,
//! resumption, timeouts, limits and the health endpoints.
mod common;

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

const BOTH: &str = "application/json, text/event-stream";

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
    /// JSON-RPC messages in an SSE body.
    fn events(&self) -> Vec<Value> {
        sse_messages(&self.body)
    }
    fn session(&self) -> String {
        self.headers["mcp-session-id"].to_str().unwrap().to_string()
    }
}

fn sse_messages(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

async fn send(
    c: &Client,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Resp {
    let mut rb = c.request(method, url);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    if let Some(b) = body {
        rb = rb.body(b.to_string());
    }
    let r = rb.send().await.unwrap();
    Resp {
        status: r.status(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap(),
    }
}

fn init_body(version: &str) -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion": version, "capabilities": {}, "clientInfo": {"name":"raw","version":"1"}}})
}

async fn post(c: &Client, url: &str, sid: Option<&str>, accept: &str, body: Value) -> Resp {
    let mut h = vec![("content-type", "application/json"), ("accept", accept)];
    if let Some(s) = sid {
        h.push(("mcp-session-id", s));
    }
    send(c, Method::POST, url, &h, Some(body)).await
}

async fn initialize(c: &Client, url: &str, version: &str) -> String {
    let r = post(c, url, None, "application/json", init_body(version)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["result"]["protocolVersion"], json!(version));
    let sid = r.session();
    let n = post(
        c,
        url,
        Some(&sid),
        BOTH,
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .await;
    assert_eq!(n.status, StatusCode::ACCEPTED);
    assert!(n.body.is_empty());
    sid
}

fn tools_list(id: i64) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/list"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_statuses_and_media_types() {
    let s = common::start(common::echo()).await;
    let url = common::mcp_url(&s);
    let c = Client::new();
    let sid = initialize(&c, &url, "2025-06-18").await;

    // JSON or SSE per Accept.
    let j = post(&c, &url, Some(&sid), "application/json", tools_list(2)).await;
    assert_eq!(j.status, StatusCode::OK);
    assert!(j.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(j.json()["id"], json!(2));
    assert_eq!(j.json()["result"]["tools"].as_array().unwrap().len(), 3);
    let e = post(&c, &url, Some(&sid), BOTH, tools_list(3)).await;
    assert!(e.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(e.headers["x-accel-buffering"], "no");
    assert_eq!(e.events().last().unwrap()["id"], json!(3));

    // 406, 415, 400 (no session), 404 (unknown session).
    assert_eq!(
        post(&c, &url, Some(&sid), "text/html", tools_list(4))
            .await
            .status,
        StatusCode::NOT_ACCEPTABLE
    );
    let wrong_type = send(
        &c,
        Method::POST,
        &url,
        &[
            ("content-type", "text/plain"),
            ("accept", BOTH),
            ("mcp-session-id", &sid),
        ],
        Some(tools_list(5)),
    )
    .await;
    assert_eq!(wrong_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let missing = post(&c, &url, None, BOTH, tools_list(6)).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.json()["error"]["code"], json!(-32600));
    let unknown = post(&c, &url, Some("nope"), BOTH, tools_list(7)).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json()["error"]["code"], json!(-32001));

    // Parse error and invalid request: 400 with the JSON-RPC codes.
    let garbage = send(
        &c,
        Method::POST,
        &url,
        &[
            ("content-type", "application/json"),
            ("accept", BOTH),
            ("mcp-session-id", &sid),
        ],
        None,
    )
    .await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
    assert_eq!(garbage.json()["error"]["code"], json!(-32700));
    let invalid = post(&c, &url, Some(&sid), BOTH, json!({"jsonrpc":"2.0","id":{}})).await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    assert_eq!(invalid.json()["error"]["code"], json!(-32600));

    // A response (to nothing) and a notification: 202, no body.
    let resp = post(
        &c,
        &url,
        Some(&sid),
        BOTH,
        json!({"jsonrpc":"2.0","id":"x","result":{}}),
    )
    .await;
    assert_eq!(resp.status, StatusCode::ACCEPTED);

    // Unknown methods are relayed; the server answers.
    let unknown_method = post(
        &c,
        &url,
        Some(&sid),
        "application/json",
        json!({"jsonrpc":"2.0","id":8,"method":"server/discover"}),
    )
    .await;
    assert_eq!(unknown_method.status, StatusCode::OK);
    assert_eq!(unknown_method.json()["error"]["code"], json!(-32601));

    // Protocol version header: unsupported → 400.
    let bad_version = send(
        &c,
        Method::POST,
        &url,
        &[
            ("content-type", "application/json"),
            ("accept", BOTH),
            ("mcp-session-id", &sid),
            ("mcp-protocol-version", "1999-01-01"),
        ],
        Some(tools_list(9)),
    )
    .await;
    assert_eq!(bad_version.status, StatusCode::BAD_REQUEST);
    assert!(bad_version.json()["error"]["data"]["supported"].is_array());

    // Batches only in 2025-03-26.
    let batch = json!([tools_list(10), {"jsonrpc":"2.0","id":11,"method":"ping"}]);
    let refused = post(&c, &url, Some(&sid), "application/json", batch.clone()).await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "negotiated 2025-06-18 allows no batch"
    );
    let old = initialize(&c, &url, "2025-03-26").await;
    let ok = post(&c, &url, Some(&old), "application/json", batch.clone()).await;
    assert_eq!(ok.status, StatusCode::OK);
    let ids: Vec<Value> = ok
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(10), json!(11)]);
    let sse_batch = post(&c, &url, Some(&old), BOTH, batch).await;
    assert_eq!(sse_batch.events().len(), 2);

    // GET stream: 400 without session, 406 without SSE, 200 with; other verbs 405.
    let g = send(
        &c,
        Method::GET,
        &url,
        &[("accept", "text/event-stream")],
        None,
    )
    .await;
    assert_eq!(g.status, StatusCode::BAD_REQUEST);
    let g = send(
        &c,
        Method::GET,
        &url,
        &[("accept", "application/json"), ("mcp-session-id", &sid)],
        None,
    )
    .await;
    assert_eq!(g.status, StatusCode::NOT_ACCEPTABLE);
    let put = send(&c, Method::PUT, &url, &[("mcp-session-id", &sid)], None).await;
    assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(put.headers.contains_key("allow"));

    // DELETE ends the session: then 404 everywhere.
    let d = send(&c, Method::DELETE, &url, &[("mcp-session-id", &sid)], None).await;
    assert_eq!(d.status, StatusCode::OK);
    assert_eq!(
        post(&c, &url, Some(&sid), BOTH, tools_list(12))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let d = send(&c, Method::DELETE, &url, &[("mcp-session-id", &sid)], None).await;
    assert_eq!(d.status, StatusCode::NOT_FOUND);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_stream_can_be_switched_off_and_messages_are_bounded() {
    let mut cfg = common::echo();
    cfg.get_stream = false;
    cfg.max_message_bytes = 1024;
    cfg.max_sessions = 1;
    let s = common::start(cfg).await;
    let url = common::mcp_url(&s);
    let c = Client::new();
    let sid = initialize(&c, &url, "2025-06-18").await;
    let g = send(
        &c,
        Method::GET,
        &url,
        &[("accept", "text/event-stream"), ("mcp-session-id", &sid)],
        None,
    )
    .await;
    assert_eq!(g.status, StatusCode::METHOD_NOT_ALLOWED);
    let big = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x".repeat(4096)}}});
    let r = post(&c, &url, Some(&sid), BOTH, big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // One session allowed: the second initialize is refused with 503.
    let second = post(&c, &url, None, "application/json", init_body("2025-06-18")).await;
    assert_eq!(second.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(second.json()["error"]["code"], json!(-32000));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_host_and_cors() {
    let mut cfg = common::echo();
    cfg.allowed_origins = vec!["https://app.example.com".into()];
    let s = common::start(cfg).await;
    let url = common::mcp_url(&s);
    let c = Client::new();
    let evil_origin = send(
        &c,
        Method::POST,
        &url,
        &[
            ("content-type", "application/json"),
            ("accept", BOTH),
            ("origin", "https://evil.example"),
        ],
        Some(init_body("2025-06-18")),
    )
    .await;
    assert_eq!(evil_origin.status, StatusCode::FORBIDDEN);
    assert_eq!(evil_origin.json()["id"], Value::Null);
    // DNS rebinding: a foreign Host reaching a loopback-bound bridge.
    let port = s.addr.port().to_string();
    let evil_host = send(
        &c,
        Method::POST,
        &url,
        &[
            ("content-type", "application/json"),
            ("accept", BOTH),
            ("host", &format!("evil.example:{port}")),
        ],
        Some(init_body("2025-06-18")),
    )
    .await;
    assert_eq!(evil_host.status, StatusCode::FORBIDDEN);
    let good = send(
        &c,
        Method::POST,
        &url,
        &[
            ("content-type", "application/json"),
            ("accept", "application/json"),
            ("origin", "https://app.example.com"),
        ],
        Some(init_body("2025-06-18")),
    )
    .await;
    assert_eq!(good.status, StatusCode::OK);
    assert_eq!(
        good.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    let expose = good.headers["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for h in ["mcp-session-id", "mcp-protocol-version", "www-authenticate"] {
        assert!(expose.contains(h), "{expose}");
    }
    let pre = send(
        &c,
        Method::OPTIONS,
        &url,
        &[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "content-type, mcp-session-id",
            ),
        ],
        None,
    )
    .await;
    assert_eq!(pre.status, StatusCode::NO_CONTENT);
    assert!(pre.headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("mcp-session-id"));
    assert!(pre.headers["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("DELETE"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_2026_requests_check_mirrored_headers() {
    let s = common::start(common::echo()).await;
    let url = common::mcp_url(&s);
    let c = Client::new();
    let call = json!({"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"echo","arguments":{"message":"stateless"},
        "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}});
    let base = [
        ("content-type", "application/json"),
        ("accept", BOTH),
        ("mcp-protocol-version", "2026-07-28"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut h: Vec<(&str, &str)> = base.to_vec();
        h.extend_from_slice(extra);
        h
    };
    let ok = send(
        &c,
        Method::POST,
        &url,
        &with(&[("mcp-method", "tools/call"), ("mcp-name", "echo")]),
        Some(call.clone()),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert!(
        !ok.headers.contains_key("mcp-session-id"),
        "no sessions in 2026-07-28"
    );
    assert_eq!(
        ok.json()["result"]["content"][0]["text"],
        json!("stateless")
    );
    assert_eq!(ok.json()["id"], json!("a"));
    let b64 = send(
        &c,
        Method::POST,
        &url,
        &with(&[
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?ZWNobw==?="),
        ]),
        Some(call.clone()),
    )
    .await;
    assert_eq!(b64.status, StatusCode::OK);
    for bad in [
        with(&[("mcp-method", "tools/call"), ("mcp-name", "whoami")]),
        with(&[("mcp-method", "tools/list"), ("mcp-name", "echo")]),
        with(&[("mcp-name", "echo")]),
        with(&[("mcp-method", "tools/call")]),
    ] {
        let r = send(&c, Method::POST, &url, &bad, Some(call.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert_eq!(r.json()["error"]["code"], json!(-32020));
        assert_eq!(r.json()["id"], json!("a"));
    }
    let unknown = send(
        &c,
        Method::POST,
        &url,
        &with(&[("mcp-method", "server/discover")]),
        Some(json!({"jsonrpc":"2.0","id":2,"method":"server/discover"})),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json()["error"]["code"], json!(-32601));
    let get = send(
        &c,
        Method::GET,
        &url,
        &[
            ("accept", "text/event-stream"),
            ("mcp-protocol-version", "2026-07-28"),
        ],
        None,
    )
    .await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    s.stop().await;
}

/// Reads an SSE response until `until` returns true for a message.
async fn read_until(
    resp: &mut reqwest::Response,
    buf: &mut String,
    until: impl Fn(&Value) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if sse_messages(buf).iter().any(&until) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out; got {buf}");
        match tokio::time::timeout(Duration::from_secs(20), resp.chunk()).await {
            Ok(Ok(Some(chunk))) => buf.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("stream ended early: {other:?}; got {buf}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stream_resumes_with_last_event_id() {
    let s = common::start(common::everything()).await;
    let url = common::mcp_url(&s);
    let c = Client::new();
    let sid = initialize(&c, &url, "2025-11-25").await;
    let call = json!({"jsonrpc":"2.0","id":"long","method":"tools/call","params":{
        "name":"trigger-long-running-operation","arguments":{"duration":1.5,"steps":3},
        "_meta":{"progressToken":"tok"}}});
    let mut resp = c
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", BOTH)
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "2025-11-25")
        .body(call.to_string())
        .send()
        .await
        .unwrap();
    let mut buf = String::new();
    read_until(&mut resp, &mut buf, |m| {
        m["method"] == "notifications/progress"
    })
    .await;
    // The client's own token comes back, not the bridge's rewritten one.
    let first = sse_messages(&buf);
    let progress = first
        .iter()
        .find(|m| m["method"] == "notifications/progress")
        .unwrap();
    assert_eq!(progress["params"]["progressToken"], json!("tok"), "{buf}");
    let last_id = buf
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .next_back()
        .unwrap()
        .to_string();
    assert!(
        buf.starts_with("id: "),
        "2025-11-25 streams start with a priming event: {buf}"
    );
    drop(resp);
    let mut again = c
        .get(&url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .header("last-event-id", &last_id)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let mut rest = String::new();
    read_until(&mut again, &mut rest, |m| m["id"] == json!("long")).await;
    let msgs = sse_messages(&rest);
    let progress = msgs
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .count();
    assert_eq!(
        progress, 2,
        "only the events after {last_id} are replayed: {rest}"
    );
    assert!(msgs.last().unwrap()["result"].is_object());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_requests_reach_the_get_stream_when_the_post_is_json() {
    let s = common::start(common::everything()).await;
    let url = common::mcp_url(&s);
    let c = Client::new();
    let r = post(
        &c,
        &url,
        None,
        "application/json",
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",
            "capabilities":{"sampling":{}},"clientInfo":{"name":"raw","version":"1"}}}),
    )
    .await;
    let sid = r.session();
    post(
        &c,
        &url,
        Some(&sid),
        BOTH,
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
    )
    .await;
    let mut get = c
        .get(&url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    let c2 = c.clone();
    let (url2, sid2) = (url.clone(), sid.clone());
    let call = tokio::spawn(async move {
        post(&c2, &url2, Some(&sid2), "application/json", json!({"jsonrpc":"2.0","id":"s","method":"tools/call",
            "params":{"name":"trigger-sampling-request","arguments":{"prompt":"hi","maxTokens":5}}}))
        .await
    });
    let mut buf = String::new();
    read_until(&mut get, &mut buf, |m| {
        m["method"] == "sampling/createMessage"
    })
    .await;
    let req = sse_messages(&buf)
        .into_iter()
        .find(|m| m["method"] == "sampling/createMessage")
        .unwrap();
    let answer = json!({"jsonrpc":"2.0","id":req["id"],"result":{"model":"m","role":"assistant",
        "content":{"type":"text","text":"from the GET stream"}}});
    let a = post(&c, &url, Some(&sid), BOTH, answer).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    let done = call.await.unwrap();
    assert_eq!(done.status, StatusCode::OK);
    assert!(done.body.contains("from the GET stream"), "{}", done.body);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_timeout_and_idle_timeout() {
    let mut cfg = common::everything();
    // Long enough for `initialize` (which starts the Node server) on a busy machine,
    // far shorter than the 120-second operation below.
    cfg.request_timeout = Some(Duration::from_secs(10));
    cfg.idle_timeout = Some(Duration::from_secs(2));
    let s = common::start(cfg).await;
    let url = common::mcp_url(&s);
    let c = Client::new();
    let sid = initialize(&c, &url, "2025-06-18").await;
    let r = post(
        &c,
        &url,
        Some(&sid),
        "application/json",
        json!({"jsonrpc":"2.0","id":3,"method":"tools/call",
        "params":{"name":"trigger-long-running-operation","arguments":{"duration":120,"steps":2}}}),
    )
    .await;
    // The bridge's timeout error, not the tool's result (which would be a `result`), nor
    // "session ended": the idle timeout (2 s) spares a session whose request is waiting.
    assert_eq!(r.json()["error"]["code"], json!(-32002), "{}", r.body);
    assert_eq!(r.json()["id"], json!(3));
    // Left alone, the session ends and its child with it (polled without touching it).
    let deadline = Instant::now() + Duration::from_secs(15);
    while s.bridge.session_count() > 0 {
        assert!(Instant::now() < deadline, "idle session never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let st = post(&c, &url, Some(&sid), "application/json", tools_list(4))
        .await
        .status;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.bridge.children_alive() > 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_metrics_and_legacy_endpoint_event() {
    let s = common::start(common::everything()).await;
    let base = format!("http://{}", s.addr);
    let c = Client::new();
    assert_eq!(
        c.get(format!("{base}/health"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        c.get(format!("{base}/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let m = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("mcp_bridge_children_spawned_total 1"),
        "the readiness probe started one child: {m}"
    );
    let mut sse = c
        .get(format!("{base}/sse"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let chunk = sse.chunk().await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&chunk);
    assert!(
        text.starts_with("event: endpoint\ndata: /messages?session_id="),
        "{text}"
    );
    let unknown = c
        .post(format!("{base}/messages?session_id=nope"))
        .header("content-type", "application/json")
        .body(tools_list(1).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    s.stop().await;

    // A command that cannot start: not ready.
    let mut broken = common::echo();
    broken.command = mcp_bridge::Command::Exec {
        program: "/bin/false".into(),
        args: vec![],
    };
    let b = common::start(broken).await;
    let r = c
        .get(format!("http://{}/ready", b.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_children_and_stateless_progress_streams() {
    let mut cfg = common::everything();
    cfg.process_model = mcp_bridge::ProcessModel::User;
    let s = common::start(cfg).await;
    let url = common::mcp_url(&s);
    let c = Client::new();
    let open_as = |user: &'static str| {
        let c = c.clone();
        let url = url.clone();
        async move {
            let r = send(
                &c,
                Method::POST,
                &url,
                &[
                    ("content-type", "application/json"),
                    ("accept", "application/json"),
                    ("x-user-id", user),
                ],
                Some(init_body("2025-06-18")),
            )
            .await;
            assert_eq!(r.status, StatusCode::OK);
            r.session()
        }
    };
    let a1 = open_as("alice").await;
    let _a2 = open_as("alice").await;
    let _b1 = open_as("bob").await;
    assert_eq!(s.bridge.children_spawned(), 2, "one child per user");
    // Ending one of alice's sessions leaves her child to the other.
    // A session id is no credential: bob (or anonymous) presenting alice's
    // session id is told it does not exist, and her session lives on.
    for who in [
        &[("mcp-session-id", a1.as_str()), ("x-user-id", "bob")][..],
        &[("mcp-session-id", a1.as_str())][..],
    ] {
        let stolen = send(&c, Method::DELETE, &url, who, None).await;
        assert_eq!(stolen.status, StatusCode::NOT_FOUND);
        let mut headers = who.to_vec();
        headers.extend([
            ("content-type", "application/json"),
            ("accept", "application/json"),
        ]);
        let stolen = send(
            &c,
            Method::POST,
            &url,
            &headers,
            Some(json!({"jsonrpc":"2.0","id":3,"method":"tools/list"})),
        )
        .await;
        assert_eq!(stolen.status, StatusCode::NOT_FOUND);
    }
    let d = send(
        &c,
        Method::DELETE,
        &url,
        &[("mcp-session-id", &a1), ("x-user-id", "alice")],
        None,
    )
    .await;
    assert_eq!(d.status, StatusCode::OK);
    assert_eq!(s.bridge.children_alive(), 2);

    // 2026-07-28 with a progress token: progress then the result on the POST's stream.
    let call = json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{
        "name":"trigger-long-running-operation","arguments":{"duration":0.4,"steps":2},
        "_meta":{"progressToken":"p","io.modelcontextprotocol/protocolVersion":"2026-07-28"}}});
    let r = send(
        &c,
        Method::POST,
        &url,
        &[
            ("content-type", "application/json"),
            ("accept", BOTH),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "trigger-long-running-operation"),
            ("x-user-id", "alice"),
        ],
        Some(call),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let msgs = r.events();
    let progress: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 2, "{}", r.body);
    assert!(progress
        .iter()
        .all(|p| p["params"]["progressToken"] == json!("p")));
    assert_eq!(msgs.last().unwrap()["id"], json!(7));
    assert_eq!(
        s.bridge.children_spawned(),
        2,
        "alice's stateless requests use alice's child"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stateless_echo_answers_every_revision_without_a_session() {
    let mut cfg = common::echo();
    cfg.command = mcp_bridge::Command::BuiltinEchoStateless;
    let s = common::start(cfg).await;
    let url = common::mcp_url(&s);
    let c = Client::new();
    // 2025-06-18: initialize issues no session, and calls need none.
    let init = post(&c, &url, None, BOTH, init_body("2025-06-18")).await;
    assert_eq!(init.status, StatusCode::OK, "{}", init.body);
    assert!(!init.headers.contains_key("mcp-session-id"));
    assert_eq!(
        init.json()["result"]["protocolVersion"],
        json!("2025-06-18")
    );
    assert_eq!(
        init.json()["result"]["serverInfo"]["name"],
        json!("mcp-bridge-echo-stateless")
    );
    let v0618 = [
        ("content-type", "application/json"),
        ("accept", BOTH),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    let note = send(
        &c,
        Method::POST,
        &url,
        &v0618,
        Some(json!({"jsonrpc":"2.0","method":"notifications/initialized"})),
    )
    .await;
    assert_eq!(note.status, StatusCode::ACCEPTED);
    let call = send(
        &c,
        Method::POST,
        &url,
        &v0618,
        Some(json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"no session"}}})),
    )
    .await;
    assert_eq!(call.status, StatusCode::OK, "{}", call.body);
    assert_eq!(
        call.json()["result"]["content"][0]["text"],
        json!("no session")
    );
    let who = send(
        &c,
        Method::POST,
        &url,
        &[
            ("content-type", "application/json"),
            ("accept", "text/event-stream"),
            ("x-user-id", "u-9"),
        ],
        Some(json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"whoami","arguments":{}}})),
    )
    .await;
    assert_eq!(who.status, StatusCode::OK);
    assert_eq!(
        who.events()[0]["result"]["structuredContent"]["user_id"],
        json!("u-9")
    );
    // 2026-07-28: discovery and calls, mirrored headers checked; no GET stream, no DELETE.
    let v2026 = [
        ("content-type", "application/json"),
        ("accept", BOTH),
        ("mcp-protocol-version", "2026-07-28"),
    ];
    let mut h = v2026.to_vec();
    h.push(("mcp-method", "server/discover"));
    let d = send(
        &c,
        Method::POST,
        &url,
        &h,
        Some(json!({"jsonrpc":"2.0","id":4,"method":"server/discover"})),
    )
    .await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.body);
    assert!(d.json()["result"]["supportedVersions"]
        .as_array()
        .unwrap()
        .contains(&json!("2026-07-28")));
    let body = json!({"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"message":"2026"}}});
    let mut h = v2026.to_vec();
    h.extend([("mcp-method", "tools/call"), ("mcp-name", "echo")]);
    let ok = send(&c, Method::POST, &url, &h, Some(body.clone())).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.json()["result"]["content"][0]["text"], json!("2026"));
    let mut h = v2026.to_vec();
    h.extend([("mcp-method", "tools/call"), ("mcp-name", "whoami")]);
    let mismatch = send(&c, Method::POST, &url, &h, Some(body)).await;
    assert_eq!(
        mismatch.status,
        StatusCode::BAD_REQUEST,
        "{}",
        mismatch.body
    );
    let mut h = v2026.to_vec();
    h.push(("mcp-method", "nope/nope"));
    let unknown = send(
        &c,
        Method::POST,
        &url,
        &h,
        Some(json!({"jsonrpc":"2.0","id":6,"method":"nope/nope"})),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json()["error"]["code"], json!(-32601));
    let get = send(
        &c,
        Method::GET,
        &url,
        &[("accept", "text/event-stream")],
        None,
    )
    .await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    let del = send(&c, Method::DELETE, &url, &[], None).await;
    assert_eq!(del.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(s.bridge.session_count(), 0, "no session was ever made");
    s.stop().await;
}
