//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document,
//! MCP 2025-11-25 "Client Registration"): a `client_id` that is an https URL
//! names a JSON document describing the client; we fetch, validate and use it
//! without registration.
//!
//! Fetching a URL chosen by a stranger is an SSRF risk and a lever for
//! amplification, so:
//! - https only; redirects never followed (a 3xx is a failure: draft §5
//!   accepts only a successful response, and a redirect could lead to another
//!   host), no proxies; at most [`MAX_DOCUMENT`] bytes within [`FETCH_TIMEOUT`];
//! - every address actually dialled passes `gateway_common::net_filter`: names
//!   through `PublicOnlyResolver`, literal addresses in [`CimdResolver::check_url`]
//!   (reqwest never consults a resolver for them). `CIMD_ALLOW_PRIVATE=true`
//!   (tests) lifts the filter and allows plain http;
//! - only routes where a client is being authorized or authenticated fetch
//!   (`state::Inner::find_client`); `/revoke` and `/introspect` never do;
//! - every outcome is cached in a [`moka`] cache bounded by bytes: a good
//!   document for its HTTP `max-age` clamped to [`CACHE_MIN`]..[`CACHE_MAX`]
//!   (draft §5.2 "Metadata Caching" lets the server bound it), a failure for
//!   [`FAILURE_CACHE_FOR`]; concurrent requests for one URL share one fetch.
//!   So a flood of one URL costs one fetch per period, and a flood of distinct
//!   URLs at most [`CACHE_BYTES`] of memory (plus whatever rate the per-address
//!   limits let through).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use gateway_common::clock::SharedClock;
use gateway_common::net_filter;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::protocol::error::OAuthError;
use crate::protocol::records::{AuthMethod, ClientMetadata, ClientRecord, ClientSource};
use crate::protocol::redirect_uri;
use crate::protocol::registration::{GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN};

pub const MAX_DOCUMENT: usize = 5 * 1024;
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a good document is used when its response says nothing about caching.
pub const CACHE_FOR: Duration = Duration::from_secs(300);
/// Floor for a good document (also for `no-store`/`no-cache`): without it
/// every request by the client would fetch.
pub const CACHE_MIN: Duration = Duration::from_secs(60);
/// Ceiling for a good document: a changed document is seen within a day.
pub const CACHE_MAX: Duration = Duration::from_secs(24 * 3600);
/// How long a failed fetch or a refused document is remembered.
pub const FAILURE_CACHE_FOR: Duration = Duration::from_secs(60);
/// Memory the cache may hold, keys and values counted in bytes.
pub const CACHE_BYTES: u64 = 8 * 1024 * 1024;
/// What an entry costs beyond its strings (record fields, moka's bookkeeping).
const ENTRY_OVERHEAD: usize = 256;

/// The grants a metadata-document client may use ([`parse_document`]): routes
/// for other grants refuse a document URL without fetching it.
pub const DOCUMENT_GRANTS: [&str; 2] = [GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN];

/// Resolves names and keeps only addresses `net_filter` allows (unless
/// allowed): every outbound fetch of a client-supplied URL (metadata
/// documents, `jwks_uri`) dials through it.
#[derive(Debug, Clone)]
pub(crate) struct PublicOnlyResolver {
    pub(crate) allow_private: bool,
}

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || net_filter::is_safe_to_dial(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// The outcome of one fetch, as cached.
#[derive(Debug)]
enum Outcome {
    Good(Box<ClientRecord>),
    /// The `invalid_client` description.
    Refused(String),
}

#[derive(Debug)]
struct Cached {
    outcome: Outcome,
    /// Until when (clock seconds) the outcome is used; the clock seam, so tests can move time.
    until: u64,
    /// How long moka keeps it in real time (an upper bound for memory).
    keep: Duration,
    /// Bytes it costs, for the weigher.
    weight: u32,
}

/// Real-time eviction per entry: memory is freed even if nobody asks again.
struct KeepFor;

impl moka::Expiry<String, Arc<Cached>> for KeepFor {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Cached>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.keep)
    }

    /// A refetched outcome replaces an expired one: its own period, not the rest of the old one.
    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<Cached>,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.keep)
    }
}

