//! Discovery: RFC 8414 authorization server metadata (also served as OpenID
//! configuration, which clients try too), RFC 9728 protected resource metadata
//! for every configured MCP service, and the JWKS (RFC 7517).

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::request_host;
use crate::config::Service;
use crate::state::AppState;

/// The metadata document: exactly what this server implements.
pub fn metadata(state: &AppState) -> serde_json::Value {
    let iss = &state.config.issuer;
    json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "registration_endpoint": format!("{iss}/register"),
        "revocation_endpoint": format!("{iss}/revoke"),
        "introspection_endpoint": format!("{iss}/introspect"),
        "jwks_uri": format!("{iss}/jwks"),
        // RFC 8628 §4.
        "device_authorization_endpoint": format!("{iss}/device_authorization"),
        "scopes_supported": state.config.scopes_supported,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": crate::protocol::registration::SUPPORTED_GRANTS,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        // RFC 7523 / RFC 8414 §2: what private_key_jwt assertions may be signed with.
        "token_endpoint_auth_signing_alg_values_supported": crate::protocol::private_key_jwt::SIGNING_ALGS,
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "revocation_endpoint_auth_signing_alg_values_supported": crate::protocol::private_key_jwt::SIGNING_ALGS,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "introspection_endpoint_auth_signing_alg_values_supported": crate::protocol::private_key_jwt::SIGNING_ALGS,
        // RFC 9449 §5.1.
        "dpop_signing_alg_values_supported": gateway_common::dpop::SUPPORTED_ALGS,
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": true,
    })
}

/// The issuer's path without slashes ("" for an issuer at the root).
fn issuer_path(state: &AppState) -> String {
    url::Url::parse(&state.config.issuer)
        .map(|u| u.path().trim_matches('/').to_string())
        .unwrap_or_default()
}

/// `/.well-known/oauth-authorization-server[/<issuer path>]` and the OpenID
/// forms. RFC 8414 §3.3: the metadata `issuer` must equal the issuer the URL
/// was built from, so a suffix that is not our issuer's path is 404.
pub async fn authorization_server_metadata(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> HttpResponse {
    let tail = req.match_info().get("tail").unwrap_or("").trim_matches('/');
    if tail != issuer_path(&state) {
        return super::not_found().await;
    }
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(metadata(&state))
}

/// Picks the service a PRM request is about: by the resource's host (as the
/// request was addressed, RFC 9728 §3.1) and the path after the well-known
/// prefix; a single configured service answers the bare well-known URL on any host.
pub fn select_service<'a>(
    services: &'a [Service],
    host: Option<&str>,
    tail: &str,
) -> Option<&'a Service> {
    let tail = tail.trim_start_matches('/');
    let parsed: Vec<(&Service, url::Url)> = services
        .iter()
        .filter_map(|s| url::Url::parse(&s.resource).ok().map(|u| (s, u)))
        .collect();
    let authority = |u: &url::Url| match u.port() {
        Some(p) => format!("{}:{p}", u.host_str().unwrap_or("")),
        None => u.host_str().unwrap_or("").to_string(),
    };
    let path_of = |u: &url::Url| u.path().trim_start_matches('/').to_string();
    // Host and path both match.
    if let Some(host) = host {
        if let Some((s, _)) = parsed
            .iter()
            .find(|(_, u)| authority(u).eq_ignore_ascii_case(host) && path_of(u) == tail)
        {
            return Some(s);
        }
        // The bare form on a service host with a single service there.
        if tail.is_empty() {
            let on_host: Vec<_> = parsed
                .iter()
                .filter(|(_, u)| authority(u).eq_ignore_ascii_case(host))
                .collect();
            if let [(s, _)] = on_host.as_slice() {
                return Some(s);
            }
        }
    }
    // Requests that reach us on our own host: the path alone decides when unambiguous.
    let by_path: Vec<_> = parsed.iter().filter(|(_, u)| path_of(u) == tail).collect();
    if let [(s, _)] = by_path.as_slice() {
        return Some(s);
    }
    match parsed.as_slice() {
        [(s, _)] if tail.is_empty() => Some(s),
        _ => None,
    }
}

/// RFC 9728 §3.2 protected resource metadata.
pub async fn protected_resource_metadata(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> HttpResponse {
    let tail = req.match_info().get("tail").unwrap_or("");
    let host = request_host(&req, &state);
    let Some(service) = select_service(&state.config.services, host.as_deref(), tail) else {
        return super::not_found().await;
    };
    let mut prm = json!({
        "resource": service.resource,
        "authorization_servers": [state.config.issuer],
        "scopes_supported": state.config.scopes_supported,
        "bearer_methods_supported": ["header"],
        "resource_name": service.name,
        // RFC 9728 §2 (RFC 9449): the verifier checks DPoP proofs.
        "dpop_signing_alg_values_supported": gateway_common::dpop::SUPPORTED_ALGS,
    });
    if state.config.dpop.requires(&service.resource) {
        prm["dpop_bound_access_tokens_required"] = json!(true);
    }
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(prm)
}

pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .json(state.keys.jwks())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, resource: &str) -> Service {
        Service {
            name: name.into(),
            resource: resource.into(),
        }
    }

    #[test]
    fn service_is_chosen_by_host_and_path() {
        let services = vec![
            svc("echo", "https://echo.example.com/mcp"),
            svc("time", "https://time.example.com/mcp"),
        ];
        assert_eq!(
            select_service(&services, Some("echo.example.com"), "mcp")
                .unwrap()
                .name,
            "echo"
        );
        assert_eq!(
            select_service(&services, Some("time.example.com"), "/mcp")
                .unwrap()
                .name,
            "time"
        );
        assert_eq!(
            select_service(&services, Some("time.example.com"), "")
                .unwrap()
                .name,
            "time"
        );
        assert!(select_service(&services, Some("auth.example.com"), "mcp").is_none());
        let one = vec![svc("echo", "https://echo.example.com/mcp")];
        assert_eq!(
            select_service(&one, Some("auth.example.com"), "")
                .unwrap()
                .name,
            "echo"
        );
        assert_eq!(
            select_service(&one, Some("127.0.0.1:8000"), "mcp")
                .unwrap()
                .name,
            "echo"
        );
        assert!(select_service(&one, Some("auth.example.com"), "other").is_none());
        let paths = vec![
            svc("a", "https://h.example.com/a/mcp"),
            svc("b", "https://h.example.com/b/mcp"),
        ];
        assert_eq!(
            select_service(&paths, Some("h.example.com"), "b/mcp")
                .unwrap()
                .name,
            "b"
        );
        assert!(select_service(&paths, Some("h.example.com"), "").is_none());
    }
}
