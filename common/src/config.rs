//! Configuration primitives shared by every service.
//!
//! Configuration is read from an injectable [`Source`] (a map of variable name
//! to value) so tests never touch the process environment. [`Source::from_process`]
//! merges an optional `.env` file under the real environment (the environment wins),
//! the same precedence the Python gateway's users are used to.
//!
//! Every failure is a [`ConfigError`] that names the variable, says what is wrong
//! and shows a good example, printed as one line at start-up.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// `LOCAL_USERS_FILE` when unset: where `mcp-gateway add-user` writes by
/// default and where the authorization server looks for local users.
pub const DEFAULT_LOCAL_USERS_FILE: &str = "./data/users";

/// Variable name → value.
#[derive(Debug, Clone, Default)]
pub struct Source {
    vars: BTreeMap<String, String>,
}

impl Source {
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The process environment over an optional `.env` file (`ENV_FILE`, else `./.env`).
    pub fn from_process() -> Result<Self, ConfigError> {
        let mut vars = BTreeMap::new();
        let env_file = std::env::var("ENV_FILE").unwrap_or_else(|_| ".env".to_string());
        if Path::new(&env_file).exists() {
            let iter = dotenvy::from_filename_iter(&env_file).map_err(|e| ConfigError {
                var: "ENV_FILE".into(),
                problem: format!("cannot read {env_file}: {e}"),
                example: "ENV_FILE=/etc/mcp-gateway/.env".into(),
            })?;
            for item in iter {
                let (k, v) = item.map_err(|e| ConfigError {
                    var: "ENV_FILE".into(),
                    problem: format!("{env_file} is malformed: {e}"),
                    example: "ENV_FILE=/etc/mcp-gateway/.env".into(),
                })?;
                vars.insert(k, v);
            }
        }
        for (k, v) in std::env::vars() {
            vars.insert(k, v);
        }
        Ok(Self { vars })
    }

    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.vars.insert(key.to_string(), value.to_string());
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.vars.iter()
    }

    /// All pairs, owned (for tools that take an iterator of variables).
    pub fn pairs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.vars.iter().map(|(k, v)| (k.clone(), v.clone()))
    }

    /// The value, trimmed; empty counts as unset.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn string(&self, key: &str, default: &str) -> String {
        self.get(key).unwrap_or(default).to_string()
    }

    pub fn required(&self, key: &str, example: &str) -> Result<String, ConfigError> {
        self.get(key)
            .map(str::to_string)
            .ok_or_else(|| ConfigError::new(key, "is required but not set", example))
    }

    pub fn bool(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => parse_bool(v).ok_or_else(|| {
                ConfigError::new(key, format!("must be true or false, got {v:?}"), "true")
            }),
        }
    }

    /// A non-negative number of seconds.
    pub fn seconds(&self, key: &str, default: u64) -> Result<Duration, ConfigError> {
        match self.get(key) {
            None => Ok(Duration::from_secs(default)),
            Some(v) => parse_seconds(v).map(Duration::from_secs).ok_or_else(|| {
                ConfigError::new(
                    key,
                    format!("must be a whole, non-negative number of seconds, got {v:?}"),
                    &default.to_string(),
                )
            }),
        }
    }

    pub fn u64(&self, key: &str, default: u64) -> Result<u64, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.parse::<u64>().map_err(|_| {
                ConfigError::new(
                    key,
                    format!("must be a whole, non-negative number, got {v:?}"),
                    &default.to_string(),
                )
            }),
        }
    }

    /// A whole number when `key` is set, `None` when it is not (a setting
    /// that is off unless given; `example` goes in the error message).
    pub fn optional_u64(&self, key: &str, example: &str) -> Result<Option<u64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
                ConfigError::new(
                    key,
                    format!("must be a whole, non-negative number, got {v:?}"),
                    example,
                )
            }),
        }
    }

    /// An absolute http(s) URL.
    pub fn url(&self, key: &str, example: &str) -> Result<Option<url::Url>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => parse_http_url(v)
                .map(Some)
                .map_err(|why| ConfigError::new(key, format!("{why}, got {v:?}"), example)),
        }
    }

    /// A comma-separated list, entries trimmed, empties dropped.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.get(key)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Names of services switched on with `MCP_<SERVICE>_ENABLED=true`, lower-cased, sorted.
    pub fn enabled_services(&self) -> Result<Vec<String>, ConfigError> {
        let mut out = Vec::new();
        for (k, _) in self.vars.iter() {
            if let Some(name) = k
                .strip_prefix("MCP_")
                .and_then(|rest| rest.strip_suffix("_ENABLED"))
            {
                if name.is_empty() {
                    continue;
                }
                if self.bool(k, false)? {
                    out.push(name.to_ascii_lowercase());
                }
            }
        }
        Ok(out)
    }
}

