//! Everything a request handler needs, shared behind one `Arc`.

use std::sync::Arc;

use gateway_common::audit::AuditEvent;
use gateway_common::clock::SharedClock;
use gateway_common::flow::{flow_key, flow_value, FlowStep, FLOW_TTL};
use gateway_common::revocation::RevocationEvent;
use gateway_store::Store;
use tokio::sync::broadcast;

use crate::cimd::CimdResolver;
use crate::config::Config;
use crate::keys::KeyManager;
use crate::metrics::Metrics;
use crate::protocol::error::OAuthError;
use crate::protocol::records::{client_key, ClientRecord};
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
    pub rate_limits: crate::budgets::RateLimiter,
    /// Security events (`AUDIT_LOG_FILE`).
    pub audit: gateway_common::audit::AuditLog,
    /// Open `/revocations/stream` subscriptions (capped).
    pub feed_subscribers: Arc<std::sync::atomic::AtomicUsize>,
    /// Flow records already written by this process (`flow`).
    pub flow_recorded: gateway_common::flow::Recorded,
    /// Responses not yet sent, for a bounded stop (`gateway_common::lifecycle`).
    pub in_flight: gateway_common::lifecycle::InFlight,
    /// Set once on stop: `/revocations/stream` bodies end when it turns true.
    pub closing: tokio::sync::watch::Sender<bool>,
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
    /// The scope a client asked for, against this server's configuration
    /// ([`crate::protocol::scope::resolve_scope`]).
    pub fn resolve_scope(
        &self,
        requested: Option<&str>,
        client: &ClientRecord,
    ) -> Result<String, OAuthError> {
        crate::protocol::scope::resolve_scope(
            requested,
            client.metadata.scope.as_deref(),
            &self.config.scopes_supported,
            &self.config.default_scope,
        )
    }

    /// The resources a client asked for ([`crate::protocol::scope::resolve_resources`]).
    pub fn resolve_resources(&self, requested: &[String]) -> Result<Vec<String>, OAuthError> {
        let configured: Vec<&str> = self
            .config
            .services
            .iter()
            .map(|s| s.resource.as_str())
            .collect();
        crate::protocol::scope::resolve_resources(requested, &configured)
    }

    /// Ends every `/revocations/stream` body cleanly (stop).
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once [`Inner::close_streams`] has been called.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.closing.subscribe();
        async move {
            let _ = rx.wait_for(|closed| *closed).await;
        }
    }

    pub fn now(&self) -> u64 {
        self.clock.now_secs()
    }

    /// Writes an audit line and counts it.
    pub fn audit(&self, event: AuditEvent) {
        let kind = event.kind();
        if self.audit.record(self.now(), event) {
            self.metrics
                .audit_events
                .get_or_create(&crate::metrics::EventLabel { event: kind })
                .inc();
        }
    }

    /// Records that `client_id` reached `step` (first time only, see
    /// `gateway_common::flow`). Fire-and-forget: spawned, never awaited by the
    /// request, a failure logged at debug.
    pub fn flow(&self, client_id: &str, step: FlowStep) {
        let key = flow_key(client_id, step);
        // A refresh happens again and again; its record is written once.
        if !self.flow_recorded.first_time(&key, self.now()) {
            return;
        }
        let store = self.store.clone();
        let value = flow_value(self.now());
        tokio::spawn(async move {
            if let Err(e) = store.put_if_absent(&key, &value, Some(FLOW_TTL)).await {
                tracing::debug!(error = %e, step = step.as_str(), "flow step not recorded");
            }
        });
    }

    /// A registered client (live, not expired) or the client a metadata
    /// document describes, fetching the document if it is not cached. Only for
    /// routes where the client is being authorized or authenticated
    /// (`/authorize`, consent, `/token`): a route that answers strangers
    /// without that purpose uses [`Self::find_known_client`].
    ///
    /// Nothing is written for a document here: a stranger can name any URL.
    /// The client's flow records and audit line wait for its first completed
    /// step ([`Self::document_client_completed_step`]).
    pub async fn find_client(&self, client_id: &str) -> Result<Option<ClientRecord>, OAuthError> {
        if client_id.is_empty() || client_id.len() > 2000 {
            return Ok(None);
        }
        if self.cimd.is_document_url(client_id) {
            return self.cimd.resolve(client_id).await.map(Some);
        }
        self.find_registered_client(client_id).await
    }

    /// [`Self::find_client`] without any fetch: a metadata-document client
    /// only if its document is cached (else `None`).
    pub async fn find_known_client(
        &self,
        client_id: &str,
    ) -> Result<Option<ClientRecord>, OAuthError> {
        if client_id.is_empty() || client_id.len() > 2000 {
            return Ok(None);
        }
        if self.cimd.is_document_url(client_id) {
            return Ok(self.cimd.cached(client_id).await);
        }
        self.find_registered_client(client_id).await
    }

    async fn find_registered_client(
        &self,
        client_id: &str,
    ) -> Result<Option<ClientRecord>, OAuthError> {
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

    /// A metadata-document client completed a step (a code or a token was
    /// issued to it): now, and once, its document counts as fetched and the
    /// client as registered (flow records, the `ClientRegistered` audit line).
    /// Before this, a URL anyone typed leaves no trace in the store. A no-op
    /// for registered clients, and after the first time (per process, then
    /// `put_if_absent` across processes and restarts).
    pub async fn document_client_completed_step(&self, client_id: &str) {
        if !self.cimd.is_document_url(client_id) {
            return;
        }
        let registered = flow_key(client_id, FlowStep::Registered);
        if !self.flow_recorded.first_time(&registered, self.now()) {
            return;
        }
        self.flow(client_id, FlowStep::MetadataFetched);
        // Awaited (once per client per process) so the audit line follows the
        // record that is new in the store, not every process's first sight.
        match self
            .store
            .put_if_absent(&registered, &flow_value(self.now()), Some(FLOW_TTL))
            .await
        {
            Ok(true) => self.audit(AuditEvent::ClientRegistered {
                client_id: client_id.to_string(),
                via: "cimd",
                client_name: self
                    .cimd
                    .cached(client_id)
                    .await
                    .and_then(|c| c.metadata.client_name),
            }),
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "flow step not recorded"),
        }
    }
}

/// A store failure is "try again later" to the client (RFC 6749 §5.2
/// `temporarily_unavailable`); the detail stays in the log.
impl From<gateway_store::StoreError> for OAuthError {
    fn from(e: gateway_store::StoreError) -> Self {
        OAuthError::Unavailable(e.to_string())
    }
}
