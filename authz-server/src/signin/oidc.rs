//! Any OpenID Connect provider: discovery (OIDC Discovery §4, `issuer` must
//! equal `OIDC_ISSUER` byte for byte), the authorization code flow with PKCE
//! S256, `state` and `nonce`, and the id_token validated (OIDC Core §3.1.3.7):
//! signature against the provider's JWKS (key by `kid`, asymmetric algorithms
//! only), `iss`, `aud` (with `azp` when there are several), `exp`, and `nonce`.
//!
//! Allowlists: `OIDC_ALLOWED_EMAILS` (`*` = every user of the provider),
//! `OIDC_ALLOWED_DOMAINS` (the e-mail's domain), `OIDC_ALLOWED_GROUPS` (any
//! value of the `OIDC_GROUPS_CLAIM` claim). E-mail rules need
//! `email_verified` not to be false. The discovery document is cached; the JWKS
//! is fetched at each sign-in (rare), so provider key rotation needs nothing.
//!
//! Re-checks, like GitHub's: the provider's access (and refresh) token is kept
//! sealed with the grant, and at most every `OIDC_RECHECK_INTERVAL` a refresh
//! of ours asks the provider again — its token endpoint for fresh tokens when
//! it gave a refresh token, then its userinfo endpoint (OIDC Core §5.3) — and
//! applies the allowlists to the current claims. Someone taken out of the
//! allowed groups (or whose upstream sign-in was revoked) loses the grant.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use gateway_store::Store;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;
use serde::Deserialize;

use gateway_common::clock::SharedClock;

use super::token_endpoint::{ClientAuth, Failure, TokenEndpoint};
use super::upstream::{self, PendingUpstream};
use super::{Identity, IdentityProvider, SignInError, SignInStart};
use crate::config::OidcConfig;
use crate::keys::KeyManager;

/// What the provider's tokens are sealed for (`KeyManager::seal_bytes`).
const SEAL_PURPOSE: &str = "oidc-tokens";

/// The provider's tokens kept with a grant (sealed; never in our tokens).
#[derive(Debug, serde::Serialize, Deserialize)]
struct UpstreamTokens {
    access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
}

#[derive(Debug)]
pub struct Oidc {
    cfg: OidcConfig,
    store: Arc<dyn Store>,
    issuer: String,
    pending_ttl: Duration,
    http: reqwest::Client,
    discovery: ArcSwapOption<Discovery>,
    keys: Arc<KeyManager>,
    clock: SharedClock,
}

fn unavailable(e: impl std::fmt::Display) -> SignInError {
    SignInError::Unavailable(e.to_string())
}

fn upstream_err(e: impl std::fmt::Display) -> SignInError {
    SignInError::Upstream(e.to_string())
}

/// The allowlist decision on validated claims; returns the identity or why not.
pub fn decide(cfg: &OidcConfig, claims: &serde_json::Value) -> Result<Identity, SignInError> {
    let sub = claims
        .get("sub")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| upstream_err("the id_token has no sub"))?;
    let verified = claims.get("email_verified").and_then(|v| v.as_bool()) != Some(false);
    let email = claims
        .get("email")
        .and_then(|v| v.as_str())
        .filter(|_| verified)
        .map(str::to_string);
    let groups: Vec<String> = match claims.get(&cfg.groups_claim) {
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    let lower = email.as_deref().map(str::to_ascii_lowercase);
    let email_ok = cfg.allowed_emails.iter().any(|e| e == "*")
        || lower
            .as_deref()
            .is_some_and(|m| cfg.allowed_emails.iter().any(|e| e == m));
    let domain_ok = lower
        .as_deref()
        .and_then(|m| m.rsplit_once('@'))
        .is_some_and(|(_, d)| cfg.allowed_domains.iter().any(|a| a == d));
    let group_ok = groups.iter().any(|g| cfg.allowed_groups.contains(g));
    if !(email_ok || domain_ok || group_ok) {
        return Err(SignInError::Refused(
            "the account is not on an allowlist".into(),
        ));
    }
    let name = ["preferred_username", "name", "email"]
        .iter()
        .find_map(|k| claims.get(*k).and_then(|v| v.as_str()))
        .unwrap_or(sub)
        .to_string();
    Ok(Identity {
        sub: format!("oidc:{sub}"),
        name,
        email,
        groups,
        idp: "oidc".to_string(),
        ..Identity::default()
    })
}

