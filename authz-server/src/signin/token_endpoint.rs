//! The upstream provider's token endpoint (GitHub, an OpenID provider), asked
//! through the `oauth2` crate: the authorization code grant with the PKCE
//! verifier (RFC 6749 §4.1.3, RFC 7636 §4.5) and the refresh grant (RFC 6749
//! §6). The redirect to the provider, `state` and the verifier are ours
//! (`upstream.rs`: stored hashed, taken once); this is only the back channel.

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, EndpointNotSet, EndpointSet,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};

use super::SignInError;

/// The one field OpenID Connect adds to the token response (OIDC Core §3.1.3.3).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl oauth2::ExtraTokenFields for IdTokenField {}

type Answer = StandardTokenResponse<IdTokenField, BasicTokenType>;

type Client = oauth2::Client<
    BasicErrorResponse,
    Answer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// How we authenticate to the provider (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic`, form-encoded first (OpenID providers).
    Basic,
    /// `client_id` and `client_secret` in the form (GitHub's documented way).
    Post,
}

/// What the provider granted.
#[derive(Debug)]
pub struct Granted {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
}

/// Why a token request failed.
#[derive(Debug)]
pub enum Failure {
    /// The provider answered with an OAuth error (RFC 6749 §5.2), e.g.
    /// `invalid_grant` or GitHub's `bad_verification_code`: what it said.
    Refused(String),
    /// The provider could not be asked, or answered nothing usable.
    Unavailable(String),
}

impl Failure {
    /// The usual mapping: a refusal is an upstream failure, the rest is unavailability.
    pub fn into_sign_in(self, who: &str) -> SignInError {
        match self {
            Failure::Refused(e) => SignInError::Upstream(format!("{who}: {e}")),
            Failure::Unavailable(e) => SignInError::Unavailable(format!("{who}: {e}")),
        }
    }
}

/// One provider's token endpoint and our credentials there.
#[derive(Debug, Clone)]
pub struct TokenEndpoint {
    client: Client,
}

impl TokenEndpoint {
    pub fn new(
        token_url: &str,
        client_id: &str,
        client_secret: &str,
        redirect_uri: &str,
        auth: ClientAuth,
    ) -> Result<Self, SignInError> {
        let token_url = TokenUrl::new(token_url.to_string())
            .map_err(|e| SignInError::Unavailable(format!("token endpoint URL: {e}")))?;
        let redirect = RedirectUrl::new(redirect_uri.to_string())
            .map_err(|e| SignInError::Unavailable(format!("redirect URI: {e}")))?;
        let client = oauth2::Client::new(ClientId::new(client_id.to_string()))
            .set_client_secret(ClientSecret::new(client_secret.to_string()))
            .set_token_uri(token_url)
            .set_redirect_uri(redirect)
            .set_auth_type(match auth {
                ClientAuth::Basic => AuthType::BasicAuth,
                ClientAuth::Post => AuthType::RequestBody,
            });
        Ok(Self { client })
    }

    /// The authorization code grant, with the PKCE verifier we kept.
    pub async fn exchange_code(
        &self,
        http: &reqwest::Client,
        code: &str,
        verifier: &str,
    ) -> Result<Granted, Failure> {
        let answer = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()))
            .request_async(http)
            .await;
        granted(answer)
    }

    /// The refresh grant.
    pub async fn refresh(
        &self,
        http: &reqwest::Client,
        refresh_token: &str,
    ) -> Result<Granted, Failure> {
        let answer = self
            .client
            .exchange_refresh_token(&RefreshToken::new(refresh_token.to_string()))
            .request_async(http)
            .await;
        granted(answer)
    }
}

/// An OAuth error body (RFC 6749 §5.2), however it came.
#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

fn described(error: &str, description: Option<&str>) -> String {
    match description {
        Some(d) if !d.is_empty() => format!("{error} ({d})"),
        _ => error.to_string(),
    }
}

fn granted(
    answer: Result<
        Answer,
        RequestTokenError<oauth2::HttpClientError<reqwest::Error>, BasicErrorResponse>,
    >,
) -> Result<Granted, Failure> {
    match answer {
        Ok(t) => {
            let access_token = t.access_token().secret().clone();
            if access_token.is_empty() {
                return Err(Failure::Refused("no access token in the answer".into()));
            }
            Ok(Granted {
                access_token,
                refresh_token: t.refresh_token().map(|r| r.secret().clone()),
                id_token: t.extra_fields().id_token.clone(),
            })
        }
        Err(RequestTokenError::ServerResponse(e)) => Err(Failure::Refused(described(
            e.error().as_ref(),
            e.error_description().map(String::as_str),
        ))),
        // GitHub answers a bad or used code with HTTP 200 and an error body
        // (its documented "bad_verification_code"), which is no token response.
        Err(RequestTokenError::Parse(e, body)) => {
            match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(b) => Err(Failure::Refused(described(
                    &b.error,
                    b.error_description.as_deref(),
                ))),
                Err(_) => Err(Failure::Unavailable(format!(
                    "the token endpoint answered without a usable token response ({e})"
                ))),
            }
        }
        Err(RequestTokenError::Request(e)) => {
            Err(Failure::Unavailable(format!("token request failed ({e})")))
        }
        Err(RequestTokenError::Other(e)) => Err(Failure::Unavailable(format!(
            "the token endpoint answered: {e}"
        ))),
    }
}
