//! `/revoke` (RFC 7009), `/introspect` (RFC 7662) and the revocation feed
//! verifiers follow (`/revocations`, `/revocations/stream`).

use gateway_common::audit::AuditEvent;
use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::StreamExt;
use gateway_common::crypto::hash_secret;
use gateway_common::revocation::{RevocationEvent, RevocationSnapshot, REVOKED_PREFIX};
use serde_json::json;
use tokio_stream::wrappers::{BroadcastStream, IntervalStream};

use super::client_auth::{authenticate, revoking_client, Public};
use super::{no_store_json, Form};
use crate::issue;
use crate::protocol::error::OAuthError;
use crate::protocol::records::{family_key, RefreshFamily};
use crate::protocol::token::split_refresh_token;
use crate::state::AppState;

/// A refresh family, if `token` is one of its tokens (current or rotated).
async fn find_family(
    state: &AppState,
    token: &str,
) -> Result<Option<(RefreshFamily, bool)>, OAuthError> {
    let Some((family_id, generation)) = split_refresh_token(token) else {
        return Ok(None);
    };
    let family_id: &str = &family_id;
    let Some(raw) = state.store.get(&family_key(family_id)).await? else {
        return Ok(None);
    };
    let family = issue::parse_family(&raw)?;
    let hash = hash_secret(token);
    let presented = crate::protocol::token::Presented {
        family_id,
        generation,
        hash: &hash,
    };
    match crate::protocol::token::recognise(&family, &presented) {
        crate::protocol::token::Recognised::Current => Ok(Some((family, true))),
        crate::protocol::token::Recognised::Rotated => Ok(Some((family, false))),
        crate::protocol::token::Recognised::Unknown => Ok(None),
    }
}

