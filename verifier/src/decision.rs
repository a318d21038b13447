//! The verifier's answer, and the ONE place where every refusal is mapped to its
//! status, challenge and body (`Deny::response`, no catch-all arm).

use std::sync::Arc;

use crate::forwarded::ForwardedError;
use crate::identity::{Identity, Verified};
use crate::jwt::TokenError;

/// Allow (the proxy forwards the request with the identity headers) or deny.
#[derive(Debug, Clone)]
pub enum Decision<'a> {
    Allow(Allowed<'a>),
    Deny(Denial),
}

#[derive(Debug, Clone)]
pub struct Allowed<'a> {
    pub who: Who,
    /// The raw token, present only when `FORWARD_TOKEN=true`.
    pub forward_token: Option<&'a [u8]>,
    pub reason: Reason,
    /// A DPoP proof accepted by this replica whose `jti` the shared replay
    /// memory must still claim ([`crate::Verifier::claim_proof`]).
    pub dpop: Option<crate::dpop::ProofSeen>,
}

#[derive(Debug, Clone)]
pub enum Who {
    /// A CORS preflight: no token is sent with one (Fetch standard §4.8), the
    /// upstream answers it without acting on anything.
    Anonymous,
    Token(Arc<Verified>),
}

impl Who {
    pub fn identity(&self) -> &Identity {
        static NOBODY: std::sync::OnceLock<Identity> = std::sync::OnceLock::new();
        match self {
            Who::Anonymous => NOBODY.get_or_init(Identity::anonymous),
            Who::Token(v) => &v.identity,
        }
    }
}

/// A refusal with what the challenge needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub deny: Deny,
    /// `<proto>://<host>/.well-known/oauth-protected-resource<path>` (RFC 9728 §3.1),
    /// unknown when the forwarded headers themselves were unusable.
    pub resource_metadata: Option<String>,
    /// Scopes the service requires, hinted on 401 (RFC 6750 §3 `scope`).
    pub scope_hint: Option<String>,
    /// The service takes DPoP tokens only: challenges name `DPoP` too.
    pub dpop_required: bool,
    /// `DPoP-Nonce` to send with the challenge (RFC 9449 §9).
    pub dpop_nonce: Option<String>,
}

/// Every reason to refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Deny {
    #[error("no bearer token was sent")]
    NoToken,
    #[error("the Authorization header was sent more than once")]
    AmbiguousAuthorization,
    #[error("the bearer value is not a valid token")]
    MalformedBearer,
    #[error("the token is longer than MAX_TOKEN_BYTES")]
    TokenTooLong,
    #[error("{0}")]
    Token(TokenError),
    #[error("the token was not issued for this MCP service")]
    WrongAudience,
    #[error("the token has been revoked")]
    Revoked,
    #[error("the request is not for a protected MCP service")]
    UnknownService,
    #[error("{0}")]
    Forwarded(ForwardedError),
    #[error("this user may not use this MCP service")]
    NotAllowed,
    #[error("the token lacks a required scope")]
    InsufficientScope,
    /// `TOOL_POLICY_FILE` denies this method or tool to this caller (see
    /// [`crate::tool_policy`]); answered with a JSON-RPC error body.
    #[error("the tool policy denies this call")]
    ToolNotAllowed,
    /// RFC 9449: the proof, or its absence (see [`crate::dpop`]).
    #[error("{0}")]
    Dpop(crate::dpop::DpopDeny),
    #[error("signing keys are not loaded yet")]
    KeysUnavailable,
    #[error("the revocation feed has been lost for longer than REVOCATION_STALENESS_BOUND")]
    FeedStale,
}

/// Metric label of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Allowed,
    Preflight,
    NoToken,
    InvalidRequest,
    InvalidToken,
    UnknownKid,
    Expired,
    WrongAudience,
    Revoked,
    UnknownService,
    BadForwardedHeaders,
    NotAllowed,
    InsufficientScope,
    Unavailable,
    ToolDenied,
}

