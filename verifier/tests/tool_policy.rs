//! Per-tool authorization on the header path: `/verify` decides from
//! `Mcp-Method` / `Mcp-Name` (MCP 2026-07-28) with `TOOL_POLICY_FILE`, answers
//! a denial with a JSON-RPC error body, audits, counts, and reloads the file.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use gateway_common::config::Source;
use mcp_verifier::{Running, VerifierConfig};
use support::*;

const RESOURCE: &str = "https://echo.example.test/mcp";
/// The `idp` of a machine client's token (authz-server `client_credentials::MACHINE_IDP`).
const MACHINE_IDP: &str = "client";

const POLICY: &str = r#"
[services.echo]
default = "deny"

[[services.echo.rules]]
name = "no secrets for sre"
effect = "deny"
teams = ["acme/sre"]
tools = ["secret_*"]

[[services.echo.rules]]
effect = "allow"
users = ["octocat"]
tools = ["echo", "secret_*"]
"#;

struct Env {
    _authz: Authz,
    key: TestKey,
    verifier: Running,
    http: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Env {
    async fn start(policy: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("policy.toml"), policy).unwrap();
        eprintln!("dbg: start");
        let key = TestKey::generate("k1");
        let authz = Authz::start(jwks(&[&key])).await;
        let src = source(&authz, RESOURCE)
            .with(
                "TOOL_POLICY_FILE",
                path_str(&dir.path().join("policy.toml")),
            )
            .with("AUDIT_LOG_FILE", path_str(&dir.path().join("audit.jsonl")));
        let verifier = mcp_verifier::serve(VerifierConfig::from_source(&src).unwrap())
            .await
            .unwrap();
        eprintln!("dbg: serving");
        let http = reqwest::Client::new();
        let ready = format!("http://{}/ready", verifier.addr);
        assert!(
            eventually(Duration::from_secs(10), || async {
                http.get(&ready)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            })
            .await,
            "verifier never became ready"
        );
        Env {
            _authz: authz,
            key,
            verifier,
            http,
            dir,
        }
    }

    fn policy_path(&self) -> PathBuf {
        self.dir.path().join("policy.toml")
    }

    fn token(&self) -> String {
        self.key.sign(&claims(RESOURCE, now()))
    }

    /// A Traefik-style forwardAuth call carrying the client's mirrored headers.
    async fn verify(&self, token: &str, mcp: &[(&str, &str)]) -> reqwest::Response {
        let mut rb = self
            .http
            .get(format!("http://{}/verify", self.verifier.addr))
            .header("X-Forwarded-Method", "POST")
            .header("X-Forwarded-Proto", "https")
            .header("X-Forwarded-Host", "echo.example.test")
            .header("X-Forwarded-Uri", "/mcp")
            .bearer_auth(token);
        for (k, v) in mcp {
            rb = rb.header(*k, *v);
        }
        rb.send().await.unwrap()
    }

