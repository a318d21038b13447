//! The verifier's configuration, parsed whole from a [`Source`] before any port
//! is bound. Every error is one line naming its variable.

use std::net::SocketAddr;
use std::time::Duration;

use gateway_common::config::{ConfigError, Source};

/// Everything the verifier needs, validated.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// `VERIFIER_LISTEN` (default `0.0.0.0:8001`).
    pub listen: SocketAddr,
    /// `SHUTDOWN_TIMEOUT`: how long requests in flight may take after SIGTERM.
    pub shutdown_timeout: std::time::Duration,
    /// `SHUTDOWN_DELAY`: how long a stopping verifier stays out of rotation
    /// (`/ready` 503), still answering, before its listener closes.
    pub shutdown_delay: std::time::Duration,
    /// `VERIFIER_WORKERS`: actix worker threads (0 = one per CPU).
    pub workers: usize,
    /// `AUTH_ISSUER` (default `https://auth.${BASE_DOMAIN}`), compared byte for byte.
    pub issuer: String,
    /// `AUTHZ_URL` (default = issuer): where `/jwks`, `/revocations` and
    /// `/revocations/stream` are fetched. No trailing slash.
    pub authz_url: String,
    /// `REDIS_URL` (+ `REDIS_PASSWORD` when the URL has none): when set,
    /// revocations come from Redis pub/sub + SCAN. Its Debug hides the password.
    pub redis_url: Option<gateway_store::redis_store::RedisUrl>,
    /// `REVOCATION_FEED_SECRET(_FILE)`: presented to the authz-server's feed
    /// (without Redis); it serves the feed only to verifiers that present it,
    /// or to loopback peers when it has none.
    pub revocation_feed_secret: Option<gateway_common::revocation::FeedSecret>,
    pub services: Vec<ServiceConfig>,
    pub trusted_proxies: TrustedProxies,
    /// `REVOCATION_STALENESS_BOUND` (default 30 s): feed silent longer → fail closed.
    pub staleness_bound: Duration,
    /// `CLOCK_LEEWAY` (default 30 s) for `exp`/`nbf`.
    pub clock_leeway: Duration,
    /// `MAX_TOKEN_BYTES` (default 4096): longer tokens are refused before any crypto.
    pub max_token_bytes: usize,
    pub headers: IdentityHeaders,
    /// `FORWARD_TOKEN` (default false): also pass the raw token upstream.
    pub forward_token: bool,
    /// `JWKS_REFRESH_INTERVAL` (default 300 s).
    pub jwks_refresh: Duration,
    /// `JWKS_MIN_REFETCH` (default 5 s): at most one unknown-`kid` refetch per interval.
    pub jwks_min_refetch: Duration,
    /// `TOKEN_CACHE_SIZE` (default 10000) verified tokens kept.
    pub cache_capacity: usize,
    /// `NEGATIVE_CACHE_SIZE` (default 10000) refused tokens remembered (`negative.rs`).
    pub negative_cache_capacity: usize,
    /// `TOOL_POLICY_FILE`: per-tool authorization from `Mcp-Method`/`Mcp-Name`
    /// (see [`crate::tool_policy`]); validated here, reloaded when it changes.
    pub tool_policy: Option<crate::tool_policy::ToolPolicyConfig>,
    /// `AUDIT_LOG_FILE`: audit lines are also appended here (JSON lines).
    pub audit_log_file: Option<std::path::PathBuf>,
    /// DPoP (`MCP_<NAME>_DPOP`, `DPOP_*`; see [`crate::dpop`]).
    pub dpop: crate::dpop::DpopConfig,
}

/// One protected MCP service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Lower-case name from `MCP_<NAME>_ENABLED`.
    pub name: String,
    /// `MCP_<NAME>_URL` exactly as configured: the required token audience (RFC 8707).
    pub resource: String,
    /// Lower-case host of the resource URL.
    pub host: String,
    /// Port of the resource URL (explicit or the scheme's default).
    pub port: u16,
    /// Path of the resource URL without a trailing `/` (`""` for the root).
    pub path_prefix: String,
    pub policy: Policy,
}

