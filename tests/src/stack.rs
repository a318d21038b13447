//! The gateway's own services, in-process on loopback port 0, laid out for a
//! reverse proxy in front: authz-server(s), verifier(s) and one bridge, all
//! configured for ONE public origin (the proxy's), as a deployment behind
//! `deploy/{traefik,nginx,caddy}` is.
//!
//! * issuer (`AUTH_ISSUER`) = the proxy origin, `http://127.0.0.1:<proxy port>`;
//! * the MCP resource (`MCP_<NAME>_URL`) = origin + `/mcp`;
//! * verifiers fetch keys from an authz-server directly (`AUTHZ_URL`), never
//!   through the proxy;
//! * with [`StackSpec::redis`], every authz-server and verifier shares one real
//!   `redis-server` (`REDIS_URL`), the authz-servers one `GATEWAY_JWT_SECRET`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use gateway_common::config::Source;
use gateway_testkit::RedisServer;

/// The stdio MCP server behind the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McpServer {
    /// The bridge's built-in diagnostic server (`BRIDGE_COMMAND=builtin:echo`).
    Echo,
    /// `@modelcontextprotocol/server-everything` from tests/js (npm, pinned).
    Everything,
}

impl McpServer {
    pub fn name(self) -> &'static str {
        match self {
            McpServer::Echo => "builtin:echo",
            McpServer::Everything => "server-everything",
        }
    }

    /// The `MCP_<NAME>` the services are configured with.
    fn service(self) -> &'static str {
        match self {
            McpServer::Echo => "ECHO",
            McpServer::Everything => "EVERYTHING",
        }
    }

    fn command(self) -> anyhow::Result<String> {
        match self {
            McpServer::Echo => Ok("builtin:echo".into()),
            McpServer::Everything => {
                let script = gateway_testkit::js_dir()
                    .join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
                anyhow::ensure!(
                    script.exists(),
                    "{} is missing: run `bash scripts/test.sh` (npm ci)",
                    script.display()
                );
                Ok(format!("node {} stdio", script.display()))
            }
        }
    }
}

/// How many of each service, and whether they share a Redis.
#[derive(Debug, Clone, Copy)]
pub struct StackSpec {
    pub authz: usize,
    pub verifiers: usize,
    pub redis: bool,
    pub mcp: McpServer,
}

/// One authz-server instance.
#[derive(Debug)]
pub struct AuthzInstance {
    pub addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
}

/// Everything behind the proxy, running.
pub struct Stack {
    /// `http://127.0.0.1:<proxy port>`: the issuer and the MCP origin.
    pub origin: String,
    pub proxy_port: u16,
    pub authz: Vec<AuthzInstance>,
    pub verifiers: Vec<mcp_verifier::Running>,
    pub bridge: mcp_bridge::Serving,
    pub user: String,
    pub password: String,
    _redis: Option<RedisServer>,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("origin", &self.origin)
            .field("authz", &self.authz)
            .field("verifiers", &self.verifier_addrs())
            .field("bridge", &self.bridge.addr)
            .finish_non_exhaustive()
    }
}

/// The user the sign-in pages accept.
pub const TEST_USER: &str = "e2e-alice";

impl Stack {
    /// Starts the services for a proxy that will listen on `proxy_port`.
    pub async fn start(spec: StackSpec, proxy_port: u16) -> anyhow::Result<Self> {
        Self::start_with(spec, proxy_port, &[]).await
    }

    /// [`Stack::start`] with `extra` settings for every authz-server and verifier.
    pub async fn start_with(
        spec: StackSpec,
        proxy_port: u16,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let origin = format!("http://127.0.0.1:{proxy_port}");
        Self::start_at(spec, &origin, proxy_port, extra).await
    }

    /// The services for a proxy serving `origin` (scheme, host and the
    /// proxy's `proxy_port`), e.g. `https://mcp.example.com:PORT`; the
    /// bridge accepts that host.
    pub async fn start_at(
        spec: StackSpec,
        origin: &str,
        proxy_port: u16,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            spec.authz >= 1 && spec.verifiers >= 1,
            "at least one of each"
        );
        let dir = tempfile::tempdir()?;
        let origin = origin.to_string();
        let host = url::Url::parse(&origin)?
            .host_str()
            .context("the origin has a host")?
            .to_string();
        let resource = format!("{origin}/mcp");
        let service = spec.mcp.service();

        let users = dir.path().join("users");
        let password = mcp_gateway::users::generate_password();
        mcp_gateway::users::add_user(&users, TEST_USER, &password)?;

