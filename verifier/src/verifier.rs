//! The verifier's state and its per-request decision, [`Verifier::check`]:
//! no I/O, no await. Keys, revocations and feed health are swapped in by the
//! background tasks (`jwks.rs`, `feed.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use gateway_common::clock::SharedClock;
use gateway_common::keys::KeyTable;
use gateway_common::revocation::grant_revocation_id;
use gateway_common::tool_policy::{AuditFile, AuditRecord, Call, Caller, ToolPolicy};
use tokio::sync::Notify;

use crate::cache::{TokenCache, TokenKey};
use crate::config::{ServiceConfig, VerifierConfig};
use crate::decision::{resource_metadata_url, Allowed, Decision, Denial, Deny, Reason, Who};
use crate::dpop::ProofHeader;
use crate::forwarded::ForwardedRequest;
use crate::identity::Verified;
use crate::jwt::{self, Expectations, TokenError};
use crate::metrics::Metrics;
use crate::negative::NegativeCache;
use crate::policy::{self, PolicyDenial};
use crate::revoked::RevokedSet;
use crate::service::match_service;
use crate::token::Extracted;
use crate::tool_policy::{McpCall, ToolMemo};

/// How fresh the revocation feed is.
#[derive(Debug, Default)]
pub struct FeedHealth {
    /// Clock seconds when the feed was last heard from (0: never).
    last_contact: AtomicU64,
    connected: AtomicBool,
}

impl FeedHealth {
    pub fn touch(&self, now: u64) {
        self.last_contact.fetch_max(now.max(1), Ordering::AcqRel);
    }

    pub fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Release);
    }

    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Seconds since last contact; `None` if never.
    pub fn lag(&self, now: u64) -> Option<u64> {
        match self.last_contact.load(Ordering::Acquire) {
            0 => None,
            t => Some(now.saturating_sub(t)),
        }
    }
}

/// How soon a JWKS refetch must be able to begin for a request whose token
/// names an unknown `kid` to wait for it (it waits at most twice this).
pub const UNKNOWN_KID_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// At most this many requests wait for a refetch at once; others are refused at once.
pub const MAX_KID_WAITERS: usize = 64;

/// Readiness as `/ready` reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub keys: usize,
    pub revocation_feed: &'static str,
    pub revocation_source: &'static str,
    pub feed_lag_seconds: Option<u64>,
    pub revoked_ids: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// The verifier. Share it as `Arc<Verifier>`.
#[derive(Debug)]
pub struct Verifier {
    pub(crate) config: VerifierConfig,
    expect: Expectations,
    pub(crate) keys: ArcSwap<jwt::Keys>,
    pub(crate) revoked: RevokedSet,
    pub(crate) cache: TokenCache,
    /// Tokens refused for good (`negative.rs`): a repeated bad token costs a lookup.
    pub(crate) negative: NegativeCache,
    pub(crate) feed: FeedHealth,
    pub(crate) clock: SharedClock,
    pub(crate) metrics: Metrics,
    /// Woken on an unknown `kid`; the JWKS task refetches, rate-limited.
    pub(crate) key_refresh_wanted: Notify,
    /// When the fetch that gave the key table in use began (see
    /// [`Verifier::check_refetching`]).
    keys_loaded: tokio::sync::watch::Sender<Option<tokio::time::Instant>>,
    /// Requests waiting in [`Verifier::check_refetching`].
    kid_waiters: std::sync::atomic::AtomicUsize,
    /// `TOOL_POLICY_FILE`, swapped in by [`crate::tool_policy_reload::run`].
    tool_policy: ArcSwapOption<ToolPolicy>,
    /// Bumped after every [`Verifier::set_tool_policy`]: a token's
    /// [`ToolMemo`] of another generation is stale.
    tool_policy_generation: AtomicU64,
    pub(crate) audit_file: Option<AuditFile>,
    /// Flow diagnostics: first accepted token per client (`first_use.rs`).
    first_use: crate::first_use::FirstUse,
    /// Security events: denied verifies (rate-limited, see `gateway_common::audit`).
    audit: gateway_common::audit::AuditLog,
    /// DPoP settings and proof replay memory (`crate::dpop`).
    pub(crate) dpop: crate::dpop::DpopState,
}

impl Verifier {
    /// A verifier with no keys and no feed yet (every token request answers 503
    /// until the background tasks have loaded both). See [`crate::start`].
    pub fn new(config: VerifierConfig, clock: SharedClock) -> Self {
        Self::with_metrics(config, clock, Metrics::new())
    }

