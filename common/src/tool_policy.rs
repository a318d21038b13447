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

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use toml::Value as Toml;

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

/// A `*`-only glob, compiled once at load: the common shapes (exact, `p*`,
/// `*s`, `*`) match without walking pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(GlobKind);

#[derive(Debug, Clone, PartialEq, Eq)]
enum GlobKind {
    Any,
    Exact(String),
    Prefix(String),
    Suffix(String),
    /// Literal pieces between stars (at least three).
    Pieces(Vec<String>),
}

impl Glob {
    pub fn new(pattern: &str) -> Self {
        let parts: Vec<&str> = pattern.split('*').collect();
        Self(match parts.as_slice() {
            [exact] => GlobKind::Exact((*exact).to_string()),
            ["", ""] => GlobKind::Any,
            [prefix, ""] => GlobKind::Prefix((*prefix).to_string()),
            ["", suffix] => GlobKind::Suffix((*suffix).to_string()),
            _ => GlobKind::Pieces(parts.iter().map(|p| p.to_string()).collect()),
        })
    }

    #[inline]
    pub fn is_match(&self, text: &str) -> bool {
        match &self.0 {
            GlobKind::Any => true,
            GlobKind::Exact(e) => text == e,
            GlobKind::Prefix(p) => text.starts_with(p.as_str()),
            GlobKind::Suffix(s) => text.ends_with(s.as_str()),
            GlobKind::Pieces(parts) => pieces_match(parts, text),
        }
    }
}

fn pieces_match(parts: &[String], text: &str) -> bool {
    let (Some((first, rest)), true) = (parts.split_first(), parts.len() >= 2) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return false;
    };
    if text.len() < first.len() + last.len()
        || !text.starts_with(first.as_str())
        || !text.ends_with(last.as_str())
    {
        return false;
    }
    // Leftmost match of each middle piece is optimal for `*`-only globs.
    let mut hay = &text[first.len()..text.len() - last.len()];
    for piece in middle {
        match hay.find(piece.as_str()) {
            Some(at) => hay = &hay[at + piece.len()..],
            None => return false,
        }
    }
    true
}

/// Who is calling, as far as the deciding service knows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller<'a> {
    /// Token `sub` (`github:1234`).
    pub user_id: &'a str,
    /// Login name.
    pub user_name: &'a str,
    pub email: &'a str,
    pub client_id: &'a str,
    /// Space-separated granted scopes.
    pub scopes: &'a str,
    /// The token's `groups` (`org`, `org/team`); `None` where they are not known (the bridge).
    pub groups: Option<&'a [String]>,
}

/// What is being called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call<'a> {
    pub method: &'a str,
    /// `params.name` for tools/call and prompts/get, `params.uri` for
    /// resources/read; `None` when not known.
    pub name: Option<&'a str>,
}

impl<'a> Call<'a> {
    /// The name from a JSON-RPC request's params, for the methods that have one.
    pub fn from_request(method: &'a str, params: Option<&'a Value>) -> Self {
        let name =
            name_field(method).and_then(|f| params.and_then(|p| p.get(f)).and_then(Value::as_str));
        Self { method, name }
    }

    /// Whether this call is one an audit line is written for.
    pub fn is_audited(&self) -> bool {
        matches!(self.method, "tools/call" | "prompts/get" | "resources/read")
    }
}

/// `params` field naming the target of a method, if it has one.
pub fn name_field(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

/// The rules of one [`ServicePolicy`] that can apply to one caller (see
/// [`ServicePolicy::applicable`]): their indices, in order, and whether the
/// caller's match is only *unknown* (fail-closed, as in [`ServicePolicy::decide`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applicable {
    rules: Vec<(usize, bool)>,
}

impl Applicable {
    /// How many rules are left to match against calls.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// The decision and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict<'p> {
    pub effect: Effect,
    /// The rule that decided (its `name`, else `rules[i]`); `None`: the default.
    pub rule: Option<&'p str>,
}

impl Verdict<'_> {
    pub fn allowed(&self) -> bool {
        self.effect == Effect::Allow
    }

    /// For audit lines: the rule label or `default`.
    pub fn by(&self) -> &str {
        self.rule.unwrap_or("default")
    }
}

/// Which of a rule's target lists a method's name is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Tool,
    Prompt,
    Resource,
    Other,
}

