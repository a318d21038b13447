//! Everything a request handler needs, shared behind one `Arc`.

use std::sync::Arc;

use gateway_common::clock::SharedClock;
use gateway_common::revocation::RevocationEvent;
use gateway_store::Store;
use tokio::sync::broadcast;

use crate::cimd::CimdResolver;
use crate::config::Config;
use crate::error::OAuthError;
use crate::keys::KeyManager;
use crate::metrics::Metrics;
use crate::records::{client_key, ClientRecord};
use crate::signin::IdentityProvider;

#[derive(Debug)]
pub struct Inner {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub keys: Arc<KeyManager>,
    pub clock: SharedClock,
    pub providers: Vec<Arc<dyn IdentityProvider>>,
    pub cimd: CimdResolver,
    pub metrics: Metrics,
    /// Revocations seen on the store channel, fanned out to `/revocations/stream`.
    pub revocations: broadcast::Sender<RevocationEvent>,
    /// One per process (not per worker): `http::rate_limit`.
    pub rate_limits: crate::http::rate_limit::RateLimiter,
}

#[derive(Debug, Clone)]
pub struct AppState(pub Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Inner {
    pub fn now(&self) -> u64 {
        self.clock.now_secs()
    }

    /// A registered client (live, not expired) or the client a metadata document describes.
    pub async fn find_client(&self, client_id: &str) -> Result<Option<ClientRecord>, OAuthError> {
        if client_id.is_empty() || client_id.len() > 2000 {
            return Ok(None);
        }
        if self.cimd.is_document_url(client_id) {
            return self.cimd.resolve(client_id).await.map(Some);
        }
        let Some(raw) = self.store.get(&client_key(client_id)).await? else {
            return Ok(None);
        };
        let rec: ClientRecord = serde_json::from_slice(&raw)
            .map_err(|e| OAuthError::Internal(format!("client record: {e}")))?;
        if rec.expires_at.is_some_and(|exp| exp <= self.now()) {
            return Ok(None);
        }
        Ok(Some(rec))
    }
}
