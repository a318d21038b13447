//! The security audit log: one JSON line per event (registration, sign-in,
//! consent, token issue/refresh/revoke, refresh-token reuse, denied verifies).
//!
//! Lines go to the tracing target `audit` (so they appear in the service log,
//! filterable with `RUST_LOG=audit=info`) and, when `AUDIT_LOG_FILE` is set,
//! are appended to that file. Events carry identifiers only — client id, user,
//! `jti` — never a token, code or secret: the types below have no field that
//! could hold one.
//!
//! Denied verifies are the one event an attacker controls the rate of, so
//! [`AuditLog::record`] keeps at most [`DENIALS_PER_SECOND`] of them per
//! second and counts the rest into the next written denial (`suppressed`).

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

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

/// Where a service's audit lines go. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct AuditLog {
    source: &'static str,
    file: Option<Mutex<std::fs::File>>,
    denials: Mutex<DenialWindow>,
}

impl AuditLog {
    /// Lines from `source` (`authz`, `verifier`, …); appended to `file` when given.
    pub fn open(source: &'static str, file: Option<&Path>) -> std::io::Result<Self> {
        let file = match file {
            Some(p) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            )),
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
        tracing::info!(target: "audit", "{line}");
        if let Some(file) = &self.file {
            // One write per line under the lock: lines never interleave.
            let mut buf = Vec::with_capacity(line.len() + 1);
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            if let Err(e) = lock(file).write_all(&buf) {
                tracing::error!(error = %e, "audit log write failed");
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests {
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
}
