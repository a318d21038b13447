//! The `client_credentials` grant (RFC 6749 §4.4; MCP SEP-1046, machine
//! clients acting for no user). Pure: the client, the operator's policy and the
//! request in; the audience and scope of the token out.
//!
//! * Only confidential clients (`client_secret_basic`, `client_secret_post`,
//!   `private_key_jwt`) registered with `client_credentials` in `grant_types`.
//! * The token's `sub` is the client id (RFC 9068 §2.2: no resource owner),
//!   its `aud` the requested `resource`(s) (RFC 8707), every one a configured
//!   MCP service that lets this client in; without `resource`, the only
//!   service when there is exactly one.
//! * No refresh token (RFC 6749 §4.4.3): the client asks again.
//! * Operators: `CLIENT_CREDENTIALS_ENABLED=false` forbids the grant (and its
//!   registration); `MCP_<NAME>_MACHINE_CLIENTS` restricts a service: `none`
//!   forbids it, a list of client ids allows only those, unset allows any
//!   client registered for the grant.

use gateway_common::config::{ConfigError, Source};

use crate::protocol::error::OAuthError;
use crate::protocol::identity::Identity;
use crate::protocol::records::ClientRecord;

pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";

/// The `idp` of a machine client's tokens.
pub const MACHINE_IDP: &str = "client";

/// Which clients may get tokens for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceAccess {
    /// Any client registered for the grant.
    Any,
    /// No machine client.
    Forbidden,
    /// These client ids only.
    Only(Vec<String>),
}

/// The operator's rules for the grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachinePolicy {
    /// `CLIENT_CREDENTIALS_ENABLED` (default true).
    pub enabled: bool,
    /// `(resource, access)` for every configured service.
    pub services: Vec<(String, ServiceAccess)>,
}

impl MachinePolicy {
    /// Reads the policy for the configured services (`(name, resource)` pairs).
    pub fn from_source(src: &Source, services: &[(String, String)]) -> Result<Self, ConfigError> {
        let enabled = src.bool("CLIENT_CREDENTIALS_ENABLED", true)?;
        let mut out = Vec::with_capacity(services.len());
        for (name, resource) in services {
            let var = format!("MCP_{}_MACHINE_CLIENTS", name.to_ascii_uppercase());
            let access = match src.get(&var).map(str::trim) {
                None | Some("") | Some("*") => ServiceAccess::Any,
                Some(v) if v.eq_ignore_ascii_case("none") => ServiceAccess::Forbidden,
                Some(_) => ServiceAccess::Only(src.list(&var)),
            };
            out.push((resource.clone(), access));
        }
        Ok(Self {
            enabled,
            services: out,
        })
    }

    fn access(&self, resource: &str) -> Option<&ServiceAccess> {
        self.services
            .iter()
            .find(|(r, _)| r == resource)
            .map(|(_, a)| a)
    }
}

/// The audience and scope of a client-credentials token, or why not.
pub fn check_grant(
    client: &ClientRecord,
    policy: &MachinePolicy,
    requested_resources: &[String],
    requested_scope: Option<&str>,
    scopes_supported: &[String],
    default_scope: &str,
) -> Result<(Vec<String>, String), OAuthError> {
    if !policy.enabled {
        return Err(OAuthError::UnauthorizedClient(
            "the client_credentials grant is disabled on this server".into(),
        ));
    }
    if !client.metadata.token_endpoint_auth_method.is_confidential() {
        return Err(OAuthError::UnauthorizedClient(
            "client_credentials is for confidential clients only".into(),
        ));
    }
    if !client.allows_grant(GRANT_CLIENT_CREDENTIALS) {
        return Err(OAuthError::UnauthorizedClient(
            "this client may not use client_credentials".into(),
        ));
    }
    let mut aud: Vec<String> = Vec::new();
    if requested_resources.is_empty() {
        match policy.services.as_slice() {
            [(only, _)] => aud.push(only.clone()),
            _ => {
                return Err(OAuthError::InvalidTarget(
                    "name the MCP service with the resource parameter (RFC 8707)".into(),
                ))
            }
        }
    } else {
        for r in requested_resources {
            if !aud.contains(r) {
                aud.push(r.clone());
            }
        }
    }
    for r in &aud {
        match policy.access(r) {
            None => {
                return Err(OAuthError::InvalidTarget(format!(
                    "resource {r} is not an MCP service of this server"
                )))
            }
            Some(ServiceAccess::Any) => {}
            Some(ServiceAccess::Only(ids)) if ids.iter().any(|i| i == &client.client_id) => {}
            Some(ServiceAccess::Forbidden | ServiceAccess::Only(_)) => {
                return Err(OAuthError::InvalidTarget(format!(
                    "machine clients may not use {r}, or not this one"
                )))
            }
        }
    }
    // The client's registered scope bounds what it may ask for; empty: the server's.
    let allowed: Vec<&str> = match client.metadata.scope.as_deref() {
        Some(s) => s.split_ascii_whitespace().collect(),
        None => scopes_supported.iter().map(String::as_str).collect(),
    };
    let scope = match requested_scope.map(str::trim).filter(|s| !s.is_empty()) {
        None => match client.metadata.scope.as_deref() {
            Some(s) => s.to_string(),
            None => default_scope.to_string(),
        },
        Some(req) => {
            let mut out: Vec<&str> = Vec::new();
            for s in req.split_ascii_whitespace() {
                if !allowed.contains(&s) {
                    return Err(OAuthError::InvalidScope(format!(
                        "scope {s} is not available to this client"
                    )));
                }
                if !out.contains(&s) {
                    out.push(s);
                }
            }
            out.join(" ")
        }
    };
    Ok((aud, scope))
}

