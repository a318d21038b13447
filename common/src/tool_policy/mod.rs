//! Per-tool authorization: who may call which MCP method, tool, prompt or
//! resource. Shared by the verifier (which decides from the `Mcp-Method` /
//! `Mcp-Name` request headers of MCP 2026-07-28, without the body) and the
//! bridge (which decides from the JSON-RPC body, for every client). Pure logic:
//! text in, a compiled [`ToolPolicy`] out; a caller and a call in, a [`Verdict`]
//! out. Reading the file and swapping it in on change is the services' job
//! (see [`Reloader`] for the change detection they share).
//!
//! # The file (`TOOL_POLICY_FILE`, TOML)
//!
//! ```toml
//! [services.echo]          # the service name: MCP_<NAME>_ENABLED, lower case
//! default = "deny"         # "allow" (the default) or "deny"
//!
//! [[services.echo.rules]]  # rules are tried in order; the first that applies decides
//! name = "sre may echo"    # optional, shown in audit lines
//! effect = "allow"         # "allow" or "deny"
//! teams = ["acme/sre"]     # who: any of users / orgs / teams / emails ...
//! users = ["alice", "github:42"]
//! emails = ["bob@example.com", "@example.org"]
//! clients = ["claude-desktop"]   # ... and, when given, one of these client ids
//! scopes = ["mcp:write"]         # ... and, when given, one of these granted scopes
//! tools = ["echo", "search_*"]   # what: tools/call names (globs)
//! prompts = ["*"]                # prompts/get names
//! resources = ["file:///docs/*"] # resources/read URIs
//! methods = ["tools/call"]       # JSON-RPC methods (globs)
//! ```
//!
//! * A rule applies to a caller when the caller matches one of `users`
//!   (an entry with `:` is the token `sub`, otherwise the login, ignoring ASCII
//!   case), `orgs` (a `groups` claim entry `org` or `org/...`), `teams`
//!   (`org/team`, exactly) or `emails` (an address, or `@domain` for a whole
//!   domain, ignoring case) — no principal field means everyone — and, when
//!   `clients` / `scopes` are given, the client id is one of them and the
//!   token holds one of those scopes.
//! * A rule applies to a call when `methods` (if given) matches the method and,
//!   if any of `tools` / `prompts` / `resources` is given, the call is a
//!   `tools/call` / `prompts/get` / `resources/read` whose name (URI) matches.
//!   A rule with no target applies to every method.
//! * Globs: `*` matches any run of characters (`/` included); nothing else is special.
//! * When no rule applies: `initialize`, `ping`, `server/discover`,
//!   `notifications/*` and `*/list` are allowed (list results are filtered
//!   to what the caller may use: [`ServicePolicy::filter_list`]), anything
//!   else gets the service's `default`. A service missing from the file is
//!   not restricted.
//!
//! # Unknown facts fail closed
//! The bridge sees only the identity headers, not the token's `groups`; the
//! verifier may get a `tools/call` without `Mcp-Name`. A condition that cannot
//! be decided is *unknown*: an `allow` rule then does not apply, a `deny`
//! rule does.
//!
//! # Layout
//! `glob.rs` compiles name patterns; `parse.rs` turns the file's text into a
//! [`ToolPolicy`]; `eval.rs` decides calls; `reload.rs` notices a changed
//! file; `audit.rs` writes the audit line of a call.

mod audit;
mod eval;
mod glob;
mod parse;
mod reload;

pub use audit::{AuditFile, AuditRecord};
pub use eval::{name_field, Applicable, Call, Caller, Verdict};
pub use glob::Glob;
pub use reload::{Reload, Reloader};

/// Everything that can be wrong with a policy file; the path names the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy error: {path}: {message}")]
pub struct PolicyError {
    /// `services.echo.rules[2]`, `services.echo.default`, `line 3`, or the file name.
    pub path: String,
    pub message: String,
}

impl PolicyError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
}

/// A compiled policy file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolPolicy {
    /// Few services: a linear search beats hashing the name.
    services: Vec<(String, ServicePolicy)>,
}

/// One service's default and rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePolicy {
    pub default: Effect,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    label: String,
    effect: Effect,
    users: Vec<String>,
    orgs: Vec<String>,
    teams: Vec<String>,
    emails: Vec<String>,
    clients: Vec<String>,
    scopes: Vec<String>,
    methods: Vec<Glob>,
    tools: Vec<Glob>,
    prompts: Vec<Glob>,
    resources: Vec<Glob>,
}

impl ToolPolicy {
    /// The policy of one service (`None`: the file does not restrict it).
    pub fn service(&self, name: &str) -> Option<&ServicePolicy> {
        self.services
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, p)| p)
    }

    /// Where one service's policy sits, for [`ToolPolicy::service_at`]: a
    /// caller that decides many calls for one service looks it up once.
    pub fn service_index(&self, name: &str) -> Option<usize> {
        self.services
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    pub fn service_at(&self, index: usize) -> Option<&ServicePolicy> {
        self.services.get(index).map(|(_, p)| p)
    }

    /// Every service's name and policy, in [`ToolPolicy::service_index`] order.
    pub fn services(&self) -> impl Iterator<Item = (&str, &ServicePolicy)> {
        self.services.iter().map(|(n, p)| (n.as_str(), p))
    }

    pub fn service_names(&self) -> impl Iterator<Item = &str> {
        self.services.iter().map(|(n, _)| n.as_str())
    }
}

#[cfg(test)]
mod tests;
