//! `mcp-gateway import-python --from-redis URL [--dry-run]`: brings the
//! client registrations and live refresh tokens of the Python MCP OAuth
//! gateway (PyPI `mcp-oauth-dynamicclient` 0.2.0) into this gateway's store,
//! so connected clients keep working after the switch.
//!
//! What the Python gateway keeps (its `routes.py` and `auth_authlib.py`):
//! * `oauth:client:<client_id>` — JSON with the plaintext `client_secret`,
//!   `redirect_uris` / `grant_types` / `response_types` as JSON-encoded
//!   strings, `client_name`, `scope`, `client_id_issued_at`,
//!   `client_secret_expires_at` (0: never), the plaintext
//!   `registration_access_token`; the key's TTL is `CLIENT_LIFETIME`.
//! * `oauth:refresh:<refresh token>` — JSON `{user_id, username, client_id,
//!   scope, created_at}`, `user_id` being the GitHub numeric id and
//!   `username` the GitHub login; the key's TTL is `REFRESH_TOKEN_LIFETIME`.
//!   The key itself is the secret: it is never printed (see [`shown_key`]).
//! * `oauth:token:*`, `oauth:user_tokens:*`, `oauth:code:*`, `oauth:state:*`:
//!   access-token bookkeeping and sign-ins in progress, not carried over.
//!
//! What this gateway makes of them:
//! * a client keeps its `client_id`; its secret and registration access token
//!   are stored as SHA-256 hashes (as ours are); its metadata goes through the
//!   checks a registration here gets (`registration::validate_metadata`), with
//!   `client_secret_post` — the only way the Python `/token` read a secret;
//!   it lapses when the Python record would have (its TTL).
//! * a refresh token becomes a new refresh-token family of the same client
//!   and user (`github:<user_id>`, named by the login, as our GitHub sign-in
//!   names users), at generation 0, with the token's hash as the current one
//!   and its remaining lifetime; the family id is derived one way from the
//!   token (`token::imported_family_id`), so the token itself is recognised at
//!   `/token` and rotated on first use like ours (the old one is then reuse).
//!
//! The Python Redis is only read (SCAN, GET, PTTL through [`PythonRedis`]).
//! Writes here are `put_if_absent`: running the import again changes nothing
//! that is already imported (a family already refreshed here stays as it is).

use std::fmt::Write as _;
use std::time::Duration;

use gateway_common::crypto::hash_secret;
use gateway_store::redis_store::RedisUrl;
use gateway_store::{RedisStore, Store, StoreError, Ttl};
use mcp_authz::protocol::records::{
    client_key, family_key, AuthMethod, ClientMetadata, ClientRecord, ClientSource, RefreshFamily,
};
use mcp_authz::signin::Identity;
use serde_json::{Map, Value};

use crate::error::{AdminError, AdminResult};

pub const PY_PREFIX: &str = "oauth:";
pub const PY_CLIENT_PREFIX: &str = "oauth:client:";
pub const PY_REFRESH_PREFIX: &str = "oauth:refresh:";

/// The Python gateway's Redis, read only: nothing here can write to it.
#[derive(Debug)]
pub struct PythonRedis {
    store: RedisStore,
    display: String,
}

impl PythonRedis {
    /// `url` as the Python gateway's `REDIS_URL` (a password in the URL, or
    /// `password` as its `REDIS_PASSWORD`). Connects on first use.
    pub fn open(url: &str, password: Option<&str>) -> AdminResult<Self> {
        let url = RedisUrl::parse(url, password)
            .map_err(|e| AdminError::Import(format!("--from-redis {}", problem(&e))))?;
        let display = url.display();
        let store = RedisStore::from_url(url)
            .map_err(|e| AdminError::Import(format!("--from-redis {}", problem(&e))))?;
        Ok(Self { store, display })
    }

    /// `host:port/db`, without credentials.
    pub fn display(&self) -> &str {
        &self.display
    }

    fn failed(&self, e: StoreError) -> AdminError {
        AdminError::Import(format!(
            "reading the Python gateway's Redis at {}: {}",
            self.display,
            problem(&e)
        ))
    }

    /// Every `oauth:*` key (SCAN, never KEYS).
    async fn keys(&self) -> AdminResult<Vec<String>> {
        let mut keys = self
            .store
            .keys_with_prefix(PY_PREFIX)
            .await
            .map_err(|e| self.failed(e))?;
        keys.sort();
        Ok(keys)
    }

