//! The authorization server's configuration, parsed whole before any port is
//! bound. Every problem is one [`ConfigError`] line naming the variable.
//!
//! Names follow the Python gateway where it had them (`BASE_DOMAIN`,
//! `GATEWAY_JWT_SECRET`, `JWT_ALGORITHM`, `JWT_PRIVATE_KEY_B64`, the lifetimes,
//! `MCP_<NAME>_ENABLED`), so a migration is a drop-in.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use gateway_common::config::{ConfigError, Source};
use secrecy::{ExposeSecret, SecretString};

/// The longest an authorization code may live (RFC 9700 §4.2.1 / OAuth 2.1 §4.1.2: "short", at most 10 minutes).
pub const MAX_CODE_LIFETIME: Duration = Duration::from_secs(600);

/// Token signing algorithm. Only asymmetric ones: verifiers check tokens with
/// the public keys from `/jwks`, and must never hold a key that can sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    Es256,
    Rs256,
    EdDsa,
}

impl SigningAlg {
    pub fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            SigningAlg::Es256 => jsonwebtoken::Algorithm::ES256,
            SigningAlg::Rs256 => jsonwebtoken::Algorithm::RS256,
            SigningAlg::EdDsa => jsonwebtoken::Algorithm::EdDSA,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SigningAlg::Es256 => "ES256",
            SigningAlg::Rs256 => "RS256",
            SigningAlg::EdDsa => "EdDSA",
        }
    }

    pub fn parse(v: &str) -> Option<Self> {
        match v.to_ascii_uppercase().as_str() {
            "ES256" => Some(SigningAlg::Es256),
            "RS256" => Some(SigningAlg::Rs256),
            "EDDSA" => Some(SigningAlg::EdDsa),
            _ => None,
        }
    }
}

/// One protected MCP service: its resource URL is the token audience and the
/// PRM `resource`, byte for byte (RFC 8707 §2, RFC 9728 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub resource: String,
}

/// Which peers may set `X-Forwarded-For` / `-Host` / `-Proto` (CIDRs, as in the verifier).
pub use gateway_common::trusted_proxies::TrustedProxies;

#[derive(Clone)]
pub struct Config {
    /// `AUTH_ISSUER`, no trailing slash; compared byte for byte everywhere (RFC 8414 §3.3, RFC 9207).
    pub issuer: String,
    pub listen: SocketAddr,
    /// `AUTHZ_WORKERS`: actix worker threads (0 = one per CPU; default 2).
    pub workers: usize,
    /// `SHUTDOWN_TIMEOUT`: how long requests in flight may take after SIGTERM.
    pub shutdown_timeout: Duration,
    /// `SHUTDOWN_DELAY`: how long a stopping instance stays out of rotation
    /// (`/ready` 503), still answering, before its listener closes.
    pub shutdown_delay: Duration,
    pub access_token_lifetime: Duration,
    pub refresh_token_lifetime: Duration,
    /// Lifetime of the sign-in session and of a pending authorization request.
    pub session_timeout: Duration,
    /// `None`: registered clients never expire (`CLIENT_LIFETIME=0`).
    pub client_lifetime: Option<Duration>,
    pub code_lifetime: Duration,
    /// Signing keys: algorithm, key-encryption key, rotation (see [`KeyConfig`]).
    pub keys: KeyConfig,
    pub services: Vec<Service>,
    pub scopes_supported: Vec<String>,
    pub default_scope: String,
    pub local_users_file: Option<PathBuf>,
    /// `ALLOWED_GITHUB_USERS` (kept for compatibility; the GitHub provider reads [`GitHubConfig`]).
    pub allowed_github_users: Vec<String>,
    /// GitHub sign-in, when `GITHUB_CLIENT_ID` is set.
    pub github: Option<GitHubConfig>,
    /// OpenID Connect sign-in, when `OIDC_ISSUER` is set.
    pub oidc: Option<OidcConfig>,
    /// `DEVICE_CODE_LIFETIME` (RFC 8628 §3.2 `expires_in`).
    pub device_code_lifetime: Duration,
    /// `DEVICE_POLL_INTERVAL` (RFC 8628 §3.2 `interval`).
    pub device_poll_interval: Duration,
    /// Parsed for compatibility; the authz-server does not speak MCP itself.
    pub mcp_protocol_version: String,
    /// Client ids that may introspect any token (resource servers, RFC 7662 §2.1).
    pub introspection_clients: Vec<String>,
    /// Lets Client ID Metadata Documents live on private or loopback hosts (tests only).
    pub cimd_allow_private: bool,
    /// DPoP at `/token` (`DPOP_*`, `MCP_<NAME>_DPOP`; see [`crate::protocol::dpop`]).
    pub dpop: crate::protocol::dpop::DpopSettings,
    /// Who may use the client_credentials grant (see [`crate::protocol::client_credentials`]).
    pub machine: crate::protocol::client_credentials::MachinePolicy,
    pub trusted_proxies: TrustedProxies,
    /// `REVOCATION_FEED_SECRET(_FILE)`: what verifiers present to follow
    /// `/revocations` and `/revocations/stream`; without it only loopback peers may.
    pub revocation_feed_secret: Option<gateway_common::revocation::FeedSecret>,
    /// `REVOCATION_FEED_MAX_SUBSCRIBERS` (default 64): open feed streams at once.
    pub revocation_feed_max_subscribers: usize,
    /// `AUTHZ_MAX_CONNECTIONS` (default 4096, and never above the process's
    /// file-descriptor limit less a reserve): open connections in total.
    pub max_connections: usize,
    /// `AUTHZ_MAX_CONNECTIONS_PER_ADDRESS` (default 128): open connections
    /// from one peer address; trusted proxies are exempt (they carry everyone).
    pub max_connections_per_address: usize,
    /// The whole source, for the store configuration (`gateway_store::config`).
    pub source: Source,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("issuer", &self.issuer)
            .field("listen", &self.listen)
            .field("jwt_algorithm", &self.keys.jwt_algorithm)
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Every variable, each checked where it is read; the first error names its variable.
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let base_domain = src.get("BASE_DOMAIN");
        let issuer = issuer(src, base_domain)?;
        let listen = listen(src)?;
        let access_token_lifetime = positive(src, "ACCESS_TOKEN_LIFETIME", 3600)?;
        let refresh_token_lifetime = positive(src, "REFRESH_TOKEN_LIFETIME", 30 * 24 * 3600)?;
        let session_timeout = positive(src, "SESSION_TIMEOUT", 900)?;
        let client_lifetime = src.seconds("CLIENT_LIFETIME", 90 * 24 * 3600)?;
        let client_lifetime = (!client_lifetime.is_zero()).then_some(client_lifetime);
        let code_lifetime = code_lifetime(src)?;
        let keys = KeyConfig::from_source(src, access_token_lifetime)?;
        let services = services(src, base_domain)?;
        let service_pairs: Vec<(String, String)> = services
            .iter()
            .map(|s| (s.name.clone(), s.resource.clone()))
            .collect();
        let (scopes_supported, default_scope) = scopes(src)?;
        let local_users_file = local_users_file(src);
        let workers = usize::try_from(src.u64("AUTHZ_WORKERS", 2)?)
            .map_err(|_| ConfigError::new("AUTHZ_WORKERS", "is too large", "2"))?;
        let trusted_proxies = trusted_proxies(src)?;

