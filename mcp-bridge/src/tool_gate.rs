//! Per-tool authorization and audit at the bridge: the body path, for every
//! client (the verifier decides earlier from `Mcp-Method`/`Mcp-Name` when a
//! client sends them; older clients send none, so the bridge decides again
//! from the JSON-RPC body it relays).
//!
//! * `TOOL_POLICY_FILE` (TOML, see [`gateway_common::tool_policy`]) and
//!   `TOOL_POLICY_SERVICE` (the section this bridge obeys; default: the one
//!   `MCP_<NAME>_ENABLED` service when exactly one is enabled). Re-read every
//!   second; a file that does not validate is logged and the old policy stays.
//! * A refused request gets a JSON-RPC error with its own id, code
//!   [`TOOL_DENIED_CODE`], on the normal response path (HTTP 200 or its SSE
//!   stream), so the client shows the message.
//! * `tools/list`, `prompts/list`, `resources/list` results are filtered to
//!   what the caller may call.
//! * The bridge sees the identity headers, not the token's `groups`: org and
//!   team conditions are unknown here and fail closed (an `allow` rule that
//!   needs them does not apply at the bridge, a `deny` rule does).
//! * An audit line per `tools/call`, `prompts/get`, `resources/read` (and per
//!   refusal): tracing target `audit`, and `AUDIT_LOG_FILE` when set.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use gateway_common::clock::{Clock, SystemClock};
use gateway_common::config::{ConfigError, Source};
use gateway_common::tool_policy::{
    name_field, AuditFile, AuditRecord, Call, Caller, Reload, Reloader, ToolPolicy,
};
use serde_json::Value;

use crate::identity::Identity;
use crate::jsonrpc;
use crate::metrics::Metrics;
use gateway_common::mcp_header;

/// JSON-RPC error code of a policy refusal (the verifier's header path uses
/// the same). JSON-RPC 2.0 §5.1 leaves -32000..-32099 to implementations; MCP
/// defines no "forbidden" code.
pub const TOOL_DENIED_CODE: i64 = -32003;

/// Policy, service name and audit sink of one bridge.
#[derive(Debug)]
pub struct ToolGate {
    service: String,
    path: Option<PathBuf>,
    policy: ArcSwapOption<ToolPolicy>,
    audit_file: Option<AuditFile>,
    watching: AtomicBool,
}

/// What to do after the server answers: filter a list, write the audit line.
#[derive(Debug)]
pub struct Followup {
    identity: Identity,
    method: String,
    list: bool,
    audit: Option<(String, Instant)>,
}

/// The gate's answer for one client request.
#[derive(Debug)]
pub enum Admission {
    /// Relay it; with a followup, the response must pass [`ToolGate::finish`].
    Forward(Option<Followup>),
    /// Answer with this JSON-RPC error instead.
    Refuse(Value),
}

impl Followup {
    /// A list result that must be filtered before the client sees it.
    pub fn is_list(&self) -> bool {
        self.list
    }
}

