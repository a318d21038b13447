//! `mcp-connect <url>`: a local stdio endpoint for a remote MCP server.
//!
//! The reverse of `mcp-bridge`, and a crate of its own so that the bridge's build carries
//! no JWT signing (`private_key_jwt`) and no OAuth client. `mcp-bridge connect URL …`
//! still works: the bridge runs this binary with the same arguments.
//!
//! Speaks line-delimited JSON-RPC on stdin/stdout to the local client and MCP
//! Streamable HTTP to the remote; when the remote answers 401 it does OAuth itself
//! (RFC 9728 discovery, RFC 8414, CIMD or RFC 7591 registration, PKCE S256,
//! RFC 8707 `resource`, RFC 9207 `iss`), with a browser and a loopback redirect
//! (RFC 8252) or the device flow (RFC 8628). Tokens live in a 0600 file per server.
//!
//! ```text
//! mcp-connect https://svc.example.com/mcp [--device] [--no-browser]
//!     [--client-metadata-url https://app.example/client.json] [--token-store DIR] [--scope S]
//!     [--client-id ID [--client-secret-file FILE]]
//!     [--client-credentials [--private-key-file PEM [--key-id KID]]]
//! ```
//!
//! - No 401, no OAuth: any Streamable HTTP server works, protected or not.
//! - Discovery: `resource_metadata` of the 401 challenge, else the well-known PRM URLs
//!   (path-suffixed first); the PRM `resource` must be the identifier the well-known path
//!   was inserted into (RFC 9728 §3.3: the origin for the root URL) or the URL given, and
//!   must cover the URL given; that `resource` is what connect asks for (RFC 8707).
//!   AS metadata by RFC 8414 then OpenID paths; its `issuer` must equal the PRM's
//!   authorization server byte for byte, and it must list PKCE `S256`. No PRM at all
//!   (a 2025-03-26 server): AS metadata at the MCP origin, else `/authorize`, `/token`,
//!   `/register` there.
//! - Registration: `--client-id` (a pre-registered client; its secret from
//!   `--client-secret-file` or `MCP_CONNECT_CLIENT_SECRET`, never argv), else the
//!   `--client-metadata-url` (https only) as `client_id` when the server advertises
//!   `client_id_metadata_document_supported` (http allowed on loopback only), else RFC 7591:
//!   as a public client (`none`) unless the server's `token_endpoint_auth_methods_supported`
//!   leaves it out, then with `client_secret_basic` or `client_secret_post`; the client id
//!   (and an issued secret) are kept in the token file and reused.
//! - Sign-in: the browser opens the authorization URL (`MCP_CONNECT_BROWSER` overrides the
//!   `xdg-open`/`open` command; `--no-browser` only prints the URL on stderr) and the
//!   redirect comes back to `http://127.0.0.1:<random port>/callback` (RFC 8252 §7.3);
//!   `state` and RFC 9207 `iss` are checked. `--device`: RFC 8628, the verification URI and
//!   user code are printed on stderr. `--client-credentials` (SEP-1046): no user, no browser;
//!   the client authenticates with its secret or, with `--private-key-file`, `private_key_jwt`
//!   (RFC 7523; `kid` the RFC 7638 thumbprint unless `--key-id`).
//! - Tokens: `$XDG_CONFIG_HOME/mcp-gateway/connect/<sha256(url)>.json` (else
//!   `~/.config/…`, or `--token-store DIR`), mode 0600 in a 0700 directory. Refreshed a
//!   fifth of their lifetime (at most 60 s) before `expires_in` runs out; a 401 refreshes
//!   too; a refused refresh (`invalid_grant`) starts a new sign-in.
//! - Relay: stdout carries only JSON-RPC lines; everything human goes to stderr.
//!   `Mcp-Session-Id` and the negotiated `MCP-Protocol-Version` are sent after initialize;
//!   a request whose `_meta` names a protocol version (2026-07-28, stateless) is sent with
//!   that version and no session; without either, the version `server/discover` settled on.
//!   The GET stream is opened after `notifications/initialized` and reconnected with
//!   `Last-Event-ID`; a POST stream that ends before its response is resumed the same way.
//!   A 404 on a session answers the request with JSON-RPC error -32001 and the next
//!   `initialize` starts a new session. A 403 `insufficient_scope` with `scope=` signs in
//!   again for the union of the held and demanded scopes and retries (at most twice per
//!   request, never twice for the same scopes); otherwise it answers that one request.
//!   SSE lines over 8 MiB, events over 16 MiB and JSON bodies over 16 MiB are dropped and
//!   the request answered with an error.
//!
//! Exit codes (sysexits.h): 0 the client closed stdin; 64 bad arguments;
//! 69 the remote is unreachable; 77 the remote refused us (401 after signing in
//! again, other 403s) or discovery / sign-in failed; 70 anything else.