impl Reason {
    pub const ALL: [Reason; 15] = [
        Reason::Allowed,
        Reason::Preflight,
        Reason::NoToken,
        Reason::InvalidRequest,
        Reason::InvalidToken,
        Reason::UnknownKid,
        Reason::Expired,
        Reason::WrongAudience,
        Reason::Revoked,
        Reason::UnknownService,
        Reason::BadForwardedHeaders,
        Reason::NotAllowed,
        Reason::InsufficientScope,
        Reason::Unavailable,
        Reason::ToolDenied,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Allowed => "allowed",
            Reason::Preflight => "preflight",
            Reason::NoToken => "no_token",
            Reason::InvalidRequest => "invalid_request",
            Reason::InvalidToken => "invalid_token",
            Reason::UnknownKid => "unknown_kid",
            Reason::Expired => "expired",
            Reason::WrongAudience => "wrong_audience",
            Reason::Revoked => "revoked",
            Reason::UnknownService => "unknown_service",
            Reason::BadForwardedHeaders => "bad_forwarded_headers",
            Reason::NotAllowed => "not_allowed",
            Reason::InsufficientScope => "insufficient_scope",
            Reason::Unavailable => "unavailable",
            Reason::ToolDenied => "tool_denied",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// The HTTP answer for a refusal, independent of any framework.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyResponse {
    pub status: u16,
    /// One plain `Bearer` challenge with quoted values, in the order
    /// `resource_metadata`, `scope`, `error`, `error_description`.
    pub www_authenticate: Option<String>,
    /// Seconds, for 503.
    pub retry_after: Option<u32>,
    /// `DPoP-Nonce` response header (RFC 9449 §9).
    pub dpop_nonce: Option<String>,
    /// RFC 6749 §5.2-style `error` for the JSON body.
    pub error: &'static str,
    /// Human text for the body and the challenge (no quotes or backslashes).
    pub description: &'static str,
}

/// Which `error` code the challenge carries (RFC 6750 §3.1).
enum Challenge {
    /// No challenge header (not a bearer-token problem).
    None,
    /// Challenge without an error code: no credentials were sent (RFC 6750 §3).
    Plain,
    InvalidRequest,
    InvalidToken,
    InsufficientScope,
    /// `DPoP` scheme with its own `error` (RFC 9449 §7.1).
    Dpop,
}

impl Deny {
    pub fn reason(&self) -> Reason {
        match self {
            Deny::NoToken => Reason::NoToken,
            Deny::AmbiguousAuthorization => Reason::InvalidRequest,
            Deny::MalformedBearer | Deny::TokenTooLong => Reason::InvalidToken,
            Deny::Token(TokenError::UnknownKid) => Reason::UnknownKid,
            Deny::Token(TokenError::Expired) => Reason::Expired,
            Deny::Token(
                TokenError::Malformed
                | TokenError::MissingKid
                | TokenError::AlgorithmMismatch
                | TokenError::WrongType
                | TokenError::BadSignature
                | TokenError::WrongIssuer
                | TokenError::NotYetValid,
            ) => Reason::InvalidToken,
            Deny::WrongAudience => Reason::WrongAudience,
            Deny::Dpop(_) => Reason::InvalidToken,
            Deny::Revoked => Reason::Revoked,
            Deny::UnknownService => Reason::UnknownService,
            Deny::Forwarded(_) => Reason::BadForwardedHeaders,
            Deny::NotAllowed => Reason::NotAllowed,
            Deny::InsufficientScope => Reason::InsufficientScope,
            Deny::ToolNotAllowed => Reason::ToolDenied,
            Deny::KeysUnavailable | Deny::FeedStale => Reason::Unavailable,
        }
    }

