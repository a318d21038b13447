//! One-machine mode with the service catalog: `mcp-gateway up` serving five
//! enabled services, each at `/<service>/mcp` with its own audience and
//! protected resource metadata, walked by the official MCP TypeScript SDK
//! (`tests/js/catalog_client.mjs`): one sign-in, a multi-resource token used on
//! every service, one token per service, and tokens refused at other services.
//! The servers are real: the built-in echo, stateless echo and fetch, the
//! pinned `mcp-server-time` (`.test-venv`) and `server-everything` (`tests/js`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::net::TcpListener;

use actix_web::{web, App, HttpResponse, HttpServer};
use gateway_common::config::Source;
use gateway_tests::echo_up_args;
use mcp_gateway::up;
use serde_json::json;

/// The pinned servers first, then the test's own PATH (for `node` and `python3`).
fn search_path() -> String {
    let root = gateway_testkit::repo_root();
    format!(
        "{}:{}:{}",
        root.join(".test-venv/bin").display(),
        root.join("tests/js/node_modules/.bin").display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())
    )
}

/// A page for `fetchs` to fetch, on a loopback port of its own (no robots.txt: allowed).
fn page_server() -> (String, actix_web::dev::ServerHandle) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/page", listener.local_addr().unwrap());
    let server = HttpServer::new(|| {
        App::new().route(
            "/page",
            web::get().to(|| async {
                HttpResponse::Ok()
                    .content_type("text/html; charset=utf-8")
                    .body(
                        "<html><head><title>t</title></head><body>\
                     <h1>Catalog page</h1><p>Served to <b>fetchs</b> on loopback.</p>\
                     </body></html>",
                    )
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (url, handle)
}

async fn metrics(issuer: &str) -> String {
    reqwest::get(format!("{issuer}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn gauge(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

#[actix_web::test]
async fn sdk_signs_in_once_and_calls_five_services_with_one_token_and_with_one_each() {
    gateway_tests::require_js_deps().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (page_url, page) = page_server();
    let env = Source::from_pairs([
        ("MCP_ECHO_ENABLED", "true"),
        ("MCP_ECHO_STATELESS_ENABLED", "true"),
        ("MCP_FETCHS_ENABLED", "true"),
        ("MCP_TIME_ENABLED", "true"),
        ("MCP_EVERYTHING_ENABLED", "true"),
        // Test-only: the page is on loopback.
        ("FETCH_ALLOW_PRIVATE_ADDRESSES", "true"),
        ("PATH", &search_path()),
    ]);
    let running = up::start(
        &echo_up_args(dir.path()),
        &env,
        gateway_common::clock::system(),
    )
    .await
    .unwrap();
    let (user, password) = running.created_user.clone().unwrap();
    let issuer = running.issuer.clone();
    let names: Vec<&str> = running.services.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["echo", "echo_stateless", "everything", "fetchs", "time"]
    );
    let url = |name: &str| format!("{issuer}/{}/mcp", name.replace('_', "-"));
    for (name, service_url) in &running.services {
        assert_eq!(*service_url, url(name));
    }
    // Children start on a service's first session, not at start-up.
    let before = metrics(&issuer).await;
    assert_eq!(gauge(&before, "mcp_bridge_children_spawned_total"), 0);

    let tool = |name: &str, tool: &str, args: serde_json::Value, expect: &str| json!({ "name": name, "url": url(name), "tool": tool, "args": args, "expect": expect });
    let services = json!([
        tool(
            "echo",
            "echo",
            json!({ "message": "hello echo" }),
            "hello echo"
        ),
        tool(
            "echo_stateless",
            "echo",
            json!({ "message": "hello stateless" }),
            "hello stateless"
        ),
        tool(
            "fetchs",
            "fetch",
            json!({ "url": page_url }),
            "Catalog page"
        ),
        tool(
            "time",
            "get_current_time",
            json!({ "timezone": "UTC" }),
            "UTC"
        ),
        tool(
            "everything",
            "echo",
            json!({ "message": "hello everything" }),
            "hello everything"
        ),
    ]);
    let run = gateway_tests::run_js(
        "catalog_client.mjs",
        &[
            ("SERVICES", &services.to_string()),
            ("SIGNIN_USER", &user),
            ("SIGNIN_PASSWORD", &password),
        ],
    )
    .await
    .unwrap();
    let steps: Vec<&str> = run
        .lines
        .iter()
        .filter_map(|s| s["step"].as_str())
        .collect();
    for line in &run.lines {
        eprintln!("catalog client: {line}");
    }
    assert!(
        run.success,
        "catalog client failed: {:?}\nstderr:\n{}",
        run.lines, run.stderr
    );
    assert_eq!(
        steps,
        [
            "challenges",
            "multi_resource_token",
            "per_service_tokens",
            "cross_service_refused",
            "done"
        ]
    );
    assert_eq!(run.lines[3]["refused"], 20, "{:?}", run.lines);
    // The two stdio servers ran as children (the three built-ins need none).
    let after = metrics(&issuer).await;
    assert!(gauge(&after, "mcp_bridge_children_spawned_total") >= 2);
    running.handle.stop(false).await;
    page.stop(false).await;
}

#[actix_web::test]
async fn a_server_that_is_not_installed_stops_start_up_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = Source::from_pairs([
        ("MCP_ECHO_ENABLED", "true"),
        ("MCP_EVERYTHING_ENABLED", "true"),
        ("PATH", "/nonexistent"),
    ]);
    let err = up::start(&echo_up_args(&data), &env, gateway_common::clock::system())
        .await
        .unwrap_err();
    let line = format!("{err:#}");
    assert!(!line.contains('\n'), "{line}");
    for part in [
        "MCP_EVERYTHING_ENABLED=true",
        "mcp-server-everything",
        "npm install -g @modelcontextprotocol/server-everything",
        "MCP_EVERYTHING_ENABLED=false",
    ] {
        assert!(line.contains(part), "{part:?} missing from: {line}");
    }
    assert!(
        !data.exists(),
        "nothing is written before the services are known"
    );
}

#[actix_web::test]
async fn each_service_obeys_its_own_tool_policy_section() {
    use gateway_tests::faults_support::{authorize, browser, exchange, pkce, register_public};
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    // `echo` may not echo; `echo_stateless` has no section, so it is not restricted.
    std::fs::write(
        &policy,
        "[services.echo]\ndefault = \"allow\"\n\n[[services.echo.rules]]\neffect = \"deny\"\ntools = [\"echo\"]\n",
    )
    .unwrap();
    let env = Source::from_pairs([
        ("MCP_ECHO_ENABLED", "true"),
        ("MCP_ECHO_STATELESS_ENABLED", "true"),
        ("TOOL_POLICY_FILE", policy.to_str().unwrap()),
    ]);
    let running = up::start(
        &echo_up_args(dir.path().join("data")),
        &env,
        gateway_common::clock::system(),
    )
    .await
    .unwrap();
    let (user, password) = running.created_user.clone().unwrap();
    let issuer = running.issuer.clone();
    let http = reqwest::Client::new();
    let b = browser().unwrap();
    let (client_id, _) = register_public(&http, &issuer).await.unwrap();
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "policy probe"}}});
    let mut answers = Vec::new();
    for (name, url) in &running.services {
        let (verifier, challenge) = pkce();
        let code = authorize(&b, &issuer, &client_id, (&user, &password), &challenge, url)
            .await
            .unwrap()
            .code;
        let tokens = exchange(&http, &issuer, &client_id, &code, &verifier, url)
            .await
            .unwrap();
        let token = tokens["access_token"].as_str().unwrap();
        let (status, sid, body) = gateway_testkit::mcp::post_rpc(
            &http,
            url,
            token,
            None,
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "policy", "version": "0"}}}),
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "{name}: {body}");
        let (_, _, body) =
            gateway_testkit::mcp::post_rpc(&http, url, token, sid.as_deref(), call.clone())
                .await
                .unwrap();
        answers.push((name.clone(), body));
    }
    let [(echo, denied), (stateless, allowed)] = answers.as_slice() else {
        panic!("{answers:?}");
    };
    assert_eq!(
        (echo.as_str(), stateless.as_str()),
        ("echo", "echo_stateless")
    );
    assert!(
        denied.contains("-32003") && !denied.contains("policy probe"),
        "{denied}"
    );
    assert!(allowed.contains("policy probe"), "{allowed}");
    running.handle.stop(false).await;
}
