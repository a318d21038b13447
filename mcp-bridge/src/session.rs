//! Sessions.
//!
//! A session owns one standalone stream (the GET stream; key 0) and the streams of its
//! POSTed requests ([`SseStream`]), and the upstream it is attached to. The upstream
//! reaches the session back only through [`Downstream`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;

use crate::identity::Identity;
use crate::stream::{lock, SseStream};
use crate::upstream::{Downstream, Upstream};

/// Which transport opened the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// Streamable HTTP 2025-03-26 .. 2025-11-25.
    Streamable,
    /// HTTP+SSE 2024-11-05: every message from the server goes on the one SSE stream.
    Legacy,
    /// Internal session serving 2026-07-28 stateless requests (and readiness probes):
    /// no GET stream, so server-initiated requests are refused and unrelated
    /// notifications dropped.
    Stateless,
}

#[derive(Debug)]
struct Streams {
    next_key: u64,
    /// Request streams still owed a response, newest last.
    active: Vec<Arc<SseStream>>,
    /// Recent request streams, for resumption after they completed.
    recent: VecDeque<Arc<SseStream>>,
}

const RECENT_STREAMS: usize = 32;

#[derive(Debug)]
pub struct Session {
    pub id: String,
    /// Numeric key used by the upstream's router.
    pub seq: u64,
    pub kind: SessionKind,
    pub identity: Identity,
    pub upstream: Arc<Upstream>,
    pub standalone: Arc<SseStream>,
    negotiated: Mutex<Option<String>>,
    streams: Mutex<Streams>,
    closed: AtomicBool,
    last_active: Mutex<Instant>,
    /// Requests answered as one JSON body still waiting for their answers.
    json_waits: AtomicUsize,
    replay_events: usize,
    pub max_queued: usize,
}

/// While alive, the session counts as busy ([`Session::is_busy`]); dropped (the answer
/// came, or the client went away), it marks the session active again.
#[derive(Debug)]
pub struct JsonWait(Arc<Session>);

impl Drop for JsonWait {
    fn drop(&mut self) {
        self.0.touch(Instant::now());
        self.0.json_waits.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        seq: u64,
        kind: SessionKind,
        identity: Identity,
        upstream: Arc<Upstream>,
        replay_events: usize,
        max_queued: usize,
        now: Instant,
    ) -> Arc<Self> {
        Arc::new(Self {
            id,
            seq,
            kind,
            identity,
            upstream,
            standalone: SseStream::new(0, replay_events, None),
            negotiated: Mutex::new(None),
            streams: Mutex::new(Streams {
                next_key: 1,
                active: Vec::new(),
                recent: VecDeque::new(),
            }),
            closed: AtomicBool::new(false),
            last_active: Mutex::new(now),
            json_waits: AtomicUsize::new(0),
            replay_events,
            max_queued,
        })
    }

    /// Whether this session counts against the share of `key` (a user or client id).
    pub fn held_by(&self, scope: crate::error::LimitScope, key: &str) -> bool {
        match scope {
            crate::error::LimitScope::User => self.identity.user_id == key,
            crate::error::LimitScope::Client => self.identity.client_id == key,
        }
    }

    pub fn negotiated(&self) -> Option<String> {
        lock(&self.negotiated).clone()
    }

    pub fn set_negotiated(&self, v: &str) {
        *lock(&self.negotiated) = Some(v.to_string());
    }

    pub fn touch(&self, now: Instant) {
        *lock(&self.last_active) = now;
    }

    pub fn last_active(&self) -> Instant {
        *lock(&self.last_active)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// A new stream for a POST that owes `responses` responses.
    pub fn new_request_stream(&self, responses: usize) -> Arc<SseStream> {
        let mut st = lock(&self.streams);
        let key = st.next_key;
        st.next_key += 1;
        let stream = SseStream::new(key, self.replay_events, Some(responses));
        st.active.retain(|s| !s.is_done());
        st.active.push(stream.clone());
        st.recent.push_back(stream.clone());
        while st.recent.len() > RECENT_STREAMS {
            st.recent.pop_front();
        }
        stream
    }

    /// The stream a `Last-Event-ID` points at.
    pub fn find_stream(&self, key: u64) -> Option<Arc<SseStream>> {
        if key == 0 {
            return Some(self.standalone.clone());
        }
        lock(&self.streams)
            .recent
            .iter()
            .find(|s| s.key == key)
            .cloned()
    }

    /// A server message not tied to a known request: on the newest POST stream still open
    /// (it most likely belongs to the request being handled), else the GET stream, where
    /// it waits in the replay buffer if no GET is connected.
    pub fn deliver_unrelated(&self, message: &Value) {
        let target = {
            let mut st = lock(&self.streams);
            st.active.retain(|s| !s.is_done());
            st.active.iter().rev().find(|s| s.is_connected()).cloned()
        };
        match target {
            Some(s) => s.push(message, false),
            None => self.standalone.push(message, false),
        }
    }

    /// Holds the session busy while a POST answered with `application/json` waits:
    /// such a request has no stream, and a tool call longer than the idle timeout must
    /// not lose its session half-way.
    pub fn json_wait(self: &Arc<Self>) -> JsonWait {
        self.json_waits.fetch_add(1, Ordering::AcqRel);
        JsonWait(Arc::clone(self))
    }

    /// Whether something keeps the session busy (the idle reaper spares it).
    pub fn is_busy(&self) -> bool {
        self.json_waits.load(Ordering::Acquire) > 0 || self.standalone.is_connected() || {
            let mut st = lock(&self.streams);
            st.active.retain(|s| !s.is_done());
            !st.active.is_empty()
        }
    }

    /// Ends the session's streams. Idempotent; returns whether this call closed it.
    pub fn close(&self) -> bool {
        let first = !self.closed.swap(true, Ordering::AcqRel);
        self.standalone.close();
        let st = lock(&self.streams);
        for s in &st.active {
            s.close();
        }
        first
    }
}

impl Downstream for Session {
    fn seq(&self) -> u64 {
        self.seq
    }

    fn id(&self) -> &str {
        &self.id
    }

    fn is_stateless(&self) -> bool {
        self.kind == SessionKind::Stateless
    }

    fn standalone(&self) -> &SseStream {
        &self.standalone
    }

    fn deliver_unrelated(&self, message: &Value) {
        Session::deliver_unrelated(self, message);
    }

    fn set_negotiated(&self, version: &str) {
        Session::set_negotiated(self, version);
    }

    fn close(&self) -> bool {
        Session::close(self)
    }
}
