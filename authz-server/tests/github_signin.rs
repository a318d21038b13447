//! Sign-in through GitHub, against the stand-in that follows GitHub's
//! documented OAuth endpoints and REST answers (tests/support/github_standin.rs).
#![allow(clippy::unwrap_used)]

mod common;
mod support;

use std::time::Duration;

use common::*;
use serde_json::Value;
use support::github_standin::{GitHubStandIn, CLIENT_ID, CLIENT_SECRET};
use support::{get, next_url};

struct Setup {
    s: TestServer,
    gh: GitHubStandIn,
}

async fn setup() -> Setup {
    let gh = GitHubStandIn::start().await;
    let s = start_with(
        Backend::Embedded,
        &[
            ("GITHUB_CLIENT_ID", CLIENT_ID),
            ("GITHUB_CLIENT_SECRET", CLIENT_SECRET),
            ("GITHUB_BASE_URL", &gh.base),
            ("GITHUB_API_URL", &format!("{}/", gh.base)),
            // Trimmed and compared case-insensitively.
            ("ALLOWED_GITHUB_USERS", "  OctoCat , someone-else"),
            ("ALLOWED_GITHUB_ORGS", "acme"),
            ("ALLOWED_GITHUB_TEAMS", "acme/SRE"),
            ("GITHUB_RECHECK_INTERVAL", "60"),
        ],
    )
    .await;
    gh.set_callback(&s.url("/callback/github"));
    gh.add_user("octocat", 583231, "octocat@github.example");
    gh.add_user("hubot", 4242, "hubot@github.example");
    gh.add_user("pendy", 777, "pendy@github.example");
    Setup { s, gh }
}

