//! Issue 16, client ID metadata documents as an attacker uses them: a flood of
//! distinct document URLs sent as `client_id` to the routes that answer
//! without credentials. `/revoke`, `/introspect` and `/device_authorization`
//! never fetch; `/authorize` and `/token` fetch each URL at most once per
//! cache period, failures included; nothing reaches the store for a URL until
//! its client completes a step; and a legitimate metadata-document client
//! completes sign-in, code exchange and refresh during the flood.
//!
//! The documents are served over plain http on loopback, so the server runs
//! with `CIMD_ALLOW_PRIVATE=true`. Rate limits are off here
//! (`RATE_LIMIT_ENABLED=false`) so every request reaches the fetch decision:
//! this test measures what one request may cost, `rate_limits.rs` how many
//! requests get through. Counts and sizes are asserted, never timings.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use common::*;
use serde_json::{json, Value};

const REDIRECT: &str = "http://127.0.0.1:7777/cb";
/// Distinct URLs serving a valid document, and distinct URLs answering 404.
const GOOD_URLS: usize = 200;
const BAD_URLS: usize = 100;

/// A document server on loopback that counts requests per path:
/// `/good/…` a valid document naming its own URL, `/moved/…` a redirect to
/// `/target/…` (which would serve a valid document), anything else 404.
struct DocumentServer {
    base: String,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    handle: actix_web::dev::ServerHandle,
}

