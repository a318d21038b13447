//! Client metadata validation (RFC 7591 §2) and the client information
//! response (RFC 7591 §3.2.1, RFC 7592 §3). Pure functions; the HTTP adapter
//! is `http::register`.
//!
//! Policy: fields current MCP clients send (`application_type`, `software_id`,
//! `software_version`, `client_uri`, `logo_uri`, `scope`, `contacts`, ...) are
//! accepted and stored; only what is invalid is refused. Scopes we do not
//! support are dropped from `scope` (RFC 7591 §3.2.1 lets the server replace
//! requested values) rather than failing the registration.

use serde_json::{Map, Value};

use crate::protocol::error::OAuthError;
use crate::protocol::records::{AuthMethod, ClientMetadata, ClientRecord};
use crate::protocol::redirect_uri;

pub const GRANT_AUTHORIZATION_CODE: &str = "authorization_code";
pub const GRANT_REFRESH_TOKEN: &str = "refresh_token";
/// Grant types this server implements, in the metadata it advertises.
pub const SUPPORTED_GRANTS: &[&str] = &[
    GRANT_AUTHORIZATION_CODE,
    GRANT_REFRESH_TOKEN,
    crate::protocol::device::GRANT_DEVICE_CODE,
    crate::protocol::client_credentials::GRANT_CLIENT_CREDENTIALS,
];
pub const MAX_BODY: usize = 16 * 1024;

/// Fields the server owns; a client cannot set them.
const SERVER_FIELDS: &[&str] = &[
    "client_id",
    "client_secret",
    "client_id_issued_at",
    "client_secret_expires_at",
    "registration_access_token",
    "registration_client_uri",
];

/// Metadata fields holding URLs shown or linked to people: http(s) only.
const URL_FIELDS: &[&str] = &[
    "client_uri",
    "logo_uri",
    "tos_uri",
    "policy_uri",
    "jwks_uri",
];

fn bad(msg: impl Into<String>) -> OAuthError {
    OAuthError::InvalidClientMetadata(msg.into())
}

fn string_list(v: Value, field: &str) -> Result<Vec<String>, OAuthError> {
    let not_strings = || bad(format!("{field} must be an array of strings"));
    let Value::Array(arr) = v else {
        return Err(not_strings());
    };
    arr.into_iter()
        .map(|x| match x {
            Value::String(s) => Ok(s),
            _ => Err(not_strings()),
        })
        .collect()
}

/// The length of `value` as compact JSON (as stored), counted without
/// building it; `usize::MAX` if it cannot be serialised.
fn serialized_len(value: &impl serde::Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    match serde_json::to_writer(&mut n, value) {
        Ok(()) => n.0,
        Err(_) => usize::MAX,
    }
}

/// Validates a registration (or RFC 7592 update) body.
pub fn validate_metadata(
    body: &Value,
    scopes_supported: &[String],
) -> Result<ClientMetadata, OAuthError> {
    take_metadata(body.clone(), scopes_supported)
}

