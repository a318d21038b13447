//! Serves stdio MCP servers (or the built-in diagnostic server) over Streamable HTTP.
//!
//! The bridge sits behind the verifier: it never sees OAuth, only the identity headers the
//! verifier sets (`X-User-Id`, `X-User-Name`, `X-User-Email`, `X-Client-Id`, `X-Scopes`).
//! No HTTP header reaches a child, so a token that arrives is never passed through.
//!
//! Compose it: [`configure`] mounts the MCP endpoint (and the legacy `/sse` + `/messages`)
//! in any actix `App`; [`configure_health`] adds `/health`, `/ready`, `/metrics`;
//! [`serve`] binds and runs both.

pub mod bridge;
pub mod child;
pub mod config;
pub mod echo;
pub mod error;
pub mod fetch;
pub mod guard;
pub mod http;
pub mod identity;
pub mod jsonrpc;
pub mod legacy;
pub mod metrics;
pub mod native;
pub mod session;
pub mod stream;
pub mod tool_gate;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpResponse, HttpServer};

/// The MCP revisions, shared with `mcp-connect` (`gateway_common::mcp_version`).
pub use gateway_common::mcp_version as version;

pub use bridge::Bridge;
pub use config::{Command, Config, ProcessModel};

/// Mounts the MCP endpoint at `cfg.path` (and the legacy transport when enabled).
pub fn configure(bridge: Arc<Bridge>) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        let data = web::Data::new(bridge.clone());
        cfg.service(
            web::resource(bridge.cfg.path.as_str())
                .app_data(data.clone())
                .wrap(from_fn(guard::security))
                .route(web::post().to(http::post))
                .route(web::get().to(http::get))
                .route(web::delete().to(http::delete))
                .default_service(web::to(http::method_not_allowed)),
        );
        if bridge.cfg.legacy_sse {
            cfg.service(
                web::resource(legacy::SSE_PATH)
                    .app_data(data.clone())
                    .wrap(from_fn(guard::security))
                    .route(web::get().to(legacy::open))
                    .default_service(web::to(http::method_not_allowed)),
            );
            cfg.service(
                web::resource(legacy::MESSAGES_PATH)
                    .app_data(data)
                    .wrap(from_fn(guard::security))
                    .route(web::post().to(legacy::message))
                    .default_service(web::to(http::method_not_allowed)),
            );
        }
    }
}

/// Mounts `/health`, `/ready` (a child can be started and initialized) and `/metrics`.
pub fn configure_health(bridge: Arc<Bridge>) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        let data = web::Data::new(bridge.clone());
        cfg.service(
            web::resource("/health")
                .app_data(data.clone())
                .route(web::get().to(|| async { HttpResponse::Ok().json(serde_json::json!({"status": "ok"})) })),
        )
        .service(web::resource("/ready").app_data(data.clone()).route(web::get().to(
            |b: web::Data<Arc<Bridge>>| async move {
                if b.ready().await {
                    HttpResponse::Ok().json(serde_json::json!({"status": "ready"}))
                } else {
                    HttpResponse::ServiceUnavailable()
                        .json(serde_json::json!({"status": "unavailable", "reason": "the MCP server cannot be started"}))
                }
            },
        )))
        .service(web::resource("/metrics").app_data(data).route(web::get().to(
            |b: web::Data<Arc<Bridge>>| async move {
                HttpResponse::Ok()
                    .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
                    .body(b.metrics.render(b.session_count(), b.children_alive()))
            },
        )));
    }
}

/// A running bridge.
pub struct Serving {
    pub addr: SocketAddr,
    pub bridge: Arc<Bridge>,
    pub handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    in_flight: gateway_common::lifecycle::InFlight,
}

impl Serving {
    /// Stops accepting, ends every session and stops every child.
    pub async fn stop(self) {
        // Ending the sessions first closes their SSE streams, so a graceful stop is quick.
        self.bridge.shutdown();
        self.handle.stop(true).await;
        let _ = self.task.await;
    }

    /// The binary's stop (SIGTERM): out of rotation for `SHUTDOWN_DELAY`, then
    /// stop accepting, let requests in flight (tool calls among them) finish within `SHUTDOWN_TIMEOUT`, then end
    /// every session (their GET streams end cleanly) and stop every child.
    pub async fn drain(self) {
        gateway_common::lifecycle::leave_rotation(&self.in_flight, self.bridge.cfg.shutdown_delay)
            .await;
        let bridge = Arc::clone(&self.bridge);
        gateway_common::lifecycle::drain(
            &self.handle,
            &self.in_flight,
            self.bridge.cfg.shutdown_timeout,
            move || bridge.shutdown(),
        )
        .await;
        child::reaped().await;
    }

    /// Runs until the server stops.
    pub async fn wait(self) -> anyhow::Result<()> {
        let r = self.task.await;
        self.bridge.shutdown();
        r??;
        Ok(())
    }
}

/// Binds `config.listen` (port 0 allowed) and serves. Must run inside a Tokio runtime.
pub async fn serve(config: Config) -> anyhow::Result<Serving> {
    let listen = config.listen;
    let workers = match config.workers {
        0 => std::thread::available_parallelism()
            .map(|n| n.get().clamp(2, 8))
            .unwrap_or(2),
        n => n,
    };
    let shutdown_timeout = config.shutdown_timeout;
    let bridge = Bridge::new(config);
    bridge.start_reaper();
    let b = bridge.clone();
    let in_flight = gateway_common::lifecycle::InFlight::default();
    let app_in_flight = in_flight.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(app_in_flight.clone())
            .wrap(gateway_common::lifecycle::Track)
            .app_data(web::Data::new(b.metrics.latency.clone()))
            .wrap(from_fn(gateway_common::http_metrics::record))
            .wrap(gateway_common::logging::request_logger())
            .configure(configure(b.clone()))
            .configure(configure_health(b.clone()))
    })
    .workers(workers)
    // Responses stream: headers first, events as the child answers. Without TCP_NODELAY,
    // Nagle holds each later write until the client's delayed ACK (~40 ms per call).
    .on_connect(|conn, _ext| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
    })
    .disable_signals()
    .shutdown_timeout(shutdown_timeout.as_secs())
    .bind(listen)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("bound no address"))?;
    let server = server.run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    tracing::info!(%addr, path = %bridge.cfg.path, model = bridge.cfg.process_model.as_str(), "mcp-bridge listening");
    Ok(Serving {
        addr,
        bridge,
        handle,
        task,
        in_flight,
    })
}