        Ok(Self {
            issuer,
            listen,
            workers,
            shutdown_timeout: gateway_common::lifecycle::shutdown_timeout(src)?,
            shutdown_delay: gateway_common::lifecycle::shutdown_delay(src)?,
            access_token_lifetime,
            refresh_token_lifetime,
            session_timeout,
            client_lifetime,
            code_lifetime,
            keys,
            services,
            scopes_supported,
            default_scope,
            local_users_file,
            allowed_github_users: src.list("ALLOWED_GITHUB_USERS"),
            github: GitHubConfig::from_source(src)?,
            oidc: OidcConfig::from_source(src)?,
            device_code_lifetime: positive(src, "DEVICE_CODE_LIFETIME", 600)?,
            device_poll_interval: positive(src, "DEVICE_POLL_INTERVAL", 5)?,
            mcp_protocol_version: src.string("MCP_PROTOCOL_VERSION", "2025-06-18"),
            introspection_clients: src.list("INTROSPECTION_CLIENTS"),
            cimd_allow_private: src.bool("CIMD_ALLOW_PRIVATE", false)?,
            dpop: crate::protocol::dpop::DpopSettings::from_source(src, &service_pairs)?,
            machine: crate::protocol::client_credentials::MachinePolicy::from_source(
                src,
                &service_pairs,
            )?,
            trusted_proxies,
            revocation_feed_secret: gateway_common::revocation::FeedSecret::from_source(src)?,
            revocation_feed_max_subscribers: bounded(
                src,
                "REVOCATION_FEED_MAX_SUBSCRIBERS",
                64,
                1,
                10_000,
            )?,
            max_connections: bounded(src, "AUTHZ_MAX_CONNECTIONS", 4096, 16, 1_000_000)?,
            max_connections_per_address: bounded(
                src,
                "AUTHZ_MAX_CONNECTIONS_PER_ADDRESS",
                128,
                1,
                1_000_000,
            )?,
            source: src.clone(),
        })
    }

    /// Secure cookies and `__Host-` names when the issuer is https.
    pub fn https(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    pub fn service_by_resource(&self, resource: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.resource == resource)
    }
}

/// `AUTH_ISSUER`, else `https://auth.${BASE_DOMAIN}`.
fn issuer(src: &Source, base_domain: Option<&str>) -> Result<String, ConfigError> {
    let issuer = match (src.get("AUTH_ISSUER"), base_domain) {
        (Some(v), _) => v.to_string(),
        (None, Some(d)) => format!("https://auth.{d}"),
        (None, None) => {
            return Err(ConfigError::new(
                "AUTH_ISSUER",
                "is required when BASE_DOMAIN is not set",
                "https://auth.example.com",
            ))
        }
    };
    check_issuer(&issuer)?;
    Ok(issuer)
}