/// [`validate_metadata`] of a body the caller no longer needs: the accepted
/// values move into the metadata instead of being copied.
pub fn take_metadata(
    body: Value,
    scopes_supported: &[String],
) -> Result<ClientMetadata, OAuthError> {
    let Value::Object(obj) = body else {
        return Err(bad("the body must be a JSON object"));
    };
    let mut extra: Map<String, Value> = Map::new();
    let mut redirect_uris = None;
    let mut method = None;
    let mut grant_types = None;
    let mut response_types = None;
    let mut client_name = None;
    let mut scope = None;
    for (k, v) in obj {
        match k.as_str() {
            "redirect_uris" => redirect_uris = Some(string_list(v, &k)?),
            "token_endpoint_auth_method" => {
                let s = v
                    .as_str()
                    .ok_or_else(|| bad("token_endpoint_auth_method must be a string"))?;
                method = Some(AuthMethod::parse(s).ok_or_else(|| {
                    bad(format!(
                        "token_endpoint_auth_method {s:?} is not supported (none, client_secret_basic, client_secret_post, private_key_jwt)"
                    ))
                })?);
            }
            "grant_types" => grant_types = Some(string_list(v, &k)?),
            "response_types" => response_types = Some(string_list(v, &k)?),
            "client_name" => {
                let Value::String(s) = v else {
                    return Err(bad("client_name must be a string"));
                };
                if s.chars().count() > 200 || s.chars().any(char::is_control) {
                    return Err(bad("client_name must be at most 200 printable characters"));
                }
                client_name = Some(s);
            }
            "scope" => {
                if !v.is_null() {
                    let s = v.as_str().ok_or_else(|| bad("scope must be a string"))?;
                    let kept: Vec<&str> = s
                        .split_ascii_whitespace()
                        .filter(|t| scopes_supported.iter().any(|x| x == t))
                        .collect();
                    scope = (!kept.is_empty()).then(|| kept.join(" "));
                }
            }
            "jwks" => {
                if !v.is_null() {
                    crate::protocol::private_key_jwt::validate_jwks(&v).map_err(bad)?;
                    extra.insert(k, v);
                }
            }
            "token_endpoint_auth_signing_alg" => {
                let s = v
                    .as_str()
                    .ok_or_else(|| bad("token_endpoint_auth_signing_alg must be a string"))?;
                if !crate::protocol::private_key_jwt::SIGNING_ALGS.contains(&s) {
                    return Err(bad(format!(
                        "token_endpoint_auth_signing_alg {s:?} is not supported ({})",
                        crate::protocol::private_key_jwt::SIGNING_ALGS.join(", ")
                    )));
                }
                extra.insert(k, v);
            }
            f if SERVER_FIELDS.contains(&f) => {}
            f if URL_FIELDS.contains(&f) => {
                if !v.is_null() {
                    let s = v
                        .as_str()
                        .ok_or_else(|| bad(format!("{f} must be a string")))?;
                    let ok = url::Url::parse(s)
                        .map(|u| matches!(u.scheme(), "https" | "http"))
                        .unwrap_or(false);
                    if !ok {
                        return Err(bad(format!("{f} must be an http(s) URL")));
                    }
                    extra.insert(k, v);
                }
            }
            _ => {
                extra.insert(k, v);
            }
        }
    }
    let grant_types = grant_types.unwrap_or_else(|| vec![GRANT_AUTHORIZATION_CODE.to_string()]);
    for g in &grant_types {
        if !SUPPORTED_GRANTS.contains(&g.as_str()) {
            return Err(bad(format!(
                "grant type {g:?} is not supported (authorization_code, refresh_token, {}, client_credentials)",
                crate::protocol::device::GRANT_DEVICE_CODE
            )));
        }
    }
    let code_grant = grant_types.iter().any(|g| g == GRANT_AUTHORIZATION_CODE);
    let device_grant = grant_types
        .iter()
        .any(|g| g == crate::protocol::device::GRANT_DEVICE_CODE);
    let machine_grant = grant_types
        .iter()
        .any(|g| g == crate::protocol::client_credentials::GRANT_CLIENT_CREDENTIALS);
    if !code_grant && !device_grant && !machine_grant {
        return Err(bad(
            "grant_types must include authorization_code, the device_code grant or client_credentials",
        ));
    }
    let method = method.unwrap_or(AuthMethod::ClientSecretBasic);
    if machine_grant && !method.is_confidential() {
        return Err(bad(
            "client_credentials needs a confidential client (client_secret_basic, client_secret_post or private_key_jwt)",
        ));
    }
    // RFC 7523 §2.2: the client's keys, inline or by URL (one, not both).
    let has_jwks = extra.get("jwks").is_some_and(|v| !v.is_null());
    let has_jwks_uri = extra.get("jwks_uri").is_some_and(|v| !v.is_null());
    if method == AuthMethod::PrivateKeyJwt && has_jwks == has_jwks_uri {
        return Err(bad(
            "private_key_jwt needs the client's public keys in exactly one of jwks or jwks_uri",
        ));
    }
    if has_jwks && has_jwks_uri {
        return Err(bad("send jwks or jwks_uri, not both (RFC 7591 §2)"));
    }
    // A client without the code grant gets no authorization response at all.
    let response_types = match response_types {
        Some(r) if r.is_empty() && !code_grant => r,
        r => r.unwrap_or_else(|| vec!["code".to_string()]),
    };
    if response_types.iter().any(|r| r != "code") || (code_grant && response_types.is_empty()) {
        // OAuth 2.1 removed the implicit grant: only `code`.
        return Err(bad("response_types must be [\"code\"]"));
    }
    // A device-only client (RFC 8628) never receives a redirect.
    let redirect_uris = match redirect_uris {
        None if !code_grant => Vec::new(),
        r => r.ok_or_else(|| {
            OAuthError::InvalidRedirectUri(
                "redirect_uris is required for the authorization_code grant".into(),
            )
        })?,
    };
    if (code_grant && redirect_uris.is_empty()) || redirect_uris.len() > 20 {
        return Err(OAuthError::InvalidRedirectUri(
            "redirect_uris must list 1 to 20 URIs".into(),
        ));
    }
    for uri in &redirect_uris {
        redirect_uri::validate(uri).map_err(|e| OAuthError::InvalidRedirectUri(e.to_string()))?;
    }
    if serialized_len(&extra) > MAX_BODY {
        return Err(bad("metadata too large"));
    }
    Ok(ClientMetadata {
        redirect_uris,
        // RFC 7591 §2: the default is client_secret_basic.
        token_endpoint_auth_method: method,
        grant_types,
        response_types,
        client_name,
        scope,
        extra,
    })
}

