//! Flow diagnostics at the verifier: the first accepted token of each client
//! is recorded as `FlowStep::FirstUse` (see `gateway_common::flow`).
//!
//! The request path does no I/O: [`FirstUse::note`] checks an in-memory set
//! of client ids already reported and, for a new one, `try_send`s it on a
//! bounded channel. A background task ([`run_writer`]) writes the store
//! record. Where the record goes:
//! * `REDIS_URL` set: the shared Redis store, by the verifier's own task
//!   ([`crate::start`]);
//! * embedded (one-machine mode): the launcher owns the store and calls
//!   [`crate::Verifier::spawn_first_use_writer`];
//! * otherwise (stand-alone verifier without Redis) nothing is recorded — the
//!   verifier has no store and no write access to the authz-server, and
//!   `mcp-gateway flows` then shows first use as unknown.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use gateway_common::clock::SharedClock;
use gateway_common::flow::{flow_key, flow_value, FlowStep, FLOW_TTL};
use gateway_store::Store;
use tokio::sync::mpsc;

/// Client ids queued for writing; more are dropped (and retried on their next use).
const QUEUE: usize = 1024;
/// Client ids remembered; past this the set starts over (a few redundant,
/// harmless `put_if_absent` writes).
const REMEMBERED: usize = 100_000;

#[derive(Debug)]
pub struct FirstUse {
    /// Set once a writer holds the receiver; until then nothing is queued.
    enabled: AtomicBool,
    seen: RwLock<HashSet<String>>,
    tx: mpsc::Sender<String>,
    rx: Mutex<Option<mpsc::Receiver<String>>>,
}

impl Default for FirstUse {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Self {
            enabled: AtomicBool::new(false),
            seen: RwLock::new(HashSet::new()),
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl FirstUse {
    /// Called on every allowed request: a read lock and a hash lookup, then
    /// for a new client id a non-blocking send.
    pub fn note(&self, client_id: &str) {
        if client_id.is_empty() || !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(seen) = self.seen.read() {
            if seen.contains(client_id) {
                return;
            }
        }
        let Ok(mut seen) = self.seen.write() else {
            return;
        };
        if seen.len() >= REMEMBERED {
            seen.clear();
        }
        if !seen.insert(client_id.to_string()) {
            return;
        }
        if self.tx.try_send(client_id.to_string()).is_err() {
            // Queue full: forget it, so a later request tries again.
            seen.remove(client_id);
        }
    }

    /// The receiving end, once; enables [`FirstUse::note`].
    pub fn take_receiver(&self) -> Option<mpsc::Receiver<String>> {
        let rx = self.rx.lock().ok()?.take()?;
        self.enabled.store(true, Ordering::Relaxed);
        Some(rx)
    }
}

/// Writes a `FirstUse` record per received client id (first time only,
/// `put_if_absent`). Failures are logged at debug: diagnostics never matter
/// more than serving.
pub async fn run_writer(mut rx: mpsc::Receiver<String>, store: Arc<dyn Store>, clock: SharedClock) {
    while let Some(client_id) = rx.recv().await {
        let key = flow_key(&client_id, FlowStep::FirstUse);
        let value = flow_value(clock.now_secs());
        if let Err(e) = store.put_if_absent(&key, &value, Some(FLOW_TTL)).await {
            tracing::debug!(error = %e, "first-use step not recorded");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_is_queued_once_and_only_with_a_writer() {
        let f = FirstUse::default();
        f.note("a");
        let mut rx = f.take_receiver().unwrap();
        assert!(rx.try_recv().is_err(), "nothing queued before a writer");
        assert!(f.take_receiver().is_none());
        for _ in 0..3 {
            f.note("a");
            f.note("b");
            f.note("");
        }
        assert_eq!(rx.try_recv().unwrap(), "a");
        assert_eq!(rx.try_recv().unwrap(), "b");
        assert!(rx.try_recv().is_err());
    }
}
