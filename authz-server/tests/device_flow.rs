//! Device authorization grant (RFC 8628): a command-line client asks for a
//! code, the user approves it in a browser, the client polls `/token`.
#![allow(clippy::unwrap_used)]

mod common;
mod support;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use support::{get, next_url};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn device_client(s: &TestServer) -> String {
    let r = s
        .register(json!({
            "client_name": "Command-line <b>tool</b>",
            "grant_types": [DEVICE_GRANT, "refresh_token"],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let v: Value = r.json().await.unwrap();
    v["client_id"].as_str().unwrap().to_string()
}

async fn start_device(s: &TestServer, client_id: &str) -> Value {
    let r = s
        .http
        .post(s.url("/device_authorization"))
        .form(&[
            ("client_id", client_id),
            ("scope", "mcp"),
            ("resource", RESOURCE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.unwrap()
}

async fn poll(s: &TestServer, client_id: &str, device_code: &str) -> (u16, Value) {
    let r = s
        .token(
            &[
                ("grant_type", DEVICE_GRANT),
                ("client_id", client_id),
                ("device_code", device_code),
            ],
            None,
        )
        .await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// Enters `typed` on the device page; returns the answer to the POST.
async fn enter_code(s: &TestServer, browser: &reqwest::Client, typed: &str) -> reqwest::Response {
    let page = get(browser, &s.url("/device")).await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("frame-ancestors 'none'"));
    let html = page.text().await.unwrap();
    browser
        .post(s.url("/device"))
        .form(&[("csrf", hidden(&html, "csrf")), ("user_code", typed.into())])
        .send()
        .await
        .unwrap()
}

/// Signs in with the local form from `/signin?req=…`; returns the consent URL.
async fn local_sign_in(s: &TestServer, browser: &reqwest::Client, signin: &str) -> String {
    let html = get(browser, signin).await.text().await.unwrap();
    let r = browser
        .post(s.url("/signin"))
        .form(&[
            ("req", hidden(&html, "req")),
            ("csrf", hidden(&html, "csrf")),
            ("idp", "local".into()),
            ("username", USER.into()),
            ("password", PASSWORD.into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    next_url(&s.base, &r)
}

async fn decide(
    s: &TestServer,
    browser: &reqwest::Client,
    consent: &str,
    decision: &str,
) -> String {
    let page = get(browser, consent).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("your device"), "{html}");
    assert!(
        html.contains("Command-line &lt;b&gt;tool&lt;&#x2F;b&gt;"),
        "escaped client name"
    );
    let r = browser
        .post(s.url("/consent"))
        .form(&[
            ("req", hidden(&html, "req")),
            ("csrf", hidden(&html, "csrf")),
            ("decision", decision.into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

async fn approve_flow_with_slow_down_and_single_use(b: Backend) {
    let s = start(b).await;
    let meta: Value = s
        .http
        .get(s.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        meta["device_authorization_endpoint"],
        s.url("/device_authorization")
    );
    assert!(meta["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!(DEVICE_GRANT)));

    let client_id = device_client(&s).await;
    let d = start_device(&s, &client_id).await;
    let device_code = d["device_code"].as_str().unwrap().to_string();
    let user_code = d["user_code"].as_str().unwrap().to_string();
    assert_eq!(d["verification_uri"], s.url("/device"));
    assert_eq!(d["interval"], 5);
    assert_eq!(d["expires_in"], 600);
    assert_eq!(user_code.len(), 9, "XXXX-XXXX: {user_code}");

    // Polling: pending, then too fast → slow_down with a longer interval.
    let (st, e) = poll(&s, &client_id, &device_code).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("authorization_pending"))
    );
    let (st, e) = poll(&s, &client_id, &device_code).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("slow_down")));
    s.clock.advance(Duration::from_secs(6));
    let (_, e) = poll(&s, &client_id, &device_code).await;
    assert_eq!(e["error"], "slow_down", "the interval was 10 s; now 15 s");
    s.clock.advance(Duration::from_secs(16));
    let (_, e) = poll(&s, &client_id, &device_code).await;
    assert_eq!(e["error"], "authorization_pending");

    // The user types the code (any case, without the dash), signs in and allows.
    let browser = s.browser();
    let typed = user_code.replace('-', "").to_lowercase();
    let r = enter_code(&s, &browser, &typed).await;
    assert_eq!(r.status(), 303);
    let signin = next_url(&s.base, &r);
    assert!(signin.contains("/signin?req="));
    let consent = local_sign_in(&s, &browser, &signin).await;
    let done = decide(&s, &browser, &consent, "allow").await;
    assert!(done.contains("Device connected"));

    s.clock.advance(Duration::from_secs(11));
    let (st, tok) = poll(&s, &client_id, &device_code).await;
    assert_eq!(st, 200, "{tok}");
    let (_, c) = jwt_parts(tok["access_token"].as_str().unwrap());
    assert_eq!(c["sub"], "local:alice");
    assert_eq!(c["aud"], RESOURCE);
    assert_eq!(c["client_id"], client_id.as_str());
    assert!(tok["refresh_token"].as_str().is_some());

    // Single use: the device code and the user code are spent.
    s.clock.advance(Duration::from_secs(11));
    let (st, e) = poll(&s, &client_id, &device_code).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")));
    let r = enter_code(&s, &browser, &user_code).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("not valid"));

    // Signed in, consent remembered: a second device is connected without questions.
    let d = start_device(&s, &client_id).await;
    let r = enter_code(&s, &browser, d["user_code"].as_str().unwrap()).await;
    assert_eq!(r.status(), 303);
    let consent = next_url(&s.base, &r);
    assert!(
        consent.contains("/consent?req="),
        "signed in: straight to consent"
    );
    let page = get(&browser, &consent).await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Device connected"));
    // This poll carries a DPoP proof (RFC 9449 §5): the access token is bound
    // to the key, and so is the public client's refresh token.
    let key = gateway_testkit::dpop::DpopKey::generate();
    let (st, tok) = poll_with_proof(&s, &key, &client_id, d["device_code"].as_str().unwrap()).await;
    assert_eq!(st, 200, "{tok}");
    assert_eq!(tok["token_type"], "DPoP");
    let (_, c) = jwt_parts(tok["access_token"].as_str().unwrap());
    assert_eq!(c["cnf"]["jkt"], key.thumbprint().as_str());
    let refresh = tok["refresh_token"].as_str().unwrap();
    let r = s.refresh(&client_id, refresh).await;
    let e: Value = r.json().await.unwrap();
    assert_eq!(
        e["error"], "invalid_dpop_proof",
        "a bound refresh token needs its key: {e}"
    );
}

/// [`poll`] with a DPoP proof by `key`, answering a `use_dpop_nonce` challenge once.
async fn poll_with_proof(
    s: &TestServer,
    key: &gateway_testkit::dpop::DpopKey,
    client_id: &str,
    device_code: &str,
) -> (u16, Value) {
    let mut nonce: Option<String> = None;
    for _ in 0..2 {
        let proof = key.proof("POST", &s.url("/token"), None, nonce.as_deref());
        let r = s
            .http
            .post(s.url("/token"))
            .header("DPoP", proof)
            .form(&[
                ("grant_type", DEVICE_GRANT),
                ("client_id", client_id),
                ("device_code", device_code),
            ])
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let fresh = r
            .headers()
            .get("dpop-nonce")
            .map(|v| v.to_str().unwrap().to_string());
        let v: Value = r.json().await.unwrap();
        if v["error"] == "use_dpop_nonce" && nonce.is_none() {
            nonce = fresh;
            continue;
        }
        return (status, v);
    }
    panic!("the server asked for a nonce twice");
}

async fn denied_expired_and_foreign_device_codes(b: Backend) {
    let s = start(b).await;
    let client_id = device_client(&s).await;

    // Denied by the user: access_denied, once.
    let d = start_device(&s, &client_id).await;
    let device_code = d["device_code"].as_str().unwrap();
    let browser = s.browser();
    let r = enter_code(&s, &browser, d["user_code"].as_str().unwrap()).await;
    let consent = local_sign_in(&s, &browser, &next_url(&s.base, &r)).await;
    let done = decide(&s, &browser, &consent, "deny").await;
    assert!(done.contains("Device not connected"));
    let (st, e) = poll(&s, &client_id, device_code).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("access_denied")));
    let (_, e) = poll(&s, &client_id, device_code).await;
    assert_eq!(e["error"], "invalid_grant");

    // Another client cannot redeem this client's device code.
    let other = device_client(&s).await;
    let d = start_device(&s, &client_id).await;
    let device_code = d["device_code"].as_str().unwrap();
    let (_, e) = poll(&s, &other, device_code).await;
    assert_eq!(e["error"], "invalid_grant");

    // Expired: expired_token.
    s.clock.advance(Duration::from_secs(601));
    let (st, e) = poll(&s, &client_id, device_code).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("expired_token")));

    // A client without the grant may not start one.
    let (code_client, _) = s.public_client().await;
    let r = s
        .http
        .post(s.url("/device_authorization"))
        .form(&[("client_id", code_client.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "unauthorized_client");
}

async fn device_page_csrf_is_single_use_and_input_is_escaped(b: Backend) {
    let s = start(b).await;
    let browser = s.browser();
    let evil = "<script>alert(1)</script>\"";
    let page = get(
        &browser,
        &format!("{}?user_code={}", s.url("/device"), urlencode(evil)),
    )
    .await;
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script>"), "{html}");
    let csrf = hidden(&html, "csrf");
    let r = browser
        .post(s.url("/device"))
        .form(&[("csrf", csrf.as_str()), ("user_code", evil)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(!r.text().await.unwrap().contains("<script>"));
    let r = browser
        .post(s.url("/device"))
        .form(&[("csrf", csrf.as_str()), ("user_code", "BCDF-GHJK")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a CSRF token works once");
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

both_stores!(
    approve_flow_with_slow_down_and_single_use,
    denied_expired_and_foreign_device_codes,
    device_page_csrf_is_single_use_and_input_is_escaped,
);