/// /authorize → chooser → GitHub → back at /callback/github; returns the callback answer.
async fn through_github(
    st: &Setup,
    browser: &reqwest::Client,
    client_id: &str,
    redirect: &str,
    verifier: &str,
) -> reqwest::Response {
    let s = &st.s;
    let ch = challenge(verifier);
    let r = browser
        .get(s.url("/authorize"))
        .query(&auth_request(client_id, redirect, &ch, Some("client-state")).query())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let signin = next_url(&s.base, &r);
    // Two providers are on (GitHub, local users): the chooser comes first.
    let chooser = get(browser, &signin).await;
    assert_eq!(chooser.status(), 200);
    let html = chooser.text().await.unwrap();
    assert!(
        html.contains(">GitHub<") && html.contains(">Local account<"),
        "{html}"
    );
    let r = get(browser, &format!("{signin}&idp=github")).await;
    assert_eq!(r.status(), 302);
    let to_github = next_url(&s.base, &r);
    assert!(to_github.starts_with(&format!("{}/login/oauth/authorize?", st.gh.base)));
    assert_eq!(
        query_param(&to_github, "client_id").as_deref(),
        Some(CLIENT_ID)
    );
    assert_eq!(
        query_param(&to_github, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        query_param(&to_github, "redirect_uri").unwrap(),
        s.url("/callback/github")
    );
    assert!(query_param(&to_github, "state").unwrap().len() >= 32);
    // "GitHub" answers the browser with a redirect back to us.
    let r = get(&s.http, &to_github).await;
    assert_eq!(r.status(), 302);
    let back = next_url(&s.base, &r);
    assert!(back.starts_with(&s.url("/callback/github?")), "{back}");
    get(browser, &back).await
}

/// Consent allowed → code → tokens.
async fn consent_and_exchange(
    s: &TestServer,
    browser: &reqwest::Client,
    callback: reqwest::Response,
    client_id: &str,
    redirect: &str,
    verifier: &str,
) -> Value {
    assert_eq!(callback.status(), 303, "{:?}", callback.text().await);
    let consent = next_url(&s.base, &callback);
    assert!(consent.contains("/consent?req="));
    let page = get(browser, &consent).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let r = browser
        .post(s.url("/consent"))
        .form(&consent_form(&html, "allow"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let to_client = next_url(&s.base, &r);
    assert_eq!(
        query_param(&to_client, "state").as_deref(),
        Some("client-state")
    );
    let code = query_param(&to_client, "code").unwrap();
    let r = s.exchange(client_id, redirect, &code, verifier).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn refresh(s: &TestServer, client_id: &str, rt: &str) -> reqwest::Response {
    s.refresh(client_id, rt).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowlisted_user_signs_in_with_verified_primary_email() {
    let st = setup().await;
    let s = &st.s;
    st.gh.sign_in_as("octocat");
    let (client_id, redirect) = s.public_client().await;
    let browser = s.browser();
    let v = verifier();
    let cb = through_github(&st, &browser, &client_id, &redirect, &v).await;
    let tok = consent_and_exchange(s, &browser, cb, &client_id, &redirect, &v).await;
    let (_, c) = jwt_parts(tok["access_token"].as_str().unwrap());
    assert_eq!(c["sub"], "github:583231");
    assert_eq!(c["name"], "octocat");
    assert_eq!(
        c["email"], "octocat@github.example",
        "the verified primary one"
    );
    assert_eq!(c["idp"], "github");
    assert!(
        !tok.to_string().contains("gho_"),
        "the GitHub token never leaves the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_member_gets_groups_and_removal_cuts_off_at_refresh() {
    let st = setup().await;
    let s = &st.s;
    st.gh.sign_in_as("hubot");
    st.gh.set_team("acme", "sre", "hubot", Some("active"));
    st.gh.set_org("acme", "hubot", Some("pending"));
    let (client_id, redirect) = s.public_client().await;
    let browser = s.browser();
    let v = verifier();
    let cb = through_github(&st, &browser, &client_id, &redirect, &v).await;
    let tok = consent_and_exchange(s, &browser, cb, &client_id, &redirect, &v).await;
    let (_, c) = jwt_parts(tok["access_token"].as_str().unwrap());
    assert_eq!(
        c["groups"],
        serde_json::json!(["acme/sre"]),
        "pending org membership is no group"
    );

    // Within the interval: no re-check needed, refresh works.
    let r = refresh(s, &client_id, tok["refresh_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 200);
    let t2: Value = r.json().await.unwrap();
    // Past the interval, still a member: re-checked, still fine.
    s.clock.advance(Duration::from_secs(61));
    let r = refresh(s, &client_id, t2["refresh_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 200);
    let t3: Value = r.json().await.unwrap();

    // Removed from the team: the next refresh past the interval is refused.
    st.gh.set_team("acme", "sre", "hubot", None);
    let r = refresh(s, &client_id, t3["refresh_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 200, "not yet due: the interval has not passed");
    let t4: Value = r.json().await.unwrap();
    s.clock.advance(Duration::from_secs(61));
    let r = refresh(s, &client_id, t4["refresh_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "invalid_grant");
    // The whole grant is gone, not just one attempt: rejoining does not revive it.
    st.gh.set_team("acme", "sre", "hubot", Some("active"));
    let r = refresh(s, &client_id, t4["refresh_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_org_membership_is_refused() {
    let st = setup().await;
    let s = &st.s;
    st.gh.sign_in_as("pendy");
    st.gh.set_org("acme", "pendy", Some("pending"));
    let (client_id, redirect) = s.public_client().await;
    let browser = s.browser();
    let cb = through_github(&st, &browser, &client_id, &redirect, &verifier()).await;
    assert_eq!(cb.status(), 403);
    assert!(cb.text().await.unwrap().contains("Not allowed"));
    // Accepted the invitation: now active, and allowed.
    st.gh.set_org("acme", "pendy", Some("active"));
    let v = verifier();
    let cb = through_github(&st, &browser, &client_id, &redirect, &v).await;
    let tok = consent_and_exchange(s, &browser, cb, &client_id, &redirect, &v).await;
    assert_eq!(
        jwt_parts(tok["access_token"].as_str().unwrap()).1["groups"],
        serde_json::json!(["acme"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_at_github_goes_back_to_the_client() {
    let st = setup().await;
    let s = &st.s;
    st.gh.deny_next();
    let (client_id, redirect) = s.public_client().await;
    let browser = s.browser();
    let cb = through_github(&st, &browser, &client_id, &redirect, &verifier()).await;
    assert_eq!(cb.status(), 303);
    let to_client = next_url(&s.base, &cb);
    assert!(to_client.starts_with(&redirect), "{to_client}");
    assert_eq!(
        query_param(&to_client, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(
        query_param(&to_client, "state").as_deref(),
        Some("client-state")
    );
    assert_eq!(
        query_param(&to_client, "iss").as_deref(),
        Some(s.base.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_verification_code_and_replayed_state_are_refused() {
    let st = setup().await;
    let s = &st.s;
    st.gh.sign_in_as("octocat");
    let (client_id, redirect) = s.public_client().await;
    let browser = s.browser();
    // Intercept the callback and change the code: GitHub answers
    // 200 {"error":"bad_verification_code"}, which must not sign anyone in.
    let ch = challenge(&verifier());
    let r = browser
        .get(s.url("/authorize"))
        .query(&auth_request(&client_id, &redirect, &ch, None).query())
        .send()
        .await
        .unwrap();
    let signin = next_url(&s.base, &r);
    let r = get(&browser, &format!("{signin}&idp=github")).await;
    let to_github = next_url(&s.base, &r);
    let r = get(&s.http, &to_github).await;
    let back = next_url(&s.base, &r);
    let state = query_param(&back, "state").unwrap();
    let forged = format!(
        "{}?code=code00000000000000009999&state={}",
        s.url("/callback/github"),
        state
    );
    let r = get(&browser, &forged).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("Sign-in failed"));
    // The state was used up by that attempt: the genuine callback now fails too.
    let r = get(&browser, &back).await;
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("already completed or has expired"));
    // An invented state never reaches GitHub's token endpoint.
    let r = get(
        &browser,
        &format!("{}?code=x&state=invented", s.url("/callback/github")),
    )
    .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_from_another_browser_is_refused() {
    let st = setup().await;
    let s = &st.s;
    st.gh.sign_in_as("octocat");
    let (client_id, redirect) = s.public_client().await;
    let ch = challenge(&verifier());
    let browser = s.browser();
    let r = browser
        .get(s.url("/authorize"))
        .query(&auth_request(&client_id, &redirect, &ch, None).query())
        .send()
        .await
        .unwrap();
    let signin = next_url(&s.base, &r);
    let r = get(&browser, &format!("{signin}&idp=github")).await;
    let r = get(&s.http, &next_url(&s.base, &r)).await;
    let back = next_url(&s.base, &r);
    // Login CSRF: an attacker's callback URL opened in the victim's browser.
    let victim = s.browser();
    let r = get(&victim, &back).await;
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("set-cookie").is_none(), "no session opened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_reaches_github_for_a_bad_client_or_redirect() {
    let st = setup().await;
    let s = &st.s;
    let (id, _, redirect) = s.confidential_client("client_secret_basic").await;
    assert_eq!(redirect, "https://app.example.com/cb");
    let ch = challenge(&verifier());
    // One character off (last, first-of-path, scheme), and an unknown client.
    for (client, presented) in [
        (id.as_str(), "https://app.example.com/cc"),
        (id.as_str(), "https://app.example.com/cb/"),
        (id.as_str(), "http://app.example.com/cb"),
        (id.as_str(), "https://app.example.co/cb"),
        ("unknown-client", "https://app.example.com/cb"),
    ] {
        let r = s
            .http
            .get(s.url("/authorize"))
            .query(&[
                ("response_type", "code"),
                ("client_id", client),
                ("redirect_uri", presented),
                ("code_challenge", ch.as_str()),
                ("code_challenge_method", "S256"),
                ("state", "<script>alert(1)</script>"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{client} {presented}");
        assert!(r.headers().get("location").is_none(), "never a redirect");
        let html = r.text().await.unwrap();
        assert!(!html.contains("<script>"));
    }
}

/// The stand-in itself answers as GitHub documents: token errors are HTTP 200
/// with an `error` field, in JSON or form encoding per `Accept`; codes are single-use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standin_answers_like_github() {
    let gh = GitHubStandIn::start().await;
    gh.set_callback("http://127.0.0.1:1/callback/github");
    gh.add_user("octocat", 1, "o@example.com");
    let http = reqwest::Client::new();
    let v = verifier();
    let code = gh.mint_code("octocat", "http://127.0.0.1:1/callback/github", &v);
    let form = |code: &str, verifier: &str| {
        vec![
            ("client_id", CLIENT_ID.to_string()),
            ("client_secret", CLIENT_SECRET.to_string()),
            ("code", code.to_string()),
            ("code_verifier", verifier.to_string()),
        ]
    };
    // Default (no Accept: JSON): form-encoded.
    let r = http
        .post(format!("{}/login/oauth/access_token", gh.base))
        .form(&form(&code, &v))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(
        body.starts_with("access_token=gho_") && body.contains("token_type=bearer"),
        "{body}"
    );
    // The same code again: bad_verification_code, HTTP 200, JSON on request.
    let r = http
        .post(format!("{}/login/oauth/access_token", gh.base))
        .header("accept", "application/json")
        .form(&form(&code, &v))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "bad_verification_code");
    // A PKCE mismatch is refused too.
    let code = gh.mint_code("octocat", "http://127.0.0.1:1/callback/github", &v);
    let r = http
        .post(format!("{}/login/oauth/access_token", gh.base))
        .header("accept", "application/json")
        .form(&form(&code, &verifier()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "bad_verification_code"
    );
    // The REST API without a valid token: 401 Bad credentials.
    let r = http
        .get(format!("{}/user", gh.base))
        .bearer_auth("gho_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["message"],
        "Bad credentials"
    );
}

/// A grant brought over from the Python gateway (`mcp-gateway import-python`)
/// has no GitHub token to re-check with: once due, its login is checked
/// against ALLOWED_GITHUB_USERS, as the Python gateway checked it at sign-in.
/// A user admitted only through a team cannot be asked and signs in again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_python_grants_are_rechecked_by_login() {
    use gateway_common::crypto::{hash_secret, random_token};
    use mcp_authz::protocol::records::{family_key, RefreshFamily};
    let st = setup().await;
    let s = &st.s;
    let (client_id, _) = s.public_client().await;
    let now = s.state.now();
    // As the import writes it (cli/src/import_python.rs).
    let import = |login: &str, id: u64, checked_at: u64| {
        let token = random_token(32);
        let family_id = mcp_authz::protocol::token::imported_family_id(&token).unwrap();
        let family = RefreshFamily {
            family_id: family_id.clone(),
            client_id: client_id.clone(),
            user: mcp_authz::signin::Identity {
                sub: format!("github:{id}"),
                name: login.to_string(),
                idp: "github".into(),
                checked_at: Some(checked_at),
                ..Default::default()
            },
            scope: "mcp".into(),
            resources: vec![s.state.config.services[0].resource.clone()],
            current_hash: hash_secret(&token),
            previous_hashes: Vec::new(),
            generation: 0,
            revoked: false,
            exp: now + 3600,
            last_access: None,
            jkt: None,
        };
        (token, family_key(&family_id), family)
    };
    let cases = [
        // On the login list, due: checked by login, refreshed.
        ("octocat", 583231, now - 120, 200),
        // Only a team admits hubot: due, and nothing to ask GitHub with.
        ("hubot", 4242, now - 120, 400),
        // Not due yet: refreshed without a check.
        ("hubot", 4242, now - 10, 200),
    ];
    for (login, id, checked_at, want) in cases {
        let (token, key, family) = import(login, id, checked_at);
        s.store
            .put(
                &key,
                &serde_json::to_vec(&family).unwrap(),
                Some(Duration::from_secs(3600)),
            )
            .await
            .unwrap();
        let r = refresh(s, &client_id, &token).await;
        assert_eq!(r.status(), want, "{login} checked at {checked_at}");
    }
}
