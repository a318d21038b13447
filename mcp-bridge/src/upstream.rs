//! One MCP server (a child process or the built-in echo server) and the router that
//! relays JSON-RPC between it and the sessions attached to it.
//!
//! Every client request is forwarded with a fresh numeric id, unique for this upstream,
//! and mapped back on the way out, so any number of sessions can share one child without
//! their ids colliding. Progress tokens are rewritten the same way (the TypeScript SDK uses
//! the request id as token, which would collide too). Routing:
//!
//! - responses → the waiting HTTP request (JSON body or its SSE stream), id restored;
//! - `notifications/progress` → the stream of the request that owns the token;
//! - server-initiated requests (sampling, elicitation, roots) → the session with the newest
//!   request still in flight, else the session that last sent anything; with one session
//!   attached (per-session children) that is always the right one. Shared children cannot
//!   know which session a server request is for: use per-session children for servers that
//!   sample or elicit;
//! - other notifications (logging, list_changed, resources/updated) → every attached session;
//! - `notifications/cancelled` both ways, with the request id translated.
//!
//! When the process dies every waiter gets a JSON-RPC error at once and every attached
//! session ends (the client's next request gets 404 and it re-initializes).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::child::{ChildEvents, ChildHandle, SendError};
use crate::echo::{self, RequestContext};
use crate::jsonrpc::{self, code, IdKey, Kind};
use crate::metrics::Metrics;
use crate::stream::{lock, SseStream};

/// Where a request's response goes.
/// What an upstream needs of a session it routes to: implemented by
/// [`crate::session::Session`], which holds its upstream (so the upstream names it
/// only through this trait).
pub trait Downstream: std::fmt::Debug + Send + Sync {
    /// The numeric key the router files the session's requests under.
    fn seq(&self) -> u64;
    /// The `Mcp-Session-Id`, for logs.
    fn id(&self) -> &str;
    /// The internal session of 2026-07-28 stateless requests: no GET stream.
    fn is_stateless(&self) -> bool;
    /// The standalone (GET) stream.
    fn standalone(&self) -> &SseStream;
    /// A server message not tied to one of the session's requests.
    fn deliver_unrelated(&self, message: &Value);
    /// The protocol version the server answered `initialize` with.
    fn set_negotiated(&self, version: &str);
    /// Ends the session's streams; returns whether this call closed it.
    fn close(&self) -> bool;
}

#[derive(Debug)]
pub enum Reply {
    /// An `application/json` body (or an internal caller).
    Json(oneshot::Sender<Value>),
    /// The POST's own SSE stream.
    Stream(Arc<SseStream>),
    /// The session's standalone stream (legacy HTTP+SSE).
    Standalone,
}

#[derive(Debug)]
struct Pending {
    session: Arc<dyn Downstream>,
    client_id: Value,
    progress_token: Option<Value>,
    method: String,
    reply: Reply,
}

#[derive(Debug, Default)]
struct Router {
    next_id: u64,
    pending: HashMap<u64, Pending>,
    by_client: HashMap<(u64, IdKey), u64>,
    /// Server-initiated request id → the session it was sent to.
    server_requests: HashMap<IdKey, u64>,
    sessions: HashMap<u64, Weak<dyn Downstream>>,
    last_session: Option<u64>,
    dead: bool,
}

#[derive(Debug)]
enum Io {
    Child(Mutex<Option<ChildHandle>>),
    Echo,
}

/// Why a message could not be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    #[error("the MCP server is busy (input queue full)")]
    Busy,
    #[error("the MCP server process has exited")]
    Gone,
}

#[derive(Debug)]
pub struct Upstream {
    pub label: String,
    io: Io,
    router: Mutex<Router>,
    alive: AtomicBool,
    metrics: Arc<Metrics>,
}

