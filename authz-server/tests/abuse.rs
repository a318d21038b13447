//! The authorization server under traffic without credentials: the
//! revocation feed is for verifiers only and capped, connections are capped
//! per address, reuse of a refresh token is caught however long ago it was
//! rotated, and under an https issuer only `__Host-` cookies are believed.
//! The whole-path versions with a legitimate SDK client running through each
//! flood are in `tests/tests/abuse.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FEED_SECRET: &str = "feed-secret-for-tests-0123456789abcdef";

#[tokio::test]
async fn reuse_is_caught_however_many_rotations_ago() {
    let s = start(Backend::Embedded).await;
    let (id, _, tok) = s.tokens_for_public_client().await;
    let first = tok["refresh_token"].as_str().unwrap().to_string();
    let mut current = first.clone();
    // More rotations than any bounded history would remember.
    for _ in 0..40 {
        let r = s.refresh(&id, &current).await;
        assert_eq!(r.status(), 200);
        current = r.json::<Value>().await.unwrap()["refresh_token"]
            .as_str()
            .unwrap()
            .to_string();
    }
    let reuse = |t: String| {
        let (s, id) = (&s, id.clone());
        async move { s.refresh(&id, &t).await }
    };
    // The very first token comes back: the family has leaked; all of it goes.
    let r = reuse(first).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let r = reuse(current).await;
    assert_eq!(r.status(), 400, "the newest token died with its family");
}

async fn get_feed(s: &TestServer, path: &str, auth: Option<&str>, xff: bool) -> u16 {
    let mut req = s.http.get(s.url(path));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if xff {
        req = req.header("x-forwarded-for", "203.0.113.7");
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn the_revocation_feed_is_for_verifiers_only() {
    // Without a secret: loopback peers that no proxy relayed (one machine).
    let s = start(Backend::Embedded).await;
    assert_eq!(get_feed(&s, "/revocations", None, false).await, 200);
    assert_eq!(get_feed(&s, "/revocations", None, true).await, 401);
    assert_eq!(get_feed(&s, "/revocations/stream", None, true).await, 401);

    // With a secret: only those who present it, relayed or not.
    let s = start_with(
        Backend::Embedded,
        &[("REVOCATION_FEED_SECRET", FEED_SECRET)],
    )
    .await;
    let bearer = format!("Bearer {FEED_SECRET}");
    assert_eq!(get_feed(&s, "/revocations", None, false).await, 401);
    assert_eq!(
        get_feed(&s, "/revocations", Some("Bearer wrong"), false).await,
        401
    );
    let r = s
        .http
        .get(s.url("/revocations"))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(get_feed(&s, "/revocations", Some(&bearer), true).await, 200);
    assert_eq!(
        get_feed(&s, "/revocations/stream", Some(&bearer), false).await,
        200
    );
}

#[tokio::test]
async fn feed_subscriptions_are_capped_and_slots_come_back() {
    let s = start_with(
        Backend::Embedded,
        &[
            ("REVOCATION_FEED_SECRET", FEED_SECRET),
            ("REVOCATION_FEED_MAX_SUBSCRIBERS", "2"),
        ],
    )
    .await;
    let bearer = format!("Bearer {FEED_SECRET}");
    let open = || async {
        s.http
            .get(s.url("/revocations/stream"))
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap()
    };
    let a = open().await;
    let b = open().await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let c = open().await;
    assert_eq!(c.status(), 429);
    assert!(c.headers().contains_key("retry-after"));
    // Closing a stream frees its slot (noticed at the latest on the next keepalive).
    drop(a);
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let r = open().await;
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 429);
        assert!(
            std::time::Instant::now() < deadline,
            "a closed subscription never gave its slot back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(b);
}

/// A raw connection from `from` that asks for `/health` and reads the answer;
/// `None` when the server closed it without answering.
async fn health_from(from: IpAddr, to: SocketAddr) -> (tokio::net::TcpStream, Option<String>) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(from, 0)).unwrap();
    let mut stream = sock.connect(to).await.unwrap();
    let req = format!("GET /health HTTP/1.1\r\nHost: {to}\r\n\r\n");
    let _ = stream.write_all(req.as_bytes()).await;
    let mut buf = vec![0u8; 512];
    let answer = match tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        _ => None,
    };
    (stream, answer)
}

#[tokio::test]
async fn connections_per_address_are_capped_while_others_are_served() {
    let s = start_with(
        Backend::Embedded,
        &[
            ("AUTHZ_MAX_CONNECTIONS_PER_ADDRESS", "8"),
            // 127.0.0.2 is then an ordinary client, not a proxy on this machine.
            ("TRUSTED_PROXIES", "127.0.0.1"),
        ],
    )
    .await;
    let addr: SocketAddr = s.base.trim_start_matches("http://").parse().unwrap();
    let attacker: IpAddr = "127.0.0.2".parse().unwrap();
    // Forty at once, all kept open: a held connection is what the cap is about.
    let results =
        futures_util::future::join_all((0..40).map(|_| health_from(attacker, addr))).await;
    let answered = results
        .iter()
        .filter(|(_, a)| a.as_deref().is_some_and(|a| a.starts_with("HTTP/1.1 200")))
        .count();
    assert!(
        (1..=8).contains(&answered),
        "one address holds at most its share of 8, got {answered}"
    );
    let mut held: Vec<_> = results.into_iter().map(|(s, _)| s).collect();
    // Another address is served while the first holds its connections...
    let (_keep, other) = health_from("127.0.0.3".parse().unwrap(), addr).await;
    assert!(other.is_some_and(|a| a.starts_with("HTTP/1.1 200")));
    // ...and so is the trusted proxy, however many it holds.
    for _ in 0..3 {
        assert_eq!(
            s.http.get(s.url("/health")).send().await.unwrap().status(),
            200
        );
    }
    // Closed connections give their slots back.
    held.clear();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_s, a) = health_from(attacker, addr).await;
        if a.is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "slots never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn under_an_https_issuer_only_the_host_prefixed_browser_cookie_counts() {
    let s = start_with(
        Backend::Embedded,
        &[("AUTH_ISSUER", "https://auth.example.com")],
    )
    .await;
    // A cookie without the prefix could have been planted by a sibling host
    // or a plain-http page: it is ignored, and a fresh `__Host-` one is set.
    let r = s
        .http
        .get(s.url("/device"))
        .header("cookie", "authz_browser=chosen-by-an-attacker")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let set: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        set.iter()
            .any(|c| c.starts_with("__Host-authz_browser=") && c.contains("Secure")),
        "{set:?}"
    );
    // The prefixed cookie itself is believed (no new one).
    let r = s
        .http
        .get(s.url("/device"))
        .header("cookie", "__Host-authz_browser=abc")
        .send()
        .await
        .unwrap();
    assert!(r
        .headers()
        .get_all("set-cookie")
        .iter()
        .all(|v| !v.to_str().unwrap().starts_with("__Host-authz_browser=")));
}
