//! One regression test per flaw of the Python gateway listed in issue 3, each
//! on both stores.
#![allow(clippy::unwrap_used)] // test bodies are shared by both stores, outside #[test] fns

mod common;

use std::time::Duration;

use common::*;
use gateway_common::crypto::hash_secret;
use serde_json::{json, Value};

async fn code_is_bound_to_the_client_that_requested_it(b: Backend) {
    let s = start(b).await;
    let (a_id, redirect) = s.public_client().await;
    let (b_id, _) = s.public_client().await;
    let v = verifier();
    let code = s.code_for(&a_id, &redirect, &v, RESOURCE).await;
    let r = s.exchange(&b_id, &redirect, &code, &v).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
}

async fn code_lives_at_most_ten_minutes(b: Backend) {
    let s = start_with(b, &[("AUTH_CODE_LIFETIME", "600")]).await;
    let (id, redirect) = s.public_client().await;
    let v = verifier();
    let code = s.code_for(&id, &redirect, &v, RESOURCE).await;
    s.clock.advance(Duration::from_secs(601));
    let r = s.exchange(&id, &redirect, &code, &v).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // And the configuration cannot ask for more.
    let err = mcp_authz::Config::from_source(&gateway_common::config::Source::from_pairs([
        ("AUTH_ISSUER", "https://auth.example.com"),
        ("AUTH_CODE_LIFETIME", "31536000"),
    ]))
    .unwrap_err();
    assert_eq!(err.var, "AUTH_CODE_LIFETIME");
}

