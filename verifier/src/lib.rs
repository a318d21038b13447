//! ForwardAuth token verifier for MCP services.
//!
//! A reverse proxy (Traefik `forwardAuth`, nginx `auth_request`, Caddy
//! `forward_auth`, ingress-nginx `auth-url`) asks `/verify` about every request
//! to an MCP endpoint. The answer is 2xx with the identity headers, 401 with an
//! RFC 9728 `WWW-Authenticate` challenge, 403, or 503 while the verifier cannot
//! vouch for revocations. No I/O happens per request: keys (JWKS) and revoked
//! token ids live in memory and are kept current by background tasks.
//!
//! # Using it
//!
//! * Stand-alone: [`serve`] parses nothing, binds (port 0 allowed) and returns
//!   the address; `main.rs` is config + `serve`.
//! * Mounted in a larger actix `App`: [`start`] spawns the background tasks and
//!   returns the shared [`Verifier`]; then `App::new().configure(configure(v))`
//!   (or [`http::configure_verify`] for `/verify` alone).
//! * In-process guard (the one-machine launcher in front of the bridge, no
//!   proxy hop): build a [`ForwardedRequest`] from the incoming request and call
//!   [`Verifier::check`], which returns a [`Decision`]: `Allow` with the
//!   [`identity::Identity`] to pass on, or `Deny` with a [`decision::Denial`]
//!   whose [`decision::Denial::render`] gives status, `WWW-Authenticate` and body.
//!
//!   ```no_run
//!   # async fn demo(config: mcp_verifier::VerifierConfig, authorization: &[u8]) {
//!   use mcp_verifier::{AuthorizationHeader, Decision, ForwardedRequest};
//!   let (verifier, _tasks) = mcp_verifier::start(config, gateway_common::clock::system());
//!   let req = ForwardedRequest {
//!       method: "POST",
//!       proto: "https",
//!       host: "echo.example.com",
//!       uri: "/mcp",
//!       authorization: AuthorizationHeader::One(authorization),
//!       cors_preflight: false,
//!       wants_html: false,
//!   };
//!   match verifier.check(&req) {
//!       // Pass `allowed.who.identity()` on as the identity headers.
//!       Decision::Allow(allowed) => drop(allowed.who.identity().user_id.clone()),
//!       // Status, WWW-Authenticate and body for the client.
//!       Decision::Deny(denial) => drop(denial.render(true)),
//!   }
//!   # }
//!   ```
//!
//! # Failure modes (chosen to keep users safe)
//! * Keys not loaded yet, or the revocation feed silent for longer than
//!   `REVOCATION_STALENESS_BOUND`: 503 with `Retry-After` (fail closed; a 401
//!   would send clients through a new sign-in for a problem that is ours), and
//!   `/ready` answers 503 with the reason. A request without any token still
//!   gets its 401 challenge, so discovery keeps working.
//! * Forwarded headers from an address outside `TRUSTED_PROXIES` are ignored.

pub mod cache;
pub mod config;
pub mod decision;
pub mod dpop;
pub mod feed;
pub mod feed_redis;
pub mod first_use;
pub mod forwarded;
pub mod http;
pub mod identity;
pub mod jwks;
pub mod jwt;
pub mod metrics;
pub mod negative;
pub mod policy;
pub mod revoked;
pub mod service;
pub mod token;
pub mod tool_policy;
pub mod tool_policy_reload;
pub mod verifier;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use gateway_common::clock::SharedClock;

pub use config::VerifierConfig;
pub use decision::{Decision, Denial, Deny};
pub use dpop::ProofHeader;
pub use forwarded::{AuthorizationHeader, ForwardedRequest};
pub use http::configure;
pub use verifier::Verifier;

