//! The revocation feed: keeps [`Verifier`]'s revoked set current.
//!
//! HTTP (default): open `GET ${AUTHZ_URL}/revocations/stream` first, then read
//! the snapshot `GET ${AUTHZ_URL}/revocations`, then apply stream events. Any
//! revocation made while the snapshot was read is in the stream's buffer, so
//! a (re)connect never loses one. Every byte received (events and the
//! `: keepalive` comments the authz-server sends every 15 s) counts as contact;
//! a stream silent for `REVOCATION_STALENESS_BOUND` is dropped and reopened
//! with backoff. While contact is older than the bound, `/verify` answers 503
//! and `/ready` says why (fail closed).
//!

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use gateway_common::revocation::RevocationEvent;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::verifier::Verifier;

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{0} answered HTTP {1}")]
    Status(&'static str, u16),
    #[error("the snapshot is not valid JSON: {0}")]
    Snapshot(#[from] serde_json::Error),
    #[error("the stream was silent longer than the staleness bound")]
    Silent,
    #[error("the stream ended")]
    Ended,
    #[error("{0}")]
    Stream(#[from] gateway_common::sse::Overflow),
}

/// Runs forever; abort the task to stop it.
pub async fn run_http(verifier: Arc<Verifier>, client: reqwest::Client) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let outcome = session(&verifier, &client).await;
        verifier.feed.set_connected(false);
        let Err(e) = outcome;
        tracing::warn!(error = %e, "revocation feed lost; reconnecting");
        if verifier.feed.lag(verifier.clock.now_secs()).is_some() {
            // We had been connected: start the backoff again from the bottom.
            backoff = backoff.min(Duration::from_millis(400));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

enum Never {}

/// Adds the feed secret, when one is configured.
fn with_secret(
    req: reqwest::RequestBuilder,
    cfg: &crate::config::VerifierConfig,
) -> reqwest::RequestBuilder {
    match &cfg.revocation_feed_secret {
        Some(secret) => req.header(reqwest::header::AUTHORIZATION, secret.bearer()),
        None => req,
    }
}

async fn session(verifier: &Verifier, client: &reqwest::Client) -> Result<Never, FeedError> {
    let cfg = verifier.config();
    let idle = cfg.staleness_bound;
    let stream = tokio::time::timeout(
        idle,
        with_secret(
            client
                .get(cfg.revocation_stream_url())
                .header(reqwest::header::ACCEPT, "text/event-stream"),
            cfg,
        )
        .send(),
    )
    .await
    .map_err(|_| FeedError::Silent)??;
    if !stream.status().is_success() {
        return Err(FeedError::Status(
            "revocation stream",
            stream.status().as_u16(),
        ));
    }
    let snapshot = tokio::time::timeout(
        Duration::from_secs(60).max(idle),
        with_secret(client.get(cfg.revocations_url()), cfg).send(),
    )
    .await
    .map_err(|_| FeedError::Silent)??;
    if !snapshot.status().is_success() {
        return Err(FeedError::Status(
            "revocation snapshot",
            snapshot.status().as_u16(),
        ));
    }
    let body = snapshot.bytes().await?;
    let added = apply_snapshot(verifier, &body)?;
    drop(body);
    verifier.metrics.feed_reconnects.inc();
    verifier.feed.touch(verifier.clock.now_secs());
    verifier.feed.set_connected(true);
    tracing::info!(
        added,
        total = verifier.revoked_count(),
        "revocation feed connected"
    );

    // Revocation events are small: a line or an event past 64 KiB is a broken stream.
    let mut parser = gateway_common::sse::Parser::with_limits(64 * 1024, 64 * 1024);
    let mut body = stream.bytes_stream();
    loop {
        let chunk = match tokio::time::timeout(idle, body.next()).await {
            Err(_) => return Err(FeedError::Silent),
            Ok(None) => return Err(FeedError::Ended),
            Ok(Some(chunk)) => chunk?,
        };
        verifier.feed.touch(verifier.clock.now_secs());
        for event in parser.feed(&chunk)? {
            // An event with no data (a priming `id:` or `retry:`) carries no revocation.
            if !event.data.is_empty() {
                apply_event(verifier, event.data.as_bytes());
            }
        }
    }
}

/// One stream event: a [`RevocationEvent`] JSON.
pub fn apply_event(verifier: &Verifier, data: &[u8]) {
    match serde_json::from_slice::<RevocationEvent>(data) {
        Ok(ev) => verifier.revoke(&ev.jti, ev.exp),
        Err(e) => tracing::warn!(error = %e, "ignoring a malformed revocation event"),
    }
}

/// Merges a `RevocationSnapshot` body, streaming its entries into the set
/// without building the whole list (a million ids would otherwise cost a
/// second copy of the set).
pub fn apply_snapshot(verifier: &Verifier, body: &[u8]) -> Result<usize, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut pairs: Vec<(u64, u64)> = Vec::new();
    SnapshotSeed {
        verifier,
        out: &mut pairs,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(verifier.revoke_hashed(pairs))
}

#[derive(Deserialize)]
struct BorrowedEvent<'a> {
    #[serde(borrow)]
    jti: Cow<'a, str>,
    exp: u64,
}

struct SnapshotSeed<'v> {
    verifier: &'v Verifier,
    out: &'v mut Vec<(u64, u64)>,
}

impl<'de> DeserializeSeed<'de> for SnapshotSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SnapshotSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a revocation snapshot {\"revoked\": [...]}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "revoked" {
                map.next_value_seed(EventsSeed {
                    verifier: self.verifier,
                    out: &mut *self.out,
                })?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct EventsSeed<'v> {
    verifier: &'v Verifier,
    out: &'v mut Vec<(u64, u64)>,
}

impl<'de> DeserializeSeed<'de> for EventsSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EventsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of revocation events")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if let Some(n) = seq.size_hint() {
            self.out.reserve(n);
        }
        while let Some(ev) = seq.next_element::<BorrowedEvent<'de>>()? {
            self.out
                .push((self.verifier.revoked.id_hash(&ev.jti), ev.exp));
        }
        Ok(())
    }
}

/// Forgets ids of tokens that can no longer be accepted anyway.
pub async fn run_prune(verifier: Arc<Verifier>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let now = verifier.clock.now_secs();
        let removed = verifier
            .revoked
            .prune(now, verifier.config().clock_leeway.as_secs());
        if removed > 0 {
            tracing::debug!(removed, "pruned expired revocations");
        }
    }
}
