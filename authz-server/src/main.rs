//! `mcp-authz`: parse the configuration, optionally only check it, serve;
//! on SIGTERM or Ctrl-C stop within `SHUTDOWN_TIMEOUT`.

// glibc malloc showed up at ~8% of the token endpoint's CPU under load
// (authz-server/examples/bench_tokens.rs); mimalloc is a drop-in, well-kept allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use gateway_common::config::Source;
use gateway_common::lifecycle;
use mcp_authz::Config;

const HELP: &str = "\
The MCP gateway's OAuth 2.1 authorization server.

Usage:
  mcp-authz                  serve (AUTHZ_LISTEN, default 0.0.0.0:8000)
  mcp-authz --check-config   check the configuration and exit
  mcp-authz rotate-keys      make a fresh signing key current and exit
  mcp-authz --help | --version

Configuration comes from the environment over an optional .env file (ENV_FILE):
AUTH_ISSUER (or BASE_DOMAIN), MCP_<NAME>_ENABLED / MCP_<NAME>_URL, a sign-in
method (LOCAL_USERS_FILE, default ./data/users; GITHUB_CLIENT_ID; OIDC_ISSUER),
REDIS_URL or the embedded store (STORE_PATH). SIGTERM stops it: requests in
flight get SHUTDOWN_TIMEOUT seconds (default 5). Every variable and its default:
docs/src/configuration.md.";

struct Parsed {
    config: Config,
    logging: gateway_common::logging::LogConfig,
}

fn parse() -> Result<Parsed, gateway_common::config::ConfigError> {
    let src = Source::from_process()?;
    let config = Config::from_source(&src)?;
    gateway_store::config::StoreConfig::from_source(&src)?;
    mcp_authz::budgets::Limits::from_source(&src)?;
    let logging = gateway_common::logging::LogConfig::from_source(&src, "info")?;
    Ok(Parsed { config, logging })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(flag) = lifecycle::early_flag(&args) {
        lifecycle::print_early(flag, "mcp-authz", env!("CARGO_PKG_VERSION"), HELP);
        return ExitCode::SUCCESS;
    }
    let parsed = match parse() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if args.iter().any(|a| a == "--check-config") {
        println!("configuration ok: issuer {}", parsed.config.issuer);
        return ExitCode::SUCCESS;
    }
    parsed.logging.init();
    match gateway_common::lifecycle::run_to_exit(run(parsed, &args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mcp-authz: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(parsed: Parsed, args: &[String]) -> anyhow::Result<ExitCode> {
    let config = parsed.config;
    let shutdown_timeout = config.shutdown_timeout;
    let shutdown_delay = config.shutdown_delay;
    let store = match gateway_store::config::open_from_config(&config.source).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    if args.first().map(String::as_str) == Some("rotate-keys") {
        // Rotation on command: running instances pick the new key up within a minute,
        // and keep publishing the previous one for verification.
        let keys =
            mcp_authz::keys::KeyManager::init(store, &config, gateway_common::clock::system())
                .await?;
        let kid = keys.rotate().await?;
        println!("rotated: new signing key {kid}");
        return Ok(ExitCode::SUCCESS);
    }
    let state = mcp_authz::build_state(config, store, gateway_common::clock::system()).await?;
    let (_, server) = mcp_authz::serve_state(state.clone())?;
    let handle = server.handle();
    let mut server = actix_web::rt::spawn(server);
    tokio::select! {
        stopped = &mut server => stopped??,
        () = lifecycle::terminated() => {
            tracing::info!("stopping");
            lifecycle::leave_rotation(&state.in_flight, shutdown_delay).await;
            lifecycle::drain(&handle, &state.in_flight, shutdown_timeout, || {
                state.close_streams()
            })
            .await;
        }
    }
    Ok(ExitCode::SUCCESS)
}
