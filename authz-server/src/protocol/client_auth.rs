//! Client authentication decisions at `/token`, `/revoke`, `/introspect`
//! and the device endpoint (RFC 6749 §2.3, RFC 7591 §2
//! `token_endpoint_auth_method`, RFC 7523 §2.2).
//!
//! Each client authenticates the way it registered: `client_secret_basic` in
//! the `Authorization: Basic` header only (no `client_id` needed in the body),
//! `client_secret_post` in the body, `private_key_jwt` with a client
//! assertion, `none` with `client_id` alone. More than one method is
//! `invalid_request`; any failure is 401 `invalid_client`.
//!
//! [`presented`] reads what the request carried; [`required_check`] says what
//! must still be verified for the registered method; the adapter
//! (`crate::http::client_auth`) looks the client up and runs that check.

use base64::Engine;

use crate::protocol::error::OAuthError;
use crate::protocol::private_key_jwt;
use crate::protocol::records::AuthMethod;

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

/// The client-authentication inputs of a request, as the adapter read them.
#[derive(Default, Clone, Copy)]
pub struct Carried<'a> {
    /// The raw `Authorization` header, if any.
    pub authorization: Option<&'a [u8]>,
    pub client_id: Option<&'a str>,
    pub client_secret: Option<&'a str>,
    pub client_assertion_type: Option<&'a str>,
    pub client_assertion: Option<&'a str>,
}

/// A header value as text, with the same rule as HTTP field values
/// (visible ASCII, space and tab; RFC 9110 §5.5).
fn header_text(raw: &[u8]) -> Option<&str> {
    raw.iter()
        .all(|&c| c == b'\t' || (0x20..0x7f).contains(&c))
        .then(|| std::str::from_utf8(raw).ok())
        .flatten()
}