impl Target {
    fn of(method: &str) -> Self {
        match method {
            "tools/call" => Self::Tool,
            "prompts/get" => Self::Prompt,
            "resources/read" => Self::Resource,
            _ => Self::Other,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tri {
    Yes,
    No,
    Unknown,
}

impl Tri {
    fn and(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::No, _) | (_, Tri::No) => Tri::No,
            (Tri::Unknown, _) | (_, Tri::Unknown) => Tri::Unknown,
            (Tri::Yes, Tri::Yes) => Tri::Yes,
        }
    }
}

impl ToolPolicy {
    /// Parses and validates a policy file's text.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let message = e.message().replace('\n', " ");
            PolicyError::new(
                line.map_or_else(|| "file".to_string(), |l| format!("line {l}")),
                message,
            )
        })?;
        let mut services = Vec::new();
        for (key, value) in &table {
            match key.as_str() {
                "services" => {
                    let Toml::Table(t) = value else {
                        return Err(PolicyError::new("services", "must be a table"));
                    };
                    for (name, v) in t {
                        let path = format!("services.{name}");
                        services.push((name.to_ascii_lowercase(), parse_service(&path, v)?));
                    }
                }
                other => {
                    return Err(PolicyError::new(
                        "file",
                        format!("unknown field {other:?} (expected \"services\")"),
                    ))
                }
            }
        }
        Ok(Self { services })
    }

    /// Reads and parses a file; a read error names the file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PolicyError::new(path.display().to_string(), e.to_string()))?;
        Self::parse(&text)
    }

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

impl ServicePolicy {
    /// Decides one call. The first rule that applies wins; else the built-in
    /// lifecycle/list allowance; else the default.
    pub fn decide(&self, caller: &Caller<'_>, call: &Call<'_>) -> Verdict<'_> {
        // The target first: a glob on the name rules most rules out cheaply.
        let target = Target::of(call.method);
        self.first_applying(
            call,
            self.rules.iter().filter_map(|rule| {
                let what = rule.what(call, target);
                (what != Tri::No).then(|| (rule, what.and(rule.who(caller))))
            }),
        )
    }

    /// The rules that can apply to `caller`, whatever it calls: everything a
    /// rule says about *who* is settled once here. A caller makes many calls
    /// with one token, so the verifier keeps this beside its cached
    /// verification and [`ServicePolicy::decide_for`] then only matches the
    /// call against these rules (issue 11: the policy must cost ≤ 5% of a
    /// cached verify, and most rules of a real policy name someone else).
    pub fn applicable(&self, caller: &Caller<'_>) -> Applicable {
        let rules = self
            .rules
            .iter()
            .enumerate()
            .filter_map(|(i, rule)| match rule.who(caller) {
                Tri::No => None,
                who => Some((i, who == Tri::Unknown)),
            })
            .collect();
        Applicable { rules }
    }

    /// [`ServicePolicy::decide`] for the caller `applicable` was computed
    /// for, from this same policy (the same verdict, by construction: the
    /// rules left out are exactly those whose *who* is `No`, which never apply).
    pub fn decide_for(&self, applicable: &Applicable, call: &Call<'_>) -> Verdict<'_> {
        let target = Target::of(call.method);
        self.first_applying(
            call,
            applicable.rules.iter().filter_map(|&(i, unknown)| {
                let rule = self.rules.get(i)?;
                let what = rule.what(call, target);
                let who = if unknown { Tri::Unknown } else { Tri::Yes };
                (what != Tri::No).then(|| (rule, what.and(who)))
            }),
        )
    }

    /// The first candidate that decides, in rule order; else the built-in
    /// allowance; else the default.
    fn first_applying<'p>(
        &'p self,
        call: &Call<'_>,
        candidates: impl Iterator<Item = (&'p Rule, Tri)>,
    ) -> Verdict<'p> {
        for (rule, applies) in candidates {
            let decided = match (rule.effect, applies) {
                (_, Tri::Yes) => true,
                // Fail closed: an undecidable allow does not apply, an undecidable deny does.
                (Effect::Allow, Tri::Unknown) => false,
                (Effect::Deny, Tri::Unknown) => true,
                (_, Tri::No) => false,
            };
            if decided {
                return Verdict {
                    effect: rule.effect,
                    rule: Some(rule.label.as_str()),
                };
            }
        }
        let effect = if always_allowed(call.method) {
            Effect::Allow
        } else {
            self.default
        };
        Verdict { effect, rule: None }
    }

    /// Removes from a `tools/list`, `prompts/list` or `resources/list` result
    /// what the caller may not call; returns how many entries were removed.
    /// Other methods and malformed results are left alone.
    pub fn filter_list(&self, caller: &Caller<'_>, list_method: &str, result: &mut Value) -> usize {
        let (key, field, call_method) = match list_method {
            "tools/list" => ("tools", "name", "tools/call"),
            "prompts/list" => ("prompts", "name", "prompts/get"),
            "resources/list" => ("resources", "uri", "resources/read"),
            _ => return 0,
        };
        let Some(Value::Array(items)) = result.get_mut(key) else {
            return 0;
        };
        let before = items.len();
        let applicable = self.applicable(caller);
        items.retain(|item| {
            let name = item.get(field).and_then(Value::as_str);
            name.is_some_and(|name| {
                self.decide_for(
                    &applicable,
                    &Call {
                        method: call_method,
                        name: Some(name),
                    },
                )
                .allowed()
            })
        });
        before - items.len()
    }
}