    fn audit_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            // The file also holds the security events (verify_denied, ...).
            .filter(|v| v["event"] == "tool_call")
            .collect()
    }

    /// The tool-call lines once there are `n` (the writer is asynchronous:
    /// a request never waits for the disk).
    async fn audit_lines_once(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let lines = self.audit_lines();
            if lines.len() >= n || std::time::Instant::now() > deadline {
                return lines;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn call(tool: &str) -> [(&'static str, &str); 2] {
    [("Mcp-Method", "tools/call"), ("Mcp-Name", tool)]
}

#[actix_web::test]
async fn a_denied_call_is_refused_at_the_verifier_with_a_json_rpc_error() {
    let env = Env::start(POLICY).await;
    let token = env.token();

    let r = env.verify(&token, &call("echo")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-user-name"], "octocat");

    for name in ["whoami", "=?base64?d2hvYW1p?="] {
        let r = env.verify(&token, &call(name)).await;
        assert_eq!(r.status(), 403, "{name}");
        assert_eq!(r.headers()["content-type"], "application/json");
        assert!(
            r.headers().get("www-authenticate").is_none(),
            "a new token would not help"
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["jsonrpc"], "2.0");
        assert!(body["id"].is_null(), "the verifier cannot see the id");
        assert_eq!(body["error"]["code"], -32003);
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tools/call \"whoami\""));
    }

    // The token's groups count here: the team's deny rule wins over the user's allow.
    let r = env.verify(&token, &call("secret_keys")).await;
    assert_eq!(r.status(), 403);

    // Lists and lifecycle pass (the bridge filters lists); a request without
    // the headers passes too (an older client: the bridge decides from the body).
    for mcp in [
        &[("Mcp-Method", "tools/list")][..],
        &[("Mcp-Method", "initialize")][..],
        &[][..],
    ] {
        assert_eq!(env.verify(&token, mcp).await.status(), 200, "{mcp:?}");
    }
    // A method the policy does not allow falls to the default.
    let r = env
        .verify(&token, &[("Mcp-Method", "completion/complete")])
        .await;
    assert_eq!(r.status(), 403);

    // A token problem is still the OAuth answer, not a policy one.
    let r = env.verify("not-a-token", &call("echo")).await;
    assert_eq!(r.status(), 401);

    let metrics = env
        .http
        .get(format!("http://{}/metrics", env.verifier.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("mcp_verifier_tool_policy_decisions_total{decision=\"deny\"} 4"),
        "{metrics}"
    );
    assert!(metrics.contains("mcp_verifier_decisions_total{reason=\"tool_denied\"} 4"));

    let audit = env.audit_lines_once(4).await;
    let calls: Vec<(&str, &str, &str)> = audit
        .iter()
        .filter(|a| a["method"] == "tools/call")
        .map(|a| {
            (
                a["tool"].as_str().unwrap(),
                a["decision"].as_str().unwrap(),
                a["rule"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        vec![
            ("echo", "allow", "rules[1]"),
            ("whoami", "deny", "default"),
            ("whoami", "deny", "default"),
            ("secret_keys", "deny", "no secrets for sre"),
        ]
    );
    for a in &audit {
        assert_eq!(a["source"], "verifier");
        assert_eq!(a["service"], "echo");
        assert_eq!(a["user_id"], "github:4242");
        assert_eq!(a["client_id"], "client-abc");
        assert!(a["latency_us"].is_u64());
    }
    env.verifier.stop().await;
}

#[actix_web::test]
async fn a_policy_change_takes_effect_without_restart() {
    let env = Env::start(POLICY).await;
    let token = env.token();
    assert_eq!(env.verify(&token, &call("whoami")).await.status(), 403);

    std::fs::write(
        env.policy_path(),
        POLICY.replace("tools = [\"echo\", ", "tools = [\"echo\", \"whoami\", "),
    )
    .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            env.verify(&token, &call("whoami")).await.status() == 200
        })
        .await,
        "the new policy never took effect"
    );
    // A broken file is refused at reload (counted); the policy in force stays.
    std::fs::write(env.policy_path(), "[[services.echo.rules]]\ntols = []\n").unwrap();
    let metrics = format!("http://{}/metrics", env.verifier.addr);
    assert!(
        eventually(Duration::from_secs(10), || async {
            let m = env
                .http
                .get(&metrics)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            m.contains("mcp_verifier_tool_policy_reloads_total{result=\"error\"} 1")
        })
        .await,
        "the broken file was never noticed"
    );
    assert_eq!(env.verify(&token, &call("whoami")).await.status(), 200);
    assert_eq!(env.verify(&token, &call("other")).await.status(), 403);
    // And back: the same cached token follows a second change too (its
    // per-token policy memo is recomputed for every new policy).
    std::fs::write(env.policy_path(), POLICY).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            env.verify(&token, &call("whoami")).await.status() == 403
        })
        .await,
        "the second change never took effect"
    );
    assert_eq!(env.verify(&token, &call("echo")).await.status(), 200);
    env.verifier.stop().await;
}

#[test]
fn a_bad_policy_file_stops_start_up_naming_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    let base = || {
        Source::from_pairs([
            ("AUTH_ISSUER", "https://auth.example.test"),
            ("MCP_ECHO_ENABLED", "true"),
            ("MCP_ECHO_URL", RESOURCE),
            ("TOOL_POLICY_FILE", path.to_str().unwrap()),
        ])
    };
    for (text, want) in [
        (
            "[[services.echo.rules]]\neffect='allow'\n[[services.echo.rules]]\neffect='deny'\ntols=['x']\n",
            "policy error: services.echo.rules[1]: unknown field \"tols\"",
        ),
        (
            "[services.ecko]\ndefault='deny'\n",
            "policy error: services.ecko: no MCP service",
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        let e = VerifierConfig::from_source(&base()).unwrap_err();
        assert_eq!(e.var, "TOOL_POLICY_FILE");
        let line = e.to_string();
        assert!(line.contains(want), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }
    std::fs::write(&path, POLICY).unwrap();
    assert!(VerifierConfig::from_source(&base()).is_ok());
}

/// A machine client (client credentials, issue 22) has no user: its token's
/// `sub` is its client id and its `idp` is `client`, exactly as the
/// authz-server's `machine_identity` writes them. A rule naming the client in
/// `clients` governs it; nobody else's token gets through that rule.
#[actix_web::test]
async fn a_rule_naming_a_machine_client_governs_its_calls() {
    const MACHINE: &str = r#"
[services.echo]
default = "deny"

[[services.echo.rules]]
name = "the nightly report bot"
effect = "allow"
clients = ["svc-report-bot"]
tools = ["report_*"]
"#;
    let env = Env::start(MACHINE).await;
    let now = now();
    let mut machine = claims(RESOURCE, now);
    machine.sub = "svc-report-bot".into();
    machine.client_id = "svc-report-bot".into();
    machine.name = "report bot".into();
    machine.email = None;
    machine.groups = vec![];
    machine.idp = Some(MACHINE_IDP.into());
    let machine = env.key.sign(&machine);
    // A user's token through another client: the rule does not name it.
    let user = env.token();

    let r = env.verify(&machine, &call("report_daily")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-client-id"], "svc-report-bot");
    assert_eq!(r.headers()["x-user-id"], "svc-report-bot");
    assert_eq!(env.verify(&machine, &call("echo")).await.status(), 403);
    assert_eq!(env.verify(&user, &call("report_daily")).await.status(), 403);
    env.verifier.stop().await;
}
