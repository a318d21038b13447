use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "mcp-gateway", version, about = "MCP OAuth gateway: one-machine launcher and operator commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run authz-server, verifier and a bridged MCP server together on loopback,
    /// with the embedded store and a local user created on first run.
    Up(mcp_gateway::up::UpArgs),
    /// Add (or replace) a local user in the users file; the password is read from stdin.
    AddUser {
        name: String,
        /// The users file (LOCAL_USERS_FILE).
        #[arg(long, env = "LOCAL_USERS_FILE", default_value = "./data/users")]
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => mcp_gateway::up::run(args),
        Command::AddUser { name, file } => add_user(&name, &file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-gateway: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn add_user(name: &str, file: &std::path::Path) -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin().read_line(&mut password)?;
    mcp_gateway::users::add_user(file, name, password.trim_end_matches(['\r', '\n']))?;
    eprintln!("added {name} to {}", file.display());
    Ok(())
}
