//! Test support: an ES256 key of our own, token minting, and a small actix
//! server that serves the authz-server's verifier contract (brief, "Shared
//! contracts"): `GET /jwks`, `GET /revocations`, `GET /revocations/stream`.
//! It is the contract the real authz-server implements, served in-process so
//! the verifier's tests do not depend on another crate being finished.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test support: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use gateway_common::claims::{AccessClaims, Audience, ACCESS_TOKEN_TYP};
use gateway_common::config::Source;
use gateway_common::keys::{Jwk, JwkSet};
use gateway_common::revocation::{RevocationEvent, RevocationSnapshot};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::ecdsa::SigningKey;
use p256::pkcs8::EncodePrivateKey;
use tokio::sync::broadcast;

/// An ES256 signing key with its public JWK.
pub struct TestKey {
    pub kid: String,
    encoding: EncodingKey,
    pub jwk: Jwk,
}

impl TestKey {
    pub fn generate(kid: &str) -> Self {
        let sk = SigningKey::random(&mut rand::rngs::OsRng);
        let der = sk.to_pkcs8_der().expect("pkcs8");
        let encoding = EncodingKey::from_ec_der(der.as_bytes());
        let point = sk.verifying_key().to_encoded_point(false);
        let jwk: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(point.x().expect("x")),
            "y": URL_SAFE_NO_PAD.encode(point.y().expect("y")),
            "kid": kid,
            "alg": "ES256",
            "use": "sig",
        }))
        .expect("jwk");
        Self {
            kid: kid.to_string(),
            encoding,
            jwk,
        }
    }

    pub fn sign(&self, claims: &AccessClaims) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(self.kid.clone());
        h.typ = Some(ACCESS_TOKEN_TYP.to_string());
        self.sign_with(h, claims)
    }

    pub fn sign_with(&self, header: Header, claims: &AccessClaims) -> String {
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }
}

pub fn jwks(keys: &[&TestKey]) -> JwkSet {
    JwkSet {
        keys: keys.iter().map(|k| k.jwk.clone()).collect(),
    }
}

pub const ISSUER: &str = "https://auth.example.test";

/// Claims for `aud`, valid from `now` for an hour.
pub fn claims(aud: &str, now: u64) -> AccessClaims {
    AccessClaims {
        iss: ISSUER.to_string(),
        sub: "github:4242".into(),
        aud: Audience::One(aud.to_string()),
        exp: now + 3600,
        iat: now,
        nbf: None,
        jti: uuid::Uuid::new_v4().to_string(),
        client_id: "client-abc".into(),
        scope: "mcp".into(),
        name: "octocat".into(),
        email: Some("octo@example.test".into()),
        groups: vec!["acme".into(), "acme/sre".into()],
        idp: Some("github".into()),
        sid: None,
        cnf: None,
    }
}

pub fn now() -> u64 {
    gateway_common::clock::system().now_secs()
}

#[derive(Clone, Debug)]
enum Push {
    Event(String),
    /// End every open stream (a lost connection).
    Cut,
}

struct State {
    jwks: RwLock<JwkSet>,
    revoked: Mutex<Vec<RevocationEvent>>,
    tx: broadcast::Sender<Push>,
    refuse_streams: AtomicBool,
    keepalive: Duration,
    jwks_fetches: AtomicUsize,
    streams_opened: AtomicUsize,
}

/// The in-test authz contract server.
pub struct Authz {
    pub addr: SocketAddr,
    pub url: String,
    state: Arc<State>,
    handle: actix_web::dev::ServerHandle,
}

impl Authz {
    pub async fn start(jwks: JwkSet) -> Self {
        Self::start_with(jwks, Vec::new(), Duration::from_secs(15)).await
    }

