//! Deciding a call: a caller and a call in, a [`Verdict`] out.

use serde_json::Value;

use super::{Effect, Rule, ServicePolicy};

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
