//! A stand-in for GitHub that the tests run: a small actix server that follows
//! GitHub's documented OAuth app endpoints and REST answers (the only fake the
//! test suite allows, since real GitHub cannot be driven from CI).
//!
//! * `GET /login/oauth/authorize` — redirects back with `code` and `state`, or
//!   with `error=access_denied` (+ `error_description`, `error_uri`, `state`)
//!   when the user "clicks Cancel" ([`GitHubStandIn::deny_next`]).
//! * `POST /login/oauth/access_token` — form or JSON body; answers JSON with
//!   `Accept: application/json`, else form-encoded; errors such as
//!   `bad_verification_code` and `incorrect_client_credentials` come with
//!   HTTP 200, as GitHub does. Codes are single-use and PKCE S256 is checked.
//! * `GET /user`, `GET /user/emails` (401 `Bad credentials` for a bad token).
//! * `GET /user/memberships/orgs/{org}` — `state` `active` or `pending`, 404 otherwise.
//! * `GET /orgs/{org}/teams/{team_slug}/memberships/{username}` — 404 when not a member.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test harness

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine;
use serde_json::json;
use sha2::Digest;

pub const CLIENT_ID: &str = "Iv1.standin0client";
pub const CLIENT_SECRET: &str = "standin-client-secret-0123456789abcdef";

#[derive(Debug, Clone)]
pub struct GhUser {
    pub login: String,
    pub id: u64,
    pub name: String,
    /// (email, primary, verified)
    pub emails: Vec<(String, bool, bool)>,
}

#[derive(Debug, Clone)]
struct Code {
    login: String,
    redirect_uri: String,
    challenge: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    users: HashMap<String, GhUser>,
    /// Who signs in at the next authorize request.
    next_login: Option<String>,
    deny_next: bool,
    codes: HashMap<String, Code>,
    tokens: HashMap<String, String>,
    /// (org, login) → "active" | "pending"
    orgs: HashMap<(String, String), String>,
    /// (org, team, login) → "active" | "pending"
    teams: HashMap<(String, String, String), String>,
    counter: u64,
    /// Redirect URI registered for the OAuth app (GitHub's "Authorization callback URL").
    callback: String,
}

pub struct GitHubStandIn {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for GitHubStandIn {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({
        "message": "Not Found",
        "documentation_url": "https://docs.github.com/rest",
        "status": "404"
    }))
}

fn bad_credentials() -> HttpResponse {
    HttpResponse::Unauthorized().json(json!({
        "message": "Bad credentials",
        "documentation_url": "https://docs.github.com/rest",
        "status": "401"
    }))
}

fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

impl GitHubStandIn {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let data = web::Data::new(inner.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/login/oauth/authorize", web::get().to(authorize))
                .route("/login/oauth/access_token", web::post().to(access_token))
                .route("/user", web::get().to(user))
                .route("/user/emails", web::get().to(emails))
                .route(
                    "/user/memberships/orgs/{org}",
                    web::get().to(org_membership),
                )
                .route(
                    "/orgs/{org}/teams/{team}/memberships/{username}",
                    web::get().to(team_membership),
                )
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base: format!("http://{addr}"),
            inner,
            handle,
        }
    }

    /// The OAuth app's registered callback URL (`<issuer>/callback/github`).
    pub fn set_callback(&self, url: &str) {
        self.inner.lock().unwrap().callback = url.to_string();
    }

    pub fn add_user(&self, login: &str, id: u64, email: &str) {
        self.inner.lock().unwrap().users.insert(
            login.to_string(),
            GhUser {
                login: login.to_string(),
                id,
                name: format!("{login} (test)"),
                emails: vec![
                    (format!("old-{email}"), false, true),
                    (email.to_string(), true, true),
                ],
            },
        );
    }

    pub fn sign_in_as(&self, login: &str) {
        self.inner.lock().unwrap().next_login = Some(login.to_string());
    }

    /// The next authorize request is cancelled by the user (`access_denied`).
    pub fn deny_next(&self) {
        self.inner.lock().unwrap().deny_next = true;
    }

    pub fn set_org(&self, org: &str, login: &str, state: Option<&str>) {
        let mut i = self.inner.lock().unwrap();
        let key = (org.to_ascii_lowercase(), login.to_ascii_lowercase());
        match state {
            Some(s) => i.orgs.insert(key, s.to_string()),
            None => i.orgs.remove(&key),
        };
    }

    pub fn set_team(&self, org: &str, team: &str, login: &str, state: Option<&str>) {
        let mut i = self.inner.lock().unwrap();
        let key = (
            org.to_ascii_lowercase(),
            team.to_ascii_lowercase(),
            login.to_ascii_lowercase(),
        );
        match state {
            Some(s) => i.teams.insert(key, s.to_string()),
            None => i.teams.remove(&key),
        };
    }

    /// Issues a code as if `login` had approved (to test code misuse directly).
    pub fn mint_code(&self, login: &str, redirect_uri: &str, verifier: &str) -> String {
        let mut i = self.inner.lock().unwrap();
        i.counter += 1;
        let code = format!("code{:020}", i.counter);
        i.codes.insert(
            code.clone(),
            Code {
                login: login.to_string(),
                redirect_uri: redirect_uri.to_string(),
                challenge: Some(s256(verifier)),
            },
        );
        code
    }
}

