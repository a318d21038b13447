//! `mcp-bridge`: serves a stdio MCP server over Streamable HTTP. Configuration: see
//! `mcp-bridge/README.md`. On SIGTERM or Ctrl-C it stops within `SHUTDOWN_TIMEOUT`.
//! `mcp-bridge connect <url> …`, the reverse, runs the `mcp-connect` binary (its own
//! crate, so that this one builds no OAuth client and no JWT signing).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
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
  mcp-bridge connect URL ...  runs mcp-connect URL ... (a remote MCP server as a
                              local stdio server; mcp-connect --help)
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
        return exec_connect(&args[1..]);
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
    match gateway_common::lifecycle::run_to_exit(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-bridge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `mcp-bridge connect …` in MCP client configurations written before `connect` became
/// `mcp-connect`: replaces this process with `mcp-connect …` (stdio, environment and exit
/// code are then `mcp-connect`'s own). Returns only when it cannot be started.
fn exec_connect(args: &[String]) -> ExitCode {
    let exe = std::env::current_exe().ok();
    let program = connect_program(exe.as_deref());
    let err = std::process::Command::new(&program).args(args).exec();
    eprintln!(
        "mcp-bridge connect: cannot run {} ({err}); `mcp-bridge connect` is now the \
         `mcp-connect` binary: install it beside mcp-bridge or on PATH (cargo install --path connect)",
        program.display()
    );
    // The shell's "command not found".
    ExitCode::from(127)
}

/// `mcp-connect` beside this executable when it is there, else the name alone (PATH).
fn connect_program(current_exe: Option<&Path>) -> PathBuf {
    current_exe
        .and_then(Path::parent)
        .map(|dir| dir.join("mcp-connect"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("mcp-connect"))
}

async fn run(config: Config) -> anyhow::Result<()> {
    let serving = mcp_bridge::serve(config).await?;
    lifecycle::terminated().await;
    tracing::info!("stopping");
    serving.drain().await;
    Ok(())
}
