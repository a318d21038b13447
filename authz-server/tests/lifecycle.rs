//! The `mcp-authz` binary at the edges of its life: `--help`/`--version`
//! without configuration, SIGTERM when idle (it exits; the time is printed,
//! not asserted), the revocation feed ended cleanly on stop, and the loud
//! warning when nobody can sign in.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::time::Duration;

use gateway_testkit::process::{check_help_and_version, Service};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-authz");
/// Not a timing check: only how long to wait before calling it a hang.
const HANG_GUARD: Duration = Duration::from_secs(60);

async fn start(cwd: &Path, extra: &[(&str, &str)]) -> Service {
    let store = cwd.join("store/gateway.redb");
    std::fs::create_dir_all(store.parent().unwrap()).unwrap();
    let store = store.display().to_string();
    let mut env = vec![
        ("AUTH_ISSUER", "http://127.0.0.1:8000"),
        ("AUTHZ_LISTEN", "127.0.0.1:0"),
        ("MCP_ECHO_ENABLED", "true"),
        ("MCP_ECHO_URL", "http://127.0.0.1:8000/mcp"),
        ("STORE_PATH", store.as_str()),
        ("LOG_FORMAT", "json"),
    ];
    env.extend_from_slice(extra);
    Service::start(Path::new(BIN), &[], &env, cwd)
        .await
        .unwrap()
}

#[test]
fn help_and_version_need_no_configuration() {
    check_help_and_version(Path::new(BIN), "mcp-authz").unwrap();
}

#[tokio::test]
async fn sigterm_when_idle_exits_and_ends_the_feed_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut authz = start(dir.path(), &[]).await;
    let base = format!("http://{}", authz.addr);
    gateway_testkit::wait_for_http(&format!("{base}/health"), Duration::from_secs(30))
        .await
        .unwrap();
    // Nobody can sign in (no users file in ./data, no GitHub, no OIDC): said at start-up.
    assert!(
        authz.output().contains("NO SIGN-IN METHOD IS CONFIGURED"),
        "{}",
        authz.output()
    );
    // A follower of the revocation feed (loopback, no proxy: allowed without a secret).
    let mut feed = reqwest::get(format!("{base}/revocations/stream"))
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);
    let hello = feed.chunk().await.unwrap().unwrap();
    assert!(hello.starts_with(b": connected"), "{hello:?}");

    authz.terminate().unwrap();
    // The stream ends: a clean end of the chunked body, not a reset.
    let mut rest = Vec::new();
    loop {
        match feed.chunk().await {
            Ok(Some(chunk)) => rest.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => panic!("the feed was cut, not ended: {e}"),
        }
    }
    let (status, took) = authz.exit(HANG_GUARD).await.unwrap();
    assert!(status.success(), "{status}\n{}", authz.output());
    println!(
        "mcp-authz: exit {:.2} s after SIGTERM (one feed follower)",
        took.as_secs_f64()
    );

    // Idle, nothing connected.
    let mut authz = start(dir.path(), &[]).await;
    gateway_testkit::wait_for_http(
        &format!("http://{}/health", authz.addr),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    authz.terminate().unwrap();
    let (status, took) = authz.exit(HANG_GUARD).await.unwrap();
    assert!(status.success(), "{status}\n{}", authz.output());
    println!(
        "mcp-authz: idle exit {:.2} s after SIGTERM",
        took.as_secs_f64()
    );
}

#[tokio::test]
async fn the_default_users_file_is_where_add_user_writes() {
    let dir = tempfile::tempdir().unwrap();
    // Where `mcp-gateway add-user` writes without --file.
    let users = dir.path().join("data/users");
    std::fs::create_dir_all(users.parent().unwrap()).unwrap();
    let hash = mcp_authz::signin::local::hash_password("a long enough password").unwrap();
    std::fs::write(&users, format!("alice:{hash}\n")).unwrap();
    let authz = start(dir.path(), &[]).await;
    gateway_testkit::wait_for_http(
        &format!("http://{}/health", authz.addr),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let out = authz.output();
    assert!(
        !out.contains("NO SIGN-IN METHOD") && !out.contains("NO USER CAN SIGN IN"),
        "{out}"
    );
    // (It holds the embedded store.)
    drop(authz);

    // Named but empty: warned about too.
    let empty = dir.path().join("empty-users");
    std::fs::write(&empty, "").unwrap();
    let empty = empty.display().to_string();
    let authz = start(dir.path(), &[("LOCAL_USERS_FILE", empty.as_str())]).await;
    let out = authz.output();
    assert!(out.contains("NO USER CAN SIGN IN YET"), "{out}");
}

/// Audit lines in the service log (`LOG_FORMAT=json`): the record itself, one JSON
/// object with the log's timestamp, level and target, not a string inside a log
/// event; and `RUST_LOG=…,audit=off` leaves them out, as any tracing target.
#[tokio::test]
async fn audit_lines_in_the_service_log_are_the_records_themselves() {
    let register = |addr: std::net::SocketAddr| async move {
        let body = serde_json::json!({
            "client_name": "audited",
            "redirect_uris": [gateway_testkit::oauth::LOOPBACK_REDIRECT],
            "token_endpoint_auth_method": "none",
        });
        let base = format!("http://{addr}");
        gateway_testkit::wait_for_http(&format!("{base}/health"), Duration::from_secs(30))
            .await
            .unwrap();
        let r = gateway_testkit::oauth::register_raw(&reqwest::Client::new(), &base, &body)
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: serde_json::Value = r.json().await.unwrap();
        v["client_id"].as_str().unwrap().to_string()
    };
    let audit_lines = |out: &str| -> Vec<serde_json::Value> {
        out.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "audit")
            .collect()
    };

    let dir = tempfile::tempdir().unwrap();
    let mut authz = start(dir.path(), &[("RUST_LOG", "info")]).await;
    let client_id = register(authz.addr).await;
    authz.terminate().unwrap();
    let (status, _) = authz.exit(HANG_GUARD).await.unwrap();
    assert!(status.success(), "{status}\n{}", authz.output());
    let out = authz.output();
    let lines = audit_lines(&out);
    let registered = lines
        .iter()
        .find(|v| v["event"] == "client_registered")
        .unwrap_or_else(|| panic!("no client_registered line in\n{out}"));
    assert_eq!(registered["client_id"], client_id.as_str());
    assert_eq!(registered["client_name"], "audited");
    assert_eq!(
        (
            &registered["level"],
            &registered["source"],
            &registered["via"]
        ),
        (&"INFO".into(), &"authz".into(), &"dcr".into())
    );
    assert!(registered["ts"].as_u64().is_some());
    assert!(registered["timestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    let mut authz = start(dir.path(), &[("RUST_LOG", "info,audit=off")]).await;
    register(authz.addr).await;
    authz.terminate().unwrap();
    let (status, _) = authz.exit(HANG_GUARD).await.unwrap();
    assert!(status.success(), "{status}\n{}", authz.output());
    let out = authz.output();
    assert!(audit_lines(&out).is_empty(), "{out}");
    // The rest of the log is still there.
    assert!(out.contains("\"level\":\"INFO\""), "{out}");
}
