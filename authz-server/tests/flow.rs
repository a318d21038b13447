//! The whole authorization code flow, driven over HTTP like a browser and a client would.
#![allow(clippy::unwrap_used)] // test bodies are shared by both stores, outside #[test] fns

mod common;

use common::*;
use serde_json::Value;

async fn code_flow_with_local_sign_in_then_refresh(b: Backend) {
    let s = start(b).await;
    let (client_id, redirect, tok) = s.tokens_for_public_client().await;
    assert_eq!(tok["token_type"], "Bearer");
    assert_eq!(tok["expires_in"], 3600);
    assert_eq!(tok["scope"], "mcp");
    let at = tok["access_token"].as_str().unwrap();
    let (h, c) = jwt_parts(at);
    assert_eq!(h["typ"], "at+jwt");
    assert_eq!(h["alg"], "ES256");
    let jwks: Value = s
        .http
        .get(s.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], h["kid"]);
    assert_eq!(c["iss"], s.base.as_str());
    assert_eq!(
        c["aud"], RESOURCE,
        "token audience is the resource (RFC 8707)"
    );
    assert_eq!(c["sub"], "local:alice");
    assert_eq!(c["name"], "alice");
    assert_eq!(c["email"], "alice@example.com");
    assert_eq!(c["client_id"], client_id.as_str());
    assert_eq!(c["scope"], "mcp");
    assert!(c["jti"].as_str().is_some() && c["exp"].as_u64().unwrap() > c["iat"].as_u64().unwrap());

    // Refresh: rotated each time.
    let rt1 = tok["refresh_token"].as_str().unwrap().to_string();
    let r = s.refresh(&client_id, &rt1).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t2: Value = r.json().await.unwrap();
    let rt2 = t2["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2);
    assert_eq!(
        jwt_parts(t2["access_token"].as_str().unwrap()).1["aud"],
        RESOURCE
    );

    // A second sign-in for the same client skips the consent page (remembered).
    let v = verifier();
    let browser = s.browser();
    let ch = challenge(&v);
    let q = auth_request(&client_id, &redirect, &ch, None).query();
    let first = s.authorize_as_user(&browser, &q).await;
    assert!(first.code.is_some());
    let again = browser
        .get(s.url("/authorize"))
        .query(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 302);
    assert!(
        location(&again).starts_with("/consent"),
        "a signed-in browser goes straight to consent"
    );
    let consent = browser.get(s.url(&location(&again))).send().await.unwrap();
    assert_eq!(
        consent.status(),
        303,
        "remembered consent redirects straight back"
    );
    assert!(query_param(&location(&consent), "code").is_some());

    // Consent lasts until revoked: withdraw it, and the next authorization asks again.
    let page = browser
        .get(s.url("/consent/revoke"))
        .query(&[("client_id", client_id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let form = [
        ("client_id", client_id.clone()),
        ("csrf", hidden(&html, "csrf")),
    ];
    let r = browser
        .post(s.url("/consent/revoke"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Access withdrawn"));
    let r = browser
        .post(s.url("/consent/revoke"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "the form token works once");
    let again = browser
        .get(s.url("/authorize"))
        .query(&q)
        .send()
        .await
        .unwrap();
    let consent = browser.get(s.url(&location(&again))).send().await.unwrap();
    assert_eq!(consent.status(), 200, "the consent page is shown again");
}

async fn forms_are_single_use_and_pages_escape_what_they_reflect(b: Backend) {
    let s = start(b).await;
    let redirect = "http://127.0.0.1:4567/callback";
    let r = s
        .register(serde_json::json!({
            "client_name": "<script>alert(1)</script>",
            "redirect_uris": [redirect],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    let id = r.json::<Value>().await.unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    let browser = s.browser();
    let ch = challenge(&verifier());
    let q = [
        ("response_type", "code"),
        ("client_id", id.as_str()),
        ("redirect_uri", redirect),
        ("code_challenge", ch.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let r = browser
        .get(s.url("/authorize"))
        .query(&q)
        .send()
        .await
        .unwrap();
    let page = browser.get(s.url(&location(&r))).send().await.unwrap();
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("<script>alert(1)</script>"),
        "client name reflected unescaped"
    );
    assert!(html.contains("&lt;script&gt;"));
    let form = [
        ("req", hidden(&html, "req")),
        ("csrf", hidden(&html, "csrf")),
        ("idp", "local".to_string()),
        ("username", USER.to_string()),
        ("password", "wrong".to_string()),
    ];
    // A wrong password: 401 page, a fresh token.
    let r = browser
        .post(s.url("/signin"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The same CSRF token again: refused, even with the right password.
    let mut replay = form.clone();
    replay[4].1 = PASSWORD.to_string();
    let r = browser
        .post(s.url("/signin"))
        .form(&replay)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Another browser (no cookie) cannot use this request's form at all.
    let stranger = s.browser();
    let r = stranger
        .get(s.url(&format!("/signin?req={}", form[0].1)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

both_stores!(
    code_flow_with_local_sign_in_then_refresh,
    forms_are_single_use_and_pages_escape_what_they_reflect,
);