/// The credentials a request presented (RFC 6749 §2.3: one method only).
pub fn presented(c: &Carried<'_>) -> Result<Presented, OAuthError> {
    if let Some(found) = assertion(c)? {
        return Ok(found);
    }
    if let Some(raw) = c.authorization {
        let auth = header_text(raw)
            .ok_or_else(|| OAuthError::InvalidClient("malformed Authorization header".into()))?;
        let (scheme, rest) = auth.split_once(' ').unwrap_or((auth, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            if c.client_secret.is_some() {
                return Err(OAuthError::InvalidRequest(
                    "use one client authentication method, not two".into(),
                ));
            }
            let malformed = || OAuthError::InvalidClient("malformed Basic credentials".into());
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(malformed)?;
            let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
            let id = pct_decode(id).ok_or_else(malformed)?;
            let secret = pct_decode(secret).ok_or_else(malformed)?;
            if c.client_id.is_some_and(|b| b != id) {
                return Err(OAuthError::InvalidClient(
                    "client_id differs from the authenticated client".into(),
                ));
            }
            return Ok(Presented::Basic { id, secret });
        }
    }
    match (c.client_id, c.client_secret) {
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
fn assertion(c: &Carried<'_>) -> Result<Option<Presented>, OAuthError> {
    let (kind, jwt) = match (c.client_assertion_type, c.client_assertion) {
        (None, None) => return Ok(None),
        (Some(k), Some(j)) => (k, j),
        _ => {
            return Err(OAuthError::InvalidRequest(
                "client_assertion and client_assertion_type go together".into(),
            ))
        }
    };
    if kind != private_key_jwt::ASSERTION_TYPE {
        return Err(OAuthError::InvalidClient(format!(
            "client_assertion_type must be {}",
            private_key_jwt::ASSERTION_TYPE
        )));
    }
    if c.client_secret.is_some() || c.authorization.is_some() {
        return Err(OAuthError::InvalidRequest(
            "use one client authentication method, not two".into(),
        ));
    }
    let claimed = private_key_jwt::claimed_client(jwt)
        .ok_or_else(|| OAuthError::InvalidClient("the client assertion names no client".into()))?;
    if c.client_id.is_some_and(|b| b != claimed) {
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

/// What is left to verify once the client's registered method is known.
#[derive(Debug, PartialEq, Eq)]
pub enum Check<'a> {
    /// A public client identifying itself: nothing to verify.
    Nothing,
    /// The secret, against the stored hash ([`secret_matches`]).
    Secret(&'a str),
    /// The `private_key_jwt` assertion, against the client's keys (RFC 7523 §3).
    Assertion(&'a str),
}

/// Matches the presented credentials with the registered method.
pub fn required_check(
    method: AuthMethod,
    creds: &Presented,
    public: Public,
) -> Result<Check<'_>, OAuthError> {
    match (method, creds) {
        (AuthMethod::ClientSecretBasic, Presented::Basic { secret, .. })
        | (AuthMethod::ClientSecretPost, Presented::Post { secret, .. }) => {
            Ok(Check::Secret(secret))
        }
        (AuthMethod::None, Presented::IdOnly { .. }) => match public {
            Public::Identify => Ok(Check::Nothing),
            Public::Refuse => Err(OAuthError::InvalidClient(
                "public clients cannot authenticate here".into(),
            )),
        },
        (AuthMethod::None, Presented::Basic { .. } | Presented::Post { .. }) => {
            Err(OAuthError::InvalidClient(
                "this client has no secret (token_endpoint_auth_method none)".into(),
            ))
        }
        (AuthMethod::PrivateKeyJwt, Presented::Assertion { assertion, .. }) => {
            Ok(Check::Assertion(assertion))
        }
        (AuthMethod::PrivateKeyJwt, _) => Err(OAuthError::InvalidClient(
            "this client must authenticate with private_key_jwt".into(),
        )),
        (AuthMethod::None, Presented::Assertion { .. }) => Err(OAuthError::InvalidClient(
            "this client has no keys (token_endpoint_auth_method none)".into(),
        )),
        (AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost, _) => {
            Err(OAuthError::InvalidClient(format!(
                "this client must authenticate with {}",
                method.as_str()
            )))
        }
    }
}

/// The presented secret against the stored hash, in constant time.
pub fn secret_matches(secret: &str, stored_hash: Option<&str>) -> Result<(), OAuthError> {
    if stored_hash.is_some_and(|h| gateway_common::crypto::verify_secret(secret, h)) {
        Ok(())
    } else {
        Err(OAuthError::InvalidClient(
            "client authentication failed".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(id: &str, secret: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        )
    }

    #[test]
    fn basic_header_alone_is_enough() {
        let h = basic("c1", "s%2B1");
        let c = Carried {
            authorization: Some(h.as_bytes()),
            ..Carried::default()
        };
        assert_eq!(
            presented(&c).unwrap(),
            Presented::Basic {
                id: "c1".into(),
                secret: "s+1".into()
            }
        );
    }

    #[test]
    fn two_methods_or_a_mismatched_id_are_refused() {
        let h = basic("c1", "s");
        let with = |c: Carried<'static>| Carried {
            authorization: Some(h.as_bytes()),
            ..c
        };
        let secret = Carried {
            client_secret: Some("s"),
            ..Carried::default()
        };
        assert_eq!(
            presented(&with(secret)).unwrap_err().code(),
            "invalid_request"
        );
        let other_id = Carried {
            client_id: Some("c2"),
            ..Carried::default()
        };
        assert_eq!(
            presented(&with(other_id)).unwrap_err().code(),
            "invalid_client"
        );
        assert_eq!(
            presented(&Carried::default()).unwrap_err().code(),
            "invalid_client"
        );
        let post = Carried {
            client_id: Some("c"),
            client_secret: Some("s"),
            ..Carried::default()
        };
        assert_eq!(
            presented(&post).unwrap(),
            Presented::Post {
                id: "c".into(),
                secret: "s".into()
            }
        );
        let both = Carried {
            client_assertion_type: Some(private_key_jwt::ASSERTION_TYPE),
            client_assertion: Some("a.b.c"),
            authorization: Some(h.as_bytes()),
            ..Carried::default()
        };
        assert_eq!(presented(&both).unwrap_err().code(), "invalid_request");
        let half = Carried {
            client_assertion: Some("a.b.c"),
            ..Carried::default()
        };
        assert_eq!(presented(&half).unwrap_err().code(), "invalid_request");
        let control = Carried {
            authorization: Some(b"Basic \x01"),
            ..Carried::default()
        };
        assert_eq!(presented(&control).unwrap_err().code(), "invalid_client");
    }

    #[test]
    fn each_method_accepts_only_its_own_credentials() {
        let basic = Presented::Basic {
            id: "c".into(),
            secret: "s".into(),
        };
        let post = Presented::Post {
            id: "c".into(),
            secret: "s".into(),
        };
        let id_only = Presented::IdOnly { id: "c".into() };
        let assertion = Presented::Assertion {
            id: "c".into(),
            assertion: "jwt".into(),
        };
        use AuthMethod as M;
        assert_eq!(
            required_check(M::ClientSecretBasic, &basic, Public::Identify).unwrap(),
            Check::Secret("s")
        );
        assert_eq!(
            required_check(M::ClientSecretPost, &post, Public::Refuse).unwrap(),
            Check::Secret("s")
        );
        assert_eq!(
            required_check(M::None, &id_only, Public::Identify).unwrap(),
            Check::Nothing
        );
        assert_eq!(
            required_check(M::PrivateKeyJwt, &assertion, Public::Refuse).unwrap(),
            Check::Assertion("jwt")
        );
        let refused = [
            (M::None, &id_only, Public::Refuse),
            (M::None, &basic, Public::Identify),
            (M::None, &assertion, Public::Identify),
            (M::ClientSecretBasic, &post, Public::Identify),
            (M::ClientSecretPost, &basic, Public::Identify),
            (M::ClientSecretBasic, &id_only, Public::Identify),
            (M::PrivateKeyJwt, &basic, Public::Identify),
        ];
        for (m, p, public) in refused {
            assert_eq!(
                required_check(m, p, public).unwrap_err().code(),
                "invalid_client",
                "{m:?} {p:?}"
            );
        }
    }

    #[test]
    fn a_secret_without_a_stored_hash_never_matches() {
        assert_eq!(
            secret_matches("s", None).unwrap_err().code(),
            "invalid_client"
        );
    }
}