/// The background tasks of a verifier; dropped, they stop.
#[derive(Debug)]
pub struct BackgroundTasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for BackgroundTasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Creates the verifier and spawns its background tasks (JWKS loading and
/// refresh, the revocation feed, pruning) on the current tokio runtime.
pub fn start(config: VerifierConfig, clock: SharedClock) -> (Arc<Verifier>, BackgroundTasks) {
    start_verifier(Verifier::new(config, clock))
}

/// [`start`] for a verifier built by the caller (e.g. with
/// [`metrics::Metrics::not_recording`], to measure what metrics cost).
pub fn start_verifier(verifier: Verifier) -> (Arc<Verifier>, BackgroundTasks) {
    let verifier = Arc::new(verifier);
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .build()
        .unwrap_or_default();
    let mut tasks = vec![
        tokio::spawn(jwks::run(Arc::clone(&verifier), client.clone())),
        tokio::spawn(feed::run_prune(
            Arc::clone(&verifier),
            Duration::from_secs(60),
        )),
    ];
    if let Some(tp) = &verifier.config().tool_policy {
        tasks.push(tokio::spawn(tool_policy_reload::run(
            Arc::clone(&verifier),
            tp.path.clone(),
        )));
    }
    let redis = verifier
        .config()
        .redis_url
        .clone()
        .map(gateway_store::RedisStore::from_url);
    match redis {
        Some(Ok(store)) => {
            let store = Arc::new(store);
            // Proof jtis are claimed in Redis too: a replay to another replica fails.
            verifier.dpop().set_shared(store.clone());
            if let Some(t) = verifier.spawn_first_use_writer(store.clone()) {
                tasks.push(t);
            }
            tasks.push(tokio::spawn(feed_redis::run(Arc::clone(&verifier), store)));
        }
        Some(Err(e)) => {
            // The URL was checked with the config; a pool that cannot be built
            // leaves the feed stale, so the verifier fails closed and says so.
            tracing::error!(error = %e, "cannot use REDIS_URL; revocation feed down");
        }
        None => tasks.push(tokio::spawn(feed::run_http(Arc::clone(&verifier), client))),
    }
    (verifier, BackgroundTasks(tasks))
}

/// A running verifier server.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub verifier: Arc<Verifier>,
    handle: actix_web::dev::ServerHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    in_flight: gateway_common::lifecycle::InFlight,
    shutdown_timeout: Duration,
    shutdown_delay: Duration,
    _tasks: BackgroundTasks,
}

impl Running {
    /// Stops accepting, finishes in-flight requests, stops the background tasks.
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }

    /// Responses in flight, and the way out of rotation before a stop
    /// ([`gateway_common::lifecycle::InFlight::leave`]).
    pub fn in_flight(&self) -> &gateway_common::lifecycle::InFlight {
        &self.in_flight
    }

    /// The binary's stop (SIGTERM): out of rotation for `SHUTDOWN_DELAY`,
    /// then stop accepting, let requests in flight finish within
    /// `SHUTDOWN_TIMEOUT`, drop the rest, stop the background tasks.
    pub async fn drain(self) {
        gateway_common::lifecycle::leave_rotation(&self.in_flight, self.shutdown_delay).await;
        gateway_common::lifecycle::drain(
            &self.handle,
            &self.in_flight,
            self.shutdown_timeout,
            || {},
        )
        .await;
    }

    /// Runs until the server stops.
    pub async fn wait(self) -> anyhow::Result<()> {
        let Running { server, _tasks, .. } = self;
        server.await.context("verifier server task")??;
        Ok(())
    }
}

/// Binds `config.listen` (port 0 allowed), serves, returns the bound address.
pub async fn serve(config: VerifierConfig) -> anyhow::Result<Running> {
    serve_with_clock(config, gateway_common::clock::system()).await
}

/// [`serve`] with an injected clock (virtual time in tests).
pub async fn serve_with_clock(
    config: VerifierConfig,
    clock: SharedClock,
) -> anyhow::Result<Running> {
    let listen = config.listen;
    let shutdown_timeout = config.shutdown_timeout;
    let shutdown_delay = config.shutdown_delay;
    let workers = match config.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let (verifier, tasks) = start(config, clock);
    let app_verifier = Arc::clone(&verifier);
    let in_flight = gateway_common::lifecycle::InFlight::default();
    let app_in_flight = in_flight.clone();
    let server = actix_web::HttpServer::new(move || {
        // `/verify` outside the request logger: a span and a request id per
        // request cost more than the decision itself, and a decision logs
        // nothing at the default level (denials go to the audit log).
        actix_web::App::new()
            .app_data(app_in_flight.clone())
            .wrap(gateway_common::lifecycle::Track)
            .configure(http::configure_verify(Arc::clone(&app_verifier)))
            .service(
                actix_web::web::scope("")
                    .wrap(gateway_common::logging::request_logger())
                    .configure(http::configure_probes(Arc::clone(&app_verifier))),
            )
    })
    .workers(workers)
    .disable_signals()
    .shutdown_timeout(shutdown_timeout.as_secs())
    .bind(listen)
    .with_context(|| format!("binding VERIFIER_LISTEN={listen}"))?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .context("the server bound no address")?;
    let server = server.run();
    let handle = server.handle();
    let server = tokio::spawn(server);
    tracing::info!(%addr, "verifier listening");
    Ok(Running {
        addr,
        verifier,
        handle,
        server,
        in_flight,
        shutdown_timeout,
        shutdown_delay,
        _tasks: tasks,
    })
}
