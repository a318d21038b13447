//! The OAuth client: registration, PKCE authorization code flow with a loopback
//! redirect (RFC 8252 §7.3) or the device flow (RFC 8628), refresh, and the token file.

use std::collections::HashMap;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gateway_common::clock::SharedClock;
use gateway_common::crypto::random_token;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

use super::discovery::{self, AuthServerMetadata};
use super::store::{Saved, TokenFile};
use super::{ConnectError, Options};

const GRANT_DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// How long the user has to finish signing in.
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(300);

/// Token endpoint answer (RFC 6749 §5.1 / §5.2).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<u64>,
    scope: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// How a token request failed.
enum GrantError {
    /// `invalid_grant` (RFC 6749 §5.2): start the flow again.
    InvalidGrant,
    Other(ConnectError),
}

/// Owns the tokens of one server.
pub struct Auth {
    http: reqwest::Client,
    server: Url,
    opts: Options,
    file: TokenFile,
    clock: SharedClock,
    saved: tokio::sync::Mutex<Option<Saved>>,
}

/// PKCE S256 challenge of a verifier (RFC 7636 §4.2).
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// When to refresh: before expiry by a fifth of the lifetime, at most 60 s.
pub fn refresh_due(now: u64, expires_at: u64, lifetime: u64) -> bool {
    let margin = (lifetime / 5).min(60);
    now + margin >= expires_at
}

impl Auth {
    pub fn new(
        http: reqwest::Client,
        server: Url,
        opts: Options,
        file: TokenFile,
        clock: SharedClock,
    ) -> Self {
        let saved = file.load().filter(|s| s.server_url == server.as_str());
        Self {
            http,
            server,
            opts,
            file,
            clock,
            saved: tokio::sync::Mutex::new(saved),
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
        if due && saved.refresh_token.is_some() {
            match self.refresh(saved).await {
                Ok(()) => {
                    eprintln!("mcp-bridge connect: refreshed the access token ahead of expiry");
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
                        eprintln!("mcp-bridge connect: refreshed the access token after a 401");
                        self.persist(saved);
                        return Ok(());
                    }
                    Err(GrantError::InvalidGrant) => {
                        eprintln!(
                            "mcp-bridge connect: the refresh token was refused; signing in again"
                        );
                    }
                    Err(GrantError::Other(e)) => return Err(e),
                }
            }
        }
        let previous = guard.take();
        let fresh = self.authorize(previous, challenge).await?;
        self.persist(&fresh);
        *guard = Some(fresh);
        Ok(())
    }

    fn persist(&self, saved: &Saved) {
        if let Err(e) = self.file.save(saved) {
            eprintln!(
                "mcp-bridge connect: cannot save tokens to {} ({e}); continuing",
                self.file.path.display()
            );
        }
    }

