//! `mcp-bridge`: serves a stdio MCP server over Streamable HTTP. Configuration: see
//! `mcp-bridge/README.md`. `mcp-bridge connect <url>`: the reverse, see `connect`.
//! On SIGTERM or Ctrl-C it stops within `SHUTDOWN_TIMEOUT`.

use std::process::ExitCode;

use gateway_common::config::Source;
use gateway_common::lifecycle;
use mcp_bridge::Config;

const HELP: &str = "\
Serves a stdio MCP server (or the built-in echo server) over Streamable HTTP,
behind the gateway's verifier; or, with `connect`, the reverse.

Usage:
  mcp-bridge                  serve (BRIDGE_LISTEN, default 0.0.0.0:3000)
  mcp-bridge --check-config   check the configuration and exit
  mcp-bridge connect URL      a remote MCP server as a local stdio server
                              (mcp-bridge connect --help)
  mcp-bridge --help | --version

Configuration comes from the environment over an optional .env file (ENV_FILE):
BRIDGE_COMMAND (required: the server's command line, or builtin:echo),
BRIDGE_ALLOWED_HOSTS (Host values accepted, case-insensitive, an entry without a
port matching any port; unset: localhost, 127.0.0.1 and [::1] when listening on
loopback, any Host otherwise), BRIDGE_ALLOWED_ORIGINS. SIGTERM stops it: requests in flight get
SHUTDOWN_TIMEOUT seconds (default 5), then sessions end and children stop.
Every variable and its default: docs/src/configuration.md.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("connect") {
        // `connect`: the stdio side of a remote MCP server; only the process env counts
        // (no .env from wherever the MCP client started us).
        let env = Source::from_pairs(std::env::vars());
        let code = mcp_bridge::connect::main(&args[1..], &env, gateway_common::clock::system());
        std::process::exit(code);
    }
    if let Some(flag) = lifecycle::early_flag(&args) {
        lifecycle::print_early(flag, "mcp-bridge", env!("CARGO_PKG_VERSION"), HELP);
        return ExitCode::SUCCESS;
    }
    let check_only = args.iter().any(|a| a == "--check-config");
    let parsed = Source::from_process().and_then(|src| {
        let config = Config::from_source(&src)?;
        let logging = gateway_common::logging::LogConfig::from_source(&src, "info")?;
        Ok((config, logging))
    });
    let (config, logging) = match parsed {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if check_only {
        println!("config ok");
        return ExitCode::SUCCESS;
    }
    logging.init();
    match actix_web::rt::System::new().block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-bridge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let serving = mcp_bridge::serve(config).await?;
    lifecycle::terminated().await;
    tracing::info!("stopping");
    serving.drain().await;
    Ok(())
}