    /// [`Verifier::new`] with the given metrics ([`Metrics::not_recording`]
    /// for the benchmark that measures what recording costs).
    pub fn with_metrics(config: VerifierConfig, clock: SharedClock, metrics: Metrics) -> Self {
        let expect = Expectations {
            issuer: config.issuer.clone(),
            leeway_secs: config.clock_leeway.as_secs(),
        };
        let tool_policy =
            ArcSwapOption::new(config.tool_policy.as_ref().map(|t| Arc::clone(&t.initial)));
        let audit_file = config.audit_log_file.as_deref().and_then(|p| {
            AuditFile::open(p)
                .map_err(|e| tracing::error!(error = %e, "AUDIT_LOG_FILE cannot be opened"))
                .ok()
        });
        // Denials share AUDIT_LOG_FILE with the tool-call lines: both open
        // the process's one writer for that file (`AuditSink::open`).
        let audit =
            gateway_common::audit::AuditLog::open("verifier", config.audit_log_file.as_deref())
                .unwrap_or_else(|e| {
                    tracing::error!(error = %e, "AUDIT_LOG_FILE cannot be opened");
                    gateway_common::audit::AuditLog::tracing_only("verifier")
                });
        Self {
            dpop: crate::dpop::DpopState::new(config.dpop.clone()),
            first_use: crate::first_use::FirstUse::default(),
            audit,
            cache: TokenCache::new(config.cache_capacity),
            negative: NegativeCache::new(config.negative_cache_capacity),
            config,
            expect,
            keys: ArcSwap::from_pointee(jwt::Keys::default()),
            revoked: RevokedSet::default(),
            feed: FeedHealth::default(),
            clock,
            metrics,
            key_refresh_wanted: Notify::new(),
            keys_loaded: tokio::sync::watch::Sender::new(None),
            kid_waiters: std::sync::atomic::AtomicUsize::new(0),
            tool_policy,
            tool_policy_generation: AtomicU64::new(0),
            audit_file,
        }
    }

    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// Starts the task that records each client's first accepted token in
    /// `store` (once per verifier; `None` if already started).
    pub fn spawn_first_use_writer(
        &self,
        store: Arc<dyn gateway_store::Store>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let rx = self.first_use.take_receiver()?;
        Some(tokio::spawn(crate::first_use::run_writer(
            rx,
            store,
            self.clock.clone(),
        )))
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Replaces the tool policy (the reload task calls this).
    pub fn set_tool_policy(&self, policy: Arc<ToolPolicy>) {
        self.tool_policy.store(Some(policy));
        // Release: whoever sees the new generation then loads the new policy.
        self.tool_policy_generation.fetch_add(1, Ordering::Release);
    }

    /// The tool policy in force, if `TOOL_POLICY_FILE` is set.
    pub fn tool_policy(&self) -> Option<Arc<ToolPolicy>> {
        self.tool_policy.load_full()
    }

    /// Decides one request. `req` is the client's original request (see
    /// [`crate::forwarded::reconstruct`] for building it from proxy headers).
    pub fn check<'a>(&self, req: &ForwardedRequest<'a>) -> Decision<'a> {
        self.check_call(req, None)
    }

    /// [`Verifier::check`], then, when the request names its MCP method
    /// (`Mcp-Method`/`Mcp-Name`, MCP 2026-07-28) and a tool policy is loaded,
    /// the tool policy for the service and the verified caller.
    pub fn check_call<'a>(
        &self,
        req: &ForwardedRequest<'a>,
        call: Option<&McpCall<'_>>,
    ) -> Decision<'a> {
        self.check_with_proof(req, call, ProofHeader::Absent)
    }

    /// [`Verifier::check_call`] with the request's `DPoP` header (RFC 9449):
    /// what `/verify` and the one-machine guard call. An allow whose
    /// [`Allowed::dpop`] is set must still pass [`Verifier::claim_proof`].
    pub fn check_with_proof<'a>(
        &self,
        req: &ForwardedRequest<'a>,
        call: Option<&McpCall<'_>>,
        proof: ProofHeader<'_>,
    ) -> Decision<'a> {
        let decision = self.decide(req, call, proof);
        self.after_decision(req, &decision);
        decision
    }

    fn after_decision(&self, req: &ForwardedRequest<'_>, decision: &Decision<'_>) {
        match decision {
            Decision::Allow(allowed) => {
                if let Who::Token(v) = &allowed.who {
                    self.first_use.note(&v.identity.client_id);
                }
            }
            Decision::Deny(denial) => self.audit_denial(req, denial),
        }
    }

    /// [`Verifier::check_with_proof`], except that a token signed with a key
    /// we do not hold waits for a JWKS fetch begun after it arrived (the miss
    /// wakes one, rate-limited by `JWKS_MIN_REFETCH`) and is decided again,
    /// instead of a 401 for a key published after our last fetch. It waits
    /// only when such a fetch can begin within [`UNKNOWN_KID_WAIT`], at most
    /// twice that long, and at most [`MAX_KID_WAITERS`] requests wait at
    /// once, so forged kids cannot hold connections open.
    pub async fn check_refetching<'a>(
        &self,
        req: &ForwardedRequest<'a>,
        call: Option<&McpCall<'_>>,
        proof: ProofHeader<'_>,
    ) -> Decision<'a> {
        let first = self.decide(req, call, proof);
        let unknown_kid =
            matches!(&first, Decision::Deny(d) if d.deny.reason() == Reason::UnknownKid);
        // The JWKS task refetches at the earliest this long after its last fetch.
        let gap = self.config.jwks_min_refetch.min(self.config.jwks_refresh);
        let last_fetch = *self.keys_loaded.borrow();
        // Wait only when a refetch can begin soon: a kid missing from a set
        // fetched just now (with a long JWKS_MIN_REFETCH) is refused at once.
        let refetch_soon = unknown_kid
            && last_fetch
                .is_none_or(|at| at + gap <= tokio::time::Instant::now() + UNKNOWN_KID_WAIT);
        let decision = if refetch_soon
            && self.kid_waiters.fetch_add(1, Ordering::AcqRel) < MAX_KID_WAITERS
        {
            // A fetch begun after the miss holds every key published before it
            // (read here, not on arrival: no clock read on the hot path).
            // The fetch the miss woke may have begun, or even ended, before
            // this read, so each new key set is tried as it lands, and the
            // wait ends once a set fetched after `missed` still lacks the key.
            let missed = tokio::time::Instant::now();
            let deadline = missed + UNKNOWN_KID_WAIT * 2;
            let mut loaded = self.keys_loaded.subscribe();
            let unknown = |d: &Decision<'_>| matches!(d, Decision::Deny(d) if d.deny.reason() == Reason::UnknownKid);
            let mut decision = self.decide(req, call, proof);
            while unknown(&decision) {
                match tokio::time::timeout_at(deadline, loaded.changed()).await {
                    Ok(Ok(())) => {
                        let fetched_after =
                            loaded.borrow_and_update().is_some_and(|at| at >= missed);
                        decision = self.decide(req, call, proof);
                        if fetched_after {
                            break;
                        }
                    }
                    Ok(Err(_)) | Err(_) => break,
                }
            }
            self.kid_waiters.fetch_sub(1, Ordering::AcqRel);
            if !unknown(&decision) {
                self.metrics.unknown_kid_refetches.inc();
            }
            decision
        } else {
            if refetch_soon {
                self.kid_waiters.fetch_sub(1, Ordering::AcqRel);
            }
            first
        };
        self.after_decision(req, &decision);
        decision
    }

    /// A denied request with a token is a security event; one without is the
    /// normal first step of discovery (RFC 9728 §5) and is not audited, nor is
    /// our own unavailability; a tool-policy denial has its own, richer line
    /// (`tool_policy::audit`).
    fn audit_denial(&self, req: &ForwardedRequest<'_>, denial: &Denial) {
        let reason = denial.deny.reason();
        if matches!(
            reason,
            Reason::NoToken | Reason::Unavailable | Reason::ToolDenied
        ) {
            return;
        }
        let now = self.clock.now_secs();
        let service = self
            .service_for(req)
            .map(|s| s.name.clone())
            .unwrap_or_default();
        // Known when the token verified and was refused afterwards (revoked,
        // audience, policy): it is in the cache then. No crypto here, and no
        // lookup for a token that did not verify (it is in no cache of valid ones).
        let verified_then_refused = matches!(
            reason,
            Reason::Revoked
                | Reason::WrongAudience
                | Reason::NotAllowed
                | Reason::InsufficientScope
        );
        // The token is taken out of the header again only then: a flood of
        // forged tokens is the common denial, and for it this is wasted.
        let token = verified_then_refused
            .then(|| crate::dpop::locate(req.authorization, self.config.max_token_bytes).0);
        let client_id = match token {
            Some(Extracted::Token(t)) => self
                .cache
                .get(&TokenKey::of(t), now)
                .map(|v| v.identity.client_id.clone()),
            _ => None,
        };
        let event = gateway_common::audit::AuditEvent::VerifyDenied {
            reason: reason.as_str(),
            service,
            client_id,
            suppressed: 0,
        };
        let written = self.audit.record(now, event);
        self.metrics.record_audit_denial(written);
    }

    /// The shared (Redis) half of proof replay, after an allow: `None` when
    /// the proof's `jti` is new everywhere, else the refusal to send instead.
    pub async fn claim_proof(
        &self,
        req: &ForwardedRequest<'_>,
        seen: &crate::dpop::ProofSeen,
    ) -> Option<Denial> {
        if self.dpop.claim_shared(seen).await {
            return None;
        }
        let mut d = Denial::new(
            Deny::Dpop(crate::dpop::DpopDeny::Invalid(
                gateway_common::dpop::ProofError::Replayed,
            )),
            self.service_for(req)
                .map(|s| resource_metadata_url(req.proto, req.host, &s.path_prefix)),
        );
        d.dpop_required = true;
        Some(d)
    }

    /// DPoP settings and replay memory.
    pub fn dpop(&self) -> &crate::dpop::DpopState {
        &self.dpop
    }

    fn decide<'a>(
        &self,
        req: &ForwardedRequest<'a>,
        call: Option<&McpCall<'_>>,
        proof: ProofHeader<'_>,
    ) -> Decision<'a> {
        let path = req.path();
        let service = match_service(&self.config.services, req.proto, req.host, path);
        let Some(service) = service else {
            // Root metadata: the authz-server answers for the host if anything does.
            let prm = resource_metadata_url(req.proto, req.host, "");
            return Decision::Deny(Denial::new(Deny::UnknownService, Some(prm)));
        };
        let denial = |deny: Deny| {
            let mut d = Denial::new(
                deny,
                Some(resource_metadata_url(
                    req.proto,
                    req.host,
                    &service.path_prefix,
                )),
            );
            if !service.policy.required_scopes.is_empty() {
                d.scope_hint = Some(service.policy.required_scopes.join(" "));
            }
            if self.dpop.config.requires(&service.name) {
                d.dpop_required = true;
                d.dpop_nonce = self.dpop.challenge_nonce(self.clock.now_secs());
            }
            d
        };
        let deny = |deny: Deny| Decision::Deny(denial(deny));
        if req.cors_preflight {
            return Decision::Allow(Allowed {
                who: Who::Anonymous,
                forward_token: None,
                reason: Reason::Preflight,
                dpop: None,
            });
        }
        let (token, scheme) = crate::dpop::locate(req.authorization, self.config.max_token_bytes);
        let token = match token {
            Extracted::Token(t) => t,
            Extracted::None => return deny(Deny::NoToken),
            Extracted::TooLong => return deny(Deny::TokenTooLong),
            Extracted::Malformed => return deny(Deny::MalformedBearer),
            Extracted::Ambiguous => return deny(Deny::AmbiguousAuthorization),
        };
        let now = self.clock.now_secs();
        let key = TokenKey::of(token);
        /// A token met before, or a new one that passed the syntax check.
        enum Met<'t> {
            Seen(Result<Arc<Verified>, TokenError>),
            New(&'t str),
        }
        // Both caches hold only tokens that passed the syntax check, so a
        // token found there is not scanned again (RFC 6750 §2.1 b64token);
        // a new one is checked before anything else looks at it.
        let met = match self.seen(&key, now) {
            Some(seen) => Met::Seen(seen),
            None => match crate::token::validate(token) {
                Some(t) => Met::New(t),
                None => return deny(Deny::MalformedBearer),
            },
        };
        if !self.is_feed_fresh(now) {
            return deny(Deny::FeedStale);
        }
        let verified = match met {
            Met::Seen(Ok(hit)) => hit,
            Met::Seen(Err(e)) => return deny(Deny::Token(e)),
            Met::New(t) => match self.verify_new(key, t, now) {
                Ok(v) => v,
                Err(e) => return deny(e),
            },
        };
        if self
            .revoked
            .contains_either(verified.id_hash, verified.grant_hash)
        {
            return deny(Deny::Revoked);
        }
        if !verified.has_audience(&service.resource) {
            return deny(Deny::WrongAudience);
        }
        let dpop = match self.dpop.check(
            req,
            &service.name,
            verified.jkt.as_deref(),
            token,
            scheme,
            proof,
            now,
        ) {
            Ok(seen) => seen,
            Err(e) => return deny(Deny::Dpop(e)),
        };
        match policy::evaluate(&service.policy, &verified) {
            Ok(()) => {}
            Err(PolicyDenial::NotAllowed) => return deny(Deny::NotAllowed),
            Err(PolicyDenial::InsufficientScope(scope)) => {
                let mut d = denial(Deny::InsufficientScope);
                d.scope_hint = Some(scope);
                return Decision::Deny(d);
            }
        }
        if let Some(call) = call {
            if !self.tool_policy_allows(&service.name, &verified, key, now, call) {
                return deny(Deny::ToolNotAllowed);
            }
        }
        Decision::Allow(Allowed {
            who: Who::Token(verified),
            forward_token: self.config.forward_token.then_some(token),
            reason: Reason::Allowed,
            dpop,
        })
    }

    /// The header-path decision; audited for tool/prompt/resource calls and denials.
    fn tool_policy_allows(
        &self,
        service: &str,
        verified: &Verified,
        key: TokenKey,
        now: u64,
        call: &McpCall<'_>,
    ) -> bool {
        if self.config.tool_policy.is_none() {
            return true;
        }
        // Who the caller is to the policy is settled once per token and policy
        // generation (the memo); a call then matches only the rules that can
        // apply to it. Acquire: pairs with the bump in `set_tool_policy`.
        let generation = self.tool_policy_generation.load(Ordering::Acquire);
        let replaced;
        let memo = match verified.tool_memo.get() {
            Some(m) if m.generation == generation => m,
            found => {
                let id = &verified.identity;
                let fresh = || {
                    ToolMemo::new(
                        generation,
                        self.tool_policy.load_full(),
                        &Caller {
                            user_id: &id.user_id,
                            user_name: &id.user_name,
                            email: &id.user_email,
                            client_id: &id.client_id,
                            scopes: &id.scopes,
                            groups: Some(&verified.groups),
                        },
                    )
                };
                if found.is_none() {
                    verified.tool_memo.get_or_init(fresh)
                } else {
                    // The policy was reloaded since: the cache gets a copy of
                    // this verification with a memo for the new policy (the
                    // revoked set is still checked on every hit).
                    replaced = Arc::new(verified.clone());
                    self.cache.insert(key, Arc::clone(&replaced), now);
                    replaced.tool_memo.get_or_init(fresh)
                }
            }
        };
        let Some((service_policy, applicable)) = memo.service(service) else {
            return true;
        };
        // Clock reads only when a line will be written: the bare decision
        // stays a few comparisons (verifier/examples/bench_verify.rs).
        let auditing =
            self.audit_file.is_some() || tracing::enabled!(target: "audit", tracing::Level::INFO);
        let started = auditing.then(std::time::Instant::now);
        let id = &verified.identity;
        let c = Call {
            method: call.method,
            name: call.name.as_deref(),
        };
        let verdict = service_policy.decide_for(applicable, &c);
        let allowed = verdict.allowed();
        self.metrics.record_tool(allowed);
        if let Some(started) = started.filter(|_| c.is_audited() || !allowed) {
            crate::tool_policy::audit(
                self.audit_file.as_ref(),
                &AuditRecord {
                    ts: self.clock.now_secs(),
                    source: "verifier",
                    service,
                    user_id: &id.user_id,
                    user_name: &id.user_name,
                    client_id: &id.client_id,
                    method: c.method,
                    tool: c.name.unwrap_or_default(),
                    decision: verdict.effect.as_str(),
                    rule: verdict.by(),
                    latency_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                    error: None,
                },
            );
        }
        allowed
    }

    /// The cached verification, or a full one (signature included) on a miss.
    /// A token met before: verified (in the cache) or refused (in the
    /// negative cache), by the SHA-256 of its exact bytes.
    fn seen(&self, key: &TokenKey, now: u64) -> Option<Result<Arc<Verified>, TokenError>> {
        if let Some(hit) = self.cache.get(key, now) {
            self.metrics.cache_hit();
            return Some(Ok(hit));
        }
        if let Some(e) = self.negative.get(key) {
            self.metrics.negative_hits.inc();
            return Some(Err(e));
        }
        None
    }

    /// Verifies a token [`Verifier::seen`] did not know, and remembers the
    /// outcome under `key`.
    fn verify_new(&self, key: TokenKey, token: &str, now: u64) -> Result<Arc<Verified>, Deny> {
        self.metrics.cache_misses.inc();
        let keys = self.keys.load();
        if keys.is_empty() {
            return Err(Deny::KeysUnavailable);
        }
        let claims = match jwt::verify_keys(token, &keys, &self.expect, now) {
            Ok(c) => c,
            Err(TokenError::UnknownKid) => {
                // Perhaps a key published after our last fetch.
                self.key_refresh_wanted.notify_one();
                return Err(Deny::Token(TokenError::UnknownKid));
            }
            Err(e) => {
                self.negative.insert(key, e);
                return Err(Deny::Token(e));
            }
        };
        let id_hash = self.revoked.id_hash(&claims.jti);
        let grant_hash = claims
            .sid
            .as_deref()
            .map(|sid| self.revoked.id_hash(&grant_revocation_id(sid)));
        let verified = Arc::new(Verified::from_claims(claims, id_hash, grant_hash));
        self.cache.insert(key, Arc::clone(&verified), now);
        Ok(verified)
    }

    fn is_feed_fresh(&self, now: u64) -> bool {
        self.feed
            .lag(now)
            .is_some_and(|lag| lag <= self.config.staleness_bound.as_secs())
    }

    /// Records a revocation from the feed; purges the cache for it.
    pub fn revoke(&self, jti: &str, exp: u64) {
        if self.revoked.insert(jti, exp) {
            self.cache.purge_id(self.revoked.id_hash(jti));
        }
    }

    /// Merges a snapshot; returns how many ids were new.
    pub fn revoke_many<'e>(&self, events: impl IntoIterator<Item = (&'e str, u64)>) -> usize {
        let hashed = events
            .into_iter()
            .map(|(jti, exp)| (self.revoked.id_hash(jti), exp))
            .collect();
        self.revoke_hashed(hashed)
    }

    /// Merges ids already hashed with the set's key.
    pub(crate) fn revoke_hashed(&self, hashed: Vec<(u64, u64)>) -> usize {
        let added = self.revoked.extend_hashed(hashed);
        if added > 0 {
            // Cheaper than a purge per id; hits re-check the set anyway.
            self.cache.clear();
        }
        added
    }

    /// Installs a fresh key table.
    pub fn set_keys(&self, table: KeyTable) {
        self.set_keys_fetched(table, tokio::time::Instant::now());
    }

    /// [`Verifier::set_keys`] with the key set of a fetch begun at `started`.
    pub fn set_keys_fetched(&self, table: KeyTable, started: tokio::time::Instant) {
        self.keys.store(Arc::new(jwt::Keys::new(table)));
        // A bad signature was bad for the key its kid named then.
        self.negative.clear();
        self.keys_loaded.send_replace(Some(started));
    }

    pub fn feed(&self) -> &FeedHealth {
        &self.feed
    }

    pub fn revoked_count(&self) -> usize {
        self.revoked.len()
    }

    pub fn readiness(&self) -> Readiness {
        let now = self.clock.now_secs();
        let keys = self.keys.load().len();
        let fresh = self.is_feed_fresh(now);
        let reason = if keys == 0 {
            Some("signing keys not loaded yet")
        } else if !fresh {
            Some("revocation feed lost for longer than REVOCATION_STALENESS_BOUND: failing closed")
        } else {
            None
        };
        Readiness {
            ready: reason.is_none(),
            keys,
            revocation_feed: if fresh { "fresh" } else { "stale" },
            revocation_source: if self.config.redis_url.is_some() {
                "redis"
            } else {
                "authz-http"
            },
            feed_lag_seconds: self.feed.lag(now),
            revoked_ids: self.revoked.len(),
            reason,
        }
    }

    /// Metrics text, with the gauges brought up to date.
    pub fn render_metrics(&self) -> String {
        let now = self.clock.now_secs();
        let m = &self.metrics;
        m.feed_lag_seconds
            .set(self.feed.lag(now).map_or(f64::INFINITY, |l| l as f64));
        m.revoked_ids
            .set(i64::try_from(self.revoked.len()).unwrap_or(i64::MAX));
        m.keys_loaded
            .set(i64::try_from(self.keys.load().len()).unwrap_or(i64::MAX));
        m.encode()
    }

    /// The service a request would be checked against (for logs and tests).
    pub fn service_for(&self, req: &ForwardedRequest<'_>) -> Option<&ServiceConfig> {
        match_service(&self.config.services, req.proto, req.host, req.path())
    }
}
