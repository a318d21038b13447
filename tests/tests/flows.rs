//! Flow diagnostics and the audit log, end to end in one-machine mode: a
//! client registers, the user fails then passes sign-in, consents, the client
//! redeems the code, calls the MCP server, refreshes, replays a rotated refresh
//! token and revokes. Then `mcp-gateway flows` (its library function) shows
//! every step including the first use at the verifier; the audit file holds one
//! line per security event; and neither the audit lines nor the logs of the
//! whole run contain a token, code, verifier or password.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use gateway_common::config::Source;
use gateway_common::flow::FlowStep;
use gateway_testkit::oauth::{self, LOOPBACK_REDIRECT as REDIRECT};
use mcp_gateway::flows::{flows, Seen};
use mcp_gateway::up;

/// Every log line of this test process (one test in this file: the global
/// subscriber is ours alone).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .json()
            .with_env_filter("debug")
            .with_writer(move || writer.clone())
            .init();
        logs
    })
    .clone()
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_string()
}

/// The `jti` of a JWT (payload read without verification: the test's own token).
fn jti_of(jwt: &str) -> String {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    v["jti"].as_str().unwrap().to_string()
}

async fn mcp_initialize(http: &reqwest::Client, mcp_url: &str, token: &str) -> u16 {
    gateway_testkit::mcp::initialize_status(http, mcp_url, token, "flows-test")
        .await
        .unwrap()
}

