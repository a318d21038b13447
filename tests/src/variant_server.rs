//! A small authorization server and MCP server on one loopback origin that presents
//! exactly one authorization variant at a time, for `mcp-connect`'s tests
//! (tests/tests/connect_variants.rs): where the protected resource metadata lives and
//! what `resource` it names, whether there is any, which client authentication the token
//! endpoint takes, whether registration exists, which tools need which scopes, and
//! whether the MCP endpoint speaks the 2026-07-28 stateless wire.
//!
//! It is strict where a variant is about something (PKCE, client authentication, the
//! token's `resource`, the protocol version header) and records every request, so a
//! test asserts what the client actually did, not only that a tool call came back.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Where the protected resource metadata (RFC 9728) is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prm {
    /// `/.well-known/oauth-protected-resource/mcp`, naming the MCP URL.
    PathSuffixed,
    /// Only `/.well-known/oauth-protected-resource`, naming the origin (RFC 9728 §3.3).
    RootNamingOrigin,
    /// None at all: a 2025-03-26 server.
    Absent,
}

/// A client the authorization server knows before any registration.
#[derive(Debug, Clone)]
pub struct PreRegistered {
    pub client_id: String,
    /// `none`, `client_secret_basic`, `client_secret_post` or `private_key_jwt`.
    pub method: &'static str,
    pub secret: Option<String>,
    /// For `private_key_jwt`: the public key (RFC 7517) and the `kid` it must be used with.
    pub jwk: Option<jsonwebtoken::jwk::Jwk>,
    pub kid: Option<String>,
    pub client_credentials: bool,
}

#[derive(Debug, Clone)]
pub struct Variant {
    /// The MCP endpoint requires a bearer token.
    pub auth: bool,
    /// 2026-07-28: no `initialize`; every request needs `MCP-Protocol-Version`
    /// (-32020 otherwise); `server/discover` answers.
    pub stateless: bool,
    pub prm: Prm,
    /// The 401 names the PRM (`resource_metadata`); else clients look for it.
    pub challenge_names_prm: bool,
    /// RFC 8414 metadata at the origin (the issuer is the origin).
    pub as_metadata: bool,
    /// `token_endpoint_auth_methods_supported`; enforced at registration.
    pub auth_methods: Option<Vec<&'static str>>,
    pub registration: bool,
    pub preregistered: Vec<PreRegistered>,
    /// Tools that need a scope (403 `insufficient_scope` without it).
    pub tool_scopes: Vec<(&'static str, &'static str)>,
    /// Scopes this server never grants.
    pub withheld_scopes: Vec<&'static str>,
    /// A `flood` tool whose SSE answer is one line that never ends.
    pub flood_tool: bool,
    /// `expires_in` of access tokens, seconds.
    pub token_lifetime: u64,
}

impl Default for Variant {
    /// A 2025-06-18 server: PRM at the path-suffixed URL, named by the 401; metadata;
    /// public clients register.
    fn default() -> Self {
        Self {
            auth: true,
            stateless: false,
            prm: Prm::PathSuffixed,
            challenge_names_prm: true,
            as_metadata: true,
            auth_methods: None,
            registration: true,
            preregistered: Vec::new(),
            tool_scopes: Vec::new(),
            withheld_scopes: Vec::new(),
            flood_tool: false,
            token_lifetime: 3600,
        }
    }
}

pub const DEFAULT_SCOPE: &str = "mcp";
/// What the flood tool sends at most (the client should stop reading long before).
pub const FLOOD_LIMIT: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone)]
struct Client {
    method: String,
    secret: Option<String>,
    jwk: Option<jsonwebtoken::jwk::Jwk>,
    kid: Option<String>,
    client_credentials: bool,
}

#[derive(Debug, Clone)]
struct Code {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    scope: String,
    resource: Option<String>,
}

#[derive(Debug, Clone)]
struct Grant {
    client_id: String,
    scope: String,
    resource: Option<String>,
}

#[derive(Default)]
struct Inner {
    clients: HashMap<String, Client>,
    codes: HashMap<String, Code>,
    access: HashMap<String, Grant>,
    refresh: HashMap<String, Grant>,
    jtis: HashSet<String>,
    log: Vec<Value>,
}

