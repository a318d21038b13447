//! Who the user is: the sign-in seam.
//!
//! Every way of signing in — local users now, GitHub, OpenID Connect and the
//! device flow later — is an [`IdentityProvider`]. A provider either shows our
//! credentials form ([`SignInStart::Form`], checked by
//! [`IdentityProvider::verify_password`]) or sends the browser to an upstream
//! ([`SignInStart::Redirect`]) and, from its own callback route, hands the
//! resulting [`Identity`] to `crate::http::signin::finish_sign_in`, which opens
//! the session and continues to consent. Nothing after that point knows which
//! provider was used, except through `Identity::idp`.

pub mod github;
pub mod local;
pub mod oidc;
pub mod token_endpoint;
pub mod upstream;

use async_trait::async_trait;

pub use crate::protocol::identity::Identity;

/// How a provider's sign-in begins for a pending authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInStart {
    /// Our own username/password form.
    Form,
    /// Send the browser here (an upstream authorization endpoint).
    Redirect(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("sign-in backend unavailable: {0}")]
    Unavailable(String),
    /// The user is known upstream but not on an allowlist (or no longer is).
    #[error("not allowed: {0}")]
    Refused(String),
    /// The upstream answer was unusable: a bad or used code, a bad id_token.
    #[error("upstream sign-in failed: {0}")]
    Upstream(String),
}

#[async_trait]
pub trait IdentityProvider: Send + Sync + std::fmt::Debug {
    /// Short id used in URLs and `Identity::idp` (`local`, `github`, `oidc`).
    fn id(&self) -> &'static str;
    /// What the chooser page shows.
    fn label(&self) -> &str;
    /// How sign-in starts for the pending request `request_id`.
    async fn start(&self, request_id: &str) -> Result<SignInStart, SignInError>;
    /// Checks form credentials; providers that redirect keep the default.
    async fn verify_password(
        &self,
        _username: &str,
        _password: &str,
    ) -> Result<Option<Identity>, SignInError> {
        Ok(None)
    }
    /// The `iss` an upstream authorization response must carry when it has one
    /// (RFC 9207 mix-up defence toward the upstream).
    fn expected_iss(&self) -> Option<&str> {
        None
    }
    /// Finishes an upstream sign-in from the provider's callback (`/callback/<id>`).
    async fn complete(
        &self,
        _code: &str,
        _pending: &upstream::PendingUpstream,
    ) -> Result<Identity, SignInError> {
        Err(SignInError::Upstream(
            "this provider has no upstream callback".into(),
        ))
    }
    /// At a refresh: `Ok(None)` keeps the identity, `Ok(Some(_))` replaces it
    /// (fresh groups, new check time), `Err(Refused)` ends the grant.
    async fn recheck(&self, _user: &Identity, _now: u64) -> Result<Option<Identity>, SignInError> {
        Ok(None)
    }
}

/// The sealed provider token of `user` when its allowlists are due to be
/// asked again (signed in through `idp`, last checked `interval` or more ago);
/// `None` when not due or not this provider's user. Shared by the providers
/// that re-check on refresh (GitHub, OpenID Connect).
pub(crate) fn due_for_recheck<'a>(
    user: &'a Identity,
    idp: &str,
    interval: std::time::Duration,
    now: u64,
    provider: &str,
) -> Result<Option<&'a str>, SignInError> {
    if user.idp != idp {
        return Ok(None);
    }
    let due = user
        .checked_at
        .is_none_or(|t| now.saturating_sub(t) >= interval.as_secs());
    if !due {
        return Ok(None);
    }
    match &user.upstream_token {
        Some(sealed) => Ok(Some(sealed)),
        None => Err(SignInError::Refused(format!(
            "no {provider} token to re-check the allowlists with"
        ))),
    }
}
