//! The Grafana dashboard in deploy/grafana names only metrics the services
//! export: every query's metric names are looked up in a real scrape of the
//! three services (one-machine mode serves all three on one `/metrics`), after
//! traffic through each. Also: the verifier's decision counters and latency
//! count in `up` (the in-process guard records them as `/verify` does), and the
//! authz-server and the bridge have per-endpoint latency histograms.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::collections::BTreeSet;
use std::time::Duration;

use gateway_common::config::Source;
use gateway_testkit::oauth;
use mcp_gateway::up;

/// Every metric name a PromQL expression mentions (our three prefixes).
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let rest = &expr[i..];
        if starts_word
            && ["authz_", "mcp_verifier_", "mcp_bridge_"]
                .iter()
                .any(|p| rest.starts_with(p))
        {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.push(rest[..end].to_string());
            i += end;
        } else {
            i += 1;
        }
    }
    out
}

fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

/// Whether the exposition exports `name`: a sample of it, or its family's
/// `# TYPE` line of the matching kind (a labelled family without children yet).
fn exported(exposition: &str, name: &str) -> bool {
    let sample = exposition.lines().any(|l| {
        l.strip_prefix(name)
            .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
    });
    let typed = |base: &str, kind: &str| {
        exposition
            .lines()
            .any(|l| l == format!("# TYPE {base} {kind}"))
    };
    sample
        || name
            .strip_suffix("_total")
            .is_some_and(|b| typed(b, "counter"))
        || ["_bucket", "_count", "_sum"]
            .iter()
            .any(|s| name.strip_suffix(s).is_some_and(|b| typed(b, "histogram")))
        || typed(name, "gauge")
}

fn sample_value(exposition: &str, sample: &str) -> f64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {sample}"))
}

#[actix_web::test]
async fn every_dashboard_query_names_an_exported_metric() {
    let dir = tempfile::tempdir().unwrap();
    let args = gateway_tests::echo_up_args(dir.path().join("data"));
    let running = up::start(&args, &Source::default(), gateway_common::clock::system())
        .await
        .unwrap();
    let base = running.issuer.clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    // Traffic through each service: metadata and registration (authz), an
    // unauthenticated and a forged call to the MCP endpoint (verifier guard, bridge scope).
    for path in ["/.well-known/oauth-authorization-server", "/jwks"] {
        assert!(http
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap()
            .status()
            .is_success());
    }
    let body = serde_json::json!({"redirect_uris": ["http://127.0.0.1:4567/cb"], "token_endpoint_auth_method": "none"});
    let r = oauth::register_raw(&http, &base, &body).await.unwrap();
    assert_eq!(r.status(), 201);
    for auth in [None, Some("Bearer not.a.jwt")] {
        let mut rb = http
            .post(format!("{base}/mcp"))
            .header("accept", "application/json, text/event-stream")
            .json(&serde_json::json!({"jsonrpc":"2.0","id":1,"method":"ping"}));
        if let Some(a) = auth {
            rb = rb.header("authorization", a);
        }
        assert_eq!(rb.send().await.unwrap().status(), 401);
    }
    let exposition = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // The verifier's counters count in `up`.
    assert!(
        sample_value(
            &exposition,
            "mcp_verifier_decisions_total{reason=\"no_token\"}"
        ) >= 1.0,
        "{exposition}"
    );
    assert!(sample_value(&exposition, "mcp_verifier_verify_duration_seconds_count") >= 2.0);
    // Per-endpoint latency of the authz-server and the bridge.
    assert!(
        sample_value(
            &exposition,
            "authz_http_request_duration_seconds_count{endpoint=\"/register\"}"
        ) >= 1.0,
        "{exposition}"
    );
    assert!(
        exposition.lines().any(
            |l| l.starts_with("mcp_bridge_http_request_duration_seconds_count{endpoint=\"/mcp")
        ),
        "{exposition}"
    );

    let path = gateway_testkit::repo_root().join("deploy/grafana/mcp-gateway.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut all = Vec::new();
    exprs(&dashboard, &mut all);
    assert!(all.len() >= 20, "the dashboard has queries: {}", all.len());
    let names: BTreeSet<String> = all.iter().flat_map(|e| metric_names(e)).collect();
    for e in &all {
        assert!(
            !metric_names(e).is_empty(),
            "a query naming none of our metrics: {e}"
        );
    }
    let missing: Vec<&String> = names.iter().filter(|n| !exported(&exposition, n)).collect();
    assert!(
        missing.is_empty(),
        "dashboard queries name metrics nobody exports: {missing:?}"
    );
    // The check itself can fail: a name that is not exported is caught.
    assert!(!exported(&exposition, "authz_no_such_metric_total"));
    running.handle.stop(true).await;
}
