//! The command line: every `mcp-gateway` subcommand and what it runs. Operator
//! commands read configuration from the environment and `.env`
//! (`gateway_common::config::Source`) and open the configured store.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;
use clap::{Parser, Subcommand};
use gateway_common::config::Source;
use gateway_store::Store;

use crate::{backup, clients, flows, health, import_python, secrets, tokens};

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

#[derive(Subcommand, Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Command {
    /// Run authz-server, verifier and a bridged MCP server together on loopback,
    /// with the embedded store and a local user created on first run.
    Up(UpArgs),
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
    /// Make the next signing key current (it is published before it signs);
    /// the previous one stays published until its tokens have expired.
    RotateKeys {
        /// The data directory `up` uses (its store and key file); default STORE_PATH.
        #[arg(long, env = "GATEWAY_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
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
        /// bridge base URL, once per bridge (default BRIDGE_URL, a comma-separated list).
        #[arg(long)]
        bridge_url: Vec<String>,
        /// Warn when a certificate expires within this many days.
        #[arg(long, default_value_t = 14)]
        tls_warn_days: u64,
    },
    /// Import client registrations and live refresh tokens from the Python
    /// gateway's Redis (`oauth:*` keys, only read) into the configured store.
    ImportPython {
        /// The Python gateway's REDIS_URL (`redis://[:password@]host[:port][/db]`).
        #[arg(long = "from-redis")]
        from_redis: String,
        /// The Python gateway's REDIS_PASSWORD, when the URL carries none.
        #[arg(long, env = "PYTHON_REDIS_PASSWORD", hide_env_values = true)]
        from_redis_password: Option<String>,
        /// Print what would be imported and what cannot be; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// OAuth flow diagnostics: the steps each client reached.
    Flows {
        #[arg(long)]
        client: Option<String>,
    },
}

/// `mcp-gateway up`'s options ([`crate::up`]).
#[derive(clap::Args, Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UpArgs {
    /// Loopback address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port (0 picks a free one).
    #[arg(long, env = "GATEWAY_PORT", default_value_t = 8080)]
    pub port: u16,
    /// Where the embedded store, the users file and the key file live.
    #[arg(long, env = "GATEWAY_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// The stdio MCP server to bridge when no `MCP_<SERVICE>_ENABLED` is set:
    /// a command line, or `builtin:echo`.
    #[arg(long, env = "BRIDGE_COMMAND", default_value = "builtin:echo")]
    pub mcp_command: String,
}

#[derive(Subcommand, Debug, Clone, serde::Serialize, serde::Deserialize)]
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

#[derive(Subcommand, Debug, Clone, serde::Serialize, serde::Deserialize)]
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

/// What an operator command printed, and its failure (printed by `main` as
/// `mcp-gateway: <error>`, exit status 2).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Output {
    pub text: String,
    pub error: Option<String>,
}

impl Output {
    fn text(text: String) -> Self {
        Self { text, error: None }
    }
    fn line(text: impl std::fmt::Display) -> Self {
        Self::text(format!("{text}\n"))
    }
}

/// Records an operator action in the audit log (`AUDIT_LOG_FILE`, and the
/// `audit` log target) before the command returns.
fn audit(src: &Source, now: u64, actor: &str, action: &str, target: &str, outcome: &str) {
    let file = src.get("AUDIT_LOG_FILE").map(PathBuf::from);
    let log = match gateway_common::audit::AuditLog::open("cli", file.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "AUDIT_LOG_FILE cannot be opened");
            gateway_common::audit::AuditLog::tracing_only("cli")
        }
    };
    log.record(
        now,
        gateway_common::audit::AuditEvent::OperatorAction {
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            outcome: Some(outcome.trim_end().to_string()),
        },
    );
    log.sync();
}

/// `rotate-keys --data-dir DIR`: the store where `up --data-dir DIR` keeps it
/// (unless STORE_PATH says otherwise).
pub fn with_data_dir(command: &Command, src: &Source) -> Source {
    match command {
        Command::RotateKeys {
            data_dir: Some(dir),
        } if src.get("STORE_PATH").is_none() => src.clone().with(
            "STORE_PATH",
            &dir.join("gateway.redb").display().to_string(),
        ),
        _ => src.clone(),
    }
}

