//! Discovery: protected resource metadata (RFC 9728) then authorization server
//! metadata (RFC 8414 / OpenID Connect Discovery), in the order the MCP
//! authorization spec (2025-06-18 and later) gives clients; for servers on the
//! 2025-03-26 revision (no protected resource metadata), authorization server
//! metadata at the MCP server's origin, else that revision's default endpoints.

use serde::Deserialize;
use url::Url;

use crate::ConnectError;

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
    /// RFC 8414 §2; absent means `client_secret_basic`.
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

/// What discovery settled: the `resource` to ask for (RFC 8707) and the authorization server.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub resource: String,
    pub issuer: String,
    pub md: AuthServerMetadata,
    pub scopes_supported: Vec<String>,
    /// How the server was found, for the log.
    pub how: &'static str,
}

/// Protected resource metadata (2025-06-18+), else the 2025-03-26 fallback. `code_flow`:
/// PKCE S256 is required (not for client credentials, which has no authorization request).
pub async fn discover(
    http: &reqwest::Client,
    server: &Url,
    from_challenge: Option<&str>,
    code_flow: bool,
) -> Result<Discovered, ConnectError> {
    match resource_metadata(http, server, from_challenge).await? {
        Some(prm) => {
            let issuer = prm.authorization_servers[0].clone();
            let md = auth_server_metadata(http, &issuer, code_flow).await?;
            Ok(Discovered {
                resource: prm.resource,
                issuer,
                md,
                scopes_supported: prm.scopes_supported,
                how: "protected resource metadata",
            })
        }
        None => legacy_2025_03_26(http, server, code_flow).await,
    }
}

/// MCP 2025-03-26 "Server Metadata Discovery": the authorization base URL is the MCP
/// URL without its path; RFC 8414 metadata there, else `/authorize`, `/token` and
/// `/register` under it ("Fallbacks for Servers without Metadata Discovery").
async fn legacy_2025_03_26(
    http: &reqwest::Client,
    server: &Url,
    code_flow: bool,
) -> Result<Discovered, ConnectError> {
    let origin = server.origin().ascii_serialization();
    let base = Url::parse(&origin)
        .map_err(|_| ConnectError::Discovery(format!("{server} has no usable origin")))?;
    let mut found = None;
    for candidate in auth_server_metadata_urls(&base) {
        if let Some(v) = get_json(http, &candidate).await? {
            let md: AuthServerMetadata = serde_json::from_value(v).map_err(|e| {
                ConnectError::Discovery(format!("metadata at {candidate} is invalid ({e})"))
            })?;
            if !same_resource(&md.issuer, &origin) {
                return Err(ConnectError::Discovery(format!(
                    "metadata at {candidate} names issuer {:?}, expected {origin:?}",
                    md.issuer
                )));
            }
            // 2025-03-26 makes PKCE mandatory but not its advertisement: refuse only a
            // list that leaves S256 out.
            let s256_refused = md
                .code_challenge_methods_supported
                .as_ref()
                .is_some_and(|m| !m.iter().any(|m| m == "S256"));
            if code_flow && s256_refused {
                return Err(ConnectError::Discovery(format!(
                    "authorization server {origin} does not offer PKCE S256"
                )));
            }
            found = Some(md);
            break;
        }
    }
    let (md, how) = match found {
        Some(md) => (
            md,
            "authorization server metadata at the MCP origin (2025-03-26)",
        ),
        None => (
            AuthServerMetadata {
                issuer: origin.clone(),
                authorization_endpoint: Some(format!("{origin}/authorize")),
                token_endpoint: format!("{origin}/token"),
                registration_endpoint: Some(format!("{origin}/register")),
                device_authorization_endpoint: None,
                code_challenge_methods_supported: Some(vec!["S256".into()]),
                authorization_response_iss_parameter_supported: false,
                client_id_metadata_document_supported: false,
                token_endpoint_auth_methods_supported: None,
            },
            "the default endpoints of 2025-03-26",
        ),
    };
    Ok(Discovered {
        resource: server.to_string(),
        issuer: md.issuer.clone(),
        md,
        scopes_supported: Vec::new(),
        how,
    })
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

/// Fetches the PRM named by the challenge, else the well-known ones; `None` when the
/// server publishes none (a 2025-03-26 server). Checks its `resource` (RFC 9728 §3.3).
pub async fn resource_metadata(
    http: &reqwest::Client,
    server: &Url,
    from_challenge: Option<&str>,
) -> Result<Option<ResourceMetadata>, ConnectError> {
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
            check_resource(&prm.resource, url, server).map_err(|why| {
                ConnectError::Discovery(format!(
                    "protected resource metadata at {url} is for {:?}: {why}",
                    prm.resource
                ))
            })?;
            if prm.authorization_servers.is_empty() {
                return Err(ConnectError::Discovery(format!(
                    "protected resource metadata at {url} names no authorization server"
                )));
            }
            return Ok(Some(prm));
        }
    }
    match from_challenge {
        Some(u) => Err(ConnectError::Discovery(format!(
            "the protected resource metadata the 401 names ({u}) cannot be fetched"
        ))),
        None => Ok(None),
    }
}

