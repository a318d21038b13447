//! One-machine mode, end to end: `mcp-gateway up` in-process (embedded store,
//! local user created on first run) and the official MCP TypeScript SDK client
//! starting with only the MCP URL: 401 → discovery → registration → sign-in →
//! token → tools → refresh (rotation, reuse refused) → revocation refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use gateway_common::config::Source;
use gateway_tests::echo_up_args;
use mcp_gateway::up;

#[actix_web::test]
async fn sdk_client_walks_the_whole_path_in_one_machine_mode() {
    gateway_tests::require_js_deps().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let running = up::start(
        &echo_up_args(dir.path()),
        &Source::default(),
        gateway_common::clock::system(),
    )
    .await
    .unwrap();
    let (user, password) = running
        .created_user
        .clone()
        .expect("first run creates a user");
    let mcp_url = running.mcp_url.clone();
    let t0 = std::time::Instant::now();

    let steps = gateway_tests::run_sdk_client(&mcp_url, &user, &password, &[])
        .await
        .unwrap();
    let names: Vec<&str> = steps.iter().filter_map(|s| s["step"].as_str()).collect();
    assert_eq!(
        names,
        [
            "challenge",
            "registered",
            "token",
            "tool_call",
            "refresh",
            "revoked",
            "done"
        ]
    );
    eprintln!("one-machine SDK flow took {:?}", t0.elapsed());
    running.handle.stop(false).await;
}

/// One run of `up` in its own actix system, as a separate process would be:
/// everything it spawned ends with it (and releases the store file).
fn run_once(dir: &std::path::Path) -> Option<(String, String)> {
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let running = up::start(
                &echo_up_args(&dir),
                &Source::default(),
                gateway_common::clock::system(),
            )
            .await
            .unwrap();
            let created = running.created_user.clone();
            running.handle.stop(false).await;
            created
        })
    })
    .join()
    .unwrap()
}

#[test]
fn second_run_keeps_the_user_and_creates_none() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        run_once(dir.path()).is_some(),
        "the first run creates a user"
    );
    assert!(run_once(dir.path()).is_none(), "credentials are shown once");
}

#[actix_web::test]
async fn bad_config_is_refused_before_serving() {
    let dir = tempfile::tempdir().unwrap();
    let env = Source::from_pairs([("ACCESS_TOKEN_LIFETIME", "-1")]);
    let err = up::start(
        &echo_up_args(dir.path()),
        &env,
        gateway_common::clock::system(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("ACCESS_TOKEN_LIFETIME"), "{err}");
}
