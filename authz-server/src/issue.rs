//! Issuing and revoking tokens against the store: access-token minting,
//! refresh-token families, revocation events. Grant *decisions* are in
//! [`crate::protocol::token`]; this module only carries them out.

use std::time::Duration;

use gateway_common::claims::{AccessClaims, Audience};
use gateway_common::crypto::hash_secret;
use gateway_common::revocation::{grant_revocation_id, revoked_key};
use serde::Serialize;

use crate::protocol::error::OAuthError;
use crate::protocol::records::{family_key, grant_sid, LiveToken, RefreshFamily};
use crate::signin::Identity;
use crate::state::Inner;

/// RFC 6749 §5.1 successful token response.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
}

pub struct Minted {
    pub token: String,
    pub jti: String,
    pub exp: u64,
}

fn internal(e: impl std::fmt::Display) -> OAuthError {
    OAuthError::Internal(e.to_string())
}

pub fn new_jti() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Signs an access token (RFC 9068 profile); `aud` = the authorized resources
/// (RFC 8707); `family`: the refresh family (grant) it is issued under, which
/// becomes its `sid` claim.
pub fn mint_access_token(
    s: &Inner,
    jti: &str,
    client_id: &str,
    user: &Identity,
    scope: &str,
    aud: &[String],
    family: Option<&str>,
) -> Result<Minted, OAuthError> {
    mint_access_token_bound(s, jti, client_id, user, scope, aud, family, None)
}

/// [`mint_access_token`], bound to a DPoP key when `jkt` is given (RFC 9449
/// §6.1: `cnf.jkt`).
#[allow(clippy::too_many_arguments)]
pub fn mint_access_token_bound(
    s: &Inner,
    jti: &str,
    client_id: &str,
    user: &Identity,
    scope: &str,
    aud: &[String],
    family: Option<&str>,
    jkt: Option<&str>,
) -> Result<Minted, OAuthError> {
    let now = s.now();
    let exp = now + s.config.access_token_lifetime.as_secs();
    let aud = match aud {
        [one] => Audience::One(one.clone()),
        many => Audience::Many(many.to_vec()),
    };
    let claims = AccessClaims {
        iss: s.config.issuer.clone(),
        sub: user.sub.clone(),
        aud,
        exp,
        iat: now,
        nbf: None,
        jti: jti.to_string(),
        client_id: client_id.to_string(),
        scope: scope.to_string(),
        name: user.name.clone(),
        email: user.email.clone(),
        groups: user.groups.clone(),
        idp: Some(user.idp.clone()),
        sid: family.map(grant_sid),
        cnf: jkt.map(|j| gateway_common::claims::Confirmation { jkt: j.to_string() }),
    };
    let token = s.keys.sign(&claims).map_err(internal)?;
    Ok(Minted {
        token,
        jti: jti.to_string(),
        exp,
    })
}

/// Starts a refresh-token family; returns its first token, generation 0 (only its hash is stored).
pub async fn new_family(
    s: &Inner,
    family_id: &str,
    client_id: &str,
    user: &Identity,
    scope: &str,
    resources: &[String],
    first: &Minted,
) -> Result<String, OAuthError> {
    new_family_bound(s, family_id, client_id, user, scope, resources, first, None).await
}

/// [`new_family`], its refresh tokens bound to the DPoP key `jkt` (RFC 9449 §5).
#[allow(clippy::too_many_arguments)]
pub async fn new_family_bound(
    s: &Inner,
    family_id: &str,
    client_id: &str,
    user: &Identity,
    scope: &str,
    resources: &[String],
    first: &Minted,
    jkt: Option<&str>,
) -> Result<String, OAuthError> {
    let token = crate::protocol::token::mint_refresh_token(family_id, 0);
    let lifetime = s.config.refresh_token_lifetime;
    let family = RefreshFamily {
        family_id: family_id.to_string(),
        client_id: client_id.to_string(),
        user: user.clone(),
        scope: scope.to_string(),
        resources: resources.to_vec(),
        current_hash: hash_secret(&token),
        previous_hashes: Vec::new(),
        generation: 0,
        revoked: false,
        exp: s.now() + lifetime.as_secs(),
        last_access: Some(LiveToken {
            jti: first.jti.clone(),
            exp: first.exp,
        }),
        jkt: jkt.map(str::to_string),
    };
    let raw = serde_json::to_vec(&family).map_err(internal)?;
    s.store
        .put(&family_key(family_id), &raw, Some(family_ttl(s, &family)))
        .await?;
    Ok(token)
}

/// How long a family record is kept: until its refresh token and its last
/// access token have both lapsed (a revoked family must still say so).
pub fn family_ttl(s: &Inner, f: &RefreshFamily) -> Duration {
    crate::admin::family_ttl(s.now(), f)
}

pub fn parse_family(raw: &[u8]) -> Result<RefreshFamily, OAuthError> {
    serde_json::from_slice(raw).map_err(internal)
}

/// Publishes the revocation of one access token (see
/// [`crate::admin::revoke_access_token`], shared with the operator CLI).
pub async fn revoke_access_token(s: &Inner, jti: &str, exp: u64) -> Result<(), OAuthError> {
    if crate::admin::revoke_access_token(&*s.store, s.now(), jti, exp)
        .await
        .map_err(admin_error)?
    {
        s.metrics.revocations.inc();
        tracing::info!(jti = %jti, "access token revoked");
    }
    Ok(())
}

/// The shared store operations' errors at an OAuth endpoint.
pub fn admin_error(e: crate::admin::AdminError) -> OAuthError {
    match e {
        crate::admin::AdminError::Store(e) => e.into(),
        crate::admin::AdminError::Corrupt { .. } => internal(e),
        crate::admin::AdminError::NotFound(m) => OAuthError::InvalidToken(m),
    }
}

/// Whether an access token was revoked: itself (`jti`) or its grant (`sid`).
pub async fn is_revoked(s: &Inner, jti: &str, sid: Option<&str>) -> Result<bool, OAuthError> {
    if s.store.get(&revoked_key(jti)).await?.is_some() {
        return Ok(true);
    }
    match sid {
        Some(sid) => Ok(s
            .store
            .get(&revoked_key(&grant_revocation_id(sid)))
            .await?
            .is_some()),
        None => Ok(false),
    }
}

/// Marks a family revoked (so neither its current nor any rotated token works)
/// and revokes its access tokens: one revocation of the grant's `sid`, kept
/// until the newest of them lapses (see [`crate::admin::revoke_family`]).
pub async fn revoke_family(s: &Inner, family_id: &str) -> Result<(), OAuthError> {
    let r = crate::admin::revoke_family(&*s.store, s.now(), family_id)
        .await
        .map_err(admin_error)?;
    if let Some(r) = r {
        if r.newly_revoked {
            tracing::info!(family = %family_id, "refresh token family revoked");
        }
        if r.access_published {
            s.metrics.revocations.inc();
        }
    }
    Ok(())
}
