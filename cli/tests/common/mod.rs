//! Fixtures shared by the operator-command tests: both stores, and a seeded
//! gateway state made of the authorization server's real record types.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use gateway_common::clock::Clock;
use gateway_common::config::Source;
use gateway_common::flow::{flow_key, flow_value, FlowStep, FLOW_TTL};
use gateway_store::Store;
use gateway_testkit::RedisServer;
use mcp_authz::protocol::records::*;
use mcp_authz::signin::Identity;

pub const HOUR: u64 = 3600;

pub fn now() -> u64 {
    gateway_common::clock::SystemClock.now_secs()
}

/// An embedded store in a temp dir and a private Redis, both empty.
pub struct Stores {
    pub dir: tempfile::TempDir,
    pub redis_server: RedisServer,
    pub embedded: Arc<dyn Store>,
    pub redis: Arc<dyn Store>,
}

impl Stores {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let redis_server = RedisServer::start().await.unwrap();
        let embedded = gateway_store::config::open_from_config(&Self::embedded_src_in(&dir))
            .await
            .unwrap();
        let redis = gateway_store::config::open_from_config(&Source::from_pairs([(
            "REDIS_URL",
            redis_server.url(0),
        )]))
        .await
        .unwrap();
        Self {
            dir,
            redis_server,
            embedded,
            redis,
        }
    }

    fn embedded_src_in(dir: &tempfile::TempDir) -> Source {
        Source::from_pairs([(
            "STORE_PATH",
            dir.path().join("gateway.redb").to_str().unwrap(),
        )])
    }

    pub fn embedded_path(&self) -> String {
        self.dir
            .path()
            .join("gateway.redb")
            .to_str()
            .unwrap()
            .to_string()
    }

    pub fn both(&self) -> [(&'static str, &dyn Store); 2] {
        [("embedded", &*self.embedded), ("redis", &*self.redis)]
    }
}

pub fn user(name: &str) -> Identity {
    // Built from JSON so fields added later (with serde defaults) need no change here.
    serde_json::from_value(serde_json::json!({
        "sub": format!("local:{name}"),
        "name": name,
        "idp": "local",
    }))
    .unwrap()
}

pub fn client(id: &str, name: Option<&str>, now: u64) -> ClientRecord {
    ClientRecord {
        client_id: id.to_string(),
        source: ClientSource::Registered,
        issued_at: now - HOUR,
        expires_at: Some(now + 90 * 24 * HOUR),
        secret_hash: None,
        registration_token_hash: Some("ab".repeat(32)),
        metadata: ClientMetadata {
            redirect_uris: vec!["http://127.0.0.1:33418/callback".to_string()],
            token_endpoint_auth_method: AuthMethod::None,
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            response_types: vec!["code".into()],
            client_name: name.map(str::to_string),
            scope: None,
            extra: serde_json::Map::new(),
        },
    }
}

/// A grant whose newest access token is `last_jti` (if any), live for an hour.
pub fn family(
    id: &str,
    client_id: &str,
    who: &str,
    now: u64,
    last_jti: Option<&str>,
) -> RefreshFamily {
    RefreshFamily {
        family_id: id.to_string(),
        client_id: client_id.to_string(),
        user: user(who),
        scope: "mcp".to_string(),
        resources: vec!["https://everything.example.com/mcp".to_string()],
        current_hash: "cd".repeat(32),
        previous_hashes: Vec::new(),
        generation: 0,
        revoked: false,
        exp: now + 30 * 24 * HOUR,
        last_access: last_jti.map(|j| LiveToken {
            jti: j.to_string(),
            exp: now + HOUR,
        }),
        jkt: None,
    }
}

pub async fn put_json<T: serde::Serialize>(store: &dyn Store, key: &str, v: &T, ttl: Option<u64>) {
    store
        .put(
            key,
            &serde_json::to_vec(v).unwrap(),
            ttl.map(Duration::from_secs),
        )
        .await
        .unwrap();
}

pub async fn get_json<T: serde::de::DeserializeOwned>(store: &dyn Store, key: &str) -> Option<T> {
    store
        .get(key)
        .await
        .unwrap()
        .map(|raw| serde_json::from_slice(&raw).unwrap())
}

/// Two clients (`test-client-1` by alice and bob, `Claude` by alice), their
/// refresh families, consents, a session, a sealed key set (opaque bytes, kept
/// as they are) and a flow record.
pub async fn seed(store: &dyn Store, now: u64) {
    put_json(
        store,
        &client_key("c-test"),
        &client("c-test", Some("test-client-1"), now),
        Some(90 * 24 * HOUR),
    )
    .await;
    put_json(
        store,
        &client_key("c-claude"),
        &client("c-claude", Some("Claude"), now),
        None,
    )
    .await;
    put_json(
        store,
        &family_key("fam-a"),
        &family("fam-a", "c-test", "alice", now, Some("jti-a2")),
        Some(30 * 24 * HOUR),
    )
    .await;
    put_json(
        store,
        &family_key("fam-b"),
        &family("fam-b", "c-test", "bob", now, Some("jti-b1")),
        Some(30 * 24 * HOUR),
    )
    .await;
    put_json(
        store,
        &family_key("fam-c"),
        &family("fam-c", "c-claude", "alice", now, Some("jti-c1")),
        Some(30 * 24 * HOUR),
    )
    .await;
    let consent = ConsentRecord {
        scopes: vec!["mcp".into()],
        resources: vec!["https://everything.example.com/mcp".into()],
    };
    put_json(store, &consent_key("local:alice", "c-test"), &consent, None).await;
    put_json(store, &consent_key("local:bob", "c-test"), &consent, None).await;
    put_json(
        store,
        &consent_key("local:alice", "c-claude"),
        &consent,
        None,
    )
    .await;
    put_json(
        store,
        &session_key("sess-alice"),
        &SessionRecord {
            user: user("alice"),
            exp: now + 900,
        },
        Some(900),
    )
    .await;
    store
        .put(
            mcp_authz::keys::KEYS_RECORD,
            br#"{"v":1,"nonce":"AAAA","ct":"sealed"}"#,
            None,
        )
        .await
        .unwrap();
    store
        .put_if_absent(
            &flow_key("c-claude", FlowStep::FirstUse),
            &flow_value(now - 60),
            Some(FLOW_TTL),
        )
        .await
        .unwrap();
}
