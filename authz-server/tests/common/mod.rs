//! Test harness: the authorization server in-process on a free port, on the
//! embedded store (temp dir) or a private redis-server, plus a "browser" that
//! drives sign-in and consent over HTTP with a cookie jar.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a test failure

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use gateway_common::clock::{ManualClock, SharedClock};
use gateway_common::config::Source;
use gateway_store::{EmbeddedStore, RedisStore, Store};
use gateway_testkit::{oauth, wait_for_http, RedisServer};
use mcp_authz::Config;
use serde_json::{json, Value};

pub const RESOURCE: &str = "https://echo.example.com/mcp";
pub const OTHER_RESOURCE: &str = "https://time.example.com/mcp";
pub const USER: &str = "alice";
pub const PASSWORD: &str = "correct horse battery staple";
pub const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Redis,
}

pub struct TestServer {
    pub base: String,
    pub store: Arc<dyn Store>,
    pub clock: Arc<ManualClock>,
    pub http: reqwest::Client,
    pub state: mcp_authz::AppState,
    _dir: tempfile::TempDir,
    _redis: Option<RedisServer>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let h = self.handle.clone();
        drop(h.stop(false));
    }
}

fn users_file(dir: &std::path::Path) -> std::path::PathBuf {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = HASH.get_or_init(|| mcp_authz::signin::local::hash_password(PASSWORD).unwrap());
    let path = dir.join("users");
    std::fs::write(&path, format!("{USER}:{hash}:alice@example.com\n")).unwrap();
    path
}

pub async fn start(backend: Backend) -> TestServer {
    start_with(backend, &[]).await
}

pub async fn start_with(backend: Backend, extra: &[(&str, &str)]) -> TestServer {
    // Bound here, on port 0: the issuer names the port before the server runs.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    start_on(listener, backend, extra).await
}

/// [`start_with`] on a listener the caller bound (and whose port it told
/// others, such as an identity provider that redirects back to us).
pub async fn start_on(
    listener: std::net::TcpListener,
    backend: Backend,
    extra: &[(&str, &str)],
) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let port = listener.local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let users = users_file(dir.path());
    let mut pairs: Vec<(String, String)> = vec![
        ("AUTH_ISSUER".into(), base.clone()),
        ("AUTHZ_LISTEN".into(), format!("127.0.0.1:{port}")),
        ("GATEWAY_JWT_SECRET".into(), SECRET.into()),
        ("MCP_ECHO_ENABLED".into(), "true".into()),
        ("MCP_ECHO_URL".into(), RESOURCE.into()),
        (
            "LOCAL_USERS_FILE".into(),
            users.to_string_lossy().into_owned(),
        ),
        ("SCOPES_SUPPORTED".into(), "mcp,mcp:admin".into()),
    ];
    for (k, v) in extra {
        pairs.retain(|(pk, _)| pk != k);
        pairs.push((k.to_string(), v.replace("{base}", &base)));
    }
    let config = Config::from_source(&Source::from_pairs(pairs)).unwrap();
    // Virtual time: starts at the real time so store TTLs (Redis) stay meaningful.
    let clock = ManualClock::new(gateway_common::clock::system().now_secs());
    let shared: SharedClock = clock.clone();
    let (store, redis): (Arc<dyn Store>, Option<RedisServer>) = match backend {
        Backend::Embedded => (
            Arc::new(
                EmbeddedStore::open_with_clock(dir.path().join("gateway.redb"), shared.clone())
                    .await
                    .unwrap(),
            ),
            None,
        ),
        Backend::Redis => {
            let redis = RedisServer::start().await.unwrap();
            (
                Arc::new(RedisStore::connect(&redis.url(0), None).await.unwrap()),
                Some(redis),
            )
        }
    };
    let state = mcp_authz::build_state(config, store.clone(), shared)
        .await
        .unwrap();
    let (addr, server) = mcp_authz::serve_listener(state.clone(), listener).unwrap();
    assert_eq!(addr.port(), port);
    let handle = server.handle();
    tokio::spawn(server);
    wait_for_http(&format!("{base}/health"), Duration::from_secs(10))
        .await
        .unwrap();
    TestServer {
        base,
        store,
        clock,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        state,
        _dir: dir,
        _redis: redis,
        handle,
    }
}

pub fn verifier() -> String {
    gateway_common::crypto::random_token(48)
}

pub use gateway_testkit::oauth::s256 as challenge;

pub fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

/// Pulls `name="<field>" value="..."` out of a page; a page without it fails the test.
pub fn hidden(html: &str, field: &str) -> String {
    oauth::hidden(html, field).unwrap_or_else(|| panic!("no {field} in page: {html}"))
}

pub use gateway_testkit::oauth::query_param;

/// An authorization request for [`RESOURCE`] without a scope.
pub fn auth_request<'a>(
    client_id: &'a str,
    redirect_uri: &'a str,
    challenge: &'a str,
    state: Option<&'a str>,
) -> oauth::AuthRequest<'a> {
    oauth::AuthRequest {
        client_id,
        redirect_uri,
        challenge,
        state,
        scope: None,
        resource: Some(RESOURCE),
    }
}

/// The consent form of the page `html` with `decision`; a page without the
/// form's fields fails the test, naming the page.
pub fn consent_form(html: &str, decision: &str) -> Vec<(&'static str, String)> {
    hidden(html, "req");
    hidden(html, "csrf");
    oauth::consent_form(html, decision)
}

pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

/// The outcome of driving /authorize through sign-in and consent.
pub struct Authorized {
    pub redirect: String,
    pub code: Option<String>,
}

