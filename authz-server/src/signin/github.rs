//! GitHub (and GitHub Enterprise Server) sign-in: the OAuth web application
//! flow with `state` and PKCE S256 toward GitHub, then the REST API for who the
//! user is (`GET /user`, verified primary address from `GET /user/emails`) and
//! whether they may sign in (allowlists by user, organization, team).
//!
//! Memberships use GitHub's documented endpoints:
//! `GET /user/memberships/orgs/{org}` (`state` is `active` or `pending`; only
//! `active` counts) and `GET /orgs/{org}/teams/{team_slug}/memberships/{username}`
//! (404 when not a member). The allowed organizations and teams the user is in
//! become the token's `groups` (`org`, `org/team`).
//!
//! Re-check on refresh: the user's GitHub token is kept sealed
//! (ChaCha20-Poly1305 under a key derived from the key-encryption key) inside
//! the grant, and at most every `GITHUB_RECHECK_INTERVAL` a refresh asks GitHub
//! again with it; removal from every allowlist (or a revoked GitHub token) ends
//! the grant with `invalid_grant`. We chose the user's own token over an app
//! token so no extra, broader credential has to be configured.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gateway_common::clock::SharedClock;
use gateway_store::Store;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::token_endpoint::{ClientAuth, TokenEndpoint};
use super::upstream::{self, PendingUpstream};
use super::{Identity, IdentityProvider, SignInError, SignInStart};
use crate::config::GitHubConfig;
use crate::keys::KeyManager;

/// What we ask GitHub for: the profile, e-mail addresses, org and team memberships.
pub const SCOPES: &str = "read:user user:email read:org";
const SEAL_PURPOSE: &str = "github-token";

#[derive(Debug)]
pub struct GitHub {
    cfg: GitHubConfig,
    store: Arc<dyn Store>,
    keys: Arc<KeyManager>,
    clock: SharedClock,
    issuer: String,
    pending_ttl: Duration,
    http: reqwest::Client,
}

/// A membership as GitHub reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    Active,
    Pending,
    None,
}

#[derive(Debug, Deserialize)]
struct User {
    login: String,
    id: u64,
}

#[derive(Debug, Deserialize)]
struct Email {
    email: String,
    primary: bool,
    verified: bool,
}

#[derive(Debug, Deserialize)]
struct MembershipAnswer {
    state: String,
}

/// Who may sign in, as a pure decision: the groups to put in the token, or why not.
pub fn decide(
    cfg: &GitHubConfig,
    login: &str,
    orgs: &[(String, Membership)],
    teams: &[((String, String), Membership)],
) -> Result<Vec<String>, SignInError> {
    let login = login.to_ascii_lowercase();
    let user_ok = cfg.allowed_users.iter().any(|u| u == "*" || *u == login);
    let mut groups: Vec<String> = orgs
        .iter()
        .filter(|(_, m)| *m == Membership::Active)
        .map(|(o, _)| o.clone())
        .collect();
    groups.extend(
        teams
            .iter()
            .filter(|(_, m)| *m == Membership::Active)
            .map(|((o, t), _)| format!("{o}/{t}")),
    );
    if user_ok || !groups.is_empty() {
        Ok(groups)
    } else {
        Err(SignInError::Refused(format!(
            "GitHub user {login} is not on an allowlist (or the membership is pending)"
        )))
    }
}

fn unavailable(e: impl std::fmt::Display) -> SignInError {
    SignInError::Unavailable(e.to_string())
}

impl GitHub {
    pub fn new(
        cfg: GitHubConfig,
        store: Arc<dyn Store>,
        keys: Arc<KeyManager>,
        clock: SharedClock,
        issuer: &str,
        pending_ttl: Duration,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            // GitHub's REST API refuses requests without a User-Agent.
            .user_agent(concat!("mcp-authz/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            cfg,
            store,
            keys,
            clock,
            issuer: issuer.to_string(),
            pending_ttl,
            http,
        })
    }