/// `AUTHZ_LISTEN`: an IP address and a port.
fn listen(src: &Source) -> Result<SocketAddr, ConfigError> {
    let raw = src.string("AUTHZ_LISTEN", "0.0.0.0:8000");
    raw.parse().map_err(|_| {
        ConfigError::new(
            "AUTHZ_LISTEN",
            format!("must be host:port with an IP address, got {raw:?}"),
            "0.0.0.0:8000",
        )
    })
}

/// `AUTH_CODE_LIFETIME`: authorization codes are short-lived (RFC 9700 §4.2.1).
fn code_lifetime(src: &Source) -> Result<Duration, ConfigError> {
    let code_lifetime = positive(src, "AUTH_CODE_LIFETIME", 300)?;
    if code_lifetime > MAX_CODE_LIFETIME {
        return Err(ConfigError::new(
            "AUTH_CODE_LIFETIME",
            "must be at most 600 seconds (authorization codes are short-lived, RFC 9700 §4.2.1)",
            "300",
        ));
    }
    Ok(code_lifetime)
}

/// Every `MCP_<NAME>_ENABLED` service and its resource: `MCP_<NAME>_URL`,
/// else `https://<name>.${BASE_DOMAIN}/mcp`.
fn services(src: &Source, base_domain: Option<&str>) -> Result<Vec<Service>, ConfigError> {
    let mut services = Vec::new();
    for name in src.enabled_services()? {
        let var = format!("MCP_{}_URL", name.to_ascii_uppercase());
        let resource = match (src.get(&var), base_domain) {
            (Some(v), _) => v.to_string(),
            (None, Some(d)) => gateway_common::config::service_url(&name, d),
            (None, None) => {
                return Err(ConfigError::new(
                    &var,
                    "is required when BASE_DOMAIN is not set",
                    &format!("https://{name}.example.com/mcp"),
                ))
            }
        };
        check_resource(&var, &resource)?;
        services.push(Service { name, resource });
    }
    Ok(services)
}

/// `SCOPES_SUPPORTED` (default `mcp`) and the scope granted when none is
/// asked for: `mcp` when supported, else the first.
fn scopes(src: &Source) -> Result<(Vec<String>, String), ConfigError> {
    let mut scopes_supported = src.list("SCOPES_SUPPORTED");
    if scopes_supported.is_empty() {
        scopes_supported.push("mcp".to_string());
    }
    for s in &scopes_supported {
        if !crate::protocol::scope::is_scope_token(s) {
            return Err(ConfigError::new(
                "SCOPES_SUPPORTED",
                format!("has an invalid scope {s:?} (RFC 6749 §3.3: printable ASCII, no spaces, quotes or backslashes)"),
                "mcp,mcp:admin",
            ));
        }
    }
    let default_scope = if scopes_supported.iter().any(|s| s == "mcp") {
        "mcp".to_string()
    } else {
        scopes_supported[0].clone()
    };
    Ok((scopes_supported, default_scope))
}

/// Set: local sign-in from that file (users added later are picked up
/// without a restart). Unset: from the default file, if it exists, so
/// `mcp-gateway add-user NAME` and the server agree without a variable.
fn local_users_file(src: &Source) -> Option<PathBuf> {
    match src.get("LOCAL_USERS_FILE") {
        Some(path) => Some(PathBuf::from(path)),
        None => Some(PathBuf::from(
            gateway_common::config::DEFAULT_LOCAL_USERS_FILE,
        ))
        .filter(|p| p.exists()),
    }
}

/// `TRUSTED_PROXIES` (default: loopback only).
fn trusted_proxies(src: &Source) -> Result<TrustedProxies, ConfigError> {
    match src.get("TRUSTED_PROXIES") {
        None => Ok(TrustedProxies::loopback()),
        Some(_) => TrustedProxies::parse(&src.list("TRUSTED_PROXIES")).map_err(|why| {
            ConfigError::new(
                "TRUSTED_PROXIES",
                format!("must list IP addresses or CIDRs (or be *): {why}"),
                "127.0.0.1,10.0.0.0/8",
            )
        }),
    }
}

