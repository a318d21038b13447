//! The security audit log: one JSON line per event (registration, sign-in,
//! consent, token issue/refresh/revoke, refresh-token reuse, denied verifies).
//!
//! Lines go to the service log under the target `audit` ([`log_line`]:
//! filtered by `RUST_LOG` like a tracing target) and, when `AUDIT_LOG_FILE` is
//! set, are appended to that file. Events carry identifiers only — client id, user,
//! `jti` — never a token, code or secret: the types below have no field that
//! could hold one.
//!
//! Writing to a file never blocks a request: lines go through a bounded queue to one
//! writer thread per file ([`AuditSink`]); when the queue is full (a stalled
//! disk) the line is dropped and counted, and the writer notes the loss in
//! the file (`audit_lines_dropped`) once it catches up.
//!
//! Denied verifies are the one event an attacker controls the rate of, so
//! [`AuditLog::record`] keeps at most [`DENIALS_PER_SECOND`] of them per
//! second and counts the rest into the next written denial (`suppressed`).

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// Denied-verify lines written per clock second; the rest are counted.
pub const DENIALS_PER_SECOND: u32 = 20;

/// A security event. Serialised with its kind under `event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AuditEvent {
    /// RFC 7591 registration (`via: "dcr"`) or a metadata-document client's first code or token (`via: "cimd"`).
    ClientRegistered {
        client_id: String,
        via: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_name: Option<String>,
    },
    /// A sign-in attempt at an identity provider; `user` is what was claimed
    /// (a login name), `reason` says why it failed.
    SignIn {
        provider: String,
        user: String,
        success: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    ConsentGranted {
        user: String,
        client_id: String,
        scope: String,
    },
    ConsentRevoked {
        user: String,
        client_id: String,
    },
    /// An access token issued by a code or device grant.
    TokenIssued {
        client_id: String,
        user: String,
        jti: String,
        grant: &'static str,
    },
    /// A refresh-token grant: the new access token's `jti`.
    TokenRefreshed {
        client_id: String,
        user: String,
        jti: String,
    },
    /// RFC 7009 revocation (or an operator's); fields unknown for an
    /// unrecognised token stay empty.
    TokenRevoked {
        client_id: String,
        user: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        jti: Option<String>,
        kind: &'static str,
    },
    /// A rotated refresh token was presented again (OAuth 2.1 §4.3.1): the family was revoked.
    RefreshReuseDetected {
        client_id: String,
        user: String,
    },
    /// A user refused a device at the verification page (RFC 8628 §3.3).
    DeviceDenied {
        user: String,
        client_id: String,
    },
    /// A client deleted its own registration (RFC 7592 §2.3), with everything it held.
    ClientDeleted {
        client_id: String,
        authorizations_revoked: usize,
        consents_removed: usize,
    },
    /// An operator command that changed state (`mcp-gateway …`): who ran it
    /// (the OS user), what it did and to what.
    OperatorAction {
        actor: String,
        action: String,
        target: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        outcome: Option<String>,
    },
    /// The verifier refused a request.
    VerifyDenied {
        reason: &'static str,
        service: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        /// Denials dropped by the rate limit since the last one written.
        #[serde(skip_serializing_if = "is_zero")]
        suppressed: u64,
    },
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl AuditEvent {
    /// The `event` value: the metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            AuditEvent::ClientRegistered { .. } => "client_registered",
            AuditEvent::SignIn { success: true, .. } => "sign_in",
            AuditEvent::SignIn { success: false, .. } => "sign_in_failed",
            AuditEvent::ConsentGranted { .. } => "consent_granted",
            AuditEvent::ConsentRevoked { .. } => "consent_revoked",
            AuditEvent::TokenIssued { .. } => "token_issued",
            AuditEvent::TokenRefreshed { .. } => "token_refreshed",
            AuditEvent::TokenRevoked { .. } => "token_revoked",
            AuditEvent::RefreshReuseDetected { .. } => "refresh_reuse_detected",
            AuditEvent::DeviceDenied { .. } => "device_denied",
            AuditEvent::ClientDeleted { .. } => "client_deleted",
            AuditEvent::OperatorAction { .. } => "operator_action",
            AuditEvent::VerifyDenied { .. } => "verify_denied",
        }
    }
}

#[derive(Serialize)]
struct Line<'a> {
    ts: u64,
    source: &'a str,
    #[serde(flatten)]
    event: &'a AuditEvent,
}

#[derive(Debug, Default)]
struct DenialWindow {
    second: u64,
    written: u32,
    suppressed: u64,
}

