//! The revocation feed from Redis (when `REDIS_URL` is set): subscribe to
//! [`REVOCATION_CHANNEL`] first, then list `revoked:*` (SCAN, never KEYS) and
//! read each record (the authz-server writes the [`RevocationEvent`] JSON
//! there, with a TTL until the token's `exp`, before publishing). Anything
//! revoked while the list is read arrives on the subscription, so a
//! (re)connect never loses one.
//!
//! Pub/sub has no keepalive, so contact is refreshed by a `PING` every few
//! seconds while the subscription is open; a failed ping or an ended
//! subscription stops the refreshes, and after `REVOCATION_STALENESS_BOUND`
//! the verifier fails closed exactly as with the HTTP feed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use gateway_common::revocation::{RevocationEvent, REVOCATION_CHANNEL, REVOKED_PREFIX};
use gateway_store::{RedisStore, Store};

use crate::verifier::Verifier;

#[derive(Debug, thiserror::Error)]
pub enum RedisFeedError {
    #[error("{0}")]
    Store(#[from] gateway_store::StoreError),
    #[error("the subscription ended")]
    Ended,
}

/// Runs forever; abort the task to stop it.
pub async fn run(verifier: Arc<Verifier>, store: Arc<RedisStore>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let outcome = session(&verifier, &store).await;
        verifier.feed.set_connected(false);
        let Err(e) = outcome;
        tracing::warn!(error = %e, "Redis revocation feed lost; reconnecting");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

enum Never {}

async fn session(verifier: &Verifier, store: &RedisStore) -> Result<Never, RedisFeedError> {
    let mut events = store.subscribe(REVOCATION_CHANNEL).await?;
    let keys = store.keys_with_prefix(REVOKED_PREFIX).await?;
    let now = verifier.clock.now_secs();
    let records: Vec<Option<Vec<u8>>> = futures_util::stream::iter(keys)
        .map(|k| async move { store.get(&k).await })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let parsed: Vec<RevocationEvent> = records
        .into_iter()
        .flatten()
        .filter_map(|raw| serde_json::from_slice(&raw).ok())
        .filter(|ev: &RevocationEvent| ev.exp > now)
        .collect();
    let added = verifier.revoke_many(parsed.iter().map(|ev| (ev.jti.as_str(), ev.exp)));
    verifier.metrics.feed_reconnects.inc();
    verifier.feed.touch(verifier.clock.now_secs());
    verifier.feed.set_connected(true);
    tracing::info!(
        added,
        total = verifier.revoked_count(),
        "Redis revocation feed connected"
    );

    let ping_every = (verifier.config().staleness_bound / 3)
        .clamp(Duration::from_millis(200), Duration::from_secs(5));
    let mut ping = tokio::time::interval(ping_every);
    loop {
        tokio::select! {
            msg = events.next() => match msg {
                Some(raw) => {
                    verifier.feed.touch(verifier.clock.now_secs());
                    crate::feed::apply_event(verifier, &raw);
                }
                None => return Err(RedisFeedError::Ended),
            },
            _ = ping.tick() => {
                store.ping().await?;
                verifier.feed.touch(verifier.clock.now_secs());
            }
        }
    }
}
