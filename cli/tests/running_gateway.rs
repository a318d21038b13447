//! The binary as an operator runs it next to a running `mcp-gateway up`.
//!
//! Signing keys across the quick start's own order of commands, with the
//! binary as an operator runs it (no variables, in the directory where `up`
//! keeps `./data`): `up`, `generate-secrets` (which adds
//! `GATEWAY_JWT_SECRET`), `rotate-keys`, `up` again, `generate-secrets
//! --force` — the keys stay readable throughout, no stray key file appears,
//! and a replacement the command cannot carry out safely (the gateway holds
//! the store) is refused, leaving `.env` as it was.
//!
//! Operator commands while `up` runs on its embedded store: they reach it
//! through the admin socket and print exactly what they print once it has
//! stopped; every change is in the audit log with who ran it.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gateway_common::config::Source;
use gateway_testkit::oauth;
use mcp_gateway::up::{self, UpArgs};

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcp-gateway"))
        .args(args)
        .current_dir(dir)
        .env_clear()
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

/// `.env` as the binary reads it.
fn env_of(dir: &Path) -> Source {
    let text = std::fs::read_to_string(dir.join(".env")).unwrap_or_default();
    Source::from_pairs(mcp_gateway::secrets::parse_env_text(&text))
}

/// The kids `/jwks` publishes.
async fn published_kids(issuer: &str) -> Vec<String> {
    let v: serde_json::Value = reqwest::get(format!("{issuer}/jwks"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

/// Runs `up` on `dir/data` with `dir/.env` in its own actix system (so the
/// store is released when it ends), and `during` while it serves; returns
/// the published kids and what `during` returned.
fn with_gateway<T: Send + 'static>(
    dir: &Path,
    during: impl FnOnce(&str) -> T + Send + 'static,
) -> (Vec<String>, T) {
    let data_dir: PathBuf = dir.join("data");
    let env = env_of(dir);
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let args = UpArgs {
                host: "127.0.0.1".into(),
                port: 0,
                data_dir,
                mcp_command: "builtin:echo".into(),
            };
            let running = up::start(&args, &env, gateway_common::clock::system())
                .await
                .unwrap();
            let kids = published_kids(&running.issuer).await;
            let issuer = running.issuer.clone();
            let out = tokio::task::spawn_blocking(move || during(&issuer))
                .await
                .unwrap();
            running.handle.stop(true).await;
            (kids, out)
        })
    })
    .join()
    .unwrap()
}

#[test]
fn generate_secrets_and_rotate_keys_never_orphan_the_signing_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();

    let (first, ()) = with_gateway(&dir, |_| ());
    assert_eq!(first.len(), 2, "current and next published: {first:?}");
    assert!(dir.join("data/key-encryption.key").exists());

    // The quick start's next step: secrets into .env.
    let out = stdout(&run(&dir, &["generate-secrets"]));
    assert!(out.contains("GATEWAY_JWT_SECRET: written"), "{out}");
    assert!(
        out.contains("re-seals them under GATEWAY_JWT_SECRET at its next start"),
        "{out}"
    );

    // rotate-keys on the `up` data directory, with no variables but .env.
    let out = stdout(&run(&dir, &["rotate-keys"]));
    assert!(
        out.starts_with("rotation scheduled: signing key ") || out.starts_with("rotated: "),
        "{out}"
    );
    for stray in [
        dir.join(mcp_authz::config::LEGACY_KEK_FILE_NAME),
        dir.join("data")
            .join(mcp_authz::config::LEGACY_KEK_FILE_NAME),
    ] {
        assert!(!stray.exists(), "stray {}", stray.display());
    }

    // `up` again, now with GATEWAY_JWT_SECRET: the same keys, readable.
    let (second, ()) = with_gateway(&dir, |_| ());
    assert_eq!(second[0], first[0], "the current key survived");
    assert!(second.contains(&first[1]), "{second:?}");

    // Replacing the secret re-seals the keys first.
    let before = std::fs::read_to_string(dir.join(".env")).unwrap();
    let out = stdout(&run(&dir, &["generate-secrets", "--force"]));
    assert!(out.contains("GATEWAY_JWT_SECRET: replaced"), "{out}");
    assert!(
        out.contains("re-sealed under the new GATEWAY_JWT_SECRET"),
        "{out}"
    );
    assert_ne!(std::fs::read_to_string(dir.join(".env")).unwrap(), before);
    let (third, ()) = with_gateway(&dir, |_| ());
    assert_eq!(third[0], first[0]);

    // While the gateway holds the store, a replacement cannot re-seal: refused,
    // naming the way out, and .env is left as it was.
    let before = std::fs::read_to_string(dir.join(".env")).unwrap();
    let d = dir.clone();
    let (_, refused) = with_gateway(&dir, move |_| run(&d, &["generate-secrets", "--force"]));
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("Stop the gateway") && err.contains("without --force"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(dir.join(".env")).unwrap(), before);
    let (fourth, ()) = with_gateway(&dir, |_| ());
    assert_eq!(fourth[0], first[0]);
}

