//! The bridge's state: sessions, the children behind them per process model, the reaper.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::child::{self, ChildSpec};
use crate::config::{Command, Config, ProcessModel};
use crate::error::{BridgeError, LimitScope};
use crate::identity::Identity;
use crate::jsonrpc;
use crate::metrics::Metrics;
use crate::session::{Session, SessionKind};
use crate::stream::lock;
use crate::upstream::{Reply, Upstream};

#[derive(Debug)]
pub struct Bridge {
    pub cfg: Arc<Config>,
    pub metrics: Arc<Metrics>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    shared: Mutex<Option<Arc<Upstream>>>,
    per_user: Mutex<HashMap<String, Arc<Upstream>>>,
    /// When a shared or per-user child last lost its last session.
    idle_since: Mutex<HashMap<String, Instant>>,
    stateless: tokio::sync::Mutex<HashMap<String, Arc<Session>>>,
    next_seq: AtomicU64,
    ready_cache: Mutex<Option<(Instant, bool)>>,
    /// A built-in server answered per request, without sessions (see [`crate::native`]).
    pub native: Option<crate::native::Native>,
}

const INIT_TIMEOUT: Duration = Duration::from_secs(30);
const READY_CACHE: Duration = Duration::from_secs(30);

impl Bridge {
    pub fn new(cfg: Config) -> Arc<Self> {
        Self::with_metrics(cfg, Arc::new(Metrics::default()))
    }

    /// A bridge counting into `metrics`, shared with others: the one-machine
    /// launcher serves several services and publishes one `mcp_bridge_*` set.
    pub fn with_metrics(cfg: Config, metrics: Arc<Metrics>) -> Arc<Self> {
        let native = match &cfg.command {
            Command::BuiltinEchoStateless => Some(crate::native::Native::EchoStateless),
            Command::BuiltinFetch(f) => Some(crate::native::Native::Fetch(
                crate::fetch::Fetcher::new(f.clone()),
            )),
            Command::BuiltinEcho | Command::Exec { .. } => None,
        };
        Arc::new(Self {
            native,
            cfg: Arc::new(cfg),
            metrics,
            sessions: Mutex::new(HashMap::new()),
            shared: Mutex::new(None),
            per_user: Mutex::new(HashMap::new()),
            idle_since: Mutex::new(HashMap::new()),
            stateless: tokio::sync::Mutex::new(HashMap::new()),
            next_seq: AtomicU64::new(1),
            ready_cache: Mutex::new(None),
        })
    }

    /// Starts a fresh upstream (a child process, or the built-in server).
    fn spawn_upstream(&self, identity: Option<&Identity>) -> Result<Arc<Upstream>, BridgeError> {
        let n = self.next_seq.fetch_add(1, Ordering::Relaxed);
        match &self.cfg.command {
            // A native server has no sessions; a legacy SSE session gets the stateful echo.
            Command::BuiltinEcho | Command::BuiltinEchoStateless | Command::BuiltinFetch(_) => {
                Ok(Upstream::builtin_echo(self.metrics.clone()))
            }
            Command::Exec { program, args } => {
                let name = program
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let label = format!("{name}#{n}");
                let up = Upstream::for_child(label.clone(), self.metrics.clone());
                let mut env = self.cfg.child_env.clone();
                if let (true, ProcessModel::User, Some(id)) =
                    (self.cfg.user_env, self.cfg.process_model, identity)
                {
                    env.extend([
                        ("MCP_USER_ID".to_string(), id.user_id.clone()),
                        ("MCP_USER_NAME".to_string(), id.user_name.clone()),
                        ("MCP_USER_EMAIL".to_string(), id.user_email.clone()),
                        ("MCP_CLIENT_ID".to_string(), id.client_id.clone()),
                        ("MCP_SCOPES".to_string(), id.scopes.clone()),
                    ]);
                }
                let spec = ChildSpec {
                    program: program.clone(),
                    args: args.clone(),
                    env,
                    cwd: self.cfg.cwd.clone(),
                    max_line: self.cfg.max_message_bytes,
                    max_queued: self.cfg.max_queued,
                    label: label.clone(),
                };
                match child::spawn(&spec, child::weak_events(&up)) {
                    Ok(handle) => {
                        tracing::info!(child = %label, pid = handle.pid, "started MCP server");
                        up.set_child(handle);
                        self.metrics.children_spawned.inc();
                        Ok(up)
                    }
                    Err(e) => {
                        self.metrics.spawn_failures.inc();
                        tracing::error!(program = %program.display(), "cannot start MCP server: {e}");
                        Err(BridgeError::SpawnFailed)
                    }
                }
            }
        }
    }

