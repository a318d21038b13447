//! What tests need to start real components themselves: a private
//! `redis-server` on a free port, readiness waits (never sleeps as a guess),
//! and the paths of the pinned test tools installed by `scripts/test.sh`.

pub mod dpop;
pub mod mcp;
pub mod oauth;
pub mod process;
pub mod proxy;
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
/// caller in this process has been given. Only for a process whose port must
/// be written into its own configuration (redis-server, the third-party
/// proxies): start it through [`retry_on_port_taken`] and wait with
/// [`wait_listening`], so a port taken in between means another attempt on
/// another port, never a test talking to somebody else's server. Our own
/// services bind port 0 and report the port.
pub fn candidate_port() -> u16 {
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

/// A candidate port for callers that cannot yet bind port 0 themselves; see
/// [`candidate_port`] for the only safe way to use one.
pub fn free_port() -> u16 {
    candidate_port()
}

/// A port on 127.0.0.1 that refuses connections for as long as this value
/// lives: bound, never listening, so no other process can take it and every
/// connection attempt is refused at once. For "the remote is down" and for
/// addresses that must never answer.
#[derive(Debug)]
pub struct RefusingPort {
    _socket: tokio::net::TcpSocket,
    pub port: u16,
}

impl RefusingPort {
    pub fn new() -> std::io::Result<Self> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let port = socket.local_addr()?.port();
        Ok(Self {
            _socket: socket,
            port,
        })
    }
}

/// A process could not bind the port it was configured with: somebody took
/// it after it was picked. [`retry_on_port_taken`] starts again on another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortTaken(pub u16);

impl std::fmt::Display for PortTaken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "port {} was taken before the process bound it", self.0)
    }
}

impl std::error::Error for PortTaken {}

/// Runs `start` with a candidate port (see [`candidate_port`]) until it
/// returns anything but a [`PortTaken`] error, at most 8 times.
pub async fn retry_on_port_taken<T, F, Fut>(mut start: F) -> anyhow::Result<T>
where
    F: FnMut(u16) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut last = None;
    for _ in 0..8 {
        let port = candidate_port();
        match start(port).await {
            Err(e) if e.downcast_ref::<PortTaken>().is_some() => last = Some(e),
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no port could be tried")))
        .context("eight ports in a row were taken before the process bound them")
}

/// Whether process `pid` itself holds a listening TCP socket on `port`
/// (Linux: the socket's inode in `/proc/net/tcp{,6}` among the process's
/// descriptors). A server answering on the port proves nothing: it may be
/// another test's, which took the port first.
pub fn listens_on(pid: u32, port: u16) -> bool {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) = (cols.get(1), cols.get(3), cols.get(9))
            else {
                continue;
            };
            let local_port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            // 0A: TCP_LISTEN.
            if *state == "0A" && local_port == Some(port) {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}

/// Waits until `child` listens on `port` itself. If it exits first and its
/// output (`log`) says the address was in use, the error is [`PortTaken`]
/// (start again on another port); any other exit is an error with the output.
pub async fn wait_listening(
    child: &mut Child,
    port: u16,
    log: impl Fn() -> String,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            let out = log();
            if out.to_ascii_lowercase().contains("address already in use") {
                return Err(anyhow::Error::new(PortTaken(port)).context(out));
            }
            bail!("exited ({status}) before listening on {port}:\n{out}");
        }
        if listens_on(child.id(), port) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("did not listen on {port} within {timeout:?}:\n{}", log());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The address a process of ours printed when it bound port 0: the first
/// `addr` field of a JSON log line (`"addr":"127.0.0.1:PORT"`) in `log`.
pub fn logged_addr(log: &str) -> Option<std::net::SocketAddr> {
    log.lines().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let fields = v.get("fields").unwrap_or(&v);
        fields.get("addr")?.as_str()?.parse().ok()
    })
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
        retry_on_port_taken(|port| Self::start_on(port, password)).await
    }

    async fn start_on(port: u16, password: Option<&str>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("redis.log");
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
            "--logfile",
        ])
        .arg(&log)
        .arg("--dir")
        .arg(dir.path());
        if let Some(pw) = password {
            cmd.args(["--requirepass", pw]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (install it: apt-get install redis-server)")?;
        let mut child = ChildGuard(child);
        wait_listening(
            &mut child.0,
            port,
            || std::fs::read_to_string(&log).unwrap_or_default(),
            Duration::from_secs(10),
        )
        .await?;
        Ok(Self {
            port,
            password: password.map(str::to_string),
            child: Some(child),
            _dir: dir,
        })
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