enum Msg {
    Line(Vec<u8>),
    /// Answered once every line queued before it is written and flushed.
    Sync(std::sync::mpsc::Sender<()>),
}

/// A file of audit lines with a bounded queue in front of one writer
/// thread: [`AuditSink::write_line`] never waits for the disk. Shared by
/// every audit writer of the project (security events and tool calls), and
/// by every service of one process: [`AuditSink::open`] on a file already
/// open in this process returns the same sink (one thread, one queue), so
/// `mcp-gateway up`, where the authorization server, the verifier and each
/// bridge name the same `AUDIT_LOG_FILE`, has one writer for it. Cheap to
/// clone; the writer stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct AuditSink(Arc<SinkInner>);

#[derive(Debug)]
struct SinkInner {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg(..)")
    }
}

/// The sinks open in this process, by canonical path; weak, so a file no
/// service writes any more has no thread left.
fn open_sinks(
) -> &'static Mutex<std::collections::HashMap<std::path::PathBuf, std::sync::Weak<SinkInner>>> {
    static SINKS: std::sync::OnceLock<
        Mutex<std::collections::HashMap<std::path::PathBuf, std::sync::Weak<SinkInner>>>,
    > = std::sync::OnceLock::new();
    SINKS.get_or_init(Default::default)
}

impl AuditSink {
    /// Lines queued at most; beyond that, lines are dropped and counted.
    pub const CAPACITY: usize = 8192;