    /// A record and its remaining lifetime; `Ok(None)` when it is gone.
    /// The inner error is this record's own (a key that is not a string,
    /// say); the outer one means the Redis cannot be read at all.
    async fn read(&self, key: &str) -> AdminResult<Result<Option<(Vec<u8>, Ttl)>, String>> {
        let own = |e: StoreError| match e {
            StoreError::Backend(m) => Ok(Err(format!("cannot be read ({m})"))),
            other => Err(self.failed(other)),
        };
        let raw = match self.store.get(key).await {
            Ok(Some(raw)) => raw,
            Ok(None) => return Ok(Ok(None)),
            Err(e) => return own(e),
        };
        // Value first, then TTL: a record that lapses in between is skipped.
        match self.store.ttl(key).await {
            Ok(None) => Ok(Ok(None)),
            Ok(Some(ttl)) => Ok(Ok(Some((raw, ttl)))),
            Err(e) => own(e),
        }
    }
}

fn problem(e: &StoreError) -> String {
    match e {
        StoreError::Config(m) | StoreError::Unavailable(m) | StoreError::Backend(m) => m.clone(),
    }
}

/// How a key is shown: a refresh token's key holds the token, so only a
/// short hash of it is printed (enough to tell records apart, useless to
/// anyone who would refresh with it).
pub fn shown_key(key: &str) -> String {
    match key.strip_prefix(PY_REFRESH_PREFIX) {
        Some(token) => format!("{PY_REFRESH_PREFIX}<sha256 {}…>", &hash_secret(token)[..12]),
        None => key.to_string(),
    }
}

/// What this gateway needs to know to import: from its authorization
/// server's configuration.
#[derive(Debug, Clone)]
pub struct Target {
    pub scopes_supported: Vec<String>,
    /// The scope of imported grants (the Python scopes — `openid profile
    /// email` — mean nothing to the MCP services here).
    pub default_scope: String,
    /// The audience of imported grants: every configured MCP service, which a
    /// Python gateway token reached (it had one audience for all).
    pub resources: Vec<String>,
}

impl Target {
    pub fn from_config(c: &mcp_authz::Config) -> Self {
        Self {
            scopes_supported: c.scopes_supported.clone(),
            default_scope: c.default_scope.clone(),
            resources: c.services.iter().map(|s| s.resource.clone()).collect(),
        }
    }
}

/// A record that cannot be imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// As [`shown_key`] shows it.
    pub key: String,
    pub why: String,
}

#[derive(Debug, Clone)]
pub struct ClientImport {
    pub record: ClientRecord,
    pub ttl: Ttl,
}

#[derive(Debug, Clone)]
pub struct FamilyImport {
    /// As [`shown_key`] shows it.
    pub key: String,
    pub family: RefreshFamily,
    pub ttl: Duration,
}

/// What an import would do.
#[derive(Debug, Default)]
pub struct Plan {
    pub clients: Vec<ClientImport>,
    pub families: Vec<FamilyImport>,
    pub refused: Vec<Refused>,
    /// Keys of the kinds that are not carried over, counted by prefix.
    pub not_carried: Vec<(String, usize)>,
}

/// The Python kinds that are deliberately left behind, and why.
const LEFT_BEHIND: [(&str, &str); 4] = [
    (
        "oauth:token:",
        "access tokens: clients get new ones with their imported refresh token",
    ),
    (
        "oauth:user_tokens:",
        "the Python gateway's index of access tokens",
    ),
    (
        "oauth:code:",
        "authorization codes: a sign-in in progress starts again",
    ),
    ("oauth:state:", "sign-ins in progress: they start again"),
];

