//! One stdio MCP server process and the tasks that own its pipes.
//!
//! - stdin: one writer task fed by a bounded channel (back-pressure instead of memory growth);
//! - stdout: one reader task, newline-delimited JSON-RPC (MCP transports, stdio), each line
//!   bounded by `max_message_bytes`;
//! - stderr: drained line by line into the log, so a chatty child never blocks on a full pipe;
//! - the process runs in its own process group with a clean environment and is killed, group
//!   and all, when its owner lets go (`kill_on_drop` covers the leader, `killpg` the rest).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot};

/// What a child tells its owner.
pub trait ChildEvents: Send + Sync + 'static {
    /// One JSON message read from stdout.
    fn on_message(&self, message: Value);
    /// The process is gone; every line it wrote has been delivered before this.
    fn on_exit(&self, how: String);
}

#[derive(Debug, Clone)]
pub struct ChildSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    pub max_line: usize,
    pub max_queued: usize,
    /// Names the child in log lines.
    pub label: String,
}

/// The owner's handle. Dropping it terminates the process group.
#[derive(Debug)]
pub struct ChildHandle {
    pub pid: Option<u32>,
    stdin: mpsc::Sender<Bytes>,
    kill: Mutex<Option<oneshot::Sender<()>>>,
}

/// The child cannot take more input right now, or is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the MCP server's input queue is full")]
    Full,
    #[error("the MCP server process has exited")]
    Gone,
}

impl ChildHandle {
    /// Queues one message (a line) for stdin without waiting.
    pub fn send(&self, message: &Value) -> Result<(), SendError> {
        let mut line = serde_json::to_vec(message).map_err(|_| SendError::Gone)?;
        line.push(b'\n');
        self.stdin.try_send(Bytes::from(line)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SendError::Full,
            mpsc::error::TrySendError::Closed(_) => SendError::Gone,
        })
    }

    /// Terminates the process group (SIGTERM, then SIGKILL after a grace period).
    pub fn kill(&self) {
        if let Ok(mut slot) = self.kill.lock() {
            if let Some(tx) = slot.take() {
                let _ = tx.send(());
            }
        }
    }
}

impl Drop for ChildHandle {
    fn drop(&mut self) {
        self.kill();
    }
}

const GRACE: Duration = Duration::from_secs(2);