    /// The upstream a new session of this identity uses, per the process model.
    fn upstream_for(&self, identity: &Identity) -> Result<Arc<Upstream>, BridgeError> {
        match self.cfg.process_model {
            ProcessModel::Session => self.spawn_upstream(Some(identity)),
            ProcessModel::Shared => {
                let mut slot = lock(&self.shared);
                match slot.as_ref() {
                    Some(up) if up.is_alive() => Ok(up.clone()),
                    Some(_) | None => {
                        let up = self.spawn_upstream(None)?;
                        *slot = Some(up.clone());
                        Ok(up)
                    }
                }
            }
            ProcessModel::User => {
                let mut pool = lock(&self.per_user);
                match pool.get(&identity.user_id) {
                    Some(up) if up.is_alive() => Ok(up.clone()),
                    Some(_) | None => {
                        let up = self.spawn_upstream(Some(identity))?;
                        pool.insert(identity.user_id.clone(), up.clone());
                        Ok(up)
                    }
                }
            }
        }
    }

    /// Opens a session (Streamable HTTP initialize, or a legacy `/sse` connection).
    /// `request_id`: the `initialize` being answered, so a refusal carries its id.
    pub fn create_session(
        &self,
        kind: SessionKind,
        identity: Identity,
        request_id: Option<&Value>,
    ) -> Result<Arc<Session>, BridgeError> {
        let now = Instant::now();
        // Checked before a child starts, so a refused caller costs no process; idle
        // sessions are reaped first so an expired one never holds a slot.
        let early = self.check_caps(&lock(&self.sessions), &identity, request_id, now);
        if early.is_err() {
            self.reap(now);
            if let Err(e) = self.check_caps(&lock(&self.sessions), &identity, request_id, now) {
                self.refused(&e, &identity);
                return Err(e);
            }
        }
        let upstream = self.upstream_for(&identity)?;
        lock(&self.idle_since).remove(&upstream.label);
        let id = gateway_common::crypto::random_token(24);
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let session = Session::new(
            id.clone(),
            seq,
            kind,
            identity,
            upstream.clone(),
            self.cfg.replay_events,
            self.cfg.max_queued,
            now,
        );
        upstream.attach(&session);
        {
            // Checked again where the session is counted: concurrent opens by one user
            // cannot both take the last slot.
            let mut sessions = lock(&self.sessions);
            if let Err(e) = self.check_caps(&sessions, &session.identity, request_id, now) {
                drop(sessions);
                session.close();
                self.release_upstream(&session);
                self.refused(&e, &session.identity);
                return Err(e);
            }
            sessions.insert(id, session.clone());
        }
        self.metrics.sessions_created.inc();
        tracing::info!(
            session = %session.id, user = %session.identity.user_id,
            client = %session.identity.client_id, upstream = %upstream.label,
            "session opened"
        );
        Ok(session)
    }

