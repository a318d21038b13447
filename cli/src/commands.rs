//! The command line: every `mcp-gateway` subcommand and what it runs. Operator
//! commands read configuration from the environment and `.env`
//! (`gateway_common::config::Source`) and open the configured store.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Parser, Subcommand};
use gateway_common::config::Source;

use crate::{backup, clients, flows, health, secrets, tokens};

#[derive(Parser, Debug)]
#[command(
    name = "mcp-gateway",
    version,
    about = "MCP OAuth gateway: one-machine launcher and operator commands"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run authz-server, verifier and a bridged MCP server together on loopback,
    /// with the embedded store and a local user created on first run.
    Up(crate::up::UpArgs),
    /// Add (or replace) a local user in the users file; the password is read from stdin.
    AddUser {
        name: String,
        /// The users file (LOCAL_USERS_FILE).
        #[arg(long, env = "LOCAL_USERS_FILE", default_value = gateway_common::config::DEFAULT_LOCAL_USERS_FILE)]
        file: PathBuf,
    },
    /// Write GATEWAY_JWT_SECRET and REDIS_PASSWORD (and with --rsa-key
    /// JWT_PRIVATE_KEY_B64) into the .env file, keeping every other line.
    GenerateSecrets {
        /// The file to update.
        #[arg(long, env = "ENV_FILE", default_value = ".env")]
        env_file: PathBuf,
        /// Replace values that are already set.
        #[arg(long)]
        force: bool,
        /// Also write an RS256 signing key (the Python gateway's JWT_PRIVATE_KEY_B64);
        /// without it the authorization server generates an ES256 key in the store.
        #[arg(long)]
        rsa_key: bool,
    },
    /// Make a fresh signing key current; the previous one stays published for verification.
    RotateKeys,
    /// Registered OAuth clients.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Authorizations (refresh-token families) and their access tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Write all state to a JSON file (expiry as absolute times; keys stay sealed).
    Backup {
        #[arg(long = "out")]
        out: PathBuf,
    },
    /// Load a backup into the configured store (Redis or embedded).
    Restore {
        #[arg(long = "in")]
        input: PathBuf,
        /// Replace records that already exist.
        #[arg(long)]
        force: bool,
    },
    /// Check configuration, store, keys, every service's /ready and TLS certificates.
    CheckHealth {
        /// authz-server base URL (default AUTHZ_URL, else AUTH_ISSUER).
        #[arg(long)]
        authz_url: Option<String>,
        /// verifier base URL (default VERIFIER_URL).
        #[arg(long)]
        verifier_url: Option<String>,
        /// bridge base URL (default BRIDGE_URL).
        #[arg(long)]
        bridge_url: Option<String>,
        /// Warn when a certificate expires within this many days.
        #[arg(long, default_value_t = 14)]
        tls_warn_days: u64,
    },
    /// OAuth flow diagnostics: the steps each client reached.
    Flows {
        #[arg(long)]
        client: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClientsCommand {
    /// Every registered client.
    List,
    /// One client with its authorizations and consents.
    Show { client_id: String },
    /// Delete a client, revoking its tokens and removing its consents.
    Delete { client_id: String },
    /// Delete every client whose name matches a glob (`*`, `?`).
    DeleteTest {
        #[arg(long)]
        name_pattern: String,
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokensCommand {
    /// Authorizations, optionally of one user (sub or login name) or client.
    List {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        client: Option<String>,
    },
    /// Revoke a refresh token, an authorization (family id) or one access token (jti).
    Revoke { token: String },
    /// Revoke every authorization of a user and end their browser sessions.
    RevokeUser { user: String },
    /// Delete records past their own expiry (records without a TTL are kept).
    PurgeExpired,
}

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
            for (name, outcome) in secrets::generate_into(&env_file, rsa_key, force)? {
                let what = match outcome {
                    secrets::Outcome::Added => "written",
                    secrets::Outcome::Replaced => "replaced",
                    secrets::Outcome::Kept => "already set, kept (use --force to replace)",
                };
                println!("{name}: {what}");
            }
            println!("in {}", env_file.display());
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

/// The commands that work on the configured store and services.
pub async fn run_operator(command: Command, src: &Source) -> anyhow::Result<()> {
    let now = gateway_common::clock::system().now_secs();
    if let Command::RotateKeys = command {
        let kid = secrets::rotate_keys(src).await?;
        println!("rotated: new signing key {kid} (running instances pick it up within 60 s)");
        return Ok(());
    }
    if let Command::CheckHealth {
        authz_url,
        verifier_url,
        bridge_url,
        tls_warn_days,
    } = command
    {
        let opts = health::HealthOptions {
            authz_url,
            verifier_url,
            bridge_url,
            tls_warn_days,
            ..health::HealthOptions::default()
        };
        let checks = health::check_health(src, &opts, now).await;
        print!("{}", health::render(&checks));
        if !health::healthy(&checks) {
            bail!("one or more checks failed");
        }
        return Ok(());
    }
    let store = gateway_store::config::open_from_config(src).await?;
    let store = store.as_ref();
    match command {
        Command::Clients(ClientsCommand::List) => {
            print!("{}", clients::render_list(&clients::list(store).await?));
        }
        Command::Clients(ClientsCommand::Show { client_id }) => {
            print!(
                "{}",
                clients::render_show(&clients::show(store, &client_id).await?)
            );
        }
        Command::Clients(ClientsCommand::Delete { client_id }) => {
            println!("{}", clients::delete(store, now, &client_id).await?);
        }
        Command::Clients(ClientsCommand::DeleteTest {
            name_pattern,
            dry_run,
        }) => {
            let (matched, report) =
                clients::delete_matching(store, now, &name_pattern, dry_run).await?;
            for m in &matched {
                println!("{m}");
            }
            if dry_run {
                println!(
                    "{} client(s) match; nothing deleted (--dry-run)",
                    matched.len()
                );
            } else {
                println!("{report}");
            }
        }
        Command::Tokens(TokensCommand::List { user, client }) => {
            let fams = tokens::list(store, user.as_deref(), client.as_deref()).await?;
            print!("{}", tokens::render_list(&fams, now));
        }
        Command::Tokens(TokensCommand::Revoke { token }) => {
            match tokens::revoke(store, now, &token).await? {
                tokens::Revoked::Family {
                    family_id,
                    access_tokens,
                } => println!(
                    "revoked authorization {family_id} ({access_tokens} grant revocation(s) published for its access tokens)"
                ),
                tokens::Revoked::AccessToken { jti } => println!("revoked access token {jti}"),
            }
        }
        Command::Tokens(TokensCommand::RevokeUser { user }) => {
            println!("{}", tokens::revoke_user(store, now, &user).await?);
        }
        Command::Tokens(TokensCommand::PurgeExpired) => {
            println!("{}", tokens::purge_expired(store, now).await?);
        }
        Command::Backup { out } => {
            let b = backup::backup(store, now).await?;
            write_private(&out, &serde_json::to_vec_pretty(&b)?)?;
            println!(
                "wrote {} record(s) from the {} store to {}",
                b.records.len(),
                b.source_backend,
                out.display()
            );
        }
        Command::Restore { input, force } => {
            let text = std::fs::read_to_string(&input)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", input.display()))?;
            let b = backup::parse(&text)?;
            let report = backup::restore(store, &b, now, force).await?;
            println!("{report} into the {} store", store.backend());
        }
        Command::Flows { client } => {
            print!(
                "{}",
                flows::render(&flows::flows(store, client.as_deref()).await?)
            );
        }
        Command::Up(_)
        | Command::AddUser { .. }
        | Command::GenerateSecrets { .. }
        | Command::RotateKeys
        | Command::CheckHealth { .. } => bail!("not an operator command"),
    }
    Ok(())
}

/// Backups hold hashed secrets and sealed keys: mode 0600.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}
