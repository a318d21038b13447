//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document,
//! MCP 2025-11-25 "Client Registration"): a `client_id` that is an https URL
//! names a JSON document describing the client; we fetch, validate and use it
//! without registration.
//!
//! Fetching a URL chosen by a stranger is an SSRF risk, so: https only; no
//! redirects, no proxies; at most [`MAX_DOCUMENT`] bytes within [`FETCH_TIMEOUT`];
//! every resolved address must be public (no loopback, private, link-local,
//! CGNAT, multicast or unspecified address) unless `CIMD_ALLOW_PRIVATE=true`
//! (tests; it also allows plain http on loopback). Good documents are cached
//! for [`CACHE_FOR`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use gateway_common::clock::SharedClock;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::error::OAuthError;
use crate::records::{AuthMethod, ClientMetadata, ClientRecord, ClientSource};
use crate::redirect_uri;
use crate::registration::{GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN};

pub const MAX_DOCUMENT: usize = 5 * 1024;
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
pub const CACHE_FOR: Duration = Duration::from_secs(300);

/// True for addresses a metadata fetch may reach.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // CGNAT, RFC 6598
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_ip(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link local
                || (s[0] == 0x2001 && s[1] == 0x0db8)) // documentation
        }
    }
}

/// Resolves names and drops non-public addresses (unless allowed).
#[derive(Debug, Clone)]
struct PublicOnlyResolver {
    allow_private: bool,
}

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public_ip(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[derive(Debug)]
pub struct CimdResolver {
    http: reqwest::Client,
    allow_private: bool,
    clock: SharedClock,
    cache: Mutex<HashMap<String, (ClientRecord, u64)>>,
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
        Ok(Self {
            http,
            allow_private,
            clock,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Whether this `client_id` names a metadata document (an https URL).
    pub fn is_document_url(&self, client_id: &str) -> bool {
        client_id.starts_with("https://")
            || (self.allow_private && client_id.starts_with("http://"))
    }

    /// Checks the URL shape (draft §3: https, a path, no fragment, no
    /// credentials, no dot segments) and that it may be fetched.
    fn check_url(&self, client_id: &str) -> Result<url::Url, OAuthError> {
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
            if !self.allow_private && !is_public_ip(ip) {
                return Err(bad("points to a private address"));
            }
        }
        Ok(url)
    }

    /// The client described by the document at `client_id`.
    pub async fn resolve(&self, client_id: &str) -> Result<ClientRecord, OAuthError> {
        self.resolve_noting_fetch(client_id)
            .await
            .map(|(rec, _)| rec)
    }

    /// [`Self::resolve`], and whether the document was fetched now (not cached):
    /// flow diagnostics and the audit log note fetches.
    pub async fn resolve_noting_fetch(
        &self,
        client_id: &str,
    ) -> Result<(ClientRecord, bool), OAuthError> {
        let now = self.clock.now_secs();
        if let Ok(cache) = self.cache.lock() {
            if let Some((rec, until)) = cache.get(client_id) {
                if *until > now {
                    return Ok((rec.clone(), false));
                }
            }
        }
        let url = self.check_url(client_id)?;
        let fail = |m: String| OAuthError::InvalidClient(format!("client metadata document: {m}"));
        let resp = self
            .http
            .get(url)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| fail(format!("fetch failed ({})", without_url(&e))))?;
        if !resp.status().is_success() {
            return Err(fail(format!("fetch answered {}", resp.status().as_u16())));
        }
        if resp
            .content_length()
            .is_some_and(|l| l > MAX_DOCUMENT as u64)
        {
            return Err(fail("document too large".into()));
        }
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| fail(format!("read failed ({})", without_url(&e))))?;
            if body.len() + chunk.len() > MAX_DOCUMENT {
                return Err(fail("document too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        let record = parse_document(client_id, &body, now)?;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() > 1000 {
                cache.retain(|_, (_, until)| *until > now);
            }
            cache.insert(
                client_id.to_string(),
                (record.clone(), now + CACHE_FOR.as_secs()),
            );
        }
        Ok((record, true))
    }
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
            grant_types: vec![GRANT_AUTHORIZATION_CODE.into(), GRANT_REFRESH_TOKEN.into()],
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
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111"] {
            assert!(is_public_ip(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_are_checked_before_any_fetch() {
        let r = CimdResolver::new(false, gateway_common::clock::system()).unwrap();
        assert!(r.check_url("https://app.example.com/client.json").is_ok());
        assert!(r.check_url("http://app.example.com/client.json").is_err());
        assert!(r.check_url("https://127.0.0.1/client.json").is_err());
        assert!(r.check_url("https://[::1]/client.json").is_err());
        assert!(r.check_url("https://app.example.com/").is_err());
        assert!(r.check_url("https://app.example.com/a#b").is_err());
        assert!(r.check_url("https://u:p@app.example.com/a").is_err());
        let lenient = CimdResolver::new(true, gateway_common::clock::system()).unwrap();
        assert!(lenient
            .check_url("http://127.0.0.1:8080/client.json")
            .is_ok());
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
