//! One error type for every OAuth endpoint, mapped to status, RFC 6749 §5.2
//! error code and `WWW-Authenticate` challenge in one function
//! ([`OAuthError::parts`]) with no catch-all arm, so a new variant forces a
//! decision. Plain data: `crate::http::error` writes the response.

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// RFC 6749 §5.2 `invalid_request`.
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// Failed client authentication: 401 with a `WWW-Authenticate` challenge (RFC 6749 §5.2).
    #[error("invalid_client: {0}")]
    InvalidClient(String),
    /// Bad, used or expired code or refresh token, PKCE mismatch (RFC 6749 §5.2).
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(String),
    #[error("unsupported_grant_type")]
    UnsupportedGrantType(String),
    #[error("unsupported_response_type")]
    UnsupportedResponseType(String),
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
    /// RFC 8707 §2: the resource is not one this server issues tokens for, or was not authorized.
    #[error("invalid_target: {0}")]
    InvalidTarget(String),
    /// RFC 7009 §2.2.1.
    #[error("unsupported_token_type")]
    UnsupportedTokenType(String),
    /// RFC 6749 §4.1.2.1: the user (or policy) refused.
    #[error("access_denied: {0}")]
    AccessDenied(String),
    /// RFC 7591 §3.2.2.
    #[error("invalid_redirect_uri: {0}")]
    InvalidRedirectUri(String),
    /// RFC 7591 §3.2.2.
    #[error("invalid_client_metadata: {0}")]
    InvalidClientMetadata(String),
    /// RFC 6750 §3.1: a missing or bad bearer token (the RFC 7592 registration access token).
    #[error("invalid_token: {0}")]
    InvalidToken(String),
    /// RFC 8628 §3.5: the user has not finished at the verification page yet.
    #[error("authorization_pending")]
    AuthorizationPending(String),
    /// RFC 8628 §3.5: polling too fast; the interval grows by 5 seconds.
    #[error("slow_down")]
    SlowDown(String),
    /// RFC 8628 §3.5: the device code lapsed.
    #[error("expired_token")]
    ExpiredToken(String),
    /// RFC 8628 §3.5: the user refused the device (a token-endpoint error, so 400).
    #[error("access_denied (device): {0}")]
    DeviceDenied(String),
    /// Over a budget: 429 with `Retry-After` (RFC 6585 §4, RFC 9110 §10.2.3);
    /// `temporarily_unavailable` is the registered OAuth code for "try later"
    /// (RFC 6749 §4.1.2.1). The number is the wait in seconds.
    #[error("temporarily_unavailable: too many requests; retry after {0} s")]
    TooManyRequests(u64),
    /// RFC 9449 §5, §7.1: the DPoP proof is missing where required, or invalid.
    #[error("invalid_dpop_proof: {0}")]
    InvalidDpopProof(String),
    /// RFC 9449 §8: the proof needs a server nonce; the value is a fresh one
    /// (sent as `DPoP-Nonce`).
    #[error("use_dpop_nonce")]
    UseDpopNonce(String),
    /// The store is unreachable; detail is logged, never sent.
    #[error("temporarily_unavailable: {0}")]
    Unavailable(String),
    /// A bug or a broken invariant; detail is logged, never sent.
    #[error("server_error: {0}")]
    Internal(String),
}

/// Status, error code, client-visible description and challenge of an error.
pub struct Parts<'a> {
    /// HTTP status code.
    pub status: u16,
    pub code: &'static str,
    pub description: Option<&'a str>,
    pub challenge: Option<String>,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u64>,
}

impl OAuthError {
    pub fn parts(&self) -> Parts<'_> {
        use OAuthError as E;
        fn p<'a>(status: u16, code: &'static str, d: &'a str) -> Parts<'a> {
            Parts {
                status,
                code,
                description: Some(d),
                challenge: None,
                retry_after: None,
            }
        }
        match self {
            E::InvalidRequest(d) => p(400, "invalid_request", d),
            E::InvalidClient(d) => Parts {
                status: 401,
                code: "invalid_client",
                description: Some(d),
                // RFC 6749 §5.2: 401 with a challenge for the scheme the client may use.
                challenge: Some("Basic realm=\"mcp-authz\"".to_string()),
                retry_after: None,
            },
            E::InvalidGrant(d) => p(400, "invalid_grant", d),
            E::UnauthorizedClient(d) => p(400, "unauthorized_client", d),
            E::UnsupportedGrantType(d) => p(400, "unsupported_grant_type", d),
            E::UnsupportedResponseType(d) => p(400, "unsupported_response_type", d),
            E::InvalidScope(d) => p(400, "invalid_scope", d),
            E::InvalidTarget(d) => p(400, "invalid_target", d),
            E::UnsupportedTokenType(d) => p(400, "unsupported_token_type", d),
            E::AccessDenied(d) => p(403, "access_denied", d),
            E::AuthorizationPending(d) => p(400, "authorization_pending", d),
            E::SlowDown(d) => p(400, "slow_down", d),
            E::ExpiredToken(d) => p(400, "expired_token", d),
            E::DeviceDenied(d) => p(400, "access_denied", d),
            E::InvalidRedirectUri(d) => p(400, "invalid_redirect_uri", d),
            E::InvalidClientMetadata(d) => p(400, "invalid_client_metadata", d),
            E::InvalidToken(d) => Parts {
                status: 401,
                code: "invalid_token",
                description: Some(d),
                challenge: Some(format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\"",
                    d.replace(['"', '\\'], "'")
                )),
                retry_after: None,
            },
            E::TooManyRequests(secs) => Parts {
                status: 429,
                code: "temporarily_unavailable",
                description: Some("too many requests; retry after the time in Retry-After"),
                challenge: None,
                retry_after: Some(*secs),
            },
            E::InvalidDpopProof(d) => p(400, "invalid_dpop_proof", d),
            E::UseDpopNonce(_) => Parts {
                status: 400,
                code: "use_dpop_nonce",
                description: Some("Authorization server requires nonce in DPoP proof"),
                challenge: None,
                retry_after: None,
            },
            E::Unavailable(_) => Parts {
                status: 503,
                code: "temporarily_unavailable",
                description: Some("the server is temporarily unavailable; try again"),
                challenge: None,
                retry_after: None,
            },
            E::Internal(_) => Parts {
                status: 500,
                code: "server_error",
                description: Some("internal error"),
                challenge: None,
                retry_after: None,
            },
        }
    }

    pub fn code(&self) -> &'static str {
        self.parts().code
    }
}

pub type OAuthResult<T> = Result<T, OAuthError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_client_is_401_with_a_challenge_and_grant_errors_are_400() {
        let e = OAuthError::InvalidClient("x".into());
        let p = e.parts();
        assert_eq!(p.status, 401);
        assert!(p.challenge.unwrap().starts_with("Basic"));
        assert_eq!(OAuthError::InvalidGrant("x".into()).parts().status, 400);
        assert_eq!(
            OAuthError::InvalidTarget("x".into()).code(),
            "invalid_target"
        );
    }

    #[test]
    fn internal_detail_never_reaches_the_body() {
        let e = OAuthError::Unavailable("redis at 10.0.0.1 refused".into());
        assert!(!e.parts().description.unwrap().contains("10.0.0.1"));
        let e = OAuthError::Internal("stack".into());
        let p = e.parts();
        assert_eq!(p.description, Some("internal error"));
    }
}
