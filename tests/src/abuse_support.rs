//! What the abuse tests share: `mcp-gateway up` with 127.0.0.1 as its only
//! trusted proxy (so 127.0.0.2 and up are ordinary clients), clients bound to
//! an attacker address, raw connections, and a scripted sign-in.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test support: a failed unwrap is a failed test

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use gateway_common::clock::SharedClock;
use gateway_common::config::Source;
use gateway_testkit::oauth;
use mcp_gateway::up;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const STEPS: [&str; 7] = [
    "challenge",
    "registered",
    "token",
    "tool_call",
    "refresh",
    "revoked",
    "done",
];

pub struct Gateway {
    pub running: up::Running,
    pub user: String,
    pub password: String,
    _dir: tempfile::TempDir,
}

impl Gateway {
    pub async fn start(extra: &[(&str, &str)], clock: SharedClock) -> Self {
        crate::require_js_deps().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let args = crate::echo_up_args(dir.path());
        let mut env = vec![("TRUSTED_PROXIES", "127.0.0.1")];
        env.extend_from_slice(extra);
        let running = up::start(&args, &Source::from_pairs(env), clock)
            .await
            .unwrap();
        let (user, password) = running.created_user.clone().unwrap();
        Self {
            running,
            user,
            password,
            _dir: dir,
        }
    }

    /// The gateway's data directory (its users file lives here).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.issuer)
    }

    /// The legitimate client's whole path; every step must pass.
    pub async fn legitimate_client(&self, env: &[(&str, &str)]) {
        let steps = crate::run_sdk_client(&self.running.mcp_url, &self.user, &self.password, env)
            .await
            .unwrap();
        let names: Vec<&str> = steps.iter().filter_map(|s| s["step"].as_str()).collect();
        assert_eq!(names, STEPS);
    }

    pub async fn keys(&self, prefix: &str) -> usize {
        self.running
            .store
            .keys_with_prefix(prefix)
            .await
            .unwrap()
            .len()
    }

    pub async fn stop(self) {
        self.running.handle.stop(false).await;
    }
}

/// A browser-like HTTP client whose connections come from `ip`.
pub fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn attacker(n: u8) -> String {
    format!("127.0.0.{n}")
}

pub use gateway_testkit::oauth::hidden;

/// Server-side TCP connections in state ESTABLISHED on `port` whose peer is `peer`.
pub fn established_from(port: u16, peer: [u8; 4]) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    // /proc/net/tcp prints addresses as little-endian hex words.
    let local = format!(":{port:04X}");
    let remote = format!(
        "{:02X}{:02X}{:02X}{:02X}:",
        peer[3], peer[2], peer[1], peer[0]
    );
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&local) && f[2].starts_with(&remote) && f[3] == "01"
        })
        .count()
}

/// Opens a raw connection from `from`, sends `request`, reads the status
/// line: `Some("")` when the server closed the connection without a word,
/// `None` when nothing came within a minute.
pub async fn raw(
    from: IpAddr,
    to: SocketAddr,
    request: String,
) -> (tokio::net::TcpStream, Option<String>) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(from, 0)).unwrap();
    let mut stream = sock.connect(to).await.unwrap();
    let _ = stream.write_all(request.as_bytes()).await;
    let mut buf = vec![0u8; 256];
    let status = match tokio::time::timeout(Duration::from_secs(60), stream.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .map(str::to_string),
        // Closed (or reset) by the server.
        Ok(_) => Some(String::new()),
        Err(_) => None,
    };
    (stream, status)
}

/// One sign-in attempt: a fresh authorization request for `client_id`, the
/// form, a password. Returns the status of the answer to the password.
pub async fn sign_in_once(
    g: &Gateway,
    browser: &reqwest::Client,
    client_id: &str,
    password: &str,
) -> u16 {
    let (req, csrf) = sign_in_form(g, browser, client_id).await;
    let r = browser
        .post(g.url("/signin"))
        .form(&[
            ("req", req.as_str()),
            ("csrf", csrf.as_str()),
            ("username", g.user.as_str()),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

/// A fresh authorization request for `client_id` and its sign-in form:
/// the request id and the form's CSRF token.
pub async fn sign_in_form(
    g: &Gateway,
    browser: &reqwest::Client,
    client_id: &str,
) -> (String, String) {
    let authorize = oauth::AuthRequest {
        client_id,
        redirect_uri: "http://127.0.0.1:9/cb",
        challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        state: Some("s"),
        scope: None,
        resource: None,
    }
    .url(&g.url(""));
    let r = browser.get(&authorize).send().await.unwrap();
    let next = r.headers()["location"].to_str().unwrap().to_string();
    let page = browser
        .get(g.url(&next))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (Some(req), Some(csrf)) = (hidden(&page, "req"), hidden(&page, "csrf")) else {
        panic!("no sign-in form: {page}");
    };
    (req, csrf)
}

pub async fn register_from(g: &Gateway, browser: &reqwest::Client) -> String {
    let r = oauth::register_raw(
        browser,
        &g.url(""),
        &serde_json::json!({
            "redirect_uris": ["http://127.0.0.1:9/cb"],
            "token_endpoint_auth_method": "none",
        }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<serde_json::Value>().await.unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_string()
}