/// Children of this process not yet reaped (each one's watcher still runs).
static UNREAPED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Waits until every child of this process is reaped, at most `GRACE` and a
/// second (a stop must not leave MCP servers behind: they run in their own
/// process groups, so nothing else would end them).
pub async fn reaped() {
    let deadline = tokio::time::Instant::now() + GRACE + Duration::from_secs(1);
    while UNREAPED.load(std::sync::atomic::Ordering::SeqCst) > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
const STDERR_LINE_MAX: usize = 8 * 1024;

/// Starts the process and its pipe tasks. Must run inside a Tokio runtime.
pub fn spawn(spec: &ChildSpec, events: Weak<dyn ChildEvents>) -> std::io::Result<ChildHandle> {
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Own process group: the whole tree (npx → node, uvx → python) dies together.
        .process_group(0);
    if let Some(dir) = &spec.cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let label = spec.label.clone();
    let (stdin, stdout, stderr) =
        match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
            (Some(i), Some(o), Some(e)) => (i, o, e),
            _ => return Err(std::io::Error::other("child pipes missing")),
        };

    let (stdin_tx, mut stdin_rx) = mpsc::channel::<Bytes>(spec.max_queued);
    tokio::spawn(async move {
        let mut stdin = stdin;
        while let Some(line) = stdin_rx.recv().await {
            if stdin.write_all(&line).await.is_err() {
                break;
            }
            if stdin_rx.is_empty() && stdin.flush().await.is_err() {
                break;
            }
        }
    });

    let err_label = label.clone();
    tokio::spawn(async move {
        let mut reader = BufReader::new(stderr);
        let mut buf = Vec::new();
        while let Ok(Some(_)) = read_line_limited(&mut reader, &mut buf, STDERR_LINE_MAX).await {
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim_end_matches('\r');
            if !line.is_empty() {
                tracing::info!(target: "mcp_bridge::child", child = %err_label, pid, stderr = %line);
            }
            buf.clear();
        }
    });

    let (stdout_done_tx, stdout_done_rx) = oneshot::channel::<()>();
    let out_events = events.clone();
    let out_label = label.clone();
    let max_line = spec.max_line;
    tokio::spawn(async move {
        let mut reader = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            match read_line_limited(&mut reader, &mut buf, max_line).await {
                Ok(Some(false)) => {
                    let text = trim_ascii(&buf);
                    if !text.is_empty() {
                        match serde_json::from_slice::<Value>(text) {
                            Ok(v) => match out_events.upgrade() {
                                Some(ev) => ev.on_message(v),
                                None => break,
                            },
                            Err(_) => tracing::warn!(
                                child = %out_label, pid,
                                "ignored a stdout line that is not JSON ({} bytes)", text.len()
                            ),
                        }
                    }
                }
                Ok(Some(true)) => tracing::warn!(
                    child = %out_label, pid,
                    "dropped a stdout message longer than {max_line} bytes"
                ),
                Ok(None) | Err(_) => break,
            }
            buf.clear();
        }
        let _ = stdout_done_tx.send(());
    });

    let (kill_tx, kill_rx) = oneshot::channel::<()>();
    UNREAPED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    tokio::spawn(async move {
        let pgid = pid.and_then(|p| i32::try_from(p).ok()).map(Pid::from_raw);
        let how = tokio::select! {
            status = child.wait() => describe(status),
            _ = kill_rx => {
                if let Some(pg) = pgid {
                    let _ = killpg(pg, Signal::SIGTERM);
                }
                match tokio::time::timeout(GRACE, child.wait()).await {
                    Ok(status) => describe(status),
                    Err(_) => {
                        if let Some(pg) = pgid {
                            let _ = killpg(pg, Signal::SIGKILL);
                        }
                        describe(child.wait().await)
                    }
                }
            }
        };
        // Leftover grandchildren die with the group leader.
        if let Some(pg) = pgid {
            let _ = killpg(pg, Signal::SIGKILL);
        }
        UNREAPED.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        // Deliver what the child wrote before it died; a grandchild still holding the pipe
        // open must not delay the waiters' errors for long.
        let _ = tokio::time::timeout(Duration::from_millis(500), stdout_done_rx).await;
        tracing::info!(child = %label, pid, "MCP server process ended: {how}");
        if let Some(ev) = events.upgrade() {
            ev.on_exit(how);
        }
    });

    Ok(ChildHandle {
        pid,
        stdin: stdin_tx,
        kill: Mutex::new(Some(kill_tx)),
    })
}

fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            (None, None) => "ended".to_string(),
        },
        Err(e) => format!("wait failed: {e}"),
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &b[start..end.max(start)]
}

/// Reads one `\n`-terminated line into `buf` (without the newline).
/// `Ok(None)` at end of input; `Ok(Some(true))` when the line was longer than `max`
/// (it is consumed and discarded, `buf` left empty).
pub async fn read_line_limited<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    let mut overflow = false;
    let mut seen_any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(seen_any.then_some(overflow));
        }
        seen_any = true;
        match available.iter().position(|&c| c == b'\n') {
            Some(i) => {
                if !overflow && buf.len() + i <= max {
                    buf.extend_from_slice(&available[..i]);
                } else {
                    overflow = true;
                    buf.clear();
                }
                reader.consume(i + 1);
                return Ok(Some(overflow));
            }
            None => {
                let n = available.len();
                if !overflow && buf.len() + n <= max {
                    buf.extend_from_slice(available);
                } else {
                    overflow = true;
                    buf.clear();
                }
                reader.consume(n);
            }
        }
    }
}