    fn api(&self, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.cfg.api_url))
            .bearer_auth(token)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
    }

    async fn membership(&self, path: &str, token: &str) -> Result<Membership, SignInError> {
        let r = self.api(path, token).send().await.map_err(unavailable)?;
        match r.status().as_u16() {
            200 => {
                let m: MembershipAnswer = r.json().await.map_err(unavailable)?;
                Ok(match m.state.as_str() {
                    "active" => Membership::Active,
                    _ => Membership::Pending,
                })
            }
            // 404: not a member; 403: the org restricts this OAuth app — not a member either.
            403 | 404 => Ok(Membership::None),
            401 => Err(SignInError::Refused("the GitHub token was revoked".into())),
            s => Err(SignInError::Unavailable(format!("GitHub answered {s}"))),
        }
    }

    /// Who the token belongs to and whether they may sign in.
    async fn identify(&self, token: &str) -> Result<Identity, SignInError> {
        let r = self.api("/user", token).send().await.map_err(unavailable)?;
        match r.status().as_u16() {
            200 => {}
            401 => return Err(SignInError::Refused("the GitHub token was revoked".into())),
            s => {
                return Err(SignInError::Unavailable(format!(
                    "GitHub /user answered {s}"
                )))
            }
        }
        let user: User = r.json().await.map_err(unavailable)?;
        let email = match self.api("/user/emails", token).send().await {
            Ok(r) if r.status().is_success() => r
                .json::<Vec<Email>>()
                .await
                .ok()
                .and_then(|list| list.into_iter().find(|e| e.primary && e.verified))
                .map(|e| e.email),
            _ => None,
        };
        let mut orgs = Vec::new();
        for org in &self.cfg.allowed_orgs {
            let m = self
                .membership(&format!("/user/memberships/orgs/{}", seg(org)), token)
                .await?;
            orgs.push((org.clone(), m));
        }
        let mut teams = Vec::new();
        for (org, team) in &self.cfg.allowed_teams {
            let m = self
                .membership(
                    &format!(
                        "/orgs/{}/teams/{}/memberships/{}",
                        seg(org),
                        seg(team),
                        seg(&user.login)
                    ),
                    token,
                )
                .await?;
            teams.push(((org.clone(), team.clone()), m));
        }
        let groups = decide(&self.cfg, &user.login, &orgs, &teams)?;
        let sealed = self
            .keys
            .seal_bytes(SEAL_PURPOSE, token.as_bytes())
            .map_err(unavailable)?;
        Ok(Identity {
            sub: format!("github:{}", user.id),
            name: user.login,
            email,
            groups,
            idp: "github".to_string(),
            upstream_token: Some(sealed),
            checked_at: Some(self.clock.now_secs()),
        })
    }
}

impl GitHub {
    /// A grant imported from the Python gateway (`mcp-gateway import-python`)
    /// carries no GitHub token: the Python gateway kept none. When it is due,
    /// its login is checked against `ALLOWED_GITHUB_USERS`, as the Python
    /// gateway checked it at sign-in; an org or team allowlist cannot be asked
    /// without a token, so such a user signs in once more.
    fn recheck_without_token(
        &self,
        user: &Identity,
        now: u64,
    ) -> Result<Option<Identity>, SignInError> {
        let due = user
            .checked_at
            .is_none_or(|t| now.saturating_sub(t) >= self.cfg.recheck_interval.as_secs());
        if !due {
            return Ok(None);
        }
        decide(&self.cfg, &user.name, &[], &[])?;
        let mut fresh = user.clone();
        fresh.checked_at = Some(now);
        Ok(Some(fresh))
    }
}

