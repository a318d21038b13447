//! `mcp-gateway check-health`: configuration, store, signing keys, every
//! service's `/ready`, TLS certificate expiry of the configured https hosts.

use std::fmt::Write as _;
use std::time::Duration;

use gateway_common::config::Source;
use url::Url;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

fn check(name: impl Into<String>, status: Status, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        status,
        detail: detail.into(),
    }
}

#[derive(Debug, Clone)]
pub struct HealthOptions {
    /// Base URLs whose `/ready` is checked; `None` = from config.
    pub authz_url: Option<String>,
    pub verifier_url: Option<String>,
    /// Every bridge (empty = `BRIDGE_URL`, a comma-separated list).
    pub bridge_urls: Vec<String>,
    /// The store of the running gateway (asked through its admin socket);
    /// `None` opens the configured one.
    pub store: Option<std::sync::Arc<dyn gateway_store::Store>>,
    /// Certificates closer than this to expiry are a warning.
    pub tls_warn_days: u64,
    pub timeout: Duration,
}

impl Default for HealthOptions {
    fn default() -> Self {
        Self {
            authz_url: None,
            verifier_url: None,
            bridge_urls: Vec::new(),
            store: None,
            tls_warn_days: 14,
            timeout: Duration::from_secs(5),
        }
    }
}

pub async fn check_health(src: &Source, opts: &HealthOptions, now: u64) -> Vec<Check> {
    let mut out = Vec::new();

    // Configuration, as each service would parse it.
    let authz = mcp_authz::Config::from_source(src);
    out.push(match &authz {
        Ok(c) => check(
            "config: authz-server",
            Status::Ok,
            format!("issuer {}", c.issuer),
        ),
        Err(e) => check("config: authz-server", Status::Fail, e.to_string()),
    });
    out.push(match mcp_verifier::VerifierConfig::from_source(src) {
        Ok(_) => check("config: verifier", Status::Ok, "valid"),
        Err(e) => check(
            "config: verifier",
            Status::Warn,
            format!("{e} (fine if no verifier runs with this configuration)"),
        ),
    });
    out.push(match mcp_bridge::Config::from_source(src) {
        Ok(_) => check("config: bridge", Status::Ok, "valid"),
        Err(e) => check(
            "config: bridge",
            Status::Warn,
            format!("{e} (fine if no bridge runs with this configuration)"),
        ),
    });

    // Store and keys.
    let store = match &opts.store {
        Some(s) => Ok(s.clone()),
        None => gateway_store::config::open_from_config(src).await,
    };
    match store {
        Err(e) => out.push(check("store", Status::Fail, e.to_string())),
        Ok(store) => match store.ping().await {
            Err(e) => out.push(check(
                "store",
                Status::Fail,
                format!("{} unreachable: {e}", store.backend()),
            )),
            Ok(()) => {
                out.push(check(
                    "store",
                    Status::Ok,
                    format!("{} reachable", store.backend()),
                ));
                out.push(match store.get(mcp_authz::keys::KEYS_RECORD).await {
                    Ok(Some(_)) => check("signing keys", Status::Ok, "present (sealed)"),
                    Ok(None) => check(
                        "signing keys",
                        Status::Warn,
                        "none yet: the authorization server creates them on first start",
                    ),
                    Err(e) => check("signing keys", Status::Fail, e.to_string()),
                });
            }
        },
    }

    // Readiness of each service.
    let client = reqwest::Client::builder()
        .timeout(opts.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build();
    let authz_url = opts
        .authz_url
        .clone()
        .or_else(|| src.get("AUTHZ_URL").map(str::to_string))
        .or_else(|| authz.as_ref().ok().map(|c| c.issuer.clone()));
    let bridges = if opts.bridge_urls.is_empty() {
        src.list("BRIDGE_URL")
    } else {
        opts.bridge_urls.clone()
    };
    let mut services = vec![
        ("authz-server", authz_url),
        (
            "verifier",
            opts.verifier_url
                .clone()
                .or_else(|| src.get("VERIFIER_URL").map(str::to_string)),
        ),
    ];
    if bridges.is_empty() {
        services.push(("bridge", None));
    }
    services.extend(bridges.into_iter().map(|b| ("bridge", Some(b))));
    for (name, base) in services {
        let label = format!("ready: {name}");
        let Some(base) = base else {
            out.push(check(
                label,
                Status::Skip,
                "no URL configured (flag or env)",
            ));
            continue;
        };
        let url = format!("{}/ready", base.trim_end_matches('/'));
        out.push(match &client {
            Err(e) => check(label, Status::Fail, format!("HTTP client: {e}")),
            Ok(c) => match c.get(&url).send().await {
                Ok(r) if r.status().is_success() => {
                    check(label, Status::Ok, format!("{url} {}", r.status()))
                }
                Ok(r) => check(
                    label,
                    Status::Fail,
                    format!("{url} answered {}", r.status()),
                ),
                Err(e) => check(label, Status::Fail, format!("{url}: {}", without_url(&e))),
            },
        });
    }

    // Certificates of the configured public hosts.
    for url in public_urls(src, authz.as_ref().ok()) {
        out.push(tls_check(&url, opts, now).await);
    }
    out
}

/// The error with its causes ("connection refused"), without repeating the URL.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(&format!(" ({u})"), "");
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// The issuer and every enabled service's resource URL, one per host:port.
pub fn public_urls(src: &Source, authz: Option<&mcp_authz::Config>) -> Vec<Url> {
    let mut raw: Vec<String> = Vec::new();
    if let Some(c) = authz {
        raw.push(c.issuer.clone());
    } else if let Some(i) = src.get("AUTH_ISSUER") {
        raw.push(i.to_string());
    }
    if let Ok(names) = src.enabled_services() {
        for name in names {
            let var = format!("MCP_{}_URL", name.to_ascii_uppercase());
            match (src.get(&var), src.get("BASE_DOMAIN")) {
                (Some(u), _) => raw.push(u.to_string()),
                (None, Some(d)) => raw.push(gateway_common::config::service_url(&name, d)),
                (None, None) => {}
            }
        }
    }
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for r in raw {
        if let Ok(u) = Url::parse(&r) {
            let id = (
                u.scheme().to_string(),
                u.host_str().map(str::to_string),
                u.port_or_known_default(),
            );
            if !seen.contains(&id) {
                seen.push(id);
                out.push(u);
            }
        }
    }
    out
}

async fn tls_check(url: &Url, opts: &HealthOptions, now: u64) -> Check {
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let label = format!("tls: {host}:{port}");
    if url.scheme() != "https" {
        return check(label, Status::Skip, "http: no certificate");
    }
    match crate::tls::certificate_not_after(&host, port, opts.timeout).await {
        Err(e) => check(label, Status::Fail, format!("{e:#}")),
        Ok(not_after) if not_after <= now => check(
            label,
            Status::Fail,
            format!(
                "certificate EXPIRED {} day(s) ago",
                (now - not_after) / 86_400
            ),
        ),
        Ok(not_after) => {
            let days = (not_after - now) / 86_400;
            let status = if days < opts.tls_warn_days {
                Status::Warn
            } else {
                Status::Ok
            };
            check(
                label,
                status,
                format!("certificate expires in {days} day(s)"),
            )
        }
    }
}

pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let s = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        };
        let _ = writeln!(out, "{s}  {:<28} {}", c.name, c.detail);
    }
    out
}

/// Healthy when nothing failed (warnings and skips are allowed).
pub fn healthy(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.status != Status::Fail)
}
