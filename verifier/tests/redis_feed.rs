//! The Redis revocation feed (REDIS_URL set): catch-up from `revoked:*`
//! records at start, live pub/sub events, fail closed when Redis goes away.
//! Real redis-server on a free port (testkit).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::time::{Duration, Instant};

use futures_util::FutureExt;

use gateway_common::revocation::{revoked_key, RevocationEvent, REVOCATION_CHANNEL};
use gateway_store::{RedisStore, Store};
use gateway_testkit::RedisServer;
use mcp_verifier::VerifierConfig;
use support::*;

const RESOURCE: &str = "https://echo.example.test/mcp";

/// What the authz-server does on revocation: the record, then the event.
async fn revoke(store: &RedisStore, jti: &str, exp: u64) {
    let raw = serde_json::to_vec(&RevocationEvent {
        jti: jti.into(),
        exp,
    })
    .unwrap();
    store
        .put(
            &revoked_key(jti),
            &raw,
            Some(Duration::from_secs(exp - now())),
        )
        .await
        .unwrap();
    store.publish(REVOCATION_CHANNEL, &raw).await.unwrap();
}

#[actix_web::test]
async fn redis_feed_catches_up_applies_events_and_fails_closed() {
    let mut redis = RedisServer::start().await.unwrap();
    let store = RedisStore::connect(&redis.url(0), None).await.unwrap();
    let key = TestKey::generate("k1");
    let authz = Authz::start(jwks(&[&key])).await;

    // Revoked before the verifier started: found by the SCAN catch-up.
    let early = claims(RESOURCE, now());
    revoke(&store, &early.jti, early.exp).await;

    let src = source(&authz, RESOURCE)
        .with("REDIS_URL", &redis.url(0))
        .with("REVOCATION_STALENESS_BOUND", "1");
    let verifier = mcp_verifier::serve(VerifierConfig::from_source(&src).unwrap())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let ready_url = format!("http://{}/ready", verifier.addr);
    gateway_testkit::wait_for_http(&ready_url, Duration::from_secs(10))
        .await
        .unwrap();
    let ready: serde_json::Value = http
        .get(&ready_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["revocation_source"], "redis");

    let status = |token: String| {
        let http = http.clone();
        let addr = verifier.addr;
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
    assert_eq!(
        status(key.sign(&early)).await,
        401,
        "catch-up missed a revocation"
    );

    let live = claims(RESOURCE, now());
    let token = key.sign(&live);
    assert_eq!(status(token.clone()).await, 200);
    let t = Instant::now();
    revoke(&store, &live.jti, live.exp).await;
    assert!(
        eventually(Duration::from_secs(1), || status(token.clone())
            .then(|s| async move { s == 401 }))
        .await,
        "live revocation not applied within 1 s"
    );
    println!("redis revocation applied after {:?}", t.elapsed());

    // Redis gone: within the 1 s bound (+ one ping interval) the verifier fails closed.
    let other = key.sign(&claims(RESOURCE, now()));
    redis.stop();
    assert!(
        eventually(Duration::from_secs(5), || status(other.clone())
            .then(|s| async move { s == 503 }))
        .await,
        "the verifier kept answering without its feed"
    );
    let r = http.get(&ready_url).send().await.unwrap();
    assert_eq!(r.status(), 503);
}