/// Reads the Python Redis and decides, record by record, what would be
/// imported into `store` (nothing is written).
pub async fn plan(
    py: &PythonRedis,
    store: &dyn Store,
    target: &Target,
    now: u64,
) -> AdminResult<Plan> {
    let mut plan = Plan::default();
    let keys = py.keys().await?;
    let mut refresh_keys = Vec::new();
    let mut other: std::collections::BTreeMap<String, usize> = Default::default();
    for key in keys {
        if key.starts_with(PY_CLIENT_PREFIX) {
            let decided = match py.read(&key).await? {
                Ok(None) => continue,
                Ok(Some((raw, ttl))) => {
                    client_from_python(&key, &raw, ttl, now, &target.scopes_supported)
                }
                Err(why) => Err(why),
            };
            match decided {
                Ok(c) => plan.clients.push(c),
                Err(why) => plan.refused.push(Refused {
                    key: shown_key(&key),
                    why,
                }),
            }
        } else if key.starts_with(PY_REFRESH_PREFIX) {
            refresh_keys.push(key);
        } else {
            let kind = LEFT_BEHIND
                .iter()
                .find(|(p, _)| key.starts_with(p))
                .map_or_else(|| "oauth:<other>".to_string(), |(p, _)| format!("{p}*"));
            *other.entry(kind).or_default() += 1;
        }
    }
    plan.not_carried = other.into_iter().collect();
    for key in refresh_keys {
        let token = key.strip_prefix(PY_REFRESH_PREFIX).unwrap_or_default();
        let decided = match py.read(&key).await? {
            Ok(None) => continue,
            Ok(Some((raw, ttl))) => family_from_python(token, &raw, ttl, now, target),
            Err(why) => Err(why),
        };
        let decided = match decided {
            Err(why) => Err(why),
            Ok((family, ttl)) => {
                let client_ok = plan
                    .clients
                    .iter()
                    .any(|c| c.record.client_id == family.client_id)
                    || store.get(&client_key(&family.client_id)).await?.is_some();
                if client_ok {
                    Ok((family, ttl))
                } else if plan
                    .refused
                    .iter()
                    .any(|r| r.key == format!("{PY_CLIENT_PREFIX}{}", family.client_id))
                {
                    Err(format!(
                        "its client {} is not importable (see above)",
                        family.client_id
                    ))
                } else {
                    Err(format!(
                        "its client {} is registered neither in the Python gateway (expired or deleted) nor here",
                        family.client_id
                    ))
                }
            }
        };
        match decided {
            Ok((family, ttl)) => plan.families.push(FamilyImport {
                key: shown_key(&key),
                family,
                ttl,
            }),
            Err(why) => plan.refused.push(Refused {
                key: shown_key(&key),
                why,
            }),
        }
    }
    Ok(plan)
}

/// A string field that the Python gateway stores as a JSON-encoded list
/// (`json.dumps([...])`), or a list as it is.
fn list_field(obj: &Map<String, Value>, field: &str) -> Result<Option<Vec<Value>>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a.clone())),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Array(a)) => Ok(Some(a)),
            _ => Err(format!("{field} is not a JSON list")),
        },
        Some(_) => Err(format!("{field} is neither a list nor a JSON-encoded one")),
    }
}

fn nonneg_int(obj: &Map<String, Value>, field: &str) -> Result<Option<u64>, String> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{field} is not a non-negative integer")),
    }
}

fn lapse(now: u64, ttl: Ttl) -> Option<u64> {
    ttl.map(|t| now + t.as_secs() + u64::from(t.subsec_nanos() > 0))
}

