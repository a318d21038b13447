//! Helpers for `tests/tests/connect.rs`: the `mcp-connect` binary and a raw stdio peer.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// `target/<profile>/mcp-connect`, next to this test's `deps/` directory.
pub fn connect_bin() -> anyhow::Result<PathBuf> {
    workspace_bin("mcp-connect", "mcp-connect")
}

/// `target/<profile>/mcp-bridge` (its `connect` runs `mcp-connect` from the same directory).
pub fn bridge_bin() -> anyhow::Result<PathBuf> {
    workspace_bin("mcp-bridge", "mcp-bridge")
}

/// A binary of another package is not built for this one's tests: `cargo test
/// --workspace` (or `cargo build -p <package>` first) builds it.
fn workspace_bin(name: &str, package: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("the test executable has no target directory")?;
    let bin = dir.join(name);
    if !bin.exists() {
        bail!(
            "{} is missing: run `cargo build -p {package}` (or `cargo test --workspace`, which builds it) first",
            bin.display()
        );
    }
    Ok(bin)
}

/// The JSON step lines `tests/js/connect_client.mjs` printed.
pub struct Run {
    pub steps: Vec<serde_json::Value>,
}

impl Run {
    pub fn step(&self, name: &str) -> &serde_json::Value {
        self.steps
            .iter()
            .find(|s| s["step"] == name)
            .unwrap_or_else(|| panic!("no step {name} in {:#?}", self.steps))
    }
    pub fn names(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter_map(|s| s["step"].as_str())
            .collect()
    }
}

/// Runs tests/js/connect_client.mjs (the MCP TypeScript SDK's stdio client spawning
/// `mcp-connect`); panics with its output when it fails.
pub async fn sdk_client(
    scenario: &str,
    mcp_url: &str,
    work: &Path,
    creds: (&str, &str),
    extra_args: &[&str],
) -> Run {
    sdk_client_env(scenario, mcp_url, work, creds, extra_args, &[]).await
}

/// [`sdk_client`] with extra environment for connect (`MCP_CONNECT_CLIENT_SECRET`, …).
#[allow(clippy::unwrap_used, clippy::expect_used)] // a test helper: failing is the point
pub async fn sdk_client_env(
    scenario: &str,
    mcp_url: &str,
    work: &Path,
    creds: (&str, &str),
    extra_args: &[&str],
    connect_env: &[(&str, &str)],
) -> Run {
    crate::require_js_deps().unwrap();
    let bin = connect_bin().unwrap();
    let store = work.join("tokens");
    let log = work.join("sign-ins.log");
    let extra = serde_json::to_string(extra_args).unwrap();
    let env: serde_json::Map<String, serde_json::Value> = connect_env
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    let env = serde_json::Value::Object(env).to_string();
    let run = crate::run_js(
        "connect_client.mjs",
        &[
            ("CONNECT_BIN", bin.to_str().unwrap()),
            ("MCP_URL", mcp_url),
            ("SCENARIO", scenario),
            ("TOKEN_STORE", store.to_str().unwrap()),
            ("OPENER_LOG", log.to_str().unwrap()),
            ("CONNECT_ARGS", &extra),
            ("CONNECT_ENV", &env),
            ("SIGNIN_USER", creds.0),
            ("SIGNIN_PASSWORD", creds.1),
        ],
    )
    .await
    .unwrap();
    assert!(
        run.success && run.lines.last().is_some_and(|l| l["step"] == "done"),
        "connect_client.mjs ({scenario}) failed:\n{:#?}\nstderr:\n{}",
        run.lines,
        run.stderr
    );
    if let Some(done) = run.lines.last() {
        eprintln!(
            "connect's stderr ({scenario}):\n{}",
            done["stderr"].as_str().unwrap_or("")
        );
    }
    Run { steps: run.lines }
}

/// The token files connect wrote under `work/tokens`.
pub fn token_files(work: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(work.join("tokens")) {
        Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// `mcp-connect` driven line by line, as a bare stdio MCP client would.
pub struct StdioPeer {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl StdioPeer {
    /// Runs `mcp-connect ARGS`.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::spawn_program(tokio::process::Command::new(connect_bin()?), args, env)
    }

    /// Runs `mcp-bridge connect ARGS`, as MCP client configurations written before
    /// `mcp-connect` existed do.
    pub fn spawn_via_bridge(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let mut cmd = tokio::process::Command::new(bridge_bin()?);
        cmd.arg("connect");
        Self::spawn_program(cmd, args, env)
    }

    fn spawn_program(
        mut cmd: tokio::process::Command,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take().context("stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("stdout")?).lines();
        Ok(Self {
            child,
            stdin,
            stdout,
        })
    }

    /// The connect process's id (for /proc measurements).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn send(&mut self, v: serde_json::Value) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(&v)?;
        line.push(b'\n');
        self.stdin.write_all(&line).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    /// The next message connect writes (30 s at most).
    pub async fn recv(&mut self) -> anyhow::Result<serde_json::Value> {
        let line = tokio::time::timeout(Duration::from_secs(30), self.stdout.next_line())
            .await
            .context("no message from connect within 30 s")??
            .context("connect closed stdout")?;
        Ok(serde_json::from_str(&line)?)
    }

    /// Sends a request and returns the response with the same id (skipping other messages).
    pub async fn request(
        &mut self,
        id: u64,
        method: &str,
        params: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        self.send(
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        )
        .await?;
        loop {
            let v = self.recv().await?;
            if v.get("id") == Some(&serde_json::json!(id)) && v.get("method").is_none() {
                return Ok(v);
            }
        }
    }

    pub async fn initialize(&mut self, id: u64) -> anyhow::Result<serde_json::Value> {
        let r = self
            .request(
                id,
                "initialize",
                serde_json::json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}),
            )
            .await?;
        self.send(serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        Ok(r)
    }

    /// Waits for the process to exit (30 s at most); returns its code and stderr.
    pub async fn exit(mut self) -> anyhow::Result<(Option<i32>, String)> {
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("connect did not exit within 30 s")??;
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            e.read_to_string(&mut err).await?;
        }
        Ok((status.code(), err))
    }

    /// Closes stdin (the client went away) and waits for the exit.
    pub async fn close(self) -> anyhow::Result<(Option<i32>, String)> {
        let StdioPeer {
            child,
            stdin,
            stdout,
        } = self;
        drop(stdin);
        let peer = ClosedPeer {
            child,
            _stdout: stdout,
        };
        peer.exit().await
    }
}

struct ClosedPeer {
    child: tokio::process::Child,
    _stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl ClosedPeer {
    async fn exit(mut self) -> anyhow::Result<(Option<i32>, String)> {
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("connect did not exit within 30 s")??;
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            e.read_to_string(&mut err).await?;
        }
        Ok((status.code(), err))
    }
}