impl ToolGate {
    /// Reads `TOOL_POLICY_FILE`, `TOOL_POLICY_SERVICE`, `AUDIT_LOG_FILE`;
    /// `None` when neither a policy nor an audit file is configured.
    pub fn from_source(src: &Source) -> Result<Option<Arc<Self>>, ConfigError> {
        let path = src.get("TOOL_POLICY_FILE").map(PathBuf::from);
        let audit_path = src.get("AUDIT_LOG_FILE").map(PathBuf::from);
        if path.is_none() && audit_path.is_none() {
            return Ok(None);
        }
        let service = match src.get("TOOL_POLICY_SERVICE") {
            Some(s) => s.to_ascii_lowercase(),
            None => match src.enabled_services()?.as_slice() {
                [only] => only.clone(),
                // Audit lines only: the service name is a label, not a choice of rules.
                _ if path.is_none() => String::new(),
                _ => {
                    return Err(ConfigError::new(
                        "TOOL_POLICY_SERVICE",
                        "is required with TOOL_POLICY_FILE unless exactly one MCP_<NAME>_ENABLED is set",
                        "echo",
                    ))
                }
            },
        };
        let policy = match &path {
            None => None,
            Some(p) => Some(Arc::new(ToolPolicy::load(p).map_err(|e| {
                ConfigError::new(
                    "TOOL_POLICY_FILE",
                    e.to_string(),
                    "/etc/mcp/tool-policy.toml",
                )
            })?)),
        };
        let audit_file = match &audit_path {
            None => None,
            Some(p) => Some(AuditFile::open(p).map_err(|e| {
                ConfigError::new(
                    "AUDIT_LOG_FILE",
                    format!("cannot be opened for appending ({e})"),
                    "/var/log/mcp/audit.jsonl",
                )
            })?),
        };
        Ok(Some(Arc::new(Self {
            service,
            path,
            policy: ArcSwapOption::new(policy),
            audit_file,
            watching: AtomicBool::new(false),
        })))
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// Starts the once-a-second reload poll (first call only; needs a Tokio
    /// runtime). The task ends when the gate is dropped.
    pub fn watch(self: &Arc<Self>) {
        let Some(path) = self.path.clone() else {
            return;
        };
        if self.watching.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(p) = self.policy.load().as_ref() {
            if p.service(&self.service).is_none() {
                tracing::warn!(service = %self.service, "TOOL_POLICY_FILE has no section for this service; nothing is restricted");
            }
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut reloader = Reloader::new(path);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(gate) = weak.upgrade() else { return };
                match reloader.poll() {
                    Reload::Unchanged => {}
                    Reload::Changed(p) => {
                        gate.policy.store(Some(Arc::new(p)));
                        tracing::info!(path = %reloader.path().display(), "tool policy reloaded");
                    }
                    Reload::Invalid(e) => {
                        tracing::error!(error = %e, "tool policy not reloaded; keeping the previous one")
                    }
                }
            }
        });
    }

    /// Replaces the policy (tests, or an embedding that loads it itself).
    pub fn set_policy(&self, policy: ToolPolicy) {
        self.policy.store(Some(Arc::new(policy)));
    }

    /// Decides one client request (`message` is the whole JSON-RPC request).
    pub fn admit(&self, metrics: &Metrics, identity: &Identity, message: &Value) -> Admission {
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let call = Call::from_request(method, message.get("params"));
        let audited = call.is_audited();
        let list = matches!(method, "tools/list" | "prompts/list" | "resources/list");
        let guard = self.policy.load();
        let service_policy = guard.as_ref().and_then(|p| p.service(&self.service));
        if let Some(policy) = service_policy {
            let started = Instant::now();
            let verdict = policy.decide(&caller(identity), &call);
            if !verdict.allowed() {
                metrics.tool_denied.inc();
                self.audit(&AuditRecord {
                    ts: SystemClock.now_secs(),
                    source: "bridge",
                    service: &self.service,
                    user_id: &identity.user_id,
                    user_name: &identity.user_name,
                    client_id: &identity.client_id,
                    method,
                    tool: call.name.unwrap_or_default(),
                    decision: "deny",
                    rule: verdict.by(),
                    latency_us: micros(started),
                    error: None,
                });
                let what = match call.name {
                    Some(n) => format!("{method} {n:?}"),
                    None => method.to_string(),
                };
                return Admission::Refuse(jsonrpc::error_with_data(
                    message.get("id"),
                    TOOL_DENIED_CODE,
                    &format!("Forbidden by the gateway's tool policy: {what}"),
                    serde_json::json!({ "method": method, "name": call.name }),
                ));
            }
            if audited {
                metrics.tool_allowed.inc();
            }
        }
        let list = list && service_policy.is_some();
        if !list && !audited {
            return Admission::Forward(None);
        }
        Admission::Forward(Some(Followup {
            identity: identity.clone(),
            method: method.to_string(),
            list,
            audit: audited.then(|| (call.name.unwrap_or_default().to_string(), Instant::now())),
        }))
    }

    /// Filters a list result and writes the audit line of a call.
    pub fn finish(&self, f: Followup, response: &mut Value) {
        if f.list {
            let guard = self.policy.load();
            if let Some(policy) = guard.as_ref().and_then(|p| p.service(&self.service)) {
                if let Some(result) = response.get_mut("result") {
                    policy.filter_list(&caller(&f.identity), &f.method, result);
                }
            }
        }
        if let Some((tool, started)) = f.audit {
            let rule = {
                let guard = self.policy.load();
                match guard.as_ref().and_then(|p| p.service(&self.service)) {
                    None => "none".to_string(),
                    Some(p) => {
                        let call = Call {
                            method: &f.method,
                            name: Some(&tool),
                        };
                        p.decide(&caller(&f.identity), &call).by().to_string()
                    }
                }
            };
            self.audit(&AuditRecord {
                ts: SystemClock.now_secs(),
                source: "bridge",
                service: &self.service,
                user_id: &f.identity.user_id,
                user_name: &f.identity.user_name,
                client_id: &f.identity.client_id,
                method: &f.method,
                tool: &tool,
                decision: "allow",
                rule: &rule,
                latency_us: micros(started),
                error: Some(response.get("error").is_some()),
            });
        }
    }

    fn audit(&self, record: &AuditRecord<'_>) {
        gateway_common::audit::log_line(&record.to_string());
        if let Some(f) = &self.audit_file {
            f.write(record);
        }
    }
}

