//! The store- and network-facing half of machine clients and DPoP at
//! `/token`: single-use assertion and proof `jti`s, the client's `jwks_uri`
//! fetched SSRF-safe, the `client_credentials` grant carried out. Decisions
//! are in [`crate::protocol::private_key_jwt`], [`crate::protocol::client_credentials`] and
//! [`crate::protocol::dpop`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actix_web::HttpRequest;
use futures_util::StreamExt;
use gateway_common::audit::AuditEvent;
use gateway_common::crypto::hash_secret;
use gateway_common::dpop::{self as proof, ProofCheck, ValidProof};
use gateway_common::keys::JwkSet;

use super::Form;
use crate::issue::{self, TokenResponse};
use crate::protocol::client_credentials::{self as cc, GRANT_CLIENT_CREDENTIALS};
use crate::protocol::error::OAuthError;
use crate::protocol::records::ClientRecord;
use crate::state::Inner;

/// Most bytes of a client's JWK set document.
pub const MAX_JWKS: usize = 64 * 1024;
/// A fetched `jwks_uri` is used this long before it is fetched again.
pub const JWKS_CACHE_FOR: u64 = 300;
/// An unknown key may be a new one: refetch, at most this often.
pub const JWKS_MIN_REFETCH: u64 = 10;

fn assertion_jti_key(client_id: &str, jti: &str) -> String {
    format!(
        "authz:assertion-jti:{}",
        hash_secret(&format!("{client_id}\n{jti}"))
    )
}

fn proof_jti_key(jkt: &str, jti: &str) -> String {
    format!("authz:dpop-jti:{}", hash_secret(&format!("{jkt}\n{jti}")))
}

/// `private_key_jwt`: verifies `assertion` with the client's keys and spends its `jti`.
pub async fn verify_client_assertion(
    s: &Inner,
    client: &ClientRecord,
    assertion: &str,
) -> Result<(), OAuthError> {
    let now = s.now();
    let alg = client
        .metadata
        .extra
        .get("token_endpoint_auth_signing_alg")
        .and_then(|v| v.as_str());
    let verify = |keys: &JwkSet| {
        crate::protocol::private_key_jwt::verify(
            assertion,
            &client.client_id,
            &s.config.issuer,
            keys,
            alg,
            now,
        )
    };
    let (keys, fresh) = client_keys(s, client, false).await?;
    let verified = match verify(&keys) {
        Ok(a) => Ok(a),
        // Perhaps the client rotated its keys since we fetched them.
        Err(_) if !fresh && client.metadata.extra.contains_key("jwks_uri") => {
            let (keys, _) = client_keys(s, client, true).await?;
            verify(&keys)
        }
        Err(e) => Err(e),
    };
    let assertion = verified.map_err(|why| OAuthError::InvalidClient(why.into()))?;
    // Single use for its lifetime (RFC 7523 §3 item 7).
    let ttl = assertion
        .exp
        .saturating_add(crate::protocol::private_key_jwt::LEEWAY)
        .saturating_sub(now)
        .max(1);
    let first = s
        .store
        .put_if_absent(
            &assertion_jti_key(&client.client_id, &assertion.jti),
            b"1",
            Some(Duration::from_secs(ttl)),
        )
        .await?;
    if !first {
        tracing::warn!(client_id = %client.client_id, "client assertion replayed");
        return Err(OAuthError::InvalidClient(
            "the client assertion was already used (jti)".into(),
        ));
    }
    Ok(())
}

/// The client's keys: registered `jwks`, or its `jwks_uri` (cached; `refetch`
/// forces a fetch unless one happened in the last [`JWKS_MIN_REFETCH`] s).
/// The flag says whether the keys were fetched just now.
async fn client_keys(
    s: &Inner,
    client: &ClientRecord,
    refetch: bool,
) -> Result<(JwkSet, bool), OAuthError> {
    let bad = |m: String| OAuthError::InvalidClient(format!("client keys: {m}"));
    if let Some(v) = client.metadata.extra.get("jwks") {
        let set = crate::protocol::private_key_jwt::validate_jwks(v).map_err(bad)?;
        return Ok((set, true));
    }
    let uri = client
        .metadata
        .extra
        .get("jwks_uri")
        .and_then(|v| v.as_str())
        .ok_or_else(|| bad("the client registered neither jwks nor jwks_uri".into()))?;
    let now = s.now();
    let fetcher = fetcher(s.config.cimd_allow_private);
    if let Ok(cache) = fetcher.cache.lock() {
        if let Some((set, fetched_at)) = cache.get(uri) {
            let age = now.saturating_sub(*fetched_at);
            if age < JWKS_CACHE_FOR && (!refetch || age < JWKS_MIN_REFETCH) {
                return Ok((set.clone(), false));
            }
        }
    }
    let set = fetcher.fetch(uri).await.map_err(bad)?;
    if let Ok(mut cache) = fetcher.cache.lock() {
        if cache.len() > 1000 {
            cache.retain(|_, (_, at)| now.saturating_sub(*at) < JWKS_CACHE_FOR);
        }
        cache.insert(uri.to_string(), (set.clone(), now));
    }
    Ok((set, true))
}

struct Fetcher {
    http: reqwest::Client,
    allow_private: bool,
    cache: Mutex<HashMap<String, (JwkSet, u64)>>,
}

