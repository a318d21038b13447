//! The `mcp-gateway` binary itself, configured only through its environment
//! (as an operator runs it), against both stores: rotate-keys, check-health,
//! backup/restore, clients, tokens and flows.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use common::*;
use gateway_common::config::Source;

const JWT_SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";

fn run(dir: &Path, env: &[(String, String)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcp-gateway"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn pairs(p: &[(&str, String)]) -> Vec<(String, String)> {
    p.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

async fn seed_through(env: &[(String, String)]) {
    let store = gateway_store::config::open_from_config(&Source::from_pairs(env.to_vec()))
        .await
        .unwrap();
    seed(&*store, now()).await;
}

#[tokio::test]
async fn operator_commands_through_the_binary_on_both_stores() {
    let stores = Stores::start().await;
    let Stores {
        dir,
        redis_server,
        embedded,
        redis,
    } = stores;
    drop((embedded, redis));
    let stores_view = StoresView { dir, redis_server };
    for (backend, env) in stores_view.environments("https://auth.example.test").await {
        seed_through(&env).await;
        let cwd = stores_view.dir.path();
        let out = stdout(&run(cwd, &env, &["clients", "list"]));
        assert!(out.contains("c-test\ttest-client-1"), "{backend}: {out}");
        let out = stdout(&run(cwd, &env, &["clients", "show", "c-claude"]));
        assert!(
            out.contains("consented users:  local:alice"),
            "{backend}: {out}"
        );
        let out = stdout(&run(cwd, &env, &["tokens", "list", "--user", "bob"]));
        assert!(
            out.contains("fam-b") && !out.contains("fam-a"),
            "{backend}: {out}"
        );
        let out = stdout(&run(cwd, &env, &["flows", "--client", "c-test"]));
        assert!(out.contains("never used it"), "{backend}: {out}");

        let file = cwd.join(format!("backup-{backend}.json"));
        let out = stdout(&run(
            cwd,
            &env,
            &["backup", "--out", file.to_str().unwrap()],
        ));
        assert!(out.contains("wrote 11 record(s)"), "{backend}: {out}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let refused = run(cwd, &env, &["restore", "--in", file.to_str().unwrap()]);
        assert_eq!(refused.status.code(), Some(2), "{backend}");
        assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
        let out = stdout(&run(
            cwd,
            &env,
            &["restore", "--in", file.to_str().unwrap(), "--force"],
        ));
        assert!(
            out.contains("restored 11 record(s) (11 replaced"),
            "{backend}: {out}"
        );

        let out = stdout(&run(cwd, &env, &["tokens", "revoke-user", "local:bob"]));
        assert!(
            out.contains("revoked 1 authorization(s) and 1 access token(s)"),
            "{backend}: {out}"
        );
        let out = stdout(&run(cwd, &env, &["tokens", "revoke", "jti-a2"]));
        assert!(
            out.contains("revoked access token jti-a2"),
            "{backend}: {out}"
        );
        let out = stdout(&run(cwd, &env, &["tokens", "purge-expired"]));
        assert!(out.contains("purged 0"), "{backend}: {out}");
        let out = stdout(&run(
            cwd,
            &env,
            &["clients", "delete-test", "--name-pattern", "test-*"],
        ));
        assert!(out.contains("deleted 1 client(s)"), "{backend}: {out}");
        let out = stdout(&run(cwd, &env, &["clients", "delete", "c-claude"]));
        assert!(out.contains("deleted 1 client(s)"), "{backend}: {out}");
        let out = stdout(&run(cwd, &env, &["clients", "list"]));
        assert_eq!(
            out.lines().count(),
            1,
            "{backend}: only the header is left: {out}"
        );
    }
}

/// What remains of [`Stores`] once its open stores are dropped.
struct StoresView {
    dir: tempfile::TempDir,
    redis_server: gateway_testkit::RedisServer,
}

impl StoresView {
    async fn environments(&self, issuer: &str) -> [(&'static str, Vec<(String, String)>); 2] {
        let embedded_path = self
            .dir
            .path()
            .join("gateway.redb")
            .to_str()
            .unwrap()
            .to_string();
        [
            (
                "embedded",
                pairs(&[
                    ("STORE_PATH", embedded_path),
                    ("AUTH_ISSUER", issuer.to_string()),
                ]),
            ),
            (
                "redis",
                pairs(&[
                    ("REDIS_URL", self.redis_server.url(1)),
                    ("GATEWAY_JWT_SECRET", JWT_SECRET.to_string()),
                    ("AUTH_ISSUER", issuer.to_string()),
                ]),
            ),
        ]
    }
}

/// A TLS server on localhost with a certificate valid for 30 days, made by
/// the openssl command line; it completes handshakes and closes.
async fn tls_server(dir: &Path) -> u16 {
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "key.pem",
            "-outform",
            "DER",
            "-out",
            "cert.der",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let ok = Command::new("openssl")
        .args([
            "pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER", "-out", "key.der",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(ok.status.success());
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let cert = CertificateDer::from(std::fs::read(dir.join("cert.der")).unwrap());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        std::fs::read(dir.join("key.der")).unwrap(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    port
}

// Multi-threaded: the binary runs (blocking) while in-process servers answer it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_keys_and_check_health_on_both_stores() {
    let Stores {
        dir,
        redis_server,
        embedded,
        redis,
    } = Stores::start().await;
    drop((embedded, redis));
    let view = StoresView { dir, redis_server };
    let tls_port = tls_server(view.dir.path()).await;
    // A running authorization server (its own embedded store) to be /ready.
    let authz_dir = tempfile::tempdir().unwrap();
    let authz_src = Source::from_pairs([
        ("AUTH_ISSUER", "http://127.0.0.1:1".to_string()),
        ("AUTHZ_LISTEN", "127.0.0.1:0".to_string()),
        (
            "STORE_PATH",
            authz_dir
                .path()
                .join("s.redb")
                .to_str()
                .unwrap()
                .to_string(),
        ),
    ]);
    let store = gateway_store::config::open_from_config(&authz_src)
        .await
        .unwrap();
    let config = mcp_authz::Config::from_source(&authz_src).unwrap();
    let (addr, server) = mcp_authz::serve_with(config, store, gateway_common::clock::system())
        .await
        .unwrap();
    tokio::spawn(server);
    let authz_url = format!("http://{addr}");

    let issuer = format!("https://localhost:{tls_port}");
    for (backend, mut env) in view.environments(&issuer).await {
        let cwd = view.dir.path();
        env.push(("MCP_EVERYTHING_ENABLED".into(), "true".into()));
        env.push(("MCP_EVERYTHING_URL".into(), "http://127.0.0.1:9/mcp".into()));

        // No keys yet: a warning, not a failure; the dead verifier URL fails.
        let o = run(
            cwd,
            &env,
            &[
                "check-health",
                "--authz-url",
                &authz_url,
                "--verifier-url",
                "http://127.0.0.1:9",
            ],
        );
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert_eq!(o.status.code(), Some(2), "{backend}: {text}");
        assert!(
            text.contains(&format!(
                "ok    store                        {backend} reachable"
            )),
            "{backend}: {text}"
        );
        assert!(text.contains("WARN  signing keys"), "{text}");
        assert!(text.contains("ok    ready: authz-server"), "{text}");
        assert!(text.contains("FAIL  ready: verifier"), "{text}");
        assert!(text.contains("skip  ready: bridge"), "{text}");
        assert!(text.contains("skip  tls: 127.0.0.1:9"), "{text}");
        let days = text
            .lines()
            .find(|l| l.contains(&format!("tls: localhost:{tls_port}")))
            .and_then(|l| l.split("expires in ").nth(1))
            .and_then(|r| r.split(' ').next())
            .and_then(|d| d.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{text}"));
        assert!((29..=30).contains(&days), "{days}");

        // rotate-keys creates nothing: no keys, no rotation (and no stray key file).
        let o = run(cwd, &env, &["rotate-keys"]);
        assert_eq!(o.status.code(), Some(2), "{backend}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("start the gateway once"),
            "{backend}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        // Keys as a gateway that started an hour ago left them: its `next`
        // key has been published long enough to sign at once.
        let src = Source::from_pairs(env.clone());
        let started = gateway_common::clock::system().now_secs() - 3600;
        {
            let store = gateway_store::config::open_from_config(&src).await.unwrap();
            let config = mcp_authz::Config::from_source(&src).unwrap();
            mcp_authz::keys::KeyManager::init(
                store,
                &config,
                gateway_common::clock::ManualClock::new(started),
            )
            .await
            .unwrap();
        }
        let out = stdout(&run(cwd, &env, &["rotate-keys"]));
        assert!(
            out.starts_with("rotated: new signing key "),
            "{backend}: {out}"
        );
        let kid = out.split_whitespace().nth(4).unwrap().to_string();
        // The key made `next` by that rotation has just been published: it
        // signs only once the verifiers can have fetched it.
        let out = stdout(&run(cwd, &env, &["rotate-keys"]));
        assert!(
            out.starts_with("rotation scheduled: signing key ") && !out.contains(&kid),
            "{backend}: {out}"
        );
        assert!(
            !cwd.join(mcp_authz::config::LEGACY_KEK_FILE_NAME).exists(),
            "{backend}: a stray key file"
        );

        let o = run(
            cwd,
            &env,
            &[
                "check-health",
                "--authz-url",
                &authz_url,
                "--tls-warn-days",
                "60",
            ],
        );
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "{backend}: {text}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(text.contains("ok    signing keys"), "{text}");
        assert!(
            text.contains(&format!("WARN  tls: localhost:{tls_port}")),
            "{text}"
        );
    }
    // The redis environment's key set is sealed with GATEWAY_JWT_SECRET: a wrong secret cannot open it.
    let env = view.environments(&issuer).await[1].1.clone();
    let env: Vec<_> = env
        .into_iter()
        .map(|(k, v)| {
            if k == "GATEWAY_JWT_SECRET" {
                (k, "another-secret-that-is-long-enough-000".into())
            } else {
                (k, v)
            }
        })
        .collect();
    let o = run(view.dir.path(), &env, &["rotate-keys"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot decrypt"));
}

#[test]
fn generate_secrets_edits_only_its_lines() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "# mine\nBASE_DOMAIN=example.com\n").unwrap();
    let out = stdout(&run(dir.path(), &[], &["generate-secrets"]));
    assert!(out.contains("GATEWAY_JWT_SECRET: written"), "{out}");
    let text = std::fs::read_to_string(dir.path().join(".env")).unwrap();
    assert!(
        text.starts_with("# mine\nBASE_DOMAIN=example.com\nGATEWAY_JWT_SECRET="),
        "{text}"
    );
    let out = stdout(&run(dir.path(), &[], &["generate-secrets"]));
    assert!(out.contains("already set, kept"), "{out}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join(".env")).unwrap(),
        text
    );
    let out = stdout(&run(dir.path(), &[], &["generate-secrets", "--force"]));
    assert!(out.contains("GATEWAY_JWT_SECRET: replaced"), "{out}");
    assert_ne!(
        std::fs::read_to_string(dir.path().join(".env")).unwrap(),
        text
    );
}
