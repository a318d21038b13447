//! OAuth 2.1 authorization server for MCP.
//!
//! Layers, each importing only those below it:
//! * [`protocol`]: OAuth decisions as plain functions over plain types (no
//!   actix, no store; `tests/tests/architecture.rs` checks it);
//! * services over the store: [`issue`] (codes, tokens, refresh families),
//!   [`keys`] (signing keys), [`admin`] (operator actions), [`cimd`] (client
//!   metadata documents), [`budgets`] and [`limits`] (rate limits), [`signin`]
//!   (identity providers), with [`state`] holding them together;
//! * [`http`]: thin actix-web adapters that read requests, call the layers
//!   above and write responses; errors become HTTP once, in `http::error`.
//!
//! Embedding: [`build_state`] then [`http::configure`] mounts every route on
//! any actix `App` (the one-machine launcher does this); [`serve`] binds its
//! own listener and returns the bound address.

pub mod admin;
pub mod budgets;
pub mod cimd;
pub mod config;
pub mod html;
pub mod http;
pub mod issue;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod protocol;
pub mod signer;
pub mod signin;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use futures_util::StreamExt;
use gateway_common::clock::SharedClock;
use gateway_common::revocation::{RevocationEvent, REVOCATION_CHANNEL};
use gateway_store::Store;
use tokio::sync::broadcast;

pub use config::Config;
pub use http::configure;
pub use state::AppState;

/// Builds the shared state: loads (or creates) the signing keys, the identity
/// providers, and subscribes to the revocation channel. Spawns the background
/// tasks on the current runtime.
pub async fn build_state(
    config: Config,
    store: Arc<dyn Store>,
    clock: SharedClock,
) -> anyhow::Result<AppState> {
    let keys = Arc::new(keys::KeyManager::init(store.clone(), &config, clock.clone()).await?);
    let mut providers: Vec<Arc<dyn signin::IdentityProvider>> = Vec::new();
    // GitHub first: it is the default, as in the Python gateway.
    if let Some(gh) = &config.github {
        providers.push(Arc::new(signin::github::GitHub::new(
            gh.clone(),
            store.clone(),
            keys.clone(),
            clock.clone(),
            &config.issuer,
            config.session_timeout,
        )?));
    }
    if let Some(oidc) = &config.oidc {
        providers.push(Arc::new(signin::oidc::Oidc::new(
            oidc.clone(),
            store.clone(),
            &config.issuer,
            config.session_timeout,
            keys.clone(),
            clock.clone(),
        )?));
    }
    if let Some(path) = &config.local_users_file {
        providers.push(Arc::new(signin::local::LocalUsers::new(path)));
    }
    warn_without_sign_in(&config);
    let cimd = cimd::CimdResolver::new(config.cimd_allow_private, clock.clone())?;
    let rate_limits =
        budgets::RateLimiter::new(budgets::Limits::from_source(&config.source)?, clock.clone());
    let (tx, _) = broadcast::channel(1024);
    // Subscribe before serving, so no revocation made after start-up is missed by the SSE feed.
    let first = store.subscribe(REVOCATION_CHANNEL).await?;
    spawn_revocation_relay(store.clone(), tx.clone(), first);
    // Every KEY_RELOAD_INTERVAL: rotations by other instances, scheduled rotation.
    keys.clone().spawn_upkeep();
    let audit_file = config
        .source
        .get("AUDIT_LOG_FILE")
        .map(std::path::PathBuf::from);
    let audit = gateway_common::audit::AuditLog::open("authz", audit_file.as_deref())
        .map_err(|e| anyhow::anyhow!("AUDIT_LOG_FILE cannot be opened: {e}"))?;
    let state = AppState(Arc::new(state::Inner {
        config,
        store,
        keys,
        clock,
        providers,
        cimd,
        metrics: metrics::Metrics::new(),
        revocations: tx,
        rate_limits,
        audit,
        feed_subscribers: Default::default(),
        flow_recorded: Default::default(),
        in_flight: Default::default(),
        closing: tokio::sync::watch::channel(false).0,
    }));
    spawn_limit_upkeep(Arc::downgrade(&state.0));
    Ok(state)
}

/// Nobody can sign in without a method: say so at start-up, not only as a 503
/// at `/signin` when the first user tries.
fn warn_without_sign_in(config: &Config) {
    let local_users = config.local_users_file.as_ref().map(|path| {
        let users = std::fs::read_to_string(path)
            .map(|text| signin::local::parse_users(&text).len())
            .unwrap_or(0);
        (path, users)
    });
    if config.github.is_some() || config.oidc.is_some() {
        return;
    }
    match local_users {
        None => tracing::warn!(
            "NO SIGN-IN METHOD IS CONFIGURED: every sign-in will fail. Add a local user \
             (`mcp-gateway add-user NAME`, which writes {}), or set LOCAL_USERS_FILE, \
             GITHUB_CLIENT_ID or OIDC_ISSUER",
            gateway_common::config::DEFAULT_LOCAL_USERS_FILE
        ),
        Some((path, 0)) => tracing::warn!(
            file = %path.display(),
            "NO USER CAN SIGN IN YET: LOCAL_USERS_FILE has no users (it is read again \
             when it changes: `mcp-gateway add-user NAME --file {}`)",
            path.display()
        ),
        Some(_) => {}
    }
}