/// Who a machine client's token speaks for: the client itself.
pub fn machine_identity(client: &ClientRecord) -> Identity {
    Identity {
        sub: client.client_id.clone(),
        name: client.display_name().to_string(),
        email: None,
        groups: Vec::new(),
        idp: MACHINE_IDP.to_string(),
        ..Identity::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::protocol::records::{AuthMethod, ClientMetadata, ClientSource};

    const A: &str = "https://a.example.com/mcp";
    const B: &str = "https://b.example.com/mcp";

    fn client(method: AuthMethod, grants: &[&str], scope: Option<&str>) -> ClientRecord {
        ClientRecord {
            client_id: "m1".into(),
            source: ClientSource::Registered,
            issued_at: 0,
            expires_at: None,
            secret_hash: None,
            registration_token_hash: None,
            metadata: ClientMetadata {
                redirect_uris: vec![],
                token_endpoint_auth_method: method,
                grant_types: grants.iter().map(|g| g.to_string()).collect(),
                response_types: vec![],
                client_name: Some("Nightly job".into()),
                scope: scope.map(str::to_string),
                extra: Default::default(),
            },
        }
    }

    fn policy(a: ServiceAccess, b: ServiceAccess) -> MachinePolicy {
        MachinePolicy {
            enabled: true,
            services: vec![(A.into(), a), (B.into(), b)],
        }
    }

    fn scopes() -> Vec<String> {
        vec!["mcp".into(), "mcp:admin".into()]
    }

    #[test]
    fn a_registered_machine_client_gets_its_resource_and_scope() {
        let c = client(
            AuthMethod::ClientSecretBasic,
            &[GRANT_CLIENT_CREDENTIALS],
            None,
        );
        let p = policy(ServiceAccess::Any, ServiceAccess::Forbidden);
        let (aud, scope) = check_grant(&c, &p, &[A.into()], None, &scopes(), "mcp").unwrap();
        assert_eq!((aud, scope.as_str()), (vec![A.to_string()], "mcp"));
        let (_, scope) =
            check_grant(&c, &p, &[A.into()], Some("mcp:admin"), &scopes(), "mcp").unwrap();
        assert_eq!(scope, "mcp:admin");
        let id = machine_identity(&c);
        assert_eq!(
            (id.sub.as_str(), id.name.as_str(), id.idp.as_str()),
            ("m1", "Nightly job", "client")
        );
    }

    #[test]
    fn the_operator_can_forbid_or_restrict() {
        let c = client(AuthMethod::PrivateKeyJwt, &[GRANT_CLIENT_CREDENTIALS], None);
        let p = policy(ServiceAccess::Any, ServiceAccess::Forbidden);
        let code = |r: Result<(Vec<String>, String), OAuthError>| r.unwrap_err().code();
        assert_eq!(
            code(check_grant(&c, &p, &[B.into()], None, &scopes(), "mcp")),
            "invalid_target"
        );
        let only = policy(
            ServiceAccess::Only(vec!["other".into()]),
            ServiceAccess::Only(vec!["m1".into()]),
        );
        assert_eq!(
            code(check_grant(&c, &only, &[A.into()], None, &scopes(), "mcp")),
            "invalid_target"
        );
        assert!(check_grant(&c, &only, &[B.into()], None, &scopes(), "mcp").is_ok());
        let off = MachinePolicy {
            enabled: false,
            ..p.clone()
        };
        assert_eq!(
            code(check_grant(&c, &off, &[A.into()], None, &scopes(), "mcp")),
            "unauthorized_client"
        );
        assert_eq!(
            code(check_grant(
                &c,
                &p,
                &["https://x.example.com/mcp".into()],
                None,
                &scopes(),
                "mcp"
            )),
            "invalid_target"
        );
        // Two services and no resource: ambiguous.
        assert_eq!(
            code(check_grant(&c, &p, &[], None, &scopes(), "mcp")),
            "invalid_target"
        );
    }

    #[test]
    fn public_or_unregistered_clients_and_wider_scopes_are_refused() {
        let p = policy(ServiceAccess::Any, ServiceAccess::Any);
        let code = |r: Result<(Vec<String>, String), OAuthError>| r.unwrap_err().code();
        let public = client(AuthMethod::None, &[GRANT_CLIENT_CREDENTIALS], None);
        assert_eq!(
            code(check_grant(
                &public,
                &p,
                &[A.into()],
                None,
                &scopes(),
                "mcp"
            )),
            "unauthorized_client"
        );
        let code_only = client(AuthMethod::ClientSecretBasic, &["authorization_code"], None);
        assert_eq!(
            code(check_grant(
                &code_only,
                &p,
                &[A.into()],
                None,
                &scopes(),
                "mcp"
            )),
            "unauthorized_client"
        );
        let narrow = client(
            AuthMethod::ClientSecretBasic,
            &[GRANT_CLIENT_CREDENTIALS],
            Some("mcp"),
        );
        assert_eq!(
            code(check_grant(
                &narrow,
                &p,
                &[A.into()],
                Some("mcp:admin"),
                &scopes(),
                "mcp"
            )),
            "invalid_scope"
        );
    }
}
