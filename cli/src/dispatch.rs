//! The binary's entry: runs a parsed command line. `up` starts the gateway
//! ([`crate::up`]); operator commands run in a running gateway through its
//! admin socket ([`crate::admin`]) when there is one, else here
//! ([`crate::commands::execute`]).

use anyhow::bail;
use gateway_common::config::Source;

use crate::commands::{execute, with_data_dir, Cli, Command};
use crate::secrets;

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(args) => crate::up::run(args),
        Command::AddUser { name, file } => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            crate::users::add_user(&file, &name, password.trim_end_matches(['\r', '\n']))?;
            eprintln!("added {name} to {}", file.display());
            Ok(())
        }
        Command::GenerateSecrets {
            env_file,
            force,
            rsa_key,
        } => {
            // What the configuration is now (the file being edited included),
            // to keep the signing keys readable under the new secret.
            let mut src = Source::from_process()?;
            if let Ok(text) = std::fs::read_to_string(&env_file) {
                for (k, v) in secrets::parse_env_text(&text) {
                    if src.get(&k).is_none() {
                        src = src.with(&k, &v);
                    }
                }
            }
            let (outcomes, note) =
                secrets::generate_into_checked(&env_file, rsa_key, force, |secret| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?
                        .block_on(secrets::protect_sealed_keys(&src, secret))
                })?;
            for (name, outcome) in outcomes {
                let what = match outcome {
                    secrets::Outcome::Added => "written",
                    secrets::Outcome::Replaced => "replaced",
                    secrets::Outcome::Kept => "already set, kept (use --force to replace)",
                };
                println!("{name}: {what}");
            }
            println!("in {}", env_file.display());
            if let Some(note) = note {
                println!("{note}");
            }
            Ok(())
        }
        other => {
            let src = Source::from_process()?;
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(run_operator(other, &src))
        }
    }
}

/// The commands that work on the configured store and services. With the
/// embedded store of a running `mcp-gateway up`, they run inside it through
/// its admin socket ([`crate::admin`]), with the same output.
pub async fn run_operator(command: Command, src: &Source) -> anyhow::Result<()> {
    let actor = crate::admin::local_actor(src);
    let src = &with_data_dir(&command, src);
    let out = match crate::admin::forward_if_running(&command, src).await? {
        Some(out) => out,
        None => execute(command, src, None, &actor).await?,
    };
    print!("{}", out.text);
    match out.error {
        Some(e) => bail!("{e}"),
        None => Ok(()),
    }
}
