//! What tests need to start real components themselves: a private
//! `redis-server` on a free port, readiness waits (never sleeps as a guess),
//! and the paths of the pinned test tools installed by `scripts/test.sh`.

pub mod dpop;
pub mod raw_http;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The repository root (this crate lives at `tests/testkit`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A TCP port that was free a moment ago on 127.0.0.1, and that no other
/// caller in this process has been given. Tests of one binary run in
/// parallel: without the second rule two of them could be handed the same
/// port before either binds it, and one would talk to the other's proxy.
/// (A process outside this one can still take it; where a component can bind
/// port 0 itself and report the port, prefer that.)
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(|| Mutex::new(HashSet::new()));
    // Hold every probe listener until a new port turns up, so the kernel
    // cannot hand the same one back to the next probe.
    let mut probes = Vec::new();
    for _ in 0..64 {
        let Ok(listener) = TcpListener::bind("127.0.0.1:0") else {
            break;
        };
        let Ok(port) = listener.local_addr().map(|a| a.port()) else {
            break;
        };
        if given.lock().map(|mut g| g.insert(port)).unwrap_or(true) {
            return port;
        }
        probes.push(listener);
    }
    0
}

/// `tests/js/node_modules/.bin/<name>` (installed from the lockfile by `scripts/test.sh`).
pub fn node_bin(name: &str) -> PathBuf {
    repo_root().join("tests/js/node_modules/.bin").join(name)
}

/// `tests/js` — run `node tests/js/<script>.mjs` from here.
pub fn js_dir() -> PathBuf {
    repo_root().join("tests/js")
}

/// A program from the pinned Python test environment (`.test-venv/bin/<name>`).
pub fn venv_bin(name: &str) -> PathBuf {
    repo_root().join(".test-venv/bin").join(name)
}

/// Polls a TCP address until it accepts connections.
pub async fn wait_for_port(addr: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("nothing listened on {addr} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls a URL until it answers with a success status.
pub async fn wait_for_http(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(r) = client.get(url).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{url} was not ready within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A child process killed when dropped.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private `redis-server` on a free port, with its data in a temp dir.
/// Dropped: the server is killed.
#[derive(Debug)]
pub struct RedisServer {
    pub port: u16,
    pub password: Option<String>,
    child: Option<ChildGuard>,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(None).await
    }

    pub async fn start_with(password: Option<&str>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
        ])
        .arg(dir.path());
        if let Some(pw) = password {
            cmd.args(["--requirepass", pw]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (install it: apt-get install redis-server)")?;
        let server = Self {
            port,
            password: password.map(str::to_string),
            child: Some(ChildGuard(child)),
            _dir: dir,
        };
        wait_for_port(&format!("127.0.0.1:{port}"), Duration::from_secs(10)).await?;
        Ok(server)
    }

    /// `redis://[:password@]127.0.0.1:port/db`
    pub fn url(&self, db: u8) -> String {
        match &self.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}/{db}", self.port),
            None => format!("redis://127.0.0.1:{}/{db}", self.port),
        }
    }

    /// Stops the server (fault tests).
    pub fn stop(&mut self) {
        self.child.take();
    }
}