impl Upstream {
    /// A child-process upstream; call [`Upstream::set_child`] once it is spawned.
    pub fn for_child(label: String, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            label,
            io: Io::Child(Mutex::new(None)),
            router: Mutex::new(Router {
                next_id: 1,
                ..Router::default()
            }),
            alive: AtomicBool::new(true),
            metrics,
        })
    }

    pub fn builtin_echo(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            label: "builtin:echo".into(),
            io: Io::Echo,
            router: Mutex::new(Router {
                next_id: 1,
                ..Router::default()
            }),
            alive: AtomicBool::new(true),
            metrics,
        })
    }

    pub fn set_child(&self, handle: ChildHandle) {
        if let Io::Child(slot) = &self.io {
            *lock(slot) = Some(handle);
        }
    }

    pub fn is_builtin(&self) -> bool {
        matches!(self.io, Io::Echo)
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    pub fn pid(&self) -> Option<u32> {
        match &self.io {
            Io::Child(slot) => lock(slot).as_ref().and_then(|h| h.pid),
            Io::Echo => None,
        }
    }

    pub fn session_count(&self) -> usize {
        lock(&self.router).sessions.len()
    }

    pub fn attach(&self, session: &Arc<impl Downstream + 'static>) {
        let mut r = lock(&self.router);
        let weak = Arc::downgrade(session);
        r.sessions.insert(session.seq(), weak);
        r.last_session = Some(session.seq());
    }

    /// Forgets a session; its requests still in flight are cancelled at the server.
    pub fn detach(&self, session_seq: u64) {
        let cancelled: Vec<(u64, Pending)> = {
            let mut r = lock(&self.router);
            r.sessions.remove(&session_seq);
            if r.last_session == Some(session_seq) {
                r.last_session = None;
            }
            r.server_requests.retain(|_, s| *s != session_seq);
            let ids: Vec<u64> = r
                .pending
                .iter()
                .filter(|(_, p)| p.session.seq() == session_seq)
                .map(|(id, _)| *id)
                .collect();
            let mut out = Vec::new();
            for id in ids {
                if let Some(p) = r.pending.remove(&id) {
                    r.by_client.remove(&(session_seq, IdKey::of(&p.client_id)));
                    out.push((id, p));
                }
            }
            out
        };
        for (id, p) in cancelled {
            let _ = self.send(&cancel_notification(id, "session ended"), None);
            complete(
                p,
                jsonrpc::error(None, code::SERVER_UNAVAILABLE, "session ended"),
            );
        }
    }

    /// Terminates the child (no-op for the built-in server).
    pub fn shutdown(&self) {
        if let Io::Child(slot) = &self.io {
            if let Some(h) = lock(slot).take() {
                h.kill();
            }
        }
    }

    fn send(&self, message: &Value, ctx: Option<&RequestContext>) -> Result<(), ForwardError> {
        match &self.io {
            Io::Child(slot) => {
                let guard = lock(slot);
                let handle = guard.as_ref().ok_or(ForwardError::Gone)?;
                handle.send(message).map_err(|e| match e {
                    SendError::Full => ForwardError::Busy,
                    SendError::Gone => ForwardError::Gone,
                })
            }
            Io::Echo => {
                if let Some(reply) = echo::handle(message, ctx) {
                    self.on_message(reply);
                }
                Ok(())
            }
        }
    }

    /// Forwards a client request; returns the upstream id it was given.
    pub fn forward_request(
        &self,
        session: &Arc<impl Downstream + 'static>,
        mut message: Value,
        reply: Reply,
        ctx: Option<&RequestContext>,
    ) -> Result<u64, (ForwardError, Reply)> {
        let client_id = message.get("id").cloned().unwrap_or(Value::Null);
        let method = message
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let id = {
            let mut r = lock(&self.router);
            if r.dead {
                return Err((ForwardError::Gone, reply));
            }
            let id = r.next_id;
            r.next_id += 1;
            if let Some(obj) = message.as_object_mut() {
                obj.insert("id".into(), json!(id));
            }
            let progress_token = jsonrpc::replace_progress_token(&mut message, json!(id));
            r.by_client
                .insert((session.seq(), IdKey::of(&client_id)), id);
            r.last_session = Some(session.seq());
            r.pending.insert(
                id,
                Pending {
                    session: session.clone() as Arc<dyn Downstream>,
                    client_id,
                    progress_token,
                    method,
                    reply,
                },
            );
            id
        };
        self.metrics.requests.inc();
        if let Err(e) = self.send(&message, ctx) {
            let mut r = lock(&self.router);
            if let Some(p) = r.pending.remove(&id) {
                r.by_client
                    .remove(&(session.seq(), IdKey::of(&p.client_id)));
                return Err((e, p.reply));
            }
            // Already answered (the built-in server answers synchronously).
        }
        Ok(id)
    }

    /// Forwards a client notification (`notifications/cancelled` translated).
    pub fn forward_notification(
        &self,
        session: &Arc<impl Downstream>,
        mut message: Value,
    ) -> Result<(), ForwardError> {
        if message.get("method").and_then(Value::as_str) == Some("notifications/cancelled") {
            let Some(client_req) = message.pointer("/params/requestId").cloned() else {
                return Ok(());
            };
            let found = {
                let mut r = lock(&self.router);
                match r.by_client.remove(&(session.seq(), IdKey::of(&client_req))) {
                    Some(id) => r.pending.remove(&id).map(|p| (id, p)),
                    None => None,
                }
            };
            let Some((id, pending)) = found else {
                // Cancelling something already answered (or never sent): nothing to do
                // (MCP basic/utilities/cancellation: "ignore cancellation notifications
                // for unknown requests").
                return Ok(());
            };
            if let Some(slot) = message.pointer_mut("/params/requestId") {
                *slot = json!(id);
            }
            self.metrics.cancellations.inc();
            // The client will ignore any response (cancellation spec); end its wait now.
            complete(
                pending,
                jsonrpc::error(
                    None,
                    code::REQUEST_CANCELLED,
                    "request cancelled by the client",
                ),
            );
        }
        if lock(&self.router).dead {
            return Err(ForwardError::Gone);
        }
        self.send(&message, None)
    }

    /// Forwards a client's response to a server-initiated request.
    pub fn forward_response(
        &self,
        session: &Arc<impl Downstream>,
        message: Value,
    ) -> Result<(), ForwardError> {
        let Some(id) = message.get("id") else {
            return Ok(());
        };
        let owner = lock(&self.router).server_requests.remove(&IdKey::of(id));
        if owner != Some(session.seq()) {
            // Never let one session answer another's request.
            tracing::warn!(session = %session.id(), "dropped a response to an unknown server request");
            return Ok(());
        }
        self.send(&message, None)
    }

    /// Cancels a request by its upstream id (a 2026-07-28 client closed its stream). Used
    /// instead of the client's id because stateless clients share one internal session
    /// and their ids may collide.
    pub fn cancel(&self, id: u64, reason: &str) {
        let pending = lock(&self.router).pending.remove(&id);
        if let Some(p) = pending {
            self.metrics.cancellations.inc();
            let _ = self.send(&cancel_notification(id, reason), None);
            complete(p, jsonrpc::error(None, code::REQUEST_CANCELLED, reason));
        }
    }

    /// Gives up on a request after `BRIDGE_REQUEST_TIMEOUT`.
    pub fn expire(&self, id: u64) {
        let pending = {
            let mut r = lock(&self.router);
            let p = r.pending.remove(&id);
            if let Some(p) = &p {
                r.by_client
                    .remove(&(p.session.seq(), IdKey::of(&p.client_id)));
            }
            p
        };
        if let Some(p) = pending {
            self.metrics.timeouts.inc();
            let _ = self.send(
                &cancel_notification(id, "request timed out at the bridge"),
                None,
            );
            let client_id = p.client_id.clone();
            complete(
                p,
                jsonrpc::error(Some(&client_id), code::REQUEST_TIMEOUT, "request timed out"),
            );
        }
    }

    fn route_server_request(&self, message: Value) {
        let server_id = message.get("id").cloned().unwrap_or(Value::Null);
        let target = {
            let mut r = lock(&self.router);
            let live: Vec<Arc<dyn Downstream>> =
                r.sessions.values().filter_map(Weak::upgrade).collect();
            let chosen = if live.len() == 1 {
                live.into_iter().next()
            } else {
                r.pending
                    .iter()
                    .filter(|(_, p)| !p.session.is_stateless())
                    .max_by_key(|(id, _)| **id)
                    .map(|(_, p)| p.session.clone())
                    .or_else(|| {
                        r.last_session
                            .and_then(|s| r.sessions.get(&s))
                            .and_then(Weak::upgrade)
                    })
            };
            if let Some(s) = &chosen {
                if !s.is_stateless() {
                    r.server_requests.insert(IdKey::of(&server_id), s.seq());
                }
            }
            chosen
        };
        match target {
            Some(s) if !s.is_stateless() => s.deliver_unrelated(&message),
            Some(_) | None => {
                // 2026-07-28 has no server-to-client requests on this transport (MRTR
                // instead), and nobody is listening otherwise: answer for the client.
                let _ = self.send(
                    &jsonrpc::error(
                        Some(&server_id),
                        code::METHOD_NOT_FOUND,
                        "no client can take server-initiated requests on this session",
                    ),
                    None,
                );
            }
        }
    }

    fn route_notification(&self, mut message: Value, method: &str) {
        if method == "notifications/progress" {
            let token = message
                .pointer("/params/progressToken")
                .and_then(Value::as_u64);
            let target = token.and_then(|t| {
                let r = lock(&self.router);
                r.pending.get(&t).map(|p| {
                    let reply = match &p.reply {
                        Reply::Stream(s) => Some(s.clone()),
                        Reply::Json(_) | Reply::Standalone => None,
                    };
                    (p.session.clone(), p.progress_token.clone(), reply)
                })
            });
            if let Some((session, original, stream)) = target {
                if let (Some(slot), Some(orig)) =
                    (message.pointer_mut("/params/progressToken"), original)
                {
                    *slot = orig;
                }
                match stream {
                    Some(s) => s.push(&message, false),
                    None if session.is_stateless() => {}
                    None => session.standalone().push(&message, false),
                }
            }
            return;
        }
        if method == "notifications/cancelled" {
            let owner = message
                .pointer("/params/requestId")
                .map(IdKey::of)
                .and_then(|k| lock(&self.router).server_requests.remove(&k));
            let session =
                owner.and_then(|s| lock(&self.router).sessions.get(&s).and_then(Weak::upgrade));
            if let Some(s) = session {
                s.deliver_unrelated(&message);
            }
            return;
        }
        let sessions: Vec<Arc<dyn Downstream>> = lock(&self.router)
            .sessions
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for s in sessions {
            if !s.is_stateless() {
                s.deliver_unrelated(&message);
            }
        }
    }

    fn route_response(&self, mut message: Value, id: &Value) {
        let pending = id.as_u64().and_then(|id| {
            let mut r = lock(&self.router);
            let p = r.pending.remove(&id);
            if let Some(p) = &p {
                r.by_client
                    .remove(&(p.session.seq(), IdKey::of(&p.client_id)));
            }
            p
        });
        let Some(p) = pending else {
            // A response to a cancelled or expired request: nobody waits for it.
            return;
        };
        if p.method == "initialize" {
            if let Some(v) = message
                .pointer("/result/protocolVersion")
                .and_then(Value::as_str)
            {
                p.session.set_negotiated(v);
            }
        }
        if let Some(obj) = message.as_object_mut() {
            obj.insert("id".into(), p.client_id.clone());
        }
        if jsonrpc::error_code(&message).is_some() {
            self.metrics.error_responses.inc();
        }
        complete(p, message);
    }
}