async fn pkce_is_required(b: Backend) {
    let s = start(b).await;
    let (id, redirect) = s.public_client().await;
    // No code_challenge: the error goes back to the client, with state and iss.
    let r = s
        .http
        .get(s.url("/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", &id),
            ("redirect_uri", &redirect),
            ("state", "xyz"),
            ("resource", RESOURCE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let loc = location(&r);
    assert!(loc.starts_with(&redirect), "{loc}");
    assert_eq!(
        query_param(&loc, "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(query_param(&loc, "state").as_deref(), Some("xyz"));
    assert_eq!(query_param(&loc, "iss").as_deref(), Some(s.base.as_str()));
    // `plain` is refused too.
    let v = verifier();
    let r = s
        .http
        .get(s.url("/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", &id),
            ("redirect_uri", &redirect),
            ("code_challenge", &v),
            ("code_challenge_method", "plain"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        query_param(&location(&r), "error").as_deref(),
        Some("invalid_request")
    );
    // At /token: no verifier → invalid_request; wrong verifier → invalid_grant.
    let code = s.code_for(&id, &redirect, &v, RESOURCE).await;
    let r = s
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &id),
                ("code", &code),
                ("redirect_uri", &redirect),
            ],
            None,
        )
        .await;
    assert_eq!(r.status(), 400);
    let code = s.code_for(&id, &redirect, &v, RESOURCE).await;
    let r = s.exchange(&id, &redirect, &code, &verifier()).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

async fn confidential_clients_need_their_secret_at_token(b: Backend) {
    let s = start(b).await;
    for method in ["client_secret_basic", "client_secret_post"] {
        let (id, secret, redirect) = s.confidential_client(method).await;
        let v = verifier();
        let code = s.code_for(&id, &redirect, &v, RESOURCE).await;
        let form = [
            ("grant_type", "authorization_code"),
            ("client_id", id.as_str()),
            ("code", code.as_str()),
            ("redirect_uri", redirect.as_str()),
            ("code_verifier", v.as_str()),
        ];
        // Without the secret: 401 invalid_client with a challenge.
        let r = s.token(&form, None).await;
        assert_eq!(r.status(), 401, "{method}");
        assert!(r.headers().get("www-authenticate").is_some());
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
        // A wrong secret: the same.
        let r = s.token(&form, Some(&basic(&id, "wrong"))).await;
        assert_eq!(r.status(), 401);
        // The right secret, the registered way. (The failed attempts did not consume the code.)
        let r = if method == "client_secret_basic" {
            // Header only, no client_id in the body.
            let form: Vec<_> = form
                .iter()
                .filter(|(k, _)| *k != "client_id")
                .cloned()
                .collect();
            s.token(&form, Some(&basic(&id, &secret))).await
        } else {
            let mut form = form.to_vec();
            form.push(("client_secret", secret.as_str()));
            s.token(&form, None).await
        };
        assert_eq!(r.status(), 200, "{method}: {:?}", r.text().await);
    }
}

async fn refresh_tokens_rotate_and_are_bound_to_their_client(b: Backend) {
    let s = start(b).await;
    let (id, _, tok) = s.tokens_for_public_client().await;
    let (other, _) = s.public_client().await;
    let rt1 = tok["refresh_token"].as_str().unwrap();
    // Another client cannot use it.
    let r = s.refresh(&other, rt1).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // The owner can, and gets a new one.
    let r = s.refresh(&id, rt1).await;
    assert_eq!(r.status(), 200);
    let t2: Value = r.json().await.unwrap();
    let rt2 = t2["refresh_token"].as_str().unwrap();
    assert_ne!(rt1, rt2);
    // Reusing the rotated one is refused and revokes the family: rt2 dies too.
    let r = s.refresh(&id, rt1).await;
    assert_eq!(r.status(), 400);
    let r = s.refresh(&id, rt2).await;
    assert_eq!(r.status(), 400, "family revoked after reuse");
    // And the access token issued from rt2 is published as revoked: through
    // its grant, which every access token of the family names in `sid`.
    let claims = jwt_parts(t2["access_token"].as_str().unwrap()).1;
    let sid = claims["sid"]
        .as_str()
        .expect("a refreshed token names its grant");
    let grant = gateway_common::revocation::grant_revocation_id(sid);
    let first = jwt_parts(tok["access_token"].as_str().unwrap()).1;
    assert_eq!(
        first["sid"], sid,
        "every token of one family names the same grant"
    );
    let snap: Value = s
        .http
        .get(s.url("/revocations"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        snap["revoked"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["jti"] == grant.as_str() && e["exp"].as_u64() >= claims["exp"].as_u64()),
        "{snap}"
    );
}

async fn a_foreign_client_cannot_revoke_or_introspect(b: Backend) {
    let s = start(b).await;
    let (a, a_secret, redirect) = s.confidential_client("client_secret_basic").await;
    let (other, other_secret, _) = s.confidential_client("client_secret_basic").await;
    let v = verifier();
    let code = s.code_for(&a, &redirect, &v, RESOURCE).await;
    let r = s
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &redirect),
                ("code_verifier", &v),
            ],
            Some(&basic(&a, &a_secret)),
        )
        .await;
    let tok: Value = r.json().await.unwrap();
    let at = tok["access_token"].as_str().unwrap();
    let rt = tok["refresh_token"].as_str().unwrap();
    // Introspection by the other client: inactive. By the owner: active.
    assert_eq!(
        s.introspect(&other, &other_secret, at).await,
        json!({"active": false})
    );
    assert_eq!(
        s.introspect(&other, &other_secret, rt).await,
        json!({"active": false})
    );
    let mine = s.introspect(&a, &a_secret, at).await;
    assert_eq!(mine["active"], true);
    assert_eq!(mine["aud"], RESOURCE);
    // Revocation by the other client is refused; the tokens stay valid.
    for t in [at, rt] {
        let r = s
            .http
            .post(s.url("/revoke"))
            .header("authorization", basic(&other, &other_secret))
            .form(&[("token", t)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(
            r.json::<Value>().await.unwrap()["error"],
            "unauthorized_client"
        );
    }
    assert_eq!(s.introspect(&a, &a_secret, at).await["active"], true);
    assert_eq!(s.introspect(&a, &a_secret, rt).await["active"], true);
    // Unauthenticated introspection: 401.
    let r = s
        .http
        .post(s.url("/introspect"))
        .form(&[("token", at)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The owner revokes: both inactive.
    let r = s
        .http
        .post(s.url("/revoke"))
        .header("authorization", basic(&a, &a_secret))
        .form(&[("token", rt)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        s.introspect(&a, &a_secret, at).await["active"],
        false,
        "revoking the refresh token revokes its access tokens"
    );
    assert_eq!(s.introspect(&a, &a_secret, rt).await["active"], false);
}

async fn prefix_matched_and_javascript_redirects_are_refused(b: Backend) {
    let s = start(b).await;
    for bad in [
        "http://localhost.evil.com/cb",
        "javascript:alert(1)",
        "data:text/html,x",
        "https://app.example.com/cb#x",
        "http://evil.com/cb",
    ] {
        let r = s
            .register(json!({"redirect_uris": [bad], "token_endpoint_auth_method": "none"}))
            .await;
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(
            r.json::<Value>().await.unwrap()["error"],
            "invalid_redirect_uri",
            "{bad}"
        );
    }
    // Registered http://localhost/cb; a longer host or path at /authorize gets an HTML page, never a redirect.
    let r = s
        .register(
            json!({"redirect_uris": ["http://localhost/cb"], "token_endpoint_auth_method": "none"}),
        )
        .await;
    let id = r.json::<Value>().await.unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    let ch = challenge(&verifier());
    for presented in [
        "http://localhost.evil.com/cb",
        "http://localhost/cb/../evil",
        "http://localhost/cbx",
        "javascript:alert(1)",
    ] {
        let r = s
            .http
            .get(s.url("/authorize"))
            .query(&[
                ("response_type", "code"),
                ("client_id", &id),
                ("redirect_uri", presented),
                ("code_challenge", &ch),
                ("code_challenge_method", "S256"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{presented}");
        assert!(r.headers().get("location").is_none());
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
    // The loopback port may differ (RFC 8252 §7.3).
    let r = s
        .http
        .get(s.url("/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", &id),
            ("redirect_uri", "http://localhost:5173/cb"),
            ("code_challenge", &ch),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    // An unknown client never redirects.
    let r = s
        .http
        .get(s.url("/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "nope"),
            ("redirect_uri", "https://evil.example/cb"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
}

async fn secrets_are_hashed_in_the_store(b: Backend) {
    let s = start(b).await;
    let r = s
        .register(json!({"redirect_uris": ["https://app.example.com/cb"], "token_endpoint_auth_method": "client_secret_post", "grant_types": ["authorization_code", "refresh_token"]}))
        .await;
    let reg: Value = r.json().await.unwrap();
    let id = reg["client_id"].as_str().unwrap();
    let secret = reg["client_secret"].as_str().unwrap();
    let rat = reg["registration_access_token"].as_str().unwrap();
    let raw = s
        .store
        .get(&format!("authz:client:{id}"))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.contains(secret), "client secret stored in clear");
    assert!(
        !text.contains(rat),
        "registration access token stored in clear"
    );
    assert!(text.contains(&hash_secret(secret)));
    // Refresh tokens and codes too.
    let v = verifier();
    let code = s
        .code_for(id, "https://app.example.com/cb", &v, RESOURCE)
        .await;
    assert!(s
        .store
        .get(&format!("authz:code:{code}"))
        .await
        .unwrap()
        .is_none());
    assert!(s
        .store
        .get(&format!("authz:code:{}", hash_secret(&code)))
        .await
        .unwrap()
        .is_some());
    let r = s
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("client_id", id),
                ("client_secret", secret),
                ("code", &code),
                ("redirect_uri", "https://app.example.com/cb"),
                ("code_verifier", &v),
            ],
            None,
        )
        .await;
    let tok: Value = r.json().await.unwrap();
    let rt = tok["refresh_token"].as_str().unwrap();
    let family = rt.split('.').next().unwrap();
    let raw = s
        .store
        .get(&format!("authz:refresh:{family}"))
        .await
        .unwrap()
        .unwrap();
    assert!(!String::from_utf8_lossy(&raw).contains(rt));
    // The signing key is sealed at rest.
    let keys = s.store.get("authz:signing-keys").await.unwrap().unwrap();
    assert!(!String::from_utf8_lossy(&keys).contains("PRIVATE KEY"));
    // And the registration response shows the secret once: a read does not repeat it.
    let r = s
        .http
        .get(s.url(&format!("/register/{id}")))
        .bearer_auth(rat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let read: Value = r.json().await.unwrap();
    assert!(read.get("client_secret").is_none());
    assert_eq!(read["token_endpoint_auth_method"], "client_secret_post");
}

async fn token_audience_is_the_resource(b: Backend) {
    let s = start_with(
        b,
        &[
            ("MCP_TIME_ENABLED", "true"),
            ("MCP_TIME_URL", OTHER_RESOURCE),
        ],
    )
    .await;
    let (id, redirect) = s.public_client().await;
    let v = verifier();
    let code = s.code_for(&id, &redirect, &v, OTHER_RESOURCE).await;
    // Asking at /token for a resource that was not authorized: invalid_target.
    let r = s.exchange(&id, &redirect, &code, &v).await; // sends RESOURCE
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_target");
    let code = s.code_for(&id, &redirect, &v, OTHER_RESOURCE).await;
    let r = s
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &id),
                ("code", &code),
                ("redirect_uri", &redirect),
                ("code_verifier", &v),
                ("resource", OTHER_RESOURCE),
            ],
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let tok: Value = r.json().await.unwrap();
    assert_eq!(
        jwt_parts(tok["access_token"].as_str().unwrap()).1["aud"],
        OTHER_RESOURCE
    );
    // Unknown resource at /authorize: invalid_target back to the client.
    let r = s
        .http
        .get(s.url("/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", &id),
            ("redirect_uri", &redirect),
            ("code_challenge", &challenge(&v)),
            ("code_challenge_method", "S256"),
            ("resource", "https://evil.example/mcp"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        query_param(&location(&r), "error").as_deref(),
        Some("invalid_target")
    );
    // With several services a resource is required.
    let r = s
        .http
        .get(s.url("/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", &id),
            ("redirect_uri", &redirect),
            ("code_challenge", &challenge(&v)),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        query_param(&location(&r), "error").as_deref(),
        Some("invalid_target")
    );
}

both_stores!(
    code_is_bound_to_the_client_that_requested_it,
    code_lives_at_most_ten_minutes,
    pkce_is_required,
    confidential_clients_need_their_secret_at_token,
    refresh_tokens_rotate_and_are_bound_to_their_client,
    a_foreign_client_cannot_revoke_or_introspect,
    prefix_matched_and_javascript_redirects_are_refused,
    secrets_are_hashed_in_the_store,
    token_audience_is_the_resource,
);
