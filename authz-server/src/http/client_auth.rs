//! Client authentication at `/token`, `/revoke` and `/introspect`
//! (RFC 6749 §2.3, RFC 7591 §2 `token_endpoint_auth_method`).
//!
//! Each client authenticates the way it registered: `client_secret_basic` in
//! the `Authorization: Basic` header only (no `client_id` needed in the body),
//! `client_secret_post` in the body, `none` with `client_id` alone. Secrets are
//! compared as hashes in constant time. Any failure is 401 `invalid_client`.

use actix_web::http::header;
use actix_web::HttpRequest;
use base64::Engine;

use super::Form;
use crate::error::OAuthError;
use crate::records::{AuthMethod, ClientRecord};
use crate::state::Inner;

/// The credentials a request presented.
#[derive(PartialEq, Eq)]
pub enum Presented {
    Basic {
        id: String,
        secret: String,
    },
    Post {
        id: String,
        secret: String,
    },
    IdOnly {
        id: String,
    },
    /// RFC 7523 §2.2 `client_assertion` (`private_key_jwt`).
    Assertion {
        id: String,
        assertion: String,
    },
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Presented::Basic { id, .. } => write!(f, "Basic({id})"),
            Presented::Post { id, .. } => write!(f, "Post({id})"),
            Presented::IdOnly { id } => write!(f, "IdOnly({id})"),
            Presented::Assertion { id, .. } => write!(f, "Assertion({id})"),
        }
    }
}

impl Presented {
    pub fn client_id(&self) -> &str {
        match self {
            Presented::Basic { id, .. }
            | Presented::Post { id, .. }
            | Presented::IdOnly { id }
            | Presented::Assertion { id, .. } => id,
        }
    }
}

fn pct_decode(s: &str) -> Option<String> {
    // RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Reads credentials from the header and body. More than one method is `invalid_request` (RFC 6749 §2.3).
pub fn presented(req: &HttpRequest, form: &Form) -> Result<Presented, OAuthError> {
    let body_id = form.one("client_id")?;
    let body_secret = form.one("client_secret")?;
    if let Some(found) = assertion(req, form, body_id, body_secret)? {
        return Ok(found);
    }
    if let Some(auth) = req.headers().get(header::AUTHORIZATION) {
        let auth = auth
            .to_str()
            .map_err(|_| OAuthError::InvalidClient("malformed Authorization header".into()))?;
        let (scheme, rest) = auth.split_once(' ').unwrap_or((auth, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            if body_secret.is_some() {
                return Err(OAuthError::InvalidRequest(
                    "use one client authentication method, not two".into(),
                ));
            }
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| OAuthError::InvalidClient("malformed Basic credentials".into()))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| OAuthError::InvalidClient("malformed Basic credentials".into()))?;
            let id = pct_decode(id)
                .ok_or_else(|| OAuthError::InvalidClient("malformed Basic credentials".into()))?;
            let secret = pct_decode(secret)
                .ok_or_else(|| OAuthError::InvalidClient("malformed Basic credentials".into()))?;
            if body_id.is_some_and(|b| b != id) {
                return Err(OAuthError::InvalidClient(
                    "client_id differs from the authenticated client".into(),
                ));
            }
            return Ok(Presented::Basic { id, secret });
        }
    }
    match (body_id, body_secret) {
        (Some(id), Some(secret)) => Ok(Presented::Post {
            id: id.to_string(),
            secret: secret.to_string(),
        }),
        (Some(id), None) => Ok(Presented::IdOnly { id: id.to_string() }),
        (None, _) => Err(OAuthError::InvalidClient(
            "client authentication is required".into(),
        )),
    }
}

/// `client_assertion_type` + `client_assertion` (RFC 7523 §2.2), alone.
fn assertion(
    req: &HttpRequest,
    form: &Form,
    body_id: Option<&str>,
    body_secret: Option<&str>,
) -> Result<Option<Presented>, OAuthError> {
    let kind = form.one("client_assertion_type")?;
    let jwt = form.one("client_assertion")?;
    let (kind, jwt) = match (kind, jwt) {
        (None, None) => return Ok(None),
        (Some(k), Some(j)) => (k, j),
        _ => {
            return Err(OAuthError::InvalidRequest(
                "client_assertion and client_assertion_type go together".into(),
            ))
        }
    };
    if kind != crate::private_key_jwt::ASSERTION_TYPE {
        return Err(OAuthError::InvalidClient(format!(
            "client_assertion_type must be {}",
            crate::private_key_jwt::ASSERTION_TYPE
        )));
    }
    if body_secret.is_some() || req.headers().contains_key(header::AUTHORIZATION) {
        return Err(OAuthError::InvalidRequest(
            "use one client authentication method, not two".into(),
        ));
    }
    let claimed = crate::private_key_jwt::claimed_client(jwt)
        .ok_or_else(|| OAuthError::InvalidClient("the client assertion names no client".into()))?;
    if body_id.is_some_and(|b| b != claimed) {
        return Err(OAuthError::InvalidClient(
            "client_id differs from the client assertion's subject".into(),
        ));
    }
    Ok(Some(Presented::Assertion {
        id: claimed,
        assertion: jwt.to_string(),
    }))
}