    /// Status, challenge and body for every refusal. No `_` arm: a new variant
    /// must be decided here.
    ///
    /// * 401 + `WWW-Authenticate: Bearer resource_metadata="…"` (RFC 9728 §5.1),
    ///   with `error="invalid_token"` when a token was sent (RFC 6750 §3.1);
    /// * 403 `insufficient_scope` with the `scope` needed (RFC 6750 §3.1);
    /// * 403 `access_denied`, no challenge, for a user outside the service's
    ///   allow lists (a new token would not help, so no step-up is suggested);
    /// * 400 `invalid_request` for ambiguous credentials or forwarded headers
    ///   (nginx shows it to the client as 500; either way nothing passes);
    /// * 503 + `Retry-After` while keys are missing or the revocation feed is
    ///   lost: fail closed, and say it is the verifier, not the token, so
    ///   clients retry instead of starting a new sign-in.
    fn response(&self) -> (u16, Challenge, &'static str, &'static str) {
        match self {
            Deny::NoToken => (
                401,
                Challenge::Plain,
                "unauthorized",
                "This MCP endpoint needs an OAuth access token",
            ),
            Deny::AmbiguousAuthorization => (
                400,
                Challenge::InvalidRequest,
                "invalid_request",
                "Send exactly one Authorization header",
            ),
            Deny::MalformedBearer => (
                401,
                Challenge::InvalidToken,
                "invalid_token",
                "The bearer value is malformed",
            ),
            Deny::TokenTooLong => (
                401,
                Challenge::InvalidToken,
                "invalid_token",
                "The access token is too long",
            ),
            Deny::Token(e) => (
                401,
                Challenge::InvalidToken,
                "invalid_token",
                match e {
                    TokenError::Malformed => "The access token is malformed",
                    TokenError::MissingKid => "The access token header has no kid",
                    TokenError::UnknownKid => "The access token was signed with an unknown key",
                    TokenError::AlgorithmMismatch => {
                        "The access token algorithm does not match its key"
                    }
                    TokenError::WrongType => "The token is not an access token (typ at+jwt)",
                    TokenError::BadSignature => "The access token signature is invalid",
                    TokenError::WrongIssuer => "The access token was issued by another issuer",
                    TokenError::Expired => "The access token expired",
                    TokenError::NotYetValid => "The access token is not valid yet",
                },
            ),
            Deny::WrongAudience => (
                401,
                Challenge::InvalidToken,
                "invalid_token",
                "The access token was issued for another resource",
            ),
            // Rendered as a `DPoP` challenge by `Denial::render`.
            Deny::Dpop(d) => {
                let (error, description) = d.challenge();
                (401, Challenge::Dpop, error, description)
            }
            Deny::Revoked => (
                401,
                Challenge::InvalidToken,
                "invalid_token",
                "The access token was revoked",
            ),
            Deny::UnknownService => (
                401,
                Challenge::InvalidToken,
                "invalid_token",
                "No protected MCP service is configured at this address",
            ),
            Deny::Forwarded(_) => (
                400,
                Challenge::None,
                "invalid_request",
                "The proxy sent unusable forwarded headers",
            ),
            Deny::NotAllowed => (
                403,
                Challenge::None,
                "access_denied",
                "This account may not use this MCP service",
            ),
            Deny::InsufficientScope => (
                403,
                Challenge::InsufficientScope,
                "insufficient_scope",
                "The access token lacks a required scope",
            ),
            // Like NotAllowed: a new token would not help. The body is a
            // JSON-RPC error (crate::tool_policy::denial_body), built by the adapter.
            Deny::ToolNotAllowed => (
                403,
                Challenge::None,
                "access_denied",
                "The tool policy does not allow this account this call",
            ),
            Deny::KeysUnavailable => (
                503,
                Challenge::None,
                "temporarily_unavailable",
                "The verifier has not loaded the signing keys yet",
            ),
            Deny::FeedStale => (
                503,
                Challenge::None,
                "temporarily_unavailable",
                "The verifier lost the revocation feed and fails closed",
            ),
        }
    }
}

impl Denial {
    pub fn new(deny: Deny, resource_metadata: Option<String>) -> Self {
        Self {
            deny,
            resource_metadata,
            scope_hint: None,
            dpop_required: false,
            dpop_nonce: None,
        }
    }