        let redis = if spec.redis {
            Some(RedisServer::start().await?)
        } else {
            None
        };
        // Shared by every instance: the signing keys live in Redis, encrypted with it.
        let jwt_secret = gateway_common::crypto::random_token(32);

        let common = |src: Source| {
            let src = src
                .with("AUTH_ISSUER", &origin)
                .with(&format!("MCP_{service}_ENABLED"), "true")
                .with(&format!("MCP_{service}_URL"), &resource);
            let src = extra.iter().fold(src, |src, (k, v)| src.with(k, v));
            match &redis {
                Some(r) => src.with("REDIS_URL", &r.url(0)),
                None => src,
            }
        };

        let mut authz = Vec::with_capacity(spec.authz);
        for i in 0..spec.authz {
            let data: PathBuf = dir.path().join(format!("authz-{i}"));
            std::fs::create_dir_all(&data)?;
            let mut src = common(Source::default())
                .with("AUTHZ_LISTEN", "127.0.0.1:0")
                .with("LOCAL_USERS_FILE", &users.display().to_string())
                .with(
                    "STORE_PATH",
                    &data.join("gateway.redb").display().to_string(),
                )
                .with(
                    "KEY_ENCRYPTION_KEY_FILE",
                    &data.join("key-encryption.key").display().to_string(),
                )
                // Test-only: the client's metadata document is served from loopback.
                .with("CIMD_ALLOW_PRIVATE", "true");
            if spec.redis {
                src = src.with("GATEWAY_JWT_SECRET", &jwt_secret);
            }
            let config =
                mcp_authz::Config::from_source(&src).map_err(|e| anyhow::anyhow!("{e}"))?;
            let store = gateway_store::config::open_from_config(&src)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            // One after the other: the first creates the signing key, the others load it.
            let (addr, server) =
                mcp_authz::serve_with(config, store, gateway_common::clock::system()).await?;
            let handle = server.handle();
            actix_web::rt::spawn(server);
            gateway_testkit::wait_for_http(
                &format!("http://{addr}/ready"),
                Duration::from_secs(20),
            )
            .await?;
            authz.push(AuthzInstance { addr, handle });
        }

        let mut verifiers = Vec::with_capacity(spec.verifiers);
        for i in 0..spec.verifiers {
            let src = common(Source::default())
                .with("VERIFIER_LISTEN", "127.0.0.1:0")
                .with("VERIFIER_WORKERS", "1")
                .with(
                    "AUTHZ_URL",
                    &format!("http://{}", authz[i % authz.len()].addr),
                );
            let config = mcp_verifier::VerifierConfig::from_source(&src)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            verifiers.push(mcp_verifier::serve(config).await?);
        }
        for v in &verifiers {
            gateway_testkit::wait_for_http(
                &format!("http://{}/ready", v.addr),
                Duration::from_secs(20),
            )
            .await
            .context("verifier ready (keys loaded, revocation feed up)")?;
        }

        let search_path =
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
        let src = Source::from_pairs([
            ("BRIDGE_LISTEN", "127.0.0.1:0".to_string()),
            ("BRIDGE_COMMAND", spec.mcp.command()?),
            // The proxy passes the client's Host on.
            ("BRIDGE_ALLOWED_HOSTS", host),
            ("PATH", search_path),
        ]);
        let config = mcp_bridge::Config::from_source(&src).map_err(|e| anyhow::anyhow!("{e}"))?;
        let bridge = mcp_bridge::serve(config).await?;
        gateway_testkit::wait_for_http(
            &format!("http://{}/health", bridge.addr),
            Duration::from_secs(20),
        )
        .await?;

        Ok(Self {
            origin,
            proxy_port,
            authz,
            verifiers,
            bridge,
            user: TEST_USER.to_string(),
            password,
            _redis: redis,
            _dir: dir,
        })
    }

    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.origin)
    }

    pub fn authz_addrs(&self) -> Vec<SocketAddr> {
        self.authz.iter().map(|a| a.addr).collect()
    }

    pub fn verifier_addrs(&self) -> Vec<SocketAddr> {
        self.verifiers.iter().map(|v| v.addr).collect()
    }

    /// Stops every service (the bridge ends its sessions and children).
    pub async fn stop(self) {
        let Stack {
            authz,
            verifiers,
            bridge,
            ..
        } = self;
        bridge.stop().await;
        for v in verifiers {
            v.stop().await;
        }
        for a in authz {
            a.handle.stop(false).await;
        }
    }
}

/// Sums the samples of every metric in a Prometheus text exposition whose name
/// starts with one of `prefixes` (comments skipped).
pub fn metric_sum(exposition: &str, prefixes: &[&str]) -> f64 {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| prefixes.iter().any(|p| l.starts_with(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
