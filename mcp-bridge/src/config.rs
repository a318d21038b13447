//! Bridge configuration, read whole from a [`Source`] before any port is bound.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gateway_common::config::{ConfigError, Source};

/// Which MCP server the bridge serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `builtin:echo`: the in-process diagnostic server ([`crate::echo`]).
    BuiltinEcho,
    /// `builtin:echo-stateless`: the same tools without sessions ([`crate::native`]).
    BuiltinEchoStateless,
    /// `builtin:fetch`: the `fetch` tool, natively, without sessions ([`crate::fetch`]).
    BuiltinFetch(crate::fetch::FetchConfig),
    /// A stdio MCP server: program (resolved on `PATH`) and arguments.
    Exec { program: PathBuf, args: Vec<String> },
}

/// How sessions map to children (`BRIDGE_PROCESS_MODEL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessModel {
    /// One child per session: isolation; the default for stateful servers.
    Session,
    /// One child for every session, JSON-RPC ids rewritten: memory stays flat.
    Shared,
    /// One child per `X-User-Id`, shared by that user's sessions.
    User,
}

impl ProcessModel {
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessModel::Session => "session",
            ProcessModel::Shared => "shared",
            ProcessModel::User => "user",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// `BRIDGE_WORKERS`: actix worker threads (0 = one per CPU, at least 2 and at most 8).
    pub workers: usize,
    /// `SHUTDOWN_TIMEOUT`: how long requests in flight may take after SIGTERM.
    pub shutdown_timeout: std::time::Duration,
    /// `SHUTDOWN_DELAY`: how long a stopping bridge stays out of rotation
    /// (`/ready` 503), still answering, before its listener closes.
    pub shutdown_delay: std::time::Duration,
    /// The MCP endpoint path (`BRIDGE_PATH`, default `/mcp`).
    pub path: String,
    pub command: Command,
    /// Working directory of children (`BRIDGE_CWD`).
    pub cwd: Option<PathBuf>,
    /// The whole environment of a child: `PATH` plus every `BRIDGE_ENV_<NAME>=v` as `<NAME>=v`.
    pub child_env: Vec<(String, String)>,
    pub process_model: ProcessModel,
    /// Exact origins (`scheme://host[:port]`) allowed to call the endpoint from a browser.
    pub allowed_origins: Vec<String>,
    /// Host header values accepted (DNS-rebinding defence). Empty: any host.
    pub allowed_hosts: Vec<String>,
    /// Sessions idle this long end (and their children with them). `None`: never.
    pub idle_timeout: Option<Duration>,
    pub max_sessions: usize,
    /// Sessions one `X-User-Id` may hold at once (≤ `max_sessions`), so one signed-in
    /// user cannot take every slot.
    pub max_sessions_per_user: usize,
    /// Sessions one `X-Client-Id` may hold at once (≤ `max_sessions`), across its users.
    pub max_sessions_per_client: usize,
    pub max_message_bytes: usize,
    /// Messages queued per child stdin and per SSE stream before the peer counts as stuck.
    pub max_queued: usize,
    /// SSE events kept per stream for `Last-Event-ID` resumption.
    pub replay_events: usize,
    /// `None` (0): requests may run as long as the server needs.
    pub request_timeout: Option<Duration>,
    /// Protocol version the bridge uses when it initializes a child itself
    /// (stateless 2026-07-28 requests, readiness probe).
    pub protocol_version: String,
    /// `BRIDGE_SSE_RETRY_MS`: the SSE `retry` field (ms) of priming events, how long a
    /// client waits before it reconnects to a closed stream. `None` (0): not sent.
    pub sse_retry_ms: Option<u64>,
    /// `BRIDGE_SSE_CLOSE_AFTER_MS`: end a request's SSE response this long after its
    /// priming event when the answer is not in yet; the client resumes with GET and
    /// `Last-Event-ID` (SSE polling, 2025-11-25). `None` (unset): held until the answer.
    pub sse_close_after: Option<Duration>,
    /// Offer the GET server-to-client stream (else GET answers 405).
    pub get_stream: bool,
    /// Answer requests with `application/json` even when the client accepts SSE.
    pub prefer_json: bool,
    /// Serve the 2024-11-05 HTTP+SSE transport at `/sse` and `/messages`.
    pub legacy_sse: bool,
    /// Pass the identity headers to per-user children as `MCP_USER_ID`, `MCP_USER_NAME`,
    /// `MCP_USER_EMAIL`, `MCP_CLIENT_ID`, `MCP_SCOPES`.
    pub user_env: bool,
    /// `TOOL_POLICY_FILE` / `TOOL_POLICY_SERVICE` / `AUDIT_LOG_FILE`
    /// (see [`crate::tool_gate`]); `None` when neither file is set.
    pub tool_gate: Option<std::sync::Arc<crate::tool_gate::ToolGate>>,
}

