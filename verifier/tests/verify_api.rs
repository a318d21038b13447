//! `/verify` end to end in-process: real HTTP on port 0, keys and revocations
//! from the authz contract server in `support`.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::sync::Arc;
use std::time::Duration;

use gateway_common::claims::Audience;
use gateway_common::clock::{ManualClock, SharedClock};
use gateway_common::config::Source;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcp_verifier::{Running, VerifierConfig};
use support::*;

const RESOURCE: &str = "https://echo.example.test/mcp";
const OTHER: &str = "https://time.example.test/mcp";

struct Env {
    authz: Authz,
    key: TestKey,
    verifier: Running,
    clock: Arc<ManualClock>,
    http: reqwest::Client,
}

impl Env {
    async fn start(extra: &[(&str, &str)]) -> Env {
        Self::start_keepalive(extra, Duration::from_secs(15)).await
    }

    async fn start_keepalive(extra: &[(&str, &str)], keepalive: Duration) -> Env {
        let key = TestKey::generate("k1");
        let authz = Authz::start_with(jwks(&[&key]), vec![], keepalive).await;
        let mut src: Source = source(&authz, RESOURCE)
            .with("MCP_TIME_ENABLED", "true")
            .with("MCP_TIME_URL", OTHER);
        for (k, v) in extra {
            src = src.with(k, v);
        }
        let config = VerifierConfig::from_source(&src).unwrap();
        let clock = ManualClock::new(now());
        let shared: SharedClock = clock.clone();
        let verifier = mcp_verifier::serve_with_clock(config, shared)
            .await
            .unwrap();
        let env = Env {
            authz,
            key,
            verifier,
            clock,
            http: reqwest::Client::new(),
        };
        env.wait_ready().await;
        env
    }

    async fn wait_ready(&self) {
        let url = format!("http://{}/ready", self.verifier.addr);
        assert!(
            eventually(Duration::from_secs(10), || async {
                self.http
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            })
            .await,
            "verifier never became ready"
        );
    }

    fn now(&self) -> u64 {
        use gateway_common::clock::Clock;
        self.clock.now_secs()
    }