/// Whether a public client naming itself is enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Public {
    /// `/token`, `/revoke`: a public client identifies itself with `client_id` (RFC 7009 §2.1).
    Identify,
    /// `/introspect`: the caller must really authenticate (RFC 7662 §2.1).
    Refuse,
}

pub async fn authenticate(
    s: &Inner,
    req: &HttpRequest,
    form: &Form,
    public: Public,
) -> Result<ClientRecord, OAuthError> {
    let creds = presented(req, form)?;
    // A metadata-document client is public (`parse_document`): it cannot
    // authenticate, so refusing it here needs no fetch (RFC 7662 §2.1).
    if public == Public::Refuse && s.cimd.is_document_url(creds.client_id()) {
        return Err(OAuthError::InvalidClient(
            "public clients cannot authenticate here".into(),
        ));
    }
    let client = s
        .find_client(creds.client_id())
        .await?
        .ok_or_else(|| OAuthError::InvalidClient("unknown client".into()))?;
    let method = client.metadata.token_endpoint_auth_method;
    let secret = match (method, &creds) {
        (AuthMethod::ClientSecretBasic, Presented::Basic { secret, .. }) => secret,
        (AuthMethod::ClientSecretPost, Presented::Post { secret, .. }) => secret,
        (AuthMethod::None, Presented::IdOnly { .. }) => {
            return match public {
                Public::Identify => Ok(client),
                Public::Refuse => Err(OAuthError::InvalidClient(
                    "public clients cannot authenticate here".into(),
                )),
            }
        }
        (AuthMethod::None, Presented::Basic { .. } | Presented::Post { .. }) => {
            return Err(OAuthError::InvalidClient(
                "this client has no secret (token_endpoint_auth_method none)".into(),
            ))
        }
        (AuthMethod::PrivateKeyJwt, Presented::Assertion { assertion, .. }) => {
            super::machine::verify_client_assertion(s, &client, assertion).await?;
            return Ok(client);
        }
        (AuthMethod::PrivateKeyJwt, _) => {
            return Err(OAuthError::InvalidClient(
                "this client must authenticate with private_key_jwt".into(),
            ))
        }
        (AuthMethod::None, Presented::Assertion { .. }) => {
            return Err(OAuthError::InvalidClient(
                "this client has no keys (token_endpoint_auth_method none)".into(),
            ))
        }
        (AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost, _) => {
            return Err(OAuthError::InvalidClient(format!(
                "this client must authenticate with {}",
                method.as_str()
            )))
        }
    };
    let ok = client
        .secret_hash
        .as_deref()
        .is_some_and(|h| gateway_common::crypto::verify_secret(secret, h));
    if !ok {
        return Err(OAuthError::InvalidClient(
            "client authentication failed".into(),
        ));
    }
    Ok(client)
}

/// `/revoke`: the client id the caller acts as (RFC 7009 §2.1). A public
/// client identifies itself with `client_id` alone, and the token's recorded
/// client id is then compared with it; a metadata-document client is always
/// public, so its document is not needed for that and is never fetched here
/// (an unauthenticated endpoint must not make us dial a URL anyone can type).
/// Other clients authenticate as at `/token`.
pub async fn revoking_client(
    s: &Inner,
    req: &HttpRequest,
    form: &Form,
) -> Result<String, OAuthError> {
    match presented(req, form)? {
        Presented::IdOnly { id } if s.cimd.is_document_url(&id) => Ok(id),
        creds if s.cimd.is_document_url(creds.client_id()) => Err(OAuthError::InvalidClient(
            "this client has no secret (token_endpoint_auth_method none)".into(),
        )),
        _ => Ok(authenticate(s, req, form, Public::Identify)
            .await?
            .client_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn basic(id: &str, secret: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    }

    #[test]
    fn basic_header_alone_is_enough() {
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, basic("c1", "s%2B1")))
            .to_http_request();
        let p = presented(&req, &Form::from_bytes(b"grant_type=x")).unwrap();
        assert_eq!(
            p,
            Presented::Basic {
                id: "c1".into(),
                secret: "s+1".into()
            }
        );
    }

    #[test]
    fn two_methods_or_a_mismatched_id_are_refused() {
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, basic("c1", "s")))
            .to_http_request();
        assert_eq!(
            presented(&req, &Form::from_bytes(b"client_secret=s"))
                .unwrap_err()
                .code(),
            "invalid_request"
        );
        assert_eq!(
            presented(&req, &Form::from_bytes(b"client_id=c2"))
                .unwrap_err()
                .code(),
            "invalid_client"
        );
        let bare = TestRequest::default().to_http_request();
        assert_eq!(
            presented(&bare, &Form::from_bytes(b"")).unwrap_err().code(),
            "invalid_client"
        );
        assert_eq!(
            presented(&bare, &Form::from_bytes(b"client_id=c&client_secret=s")).unwrap(),
            Presented::Post {
                id: "c".into(),
                secret: "s".into()
            }
        );
    }
}