/// Who may use a service (`MCP_<NAME>_ALLOWED_USERS`, `_ALLOWED_ORGS`,
/// `_ALLOWED_TEAMS`, `_REQUIRED_SCOPES`).
///
/// With no allow list set every signed-in user may use the service. With any
/// set, the user must match at least one entry of any of them:
/// * a user entry containing `:` is compared with `sub` (`github:1234`,
///   `local:alice`); otherwise with the login `name`, ignoring ASCII case;
/// * an org entry matches a `groups` entry equal to it or starting with `org/`;
/// * a team entry (`org/team`) matches a `groups` entry equal to it.
///
/// Required scopes must all be granted, or the answer is 403 `insufficient_scope`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub allowed_users: Vec<String>,
    pub allowed_orgs: Vec<String>,
    pub allowed_teams: Vec<String>,
    pub required_scopes: Vec<String>,
}

/// Names of the identity headers sent to the upstream on success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeaders {
    pub user_id: String,
    pub user_name: String,
    pub user_email: String,
    pub client_id: String,
    pub scopes: String,
    /// The raw token header (sent empty unless `FORWARD_TOKEN=true`).
    pub token: String,
}

impl IdentityHeaders {
    pub fn all(&self) -> [&str; 6] {
        [
            &self.user_id,
            &self.user_name,
            &self.user_email,
            &self.client_id,
            &self.scopes,
            &self.token,
        ]
    }
}

/// Peers whose forwarded headers are believed (`TRUSTED_PROXIES`): one type
/// for every service (`gateway_common::trusted_proxies`).
pub use gateway_common::trusted_proxies::TrustedProxies;

