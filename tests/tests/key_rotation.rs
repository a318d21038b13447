//! Signing-key rotation without a 401 window: two authorization servers and
//! three verifiers on one real Redis, scheduled rotation every few seconds,
//! and continuous traffic — a client refreshing for fresh access tokens
//! (signed by whichever key is current at the instance it reaches) and every
//! verifier asked about each new token and about the very first one (signed
//! by a key retired several rotations ago, still within its lifetime). Across
//! three rotations, every answer is 200, and no verifier ever met an unknown
//! kid (each key was published before it signed).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use gateway_tests::faults_support::{authorize, browser, exchange, pkce, refresh, register_public};
use gateway_tests::stack::{McpServer, Stack, StackSpec};

fn kid_of(jwt: &str) -> String {
    use base64::Engine as _;
    let header = jwt.split('.').next().unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    v["kid"].as_str().unwrap().to_string()
}

/// `GET /verify` as the proxy in front of `origin` sends it for `/mcp`.
async fn verify(
    http: &reqwest::Client,
    verifier: std::net::SocketAddr,
    origin: &str,
    token: &str,
) -> u16 {
    let host = origin.trim_start_matches("http://");
    http.get(format!("http://{verifier}/verify"))
        .header("X-Forwarded-Proto", "http")
        .header("X-Forwarded-Host", host)
        .header("X-Forwarded-Uri", "/mcp")
        .header("X-Forwarded-Method", "POST")
        .bearer_auth(token)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

#[actix_web::test]
async fn three_rotations_under_traffic_without_a_single_401() {
    // Nothing listens on the proxy port: the verifiers are asked directly,
    // with the forwarded headers a proxy for that origin would send.
    let proxy = gateway_testkit::RefusingPort::new().unwrap();
    let port = proxy.port;
    let spec = StackSpec {
        authz: 2,
        verifiers: 3,
        redis: true,
        mcp: McpServer::Echo,
    };
    let stack = Stack::start_with(
        spec,
        port,
        &[
            ("JWKS_REFRESH_INTERVAL", "1"),
            ("KEY_RELOAD_INTERVAL", "1"),
            // The shortest lead the authz-server accepts: refresh + reload.
            ("KEY_PUBLISH_LEAD", "2"),
            ("KEY_ROTATION_INTERVAL", "3"),
            // The client refreshes as fast as it can.
            ("RATE_LIMIT_ENABLED", "false"),
        ],
    )
    .await
    .unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let bases: Vec<String> = stack
        .authz_addrs()
        .iter()
        .map(|a| format!("http://{a}"))
        .collect();
    let resource = stack.mcp_url();
    let (client_id, _) = register_public(&http, &bases[0]).await.unwrap();
    let (verifier, challenge) = pkce();
    let code = authorize(
        &browser().unwrap(),
        &bases[0],
        &client_id,
        (&stack.user, &stack.password),
        &challenge,
        &resource,
    )
    .await
    .unwrap()
    .code;
    let tokens = exchange(&http, &bases[0], &client_id, &code, &verifier, &resource)
        .await
        .unwrap();
    let first = tokens["access_token"].as_str().unwrap().to_string();
    let mut refresh_token = tokens["refresh_token"].as_str().unwrap().to_string();

    let mut kids = BTreeSet::from([kid_of(&first)]);
    let mut refused = Vec::new();
    let mut checks = 0usize;
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut i = 0usize;
    // Three rotations: four distinct signing keys seen in fresh tokens.
    while kids.len() < 4 {
        assert!(
            Instant::now() < deadline,
            "only {} signing keys seen before the deadline",
            kids.len()
        );
        let r = refresh(&http, &bases[i % 2], &client_id, &refresh_token)
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "refresh");
        let body: serde_json::Value = r.json().await.unwrap();
        refresh_token = body["refresh_token"].as_str().unwrap().to_string();
        let access = body["access_token"].as_str().unwrap().to_string();
        kids.insert(kid_of(&access));
        for v in stack.verifier_addrs() {
            for token in [&access, &first] {
                checks += 1;
                let status = verify(&http, v, &stack.origin, token).await;
                if status != 200 {
                    refused.push((status, v, kid_of(token)));
                }
            }
        }
        i += 1;
    }
    assert!(
        refused.is_empty(),
        "{} of {checks} checks refused across the rotations: {refused:?}",
        refused.len()
    );
    // And not thanks to the unknown-kid refetch: every key reached every
    // verifier before it signed (its lead time), so none met an unknown kid.
    for v in stack.verifier_addrs() {
        let m = http
            .get(format!("http://{v}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for sample in [
            "mcp_verifier_unknown_kid_refetches_total 0",
            "mcp_verifier_decisions_total{reason=\"unknown_kid\"} 0",
        ] {
            assert!(m.lines().any(|l| l == sample), "{v}: no `{sample}` in\n{m}");
        }
    }
    // Every key is still published: none of their tokens has expired.
    let jwks: serde_json::Value = http
        .get(format!("{}/jwks", bases[1]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let published: BTreeSet<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    assert!(kids.is_subset(&published), "{kids:?} vs {published:?}");
    stack.stop().await;
}
