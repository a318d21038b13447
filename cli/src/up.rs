//! One-machine mode: the authz-server, the verifier (as an in-process guard)
//! and the bridged MCP servers in ONE actix app on one loopback port, with the
//! embedded store and a local user created on first run.
//!
//! One origin serves everything, so the client needs nothing but the MCP URL:
//! each MCP endpoint is guarded (401 + `resource_metadata` → discovery), the
//! well-known documents, `/register`, `/authorize`, `/token`… are the
//! authz-server's. Which MCP servers run is the [`crate::catalog`]'s: every
//! `MCP_<SERVICE>_ENABLED=true` at `/<service>/mcp`, each its own audience;
//! none enabled, the single service `local` at `/mcp` runs `BRIDGE_COMMAND`.
//! Each service still runs alone as its own binary in real deployments.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use gateway_common::clock::{self, SharedClock};
use gateway_common::config::Source;

pub use crate::commands::UpArgs;

use crate::catalog;
use crate::exposure::{self, Exposure};
use crate::guard::guard;
use crate::users;

/// The user created on first run.
pub const FIRST_USER: &str = "admin";

/// A running one-machine gateway.
pub struct Running {
    pub addr: SocketAddr,
    pub issuer: String,
    /// The first service's MCP URL (`<issuer>/mcp` without a catalog).
    pub mcp_url: String,
    /// Every service served: its name and its MCP URL (its resource).
    pub services: Vec<(String, String)>,
    /// Set on the first run only: the user created and its password.
    pub created_user: Option<(String, String)>,
    /// Stops the server (`handle.stop(true).await`).
    pub handle: actix_web::dev::ServerHandle,
    /// The store the services share (flows, tokens… for the operator commands).
    pub store: Arc<dyn gateway_store::Store>,
    /// Resolves when the server stops.
    pub stopped: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Responses not yet sent, for the bounded stop ([`Running::drain`]).
    in_flight: gateway_common::lifecycle::InFlight,
    shutdown_timeout: std::time::Duration,
    authz: mcp_authz::AppState,
    bridges: Vec<Arc<mcp_bridge::Bridge>>,
    _verifier_tasks: mcp_verifier::BackgroundTasks,
    _first_use_writer: Option<AbortOnDrop>,
    /// Operator commands while running on the embedded store (`crate::admin`).
    pub admin: Option<crate::admin::AdminSocket>,
}

/// Stops a spawned task when dropped (with the rest of `Running`).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Per-endpoint latency in one-machine mode: the MCP endpoints are the
/// bridges' (behind the guard), everything else the authz-server's.
struct UpLatency {
    authz: gateway_common::http_metrics::EndpointLatency,
    bridge: gateway_common::http_metrics::EndpointLatency,
    mcp_paths: Vec<String>,
}

