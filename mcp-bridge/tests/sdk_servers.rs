//! The official TypeScript SDK client through the bridge around real stdio MCP servers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly
mod common;

use std::time::{Duration, Instant};

use mcp_bridge::config::{Command, ProcessModel};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_server_tools_resources_prompts_progress_sampling_cancel_end() {
    let s = common::start(common::everything()).await;
    let out = common::scenarios(&common::mcp_url(&s), &["everything"], json!({}), |_| {}).await;
    assert_eq!(out[0]["progress"], json!(4));
    // Session ended by DELETE: its child is gone too.
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.bridge.children_alive() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.bridge.children_alive(), 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_killed_mid_request_fails_the_waiter_and_ends_the_session() {
    let s = common::start(common::everything()).await;
    let bridge = s.bridge.clone();
    let out = common::scenarios(&common::mcp_url(&s), &["kill"], json!({}), |mark| {
        assert_eq!(mark, "started");
        let pids = bridge.child_pids();
        assert_eq!(pids.len(), 1, "one child per session");
        kill(Pid::from_raw(pids[0] as i32), Signal::SIGKILL).expect("kill the child");
    })
    .await;
    let waited = out[0]["waited_ms"].as_u64().unwrap();
    assert!(
        waited < 2000,
        "the waiter learned of the death after {waited} ms"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_child_multiplexes_sessions_by_rewriting_ids() {
    let mut cfg = common::everything();
    cfg.process_model = ProcessModel::Shared;
    let s = common::start(cfg).await;
    let out = common::scenarios(&common::mcp_url(&s), &["concurrent"], json!({}), |_| {}).await;
    assert_eq!(out[0]["calls"], json!(12));
    assert_eq!(
        s.bridge.children_spawned(),
        1,
        "one child served four sessions"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_filesystem_and_thinking_servers() {
    let dir = tempfile::tempdir().unwrap();
    let mut memory = common::node_server("server-memory", &[]);
    memory.child_env.push((
        "MEMORY_FILE_PATH".into(),
        dir.path().join("memory.jsonl").display().to_string(),
    ));
    let fs_dir = dir.path().join("files");
    std::fs::create_dir(&fs_dir).unwrap();
    let fs_dir = fs_dir.canonicalize().unwrap();
    let fs = common::node_server("server-filesystem", &[fs_dir.to_str().unwrap()]);
    let thinking = common::node_server("server-sequential-thinking", &[]);
    let (a, b, c) = tokio::join!(
        common::start(memory),
        common::start(fs),
        common::start(thinking)
    );
    let extra = json!({ "dir": fs_dir });
    let (ua, ub, uc) = (
        common::mcp_url(&a),
        common::mcp_url(&b),
        common::mcp_url(&c),
    );
    let (ra, rb, rc) = tokio::join!(
        common::scenarios(&ua, &["memory"], extra.clone(), |_| {}),
        common::scenarios(&ub, &["filesystem"], extra.clone(), |_| {}),
        common::scenarios(&uc, &["thinking"], extra.clone(), |_| {}),
    );
    assert!(ra.len() + rb.len() + rc.len() == 3);
    assert_eq!(
        std::fs::read_to_string(fs_dir.join("note.txt")).unwrap(),
        "bridged"
    );
    for s in [a, b, c] {
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_time_and_fetch_servers() {
    let venv = |name: &str| gateway_testkit::venv_bin(name);
    let mut time = common::echo();
    time.command = Command::Exec {
        program: venv("mcp-server-time"),
        args: vec!["--local-timezone".into(), "UTC".into()],
    };
    time.child_env = vec![("PATH".into(), common::search_path())];
    let mut fetch = common::echo();
    fetch.command = Command::Exec {
        program: venv("mcp-server-fetch"),
        args: vec!["--ignore-robots-txt".into(), "--allow-private-ips".into()],
    };
    fetch.child_env = vec![("PATH".into(), common::search_path())];
    let (a, b) = tokio::join!(common::start(time), common::start(fetch));
    let (ua, ub) = (common::mcp_url(&a), common::mcp_url(&b));
    let (ra, rb) = tokio::join!(
        common::scenarios(&ua, &["time"], json!({}), |_| {}),
        common::scenarios(&ub, &["fetch"], json!({}), |_| {}),
    );
    assert_eq!(ra.len() + rb.len(), 2);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_polling_closes_a_slow_calls_stream_and_the_sdk_resumes_to_its_result() {
    let mut cfg = common::everything();
    // Closed right after the priming event: the slow call's answer can only arrive on a
    // resumed GET, so the test cannot pass by a race.
    cfg.sse_close_after = Some(Duration::ZERO);
    cfg.sse_retry_ms = Some(100);
    let s = common::start(cfg).await;
    let out = common::scenarios(
        &common::mcp_url(&s),
        &["polling"],
        json!({ "retry_ms": 100 }),
        |_| {},
    )
    .await;
    assert!(out[0]["resumes"].as_u64().unwrap() >= 1, "{out:?}");
    s.stop().await;
}
