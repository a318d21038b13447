//! Per-tool authorization at the verifier: the header path.
//!
//! MCP 2026-07-28 clients mirror the JSON-RPC method and the tool / prompt
//! name or resource URI into `Mcp-Method` and `Mcp-Name`; Traefik and Caddy
//! pass every request header to the verifier, nginx as `deploy/nginx/` sets
//! them. With `TOOL_POLICY_FILE` set, a request carrying `Mcp-Method` is
//! decided by [`gateway_common::tool_policy`] after the token checks. A request
//! without the header (older clients) passes here and is decided by the bridge
//! from its body.
//!
//! A denial is 403 with a JSON-RPC error body ([`denial_body`]), code
//! [`TOOL_DENIED_CODE`]: MCP clients show a JSON-RPC error's message, not an
//! HTML page. The verifier never sees the body, so the `id` is `null`
//! (JSON-RPC 2.0 §5: null when the id cannot be determined).
//!
//! The file is re-read every second ([`crate::tool_policy_reload::run`]); a new
//! file that does not validate is logged and the previous policy stays.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use gateway_common::tool_policy::{
    Applicable, AuditFile, AuditRecord, Caller, PolicyError, ServicePolicy, ToolPolicy,
};

/// JSON-RPC error code of a policy denial, at the verifier and the bridge alike.
/// JSON-RPC 2.0 §5.1 leaves -32000..-32099 to implementations; MCP defines no
/// "forbidden" code. The bridge uses -32000..-32002 and -32020 for other things.
pub const TOOL_DENIED_CODE: i64 = -32003;

/// `Mcp-Method` / `Mcp-Name` as the proxy forwarded them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpCall<'a> {
    pub method: &'a str,
    /// Decoded from the `=?base64?…?=` sentinel when used; `None` when absent or undecodable.
    pub name: Option<Cow<'a, str>>,
}

impl<'a> McpCall<'a> {
    /// From the raw header values; `None` without a usable `Mcp-Method`.
    pub fn from_headers(method: Option<&'a [u8]>, name: Option<&'a [u8]>) -> Option<Self> {
        let method = std::str::from_utf8(method?).ok()?.trim();
        if method.is_empty() {
            return None;
        }
        let name = name
            .and_then(|n| std::str::from_utf8(n).ok())
            .and_then(gateway_common::mcp_header::decode);
        Some(Self { method, name })
    }
}

/// What one token's caller is to the tool policy, settled on its first MCP
/// call and kept with the cached verification: for each service of the
/// policy, the rules that can apply to this caller
/// ([`ServicePolicy::applicable`]). A later call with the same token only
/// matches the call against those rules.
///
/// Issue 11 wants the policy to cost ≤ 5% of a cached verify (a few hundred
/// ns), so the hot path reads this with plain loads: no reference count and
/// no lock (`verifier/examples/bench_verify.rs` measures it).
#[derive(Debug)]
pub struct ToolMemo {
    /// The policy generation this was computed for ([`crate::Verifier`] bumps it on
    /// every reload; a memo of an older generation is recomputed).
    pub generation: u64,
    policy: Option<Arc<ToolPolicy>>,
    /// Indexed like the policy's services.
    applicable: Vec<Applicable>,
}

impl ToolMemo {
    pub fn new(generation: u64, policy: Option<Arc<ToolPolicy>>, caller: &Caller<'_>) -> Self {
        let applicable = policy
            .as_deref()
            .map(|p| p.services().map(|(_, sp)| sp.applicable(caller)).collect())
            .unwrap_or_default();
        Self {
            generation,
            policy,
            applicable,
        }
    }

    /// `service`'s policy and the caller's applicable rules in it; `None`:
    /// the service is not restricted.
    pub fn service(&self, service: &str) -> Option<(&ServicePolicy, &Applicable)> {
        let policy = self.policy.as_deref()?;
        let i = policy.service_index(service)?;
        Some((policy.service_at(i)?, self.applicable.get(i)?))
    }
}

/// A cached verification's [`ToolMemo`], set once. Only a cache: cloning a
/// verification starts it empty, and it never makes two verifications differ.
#[derive(Debug, Default)]
pub struct ToolMemoSlot(OnceLock<ToolMemo>);

impl ToolMemoSlot {
    pub fn get(&self) -> Option<&ToolMemo> {
        self.0.get()
    }

    pub fn get_or_init(&self, f: impl FnOnce() -> ToolMemo) -> &ToolMemo {
        self.0.get_or_init(f)
    }
}

impl Clone for ToolMemoSlot {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for ToolMemoSlot {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ToolMemoSlot {}

/// `TOOL_POLICY_FILE` and the policy read from it at start-up.
#[derive(Debug, Clone)]
pub struct ToolPolicyConfig {
    pub path: PathBuf,
    pub initial: Arc<ToolPolicy>,
}

/// Loads a policy file and checks that it names only configured services (a
/// misspelt service would silently restrict nothing).
pub fn load_checked(path: &Path, services: &[&str]) -> Result<ToolPolicy, PolicyError> {
    let policy = ToolPolicy::load(path)?;
    check_services(&policy, services)?;
    Ok(policy)
}

/// Checks that `policy` names only the configured `services`.
pub fn check_services(policy: &ToolPolicy, services: &[&str]) -> Result<(), PolicyError> {
    for name in policy.service_names() {
        if !services.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            return Err(PolicyError {
                path: format!("services.{name}"),
                message: format!("no MCP service {name:?} is enabled (MCP_<NAME>_ENABLED)"),
            });
        }
    }
    Ok(())
}

/// The JSON-RPC error body of a denial.
pub fn denial_body(call: &McpCall<'_>) -> String {
    let what = match &call.name {
        Some(name) => format!("{} {name:?}", call.method),
        None => call.method.to_string(),
    };
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {
            "code": TOOL_DENIED_CODE,
            "message": format!("Forbidden by the gateway's tool policy: {what}"),
            "data": {
                "method": call.method,
                "name": call.name.as_deref(),
                "note": "decided from the Mcp-Method/Mcp-Name headers; the request id is not known here",
            }
        }
    })
    .to_string()
}

/// Writes an audit line: tracing target `audit`, and `AUDIT_LOG_FILE` when set.
pub(crate) fn audit(file: Option<&AuditFile>, record: &AuditRecord<'_>) {
    gateway_common::audit::log_line(&record.to_string());
    if let Some(f) = file {
        f.write(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_read_and_decoded() {
        let c = McpCall::from_headers(Some(b"tools/call"), Some(b"=?base64?ZWNobw==?=")).unwrap();
        assert_eq!((c.method, c.name.as_deref()), ("tools/call", Some("echo")));
        let c = McpCall::from_headers(Some(b"tools/call"), Some(b"=?base64?!!?=")).unwrap();
        assert_eq!(c.name, None);
        assert!(McpCall::from_headers(None, Some(b"echo")).is_none());
        assert!(McpCall::from_headers(Some(b" "), None).is_none());
    }

    #[test]
    fn the_denial_is_a_json_rpc_error_with_a_null_id() {
        let c = McpCall::from_headers(Some(b"tools/call"), Some(b"whoami")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&denial_body(&c)).unwrap();
        assert_eq!(v["jsonrpc"], "2.0");
        assert!(v["id"].is_null());
        assert_eq!(v["error"]["code"], TOOL_DENIED_CODE);
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tools/call \"whoami\""));
    }
}