async fn up_latency<B: actix_web::body::MessageBody>(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<actix_web::dev::ServiceResponse<B>, actix_web::Error> {
    let latency = req.app_data::<web::Data<UpLatency>>().cloned();
    let path = req.path().to_string();
    let started = std::time::Instant::now();
    let res = next.call(req).await;
    if let Some(l) = latency {
        let bridged = l.mcp_paths.iter().any(|p| {
            path.strip_prefix(p.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        });
        let target = if bridged { &l.bridge } else { &l.authz };
        target.observe_response(&res, started);
    }
    res
}

/// The authz-server's, the verifier's and the bridges' metrics in one
/// exposition (their names are prefixed per service, so they do not clash).
/// The bridges count into one set (latency is labelled by endpoint, so per
/// MCP service); sessions and children are summed over them.
fn combined_metrics(
    authz: &mcp_authz::AppState,
    verifier: &mcp_verifier::Verifier,
    bridges: &[Arc<mcp_bridge::Bridge>],
) -> actix_web::HttpResponse {
    let mut text = String::new();
    let sessions = bridges.iter().map(|b| b.session_count()).sum();
    let children = bridges.iter().map(|b| b.children_alive()).sum();
    let bridge_part = bridges
        .first()
        .map(|b| b.metrics.render(sessions, children))
        .unwrap_or_default();
    for part in [
        authz.metrics.encode(),
        verifier.render_metrics(),
        bridge_part,
    ] {
        // prometheus-client parts end with the OpenMetrics `# EOF`; the bridge's
        // is plain Prometheus text. Served as Prometheus text (0.0.4), which
        // every scraper reads, without the marker.
        text.push_str(part.trim_end().trim_end_matches("# EOF").trim_end());
        text.push('\n');
    }
    actix_web::HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}

impl Running {
    /// The stop on SIGTERM or Ctrl-C: stop accepting, let requests in flight
    /// finish within `SHUTDOWN_TIMEOUT`, end the event streams (revocation
    /// feed, MCP sessions) cleanly, stop the bridged children.
    pub async fn drain(&self) {
        let (authz, bridges) = (self.authz.clone(), self.bridges.clone());
        gateway_common::lifecycle::drain(
            &self.handle,
            &self.in_flight,
            self.shutdown_timeout,
            move || {
                authz.close_streams();
                for bridge in &bridges {
                    bridge.shutdown();
                }
            },
        )
        .await;
        mcp_bridge::child::reaped().await;
    }
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

/// The launcher's variables layered over the user's: the service layout is the
/// launcher's (`services`: name and MCP URL), everything else (lifetimes,
/// algorithm, per-service `MCP_<NAME>_ALLOWED_USERS`…) stays configurable.
pub fn source_for(
    env: &Source,
    issuer: &str,
    services: &[(String, String)],
    data_dir: &std::path::Path,
) -> Source {
    let pairs = env.iter().filter(|(k, _)| {
        // Services and their URLs are the launcher's, all bridged here.
        !(k.starts_with("MCP_") && (k.ends_with("_ENABLED") || k.ends_with("_URL")))
    });
    let mut src = Source::from_pairs(pairs.map(|(k, v)| (k.clone(), v.clone())));
    let data = data_dir.display().to_string();
    src = src
        .with("AUTH_ISSUER", issuer)
        .with("AUTHZ_URL", issuer)
        .with("LOCAL_USERS_FILE", &format!("{data}/users"));
    for (name, url) in services {
        let upper = name.to_ascii_uppercase();
        src = src
            .with(&format!("MCP_{upper}_ENABLED"), "true")
            .with(&format!("MCP_{upper}_URL"), url);
    }
    if env.get("STORE_PATH").is_none() {
        src = src.with("STORE_PATH", &format!("{data}/gateway.redb"));
    }
    if env.get("KEY_ENCRYPTION_KEY_FILE").is_none() {
        src = src.with(
            "KEY_ENCRYPTION_KEY_FILE",
            &format!("{data}/key-encryption.key"),
        );
    }
    src
}

/// One service's bridge variables: its command, process model and policy
/// section over the shared ones (without a catalog, the operator's as they are).
fn bridge_source(src: &Source, service: &catalog::Service) -> Source {
    let mut out = src.clone().with("BRIDGE_COMMAND", &service.command);
    if let Some(model) = service.process_model {
        out = out
            .with("BRIDGE_PROCESS_MODEL", model.as_str())
            .with("TOOL_POLICY_SERVICE", &service.name);
    }
    for (name, value) in &service.child_env {
        out = out.with(&format!("BRIDGE_ENV_{name}"), value);
    }
    out
}

/// Starts everything; the returned server future must be awaited (or spawned).
pub async fn start(args: &UpArgs, env: &Source, clock: SharedClock) -> anyhow::Result<Running> {
    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .with_context(|| format!("binding {}:{}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    let authority = match addr {
        SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    };
    let issuer = format!("http://{authority}");

    // The services first: a server that is not installed stops start-up
    // before anything is written.
    let data_dir = std::path::absolute(&args.data_dir)
        .with_context(|| format!("resolving {}", args.data_dir.display()))?;
    let planned = catalog::plan(env, &args.mcp_command, &data_dir)?;
    let services: Vec<(String, String)> = planned
        .iter()
        .map(|s| (s.name.clone(), format!("{issuer}{}", s.path)))
        .collect();
    let mcp_url = services
        .first()
        .map(|(_, url)| url.clone())
        .unwrap_or_else(|| format!("{issuer}/mcp"));

    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let users_file = args.data_dir.join("users");
    let created_user = if users::has_users(&users_file) {
        None
    } else {
        let password = users::generate_password();
        users::add_user(&users_file, FIRST_USER, &password)?;
        Some((FIRST_USER.to_string(), password))
    };

    let src = source_for(env, &issuer, &services, &args.data_dir);
    // The whole configuration is parsed before anything starts serving.
    let authz_config = mcp_authz::Config::from_source(&src).map_err(|e| anyhow::anyhow!("{e}"))?;
    let verifier_config =
        mcp_verifier::VerifierConfig::from_source(&src).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut bridge_configs = Vec::with_capacity(planned.len());
    for service in &planned {
        let mut config = mcp_bridge::Config::from_source(&bridge_source(&src, service))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        // Mounted inside the service's guarded scope below.
        config.path = String::new();
        config.legacy_sse = false;
        config.allowed_hosts = vec![authority.clone()];
        bridge_configs.push((service.path.clone(), config));
    }
    if planned.iter().any(|s| s.name == "filesystem") {
        let files = data_dir.join("files");
        std::fs::create_dir_all(&files).with_context(|| format!("creating {}", files.display()))?;
    }
    // Which Host values are ours, and who may read /metrics and the revocation feed.
    let exposure =
        web::Data::new(Exposure::from_source(&src, addr).map_err(|e| anyhow::anyhow!("{e}"))?);
    let shutdown_timeout =
        gateway_common::lifecycle::shutdown_timeout(&src).map_err(|e| anyhow::anyhow!("{e}"))?;

    let store = gateway_store::config::open_from_config(&src)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let authz_state = mcp_authz::build_state(authz_config, store.clone(), clock.clone()).await?;
    // The authz-server's connection budget covers the whole one-machine port.
    let budget = mcp_authz::http::connections::Budget::new(&authz_state.config, 2);
    let per_worker = budget.per_worker();
    let (verifier, verifier_tasks) = mcp_verifier::start(verifier_config, clock);
    // Flow diagnostics: the guard's first accepted token per client goes to our store.
    let first_use_writer = verifier.spawn_first_use_writer(store.clone());
    let verifier_for_wait = Arc::clone(&verifier);
    // One set of bridge metrics for every service; children start on each
    // service's first session (per the process model), none at start-up.
    let bridge_metrics = Arc::new(mcp_bridge::metrics::Metrics::default());
    let bridges: Vec<(String, Arc<mcp_bridge::Bridge>)> = bridge_configs
        .into_iter()
        .map(|(path, config)| {
            let bridge = mcp_bridge::Bridge::with_metrics(config, Arc::clone(&bridge_metrics));
            bridge.start_reaper();
            (path, bridge)
        })
        .collect();
    let all_bridges: Vec<Arc<mcp_bridge::Bridge>> =
        bridges.iter().map(|(_, b)| Arc::clone(b)).collect();
    let mcp_paths: Vec<String> = bridges.iter().map(|(p, _)| p.clone()).collect();
    let (authz_for_stop, all_bridges_for_stop) = (authz_state.clone(), all_bridges.clone());
    let in_flight = gateway_common::lifecycle::InFlight::default();
    let app_in_flight = in_flight.clone();

    let server = HttpServer::new(move || {
        let authz_state = authz_state.clone();
        let metrics = (
            authz_state.clone(),
            Arc::clone(&verifier),
            all_bridges.clone(),
        );
        let bridges = bridges.clone();
        let verifier = Arc::clone(&verifier);
        let mut app = App::new()
            .app_data(app_in_flight.clone())
            .app_data(exposure.clone())
            .app_data(web::Data::new(UpLatency {
                authz: authz_state.metrics.latency.clone(),
                bridge: bridge_metrics.latency.clone(),
                mcp_paths: mcp_paths.clone(),
            }))
            .wrap(from_fn(up_latency))
            // Before any route: a foreign Host is refused before a URL is built from it,
            // and the operator surfaces are checked (logged by the outer request logger).
            .wrap(from_fn(exposure::gate))
            .wrap(gateway_common::logging::request_logger())
            .wrap(gateway_common::lifecycle::Track)
            // One /metrics for the three services (registered first, so it wins
            // over the authz-server's own).
            .route(
                "/metrics",
                web::get().to(move || {
                    let (a, v, b) = metrics.clone();
                    async move { combined_metrics(&a, &v, &b) }
                }),
            )
            .configure(move |cfg| mcp_authz::configure(cfg, authz_state.clone()));
        // Each service behind the guard, which picks its audience, its
        // `resource_metadata` and its tool-policy section from the path.
        for (path, bridge) in bridges {
            app = app.service(
                web::scope(&path)
                    .app_data(web::Data::new(Arc::clone(&verifier)))
                    .wrap(from_fn(guard))
                    .configure(mcp_bridge::configure(bridge)),
            );
        }
        app
    })
    // SSE responses stream event by event; without TCP_NODELAY, Nagle holds each
    // later write until the client's delayed ACK (~40 ms per call).
    .on_connect(move |conn, ext| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
        budget.on_connect(conn, ext);
    })
    .workers(2)
    .max_connections(per_worker)
    // `run` stops on the signals itself (`Running::drain`), ending the open
    // event streams (the guard's own revocation feed among them) first.
    .disable_signals()
    .shutdown_timeout(shutdown_timeout.as_secs())
    .listen(listener)?
    .run();
    let handle = server.handle();
    let stopped = actix_web::rt::spawn(server);

    // Ready means the guard can vouch for tokens: keys loaded from our own
    // /jwks and the revocation feed connected. Until then it fails closed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let readiness = verifier_for_wait.readiness();
        if readiness.ready {
            break;
        }
        if std::time::Instant::now() > deadline {
            handle.stop(false).await;
            anyhow::bail!(
                "the gateway did not become ready within 30 s: {}",
                readiness.reason.unwrap_or("unknown")
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // Embedded store: operator commands reach it through the admin socket.
    let admin = match crate::admin::socket_path(&src) {
        Some(path) if src.get("REDIS_URL").is_none() => {
            match crate::admin::serve(&path, store.clone(), src.clone()) {
                Ok(a) => Some(a),
                Err(e) => {
                    handle.stop(false).await;
                    return Err(e);
                }
            }
        }
        _ => None,
    };

    Ok(Running {
        admin,
        addr,
        issuer,
        mcp_url,
        services,
        created_user,
        handle,
        stopped,
        store,
        in_flight,
        shutdown_timeout,
        authz: authz_for_stop,
        bridges: all_bridges_for_stop,
        _verifier_tasks: verifier_tasks,
        _first_use_writer: first_use_writer.map(AbortOnDrop),
    })
}

/// `mcp-gateway up`.
pub fn run(args: UpArgs) -> anyhow::Result<()> {
    let env = Source::from_process().map_err(|e| anyhow::anyhow!("{e}"))?;
    init_logging(&env)?;
    actix_web::rt::System::new().block_on(async move {
        let mut running = start(&args, &env, clock::system()).await?;
        println!("MCP OAuth gateway is running (one-machine mode).");
        println!();
        match running.services.as_slice() {
            [(name, url)] if name == "local" => {
                println!("  MCP URL, paste it into your client:  {url}");
            }
            services => {
                println!("  MCP URLs, paste them into your client:");
                for (name, url) in services {
                    println!("    {name:<36}{url}");
                }
            }
        }
        println!("  Issuer:                               {}", running.issuer);
        match &running.created_user {
            Some((user, password)) => {
                println!("  Sign in as:                           {user} / {password}");
                println!(
                    "  (shown once; more users: mcp-gateway add-user NAME --file {}/users)",
                    args.data_dir.display()
                );
            }
            None => println!(
                "  Sign in with a user from {}/users",
                args.data_dir.display()
            ),
        }
        println!(
            "  State:                                {}",
            args.data_dir.display()
        );
        println!();
        println!("Press Ctrl-C to stop.");
        let stopped = tokio::select! {
            stopped = &mut running.stopped => Some(stopped),
            () = gateway_common::lifecycle::terminated() => None,
        };
        match stopped {
            Some(stopped) => stopped??,
            None => running.drain().await,
        }
        Ok(())
    })
}

fn init_logging(env: &Source) -> anyhow::Result<()> {
    // Interactive default: text, warnings only (LOG_FORMAT/RUST_LOG override).
    let env = match env.get("LOG_FORMAT") {
        Some(_) => env.clone(),
        None => env.clone().with("LOG_FORMAT", "text"),
    };
    gateway_common::logging::init(&env, "warn").map_err(|e| anyhow::anyhow!("{e}"))
}
