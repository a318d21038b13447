//! Connection budgets: how many connections the server holds open in total
//! and per peer address. A peer over its share is closed at accept, before
//! any request is read, so held-open connections from one place cannot use up
//! the file descriptors everyone else needs. Trusted proxies are exempt: one
//! proxy connection carries many users (their budget is the operator's proxy).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use gateway_common::trusted_proxies::TrustedProxies;

use crate::limits::{address_key, Key};

/// Open connections per peer address (fixed-size keys; at most one entry per
/// open connection, so the map is bounded by the total connection cap).
#[derive(Debug)]
pub struct PeerConnections {
    per_address: usize,
    trusted: TrustedProxies,
    open: Mutex<HashMap<Key, usize>>,
}

/// The answer to a new connection.
#[derive(Debug)]
pub enum Admission {
    /// Counted against its address; hold it for the connection's life.
    Slot(ConnectionSlot),
    /// A trusted proxy: not counted.
    Untracked,
    /// The address is at its cap: close the connection.
    Refused,
}

/// Held for the life of one connection; dropping it gives the slot back.
#[derive(Debug)]
pub struct ConnectionSlot {
    owner: Arc<PeerConnections>,
    key: Key,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.owner.open.lock() {
            if let Some(n) = open.get_mut(&self.key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.remove(&self.key);
                }
            }
        }
    }
}

impl PeerConnections {
    pub fn new(per_address: usize, trusted: TrustedProxies) -> Arc<Self> {
        Arc::new(Self {
            per_address,
            trusted,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Whether a new connection from `peer` may stay open.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Admission {
        if self.trusted.contains(peer) {
            return Admission::Untracked;
        }
        let key = address_key(peer);
        let Ok(mut open) = self.open.lock() else {
            return Admission::Untracked;
        };
        let n = open.entry(key).or_insert(0);
        if *n >= self.per_address {
            if *n == 0 {
                open.remove(&key);
            }
            return Admission::Refused;
        }
        *n += 1;
        Admission::Slot(ConnectionSlot {
            owner: self.clone(),
            key,
        })
    }

    /// Peers with at least one open connection.
    pub fn peers(&self) -> usize {
        self.open.lock().map_or(0, |m| m.len())
    }
}

/// The connection cap actually used: the configured one, but never more than
/// the file descriptors the process may open, less a reserve for the store,
/// outbound fetches, logs and the listener. Raises the soft descriptor limit
/// to the hard one first (allowed without privileges).
pub fn effective_max_connections(configured: usize) -> usize {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    const RESERVE: u64 = 256;
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return configured;
    };
    let soft = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    let room = usize::try_from(soft.saturating_sub(RESERVE).max(16)).unwrap_or(usize::MAX);
    configured.min(room)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_gets_its_share_and_slots_come_back() {
        let pc = PeerConnections::new(
            2,
            TrustedProxies::parse(&["10.0.0.1".into()]).expect("valid"),
        );
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let s1 = pc.admit(a);
        let s2 = pc.admit(a);
        assert!(matches!(
            (&s1, &s2),
            (Admission::Slot(_), Admission::Slot(_))
        ));
        assert!(matches!(pc.admit(a), Admission::Refused), "third refused");
        assert!(
            matches!(
                pc.admit("192.0.2.2".parse().expect("ip")),
                Admission::Slot(_)
            ),
            "others unaffected"
        );
        drop(s1);
        assert!(
            matches!(pc.admit(a), Admission::Slot(_)),
            "a closed connection frees its slot"
        );
        drop(s2);
        assert_eq!(pc.peers(), 0);
        // The proxy is never counted.
        for _ in 0..10 {
            assert!(matches!(
                pc.admit("10.0.0.1".parse().expect("ip")),
                Admission::Untracked
            ));
        }
    }
}

/// The connection budget of one server: apply with
/// `.max_connections(budget.per_worker())` and call [`Budget::on_connect`]
/// from `HttpServer::on_connect` (the one-machine launcher does the same).
#[derive(Debug, Clone)]
pub struct Budget {
    per_worker: usize,
    total: usize,
    peers: Arc<PeerConnections>,
}

impl Budget {
    pub fn new(config: &crate::Config, workers: usize) -> Self {
        let total = effective_max_connections(config.max_connections);
        Self {
            per_worker: (total / workers.max(1)).max(1),
            total,
            peers: PeerConnections::new(
                config.max_connections_per_address,
                config.trusted_proxies.clone(),
            ),
        }
    }

    /// actix counts connections per worker.
    pub fn per_worker(&self) -> usize {
        self.per_worker
    }

    pub fn total(&self) -> usize {
        self.total
    }

    pub fn on_connect(&self, conn: &dyn std::any::Any, ext: &mut actix_web::dev::Extensions) {
        on_connect(&self.peers, conn, ext);
    }
}

/// `HttpServer::on_connect`: admits the connection or closes it at once.
pub fn on_connect(
    peers: &Arc<PeerConnections>,
    conn: &dyn std::any::Any,
    ext: &mut actix_web::dev::Extensions,
) {
    let Some(stream) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    let Ok(peer) = stream.peer_addr() else {
        return;
    };
    match peers.admit(peer.ip()) {
        Admission::Slot(slot) => {
            ext.insert(slot);
        }
        Admission::Untracked => {}
        Admission::Refused => {
            tracing::info!(peer = %peer.ip(), "connection refused: too many open from this address");
            // Shut both directions: the dispatcher reads EOF and drops the
            // connection before reading a request.
            let _ = socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Both);
        }
    }
}