struct State {
    cfg: Variant,
    origin: String,
    mcp_url: String,
    inner: Mutex<Inner>,
    flood_sent: Arc<AtomicU64>,
}

impl State {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn log(&self, v: Value) {
        self.inner().log.push(v);
    }

    fn prm_url(&self) -> Option<String> {
        match self.cfg.prm {
            Prm::PathSuffixed => Some(format!(
                "{}/.well-known/oauth-protected-resource/mcp",
                self.origin
            )),
            Prm::RootNamingOrigin => Some(format!(
                "{}/.well-known/oauth-protected-resource",
                self.origin
            )),
            Prm::Absent => None,
        }
    }

    /// The `resource` tokens must be bound to.
    fn resource(&self) -> String {
        match self.cfg.prm {
            Prm::RootNamingOrigin => self.origin.clone(),
            _ => self.mcp_url.clone(),
        }
    }
}

/// The running server.
pub struct VariantServer {
    pub origin: String,
    pub mcp_url: String,
    state: Arc<State>,
    handle: actix_web::dev::ServerHandle,
}

impl VariantServer {
    pub async fn start(cfg: Variant) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let origin = format!("http://{}", listener.local_addr()?);
        let mcp_url = format!("{origin}/mcp");
        let mut inner = Inner::default();
        for p in &cfg.preregistered {
            inner.clients.insert(
                p.client_id.clone(),
                Client {
                    method: p.method.to_string(),
                    secret: p.secret.clone(),
                    jwk: p.jwk.clone(),
                    kid: p.kid.clone(),
                    client_credentials: p.client_credentials,
                },
            );
        }
        let state = Arc::new(State {
            cfg,
            origin: origin.clone(),
            mcp_url: mcp_url.clone(),
            inner: Mutex::new(inner),
            flood_sent: Arc::new(AtomicU64::new(0)),
        });
        let data = web::Data::from(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/mcp", web::post().to(mcp_post))
                .route(
                    "/mcp",
                    web::get().to(|| async { HttpResponse::MethodNotAllowed().finish() }),
                )
                .route(
                    "/mcp",
                    web::delete().to(|| async { HttpResponse::Ok().finish() }),
                )
                .route(
                    "/.well-known/oauth-protected-resource",
                    web::get().to(prm_root),
                )
                .route(
                    "/.well-known/oauth-protected-resource/mcp",
                    web::get().to(prm_suffixed),
                )
                .route(
                    "/.well-known/oauth-authorization-server",
                    web::get().to(as_metadata),
                )
                .route("/authorize", web::get().to(authorize))
                .route("/token", web::post().to(token))
                .route("/register", web::post().to(register))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Ok(Self {
            origin,
            mcp_url,
            state,
            handle,
        })
    }

    /// Every request the server saw, oldest first (`at`: mcp, authorize, token, register, …).
    pub fn log(&self) -> Vec<Value> {
        self.state.inner().log.clone()
    }

    pub fn log_of(&self, at: &str) -> Vec<Value> {
        self.log().into_iter().filter(|v| v["at"] == at).collect()
    }