/// A count between `min` and `max`; errors name the variable.
fn bounded(
    src: &Source,
    key: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<usize, ConfigError> {
    let v = src.u64(key, default)?;
    if !(min..=max).contains(&v) {
        return Err(ConfigError::new(
            key,
            format!("must be between {min} and {max}, got {v}"),
            &default.to_string(),
        ));
    }
    usize::try_from(v).map_err(|_| ConfigError::new(key, "is too large", &default.to_string()))
}

/// GitHub (or GitHub Enterprise Server) as the upstream identity provider.
#[derive(Clone)]
pub struct GitHubConfig {
    pub client_id: String,
    pub client_secret: SecretString,
    /// `GITHUB_BASE_URL` (web flow), no trailing slash: `https://github.com` or `https://HOST`.
    pub base_url: String,
    /// `GITHUB_API_URL`, no trailing slash: `https://api.github.com` or `https://HOST/api/v3`.
    pub api_url: String,
    /// Lower-cased logins; `*` means any GitHub user.
    pub allowed_users: Vec<String>,
    /// Lower-cased organization logins.
    pub allowed_orgs: Vec<String>,
    /// Lower-cased `org/team-slug` pairs.
    pub allowed_teams: Vec<(String, String)>,
    /// How often a refresh re-checks the allowlists with GitHub (`GITHUB_RECHECK_INTERVAL`).
    pub recheck_interval: Duration,
}

impl std::fmt::Debug for GitHubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubConfig")
            .field("client_id", &self.client_id)
            .field("base_url", &self.base_url)
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

fn base_url(src: &Source, var: &str, default: &str) -> Result<String, ConfigError> {
    let v = src.string(var, default);
    gateway_common::config::parse_http_url(&v)
        .map_err(|why| ConfigError::new(var, format!("{why}, got {v:?}"), default))?;
    Ok(v.trim_end_matches('/').to_string())
}

impl GitHubConfig {
    pub fn from_source(src: &Source) -> Result<Option<Self>, ConfigError> {
        let Some(client_id) = src.get("GITHUB_CLIENT_ID") else {
            return Ok(None);
        };
        let client_secret = src.required(
            "GITHUB_CLIENT_SECRET",
            "0123456789abcdef0123456789abcdef01234567",
        )?;
        let lower = |v: Vec<String>| -> Vec<String> {
            v.into_iter().map(|s| s.to_ascii_lowercase()).collect()
        };
        let mut allowed_teams = Vec::new();
        for t in src.list("ALLOWED_GITHUB_TEAMS") {
            match t.split_once('/') {
                Some((org, team)) if !org.trim().is_empty() && !team.trim().is_empty() => {
                    allowed_teams.push((
                        org.trim().to_ascii_lowercase(),
                        team.trim().to_ascii_lowercase(),
                    ))
                }
                _ => {
                    return Err(ConfigError::new(
                        "ALLOWED_GITHUB_TEAMS",
                        format!("entries must be org/team-slug, got {t:?}"),
                        "my-org/platform,my-org/sre",
                    ))
                }
            }
        }
        let cfg = Self {
            client_id: client_id.to_string(),
            client_secret: SecretString::from(client_secret),
            base_url: base_url(src, "GITHUB_BASE_URL", "https://github.com")?,
            api_url: base_url(src, "GITHUB_API_URL", "https://api.github.com")?,
            allowed_users: lower(src.list("ALLOWED_GITHUB_USERS")),
            allowed_orgs: lower(src.list("ALLOWED_GITHUB_ORGS")),
            allowed_teams,
            recheck_interval: src.seconds("GITHUB_RECHECK_INTERVAL", 3600)?,
        };
        if cfg.allowed_users.is_empty()
            && cfg.allowed_orgs.is_empty()
            && cfg.allowed_teams.is_empty()
        {
            // Safe default: GitHub has millions of users; say explicitly who may sign in.
            return Err(ConfigError::new(
                "ALLOWED_GITHUB_USERS",
                "is required with GITHUB_CLIENT_ID unless ALLOWED_GITHUB_ORGS or ALLOWED_GITHUB_TEAMS is set (* allows any GitHub user)",
                "octocat,hubot",
            ));
        }
        Ok(Some(cfg))
    }
}

/// Any OpenID Connect provider as the upstream identity provider.
#[derive(Clone)]
pub struct OidcConfig {
    /// `OIDC_ISSUER`, compared byte for byte with the discovery document and the id_token `iss`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub scopes: String,
    /// Lower-cased; `*` means any authenticated user of the provider.
    pub allowed_emails: Vec<String>,
    pub allowed_domains: Vec<String>,
    pub allowed_groups: Vec<String>,
    pub groups_claim: String,
    /// `OIDC_LABEL`: what the chooser page shows.
    pub label: String,
    /// How often a refresh re-checks the allowlists with the provider
    /// (`OIDC_RECHECK_INTERVAL`, as `GITHUB_RECHECK_INTERVAL`).
    pub recheck_interval: Duration,
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl OidcConfig {
    pub fn from_source(src: &Source) -> Result<Option<Self>, ConfigError> {
        let Some(issuer) = src.get("OIDC_ISSUER") else {
            return Ok(None);
        };
        gateway_common::config::parse_http_url(issuer).map_err(|why| {
            ConfigError::new(
                "OIDC_ISSUER",
                format!("{why}, got {issuer:?}"),
                "https://accounts.example.com",
            )
        })?;
        let lower = |v: Vec<String>| -> Vec<String> {
            v.into_iter().map(|s| s.to_ascii_lowercase()).collect()
        };
        let cfg = Self {
            issuer: issuer.to_string(),
            client_id: src.required("OIDC_CLIENT_ID", "mcp-gateway")?,
            client_secret: SecretString::from(
                src.required("OIDC_CLIENT_SECRET", "s3cret-from-the-provider")?,
            ),
            scopes: src.string("OIDC_SCOPES", "openid email profile"),
            allowed_emails: lower(src.list("OIDC_ALLOWED_EMAILS")),
            allowed_domains: lower(src.list("OIDC_ALLOWED_DOMAINS")),
            allowed_groups: src.list("OIDC_ALLOWED_GROUPS"),
            groups_claim: src.string("OIDC_GROUPS_CLAIM", "groups"),
            label: src.string("OIDC_LABEL", "Single sign-on"),
            recheck_interval: src.seconds("OIDC_RECHECK_INTERVAL", 3600)?,
        };
        if !cfg.scopes.split_ascii_whitespace().any(|s| s == "openid") {
            return Err(ConfigError::new(
                "OIDC_SCOPES",
                "must include openid",
                "openid email profile",
            ));
        }
        if cfg.allowed_emails.is_empty()
            && cfg.allowed_domains.is_empty()
            && cfg.allowed_groups.is_empty()
        {
            return Err(ConfigError::new(
                "OIDC_ALLOWED_EMAILS",
                "is required with OIDC_ISSUER unless OIDC_ALLOWED_DOMAINS or OIDC_ALLOWED_GROUPS is set (* allows every user of the provider)",
                "alice@example.com,bob@example.com",
            ));
        }
        Ok(Some(cfg))
    }
}

/// The default key-encryption key file's name, beside the embedded store
/// (`up` and a standalone authz-server use the same place).
pub const KEK_FILE_NAME: &str = "key-encryption.key";
/// Where versions before the one-location rule put it without `KEY_ENCRYPTION_KEY_FILE`.
pub const LEGACY_KEK_FILE_NAME: &str = "authz-key-encryption.key";

/// Signing keys: what the authorization server and `mcp-gateway rotate-keys`
/// both need (no issuer, no services), so rotation works on any data
/// directory the gateway can start from.
///
/// The key-encryption key (KEK) has one place per mode: `GATEWAY_JWT_SECRET`
/// when set (required with Redis), else the file `KEY_ENCRYPTION_KEY_FILE`,
/// default `key-encryption.key` beside the embedded store (`STORE_PATH`,
/// default `./data/gateway.redb`, which is where `mcp-gateway up` keeps it).
#[derive(Clone)]
pub struct KeyConfig {
    pub jwt_algorithm: SigningAlg,
    /// PEM of an RSA key imported from the Python gateway (`JWT_PRIVATE_KEY_B64`).
    pub imported_rsa_pem: Option<SecretString>,
    /// `GATEWAY_JWT_SECRET`: encrypts the signing keys at rest (see `crate::keys`).
    pub key_encryption_secret: Option<SecretString>,
    /// Where the key-encryption key lives when `GATEWAY_JWT_SECRET` is unset
    /// (and where a set sealed before the secret was set is re-sealed from).
    pub key_encryption_key_file: PathBuf,
    /// The pre-1.0 default location, read when the file above is absent.
    pub legacy_key_file: Option<PathBuf>,
    /// `KEY_ROTATION_INTERVAL` (seconds, 0 = only on command).
    pub key_rotation_interval: Option<Duration>,
    /// `KEY_PUBLISH_LEAD`: how long a key is published in `/jwks` before it
    /// may sign, so every verifier holds it before the first token it signs.
    pub publish_lead: Duration,
    /// `KEY_RELOAD_INTERVAL`: how often each instance re-reads the key set.
    pub reload_interval: Duration,
    /// How long tokens signed by a key may live (`ACCESS_TOKEN_LIFETIME`):
    /// a retired key stays published that long after it stopped signing.
    pub token_lifetime: Duration,
}

impl std::fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyConfig")
            .field("jwt_algorithm", &self.jwt_algorithm)
            .field("key_encryption_key_file", &self.key_encryption_key_file)
            .field("key_rotation_interval", &self.key_rotation_interval)
            .field("publish_lead", &self.publish_lead)
            .finish_non_exhaustive()
    }
}

