//! What an upstream sign-in (GitHub, OpenID Connect) remembers between the
//! redirect to the provider and its callback: our pending request, the PKCE
//! verifier and the OpenID nonce, stored under the hash of the `state` we sent
//! and taken once (RFC 6749 §10.12 CSRF, RFC 7636, OIDC Core §3.1.2.1).

use std::sync::Arc;
use std::time::Duration;

use gateway_common::crypto::{hash_secret, random_token};
use gateway_store::Store;
use serde::{Deserialize, Serialize};

use super::SignInError;

/// A redirect to an upstream provider that has not come back yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingUpstream {
    /// Our `/authorize` request waiting for this sign-in.
    pub request_id: String,
    /// Which provider the state was issued for.
    pub idp: String,
    /// RFC 7636 code verifier sent at the provider's token endpoint.
    pub verifier: String,
    /// OIDC nonce, compared with the id_token's `nonce`.
    pub nonce: String,
}

/// What the redirect to the provider carries.
#[derive(Debug, Clone)]
pub struct Started {
    pub state: String,
    pub code_challenge: String,
    pub nonce: String,
}

pub fn pending_key(state_hash: &str) -> String {
    format!("authz:upstream-state:{state_hash}")
}

/// Creates and stores a fresh state, verifier and nonce for `request_id`.
pub async fn begin(
    store: &Arc<dyn Store>,
    idp: &str,
    request_id: &str,
    ttl: Duration,
) -> Result<Started, SignInError> {
    let state = random_token(24);
    let pending = PendingUpstream {
        request_id: request_id.to_string(),
        idp: idp.to_string(),
        verifier: random_token(48),
        nonce: random_token(24),
    };
    let raw = serde_json::to_vec(&pending).map_err(|e| SignInError::Unavailable(e.to_string()))?;
    store
        .put(&pending_key(&hash_secret(&state)), &raw, Some(ttl))
        .await
        .map_err(|e| SignInError::Unavailable(e.to_string()))?;
    Ok(Started {
        state,
        code_challenge: gateway_common::pkce::s256(&pending.verifier),
        nonce: pending.nonce,
    })
}

/// Takes the pending sign-in for `state` (once: a replayed callback finds nothing).
pub async fn take(
    store: &Arc<dyn Store>,
    state: &str,
) -> Result<Option<PendingUpstream>, SignInError> {
    if state.is_empty() || state.len() > 128 {
        return Ok(None);
    }
    let raw = store
        .take(&pending_key(&hash_secret(state)))
        .await
        .map_err(|e| SignInError::Unavailable(e.to_string()))?;
    Ok(raw.and_then(|r| serde_json::from_slice(&r).ok()))
}

/// The callback URL registered with the provider: `<issuer>/callback/<idp>`.
pub fn callback_url(issuer: &str, idp: &str) -> String {
    format!("{issuer}/callback/{idp}")
}
