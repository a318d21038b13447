//! The gateway on the open internet: one test per class of attack that needs
//! no credential. Each floods one surface from attacker addresses on the
//! loopback range (127.0.0.2 and up: ordinary clients here, because
//! `TRUSTED_PROXIES` names 127.0.0.1 only) while a legitimate client — the
//! official MCP TypeScript SDK, from 127.0.0.1 — signs in, calls a tool,
//! refreshes and sees revocation work. Bounds are asserted from counts and
//! sizes (connections, subscriptions, store records, limiter entries), never
//! from timings. Throttles run on virtual time where the test needs them to.
//!
//! The long version, 30 s per flood with success rates and p99, is the
//! hostile-load benchmark (`bench/hostile.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use gateway_common::clock::ManualClock;
use gateway_tests::abuse_support::*;

/// Held-open revocation-feed streams used to exhaust the authz-server's file
/// descriptors. The feed is for verifiers only, subscriptions are capped, and
/// one address holds at most its share of connections.
#[actix_web::test]
async fn held_feed_streams_cannot_exhaust_the_server() {
    let g = Gateway::start(
        &[
            ("AUTHZ_MAX_CONNECTIONS_PER_ADDRESS", "32"),
            ("REVOCATION_FEED_MAX_SUBSCRIBERS", "4"),
        ],
        gateway_common::clock::system(),
    )
    .await;
    let addr = g.running.addr;
    let from_proxy = attacker(2);
    let request = |relayed: bool| {
        format!(
            "GET /revocations/stream HTTP/1.1\r\nHost: {addr}\r\n{}\r\n",
            if relayed {
                "X-Forwarded-For: 203.0.113.7\r\n"
            } else {
                ""
            }
        )
    };
    // 300 streams asked for through a proxy (relayed: not a verifier).
    let relayed = futures_util::future::join_all(
        (0..300).map(|_| raw(from_proxy.parse().unwrap(), addr, request(true))),
    )
    .await;
    let served = relayed
        .iter()
        .filter(|(_, s)| s.as_deref().is_some_and(|s| s.contains(" 200")))
        .count();
    // Refused: 403 by the one-machine front door (not a direct local client),
    // 401 by the authorization server itself (no feed secret).
    let refused = relayed
        .iter()
        .filter(|(_, s)| {
            s.as_deref()
                .is_some_and(|s| s.contains(" 401") || s.contains(" 403"))
        })
        .count();
    assert_eq!(served, 0, "nobody outside subscribes to the feed");
    assert!(
        (1..=32).contains(&refused),
        "{refused} answered: at most 32 connections from one address"
    );
    // Every other connection was closed by the server at once, before it
    // read a request: none is left hanging, holding a descriptor.
    let closed = relayed
        .iter()
        .filter(|(_, s)| s.as_deref() == Some(""))
        .count();
    assert_eq!(refused + closed, 300, "{refused} answered, {closed} closed");
    let established = established_from(addr.port(), [127, 0, 0, 2]);
    assert!(
        established <= 32,
        "{established} connections held from one address"
    );

    // Streams asked for by a local process: capped (the gateway's own
    // verifier holds one of the four).
    let local = futures_util::future::join_all(
        (0..10).map(|_| raw(attacker(3).parse().unwrap(), addr, request(false))),
    )
    .await;
    let subscribed = local
        .iter()
        .filter(|(_, s)| s.as_deref().is_some_and(|s| s.contains(" 200")))
        .count();
    let capped = local
        .iter()
        .filter(|(_, s)| s.as_deref().is_some_and(|s| s.contains(" 429")))
        .count();
    assert!(
        subscribed <= 3,
        "{subscribed} subscriptions beside the verifier's"
    );
    assert!(capped >= 7, "{capped} refused at the cap");

    // Everything stays held while the legitimate client does its whole path.
    g.legitimate_client(&[]).await;
    drop((relayed, local));
    g.stop().await;
}

/// The per-client limits were keyed on the `client_id` anyone can type:
/// two requests a second locked a chosen client — for a metadata-document
/// client, every one of its users — out of sign-in and refresh. Now the
/// flooder spends only its own address's budget.
#[actix_web::test]
async fn flooding_a_clients_id_does_not_lock_the_client_out() {
    let doc = gateway_tests::client_document::ClientDocument::start()
        .await
        .unwrap();
    let g = Gateway::start(
        &[
            ("CIMD_ALLOW_PRIVATE", "true"),
            ("RATE_LIMIT_TOKEN_PER_ADDRESS", "60"),
            ("RATE_LIMIT_AUTHORIZE_PER_ADDRESS", "60"),
        ],
        gateway_common::clock::system(),
    )
    .await;
    let flooder = client_from(&attacker(2));
    let (token_url, authorize_url) = (
        g.url("/token"),
        g.url(&format!(
            "/authorize?response_type=code&client_id={}&redirect_uri=http%3A%2F%2F127.0.0.1%3A33418%2Fcallback",
            url::form_urlencoded::byte_serialize(doc.url.as_bytes()).collect::<String>()
        )),
    );
    let mut limited = 0;
    for _ in 0..150 {
        let r = flooder
            .post(&token_url)
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "guess.1.guess"),
                ("client_id", doc.url.as_str()),
            ])
            .send()
            .await
            .unwrap();
        limited += usize::from(r.status() == 429);
        let r = flooder.get(&authorize_url).send().await.unwrap();
        limited += usize::from(r.status() == 429);
    }
    assert!(
        limited >= 150,
        "the flooder's address ran out of budget ({limited} refused)"
    );
    // The client it named still signs in, calls a tool and refreshes.
    g.legitimate_client(&[("CLIENT_METADATA_URL", doc.url.as_str())])
        .await;
    g.stop().await;
    doc.stop().await;
}