impl KeyConfig {
    /// The verifiers' `JWKS_REFRESH_INTERVAL` default, for the lead-time check.
    pub const DEFAULT_JWKS_REFRESH: u64 = 300;

    pub fn from_source(src: &Source, token_lifetime: Duration) -> Result<Self, ConfigError> {
        let imported_rsa_pem = match src.get("JWT_PRIVATE_KEY_B64") {
            None => None,
            Some(b64) => Some(decode_pem_b64(b64)?),
        };
        let jwt_algorithm = match src.get("JWT_ALGORITHM") {
            None if imported_rsa_pem.is_some() => SigningAlg::Rs256,
            None => SigningAlg::Es256,
            Some(v) if v.eq_ignore_ascii_case("HS256")
                || v.eq_ignore_ascii_case("HS384")
                || v.eq_ignore_ascii_case("HS512") =>
            {
                return Err(ConfigError::new(
                    "JWT_ALGORITHM",
                    format!(
                        "{v} is refused: verifiers check tokens with the public keys from /jwks, so signing needs an asymmetric key (a shared secret would let every verifier mint tokens)"
                    ),
                    "ES256",
                ))
            }
            Some(v) => SigningAlg::parse(v).ok_or_else(|| {
                ConfigError::new(
                    "JWT_ALGORITHM",
                    format!("must be ES256, RS256 or EdDSA, got {v:?}"),
                    "ES256",
                )
            })?,
        };
        if imported_rsa_pem.is_some() && jwt_algorithm != SigningAlg::Rs256 {
            return Err(ConfigError::new(
                "JWT_ALGORITHM",
                format!(
                    "must be RS256 when JWT_PRIVATE_KEY_B64 imports an RSA key, got {}",
                    jwt_algorithm.name()
                ),
                "RS256",
            ));
        }

        let key_encryption_secret = src
            .get("GATEWAY_JWT_SECRET")
            .map(|s| SecretString::from(s.to_string()));
        if let Some(secret) = &key_encryption_secret {
            if secret.expose_secret().len() < 32 {
                return Err(ConfigError::new(
                    "GATEWAY_JWT_SECRET",
                    "must be at least 32 characters: it encrypts the signing keys at rest",
                    "$(openssl rand -base64 32)",
                ));
            }
        }
        if src.get("REDIS_URL").is_some()
            && key_encryption_secret.is_none()
            && src.get("KEY_ENCRYPTION_KEY_FILE").is_none()
        {
            return Err(ConfigError::new(
                "GATEWAY_JWT_SECRET",
                "is required with REDIS_URL: every instance sharing Redis must decrypt the same signing keys (or set KEY_ENCRYPTION_KEY_FILE to a shared file)",
                "$(openssl rand -base64 32)",
            ));
        }
        let store_path = PathBuf::from(src.string("STORE_PATH", "./data/gateway.redb"));
        let store_dir = store_path
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        let (key_encryption_key_file, legacy_key_file) = match src.get("KEY_ENCRYPTION_KEY_FILE") {
            Some(p) => (PathBuf::from(p), None),
            None => (
                store_dir.join(KEK_FILE_NAME),
                Some(store_dir.join(LEGACY_KEK_FILE_NAME)),
            ),
        };
        let key_rotation_interval = src.seconds("KEY_ROTATION_INTERVAL", 30 * 24 * 3600)?;
        let key_rotation_interval =
            (!key_rotation_interval.is_zero()).then_some(key_rotation_interval);
        let reload_interval = positive(src, "KEY_RELOAD_INTERVAL", 60)?;
        // The verifiers' refresh interval is theirs; the authz-server reads
        // the same variable (one .env) to know how early a key must appear.
        let jwks_refresh = src.seconds("JWKS_REFRESH_INTERVAL", Self::DEFAULT_JWKS_REFRESH)?;
        let min_lead = jwks_refresh + reload_interval;
        let publish_lead = src.seconds("KEY_PUBLISH_LEAD", min_lead.as_secs())?;
        if publish_lead < min_lead {
            return Err(ConfigError::new(
                "KEY_PUBLISH_LEAD",
                format!(
                    "must be at least JWKS_REFRESH_INTERVAL + KEY_RELOAD_INTERVAL ({} s): a new key must reach every verifier before it signs, or they refuse its first tokens",
                    min_lead.as_secs()
                ),
                &min_lead.as_secs().to_string(),
            ));
        }
        Ok(Self {
            jwt_algorithm,
            imported_rsa_pem,
            key_encryption_secret,
            key_encryption_key_file,
            legacy_key_file,
            key_rotation_interval,
            publish_lead,
            reload_interval,
            token_lifetime,
        })
    }
}

