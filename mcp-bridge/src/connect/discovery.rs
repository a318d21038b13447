//! Discovery: protected resource metadata (RFC 9728) then authorization server
//! metadata (RFC 8414 / OpenID Connect Discovery), in the order the MCP
//! authorization spec (2025-06-18 and later) gives clients.

use serde::Deserialize;
use url::Url;

use super::ConnectError;

/// RFC 9728 §2, the fields this client uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ResourceMetadata {
    pub resource: String,
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    #[serde(default)]
    pub scopes_supported: Vec<String>,
}

/// RFC 8414 §2 (+ RFC 8628 §4, RFC 9207 §3, CIMD), the fields this client uses.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthServerMetadata {
    pub issuer: String,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: String,
    pub registration_endpoint: Option<String>,
    pub device_authorization_endpoint: Option<String>,
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    #[serde(default)]
    pub client_id_metadata_document_supported: bool,
}

/// Where to look for the PRM when the 401 named none: the path-suffixed
/// well-known URL first, then the root one (RFC 9728 §3.1; MCP 2025-06-18+).
pub fn resource_metadata_urls(server: &Url) -> Vec<Url> {
    let mut out = Vec::new();
    let path = server.path().trim_end_matches('/');
    let mut base = server.clone();
    base.set_query(None);
    base.set_fragment(None);
    if !path.is_empty() {
        let mut u = base.clone();
        u.set_path(&format!("/.well-known/oauth-protected-resource{path}"));
        out.push(u);
    }
    let mut u = base;
    u.set_path("/.well-known/oauth-protected-resource");
    out.push(u);
    out
}

/// RFC 8414 §3.1 and OpenID Connect Discovery 1.0 §4, in the MCP spec's order:
/// with a path: `/.well-known/oauth-authorization-server/<path>`,
/// `/.well-known/openid-configuration/<path>`, `<path>/.well-known/openid-configuration`;
/// without: the first two at the root.
pub fn auth_server_metadata_urls(issuer: &Url) -> Vec<Url> {
    let path = issuer.path().trim_end_matches('/').to_string();
    let mut base = issuer.clone();
    base.set_query(None);
    base.set_fragment(None);
    let at = |p: String| {
        let mut u = base.clone();
        u.set_path(&p);
        u
    };
    if path.is_empty() {
        vec![
            at("/.well-known/oauth-authorization-server".into()),
            at("/.well-known/openid-configuration".into()),
        ]
    } else {
        vec![
            at(format!("/.well-known/oauth-authorization-server{path}")),
            at(format!("/.well-known/openid-configuration{path}")),
            at(format!("{path}/.well-known/openid-configuration")),
        ]
    }
}

async fn get_json(
    http: &reqwest::Client,
    url: &Url,
) -> Result<Option<serde_json::Value>, ConnectError> {
    let resp = http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| ConnectError::from_transport(url, e))?;
    if !resp.status().is_success() {
        return Ok(None);
    }
    resp.json().await.map(Some).map_err(|e| {
        ConnectError::Discovery(format!("{url} did not answer with JSON metadata ({e})"))
    })
}

/// Fetches the PRM named by the challenge, else the well-known ones; checks that its
/// `resource` is the URL we were given (RFC 9728 §3.3).
pub async fn resource_metadata(
    http: &reqwest::Client,
    server: &Url,
    from_challenge: Option<&str>,
) -> Result<ResourceMetadata, ConnectError> {
    let candidates = match from_challenge {
        Some(u) => vec![Url::parse(u).map_err(|_| {
            ConnectError::Discovery(format!(
                "the 401 names an invalid resource_metadata URL {u:?}"
            ))
        })?],
        None => resource_metadata_urls(server),
    };
    for url in &candidates {
        if let Some(v) = get_json(http, url).await? {
            let prm: ResourceMetadata = serde_json::from_value(v).map_err(|e| {
                ConnectError::Discovery(format!(
                    "protected resource metadata at {url} is invalid ({e})"
                ))
            })?;
            if !same_resource(&prm.resource, server.as_str()) {
                return Err(ConnectError::Discovery(format!(
                    "protected resource metadata at {url} is for {:?}, not {server}",
                    prm.resource
                )));
            }
            if prm.authorization_servers.is_empty() {
                return Err(ConnectError::Discovery(format!(
                    "protected resource metadata at {url} names no authorization server"
                )));
            }
            return Ok(prm);
        }
    }
    Err(ConnectError::Discovery(format!(
        "{server} asks for authorization but publishes no protected resource metadata"
    )))
}

/// RFC 9728 §3.3 wants identity; a trailing slash added by URL normalisation
/// (`https://h` vs `https://h/`) is the one difference forgiven.
fn same_resource(a: &str, b: &str) -> bool {
    a == b || a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Fetches the authorization server metadata of `issuer`; its `issuer` must equal
/// the one named in the PRM byte for byte (RFC 8414 §3.3) and PKCE S256 must be offered.
pub async fn auth_server_metadata(
    http: &reqwest::Client,
    issuer: &str,
) -> Result<AuthServerMetadata, ConnectError> {
    let url = Url::parse(issuer)
        .map_err(|_| ConnectError::Discovery(format!("invalid authorization server {issuer:?}")))?;
    for candidate in auth_server_metadata_urls(&url) {
        if let Some(v) = get_json(http, &candidate).await? {
            let md: AuthServerMetadata = serde_json::from_value(v).map_err(|e| {
                ConnectError::Discovery(format!("metadata at {candidate} is invalid ({e})"))
            })?;
            if md.issuer != issuer {
                return Err(ConnectError::Discovery(format!(
                    "metadata at {candidate} names issuer {:?}, expected {issuer:?}",
                    md.issuer
                )));
            }
            let s256 = md
                .code_challenge_methods_supported
                .as_ref()
                .is_some_and(|m| m.iter().any(|m| m == "S256"));
            if !s256 {
                return Err(ConnectError::Discovery(format!(
                    "authorization server {issuer} does not advertise PKCE S256"
                )));
            }
            return Ok(md);
        }
    }
    Err(ConnectError::Discovery(format!(
        "authorization server {issuer} publishes no metadata"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: Vec<Url>) -> Vec<String> {
        v.into_iter().map(String::from).collect()
    }

    #[test]
    fn prm_urls_path_suffixed_first() {
        let u = Url::parse("https://svc.example.com/mcp?x=1").unwrap();
        assert_eq!(
            s(resource_metadata_urls(&u)),
            [
                "https://svc.example.com/.well-known/oauth-protected-resource/mcp",
                "https://svc.example.com/.well-known/oauth-protected-resource"
            ]
        );
        let root = Url::parse("https://svc.example.com/").unwrap();
        assert_eq!(
            s(resource_metadata_urls(&root)),
            ["https://svc.example.com/.well-known/oauth-protected-resource"]
        );
    }

    #[test]
    fn as_urls_with_and_without_path() {
        let u = Url::parse("https://auth.example.com/tenant1").unwrap();
        assert_eq!(
            s(auth_server_metadata_urls(&u)),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.example.com/.well-known/openid-configuration/tenant1",
                "https://auth.example.com/tenant1/.well-known/openid-configuration",
            ]
        );
        let root = Url::parse("https://auth.example.com").unwrap();
        assert_eq!(
            s(auth_server_metadata_urls(&root)),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration",
            ]
        );
    }
}
