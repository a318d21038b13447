//! `mcp-verifier`: parse the config (exit 2 with the one-line error), serve;
//! on SIGTERM or Ctrl-C stop within `SHUTDOWN_TIMEOUT`. `--check-config`
//! validates and exits.

use std::process::ExitCode;

use gateway_common::config::Source;
use gateway_common::lifecycle;
use mcp_verifier::VerifierConfig;

const HELP: &str = "\
The MCP gateway's token verifier: the forward-auth endpoint (/verify) a proxy
asks before it passes a request to an MCP server.

Usage:
  mcp-verifier                  serve (VERIFIER_LISTEN, default 0.0.0.0:8001)
  mcp-verifier --check-config   check the configuration and exit
  mcp-verifier --help | --version

Configuration comes from the environment over an optional .env file (ENV_FILE):
AUTH_ISSUER (or BASE_DOMAIN), AUTHZ_URL (where the key set and the revocation
feed are read; default AUTH_ISSUER) or REDIS_URL, MCP_<NAME>_ENABLED /
MCP_<NAME>_URL. SIGTERM stops it: requests in flight get SHUTDOWN_TIMEOUT
seconds (default 5). Every variable and its default: docs/src/configuration.md.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(flag) = lifecycle::early_flag(&args) {
        lifecycle::print_early(flag, "mcp-verifier", env!("CARGO_PKG_VERSION"), HELP);
        return ExitCode::SUCCESS;
    }
    let check_only = args.iter().any(|a| a == "--check-config");
    let parsed = Source::from_process().and_then(|src| {
        let config = VerifierConfig::from_source(&src)?;
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
        println!("config ok: {} service(s)", config.services.len());
        return ExitCode::SUCCESS;
    }
    logging.init();
    match gateway_common::lifecycle::run_to_exit(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-verifier: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: VerifierConfig) -> anyhow::Result<()> {
    let running = mcp_verifier::serve(config).await?;
    lifecycle::terminated().await;
    tracing::info!("stopping");
    running.drain().await;
    Ok(())
}