impl Oidc {
    pub fn new(
        cfg: OidcConfig,
        store: Arc<dyn Store>,
        issuer: &str,
        pending_ttl: Duration,
        keys: Arc<KeyManager>,
        clock: SharedClock,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            cfg,
            store,
            issuer: issuer.to_string(),
            pending_ttl,
            http,
            discovery: ArcSwapOption::empty(),
            keys,
            clock,
        })
    }

    fn seal(&self, tokens: &UpstreamTokens) -> Result<String, SignInError> {
        let raw = serde_json::to_vec(tokens).map_err(unavailable)?;
        self.keys
            .seal_bytes(SEAL_PURPOSE, &raw)
            .map_err(unavailable)
    }

    /// The provider's token endpoint with our credentials
    /// (`client_secret_basic`, both form-encoded first, RFC 6749 §2.3.1).
    fn token_endpoint(&self, d: &Discovery) -> Result<TokenEndpoint, SignInError> {
        TokenEndpoint::new(
            &d.token_endpoint,
            &self.cfg.client_id,
            self.cfg.client_secret.expose_secret(),
            &upstream::callback_url(&self.issuer, "oidc"),
            ClientAuth::Basic,
        )
    }

    /// Fresh tokens from the provider's token endpoint (refresh grant,
    /// RFC 6749 §6). A refusal (`invalid_grant`: the upstream sign-in was
    /// revoked) ends our grant too.
    async fn refresh_upstream(
        &self,
        d: &Discovery,
        refresh_token: &str,
    ) -> Result<UpstreamTokens, SignInError> {
        match self
            .token_endpoint(d)?
            .refresh(&self.http, refresh_token)
            .await
        {
            Ok(g) => Ok(UpstreamTokens {
                access_token: g.access_token,
                // Providers that rotate send a new one; others keep the old.
                refresh_token: g.refresh_token.or(Some(refresh_token.to_string())),
            }),
            Err(Failure::Refused(e)) => Err(SignInError::Refused(format!(
                "the provider refused to refresh the sign-in: {e}"
            ))),
            Err(Failure::Unavailable(e)) => Err(unavailable(e)),
        }
    }

    /// The user's current claims from the userinfo endpoint (OIDC Core §5.3).
    async fn userinfo(
        &self,
        d: &Discovery,
        access_token: &str,
    ) -> Result<serde_json::Value, SignInError> {
        let Some(url) = &d.userinfo_endpoint else {
            return Err(unavailable(
                "the provider has no userinfo endpoint to re-check the allowlists with",
            ));
        };
        let r = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(unavailable)?;
        let status = r.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(SignInError::Refused(
                "the provider no longer accepts the sign-in".into(),
            ));
        }
        if !status.is_success() {
            return Err(unavailable(format!("userinfo answered {status}")));
        }
        r.json().await.map_err(unavailable)
    }

    async fn discovery(&self) -> Result<Arc<Discovery>, SignInError> {
        if let Some(d) = self.discovery.load_full() {
            return Ok(d);
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.cfg.issuer.trim_end_matches('/')
        );
        let d: Discovery = self
            .http
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        // OIDC Discovery §4.3: the issuer must be identical to the one configured.
        if d.issuer != self.cfg.issuer {
            return Err(SignInError::Unavailable(format!(
                "discovery issuer {} differs from OIDC_ISSUER",
                d.issuer
            )));
        }
        let d = Arc::new(d);
        self.discovery.store(Some(d.clone()));
        Ok(d)
    }

    async fn validate(
        &self,
        d: &Discovery,
        id_token: &str,
        nonce: &str,
    ) -> Result<serde_json::Value, SignInError> {
        if id_token.len() > 16 * 1024 {
            return Err(upstream_err("id_token too large"));
        }
        let jwks: JwkSet = self
            .http
            .get(&d.jwks_uri)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        check_id_token(&self.cfg, &jwks, id_token, nonce)
    }
}