/// The resource identifier a well-known PRM URL was made from: the well-known path
/// segment taken out again (RFC 9728 §3.1), e.g. `https://h/.well-known/oauth-protected-resource`
/// → `https://h`, `…/oauth-protected-resource/mcp` → `https://h/mcp`.
pub fn identifier_of_prm_url(url: &Url) -> Option<String> {
    let rest = url
        .path()
        .strip_prefix("/.well-known/oauth-protected-resource")?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let mut id = format!("{}{rest}", url.origin().ascii_serialization());
    if let Some(q) = url.query() {
        id.push('?');
        id.push_str(q);
    }
    Some(id)
}

/// RFC 9728 §3.3: `resource` must be the identifier the well-known path was inserted
/// into (for a URL of another form, e.g. one a 401 named: the MCP URL itself). And, as the
/// token will be sent to `server`, it must name `server` or a part of its origin above it
/// (same origin, path a prefix at a segment boundary), never another resource.
pub fn check_resource(resource: &str, prm_url: &Url, server: &Url) -> Result<(), String> {
    let expected = identifier_of_prm_url(prm_url).unwrap_or_else(|| server.to_string());
    if !(same_resource(resource, &expected) || same_resource(resource, server.as_str())) {
        return Err(format!("expected {expected:?} (RFC 9728 §3.3)"));
    }
    let r = Url::parse(resource).map_err(|_| "not a URL".to_string())?;
    let prefix = r.path().trim_end_matches('/');
    let path = server.path();
    let covers = r.origin() == server.origin()
        && (path == prefix || path.starts_with(&format!("{prefix}/")) || prefix.is_empty());
    if !covers {
        return Err(format!("it does not cover {server}"));
    }
    Ok(())
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
    code_flow: bool,
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
            if code_flow && !s256 {
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
    fn prm_resource_is_the_identifier_the_well_known_path_went_into() {
        let server = Url::parse("https://svc.example.com/mcp").unwrap();
        let root =
            Url::parse("https://svc.example.com/.well-known/oauth-protected-resource").unwrap();
        let suffixed =
            Url::parse("https://svc.example.com/.well-known/oauth-protected-resource/mcp").unwrap();
        assert_eq!(
            identifier_of_prm_url(&root).unwrap(),
            "https://svc.example.com"
        );
        assert_eq!(
            identifier_of_prm_url(&suffixed).unwrap(),
            "https://svc.example.com/mcp"
        );
        // Root document naming the origin (RFC 9728 §3.3), with or without the slash.
        assert!(check_resource("https://svc.example.com", &root, &server).is_ok());
        assert!(check_resource("https://svc.example.com/", &root, &server).is_ok());
        assert!(check_resource("https://svc.example.com/mcp", &suffixed, &server).is_ok());
        // The path-suffixed document must name the path it was made from.
        assert!(check_resource("https://svc.example.com", &suffixed, &server).is_err());
        // Another origin, or a sibling path, is never accepted.
        assert!(check_resource("https://evil.example.com", &root, &server).is_err());
        let other =
            Url::parse("https://svc.example.com/.well-known/oauth-protected-resource/other")
                .unwrap();
        assert!(check_resource("https://svc.example.com/other", &other, &server).is_err());
        let mcpx = Url::parse("https://svc.example.com/mcpx").unwrap();
        let m =
            Url::parse("https://svc.example.com/.well-known/oauth-protected-resource/mcp").unwrap();
        assert!(check_resource("https://svc.example.com/mcp", &m, &mcpx).is_err());
        // A URL of another form (named by a 401): the MCP URL itself.
        let named = Url::parse("https://svc.example.com/prm.json").unwrap();
        assert!(check_resource("https://svc.example.com/mcp", &named, &server).is_ok());
        assert!(check_resource("https://svc.example.com", &named, &server).is_err());
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
