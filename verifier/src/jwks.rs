//! Background key loading: at start (retrying until it works), every
//! `JWKS_REFRESH_INTERVAL`, and when a request names an unknown `kid` — at most
//! once per `JWKS_MIN_REFETCH`, so a stream of forged `kid`s cannot turn the
//! verifier into a load generator against the authz-server.

use std::sync::Arc;
use std::time::Duration;

use gateway_common::keys::{JwkSet, KeyTable};
use tokio::time::Instant;

use crate::verifier::Verifier;

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("fetching the JWKS failed: {0}")]
    Fetch(#[from] reqwest::Error),
    #[error("the JWKS answered HTTP {0}")]
    Status(u16),
    #[error("the JWKS holds no usable key (every key needs kid and alg)")]
    NoUsableKey,
}

pub async fn fetch(client: &reqwest::Client, url: &str) -> Result<KeyTable, JwksError> {
    let resp = client.get(url).send().await?;
    if !resp.status().is_success() {
        return Err(JwksError::Status(resp.status().as_u16()));
    }
    let set: JwkSet = resp.json().await?;
    let table = KeyTable::from_jwks(&set);
    if table.is_empty() {
        return Err(JwksError::NoUsableKey);
    }
    Ok(table)
}

/// Runs forever; abort the task to stop it.
pub async fn run(verifier: Arc<Verifier>, client: reqwest::Client) {
    let url = verifier.config().jwks_url();
    let refresh = verifier.config().jwks_refresh;
    let min_gap = verifier.config().jwks_min_refetch;
    let mut retry = Duration::from_millis(100);
    loop {
        let last_fetch = Instant::now();
        let next_wait = match fetch(&client, &url).await {
            Ok(table) => {
                verifier.metrics.key_refresh_ok.inc();
                tracing::info!(keys = table.len(), "loaded signing keys");
                verifier.set_keys_fetched(table, last_fetch);
                retry = Duration::from_millis(100);
                refresh
            }
            Err(e) => {
                verifier.metrics.key_refresh_failed.inc();
                tracing::warn!(error = %e, url = %url, "JWKS refresh failed");
                let wait = retry;
                retry = (retry * 2).min(Duration::from_secs(5));
                // Retry soon while we have nothing; otherwise the old keys serve on.
                if verifier.keys.load().is_empty() {
                    wait
                } else {
                    wait.min(refresh)
                }
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(next_wait) => {}
            _ = verifier.key_refresh_wanted.notified() => {
                // Never later than the periodic refresh would have fetched.
                let earliest = last_fetch + min_gap.min(refresh);
                if Instant::now() < earliest {
                    tokio::time::sleep_until(earliest).await;
                }
            }
        }
    }
}