/// OIDC Core §3.1.3.7 on an id_token, given the provider's keys: asymmetric
/// algorithm, key by `kid`, signature, `iss`, `aud`, `exp`, then `nonce`.
pub fn check_id_token(
    cfg: &OidcConfig,
    jwks: &JwkSet,
    id_token: &str,
    nonce: &str,
) -> Result<serde_json::Value, SignInError> {
    let header = jsonwebtoken::decode_header(id_token).map_err(upstream_err)?;
    let alg = header.alg;
    if !matches!(
        alg,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
            | Algorithm::ES256
            | Algorithm::ES384
            | Algorithm::EdDSA
    ) {
        return Err(upstream_err(format!("id_token algorithm {alg:?} refused")));
    }
    let jwk = match &header.kid {
        Some(kid) => jwks.find(kid),
        None if jwks.keys.len() == 1 => jwks.keys.first(),
        None => None,
    }
    .ok_or_else(|| upstream_err("no provider key matches the id_token kid"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(upstream_err)?;
    let mut v = Validation::new(alg);
    v.set_issuer(&[&cfg.issuer]);
    v.set_audience(&[&cfg.client_id]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.leeway = 60;
    let data =
        jsonwebtoken::decode::<serde_json::Value>(id_token, &key, &v).map_err(upstream_err)?;
    let claims = data.claims;
    check_azp(&claims, &cfg.client_id)?;
    let sent = claims.get("nonce").and_then(|n| n.as_str()).unwrap_or("");
    if !gateway_common::crypto::ct_eq(sent.as_bytes(), nonce.as_bytes()) {
        return Err(upstream_err("id_token nonce mismatch"));
    }
    Ok(claims)
}

/// OIDC Core §3.1.3.7, steps 4 and 5, which `jsonwebtoken`'s audience check
/// (ours among `aud`) does not cover: a token for several audiences must name
/// the party it was issued to in `azp`, and an `azp` present must be us.
/// (The `openidconnect` crate does this too, with a second JWT and crypto
/// stack beside `jsonwebtoken`; these few lines are the part we lacked.)
fn check_azp(claims: &serde_json::Value, client_id: &str) -> Result<(), SignInError> {
    let several = claims
        .get("aud")
        .and_then(|a| a.as_array())
        .is_some_and(|a| a.len() > 1);
    match claims.get("azp") {
        Some(serde_json::Value::String(azp)) if azp == client_id => Ok(()),
        Some(_) => Err(upstream_err("id_token azp is not this client")),
        None if several => Err(upstream_err("id_token has several audiences and no azp")),
        None => Ok(()),
    }
}

#[async_trait]
impl IdentityProvider for Oidc {
    fn id(&self) -> &'static str {
        "oidc"
    }

    fn label(&self) -> &str {
        &self.cfg.label
    }

    fn expected_iss(&self) -> Option<&str> {
        Some(&self.cfg.issuer)
    }

    async fn start(&self, request_id: &str) -> Result<SignInStart, SignInError> {
        let d = self.discovery().await?;
        let s = upstream::begin(&self.store, "oidc", request_id, self.pending_ttl).await?;
        let mut url = url::Url::parse(&d.authorization_endpoint).map_err(unavailable)?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.cfg.client_id)
            .append_pair(
                "redirect_uri",
                &upstream::callback_url(&self.issuer, "oidc"),
            )
            .append_pair("scope", &self.cfg.scopes)
            .append_pair("state", &s.state)
            .append_pair("nonce", &s.nonce)
            .append_pair("code_challenge", &s.code_challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(SignInStart::Redirect(url.into()))
    }

    async fn complete(
        &self,
        code: &str,
        pending: &PendingUpstream,
    ) -> Result<Identity, SignInError> {
        let d = self.discovery().await?;
        let granted = self
            .token_endpoint(&d)?
            .exchange_code(&self.http, code, &pending.verifier)
            .await
            .map_err(|e| match e {
                Failure::Refused(e) => upstream_err(format!("token endpoint: {e}")),
                Failure::Unavailable(e) => unavailable(e),
            })?;
        let id_token = granted
            .id_token
            .ok_or_else(|| upstream_err("the provider sent no id_token"))?;
        let claims = self.validate(&d, &id_token, &pending.nonce).await?;
        let mut identity = decide(&self.cfg, &claims)?;
        // Kept (sealed) so a refresh of ours can ask the provider again.
        identity.upstream_token = Some(self.seal(&UpstreamTokens {
            access_token: granted.access_token,
            refresh_token: granted.refresh_token,
        })?);
        identity.checked_at = Some(self.clock.now_secs());
        Ok(identity)
    }

    async fn recheck(&self, user: &Identity, now: u64) -> Result<Option<Identity>, SignInError> {
        let Some(sealed) =
            super::due_for_recheck(user, "oidc", self.cfg.recheck_interval, now, "provider")?
        else {
            return Ok(None);
        };
        let raw = self
            .keys
            .open_bytes(SEAL_PURPOSE, sealed)
            .map_err(unavailable)?;
        let mut tokens: UpstreamTokens = serde_json::from_slice(&raw).map_err(unavailable)?;
        let d = self.discovery().await?;
        if let Some(refresh) = tokens.refresh_token.clone() {
            tokens = self.refresh_upstream(&d, &refresh).await?;
        }
        let claims = self.userinfo(&d, &tokens.access_token).await?;
        let mut fresh = decide(&self.cfg, &claims)?;
        if fresh.sub != user.sub {
            return Err(SignInError::Refused(
                "the provider's token belongs to another user".into(),
            ));
        }
        fresh.upstream_token = Some(self.seal(&tokens)?);
        fresh.checked_at = Some(now);
        Ok(Some(fresh))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;
    use serde_json::json;

    fn cfg(emails: &[&str], domains: &[&str], groups: &[&str]) -> OidcConfig {
        OidcConfig {
            issuer: "https://idp".into(),
            client_id: "c".into(),
            client_secret: SecretString::from("s".to_string()),
            scopes: "openid email".into(),
            allowed_emails: emails.iter().map(|s| s.to_string()).collect(),
            allowed_domains: domains.iter().map(|s| s.to_string()).collect(),
            allowed_groups: groups.iter().map(|s| s.to_string()).collect(),
            groups_claim: "groups".into(),
            label: "SSO".into(),
            recheck_interval: Duration::from_secs(3600),
        }
    }

    fn signed(claims: serde_json::Value, kid: &str) -> (String, JwkSet) {
        use jsonwebtoken::{EncodingKey, Header};
        let pem = crate::keys::generate_pem(crate::config::SigningAlg::Es256).unwrap();
        let key = EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
        let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
        jwk.common.key_id = Some(kid.to_string());
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(kid.to_string());
        let t = jsonwebtoken::encode(&h, &claims, &key).unwrap();
        (t, JwkSet { keys: vec![jwk] })
    }

    #[test]
    fn id_tokens_are_checked_for_signature_issuer_audience_expiry_and_nonce() {
        let c = cfg(&["*"], &[], &[]);
        let exp = jsonwebtoken::get_current_timestamp() + 300;
        let good = json!({"iss": "https://idp", "aud": "c", "sub": "1", "exp": exp, "nonce": "n1"});
        let (t, jwks) = signed(good.clone(), "k1");
        assert!(check_id_token(&c, &jwks, &t, "n1").is_ok());
        assert!(check_id_token(&c, &jwks, &t, "n2").is_err(), "nonce");
        // Signed by another key under the same kid.
        let (_, other) = signed(good.clone(), "k1");
        assert!(check_id_token(&c, &other, &t, "n1").is_err(), "signature");
        for (k, v) in [
            ("iss", json!("https://idp/")),
            ("aud", json!("someone-else")),
            ("exp", json!(exp - 3600)),
        ] {
            let mut bad = good.clone();
            bad[k] = v;
            let (t, jwks) = signed(bad, "k1");
            assert!(check_id_token(&c, &jwks, &t, "n1").is_err(), "{k}");
        }
        // Several audiences: azp must be present and be us (§3.1.3.7 steps 4, 5).
        for (aud, azp, ok) in [
            (json!(["c", "other"]), None, false),
            (json!(["c", "other"]), Some("other"), false),
            (json!(["c", "other"]), Some("c"), true),
            (json!("c"), Some("other"), false),
            (json!(["c"]), None, true),
        ] {
            let mut t = good.clone();
            t["aud"] = aud.clone();
            if let Some(azp) = azp {
                t["azp"] = json!(azp);
            }
            let (t, jwks) = signed(t, "k1");
            assert_eq!(
                check_id_token(&c, &jwks, &t, "n1").is_ok(),
                ok,
                "aud {aud} azp {azp:?}"
            );
        }
        // alg=none and HS256 are refused outright.
        let none = format!(
            "{}.{}.",
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                r#"{"alg":"none","kid":"k1"}"#
            ),
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                good.to_string()
            )
        );
        assert!(check_id_token(&c, &jwks, &none, "n1").is_err());
    }

    #[test]
    fn allowlists_by_email_domain_and_group() {
        let c = json!({"sub": "1", "email": "Bob@Example.com", "email_verified": true, "groups": ["ops"]});
        assert!(decide(&cfg(&["bob@example.com"], &[], &[]), &c).is_ok());
        assert!(decide(&cfg(&[], &["example.com"], &[]), &c).is_ok());
        assert!(decide(&cfg(&[], &[], &["ops"]), &c).is_ok());
        assert!(decide(&cfg(&[], &["other.com"], &["dev"]), &c).is_err());
        let unverified = json!({"sub": "1", "email": "bob@example.com", "email_verified": false});
        assert!(decide(&cfg(&[], &["example.com"], &[]), &unverified).is_err());
        let id = decide(&cfg(&["*"], &[], &[]), &c).unwrap();
        assert_eq!(id.sub, "oidc:1");
        assert_eq!(id.groups, vec!["ops"]);
    }
}