pub mod challenge;
pub mod client_auth;
pub mod discovery;
pub mod oauth;
pub mod relay;
pub mod store;

use std::path::PathBuf;

use gateway_common::clock::SharedClock;
use gateway_common::config::Source;
use url::Url;

pub const USAGE: &str = "usage: mcp-connect <https://host/mcp> [--device] [--no-browser] \
[--client-metadata-url URL] [--token-store DIR] [--scope SCOPE] \
[--client-id ID [--client-secret-file FILE]] \
[--client-credentials [--private-key-file PEM [--key-id KID]]]";

/// The environment variable that may carry a pre-registered client's secret.
pub const SECRET_ENV: &str = "MCP_CONNECT_CLIENT_SECRET";

/// What `connect` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub server: Url,
    pub device: bool,
    pub no_browser: bool,
    pub client_metadata_url: Option<String>,
    /// Scope to ask for instead of the one the server suggests.
    pub scope: Option<String>,
    pub token_store: Option<PathBuf>,
    /// The opener command (`MCP_CONNECT_BROWSER`, shell words; the URL is appended).
    pub browser: Option<Vec<String>>,
    /// A pre-registered client (`--client-id`): no registration.
    pub client_id: Option<String>,
    /// Its secret, from `--client-secret-file` or `MCP_CONNECT_CLIENT_SECRET`, never argv.
    pub client_secret: Option<oauth2::ClientSecret>,
    /// `--client-credentials`: the client itself is the principal (SEP-1046), no browser.
    pub client_credentials: bool,
    /// `--private-key-file`: authenticate with `private_key_jwt` (RFC 7523).
    pub signing_key: Option<client_auth::SigningKey>,
}

/// Why `connect` stopped. Each maps to one exit code and one stderr line.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}\n{USAGE}")]
    Usage(String),
    #[error("remote {0} is unreachable ({1})")]
    Unreachable(String, String),
    #[error("remote {0} refused access: {1}")]
    Refused(String, String),
    #[error("discovery failed: {0}")]
    Discovery(String),
    #[error("authorization failed: {0}")]
    Auth(String),
    #[error("{0}")]
    Internal(String),
}

impl ConnectError {
    /// sysexits.h codes.
    pub fn exit_code(&self) -> i32 {
        match self {
            ConnectError::Usage(_) => 64,
            ConnectError::Unreachable(..) => 69,
            ConnectError::Refused(..) | ConnectError::Auth(_) | ConnectError::Discovery(_) => 77,
            ConnectError::Internal(_) => 70,
        }
    }