/// One fetcher per setting of `CIMD_ALLOW_PRIVATE` (test-only leniency),
/// process-wide like the connection pool it holds.
fn fetcher(allow_private: bool) -> &'static Fetcher {
    static STRICT: OnceLock<Fetcher> = OnceLock::new();
    static LENIENT: OnceLock<Fetcher> = OnceLock::new();
    let cell = if allow_private { &LENIENT } else { &STRICT };
    cell.get_or_init(|| {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(crate::cimd::FETCH_TIMEOUT)
            .connect_timeout(crate::cimd::FETCH_TIMEOUT)
            .dns_resolver(Arc::new(crate::cimd::PublicOnlyResolver { allow_private }))
            .user_agent("mcp-authz (jwks_uri)")
            .build()
            .unwrap_or_default();
        Fetcher {
            http,
            allow_private,
            cache: Mutex::new(HashMap::new()),
        }
    })
}

impl Fetcher {
    async fn fetch(&self, uri: &str) -> Result<JwkSet, String> {
        let url = url::Url::parse(uri).map_err(|_| "jwks_uri is not a URL".to_string())?;
        match (url.scheme(), url.host()) {
            ("https", Some(_)) => {}
            ("http", Some(_)) if self.allow_private => {}
            _ => return Err("jwks_uri must be https".into()),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("jwks_uri must have no credentials".into());
        }
        // reqwest does not consult the resolver for literal addresses.
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if literal.is_some_and(|ip| {
            !self.allow_private && !gateway_common::net_filter::is_safe_to_dial(ip)
        }) {
            return Err("jwks_uri points to a private address".into());
        }
        let resp = self
            .http
            .get(url)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    "jwks_uri fetch timed out".to_string()
                } else {
                    "jwks_uri fetch failed".to_string()
                }
            })?;
        if !resp.status().is_success() {
            return Err(format!("jwks_uri answered {}", resp.status().as_u16()));
        }
        if resp.content_length().is_some_and(|l| l > MAX_JWKS as u64) {
            return Err("jwks_uri document too large".into());
        }
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| "jwks_uri read failed".to_string())?;
            if body.len() + chunk.len() > MAX_JWKS {
                return Err("jwks_uri document too large".into());
            }
            body.extend_from_slice(&chunk);
        }
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| "jwks_uri is not JSON".to_string())?;
        crate::protocol::private_key_jwt::validate_jwks(&v)
    }
}

/// The DPoP proof sent to `/token`, checked (RFC 9449 §4.3, nonce §8) and
/// its `jti` spent; `None` without a `DPoP` header.
pub async fn token_proof(s: &Inner, req: &HttpRequest) -> Result<Option<ValidProof>, OAuthError> {
    let values: Vec<&[u8]> = req
        .headers()
        .get_all("dpop")
        .map(|v| v.as_bytes())
        .collect();
    let Some(raw) = crate::protocol::dpop::one_proof(&values)? else {
        return Ok(None);
    };
    let settings = &s.config.dpop;
    let now = s.now();
    let token_url = format!("{}/token", s.config.issuer);
    let check = ProofCheck {
        method: "POST",
        url: &token_url,
        access_token: None,
        now,
        max_age: settings.max_age,
        leeway: settings.leeway,
    };
    let valid = proof::validate(raw, &check)
        .map_err(|e| OAuthError::InvalidDpopProof(e.description().into()))?;
    settings.check_nonce(&valid, now)?;
    let ttl = valid.replay_until(&check).saturating_sub(now).max(1);
    let first = s
        .store
        .put_if_absent(
            &proof_jti_key(&valid.jkt, &valid.jti),
            b"1",
            Some(Duration::from_secs(ttl)),
        )
        .await?;
    if !first {
        return Err(OAuthError::InvalidDpopProof(
            proof::ProofError::Replayed.description().into(),
        ));
    }
    Ok(Some(valid))
}

/// `token_type` of a response: `DPoP` for a bound token (RFC 9449 §5).
pub fn token_type(bound: bool) -> &'static str {
    if bound {
        proof::DPOP_SCHEME
    } else {
        "Bearer"
    }
}

/// `grant_type=client_credentials` for an authenticated client.
pub async fn client_credentials_grant(
    s: &Inner,
    client: &ClientRecord,
    form: &Form<'_>,
    dpop: Option<&ValidProof>,
) -> Result<TokenResponse, OAuthError> {
    let (aud, scope) = cc::check_grant(
        client,
        &s.config.machine,
        &form.all("resource"),
        form.one("scope")?,
        &s.config.scopes_supported,
        &s.config.default_scope,
    )?;
    s.config.dpop.check_audience(&aud, dpop.is_some())?;
    let who = cc::machine_identity(client);
    let jti = issue::new_jti();
    let jkt = dpop.map(|p| p.jkt.as_str());
    let minted =
        issue::mint_access_token_bound(s, &jti, &client.client_id, &who, &scope, &aud, None, jkt)?;
    s.audit(AuditEvent::TokenIssued {
        client_id: client.client_id.clone(),
        user: who.sub.clone(),
        jti,
        grant: GRANT_CLIENT_CREDENTIALS,
    });
    s.flow(
        &client.client_id,
        gateway_common::flow::FlowStep::TokenIssued,
    );
    Ok(TokenResponse {
        access_token: minted.token,
        token_type: token_type(jkt.is_some()),
        expires_in: s.config.access_token_lifetime.as_secs(),
        refresh_token: None,
        scope,
    })
}
