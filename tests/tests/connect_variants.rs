//! `mcp-connect` against each authorization variant a server may present, one
//! test server per variant (gateway_tests::variant_server: a small authorization server
//! and MCP server presenting exactly that variant), driven over stdio by the MCP
//! TypeScript SDK's stdio client (tests/js/connect_client.mjs). The server records what
//! connect sent, so each test checks the wire, not only that a tool call came back.
//!
//! Needs `target/debug/mcp-connect` (see tests/tests/connect.rs).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use gateway_common::config::Source;
use gateway_tests::connect_support::{sdk_client, sdk_client_env, token_files, StdioPeer};
use gateway_tests::variant_server::{PreRegistered, Prm, Variant, VariantServer, FLOOD_LIMIT};
use serde_json::{json, Value};

const NOBODY: (&str, &str) = ("nobody", "none");

fn saved(work: &Path) -> (Value, u32) {
    let files = token_files(work);
    assert_eq!(files.len(), 1, "{files:?}");
    let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode() & 0o777;
    let v = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    (v, mode)
}

fn secret_file(dir: &Path, secret: &str) -> String {
    let f = dir.join("client-secret");
    std::fs::write(&f, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    f.to_str().unwrap().to_string()
}

fn mcp_versions(server: &VariantServer) -> Vec<(String, Value, Value)> {
    server
        .log_of("mcp")
        .into_iter()
        .map(|e| {
            (
                e["method"].as_str().unwrap_or("").to_string(),
                e["version"].clone(),
                e["status"].clone(),
            )
        })
        .collect()
}

// 1. The 2026-07-28 stateless wire: no initialize; MCP-Protocol-Version from `_meta`, or
// from what server/discover settled on when a request names none.
#[actix_web::test]
async fn v1_stateless_wire_sends_the_version_from_meta_and_discover() {
    let server = VariantServer::start(Variant {
        stateless: true,
        ..Variant::default()
    })
    .await
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let run = sdk_client("stateless", &server.mcp_url, work.path(), NOBODY, &[]).await;
    assert_eq!(
        run.names(),
        ["discovered", "tools", "tool_call", "bare_request", "done"]
    );
    assert_eq!(run.step("discovered")["versions"], json!(["2026-07-28"]));
    assert_eq!(
        run.step("bare_request")["ok"],
        true,
        "{}",
        run.step("bare_request")
    );
    let seen = mcp_versions(&server);
    // The first POST met the 401 (signed in), every later one carried the version.
    let authorized: Vec<_> = seen.iter().filter(|(_, _, s)| *s != json!(401)).collect();
    assert_eq!(authorized.len(), 4, "{seen:?}");
    for (method, version, status) in &authorized {
        assert_eq!(*version, json!("2026-07-28"), "{method}: {seen:?}");
        assert_eq!(*status, json!(200), "{method}: {seen:?}");
    }
    assert!(
        server.log_of("mcp").iter().all(|e| e["session"].is_null()),
        "no session on the stateless wire"
    );
    assert!(!seen.iter().any(|(m, _, _)| m == "initialize"));
    server.stop().await;
}

// 1b. The same through the real bridge (mcp-bridge serve), which serves 2026-07-28
// requests by their header and answers anything else as a session-bound request.
#[actix_web::test]
async fn v1_stateless_wire_through_the_real_bridge() {
    let cfg = mcp_bridge::Config::from_source(&Source::from_pairs([
        ("BRIDGE_COMMAND", "builtin:echo"),
        ("BRIDGE_LISTEN", "127.0.0.1:0"),
    ]))
    .unwrap();
    let serving = mcp_bridge::serve(cfg).await.unwrap();
    let url = format!("http://{}/mcp", serving.addr);
    let work = tempfile::tempdir().unwrap();
    let run = sdk_client("stateless", &url, work.path(), NOBODY, &[]).await;
    // builtin:echo has no server/discover: the bridge relays the -32601; the requests that
    // carry their version in `_meta` are served statelessly all the same.
    assert_eq!(
        run.step("discovered")["error"]["code"],
        -32601,
        "{}",
        run.step("discovered")
    );
    assert!(run.step("tools")["names"]
        .as_array()
        .unwrap()
        .contains(&json!("echo")));
    assert!(run.step("tool_call").is_object());
    serving.stop().await;
}

// 2. PRM only at the root well-known URL, naming the origin: RFC 9728 §3.3 compares it
// with the identifier the well-known path went into (the origin); connect then asks for
// that `resource`. Found by probing, and named by the 401.
#[actix_web::test]
async fn v2_root_prm_naming_the_origin_is_accepted_and_its_resource_sent() {
    for named in [false, true] {
        let server = VariantServer::start(Variant {
            prm: Prm::RootNamingOrigin,
            challenge_names_prm: named,
            ..Variant::default()
        })
        .await
        .unwrap();
        let work = tempfile::tempdir().unwrap();
        let run = sdk_client("tools", &server.mcp_url, work.path(), NOBODY, &[]).await;
        assert!(run.step("tool_call").is_object());
        let authz = server.log_of("authorize");
        assert_eq!(authz.len(), 1);
        assert_eq!(authz[0]["query"]["resource"], server.origin.as_str());
        let tokens = server.log_of("token");
        assert!(!tokens.is_empty());
        for t in &tokens {
            assert_eq!(t["resource"], server.origin.as_str(), "{t}");
        }
        let (file, _) = saved(work.path());
        assert_eq!(file["resource"], server.origin.as_str());
        if !named {
            // The path-suffixed URL first, then the root one (RFC 9728 §3.1).
            let prm: Vec<Value> = server
                .log_of("prm")
                .into_iter()
                .map(|e| e["path"].clone())
                .collect();
            assert_eq!(prm, [json!("suffixed"), json!("root")]);
        }
        server.stop().await;
    }
}

// 5. A pre-registered client: --client-id and the secret from a file or the
// environment (never argv); no registration.
#[actix_web::test]
async fn v5_pre_registered_client_with_a_secret_file_or_the_environment() {
    let server = VariantServer::start(Variant {
        registration: false,
        auth_methods: Some(vec!["client_secret_basic"]),
        preregistered: vec![PreRegistered {
            client_id: "pre-registered-1".into(),
            method: "client_secret_basic",
            secret: Some("s3cret-from-file".into()),
            jwk: None,
            kid: None,
            client_credentials: false,
        }],
        ..Variant::default()
    })
    .await
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let secret = secret_file(work.path(), "s3cret-from-file");
    let run = sdk_client(
        "tools",
        &server.mcp_url,
        work.path(),
        NOBODY,
        &[
            "--client-id",
            "pre-registered-1",
            "--client-secret-file",
            &secret,
        ],
    )
    .await;
    assert!(run.step("tool_call").is_object());
    assert!(server.log_of("register").is_empty(), "no registration");
    let tokens = server.log_of("token");
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_eq!(tokens[0]["client_id"], "pre-registered-1");
    assert_eq!(tokens[0]["auth"], "client_secret_basic");
    let (file, mode) = saved(work.path());
    assert_eq!(mode, 0o600);
    assert_eq!(file["client_id"], "pre-registered-1");
    assert!(
        !serde_json::to_string(&file)
            .unwrap()
            .contains("s3cret-from-file"),
        "a pre-registered secret stays in the user's file"
    );
    server.stop().await;

    // From MCP_CONNECT_CLIENT_SECRET, at a server that takes client_secret_post only.
    let server = VariantServer::start(Variant {
        registration: false,
        auth_methods: Some(vec!["client_secret_post"]),
        preregistered: vec![PreRegistered {
            client_id: "pre-registered-2".into(),
            method: "client_secret_post",
            secret: Some("s3cret-from-env".into()),
            jwk: None,
            kid: None,
            client_credentials: false,
        }],
        ..Variant::default()
    })
    .await
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let run = sdk_client_env(
        "tools",
        &server.mcp_url,
        work.path(),
        NOBODY,
        &["--client-id", "pre-registered-2"],
        &[("MCP_CONNECT_CLIENT_SECRET", "s3cret-from-env")],
    )
    .await;
    assert!(run.step("tool_call").is_object());
    let tokens = server.log_of("token");
    assert_eq!(tokens[0]["auth"], "client_secret_post", "{tokens:?}");
    server.stop().await;
}

// 4. A server that takes confidential clients only: connect registers with a secret
// method it advertises, keeps the secret in the 0600 token file, authenticates with it.
#[actix_web::test]
async fn v4_confidential_only_server_gets_a_secret_client() {
    for method in ["client_secret_basic", "client_secret_post"] {
        let server = VariantServer::start(Variant {
            auth_methods: Some(vec![method, "private_key_jwt"]),
            // Short-lived tokens: the refresh authenticates with the secret too.
            token_lifetime: 5,
            ..Variant::default()
        })
        .await
        .unwrap();
        let work = tempfile::tempdir().unwrap();
        let run = sdk_client("refresh", &server.mcp_url, work.path(), NOBODY, &[]).await;
        assert!(run.step("tool_call").is_object());
        assert_eq!(
            run.step("refreshed")["sign_ins"],
            1,
            "{}",
            run.step("refreshed")
        );
        let reg = server.log_of("register");
        assert_eq!(reg.len(), 1, "{reg:?}");
        assert_eq!(reg[0]["method"], method);
        let tokens = server.log_of("token");
        let grants: Vec<&Value> = tokens.iter().map(|t| &t["grant"]).collect();
        assert_eq!(
            grants,
            [&json!("authorization_code"), &json!("refresh_token")],
            "{tokens:?}"
        );
        for t in &tokens {
            assert_eq!(t["auth"], method, "{t}");
        }
        let (file, mode) = saved(work.path());
        assert_eq!(mode, 0o600, "the secret lives in a private file");
        assert!(
            file["client_secret"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{file}"
        );
        assert_eq!(file["token_endpoint_auth_method"], method);
        server.stop().await;
    }
}

// 6. A 2025-03-26 server: no PRM anywhere. Metadata at the MCP origin, else the
// default endpoints /authorize, /token, /register.
#[actix_web::test]
async fn v6_2025_03_26_server_without_prm() {
    for metadata in [true, false] {
        let server = VariantServer::start(Variant {
            prm: Prm::Absent,
            challenge_names_prm: false,
            as_metadata: metadata,
            ..Variant::default()
        })
        .await
        .unwrap();
        let work = tempfile::tempdir().unwrap();
        let run = sdk_client("tools", &server.mcp_url, work.path(), NOBODY, &[]).await;
        assert!(run.step("tool_call").is_object());
        let ats: Vec<String> = server
            .log()
            .iter()
            .map(|e| e["at"].as_str().unwrap().to_string())
            .filter(|a| a != "mcp")
            .collect();
        // Both PRM URLs probed (404), then the origin's metadata (found or not), then
        // registration, the browser sign-in and the token request at the (default) endpoints.
        assert_eq!(
            ats,
            [
                "prm",
                "prm",
                "as_metadata",
                "register",
                "authorize",
                "token"
            ],
            "metadata {metadata}"
        );
        let (file, _) = saved(work.path());
        assert_eq!(file["issuer"], server.origin.as_str());
        assert_eq!(file["token_endpoint"], format!("{}/token", server.origin));
        server.stop().await;
    }
}

// 3. Scope step-up: 403 insufficient_scope with scope= → authorize again with the
// union, retry; a scope the server never grants is asked for once, then refused.
#[actix_web::test]
async fn v3_scope_step_up_reauthorizes_with_the_union_and_retries() {
    let server = VariantServer::start(Variant {
        tool_scopes: vec![("admin_echo", "tools:admin"), ("never_echo", "tools:never")],
        withheld_scopes: vec!["tools:never"],
        ..Variant::default()
    })
    .await
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let run = sdk_client("stepup", &server.mcp_url, work.path(), NOBODY, &[]).await;
    let up = run.step("stepped_up");
    assert_eq!(up["sign_ins"], 2, "{up}");
    assert_eq!(up["scope"], "mcp tools:admin", "{up}");
    let scopes: Vec<Value> = server
        .log_of("authorize")
        .iter()
        .map(|a| a["query"]["scope"].clone())
        .collect();
    assert_eq!(
        scopes,
        [
            json!("mcp"),
            json!("mcp tools:admin"),
            json!("mcp tools:admin tools:never")
        ],
        "the union each time, and the never-granted scope asked for once"
    );
    let refused = run.step("refused");
    assert_eq!(refused["sign_ins"], 3, "{refused}");
    assert!(
        refused["code"].is_number(),
        "answered with a JSON-RPC error: {refused}"
    );
    assert!(
        refused["message"].as_str().unwrap().contains("tools:never"),
        "{refused}"
    );
    assert!(run.names().contains(&"done"));
    server.stop().await;
}

fn client_key() -> (String, jsonwebtoken::jwk::Jwk) {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    let key = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_str(&key.public_key().to_jwk_string()).unwrap();
    (pem, jwk)
}

// 7. Client credentials (SEP-1046), no browser: client_secret_basic, then private_key_jwt
// with the RFC 7638 thumbprint as kid, then with --key-id.
#[actix_web::test]
async fn v7_client_credentials_with_a_secret_or_a_private_key() {
    let server = VariantServer::start(Variant {
        registration: false,
        preregistered: vec![PreRegistered {
            client_id: "m2m-basic".into(),
            method: "client_secret_basic",
            secret: Some("m2m-secret".into()),
            jwk: None,
            kid: None,
            client_credentials: true,
        }],
        ..Variant::default()
    })
    .await
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let secret = secret_file(work.path(), "m2m-secret");
    let run = sdk_client(
        "tools",
        &server.mcp_url,
        work.path(),
        NOBODY,
        &[
            "--client-credentials",
            "--client-id",
            "m2m-basic",
            "--client-secret-file",
            &secret,
        ],
    )
    .await;
    assert!(run.step("tool_call").is_object());
    assert_eq!(run.step("done")["sign_ins"], json!([]), "no browser");
    assert!(server.log_of("authorize").is_empty());
    let tokens = server.log_of("token");
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_eq!(tokens[0]["grant"], "client_credentials");
    assert_eq!(tokens[0]["auth"], "client_secret_basic");
    assert_eq!(tokens[0]["resource"], server.mcp_url.as_str());
    server.stop().await;

    for key_id in [None, Some("operator-chosen-kid")] {
        let (pem, jwk) = client_key();
        let kid = match key_id {
            Some(k) => k.to_string(),
            None => jwk
                .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
                .unwrap(),
        };
        let server = VariantServer::start(Variant {
            registration: false,
            preregistered: vec![PreRegistered {
                client_id: "m2m-jwt".into(),
                method: "private_key_jwt",
                secret: None,
                jwk: Some(jwk),
                kid: Some(kid),
                client_credentials: true,
            }],
            ..Variant::default()
        })
        .await
        .unwrap();
        let work = tempfile::tempdir().unwrap();
        let key_file = work.path().join("client-key.pem");
        std::fs::write(&key_file, pem).unwrap();
        let mut args = vec![
            "--client-credentials",
            "--client-id",
            "m2m-jwt",
            "--private-key-file",
            key_file.to_str().unwrap(),
        ];
        if let Some(k) = key_id {
            args.extend(["--key-id", k]);
        }
        let run = sdk_client("tools", &server.mcp_url, work.path(), NOBODY, &args).await;
        assert!(run.step("tool_call").is_object());
        let tokens = server.log_of("token");
        assert_eq!(tokens.len(), 1, "{tokens:?}");
        assert_eq!(tokens[0]["grant"], "client_credentials");
        assert_eq!(tokens[0]["auth"], "private_key_jwt", "kid {key_id:?}");
        server.stop().await;
    }
}

/// VmHWM (peak resident set) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

// The SSE parser is bounded: a remote that opens a line and never ends it gets the
// request answered with an error, its stream dropped, and connect stays small.
#[actix_web::test]
async fn an_endless_sse_line_is_cut_off_and_answered_with_an_error() {
    let server = VariantServer::start(Variant {
        auth: false,
        flood_tool: true,
        ..Variant::default()
    })
    .await
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let store = work.path().to_str().unwrap().to_string();
    let mut peer = StdioPeer::spawn(&[&server.mcp_url, "--token-store", &store], &[]).unwrap();
    peer.initialize(1).await.unwrap();
    let flood = peer
        .request(2, "tools/call", json!({"name": "flood", "arguments": {}}))
        .await
        .unwrap();
    assert!(
        flood["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("longer than")),
        "{flood}"
    );
    let sent = server.flood_sent();
    let rss = peak_rss_kib(peer.pid().unwrap());
    eprintln!(
        "flood: the server sent {} MiB before connect hung up; connect's peak RSS {} MiB",
        sent >> 20,
        rss >> 10
    );
    assert!(sent < FLOOD_LIMIT / 4, "connect kept reading: {sent} bytes");
    assert!(rss < 96 * 1024, "connect grew to {rss} KiB");
    // Still serving.
    let echo = peer
        .request(
            3,
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "after the flood"}}),
        )
        .await
        .unwrap();
    assert!(echo.to_string().contains("after the flood"), "{echo}");
    let (code, _) = peer.close().await.unwrap();
    assert_eq!(code, Some(0));
    server.stop().await;
}