    /// Bytes of the flood tool's answer that left the server.
    pub fn flood_sent(&self) -> u64 {
        self.state.flood_sent.load(Ordering::SeqCst)
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound().finish()
}

async fn prm_root(st: web::Data<State>) -> HttpResponse {
    st.log(json!({"at": "prm", "path": "root"}));
    match st.cfg.prm {
        Prm::RootNamingOrigin => HttpResponse::Ok().json(prm_body(&st)),
        _ => not_found(),
    }
}

async fn prm_suffixed(st: web::Data<State>) -> HttpResponse {
    st.log(json!({"at": "prm", "path": "suffixed"}));
    match st.cfg.prm {
        Prm::PathSuffixed => HttpResponse::Ok().json(prm_body(&st)),
        _ => not_found(),
    }
}

fn prm_body(st: &State) -> Value {
    json!({
        "resource": st.resource(),
        "authorization_servers": [st.origin],
        "scopes_supported": [DEFAULT_SCOPE],
        "bearer_methods_supported": ["header"],
    })
}

async fn as_metadata(st: web::Data<State>) -> HttpResponse {
    st.log(json!({"at": "as_metadata"}));
    if !st.cfg.as_metadata {
        return not_found();
    }
    let o = &st.origin;
    let mut md = json!({
        "issuer": o,
        "authorization_endpoint": format!("{o}/authorize"),
        "token_endpoint": format!("{o}/token"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
    });
    if st.cfg.registration {
        md["registration_endpoint"] = json!(format!("{o}/register"));
    }
    if let Some(m) = &st.cfg.auth_methods {
        md["token_endpoint_auth_methods_supported"] = json!(m);
    }
    HttpResponse::Ok().json(md)
}

fn random() -> String {
    gateway_common::crypto::random_token(24)
}

fn is_loopback_redirect(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| {
        u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"))
    })
}

/// Requested scopes less the withheld ones; the default scope when none are asked for.
fn granted_scope(st: &State, requested: Option<&str>) -> String {
    let req = requested.unwrap_or("").trim();
    if req.is_empty() {
        return DEFAULT_SCOPE.into();
    }
    req.split_whitespace()
        .filter(|s| !st.cfg.withheld_scopes.contains(s))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn authorize(st: web::Data<State>, q: web::Query<HashMap<String, String>>) -> HttpResponse {
    let q = q.into_inner();
    st.log(json!({"at": "authorize", "query": q}));
    let get = |k: &str| q.get(k).cloned();
    let bad = |why: &str| HttpResponse::BadRequest().body(why.to_string());
    let (Some(client_id), Some(redirect_uri)) = (get("client_id"), get("redirect_uri")) else {
        return bad("client_id and redirect_uri are required");
    };
    if !st.inner().clients.contains_key(&client_id) {
        return bad("unknown client");
    }
    if !is_loopback_redirect(&redirect_uri) {
        return bad("redirect_uri must be loopback");
    }
    if get("response_type").as_deref() != Some("code") {
        return bad("response_type must be code");
    }
    let Some(challenge) = get("code_challenge") else {
        return bad("PKCE is required");
    };
    if get("code_challenge_method").as_deref() != Some("S256") {
        return bad("PKCE S256 is required");
    }
    let code = random();
    st.inner().codes.insert(
        code.clone(),
        Code {
            client_id,
            redirect_uri: redirect_uri.clone(),
            challenge,
            scope: granted_scope(&st, get("scope").as_deref()),
            resource: get("resource"),
        },
    );
    let mut back = match url::Url::parse(&redirect_uri) {
        Ok(u) => u,
        Err(_) => return bad("redirect_uri"),
    };
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &get("state").unwrap_or_default())
        .append_pair("iss", &st.origin);
    HttpResponse::Found()
        .insert_header((header::LOCATION, back.to_string()))
        .finish()
}

fn oauth_error(status: u16, error: &str, description: &str) -> HttpResponse {
    let mut r = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    );
    if status == 401 {
        r.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"token\""));
    }
    r.insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"error": error, "error_description": description}))
}

/// RFC 6749 §2.3.1 (Basic: both parts form-urlencoded), §2.3.1 body, RFC 7523 §2.2.
/// Returns the client id and the method it authenticated with.
fn authenticate(
    st: &State,
    req: &HttpRequest,
    form: &HashMap<String, String>,
) -> Result<(String, &'static str), String> {
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .map(str::to_string);
    let (client_id, method, secret) = if let Some(b) = basic {
        let raw = STANDARD.decode(b.trim()).map_err(|_| "bad Basic header")?;
        let raw = String::from_utf8(raw).map_err(|_| "bad Basic header")?;
        let (id, secret) = raw.split_once(':').ok_or("bad Basic header")?;
        let dec = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        if form.contains_key("client_secret") {
            return Err("two client authentication methods".into());
        }
        (dec(id), "client_secret_basic", Some(dec(secret)))
    } else if let Some(assertion) = form.get("client_assertion") {
        if form.get("client_assertion_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return Err("client_assertion_type".into());
        }
        let id = verify_assertion(st, assertion)?;
        if form.get("client_id").is_some_and(|c| *c != id) {
            return Err("client_id differs from the assertion".into());
        }
        (id, "private_key_jwt", None)
    } else if let Some(secret) = form.get("client_secret") {
        let id = form.get("client_id").cloned().ok_or("client_id missing")?;
        (id, "client_secret_post", Some(secret.clone()))
    } else {
        let id = form.get("client_id").cloned().ok_or("client_id missing")?;
        (id, "none", None)
    };
    let inner = st.inner();
    let client = inner.clients.get(&client_id).ok_or("unknown client")?;
    if client.method != method {
        return Err(format!(
            "client is registered for {}, authenticated with {method}",
            client.method
        ));
    }
    if secret.is_some() && secret != client.secret {
        return Err("wrong client secret".into());
    }
    Ok((client_id, method))
}

