// glibc malloc showed up at ~8% of the token endpoint's CPU under load
// (authz-server/examples/bench_tokens.rs); mimalloc is a drop-in, well-kept allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;
use mcp_gateway::commands::Cli;
use mcp_gateway::dispatch::run;

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-gateway: {e:#}");
            ExitCode::from(2)
        }
    }
}