impl VerifierConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let listen_raw = src.string("VERIFIER_LISTEN", "0.0.0.0:8001");
        let listen = listen_raw.parse::<SocketAddr>().map_err(|_| {
            ConfigError::new(
                "VERIFIER_LISTEN",
                format!("must be host:port with an IP host, got {listen_raw:?}"),
                "0.0.0.0:8001",
            )
        })?;
        let workers = usize_var(src, "VERIFIER_WORKERS", 0)?;

        let base_domain = src.get("BASE_DOMAIN");
        let issuer = match (src.get("AUTH_ISSUER"), base_domain) {
            (Some(v), _) => v.to_string(),
            (None, Some(domain)) => format!("https://auth.{domain}"),
            (None, None) => {
                return Err(ConfigError::new(
                    "AUTH_ISSUER",
                    "is required when BASE_DOMAIN is not set",
                    "https://auth.example.com",
                ))
            }
        };
        check_base_url(src, "AUTH_ISSUER", &issuer, "https://auth.example.com")?;

        let authz_url = match src.get("AUTHZ_URL") {
            Some(v) => v.to_string(),
            None => issuer.clone(),
        };
        check_base_url(src, "AUTHZ_URL", &authz_url, "http://authz:8000")?;

        let redis_url = match src.get("REDIS_URL") {
            None => None,
            Some(raw) => Some(
                gateway_store::redis_store::RedisUrl::parse(raw, src.get("REDIS_PASSWORD"))
                    .map_err(|e| {
                        ConfigError::new("REDIS_URL", e.to_string(), "redis://redis:6379/0")
                    })?,
            ),
        };

        let services = parse_services(src, base_domain)?;

        let trusted_proxies = match src.get("TRUSTED_PROXIES") {
            None => TrustedProxies::loopback(),
            Some(_) => TrustedProxies::parse(&src.list("TRUSTED_PROXIES")).map_err(|why| {
                ConfigError::new("TRUSTED_PROXIES", why, "127.0.0.1,10.0.0.0/8,::1")
            })?,
        };

        let staleness_bound = src.seconds("REVOCATION_STALENESS_BOUND", 30)?;
        if staleness_bound.is_zero() {
            return Err(ConfigError::new(
                "REVOCATION_STALENESS_BOUND",
                "must be at least 1 second",
                "30",
            ));
        }
        let clock_leeway = src.seconds("CLOCK_LEEWAY", 30)?;
        let max_token_bytes = usize_var(src, "MAX_TOKEN_BYTES", 4096)?;
        if !(64..=65536).contains(&max_token_bytes) {
            return Err(ConfigError::new(
                "MAX_TOKEN_BYTES",
                format!("must be between 64 and 65536, got {max_token_bytes}"),
                "4096",
            ));
        }

        let headers = IdentityHeaders {
            user_id: header_name(src, "IDENTITY_HEADER_USER_ID", "X-User-Id")?,
            user_name: header_name(src, "IDENTITY_HEADER_USER_NAME", "X-User-Name")?,
            user_email: header_name(src, "IDENTITY_HEADER_USER_EMAIL", "X-User-Email")?,
            client_id: header_name(src, "IDENTITY_HEADER_CLIENT_ID", "X-Client-Id")?,
            scopes: header_name(src, "IDENTITY_HEADER_SCOPES", "X-Scopes")?,
            token: header_name(src, "IDENTITY_HEADER_TOKEN", "X-Access-Token")?,
        };
        let names = headers.all();
        for (i, a) in names.iter().enumerate() {
            if names[..i].iter().any(|b| b.eq_ignore_ascii_case(a)) {
                return Err(ConfigError::new(
                    "IDENTITY_HEADER_USER_ID",
                    format!("identity header names must differ, {a:?} is used twice"),
                    "X-User-Id",
                ));
            }
        }

        let forward_token = src.bool("FORWARD_TOKEN", false)?;
        let jwks_refresh = src.seconds("JWKS_REFRESH_INTERVAL", 300)?;
        if jwks_refresh.is_zero() {
            return Err(ConfigError::new(
                "JWKS_REFRESH_INTERVAL",
                "must be at least 1 second",
                "300",
            ));
        }
        let jwks_min_refetch = src.seconds("JWKS_MIN_REFETCH", 5)?;
        let cache_capacity = usize_var(src, "TOKEN_CACHE_SIZE", 10_000)?;
        let negative_cache_capacity = usize_var(src, "NEGATIVE_CACHE_SIZE", 10_000)?;
        let tool_policy = match src.get("TOOL_POLICY_FILE") {
            None => None,
            Some(path) => {
                let path = std::path::PathBuf::from(path);
                let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
                let policy = crate::tool_policy::load_checked(&path, &names).map_err(|e| {
                    ConfigError::new(
                        "TOOL_POLICY_FILE",
                        e.to_string(),
                        "/etc/mcp/tool-policy.toml",
                    )
                })?;
                Some(crate::tool_policy::ToolPolicyConfig {
                    path,
                    initial: std::sync::Arc::new(policy),
                })
            }
        };
        let service_names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        let dpop = crate::dpop::DpopConfig::from_source(src, &service_names)?;
        let audit_log_file = src.get("AUDIT_LOG_FILE").map(std::path::PathBuf::from);
        if let Some(path) = &audit_log_file {
            gateway_common::tool_policy::AuditFile::open(path).map_err(|e| {
                ConfigError::new(
                    "AUDIT_LOG_FILE",
                    format!("cannot be opened for appending ({e})"),
                    "/var/log/mcp/audit.jsonl",
                )
            })?;
        }

        Ok(Self {
            listen,
            shutdown_timeout: gateway_common::lifecycle::shutdown_timeout(src)?,
            shutdown_delay: gateway_common::lifecycle::shutdown_delay(src)?,
            workers,
            issuer,
            authz_url,
            redis_url,
            services,
            trusted_proxies,
            revocation_feed_secret: gateway_common::revocation::FeedSecret::from_source(src)?,
            staleness_bound,
            clock_leeway,
            max_token_bytes,
            headers,
            forward_token,
            jwks_refresh,
            jwks_min_refetch,
            cache_capacity,
            negative_cache_capacity,
            tool_policy,
            audit_log_file,
            dpop,
        })
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.authz_url)
    }

    pub fn revocations_url(&self) -> String {
        format!("{}/revocations", self.authz_url)
    }

    pub fn revocation_stream_url(&self) -> String {
        format!("{}/revocations/stream", self.authz_url)
    }
}

