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

fn string_list(v: &Value, field: &str) -> Result<Vec<String>, OAuthError> {
    let arr = v
        .as_array()
        .ok_or_else(|| bad(format!("{field} must be an array of strings")))?;
    arr.iter()
        .map(|x| {
            x.as_str()
                .map(str::to_string)
                .ok_or_else(|| bad(format!("{field} must be an array of strings")))
        })
        .collect()
}

/// Validates a registration (or RFC 7592 update) body.
pub fn validate_metadata(
    body: &Value,
    scopes_supported: &[String],
) -> Result<ClientMetadata, OAuthError> {
    let obj = body
        .as_object()
        .ok_or_else(|| bad("the body must be a JSON object"))?;
    let mut extra: Map<String, Value> = Map::new();
    let mut redirect_uris = None;
    let mut method = None;
    let mut grant_types = None;
    let mut response_types = None;
    let mut client_name = None;
    let mut scope = None;
    for (k, v) in obj {
        match k.as_str() {
            "redirect_uris" => redirect_uris = Some(string_list(v, k)?),
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
            "grant_types" => grant_types = Some(string_list(v, k)?),
            "response_types" => response_types = Some(string_list(v, k)?),
            "client_name" => {
                let s = v
                    .as_str()
                    .ok_or_else(|| bad("client_name must be a string"))?;
                if s.chars().count() > 200 || s.chars().any(char::is_control) {
                    return Err(bad("client_name must be at most 200 printable characters"));
                }
                client_name = Some(s.to_string());
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
                    crate::protocol::private_key_jwt::validate_jwks(v).map_err(bad)?;
                    extra.insert(k.clone(), v.clone());
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
                extra.insert(k.clone(), v.clone());
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
                    extra.insert(f.to_string(), v.clone());
                }
            }
            other => {
                extra.insert(other.to_string(), v.clone());
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
    if serde_json::to_vec(&extra)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
        > MAX_BODY
    {
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
pub fn information_response(
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
        // RFC 7591 §3.2.1: REQUIRED when a secret was issued; 0 = does not expire.
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
}
