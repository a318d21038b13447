//! One of our binaries run as an operator runs it: configured only through
//! its environment, listening on port 0 and telling the port in its output,
//! stopped with SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::ChildGuard;

/// A running binary; dropped, it is killed.
#[derive(Debug)]
pub struct Service {
    /// The address it reported (its log's `addr`, or the first loopback URL it printed).
    pub addr: SocketAddr,
    child: ChildGuard,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The address in a line of output: a JSON log line's `addr` field, or the
/// first `http://127.0.0.1:PORT` printed.
fn reported_addr(output: &str) -> Option<SocketAddr> {
    if let Some(addr) = crate::logged_addr(output) {
        return Some(addr);
    }
    let at = output.find("http://127.0.0.1:")? + "http://".len();
    let rest = &output[at..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

impl Service {
    /// Starts `bin args` in `cwd` with exactly `env` (and PATH), its stdout
    /// and stderr in one log, and waits until it reports the address it bound.
    pub async fn start(
        bin: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        cwd: &Path,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("output.log");
        let file = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut child = ChildGuard(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let output = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(addr) = reported_addr(&output) {
                return Ok(Self {
                    addr,
                    child,
                    log,
                    _dir: dir,
                });
            }
            if let Some(status) = child.0.try_wait()? {
                bail!(
                    "{} exited ({status}) before serving:\n{output}",
                    bin.display()
                );
            }
            if Instant::now() > deadline {
                bail!("{} reported no address:\n{output}", bin.display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM, as an orchestrator stopping it does.
    pub fn terminate(&self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.0.id().to_string()])
            .status()
            .context("running kill")?;
        anyhow::ensure!(status.success(), "kill -TERM failed: {status}");
        Ok(())
    }

    /// Waits for the exit, at most `hang_guard` (a bound against hanging
    /// forever, not a timing check), and returns the status and the time it took.
    pub async fn exit(&mut self, hang_guard: Duration) -> anyhow::Result<(ExitStatus, Duration)> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.0.try_wait()? {
                return Ok((status, started.elapsed()));
            }
            if started.elapsed() > hang_guard {
                bail!(
                    "still running {hang_guard:?} after SIGTERM:\n{}",
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// `bin --help` and `bin --version` in an empty directory with no
/// configuration at all: both exit 0 and print what they should.
pub fn check_help_and_version(bin: &Path, name: &str) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for (flag, want) in [
        ("--help", "Usage"),
        ("-h", "Usage"),
        ("--version", env!("CARGO_PKG_VERSION")),
        ("-V", env!("CARGO_PKG_VERSION")),
    ] {
        let out = Command::new(bin)
            .arg(flag)
            .current_dir(dir.path())
            .env_clear()
            .output()
            .with_context(|| format!("running {} {flag}", bin.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        anyhow::ensure!(
            out.status.success(),
            "{name} {flag}: {}\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        anyhow::ensure!(
            stdout.contains(name) && stdout.contains(want),
            "{name} {flag} printed: {stdout}"
        );
    }
    Ok(())
}
