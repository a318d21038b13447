//! The local admin endpoint of `mcp-gateway up`: operator commands while
//! the gateway runs on its embedded store.
//!
//! The embedded store is one file that one process holds open, so while
//! `up` runs, `mcp-gateway clients list` (or any operator command) cannot
//! open it. `up` therefore listens on a Unix socket beside the store
//! (`<data dir>/admin.sock`, mode 0600: file permissions decide who may
//! connect, and only a peer with the gateway's own uid — or root — is
//! served); it is never on the network. A command finds the socket, sends
//! itself there as JSON, and prints what the gateway ran — the same
//! [`crate::commands::execute`], so the output is identical. With Redis,
//! every process opens the store itself, and no socket is used.
//!
//! Protocol: one JSON line each way per connection (request: the command and
//! who asks; response: [`Output`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use gateway_common::config::Source;
use gateway_store::Store;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::commands::{execute, Command, Output};

/// The socket's name in the data directory (beside the embedded store).
pub const SOCKET_NAME: &str = "admin.sock";

/// Requests larger than this are refused (a command line is small).
const MAX_REQUEST_BYTES: u64 = 64 * 1024;

#[derive(Debug, Serialize, Deserialize)]
struct Request {
    command: Command,
    /// Who asks, as the client knows it (its OS user); the server adds the uid it sees.
    actor: String,
}

/// Where the socket of a gateway using this configuration is: beside its
/// embedded store. `None` with Redis.
pub fn socket_path(src: &Source) -> Option<PathBuf> {
    match gateway_store::config::StoreConfig::from_source(src).ok()? {
        gateway_store::config::StoreConfig::Embedded { path } => Some(
            path.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .join(SOCKET_NAME),
        ),
        gateway_store::config::StoreConfig::Redis(_) => None,
    }
}

/// Who runs a command here, for the audit log: the person behind `sudo`,
/// else the OS user.
pub fn local_actor(src: &Source) -> String {
    let user = src
        .get("SUDO_USER")
        .or_else(|| src.get("USER"))
        .or_else(|| src.get("LOGNAME"))
        .unwrap_or("unknown");
    format!("operator:{user}")
}

/// Paths in a command are the caller's, relative to its directory; the
/// gateway runs elsewhere.
fn absolute_paths(command: Command) -> anyhow::Result<Command> {
    use crate::commands::Command as C;
    Ok(match command {
        C::Backup { out } => C::Backup {
            out: std::path::absolute(&out)?,
        },
        C::Restore { input, force } => C::Restore {
            input: std::path::absolute(&input)?,
            force,
        },
        other => other,
    })
}

/// Runs `command` in the gateway that holds this configuration's embedded
/// store, when one is running (its socket accepts); `None` otherwise.
pub async fn forward_if_running(command: &Command, src: &Source) -> anyhow::Result<Option<Output>> {
    let Some(path) = socket_path(src) else {
        return Ok(None);
    };
    let stream = match UnixStream::connect(&path).await {
        Ok(s) => s,
        // No socket, or a stale one left by a gateway that is gone.
        Err(_) => return Ok(None),
    };
    let request = Request {
        command: absolute_paths(command.clone())?,
        actor: local_actor(src),
    };
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(&request)?;
    line.push(b'\n');
    write
        .write_all(&line)
        .await
        .with_context(|| format!("sending the command to the gateway at {}", path.display()))?;
    let mut answer = String::new();
    BufReader::new(read)
        .read_line(&mut answer)
        .await
        .with_context(|| format!("reading the gateway's answer at {}", path.display()))?;
    let out: Output = serde_json::from_str(&answer).with_context(|| {
        format!(
            "the gateway at {} answered something unreadable",
            path.display()
        )
    })?;
    Ok(Some(out))
}

/// The listening socket; removes its file when dropped.
#[derive(Debug)]
pub struct AdminSocket {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl AdminSocket {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the socket at `path` (mode 0600 before it appears under its name)
/// and serves operator commands on `store` with `src` (the gateway's own
/// configuration) until dropped.
pub fn serve(path: &Path, store: Arc<dyn Store>, src: Source) -> anyhow::Result<AdminSocket> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // A socket left by a gateway that is gone (nothing accepts on it) is replaced.
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "{} answers: another gateway runs on this data directory",
                path.display()
            );
        }
        std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    }
    // Bound under a temporary name, restricted, then renamed: the socket is
    // never reachable under its name with looser permissions.
    let tmp = path.with_extension(format!("sock.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener =
        UnixListener::bind(&tmp).with_context(|| format!("binding {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    let owner = std::fs::metadata(&tmp)?.uid();
    std::fs::rename(&tmp, path).with_context(|| format!("creating {}", path.display()))?;
    let task = tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, say: wait instead of spinning.
                    tracing::warn!(error = %e, "admin socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (store, src) = (store.clone(), src.clone());
            tokio::spawn(async move {
                if let Err(e) = answer(stream, owner, store, &src).await {
                    tracing::warn!(error = %e, "admin socket request failed");
                }
            });
        }
    });
    Ok(AdminSocket {
        path: path.to_path_buf(),
        task,
    })
}

async fn answer(
    stream: UnixStream,
    owner: u32,
    store: Arc<dyn Store>,
    src: &Source,
) -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt;
    let uid = stream.peer_cred()?.uid();
    let (read, mut write) = stream.into_split();
    let out = if uid != owner && uid != 0 {
        Output {
            text: String::new(),
            error: Some(format!(
                "uid {uid} may not use this gateway's admin socket (only uid {owner})"
            )),
        }
    } else {
        let mut line = String::new();
        BufReader::new(read.take(MAX_REQUEST_BYTES))
            .read_line(&mut line)
            .await?;
        match serde_json::from_str::<Request>(&line) {
            Err(e) => Output {
                text: String::new(),
                error: Some(format!("unreadable admin request: {e}")),
            },
            Ok(req) => {
                let actor = format!("{} (uid {uid}, admin socket)", req.actor);
                match execute(req.command, src, Some(store), &actor).await {
                    Ok(out) => out,
                    Err(e) => Output {
                        text: String::new(),
                        error: Some(format!("{e:#}")),
                    },
                }
            }
        }
    };
    let mut line = serde_json::to_vec(&out)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    write.shutdown().await?;
    Ok(())
}
