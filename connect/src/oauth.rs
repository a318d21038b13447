//! The OAuth client: registration, PKCE authorization code flow with a loopback
//! redirect (RFC 8252 §7.3), the device flow (RFC 8628), client credentials (MCP
//! SEP-1046), refresh, scope step-up, and the token file.
//!
//! Token endpoint requests, the authorization URL and the device flow go through the
//! `oauth2` crate (client authentication `none`, `client_secret_basic`,
//! `client_secret_post`; `private_key_jwt` as its RFC 7523 extra parameters). Discovery
//! and registration are not part of that crate and are done here.

use std::collections::HashMap;
use std::time::Duration;

use gateway_common::clock::SharedClock;
use gateway_common::crypto::random_token;
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    DeviceAuthorizationUrl, EndpointNotSet, EndpointSet, PkceCodeChallenge, RedirectUrl,
    RefreshToken, RequestTokenError, Scope, StandardDeviceAuthorizationResponse, TokenResponse,
    TokenUrl,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

use crate::client_auth::{self, ClientAuth};
use crate::discovery::{self, AuthServerMetadata, Discovered};
use crate::store::{Saved, TokenFile};
use crate::{ConnectError, Options};

const GRANT_DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// How long the user has to finish signing in.
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(300);

/// What a token endpoint granted (RFC 6749 §5.1).
struct Granted {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<u64>,
    scope: Option<String>,
}

/// How a token request failed.
enum GrantError {
    /// `invalid_grant` (RFC 6749 §5.2): start the flow again.
    InvalidGrant,
    Other(ConnectError),
}

/// One token request.
enum Grant {
    Code {
        code: String,
        verifier: oauth2::PkceCodeVerifier,
        redirect_uri: String,
    },
    Refresh(String),
    ClientCredentials,
}

type TokenClient =
    BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Form parameters a client authentication adds to a token request.