fn usize_var(src: &Source, key: &str, default: usize) -> Result<usize, ConfigError> {
    let v = src.u64(key, default as u64)?;
    usize::try_from(v).map_err(|_| ConfigError::new(key, "is too large", &default.to_string()))
}

/// An http(s) URL used as a base: no trailing slash, no query or fragment.
fn check_base_url(_src: &Source, key: &str, value: &str, example: &str) -> Result<(), ConfigError> {
    let url = gateway_common::config::parse_http_url(value)
        .map_err(|why| ConfigError::new(key, format!("{why}, got {value:?}"), example))?;
    if value.ends_with('/') {
        return Err(ConfigError::new(
            key,
            format!("must not end with '/' (the issuer is compared byte for byte), got {value:?}"),
            example,
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(
            key,
            format!("must not have a query or fragment, got {value:?}"),
            example,
        ));
    }
    Ok(())
}

fn parse_services(
    src: &Source,
    base_domain: Option<&str>,
) -> Result<Vec<ServiceConfig>, ConfigError> {
    let names = src.enabled_services()?;
    if names.is_empty() {
        return Err(ConfigError::new(
            "MCP_<NAME>_ENABLED",
            "no MCP service is enabled, so every request would be refused",
            "true (e.g. MCP_ECHO_ENABLED=true)",
        ));
    }
    let mut services = Vec::with_capacity(names.len());
    for name in names {
        let upper = name.to_ascii_uppercase();
        let url_var = format!("MCP_{upper}_URL");
        let resource = match (src.get(&url_var), base_domain) {
            (Some(v), _) => v.to_string(),
            (None, Some(domain)) => gateway_common::config::service_url(&name, domain),
            (None, None) => {
                return Err(ConfigError::new(
                    &url_var,
                    "is required when BASE_DOMAIN is not set",
                    &format!("https://{name}.example.com/mcp"),
                ))
            }
        };
        let example = format!("https://{name}.example.com/mcp");
        let url = gateway_common::config::parse_http_url(&resource).map_err(|why| {
            ConfigError::new(&url_var, format!("{why}, got {resource:?}"), &example)
        })?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ConfigError::new(
                &url_var,
                format!("must not have a query or fragment, got {resource:?}"),
                &example,
            ));
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let port = url.port_or_known_default().unwrap_or(443);
        let path_prefix = url.path().trim_end_matches('/').to_string();
        let policy = Policy {
            allowed_users: src.list(&format!("MCP_{upper}_ALLOWED_USERS")),
            allowed_orgs: src.list(&format!("MCP_{upper}_ALLOWED_ORGS")),
            allowed_teams: src.list(&format!("MCP_{upper}_ALLOWED_TEAMS")),
            required_scopes: src.list(&format!("MCP_{upper}_REQUIRED_SCOPES")),
        };
        let teams_var = format!("MCP_{upper}_ALLOWED_TEAMS");
        for team in &policy.allowed_teams {
            let ok = team
                .split_once('/')
                .is_some_and(|(o, t)| !o.is_empty() && !t.is_empty() && !t.contains('/'));
            if !ok {
                return Err(ConfigError::new(
                    &teams_var,
                    format!("entries must be org/team, got {team:?}"),
                    "acme/platform,acme/sre",
                ));
            }
        }
        let scopes_var = format!("MCP_{upper}_REQUIRED_SCOPES");
        for scope in &policy.required_scopes {
            // RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E.
            if !scope
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
            {
                return Err(ConfigError::new(
                    &scopes_var,
                    format!("{scope:?} is not a valid scope token"),
                    "mcp",
                ));
            }
        }
        services.push(ServiceConfig {
            name,
            resource,
            host,
            port,
            path_prefix,
            policy,
        });
    }
    // Two services on one host and path would make the required audience ambiguous.
    for (i, a) in services.iter().enumerate() {
        if let Some(b) = services[..i]
            .iter()
            .find(|b| b.host == a.host && b.port == a.port && b.path_prefix == a.path_prefix)
        {
            return Err(ConfigError::new(
                &format!("MCP_{}_URL", a.name.to_ascii_uppercase()),
                format!(
                    "names the same host and path as MCP_{}_URL",
                    b.name.to_ascii_uppercase()
                ),
                &format!("https://{}.example.com/mcp", a.name),
            ));
        }
    }
    Ok(services)
}

