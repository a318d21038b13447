//! What the fault tests (`tests/tests/faults.rs`) and the load test share:
//! a redis-server that can be stopped and restarted on the same port with its
//! data (AOF, `appendfsync always`), the `mcp-authz` binary as a child process,
//! in-process services on port 0, and a cookie-keeping "browser" that signs in
//! and consents over HTTP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use gateway_common::config::Source;
use gateway_testkit::oauth;
use gateway_testkit::ChildGuard;

pub const RESOURCE: &str = "https://echo.example.test/mcp";
pub const USER: &str = "fault-alice";

/// Polls `check` every 50 ms until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A redis-server on a fixed port with its data in `dir` (AOF, fsync on every
/// write), so it can be stopped and started again on the SAME address.
#[derive(Debug)]
pub struct DurableRedis {
    pub port: u16,
    dir: PathBuf,
    child: Option<ChildGuard>,
}

impl DurableRedis {
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        // The port is on redis-server's command line: one taken before it
        // binds means another attempt on another port. (A restart needs the
        // same port back; should another process have taken it during the
        // outage, the restart fails with PortTaken.)
        gateway_testkit::retry_on_port_taken(|port| async move {
            let mut r = Self {
                port,
                dir: dir.to_path_buf(),
                child: None,
            };
            r.restart().await?;
            Ok(r)
        })
        .await
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (SIGKILL: no shutdown save).
    pub fn stop(&mut self) {
        self.child.take();
    }

    /// Starts it again on the same port, from the same AOF.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        let log = self.dir.join(format!("redis-{}.log", self.port));
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--logfile")
            .arg(&log)
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (apt-get install redis-server)")?;
        let mut child = ChildGuard(child);
        gateway_testkit::wait_listening(
            &mut child.0,
            self.port,
            || std::fs::read_to_string(&log).unwrap_or_default(),
            Duration::from_secs(10),
        )
        .await?;
        self.child = Some(child);
        Ok(())
    }
}

/// A local users file with [`USER`]; returns (path, password).
pub fn users_file(dir: &Path) -> anyhow::Result<(PathBuf, String)> {
    let path = dir.join("users");
    let password = mcp_gateway::users::generate_password();
    if !path.exists() {
        mcp_gateway::users::add_user(&path, USER, &password)?;
    }
    Ok((path, password))
}

/// The authz-server's settings for these tests: listening on 127.0.0.1:`port`,
/// which is also the issuer (plain http on loopback, so session cookies flow).
pub fn authz_source(dir: &Path, users: &Path, port: u16) -> Source {
    Source::from_pairs([
        ("AUTH_ISSUER", format!("http://127.0.0.1:{port}")),
        ("AUTHZ_LISTEN", format!("127.0.0.1:{port}")),
        ("MCP_ECHO_ENABLED", "true".into()),
        ("MCP_ECHO_URL", RESOURCE.into()),
        ("LOCAL_USERS_FILE", users.display().to_string()),
        ("STORE_PATH", dir.join("gateway.redb").display().to_string()),
        (
            "KEY_ENCRYPTION_KEY_FILE",
            dir.join("key-encryption.key").display().to_string(),
        ),
        (
            "GATEWAY_JWT_SECRET",
            "fault-tests-0123456789abcdef0123456789".into(),
        ),
    ])
}

/// An authz-server in-process; returns its address, its state (to mint
/// tokens) and its handle.
pub async fn start_authz(
    src: &Source,
) -> anyhow::Result<(
    SocketAddr,
    mcp_authz::AppState,
    actix_web::dev::ServerHandle,
)> {
    start_authz_on(src, None).await
}

/// A loopback listener on port 0, bound now, and its port: the issuer can
/// name the port before the server runs ([`start_authz_on`]).
pub fn loopback_listener() -> anyhow::Result<(std::net::TcpListener, u16)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// [`start_authz`] on a listener bound earlier (connections made to it in
/// between wait in its backlog and are served once it runs).
pub async fn start_authz_on(
    src: &Source,
    listener: Option<std::net::TcpListener>,
) -> anyhow::Result<(
    SocketAddr,
    mcp_authz::AppState,
    actix_web::dev::ServerHandle,
)> {
    let config = mcp_authz::Config::from_source(src).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = gateway_store::config::open_from_config(src)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let state = mcp_authz::build_state(config, store, gateway_common::clock::system()).await?;
    let (addr, server) = match listener {
        Some(listener) => mcp_authz::serve_listener(state.clone(), listener)?,
        None => mcp_authz::serve_state(state.clone())?,
    };
    let handle = server.handle();
    tokio::spawn(server);
    gateway_testkit::wait_for_http(&format!("http://{addr}/health"), Duration::from_secs(20))
        .await?;
    Ok((addr, state, handle))
}

/// A signed access token for [`RESOURCE`] from the server's own key.
pub fn mint(state: &mcp_authz::AppState) -> anyhow::Result<String> {
    let user = mcp_authz::signin::Identity {
        sub: format!("local:{USER}"),
        name: USER.into(),
        idp: "local".into(),
        ..Default::default()
    };
    let jti = mcp_authz::issue::new_jti();
    let m = mcp_authz::issue::mint_access_token(
        state,
        &jti,
        "fault-client",
        &user,
        "mcp",
        &[RESOURCE.to_string()],
        None,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(m.token)
}

/// `GET /verify` as a proxy sends it for `RESOURCE`; the status.
pub async fn verify_status(http: &reqwest::Client, verifier: SocketAddr, token: &str) -> u16 {
    http.get(format!("http://{verifier}/verify"))
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "echo.example.test")
        .header("X-Forwarded-Uri", "/mcp")
        .header("X-Forwarded-Method", "POST")
        .bearer_auth(token)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// `target/<profile>/<name>`, next to the test executable's `deps/` folder.
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no target/<profile> parent")?;
    let bin = profile_dir.join(name);
    if !bin.exists() {
        bail!(
            "{} is missing: build it first (`cargo build -p mcp-authz`, or `cargo test --workspace`)",
            bin.display()
        );
    }
    Ok(bin)
}