/// `POST /revoke`. 200 for unknown or expired tokens (RFC 7009 §2.2); a token
/// issued to another client is refused (§2.1) and stays valid.
pub async fn revoke(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let form = Form::parse(&req, &body)?;
    let client_id = revoking_client(&state, &req, &form).await?;
    let token = form.required("token")?;
    let _hint = form.one("token_type_hint")?;
    let foreign =
        || OAuthError::UnauthorizedClient("the token was not issued to this client".into());
    if let Some(claims) = state.keys.verify(token) {
        if claims.client_id != client_id {
            return Err(foreign());
        }
        issue::revoke_access_token(&state, &claims.jti, claims.exp).await?;
        state.audit(AuditEvent::TokenRevoked {
            client_id: claims.client_id.clone(),
            user: claims.sub.clone(),
            jti: Some(claims.jti.clone()),
            kind: "access_token",
        });
    } else if let Some((family, _)) = find_family(&state, token).await? {
        if family.client_id != client_id {
            return Err(foreign());
        }
        // RFC 7009 §2.1: revoking a refresh token also revokes the access tokens of its grant.
        issue::revoke_family(&state, &family.family_id).await?;
        state.audit(AuditEvent::TokenRevoked {
            client_id: family.client_id.clone(),
            user: family.user.sub.clone(),
            jti: None,
            kind: "refresh_token",
        });
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// `POST /introspect`. Callers authenticate; they see their own tokens, or any
/// token when listed in `INTROSPECTION_CLIENTS` (resource servers).
pub async fn introspect(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    let form = Form::parse(&req, &body)?;
    let caller = authenticate(&state, &req, &form, Public::Refuse).await?;
    let token = form.required("token")?;
    let privileged = state
        .config
        .introspection_clients
        .iter()
        .any(|c| c == &caller.client_id);
    let inactive = || no_store_json(StatusCode::OK, &json!({"active": false}));
    let now = state.now();
    if let Some(claims) = state.keys.verify(token) {
        if claims.exp <= now
            || issue::is_revoked(&state, &claims.jti, claims.sid.as_deref()).await?
        {
            return Ok(inactive());
        }
        if claims.client_id != caller.client_id && !privileged {
            return Ok(inactive());
        }
        return Ok(no_store_json(
            StatusCode::OK,
            &json!({
                "active": true,
                "scope": claims.scope,
                "client_id": claims.client_id,
                "username": claims.name,
                "token_type": "Bearer",
                "exp": claims.exp,
                "iat": claims.iat,
                "sub": claims.sub,
                "aud": claims.aud,
                "iss": claims.iss,
                "jti": claims.jti,
            }),
        ));
    }
    if let Some((family, current)) = find_family(&state, token).await? {
        if !current || family.revoked || family.exp <= now {
            return Ok(inactive());
        }
        if family.client_id != caller.client_id && !privileged {
            return Ok(inactive());
        }
        return Ok(no_store_json(
            StatusCode::OK,
            &json!({
                "active": true,
                "scope": family.scope,
                "client_id": family.client_id,
                "username": family.user.name,
                "exp": family.exp,
                "sub": family.user.sub,
                "aud": family.resources,
                "iss": state.config.issuer,
            }),
        ));
    }
    Ok(inactive())
}

/// Set by a front door that already decided who may read the feed (the
/// one-machine launcher's exposure rules, with their scraper token).
#[derive(Debug, Clone, Copy)]
pub struct FeedAccessGranted;

/// Who may follow the feed: a verifier presenting `REVOCATION_FEED_SECRET`,
/// or — when none is configured — a loopback peer that no proxy relayed. The
/// feed lists revoked ids and holds a connection open: it is for verifiers,
/// not the public.
fn feed_access(req: &HttpRequest, state: &AppState) -> Result<(), OAuthError> {
    use actix_web::HttpMessage;
    if req.extensions().get::<FeedAccessGranted>().is_some() {
        return Ok(());
    }
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let allowed = match &state.config.revocation_feed_secret {
        Some(secret) => secret.accepts(authorization),
        None => {
            let relayed = req.headers().contains_key("x-forwarded-for")
                || req.headers().contains_key(header::FORWARDED);
            !relayed
                && req
                    .peer_addr()
                    .is_some_and(|a| a.ip().to_canonical().is_loopback())
        }
    };
    if allowed {
        Ok(())
    } else {
        state.metrics.limited("revocation_feed_auth");
        Err(OAuthError::InvalidToken(
            "the revocation feed is for verifiers: present REVOCATION_FEED_SECRET as a bearer token".into(),
        ))
    }
}

/// `GET /revocations`: every revoked token that has not expired yet.
pub async fn snapshot(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    feed_access(&req, &state)?;
    let mut revoked = Vec::new();
    for key in state.store.keys_with_prefix(REVOKED_PREFIX).await? {
        if let Some(raw) = state.store.get(&key).await? {
            if let Ok(ev) = serde_json::from_slice::<RevocationEvent>(&raw) {
                revoked.push(ev);
            }
        }
    }
    Ok(no_store_json(
        StatusCode::OK,
        &RevocationSnapshot { revoked },
    ))
}

pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// One open feed stream; dropping it (the connection closed) frees its slot.
struct Subscription(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Subscription {
    fn open(counter: &std::sync::Arc<std::sync::atomic::AtomicUsize>, max: usize) -> Option<Self> {
        use std::sync::atomic::Ordering;
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(counter.clone()))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// `GET /revocations/stream`: server-sent events, one `data:` line per
/// revocation, a `: keepalive` comment every 15 s so a consumer can tell a
/// quiet feed from a dead one. Verifiers only (`feed_access`), and at most
/// `REVOCATION_FEED_MAX_SUBSCRIBERS` at once.
pub async fn stream(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, OAuthError> {
    feed_access(&req, &state)?;
    let Some(slot) = Subscription::open(
        &state.feed_subscribers,
        state.config.revocation_feed_max_subscribers,
    ) else {
        state.metrics.limited("revocation_feed_subscribers");
        return Err(OAuthError::TooManyRequests(KEEPALIVE.as_secs()));
    };
    let events = BroadcastStream::new(state.revocations.subscribe()).filter_map(|ev| async move {
        // A lagging consumer misses events; it re-reads the snapshot on reconnect.
        let ev = ev.ok()?;
        let json = serde_json::to_string(&ev).ok()?;
        Some(Ok::<_, actix_web::Error>(Bytes::from(format!(
            "data: {json}\n\n"
        ))))
    });
    let mut tick = tokio::time::interval(KEEPALIVE);
    tick.reset();
    let keepalive = IntervalStream::new(tick).map(|_| Ok(Bytes::from_static(b": keepalive\n\n")));
    let hello = futures_util::stream::once(async { Ok(Bytes::from_static(b": connected\n\n")) });
    let body = hello
        .chain(futures_util::stream::select(events, keepalive))
        // On stop the stream ends (the last chunk is sent), so verifiers see
        // a clean end and reconnect to another replica.
        .take_until(state.closed())
        // The slot lives as long as the body: freed when the connection goes.
        .map(move |chunk| {
            let _held = &slot;
            chunk
        });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}
