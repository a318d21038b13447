use std::process::ExitCode;

use clap::Parser;
use mcp_gateway::commands::{run, Cli};

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-gateway: {e:#}");
            ExitCode::from(2)
        }
    }
}
