//! The budgets of one process: the configured limits and the tables that
//! enforce them, shared by every worker (the middleware that applies them to
//! requests: `crate::http::rate_limit`).
//!
//! Every limit keys on something verified: the peer address as seen through
//! `TRUSTED_PROXIES` (`crate::http::rate_limit::client_ip`), or — at `/token` — the client once it
//! has authenticated. Never on a `client_id` anyone can type: flooding a
//! client's id from elsewhere costs the flooder's address its budget and
//! leaves the client alone. In memory, per instance; with several
//! authz-servers behind a balancer each enforces its own share.
//!
//! | variable | default |
//! |---|---|
//! | `RATE_LIMIT_ENABLED` | `true` |
//! | `RATE_LIMIT_REGISTER_PER_ADDRESS` | 30 per minute |
//! | `RATE_LIMIT_TOKEN_PER_ADDRESS` | 600 per minute |
//! | `RATE_LIMIT_TOKEN_PER_CLIENT` | 600 per minute, authenticated clients only |
//! | `RATE_LIMIT_AUTHORIZE_PER_ADDRESS` | 600 per minute |
//! | `RATE_LIMIT_PUBLIC_PER_ADDRESS` | 300 per minute (sign-in, device, consent, revoke, introspect, device authorization, registration management) |
//! | `RATE_LIMIT_STATE_BYTES` | 16 MiB for all limiter tables together |
//! | `RATE_LIMIT_MAX_BODY_BYTES` | 16384 |
//! | `RATE_LIMIT_MAX_HEADER_BYTES` | 16384 |
//!
//! A per-minute value is also the burst: a bucket holds one minute's allowance.
//! `0` disables that one limit.

use std::time::Duration;

use gateway_common::clock::SharedClock;
use gateway_common::config::{ConfigError, Source};

use crate::limits::{name_key, Backoff, FailureThrottle, KeyedLimit};

/// Limiter tables sharing `RATE_LIMIT_STATE_BYTES` (five rate tables, three throttles).
const TABLES: usize = 8;

/// The configured limits. A rate of 0 means "no limit".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub enabled: bool,
    pub register_per_address: u32,
    pub token_per_address: u32,
    pub token_per_client: u32,
    pub authorize_per_address: u32,
    pub public_per_address: u32,
    pub state_bytes: usize,
    pub max_body_bytes: usize,
    pub max_header_bytes: usize,
    /// Wrong passwords or user codes from one address: 5 free, then 1 s doubling to this.
    pub signin_address_max_delay: Duration,
    /// Wrong passwords for one account from browsers that never signed in
    /// as it: 10 free, then 1 s doubling to this. Short, so nobody can keep
    /// a user out for long; browsers that signed in as the account before
    /// are exempt (the known-browser cookie), so they are never kept out.
    pub signin_account_max_delay: Duration,
    /// Password hashes computed at once (argon2id takes ~19 MiB each).
    pub password_hash_concurrency: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            enabled: true,
            register_per_address: 30,
            token_per_address: 600,
            token_per_client: 600,
            authorize_per_address: 600,
            public_per_address: 300,
            state_bytes: 16 << 20,
            max_body_bytes: 16 * 1024,
            max_header_bytes: 16 * 1024,
            signin_address_max_delay: Duration::from_secs(900),
            signin_account_max_delay: Duration::from_secs(60),
            password_hash_concurrency: 4,
        }
    }
}

