//! `mcp-gateway`: `--help`/`--version` without configuration, and `up`
//! stopped with SIGTERM when idle (it exits, its own verifier's feed
//! connection and the bridged server included; the time is printed, not
//! asserted).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::time::Duration;

use gateway_testkit::process::{check_help_and_version, Service};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-gateway");
/// Not a timing check: only how long to wait before calling it a hang.
const HANG_GUARD: Duration = Duration::from_secs(60);

#[test]
fn help_and_version_need_no_configuration() {
    check_help_and_version(Path::new(BIN), "mcp-gateway").unwrap();
}

#[tokio::test]
async fn up_exits_on_sigterm_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let mut up = Service::start(
        Path::new(BIN),
        &["up", "--port", "0", "--data-dir", &data],
        &[],
        dir.path(),
    )
    .await
    .unwrap();
    // It printed the URL once ready.
    gateway_testkit::wait_for_http(
        &format!("http://{}/health", up.addr),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    up.terminate().unwrap();
    let (status, took) = up.exit(HANG_GUARD).await.unwrap();
    assert!(status.success(), "{status}\n{}", up.output());
    println!(
        "mcp-gateway up: idle exit {:.2} s after SIGTERM",
        took.as_secs_f64()
    );
}