/// How often limiter tables forget keys whose budgets have refilled.
pub const LIMIT_UPKEEP_EVERY: Duration = Duration::from_secs(30);

/// Prunes the limiter tables until the state is dropped.
fn spawn_limit_upkeep(state: std::sync::Weak<state::Inner>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(LIMIT_UPKEEP_EVERY);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(state) = state.upgrade() else { return };
            state.rate_limits.prune();
        }
    });
}

/// Forwards store revocation events to in-process SSE subscribers; resubscribes
/// when the store connection drops.
fn spawn_revocation_relay(
    store: Arc<dyn Store>,
    tx: broadcast::Sender<RevocationEvent>,
    first: futures_util::stream::BoxStream<'static, Vec<u8>>,
) {
    tokio::spawn(async move {
        let mut stream = Some(first);
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut s = match stream.take() {
                Some(s) => s,
                None => match store.subscribe(REVOCATION_CHANNEL).await {
                    Ok(s) => {
                        backoff = Duration::from_millis(100);
                        s
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "revocation subscription failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                },
            };
            while let Some(raw) = s.next().await {
                if let Ok(ev) = serde_json::from_slice::<RevocationEvent>(&raw) {
                    let _ = tx.send(ev);
                }
            }
            if tx.receiver_count() == 0 && tx.is_empty() && store.ping().await.is_err() {
                tokio::time::sleep(backoff).await;
            }
        }
    });
}

/// Binds `config.listen` (port 0 allowed) and serves the authorization
/// server; returns the bound address and the server (await it, or spawn it).
pub async fn serve_with(
    config: Config,
    store: Arc<dyn Store>,
    clock: SharedClock,
) -> anyhow::Result<(SocketAddr, actix_web::dev::Server)> {
    let state = build_state(config, store, clock).await?;
    serve_state(state)
}

/// Serves an already built state on its configured listen address.
pub fn serve_state(state: AppState) -> anyhow::Result<(SocketAddr, actix_web::dev::Server)> {
    let listen = state.config.listen;
    let listener = std::net::TcpListener::bind(listen)
        .map_err(|e| anyhow::anyhow!("AUTHZ_LISTEN={listen} cannot be bound: {e}"))?;
    serve_listener(state, listener)
}

/// Serves an already built state on a listener bound by the caller (who may
/// have bound port 0 to learn the port before configuring the issuer).
pub fn serve_listener(
    state: AppState,
    listener: std::net::TcpListener,
) -> anyhow::Result<(SocketAddr, actix_web::dev::Server)> {
    let workers = match state.config.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let budget = http::connections::Budget::new(&state.config, workers);
    let max_connections = budget.total();
    let shutdown_timeout = state.config.shutdown_timeout;
    let server = HttpServer::new(move || {
        let state = state.clone();
        App::new()
            .app_data(state.in_flight.clone())
            .wrap(gateway_common::lifecycle::Track)
            .app_data(web::Data::new(state.metrics.latency.clone()))
            .wrap(actix_web::middleware::from_fn(
                gateway_common::http_metrics::record,
            ))
            .wrap(gateway_common::logging::request_logger())
            .configure(move |cfg| http::configure(cfg, state))
            .default_service(web::to(http::not_found))
    })
    .workers(workers)
    // actix counts per worker; the budget is for the process.
    .max_connections(budget.per_worker())
    .on_connect(move |conn, ext| budget.on_connect(conn, ext))
    // The binary stops on its signals with `gateway_common::lifecycle::drain`;
    // this bounds a graceful stop asked for through the handle.
    .disable_signals()
    .shutdown_timeout(shutdown_timeout.as_secs())
    .listen(listener)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("no address bound"))?;
    let server = server.run();
    tracing::info!(%addr, max_connections, "authorization server listening");
    Ok((addr, server))
}

/// Opens the configured store and serves; returns the bound address. The
/// server runs on the current runtime until the process ends.
pub async fn serve(config: Config) -> anyhow::Result<SocketAddr> {
    let store = gateway_store::config::open_from_config(&config.source).await?;
    let (addr, server) = serve_with(config, store, gateway_common::clock::system()).await?;
    tokio::spawn(server);
    Ok(addr)
}