/// The client information response. The secret and registration access token
/// appear only when freshly issued (they are stored hashed and cannot be shown again).
pub fn information_response<'a>(
    client: &'a ClientRecord,
    secret: Option<&'a str>,
    registration_token: Option<&'a str>,
    registration_client_uri: &'a str,
) -> InformationResponse<'a> {
    InformationResponse {
        client,
        secret,
        registration_token,
        registration_client_uri,
    }
}

/// The client information response (RFC 7591 §3.2.1), serialised straight
/// from the record: the metadata with the server's fields, every member once,
/// in byte order of the names, as a JSON object built as a map would have it
/// (a client reads members by name; the order only keeps the bytes stable).
/// No `Debug`: it holds a freshly issued secret and registration access token.
#[derive(Clone, Copy)]
pub struct InformationResponse<'a> {
    client: &'a ClientRecord,
    secret: Option<&'a str>,
    registration_token: Option<&'a str>,
    registration_client_uri: &'a str,
}

/// One member the server writes: its value, and whether a same-named member
/// of `extra` takes its place (the metadata fields; the server's own never yield).
struct Member<'a> {
    name: &'static str,
    value: MemberValue<'a>,
    extra_wins: bool,
}

enum MemberValue<'a> {
    Str(&'a str),
    U64(u64),
    List(&'a [String]),
}

impl serde::Serialize for MemberValue<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MemberValue::Str(v) => s.serialize_str(v),
            MemberValue::U64(v) => s.serialize_u64(*v),
            MemberValue::List(v) => v.serialize(s),
        }
    }
}