    /// Builds the answer. A request that sent no token gets the plain challenge
    /// even for an unknown service (so discovery still works).
    pub fn render(&self, token_sent: bool) -> DenyResponse {
        let (status, challenge, error, description) = self.deny.response();
        if let Challenge::Dpop = challenge {
            return self.render_dpop(status, error, description);
        }
        let code = match challenge {
            Challenge::Dpop => None,
            Challenge::None => None,
            Challenge::Plain => Some(None),
            Challenge::InvalidRequest => Some(Some("invalid_request")),
            Challenge::InvalidToken => Some(token_sent.then_some("invalid_token")),
            Challenge::InsufficientScope => Some(Some("insufficient_scope")),
        };
        // `Bearer a="…", b="…"` written into one buffer: every denied request
        // builds it, a forged token's too.
        let www_authenticate = code.map(|code| {
            let mut out = String::with_capacity(160);
            out.push_str("Bearer");
            let mut param = |name: &str, value: &str| {
                out.push_str(if out.len() == "Bearer".len() {
                    " "
                } else {
                    ", "
                });
                out.push_str(name);
                out.push_str("=\"");
                out.push_str(value);
                out.push('"');
            };
            if let Some(url) = &self.resource_metadata {
                param("resource_metadata", url);
            }
            if let Some(scope) = &self.scope_hint {
                param("scope", scope);
            }
            if let Some(code) = code {
                param("error", code);
                param("error_description", description);
            }
            if self.dpop_required {
                // RFC 9449 §7.1: the scheme and algorithms this service wants.
                out.push_str(", ");
                out.push_str(&self.dpop_params(None, None));
            }
            out
        });
        DenyResponse {
            status,
            www_authenticate,
            retry_after: (status == 503).then_some(5),
            dpop_nonce: self.dpop_nonce.clone(),
            error,
            description,
        }
    }

    /// `DPoP resource_metadata="…", algs="…"[, error="…", error_description="…"]`.
    fn dpop_params(&self, error: Option<&str>, description: Option<&str>) -> String {
        let mut out = String::from("DPoP ");
        if let Some(url) = &self.resource_metadata {
            out.push_str(&format!("resource_metadata=\"{url}\", "));
        }
        out.push_str(&format!("algs=\"{}\"", gateway_common::dpop::algs_param()));
        if let (Some(e), Some(d)) = (error, description) {
            out.push_str(&format!(", error=\"{e}\", error_description=\"{d}\""));
        }
        out
    }

