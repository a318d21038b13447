//! `mcp-gateway generate-secrets` and `rotate-keys`.
//!
//! `generate-secrets` writes `GATEWAY_JWT_SECRET` (seals the signing keys at
//! rest), `REDIS_PASSWORD` and `REVOCATION_FEED_SECRET` (what verifiers present
//! to follow the revocation feed) into `.env`, editing only those lines; with
//! `--rsa-key` it also writes `JWT_PRIVATE_KEY_B64` (an RS256 key, the Python
//! gateway's variable — by default the authorization server generates an ES256
//! key in the store instead). Values already set are kept unless `--force`.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use gateway_common::config::Source;
use gateway_common::crypto::random_token;

/// What happened to one variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Added,
    Replaced,
    /// Already had a value; kept (no `--force`).
    Kept,
}

/// Sets `vars` in the `.env` text: a line `NAME=…` (or `export NAME=…`) with a
/// value is replaced only when `force`; an empty one is filled; a missing one
/// is appended. Every other line — comments, blank lines, order — is kept.
pub fn update_env_text(
    text: &str,
    vars: &[(&str, String)],
    force: bool,
) -> (String, Vec<(String, Outcome)>) {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut outcomes = Vec::new();
    for (name, value) in vars {
        let found = lines.iter().position(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("export ").unwrap_or(l).trim_start();
            l.strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        });
        let outcome = match found {
            Some(i) => {
                let current = lines[i].split_once('=').map_or("", |(_, v)| v.trim());
                let current = current.trim_matches(|c| c == '"' || c == '\'');
                if !current.is_empty() && !force {
                    Outcome::Kept
                } else {
                    let replaced = !current.is_empty();
                    lines[i] = format!("{name}={value}");
                    if replaced {
                        Outcome::Replaced
                    } else {
                        Outcome::Added
                    }
                }
            }
            None => {
                lines.push(format!("{name}={value}"));
                Outcome::Added
            }
        };
        outcomes.push((name.to_string(), outcome));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    (out, outcomes)
}

/// Fresh values: 32 random bytes for the key-encryption secret and the feed
/// secret, 24 for the Redis password (URL-safe base64, so it can sit in a
/// `redis://` URL).
pub fn fresh_secrets(rsa_key: bool) -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut vars = vec![
        ("GATEWAY_JWT_SECRET", random_token(32)),
        ("REDIS_PASSWORD", random_token(24)),
        ("REVOCATION_FEED_SECRET", random_token(32)),
    ];
    if rsa_key {
        let pem = mcp_authz::keys::generate_pem(mcp_authz::config::SigningAlg::Rs256)?;
        vars.push(("JWT_PRIVATE_KEY_B64", STANDARD.encode(pem)));
    }
    Ok(vars)
}

/// What happened to each variable, in order.
pub type Outcomes = Vec<(String, Outcome)>;

/// Updates the file (created with mode 0600 when new; it holds secrets).
pub fn generate_into(
    file: &Path,
    rsa_key: bool,
    force: bool,
) -> anyhow::Result<Vec<(String, Outcome)>> {
    generate_into_checked(file, rsa_key, force, |_| Ok(None)).map(|(o, _)| o)
}

/// [`generate_into`], calling `before_secret` with the new
/// `GATEWAY_JWT_SECRET` before the file changes when that value is written
/// (see [`protect_sealed_keys`]); an error leaves the file untouched. Returns
/// the outcomes and `before_secret`'s note.
pub fn generate_into_checked(
    file: &Path,
    rsa_key: bool,
    force: bool,
    before_secret: impl FnOnce(&str) -> anyhow::Result<Option<String>>,
) -> anyhow::Result<(Outcomes, Option<String>)> {
    let text = match fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let vars = fresh_secrets(rsa_key)?;
    let (new_text, outcomes) = update_env_text(&text, &vars, force);
    if outcomes.iter().all(|(_, o)| *o == Outcome::Kept) {
        return Ok((outcomes, None));
    }
    let secret_written = outcomes
        .iter()
        .any(|(n, o)| n == "GATEWAY_JWT_SECRET" && *o != Outcome::Kept);
    let note = match vars.iter().find(|(n, _)| *n == "GATEWAY_JWT_SECRET") {
        Some((_, secret)) if secret_written => before_secret(secret)?,
        _ => None,
    };
    let tmp = file.with_extension("tmp-mcp-gateway");
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(new_text.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, file).with_context(|| format!("replacing {}", file.display()))?;
    Ok((outcomes, note))
}

/// The values an env file sets (`NAME=value`, `export NAME=value`, quotes
/// stripped), for what `generate-secrets` must know before it writes.
pub fn parse_env_text(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            if l.starts_with('#') {
                return None;
            }
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=')?;
            let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
            Some((k.trim().to_string(), v.to_string()))
        })
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .collect()
}