/// Password guessing, from one address and from many: each address is
/// slowed after five wrong passwords, the account after ten, with delays
/// that grow but are capped — and a browser that signed in as the user
/// before is never kept out.
#[actix_web::test]
async fn password_guessing_is_slowed_and_the_user_still_gets_in() {
    // Virtual time: the delays are seconds the test moves by hand.
    let clock = ManualClock::new(gateway_common::clock::system().now_secs());
    let g = Gateway::start(&[("SIGNIN_ACCOUNT_MAX_DELAY_SECS", "60")], clock.clone()).await;
    let jar_dir = tempfile::tempdir().unwrap();
    let jar = jar_dir.path().join("cookies.json");
    let jar = jar.to_str().unwrap();
    // The user's own browser signs in once before the attack.
    g.legitimate_client(&[("COOKIE_JAR_FILE", jar)]).await;

    // One address guessing: five free, then told to wait.
    let one = client_from(&attacker(2));
    let client_id = register_from(&g, &one).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(sign_in_once(&g, &one, &client_id, "wrong").await);
    }
    // Five failures are free; the sixth earns the first delay.
    assert_eq!(&statuses[..6], &[401; 6], "{statuses:?}");
    assert!(statuses[6..].iter().all(|s| *s == 429), "{statuses:?}");

    // Many addresses: the account is slowed once ten wrong passwords arrived.
    let mut account_refusals = 0;
    for n in 10..30u8 {
        let browser = client_from(&attacker(n));
        let id = register_from(&g, &browser).await;
        for _ in 0..2 {
            account_refusals += usize::from(sign_in_once(&g, &browser, &id, "wrong").await == 429);
        }
    }
    assert!(
        account_refusals >= 20,
        "{account_refusals} attempts slowed per account"
    );

    // A browser that never signed in as the user waits, but a bounded time.
    let stranger = client_from(&attacker(99));
    let id = register_from(&g, &stranger).await;
    let (req, csrf) = sign_in_form(&g, &stranger, &id).await;
    let r = stranger
        .post(g.url("/signin"))
        .form(&[
            ("req", req.as_str()),
            ("csrf", csrf.as_str()),
            ("username", g.user.as_str()),
            ("password", g.password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=60).contains(&wait),
        "waits {wait} s, never more than the cap"
    );

    // The user's own browser gets in during the attack, on its first try. Its
    // session is dropped first, so it has to type the password again.
    let kept = std::fs::read_to_string(jar).unwrap();
    let mut hosts: Vec<(String, Vec<(String, String)>)> = serde_json::from_str(&kept).unwrap();
    for (_, cookies) in &mut hosts {
        cookies.retain(|(name, _)| !name.ends_with("authz_session"));
        assert!(cookies
            .iter()
            .any(|(name, _)| name.ends_with("authz_known")));
    }
    std::fs::write(jar, serde_json::to_string(&hosts).unwrap()).unwrap();
    g.legitimate_client(&[("COOKIE_JAR_FILE", jar)]).await;

    // And after the capped delay, anyone with the right password gets in.
    clock.advance(Duration::from_secs(wait));
    assert_eq!(
        sign_in_once(&g, &stranger, &id, &g.password.clone()).await,
        303
    );
    g.stop().await;
}

