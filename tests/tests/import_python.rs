//! `mcp-gateway import-python`: the Python gateway's own auth service (PyPI
//! `mcp-oauth-dynamicclient` 0.2.0, from the pinned `.test-venv`) registers a
//! client through its real `/register` and issues refresh tokens into a real
//! Redis (as `bench/python_seed.py` does: the GitHub sign-in cannot run here,
//! so its lasting effect — the refresh-token record — is made by the
//! package's own `AuthManager`). Then our import runs, a dry run first, into
//! Redis and into the embedded store; our authorization server, started on
//! the imported store, accepts the same client id and secret and the same
//! refresh token (rotating it: the old one is then reuse). The Python keys
//! are never changed, and records that cannot be imported are reported.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command as Process;
use std::time::Duration;

use gateway_common::config::Source;
use gateway_store::{RedisStore, Store};
use gateway_testkit::oauth;
use gateway_testkit::process::Service;
use gateway_testkit::{repo_root, venv_bin, RedisServer};
use mcp_gateway::commands::{execute, Command};

const ISSUER: &str = "https://auth.import.example";
const RESOURCE: &str = "https://echo.import.example/mcp";
/// The GitHub user `bench/python_seed.py` signs in (`user_id`, `username`).
const PY_USER: (&str, &str) = ("4242", "bench");