/// Runs one operator command and returns what it prints. `store` is the
/// store of the running gateway (admin socket); `None` opens the configured
/// one. `actor` is who asked, for the audit log.
pub async fn execute(
    command: Command,
    src: &Source,
    store: Option<Arc<dyn Store>>,
    actor: &str,
) -> anyhow::Result<Output> {
    let now = gateway_common::clock::system().now_secs();
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
            bridge_urls: bridge_url,
            tls_warn_days,
            store: store.clone(),
            ..health::HealthOptions::default()
        };
        let checks = health::check_health(src, &opts, now).await;
        return Ok(Output {
            text: health::render(&checks),
            error: (!health::healthy(&checks)).then(|| "one or more checks failed".to_string()),
        });
    }
    let src = &with_data_dir(&command, src);
    let store = match store {
        Some(s) => s,
        None => {
            if let Command::RotateKeys { .. } = &command {
                // Never creates a store where there is none.
                secrets::existing_store(src)?;
            }
            gateway_store::config::open_from_config(src).await?
        }
    };
    let store_ref = store.as_ref();
    let out = match command {
        Command::RotateKeys { .. } => {
            let r = secrets::rotate_keys_in(store.clone(), src).await?;
            let text = if r.immediate {
                format!(
                    "rotated: new signing key {} signs now (running instances switch within KEY_RELOAD_INTERVAL; the previous key stays published until its tokens expire)\n",
                    r.kid
                )
            } else {
                format!("rotation scheduled: signing key {r}\n")
            };
            audit(src, now, actor, "rotate-keys", &r.kid, &text);
            Output::text(text)
        }
        Command::Clients(ClientsCommand::List) => {
            Output::text(clients::render_list(&clients::list(store_ref).await?))
        }
        Command::Clients(ClientsCommand::Show { client_id }) => Output::text(clients::render_show(
            &clients::show(store_ref, &client_id).await?,
        )),
        Command::Clients(ClientsCommand::Delete { client_id }) => {
            let report = clients::delete(store_ref, now, &client_id).await?;
            audit(
                src,
                now,
                actor,
                "clients delete",
                &client_id,
                &report.to_string(),
            );
            Output::line(report)
        }
        Command::Clients(ClientsCommand::DeleteTest {
            name_pattern,
            dry_run,
        }) => {
            let (matched, report) =
                clients::delete_matching(store_ref, now, &name_pattern, dry_run).await?;
            let mut text = String::new();
            for m in &matched {
                text.push_str(m);
                text.push('\n');
            }
            if dry_run {
                text.push_str(&format!(
                    "{} client(s) match; nothing deleted (--dry-run)\n",
                    matched.len()
                ));
            } else {
                text.push_str(&format!("{report}\n"));
                audit(
                    src,
                    now,
                    actor,
                    "clients delete-test",
                    &name_pattern,
                    &report.to_string(),
                );
            }
            Output::text(text)
        }
        Command::Tokens(TokensCommand::List { user, client }) => {
            let fams = tokens::list(store_ref, user.as_deref(), client.as_deref()).await?;
            Output::text(tokens::render_list(&fams, now))
        }
        Command::Tokens(TokensCommand::Revoke { token }) => {
            let text = match tokens::revoke(store_ref, now, &token).await? {
                tokens::Revoked::Family {
                    family_id,
                    access_tokens,
                } => format!(
                    "revoked authorization {family_id} ({access_tokens} grant revocation(s) published for its access tokens)"
                ),
                tokens::Revoked::AccessToken { jti } => format!("revoked access token {jti}"),
            };
            // The argument may be a refresh token: the audit names what was revoked instead.
            audit(src, now, actor, "tokens revoke", "-", &text);
            Output::line(text)
        }
        Command::Tokens(TokensCommand::RevokeUser { user }) => {
            let report = tokens::revoke_user(store_ref, now, &user).await?;
            audit(
                src,
                now,
                actor,
                "tokens revoke-user",
                &user,
                &report.to_string(),
            );
            Output::line(report)
        }
        Command::Tokens(TokensCommand::PurgeExpired) => {
            let report = tokens::purge_expired(store_ref, now).await?;
            audit(
                src,
                now,
                actor,
                "tokens purge-expired",
                "-",
                &report.to_string(),
            );
            Output::line(report)
        }
        Command::Backup { out } => {
            let b = backup::backup(store_ref, now).await?;
            write_private(&out, &serde_json::to_vec_pretty(&b)?)?;
            let text = format!(
                "wrote {} record(s) from the {} store to {}",
                b.records.len(),
                b.source_backend,
                out.display()
            );
            audit(src, now, actor, "backup", &out.display().to_string(), &text);
            Output::line(text)
        }
        Command::Restore { input, force } => {
            let text = std::fs::read_to_string(&input)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", input.display()))?;
            let b = backup::parse(&text)?;
            let report = backup::restore(store_ref, &b, now, force).await?;
            let text = format!("{report} into the {} store", store_ref.backend());
            audit(
                src,
                now,
                actor,
                "restore",
                &input.display().to_string(),
                &text,
            );
            Output::line(text)
        }
        Command::ImportPython {
            from_redis,
            from_redis_password,
            dry_run,
        } => {
            let config = mcp_authz::Config::from_source(src).map_err(|e| {
                anyhow::anyhow!(
                    "import-python needs this gateway's authorization-server configuration (its services and scopes): {e}"
                )
            })?;
            let target = import_python::Target::from_config(&config);
            let py = import_python::PythonRedis::open(&from_redis, from_redis_password.as_deref())?;
            let plan = import_python::plan(&py, store_ref, &target, now).await?;
            if dry_run {
                Output::text(import_python::render(py.display(), &plan, None, now))
            } else {
                let applied = import_python::apply(store_ref, &plan).await?;
                let text = import_python::render(py.display(), &plan, Some(&applied), now);
                let summary = text.lines().last().unwrap_or_default().to_string();
                audit(src, now, actor, "import-python", py.display(), &summary);
                Output::text(text)
            }
        }
        Command::Flows { client } => Output::text(flows::render(
            &flows::flows(store_ref, client.as_deref()).await?,
        )),
        Command::Up(_)
        | Command::AddUser { .. }
        | Command::GenerateSecrets { .. }
        | Command::CheckHealth { .. } => bail!("not an operator command"),
    };
    Ok(out)
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