#[derive(Debug)]
pub struct CimdResolver {
    http: reqwest::Client,
    allow_private: bool,
    clock: SharedClock,
    cache: moka::future::Cache<String, Arc<Cached>>,
}

impl CimdResolver {
    pub fn new(allow_private: bool, clock: SharedClock) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .dns_resolver(Arc::new(PublicOnlyResolver { allow_private }))
            .user_agent("mcp-authz (client-id-metadata-document)")
            .build()?;
        let cache = moka::future::Cache::builder()
            .max_capacity(CACHE_BYTES)
            .weigher(|_key: &String, value: &Arc<Cached>| value.weight)
            .expire_after(KeepFor)
            .build();
        Ok(Self {
            http,
            allow_private,
            clock,
            cache,
        })
    }

    /// Whether this `client_id` names a metadata document (an https URL).
    pub fn is_document_url(&self, client_id: &str) -> bool {
        client_id.starts_with("https://")
            || (self.allow_private && client_id.starts_with("http://"))
    }

    /// Checks the URL shape (draft §3: https, a path, no fragment, no
    /// credentials, no dot segments) and that it may be fetched.
    pub fn check_url(&self, client_id: &str) -> Result<url::Url, OAuthError> {
        let bad =
            |m: &str| OAuthError::InvalidClient(format!("client_id metadata document URL {m}"));
        if client_id.len() > 2000 {
            return Err(bad("is too long"));
        }
        let url = url::Url::parse(client_id).map_err(|_| bad("is not a URL"))?;
        if url.as_str() != client_id {
            return Err(bad("is not in normal form"));
        }
        if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
            return Err(bad("must have no fragment or credentials"));
        }
        if url.path() == "/" || client_id.contains("/./") || client_id.contains("/../") {
            return Err(bad("must have a path without dot segments"));
        }
        match (url.scheme(), url.host()) {
            ("https", Some(_)) => {}
            (
                "http",
                Some(url::Host::Ipv4(_) | url::Host::Ipv6(_) | url::Host::Domain("localhost")),
            ) if self.allow_private => {}
            _ => return Err(bad("must be https")),
        }
        // reqwest does not consult the resolver for literal addresses: check them here.
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal {
            if !self.allow_private && !net_filter::is_safe_to_dial(ip) {
                return Err(bad("points to a private or special-purpose address"));
            }
        }
        Ok(url)
    }

    /// The client a cached, still fresh, good document describes; never fetches.
    pub async fn cached(&self, client_id: &str) -> Option<ClientRecord> {
        let entry = self.cache.get(client_id).await?;
        match &entry.outcome {
            Outcome::Good(rec) if entry.until > self.clock.now_secs() => Some((**rec).clone()),
            _ => None,
        }
    }

    /// The client described by the document at `client_id`: from the cache,
    /// or fetched once (concurrent callers share the fetch) and cached,
    /// failures included.
    pub async fn resolve(&self, client_id: &str) -> Result<ClientRecord, OAuthError> {
        // Shape errors cost no I/O: refused without filling the cache.
        let url = self.check_url(client_id)?;
        let now = self.clock.now_secs();
        let entry = self
            .cache
            .entry(client_id.to_string())
            .or_insert_with_if(self.fetch(client_id, url), |cached| cached.until <= now)
            .await
            .into_value();
        match &entry.outcome {
            Outcome::Good(rec) => Ok((**rec).clone()),
            Outcome::Refused(why) => Err(OAuthError::InvalidClient(why.clone())),
        }
    }

    /// How many outcomes are cached and their weight in bytes (tests, metrics).
    pub async fn cache_usage(&self) -> (u64, u64) {
        self.cache.run_pending_tasks().await;
        (self.cache.entry_count(), self.cache.weighted_size())
    }

    /// One fetch and its outcome, ready to cache.
    async fn fetch(&self, client_id: &str, url: url::Url) -> Arc<Cached> {
        let now = self.clock.now_secs();
        let (outcome, keep, size) = match self.fetch_document(client_id, url, now).await {
            Ok((record, keep, size)) => (Outcome::Good(Box::new(record)), keep, size),
            Err(why) => {
                tracing::debug!(client_id, why = %why, "client metadata document refused");
                let size = why.len();
                (Outcome::Refused(why), FAILURE_CACHE_FOR, size)
            }
        };
        let weight = client_id.len() + size + ENTRY_OVERHEAD;
        Arc::new(Cached {
            outcome,
            until: now + keep.as_secs(),
            keep,
            weight: u32::try_from(weight).unwrap_or(u32::MAX),
        })
    }

    /// The validated record, how long to keep it, and its size in bytes; or
    /// the `invalid_client` description.
    async fn fetch_document(
        &self,
        client_id: &str,
        url: url::Url,
        now: u64,
    ) -> Result<(ClientRecord, Duration, usize), String> {
        let fail = |m: String| format!("client metadata document: {m}");
        let resp = self
            .http
            .get(url)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| fail(format!("fetch failed ({})", without_url(&e))))?;
        // A 3xx is not followed (the client has no redirect policy): it lands here.
        if !resp.status().is_success() {
            return Err(fail(format!("fetch answered {}", resp.status().as_u16())));
        }
        if resp
            .content_length()
            .is_some_and(|l| l > MAX_DOCUMENT as u64)
        {
            return Err(fail("document too large".into()));
        }
        let keep = keep_for(
            resp.headers()
                .get(reqwest::header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
        );
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| fail(format!("read failed ({})", without_url(&e))))?;
            if body.len() + chunk.len() > MAX_DOCUMENT {
                return Err(fail("document too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        let record = parse_document(client_id, &body, now).map_err(|e| match e {
            OAuthError::InvalidClient(why) => why,
            other => other.to_string(),
        })?;
        Ok((record, keep, body.len()))
    }
}