    /// Opens `path` for appending (errors here, at start-up) and starts its
    /// writer, or joins the writer this process already has for that file.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        // Opened first: a missing directory or a denied file is reported
        // even when another service already writes there.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let key = std::fs::canonicalize(path)?;
        let mut sinks = open_sinks()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(inner) = sinks.get(&key).and_then(std::sync::Weak::upgrade) {
            return Ok(Self(inner));
        }
        sinks.retain(|_, w| w.strong_count() > 0);
        let sink = Self::start(file, Self::CAPACITY)?;
        sinks.insert(key, Arc::downgrade(&sink.0));
        Ok(sink)
    }

    /// A sink of its own for `path` with a queue of `capacity` lines (tests
    /// of the queue's bound; not shared).
    pub fn open_with_capacity(path: &Path, capacity: usize) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Self::start(file, capacity)
    }

    fn start(file: std::fs::File, capacity: usize) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&dropped);
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_loop(file, rx, counter))?;
        Ok(Self(Arc::new(SinkInner { tx, dropped })))
    }

    /// Queues one line (without its newline). Returns false when it was
    /// dropped because the queue is full.
    pub fn write_line(&self, line: &str) -> bool {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        match self.0.tx.try_send(Msg::Line(buf)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.0.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Lines dropped so far.
    pub fn dropped(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every line queued so far is written and flushed (for a
    /// command about to exit, and tests; never on a request path).
    pub fn sync(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.0.tx.send(Msg::Sync(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

fn write_loop(file: std::fs::File, rx: Receiver<Msg>, dropped: Arc<AtomicU64>) {
    let mut out = std::io::BufWriter::new(file);
    let mut reported = 0u64;
    let mut failed = false;
    let mut handle = |msg: Msg, out: &mut std::io::BufWriter<std::fs::File>| match msg {
        Msg::Line(line) => {
            // One write per line into the buffer; the buffer goes out whole
            // lines at a time (append mode), so lines never interleave.
            if let Err(e) = out.write_all(&line) {
                if !failed {
                    tracing::error!(error = %e, "audit log write failed");
                }
                failed = true;
            }
        }
        Msg::Sync(done) => {
            let _ = out.flush();
            let _ = done.send(());
        }
    };
    while let Ok(msg) = rx.recv() {
        handle(msg, &mut out);
        // Drain what is queued, then flush once.
        while let Ok(msg) = rx.try_recv() {
            handle(msg, &mut out);
        }
        let lost = dropped.load(Ordering::Relaxed);
        if lost > reported {
            let line = serde_json::json!({
                "ts": crate::clock::system().now_secs(),
                "event": "audit_lines_dropped",
                "count": lost - reported,
            });
            let _ = writeln!(out, "{line}");
            reported = lost;
        }
        if let Err(e) = out.flush() {
            tracing::error!(error = %e, "audit log flush failed");
        }
    }
    let _ = out.flush();
}

/// Where a service's audit lines go. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct AuditLog {
    source: &'static str,
    file: Option<AuditSink>,
    denials: Mutex<DenialWindow>,
}

impl AuditLog {
    /// Lines from `source` (`authz`, `verifier`, …); appended to `file` when given.
    pub fn open(source: &'static str, file: Option<&Path>) -> std::io::Result<Self> {
        let file = match file {
            Some(p) => Some(AuditSink::open(p)?),
            None => None,
        };
        Ok(Self {
            source,
            file,
            denials: Mutex::new(DenialWindow::default()),
        })
    }

    /// Tracing only (no file).
    pub fn tracing_only(source: &'static str) -> Self {
        Self {
            source,
            file: None,
            denials: Mutex::new(DenialWindow::default()),
        }
    }

    /// Writes one event at clock time `now`. Returns whether a line was
    /// written (false: a denial dropped by the rate limit).
    pub fn record(&self, now: u64, event: AuditEvent) -> bool {
        let event = match event {
            AuditEvent::VerifyDenied {
                reason,
                service,
                client_id,
                ..
            } => {
                let mut w = lock(&self.denials);
                if w.second != now {
                    w.second = now;
                    w.written = 0;
                }
                if w.written >= DENIALS_PER_SECOND {
                    w.suppressed += 1;
                    return false;
                }
                w.written += 1;
                let suppressed = std::mem::take(&mut w.suppressed);
                AuditEvent::VerifyDenied {
                    reason,
                    service,
                    client_id,
                    suppressed,
                }
            }
            other => other,
        };
        let line = match serde_json::to_string(&Line {
            ts: now,
            source: self.source,
            event: &event,
        }) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "audit event not serialisable");
                return false;
            }
        };
        self.write_line(&line);
        true
    }

    /// Writes an already serialised JSON line (other audit record types share the sink).
    pub fn write_line(&self, line: &str) {
        log_line(line);
        if let Some(file) = &self.file {
            file.write_line(line);
        }
    }

    /// Waits until every line so far is in the file (see [`AuditSink::sync`]).
    pub fn sync(&self) {
        if let Some(file) = &self.file {
            file.sync();
        }
    }

    /// Lines dropped because the file could not keep up.
    pub fn dropped(&self) -> u64 {
        self.file.as_ref().map_or(0, AuditSink::dropped)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Copies an audit line (a JSON object) to the service log, stderr, when logging is set
/// up ([`crate::logging`]) and the `audit` target is enabled at `info` (`RUST_LOG`, as
/// for any tracing target).
///
/// Written here, not as a tracing event: the line is already JSON, and a tracing event
/// would carry it escaped as a string inside another JSON object (with
/// `LOG_FORMAT=json`), with the request's span serialised again, which was a fifth of
/// what a registration cost. So with `LOG_FORMAT=json` the line is the audit record
/// itself with `timestamp`, `level` and `target` in front, one object a log pipeline
/// reads as it is; with `LOG_FORMAT=text`, tracing's own layout.
pub fn log_line(line: &str) {
    let Some(format) = crate::logging::installed_format() else {
        return;
    };
    if !tracing::enabled!(target: "audit", tracing::Level::INFO) {
        return;
    }
    let mut ts = String::with_capacity(32);
    let _ = tracing_subscriber::fmt::time::FormatTime::format_time(
        &tracing_subscriber::fmt::time::SystemTime,
        &mut tracing_subscriber::fmt::format::Writer::new(&mut ts),
    );
    let mut out = service_log_line(format, &ts, line);
    out.push('\n');
    batched_write(out.as_bytes());
}

/// Service-log lines waiting for the end of the current round of an actix
/// event loop (see [`batched_write`]).
static PENDING: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Past this many bytes the lines go out at once, whatever the round.
const PENDING_MAX: usize = 64 * 1024;

thread_local! {
    /// Whether this thread's event loop already has a flush queued.
    static FLUSH_QUEUED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Writes `bytes` (whole lines) to stderr. On an actix thread (every request
/// handler's), the lines of one round of the event loop go out together in
/// one write, after the requests that were ready in that round: under load a
/// write per line was about 3% of a refresh, and one round holds dozens of
/// lines. The round ends before
/// the thread waits for anything, so a line is out within microseconds, not
/// at a timer; what is still pending when the process ends is written by
/// [`flush_all`]. Elsewhere (the CLI, a plain tokio runtime) each call is one
/// write, as stderr is unbuffered. A writer thread would cost a thread
/// wake-up per line, more than the write.
fn batched_write(bytes: &[u8]) {
    let Some(arbiter) = actix_rt::Arbiter::try_current() else {
        let mut pending = lock(&PENDING);
        // Whatever an actix thread left pending goes first, to keep the order.
        write_stderr(&mut pending, bytes);
        return;
    };
    let full = {
        let mut pending = lock(&PENDING);
        pending.extend_from_slice(bytes);
        pending.len() >= PENDING_MAX
    };
    if full {
        flush_pending();
    } else if !FLUSH_QUEUED.with(|q| q.replace(true)) {
        let queued = arbiter.spawn(async {
            // Behind every task that was ready when the line was written.
            tokio::task::yield_now().await;
            FLUSH_QUEUED.with(|q| q.set(false));
            flush_pending();
        });
        if !queued {
            // The arbiter is stopping: no later round will come.
            FLUSH_QUEUED.with(|q| q.set(false));
            flush_pending();
        }
    }
}

/// Writes what is pending.
fn flush_pending() {
    write_stderr(&mut lock(&PENDING), &[]);
}

/// One write of the pending lines, then `more`; the lock is held so that
/// lines from several threads keep their order.
fn write_stderr(pending: &mut Vec<u8>, more: &[u8]) {
    let mut err = std::io::stderr().lock();
    if !pending.is_empty() {
        let _ = err.write_all(pending);
        pending.clear();
        if pending.capacity() > PENDING_MAX {
            pending.shrink_to(PENDING_MAX);
        }
    }
    if !more.is_empty() {
        let _ = err.write_all(more);
    }
}

/// Waits until every audit line queued so far in this process for an
/// `AUDIT_LOG_FILE` is written, and writes the service-log lines still
/// pending: for a process about to exit (its writer threads die with it),
/// never on a request path.
pub fn flush_all() {
    flush_pending();
    let sinks: Vec<Arc<SinkInner>> = open_sinks()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .values()
        .filter_map(std::sync::Weak::upgrade)
        .collect();
    for inner in sinks {
        AuditSink(inner).sync();
    }
}

/// An audit line as the service log shows it (see [`log_line`]).
fn service_log_line(format: crate::logging::LogFormat, ts: &str, line: &str) -> String {
    use crate::logging::LogFormat;
    match format {
        LogFormat::Json => match line.strip_prefix('{') {
            Some(rest) if rest.len() > 1 => {
                format!(r#"{{"timestamp":"{ts}","level":"INFO","target":"audit",{rest}"#)
            }
            // Not an object with fields: carried as a message, like any log line.
            _ => serde_json::json!({
                "timestamp": ts, "level": "INFO", "target": "audit", "message": line,
            })
            .to_string(),
        },
        LogFormat::Text => format!("{ts}  INFO audit: {line}"),
    }
}

#[cfg(test)]
mod tests {
    fn pending_copies(line: &[u8]) -> usize {
        super::lock(&super::PENDING)
            .windows(line.len())
            .filter(|w| *w == line)
            .count()
    }

    /// One test for both paths: they share the pending buffer, and a line
    /// written off an actix thread flushes it (tests run in parallel).
    #[test]
    fn lines_on_an_actix_thread_go_out_when_the_round_ends_and_elsewhere_at_once() {
        let line = b"{\"event\":\"batched_write_test\",\"where\":\"actix\"}\n";
        actix_rt::System::new().block_on(async {
            super::batched_write(line);
            super::batched_write(line);
            // Written in this round: both wait, with one flush queued.
            assert_eq!(pending_copies(line), 2);
            assert!(super::FLUSH_QUEUED.with(std::cell::Cell::get));
            // The flush runs behind this task; a bounded number of rounds.
            for _ in 0..100 {
                if !super::FLUSH_QUEUED.with(std::cell::Cell::get) {
                    break;
                }
                tokio::task::yield_now().await;
            }
            assert!(!super::FLUSH_QUEUED.with(std::cell::Cell::get));
            assert_eq!(pending_copies(line), 0);
        });

        let line = b"{\"event\":\"batched_write_test\",\"where\":\"plain\"}\n";
        super::batched_write(line);
        assert_eq!(pending_copies(line), 0);
        assert!(!super::FLUSH_QUEUED.with(std::cell::Cell::get));
    }

    #[test]
    fn one_writer_per_file_per_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let a = AuditSink::open(&path).unwrap();
        // The same file by another spelling of its path.
        let b = AuditSink::open(&dir.path().join(".").join("audit.jsonl")).unwrap();
        assert!(Arc::ptr_eq(&a.0, &b.0), "one sink for one file");
        let other = AuditSink::open(&dir.path().join("other.jsonl")).unwrap();
        assert!(!Arc::ptr_eq(&a.0, &other.0));
        assert!(a.write_line("{\"n\":1}") && b.write_line("{\"n\":2}"));
        b.sync();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"n\":1}\n{\"n\":2}\n");
        // Gone with its last clone; the next open starts a new writer.
        let weak = Arc::downgrade(&a.0);
        drop((a, b));
        assert!(weak.upgrade().is_none());
        let c = AuditSink::open(&path).unwrap();
        assert!(c.write_line("{\"n\":3}"));
        c.sync();
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .ends_with("{\"n\":3}\n"));
        // A path that cannot be opened is an error, shared or not.
        assert!(AuditSink::open(&dir.path().join("missing/audit.jsonl")).is_err());
    }

    use super::*;

    fn denied() -> AuditEvent {
        AuditEvent::VerifyDenied {
            reason: "expired",
            service: "echo".into(),
            client_id: None,
            suppressed: 0,
        }
    }

    #[test]
    fn lines_are_json_with_kind_time_and_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open("authz", Some(&path)).unwrap();
        log.record(
            7,
            AuditEvent::TokenIssued {
                client_id: "c1".into(),
                user: "alice".into(),
                jti: "j1".into(),
                grant: "authorization_code",
            },
        );
        log.sync();
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"ts":7,"source":"authz","event":"token_issued",
                "client_id":"c1","user":"alice","jti":"j1","grant":"authorization_code"})
        );
    }

    #[test]
    fn denials_are_rate_limited_and_the_rest_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open("verifier", Some(&path)).unwrap();
        let written = (0..1000).filter(|_| log.record(100, denied())).count();
        assert_eq!(written, DENIALS_PER_SECOND as usize);
        assert!(log.record(101, denied()));
        log.sync();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), DENIALS_PER_SECOND as usize + 1);
        assert_eq!(lines[0].get("suppressed"), None);
        assert_eq!(
            lines.last().unwrap()["suppressed"],
            1000 - DENIALS_PER_SECOND as u64
        );
    }

    /// A writer stuck on a full pipe (a reader that never reads) must not
    /// hold up whoever records: lines beyond the queue are dropped and counted.
    #[cfg(unix)]
    #[test]
    fn a_stalled_file_never_blocks_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("stalled");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // The read end, opened and never read (open blocks until both ends exist).
        let reader_path = fifo.clone();
        let reader = std::thread::spawn(move || std::fs::File::open(reader_path).unwrap());
        let sink = AuditSink::open_with_capacity(&fifo, 16).unwrap();
        let _held = reader.join().unwrap();
        // Far more than the pipe buffer (64 KiB) plus the queue can take.
        let line = "x".repeat(1000);
        let queued = (0..2000).filter(|_| sink.write_line(&line)).count();
        assert!(
            queued < 2000,
            "every line was taken: the pipe cannot hold them"
        );
        assert_eq!(sink.dropped(), 2000 - queued as u64);
    }

    #[test]
    fn operator_actions_and_device_denials_say_who_what_and_when() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open("cli", Some(&path)).unwrap();
        log.record(
            9,
            AuditEvent::OperatorAction {
                actor: "operator:alice".into(),
                action: "tokens revoke-user".into(),
                target: "local:bob".into(),
                outcome: Some("revoked 1".into()),
            },
        );
        log.record(
            10,
            AuditEvent::DeviceDenied {
                user: "local:bob".into(),
                client_id: "c1".into(),
            },
        );
        log.sync();
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines[0],
            serde_json::json!({"ts":9,"source":"cli","event":"operator_action",
                "actor":"operator:alice","action":"tokens revoke-user","target":"local:bob",
                "outcome":"revoked 1"})
        );
        assert_eq!(lines[1]["event"], "device_denied");
        assert_eq!(lines[1]["user"], "local:bob");
    }

    #[test]
    fn the_service_log_carries_the_record_itself_not_a_string_of_it() {
        use crate::logging::LogFormat;
        let line = r#"{"ts":7,"source":"authz","event":"client_registered","client_id":"c\"1"}"#;
        let json = service_log_line(LogFormat::Json, "2026-12-07T05:00:00.000001Z", line);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"timestamp":"2026-12-07T05:00:00.000001Z","level":"INFO",
                "target":"audit","ts":7,"source":"authz","event":"client_registered",
                "client_id":"c\"1"})
        );
        // Anything else is a message, still one valid JSON object.
        for odd in ["{}", "not json", ""] {
            let v: serde_json::Value =
                serde_json::from_str(&service_log_line(LogFormat::Json, "t", odd)).unwrap();
            assert_eq!(
                (&v["target"], &v["message"]),
                (&"audit".into(), &odd.into())
            );
        }
        assert_eq!(
            service_log_line(LogFormat::Text, "t", line),
            format!("t  INFO audit: {line}")
        );
    }
}