    /// A Traefik-style forwardAuth call for `GET https://echo.example.test<uri>`.
    fn verify(&self, method: &str, host: &str, uri: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("http://{}/verify", self.verifier.addr))
            .header("X-Forwarded-Method", method)
            .header("X-Forwarded-Proto", "https")
            .header("X-Forwarded-Host", host)
            .header("X-Forwarded-Uri", uri)
            .header("X-Forwarded-For", "203.0.113.7")
    }

    async fn verify_token(&self, token: &str) -> reqwest::Response {
        self.verify("POST", "echo.example.test", "/mcp")
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    async fn metrics(&self) -> String {
        self.http
            .get(format!("http://{}/metrics", self.verifier.addr))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

const PRM: &str = "https://echo.example.test/.well-known/oauth-protected-resource/mcp";

#[actix_web::test]
async fn a_valid_token_passes_with_every_identity_header() {
    let env = Env::start(&[]).await;
    let mut c = claims(RESOURCE, env.now());
    c.email = None;
    let token = env.key.sign(&c);
    let r = env.verify_token(&token).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-user-id").as_deref(), Some("github:4242"));
    assert_eq!(header(&r, "x-user-name").as_deref(), Some("octocat"));
    assert_eq!(
        header(&r, "x-user-email").as_deref(),
        Some(""),
        "unknown → present and empty"
    );
    assert_eq!(header(&r, "x-client-id").as_deref(), Some("client-abc"));
    assert_eq!(header(&r, "x-scopes").as_deref(), Some("mcp"));
    assert_eq!(
        header(&r, "x-access-token").as_deref(),
        Some(""),
        "token not forwarded by default"
    );

    // The second time is a cache hit.
    assert_eq!(env.verify_token(&token).await.status(), 200);
    let m = env.metrics().await;
    assert!(
        m.contains("mcp_verifier_token_cache_lookups_total{result=\"hit\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("mcp_verifier_decisions_total{reason=\"allowed\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("mcp_verifier_verify_duration_seconds_bucket"),
        "{m}"
    );
    assert!(
        m.contains("mcp_verifier_key_refreshes_total{result=\"ok\"}"),
        "{m}"
    );
    assert!(
        m.contains("mcp_verifier_revocation_feed_lag_seconds"),
        "{m}"
    );
}

#[actix_web::test]
async fn no_token_gets_the_plain_challenge_on_every_method() {
    let env = Env::start(&[]).await;
    for method in ["GET", "POST", "DELETE"] {
        let r = env
            .verify(method, "echo.example.test", "/mcp")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method}");
        assert_eq!(
            header(&r, "www-authenticate").unwrap(),
            format!("Bearer resource_metadata=\"{PRM}\"")
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized");
    }
    // Another scheme is no bearer token at all.
    let r = env
        .verify("GET", "echo.example.test", "/mcp")
        .basic_auth("u", Some("p"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "www-authenticate").unwrap(),
        format!("Bearer resource_metadata=\"{PRM}\"")
    );
    // The PRM URL follows the forwarded host, port included.
    let r = env
        .verify("GET", "echo.example.test:443", "/mcp/x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "www-authenticate").unwrap(),
        "Bearer resource_metadata=\"https://echo.example.test:443/.well-known/oauth-protected-resource/mcp\""
    );
}

#[actix_web::test]
async fn bad_tokens_get_invalid_token() {
    let env = Env::start(&[]).await;
    let now = env.now();
    let good = claims(RESOURCE, now);
    let mut expired = good.clone();
    expired.exp = now - 31;
    let mut within_leeway = good.clone();
    within_leeway.exp = now - 5;
    let mut future = good.clone();
    future.nbf = Some(now + 120);
    let mut wrong_iss = good.clone();
    wrong_iss.iss = format!("{ISSUER}/");
    let stranger = TestKey::generate("k1");

    let mut no_kid = Header::new(Algorithm::ES256);
    no_kid.typ = Some("at+jwt".into());
    let mut id_token_typ = Header::new(Algorithm::ES256);
    id_token_typ.kid = Some("k1".into());
    id_token_typ.typ = Some("JWT".into());
    // HS256 with the public key's bytes as the secret: the classic confusion.
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("k1".into());
    hs.typ = Some("at+jwt".into());
    let hs_token =
        jsonwebtoken::encode(&hs, &good, &EncodingKey::from_secret(b"public key bytes")).unwrap();

    let cases: Vec<(&str, String)> = vec![
        ("expired", env.key.sign(&expired)),
        ("not yet valid", env.key.sign(&future)),
        ("wrong issuer", env.key.sign(&wrong_iss)),
        ("forged signature", stranger.sign(&good)),
        ("no kid", env.key.sign_with(no_kid, &good)),
        ("typ JWT", env.key.sign_with(id_token_typ, &good)),
        ("alg confusion", hs_token),
        ("garbage", "a.b.c".into()),
        ("too long", "a".repeat(5000)),
        ("not b64token", "abc def".into()),
    ];
    for (what, token) in cases {
        let r = env
            .verify("POST", "echo.example.test", "/mcp")
            .header("Authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{what}");
        let h = header(&r, "www-authenticate").unwrap();
        assert!(
            h.starts_with(&format!(
                "Bearer resource_metadata=\"{PRM}\", error=\"invalid_token\""
            )),
            "{what}: {h}"
        );
    }
    assert_eq!(
        env.verify_token(&env.key.sign(&within_leeway))
            .await
            .status(),
        200
    );

    // Two Authorization headers: ambiguous.
    let r = env
        .verify("POST", "echo.example.test", "/mcp")
        .header("Authorization", format!("Bearer {}", env.key.sign(&good)))
        .header("Authorization", "Bearer x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[actix_web::test]
async fn a_token_for_another_service_is_refused() {
    let env = Env::start(&[]).await;
    let for_time = env.key.sign(&claims(OTHER, env.now()));
    let r = env.verify_token(&for_time).await;
    assert_eq!(r.status(), 401);
    assert!(header(&r, "www-authenticate")
        .unwrap()
        .contains("error=\"invalid_token\""));
    // ... and accepted where it belongs.
    let r = env
        .verify("POST", "time.example.test", "/mcp")
        .bearer_auth(&for_time)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A token naming both is accepted by both.
    let mut both = claims(RESOURCE, env.now());
    both.aud = Audience::Many(vec![OTHER.into(), RESOURCE.into()]);
    assert_eq!(env.verify_token(&env.key.sign(&both)).await.status(), 200);
    // Unknown host or a path outside the prefix: refused.
    let token = env.key.sign(&claims(RESOURCE, env.now()));
    for (host, uri) in [
        ("echo.example.test", "/mcpx"),
        ("evil.example.test", "/mcp"),
        ("echo.example.test", "/mcp/../admin"),
    ] {
        let r = env
            .verify("GET", host, uri)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{host}{uri}");
    }
}

#[actix_web::test]
async fn forwarded_headers_from_untrusted_peers_are_ignored() {
    let env = Env::start(&[("TRUSTED_PROXIES", "10.0.0.0/8")]).await;
    let token = env.key.sign(&claims(RESOURCE, env.now()));
    let r = env.verify_token(&token).await;
    assert_eq!(r.status(), 401, "loopback is not a trusted proxy here");
    // A client-added X-Original-URI that disagrees with the proxy's is refused.
    let env = Env::start(&[]).await;
    let token = env.key.sign(&claims(RESOURCE, env.now()));
    let r = env
        .verify("GET", "time.example.test", "/mcp")
        .header("X-Original-URI", "/other")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[actix_web::test]
async fn policy_scopes_and_allow_lists() {
    let env = Env::start(&[
        ("MCP_ECHO_REQUIRED_SCOPES", "mcp,mcp:write"),
        ("MCP_TIME_ALLOWED_USERS", "someone-else"),
        ("MCP_TIME_ALLOWED_TEAMS", "acme/dev"),
    ])
    .await;
    let r = env
        .verify_token(&env.key.sign(&claims(RESOURCE, env.now())))
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        header(&r, "www-authenticate").unwrap(),
        format!("Bearer resource_metadata=\"{PRM}\", scope=\"mcp mcp:write\", error=\"insufficient_scope\", error_description=\"The access token lacks a required scope\"")
    );
    let mut c = claims(RESOURCE, env.now());
    c.scope = "mcp:write mcp".into();
    assert_eq!(env.verify_token(&env.key.sign(&c)).await.status(), 200);
    // The 401 challenge hints the scopes too.
    let r = env
        .verify("GET", "echo.example.test", "/mcp")
        .send()
        .await
        .unwrap();
    assert!(header(&r, "www-authenticate")
        .unwrap()
        .ends_with("scope=\"mcp mcp:write\""));

    let time = env.key.sign(&claims(OTHER, env.now()));
    let r = env
        .verify("GET", "time.example.test", "/mcp")
        .bearer_auth(&time)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(header(&r, "www-authenticate").is_none());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "access_denied");
    let mut dev = claims(OTHER, env.now());
    dev.groups = vec!["acme/dev".into()];
    let r = env
        .verify("GET", "time.example.test", "/mcp")
        .bearer_auth(env.key.sign(&dev))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[actix_web::test]
async fn revoking_a_grant_refuses_every_access_token_that_names_it() {
    let env = Env::start(&[]).await;
    let grant = |sid: &str| {
        let mut c = claims(RESOURCE, env.now());
        c.sid = Some(sid.to_string());
        env.key.sign(&c)
    };
    let (older, newer, other) = (grant("g1"), grant("g1"), grant("g2"));
    for t in [&older, &newer, &other] {
        assert_eq!(env.verify_token(t).await.status(), 200);
    }
    let id = gateway_common::revocation::grant_revocation_id("g1");
    env.authz.revoke(&id, env.now() + 3600);
    assert!(
        eventually(Duration::from_secs(2), || async {
            env.verify_token(&older).await.status() == 401
                && env.verify_token(&newer).await.status() == 401
        })
        .await,
        "tokens of the revoked grant (cached) were still accepted"
    );
    assert_eq!(
        env.verify_token(&other).await.status(),
        200,
        "another grant is untouched"
    );
}

#[actix_web::test]
async fn revocation_is_applied_live_and_caught_up_after_a_reconnect() {
    let env = Env::start(&[]).await;
    let c = claims(RESOURCE, env.now());
    let token = env.key.sign(&c);
    assert_eq!(env.verify_token(&token).await.status(), 200);
    env.authz.revoke(&c.jti, c.exp);
    assert!(
        eventually(Duration::from_secs(2), || async {
            env.verify_token(&token).await.status() == 401
        })
        .await,
        "the cached token was not refused after revocation"
    );
    let r = env.verify_token(&token).await;
    assert!(header(&r, "www-authenticate")
        .unwrap()
        .contains("error=\"invalid_token\""));

    // Disconnected: a revocation made meanwhile arrives with the snapshot on reconnect.
    let c2 = claims(RESOURCE, env.now());
    let token2 = env.key.sign(&c2);
    assert_eq!(env.verify_token(&token2).await.status(), 200);
    let opened = env.authz.streams_opened();
    env.authz.cut_streams(true);
    env.authz.revoke_silently(&c2.jti, c2.exp);
    env.authz.allow_streams();
    assert!(
        eventually(Duration::from_secs(5), || async {
            env.authz.streams_opened() > opened
        })
        .await,
        "the verifier did not reconnect"
    );
    assert!(
        eventually(Duration::from_secs(2), || async {
            env.verify_token(&token2).await.status() == 401
        })
        .await,
        "the snapshot on reconnect did not catch up"
    );
}

#[actix_web::test]
async fn a_lost_feed_fails_closed_and_ready_says_so() {
    let env = Env::start(&[("REVOCATION_STALENESS_BOUND", "30")]).await;
    let token = env.key.sign(&claims(RESOURCE, env.now()));
    assert_eq!(env.verify_token(&token).await.status(), 200);
    env.authz.cut_streams(true);
    // Virtual time: the feed has now been silent past the bound.
    env.clock.advance(Duration::from_secs(31));
    let r = env.verify_token(&token).await;
    assert_eq!(r.status(), 503);
    assert_eq!(header(&r, "retry-after").as_deref(), Some("5"));
    assert!(header(&r, "www-authenticate").is_none());
    // A value that is no token at all is refused as such, stale feed or not:
    // its syntax is checked before anything else (RFC 6750 §2.1).
    let r = env
        .verify("POST", "echo.example.test", "/mcp")
        .header("Authorization", "Bearer abc def")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let ready = env
        .http
        .get(format!("http://{}/ready", env.verifier.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["revocation_feed"], "stale");
    assert!(body["reason"]
        .as_str()
        .unwrap()
        .contains("REVOCATION_STALENESS_BOUND"));
    // Without a token the client still gets its challenge (discovery keeps working).
    let r = env
        .verify("GET", "echo.example.test", "/mcp")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The feed comes back: so does the verifier.
    env.authz.allow_streams();
    env.wait_ready().await;
    assert_eq!(env.verify_token(&token).await.status(), 200);
}

#[actix_web::test]
async fn cached_tokens_expire_and_unknown_kids_refetch_keys() {
    // Keepalives every 100 ms keep the feed fresh in virtual time.
    let env = Env::start_keepalive(&[], Duration::from_millis(100)).await;
    let token = env.key.sign(&claims(RESOURCE, env.now()));
    assert_eq!(env.verify_token(&token).await.status(), 200);
    env.clock.advance(Duration::from_secs(3600 + 30));
    assert!(
        eventually(Duration::from_secs(3), || async {
            let r = env.verify_token(&token).await;
            r.status() == 401
                && header(&r, "www-authenticate").is_some_and(|h| h.contains("expired"))
        })
        .await,
        "a cached token must not outlive exp + leeway"
    );

    let env = Env::start(&[("JWKS_MIN_REFETCH", "0")]).await;
    let rotated = TestKey::generate("k2");
    env.authz.set_jwks(jwks(&[&env.key, &rotated]));
    let token = rotated.sign(&claims(RESOURCE, env.now()));
    let fetches = env.authz.jwks_fetches();
    // The first request with the new kid waits for the refetch it wakes,
    // instead of a 401 for a key published after the last fetch.
    let r = env.verify_token(&token).await;
    assert_eq!(r.status(), 200, "unknown kid refetched before refusing");
    assert!(env.authz.jwks_fetches() > fetches);
}

#[actix_web::test]
async fn unknown_kids_are_rate_limited() {
    let env = Env::start(&[("JWKS_MIN_REFETCH", "3600")]).await;
    let forged = TestKey::generate("nope");
    let token = forged.sign(&claims(RESOURCE, env.now()));
    let before = env.authz.jwks_fetches();
    for _ in 0..20 {
        assert_eq!(env.verify_token(&token).await.status(), 401);
    }
    // One refetch may be in flight; never twenty.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        env.authz.jwks_fetches() <= before + 1,
        "{} fetches",
        env.authz.jwks_fetches() - before
    );
}

#[actix_web::test]
async fn preflight_passes_anonymously_and_health_answers() {
    let env = Env::start(&[]).await;
    let r = env
        .verify("OPTIONS", "echo.example.test", "/mcp")
        .header("Access-Control-Request-Method", "POST")
        .header("Origin", "https://app.example.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-user-id").as_deref(), Some(""));
    let h = env
        .http
        .get(format!("http://{}/health", env.verifier.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(h.status(), 200);
    // A browser gets a short page with the same status and challenge.
    let r = env
        .verify("GET", "echo.example.test", "/mcp")
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(header(&r, "www-authenticate").is_some());
    assert!(r.text().await.unwrap().contains("<h1>401</h1>"));
}

#[actix_web::test]
async fn forward_token_sends_the_raw_token_when_enabled() {
    let env = Env::start(&[
        ("FORWARD_TOKEN", "true"),
        ("IDENTITY_HEADER_USER_ID", "X-Remote-User"),
    ])
    .await;
    let token = env.key.sign(&claims(RESOURCE, env.now()));
    let r = env.verify_token(&token).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-access-token").as_deref(),
        Some(token.as_str())
    );
    assert_eq!(header(&r, "x-remote-user").as_deref(), Some("github:4242"));
    assert!(header(&r, "x-user-id").is_none());
}