fn positive(src: &Source, key: &str, default: u64) -> Result<Duration, ConfigError> {
    let d = src.seconds(key, default)?;
    if d.is_zero() {
        return Err(ConfigError::new(
            key,
            "must be a positive number of seconds",
            &default.to_string(),
        ));
    }
    Ok(d)
}

fn check_issuer(issuer: &str) -> Result<(), ConfigError> {
    let example = "https://auth.example.com";
    let url = url::Url::parse(issuer).map_err(|_| {
        ConfigError::new(
            "AUTH_ISSUER",
            format!("must be an absolute URL, got {issuer:?}"),
            example,
        )
    })?;
    // RFC 8414 §2: https, no query or fragment. http is allowed for loopback development.
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return Err(ConfigError::new(
            "AUTH_ISSUER",
            format!("must use https (http only on a loopback host), got {issuer:?}"),
            example,
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(
            "AUTH_ISSUER",
            format!("must have no query or fragment (RFC 8414 §2), got {issuer:?}"),
            example,
        ));
    }
    if issuer.ends_with('/') {
        return Err(ConfigError::new(
            "AUTH_ISSUER",
            format!(
                "must not end with a slash (the issuer is compared byte for byte), got {issuer:?}"
            ),
            example,
        ));
    }
    Ok(())
}

fn check_resource(var: &str, resource: &str) -> Result<(), ConfigError> {
    let example = "https://echo.example.com/mcp";
    let url = gateway_common::config::parse_http_url(resource)
        .map_err(|why| ConfigError::new(var, format!("{why}, got {resource:?}"), example))?;
    // RFC 8707 §2: an absolute URI without a fragment.
    if url.fragment().is_some() {
        return Err(ConfigError::new(
            var,
            format!("must have no fragment (RFC 8707 §2), got {resource:?}"),
            example,
        ));
    }
    Ok(())
}