/// Keeps an `Arc` alive as a `Weak<dyn ChildEvents>`.
pub fn weak_events<T: ChildEvents>(owner: &Arc<T>) -> Weak<dyn ChildEvents> {
    let weak: Weak<T> = Arc::downgrade(owner);
    weak
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_split_and_bounded() {
        let data: &[u8] = b"{\"a\":1}\nxxxxxxxxxxxxxxxxxxxx\nlast";
        let mut r = BufReader::with_capacity(4, data);
        let mut buf = Vec::new();
        assert_eq!(
            read_line_limited(&mut r, &mut buf, 10).await.unwrap(),
            Some(false)
        );
        assert_eq!(buf, b"{\"a\":1}");
        buf.clear();
        assert_eq!(
            read_line_limited(&mut r, &mut buf, 10).await.unwrap(),
            Some(true)
        );
        assert!(buf.is_empty());
        assert_eq!(
            read_line_limited(&mut r, &mut buf, 10).await.unwrap(),
            Some(false)
        );
        assert_eq!(buf, b"last");
        buf.clear();
        assert_eq!(read_line_limited(&mut r, &mut buf, 10).await.unwrap(), None);
    }

    struct Collect {
        messages: Mutex<Vec<Value>>,
        exited: Mutex<Option<oneshot::Sender<String>>>,
    }

    impl ChildEvents for Collect {
        fn on_message(&self, message: Value) {
            self.messages.lock().unwrap().push(message);
        }
        fn on_exit(&self, how: String) {
            if let Some(tx) = self.exited.lock().unwrap().take() {
                let _ = tx.send(how);
            }
        }
    }

    fn sh(script: &str) -> ChildSpec {
        ChildSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: None,
            max_line: 1024,
            max_queued: 8,
            label: "test".into(),
        }
    }

    #[tokio::test]
    async fn stdout_is_delivered_before_exit_and_env_is_clean() {
        let (tx, rx) = oneshot::channel();
        let c = Arc::new(Collect {
            messages: Mutex::new(Vec::new()),
            exited: Mutex::new(Some(tx)),
        });
        let script = "echo not-json; echo '{\"home\":\"'$HOME'\"}'; \
            i=0; while [ $i -lt 2000 ]; do echo noise >&2; i=$((i+1)); done; echo '{\"done\":true}'; exit 3";
        let _h = spawn(&sh(script), weak_events(&c)).unwrap();
        let how = tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(how, "exit code 3");
        let msgs = c.messages.lock().unwrap().clone();
        assert_eq!(
            msgs,
            vec![
                serde_json::json!({"home":""}),
                serde_json::json!({"done":true})
            ]
        );
    }

    #[tokio::test]
    async fn dropping_the_handle_kills_the_process_group() {
        let (tx, rx) = oneshot::channel();
        let c = Arc::new(Collect {
            messages: Mutex::new(Vec::new()),
            exited: Mutex::new(Some(tx)),
        });
        // A shell that ignores SIGTERM, with a grandchild: both must go.
        let h = spawn(
            &sh("trap '' TERM; sleep 300 & echo '{\"ready\":true}'; wait"),
            weak_events(&c),
        )
        .unwrap();
        while c.messages.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        drop(h);
        let how = tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .unwrap()
            .unwrap();
        assert!(how.contains("signal 9"), "{how}");
    }

    #[tokio::test]
    async fn stdin_is_written_line_by_line() {
        let (tx, rx) = oneshot::channel();
        let c = Arc::new(Collect {
            messages: Mutex::new(Vec::new()),
            exited: Mutex::new(Some(tx)),
        });
        let h = spawn(
            &sh("read a; echo \"$a\"; read b; echo \"$b\""),
            weak_events(&c),
        )
        .unwrap();
        h.send(&serde_json::json!({"n":1})).unwrap();
        h.send(&serde_json::json!({"n":2})).unwrap();
        tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            c.messages.lock().unwrap().clone(),
            vec![serde_json::json!({"n":1}), serde_json::json!({"n":2})]
        );
    }
}
