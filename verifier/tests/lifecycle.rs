//! The `mcp-verifier` binary at the edges of its life: `--help`/`--version`
//! without configuration, and SIGTERM when idle (it exits, background tasks
//! and all; the time is printed, not asserted).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::time::Duration;

use gateway_testkit::process::{check_help_and_version, Service};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-verifier");
/// Not a timing check: only how long to wait before calling it a hang.
const HANG_GUARD: Duration = Duration::from_secs(60);

#[test]
fn help_and_version_need_no_configuration() {
    check_help_and_version(Path::new(BIN), "mcp-verifier").unwrap();
}

#[tokio::test]
async fn sigterm_when_idle_exits() {
    let dir = tempfile::tempdir().unwrap();
    // The authorization server is unreachable: the key-set and feed tasks keep
    // retrying in the background, and must not hold the exit.
    // (The discard port: nothing answers HTTP there.)
    let unreachable = "http://127.0.0.1:9";
    let mut verifier = Service::start(
        Path::new(BIN),
        &[],
        &[
            ("AUTH_ISSUER", "http://127.0.0.1:8000"),
            ("AUTHZ_URL", unreachable),
            ("VERIFIER_LISTEN", "127.0.0.1:0"),
            ("MCP_ECHO_ENABLED", "true"),
            ("MCP_ECHO_URL", "http://127.0.0.1:8000/mcp"),
            ("LOG_FORMAT", "json"),
        ],
        dir.path(),
    )
    .await
    .unwrap();
    gateway_testkit::wait_for_http(
        &format!("http://{}/health", verifier.addr),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    verifier.terminate().unwrap();
    let (status, took) = verifier.exit(HANG_GUARD).await.unwrap();
    assert!(status.success(), "{status}\n{}", verifier.output());
    println!(
        "mcp-verifier: idle exit {:.2} s after SIGTERM",
        took.as_secs_f64()
    );
}
