//! A revocation reaches every running verifier within one second.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::{Duration, Instant};

use mcp_verifier::VerifierConfig;
use support::*;

const RESOURCE: &str = "https://echo.example.test/mcp";

#[actix_web::test]
async fn a_revoked_token_is_refused_by_three_verifiers_within_one_second() {
    let key = TestKey::generate("k1");
    let authz = Authz::start(jwks(&[&key])).await;
    let mut verifiers = Vec::new();
    for _ in 0..3 {
        let config = VerifierConfig::from_source(&source(&authz, RESOURCE)).unwrap();
        let running = mcp_verifier::serve(config).await.unwrap();
        gateway_testkit::wait_for_http(
            &format!("http://{}/ready", running.addr),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        verifiers.push(running);
    }
    let http = reqwest::Client::new();
    let status = |addr: std::net::SocketAddr, token: String| {
        let http = http.clone();
        async move {
            http.get(format!("http://{addr}/verify"))
                .header("X-Forwarded-Proto", "https")
                .header("X-Forwarded-Host", "echo.example.test")
                .header("X-Forwarded-Uri", "/mcp")
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };

    for round in 0..5 {
        let c = claims(RESOURCE, now());
        let token = key.sign(&c);
        for v in &verifiers {
            assert_eq!(
                status(v.addr, token.clone()).await,
                200,
                "round {round}: cached before revocation"
            );
        }
        let revoked_at = Instant::now();
        authz.revoke(&c.jti, c.exp);
        let waits = verifiers.iter().map(|v| {
            let token = token.clone();
            let addr = v.addr;
            let status = &status;
            async move {
                loop {
                    if status(addr, token.clone()).await == 401 {
                        return revoked_at.elapsed();
                    }
                    if revoked_at.elapsed() > Duration::from_secs(2) {
                        return revoked_at.elapsed();
                    }
                }
            }
        });
        let took = futures_util::future::join_all(waits).await;
        println!("round {round}: refused after {took:?}");
        for (i, t) in took.iter().enumerate() {
            assert!(
                *t < Duration::from_secs(1),
                "round {round}: verifier {i} took {t:?}"
            );
        }
    }
}
