//! Sign-in through OpenID Connect against a real provider: the `oidc-provider`
//! npm package (pinned in tests/js), started by the test
//! (authz-server/tests/js/oidc_provider.mjs). Its interaction pages are driven
//! over HTTP with one cookie jar, as a browser would.
#![allow(clippy::unwrap_used)]

mod common;
mod support;

use std::time::Duration;

use common::*;
use gateway_testkit::{wait_for_http, ChildGuard};
use serde_json::Value;
use support::get;

const CLIENT_ID: &str = "mcp-gateway";
const CLIENT_SECRET: &str = "oidc-test-client-secret-0123456789";

struct Setup {
    s: TestServer,
    _idp: ChildGuard,
    issuer: String,
}

async fn setup() -> Setup {
    setup_with(
        &[
            ("OIDC_ALLOWED_DOMAINS", "corp.example"),
            ("OIDC_ALLOWED_GROUPS", "auditors"),
        ],
        None,
    )
    .await
}

/// The provider with `users_file` over its test users (see oidc_provider.mjs).
async fn setup_with(allow: &[(&str, &str)], users_file: Option<&std::path::Path>) -> Setup {
    // Our port first (the provider redirects back to it), then the provider's
    // (it binds port 0 and prints its issuer), then our configuration.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let js = gateway_testkit::js_dir();
    let module = js.join("node_modules/oidc-provider/lib/index.js");
    assert!(module.exists(), "run scripts/test.sh to install tests/js");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/oidc_provider.mjs");
    let mut child = std::process::Command::new("node")
        .arg(&script)
        .current_dir(&js)
        .env("CALLBACK", format!("{base}/callback/oidc"))
        .env("CLIENT_ID", CLIENT_ID)
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .env("OIDC_PROVIDER_MODULE", &module)
        .envs(users_file.map(|f| ("USERS_FILE", f)))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let guard = ChildGuard(child);
    // The first line is the issuer; the rest of its output is read (and
    // dropped) until it exits, so a later write never meets a closed pipe.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        let _ = tx.send(lines.next());
        for _ in lines {}
    });
    let line = tokio::time::timeout(Duration::from_secs(30), rx)
        .await
        .expect("the OpenID provider starts")
        .unwrap()
        .expect("the OpenID provider printed its issuer")
        .unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("the OpenID provider printed {line:?}: {e}"));
    let issuer = ready["issuer"].as_str().unwrap().to_string();
    let mut vars = vec![
        ("OIDC_ISSUER", issuer.as_str()),
        ("OIDC_CLIENT_ID", CLIENT_ID),
        ("OIDC_CLIENT_SECRET", CLIENT_SECRET),
        ("OIDC_SCOPES", "openid email profile groups"),
        ("OIDC_LABEL", "Corp SSO"),
        ("OIDC_RECHECK_INTERVAL", "600"),
    ];
    vars.extend_from_slice(allow);
    let s = start_on(listener, Backend::Embedded, &vars).await;
    wait_for_http(
        &format!("{issuer}/.well-known/openid-configuration"),
        Duration::from_secs(20),
    )
    .await
    .unwrap();
    Setup {
        s,
        _idp: guard,
        issuer,
    }
}

fn absolute(current: &str, location: &str) -> String {
    url::Url::parse(current)
        .unwrap()
        .join(location)
        .unwrap()
        .to_string()
}

fn form_action(html: &str) -> String {
    let start = html.find("action=\"").unwrap() + "action=\"".len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end]
        .replace("&#x2F;", "/")
        .replace("&amp;", "&")
}

