//! The policy file's text to a compiled [`ToolPolicy`]; every error names
//! the rule it is about.

use std::path::Path;

use toml::Value as Toml;

use super::glob::Glob;
use super::{Effect, PolicyError, Rule, ServicePolicy, ToolPolicy};

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