/// An HTTP field name (RFC 9110 §5.1: token).
fn header_name(src: &Source, key: &str, default: &str) -> Result<String, ConfigError> {
    let v = src.string(key, default);
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if v.is_empty() || !v.bytes().all(is_tchar) {
        return Err(ConfigError::new(
            key,
            format!("must be an HTTP header name, got {v:?}"),
            default,
        ));
    }
    // Only letters, digits and dashes: anything else has aliases that some
    // backends read as the same variable (CGI-style `HTTP_X_USER_ID`).
    if !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(ConfigError::new(
            key,
            format!("must use only letters, digits and '-', got {v:?}"),
            default,
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Source {
        Source::from_pairs([("BASE_DOMAIN", "example.com"), ("MCP_ECHO_ENABLED", "true")])
    }

    #[test]
    fn defaults_follow_the_shared_contract() {
        let c = VerifierConfig::from_source(&base()).unwrap();
        assert_eq!(c.listen, "0.0.0.0:8001".parse().unwrap());
        assert_eq!(c.issuer, "https://auth.example.com");
        assert_eq!(c.authz_url, "https://auth.example.com");
        assert_eq!(c.jwks_url(), "https://auth.example.com/jwks");
        assert_eq!(
            c.revocation_stream_url(),
            "https://auth.example.com/revocations/stream"
        );
        assert_eq!(c.services.len(), 1);
        let s = &c.services[0];
        assert_eq!(s.resource, "https://echo.example.com/mcp");
        assert_eq!(
            (s.host.as_str(), s.port, s.path_prefix.as_str()),
            ("echo.example.com", 443, "/mcp")
        );
        assert_eq!(c.staleness_bound, Duration::from_secs(30));
        assert_eq!(c.clock_leeway, Duration::from_secs(30));
        assert_eq!(c.max_token_bytes, 4096);
        assert_eq!(c.headers.user_id, "X-User-Id");
        assert_eq!(c.headers.scopes, "X-Scopes");
        assert!(!c.forward_token);
        assert!(c.trusted_proxies.contains("127.0.0.1".parse().unwrap()));
        assert!(c.trusted_proxies.contains("127.8.0.1".parse().unwrap()));
        assert!(c.trusted_proxies.contains("::1".parse().unwrap()));
        assert!(c
            .trusted_proxies
            .contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!c.trusted_proxies.contains("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn services_policy_and_proxies_are_read() {
        let src = base()
            .with("MCP_ECHO_URL", "http://127.0.0.1:9000/echo/mcp/")
            .with("MCP_ECHO_ALLOWED_USERS", "alice, github:42")
            .with("MCP_ECHO_ALLOWED_ORGS", "acme")
            .with("MCP_ECHO_ALLOWED_TEAMS", "acme/sre")
            .with("MCP_ECHO_REQUIRED_SCOPES", "mcp mcp:write")
            .with("TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7");
        let err = VerifierConfig::from_source(&src).unwrap_err();
        assert_eq!(err.var, "MCP_ECHO_REQUIRED_SCOPES");
        let c = VerifierConfig::from_source(&src.with("MCP_ECHO_REQUIRED_SCOPES", "mcp,mcp:write"))
            .unwrap();
        let s = &c.services[0];
        assert_eq!(s.resource, "http://127.0.0.1:9000/echo/mcp/");
        assert_eq!((s.port, s.path_prefix.as_str()), (9000, "/echo/mcp"));
        assert_eq!(s.policy.allowed_users, vec!["alice", "github:42"]);
        assert_eq!(s.policy.allowed_teams, vec!["acme/sre"]);
        assert_eq!(s.policy.required_scopes, vec!["mcp", "mcp:write"]);
        assert!(c.trusted_proxies.contains("10.2.3.4".parse().unwrap()));
        assert!(c.trusted_proxies.contains("192.168.1.7".parse().unwrap()));
        assert!(!c.trusted_proxies.contains("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn every_error_names_its_variable_on_one_line() {
        let cases: Vec<(Source, &str)> = vec![
            (
                Source::from_pairs([("MCP_ECHO_ENABLED", "true")]),
                "AUTH_ISSUER",
            ),
            (
                base().with("AUTH_ISSUER", "https://auth.example.com/"),
                "AUTH_ISSUER",
            ),
            (base().with("AUTHZ_URL", "ftp://x"), "AUTHZ_URL"),
            (
                Source::from_pairs([("BASE_DOMAIN", "example.com")]),
                "MCP_<NAME>_ENABLED",
            ),
            (
                Source::from_pairs([
                    ("AUTH_ISSUER", "https://a.example"),
                    ("MCP_ECHO_ENABLED", "true"),
                ]),
                "MCP_ECHO_URL",
            ),
            (
                base().with("MCP_ECHO_URL", "https://e/mcp?x=1"),
                "MCP_ECHO_URL",
            ),
            (
                base().with("MCP_ECHO_ENABLED", "perhaps"),
                "MCP_ECHO_ENABLED",
            ),
            (
                base().with("VERIFIER_LISTEN", "localhost"),
                "VERIFIER_LISTEN",
            ),
            (
                base().with("TRUSTED_PROXIES", "10.0.0.0/33"),
                "TRUSTED_PROXIES",
            ),
            (
                base().with("TRUSTED_PROXIES", "proxy.local"),
                "TRUSTED_PROXIES",
            ),
            (
                base().with("REVOCATION_STALENESS_BOUND", "0"),
                "REVOCATION_STALENESS_BOUND",
            ),
            (
                base().with("REVOCATION_STALENESS_BOUND", "soon"),
                "REVOCATION_STALENESS_BOUND",
            ),
            (base().with("CLOCK_LEEWAY", "-1"), "CLOCK_LEEWAY"),
            (base().with("MAX_TOKEN_BYTES", "10"), "MAX_TOKEN_BYTES"),
            (
                base().with("IDENTITY_HEADER_USER_ID", "X_User_Id"),
                "IDENTITY_HEADER_USER_ID",
            ),
            (
                base().with("IDENTITY_HEADER_SCOPES", "bad header"),
                "IDENTITY_HEADER_SCOPES",
            ),
            (
                base().with("IDENTITY_HEADER_SCOPES", "x-user-id"),
                "IDENTITY_HEADER_USER_ID",
            ),
            (base().with("FORWARD_TOKEN", "sometimes"), "FORWARD_TOKEN"),
            (base().with("REDIS_URL", "not a url"), "REDIS_URL"),
            (
                base().with("MCP_ECHO_ALLOWED_TEAMS", "acme"),
                "MCP_ECHO_ALLOWED_TEAMS",
            ),
            (
                base()
                    .with("MCP_TIME_ENABLED", "true")
                    .with("MCP_TIME_URL", "https://echo.example.com/mcp/"),
                "MCP_TIME_URL",
            ),
        ];
        for (src, var) in cases {
            let err = VerifierConfig::from_source(&src).unwrap_err();
            assert_eq!(err.var, var, "{err}");
            let line = err.to_string();
            assert!(line.contains(var) && !line.contains('\n'), "{line}");
            assert!(line.contains("(example: "), "{line}");
        }
    }
}