/// Lifecycle and discovery: never the thing a policy protects (lists are filtered).
fn always_allowed(method: &str) -> bool {
    matches!(method, "initialize" | "ping" | "server/discover")
        || method.starts_with("notifications/")
        || method.ends_with("/list")
}

impl Rule {
    fn who(&self, c: &Caller<'_>) -> Tri {
        if !self.clients.is_empty() && !self.clients.iter().any(|x| x == c.client_id) {
            return Tri::No;
        }
        if !self.scopes.is_empty()
            && !c
                .scopes
                .split(' ')
                .any(|granted| self.scopes.iter().any(|s| s == granted))
        {
            return Tri::No;
        }
        let principals = !(self.users.is_empty()
            && self.orgs.is_empty()
            && self.teams.is_empty()
            && self.emails.is_empty());
        let mut who = if principals { Tri::No } else { Tri::Yes };
        if principals {
            let user = self.users.iter().any(|u| {
                if u.contains(':') {
                    u == c.user_id
                } else {
                    !c.user_name.is_empty() && u.eq_ignore_ascii_case(c.user_name)
                }
            });
            let email = !c.email.is_empty()
                && self.emails.iter().any(|e| match e.strip_prefix('@') {
                    Some(domain) => c
                        .email
                        .rsplit_once('@')
                        .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain)),
                    None => e.eq_ignore_ascii_case(c.email),
                });
            if user || email {
                who = Tri::Yes;
            } else if !self.orgs.is_empty() || !self.teams.is_empty() {
                who = match c.groups {
                    None => Tri::Unknown,
                    Some(groups) => {
                        let org = self.orgs.iter().any(|org| {
                            groups.iter().any(|g| {
                                let g_org = g.split_once('/').map_or(g.as_str(), |(o, _)| o);
                                g_org.eq_ignore_ascii_case(org)
                            })
                        });
                        let team = self
                            .teams
                            .iter()
                            .any(|t| groups.iter().any(|g| g.eq_ignore_ascii_case(t)));
                        if org || team {
                            Tri::Yes
                        } else {
                            Tri::No
                        }
                    }
                };
            }
        }
        who
    }

    /// `target` is `Target::of(call.method)`, worked out once per call, not per rule.
    fn what(&self, call: &Call<'_>, target: Target) -> Tri {
        if !self.methods.is_empty() && !self.methods.iter().any(|g| g.is_match(call.method)) {
            return Tri::No;
        }
        if self.tools.is_empty() && self.prompts.is_empty() && self.resources.is_empty() {
            return Tri::Yes;
        }
        let globs = match target {
            Target::Tool => &self.tools,
            Target::Prompt => &self.prompts,
            Target::Resource => &self.resources,
            Target::Other => return Tri::No,
        };
        if globs.is_empty() {
            return Tri::No;
        }
        match call.name {
            None => Tri::Unknown,
            Some(name) if globs.iter().any(|g| g.is_match(name)) => Tri::Yes,
            Some(_) => Tri::No,
        }
    }
}

