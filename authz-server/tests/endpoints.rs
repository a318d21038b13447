//! The rest of issue 3, endpoint by endpoint, on both stores.
#![allow(clippy::unwrap_used)] // test bodies are shared by both stores, outside #[test] fns

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};

async fn discovery_documents_advertise_what_is_implemented(b: Backend) {
    let s = start(b).await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let r = s
            .http
            .get(s.url(path))
            .header("origin", "https://claude.ai")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(
            r.headers()["access-control-allow-origin"],
            "https://claude.ai"
        );
        let m: Value = r.json().await.unwrap();
        assert_eq!(
            m["issuer"],
            s.base.as_str(),
            "byte for byte, no trailing slash"
        );
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(m["authorization_response_iss_parameter_supported"], true);
        assert_eq!(m["client_id_metadata_document_supported"], true);
        assert_eq!(m["response_types_supported"], json!(["code"]));
        assert_eq!(
            m["grant_types_supported"],
            json!([
                "authorization_code",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:device_code",
                "client_credentials"
            ])
        );
        assert_eq!(
            m["device_authorization_endpoint"],
            format!("{}/device_authorization", s.base)
        );
        assert_eq!(m["token_endpoint"], format!("{}/token", s.base));
        assert_eq!(m["revocation_endpoint"], format!("{}/revoke", s.base));
        assert_eq!(
            m["introspection_endpoint"],
            format!("{}/introspect", s.base)
        );
        assert_eq!(m["registration_endpoint"], format!("{}/register", s.base));
        assert!(m["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("none")));
    }
    // A path-inserted form for a path our issuer does not have: 404 (its issuer would not match).
    let r = s
        .http
        .get(s.url("/.well-known/oauth-authorization-server/tenant"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "not_found");
    // Protected resource metadata, path-suffixed and bare.
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let prm: Value = r.json().await.unwrap();
        assert_eq!(prm["resource"], RESOURCE);
        assert_eq!(prm["authorization_servers"], json!([s.base]));
        assert_eq!(prm["scopes_supported"], json!(["mcp", "mcp:admin"]));
        assert_eq!(prm["bearer_methods_supported"], json!(["header"]));
    }
    // Chosen by host when the proxy forwards the service's host.
    let r = s
        .http
        .get(s.url("/.well-known/oauth-protected-resource/mcp"))
        .header("x-forwarded-host", "echo.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["resource"], RESOURCE);
    // CORS preflight on /token.
    let r = s
        .http
        .request(reqwest::Method::OPTIONS, s.url("/token"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert!(r.headers().get("access-control-allow-origin").is_some());
}

async fn registration_management_rfc7592(b: Backend) {
    let s = start(b).await;
    let r = s
        .register(json!({
            "client_name": "Editor",
            "redirect_uris": ["http://127.0.0.1:9000/cb"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "software_id": "sw", "software_version": "1.2", "application_type": "native", "logo_uri": "https://example.com/l.png",
        }))
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let reg: Value = r.json().await.unwrap();
    assert_eq!(reg["token_endpoint_auth_method"], "none");
    assert_eq!(reg["software_id"], "sw");
    assert!(reg.get("client_secret").is_none());
    let id = reg["client_id"].as_str().unwrap().to_string();
    let rat = reg["registration_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        reg["registration_client_uri"],
        format!("{}/register/{id}", s.base)
    );
    // A registration is one record, the client's: the flow trail's
    // "registered" step is its `issued_at` (`mcp-gateway flows`).
    let written: Vec<String> = s
        .store
        .keys_with_prefix("")
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.contains(&id))
        .collect();
    assert_eq!(
        written,
        [mcp_authz::protocol::records::client_key(&id)],
        "{b:?}"
    );
    let uri = s.url(&format!("/register/{id}"));
    // No token / wrong token: 401 invalid_token.
    assert_eq!(s.http.get(&uri).send().await.unwrap().status(), 401);
    assert_eq!(
        s.http
            .get(&uri)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // Read: rotates the registration access token.
    let r = s.http.get(&uri).bearer_auth(&rat).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let read: Value = r.json().await.unwrap();
    assert_eq!(read["client_name"], "Editor");
    let rat2 = read["registration_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(rat, rat2);
    assert_eq!(
        s.http
            .get(&uri)
            .bearer_auth(&rat)
            .send()
            .await
            .unwrap()
            .status(),
        401,
        "old token retired"
    );
    // Update.
    let r = s
        .http
        .put(&uri)
        .bearer_auth(&rat2)
        .json(&json!({"client_id": id, "client_name": "Renamed", "redirect_uris": ["http://127.0.0.1:9000/cb"], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let upd: Value = r.json().await.unwrap();
    assert_eq!(upd["client_name"], "Renamed");
    let rat3 = upd["registration_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    // An update with an invalid redirect is refused.
    let r = s
        .http
        .put(&uri)
        .bearer_auth(&rat3)
        .json(&json!({"client_id": id, "redirect_uris": ["javascript:alert(1)"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // The registration access token is not an access token, and the reverse.
    let (cid, csecret, _) = s.confidential_client("client_secret_basic").await;
    assert_eq!(
        s.introspect(&cid, &csecret, &rat3).await,
        json!({"active": false})
    );
    let (_, _, tok) = s.tokens_for_public_client().await;
    let at = tok["access_token"].as_str().unwrap();
    assert_eq!(
        s.http
            .get(&uri)
            .bearer_auth(at)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // Delete: 204, then the client is gone.
    assert_eq!(
        s.http
            .delete(&uri)
            .bearer_auth(&rat3)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        s.http
            .get(&uri)
            .bearer_auth(&rat3)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let r = s.refresh(&id, "x.y").await;
    assert_eq!(r.status(), 401);
}

/// Client ids are issued in order (RFC 9562 version 7), so the embedded
/// store appends a registration's records instead of rewriting a B-tree path
/// per client; each is still distinct.
async fn client_ids_are_distinct_and_issued_in_order(b: Backend) {
    let s = start(b).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let (id, _) = s.public_client().await;
        let parsed = uuid::Uuid::parse_str(&id).expect("a client id is a UUID");
        assert_eq!(parsed.get_version_num(), 7, "{id}");
        ids.push(id);
    }
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, ids, "ids in issue order, none repeated");
}

async fn clients_expire_after_client_lifetime(b: Backend) {
    let s = start_with(b, &[("CLIENT_LIFETIME", "100")]).await;
    let (id, secret, _) = s.confidential_client("client_secret_basic").await;
    s.clock.advance(Duration::from_secs(101));
    let r = s
        .token(
            &[("grant_type", "refresh_token"), ("refresh_token", "a.b")],
            Some(&basic(&id, &secret)),
        )
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
}

async fn a_replayed_code_revokes_what_it_issued(b: Backend) {
    let s = start(b).await;
    let (id, secret, redirect) = s.confidential_client("client_secret_basic").await;
    let auth = basic(&id, &secret);
    let v = verifier();
    let code = s.code_for(&id, &redirect, &v, RESOURCE).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("code_verifier", v.as_str()),
    ];
    let r = s.token(&form, Some(&auth)).await;
    assert_eq!(r.status(), 200);
    let tok: Value = r.json().await.unwrap();
    let at = tok["access_token"].as_str().unwrap();
    assert_eq!(s.introspect(&id, &secret, at).await["active"], true);
    let r = s.token(&form, Some(&auth)).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    assert_eq!(s.introspect(&id, &secret, at).await["active"], false);
    let rt = tok["refresh_token"].as_str().unwrap();
    let r = s
        .token(
            &[("grant_type", "refresh_token"), ("refresh_token", rt)],
            Some(&auth),
        )
        .await;
    assert_eq!(r.status(), 400);
}

async fn concurrent_redemptions_of_one_code_yield_one_token(b: Backend) {
    let s = start(b).await;
    let (id, redirect) = s.public_client().await;
    let v = verifier();
    let code = s.code_for(&id, &redirect, &v, RESOURCE).await;
    let attempts = (0..8).map(|_| s.exchange(&id, &redirect, &code, &v));
    let results = futures_util::future::join_all(attempts).await;
    let ok = results.iter().filter(|r| r.status() == 200).count();
    assert_eq!(ok, 1);
}

/// RFC 9700 §4.14.2: of concurrent refreshes with one token exactly one
/// rotates; the rest are reuse, and the whole grant goes, the winner's new
/// refresh token and access token included. (Whether a loser lost the swap
/// or came after the winner, the outcome is the same.)
async fn concurrent_refreshes_of_one_token_rotate_once_and_revoke_the_grant(b: Backend) {
    let s = start(b).await;
    let (id, secret, redirect) = s.confidential_client("client_secret_basic").await;
    let auth = basic(&id, &secret);
    let v = verifier();
    let code = s.code_for(&id, &redirect, &v, RESOURCE).await;
    let r = s
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", redirect.as_str()),
                ("code_verifier", v.as_str()),
            ],
            Some(&auth),
        )
        .await;
    assert_eq!(r.status(), 200);
    let first: Value = r.json().await.unwrap();
    let rt = first["refresh_token"].as_str().unwrap();
    let form = [("grant_type", "refresh_token"), ("refresh_token", rt)];
    let attempts = (0..8).map(|_| s.token(&form, Some(&auth)));
    let mut won = Vec::new();
    for r in futures_util::future::join_all(attempts).await {
        match r.status().as_u16() {
            200 => won.push(r.json::<Value>().await.unwrap()),
            400 => assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant"),
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    let won = &won[0];
    let next = won["refresh_token"].as_str().unwrap();
    let r = s
        .token(
            &[("grant_type", "refresh_token"), ("refresh_token", next)],
            Some(&auth),
        )
        .await;
    assert_eq!(r.status(), 400, "the winner's new refresh token is revoked");
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    for at in [&first["access_token"], &won["access_token"]] {
        let at = at.as_str().unwrap();
        assert_eq!(s.introspect(&id, &secret, at).await["active"], false);
    }
}

async fn revocation_is_published_to_the_feed(b: Backend) {
    let s = start(b).await;
    let (id, _, tok) = s.tokens_for_public_client().await;
    let at = tok["access_token"].as_str().unwrap();
    let jti = jwt_parts(at).1["jti"].as_str().unwrap().to_string();
    let resp = s
        .http
        .get(s.url("/revocations/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with(':'));
    // Public clients revoke with client_id alone (RFC 7009 §2.1).
    let r = s
        .http
        .post(s.url("/revoke"))
        .form(&[("token", at), ("client_id", &id)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains(&jti) {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("event within 10 s")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let line = seen.lines().find(|l| l.contains(&jti)).unwrap();
    let ev: Value = serde_json::from_str(line.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(ev["jti"], jti.as_str());
    let snap: Value = s
        .http
        .get(s.url("/revocations"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(snap["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["jti"] == jti.as_str()));
    let rec = s
        .store
        .get(&gateway_common::revocation::revoked_key(&jti))
        .await
        .unwrap();
    assert!(rec.is_some());
    // Unknown tokens: 200 as well (RFC 7009 §2.2).
    let r = s
        .http
        .post(s.url("/revoke"))
        .form(&[("token", "garbage"), ("client_id", &id)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn keys_rotate_with_overlap(b: Backend) {
    let s = start(b).await;
    let (cid, csecret, _) = s.confidential_client("client_secret_basic").await;
    let (_, _, tok) = s.tokens_for_public_client().await;
    let old = tok["access_token"].as_str().unwrap();
    let old_kid = jwt_parts(old).0["kid"].as_str().unwrap().to_string();
    // The next key was published at start; once that is KEY_PUBLISH_LEAD
    // ago, a rotation makes it sign at once.
    let published_next = s.state.keys.jwks().keys[1].common.key_id.clone().unwrap();
    s.clock.advance(s.state.config.keys.publish_lead);
    let rotation = s.state.keys.rotate().await.unwrap();
    assert!(rotation.immediate);
    let new_kid = rotation.kid;
    assert_ne!(old_kid, new_kid);
    assert_eq!(new_kid, published_next, "the key verifiers already had");
    let jwks: Value = s
        .http
        .get(s.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    // Current, the freshly published next one, and the retired one.
    assert_eq!(kids.len(), 3, "{kids:?}");
    assert_eq!(kids[0], new_kid.as_str());
    assert_eq!(kids[2], old_kid.as_str());
    assert!(jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .all(|k| k["alg"] == "ES256" && k.get("d").is_none()));
    // A token signed by the previous key still verifies; new tokens use the new kid.
    let _ = (cid, csecret);
    let (_, _, tok2) = s.tokens_for_public_client().await;
    assert_eq!(
        jwt_parts(tok2["access_token"].as_str().unwrap()).0["kid"],
        new_kid.as_str()
    );
    assert!(s.state.keys.verify(old).is_some());
    // A restart with the same secret loads the same keys; the key is not regenerated.
    let again =
        mcp_authz::keys::KeyManager::init(s.store.clone(), &s.state.config, s.state.clock.clone())
            .await
            .unwrap();
    assert_eq!(again.current().current.kid, new_kid);
}

async fn empty_scope_means_default_and_unknown_scope_is_refused(b: Backend) {
    let s = start(b).await;
    let (id, redirect) = s.public_client().await;
    let v = verifier();
    let ch = challenge(&v);
    let a = s
        .authorize_as_user(
            &s.browser(),
            &[
                ("response_type", "code"),
                ("client_id", &id),
                ("redirect_uri", &redirect),
                ("code_challenge", &ch),
                ("code_challenge_method", "S256"),
                ("scope", ""),
                ("resource", RESOURCE),
            ],
        )
        .await;
    let r = s.exchange(&id, &redirect, &a.code.unwrap(), &v).await;
    assert_eq!(r.json::<Value>().await.unwrap()["scope"], "mcp");
    let r = s
        .http
        .get(s.url("/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", &id),
            ("redirect_uri", &redirect),
            ("code_challenge", &ch),
            ("code_challenge_method", "S256"),
            ("scope", "admin:everything"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        query_param(&location(&r), "error").as_deref(),
        Some("invalid_scope")
    );
    let r = s
        .token(&[("grant_type", "password"), ("client_id", &id)], None)
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
}

async fn health_ready_and_metrics(b: Backend) {
    let s = start(b).await;
    assert_eq!(
        s.http.get(s.url("/health")).send().await.unwrap().status(),
        200
    );
    let ready: Value = s
        .http
        .get(s.url("/ready"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    let _ = s.tokens_for_public_client().await;
    let m = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("authz_tokens_issued_total{grant=\"authorization_code\"} 1"),
        "{m}"
    );
    assert!(m.contains("authz_registrations_total 1"), "{m}");
}

/// `/ready` follows the store (the compose health check asks it): 503 with `store_ok`
/// false once Redis is gone, while `/health` still answers; nothing about the store's
/// address reaches the caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_503_while_redis_is_unreachable() {
    let mut s = start(Backend::Redis).await;
    let ready = |s: &TestServer| {
        let req = s.http.get(s.url("/ready"));
        async move { req.send().await.unwrap() }
    };
    let r = ready(&s).await;
    assert_eq!(r.status(), 200);
    s.stop_redis();
    let r = ready(&s).await;
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "not ready");
    assert_eq!(v["store_ok"], false);
    assert_eq!(v["keys_loaded"], true);
    assert!(!body.contains("127.0.0.1"), "{body}");
    assert_eq!(
        s.http.get(s.url("/health")).send().await.unwrap().status(),
        200
    );
}

/// Serves one fixed JSON document over plain HTTP on loopback (CIMD_ALLOW_PRIVATE=true in the test).
async fn serve_document(make: impl FnOnce(&str) -> String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/client.json",
        listener.local_addr().unwrap().port()
    );
    let body = make(&url);
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let resp = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
            let _ = sock.write_all(resp.as_bytes()).await;
        }
    });
    url
}

async fn client_id_metadata_documents_work_without_registration(b: Backend) {
    let s = start_with(b, &[("CIMD_ALLOW_PRIVATE", "true")]).await;
    let redirect = "http://127.0.0.1:7777/cb";
    let client_id = serve_document(|url| {
        json!({"client_id": url, "client_name": "CIMD App", "redirect_uris": [redirect]})
            .to_string()
    })
    .await;
    let v = verifier();
    let code = s.code_for(&client_id, redirect, &v, RESOURCE).await;
    let r = s.exchange(&client_id, redirect, &code, &v).await;
    assert_eq!(r.status(), 200);
    let tok: Value = r.json().await.unwrap();
    assert_eq!(
        jwt_parts(tok["access_token"].as_str().unwrap()).1["client_id"],
        client_id.as_str()
    );
    // Flow diagnostics: the fetch counts as metadata fetched and registered
    // (records written in the background, so polled).
    let steps = [
        gateway_common::flow::FlowStep::MetadataFetched,
        gateway_common::flow::FlowStep::Registered,
        gateway_common::flow::FlowStep::Authorized,
        gateway_common::flow::FlowStep::TokenIssued,
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for step in steps {
        let key = gateway_common::flow::flow_key(&client_id, step);
        while s.store.get(&key).await.unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline, "{key} not recorded");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    // A document naming another client_id is refused, without a redirect.
    let liar = serve_document(|_| {
        json!({"client_id": "https://elsewhere.example/c.json", "redirect_uris": [redirect]})
            .to_string()
    })
    .await;
    let r = s
        .http
        .get(s.url("/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", &liar),
            ("redirect_uri", redirect),
            ("code_challenge", &challenge(&v)),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.headers().get("location").is_none());
}

async fn private_metadata_documents_are_refused_by_default(b: Backend) {
    let s = start(b).await;
    let redirect = "http://127.0.0.1:7777/cb";
    let doc =
        serve_document(|url| json!({"client_id": url, "redirect_uris": [redirect]}).to_string())
            .await;
    // http on loopback is neither https nor public: refused before any fetch.
    let https_private = doc.replace("http://", "https://");
    for client_id in [doc.as_str(), https_private.as_str()] {
        let r = s
            .http
            .get(s.url("/authorize"))
            .query(&[
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", redirect),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{client_id}");
        assert!(r.headers().get("location").is_none());
    }
}

both_stores!(
    discovery_documents_advertise_what_is_implemented,
    registration_management_rfc7592,
    client_ids_are_distinct_and_issued_in_order,
    clients_expire_after_client_lifetime,
    a_replayed_code_revokes_what_it_issued,
    concurrent_redemptions_of_one_code_yield_one_token,
    concurrent_refreshes_of_one_token_rotate_once_and_revoke_the_grant,
    revocation_is_published_to_the_feed,
    keys_rotate_with_overlap,
    empty_scope_means_default_and_unknown_scope_is_refused,
    health_ready_and_metrics,
    client_id_metadata_documents_work_without_registration,
    private_metadata_documents_are_refused_by_default,
);