    /// A transport error: refused/failed connections mean the remote is down.
    pub fn from_transport(url: &Url, e: reqwest::Error) -> Self {
        let origin = url.origin().ascii_serialization();
        if e.is_connect() || e.is_timeout() {
            ConnectError::Unreachable(origin, root_cause(&e))
        } else {
            ConnectError::Internal(format!("request to {origin} failed ({})", root_cause(&e)))
        }
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Parses the arguments (after the program name).
pub fn parse_args(args: &[String], env: &Source) -> Result<Options, ConnectError> {
    let mut server = None;
    let mut opts_device = false;
    let mut no_browser = false;
    let mut client_metadata_url = None;
    let mut scope = None;
    let mut token_store = None;
    let mut client_id = None;
    let mut secret_file = None;
    let mut client_credentials = false;
    let mut key_file = None;
    let mut key_id = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| ConnectError::Usage(format!("{name} needs a value")))
        };
        match a.as_str() {
            "--device" => opts_device = true,
            "--no-browser" => no_browser = true,
            "--client-metadata-url" => client_metadata_url = Some(value(a)?),
            "--scope" => scope = Some(value(a)?),
            "--token-store" => token_store = Some(PathBuf::from(value(a)?)),
            "--client-id" => client_id = Some(value(a)?),
            "--client-secret-file" => secret_file = Some(PathBuf::from(value(a)?)),
            "--client-credentials" => client_credentials = true,
            "--private-key-file" => key_file = Some(PathBuf::from(value(a)?)),
            "--key-id" => key_id = Some(value(a)?),
            s if s == "--client-secret" || s.starts_with("--client-secret=") => {
                // A secret in argv is readable by every user of the machine (ps, /proc).
                return Err(ConnectError::Usage(format!(
                    "a client secret is never taken on the command line: use --client-secret-file FILE or {SECRET_ENV}"
                )));
            }
            s if s.starts_with("--") => {
                return Err(ConnectError::Usage(format!("unknown option {s}")))
            }
            s if server.is_none() => server = Some(s.to_string()),
            s => return Err(ConnectError::Usage(format!("unexpected argument {s}"))),
        }
    }
    let Some(server) = server else {
        return Err(ConnectError::Usage("the remote MCP URL is missing".into()));
    };
    let server = Url::parse(&server)
        .ok()
        .filter(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some())
        .ok_or_else(|| ConnectError::Usage(format!("{server:?} is not an http(s) URL")))?;
    if let Some(c) = &client_metadata_url {
        // The document's URL is the client_id: https, or http on loopback for development.
        let ok = Url::parse(c).is_ok_and(|u| match u.scheme() {
            "https" => u.host().is_some(),
            "http" => matches!(u.host_str(), Some("127.0.0.1" | "[::1]" | "localhost")),
            _ => false,
        });
        if !ok {
            return Err(ConnectError::Usage(format!(
                "--client-metadata-url must be an https URL (http only on loopback), not {c:?}"
            )));
        }
    }
    if client_id.as_deref().is_some_and(|c| c.trim().is_empty()) {
        return Err(ConnectError::Usage("--client-id is empty".into()));
    }
    let client_secret = match &secret_file {
        Some(f) => {
            let raw = std::fs::read_to_string(f).map_err(|e| {
                ConnectError::Usage(format!(
                    "cannot read --client-secret-file {} ({e})",
                    f.display()
                ))
            })?;
            Some(raw.trim_end_matches(['\r', '\n']).to_string())
        }
        None => env
            .get(SECRET_ENV)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    };
    if client_secret.as_deref() == Some("") {
        return Err(ConnectError::Usage(
            "the client secret file is empty".into(),
        ));
    }
    if client_secret.is_some() && client_id.is_none() {
        return Err(ConnectError::Usage(format!(
            "a client secret (--client-secret-file or {SECRET_ENV}) needs --client-id"
        )));
    }
    if key_id.is_some() && key_file.is_none() {
        return Err(ConnectError::Usage(
            "--key-id needs --private-key-file".into(),
        ));
    }
    let signing_key = match &key_file {
        Some(f) => Some(
            client_auth::SigningKey::from_file(f, key_id)
                .map_err(|e| ConnectError::Usage(format!("--private-key-file: {e}")))?,
        ),
        None => None,
    };
    if signing_key.is_some() && client_id.is_none() {
        return Err(ConnectError::Usage(
            "--private-key-file needs --client-id".into(),
        ));
    }
    if client_credentials {
        if client_id.is_none() || (client_secret.is_none() && signing_key.is_none()) {
            return Err(ConnectError::Usage(format!(
                "--client-credentials needs --client-id and a secret (--client-secret-file or {SECRET_ENV}) or --private-key-file"
            )));
        }
        if opts_device {
            return Err(ConnectError::Usage(
                "--client-credentials and --device exclude each other".into(),
            ));
        }
    }
    let browser = env
        .get("MCP_CONNECT_BROWSER")
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            shell_words::split(s).map_err(|_| {
                ConnectError::Usage("MCP_CONNECT_BROWSER is not a valid command line".into())
            })
        })
        .transpose()?;
    Ok(Options {
        server,
        device: opts_device,
        no_browser,
        client_metadata_url,
        scope,
        token_store,
        browser,
        client_id,
        client_secret: client_secret.map(oauth2::ClientSecret::new),
        client_credentials,
        signing_key,
    })
}