    /// Whether one more session fits: the global cap, then the user's and the client's
    /// shares of it, counted over open sessions of every transport. The keys are the
    /// identity headers the verifier sets from the verified token (`sub`, `client_id`);
    /// an empty one (no verifier in front) has no share and only the global cap applies.
    fn check_caps(
        &self,
        sessions: &HashMap<String, Arc<Session>>,
        identity: &Identity,
        request_id: Option<&Value>,
        now: Instant,
    ) -> Result<(), BridgeError> {
        if sessions.len() >= self.cfg.max_sessions {
            return Err(BridgeError::TooManySessions);
        }
        let shares = [
            (
                LimitScope::User,
                identity.user_id.as_str(),
                self.cfg.max_sessions_per_user,
            ),
            (
                LimitScope::Client,
                identity.client_id.as_str(),
                self.cfg.max_sessions_per_client,
            ),
        ];
        for (scope, key, limit) in shares {
            if key.is_empty() {
                continue;
            }
            let held: Vec<&Arc<Session>> = sessions
                .values()
                .filter(|s| s.held_by(scope, key))
                .collect();
            if held.len() >= limit {
                return Err(BridgeError::SessionLimit {
                    scope,
                    limit,
                    retry_after_secs: self.retry_after(&held, now),
                    id: request_id.cloned(),
                });
            }
        }
        Ok(())
    }