fn decode_pem_b64(b64: &str) -> Result<SecretString, ConfigError> {
    let err = |why: &str| ConfigError::new("JWT_PRIVATE_KEY_B64", why, "$(base64 -w0 private.pem)");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| err("must be base64 of a PEM RSA private key"))?;
    let pem =
        String::from_utf8(bytes).map_err(|_| err("must be base64 of a PEM RSA private key"))?;
    if !pem.contains("-----BEGIN") || !pem.contains("PRIVATE KEY-----") {
        return Err(err(
            "must be base64 of a PEM RSA private key (BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY)",
        ));
    }
    if crate::signer::validate_rsa_pem(&pem).is_err() {
        return Err(err(
            "is not a usable RSA private key (at least 2048 bits, PKCS#1 or PKCS#8 PEM)",
        ));
    }
    Ok(SecretString::from(pem))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![("BASE_DOMAIN", "example.com"), ("MCP_ECHO_ENABLED", "true")]
    }

    fn parse(extra: &[(&'static str, &'static str)]) -> Result<Config, ConfigError> {
        let mut pairs = base();
        pairs.extend_from_slice(extra);
        Config::from_source(&Source::from_pairs(pairs))
    }

    #[test]
    fn defaults_follow_the_shared_contract() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.issuer, "https://auth.example.com");
        assert_eq!(c.listen.to_string(), "0.0.0.0:8000");
        assert_eq!(c.access_token_lifetime, Duration::from_secs(3600));
        assert_eq!(
            c.refresh_token_lifetime,
            Duration::from_secs(30 * 24 * 3600)
        );
        assert_eq!(c.client_lifetime, Some(Duration::from_secs(90 * 24 * 3600)));
        assert_eq!(c.keys.jwt_algorithm, SigningAlg::Es256);
        assert_eq!(
            c.services,
            vec![Service {
                name: "echo".into(),
                resource: "https://echo.example.com/mcp".into()
            }]
        );
        assert_eq!(c.scopes_supported, vec!["mcp"]);
        assert_eq!(c.default_scope, "mcp");
        assert!(c.code_lifetime <= MAX_CODE_LIFETIME);
    }

    #[test]
    fn client_lifetime_zero_means_never() {
        assert_eq!(
            parse(&[("CLIENT_LIFETIME", "0")]).unwrap().client_lifetime,
            None
        );
    }

    #[test]
    fn missing_issuer_and_base_domain_names_auth_issuer() {
        let err = Config::from_source(&Source::from_pairs([("X", "y")])).unwrap_err();
        assert_eq!(err.var, "AUTH_ISSUER");
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn negative_lifetime_is_refused() {
        for var in [
            "ACCESS_TOKEN_LIFETIME",
            "REFRESH_TOKEN_LIFETIME",
            "SESSION_TIMEOUT",
            "CLIENT_LIFETIME",
        ] {
            let err = parse(&[(var, "-5")]).unwrap_err();
            assert_eq!(err.var, var);
        }
        assert_eq!(
            parse(&[("ACCESS_TOKEN_LIFETIME", "0")]).unwrap_err().var,
            "ACCESS_TOKEN_LIFETIME"
        );
    }

    #[test]
    fn code_lifetime_above_ten_minutes_is_refused() {
        assert_eq!(
            parse(&[("AUTH_CODE_LIFETIME", "601")]).unwrap_err().var,
            "AUTH_CODE_LIFETIME"
        );
    }

    #[test]
    fn unknown_jwt_algorithm_is_refused() {
        let err = parse(&[("JWT_ALGORITHM", "PS999")]).unwrap_err();
        assert_eq!(err.var, "JWT_ALGORITHM");
        assert_eq!(
            parse(&[("JWT_ALGORITHM", "eddsa")])
                .unwrap()
                .keys
                .jwt_algorithm,
            SigningAlg::EdDsa
        );
        assert_eq!(
            parse(&[("JWT_ALGORITHM", "RS256")])
                .unwrap()
                .keys
                .jwt_algorithm,
            SigningAlg::Rs256
        );
    }

    #[test]
    fn hs256_is_refused_with_the_reason() {
        let err = parse(&[("JWT_ALGORITHM", "HS256")]).unwrap_err();
        assert_eq!(err.var, "JWT_ALGORITHM");
        assert!(err.to_string().contains("asymmetric"), "{err}");
    }

    #[test]
    fn redis_without_secret_is_refused() {
        let err = parse(&[("REDIS_URL", "redis://127.0.0.1:6379/0")]).unwrap_err();
        assert_eq!(err.var, "GATEWAY_JWT_SECRET");
        assert!(parse(&[
            ("REDIS_URL", "redis://127.0.0.1:6379/0"),
            ("GATEWAY_JWT_SECRET", "0123456789abcdef0123456789abcdef")
        ])
        .is_ok());
    }

    #[test]
    fn short_secret_is_refused() {
        assert_eq!(
            parse(&[("GATEWAY_JWT_SECRET", "short")]).unwrap_err().var,
            "GATEWAY_JWT_SECRET"
        );
    }

    #[test]
    fn issuer_with_trailing_slash_or_plain_http_is_refused() {
        assert_eq!(
            parse(&[("AUTH_ISSUER", "https://auth.example.com/")])
                .unwrap_err()
                .var,
            "AUTH_ISSUER"
        );
        assert_eq!(
            parse(&[("AUTH_ISSUER", "http://auth.example.com")])
                .unwrap_err()
                .var,
            "AUTH_ISSUER"
        );
        assert!(parse(&[("AUTH_ISSUER", "http://127.0.0.1:8000")]).is_ok());
    }

    #[test]
    fn service_without_url_or_domain_names_its_variable() {
        let err = Config::from_source(&Source::from_pairs([
            ("AUTH_ISSUER", "https://auth.example.com"),
            ("MCP_TIME_ENABLED", "true"),
        ]))
        .unwrap_err();
        assert_eq!(err.var, "MCP_TIME_URL");
        let bad = parse(&[("MCP_ECHO_URL", "ftp://x/mcp")]).unwrap_err();
        assert_eq!(bad.var, "MCP_ECHO_URL");
    }

    #[test]
    fn bad_imported_key_and_mismatched_algorithm_are_refused() {
        assert_eq!(
            parse(&[("JWT_PRIVATE_KEY_B64", "%%%")]).unwrap_err().var,
            "JWT_PRIVATE_KEY_B64"
        );
        let not_pem = base64::engine::general_purpose::STANDARD.encode("hello");
        let pairs = [("JWT_PRIVATE_KEY_B64", not_pem.as_str())];
        let mut all = base();
        all.extend(pairs.iter().map(|(k, v)| (*k, *v)));
        let err = Config::from_source(&Source::from_pairs(all)).unwrap_err();
        assert_eq!(err.var, "JWT_PRIVATE_KEY_B64");
    }

    #[test]
    fn bad_listen_and_bad_scope_are_refused() {
        assert_eq!(
            parse(&[("AUTHZ_LISTEN", "localhost")]).unwrap_err().var,
            "AUTHZ_LISTEN"
        );
        assert_eq!(
            parse(&[("SCOPES_SUPPORTED", "mcp,\"bad\"")])
                .unwrap_err()
                .var,
            "SCOPES_SUPPORTED"
        );
        assert_eq!(
            parse(&[("TRUSTED_PROXIES", "proxy.local")])
                .unwrap_err()
                .var,
            "TRUSTED_PROXIES"
        );
    }

    #[test]
    fn github_provider_config() {
        let gh = [
            ("GITHUB_CLIENT_ID", "Iv1.x"),
            ("GITHUB_CLIENT_SECRET", "s"),
            ("ALLOWED_GITHUB_USERS", " OctoCat ,hubot"),
            ("ALLOWED_GITHUB_TEAMS", "Acme/SRE"),
            ("GITHUB_BASE_URL", "https://ghe.example.com/"),
            ("GITHUB_API_URL", "https://ghe.example.com/api/v3"),
        ];
        let c = parse(&gh).unwrap().github.unwrap();
        assert_eq!(c.allowed_users, vec!["octocat", "hubot"]);
        assert_eq!(
            c.allowed_teams,
            vec![("acme".to_string(), "sre".to_string())]
        );
        assert_eq!(c.base_url, "https://ghe.example.com");
        assert_eq!(c.api_url, "https://ghe.example.com/api/v3");
        assert!(
            !format!("{c:?}").contains("\"s\""),
            "the secret stays out of Debug"
        );
        let defaults = parse(&gh[..3]).unwrap().github.unwrap();
        assert_eq!(defaults.api_url, "https://api.github.com");
        assert_eq!(
            parse(&[("GITHUB_CLIENT_ID", "x")]).unwrap_err().var,
            "GITHUB_CLIENT_SECRET"
        );
        assert_eq!(
            parse(&[("GITHUB_CLIENT_ID", "x"), ("GITHUB_CLIENT_SECRET", "s")])
                .unwrap_err()
                .var,
            "ALLOWED_GITHUB_USERS",
            "no allowlist at all is refused"
        );
        assert_eq!(
            parse(&[
                ("GITHUB_CLIENT_ID", "x"),
                ("GITHUB_CLIENT_SECRET", "s"),
                ("ALLOWED_GITHUB_TEAMS", "no-slash")
            ])
            .unwrap_err()
            .var,
            "ALLOWED_GITHUB_TEAMS"
        );
    }

    #[test]
    fn oidc_provider_config() {
        let ok = [
            ("OIDC_ISSUER", "https://idp.example.com"),
            ("OIDC_CLIENT_ID", "c"),
            ("OIDC_CLIENT_SECRET", "s"),
            ("OIDC_ALLOWED_DOMAINS", "Example.com"),
        ];
        let c = parse(&ok).unwrap().oidc.unwrap();
        assert_eq!(c.allowed_domains, vec!["example.com"]);
        assert_eq!(c.scopes, "openid email profile");
        assert_eq!(c.groups_claim, "groups");
        assert_eq!(parse(&ok[..3]).unwrap_err().var, "OIDC_ALLOWED_EMAILS");
        let mut no_openid = ok.to_vec();
        no_openid.push(("OIDC_SCOPES", "email"));
        assert_eq!(parse(&no_openid).unwrap_err().var, "OIDC_SCOPES");
    }
}
