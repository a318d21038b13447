//! `mcp-gateway backup --out FILE` / `restore --in FILE [--force]`.
//!
//! Every gateway record (prefixes [`BACKUP_PREFIXES`]) is written as it is
//! stored — the signing keys stay sealed, secrets stay hashed — with its expiry
//! as an ABSOLUTE unix time, so the time a backup spends on disk counts: a
//! refresh token that would have lapsed yesterday is not brought back to life.
//! The format is backend-neutral, which makes backup + restore the migration
//! path between Redis and the embedded store (both directions).

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use gateway_store::Store;
use serde::{Deserialize, Serialize};

use crate::error::{AdminError, AdminResult};

pub const FORMAT: &str = "mcp-gateway-backup";
pub const VERSION: u32 = 1;

/// Everything the gateway keeps: the authorization server's records, published
/// revocations and flow diagnostics.
pub const BACKUP_PREFIXES: [&str; 3] = [
    "authz:",
    gateway_common::revocation::REVOKED_PREFIX,
    gateway_common::flow::FLOW_PREFIX,
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    pub format: String,
    pub version: u32,
    /// Unix time the backup was taken.
    pub created_at: u64,
    /// `redis` or `embedded`.
    pub source_backend: String,
    pub records: Vec<BackupRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    pub key: String,
    #[serde(flatten)]
    pub value: Value,
    /// Absolute unix time the record lapses; `None`: never.
    pub expires_at: Option<u64>,
}

/// Values are kept readable when they are UTF-8 (they are JSON or text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    Text(String),
    Base64(String),
}

impl Value {
    fn from_bytes(raw: Vec<u8>) -> Self {
        match String::from_utf8(raw) {
            Ok(s) => Value::Text(s),
            Err(e) => Value::Base64(STANDARD.encode(e.into_bytes())),
        }
    }
    fn to_bytes(&self) -> AdminResult<Vec<u8>> {
        match self {
            Value::Text(s) => Ok(s.clone().into_bytes()),
            Value::Base64(b) => STANDARD
                .decode(b)
                .map_err(|e| AdminError::BadBackup(format!("a base64 value does not decode: {e}"))),
        }
    }
}

/// Reads every live record. A TTL is turned into an absolute expiry, rounded
/// up to whole seconds so a record is never cut short.
pub async fn backup(store: &dyn Store, now: u64) -> AdminResult<Backup> {
    let mut records = Vec::new();
    for prefix in BACKUP_PREFIXES {
        let mut keys = store.keys_with_prefix(prefix).await?;
        keys.sort();
        for key in keys {
            // Value first, then TTL: a record that expires in between is skipped
            // rather than saved as permanent.
            let Some(raw) = store.get(&key).await? else {
                continue;
            };
            let expires_at = match store.ttl(&key).await? {
                None => continue,
                Some(None) => None,
                Some(Some(ttl)) => Some(now + ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)),
            };
            records.push(BackupRecord {
                key,
                value: Value::from_bytes(raw),
                expires_at,
            });
        }
    }
    Ok(Backup {
        format: FORMAT.to_string(),
        version: VERSION,
        created_at: now,
        source_backend: store.backend().to_string(),
        records,
    })
}

pub fn parse(text: &str) -> AdminResult<Backup> {
    let b: Backup = serde_json::from_str(text)
        .map_err(|e| AdminError::BadBackup(format!("not a backup: {e}")))?;
    if b.format != FORMAT || b.version != VERSION {
        return Err(AdminError::BadBackup(format!(
            "format {} version {} is not {FORMAT} version {VERSION}",
            b.format, b.version
        )));
    }
    Ok(b)
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    pub restored: usize,
    pub replaced: usize,
    /// Lapsed while the backup was on disk; not restored.
    pub expired: usize,
}

impl std::fmt::Display for RestoreReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "restored {} record(s) ({} replaced existing ones); skipped {} that expired since the backup",
            self.restored, self.replaced, self.expired
        )
    }
}

/// Writes the backup's records that are still alive at `now` (the rest
/// lapsed on disk and are skipped). Without `force`, nothing is written when
/// any of them would replace a live record; each write is also
/// `put_if_absent`, so a record created meanwhile is not clobbered either.
pub async fn restore(
    store: &dyn Store,
    backup: &Backup,
    now: u64,
    force: bool,
) -> AdminResult<RestoreReport> {
    let mut report = RestoreReport::default();
    let mut live = Vec::with_capacity(backup.records.len());
    for r in &backup.records {
        let ttl = match r.expires_at {
            None => None,
            Some(exp) if exp <= now => {
                report.expired += 1;
                continue;
            }
            Some(exp) => Some(Duration::from_secs(exp - now)),
        };
        let exists = store.get(&r.key).await?.is_some();
        live.push((r, ttl, exists));
    }
    let existing: Vec<&str> = live
        .iter()
        .filter(|(_, _, exists)| *exists)
        .map(|(r, _, _)| r.key.as_str())
        .collect();
    if let (false, Some(first)) = (force, existing.first()) {
        return Err(AdminError::WouldOverwrite {
            count: existing.len(),
            first: first.to_string(),
        });
    }
    for (r, ttl, exists) in live {
        let raw = r.value.to_bytes()?;
        if force {
            store.put(&r.key, &raw, ttl).await?;
        } else if !store.put_if_absent(&r.key, &raw, ttl).await? {
            return Err(AdminError::WouldOverwrite {
                count: 1,
                first: r.key.clone(),
            });
        }
        report.restored += 1;
        report.replaced += usize::from(exists);
    }
    Ok(report)
}