    /// Seconds until the first of these sessions would end if left idle (at least 1); the
    /// idle timeout when all are busy, a minute when sessions never expire.
    fn retry_after(&self, held: &[&Arc<Session>], now: Instant) -> u64 {
        let Some(idle) = self.cfg.idle_timeout else {
            return 60;
        };
        let wait = held
            .iter()
            .filter(|s| !s.is_busy())
            .map(|s| idle.saturating_sub(now.saturating_duration_since(s.last_active())))
            .min()
            .unwrap_or(idle);
        // Rounded up: a client that waits this long finds the slot free.
        (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
    }

    fn refused(&self, e: &BridgeError, identity: &Identity) {
        if let BridgeError::SessionLimit { scope, limit, .. } = e {
            self.metrics.session_limit_refusals.inc();
            tracing::warn!(
                user = %identity.user_id, client = %identity.client_id, %scope, limit,
                "new session refused: the {scope} holds its share of the sessions"
            );
        }
    }

    /// A live session of the caller: the same user and client that opened it
    /// (identity headers from the verifier). Another caller presenting the id
    /// is told the session does not exist (MCP security best practices,
    /// session hijacking: session ids are not authentication).
    pub fn lookup_for(&self, id: &str, caller: &Identity) -> Option<Arc<Session>> {
        let s = self.lookup(id)?;
        let owner = &s.identity;
        let same =
            gateway_common::crypto::ct_eq(owner.user_id.as_bytes(), caller.user_id.as_bytes())
                && gateway_common::crypto::ct_eq(
                    owner.client_id.as_bytes(),
                    caller.client_id.as_bytes(),
                );
        if !same {
            tracing::warn!(session = %s.id, "session id presented by another user or client: refused");
            return None;
        }
        Some(s)
    }

    /// A live session; sessions whose child died are cleaned up and reported unknown.
    pub fn lookup(&self, id: &str) -> Option<Arc<Session>> {
        let s = lock(&self.sessions).get(id).cloned()?;
        if s.is_closed() {
            self.end_session(id);
            return None;
        }
        Some(s)
    }

    /// Ends a session; with per-session children, the child goes too.
    pub fn end_session(&self, id: &str) -> bool {
        let Some(s) = lock(&self.sessions).remove(id) else {
            return false;
        };
        self.finish(&s);
        true
    }

    fn finish(&self, s: &Arc<Session>) {
        s.close();
        self.release_upstream(s);
        self.metrics.sessions_ended.inc();
        tracing::info!(session = %s.id, "session ended");
    }

    /// Lets go of the session's upstream: a per-session child stops; a shared or
    /// per-user child left without sessions starts its idle clock.
    fn release_upstream(&self, s: &Arc<Session>) {
        s.upstream.detach(s.seq);
        match self.cfg.process_model {
            ProcessModel::Session => s.upstream.shutdown(),
            ProcessModel::Shared | ProcessModel::User => {
                if s.upstream.session_count() == 0 {
                    lock(&self.idle_since).insert(s.upstream.label.clone(), Instant::now());
                }
            }
        }
    }

    /// Children started so far.
    pub fn children_spawned(&self) -> u64 {
        self.metrics.children_spawned.get()
    }

    pub fn session_count(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// Open sessions counted against this user's (or client's) share.
    pub fn session_count_of(&self, scope: LimitScope, key: &str) -> usize {
        lock(&self.sessions)
            .values()
            .filter(|s| s.held_by(scope, key))
            .count()
    }

    /// Running children (distinct upstreams that are alive).
    pub fn children_alive(&self) -> usize {
        let mut labels: Vec<String> = lock(&self.sessions)
            .values()
            .filter(|s| s.upstream.is_alive() && !s.upstream.is_builtin())
            .map(|s| s.upstream.label.clone())
            .collect();
        if let Some(up) = lock(&self.shared).as_ref() {
            if up.is_alive() && !up.is_builtin() {
                labels.push(up.label.clone());
            }
        }
        labels.extend(
            lock(&self.per_user)
                .values()
                .filter(|u| u.is_alive() && !u.is_builtin())
                .map(|u| u.label.clone()),
        );
        labels.sort();
        labels.dedup();
        labels.len()
    }

    /// Pids of the running children (benchmarks measure their memory).
    pub fn child_pids(&self) -> Vec<u32> {
        let mut ups: Vec<Arc<Upstream>> = lock(&self.sessions)
            .values()
            .map(|s| s.upstream.clone())
            .collect();
        ups.extend(lock(&self.shared).iter().cloned());
        ups.extend(lock(&self.per_user).values().cloned());
        let mut pids: Vec<u32> = ups.iter().filter_map(|u| u.pid()).collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// The internal session that serves 2026-07-28 stateless requests for this identity,
    /// initialized by the bridge itself.
    pub async fn stateless_session(
        &self,
        identity: &Identity,
    ) -> Result<Arc<Session>, BridgeError> {
        let key = match self.cfg.process_model {
            ProcessModel::User => identity.user_id.clone(),
            ProcessModel::Session | ProcessModel::Shared => String::new(),
        };
        let mut map = self.stateless.lock().await;
        if let Some(s) = map.get(&key) {
            if !s.is_closed() {
                return Ok(s.clone());
            }
        }
        let upstream = match self.cfg.process_model {
            ProcessModel::Session => self.spawn_upstream(Some(identity))?,
            ProcessModel::Shared | ProcessModel::User => self.upstream_for(identity)?,
        };
        let session = Session::new(
            format!(
                "stateless-{}",
                self.next_seq.fetch_add(1, Ordering::Relaxed)
            ),
            self.next_seq.fetch_add(1, Ordering::Relaxed),
            SessionKind::Stateless,
            identity.clone(),
            upstream.clone(),
            self.cfg.replay_events,
            self.cfg.max_queued,
            Instant::now(),
        );
        upstream.attach(&session);
        if let Err(e) = self.initialize_internal(&session, INIT_TIMEOUT).await {
            upstream.detach(session.seq);
            if self.cfg.process_model == ProcessModel::Session {
                upstream.shutdown();
            }
            return Err(e);
        }
        map.insert(key, session.clone());
        Ok(session)
    }

    /// Runs the MCP initialization handshake on behalf of a client.
    async fn initialize_internal(
        &self,
        session: &Arc<Session>,
        timeout: Duration,
    ) -> Result<Value, BridgeError> {
        let (tx, rx) = oneshot::channel();
        let init = json!({
            "jsonrpc": "2.0",
            "id": "bridge-init",
            "method": "initialize",
            "params": {
                "protocolVersion": self.cfg.protocol_version,
                "capabilities": {},
                "clientInfo": { "name": "mcp-bridge", "version": env!("CARGO_PKG_VERSION") }
            }
        });
        session
            .upstream
            .forward_request(session, init, Reply::Json(tx), None)
            .map_err(|_| BridgeError::UpstreamInitFailed)?;
        let resp = tokio::time::timeout(timeout, rx)
            .await
            .map_err(|_| BridgeError::UpstreamInitFailed)?
            .map_err(|_| BridgeError::UpstreamInitFailed)?;
        if resp.get("result").is_none() {
            return Err(BridgeError::UpstreamInitFailed);
        }
        session
            .upstream
            .forward_notification(
                session,
                jsonrpc::notification("notifications/initialized", json!({})),
            )
            .map_err(|_| BridgeError::UpstreamInitFailed)?;
        Ok(resp)
    }

    /// Whether a child can be started and initialized (cached for 30 s).
    pub async fn ready(&self) -> bool {
        if matches!(
            self.cfg.command,
            Command::BuiltinEcho | Command::BuiltinEchoStateless | Command::BuiltinFetch(_)
        ) {
            return true;
        }
        if let Some((at, ok)) = *lock(&self.ready_cache) {
            if at.elapsed() < READY_CACHE {
                return ok;
            }
        }
        let ok = self.probe().await.is_ok();
        *lock(&self.ready_cache) = Some((Instant::now(), ok));
        ok
    }

    async fn probe(&self) -> Result<(), BridgeError> {
        let up = self.spawn_upstream(None)?;
        let session = Session::new(
            "probe".into(),
            self.next_seq.fetch_add(1, Ordering::Relaxed),
            SessionKind::Stateless,
            Identity::default(),
            up.clone(),
            1,
            4,
            Instant::now(),
        );
        up.attach(&session);
        let r = self
            .initialize_internal(&session, Duration::from_secs(10))
            .await;
        up.detach(session.seq);
        up.shutdown();
        r.map(|_| ())
    }

    /// Ends idle sessions and stops children nobody uses.
    pub fn reap(&self, now: Instant) {
        let stale: Vec<String> = {
            let sessions = lock(&self.sessions);
            sessions
                .values()
                .filter(|s| {
                    s.is_closed()
                        || self.cfg.idle_timeout.is_some_and(|idle| {
                            !s.is_busy() && now.saturating_duration_since(s.last_active()) > idle
                        })
                })
                .map(|s| s.id.clone())
                .collect()
        };
        for id in stale {
            tracing::info!(session = %id, "ending idle or orphaned session");
            self.end_session(&id);
        }
        let Some(idle) = self.cfg.idle_timeout else {
            return;
        };
        let expired: Vec<String> = lock(&self.idle_since)
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(**since) > idle)
            .map(|(l, _)| l.clone())
            .collect();
        for label in expired {
            lock(&self.idle_since).remove(&label);
            let mut victims = Vec::new();
            {
                let mut shared = lock(&self.shared);
                if shared
                    .as_ref()
                    .is_some_and(|u| u.label == label && u.session_count() == 0)
                {
                    victims.extend(shared.take());
                }
            }
            lock(&self.per_user).retain(|_, u| {
                let drop = u.label == label && u.session_count() == 0;
                if drop {
                    victims.push(u.clone());
                }
                !drop
            });
            for u in victims {
                tracing::info!(upstream = %u.label, "stopping idle MCP server");
                u.shutdown();
            }
        }
    }

    /// Runs [`Bridge::reap`] periodically while the bridge lives.
    pub fn start_reaper(self: &Arc<Self>) {
        let period = self
            .cfg
            .idle_timeout
            .map(|d| (d / 4).clamp(Duration::from_millis(100), Duration::from_secs(5)))
            .unwrap_or(Duration::from_secs(5));
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(b) => b.reap(Instant::now()),
                    None => break,
                }
            }
        });
    }

    /// Ends every session and stops every child (shutdown).
    pub fn shutdown(&self) {
        let all: Vec<String> = lock(&self.sessions).keys().cloned().collect();
        for id in all {
            self.end_session(&id);
        }
        if let Some(u) = lock(&self.shared).take() {
            u.shutdown();
        }
        for (_, u) in lock(&self.per_user).drain() {
            u.shutdown();
        }
        if let Ok(mut stateless) = self.stateless.try_lock() {
            for (_, s) in stateless.drain() {
                s.close();
                s.upstream.shutdown();
            }
        }
    }
}