/// A path segment: GitHub logins and slugs are `[A-Za-z0-9-_.]`; anything else is encoded.
fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[async_trait]
impl IdentityProvider for GitHub {
    fn id(&self) -> &'static str {
        "github"
    }

    fn label(&self) -> &str {
        "GitHub"
    }

    async fn start(&self, request_id: &str) -> Result<SignInStart, SignInError> {
        let s = upstream::begin(&self.store, "github", request_id, self.pending_ttl).await?;
        let mut url = url::Url::parse(&format!("{}/login/oauth/authorize", self.cfg.base_url))
            .map_err(unavailable)?;
        url.query_pairs_mut()
            .append_pair("client_id", &self.cfg.client_id)
            .append_pair(
                "redirect_uri",
                &upstream::callback_url(&self.issuer, "github"),
            )
            .append_pair("scope", SCOPES)
            .append_pair("state", &s.state)
            .append_pair("code_challenge", &s.code_challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("allow_signup", "false");
        Ok(SignInStart::Redirect(url.into()))
    }

    async fn complete(
        &self,
        code: &str,
        pending: &PendingUpstream,
    ) -> Result<Identity, SignInError> {
        // GitHub takes our credentials in the form (client_secret_post) and
        // reports a bad code as HTTP 200 with {"error": "bad_verification_code"}.
        let endpoint = TokenEndpoint::new(
            &format!("{}/login/oauth/access_token", self.cfg.base_url),
            &self.cfg.client_id,
            self.cfg.client_secret.expose_secret(),
            &upstream::callback_url(&self.issuer, "github"),
            ClientAuth::Post,
        )?;
        let granted = endpoint
            .exchange_code(&self.http, code, &pending.verifier)
            .await
            .map_err(|e| e.into_sign_in("GitHub"))?;
        self.identify(&granted.access_token).await
    }

    async fn recheck(&self, user: &Identity, now: u64) -> Result<Option<Identity>, SignInError> {
        if user.idp == "github" && user.upstream_token.is_none() {
            return self.recheck_without_token(user, now);
        }
        let Some(sealed) =
            super::due_for_recheck(user, "github", self.cfg.recheck_interval, now, "GitHub")?
        else {
            return Ok(None);
        };
        let token = self
            .keys
            .open_bytes(SEAL_PURPOSE, sealed)
            .map_err(unavailable)?;
        let token = String::from_utf8(token).map_err(unavailable)?;
        let fresh = self.identify(&token).await?;
        if fresh.sub != user.sub {
            return Err(SignInError::Refused(
                "the GitHub token changed hands".into(),
            ));
        }
        Ok(Some(fresh))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn cfg(users: &[&str], orgs: &[&str], teams: &[(&str, &str)]) -> GitHubConfig {
        GitHubConfig {
            client_id: "id".into(),
            client_secret: SecretString::from("s".to_string()),
            base_url: "https://github.com".into(),
            api_url: "https://api.github.com".into(),
            allowed_users: users.iter().map(|s| s.to_string()).collect(),
            allowed_orgs: orgs.iter().map(|s| s.to_string()).collect(),
            allowed_teams: teams
                .iter()
                .map(|(o, t)| (o.to_string(), t.to_string()))
                .collect(),
            recheck_interval: Duration::from_secs(60),
        }
    }

    #[test]
    fn users_are_compared_case_insensitively_and_star_allows_anyone() {
        assert!(decide(&cfg(&["octocat"], &[], &[]), "OctoCat", &[], &[]).is_ok());
        assert!(decide(&cfg(&["*"], &[], &[]), "anyone", &[], &[]).is_ok());
        assert!(matches!(
            decide(&cfg(&["octocat"], &[], &[]), "hubot", &[], &[]),
            Err(SignInError::Refused(_))
        ));
    }

    #[test]
    fn only_active_memberships_count_and_become_groups() {
        let c = cfg(&[], &["acme"], &[("acme", "sre")]);
        let pending = [("acme".to_string(), Membership::Pending)];
        assert!(decide(&c, "u", &pending, &[]).is_err());
        let teams = [(("acme".to_string(), "sre".to_string()), Membership::Active)];
        assert_eq!(decide(&c, "u", &pending, &teams).unwrap(), vec!["acme/sre"]);
        let active = [("acme".to_string(), Membership::Active)];
        assert_eq!(decide(&c, "u", &active, &[]).unwrap(), vec!["acme"]);
    }
}
