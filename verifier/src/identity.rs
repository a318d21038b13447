//! What a verified token says about its bearer, shaped for the hot path: the
//! identity header values are computed once, when the token is first verified.

use std::sync::OnceLock;

use actix_web::http::header::HeaderValue;
use gateway_common::claims::AccessClaims;

/// A token whose signature, type, issuer and time window were checked. The
/// audience and the service policy are checked per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Keyed hash of `jti` (see [`crate::revoked::RevokedSet::id_hash`]).
    pub id_hash: u64,
    /// Keyed hash of the grant's revocation id (claim `sid`, see
    /// `gateway_common::revocation::grant_revocation_id`): revoking the
    /// grant revokes this token too.
    pub grant_hash: Option<u64>,
    pub exp: u64,
    pub nbf: Option<u64>,
    pub audiences: Vec<String>,
    pub groups: Vec<String>,
    pub identity: Identity,
    /// The tool policy's view of this caller, filled on its first MCP call.
    pub tool_memo: crate::tool_policy::ToolMemoSlot,
    /// `cnf.jkt`: the DPoP key the token is bound to (RFC 9449 §6.1).
    pub jkt: Option<String>,
    /// The identity as response header values, made on the first answer and
    /// shared by every later one for this token (no per-request copies).
    pub header_values: HeaderValues,
}

/// [`Identity`] as HTTP header values: user id, name, e-mail, client id, scopes.
#[derive(Debug, Clone, Default)]
pub struct HeaderValues(OnceLock<[HeaderValue; 5]>);

impl HeaderValues {
    pub fn get(&self, id: &Identity) -> &[HeaderValue; 5] {
        self.0.get_or_init(|| {
            // `header_safe` removed control characters; any other byte is a valid value.
            let v = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
            [
                v(&id.user_id),
                v(&id.user_name),
                v(&id.user_email),
                v(&id.client_id),
                v(&id.scopes),
            ]
        })
    }
}

/// Derived from the identity: two verifications are equal whatever their cache of it.
impl PartialEq for HeaderValues {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for HeaderValues {}

/// The identity headers' values. Always all present; empty when unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub user_name: String,
    pub user_email: String,
    pub client_id: String,
    /// Space-separated granted scopes.
    pub scopes: String,
}

impl Identity {
    /// Nobody: what a CORS preflight passes with.
    pub fn anonymous() -> Self {
        Self::default()
    }

    pub fn has_scope(&self, wanted: &str) -> bool {
        self.scopes.split(' ').any(|s| s == wanted)
    }
}

impl Verified {
    pub fn from_claims(claims: AccessClaims, id_hash: u64, grant_hash: Option<u64>) -> Self {
        let scopes = claims.scopes().collect::<Vec<_>>().join(" ");
        Self {
            id_hash,
            grant_hash,
            exp: claims.exp,
            nbf: claims.nbf,
            audiences: claims.aud.as_vec(),
            groups: claims.groups,
            identity: Identity {
                user_id: header_safe(claims.sub),
                user_name: header_safe(claims.name),
                user_email: header_safe(claims.email.unwrap_or_default()),
                client_id: header_safe(claims.client_id),
                scopes: header_safe(scopes),
            },
            tool_memo: Default::default(),
            jkt: claims.cnf.map(|c| c.jkt),
            header_values: Default::default(),
        }
    }

    pub fn has_audience(&self, resource: &str) -> bool {
        self.audiences.iter().any(|a| a == resource)
    }
}

/// Control characters can't go into a header value (RFC 9110 §5.5); drop them
/// rather than let a crafted name break the response.
fn header_safe(v: String) -> String {
    if v.bytes().any(|b| b < 0x20 || b == 0x7f) {
        v.chars().filter(|c| !c.is_control()).collect()
    } else {
        v
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn verified(id_hash: u64, exp: u64) -> std::sync::Arc<Verified> {
        std::sync::Arc::new(Verified {
            id_hash,
            grant_hash: None,
            exp,
            nbf: None,
            audiences: vec!["https://echo.example.com/mcp".into()],
            groups: vec![],
            identity: Identity::default(),
            tool_memo: Default::default(),
            jkt: None,
            header_values: Default::default(),
        })
    }

    #[test]
    fn header_values_lose_control_characters() {
        assert_eq!(header_safe("Ann\r\nX-Evil: 1".into()), "AnnX-Evil: 1");
        assert_eq!(header_safe("Zoë".into()), "Zoë");
    }
}