    pub async fn start_with(
        jwks: JwkSet,
        revoked: Vec<RevocationEvent>,
        keepalive: Duration,
    ) -> Self {
        let (tx, _) = broadcast::channel(4096);
        let state = Arc::new(State {
            jwks: RwLock::new(jwks),
            revoked: Mutex::new(revoked),
            tx,
            refuse_streams: AtomicBool::new(false),
            keepalive,
            jwks_fetches: AtomicUsize::new(0),
            streams_opened: AtomicUsize::new(0),
        });
        let data = web::Data::from(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/jwks", web::get().to(get_jwks))
                .route("/revocations", web::get().to(get_snapshot))
                .route("/revocations/stream", web::get().to(get_stream))
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .expect("bind authz");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            addr,
            url: format!("http://{addr}"),
            state,
            handle,
        }
    }

    /// Revokes: into the snapshot, then pushed to every open stream.
    pub fn revoke(&self, jti: &str, exp: u64) {
        let ev = RevocationEvent {
            jti: jti.to_string(),
            exp,
        };
        self.state.revoked.lock().unwrap().push(ev.clone());
        let _ = self
            .state
            .tx
            .send(Push::Event(serde_json::to_string(&ev).unwrap()));
    }

    /// Revokes without telling open streams (only a snapshot will show it).
    pub fn revoke_silently(&self, jti: &str, exp: u64) {
        self.state.revoked.lock().unwrap().push(RevocationEvent {
            jti: jti.to_string(),
            exp,
        });
    }

    pub fn set_jwks(&self, set: JwkSet) {
        *self.state.jwks.write().unwrap() = set;
    }

    /// Cuts open streams; while `refuse` is set, new ones get 503.
    pub fn cut_streams(&self, refuse: bool) {
        self.state.refuse_streams.store(refuse, Ordering::SeqCst);
        let _ = self.state.tx.send(Push::Cut);
    }

    pub fn allow_streams(&self) {
        self.state.refuse_streams.store(false, Ordering::SeqCst);
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    pub fn streams_opened(&self) -> usize {
        self.state.streams_opened.load(Ordering::SeqCst)
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

async fn get_jwks(s: web::Data<State>) -> HttpResponse {
    s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let set = s.jwks.read().unwrap().clone();
    HttpResponse::Ok().json(set)
}

async fn get_snapshot(s: web::Data<State>) -> HttpResponse {
    let snap = RevocationSnapshot {
        revoked: s.revoked.lock().unwrap().clone(),
    };
    HttpResponse::Ok().json(snap)
}

async fn get_stream(s: web::Data<State>) -> HttpResponse {
    if s.refuse_streams.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().finish();
    }
    s.streams_opened.fetch_add(1, Ordering::SeqCst);
    let rx = s.tx.subscribe();
    let mut tick = tokio::time::interval(s.keepalive);
    tick.reset();
    let first = futures_util::stream::once(async {
        Ok::<_, actix_web::Error>(Bytes::from_static(b": connected\n\n"))
    });
    let rest = futures_util::stream::unfold((rx, tick), |(mut rx, mut tick)| async move {
        let chunk = tokio::select! {
            _ = tick.tick() => Bytes::from_static(b": keepalive\n\n"),
            msg = rx.recv() => match msg {
                Ok(Push::Event(json)) => Bytes::from(format!("data: {json}\n\n")),
                Ok(Push::Cut) | Err(_) => return None,
            },
        };
        Some((Ok::<_, actix_web::Error>(chunk), (rx, tick)))
    });
    use futures_util::StreamExt;
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-store"))
        .streaming(first.chain(rest))
}

/// Verifier config for one service at `resource`, feeding from `authz`.
pub fn source(authz: &Authz, resource: &str) -> Source {
    Source::from_pairs([
        ("AUTH_ISSUER", ISSUER),
        ("AUTHZ_URL", authz.url.as_str()),
        ("VERIFIER_LISTEN", "127.0.0.1:0"),
        ("VERIFIER_WORKERS", "1"),
        ("MCP_ECHO_ENABLED", "true"),
        ("MCP_ECHO_URL", resource),
    ])
}

/// Polls `f` every 5 ms until it is true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