/// One `oauth:client:<id>` record as ours, or why it cannot be.
pub fn client_from_python(
    key: &str,
    raw: &[u8],
    ttl: Ttl,
    now: u64,
    scopes_supported: &[String],
) -> Result<ClientImport, String> {
    let v: Value =
        serde_json::from_slice(raw).map_err(|e| format!("not JSON ({e}): unknown record shape"))?;
    let obj = v
        .as_object()
        .ok_or("not a JSON object: unknown record shape")?;
    let client_id = obj
        .get("client_id")
        .and_then(Value::as_str)
        .ok_or("no client_id: unknown record shape")?;
    if key.strip_prefix(PY_CLIENT_PREFIX) != Some(client_id) {
        return Err(format!(
            "its client_id {client_id:?} is not the one in its key"
        ));
    }
    if client_id.is_empty()
        || client_id.len() > 255
        || !client_id.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err("client_id is not a printable token of at most 255 characters".into());
    }
    let secret = match obj.get("client_secret") {
        Some(Value::String(s)) if !s.is_empty() => s,
        _ => {
            return Err(
                "no client_secret: unknown record shape (the Python gateway registers every client with one)"
                    .into(),
            )
        }
    };
    let secret_expires = nonneg_int(obj, "client_secret_expires_at")?.unwrap_or(0);
    if secret_expires != 0 && secret_expires <= now {
        return Err(format!(
            "expired: client_secret_expires_at {secret_expires} is in the past"
        ));
    }
    let issued_at = match nonneg_int(obj, "client_id_issued_at")? {
        Some(t) => t,
        None => nonneg_int(obj, "created_at")?.unwrap_or(now),
    };
    // The metadata a registration here accepts, checked the same way.
    let mut body = Map::new();
    for field in ["redirect_uris", "grant_types", "response_types"] {
        if let Some(list) = list_field(obj, field)? {
            body.insert(field.into(), Value::Array(list));
        }
    }
    for field in [
        "client_name",
        "scope",
        "client_uri",
        "logo_uri",
        "contacts",
        "tos_uri",
        "policy_uri",
    ] {
        if let Some(v) = obj.get(field).filter(|v| !v.is_null()) {
            body.insert(field.into(), v.clone());
        }
    }
    body.insert(
        "token_endpoint_auth_method".into(),
        Value::String(AuthMethod::ClientSecretPost.as_str().into()),
    );
    let metadata: ClientMetadata = mcp_authz::protocol::registration::validate_metadata(
        &Value::Object(body),
        scopes_supported,
    )
    .map_err(|e| {
        let p = e.parts();
        format!(
            "its metadata is not accepted here ({}: {})",
            p.code,
            p.description.unwrap_or("-")
        )
    })?;
    let registration_token_hash = match obj.get("registration_access_token") {
        Some(Value::String(t)) if !t.is_empty() => Some(hash_secret(t)),
        _ => None,
    };
    // It lapses when the Python gateway would have dropped it (the key's TTL);
    // a record without one never expires, unless its secret says otherwise.
    let expires_at = lapse(now, ttl).or((secret_expires != 0).then_some(secret_expires));
    let record = ClientRecord {
        client_id: client_id.to_string(),
        source: ClientSource::Registered,
        issued_at,
        expires_at,
        secret_hash: Some(hash_secret(secret)),
        registration_token_hash,
        metadata,
    };
    let ttl = expires_at.map(|e| Duration::from_secs(e.saturating_sub(now).max(1)));
    Ok(ClientImport { record, ttl })
}

/// One `oauth:refresh:<token>` record as a new family of ours, or why it
/// cannot be. `token` is the secret: no message here contains it.
pub fn family_from_python(
    token: &str,
    raw: &[u8],
    ttl: Ttl,
    now: u64,
    target: &Target,
) -> Result<(RefreshFamily, Duration), String> {
    let family_id = mcp_authz::protocol::token::imported_family_id(token)
        .ok_or("the token is not of the Python gateway's shape (32 to 128 base64url characters)")?;
    let v: Value =
        serde_json::from_slice(raw).map_err(|e| format!("not JSON ({e}): unknown record shape"))?;
    let obj = v
        .as_object()
        .ok_or("not a JSON object: unknown record shape")?;
    let field = |name: &str| -> Result<&str, String> {
        obj.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("no {name}: unknown record shape"))
    };
    let client_id = field("client_id")?;
    let user_id = field("user_id")?;
    let username = field("username")?;
    // The GitHub sign-in of the Python gateway stores `str(user["id"])`.
    if !user_id.bytes().all(|b| b.is_ascii_digit()) || user_id.len() > 20 {
        return Err(format!(
            "user_id {user_id:?} is not a GitHub user id (the Python gateway signs in with GitHub only)"
        ));
    }
    if username.len() > 100 || username.chars().any(char::is_control) {
        return Err("username is not a GitHub login".into());
    }
    // No TTL: the Python gateway always sets one (REFRESH_TOKEN_LIFETIME).
    let Some(ttl) = ttl else {
        return Err(
            "it has no expiry, which the Python gateway never writes: unknown record shape".into(),
        );
    };
    if ttl.is_zero() {
        return Err("expired".into());
    }
    if target.resources.is_empty() {
        return Err("no MCP service is configured here (MCP_<SERVICE>_ENABLED), so a token of it would reach nothing".into());
    }
    let exp = lapse(now, Some(ttl)).unwrap_or(now);
    let family = RefreshFamily {
        family_id,
        client_id: client_id.to_string(),
        user: Identity {
            sub: format!("github:{user_id}"),
            name: username.to_string(),
            email: None,
            groups: Vec::new(),
            idp: "github".to_string(),
            // The Python gateway kept no GitHub token; see `signin::github` for
            // how a refresh re-checks such a user.
            upstream_token: None,
            // Its allowlist was checked at sign-in, when the record was made.
            checked_at: nonneg_int(obj, "created_at")?,
        },
        scope: target.default_scope.clone(),
        resources: target.resources.clone(),
        current_hash: hash_secret(token),
        previous_hashes: Vec::new(),
        generation: 0,
        revoked: false,
        exp,
        last_access: None,
        jkt: None,
    };
    let ttl = mcp_authz::admin::family_ttl(now, &family);
    Ok((family, ttl))
}