/// /authorize → chooser → provider login and consent pages → our callback.
async fn through_provider(
    st: &Setup,
    browser: &reqwest::Client,
    login: &str,
    client_id: &str,
    redirect: &str,
    verifier: &str,
    tamper: &dyn Fn(String) -> String,
) -> reqwest::Response {
    let s = &st.s;
    let ch = challenge(verifier);
    let r = browser
        .get(s.url("/authorize"))
        .query(&auth_request(client_id, redirect, &ch, Some("st")).query())
        .send()
        .await
        .unwrap();
    let signin = absolute(&s.base, &location(&r));
    let chooser = get(browser, &signin).await.text().await.unwrap();
    assert!(chooser.contains(">Corp SSO<"), "{chooser}");
    let r = get(browser, &format!("{signin}&idp=oidc")).await;
    assert_eq!(r.status(), 302);
    let mut url = location(&r);
    assert!(url.starts_with(&format!("{}/auth?", st.issuer)), "{url}");
    for k in ["state", "nonce", "code_challenge"] {
        assert!(query_param(&url, k).is_some(), "{k} missing");
    }
    for _ in 0..12 {
        let r = get(browser, &url).await;
        let here = url.clone();
        url = if r.status().is_redirection() {
            absolute(&here, &location(&r))
        } else {
            assert_eq!(r.status(), 200, "{here}");
            let html = r.text().await.unwrap();
            let action = absolute(&here, &form_action(&html));
            let form: Vec<(&str, &str)> = if html.contains("name=\"login\"") {
                vec![("prompt", "login"), ("login", login), ("password", "any")]
            } else {
                vec![("prompt", "consent")]
            };
            let r = browser.post(&action).form(&form).send().await.unwrap();
            assert!(r.status().is_redirection(), "{}", r.status());
            absolute(&action, &location(&r))
        };
        if url.starts_with(&s.url("/callback/oidc")) {
            return get(browser, &tamper(url)).await;
        }
    }
    panic!("the provider never sent the browser back (last: {url})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_user_signs_in_and_gets_tokens() {
    let st = setup().await;
    let s = &st.s;
    let (client_id, redirect) = s.public_client().await;
    let browser = s.browser();
    let v = verifier();
    let cb = through_provider(&st, &browser, "alice", &client_id, &redirect, &v, &|u| u).await;
    assert_eq!(cb.status(), 303, "{:?}", cb.text().await);
    let consent = absolute(&s.base, &location(&cb));
    let html = get(&browser, &consent).await.text().await.unwrap();
    assert!(html.contains("alice"), "{html}");
    let r = browser
        .post(s.url("/consent"))
        .form(&consent_form(&html, "allow"))
        .send()
        .await
        .unwrap();
    let code = query_param(&location(&r), "code").unwrap();
    let r = s.exchange(&client_id, &redirect, &code, &v).await;
    assert_eq!(r.status(), 200);
    let tok: Value = r.json().await.unwrap();
    let (_, c) = jwt_parts(tok["access_token"].as_str().unwrap());
    assert_eq!(c["sub"], "oidc:alice");
    assert_eq!(c["email"], "alice@corp.example");
    assert_eq!(c["groups"], serde_json::json!(["engineering"]));
    assert_eq!(c["idp"], "oidc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_outside_the_allowlists_are_refused() {
    let st = setup().await;
    let s = &st.s;
    let (client_id, redirect) = s.public_client().await;
    for login in ["mallory", "unverified"] {
        let browser = s.browser();
        let cb = through_provider(
            &st,
            &browser,
            login,
            &client_id,
            &redirect,
            &verifier(),
            &|u| u,
        )
        .await;
        assert_eq!(cb.status(), 403, "{login}");
        assert!(cb.text().await.unwrap().contains("Not allowed"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_or_forged_callback_is_refused() {
    let st = setup().await;
    let s = &st.s;
    let (client_id, redirect) = s.public_client().await;
    let browser = s.browser();
    let cb = through_provider(
        &st,
        &browser,
        "alice",
        &client_id,
        &redirect,
        &verifier(),
        &|u| u,
    )
    .await;
    let callback_url = cb.url().to_string();
    assert_eq!(cb.status(), 303);
    // The same callback again: the state is spent.
    let r = get(&browser, &callback_url).await;
    assert_eq!(r.status(), 400);
    // RFC 9207: an `iss` that is not the provider's is a mix-up attempt.
    let evil = |u: String| u.replace("iss=http", "iss=https");
    let browser = s.browser();
    let cb = through_provider(
        &st,
        &browser,
        "alice",
        &client_id,
        &redirect,
        &verifier(),
        &evil,
    )
    .await;
    assert_eq!(cb.status(), 400);
    assert!(cb
        .text()
        .await
        .unwrap()
        .contains("unexpected identity provider"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_name_from_the_provider_is_escaped_on_the_consent_page() {
    let st = setup().await;
    let s = &st.s;
    let (client_id, redirect) = s.public_client().await;
    let browser = s.browser();
    let cb = through_provider(
        &st,
        &browser,
        "hostile",
        &client_id,
        &redirect,
        &verifier(),
        &|u| u,
    )
    .await;
    assert_eq!(cb.status(), 303);
    let html = get(&browser, &absolute(&s.base, &location(&cb)))
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("<img"), "{html}");
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;&quot;&#x27;"),
        "{html}"
    );
}

/// Like GitHub's: at most every OIDC_RECHECK_INTERVAL a refresh asks the
/// provider again (its refresh grant, then userinfo); a user taken out of the
/// allowed group loses the grant, one still in it keeps refreshing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_membership_is_rechecked_on_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.json");
    std::fs::write(&users, "{}").unwrap();
    let st = setup_with(&[("OIDC_ALLOWED_GROUPS", "engineering")], Some(&users)).await;
    let s = &st.s;
    let (client_id, redirect) = s.public_client().await;
    let browser = s.browser();
    let v = verifier();
    let cb = through_provider(&st, &browser, "alice", &client_id, &redirect, &v, &|u| u).await;
    assert_eq!(cb.status(), 303, "{:?}", cb.text().await);
    let consent = absolute(&s.base, &location(&cb));
    let html = get(&browser, &consent).await.text().await.unwrap();
    let r = browser
        .post(s.url("/consent"))
        .form(&consent_form(&html, "allow"))
        .send()
        .await
        .unwrap();
    let code = query_param(&location(&r), "code").unwrap();
    let r = s.exchange(&client_id, &redirect, &code, &v).await;
    assert_eq!(r.status(), 200);
    let tok: Value = r.json().await.unwrap();
    let refresh = |rt: String| {
        let client_id = client_id.clone();
        async move { s.refresh(&client_id, &rt).await }
    };

    // Due: still in the group, the grant goes on (the provider was asked).
    s.clock.advance(Duration::from_secs(601));
    let r = refresh(tok["refresh_token"].as_str().unwrap().to_string()).await;
    assert_eq!(r.status(), 200);
    let tok: Value = r.json().await.unwrap();
    let (_, c) = jwt_parts(tok["access_token"].as_str().unwrap());
    assert_eq!(c["groups"], serde_json::json!(["engineering"]));

    // Moved to another group at the provider.
    std::fs::write(
        &users,
        r#"{"alice": {"email": "alice@corp.example", "email_verified": true, "groups": ["sales"], "preferred_username": "alice"}}"#,
    )
    .unwrap();
    // Not due yet: no question asked, the grant goes on.
    let r = refresh(tok["refresh_token"].as_str().unwrap().to_string()).await;
    assert_eq!(r.status(), 200);
    let tok: Value = r.json().await.unwrap();
    // Due: the provider says she left the group; the whole grant ends.
    s.clock.advance(Duration::from_secs(601));
    let rt = tok["refresh_token"].as_str().unwrap().to_string();
    let r = refresh(rt.clone()).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let r = refresh(rt).await;
    assert_eq!(r.status(), 400, "the grant stays revoked");
}
