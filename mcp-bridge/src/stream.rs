//! SSE streams with replay buffers.
//!
//! Every event is numbered per stream and kept in a bounded replay buffer, so a client
//! that lost a connection resumes with `Last-Event-ID: <stream>_<seq>` (MCP 2025-11-25
//! transports, "Resumability and Redelivery"): only events of that stream are replayed,
//! never another's.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

/// Locks, recovering from a poisoned mutex (a panicking holder must not wedge the bridge).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One SSE stream with its replay buffer.
#[derive(Debug)]
pub struct SseStream {
    pub key: u64,
    inner: Mutex<SseInner>,
}

#[derive(Debug)]
struct SseInner {
    buffer: VecDeque<(u64, Arc<str>)>,
    cap: usize,
    next_seq: u64,
    sink: Option<mpsc::Sender<Bytes>>,
    /// Responses still owed on this stream; the stream ends after the last one.
    /// `None`: a standalone stream that never completes by itself.
    remaining: Option<usize>,
    done: bool,
    /// Highest seq handed to a connected reader.
    delivered: u64,
    /// Counts readers attached, so a timer armed for one connection never cuts the next.
    connection: u64,
}

fn frame(key: u64, seq: u64, data: &str) -> Bytes {
    Bytes::from(format!("id: {key}_{seq}\nevent: message\ndata: {data}\n\n"))
}

impl SseStream {
    pub fn new(key: u64, cap: usize, remaining: Option<usize>) -> Arc<Self> {
        Arc::new(Self {
            key,
            inner: Mutex::new(SseInner {
                buffer: VecDeque::new(),
                cap,
                next_seq: 1,
                sink: None,
                remaining,
                done: false,
                delivered: 0,
                connection: 0,
            }),
        })
    }

    /// Connects a new reader, replaying buffered events after `after` (a seq), and
    /// replacing any previous reader (one connection per stream; no broadcast).
    pub fn attach(&self, queue: usize, after: Option<u64>) -> mpsc::Receiver<Bytes> {
        let mut s = lock(&self.inner);
        let replay: Vec<Bytes> = match after {
            Some(after) => s
                .buffer
                .iter()
                .filter(|(seq, _)| *seq > after)
                .map(|(seq, data)| frame(self.key, *seq, data))
                .collect(),
            None => Vec::new(),
        };
        let (tx, rx) = mpsc::channel(queue.max(replay.len() + 2));
        let last = s.buffer.back().map(|(seq, _)| *seq);
        for f in replay {
            let _ = tx.try_send(f);
        }
        if let (Some(last), Some(_)) = (last, after) {
            s.delivered = s.delivered.max(last);
        }
        if !s.done {
            s.sink = Some(tx);
            s.connection += 1;
        }
        rx
    }

    /// The current reader's number (see [`SseStream::disconnect`]).
    pub fn connection(&self) -> u64 {
        lock(&self.inner).connection
    }

    /// Ends reader `connection`'s HTTP response without ending the stream: later events
    /// wait in the replay buffer until the client comes back with `Last-Event-ID`
    /// (2025-11-25 transports, "Sending Messages" 6: the server may close the connection
    /// after an event id, "without terminating the SSE stream"). Returns whether it did.
    pub fn disconnect(&self, connection: u64) -> bool {
        let mut s = lock(&self.inner);
        if s.done || s.connection != connection || s.sink.is_none() {
            return false;
        }
        s.sink = None;
        true
    }

    /// Sends the priming event: an id with empty data, so the client can resume even
    /// before the first message (2025-11-25 transports, "Sending Messages" 6), and the
    /// `retry` field (ms) a client waits before reconnecting once this connection closes.
    pub fn prime(&self, retry_ms: Option<u64>) {
        let mut s = lock(&self.inner);
        let seq = s.next_seq;
        s.next_seq += 1;
        let retry = retry_ms
            .map(|ms| format!("retry: {ms}\n"))
            .unwrap_or_default();
        let f = Bytes::from(format!("id: {}_{seq}\n{retry}data: \n\n", self.key));
        Self::deliver(&mut s, f, None);
    }

    /// Sends a raw, unbuffered frame (the legacy `endpoint` event).
    pub fn push_raw(&self, f: Bytes) {
        let mut s = lock(&self.inner);
        Self::deliver(&mut s, f, None);
    }

    /// Queues a message; `is_response` counts down the responses the stream owes.
    pub fn push(&self, message: &Value, is_response: bool) {
        let data: Arc<str> = Arc::from(message.to_string());
        let mut s = lock(&self.inner);
        if s.done {
            return;
        }
        let seq = s.next_seq;
        s.next_seq += 1;
        s.buffer.push_back((seq, data.clone()));
        while s.buffer.len() > s.cap {
            s.buffer.pop_front();
        }
        Self::deliver(&mut s, frame(self.key, seq, &data), Some(seq));
        if is_response {
            if let Some(r) = s.remaining.as_mut() {
                *r = r.saturating_sub(1);
                if *r == 0 {
                    s.done = true;
                    s.sink = None;
                }
            }
        }
    }