/// Delivers a request's final message to whoever waits for it.
fn complete(p: Pending, mut message: Value) {
    if message.get("id").is_none_or(Value::is_null) {
        if let Some(obj) = message.as_object_mut() {
            obj.insert("id".into(), p.client_id.clone());
        }
    }
    match p.reply {
        Reply::Json(tx) => {
            let _ = tx.send(message);
        }
        Reply::Stream(s) => s.push(&message, true),
        Reply::Standalone => p.session.standalone().push(&message, false),
    }
}

fn cancel_notification(id: u64, reason: &str) -> Value {
    jsonrpc::notification(
        "notifications/cancelled",
        json!({ "requestId": id, "reason": reason }),
    )
}

impl ChildEvents for Upstream {
    fn on_message(&self, message: Value) {
        match jsonrpc::classify(message) {
            Ok(m) => match m.kind {
                Kind::Response { id } => self.route_response(m.value, &id),
                Kind::Request { .. } => self.route_server_request(m.value),
                Kind::Notification { method } => self.route_notification(m.value, &method),
            },
            Err(e) => {
                tracing::warn!(upstream = %self.label, "ignored an invalid message from the MCP server: {e}")
            }
        }
    }

    fn on_exit(&self, how: String) {
        self.alive.store(false, Ordering::Release);
        self.metrics.children_exited.inc();
        let (pending, sessions) = {
            let mut r = lock(&self.router);
            r.dead = true;
            r.by_client.clear();
            r.server_requests.clear();
            let pending: Vec<Pending> = r.pending.drain().map(|(_, p)| p).collect();
            let sessions: Vec<Arc<dyn Downstream>> = r
                .sessions
                .drain()
                .filter_map(|(_, s)| s.upgrade())
                .collect();
            (pending, sessions)
        };
        if !pending.is_empty() {
            tracing::warn!(upstream = %self.label, "MCP server exited ({how}) with {} requests in flight", pending.len());
        }
        for p in pending {
            complete(
                p,
                jsonrpc::error_with_data(
                    None,
                    code::SERVER_UNAVAILABLE,
                    "the MCP server process exited; start a new session",
                    json!({ "exit": how }),
                ),
            );
        }
        for s in sessions {
            s.close();
        }
    }
}