    fn render_dpop(
        &self,
        status: u16,
        error: &'static str,
        description: &'static str,
    ) -> DenyResponse {
        let nonce = match &self.deny {
            Deny::Dpop(crate::dpop::DpopDeny::UseNonce(n)) => Some(n.clone()),
            _ => self.dpop_nonce.clone(),
        };
        DenyResponse {
            status,
            www_authenticate: Some(self.dpop_params(Some(error), Some(description))),
            retry_after: None,
            dpop_nonce: nonce,
            error,
            description,
        }
    }
}

/// `<proto>://<host>/.well-known/oauth-protected-resource<path>` (RFC 9728 §3.1:
/// the well-known segment goes between host and path).
pub fn resource_metadata_url(proto: &str, host: &str, resource_path: &str) -> String {
    format!("{proto}://{host}/.well-known/oauth-protected-resource{resource_path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRM: &str = "https://echo.example.com/.well-known/oauth-protected-resource/mcp";

    fn render(deny: Deny, token_sent: bool) -> DenyResponse {
        Denial::new(deny, Some(PRM.into())).render(token_sent)
    }

    #[test]
    fn no_token_gets_the_plain_challenge() {
        let r = render(Deny::NoToken, false);
        assert_eq!(r.status, 401);
        assert_eq!(
            r.www_authenticate.as_deref(),
            Some(format!("Bearer resource_metadata=\"{PRM}\"").as_str())
        );
    }

    #[test]
    fn a_bad_token_adds_invalid_token() {
        for deny in [
            Deny::Token(TokenError::BadSignature),
            Deny::Token(TokenError::Expired),
            Deny::WrongAudience,
            Deny::Revoked,
            Deny::TokenTooLong,
        ] {
            let r = render(deny, true);
            assert_eq!(r.status, 401);
            let h = r.www_authenticate.unwrap();
            assert!(h.starts_with(&format!("Bearer resource_metadata=\"{PRM}\", error=\"invalid_token\", error_description=\"")), "{h}");
            assert_eq!(h.matches("Bearer").count(), 1);
            assert!(!h[..h.len() - 1].contains("\"\""));
        }
    }

    #[test]
    fn insufficient_scope_is_403_with_the_scope_hint() {
        let mut d = Denial::new(Deny::InsufficientScope, Some(PRM.into()));
        d.scope_hint = Some("mcp mcp:write".into());
        let r = d.render(true);
        assert_eq!(r.status, 403);
        assert_eq!(
            r.www_authenticate.unwrap(),
            format!("Bearer resource_metadata=\"{PRM}\", scope=\"mcp mcp:write\", error=\"insufficient_scope\", error_description=\"The access token lacks a required scope\"")
        );
    }

    #[test]
    fn outages_are_503_without_a_challenge() {
        for deny in [Deny::FeedStale, Deny::KeysUnavailable] {
            let r = render(deny, true);
            assert_eq!(
                (r.status, r.retry_after, r.www_authenticate),
                (503, Some(5), None)
            );
        }
    }

    #[test]
    fn dpop_refusals_get_a_dpop_challenge() {
        use crate::dpop::DpopDeny;
        let r = render(Deny::Dpop(DpopDeny::UseNonce("n1".into())), true);
        assert_eq!(r.status, 401);
        assert_eq!(r.dpop_nonce.as_deref(), Some("n1"));
        let h = r.www_authenticate.unwrap();
        assert!(
            h.starts_with(&format!("DPoP resource_metadata=\"{PRM}\", algs=\"ES256 ")),
            "{h}"
        );
        assert!(h.ends_with("error=\"use_dpop_nonce\", error_description=\"Resource server requires nonce in DPoP proof\""), "{h}");
        let r = render(
            Deny::Dpop(DpopDeny::Invalid(
                gateway_common::dpop::ProofError::WrongAth,
            )),
            true,
        );
        assert!(r
            .www_authenticate
            .unwrap()
            .contains("error=\"invalid_dpop_proof\""));
        // A DPoP-only service names both schemes when no token was sent.
        let mut d = Denial::new(Deny::NoToken, Some(PRM.into()));
        d.dpop_required = true;
        let h = d.render(false).www_authenticate.unwrap();
        assert!(
            h.starts_with(&format!(
                "Bearer resource_metadata=\"{PRM}\", DPoP resource_metadata="
            )),
            "{h}"
        );
    }

    #[test]
    fn descriptions_need_no_escaping() {
        let all = [
            Deny::NoToken,
            Deny::AmbiguousAuthorization,
            Deny::MalformedBearer,
            Deny::TokenTooLong,
            Deny::Token(TokenError::Malformed),
            Deny::Token(TokenError::MissingKid),
            Deny::Token(TokenError::UnknownKid),
            Deny::Token(TokenError::AlgorithmMismatch),
            Deny::Token(TokenError::WrongType),
            Deny::Token(TokenError::BadSignature),
            Deny::Token(TokenError::WrongIssuer),
            Deny::Token(TokenError::Expired),
            Deny::Token(TokenError::NotYetValid),
            Deny::WrongAudience,
            Deny::Revoked,
            Deny::UnknownService,
            Deny::Forwarded(ForwardedError::Invalid("x")),
            Deny::NotAllowed,
            Deny::InsufficientScope,
            Deny::ToolNotAllowed,
            Deny::KeysUnavailable,
            Deny::FeedStale,
            Deny::Dpop(crate::dpop::DpopDeny::ProofRequired),
            Deny::Dpop(crate::dpop::DpopDeny::NotBound),
            Deny::Dpop(crate::dpop::DpopDeny::UseNonce("n".into())),
            Deny::Dpop(crate::dpop::DpopDeny::Invalid(
                gateway_common::dpop::ProofError::Replayed,
            )),
        ];
        for d in all {
            let (_, _, _, text) = d.response();
            assert!(!text.contains(['"', '\\']), "{text}");
        }
    }
}