#[actix_web::test]
async fn flows_show_every_step_and_the_audit_log_holds_no_secrets() {
    let logs = capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let audit_path = dir.path().join("audit.jsonl");
    let env = Source::from_pairs([("AUDIT_LOG_FILE", audit_path.display().to_string())]);
    let args = gateway_tests::echo_up_args(dir.path().join("data"));
    let running = up::start(&args, &env, gateway_common::clock::system())
        .await
        .unwrap();
    let (user, password) = running.created_user.clone().unwrap();
    let base = running.issuer.clone();
    let mcp_url = running.mcp_url.clone();
    // A hung request fails the test instead of hanging it.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let browser = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Registration (RFC 7591).
    let reg = oauth::register(&http, &base, &oauth::public_client("flows test", REDIRECT))
        .await
        .unwrap();
    let client_id = reg["client_id"].as_str().unwrap().to_string();
    let registration_token = reg["registration_access_token"]
        .as_str()
        .unwrap()
        .to_string();

    // Authorization with PKCE, a failed sign-in, then the right password and consent.
    let (code_verifier, challenge) = oauth::pkce();
    let request = oauth::AuthRequest {
        client_id: &client_id,
        redirect_uri: REDIRECT,
        challenge: &challenge,
        state: Some("st"),
        scope: Some("mcp"),
        resource: Some(&mcp_url),
    };
    let r = browser
        .get(format!("{base}/authorize"))
        .query(&request.query())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let signin = location(&r);
    assert!(signin.starts_with("/signin"), "{signin}");
    let html = browser
        .get(format!("{base}{signin}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let wrong_password = "not-the-password-WRONG";
    let r = browser
        .post(format!("{base}/signin"))
        .form(&oauth::sign_in_form(&html, &user, wrong_password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let html = r.text().await.unwrap();
    let r = browser
        .post(format!("{base}/signin"))
        .form(&oauth::sign_in_form(&html, &user, &password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let consent = location(&r);
    let html = browser
        .get(format!("{base}{consent}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let r = browser
        .post(format!("{base}/consent"))
        .form(&oauth::consent_form(&html, "allow"))
        .send()
        .await
        .unwrap();
    let code = oauth::query_param(&location(&r), "code").unwrap();

    // Code grant.
    let tokens: serde_json::Value = oauth::token(
        &http,
        &base,
        &oauth::code_grant(&client_id, &code, REDIRECT, &code_verifier, &mcp_url),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();

    // First use at the verifier (the in-process guard), and a refused token.
    assert_eq!(mcp_initialize(&http, &mcp_url, &access).await, 200);
    let forged = format!("{}x", &access[..access.len() - 1]);
    assert_eq!(mcp_initialize(&http, &mcp_url, &forged).await, 401);

    // Refresh (rotation), then the rotated token replayed: reuse.
    let r = oauth::refresh(&http, &base, &client_id, &refresh)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rotated: serde_json::Value = r.json().await.unwrap();
    let access2 = rotated["access_token"].as_str().unwrap().to_string();
    let refresh2 = rotated["refresh_token"].as_str().unwrap().to_string();
    let r = oauth::refresh(&http, &base, &client_id, &refresh)
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a rotated refresh token is refused");

    // Revocation (RFC 7009) of the access token.
    let r = http
        .post(format!("{base}/revoke"))
        .form(&[
            ("token", access.as_str()),
            ("client_id", client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // `mcp-gateway flows`: every step, first use included (recorded in the
    // background, so polled).
    let deadline = Instant::now() + Duration::from_secs(10);
    let flow = loop {
        let all = flows(running.store.as_ref(), Some(&client_id))
            .await
            .unwrap();
        let flow = all.into_iter().find(|f| f.client_id == client_id).unwrap();
        let recorded = |step| {
            flow.steps
                .iter()
                .any(|(s, seen)| *s == step && matches!(seen, Seen::At(_)))
        };
        let wanted = [
            FlowStep::Registered,
            FlowStep::Authorized,
            FlowStep::TokenIssued,
            FlowStep::Refreshed,
            FlowStep::FirstUse,
        ];
        if wanted.into_iter().all(recorded) {
            break flow;
        }
        assert!(Instant::now() < deadline, "steps missing: {flow:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(flow.diagnosis(), "working: a token reached the MCP server");
    // A registered (not CIMD) client: no metadata document was fetched.
    assert!(flow.steps.contains(&(FlowStep::MetadataFetched, Seen::No)));

    // The audit log: one line per event, with the right fields.
    // Written in the background (a request never waits for the disk): wait
    // for the last kinds of event to arrive.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = std::fs::read_to_string(&audit_path).unwrap_or_default();
        let all_there = ["token_revoked", "verify_denied", "refresh_reuse_detected"]
            .iter()
            .all(|e| text.contains(&format!("\"event\":\"{e}\"")));
        if all_there || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |event: &str| {
        lines
            .iter()
            .find(|l| l["event"] == event)
            .unwrap_or_else(|| panic!("no {event} line in {text}"))
    };
    let l = find("client_registered");
    assert_eq!(
        (&l["client_id"], &l["via"]),
        (&client_id.clone().into(), &"dcr".into())
    );
    let failed = lines
        .iter()
        .find(|l| l["event"] == "sign_in" && l["success"] == false)
        .unwrap();
    assert_eq!(failed["provider"], "local");
    assert_eq!(failed["user"], user);
    let ok = lines
        .iter()
        .find(|l| l["event"] == "sign_in" && l["success"] == true)
        .unwrap();
    let sub = ok["user"].as_str().unwrap().to_string();
    assert!(sub.ends_with(&user), "{sub}");
    assert_eq!(find("consent_granted")["client_id"], client_id);
    let issued = find("token_issued");
    assert_eq!(issued["grant"], "authorization_code");
    assert_eq!(issued["user"], sub);
    let jti = jti_of(&access);
    assert_eq!(issued["jti"], jti);
    assert_eq!(find("token_refreshed")["client_id"], client_id);
    assert_eq!(find("refresh_reuse_detected")["user"], sub);
    let revoked = find("token_revoked");
    assert_eq!(revoked["jti"], jti);
    let denied = find("verify_denied");
    assert_eq!(denied["source"], "verifier");
    assert_eq!(denied["service"], "local");
    assert!(lines.iter().all(|l| l["ts"].as_u64().is_some()));

    // One /metrics for the whole one-machine app, audit events counted.
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for family in [
        "authz_audit_events_total{event=\"token_issued\"} 1",
        "authz_audit_events_total{event=\"sign_in_failed\"} 1",
        "mcp_verifier_audit_verify_denied_total{result=\"written\"} 1",
        "mcp_verifier_decisions_total",
        "mcp_bridge_sessions_created_total",
    ] {
        assert!(metrics.contains(family), "{family} missing from {metrics}");
    }

    // No secret anywhere: not in the audit file, not in the logs of the run.
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("request_id"), "request logs were captured");
    let secrets = [
        ("access token", access.as_str()),
        ("rotated access token", access2.as_str()),
        ("refresh token", refresh.as_str()),
        ("rotated refresh token", refresh2.as_str()),
        ("authorization code", code.as_str()),
        ("PKCE verifier", code_verifier.as_str()),
        ("password", password.as_str()),
        ("wrong password", wrong_password),
        ("registration token", registration_token.as_str()),
    ];
    for (what, secret) in secrets {
        assert!(!text.contains(secret), "the {what} is in the audit log");
        assert!(!logged.contains(secret), "the {what} is in the logs");
    }
    // The access token's signature alone would already be a leak.
    let signature = access.rsplit('.').next().unwrap();
    assert!(!logged.contains(signature) && !text.contains(signature));

    running.handle.stop(false).await;
}