fn verify_assertion(st: &State, jwt: &str) -> Result<String, String> {
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| format!("assertion header ({e})"))?;
    let unverified: Value = {
        let payload = jwt.split('.').nth(1).ok_or("assertion")?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).map_err(|_| "assertion")?)
            .map_err(|_| "assertion")?
    };
    let client_id = unverified["iss"].as_str().ok_or("iss")?.to_string();
    let client = st
        .inner()
        .clients
        .get(&client_id)
        .cloned()
        .ok_or("unknown client")?;
    let jwk = client.jwk.ok_or("client has no key")?;
    if header.kid != client.kid {
        return Err(format!("kid {:?} is not the client's key", header.kid));
    }
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(|e| format!("jwk ({e})"))?;
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.set_audience(&[st.origin.as_str(), &format!("{}/token", st.origin)]);
    v.set_issuer(&[client_id.as_str()]);
    v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let data =
        jsonwebtoken::decode::<Value>(jwt, &key, &v).map_err(|e| format!("assertion ({e})"))?;
    if data.claims["sub"] != client_id.as_str() {
        return Err("sub must be the client id".into());
    }
    let jti = data.claims["jti"]
        .as_str()
        .ok_or("jti missing")?
        .to_string();
    if !st.inner().jtis.insert(jti) {
        return Err("assertion replayed (jti)".into());
    }
    Ok(client_id)
}

fn issue(st: &State, grant: Grant, with_refresh: bool) -> HttpResponse {
    let access = random();
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": st.cfg.token_lifetime,
        "scope": grant.scope,
    });
    let mut inner = st.inner();
    if with_refresh {
        let rt = random();
        body["refresh_token"] = json!(rt);
        inner.refresh.insert(rt, grant.clone());
    }
    inner.access.insert(access, grant);
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

async fn token(
    st: web::Data<State>,
    req: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let form = form.into_inner();
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    let (client_id, method) = match authenticate(&st, &req, &form) {
        Ok(c) => c,
        Err(why) => {
            st.log(json!({"at": "token", "grant": grant_type, "refused": why}));
            return oauth_error(401, "invalid_client", &why);
        }
    };
    st.log(json!({
        "at": "token",
        "grant": grant_type,
        "client_id": client_id,
        "auth": method,
        "resource": form.get("resource"),
        "scope": form.get("scope"),
    }));
    match grant_type.as_str() {
        "authorization_code" => {
            let code = form.get("code").and_then(|c| st.inner().codes.remove(c));
            let Some(code) = code else {
                return oauth_error(400, "invalid_grant", "unknown or used code");
            };
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if code.client_id != client_id
                || form.get("redirect_uri") != Some(&code.redirect_uri)
                || challenge != code.challenge
            {
                return oauth_error(
                    400,
                    "invalid_grant",
                    "code, client, redirect or PKCE mismatch",
                );
            }
            let resource = form.get("resource").cloned().or(code.resource);
            issue(
                &st,
                Grant {
                    client_id,
                    scope: code.scope,
                    resource,
                },
                true,
            )
        }
        "refresh_token" => {
            let old = form
                .get("refresh_token")
                .and_then(|r| st.inner().refresh.remove(r));
            match old {
                Some(g) if g.client_id == client_id => issue(&st, g, true),
                _ => oauth_error(400, "invalid_grant", "unknown refresh token"),
            }
        }
        "client_credentials" => {
            let allowed = st
                .inner()
                .clients
                .get(&client_id)
                .is_some_and(|c| c.client_credentials && c.method != "none");
            if !allowed {
                return oauth_error(
                    400,
                    "unauthorized_client",
                    "not a client credentials client",
                );
            }
            let scope = granted_scope(&st, form.get("scope").map(String::as_str));
            issue(
                &st,
                Grant {
                    client_id,
                    scope,
                    resource: form.get("resource").cloned(),
                },
                false,
            )
        }
        _ => oauth_error(400, "unsupported_grant_type", &grant_type),
    }
}