impl Limits {
    /// Reads `RATE_LIMIT_*` and `SIGNIN_*`; every error names its variable (one line).
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let d = Self::default();
        let size = |key: &str, default: usize, min: u64| -> Result<usize, ConfigError> {
            let v = src.u64(key, default as u64)?;
            if v < min {
                return Err(ConfigError::new(
                    key,
                    format!("must be at least {min} bytes, got {v}"),
                    &default.to_string(),
                ));
            }
            usize::try_from(v)
                .map_err(|_| ConfigError::new(key, "is too large", &default.to_string()))
        };
        let rate = |key: &str, default: u32| -> Result<u32, ConfigError> {
            let v = src.u64(key, u64::from(default))?;
            u32::try_from(v).map_err(|_| {
                ConfigError::new(key, "is too large (per minute)", &default.to_string())
            })
        };
        let secs = |key: &str, default: Duration| -> Result<Duration, ConfigError> {
            let v = src.u64(key, default.as_secs())?;
            if v == 0 || v > 86_400 {
                return Err(ConfigError::new(
                    key,
                    format!("must be between 1 and 86400 seconds, got {v}"),
                    &default.as_secs().to_string(),
                ));
            }
            Ok(Duration::from_secs(v))
        };
        if src.get("RATE_LIMIT_AUTHORIZE_PER_CLIENT").is_some() {
            // Limits no longer key on an unauthenticated client_id (anyone could
            // spend a client's budget); the per-address limit applies instead.
            tracing::warn!("RATE_LIMIT_AUTHORIZE_PER_CLIENT is no longer used: /authorize is limited per address (RATE_LIMIT_AUTHORIZE_PER_ADDRESS)");
        }
        let concurrency = src.u64(
            "PASSWORD_HASH_CONCURRENCY",
            d.password_hash_concurrency as u64,
        )?;
        if !(1..=64).contains(&concurrency) {
            return Err(ConfigError::new(
                "PASSWORD_HASH_CONCURRENCY",
                format!("must be between 1 and 64, got {concurrency}"),
                "4",
            ));
        }
        Ok(Self {
            enabled: src.bool("RATE_LIMIT_ENABLED", d.enabled)?,
            register_per_address: rate("RATE_LIMIT_REGISTER_PER_ADDRESS", d.register_per_address)?,
            token_per_address: rate("RATE_LIMIT_TOKEN_PER_ADDRESS", d.token_per_address)?,
            token_per_client: rate("RATE_LIMIT_TOKEN_PER_CLIENT", d.token_per_client)?,
            authorize_per_address: rate(
                "RATE_LIMIT_AUTHORIZE_PER_ADDRESS",
                d.authorize_per_address,
            )?,
            public_per_address: rate("RATE_LIMIT_PUBLIC_PER_ADDRESS", d.public_per_address)?,
            state_bytes: size("RATE_LIMIT_STATE_BYTES", d.state_bytes, 64 * 1024)?,
            max_body_bytes: size("RATE_LIMIT_MAX_BODY_BYTES", d.max_body_bytes, 1024)?,
            max_header_bytes: size("RATE_LIMIT_MAX_HEADER_BYTES", d.max_header_bytes, 1024)?,
            signin_address_max_delay: secs(
                "SIGNIN_ADDRESS_MAX_DELAY_SECS",
                d.signin_address_max_delay,
            )?,
            signin_account_max_delay: secs(
                "SIGNIN_ACCOUNT_MAX_DELAY_SECS",
                d.signin_account_max_delay,
            )?,
            password_hash_concurrency: concurrency as usize,
        })
    }
}

/// Every budget of one process, shared by all workers.
#[derive(Debug)]
pub struct RateLimiter {
    pub limits: Limits,
    pub(crate) register: KeyedLimit,
    pub(crate) token_address: KeyedLimit,
    pub(crate) token_client: KeyedLimit,
    pub(crate) authorize: KeyedLimit,
    pub(crate) public: KeyedLimit,
    /// Failed sign-ins and user-code entries per address.
    pub guess_address: FailureThrottle,
    /// Failed sign-ins per account (hash of the name tried).
    pub guess_account: FailureThrottle,
    /// Password hashing slots: a flood of sign-ins waits here instead of
    /// allocating argon2's memory for every attempt at once.
    pub hashing: tokio::sync::Semaphore,
}