fn parse_service(path: &str, v: &Toml) -> Result<ServicePolicy, PolicyError> {
    let Toml::Table(t) = v else {
        return Err(PolicyError::new(path, "must be a table"));
    };
    let mut default = Effect::Allow;
    let mut rules = Vec::new();
    for (key, value) in t {
        match key.as_str() {
            "default" => default = parse_effect(&format!("{path}.default"), value)?,
            "rules" => {
                let Toml::Array(items) = value else {
                    return Err(PolicyError::new(
                        format!("{path}.rules"),
                        "must be an array of tables ([[...rules]])",
                    ));
                };
                for (i, item) in items.iter().enumerate() {
                    rules.push(parse_rule(&format!("{path}.rules[{i}]"), i, item)?);
                }
            }
            other => {
                return Err(PolicyError::new(
                    path,
                    format!("unknown field {other:?} (expected \"default\" or \"rules\")"),
                ))
            }
        }
    }
    Ok(ServicePolicy { default, rules })
}

fn parse_effect(path: &str, v: &Toml) -> Result<Effect, PolicyError> {
    match v.as_str() {
        Some("allow") => Ok(Effect::Allow),
        Some("deny") => Ok(Effect::Deny),
        _ => Err(PolicyError::new(path, "must be \"allow\" or \"deny\"")),
    }
}

const RULE_FIELDS: &str =
    "name, effect, users, orgs, teams, emails, clients, scopes, methods, tools, prompts, resources";

fn parse_rule(path: &str, index: usize, v: &Toml) -> Result<Rule, PolicyError> {
    let Toml::Table(t) = v else {
        return Err(PolicyError::new(path, "must be a table"));
    };
    let mut rule = Rule {
        label: format!("rules[{index}]"),
        effect: Effect::Deny,
        users: vec![],
        orgs: vec![],
        teams: vec![],
        emails: vec![],
        clients: vec![],
        scopes: vec![],
        methods: vec![],
        tools: vec![],
        prompts: vec![],
        resources: vec![],
    };
    let mut effect = None;
    for (key, value) in t {
        let field = |check: fn(&str) -> Result<(), &'static str>| strings(path, key, value, check);
        match key.as_str() {
            "name" => {
                rule.label = value
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        PolicyError::new(path, "field \"name\" must be a non-empty string")
                    })?
                    .to_string()
            }
            "effect" => effect = Some(parse_effect(&format!("{path}.effect"), value)?),
            "users" => rule.users = field(non_empty)?,
            "orgs" => rule.orgs = field(org)?,
            "teams" => rule.teams = field(team)?,
            "emails" => rule.emails = field(email)?,
            "clients" => rule.clients = field(non_empty)?,
            "scopes" => rule.scopes = field(scope_token)?,
            "methods" => rule.methods = globs(field(non_empty)?),
            "tools" => rule.tools = globs(field(non_empty)?),
            "prompts" => rule.prompts = globs(field(non_empty)?),
            "resources" => rule.resources = globs(field(non_empty)?),
            other => {
                return Err(PolicyError::new(
                    path,
                    format!("unknown field {other:?} (expected one of {RULE_FIELDS})"),
                ))
            }
        }
    }
    rule.effect = effect.ok_or_else(|| {
        PolicyError::new(path, "missing field \"effect\" (\"allow\" or \"deny\")")
    })?;
    Ok(rule)
}

fn globs(v: Vec<String>) -> Vec<Glob> {
    v.iter().map(|s| Glob::new(s)).collect()
}

fn strings(
    path: &str,
    key: &str,
    v: &Toml,
    check: fn(&str) -> Result<(), &'static str>,
) -> Result<Vec<String>, PolicyError> {
    let bad = || PolicyError::new(path, format!("field {key:?} must be an array of strings"));
    let Toml::Array(items) = v else {
        return Err(bad());
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let s = item.as_str().ok_or_else(bad)?;
        check(s).map_err(|why| {
            PolicyError::new(format!("{path}.{key}[{i}]"), format!("{s:?} {why}"))
        })?;
        out.push(s.to_string());
    }
    Ok(out)
}

fn non_empty(s: &str) -> Result<(), &'static str> {
    if s.is_empty() {
        Err("must not be empty")
    } else {
        Ok(())
    }
}

fn org(s: &str) -> Result<(), &'static str> {
    if s.is_empty() || s.contains('/') {
        Err("must be an organization name without '/'")
    } else {
        Ok(())
    }
}