async fn register(st: web::Data<State>, body: web::Json<Value>) -> HttpResponse {
    let body = body.into_inner();
    // RFC 7591 §2: the default is client_secret_basic.
    let method = body["token_endpoint_auth_method"]
        .as_str()
        .unwrap_or("client_secret_basic")
        .to_string();
    st.log(json!({"at": "register", "method": method}));
    if !st.cfg.registration {
        return not_found();
    }
    let allowed = match &st.cfg.auth_methods {
        Some(list) => list.contains(&method.as_str()),
        None => matches!(
            method.as_str(),
            "none" | "client_secret_basic" | "client_secret_post"
        ),
    };
    if !allowed {
        return HttpResponse::BadRequest().json(json!({
            "error": "invalid_client_metadata",
            "error_description": format!("token_endpoint_auth_method {method} is not accepted"),
        }));
    }
    let client_id = random();
    let secret = (method != "none").then(random);
    st.inner().clients.insert(
        client_id.clone(),
        Client {
            method: method.clone(),
            secret: secret.clone(),
            jwk: None,
            kid: None,
            client_credentials: false,
        },
    );
    let mut out = body.clone();
    out["client_id"] = json!(client_id);
    out["token_endpoint_auth_method"] = json!(method);
    if let Some(s) = secret {
        out["client_secret"] = json!(s);
        out["client_secret_expires_at"] = json!(0);
    }
    HttpResponse::Created().json(out)
}

fn challenge(st: &State, extra: &str) -> String {
    let mut parts = Vec::new();
    if st.cfg.challenge_names_prm {
        if let Some(u) = st.prm_url() {
            parts.push(format!("resource_metadata=\"{u}\""));
        }
    }
    if !extra.is_empty() {
        parts.push(extra.to_string());
    }
    if parts.is_empty() {
        "Bearer".into()
    } else {
        format!("Bearer {}", parts.join(", "))
    }
}

fn rpc_result(id: &Value, result: Value) -> HttpResponse {
    HttpResponse::Ok().json(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

fn rpc_error(status: u16, id: &Value, code: i64, message: &str) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}))
}