impl RateLimiter {
    pub fn new(limits: Limits, clock: SharedClock) -> Self {
        let keys = (limits.state_bytes / crate::limits::BYTES_PER_ENTRY / TABLES).max(1);
        let rate = |per_minute: u32| {
            KeyedLimit::new(
                if limits.enabled { per_minute } else { 0 },
                keys,
                clock.clone(),
            )
        };
        let address_policy = Backoff {
            free: 5,
            base: Duration::from_secs(1),
            cap: limits.signin_address_max_delay,
        };
        let account_policy = Backoff {
            free: 10,
            base: Duration::from_secs(1),
            cap: limits.signin_account_max_delay,
        };
        Self {
            register: rate(limits.register_per_address),
            token_address: rate(limits.token_per_address),
            token_client: rate(limits.token_per_client),
            authorize: rate(limits.authorize_per_address),
            public: rate(limits.public_per_address),
            guess_address: FailureThrottle::new(address_policy, keys, clock.clone()),
            guess_account: FailureThrottle::new(account_policy, keys, clock),
            hashing: tokio::sync::Semaphore::new(limits.password_hash_concurrency),
            limits,
        }
    }

    /// `/token` per authenticated client (RFC 6749 §2.3): called only after
    /// the client proved itself.
    pub fn token_client(&self, client_id: &str) -> Result<(), u64> {
        self.token_client.check(&name_key("client", client_id))
    }

    /// Forgets idle keys; run periodically.
    pub fn prune(&self) {
        for l in [
            &self.register,
            &self.token_address,
            &self.token_client,
            &self.authorize,
            &self.public,
        ] {
            l.prune();
        }
        self.guess_address.prune();
        self.guess_account.prune();
    }

    /// Keys tracked in every table together (metrics, tests).
    pub fn tracked(&self) -> usize {
        self.register.tracked()
            + self.token_address.tracked()
            + self.token_client.tracked()
            + self.authorize.tracked()
            + self.public.tracked()
            + self.guess_address.tracked()
            + self.guess_account.tracked()
    }

    pub fn guessing_enabled(&self) -> bool {
        self.limits.enabled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::address_key;
    use std::net::IpAddr;

    #[test]
    fn config_errors_name_the_variable() {
        let src = Source::from_pairs([("RATE_LIMIT_TOKEN_PER_ADDRESS", "lots")]);
        let e = Limits::from_source(&src).unwrap_err().to_string();
        assert!(e.contains("RATE_LIMIT_TOKEN_PER_ADDRESS"), "{e}");
        assert!(!e.contains('\n'));
        let src = Source::from_pairs([("RATE_LIMIT_MAX_BODY_BYTES", "10")]);
        let e = Limits::from_source(&src).unwrap_err().to_string();
        assert!(e.contains("RATE_LIMIT_MAX_BODY_BYTES"), "{e}");
        let src = Source::from_pairs([("PASSWORD_HASH_CONCURRENCY", "0")]);
        let e = Limits::from_source(&src).unwrap_err().to_string();
        assert!(e.contains("PASSWORD_HASH_CONCURRENCY"), "{e}");
        let src = Source::from_pairs([("SIGNIN_ACCOUNT_MAX_DELAY_SECS", "0")]);
        let e = Limits::from_source(&src).unwrap_err().to_string();
        assert!(e.contains("SIGNIN_ACCOUNT_MAX_DELAY_SECS"), "{e}");
        let src = Source::from_pairs([("RATE_LIMIT_REGISTER_PER_ADDRESS", "5")]);
        assert_eq!(Limits::from_source(&src).unwrap().register_per_address, 5);
    }

    #[test]
    fn the_state_budget_bounds_every_table() {
        let limits = Limits {
            state_bytes: 64 * 1024,
            ..Limits::default()
        };
        let l = RateLimiter::new(limits, gateway_common::clock::system());
        for i in 0..5_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            let _ = l.public.check(&address_key(ip));
            let _ = l.token_client(&format!("client-{i}"));
            l.guess_account.failed(&name_key("account", &i.to_string()));
        }
        let per_table = 64 * 1024 / crate::limits::BYTES_PER_ENTRY / TABLES;
        assert!(l.tracked() <= per_table * 3, "{}", l.tracked());
    }
}