    /// RFC 6749 §6; the refresh token rotates (OAuth 2.1 §4.3.1).
    async fn refresh(&self, saved: &mut Saved) -> Result<(), GrantError> {
        let Some(rt) = saved.refresh_token.clone() else {
            return Err(GrantError::InvalidGrant);
        };
        let mut form = vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", rt),
            ("client_id", saved.client_id.clone()),
            ("resource", saved.resource.clone()),
        ];
        if let Some(s) = &saved.scope {
            form.push(("scope", s.clone()));
        }
        let t = self.token_request(&saved.token_endpoint, &form).await?;
        self.apply(saved, t);
        Ok(())
    }

    fn apply(&self, saved: &mut Saved, t: TokenResponse) {
        let now = self.clock.now_secs();
        saved.access_token = t.access_token;
        if t.refresh_token.is_some() {
            saved.refresh_token = t.refresh_token;
        }
        if t.scope.is_some() {
            saved.scope = t.scope;
        }
        saved.expires_at = t.expires_in.map(|e| now + e);
        saved.lifetime = t.expires_in;
    }

    async fn token_request(
        &self,
        endpoint: &str,
        form: &[(&str, String)],
    ) -> Result<TokenResponse, GrantError> {
        let url = Url::parse(endpoint).map_err(|_| {
            GrantError::Other(ConnectError::Auth(format!(
                "invalid token endpoint {endpoint:?}"
            )))
        })?;
        let resp = self
            .http
            .post(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(form)
            .send()
            .await
            .map_err(|e| GrantError::Other(ConnectError::from_transport(&url, e)))?;
        let status = resp.status();
        let t: TokenResponse = resp.json().await.map_err(|_| {
            GrantError::Other(ConnectError::Auth(format!(
                "the token endpoint answered {status} without a JSON body"
            )))
        })?;
        match (&t.error, &t.access_token) {
            (None, Some(_)) if status.is_success() => Ok(t),
            (Some(e), _) if e == "invalid_grant" => Err(GrantError::InvalidGrant),
            (Some(e), _) => Err(GrantError::Other(ConnectError::Auth(format!(
                "the token endpoint refused: {e}{}",
                t.error_description
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            )))),
            (None, _) => Err(GrantError::Other(ConnectError::Auth(format!(
                "the token endpoint answered {status} without an access token"
            )))),
        }
    }

    /// The whole flow: discovery, registration, sign-in, code → tokens.
    async fn authorize(
        &self,
        previous: Option<Saved>,
        challenge: &HashMap<String, String>,
    ) -> Result<Saved, ConnectError> {
        let prm = discovery::resource_metadata(
            &self.http,
            &self.server,
            challenge.get("resource_metadata").map(String::as_str),
        )
        .await?;
        let issuer = prm.authorization_servers[0].clone();
        let md = discovery::auth_server_metadata(&self.http, &issuer).await?;
        // Scope: --scope, else the challenge's, else what the resource supports (MCP 2025-11-25
        // "Scope Selection Strategy"), else none (the server's default).
        let scope = self
            .opts
            .scope
            .clone()
            .or_else(|| challenge.get("scope").cloned())
            .or_else(|| (!prm.scopes_supported.is_empty()).then(|| prm.scopes_supported.join(" ")));
        let resource = prm.resource.clone();

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
        let client_id = match previous.filter(|p| p.issuer == issuer && !p.client_id.is_empty()) {
            Some(p) => p.client_id,
            None => self.register(&md, &redirect_uri).await?,
        };
        let mut saved = Saved {
            server_url: self.server.to_string(),
            issuer: issuer.clone(),
            token_endpoint: md.token_endpoint.clone(),
            revocation_endpoint: None,
            client_id,
            resource,
            scope,
            ..Saved::default()
        };
        let t = match listener {
            Some(l) => self.code_flow(&md, &saved, l, &redirect_uri).await?,
            None => self.device_flow(&md, &saved).await?,
        };
        self.apply(&mut saved, t);
        eprintln!("mcp-bridge connect: signed in to {issuer}");
        Ok(saved)
    }

    /// Client ID Metadata Document when offered and configured, else RFC 7591.
    async fn register(
        &self,
        md: &AuthServerMetadata,
        redirect_uri: &str,
    ) -> Result<String, ConnectError> {
        if let Some(url) = &self.opts.client_metadata_url {
            if md.client_id_metadata_document_supported {
                return Ok(url.clone());
            }
        }
        let Some(endpoint) = &md.registration_endpoint else {
            return Err(ConnectError::Auth(format!(
                "authorization server {} offers neither client ID metadata documents (with --client-metadata-url) nor dynamic registration",
                md.issuer
            )));
        };
        let mut grants = vec!["authorization_code", "refresh_token"];
        if md.device_authorization_endpoint.is_some() {
            grants.push(GRANT_DEVICE_CODE);
        }
        let body = serde_json::json!({
            "client_name": "mcp-bridge connect",
            "redirect_uris": [redirect_uri],
            "grant_types": grants,
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "application_type": "native",
            "software_id": "mcp-bridge-connect",
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
        match v.get("client_id").and_then(|c| c.as_str()) {
            Some(id) if status.is_success() => Ok(id.to_string()),
            _ => Err(ConnectError::Auth(format!(
                "registration at {endpoint} answered {status}: {}",
                v.get("error")
                    .and_then(|e| e.as_str())
                    .unwrap_or("no client_id")
            ))),
        }
    }

    async fn code_flow(
        &self,
        md: &AuthServerMetadata,
        saved: &Saved,
        listener: tokio::net::TcpListener,
        redirect_uri: &str,
    ) -> Result<TokenResponse, ConnectError> {
        let Some(endpoint) = &md.authorization_endpoint else {
            return Err(ConnectError::Auth(format!(
                "{} has no authorization endpoint",
                md.issuer
            )));
        };
        let verifier = random_token(32);
        let state = random_token(16);
        let mut url = Url::parse(endpoint).map_err(|_| {
            ConnectError::Auth(format!("invalid authorization endpoint {endpoint:?}"))
        })?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &saved.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("code_challenge", &s256(&verifier))
                .append_pair("code_challenge_method", "S256")
                .append_pair("state", &state)
                .append_pair("resource", &saved.resource);
            if let Some(s) = &saved.scope {
                q.append_pair("scope", s);
            }
        }
        self.open_browser(url.as_str()).await;
        let params = tokio::time::timeout(SIGN_IN_TIMEOUT, wait_for_callback(&listener))
            .await
            .map_err(|_| ConnectError::Auth("sign-in did not finish within 5 minutes".into()))??;
        check_callback(&params, &state, md)?;
        let Some(code) = params.get("code") else {
            return Err(ConnectError::Auth(
                "the authorization response carries no code".into(),
            ));
        };
        let form = [
            ("grant_type", "authorization_code".to_string()),
            ("code", code.clone()),
            ("redirect_uri", redirect_uri.to_string()),
            ("client_id", saved.client_id.clone()),
            ("code_verifier", verifier),
            ("resource", saved.resource.clone()),
        ];
        self.token_request(&md.token_endpoint, &form)
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
            eprintln!("mcp-bridge connect: open this URL to sign in: {url}");
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
            eprintln!("mcp-bridge connect: open this URL to sign in: {url}");
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
                eprintln!(
                    "mcp-bridge connect: opened the browser to sign in (if it did not open: {url})"
                );
                tokio::spawn(async move {
                    let _ = child.wait().await;
                });
            }
            Err(e) => {
                eprintln!("mcp-bridge connect: cannot run {program} ({e}); open this URL to sign in: {url}");
            }
        }
    }

    /// RFC 8628 §3.1–§3.5.
    async fn device_flow(
        &self,
        md: &AuthServerMetadata,
        saved: &Saved,
    ) -> Result<TokenResponse, ConnectError> {
        #[derive(Deserialize)]
        struct DeviceAuthorization {
            device_code: String,
            user_code: String,
            verification_uri: String,
            verification_uri_complete: Option<String>,
            expires_in: u64,
            interval: Option<u64>,
        }
        let Some(endpoint) = &md.device_authorization_endpoint else {
            return Err(ConnectError::Auth(
                "no device authorization endpoint".into(),
            ));
        };
        let mut form = vec![
            ("client_id", saved.client_id.clone()),
            ("resource", saved.resource.clone()),
        ];
        if let Some(s) = &saved.scope {
            form.push(("scope", s.clone()));
        }
        let resp = self
            .http
            .post(endpoint)
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                ConnectError::Auth(format!("device authorization at {endpoint} failed ({e})"))
            })?;
        let status = resp.status();
        let da: DeviceAuthorization = resp.json().await.map_err(|_| {
            ConnectError::Auth(format!(
                "device authorization at {endpoint} answered {status}"
            ))
        })?;
        eprintln!(
            "mcp-bridge connect: to sign in, visit {} and enter the code {}",
            da.verification_uri, da.user_code
        );
        if let Some(c) = &da.verification_uri_complete {
            eprintln!("mcp-bridge connect: or open {c}");
        }
        let mut interval = da.interval.unwrap_or(5).max(1);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(da.expires_in);
        let poll = [
            ("grant_type", GRANT_DEVICE_CODE.to_string()),
            ("device_code", da.device_code),
            ("client_id", saved.client_id.clone()),
            ("resource", saved.resource.clone()),
        ];
        loop {
            tokio::time::sleep(Duration::from_secs(interval)).await;
            if tokio::time::Instant::now() > deadline {
                return Err(ConnectError::Auth(
                    "the device code expired before sign-in".into(),
                ));
            }
            let resp = self
                .http
                .post(&md.token_endpoint)
                .form(&poll)
                .send()
                .await
                .map_err(|e| ConnectError::Auth(format!("token endpoint unreachable ({e})")))?;
            let t: TokenResponse = resp.json().await.map_err(|_| {
                ConnectError::Auth("the token endpoint answered without JSON".into())
            })?;
            match t.error.as_deref() {
                None if t.access_token.is_some() => return Ok(t),
                Some("authorization_pending") => {}
                Some("slow_down") => interval += 5, // RFC 8628 §3.5
                Some("access_denied") => {
                    return Err(ConnectError::Auth("sign-in was denied".into()))
                }
                Some("expired_token") => {
                    return Err(ConnectError::Auth(
                        "the device code expired before sign-in".into(),
                    ))
                }
                Some(other) => {
                    return Err(ConnectError::Auth(format!(
                        "the token endpoint refused: {other}"
                    )))
                }
                None => {
                    return Err(ConnectError::Auth(
                        "the token endpoint answered without an access token".into(),
                    ))
                }
            }
        }
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
    fn pkce_s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
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