async fn mcp_post(st: web::Data<State>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let hdr = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let method = msg["method"].as_str().unwrap_or("").to_string();
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let version = hdr("mcp-protocol-version");
    let mut entry = json!({
        "at": "mcp",
        "method": method,
        "version": version,
        "session": hdr("mcp-session-id"),
    });

    // Authorization first, as a real resource server does.
    let mut scopes: Vec<String> = Vec::new();
    if st.cfg.auth {
        let bearer =
            hdr("authorization").and_then(|a| a.strip_prefix("Bearer ").map(str::to_string));
        let grant = bearer
            .as_ref()
            .and_then(|t| st.inner().access.get(t).cloned());
        let resource_ok = |g: &Grant| match (&g.resource, st.cfg.prm) {
            (Some(r), _) => *r == st.resource(),
            // A 2025-03-26 server predates RFC 8707 in MCP: no resource is fine.
            (None, Prm::Absent) => true,
            (None, _) => false,
        };
        match grant {
            Some(g) if resource_ok(&g) => {
                scopes = g.scope.split_whitespace().map(str::to_string).collect();
                entry["scope"] = json!(g.scope);
            }
            other => {
                entry["status"] = json!(401);
                entry["why"] = json!(match other {
                    Some(_) => "token for another resource",
                    None if bearer.is_some() => "unknown token",
                    None => "no token",
                });
                st.log(entry);
                let extra = if bearer.is_some() {
                    "error=\"invalid_token\""
                } else {
                    ""
                };
                return HttpResponse::Unauthorized()
                    .insert_header((header::WWW_AUTHENTICATE, challenge(&st, extra)))
                    .json(json!({"error": "invalid_token"}));
            }
        }
    }

    if st.cfg.stateless && !id.is_null() {
        // 2026-07-28 "Protocol Version Header" and "Server Validation".
        let meta = msg
            .pointer("/params/_meta/io.modelcontextprotocol~1protocolVersion")
            .and_then(Value::as_str);
        let why = match (version.as_deref(), meta) {
            (None, _) => Some("MCP-Protocol-Version header is missing".to_string()),
            (Some(h), _) if h != "2026-07-28" => Some(format!("unsupported version {h}")),
            (Some(h), Some(m)) if h != m => Some(format!(
                "MCP-Protocol-Version header {h} does not match _meta {m}"
            )),
            _ if hdr("mcp-method").as_deref() != Some(method.as_str()) => {
                Some("Mcp-Method header does not match the body".into())
            }
            _ => None,
        };
        if let Some(why) = why {
            entry["status"] = json!(400);
            st.log(entry);
            return rpc_error(400, &id, -32020, &why);
        }
    }

    if id.is_null() {
        entry["status"] = json!(202);
        st.log(entry);
        return HttpResponse::Accepted().finish();
    }

    let answer = match method.as_str() {
        "initialize" if st.cfg.stateless => {
            rpc_error(200, &id, -32601, "initialize is not part of 2026-07-28")
        }
        "initialize" => {
            let v = msg
                .pointer("/params/protocolVersion")
                .and_then(Value::as_str)
                .unwrap_or("2025-06-18");
            let mut r = HttpResponse::Ok();
            r.insert_header(("mcp-session-id", random()));
            r.json(json!({"jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": v,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "variant-server", "version": "1"},
            }}))
        }
        "server/discover" if st.cfg.stateless => rpc_result(
            &id,
            json!({
                "resultType": "complete",
                "supportedVersions": ["2026-07-28"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "variant-server", "version": "1"},
            }),
        ),
        "ping" => rpc_result(&id, json!({})),
        "tools/list" => {
            let mut tools = vec![tool("echo")];
            tools.extend(st.cfg.tool_scopes.iter().map(|(t, _)| tool(t)));
            if st.cfg.flood_tool {
                tools.push(tool("flood"));
            }
            rpc_result(&id, json!({"tools": tools}))
        }
        "tools/call" => {
            let name = msg
                .pointer("/params/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let needs = st
                .cfg
                .tool_scopes
                .iter()
                .find(|(t, _)| *t == name)
                .map(|(_, s)| *s);
            match needs {
                Some(s) if !scopes.iter().any(|h| h == s) => {
                    entry["status"] = json!(403);
                    st.log(entry);
                    let extra = format!(
                        "error=\"insufficient_scope\", scope=\"{s}\", error_description=\"{name} needs scope {s}\""
                    );
                    return HttpResponse::Forbidden()
                        .insert_header((header::WWW_AUTHENTICATE, challenge(&st, &extra)))
                        .json(json!({"error": "insufficient_scope"}));
                }
                _ => {}
            }
            if name == "flood" && st.cfg.flood_tool {
                entry["status"] = json!(200);
                st.log(entry);
                return flood(Arc::clone(&st.flood_sent));
            }
            let text = msg
                .pointer("/params/arguments/message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            rpc_result(
                &id,
                json!({"content": [{"type": "text", "text": text}], "isError": false}),
            )
        }
        _ => rpc_error(200, &id, -32601, "method not found"),
    };
    entry["status"] = json!(answer.status().as_u16());
    st.log(entry);
    answer
}

fn tool(name: &str) -> Value {
    json!({
        "name": name,
        "description": format!("{name}: returns its message"),
        "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}},
    })
}

/// An SSE answer that opens a `data:` line and never ends it (up to `FLOOD_LIMIT`).
fn flood(sent: Arc<AtomicU64>) -> HttpResponse {
    let chunk = web::Bytes::from(vec![b'x'; 64 * 1024]);
    let stream = futures_util::stream::unfold(0u64, move |n| {
        let chunk = chunk.clone();
        let sent = Arc::clone(&sent);
        async move {
            if n >= FLOOD_LIMIT {
                return None;
            }
            let bytes = if n == 0 {
                web::Bytes::from_static(b"data: ")
            } else {
                chunk
            };
            sent.fetch_add(bytes.len() as u64, Ordering::SeqCst);
            // Let the server notice a closed connection between chunks.
            tokio::task::yield_now().await;
            Some((
                Ok::<_, std::io::Error>(bytes.clone()),
                n + bytes.len() as u64,
            ))
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(stream)
}