/// RFC 8628 §5.1: user codes are short, so their entry is throttled; and
/// the unauthenticated pages that write a CSRF record are bounded per address.
#[actix_web::test]
async fn device_code_guessing_and_form_floods_are_bounded() {
    let clock = ManualClock::new(gateway_common::clock::system().now_secs());
    let g = Gateway::start(&[("RATE_LIMIT_PUBLIC_PER_ADDRESS", "100")], clock.clone()).await;
    let guesser = client_from(&attacker(2));
    let mut statuses = Vec::new();
    for i in 0..8 {
        let page = guesser
            .get(g.url("/device"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let csrf = hidden(&page, "csrf").unwrap();
        let r = guesser
            .post(g.url("/device"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("user_code", &format!("BCDF-GH{i:02}")),
            ])
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    // Five wrong codes are free; the sixth earns the first delay.
    assert_eq!(&statuses[..6], &[400; 6], "{statuses:?}");
    assert!(statuses[6..].iter().all(|s| *s == 429), "{statuses:?}");

    // A flood of form pages, each of which writes a CSRF record: bounded by
    // the address's budget (100 a minute here), not by the flood.
    let before = g.keys("authz:csrf:").await;
    let flooder = client_from(&attacker(3));
    let mut served = 0;
    for _ in 0..400 {
        served += usize::from(flooder.get(g.url("/device")).send().await.unwrap().status() == 200);
    }
    let created = g.keys("authz:csrf:").await - before;
    assert!(
        served <= 100 && created <= 100,
        "{served} pages, {created} records"
    );

    // The legitimate client is unaffected.
    g.legitimate_client(&[]).await;
    g.stop().await;
}

/// Client ID metadata documents named at endpoints that never need them:
/// each used to cost an outbound fetch and two 30-day records. Now nothing
/// is fetched and nothing is stored, and the legitimate client — itself a
/// metadata-document client — signs in meanwhile.
#[actix_web::test]
async fn metadata_document_urls_at_unauthenticated_endpoints_cost_nothing() {
    let doc = gateway_tests::client_document::ClientDocument::start()
        .await
        .unwrap();
    let g = Gateway::start(
        &[("CIMD_ALLOW_PRIVATE", "true")],
        gateway_common::clock::system(),
    )
    .await;
    let keys_before = g.running.store.keys_with_prefix("").await.unwrap().len();
    let flooder = client_from(&attacker(2));
    // Distinct URLs on the document server (each would be a fetch), and the
    // legitimate client's own URL.
    for n in 0..100 {
        let id = if n % 10 == 0 {
            doc.url.clone()
        } else {
            format!("{}?n={n}", doc.url)
        };
        for path in ["/revoke", "/introspect", "/device_authorization"] {
            let r = flooder
                .post(g.url(path))
                .form(&[("client_id", id.as_str()), ("token", "x")])
                .send()
                .await
                .unwrap();
            // Refused, or (RFC 7009 §2.2) "revoked" for a token that does not exist.
            assert!(
                r.status().is_client_error() || r.status() == 200,
                "{path}: {}",
                r.status()
            );
        }
    }
    assert_eq!(doc.fetches(), 0, "no fetch for a client nobody authorizes");
    let keys_after = g.running.store.keys_with_prefix("").await.unwrap().len();
    assert_eq!(keys_before, keys_after, "nothing stored for the flood");
    g.legitimate_client(&[("CLIENT_METADATA_URL", doc.url.as_str())])
        .await;
    assert!(doc.fetches() >= 1, "fetched when it was authorized");
    g.stop().await;
    doc.stop().await;
}

/// One signed-in user opening sessions until the bridge is full used to lock
/// everyone else out (503). Now a user stops at their share with a JSON-RPC
/// error, and everyone else keeps working.
#[actix_web::test]
async fn one_user_cannot_take_every_bridge_session() {
    let g = Gateway::start(
        &[
            ("BRIDGE_MAX_SESSIONS", "8"),
            ("BRIDGE_MAX_SESSIONS_PER_USER", "3"),
        ],
        gateway_common::clock::system(),
    )
    .await;
    // A second account, the flooder's own (added live, as the operator would).
    let users = g.data_dir().join("users");
    mcp_gateway::users::add_user(&users, "mallory", "mallory-password-1").unwrap();
    let base = g.running.issuer.clone();
    let browser = gateway_tests::faults_support::browser().unwrap();
    let (client_id, _) = gateway_tests::faults_support::register_public(&browser, &base)
        .await
        .unwrap();
    let (verifier, challenge) = gateway_tests::faults_support::pkce();
    let code = gateway_tests::faults_support::authorize(
        &browser,
        &base,
        &client_id,
        ("mallory", "mallory-password-1"),
        &challenge,
        &g.running.mcp_url,
    )
    .await
    .unwrap()
    .code;
    let token = gateway_tests::faults_support::exchange(
        &browser,
        &base,
        &client_id,
        &code,
        &verifier,
        &g.running.mcp_url,
    )
    .await
    .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let http = reqwest::Client::new();
    let mut opened = 0;
    let mut refused = 0;
    for i in 0..20 {
        let r = http
            .post(&g.running.mcp_url)
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .json(&serde_json::json!({
                "jsonrpc": "2.0", "id": i, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "flood", "version": "1"}}
            }))
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            refused += 1;
            let body = r.text().await.unwrap();
            assert!(body.contains("-32004"), "a JSON-RPC error: {body}");
        } else {
            assert!(r.status().is_success(), "{}", r.status());
            opened += 1;
        }
    }
    assert_eq!((opened, refused), (3, 17), "the flooder stops at its share");
    // The legitimate user still signs in, calls a tool, refreshes.
    g.legitimate_client(&[]).await;
    g.stop().await;
}