/// Blocking HTTP from a `during` closure.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

async fn register(issuer: &str, name: &str) -> String {
    let body = serde_json::json!({
        "client_name": name,
        "redirect_uris": [oauth::LOOPBACK_REDIRECT],
        "token_endpoint_auth_method": "none",
    });
    let r = oauth::register_raw(&reqwest::Client::new(), issuer, &body)
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    v["client_id"].as_str().unwrap().to_string()
}

#[test]
fn operator_commands_work_while_up_runs_with_the_same_output() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let audit = dir.join("audit.jsonl");
    std::fs::write(
        dir.join(".env"),
        format!("AUDIT_LOG_FILE={}\n", audit.display()),
    )
    .unwrap();
    let d = dir.clone();
    let (_, live) = with_gateway(&dir, move |issuer| {
        let socket = d.join("data").join(mcp_gateway::admin::SOCKET_NAME);
        assert!(socket.exists());
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "only the gateway's user may connect");
        }
        let kept = block_on(register(issuer, "kept client"));
        let gone = block_on(register(issuer, "deleted client"));
        let deleted = stdout(&run(&d, &["clients", "delete", &gone]));
        assert!(deleted.starts_with("deleted 1 client(s)"), "{deleted}");
        let health = run(
            &d,
            &[
                "check-health",
                "--authz-url",
                issuer,
                "--verifier-url",
                issuer,
                "--bridge-url",
                issuer,
                "--bridge-url",
                issuer,
            ],
        );
        let health = String::from_utf8_lossy(&health.stdout).into_owned();
        let rotated = stdout(&run(&d, &["rotate-keys"]));
        let views: Vec<String> = [
            vec!["clients", "list"],
            vec!["clients", "show", kept.as_str()],
            vec!["tokens", "list"],
            vec!["flows"],
        ]
        .iter()
        .map(|args| stdout(&run(&d, args)))
        .collect();
        (kept, gone, health, rotated, views)
    });
    let (kept, gone, health, rotated, views) = live;
    assert!(
        health.contains("ok    store                        embedded reachable"),
        "{health}"
    );
    assert_eq!(
        health.matches("ok    ready: bridge").count(),
        2,
        "every --bridge-url is checked: {health}"
    );
    assert!(health.contains("ok    signing keys"), "{health}");
    assert!(
        rotated.starts_with("rotation scheduled: signing key ") || rotated.starts_with("rotated: "),
        "{rotated}"
    );
    assert!(
        views[0].contains(&kept) && !views[0].contains(&gone),
        "{}",
        views[0]
    );

    // The gateway has stopped: the same commands open the store themselves
    // and print the same.
    let socket = dir.join("data").join(mcp_gateway::admin::SOCKET_NAME);
    assert!(!socket.exists(), "the socket goes with the gateway");
    let direct: Vec<String> = [
        vec!["clients", "list"],
        vec!["clients", "show", kept.as_str()],
        vec!["tokens", "list"],
        vec!["flows"],
    ]
    .iter()
    .map(|args| stdout(&run(&dir, args)))
    .collect();
    assert_eq!(views, direct);

    // Who did what, when.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|l: &serde_json::Value| l["event"] == "operator_action")
        .collect();
    let delete = lines
        .iter()
        .find(|l| l["action"] == "clients delete")
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert_eq!(delete["target"], gone.as_str());
    assert!(delete["ts"].as_u64().is_some());
    let actor = delete["actor"].as_str().unwrap();
    assert!(
        actor.starts_with("operator:") && actor.contains("admin socket"),
        "{actor}"
    );
    assert!(
        lines.iter().any(|l| l["action"] == "rotate-keys"),
        "{lines:?}"
    );
}