impl serde::Serialize for InformationResponse<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let c = self.client;
        let m = &c.metadata;
        let member = |name, value, extra_wins| Member {
            name,
            value,
            extra_wins,
        };
        // Sorted by name (a unit test checks it), so that a merge with the
        // sorted `extra` gives each name once, in order.
        let members = [
            Some(member("client_id", MemberValue::Str(&c.client_id), false)),
            Some(member(
                "client_id_issued_at",
                MemberValue::U64(c.issued_at),
                false,
            )),
            m.client_name
                .as_deref()
                .map(|v| member("client_name", MemberValue::Str(v), true)),
            self.secret
                .map(|v| member("client_secret", MemberValue::Str(v), false)),
            // RFC 7591 §3.2.1: REQUIRED when a secret was issued; 0 = does not expire.
            m.token_endpoint_auth_method.has_secret().then(|| {
                member(
                    "client_secret_expires_at",
                    MemberValue::U64(c.expires_at.unwrap_or(0)),
                    false,
                )
            }),
            Some(member(
                "grant_types",
                MemberValue::List(&m.grant_types),
                true,
            )),
            Some(member(
                "redirect_uris",
                MemberValue::List(&m.redirect_uris),
                true,
            )),
            self.registration_token
                .map(|v| member("registration_access_token", MemberValue::Str(v), false)),
            Some(member(
                "registration_client_uri",
                MemberValue::Str(self.registration_client_uri),
                false,
            )),
            Some(member(
                "response_types",
                MemberValue::List(&m.response_types),
                true,
            )),
            m.scope
                .as_deref()
                .map(|v| member("scope", MemberValue::Str(v), true)),
            Some(member(
                "token_endpoint_auth_method",
                MemberValue::Str(m.token_endpoint_auth_method.as_str()),
                true,
            )),
        ];
        let mut map = s.serialize_map(None)?;
        let mut extra = m.extra.iter().peekable();
        for own in members.iter().flatten() {
            while let Some((k, v)) = extra.next_if(|(k, _)| k.as_str() < own.name) {
                map.serialize_entry(k, v)?;
            }
            match extra.next_if(|(k, _)| k.as_str() == own.name) {
                Some((k, v)) if own.extra_wins => map.serialize_entry(k, v)?,
                _ => map.serialize_entry(own.name, &own.value)?,
            }
        }
        for (k, v) in extra {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scopes() -> Vec<String> {
        vec!["mcp".into()]
    }

    #[test]
    fn sdk_style_registration_is_accepted_with_extra_fields_kept() {
        let m = validate_metadata(
            &json!({
                "redirect_uris": ["http://localhost:3000/callback"],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "client_name": "My Client",
                "client_uri": "https://example.com",
                "software_id": "x", "software_version": "1.0", "application_type": "native",
                "scope": "mcp openid"
            }),
            &scopes(),
        )
        .unwrap();
        assert_eq!(m.token_endpoint_auth_method, AuthMethod::None);
        assert_eq!(m.scope.as_deref(), Some("mcp"));
        assert_eq!(m.extra["software_id"], "x");
        assert_eq!(m.extra["application_type"], "native");
    }

    #[test]
    fn defaults_follow_rfc7591() {
        let m = validate_metadata(
            &json!({"redirect_uris": ["https://a.example/cb"]}),
            &scopes(),
        )
        .unwrap();
        assert_eq!(m.token_endpoint_auth_method, AuthMethod::ClientSecretBasic);
        assert_eq!(m.grant_types, vec!["authorization_code"]);
        assert_eq!(m.response_types, vec!["code"]);
    }

    #[test]
    fn invalid_metadata_is_refused_with_the_right_code() {
        let code = |v: Value| validate_metadata(&v, &scopes()).unwrap_err().code();
        assert_eq!(
            code(json!({"redirect_uris": ["javascript:alert(1)"]})),
            "invalid_redirect_uri"
        );
        assert_eq!(
            code(json!({"redirect_uris": ["http://localhost.evil.com/cb"]})),
            "invalid_redirect_uri"
        );
        assert_eq!(code(json!({})), "invalid_redirect_uri");
        assert_eq!(code(json!({"redirect_uris": []})), "invalid_redirect_uri");
        assert_eq!(
            code(json!({"redirect_uris": ["https://a/cb"], "grant_types": ["implicit"]})),
            "invalid_client_metadata"
        );
        assert_eq!(
            code(json!({"redirect_uris": ["https://a/cb"], "grant_types": ["password"]})),
            "invalid_client_metadata"
        );
        assert_eq!(
            code(json!({"redirect_uris": ["https://a/cb"], "response_types": ["token"]})),
            "invalid_client_metadata"
        );
        assert_eq!(
            code(
                json!({"redirect_uris": ["https://a/cb"], "token_endpoint_auth_method": "private_key_jwt"})
            ),
            "invalid_client_metadata",
            "private_key_jwt without keys"
        );
        assert_eq!(
            code(
                json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"})
            ),
            "invalid_client_metadata",
            "a public machine client"
        );
        assert_eq!(
            code(
                json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt",
                        "jwks_uri": "https://a.example/jwks", "jwks": {"keys": []}})
            ),
            "invalid_client_metadata"
        );
        assert_eq!(
            code(json!({"redirect_uris": ["https://a/cb"], "client_uri": "javascript:x"})),
            "invalid_client_metadata"
        );
        assert_eq!(code(json!(["x"])), "invalid_client_metadata");
    }

    #[test]
    fn machine_clients_register_without_redirects() {
        // What the TypeScript SDK's ClientCredentialsProvider describes.
        let m = validate_metadata(
            &json!({"client_name": "job", "redirect_uris": [], "grant_types": ["client_credentials"],
                    "token_endpoint_auth_method": "client_secret_basic"}),
            &scopes(),
        )
        .unwrap();
        assert!(m.redirect_uris.is_empty());
        assert_eq!(m.grant_types, vec!["client_credentials"]);
        let m = validate_metadata(
            &json!({"grant_types": ["client_credentials"], "response_types": [],
                    "token_endpoint_auth_method": "private_key_jwt",
                    "jwks_uri": "https://app.example.com/jwks.json"}),
            &scopes(),
        )
        .unwrap();
        assert_eq!(m.token_endpoint_auth_method, AuthMethod::PrivateKeyJwt);
        assert!(m.response_types.is_empty());
    }

    #[test]
    fn server_fields_cannot_be_set_by_the_client() {
        let m = validate_metadata(
            &json!({"redirect_uris": ["https://a/cb"], "client_id": "mine", "client_secret": "s"}),
            &scopes(),
        )
        .unwrap();
        assert!(!m.extra.contains_key("client_id"));
        assert!(!m.extra.contains_key("client_secret"));
    }

    /// The response as it was built before it was serialised directly: the
    /// metadata as a map, then the server's fields inserted over it.
    fn response_as_a_map(
        client: &ClientRecord,
        secret: Option<&str>,
        registration_token: Option<&str>,
        registration_client_uri: &str,
    ) -> Value {
        let mut out = match serde_json::to_value(&client.metadata) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        out.insert("client_id".into(), Value::from(client.client_id.clone()));
        out.insert("client_id_issued_at".into(), Value::from(client.issued_at));
        if let Some(s) = secret {
            out.insert("client_secret".into(), Value::from(s));
        }
        if client.metadata.token_endpoint_auth_method.has_secret() {
            out.insert(
                "client_secret_expires_at".into(),
                Value::from(client.expires_at.unwrap_or(0)),
            );
        }
        if let Some(t) = registration_token {
            out.insert("registration_access_token".into(), Value::from(t));
        }
        out.insert(
            "registration_client_uri".into(),
            Value::from(registration_client_uri),
        );
        Value::Object(out)
    }

    #[test]
    fn information_response_has_the_bytes_of_the_map_it_replaced() {
        use crate::protocol::records::ClientSource;
        let bodies = [
            json!({"redirect_uris": ["https://a.example/cb"]}),
            json!({"redirect_uris": ["https://a.example/cb", "http://localhost:3000/cb"],
                   "token_endpoint_auth_method": "none", "client_name": "My \"Client\" é",
                   "scope": "mcp", "grant_types": ["authorization_code", "refresh_token"],
                   "application_type": "native", "a": 1, "client_uri": "https://a.example",
                   "contacts": ["x@a.example"], "software_id": "s", "zz": {"k": [1.5, null]},
                   "registration_x": true, "scope_extra": "x", "tos_uri": "https://a.example/tos"}),
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt",
                   "jwks_uri": "https://a.example/jwks", "token_endpoint_auth_signing_alg": "ES256"}),
            json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "client_secret_post"}),
        ];
        let mut records: Vec<ClientRecord> = bodies
            .iter()
            .map(|b| ClientRecord {
                client_id: "c-1".into(),
                source: ClientSource::Registered,
                issued_at: 1_700_000_000,
                expires_at: None,
                secret_hash: None,
                registration_token_hash: None,
                metadata: validate_metadata(b, &scopes()).unwrap(),
            })
            .collect();
        records[3].expires_at = Some(1_800_000_000);
        // Stored records are read back with serde: `extra` could only name a
        // member of the response if a record were written by hand. Whichever
        // side the map let win still wins.
        let mut by_hand = records[1].clone();
        for (k, v) in [
            ("client_id", "x"),
            ("client_secret", "x"),
            ("client_secret_expires_at", "x"),
            ("registration_access_token", "x"),
            ("registration_client_uri", "x"),
            ("grant_types", "x"),
            ("client_name", "x"),
            ("scope", "x"),
        ] {
            by_hand.metadata.extra.insert(k.into(), Value::from(v));
        }
        records.push(by_hand.clone());
        by_hand.metadata.client_name = None;
        by_hand.metadata.scope = None;
        records.push(by_hand);
        for rec in &records {
            for secret in [None, Some("s3cret")] {
                for token in [None, Some("t0ken")] {
                    let uri = "https://auth.example/register/c-1";
                    let now = serde_json::to_string(&information_response(rec, secret, token, uri))
                        .unwrap();
                    let before =
                        serde_json::to_string(&response_as_a_map(rec, secret, token, uri)).unwrap();
                    assert_eq!(now, before);
                }
            }
        }
    }

    #[test]
    fn metadata_size_is_counted_as_stored() {
        let big = "x".repeat(MAX_BODY);
        let code = validate_metadata(
            &json!({"redirect_uris": ["https://a/cb"], "software_statement": big}),
            &scopes(),
        )
        .unwrap_err()
        .code();
        assert_eq!(code, "invalid_client_metadata");
        let extra = json!({"software_id": "x", "n": 1e15, "s": "é\u{1}"});
        let Value::Object(extra) = extra else {
            unreachable!()
        };
        assert_eq!(
            serialized_len(&extra),
            serde_json::to_vec(&extra).unwrap().len()
        );
    }
}
