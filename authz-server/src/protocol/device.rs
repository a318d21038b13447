//! Device authorization grant (RFC 8628) as plain logic: user codes, the
//! device record, and what a poll at `/token` gets. The HTTP adapter is
//! `http::device`.
//!
//! A device code is stored under its hash and leaves the store with the first
//! poll that sees it approved or denied (single use); the user code maps to it
//! while it is pending.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::protocol::identity::Identity;

/// RFC 8628 §3.4 grant type.
pub const GRANT_DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// RFC 8628 §6.1: consonants only (no vowels: no words; no easily confused letters).
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
/// 20^8 ≈ 2.6·10^10 codes; with a 10-minute lifetime that is far beyond guessing.
const USER_CODE_LEN: usize = 8;
/// A lapsed device record is kept this long, so a late poll hears
/// `expired_token` (RFC 8628 §3.5) rather than `invalid_grant`.
pub const EXPIRED_GRACE_SECS: u64 = 300;

/// How long the store keeps a device record that lapses at `exp`.
pub fn record_ttl(exp: u64, now: u64) -> std::time::Duration {
    std::time::Duration::from_secs(exp.saturating_sub(now) + EXPIRED_GRACE_SECS)
}

/// RFC 8628 §3.5: each `slow_down` adds 5 seconds to the interval.
pub const SLOW_DOWN_STEP: u64 = 5;

pub fn device_key(code_hash: &str) -> String {
    format!("authz:device:{code_hash}")
}

pub fn user_code_key(user_code: &str) -> String {
    format!("authz:user-code:{user_code}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "user")]
pub enum DeviceStatus {
    Pending,
    Approved(Identity),
    Denied,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub client_id: String,
    pub scope: String,
    pub resources: Vec<String>,
    /// Normalised (8 letters, no dash).
    pub user_code: String,
    pub status: DeviceStatus,
    /// Current minimum seconds between polls.
    pub interval: u64,
    pub last_poll: Option<u64>,
    pub exp: u64,
}

/// A fresh user code, normalised (display it with [`display_user_code`]).
pub fn new_user_code() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..USER_CODE_LEN)
        .map(|_| USER_CODE_ALPHABET[rng.gen_range(0..USER_CODE_ALPHABET.len())] as char)
        .collect()
}

/// `BCDF-GHJK`: easier to read and type (RFC 8628 §6.1).
pub fn display_user_code(code: &str) -> String {
    if code.len() == USER_CODE_LEN {
        format!("{}-{}", &code[..4], &code[4..])
    } else {
        code.to_string()
    }
}

/// What a person typed → the stored form: case, dashes and spaces ignored.
pub fn normalize_user_code(input: &str) -> Option<String> {
    if input.len() > 32 {
        return None;
    }
    let code: String = input
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)))
        .then_some(code)
}

/// The outcome of one poll (RFC 8628 §3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// Still waiting; store the updated record.
    Pending(Box<DeviceRecord>),
    /// Too fast; store the updated record (interval increased).
    SlowDown(Box<DeviceRecord>),
    Expired,
    Denied,
    Approved(Box<Identity>),
    /// The device code belongs to another client.
    WrongClient,
}

pub fn poll(rec: &DeviceRecord, client_id: &str, now: u64) -> Poll {
    if rec.client_id != client_id {
        return Poll::WrongClient;
    }
    if now >= rec.exp {
        return Poll::Expired;
    }
    match &rec.status {
        DeviceStatus::Approved(user) => Poll::Approved(Box::new(user.clone())),
        DeviceStatus::Denied => Poll::Denied,
        DeviceStatus::Pending => {
            let mut next = rec.clone();
            next.last_poll = Some(now);
            let too_soon = rec
                .last_poll
                .is_some_and(|last| now.saturating_sub(last) < rec.interval);
            if too_soon {
                next.interval = rec.interval + SLOW_DOWN_STEP;
                Poll::SlowDown(Box::new(next))
            } else {
                Poll::Pending(Box::new(next))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> DeviceRecord {
        DeviceRecord {
            client_id: "c".into(),
            scope: "mcp".into(),
            resources: vec![],
            user_code: "BCDFGHJK".into(),
            status: DeviceStatus::Pending,
            interval: 5,
            last_poll: None,
            exp: 1000,
        }
    }

    #[test]
    fn user_codes_are_normalised_and_restricted() {
        let c = new_user_code();
        assert_eq!(normalize_user_code(&display_user_code(&c)), Some(c.clone()));
        assert_eq!(
            normalize_user_code("bcdf-ghjk").as_deref(),
            Some("BCDFGHJK")
        );
        assert_eq!(normalize_user_code("AEIO-UBCD"), None);
        assert_eq!(normalize_user_code("<script>"), None);
    }

    #[test]
    fn polling_too_fast_slows_down_and_expiry_wins() {
        let Poll::Pending(first) = poll(&rec(), "c", 100) else {
            panic!("pending expected")
        };
        let Poll::SlowDown(slowed) = poll(&first, "c", 102) else {
            panic!("slow_down expected")
        };
        assert_eq!(slowed.interval, 10);
        assert!(matches!(poll(&slowed, "c", 108), Poll::SlowDown(_)));
        assert!(matches!(poll(&slowed, "c", 112), Poll::Pending(_)));
        assert_eq!(poll(&rec(), "other", 100), Poll::WrongClient);
        assert_eq!(poll(&rec(), "c", 1000), Poll::Expired);
        let mut denied = rec();
        denied.status = DeviceStatus::Denied;
        assert_eq!(poll(&denied, "c", 100), Poll::Denied);
    }
}