pub const LISTEN_EXAMPLE: &str = "127.0.0.1:3000";
pub const COMMAND_EXAMPLE: &str = "npx -y @modelcontextprotocol/server-everything stdio";

impl Config {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let listen_raw = src.string("BRIDGE_LISTEN", "0.0.0.0:3000");
        let listen: SocketAddr = listen_raw.parse().map_err(|_| {
            ConfigError::new(
                "BRIDGE_LISTEN",
                format!("must be an address and port, got {listen_raw:?}"),
                LISTEN_EXAMPLE,
            )
        })?;
        let path = src.string("BRIDGE_PATH", "/mcp");
        if !path.starts_with('/') || path.len() < 2 || path.contains(char::is_whitespace) {
            return Err(ConfigError::new(
                "BRIDGE_PATH",
                format!("must be an absolute path other than /, got {path:?}"),
                "/mcp",
            ));
        }
        let search_path = src.string("PATH", "/usr/local/bin:/usr/bin:/bin");
        let command = match parse_command(src.get("BRIDGE_COMMAND"), &search_path)? {
            Command::BuiltinFetch(_) => {
                Command::BuiltinFetch(crate::fetch::FetchConfig::from_source(src)?)
            }
            other => other,
        };
        let cwd = src.get("BRIDGE_CWD").map(PathBuf::from);
        if let Some(dir) = &cwd {
            if !dir.is_dir() {
                return Err(ConfigError::new(
                    "BRIDGE_CWD",
                    format!("must be an existing directory, got {:?}", dir.display()),
                    "/srv/mcp",
                ));
            }
        }
        let mut child_env = vec![("PATH".to_string(), search_path)];
        for (k, v) in src.iter() {
            if let Some(name) = k.strip_prefix("BRIDGE_ENV_") {
                if name.is_empty() || name.contains('=') {
                    return Err(ConfigError::new(
                        k,
                        "must name a variable after BRIDGE_ENV_",
                        "BRIDGE_ENV_API_BASE=https://api.example.com",
                    ));
                }
                child_env.retain(|(existing, _)| existing != name);
                child_env.push((name.to_string(), v.clone()));
            }
        }
        let process_model = match src.string("BRIDGE_PROCESS_MODEL", "session").as_str() {
            "session" => ProcessModel::Session,
            "shared" => ProcessModel::Shared,
            "user" => ProcessModel::User,
            other => {
                return Err(ConfigError::new(
                    "BRIDGE_PROCESS_MODEL",
                    format!("must be session, shared or user, got {other:?}"),
                    "shared",
                ))
            }
        };
        let mut allowed_origins = Vec::new();
        for origin in src.list("BRIDGE_ALLOWED_ORIGINS") {
            allowed_origins.push(normalize_origin(&origin).ok_or_else(|| {
                ConfigError::new(
                    "BRIDGE_ALLOWED_ORIGINS",
                    format!("must be comma-separated origins like https://app.example.com, got {origin:?}"),
                    "https://app.example.com,http://localhost:6274",
                )
            })?);
        }
        let mut allowed_hosts: Vec<String> = src
            .list("BRIDGE_ALLOWED_HOSTS")
            .into_iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        if allowed_hosts.is_empty() && listen.ip().is_loopback() {
            // Bound to loopback: only loopback names reach us legitimately, so anything else
            // is a rebound DNS name (MCP 2025-11-25 transports, security warning).
            allowed_hosts = vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()];
        }
        let idle = src.seconds("BRIDGE_IDLE_TIMEOUT", 600)?;
        let request_timeout = src.seconds("BRIDGE_REQUEST_TIMEOUT", 0)?;
        let max_sessions = positive(src, "BRIDGE_MAX_SESSIONS", 256)?;
        let max_sessions_per_user =
            share_of(src, "BRIDGE_MAX_SESSIONS_PER_USER", 16, max_sessions)?;
        let max_sessions_per_client =
            share_of(src, "BRIDGE_MAX_SESSIONS_PER_CLIENT", 64, max_sessions)?;
        let workers = usize::try_from(src.u64("BRIDGE_WORKERS", 0)?)
            .map_err(|_| ConfigError::new("BRIDGE_WORKERS", "is too large", "0"))?;
        let max_message_bytes = positive(src, "BRIDGE_MAX_MESSAGE_BYTES", 4 * 1024 * 1024)?;
        let max_queued = positive(src, "BRIDGE_MAX_QUEUED", 256)?;
        let replay_events = positive(src, "BRIDGE_REPLAY_EVENTS", 128)?;
        let protocol_version = src.string("MCP_PROTOCOL_VERSION", "2025-06-18");
        if !crate::version::is_supported(&protocol_version) {
            return Err(ConfigError::new(
                "MCP_PROTOCOL_VERSION",
                format!(
                    "must be one of {}, got {protocol_version:?}",
                    crate::version::SUPPORTED.join(", ")
                ),
                "2025-06-18",
            ));
        }
        Ok(Self {
            listen,
            workers,
            shutdown_timeout: gateway_common::lifecycle::shutdown_timeout(src)?,
            shutdown_delay: gateway_common::lifecycle::shutdown_delay(src)?,
            path,
            command,
            cwd,
            child_env,
            process_model,
            allowed_origins,
            allowed_hosts,
            idle_timeout: (!idle.is_zero()).then_some(idle),
            max_sessions,
            max_sessions_per_user,
            max_sessions_per_client,
            max_message_bytes,
            max_queued,
            replay_events,
            request_timeout: (!request_timeout.is_zero()).then_some(request_timeout),
            protocol_version,
            sse_retry_ms: Some(src.u64("BRIDGE_SSE_RETRY_MS", 1000)?).filter(|ms| *ms > 0),
            sse_close_after: src
                .optional_u64("BRIDGE_SSE_CLOSE_AFTER_MS", "30000")?
                .map(Duration::from_millis),
            get_stream: src.bool("BRIDGE_GET_STREAM", true)?,
            prefer_json: src.bool("BRIDGE_JSON_RESPONSE", false)?,
            legacy_sse: src.bool("BRIDGE_LEGACY_SSE", true)?,
            user_env: src.bool("BRIDGE_USER_ENV", false)?,
            tool_gate: crate::tool_gate::ToolGate::from_source(src)?,
        })
    }

    /// A configuration for tests and the launcher: the given command, loopback port 0.
    pub fn for_command(command: Command) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers: 0,
            shutdown_timeout: std::time::Duration::from_secs(
                gateway_common::lifecycle::DEFAULT_SHUTDOWN_TIMEOUT,
            ),
            shutdown_delay: std::time::Duration::ZERO,
            path: "/mcp".into(),
            command,
            cwd: None,
            child_env: vec![("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into())],
            process_model: ProcessModel::Session,
            allowed_origins: Vec::new(),
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()],
            idle_timeout: Some(Duration::from_secs(600)),
            max_sessions: 256,
            max_sessions_per_user: 16,
            max_sessions_per_client: 64,
            max_message_bytes: 4 * 1024 * 1024,
            max_queued: 256,
            replay_events: 128,
            request_timeout: None,
            protocol_version: "2025-06-18".into(),
            sse_retry_ms: Some(1000),
            sse_close_after: None,
            get_stream: true,
            prefer_json: false,
            legacy_sse: true,
            user_env: false,
            tool_gate: None,
        }
    }
}

