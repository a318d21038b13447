//! The audit line of a tool, prompt or resource call.

use std::fmt;
use std::path::Path;

/// One audit line (JSON) per tool, prompt or resource call.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditRecord<'a> {
    /// Seconds since the Unix epoch (from the service's clock seam).
    pub ts: u64,
    /// `verifier` (header path) or `bridge` (body path).
    pub source: &'static str,
    pub service: &'a str,
    pub user_id: &'a str,
    pub user_name: &'a str,
    pub client_id: &'a str,
    pub method: &'a str,
    /// Tool or prompt name, resource URI; empty when unknown.
    pub tool: &'a str,
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// The rule label or `default`.
    pub rule: &'a str,
    /// Microseconds: the decision at the verifier; the whole call at the bridge.
    pub latency_us: u64,
    /// Bridge only: whether the server answered with a JSON-RPC error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<bool>,
}

/// The line as written: `{"event":"tool_call", ...}`, the shape of the other
/// audit events in the same file (`gateway_common::audit`).
#[derive(serde::Serialize)]
struct AuditLine<'r, 'a> {
    event: &'static str,
    #[serde(flatten)]
    record: &'r AuditRecord<'a>,
}

impl fmt::Display for AuditRecord<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = AuditLine {
            event: "tool_call",
            record: self,
        };
        match serde_json::to_string(&line) {
            Ok(s) => f.write_str(&s),
            Err(_) => Err(fmt::Error),
        }
    }
}

/// Appends tool-call audit lines to `AUDIT_LOG_FILE` through the shared
/// non-blocking writer ([`crate::audit::AuditSink`]): a request never waits
/// for the disk.
#[derive(Debug)]
pub struct AuditFile {
    sink: crate::audit::AuditSink,
}

impl AuditFile {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            sink: crate::audit::AuditSink::open(path)?,
        })
    }

    pub fn write(&self, record: &AuditRecord<'_>) {
        self.sink.write_line(&record.to_string());
    }

    /// Waits until every line so far is in the file (tests, shutdown).
    pub fn sync(&self) {
        self.sink.sync();
    }
}