/// [`spawn_authz_binary`] with its output in `log` (to tell a port taken
/// before it bound it, with [`gateway_testkit::wait_listening`]).
pub fn spawn_authz_binary_logged(src: &Source, log: &Path) -> anyhow::Result<ChildGuard> {
    let bin = sibling_binary("mcp-authz")?;
    let out = std::fs::File::create(log)?;
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("RUST_LOG", "warn")
        .stdout(out.try_clone()?)
        .stderr(out);
    for (k, v) in src.iter() {
        cmd.env(k, v);
    }
    Ok(ChildGuard(cmd.spawn().context("starting mcp-authz")?))
}

/// The `mcp-authz` binary as a child process with `env`; killed on drop.
pub fn spawn_authz_binary(src: &Source) -> anyhow::Result<ChildGuard> {
    let bin = sibling_binary("mcp-authz")?;
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in src.iter() {
        cmd.env(k, v);
    }
    Ok(ChildGuard(cmd.spawn().context("starting mcp-authz")?))
}

/// A registered public client with a loopback redirect: (client id,
/// registration access token).
pub async fn register_public(
    http: &reqwest::Client,
    base: &str,
) -> anyhow::Result<(String, String)> {
    let v = oauth::register(
        http,
        base,
        &oauth::public_client("fault test", oauth::LOOPBACK_REDIRECT),
    )
    .await?;
    Ok((
        oauth::str_of(&v, "client_id"),
        oauth::str_of(&v, "registration_access_token"),
    ))
}

/// The `Location` header, as a path (absolute URLs on our origin are cut to their path).
fn location(r: &reqwest::Response) -> String {
    let raw = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    match url::Url::parse(raw) {
        Ok(u) if u.scheme() != "http" || u.port() != Some(4567) => {
            let mut p = u.path().to_string();
            if let Some(q) = u.query() {
                p.push('?');
                p.push_str(q);
            }
            p
        }
        _ => raw.to_string(),
    }
}

/// What one pass through /authorize gave.
#[derive(Debug)]
pub struct Authorized {
    pub code: String,
    /// Whether the consent page was skipped because consent was remembered.
    pub consent_remembered: bool,
}

/// Signs in (if the browser has no session) and consents, as a person would.
/// The redirect URI is the one [`register_public`] registers.
pub async fn authorize(
    browser: &reqwest::Client,
    base: &str,
    client_id: &str,
    (user, password): (&str, &str),
    challenge: &str,
    resource: &str,
) -> anyhow::Result<Authorized> {
    let request = oauth::AuthRequest {
        client_id,
        redirect_uri: oauth::LOOPBACK_REDIRECT,
        challenge,
        state: Some("st"),
        scope: Some("mcp"),
        resource: Some(resource),
    };
    let r = browser
        .get(format!("{base}/authorize"))
        .query(&request.query())
        .send()
        .await?;
    if !matches!(r.status().as_u16(), 302 | 303) {
        bail!("authorize: {} {}", r.status(), r.text().await?);
    }
    let mut next = location(&r);
    if next.starts_with("/signin") {
        let html = browser
            .get(format!("{base}{next}"))
            .send()
            .await?
            .text()
            .await?;
        let r = browser
            .post(format!("{base}/signin"))
            .form(&oauth::sign_in_form(&html, user, password))
            .send()
            .await?;
        if r.status() != 303 {
            bail!("signin: {}", r.status());
        }
        next = location(&r);
    }
    let page = browser
        .get(format!("{base}{next}"))
        .send()
        .await
        .with_context(|| format!("GET {base}{next}"))?;
    let (redirect, remembered) = if page.status() == 303 {
        (location(&page), true)
    } else {
        let html = page.text().await?;
        let r = browser
            .post(format!("{base}/consent"))
            .form(&oauth::consent_form(&html, "allow"))
            .send()
            .await?;
        (location(&r), false)
    };
    let code =
        oauth::query_param(&redirect, "code").with_context(|| format!("no code in {redirect}"))?;
    Ok(Authorized {
        code,
        consent_remembered: remembered,
    })
}

/// Exchanges a code; returns the token response.
pub async fn exchange(
    http: &reqwest::Client,
    base: &str,
    client_id: &str,
    code: &str,
    verifier: &str,
    resource: &str,
) -> anyhow::Result<serde_json::Value> {
    let r = oauth::token(
        http,
        base,
        &oauth::code_grant(
            client_id,
            code,
            oauth::LOOPBACK_REDIRECT,
            verifier,
            resource,
        ),
    )
    .await?;
    if r.status() != 200 {
        bail!("token: {} {}", r.status(), r.text().await?);
    }
    Ok(r.json().await?)
}

/// Rotates a refresh token; the response.
pub async fn refresh(
    http: &reqwest::Client,
    base: &str,
    client_id: &str,
    refresh_token: &str,
) -> anyhow::Result<reqwest::Response> {
    Ok(oauth::refresh(http, base, client_id, refresh_token).await?)
}

pub use gateway_testkit::oauth::pkce;

/// A cookie-keeping, non-redirecting client.
pub fn browser() -> anyhow::Result<reqwest::Client> {
    Ok(oauth::browser()?)
}