/// How long to use a good document, from its `Cache-Control` (RFC 9111
/// §5.2.2): `max-age` clamped to [`CACHE_MIN`]..[`CACHE_MAX`]; `no-store` and
/// `no-cache` get the floor; nothing, [`CACHE_FOR`].
pub fn keep_for(cache_control: Option<&str>) -> Duration {
    let Some(value) = cache_control else {
        return CACHE_FOR;
    };
    let mut max_age = None;
    for directive in value.split(',').map(str::trim) {
        let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return CACHE_MIN;
        }
        if name.eq_ignore_ascii_case("max-age") {
            // RFC 9111 §1.2.2: delta-seconds; an invalid one means stale.
            max_age = Some(arg.trim_matches('"').parse::<u64>().unwrap_or(0));
        }
    }
    max_age.map_or(CACHE_FOR, |secs| {
        Duration::from_secs(secs).clamp(CACHE_MIN, CACHE_MAX)
    })
}

fn without_url(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else {
        "error".into()
    }
}

/// Validates a fetched document: `client_id` inside equals the URL, redirect
/// URIs valid, a public client (we do not implement `private_key_jwt`).
pub fn parse_document(client_id: &str, body: &[u8], now: u64) -> Result<ClientRecord, OAuthError> {
    let fail = |m: &str| OAuthError::InvalidClient(format!("client metadata document: {m}"));
    let doc: serde_json::Value = serde_json::from_slice(body).map_err(|_| fail("not JSON"))?;
    let obj = doc.as_object().ok_or_else(|| fail("not a JSON object"))?;
    if obj.get("client_id").and_then(|v| v.as_str()) != Some(client_id) {
        return Err(fail("client_id inside does not equal the document URL"));
    }
    match obj
        .get("token_endpoint_auth_method")
        .and_then(|v| v.as_str())
    {
        None | Some("none") => {}
        Some(_) => return Err(fail("only token_endpoint_auth_method none is supported")),
    }
    let redirect_uris: Vec<String> = obj
        .get("redirect_uris")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if redirect_uris.is_empty() {
        return Err(fail("redirect_uris missing"));
    }
    for uri in &redirect_uris {
        redirect_uri::validate(uri).map_err(|e| fail(&e.to_string()))?;
    }
    let client_name = obj
        .get("client_name")
        .and_then(|v| v.as_str())
        .map(|s| s.chars().filter(|c| !c.is_control()).take(200).collect());
    Ok(ClientRecord {
        client_id: client_id.to_string(),
        source: ClientSource::MetadataDocument,
        issued_at: now,
        expires_at: None,
        secret_hash: None,
        registration_token_hash: None,
        metadata: ClientMetadata {
            redirect_uris,
            token_endpoint_auth_method: AuthMethod::None,
            grant_types: DOCUMENT_GRANTS.iter().map(|g| g.to_string()).collect(),
            response_types: vec!["code".into()],
            client_name,
            scope: None,
            extra: serde_json::Map::new(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_before_any_fetch() {
        let r = CimdResolver::new(false, gateway_common::clock::system()).unwrap();
        assert!(r.check_url("https://app.example.com/client.json").is_ok());
        assert!(r.check_url("http://app.example.com/client.json").is_err());
        assert!(r.check_url("https://127.0.0.1/client.json").is_err());
        assert!(r.check_url("https://[::1]/client.json").is_err());
        // Literal addresses are judged by net_filter, IPv4-embedding forms included.
        for literal in [
            "https://[::ffff:7f00:1]/c.json",
            "https://[::7f00:1]/c.json",
            "https://[64:ff9b::a9fe:a9fe]/c.json",
            "https://[2002:7f00:1::1]/c.json",
            "https://[fec0::1]/c.json",
            "https://198.18.0.1/c.json",
            "https://0x7f.1/c.json",
        ] {
            assert!(r.check_url(literal).is_err(), "{literal}");
        }
        assert!(r.check_url("https://93.184.216.34/client.json").is_ok());
        assert!(r.check_url("https://app.example.com/").is_err());
        assert!(r.check_url("https://app.example.com/a#b").is_err());
        assert!(r.check_url("https://u:p@app.example.com/a").is_err());
        let lenient = CimdResolver::new(true, gateway_common::clock::system()).unwrap();
        assert!(lenient
            .check_url("http://127.0.0.1:8080/client.json")
            .is_ok());
    }

    #[test]
    fn cache_lifetime_follows_cache_control_within_bounds() {
        assert_eq!(keep_for(None), CACHE_FOR);
        assert_eq!(keep_for(Some("max-age=3600")), Duration::from_secs(3600));
        assert_eq!(
            keep_for(Some("public, MAX-AGE=\"7200\"")),
            Duration::from_secs(7200)
        );
        assert_eq!(keep_for(Some("max-age=1")), CACHE_MIN);
        assert_eq!(keep_for(Some("max-age=99999999")), CACHE_MAX);
        assert_eq!(keep_for(Some("max-age=soon")), CACHE_MIN);
        assert_eq!(keep_for(Some("no-store")), CACHE_MIN);
        assert_eq!(keep_for(Some("max-age=600, no-cache")), CACHE_MIN);
        assert_eq!(keep_for(Some("private")), CACHE_FOR);
    }

    #[test]
    fn documents_must_name_themselves() {
        let url = "https://app.example.com/c.json";
        let good = br#"{"client_id":"https://app.example.com/c.json","client_name":"App","redirect_uris":["http://127.0.0.1/cb"]}"#;
        assert_eq!(parse_document(url, good, 1).unwrap().display_name(), "App");
        let other = br#"{"client_id":"https://evil.example/c.json","redirect_uris":["http://127.0.0.1/cb"]}"#;
        assert!(parse_document(url, other, 1).is_err());
        let js = br#"{"client_id":"https://app.example.com/c.json","redirect_uris":["javascript:alert(1)"]}"#;
        assert!(parse_document(url, js, 1).is_err());
    }
}