type Shared = web::Data<Arc<Mutex<Inner>>>;

fn query(req: &HttpRequest) -> HashMap<String, String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}

async fn authorize(req: HttpRequest, data: Shared) -> HttpResponse {
    let q = query(&req);
    let mut i = data.lock().unwrap();
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return not_found();
    }
    let redirect = q.get("redirect_uri").cloned().unwrap_or(i.callback.clone());
    if redirect != i.callback {
        // GitHub shows an error page, it never redirects to an unregistered URL.
        return HttpResponse::BadRequest()
            .content_type("text/html")
            .body("<h1>The redirect_uri is not associated with this application.</h1>");
    }
    let mut url = url::Url::parse(&redirect).unwrap();
    if std::mem::take(&mut i.deny_next) {
        {
            let mut p = url.query_pairs_mut();
            p.append_pair("error", "access_denied")
                .append_pair("error_description", "The user has denied your application access.")
                .append_pair(
                    "error_uri",
                    "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#access-denied",
                );
            if let Some(s) = q.get("state") {
                p.append_pair("state", s);
            }
        }
        return HttpResponse::Found()
            .insert_header(("location", url.to_string()))
            .finish();
    }
    let Some(login) = i.next_login.clone() else {
        return HttpResponse::Ok().body("login page");
    };
    let challenge = match q.get("code_challenge_method").map(String::as_str) {
        Some("S256") => q.get("code_challenge").cloned(),
        _ => None,
    };
    i.counter += 1;
    let code = format!("code{:020}", i.counter);
    i.codes.insert(
        code.clone(),
        Code {
            login,
            redirect_uri: redirect.clone(),
            challenge,
        },
    );
    {
        let mut p = url.query_pairs_mut();
        p.append_pair("code", &code);
        if let Some(s) = q.get("state") {
            p.append_pair("state", s);
        }
    }
    HttpResponse::Found()
        .insert_header(("location", url.to_string()))
        .finish()
}

async fn access_token(req: HttpRequest, body: web::Bytes, data: Shared) -> HttpResponse {
    let ct = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let params: HashMap<String, String> = if ct.starts_with("application/json") {
        serde_json::from_slice::<HashMap<String, String>>(&body).unwrap_or_default()
    } else {
        url::form_urlencoded::parse(&body).into_owned().collect()
    };
    let wants_json = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    let answer = |pairs: Vec<(&str, String)>| -> HttpResponse {
        if wants_json {
            let map: serde_json::Map<String, serde_json::Value> = pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v)))
                .collect();
            HttpResponse::Ok().json(map)
        } else {
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            HttpResponse::Ok()
                .content_type("application/x-www-form-urlencoded; charset=utf-8")
                .body(body)
        }
    };
    let get = |k: &str| params.get(k).cloned().unwrap_or_default();
    if get("client_id") != CLIENT_ID || get("client_secret") != CLIENT_SECRET {
        return answer(vec![
            ("error", "incorrect_client_credentials".into()),
            (
                "error_description",
                "The client_id and/or client_secret passed are incorrect.".into(),
            ),
            ("error_uri", "/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#incorrect-client-credentials".into()),
        ]);
    }
    let bad_code = || {
        vec![
            ("error", "bad_verification_code".to_string()),
            (
                "error_description",
                "The code passed is incorrect or expired.".to_string(),
            ),
            ("error_uri", "/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code".to_string()),
        ]
    };
    let mut i = data.lock().unwrap();
    // Single use: the code is gone after the first exchange, right or wrong.
    let Some(code) = i.codes.remove(&get("code")) else {
        return answer(bad_code());
    };
    if let Some(r) = params.get("redirect_uri") {
        if *r != code.redirect_uri {
            return answer(vec![
                ("error", "redirect_uri_mismatch".into()),
                (
                    "error_description",
                    "The redirect_uri MUST match the registered callback URL for this application."
                        .into(),
                ),
            ]);
        }
    }
    if let Some(ch) = &code.challenge {
        if s256(&get("code_verifier")) != *ch {
            return answer(bad_code());
        }
    }
    i.counter += 1;
    let token = format!("gho_{:036}", i.counter);
    i.tokens.insert(token.clone(), code.login);
    answer(vec![
        ("access_token", token),
        ("scope", "read:org,read:user,user:email".into()),
        ("token_type", "bearer".into()),
    ])
}