type ExtraParams = Vec<(&'static str, String)>;

/// Owns the tokens of one server.
pub struct Auth {
    http: reqwest::Client,
    server: Url,
    opts: Options,
    file: TokenFile,
    clock: SharedClock,
    saved: tokio::sync::Mutex<Option<Saved>>,
    /// The scope the last step-up asked for: asking again for no more is a loop.
    stepped_up_for: std::sync::Mutex<Option<String>>,
}

/// When to refresh: before expiry by a fifth of the lifetime, at most 60 s.
pub fn refresh_due(now: u64, expires_at: u64, lifetime: u64) -> bool {
    let margin = (lifetime / 5).min(60);
    now + margin >= expires_at
}

/// Scope strings as sets: the held ones, then the demanded ones not yet held
/// (RFC 6750 §3.1 `insufficient_scope`; MCP 2025-11-25 "Step-Up Authorization Flow").
pub fn scope_union(held: Option<&str>, demanded: &str) -> String {
    let mut out: Vec<&str> = held.unwrap_or("").split_whitespace().collect();
    for s in demanded.split_whitespace() {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out.join(" ")
}

fn covers(held: Option<&str>, demanded: &str) -> bool {
    let held: Vec<&str> = held.unwrap_or("").split_whitespace().collect();
    demanded.split_whitespace().all(|s| held.contains(&s))
}

fn endpoint_url(what: &str, url: &str) -> Result<Url, ConnectError> {
    Url::parse(url).map_err(|_| ConnectError::Auth(format!("invalid {what} endpoint {url:?}")))
}

impl Auth {
    pub fn new(
        http: reqwest::Client,
        server: Url,
        opts: Options,
        file: TokenFile,
        clock: SharedClock,
    ) -> Self {
        // A stored registration of another client than the one named now is not used.
        let saved = file.load().filter(|s| {
            s.server_url == server.as_str()
                && opts.client_id.as_ref().is_none_or(|id| *id == s.client_id)
        });
        Self {
            http,
            server,
            opts,
            file,
            clock,
            saved: tokio::sync::Mutex::new(saved),
            stepped_up_for: std::sync::Mutex::new(None),
        }
    }

    /// The access token to send now, refreshed first when it is about to expire.
    pub async fn token(&self) -> Result<Option<String>, ConnectError> {
        let mut guard = self.saved.lock().await;
        let Some(saved) = guard.as_mut() else {
            return Ok(None);
        };
        let now = self.clock.now_secs();
        let due = match (saved.expires_at, saved.lifetime) {
            (Some(exp), Some(life)) => refresh_due(now, exp, life),
            (Some(exp), None) => now + 30 >= exp,
            _ => false,
        };
        if due && saved.access_token.is_some() {
            let renewed = if saved.refresh_token.is_some() {
                self.refresh(saved).await
            } else if self.opts.client_credentials {
                // SEP-1046: no refresh token; the client simply asks again.
                self.grant(saved, Grant::ClientCredentials)
                    .await
                    .map(|t| self.apply(saved, t))
            } else {
                Ok(())
            };
            match renewed {
                Ok(()) => {
                    eprintln!("mcp-connect: refreshed the access token ahead of expiry");
                    self.persist(saved);
                }
                Err(GrantError::InvalidGrant) => {
                    // Send nothing: the 401 that follows starts a new sign-in.
                    saved.access_token = None;
                    saved.refresh_token = None;
                    self.persist(saved);
                }
                Err(GrantError::Other(e)) => return Err(e),
            }
        }
        Ok(saved.access_token.clone())
    }

    /// A request with `failed` was refused with 401: refresh, else authorize anew.
    pub async fn unauthorized(
        &self,
        failed: Option<&str>,
        challenge: &HashMap<String, String>,
    ) -> Result<(), ConnectError> {
        let mut guard = self.saved.lock().await;
        if let Some(saved) = guard.as_mut() {
            if saved.access_token.is_some() && saved.access_token.as_deref() != failed {
                return Ok(()); // another request already got a new token
            }
            if saved.refresh_token.is_some() {
                match self.refresh(saved).await {
                    Ok(()) => {
                        eprintln!("mcp-connect: refreshed the access token after a 401");
                        self.persist(saved);
                        return Ok(());
                    }
                    Err(GrantError::InvalidGrant) => {
                        eprintln!("mcp-connect: the refresh token was refused; signing in again");
                    }
                    Err(GrantError::Other(e)) => return Err(e),
                }
            }
        }
        let previous = guard.take();
        let fresh = self.authorize(previous, challenge, None).await?;
        self.persist(&fresh);
        *guard = Some(fresh);
        Ok(())
    }

    /// A request with `failed` was refused with 403 `insufficient_scope`: authorize again
    /// with the union of the held scopes and the demanded ones. `Ok(false)`: nothing to ask
    /// for that was not asked already (the caller answers the request with the refusal).
    pub async fn step_up(
        &self,
        failed: Option<&str>,
        challenge: &HashMap<String, String>,
    ) -> Result<bool, ConnectError> {
        let Some(demanded) = challenge.get("scope").filter(|s| !s.trim().is_empty()) else {
            return Ok(false);
        };
        let mut guard = self.saved.lock().await;
        let held = guard.as_ref().and_then(|s| s.scope.clone());
        let current = guard.as_ref().and_then(|s| s.access_token.clone());
        if current.is_some() && current.as_deref() != failed && covers(held.as_deref(), demanded) {
            return Ok(true); // another request already stepped up
        }
        let wanted = scope_union(held.as_deref(), demanded);
        {
            let mut asked = self
                .stepped_up_for
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            // Held every demanded scope and still refused, or asked for all of them before and
            // was not given them: asking again cannot help.
            let futile = (covers(held.as_deref(), &wanted) && current.as_deref() == failed)
                || covers(asked.as_deref(), &wanted);
            if futile {
                return Ok(false);
            }
            *asked = Some(wanted.clone());
        }
        eprintln!(
            "mcp-connect: the remote needs scope {demanded:?}; authorizing again for {wanted:?}"
        );
        let fresh = self
            .authorize(guard.clone(), challenge, Some(wanted))
            .await?;
        self.persist(&fresh);
        *guard = Some(fresh);
        Ok(true)
    }

    fn persist(&self, saved: &Saved) {
        if let Err(e) = self.file.save(saved) {
            eprintln!(
                "mcp-connect: cannot save tokens to {} ({e}); continuing",
                self.file.path.display()
            );
        }
    }

    /// RFC 6749 §6; the refresh token rotates (OAuth 2.1 §4.3.1).
    async fn refresh(&self, saved: &mut Saved) -> Result<(), GrantError> {
        let Some(rt) = saved.refresh_token.clone() else {
            return Err(GrantError::InvalidGrant);
        };
        let t = self.grant(saved, Grant::Refresh(rt)).await?;
        self.apply(saved, t);
        Ok(())
    }

    fn apply(&self, saved: &mut Saved, t: Granted) {
        let now = self.clock.now_secs();
        saved.access_token = Some(t.access_token);
        if t.refresh_token.is_some() {
            saved.refresh_token = t.refresh_token;
        }
        if t.scope.is_some() {
            saved.scope = t.scope;
        }
        saved.expires_at = t.expires_in.map(|e| now + e);
        saved.lifetime = t.expires_in;
    }

    /// The client authentication for `saved`'s client: the secret or key given on start
    /// for a pre-registered client, else the registered secret.
    fn client_auth(&self, saved: &Saved) -> ClientAuth {
        let ours = self.opts.client_id.as_deref() == Some(saved.client_id.as_str());
        let secret = if ours {
            self.opts.client_secret.clone()
        } else {
            saved.client_secret.clone().map(ClientSecret::new)
        };
        let key = ours.then(|| self.opts.signing_key.clone()).flatten();
        client_auth::choose(
            None,
            saved.token_endpoint_auth_method.as_deref(),
            secret,
            key,
        )
    }

    /// An `oauth2` client for `saved`'s token endpoint, authenticating as `client_auth`
    /// says, and the extra parameters that authentication adds (RFC 7523 §2.2).
    fn token_client(&self, saved: &Saved) -> Result<(TokenClient, ExtraParams), ConnectError> {
        let token_url = TokenUrl::from_url(endpoint_url("token", &saved.token_endpoint)?);
        let client =
            BasicClient::new(ClientId::new(saved.client_id.clone())).set_token_uri(token_url);
        let mut extra = Vec::new();
        let client = match self.client_auth(saved) {
            ClientAuth::None => client,
            ClientAuth::Basic(secret) => client
                .set_client_secret(secret)
                .set_auth_type(AuthType::BasicAuth),
            ClientAuth::Post(secret) => client
                .set_client_secret(secret)
                .set_auth_type(AuthType::RequestBody),
            ClientAuth::PrivateKeyJwt(key) => {
                let jwt = key
                    .assertion(&saved.client_id, &saved.issuer, self.clock.now_secs())
                    .map_err(ConnectError::Auth)?;
                extra.push((
                    "client_assertion_type",
                    client_auth::ASSERTION_TYPE.to_string(),
                ));
                extra.push(("client_assertion", jwt));
                client.set_auth_type(AuthType::RequestBody)
            }
        };
        Ok((client, extra))
    }

    /// One token request; `resource` on every grant (RFC 8707 §2.2), `scope` where the
    /// grant takes one.
    async fn grant(&self, saved: &Saved, grant: Grant) -> Result<Granted, GrantError> {
        let (client, extra) = self.token_client(saved).map_err(GrantError::Other)?;
        let scopes: Vec<Scope> = saved
            .scope
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(|s| Scope::new(s.to_string()))
            .collect();
        let mut extra = extra;
        extra.push(("resource", saved.resource.clone()));
        let result = match grant {
            Grant::Code {
                code,
                verifier,
                redirect_uri,
            } => {
                let redirect = RedirectUrl::new(redirect_uri).map_err(|e| {
                    GrantError::Other(ConnectError::Internal(format!("redirect URI ({e})")))
                })?;
                let mut req = client
                    .exchange_code(AuthorizationCode::new(code))
                    .set_pkce_verifier(verifier)
                    .set_redirect_uri(std::borrow::Cow::Owned(redirect));
                for (k, v) in extra {
                    req = req.add_extra_param(k, v);
                }
                req.request_async(&self.http).await
            }
            Grant::Refresh(rt) => {
                let rt = RefreshToken::new(rt);
                let mut req = client.exchange_refresh_token(&rt).add_scopes(scopes);
                for (k, v) in extra {
                    req = req.add_extra_param(k, v);
                }
                req.request_async(&self.http).await
            }
            Grant::ClientCredentials => {
                let mut req = client.exchange_client_credentials().add_scopes(scopes);
                for (k, v) in extra {
                    req = req.add_extra_param(k, v);
                }
                req.request_async(&self.http).await
            }
        };
        match result {
            Ok(t) => Ok(granted(&t)),
            Err(RequestTokenError::ServerResponse(r))
                if *r.error() == BasicErrorResponseType::InvalidGrant =>
            {
                Err(GrantError::InvalidGrant)
            }
            Err(e) => Err(GrantError::Other(
                self.token_error(&saved.token_endpoint, e),
            )),
        }
    }

    fn token_error<T: oauth2::ErrorResponse + std::fmt::Display>(
        &self,
        endpoint: &str,
        e: RequestTokenError<oauth2::HttpClientError<reqwest::Error>, T>,
    ) -> ConnectError {
        match e {
            RequestTokenError::ServerResponse(r) => {
                ConnectError::Auth(format!("the token endpoint refused: {r}"))
            }
            RequestTokenError::Request(oauth2::HttpClientError::Reqwest(e)) => {
                match Url::parse(endpoint) {
                    Ok(u) => ConnectError::from_transport(&u, *e),
                    Err(_) => ConnectError::Auth(format!("token request failed ({e})")),
                }
            }
            RequestTokenError::Request(e) => {
                ConnectError::Auth(format!("token request to {endpoint} failed ({e})"))
            }
            RequestTokenError::Parse(e, _) => ConnectError::Auth(format!(
                "the token endpoint answered without a usable token response ({e})"
            )),
            RequestTokenError::Other(e) => {
                ConnectError::Auth(format!("the token endpoint answered: {e}"))
            }
        }
    }

    /// The whole flow: discovery, registration, sign-in (or client credentials) → tokens.
    /// `scope`: the scope to ask for (a step-up), else chosen as below.
    async fn authorize(
        &self,
        previous: Option<Saved>,
        challenge: &HashMap<String, String>,
        scope: Option<String>,
    ) -> Result<Saved, ConnectError> {
        let cc = self.opts.client_credentials;
        let Discovered {
            resource,
            issuer,
            md,
            scopes_supported,
            how,
        } = discovery::discover(
            &self.http,
            &self.server,
            challenge.get("resource_metadata").map(String::as_str),
            !cc,
        )
        .await?;
        eprintln!("mcp-connect: authorization server {issuer} (found by {how})");
        // Scope: a step-up's union, else --scope, else the challenge's, else what the resource
        // supports (MCP 2025-11-25 "Scope Selection Strategy"), else none (the server's default).
        let scope = scope
            .or_else(|| self.opts.scope.clone())
            .or_else(|| challenge.get("scope").cloned())
            .or_else(|| (!scopes_supported.is_empty()).then(|| scopes_supported.join(" ")));
        let advertised = md.token_endpoint_auth_methods_supported.as_deref();

        if cc {
            let client_id = self.opts.client_id.clone().unwrap_or_default();
            let method = client_auth::choose(
                advertised,
                None,
                self.opts.client_secret.clone(),
                self.opts.signing_key.clone(),
            )
            .method();
            let mut saved = Saved {
                server_url: self.server.to_string(),
                issuer: issuer.clone(),
                token_endpoint: md.token_endpoint.clone(),
                client_id,
                token_endpoint_auth_method: Some(method.to_string()),
                resource,
                scope,
                ..Saved::default()
            };
            let t = self
                .grant(&saved, Grant::ClientCredentials)
                .await
                .map_err(|e| match e {
                    GrantError::InvalidGrant => ConnectError::Auth(
                        "the client credentials grant was refused (invalid_grant)".into(),
                    ),
                    GrantError::Other(e) => e,
                })?;
            self.apply(&mut saved, t);
            eprintln!(
                "mcp-connect: obtained a token from {issuer} with client credentials ({method})"
            );
            return Ok(saved);
        }

        let device = self.opts.device;
        if device && md.device_authorization_endpoint.is_none() {
            return Err(ConnectError::Auth(format!(
                "--device: authorization server {issuer} offers no device authorization endpoint"
            )));
        }
        // RFC 8252 §7.3: the loopback listener binds first; its port goes into the URI.
        let listener = if device {
            None
        } else {
            Some(
                tokio::net::TcpListener::bind(("127.0.0.1", 0))
                    .await
                    .map_err(|e| ConnectError::Auth(format!("cannot listen on 127.0.0.1 ({e})")))?,
            )
        };
        let redirect_uri = match &listener {
            Some(l) => {
                let port = l
                    .local_addr()
                    .map_err(|e| ConnectError::Auth(e.to_string()))?
                    .port();
                format!("http://127.0.0.1:{port}/callback")
            }
            None => "http://127.0.0.1/callback".to_string(),
        };
        let registered = match (&self.opts.client_id, previous) {
            (Some(id), _) => Registered {
                client_id: id.clone(),
                client_secret: None,
                method: client_auth::choose(
                    advertised,
                    None,
                    self.opts.client_secret.clone(),
                    self.opts.signing_key.clone(),
                )
                .method()
                .to_string(),
            },
            (None, Some(p)) if p.issuer == issuer && !p.client_id.is_empty() => Registered {
                client_id: p.client_id,
                client_secret: p.client_secret,
                method: p
                    .token_endpoint_auth_method
                    .unwrap_or_else(|| "none".to_string()),
            },
            (None, _) => self.register(&md, &redirect_uri).await?,
        };
        let mut saved = Saved {
            server_url: self.server.to_string(),
            issuer: issuer.clone(),
            token_endpoint: md.token_endpoint.clone(),
            revocation_endpoint: None,
            client_id: registered.client_id,
            client_secret: registered.client_secret,
            token_endpoint_auth_method: Some(registered.method),
            resource,
            scope,
            ..Saved::default()
        };
        let t = match listener {
            Some(l) => self.code_flow(&md, &saved, l, &redirect_uri).await?,
            None => self.device_flow(&md, &saved).await?,
        };
        self.apply(&mut saved, t);
        eprintln!("mcp-connect: signed in to {issuer}");
        Ok(saved)
    }

    /// Client ID Metadata Document when offered and configured, else RFC 7591: as a
    /// public client when the server takes one, else with a secret method it advertises.
    async fn register(
        &self,
        md: &AuthServerMetadata,
        redirect_uri: &str,
    ) -> Result<Registered, ConnectError> {
        if let Some(url) = &self.opts.client_metadata_url {
            if md.client_id_metadata_document_supported {
                return Ok(Registered {
                    client_id: url.clone(),
                    client_secret: None,
                    method: "none".into(),
                });
            }
        }
        let Some(endpoint) = &md.registration_endpoint else {
            return Err(ConnectError::Auth(format!(
                "authorization server {} offers neither client ID metadata documents (with --client-metadata-url) nor dynamic registration; pass a pre-registered client with --client-id",
                md.issuer
            )));
        };
        let method =
            client_auth::registration_method(md.token_endpoint_auth_methods_supported.as_deref())
                .map_err(ConnectError::Auth)?;
        let mut grants = vec!["authorization_code", "refresh_token"];
        if md.device_authorization_endpoint.is_some() {
            grants.push(GRANT_DEVICE_CODE);
        }
        let body = serde_json::json!({
            "client_name": "mcp-connect",
            "redirect_uris": [redirect_uri],
            "grant_types": grants,
            "response_types": ["code"],
            "token_endpoint_auth_method": method,
            "application_type": "native",
            "software_id": "mcp-connect",
            "software_version": env!("CARGO_PKG_VERSION"),
        });
        let resp = self
            .http
            .post(endpoint)
            .json(&body)
            .send()
            .await
            .map_err(|e| ConnectError::Auth(format!("registration at {endpoint} failed ({e})")))?;
        let status = resp.status();
        let v: serde_json::Value = resp.json().await.unwrap_or_default();
        let Some(id) = v
            .get("client_id")
            .and_then(|c| c.as_str())
            .filter(|_| status.is_success())
        else {
            return Err(ConnectError::Auth(format!(
                "registration at {endpoint} answered {status}: {}",
                v.get("error")
                    .and_then(|e| e.as_str())
                    .unwrap_or("no client_id")
            )));
        };
        // RFC 7591 §3.2.1: the response states what was registered; it wins over what we asked.
        let method = v
            .get("token_endpoint_auth_method")
            .and_then(|m| m.as_str())
            .unwrap_or(method)
            .to_string();
        let secret = v
            .get("client_secret")
            .and_then(|s| s.as_str())
            .map(str::to_string);
        if method != "none" && secret.is_none() {
            return Err(ConnectError::Auth(format!(
                "registration at {endpoint} made a {method} client but issued no client_secret"
            )));
        }
        Ok(Registered {
            client_id: id.to_string(),
            client_secret: secret,
            method,
        })
    }

    async fn code_flow(
        &self,
        md: &AuthServerMetadata,
        saved: &Saved,
        listener: tokio::net::TcpListener,
        redirect_uri: &str,
    ) -> Result<Granted, ConnectError> {
        let Some(endpoint) = &md.authorization_endpoint else {
            return Err(ConnectError::Auth(format!(
                "{} has no authorization endpoint",
                md.issuer
            )));
        };
        let auth_url = AuthUrl::from_url(endpoint_url("authorization", endpoint)?);
        let redirect = RedirectUrl::new(redirect_uri.to_string())
            .map_err(|e| ConnectError::Internal(format!("redirect URI ({e})")))?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let client = BasicClient::new(ClientId::new(saved.client_id.clone()))
            .set_auth_uri(auth_url)
            .set_redirect_uri(redirect);
        let scopes = saved
            .scope
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(|s| Scope::new(s.to_string()));
        let (url, state) = client
            .authorize_url(|| CsrfToken::new(random_token(16)))
            .set_pkce_challenge(challenge)
            .add_scopes(scopes)
            .add_extra_param("resource", saved.resource.clone())
            .url();
        self.open_browser(url.as_str()).await;
        let params = tokio::time::timeout(SIGN_IN_TIMEOUT, wait_for_callback(&listener))
            .await
            .map_err(|_| ConnectError::Auth("sign-in did not finish within 5 minutes".into()))??;
        check_callback(&params, state.secret(), md)?;
        let Some(code) = params.get("code") else {
            return Err(ConnectError::Auth(
                "the authorization response carries no code".into(),
            ));
        };
        self.grant(
            saved,
            Grant::Code {
                code: code.clone(),
                verifier,
                redirect_uri: redirect_uri.to_string(),
            },
        )
        .await
        .map_err(|e| match e {
            GrantError::InvalidGrant => {
                ConnectError::Auth("the authorization code was refused (invalid_grant)".into())
            }
            GrantError::Other(e) => e,
        })
    }

    async fn open_browser(&self, url: &str) {
        if self.opts.no_browser {
            eprintln!("mcp-connect: open this URL to sign in: {url}");
            return;
        }
        let opener = self.opts.browser.clone().unwrap_or_else(|| {
            vec![if cfg!(target_os = "macos") {
                "open"
            } else {
                "xdg-open"
            }
            .to_string()]
        });
        let Some((program, args)) = opener.split_first() else {
            eprintln!("mcp-connect: open this URL to sign in: {url}");
            return;
        };
        let spawned = tokio::process::Command::new(program)
            .args(args)
            .arg(url)
            .stdin(std::process::Stdio::null())
            // stdout is the MCP channel: nothing else may write there.
            .stdout(std::process::Stdio::null())
            .spawn();
        match spawned {
            Ok(mut child) => {
                eprintln!("mcp-connect: opened the browser to sign in (if it did not open: {url})");
                tokio::spawn(async move {
                    let _ = child.wait().await;
                });
            }
            Err(e) => {
                eprintln!(
                    "mcp-connect: cannot run {program} ({e}); open this URL to sign in: {url}"
                );
            }
        }
    }

    /// RFC 8628 §3.1–§3.5, polling as §3.5 says (`slow_down` adds 5 s).
    async fn device_flow(
        &self,
        md: &AuthServerMetadata,
        saved: &Saved,
    ) -> Result<Granted, ConnectError> {
        let Some(endpoint) = &md.device_authorization_endpoint else {
            return Err(ConnectError::Auth(
                "no device authorization endpoint".into(),
            ));
        };
        let device_url =
            DeviceAuthorizationUrl::from_url(endpoint_url("device authorization", endpoint)?);
        let (client, extra) = self.token_client(saved)?;
        let client = client.set_device_authorization_url(device_url);
        let scopes = saved
            .scope
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(|s| Scope::new(s.to_string()));
        let mut req = client
            .exchange_device_code()
            .add_scopes(scopes)
            .add_extra_param("resource", saved.resource.clone());
        for (k, v) in &extra {
            req = req.add_extra_param(*k, v.clone());
        }
        let details: StandardDeviceAuthorizationResponse = req
            .request_async(&self.http)
            .await
            .map_err(|e| self.token_error(endpoint, e))?;
        eprintln!(
            "mcp-connect: to sign in, visit {} and enter the code {}",
            details.verification_uri().as_str(),
            details.user_code().secret()
        );
        if let Some(c) = details.verification_uri_complete() {
            eprintln!("mcp-connect: or open {}", c.secret());
        }
        // oauth2 polls with fixed extra parameters: a `private_key_jwt` client sends the same
        // assertion on every poll, which a server enforcing single-use `jti` refuses after the
        // first. Device flow with a key is unusual enough to leave it so.
        let mut poll = client
            .exchange_device_access_token(&details)
            .add_extra_param("resource", saved.resource.clone());
        for (k, v) in extra {
            poll = poll.add_extra_param(k, v);
        }
        match poll
            .request_async(&self.http, tokio::time::sleep, None)
            .await
        {
            Ok(t) => Ok(granted(&t)),
            Err(RequestTokenError::ServerResponse(r)) => Err(ConnectError::Auth(match r.error() {
                oauth2::DeviceCodeErrorResponseType::AccessDenied => "sign-in was denied".into(),
                oauth2::DeviceCodeErrorResponseType::ExpiredToken => {
                    "the device code expired before sign-in".into()
                }
                _ => format!("the token endpoint refused: {r}"),
            })),
            Err(e) => Err(self.token_error(&md.token_endpoint, e)),
        }
    }
}

/// A client registration: dynamic, by metadata document, or pre-registered.
struct Registered {
    client_id: String,
    client_secret: Option<String>,
    method: String,
}

fn granted(t: &oauth2::basic::BasicTokenResponse) -> Granted {
    // An empty `scope` means the default scope: keep what was asked for.
    let scope = t
        .scopes()
        .map(|v| {
            v.iter()
                .map(|s| s.as_str())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|s| !s.is_empty());
    Granted {
        access_token: t.access_token().secret().clone(),
        refresh_token: t.refresh_token().map(|r| r.secret().clone()),
        expires_in: t.expires_in().map(|d| d.as_secs()),
        scope,
    }
}

/// `state` must match; `error` ends the flow; RFC 9207 §2.4: `iss` must equal the
/// issuer when the server advertises it, and when present at all.
pub fn check_callback(
    params: &HashMap<String, String>,
    state: &str,
    md: &AuthServerMetadata,
) -> Result<(), ConnectError> {
    if params.get("state").map(String::as_str) != Some(state) {
        return Err(ConnectError::Auth(
            "the authorization response has a wrong state".into(),
        ));
    }
    match params.get("iss") {
        Some(iss) if iss != &md.issuer => {
            return Err(ConnectError::Auth(format!(
                "the authorization response comes from issuer {iss:?}, expected {:?} (RFC 9207)",
                md.issuer
            )))
        }
        None if md.authorization_response_iss_parameter_supported => {
            return Err(ConnectError::Auth(
                "the authorization response lacks the iss parameter the server advertises (RFC 9207)".into(),
            ))
        }
        _ => {}
    }
    if let Some(e) = params.get("error") {
        return Err(ConnectError::Auth(format!(
            "sign-in failed: {e}{}",
            params
                .get("error_description")
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        )));
    }
    Ok(())
}

/// Serves the loopback redirect until `/callback` is hit; returns its query.
async fn wait_for_callback(
    listener: &tokio::net::TcpListener,
) -> Result<HashMap<String, String>, ConnectError> {
    loop {
        let (mut sock, _) = listener
            .accept()
            .await
            .map_err(|e| ConnectError::Auth(format!("loopback listener failed ({e})")))?;
        let mut buf = Vec::with_capacity(2048);
        let mut chunk = [0u8; 2048];
        let head_done = loop {
            match tokio::time::timeout(Duration::from_secs(10), sock.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break false,
                Ok(Ok(n)) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        break true;
                    }
                    if buf.len() > 16 * 1024 {
                        break false;
                    }
                }
            }
        };
        if !head_done {
            continue;
        }
        let head = String::from_utf8_lossy(&buf);
        let target = head
            .lines()
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or("/");
        let parsed = Url::parse(&format!("http://127.0.0.1{target}")).ok();
        let Some(u) = parsed.filter(|u| u.path() == "/callback") else {
            let _ = sock
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await;
            continue;
        };
        let params: HashMap<String, String> = u.query_pairs().into_owned().collect();
        let ok = !params.contains_key("error");
        let body = if ok {
            "<!doctype html><title>Signed in</title><p>Signed in. You can close this window and return to your MCP client."
        } else {
            "<!doctype html><title>Sign-in failed</title><p>Sign-in failed. Check the MCP client's log."
        };
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncache-control: no-store\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = sock.write_all(resp.as_bytes()).await;
        let _ = sock.shutdown().await;
        return Ok(params);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(iss_supported: bool) -> AuthServerMetadata {
        serde_json::from_value(serde_json::json!({
            "issuer": "https://auth.example.com",
            "token_endpoint": "https://auth.example.com/token",
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": iss_supported,
        }))
        .unwrap()
    }

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn refresh_ahead_of_expiry() {
        assert!(!refresh_due(1000, 4600, 3600));
        assert!(refresh_due(4540, 4600, 3600));
        assert!(!refresh_due(1000, 1005, 5) || refresh_due(1004, 1005, 5));
        assert!(refresh_due(1004, 1005, 5));
        assert!(!refresh_due(1003, 1005, 5));
    }

    #[test]
    fn step_up_asks_for_the_union() {
        assert_eq!(
            scope_union(Some("mcp read"), "write read"),
            "mcp read write"
        );
        assert_eq!(scope_union(None, "write"), "write");
        assert!(covers(Some("a b"), "b"));
        assert!(!covers(Some("a b"), "b c"));
        assert!(covers(None, ""));
    }

    #[test]
    fn callback_checks_state_and_iss() {
        let m = md(true);
        assert!(check_callback(
            &q(&[
                ("code", "c"),
                ("state", "s"),
                ("iss", "https://auth.example.com")
            ]),
            "s",
            &m
        )
        .is_ok());
        assert!(check_callback(
            &q(&[
                ("code", "c"),
                ("state", "x"),
                ("iss", "https://auth.example.com")
            ]),
            "s",
            &m
        )
        .is_err());
        assert!(check_callback(&q(&[("code", "c"), ("state", "s")]), "s", &m).is_err());
        assert!(check_callback(
            &q(&[
                ("code", "c"),
                ("state", "s"),
                ("iss", "https://auth.example.com/")
            ]),
            "s",
            &m
        )
        .is_err());
        assert!(check_callback(&q(&[("code", "c"), ("state", "s")]), "s", &md(false)).is_ok());
        assert!(check_callback(
            &q(&[("error", "access_denied"), ("state", "s")]),
            "s",
            &md(false)
        )
        .is_err());
    }
}