/// Runs until stdin closes or the remote refuses; returns the exit code.
pub fn main(args: &[String], env: &Source, clock: SharedClock) -> i32 {
    let opts = match parse_args(args, env) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("mcp-connect: {e}");
            return e.exit_code();
        }
    };
    let dir = match opts
        .token_store
        .clone()
        .or_else(|| store::default_dir(env.get("XDG_CONFIG_HOME"), env.get("HOME")))
    {
        Some(d) => d,
        None => {
            let e = ConnectError::Usage(
                "no token store: set HOME, XDG_CONFIG_HOME or --token-store".into(),
            );
            eprintln!("mcp-connect: {e}");
            return e.exit_code();
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mcp-connect: cannot start ({e})");
            return 70;
        }
    };
    let result = runtime.block_on(relay::run(opts, dir, clock));
    // Blocked stdin reads must not hold the exit.
    runtime.shutdown_background();
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("mcp-connect: {e}");
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_options() {
        let env = Source::from_pairs([("MCP_CONNECT_BROWSER", "node 'my opener.mjs'")]);
        let o = parse_args(
            &args(&[
                "https://svc.example.com/mcp",
                "--device",
                "--token-store",
                "/tmp/x",
                "--scope",
                "mcp",
            ]),
            &env,
        )
        .unwrap();
        assert_eq!(o.server.as_str(), "https://svc.example.com/mcp");
        assert!(o.device && !o.no_browser);
        assert_eq!(o.scope.as_deref(), Some("mcp"));
        assert_eq!(o.token_store.unwrap(), PathBuf::from("/tmp/x"));
        assert_eq!(o.browser.unwrap(), ["node", "my opener.mjs"]);
    }

    #[test]
    fn pre_registered_client_secret_from_file_or_env() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        std::fs::write(&f, "s3cret\n").unwrap();
        let o = parse_args(
            &args(&[
                "https://x/mcp",
                "--client-id",
                "c1",
                "--client-secret-file",
                f.to_str().unwrap(),
            ]),
            &Source::default(),
        )
        .unwrap();
        assert_eq!(o.client_id.as_deref(), Some("c1"));
        assert_eq!(o.client_secret.unwrap().secret(), "s3cret");
        let env = Source::from_pairs([(SECRET_ENV, "from-env")]);
        let o = parse_args(&args(&["https://x/mcp", "--client-id", "c1"]), &env).unwrap();
        assert_eq!(o.client_secret.unwrap().secret(), "from-env");
        // The file wins over the environment.
        let o = parse_args(
            &args(&[
                "https://x/mcp",
                "--client-id",
                "c1",
                "--client-secret-file",
                f.to_str().unwrap(),
            ]),
            &env,
        )
        .unwrap();
        assert_eq!(o.client_secret.unwrap().secret(), "s3cret");
        assert!(!format!(
            "{:?}",
            parse_args(&args(&["https://x/mcp", "--client-id", "c1"]), &env).unwrap()
        )
        .contains("from-env"));
    }

    #[test]
    fn bad_arguments_exit_64() {
        let env = Source::default();
        for bad in [
            args(&[]),
            args(&["ftp://x/mcp"]),
            args(&["https://x/mcp", "--bogus"]),
            args(&["https://x/mcp", "--token-store"]),
            args(&["https://x/mcp", "--client-metadata-url", "http://x/c.json"]),
            args(&[
                "https://x/mcp",
                "--client-metadata-url",
                "ftp://127.0.0.1/c.json",
            ]),
            // Never a secret in argv.
            args(&["https://x/mcp", "--client-id", "c", "--client-secret", "s"]),
            args(&["https://x/mcp", "--client-secret=s"]),
            args(&[
                "https://x/mcp",
                "--client-secret-file",
                "/nonexistent/secret",
            ]),
            args(&["https://x/mcp", "--client-credentials"]),
            args(&["https://x/mcp", "--client-credentials", "--client-id", "c"]),
            args(&["https://x/mcp", "--key-id", "k"]),
            args(&[
                "https://x/mcp",
                "--client-id",
                "c",
                "--private-key-file",
                "/nonexistent/key.pem",
            ]),
        ] {
            assert_eq!(
                parse_args(&bad, &env).unwrap_err().exit_code(),
                64,
                "{bad:?}"
            );
        }
    }
}
