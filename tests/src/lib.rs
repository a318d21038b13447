//! Cross-service tests live in `tests/tests/`; this library holds what they share.

pub mod abuse_support;
pub mod client_document;
pub mod connect_support;
pub mod faults_support;
pub mod proxy;
pub mod stack;
pub mod variant_server;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};

/// Runs `tests/js/e2e_client.mjs` (the MCP TypeScript SDK walking the whole
/// path) against `mcp_url`, signing in as `user`. Returns the JSON step lines.
pub async fn run_sdk_client(
    mcp_url: &str,
    user: &str,
    password: &str,
    extra_env: &[(&str, &str)],
) -> anyhow::Result<Vec<serde_json::Value>> {
    let js = gateway_testkit::js_dir();
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(js.join("e2e_client.mjs"))
        .current_dir(&js)
        .env("MCP_URL", mcp_url)
        .env("SIGNIN_USER", user)
        .env("SIGNIN_PASSWORD", password)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .context("the SDK client did not finish within 120 s")??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let steps: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    if !out.status.success() || steps.last().and_then(|s| s["step"].as_str()) != Some("done") {
        bail!(
            "SDK client failed ({}):\n{}\nstderr:\n{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(steps)
}

/// Whether the pinned npm packages are installed (scripts/test.sh does it).
pub fn require_js_deps() -> anyhow::Result<()> {
    let sdk = gateway_testkit::js_dir().join("node_modules/@modelcontextprotocol/sdk/package.json");
    if !Path::new(&sdk).exists() {
        bail!("tests/js/node_modules is missing: run `bash scripts/test.sh` (it runs npm ci)");
    }
    Ok(())
}

/// What a `tests/js` script did.
#[derive(Debug)]
pub struct JsRun {
    pub success: bool,
    /// The JSON lines it printed (other lines dropped).
    pub lines: Vec<serde_json::Value>,
    pub stderr: String,
}

/// Runs `tests/js/<script>` with `env`.
pub async fn run_js(script: &str, env: &[(&str, &str)]) -> anyhow::Result<JsRun> {
    let js = gateway_testkit::js_dir();
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(js.join(script))
        .current_dir(&js)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .with_context(|| format!("{script} did not finish within 60 s"))??;
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    Ok(JsRun {
        success: out.status.success(),
        lines,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// `mcp-gateway up` on 127.0.0.1, port 0, in front of the built-in echo MCP
/// server, keeping its data in `data_dir`: the one-machine gateway of the
/// end-to-end tests.
pub fn echo_up_args(data_dir: impl Into<std::path::PathBuf>) -> mcp_gateway::up::UpArgs {
    mcp_gateway::up::UpArgs {
        host: "127.0.0.1".into(),
        port: 0,
        data_dir: data_dir.into(),
        mcp_command: "builtin:echo".into(),
    }
}