fn authed(req: &HttpRequest, i: &Inner) -> Option<GhUser> {
    let h = req.headers().get("authorization")?.to_str().ok()?;
    let token = h
        .strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("token "))?;
    let login = i.tokens.get(token)?;
    i.users.get(login).cloned()
}

async fn user(req: HttpRequest, data: Shared) -> HttpResponse {
    let i = data.lock().unwrap();
    let Some(u) = authed(&req, &i) else {
        return bad_credentials();
    };
    HttpResponse::Ok().json(json!({
        "login": u.login,
        "id": u.id,
        "node_id": format!("MDQ6VXNlcj{}", u.id),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{}?v=4", u.id),
        "html_url": format!("https://github.com/{}", u.login),
        "type": "User",
        "site_admin": false,
        "name": u.name,
        "company": null,
        "blog": "",
        "location": null,
        "email": null,
        "bio": null,
        "public_repos": 2,
        "followers": 20,
        "following": 0,
        "created_at": "2008-01-14T04:33:35Z",
        "updated_at": "2008-01-14T04:33:35Z"
    }))
}

async fn emails(req: HttpRequest, data: Shared) -> HttpResponse {
    let i = data.lock().unwrap();
    let Some(u) = authed(&req, &i) else {
        return bad_credentials();
    };
    let list: Vec<_> = u
        .emails
        .iter()
        .map(|(e, primary, verified)| {
            json!({"email": e, "verified": verified, "primary": primary, "visibility": if *primary { "public" } else { "private" }})
        })
        .collect();
    HttpResponse::Ok().json(list)
}

async fn org_membership(req: HttpRequest, path: web::Path<String>, data: Shared) -> HttpResponse {
    let i = data.lock().unwrap();
    let Some(u) = authed(&req, &i) else {
        return bad_credentials();
    };
    let org = path.into_inner().to_ascii_lowercase();
    match i.orgs.get(&(org.clone(), u.login.to_ascii_lowercase())) {
        Some(state) => HttpResponse::Ok().json(json!({
            "url": format!("https://api.github.com/orgs/{org}/memberships/{}", u.login),
            "state": state,
            "role": "member",
            "organization_url": format!("https://api.github.com/orgs/{org}"),
            "organization": {"login": org, "id": 1, "url": format!("https://api.github.com/orgs/{org}")},
            "user": {"login": u.login, "id": u.id, "type": "User", "site_admin": false}
        })),
        None => not_found(),
    }
}

async fn team_membership(
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    data: Shared,
) -> HttpResponse {
    let i = data.lock().unwrap();
    if authed(&req, &i).is_none() {
        return bad_credentials();
    }
    let (org, team, username) = path.into_inner();
    let key = (
        org.to_ascii_lowercase(),
        team.to_ascii_lowercase(),
        username.to_ascii_lowercase(),
    );
    match i.teams.get(&key) {
        Some(state) => HttpResponse::Ok().json(json!({
            "url": format!("https://api.github.com/teams/1/memberships/{username}"),
            "role": "member",
            "state": state
        })),
        None => not_found(),
    }
}
