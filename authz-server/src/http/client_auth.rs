//! Client authentication at `/token`, `/revoke`, `/introspect` and the
//! device endpoint: reads the request, looks the client up and runs the check
//! that [`crate::protocol::client_auth`] decides.

use actix_web::http::header;
use actix_web::HttpRequest;

use super::Form;
use crate::protocol::client_auth::{self as decide, Carried, Check};
pub use crate::protocol::client_auth::{Presented, Public};
use crate::protocol::error::OAuthError;
use crate::protocol::records::ClientRecord;
use crate::state::Inner;

/// Reads credentials from the header and body.
pub fn presented(req: &HttpRequest, form: &Form<'_>) -> Result<Presented, OAuthError> {
    decide::presented(&Carried {
        authorization: req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
        client_id: form.one("client_id")?,
        client_secret: form.one("client_secret")?,
        client_assertion_type: form.one("client_assertion_type")?,
        client_assertion: form.one("client_assertion")?,
    })
}

pub async fn authenticate(
    s: &Inner,
    req: &HttpRequest,
    form: &Form<'_>,
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
    match decide::required_check(client.metadata.token_endpoint_auth_method, &creds, public)? {
        Check::Nothing => {}
        Check::Secret(secret) => decide::secret_matches(secret, client.secret_hash.as_deref())?,
        Check::Assertion(assertion) => {
            super::machine::verify_client_assertion(s, &client, assertion).await?;
        }
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
    form: &Form<'_>,
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