    fn deliver(s: &mut SseInner, f: Bytes, seq: Option<u64>) {
        if let Some(tx) = &s.sink {
            // A reader that cannot keep up loses the connection, not the events: they stay
            // in the replay buffer for `Last-Event-ID`.
            if tx.try_send(f).is_err() {
                s.sink = None;
            } else if let Some(seq) = seq {
                s.delivered = seq;
            }
        }
    }

    /// The seq after which nothing reached a reader: a fresh GET replays from there, so
    /// a server request sent before the client opened its GET stream is not lost.
    pub fn undelivered_after(&self) -> u64 {
        lock(&self.inner).delivered
    }

    /// Ends the stream (session over, request cancelled).
    pub fn close(&self) {
        let mut s = lock(&self.inner);
        s.done = true;
        s.sink = None;
    }

    pub fn is_connected(&self) -> bool {
        lock(&self.inner)
            .sink
            .as_ref()
            .is_some_and(|tx| !tx.is_closed())
    }

    pub fn is_done(&self) -> bool {
        lock(&self.inner).done
    }
}

/// Parses `Last-Event-ID: <stream>_<seq>`.
pub fn parse_event_id(raw: &str) -> Option<(u64, u64)> {
    let (k, s) = raw.trim().split_once('_')?;
    Some((k.parse().ok()?, s.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn request_streams_end_after_their_responses() {
        let s = SseStream::new(3, 8, Some(2));
        let mut rx = s.attach(8, None);
        s.push(&json!({"method":"notifications/progress"}), false);
        s.push(&json!({"id":1,"result":{}}), true);
        assert!(!s.is_done());
        s.push(&json!({"id":2,"result":{}}), true);
        assert!(s.is_done());
        let mut frames = Vec::new();
        while let Some(f) = rx.recv().await {
            frames.push(String::from_utf8(f.to_vec()).unwrap());
        }
        assert_eq!(frames.len(), 3);
        assert!(frames[0].starts_with("id: 3_1\nevent: message\ndata: {"));
        assert!(frames[2].starts_with("id: 3_3\n"));
    }

    #[tokio::test]
    async fn resumption_replays_only_later_events_of_the_same_stream() {
        let s = SseStream::new(0, 2, None);
        for n in 1..=4 {
            s.push(&json!({"n": n}), false);
        }
        // The buffer keeps the last two events (3 and 4); resume after 3.
        let mut rx = s.attach(8, Some(3));
        let f = rx.recv().await.unwrap();
        assert!(String::from_utf8_lossy(&f).contains("{\"n\":4}"));
        assert!(rx.try_recv().is_err());
        s.push(&json!({"n": 5}), false);
        let f = rx.recv().await.unwrap();
        assert!(String::from_utf8_lossy(&f).starts_with("id: 0_5"));
    }

    #[tokio::test]
    async fn a_slow_reader_loses_the_connection_not_the_events() {
        let s = SseStream::new(0, 100, None);
        let _rx = s.attach(2, None);
        for n in 0..10 {
            s.push(&json!({"n": n}), false);
        }
        assert!(!s.is_connected());
        let mut again = s.attach(16, Some(0));
        let mut count = 0;
        while again.try_recv().is_ok() {
            count += 1;
        }
        assert_eq!(count, 10);
    }

    #[tokio::test]
    async fn a_disconnected_stream_keeps_its_events_for_the_next_reader() {
        let s = SseStream::new(2, 8, Some(1));
        let mut first = s.attach(8, None);
        s.prime(Some(250));
        let primed = first.recv().await.unwrap();
        assert_eq!(&primed[..], b"id: 2_1\nretry: 250\ndata: \n\n");
        let stale = s.connection();
        assert!(s.disconnect(stale));
        assert!(first.recv().await.is_none(), "the response ends");
        assert!(!s.is_done(), "the stream does not");
        s.push(&json!({"method":"notifications/progress"}), false);
        let mut second = s.attach(8, Some(1));
        assert!(
            !s.disconnect(stale),
            "an old timer never cuts a later reader"
        );
        let replayed = second.recv().await.unwrap();
        assert!(String::from_utf8_lossy(&replayed).starts_with("id: 2_2\n"));
        s.push(&json!({"id":1,"result":{}}), true);
        let f = second.recv().await.unwrap();
        assert!(String::from_utf8_lossy(&f).starts_with("id: 2_3\n"));
        assert!(second.recv().await.is_none(), "done after its response");
    }

    #[test]
    fn event_ids_parse() {
        assert_eq!(parse_event_id("3_17"), Some((3, 17)));
        assert_eq!(parse_event_id("x_1"), None);
        assert_eq!(parse_event_id("17"), None);
    }
}
