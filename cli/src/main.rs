// glibc malloc showed up at ~8% of the token endpoint's CPU under load
// (authz-server/examples/bench_tokens.rs); mimalloc is a drop-in, well-kept allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;
use mcp_gateway::commands::Cli;
use mcp_gateway::dispatch::run;

fn main() -> ExitCode {
    let code = match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-gateway: {e:#}");
            ExitCode::from(2)
        }
    };
    // Audit lines still queued for AUDIT_LOG_FILE go out before the process ends.
    gateway_common::audit::flush_all();
    code
}