impl TestServer {
    /// Stops the test's Redis (fault tests; nothing for the embedded store).
    pub fn stop_redis(&mut self) {
        if let Some(r) = self._redis.as_mut() {
            r.stop();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn register(&self, body: Value) -> reqwest::Response {
        oauth::register_raw(&self.http, &self.base, &body)
            .await
            .unwrap()
    }

    /// A public client (token_endpoint_auth_method none) with a loopback redirect.
    pub async fn public_client(&self) -> (String, String) {
        let redirect = "http://127.0.0.1:4567/callback".to_string();
        let r = self
            .register(json!({
                "client_name": "Test Public Client",
                "redirect_uris": [redirect],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
            }))
            .await;
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        (v["client_id"].as_str().unwrap().to_string(), redirect)
    }

    /// A confidential client; returns (id, secret, redirect).
    pub async fn confidential_client(&self, method: &str) -> (String, String, String) {
        let redirect = "https://app.example.com/cb".to_string();
        let r = self
            .register(oauth::confidential_client(
                "Test Confidential Client",
                &redirect,
                method,
            ))
            .await;
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        (
            v["client_id"].as_str().unwrap().to_string(),
            v["client_secret"].as_str().unwrap().to_string(),
            redirect,
        )
    }

    pub fn browser(&self) -> reqwest::Client {
        oauth::browser().unwrap()
    }

    /// GET /authorize with the given query, then sign in and allow, as a user would.
    pub async fn authorize_as_user(
        &self,
        browser: &reqwest::Client,
        query: &[(&str, &str)],
    ) -> Authorized {
        let r = browser
            .get(self.url("/authorize"))
            .query(query)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "authorize: {:?}", r.text().await);
        let mut next = location(&r);
        if next.starts_with("/signin") {
            let page = browser.get(self.url(&next)).send().await.unwrap();
            assert_eq!(page.status(), 200);
            let csp = page
                .headers()
                .get("content-security-policy")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
            let html = page.text().await.unwrap();
            // A page without the form's fields fails here, naming the page.
            hidden(&html, "req");
            hidden(&html, "csrf");
            let form = oauth::sign_in_form(&html, USER, PASSWORD);
            let r = browser
                .post(self.url("/signin"))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 303, "signin: {:?}", r.text().await);
            let cookie = r
                .headers()
                .get("set-cookie")
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            assert!(
                cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
                "{cookie}"
            );
            next = location(&r);
        }
        assert!(next.starts_with("/consent"), "{next}");
        let page = browser.get(self.url(&next)).send().await.unwrap();
        let redirect = if page.status() == 303 {
            location(&page)
        } else {
            assert_eq!(page.status(), 200);
            let html = page.text().await.unwrap();
            let form = consent_form(&html, "allow");
            let r = browser
                .post(self.url("/consent"))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 303);
            location(&r)
        };
        Authorized {
            code: query_param(&redirect, "code"),
            redirect,
        }
    }

    /// The whole browser part for a public client; returns the code.
    pub async fn code_for(
        &self,
        client_id: &str,
        redirect: &str,
        verifier: &str,
        resource: &str,
    ) -> String {
        let ch = challenge(verifier);
        let request = oauth::AuthRequest {
            client_id,
            redirect_uri: redirect,
            challenge: &ch,
            state: Some("st-1"),
            scope: Some("mcp"),
            resource: Some(resource),
        };
        let a = self
            .authorize_as_user(&self.browser(), &request.query())
            .await;
        assert_eq!(query_param(&a.redirect, "state").as_deref(), Some("st-1"));
        assert_eq!(
            query_param(&a.redirect, "iss").as_deref(),
            Some(self.base.as_str())
        );
        a.code.expect("code in redirect")
    }

    pub async fn token(&self, form: &[(&str, &str)], auth: Option<&str>) -> reqwest::Response {
        let mut r = self.http.post(self.url("/token")).form(form);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send().await.unwrap()
    }

    pub async fn exchange(
        &self,
        client_id: &str,
        redirect: &str,
        code: &str,
        verifier: &str,
    ) -> reqwest::Response {
        self.token(
            &oauth::code_grant(client_id, code, redirect, verifier, RESOURCE),
            None,
        )
        .await
    }

    /// Public client, signed in, code exchanged: the token response.
    pub async fn tokens_for_public_client(&self) -> (String, String, Value) {
        let (client_id, redirect) = self.public_client().await;
        let v = verifier();
        let code = self.code_for(&client_id, &redirect, &v, RESOURCE).await;
        let r = self.exchange(&client_id, &redirect, &code, &v).await;
        assert_eq!(r.status(), 200);
        (client_id, redirect, r.json().await.unwrap())
    }

    /// The refresh grant of a public client (RFC 6749 §6).
    pub async fn refresh(&self, client_id: &str, refresh_token: &str) -> reqwest::Response {
        oauth::refresh(&self.http, &self.base, client_id, refresh_token)
            .await
            .unwrap()
    }

    pub async fn introspect(&self, id: &str, secret: &str, token: &str) -> Value {
        let r = self
            .http
            .post(self.url("/introspect"))
            .header("authorization", basic(id, secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }
}

/// Decodes a JWT's header and claims without checking the signature.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let mut it = token.split('.');
    let dec = |s: &str| -> Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap(),
        )
        .unwrap()
    };
    let h = dec(it.next().unwrap());
    let c = dec(it.next().unwrap());
    (h, c)
}

/// Runs each listed `async fn name(Backend)` against both stores.
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Embedded).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Redis).await
                }
            )*
        }
    };
}