impl DocumentServer {
    async fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let (counter, origin) = (hits.clone(), base.clone());
        let server = HttpServer::new(move || {
            let (counter, origin) = (counter.clone(), origin.clone());
            App::new().default_service(web::to(move |req: HttpRequest| {
                let (counter, origin) = (counter.clone(), origin.clone());
                async move {
                    let path = req.path().to_string();
                    *counter.lock().unwrap().entry(path.clone()).or_default() += 1;
                    let url = format!("{origin}{path}");
                    if path.starts_with("/good/") || path.starts_with("/target/") {
                        HttpResponse::Ok().json(json!({
                            "client_id": url,
                            "client_name": "flood",
                            "redirect_uris": [REDIRECT],
                        }))
                    } else if let Some(rest) = path.strip_prefix("/moved/") {
                        HttpResponse::Found()
                            .insert_header(("location", format!("{origin}/target/{rest}")))
                            .finish()
                    } else {
                        HttpResponse::NotFound().finish()
                    }
                }
            }))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { base, hits, handle }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    fn total_hits(&self) -> usize {
        self.hits.lock().unwrap().values().sum()
    }

    /// The largest number of fetches any one path got.
    fn most_hits(&self) -> usize {
        self.hits
            .lock()
            .unwrap()
            .values()
            .copied()
            .max()
            .unwrap_or(0)
    }
}

impl Drop for DocumentServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn serve() -> (TestServer, DocumentServer) {
    let s = start_with(
        Backend::Embedded,
        &[
            ("CIMD_ALLOW_PRIVATE", "true"),
            ("RATE_LIMIT_ENABLED", "false"),
        ],
    )
    .await;
    (s, DocumentServer::start().await)
}

async fn all_keys(s: &TestServer) -> Vec<String> {
    s.store.keys_with_prefix("").await.unwrap()
}

/// The unauthenticated routes that identify a client, each with a `client_id`.
async fn unauthenticated_round(s: &TestServer, client_id: &str) {
    let r = s
        .http
        .post(s.url("/revoke"))
        .form(&[("client_id", client_id), ("token", "not-a-token")])
        .send()
        .await
        .unwrap();
    // RFC 7009 §2.2: an unknown token is not an error.
    assert_eq!(r.status(), 200, "/revoke {client_id}");
    let r = s
        .http
        .post(s.url("/introspect"))
        .form(&[("client_id", client_id), ("token", "not-a-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "/introspect {client_id}");
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    let r = s
        .http
        .post(s.url("/device_authorization"))
        .form(&[("client_id", client_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "/device_authorization {client_id}");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
}

/// `/authorize` naming the client with a redirect URI it never registered:
/// the document is needed (fetched or cached), then the request is refused
/// with a page (no redirect, nothing stored).
async fn authorize_round(s: &TestServer, client_id: &str) -> u16 {
    s.http
        .get(s.url("/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
        ])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `/token` with a made-up code: the client is authenticated (document
/// fetched or cached), then the grant fails.
async fn token_round(s: &TestServer, client_id: &str) -> (u16, String) {
    let r = s
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("client_id", client_id),
                ("code", "made-up"),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier()),
            ],
            None,
        )
        .await;
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    (status, body["error"].as_str().unwrap_or("").to_string())
}

#[tokio::test]
async fn a_flood_of_document_urls_fetches_nothing_where_no_client_is_authorized() {
    let (s, docs) = serve().await;
    let urls: Vec<String> = (0..GOOD_URLS)
        .map(|i| docs.url(&format!("/good/{i}.json")))
        .chain((0..BAD_URLS).map(|i| docs.url(&format!("/missing/{i}.json"))))
        .collect();
    let keys_before = all_keys(&s).await;
    // Three rounds: a cache would not help a route that must not fetch at all.
    for _ in 0..3 {
        for url in &urls {
            unauthenticated_round(&s, url).await;
        }
    }
    assert_eq!(
        docs.total_hits(),
        0,
        "no fetch from /revoke, /introspect, /device_authorization"
    );
    assert_eq!(
        all_keys(&s).await,
        keys_before,
        "no store record for a typed URL"
    );
    assert_eq!(s.state.cimd.cache_usage().await.0, 0);
}

#[tokio::test]
async fn a_flood_of_document_urls_costs_one_fetch_per_url_per_cache_period_and_no_store_record() {
    let (s, docs) = serve().await;
    let good: Vec<String> = (0..GOOD_URLS)
        .map(|i| docs.url(&format!("/good/{i}.json")))
        .collect();
    let bad: Vec<String> = (0..BAD_URLS)
        .map(|i| docs.url(&format!("/missing/{i}.json")))
        .collect();
    let keys_before = all_keys(&s).await;

    // The legitimate client: its own document, its whole flow during the flood.
    let legit_path = "/good/legitimate-client.json";
    let legit = docs.url(legit_path);
    let flood = {
        let (s_base, good, bad) = (s.base.clone(), good.clone(), bad.clone());
        let http = s.http.clone();
        tokio::spawn(async move {
            let mut statuses = HashMap::<(String, u16), usize>::new();
            for _ in 0..3 {
                for url in good.iter().chain(&bad) {
                    let authorize = http
                        .get(format!("{s_base}/authorize"))
                        .query(&[
                            ("response_type", "code"),
                            ("client_id", url.as_str()),
                            ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
                        ])
                        .send()
                        .await
                        .unwrap();
                    *statuses
                        .entry(("authorize".into(), authorize.status().as_u16()))
                        .or_default() += 1;
                    for path in ["/revoke", "/introspect", "/device_authorization"] {
                        let r = http
                            .post(format!("{s_base}{path}"))
                            .form(&[("client_id", url.as_str()), ("token", "x")])
                            .send()
                            .await
                            .unwrap();
                        *statuses
                            .entry((path.into(), r.status().as_u16()))
                            .or_default() += 1;
                    }
                }
            }
            statuses
        })
    };
    let v = verifier();
    let code = s.code_for(&legit, REDIRECT, &v, RESOURCE).await;
    let r = s.exchange(&legit, REDIRECT, &code, &v).await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let r = s
        .token(
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &legit),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ],
            None,
        )
        .await;
    assert_eq!(r.status(), 200, "refresh during the flood");
    let statuses = flood.await.unwrap();
    let rounds = 3 * (GOOD_URLS + BAD_URLS);
    assert_eq!(
        statuses[&("authorize".to_string(), 400)],
        rounds,
        "{statuses:?}"
    );
    assert_eq!(
        statuses[&("/revoke".to_string(), 200)],
        rounds,
        "{statuses:?}"
    );
    assert_eq!(
        statuses[&("/introspect".to_string(), 401)],
        rounds,
        "{statuses:?}"
    );
    assert_eq!(
        statuses[&("/device_authorization".to_string(), 400)],
        rounds,
        "{statuses:?}"
    );

    // Each URL was fetched exactly once: three rounds, failures included.
    for url in good.iter().chain(&bad) {
        let path = url.strip_prefix(&docs.base).unwrap();
        assert_eq!(docs.hits(path), 1, "{path}");
    }
    // The legitimate client's document: once for its whole flow.
    assert_eq!(docs.hits(legit_path), 1);
    assert_eq!(docs.total_hits(), GOOD_URLS + BAD_URLS + 1);

    // /token for the flooded URLs: served from the cache, still no fetch.
    for url in good.iter().chain(&bad) {
        let (status, error) = token_round(&s, url).await;
        assert!(
            (status, error.as_str()) == (400, "invalid_grant")
                || (status, error.as_str()) == (401, "invalid_client"),
            "{url}: {status} {error}"
        );
    }
    assert_eq!(docs.most_hits(), 1);

    // Store: only the legitimate client's records are new; no key names a flooded URL.
    let keys_after = all_keys(&s).await;
    let new: Vec<&String> = keys_after
        .iter()
        .filter(|k| !keys_before.contains(k))
        .collect();
    for key in &new {
        assert!(
            !good.iter().chain(&bad).any(|u| key.contains(u.as_str())),
            "store record for a flooded URL: {key}"
        );
    }
    // Its first completed step made it "registered", once.
    let registered =
        gateway_common::flow::flow_key(&legit, gateway_common::flow::FlowStep::Registered);
    assert!(s.store.get(&registered).await.unwrap().is_some());
    for url in good.iter().chain(&bad) {
        let key = gateway_common::flow::flow_key(url, gateway_common::flow::FlowStep::Registered);
        assert!(s.store.get(&key).await.unwrap().is_none(), "{key}");
    }

    // Memory: one cache entry per URL, each weighed in bytes.
    let (entries, bytes) = s.state.cimd.cache_usage().await;
    assert_eq!(entries as usize, GOOD_URLS + BAD_URLS + 1);
    assert!(bytes <= mcp_authz::cimd::CACHE_BYTES);
    let per_entry = bytes / entries;
    assert!(
        (256..2048).contains(&per_entry),
        "{bytes} bytes for {entries} entries"
    );
}

#[tokio::test]
async fn failures_are_cached_for_a_minute_then_fetched_again() {
    let (s, docs) = serve().await;
    let missing = docs.url("/missing/once.json");
    for _ in 0..5 {
        assert_eq!(authorize_round(&s, &missing).await, 400);
        let (status, error) = token_round(&s, &missing).await;
        assert_eq!((status, error.as_str()), (401, "invalid_client"));
    }
    assert_eq!(docs.hits("/missing/once.json"), 1);
    s.clock
        .advance(mcp_authz::cimd::FAILURE_CACHE_FOR - Duration::from_secs(1));
    assert_eq!(authorize_round(&s, &missing).await, 400);
    assert_eq!(docs.hits("/missing/once.json"), 1);
    s.clock.advance(Duration::from_secs(1));
    assert_eq!(authorize_round(&s, &missing).await, 400);
    assert_eq!(docs.hits("/missing/once.json"), 2);
    // A good document lives longer: still cached after the failure period.
    let good = docs.url("/good/kept.json");
    assert_eq!(authorize_round(&s, &good).await, 400);
    s.clock.advance(mcp_authz::cimd::FAILURE_CACHE_FOR);
    assert_eq!(authorize_round(&s, &good).await, 400);
    assert_eq!(docs.hits("/good/kept.json"), 1);
    s.clock.advance(mcp_authz::cimd::CACHE_FOR);
    assert_eq!(authorize_round(&s, &good).await, 400);
    assert_eq!(docs.hits("/good/kept.json"), 2);
}

#[tokio::test]
async fn concurrent_requests_for_one_url_share_one_fetch() {
    let (s, docs) = serve().await;
    let s = Arc::new(s);
    let url = docs.url("/good/together.json");
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (s, url) = (s.clone(), url.clone());
            tokio::spawn(async move { authorize_round(&s, &url).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 400);
    }
    assert_eq!(docs.hits("/good/together.json"), 1);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (s, docs) = serve().await;
    let moved = docs.url("/moved/doc.json");
    assert_eq!(authorize_round(&s, &moved).await, 400);
    assert_eq!(docs.hits("/moved/doc.json"), 1);
    assert_eq!(
        docs.hits("/target/doc.json"),
        0,
        "the redirect was followed"
    );
}

#[tokio::test]
async fn revoke_compares_the_client_id_without_fetching() {
    let (s, docs) = serve().await;
    let path = "/good/revoker.json";
    let client_id = docs.url(path);
    let v = verifier();
    let code = s.code_for(&client_id, REDIRECT, &v, RESOURCE).await;
    let r = s.exchange(&client_id, REDIRECT, &code, &v).await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(docs.hits(path), 1);
    // Another document URL may not revoke this client's token (RFC 7009 §2.1)…
    let other = docs.url("/good/someone-else.json");
    let r = s
        .http
        .post(s.url("/revoke"))
        .form(&[("client_id", other.as_str()), ("token", refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
    // …nor with a secret (a document client has none)…
    let r = s
        .http
        .post(s.url("/revoke"))
        // RFC 6749 §2.3.1: the id is form-urlencoded inside Basic (its ':' would split it).
        .header(
            "authorization",
            basic(
                &url::form_urlencoded::byte_serialize(client_id.as_bytes()).collect::<String>(),
                "guess",
            ),
        )
        .form(&[("token", refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // …and the client itself can, once its cached document has expired too.
    s.clock.advance(mcp_authz::cimd::CACHE_FOR);
    let r = s
        .http
        .post(s.url("/revoke"))
        .form(&[("client_id", client_id.as_str()), ("token", refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s.refresh(&client_id, refresh).await;
    assert_eq!(r.status(), 400, "the refresh token was revoked");
    assert_eq!(docs.hits("/good/someone-else.json"), 0);
    // One fetch for the flow, one for the refresh attempt after expiry; none for /revoke.
    assert_eq!(docs.hits(path), 2);
}
