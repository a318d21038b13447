//! The `mcp-connect` binary's command line, without a remote: help and version on
//! stdout, bad arguments refused with exit 64 and nothing on stdout (stdout is the
//! MCP channel). The flows themselves: tests/tests/connect.rs, connect_variants.rs.

use std::process::Command;

fn mcp_connect(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mcp-connect"))
        .args(args)
        .env_clear()
        .output()
        .expect("mcp-connect runs")
}

#[test]
fn help_and_version_go_to_stdout() {
    let out = mcp_connect(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        concat!("mcp-connect ", env!("CARGO_PKG_VERSION"))
    );
    let out = mcp_connect(&["--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--client-credentials"));
}

#[test]
fn bad_arguments_exit_64_with_the_usage_on_stderr() {
    for args in [
        &[][..],
        &["ftp://x/mcp"],
        &["https://x/mcp", "--client-secret", "s"],
    ] {
        let out = mcp_connect(args);
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("mcp-connect: ") && err.contains("usage: mcp-connect"),
            "{err}"
        );
    }
}
