//! Helpers for `tests/tests/connect.rs`: the `mcp-bridge` binary and a raw stdio peer.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// `target/<profile>/mcp-bridge`, next to this test's `deps/` directory. A binary of
/// another package is not built for this one's tests: `cargo test --workspace`
/// (or `cargo build -p mcp-bridge` first) builds it.
pub fn connect_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("the test executable has no target directory")?;
    let bin = dir.join("mcp-bridge");
    if !bin.exists() {
        bail!(
            "{} is missing: run `cargo build -p mcp-bridge` (or `cargo test --workspace`, which builds it) first",
            bin.display()
        );
    }
    Ok(bin)
}

/// `mcp-bridge connect` driven line by line, as a bare stdio MCP client would.
pub struct StdioPeer {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl StdioPeer {
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let mut cmd = tokio::process::Command::new(connect_bin()?);
        cmd.arg("connect")
            .args(args)
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