pub fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

pub fn parse_seconds(v: &str) -> Option<u64> {
    v.parse::<u64>().ok()
}

pub fn parse_http_url(v: &str) -> Result<url::Url, &'static str> {
    let u = url::Url::parse(v).map_err(|_| "must be an absolute URL")?;
    match u.scheme() {
        "http" | "https" => {}
        _ => return Err("must use http or https"),
    }
    if u.host_str().is_none() {
        return Err("must name a host");
    }
    Ok(u)
}

/// A configuration problem, printed as one line:
/// `config error: NAME is wrong because ... (example: NAME=good)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub var: String,
    pub problem: String,
    pub example: String,
}

impl ConfigError {
    pub fn new(var: &str, problem: impl Into<String>, example: &str) -> Self {
        Self {
            var: var.to_string(),
            problem: problem.into(),
            example: example.to_string(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "config error: {} {} (example: {}={})",
            self.var, self.problem, self.var, self.example
        )
    }
}

/// The MCP URL of a service under `BASE_DOMAIN`: `https://<name>.<domain>/mcp`,
/// with `_` in the name written `-` (a hostname label has letters, digits and
/// hyphens only, RFC 1123 §2.1), so `MCP_ECHO_STATELESS_ENABLED` serves
/// `https://echo-stateless.<domain>/mcp`.
pub fn service_url(name: &str, domain: &str) -> String {
    format!("https://{}.{domain}/mcp", name.replace('_', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_variable_and_show_an_example() {
        let src = Source::from_pairs([("ACCESS_TOKEN_LIFETIME", "-5")]);
        let err = src.seconds("ACCESS_TOKEN_LIFETIME", 3600).unwrap_err();
        let line = err.to_string();
        assert!(line.contains("ACCESS_TOKEN_LIFETIME"), "{line}");
        assert!(line.contains("ACCESS_TOKEN_LIFETIME=3600"), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn service_urls_are_valid_hostnames() {
        assert_eq!(
            service_url("echo", "example.com"),
            "https://echo.example.com/mcp"
        );
        assert_eq!(
            service_url("echo_stateless", "example.com"),
            "https://echo-stateless.example.com/mcp"
        );
        assert!(url::Url::parse(&service_url("a_b_c", "example.com")).is_ok());
    }

    #[test]
    fn enabled_services_are_read_from_mcp_prefix() {
        let src = Source::from_pairs([
            ("MCP_ECHO_ENABLED", "true"),
            ("MCP_FETCH_ENABLED", "false"),
            ("MCP_TIME_ENABLED", "1"),
        ]);
        assert_eq!(src.enabled_services().unwrap(), vec!["echo", "time"]);
        let bad = Source::from_pairs([("MCP_ECHO_ENABLED", "maybe")]);
        assert_eq!(bad.enabled_services().unwrap_err().var, "MCP_ECHO_ENABLED");
    }

    #[test]
    fn empty_values_count_as_unset_and_lists_are_trimmed() {
        let src = Source::from_pairs([("A", "  "), ("L", " alice, Bob ,,")]);
        assert_eq!(src.get("A"), None);
        assert_eq!(src.list("L"), vec!["alice", "Bob"]);
    }
}