/// The Python service's environment (its `Settings`), as `bench/run.sh` sets it.
fn python_env(redis_url: &str, rsa_key_b64: &str) -> Vec<(String, String)> {
    [
        ("HOME", "/nonexistent"),
        ("GITHUB_CLIENT_ID", "not-used"),
        ("GITHUB_CLIENT_SECRET", "not-used"),
        ("JWT_SECRET", "python-gateway-hs-secret-not-used-here"),
        ("JWT_ALGORITHM", "RS256"),
        ("JWT_PRIVATE_KEY_B64", rsa_key_b64),
        ("BASE_DOMAIN", "python.example"),
        ("REDIS_URL", redis_url),
        ("REDIS_PASSWORD", ""),
        ("ACCESS_TOKEN_LIFETIME", "3600"),
        ("REFRESH_TOKEN_LIFETIME", "2592000"),
        ("SESSION_TIMEOUT", "3600"),
        ("CLIENT_LIFETIME", "7776000"),
        ("ALLOWED_GITHUB_USERS", "*"),
        ("MCP_PROTOCOL_VERSION", "2025-06-18"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Runs the venv's Python with `args` in `cwd` (no `.env` there: its
/// settings would read one) and returns its stdout.
fn python(args: &[&str], env: &[(String, String)], cwd: &Path) -> String {
    let out = Process::new(venv_bin("python"))
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("the pinned test venv (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "python {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const RSA_KEY: &str = r#"
import base64
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
print(base64.b64encode(pem).decode())
"#;

/// The service as its CLI (`mcp-oauth-server`) runs it, on port 0 (uvicorn
/// prints the port it bound).
const SERVE: &str = r#"
import uvicorn
from mcp_oauth_dynamicclient.config import Settings
from mcp_oauth_dynamicclient.server import create_app
uvicorn.run(create_app(Settings()), host="127.0.0.1", port=0)
"#;

/// Every Python key with its value (GET, or the members of a set) and
/// whether it expires: compared before and after to show nothing changed.
async fn python_dump(py: &RedisStore) -> BTreeMap<String, (String, bool)> {
    let mut out = BTreeMap::new();
    for key in py.keys_with_prefix("oauth:").await.unwrap() {
        let value = if key.starts_with("oauth:user_tokens:") {
            let mut m = py.set_members(&key).await.unwrap();
            m.sort();
            m.join(",")
        } else {
            String::from_utf8(py.get(&key).await.unwrap().unwrap()).unwrap()
        };
        let expires = matches!(py.ttl(&key).await.unwrap(), Some(Some(_)));
        out.insert(key, (value, expires));
    }
    out
}

/// Our configuration: one MCP service, the store given by `store`.
fn our_source(store: &[(&str, String)]) -> Source {
    let src = Source::default()
        .with("AUTH_ISSUER", ISSUER)
        .with("AUTHZ_LISTEN", "127.0.0.1:0")
        .with("MCP_ECHO_ENABLED", "true")
        .with("MCP_ECHO_URL", RESOURCE)
        .with(
            "GATEWAY_JWT_SECRET",
            "import-test-secret-of-at-least-32-chars",
        );
    store.iter().fold(src, |s, (k, v)| s.with(k, v))
}

async fn import(src: &Source, from: &str, dry_run: bool) -> String {
    let out = execute(
        Command::ImportPython {
            from_redis: from.to_string(),
            from_redis_password: None,
            dry_run,
        },
        src,
        None,
        "operator:test",
    )
    .await
    .unwrap();
    assert_eq!(out.error, None, "{}", out.text);
    out.text
}

async fn token(
    http: &reqwest::Client,
    base: &str,
    form: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let r = oauth::token(http, base, form).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn claims(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// The Python side: its service, a registered client with two refresh
/// tokens, and the records that cannot be imported. Returns the seed's
/// credentials and the secrets that must never be printed.
struct PythonSide {
    _service: Service,
    client_id: String,
    client_secret: String,
    refresh_tokens: Vec<String>,
    expired_client: String,
    secrets: Vec<String>,
}

async fn python_side(redis: &RedisServer, work: &Path) -> PythonSide {
    let env = python_env(&redis.url(0), python(&["-c", RSA_KEY], &[], work).trim());
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let service = Service::start(&venv_bin("python"), &["-c", SERVE], &env_refs, work)
        .await
        .unwrap();
    let base = format!("http://{}", service.addr);
    // bench/python_seed.py: /register, two refresh tokens from the package's
    // AuthManager, then the live /token refresh grant and /verify answer 200.
    let creds = work.join("python-creds.json");
    let seed = repo_root().join("bench/python_seed.py");
    python(
        &[seed.to_str().unwrap(), &base, creds.to_str().unwrap(), "2"],
        &env,
        work,
    );
    let creds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&creds).unwrap()).unwrap();
    let client_id = creds["client_id"].as_str().unwrap().to_string();
    let client_secret = creds["client_secret"].as_str().unwrap().to_string();
    let refresh_tokens: Vec<String> = creds["refresh_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();

    // A second registration through the real /register, whose record then
    // says it expired (as after the Python gateway's CLIENT_LIFETIME was cut
    // while the key lived on); a refresh record of an unknown shape; one of a
    // client that is gone.
    let http = reqwest::Client::new();
    let body =
        serde_json::json!({"redirect_uris": ["http://127.0.0.1:9/cb"], "client_name": "stale"});
    let reg: serde_json::Value = oauth::register_raw(&http, &base, &body)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let expired_client = reg["client_id"].as_str().unwrap().to_string();
    let py = RedisStore::connect(&redis.url(0), None).await.unwrap();
    let key = format!("oauth:client:{expired_client}");
    let mut rec: serde_json::Value =
        serde_json::from_slice(&py.get(&key).await.unwrap().unwrap()).unwrap();
    rec["client_secret_expires_at"] = serde_json::json!(1_000_000);
    py.put(
        &key,
        &serde_json::to_vec(&rec).unwrap(),
        Some(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    let unknown = gateway_common::crypto::random_token(32);
    py.put(
        &format!("oauth:refresh:{unknown}"),
        br#"{"token_family": "v9", "sub": 4242}"#,
        Some(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    let orphan = gateway_common::crypto::random_token(32);
    py.put(
        &format!("oauth:refresh:{orphan}"),
        br#"{"user_id": "7", "username": "gone", "client_id": "client_deleted", "scope": "openid", "created_at": 1}"#,
        Some(Duration::from_secs(3600)),
    )
    .await
    .unwrap();

    let mut secrets = vec![
        client_secret.clone(),
        reg["client_secret"].as_str().unwrap().to_string(),
        reg["registration_access_token"]
            .as_str()
            .unwrap()
            .to_string(),
        unknown,
        orphan,
    ];
    secrets.extend(refresh_tokens.iter().cloned());
    PythonSide {
        _service: service,
        client_id,
        client_secret,
        refresh_tokens,
        expired_client,
        secrets,
    }
}

/// The whole migration into the store `store_vars` configures (`ours` opens
/// it for the checks in between, and is dropped before the server starts).
async fn migrate(store_vars: &[(&str, String)], redis: &RedisServer, work: &Path) {
    let side = python_side(redis, work).await;
    let py = RedisStore::connect(&redis.url(0), None).await.unwrap();
    let before = python_dump(&py).await;
    let from = redis.url(0);
    let src = our_source(store_vars);

    // Dry run: what would be imported and what cannot be; nothing written.
    let report = import(&src, &from, true).await;
    for secret in &side.secrets {
        assert!(
            !report.contains(secret.as_str()),
            "a secret was printed:\n{report}"
        );
    }
    assert!(
        report.contains(&format!("would import client {} (bench;", side.client_id)),
        "{report}"
    );
    let fam_line = format!(
        "of client {} for github:{} ({}",
        side.client_id, PY_USER.0, PY_USER.1
    );
    assert_eq!(report.matches(fam_line.as_str()).count(), 2, "{report}");
    assert!(
        report.contains(&format!(
            "not importable: oauth:client:{}: expired",
            side.expired_client
        )),
        "{report}"
    );
    assert!(report.contains("unknown record shape"), "{report}");
    assert!(
        report.contains("its client client_deleted is registered neither"),
        "{report}"
    );
    assert!(
        report.contains("not carried over: 1 oauth:token:* key(s)"),
        "{report}"
    );
    assert!(
        report.contains(
            "dry run: 1 client(s) and 2 refresh token(s) would be imported, 3 record(s) cannot be; nothing written"
        ),
        "{report}"
    );
    {
        let ours = gateway_store::config::open_from_config(&src).await.unwrap();
        assert_eq!(
            ours.keys_with_prefix("").await.unwrap(),
            Vec::<String>::new(),
            "the dry run wrote to our store"
        );
    }
    assert_eq!(
        python_dump(&py).await,
        before,
        "the dry run changed a Python key"
    );

    // The import, then again: the second run finds everything already here.
    let report = import(&src, &from, false).await;
    assert!(
        report.contains("imported 1 client(s) and 2 refresh token(s) (0 client(s) and 0 refresh token(s) were already here"),
        "{report}"
    );
    let again = import(&src, &from, false).await;
    assert!(
        again.contains("imported 0 client(s) and 0 refresh token(s) (1 client(s) and 2 refresh token(s) were already here"),
        "{again}"
    );
    for secret in &side.secrets {
        assert!(!report.contains(secret.as_str()) && !again.contains(secret.as_str()));
    }
    {
        // Hashed at rest: no secret or token in any of our records.
        let ours = gateway_store::config::open_from_config(&src).await.unwrap();
        for key in ours.keys_with_prefix("authz:").await.unwrap() {
            let raw = String::from_utf8_lossy(&ours.get(&key).await.unwrap().unwrap()).to_string();
            for secret in &side.secrets {
                assert!(!raw.contains(secret.as_str()) && !key.contains(secret.as_str()));
            }
        }
    }
    assert_eq!(
        python_dump(&py).await,
        before,
        "the import changed a Python key"
    );

    // Our authorization server on the imported store.
    let config = mcp_authz::Config::from_source(&src).unwrap();
    let store = gateway_store::config::open_from_config(&src).await.unwrap();
    let (addr, server) = mcp_authz::serve_with(config, store, gateway_common::clock::system())
        .await
        .unwrap();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let base = format!("http://{addr}");
    gateway_testkit::wait_for_http(&format!("{base}/ready"), Duration::from_secs(30))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let (id, secret) = (side.client_id.as_str(), side.client_secret.as_str());
    let (rt1, rt2) = (
        side.refresh_tokens[0].as_str(),
        side.refresh_tokens[1].as_str(),
    );

    // The same client id and secret authenticate; a wrong secret does not.
    let (status, body) = token(
        &http,
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", id),
            ("client_secret", "wrong"),
            ("refresh_token", rt1),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // The same refresh token works, and is rotated.
    let refresh = |rt: &str| {
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", id),
            ("client_secret", secret),
            ("refresh_token", rt),
        ]
        .map(|(k, v)| (k, v.to_string()));
        let (http, base) = (http.clone(), base.clone());
        async move {
            let r = http
                .post(format!("{base}/token"))
                .form(&form)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let (status, body) = refresh(rt1).await;
    assert_eq!(status, 200, "{body}");
    let c = claims(body["access_token"].as_str().unwrap());
    assert_eq!(c["sub"], format!("github:{}", PY_USER.0));
    assert_eq!(c["name"], PY_USER.1);
    assert_eq!(c["client_id"], id);
    assert_eq!(c["aud"], RESOURCE);
    assert_eq!(c["iss"], ISSUER);
    let rotated = body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rotated, rt1);
    // The old one again is reuse: refused, and the grant goes with it.
    let (status, body) = refresh(rt1).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _) = refresh(&rotated).await;
    assert_eq!(
        status, 400,
        "reuse of the old token revokes the whole grant"
    );
    // The other imported grant is its own family and still works.
    let (status, body) = refresh(rt2).await;
    assert_eq!(status, 200, "{body}");
    // The expired client was not brought over.
    let (status, body) = token(
        &http,
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", side.expired_client.as_str()),
            ("client_secret", "x"),
            ("refresh_token", rt2),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    // Still nothing changed on the Python side (its keys are only read).
    assert_eq!(python_dump(&py).await, before);
    handle.stop(true).await;
}

#[actix_web::test]
async fn python_registrations_and_refresh_tokens_work_here_after_import_into_redis() {
    let redis = RedisServer::start().await.unwrap();
    let work = tempfile::tempdir().unwrap();
    migrate(&[("REDIS_URL", redis.url(1))], &redis, work.path()).await;
}

#[actix_web::test]
async fn python_registrations_and_refresh_tokens_work_here_after_import_into_the_embedded_store() {
    let redis = RedisServer::start().await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let path = data.path().join("gateway.redb").display().to_string();
    migrate(
        &[
            ("STORE_PATH", path),
            (
                "KEY_ENCRYPTION_KEY_FILE",
                data.path().join("key-encryption.key").display().to_string(),
            ),
        ],
        &redis,
        work.path(),
    )
    .await;
}

/// With the embedded store of a running `mcp-gateway up`, the command runs
/// inside the gateway through its admin socket (as every operator command
/// does), and the imported grant then reaches the MCP server through our
/// verifier.
#[actix_web::test]
async fn import_into_a_running_up_goes_through_its_admin_socket() {
    let redis = RedisServer::start().await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let side = python_side(&redis, work.path()).await;
    let py = RedisStore::connect(&redis.url(0), None).await.unwrap();
    let before = python_dump(&py).await;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = gateway_tests::echo_up_args(data.clone());
    let running =
        mcp_gateway::up::start(&args, &Source::default(), gateway_common::clock::system())
            .await
            .unwrap();
    assert!(running.admin.is_some(), "up serves its admin socket");
    // The operator's side: only where the store is; the gateway brings the rest.
    let operator = Source::default().with(
        "STORE_PATH",
        &data.join("gateway.redb").display().to_string(),
    );
    let run = |dry_run| {
        let operator = operator.clone();
        let from = redis.url(0);
        async move {
            let command = Command::ImportPython {
                from_redis: from,
                from_redis_password: None,
                dry_run,
            };
            mcp_gateway::admin::forward_if_running(&command, &operator)
                .await
                .unwrap()
                .expect("the running gateway answers on its admin socket")
        }
    };
    let out = run(true).await;
    assert_eq!(out.error, None, "{}", out.text);
    assert!(
        out.text
            .contains("dry run: 1 client(s) and 2 refresh token(s) would be imported"),
        "{}",
        out.text
    );
    let out = run(false).await;
    assert_eq!(out.error, None, "{}", out.text);
    assert!(
        out.text
            .contains("imported 1 client(s) and 2 refresh token(s)"),
        "{}",
        out.text
    );
    for secret in &side.secrets {
        assert!(!out.text.contains(secret.as_str()));
    }

    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/token", running.issuer))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", side.client_id.as_str()),
            ("client_secret", side.client_secret.as_str()),
            ("refresh_token", side.refresh_tokens[0].as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["aud"], running.mcp_url.as_str());
    // Through the verifier to the MCP server.
    let status = http
        .post(&running.mcp_url)
        .bearer_auth(access)
        .header("accept", "application/json, text/event-stream")
        .json(
            &serde_json::json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
            "protocolVersion":"2025-06-18","capabilities":{},
            "clientInfo":{"name":"import-test","version":"1"}}}),
        )
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    assert_eq!(python_dump(&py).await, before);
    running.handle.stop(true).await;
}