fn positive(src: &Source, key: &str, default: u64) -> Result<usize, ConfigError> {
    let v = src.u64(key, default)?;
    if v == 0 {
        return Err(ConfigError::new(
            key,
            "must be at least 1",
            &default.to_string(),
        ));
    }
    usize::try_from(v).map_err(|_| ConfigError::new(key, "is too large", &default.to_string()))
}

/// A per-identity share of the global session cap: at least 1 and at most `global`.
/// Unset, the default shrinks to `global` (a small `BRIDGE_MAX_SESSIONS` alone stays
/// valid); set above it, start-up fails, since the share could never be reached.
fn share_of(src: &Source, key: &str, default: u64, global: usize) -> Result<usize, ConfigError> {
    let example = default.to_string();
    if src.get(key).is_none() {
        return Ok(usize::try_from(default).unwrap_or(global).min(global));
    }
    let v = positive(src, key, default)?;
    if v > global {
        return Err(ConfigError::new(
            key,
            format!("must be at most BRIDGE_MAX_SESSIONS ({global}), got {v}"),
            &example,
        ));
    }
    Ok(v)
}

/// `builtin:echo`, or a shell-words command line whose program is found on `search_path`.
pub fn parse_command(raw: Option<&str>, search_path: &str) -> Result<Command, ConfigError> {
    let raw = raw.ok_or_else(|| {
        ConfigError::new(
            "BRIDGE_COMMAND",
            "is required: the stdio MCP server to run, or builtin:echo",
            COMMAND_EXAMPLE,
        )
    })?;
    if let Some(name) = raw.strip_prefix("builtin:") {
        return match name {
            "echo" => Ok(Command::BuiltinEcho),
            "echo-stateless" => Ok(Command::BuiltinEchoStateless),
            "fetch" => Ok(Command::BuiltinFetch(crate::fetch::FetchConfig::default())),
            other => Err(ConfigError::new(
                "BRIDGE_COMMAND",
                format!("names an unknown built-in server {other:?} (known: echo, echo-stateless, fetch)"),
                "builtin:echo",
            )),
        };
    }
    let words = shell_words::split(raw).map_err(|e| {
        ConfigError::new(
            "BRIDGE_COMMAND",
            format!("is not a valid command line ({e})"),
            COMMAND_EXAMPLE,
        )
    })?;
    let mut words = words.into_iter();
    let program = words
        .next()
        .ok_or_else(|| ConfigError::new("BRIDGE_COMMAND", "is empty", COMMAND_EXAMPLE))?;
    let resolved = resolve_program(&program, search_path).ok_or_else(|| {
        ConfigError::new(
            "BRIDGE_COMMAND",
            format!("names {program:?}, which is not an executable file on PATH"),
            COMMAND_EXAMPLE,
        )
    })?;
    Ok(Command::Exec {
        program: resolved,
        args: words.collect(),
    })
}