fn team(s: &str) -> Result<(), &'static str> {
    match s.split_once('/') {
        Some((o, t)) if !o.is_empty() && !t.is_empty() && !t.contains('/') => Ok(()),
        _ => Err("must be org/team"),
    }
}

fn email(s: &str) -> Result<(), &'static str> {
    match s.rsplit_once('@') {
        Some((_, domain)) if !domain.is_empty() && !domain.contains('*') => Ok(()),
        _ => Err("must be an address or @domain"),
    }
}

/// RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E.
fn scope_token(s: &str) -> Result<(), &'static str> {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
    {
        Ok(())
    } else {
        Err("is not a scope token")
    }
}

/// Change detection for a policy file, polled (once a second by the services):
/// the content is compared, not only the mtime, so a rewrite within the
/// file system's timestamp granularity is still seen.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    last: Option<Vec<u8>>,
}

/// What a poll found.
#[derive(Debug)]
pub enum Reload {
    Unchanged,
    /// New content that parsed: swap it in.
    Changed(ToolPolicy),
    /// New content (or an unreadable file) that did not: keep the old policy, log this.
    Invalid(PolicyError),
}

impl Reloader {
    /// Starts from the content already loaded (so the first poll reports no change).
    pub fn new(path: PathBuf) -> Self {
        let last = std::fs::read(&path).ok();
        Self { path, last }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn poll(&mut self) -> Reload {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) => {
                // Report a vanished file once, then wait for it to come back.
                if self.last.take().is_some() {
                    return Reload::Invalid(PolicyError::new(
                        self.path.display().to_string(),
                        e.to_string(),
                    ));
                }
                return Reload::Unchanged;
            }
        };
        if self.last.as_deref() == Some(bytes.as_slice()) {
            return Reload::Unchanged;
        }
        let parsed = std::str::from_utf8(&bytes)
            .map_err(|_| PolicyError::new(self.path.display().to_string(), "is not UTF-8"))
            .and_then(ToolPolicy::parse);
        self.last = Some(bytes);
        match parsed {
            Ok(p) => Reload::Changed(p),
            Err(e) => Reload::Invalid(e),
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[services.echo]
default = "deny"

[[services.echo.rules]]
name = "no secrets for contractors"
effect = "deny"
teams = ["acme/contractors"]
tools = ["secret_*"]

[[services.echo.rules]]
effect = "allow"
users = ["alice", "github:42"]
tools = ["echo"]

[[services.echo.rules]]
effect = "allow"
orgs = ["acme"]
scopes = ["mcp:write"]
tools = ["*"]
prompts = ["*"]

[[services.echo.rules]]
effect = "allow"
emails = ["@example.org"]
resources = ["file:///docs/*"]

[services.open]
"#;

    fn caller<'a>(name: &'a str, groups: Option<&'a [String]>) -> Caller<'a> {
        Caller {
            user_id: "github:1",
            user_name: name,
            email: "",
            client_id: "c",
            scopes: "mcp",
            groups,
        }
    }

    fn call<'a>(method: &'a str, name: &'a str) -> Call<'a> {
        Call {
            method,
            name: Some(name),
        }
    }

    /// `decide_for(applicable(caller))` is `decide(caller)`, for any policy
    /// built from these pieces, any caller and any call: the per-token memo
    /// of the verifier can never change a verdict.
    mod memo_agrees {
        use super::*;
        use proptest::prelude::*;

        fn pick(pool: &[&'static str]) -> impl Strategy<Value = Vec<&'static str>> {
            proptest::sample::subsequence(pool.to_vec(), 0..=pool.len().min(2))
        }

        fn rule() -> impl Strategy<Value = String> {
            (
                any::<bool>(),
                pick(&["alice", "github:7", "Bob"]),
                pick(&["acme", "other"]),
                pick(&["acme/sre", "acme/dev"]),
                pick(&["@example.org", "carol@x.test"]),
                pick(&["c", "d"]),
                pick(&["mcp", "admin"]),
                pick(&["tools/*", "prompts/get", "*"]),
                pick(&["echo", "ec*", "*o", "*", "a*b*c"]),
                pick(&["p*", "greet"]),
                pick(&["file:///*"]),
            )
                .prop_map(
                    |(
                        allow,
                        users,
                        orgs,
                        teams,
                        emails,
                        clients,
                        scopes,
                        methods,
                        tools,
                        prompts,
                        resources,
                    )| {
                        let list = |k: &str, v: Vec<&str>| {
                            if v.is_empty() {
                                String::new()
                            } else {
                                format!("{k} = {v:?}\n")
                            }
                        };
                        format!(
                            "[[services.s.rules]]\neffect = \"{}\"\n{}{}{}{}{}{}{}{}{}{}",
                            if allow { "allow" } else { "deny" },
                            list("users", users),
                            list("orgs", orgs),
                            list("teams", teams),
                            list("emails", emails),
                            list("clients", clients),
                            list("scopes", scopes),
                            list("methods", methods),
                            list("tools", tools),
                            list("prompts", prompts),
                            list("resources", resources),
                        )
                    },
                )
        }

        proptest! {
            #[test]
            fn decide_for_equals_decide(
                deny_default in any::<bool>(),
                rules in proptest::collection::vec(rule(), 0..8),
                name in proptest::sample::select(vec!["alice", "bob", "", "mallory"]),
                user_id in proptest::sample::select(vec!["github:7", "github:8"]),
                email in proptest::sample::select(vec!["", "carol@x.test", "dan@example.org"]),
                client in proptest::sample::select(vec!["c", "d", "e"]),
                scopes in proptest::sample::select(vec!["", "mcp", "mcp admin"]),
                groups in proptest::option::of(pick(&["acme", "acme/sre", "other/x"])),
                method in proptest::sample::select(vec!["tools/call", "prompts/get", "resources/read", "tools/list", "initialize", "x/y"]),
                target in proptest::option::of(proptest::sample::select(vec!["echo", "abxc", "greet", "file:///a", "zzz"])),
            ) {
                let text = format!(
                    "[services.s]\ndefault = \"{}\"\n{}",
                    if deny_default { "deny" } else { "allow" },
                    rules.concat()
                );
                let policy = ToolPolicy::parse(&text).unwrap();
                let service = policy.service("s").unwrap();
                let groups: Option<Vec<String>> = groups.map(|g| g.iter().map(|s| s.to_string()).collect());
                let caller = Caller {
                    user_id,
                    user_name: name,
                    email,
                    client_id: client,
                    scopes,
                    groups: groups.as_deref(),
                };
                let call = Call { method, name: target };
                let applicable = service.applicable(&caller);
                prop_assert_eq!(service.decide_for(&applicable, &call), service.decide(&caller, &call));
            }
        }
    }

    #[test]
    fn first_applying_rule_decides_then_the_default() {
        let p = ToolPolicy::parse(FILE).unwrap();
        let s = p.service("echo").unwrap();
        let none: &[String] = &[];
        let alice = caller("Alice", Some(none));
        assert!(s.decide(&alice, &call("tools/call", "echo")).allowed());
        let v = s.decide(&alice, &call("tools/call", "whoami"));
        assert_eq!((v.effect, v.by()), (Effect::Deny, "default"));
        assert!(s.decide(&alice, &call("tools/list", "")).allowed());
        assert!(s
            .decide(&alice, &call("notifications/initialized", ""))
            .allowed());
        assert!(!s.decide(&alice, &call("completion/complete", "")).allowed());

        let groups = ["acme/contractors".to_string()];
        let mut c = caller("bob", Some(&groups));
        c.scopes = "mcp mcp:write";
        assert!(s.decide(&c, &call("tools/call", "whoami")).allowed());
        let v = s.decide(&c, &call("tools/call", "secret_keys"));
        assert_eq!(
            (v.effect, v.by()),
            (Effect::Deny, "no secrets for contractors")
        );
        c.scopes = "mcp";
        assert!(!s.decide(&c, &call("tools/call", "whoami")).allowed());

        let mut e = caller("carol", Some(none));
        e.email = "Carol@EXAMPLE.org";
        assert!(s
            .decide(&e, &call("resources/read", "file:///docs/a.md"))
            .allowed());
        assert!(!s
            .decide(&e, &call("resources/read", "file:///etc/passwd"))
            .allowed());
        assert!(p
            .service("open")
            .unwrap()
            .decide(&e, &call("tools/call", "x"))
            .allowed());
        assert!(p.service("missing").is_none());
    }

    #[test]
    fn unknown_groups_and_names_fail_closed() {
        let p = ToolPolicy::parse(FILE).unwrap();
        let s = p.service("echo").unwrap();
        let mut c = caller("bob", None);
        c.scopes = "mcp:write";
        // The deny rule for contractors applies when groups are unknown; the org allow does not.
        assert!(!s.decide(&c, &call("tools/call", "secret_x")).allowed());
        assert!(!s.decide(&c, &call("tools/call", "whoami")).allowed());
        let alice = caller("alice", None);
        let nameless = Call {
            method: "tools/call",
            name: None,
        };
        assert!(!s.decide(&alice, &nameless).allowed());
    }

    #[test]
    fn lists_are_filtered_to_callable_entries() {
        let p = ToolPolicy::parse(FILE).unwrap();
        let s = p.service("echo").unwrap();
        let none: &[String] = &[];
        let alice = caller("alice", Some(none));
        let mut r = serde_json::json!({"tools":[{"name":"echo"},{"name":"whoami"},{"x":1}]});
        assert_eq!(s.filter_list(&alice, "tools/list", &mut r), 2);
        assert_eq!(r, serde_json::json!({"tools":[{"name":"echo"}]}));
        let mut r = serde_json::json!({"prompts":[{"name":"p"}]});
        assert_eq!(s.filter_list(&alice, "prompts/list", &mut r), 1);
        let mut r = serde_json::json!({"other":[]});
        assert_eq!(s.filter_list(&alice, "tools/list", &mut r), 0);
    }

    #[test]
    fn errors_name_the_rule() {
        let cases = [
            (
                "[services.echo]\n[[services.echo.rules]]\neffect='allow'\n[[services.echo.rules]]\neffect='deny'\n[[services.echo.rules]]\neffect='allow'\ntols=['x']\n",
                "policy error: services.echo.rules[2]: unknown field \"tols\"",
            ),
            (
                "[[services.echo.rules]]\ntools=['x']\n",
                "policy error: services.echo.rules[0]: missing field \"effect\"",
            ),
            (
                "[services.echo]\ndefault='maybe'\n",
                "policy error: services.echo.default: must be",
            ),
            (
                "[[services.echo.rules]]\neffect='allow'\nteams=['acme']\n",
                "policy error: services.echo.rules[0].teams[0]: \"acme\" must be org/team",
            ),
            (
                "[[services.echo.rules]]\neffect='allow'\nusers='alice'\n",
                "policy error: services.echo.rules[0]: field \"users\" must be an array",
            ),
            (
                "[[services.echo.rules]]\neffect='allow'\nscopes=['a b']\n",
                "policy error: services.echo.rules[0].scopes[0]",
            ),
            ("\n\n[services.echo\n", "policy error: line 3: "),
            ("servces = 1\n", "policy error: file: unknown field \"servces\""),
        ];
        for (text, want) in cases {
            let e = ToolPolicy::parse(text).unwrap_err().to_string();
            assert!(e.starts_with(want), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn globs_match_star_runs_only() {
        for (p, yes, no) in [
            ("echo", "echo", "echo2"),
            ("search_*", "search_web", "research_web"),
            ("*_admin", "db_admin", "db_admin_x"),
            ("a*b*c", "a--b--c", "a--c--b"),
            ("*", "", "never"),
            ("file:///docs/*", "file:///docs/x/y", "file:///etc"),
            ("ab*ba", "abba", "aba"),
            ("a**b", "ab", "ba"),
            ("**", "x", "never"),
        ] {
            let g = Glob::new(p);
            assert!(g.is_match(yes), "{p} {yes}");
            if !p.chars().all(|c| c == '*') {
                assert!(!g.is_match(no), "{p} {no}");
            }
        }
    }

    #[test]
    fn reloader_sees_changes_and_bad_files() {
        let dir = std::env::temp_dir().join(format!("tp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("policy.toml");
        std::fs::write(&path, "[services.echo]\n").unwrap();
        let mut r = Reloader::new(path.clone());
        assert!(matches!(r.poll(), Reload::Unchanged));
        std::fs::write(&path, "[services.echo]\ndefault='deny'\n").unwrap();
        assert!(matches!(r.poll(), Reload::Changed(_)));
        std::fs::write(&path, "[services.echo]\ndefault=1\n").unwrap();
        assert!(matches!(r.poll(), Reload::Invalid(_)));
        assert!(matches!(r.poll(), Reload::Unchanged));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