fn micros(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// The caller as the bridge knows it: identity headers, no groups.
fn caller(id: &Identity) -> Caller<'_> {
    Caller {
        user_id: &id.user_id,
        user_name: &id.user_name,
        email: &id.user_email,
        client_id: &id.client_id,
        scopes: &id.scopes,
        groups: None,
    }
}

/// Stateful requests may carry `Mcp-Method` / `Mcp-Name` too (clients that
/// always send them): when present they must agree with the body, as in
/// 2026-07-28 — otherwise the verifier may have decided on one name and the
/// server would run another.
pub fn check_present_headers(
    method_header: Option<&str>,
    name_header: Option<&str>,
    message: &Value,
) -> Result<(), String> {
    let method = message
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some(h) = method_header {
        if h != method {
            return Err(format!(
                "Mcp-Method header value {h:?} does not match body value {method:?}"
            ));
        }
    }
    if let (Some(raw), Some(field)) = (name_header, name_field(method)) {
        let body = message
            .get("params")
            .and_then(|p| p.get(field))
            .and_then(Value::as_str)
            .unwrap_or_default();
        match mcp_header::decode(raw) {
            None => return Err("Mcp-Name header is not valid base64 UTF-8".into()),
            Some(h) if h == body => {}
            Some(h) => {
                return Err(format!(
                    "Mcp-Name header value {h:?} does not match body value {body:?}"
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gate(policy: &str) -> Arc<ToolGate> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, policy).unwrap();
        let src = Source::from_pairs([
            ("TOOL_POLICY_FILE", path.to_str().unwrap()),
            ("MCP_ECHO_ENABLED", "true"),
        ]);
        ToolGate::from_source(&src).unwrap().unwrap()
    }

    fn alice() -> Identity {
        Identity {
            user_id: "local:alice".into(),
            user_name: "alice".into(),
            ..Identity::default()
        }
    }

    const ONE_TOOL: &str = "[services.echo]\ndefault='deny'\n[[services.echo.rules]]\neffect='allow'\nusers=['alice']\ntools=['echo']\n";

    #[test]
    fn refusals_carry_the_request_id_and_lists_are_filtered() {
        let g = gate(ONE_TOOL);
        assert_eq!(g.service(), "echo");
        let m = Metrics::default();
        let call = json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"whoami"}});
        match g.admit(&m, &alice(), &call) {
            Admission::Refuse(e) => {
                assert_eq!(e["id"], 7);
                assert_eq!(e["error"]["code"], TOOL_DENIED_CODE);
            }
            other => panic!("{other:?}"),
        }
        let list = json!({"jsonrpc":"2.0","id":8,"method":"tools/list"});
        let Admission::Forward(Some(f)) = g.admit(&m, &alice(), &list) else {
            panic!("list must be filtered")
        };
        let mut resp =
            json!({"jsonrpc":"2.0","id":8,"result":{"tools":[{"name":"echo"},{"name":"whoami"}]}});
        g.finish(f, &mut resp);
        assert_eq!(resp["result"]["tools"], json!([{"name":"echo"}]));
        assert_eq!(m.tool_denied.get(), 1);
    }

    #[test]
    fn present_headers_must_match_the_body() {
        let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}});
        assert!(check_present_headers(None, None, &call).is_ok());
        assert!(check_present_headers(Some("tools/call"), None, &call).is_ok());
        assert!(check_present_headers(Some("tools/call"), Some("echo"), &call).is_ok());
        assert!(check_present_headers(Some("tools/call"), Some("whoami"), &call).is_err());
        assert!(check_present_headers(Some("tools/list"), None, &call).is_err());
        assert!(check_present_headers(None, Some("=?base64?d2hvYW1p?="), &call).is_err());
    }

    #[test]
    fn config_errors_name_their_variable() {
        let src = Source::from_pairs([("TOOL_POLICY_FILE", "/nonexistent/p.toml")]);
        assert_eq!(
            ToolGate::from_source(&src).unwrap_err().var,
            "TOOL_POLICY_SERVICE"
        );
        let src = src.with("TOOL_POLICY_SERVICE", "echo");
        let e = ToolGate::from_source(&src).unwrap_err();
        assert_eq!(e.var, "TOOL_POLICY_FILE");
        assert!(ToolGate::from_source(&Source::from_pairs([("X", "1")]))
            .unwrap()
            .is_none());
        let dir = tempfile::tempdir().unwrap();
        let audit = dir.path().join("audit.jsonl");
        let only_audit = Source::from_pairs([("AUDIT_LOG_FILE", audit.to_str().unwrap())]);
        let g = ToolGate::from_source(&only_audit).unwrap().unwrap();
        assert_eq!(g.service(), "");
    }
}