/// The program as a path: as given when it contains a `/`, else the first match on the path.
pub fn resolve_program(program: &str, search_path: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return is_executable(&p).then_some(p);
    }
    search_path
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// `scheme://host[:port]`, lower-cased, default ports dropped; `None` if not an origin.
pub fn normalize_origin(raw: &str) -> Option<String> {
    let url = url::Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.path() != "/" && !url.path().is_empty() {
        return None;
    }
    let origin = url.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Source {
        Source::from_pairs([("BRIDGE_COMMAND", "builtin:echo")])
    }

    #[test]
    fn defaults_are_safe() {
        let c = Config::from_source(&base()).unwrap();
        assert_eq!(c.command, Command::BuiltinEcho);
        assert_eq!(c.process_model, ProcessModel::Session);
        assert_eq!(c.request_timeout, None);
        assert_eq!(c.path, "/mcp");
        assert!(
            c.allowed_hosts.is_empty(),
            "0.0.0.0 accepts any Host unless configured"
        );
        let local = Config::from_source(&base().with("BRIDGE_LISTEN", "127.0.0.1:9")).unwrap();
        assert!(local.allowed_hosts.contains(&"localhost".to_string()));
    }

    #[test]
    fn command_lines_are_shell_words_resolved_on_path() {
        let c = parse_command(Some("sh -c 'echo hi'"), "/usr/bin:/bin").unwrap();
        match c {
            Command::Exec { program, args } => {
                assert!(program.ends_with("sh"));
                assert_eq!(args, vec!["-c", "echo hi"]);
            }
            other => panic!("expected exec, got {other:?}"),
        }
        let err = parse_command(Some("no-such-program-xyz"), "/usr/bin").unwrap_err();
        assert_eq!(err.var, "BRIDGE_COMMAND");
        assert!(parse_command(Some("builtin:nope"), "/bin").is_err());
        assert_eq!(
            parse_command(Some("builtin:echo-stateless"), "/bin").unwrap(),
            Command::BuiltinEchoStateless
        );
        assert!(parse_command(Some("sh 'unterminated"), "/bin").is_err());
        assert!(parse_command(None, "/bin").is_err());
    }

    #[test]
    fn every_error_names_its_variable_on_one_line() {
        for (k, v) in [
            ("BRIDGE_LISTEN", "nope"),
            ("BRIDGE_PROCESS_MODEL", "pool"),
            ("BRIDGE_ALLOWED_ORIGINS", "not a url"),
            ("BRIDGE_IDLE_TIMEOUT", "-1"),
            ("BRIDGE_MAX_SESSIONS", "0"),
            ("BRIDGE_MAX_SESSIONS_PER_USER", "0"),
            ("BRIDGE_MAX_SESSIONS_PER_USER", "257"),
            ("BRIDGE_MAX_SESSIONS_PER_CLIENT", "many"),
            ("BRIDGE_MAX_SESSIONS_PER_CLIENT", "300"),
            ("BRIDGE_MAX_MESSAGE_BYTES", "lots"),
            ("BRIDGE_REQUEST_TIMEOUT", "1.5"),
            ("MCP_PROTOCOL_VERSION", "2099-01-01"),
            ("BRIDGE_PATH", "mcp"),
            ("BRIDGE_CWD", "/definitely/not/here"),
            ("BRIDGE_SSE_RETRY_MS", "soon"),
            ("BRIDGE_SSE_CLOSE_AFTER_MS", "-5"),
        ] {
            let err = Config::from_source(&base().with(k, v)).unwrap_err();
            assert_eq!(err.var, k);
            let line = err.to_string();
            assert!(
                !line.contains('\n') && line.contains(&format!("{k}=")),
                "{line}"
            );
        }
    }

    #[test]
    fn per_identity_session_caps_stay_below_the_global_cap() {
        let c = Config::from_source(&base()).unwrap();
        assert_eq!(
            (
                c.max_sessions,
                c.max_sessions_per_user,
                c.max_sessions_per_client
            ),
            (256, 16, 64)
        );
        let small = Config::from_source(&base().with("BRIDGE_MAX_SESSIONS", "8")).unwrap();
        assert_eq!(
            (small.max_sessions_per_user, small.max_sessions_per_client),
            (8, 8)
        );
        let set = Config::from_source(
            &base()
                .with("BRIDGE_MAX_SESSIONS", "8")
                .with("BRIDGE_MAX_SESSIONS_PER_USER", "2")
                .with("BRIDGE_MAX_SESSIONS_PER_CLIENT", "8"),
        )
        .unwrap();
        assert_eq!(
            (set.max_sessions_per_user, set.max_sessions_per_client),
            (2, 8)
        );
        let err = Config::from_source(
            &base()
                .with("BRIDGE_MAX_SESSIONS", "8")
                .with("BRIDGE_MAX_SESSIONS_PER_CLIENT", "9"),
        )
        .unwrap_err();
        assert_eq!(err.var, "BRIDGE_MAX_SESSIONS_PER_CLIENT");
        assert!(
            err.to_string().contains("at most BRIDGE_MAX_SESSIONS (8)"),
            "{err}"
        );
    }

    #[test]
    fn env_passthrough_replaces_the_default_path() {
        let c = Config::from_source(
            &base()
                .with("BRIDGE_ENV_FOO", "bar")
                .with("BRIDGE_ENV_PATH", "/opt/bin")
                .with("SECRET", "never passed"),
        )
        .unwrap();
        assert!(c.child_env.contains(&("FOO".into(), "bar".into())));
        assert!(c.child_env.contains(&("PATH".into(), "/opt/bin".into())));
        assert!(!c.child_env.iter().any(|(k, _)| k == "SECRET"));
        assert_eq!(c.child_env.iter().filter(|(k, _)| k == "PATH").count(), 1);
    }

    #[test]
    fn origins_are_normalized() {
        assert_eq!(
            normalize_origin("HTTPS://App.Example.com:443").as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            normalize_origin("http://localhost:6274").as_deref(),
            Some("http://localhost:6274")
        );
        assert_eq!(normalize_origin("https://a.example/path"), None);
        assert_eq!(normalize_origin("null"), None);
        let c = Config::from_source(
            &base().with("BRIDGE_ALLOWED_ORIGINS", "https://A.example, http://b:8080"),
        )
        .unwrap();
        assert_eq!(
            c.allowed_origins,
            vec!["https://a.example", "http://b:8080"]
        );
        let z = Config::from_source(&base().with("BRIDGE_IDLE_TIMEOUT", "0")).unwrap();
        assert_eq!(z.idle_timeout, None);
    }

    #[test]
    fn builtin_fetch_reads_its_limits_and_names_a_bad_one() {
        let fetch = Source::from_pairs([("BRIDGE_COMMAND", "builtin:fetch")]);
        match Config::from_source(&fetch.clone().with("FETCH_TIMEOUT", "5"))
            .unwrap()
            .command
        {
            Command::BuiltinFetch(f) => {
                assert_eq!(f.timeout, Duration::from_secs(5));
                assert!(!f.allow_private && !f.ignore_robots);
            }
            other => panic!("expected builtin:fetch, got {other:?}"),
        }
        for (k, v) in [
            ("FETCH_TIMEOUT", "0"),
            ("FETCH_MAX_BYTES", "0"),
            ("FETCH_USER_AGENT", "two\nlines"),
            ("FETCH_ALLOW_PRIVATE_ADDRESSES", "maybe"),
        ] {
            let err = Config::from_source(&fetch.clone().with(k, v)).unwrap_err();
            assert_eq!(err.var, k);
        }
    }

    #[test]
    fn sse_polling_is_off_unless_asked_and_retry_can_be_dropped() {
        let c = Config::from_source(&base()).unwrap();
        assert_eq!((c.sse_retry_ms, c.sse_close_after), (Some(1000), None));
        let c = Config::from_source(
            &base()
                .with("BRIDGE_SSE_RETRY_MS", "0")
                .with("BRIDGE_SSE_CLOSE_AFTER_MS", "0"),
        )
        .unwrap();
        assert_eq!(
            (c.sse_retry_ms, c.sse_close_after),
            (None, Some(Duration::ZERO))
        );
    }
}