/// What the import wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub clients: usize,
    pub families: usize,
    /// Already here from an earlier run (left as they are).
    pub clients_present: usize,
    pub families_present: usize,
}

/// Writes the plan's records that are not here yet.
pub async fn apply(store: &dyn Store, plan: &Plan) -> AdminResult<Applied> {
    let mut done = Applied::default();
    for c in &plan.clients {
        let raw = serde_json::to_vec(&c.record)
            .map_err(|e| AdminError::Import(format!("encoding a client: {e}")))?;
        if store
            .put_if_absent(&client_key(&c.record.client_id), &raw, c.ttl)
            .await?
        {
            done.clients += 1;
        } else {
            done.clients_present += 1;
        }
    }
    for f in &plan.families {
        let raw = serde_json::to_vec(&f.family)
            .map_err(|e| AdminError::Import(format!("encoding a refresh family: {e}")))?;
        if store
            .put_if_absent(&family_key(&f.family.family_id), &raw, Some(f.ttl))
            .await?
        {
            done.families += 1;
        } else {
            done.families_present += 1;
        }
    }
    Ok(done)
}

/// The report: what is (or would be) imported, and what is not, and why.
pub fn render(py: &str, plan: &Plan, applied: Option<&Applied>, now: u64) -> String {
    let mut out = String::new();
    let verb = if applied.is_some() {
        "import"
    } else {
        "would import"
    };
    let _ = writeln!(out, "Python gateway Redis: {py}");
    for c in &plan.clients {
        let _ = writeln!(
            out,
            "{verb} client {} ({}; {} redirect URI(s); {})",
            c.record.client_id,
            c.record.display_name(),
            c.record.metadata.redirect_uris.len(),
            c.record
                .expires_at
                .map_or("never expires".to_string(), |e| format!(
                    "expires in {}s",
                    e.saturating_sub(now)
                )),
        );
    }
    for f in &plan.families {
        let _ = writeln!(
            out,
            "{verb} refresh token {} of client {} for {} ({}; expires in {}s)",
            f.key,
            f.family.client_id,
            f.family.user.sub,
            f.family.user.name,
            f.family.exp.saturating_sub(now),
        );
    }
    for r in &plan.refused {
        let _ = writeln!(out, "not importable: {}: {}", r.key, r.why);
    }
    for (kind, n) in &plan.not_carried {
        let why = LEFT_BEHIND
            .iter()
            .find(|(p, _)| kind.starts_with(p))
            .map_or("not a record this import knows", |(_, w)| w);
        let _ = writeln!(out, "not carried over: {n} {kind} key(s) ({why})");
    }
    match applied {
        None => {
            let _ = writeln!(
                out,
                "dry run: {} client(s) and {} refresh token(s) would be imported, {} record(s) cannot be; nothing written",
                plan.clients.len(),
                plan.families.len(),
                plan.refused.len()
            );
        }
        Some(a) => {
            let _ = writeln!(
                out,
                "imported {} client(s) and {} refresh token(s) ({} client(s) and {} refresh token(s) were already here and were left as they are); {} record(s) not importable; the Python keys are unchanged",
                a.clients, a.families, a.clients_present, a.families_present, plan.refused.len()
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            scopes_supported: vec!["mcp".into()],
            default_scope: "mcp".into(),
            resources: vec!["https://echo.example.com/mcp".into()],
        }
    }

    /// As `routes.py` 0.2.0 writes a registration.
    fn py_client(id: &str, expires_at: u64) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "client_id": id,
            "client_secret": "s3cret-s3cret-s3cret",
            "client_secret_expires_at": expires_at,
            "client_id_issued_at": 1000,
            "redirect_uris": "[\"http://127.0.0.1:9/cb\"]",
            "client_name": "Claude",
            "scope": "openid profile email",
            "created_at": 1000,
            "response_types": "[\"code\"]",
            "grant_types": "[\"authorization_code\", \"refresh_token\"]",
            "registration_access_token": "reg-abc",
        }))
        .unwrap()
    }

    #[test]
    fn a_registration_keeps_its_id_and_lifetime_and_its_secrets_are_hashed() {
        let raw = py_client("client_x", 5000);
        let c = client_from_python(
            "oauth:client:client_x",
            &raw,
            Some(Duration::from_secs(4000)),
            1000,
            &target().scopes_supported,
        )
        .unwrap();
        assert_eq!(c.record.client_id, "client_x");
        assert_eq!(c.record.expires_at, Some(5000));
        assert_eq!(c.ttl, Some(Duration::from_secs(4000)));
        assert_eq!(
            c.record.secret_hash.as_deref(),
            Some(hash_secret("s3cret-s3cret-s3cret").as_str())
        );
        assert_eq!(
            c.record.registration_token_hash.as_deref(),
            Some(hash_secret("reg-abc").as_str())
        );
        let m = &c.record.metadata;
        assert_eq!(m.redirect_uris, vec!["http://127.0.0.1:9/cb"]);
        assert_eq!(m.grant_types, vec!["authorization_code", "refresh_token"]);
        assert_eq!(m.token_endpoint_auth_method, AuthMethod::ClientSecretPost);
        // OpenID scopes mean nothing here: the default applies.
        assert_eq!(m.scope, None);
        let stored = serde_json::to_string(&c.record).unwrap();
        assert!(!stored.contains("s3cret") && !stored.contains("reg-abc"));
    }

    #[test]
    fn expired_and_unknown_records_say_why() {
        let scopes = target().scopes_supported;
        let e =
            |key: &str, raw: &[u8]| client_from_python(key, raw, None, 9000, &scopes).unwrap_err();
        assert!(e("oauth:client:client_x", &py_client("client_x", 5000)).starts_with("expired"));
        assert!(e("oauth:client:client_x", b"{not json").contains("unknown record shape"));
        assert!(e("oauth:client:client_x", b"[1]").contains("unknown record shape"));
        assert!(
            e("oauth:client:other", &py_client("client_x", 0)).contains("not the one in its key")
        );
        // Never expiring (CLIENT_LIFETIME=0): kept so.
        let c =
            client_from_python("oauth:client:c", &py_client("c", 0), None, 9000, &scopes).unwrap();
        assert_eq!((c.record.expires_at, c.ttl), (None, None));
    }

    #[test]
    fn a_refresh_token_becomes_a_family_of_the_same_client_and_github_user() {
        let token = "uJ3k-_x9QmZ0aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0u";
        let raw = br#"{"user_id": "4242", "username": "octo", "client_id": "client_x", "scope": "openid profile email", "created_at": 900}"#;
        let (f, ttl) =
            family_from_python(token, raw, Some(Duration::from_secs(600)), 1000, &target())
                .unwrap();
        assert_eq!(f.client_id, "client_x");
        assert_eq!(f.user.sub, "github:4242");
        assert_eq!(f.user.name, "octo");
        assert_eq!(f.user.idp, "github");
        assert_eq!(f.user.checked_at, Some(900));
        assert_eq!(f.exp, 1600);
        assert_eq!(ttl, Duration::from_secs(600));
        assert_eq!(f.generation, 0);
        assert_eq!(f.current_hash, hash_secret(token));
        assert_eq!(
            Some(f.family_id.clone()),
            mcp_authz::protocol::token::imported_family_id(token)
        );
        assert_eq!(f.resources, target().resources);
        assert!(!serde_json::to_string(&f).unwrap().contains(token));

        let bad = br#"{"user_id": "octo", "username": "octo", "client_id": "c"}"#;
        let why =
            family_from_python(token, bad, Some(Duration::from_secs(5)), 0, &target()).unwrap_err();
        assert!(why.contains("not a GitHub user id"), "{why}");
        let why = family_from_python(token, b"{}", Some(Duration::from_secs(5)), 0, &target())
            .unwrap_err();
        assert!(why.contains("unknown record shape"), "{why}");
        let why = family_from_python("short", raw, Some(Duration::from_secs(5)), 0, &target())
            .unwrap_err();
        assert!(!why.contains("short"));
    }

    #[test]
    fn a_refresh_key_is_shown_without_its_token() {
        let key = "oauth:refresh:uJ3k-_x9QmZ0aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0u";
        let shown = shown_key(key);
        assert!(shown.starts_with("oauth:refresh:<sha256 "));
        assert!(!shown.contains("uJ3k"));
        assert_eq!(shown_key("oauth:client:c"), "oauth:client:c");
    }
}