/// What `generate-secrets` does about the signing keys when it writes
/// `GATEWAY_JWT_SECRET`, which seals them at rest: it never leaves them
/// sealed under a key nobody has any more.
///
/// * The secret is new (the keys were sealed with the key-encryption key
///   file, as after `up`): the authorization server re-seals them under the
///   secret at its next start, reading that file once; the note says so.
/// * The secret replaces another (`--force`): the keys are re-sealed now,
///   from the old secret to the new one, before the file changes. When the
///   store cannot be opened (the embedded store of a running gateway, Redis
///   down) it refuses, naming the way out.
///
/// `src` is the configuration as it is now (process environment over the
/// env file); `new_secret` the value about to be written.
pub async fn protect_sealed_keys(src: &Source, new_secret: &str) -> anyhow::Result<Option<String>> {
    let store_cfg = gateway_store::config::StoreConfig::from_source(src)?;
    if let gateway_store::config::StoreConfig::Embedded { path } = &store_cfg {
        if !path.exists() {
            // No store yet, so no keys: opening it would create one.
            return Ok(None);
        }
    }
    let lifetime = src.seconds("ACCESS_TOKEN_LIFETIME", 3600)?;
    let replacing = src.get("GATEWAY_JWT_SECRET").is_some();
    let keys = match mcp_authz::config::KeyConfig::from_source(src, lifetime) {
        Ok(k) => k,
        // Not set yet (with Redis it is required): no start has sealed
        // anything the new secret could orphan; the file case re-seals at start.
        Err(_) if !replacing => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let store = match store_cfg.open().await {
        Ok(s) => s,
        Err(e) if replacing => bail!(
            "GATEWAY_JWT_SECRET seals the signing keys, so replacing it means re-sealing them, and the store cannot be opened ({e}). Stop the gateway (the embedded store is locked while it runs) or start Redis, then run again; or run without --force to keep the current secret"
        ),
        Err(_) => return Ok(None),
    };
    match mcp_authz::keys::reseal(store.as_ref(), &keys, new_secret).await? {
        mcp_authz::keys::Reseal::NoKeys => Ok(None),
        mcp_authz::keys::Reseal::Resealed => Ok(Some(
            "the signing keys in the store were re-sealed under the new GATEWAY_JWT_SECRET; restart every instance with it".into(),
        )),
        mcp_authz::keys::Reseal::SealedByFile(path) => Ok(Some(format!(
            "the signing keys in the store are sealed with {}; the authorization server re-seals them under GATEWAY_JWT_SECRET at its next start (keep that file until then)",
            path.display()
        ))),
    }
}

/// Fails unless the configured store exists (an embedded store that is not
/// there would be created empty by opening it).
pub fn existing_store(src: &Source) -> anyhow::Result<()> {
    let store_cfg = gateway_store::config::StoreConfig::from_source(src)?;
    if let gateway_store::config::StoreConfig::Embedded { path } = &store_cfg {
        anyhow::ensure!(
            path.exists(),
            "no store at {} (STORE_PATH, or --data-dir as given to `up`): nothing to rotate",
            path.display()
        );
    }
    Ok(())
}

/// `rotate-keys`: the authorization server's own rotation (see
/// `mcp_authz::keys`). Needs only what the gateway starts from — the store
/// and its key-encryption key — no issuer; creates nothing when the store
/// holds no keys.
pub async fn rotate_keys_in(
    store: std::sync::Arc<dyn gateway_store::Store>,
    src: &Source,
) -> anyhow::Result<mcp_authz::keys::Rotation> {
    let lifetime = src.seconds("ACCESS_TOKEN_LIFETIME", 3600)?;
    let config = mcp_authz::config::KeyConfig::from_source(src, lifetime)?;
    let keys =
        mcp_authz::keys::KeyManager::open(store, &config, gateway_common::clock::system()).await?;
    keys.rotate().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_lines_change_and_existing_values_are_kept_without_force() {
        let text = "# my gateway\nBASE_DOMAIN=example.com\nREDIS_PASSWORD=\n\nexport GATEWAY_JWT_SECRET=\"old\"\n";
        let vars = vec![
            ("GATEWAY_JWT_SECRET", "new-secret".to_string()),
            ("REDIS_PASSWORD", "new-pw".to_string()),
            ("JWT_PRIVATE_KEY_B64", "pem".to_string()),
        ];
        let (out, outcomes) = update_env_text(text, &vars, false);
        assert_eq!(
            out,
            "# my gateway\nBASE_DOMAIN=example.com\nREDIS_PASSWORD=new-pw\n\nexport GATEWAY_JWT_SECRET=\"old\"\nJWT_PRIVATE_KEY_B64=pem\n"
        );
        assert_eq!(
            outcomes.iter().map(|(_, o)| o.clone()).collect::<Vec<_>>(),
            vec![Outcome::Kept, Outcome::Added, Outcome::Added]
        );
        let (out, outcomes) = update_env_text(text, &vars, true);
        assert!(out.contains("\nGATEWAY_JWT_SECRET=new-secret\n"), "{out}");
        assert!(!out.contains("old"));
        assert_eq!(outcomes[0].1, Outcome::Replaced);
        // A longer name sharing the prefix is a different variable.
        let (out, _) = update_env_text("REDIS_PASSWORD_FILE=/x\n", &vars[1..2], false);
        assert_eq!(out, "REDIS_PASSWORD_FILE=/x\nREDIS_PASSWORD=new-pw\n");
    }

    #[test]
    fn generated_file_is_private_and_secrets_are_strong() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".env");
        fs::write(&file, "BASE_DOMAIN=example.com\n").unwrap();
        let first = generate_into(&file, true, false).unwrap();
        assert!(first.iter().all(|(_, o)| *o == Outcome::Added));
        let text = fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("BASE_DOMAIN=example.com\n"));
        let secret = text
            .lines()
            .find_map(|l| l.strip_prefix("GATEWAY_JWT_SECRET="))
            .unwrap();
        assert!(secret.len() >= 32, "{secret}");
        let pem = text
            .lines()
            .find_map(|l| l.strip_prefix("JWT_PRIVATE_KEY_B64="))
            .unwrap();
        let pem = String::from_utf8(STANDARD.decode(pem).unwrap()).unwrap();
        assert!(mcp_authz::signer::validate_rsa_pem(&pem).is_ok());
        // Run again: nothing changes without --force.
        let again = generate_into(&file, true, false).unwrap();
        assert!(again.iter().all(|(_, o)| *o == Outcome::Kept));
        assert_eq!(fs::read_to_string(&file).unwrap(), text);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
