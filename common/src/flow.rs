//! OAuth flow diagnostics: which steps of the flow a client has reached, so an
//! operator can answer "the client got a token but never used it"
//! (`mcp-gateway flows`).
//!
//! # Convention
//!
//! One plain store record per (client, step): key `flow:<client_id>:<step>`,
//! value the unix time (decimal ASCII) the step was FIRST seen, written with
//! `Store::put_if_absent` so later occurrences cost one failed write and never
//! move the time. Records live [`FLOW_TTL`] (a forgotten client's trail fades).
//!
//! Recording must never slow or fail a request: services write these records
//! fire-and-forget (spawned, errors logged at debug), and the verifier — whose
//! hot path does no I/O — remembers in memory which client ids it has already
//! reported and spawns the write only the first time it sees one.

use std::collections::HashSet;
use std::sync::RwLock;
use std::time::Duration;

pub const FLOW_PREFIX: &str = "flow:";

/// How long a step record is kept.
pub const FLOW_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Which flow records this process has already written, so a step that
/// happens on every request (a refresh) costs a lookup instead of a store
/// write. Bounded: past [`Recorded::CAPACITY`] keys, or a day after it was
/// last emptied, it starts over (a few redundant `put_if_absent` writes), so a
/// record that expired meanwhile ([`FLOW_TTL`]) is written again.
#[derive(Debug, Default)]
pub struct Recorded {
    /// (when emptied, keys written since)
    seen: RwLock<(u64, HashSet<String>)>,
}

impl Recorded {
    pub const CAPACITY: usize = 100_000;
    const RESET: u64 = 24 * 3600;

    /// True the first time `key` is offered (since the last reset): write it then.
    pub fn first_time(&self, key: &str, now: u64) -> bool {
        if let Ok(seen) = self.seen.read() {
            if seen.1.contains(key) && now < seen.0 + Self::RESET {
                return false;
            }
        }
        let Ok(mut seen) = self.seen.write() else {
            return true;
        };
        if seen.1.len() >= Self::CAPACITY || now >= seen.0 + Self::RESET {
            *seen = (now, HashSet::new());
        }
        seen.1.insert(key.to_string())
    }
}

/// The steps of the MCP authorization flow, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FlowStep {
    /// We fetched the client's Client ID Metadata Document (recorded when the
    /// client first gets a code or token: a URL anyone can type leaves no
    /// record before that). Metadata fetches by
    /// the client (RFC 8414 / RFC 9728) carry no client id, so they cannot be
    /// attributed and are not recorded.
    MetadataFetched,
    /// RFC 7591 registration: the client record's `issued_at`, no record of
    /// its own. A record for a metadata-document client's first code or token.
    Registered,
    /// The user approved (an authorization code was issued).
    Authorized,
    /// The first access token was issued (authorization_code grant).
    TokenIssued,
    /// A refresh_token grant succeeded.
    Refreshed,
    /// The verifier accepted one of the client's tokens.
    FirstUse,
}

impl FlowStep {
    pub const ALL: [FlowStep; 6] = [
        FlowStep::MetadataFetched,
        FlowStep::Registered,
        FlowStep::Authorized,
        FlowStep::TokenIssued,
        FlowStep::Refreshed,
        FlowStep::FirstUse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FlowStep::MetadataFetched => "metadata_fetched",
            FlowStep::Registered => "registered",
            FlowStep::Authorized => "authorized",
            FlowStep::TokenIssued => "token_issued",
            FlowStep::Refreshed => "refreshed",
            FlowStep::FirstUse => "first_use",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|step| step.as_str() == s)
    }
}

/// `flow:<client_id>:<step>`. The step is last, so a client id containing
/// `:` (a CIMD URL) still parses back with [`parse_flow_key`].
pub fn flow_key(client_id: &str, step: FlowStep) -> String {
    format!("{FLOW_PREFIX}{client_id}:{}", step.as_str())
}

/// The key prefix of one client's steps.
pub fn flow_client_prefix(client_id: &str) -> String {
    format!("{FLOW_PREFIX}{client_id}:")
}

/// Client id and step of a flow key.
pub fn parse_flow_key(key: &str) -> Option<(&str, FlowStep)> {
    let rest = key.strip_prefix(FLOW_PREFIX)?;
    let (client, step) = rest.rsplit_once(':')?;
    Some((client, FlowStep::parse(step)?))
}

/// The record value: first-seen unix time.
pub fn flow_value(now_secs: u64) -> Vec<u8> {
    now_secs.to_string().into_bytes()
}

pub fn parse_flow_value(raw: &[u8]) -> Option<u64> {
    std::str::from_utf8(raw).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn recorded_says_first_time_once_per_key_until_a_day_passes() {
        let r = super::Recorded::default();
        assert!(r.first_time("flow:c:refreshed", 1000));
        assert!(!r.first_time("flow:c:refreshed", 1001));
        assert!(r.first_time("flow:d:refreshed", 1001));
        assert!(r.first_time("flow:c:refreshed", 1000 + 24 * 3600));
        assert!(!r.first_time("flow:c:refreshed", 1000 + 24 * 3600 + 1));
    }

    use super::*;

    #[test]
    fn keys_round_trip_even_for_url_client_ids() {
        for step in FlowStep::ALL {
            let key = flow_key("https://client.example/meta.json", step);
            assert_eq!(
                parse_flow_key(&key),
                Some(("https://client.example/meta.json", step))
            );
            assert!(key.starts_with(&flow_client_prefix("https://client.example/meta.json")));
        }
        assert_eq!(parse_flow_key("flow:abc:unknown"), None);
        assert_eq!(parse_flow_key("authz:client:abc"), None);
        assert_eq!(
            parse_flow_value(&flow_value(1_700_000_000)),
            Some(1_700_000_000)
        );
        assert_eq!(parse_flow_value(b"x"), None);
    }
}
