//! Rate and size limits over HTTP: 429 + `Retry-After` + an RFC 6749
//! §5.2-style body; buckets per address and per authenticated client (never
//! per typed client id); refill on (virtual) time; 413 / 431 for oversized
//! bodies and headers.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn client_body() -> Value {
    json!({
        "redirect_uris": ["http://127.0.0.1:4567/callback"],
        "token_endpoint_auth_method": "none",
    })
}

#[tokio::test]
async fn registrations_per_address_get_429_with_retry_after_then_recover() {
    let s = start_with(
        Backend::Embedded,
        &[("RATE_LIMIT_REGISTER_PER_ADDRESS", "3")],
    )
    .await;
    for _ in 0..3 {
        assert_eq!(s.register(client_body()).await.status(), 201);
    }
    let r = s.register(client_body()).await;
    assert_eq!(r.status(), 429);
    // 3 per minute: the next token is due in 20 s.
    assert_eq!(r.headers()["retry-after"], "20");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("retry"));
    s.clock.advance(Duration::from_secs(20));
    assert_eq!(s.register(client_body()).await.status(), 201);
    assert_eq!(s.register(client_body()).await.status(), 429);
}

#[tokio::test]
async fn token_requests_are_limited_per_authenticated_client_not_per_typed_id() {
    let s = start_with(
        Backend::Embedded,
        &[
            ("RATE_LIMIT_TOKEN_PER_CLIENT", "2"),
            ("RATE_LIMIT_TOKEN_PER_ADDRESS", "100"),
        ],
    )
    .await;
    let (public, _) = s.public_client().await;
    let (conf, secret, _) = s.confidential_client("client_secret_post").await;
    let bad_code = |id: &str, secret: Option<&str>| {
        let mut f = vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", "nope".to_string()),
            ("redirect_uri", "http://127.0.0.1:4567/callback".to_string()),
            ("code_verifier", verifier()),
            ("client_id", id.to_string()),
        ];
        if let Some(sec) = secret {
            f.push(("client_secret", sec.to_string()));
        }
        f
    };
    let post = |form: Vec<(&'static str, String)>| {
        let s = &s;
        async move {
            s.http
                .post(s.url("/token"))
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    // A public client's id is a string anyone can type: it is never a
    // limiter key, so naming it ten times costs nobody but the sender's
    // address (100/min here).
    for _ in 0..10 {
        let r = post(bad_code(&public, None)).await;
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    }
    // Wrong secrets for the confidential client do not spend its budget either.
    for _ in 0..10 {
        assert_eq!(post(bad_code(&conf, Some("wrong"))).await.status(), 401);
    }
    // The authenticated client has its own budget: two, then 429.
    for _ in 0..2 {
        let r = post(bad_code(&conf, Some(&secret))).await;
        // The handler still reads the body the limiter buffered.
        assert_eq!(r.status(), 400);
    }
    let r = post(bad_code(&conf, Some(&secret))).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "30");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "temporarily_unavailable"
    );
    s.clock.advance(Duration::from_secs(30));
    assert_eq!(post(bad_code(&conf, Some(&secret))).await.status(), 400);
}

#[tokio::test]
async fn token_requests_are_limited_per_address() {
    let s = start_with(Backend::Embedded, &[("RATE_LIMIT_TOKEN_PER_ADDRESS", "3")]).await;
    let form = [("grant_type", "refresh_token"), ("refresh_token", "a.b")];
    for _ in 0..3 {
        let r = s
            .http
            .post(s.url("/token"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), 429);
    }
    let r = s
        .http
        .post(s.url("/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "20");
}

#[tokio::test]
async fn authorize_requests_are_limited_per_address() {
    let s = start_with(
        Backend::Embedded,
        &[("RATE_LIMIT_AUTHORIZE_PER_ADDRESS", "2")],
    )
    .await;
    let url = s.url("/authorize?client_id=unknown&response_type=code");
    for _ in 0..2 {
        assert_ne!(s.http.get(&url).send().await.unwrap().status(), 429);
    }
    let r = s.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn oversized_bodies_and_headers_are_refused() {
    let s = start_with(
        Backend::Embedded,
        &[
            ("RATE_LIMIT_MAX_BODY_BYTES", "2048"),
            ("RATE_LIMIT_MAX_HEADER_BYTES", "4096"),
        ],
    )
    .await;
    let big = json!({"redirect_uris": ["http://127.0.0.1:1/cb"], "client_name": "x".repeat(4000)});
    let r = s.register(big).await;
    assert_eq!(r.status(), 413);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
    let r = s
        .http
        .post(s.url("/token"))
        .header("x-padding", "p".repeat(5000))
        .form(&[("grant_type", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    // Under the bounds, the same endpoints answer as usual.
    assert_eq!(s.register(client_body()).await.status(), 201);
}

#[tokio::test]
async fn a_bad_limit_is_a_one_line_config_error_before_serving() {
    let src = gateway_common::config::Source::from_pairs([("RATE_LIMIT_TOKEN_PER_ADDRESS", "-5")]);
    let e = mcp_authz::budgets::Limits::from_source(&src)
        .unwrap_err()
        .to_string();
    assert!(e.contains("RATE_LIMIT_TOKEN_PER_ADDRESS"), "{e}");
    assert!(!e.contains('\n'), "{e}");
}
