//! POST, GET and DELETE on the Streamable HTTP endpoint.

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;
use tokio::sync::oneshot;

use super::relay::{admit, arm_timeout, forward_error, respond};
use super::request::{
    accepts, context, header_str, identity, is_json_content, read_body, requested_version,
};
use super::sse_body::{sse_response, SseBody};
use super::stateless::{native_post, stateless_post};
use super::{Shared, METHOD_HEADER, NAME_HEADER, SESSION_HEADER};
use crate::bridge::Bridge;
use crate::error::BridgeError;
use crate::jsonrpc::{self, code, Body, Kind, Message};
use crate::session::{Session, SessionKind};
use crate::stream::{parse_event_id, SseStream};
use crate::tool_gate::{check_present_headers, Admission, Followup};
use crate::upstream::{ForwardError, Reply};
use crate::version;

fn session_from(bridge: &Bridge, req: &HttpRequest) -> Result<Arc<Session>, BridgeError> {
    let id = header_str(req, SESSION_HEADER).ok_or(BridgeError::MissingSession)?;
    let s = bridge
        .lookup_for(id, &identity(req))
        .ok_or(BridgeError::UnknownSession)?;
    if s.kind != SessionKind::Streamable {
        return Err(BridgeError::UnknownSession);
    }
    Ok(s)
}

/// POST: one message (or a 2025-03-26 batch) from the client.
pub async fn post(req: HttpRequest, payload: web::Payload, bridge: Shared) -> HttpResponse {
    let r = post_inner(&req, payload, &bridge).await;
    respond(&bridge, r)
}

async fn post_inner(
    req: &HttpRequest,
    payload: web::Payload,
    bridge: &Arc<Bridge>,
) -> Result<HttpResponse, BridgeError> {
    if !is_json_content(req) {
        return Err(BridgeError::UnsupportedMediaType);
    }
    let acc = accepts(req);
    if !acc.json && !acc.sse {
        return Err(BridgeError::NotAcceptable);
    }
    let body = read_body(payload, bridge.cfg.max_message_bytes).await?;
    let parsed = jsonrpc::parse_body(&body).map_err(BridgeError::Frame)?;
    let requested = requested_version(req)?;
    if let Some(gate) = &bridge.cfg.tool_gate {
        gate.watch();
    }
    if header_str(req, "authorization").is_some() {
        tracing::debug!("request carried an Authorization header; it stays at the bridge");
    }
    if let Some(native) = &bridge.native {
        return native_post(req, bridge, native, parsed, requested, acc).await;
    }
    if let Some(v) = requested.filter(|v| version::is_stateless(v)) {
        return stateless_post(req, bridge, parsed, v, acc).await;
    }
    let use_sse = acc.sse && (!acc.json || (acc.sse_named && !bridge.cfg.prefer_json));
    if let Body::Single(m) = &parsed {
        // Mirrored headers are optional before 2026-07-28, but when a client
        // sends them they must name what the body does: the verifier decided on them.
        check_present_headers(
            header_str(req, METHOD_HEADER),
            header_str(req, NAME_HEADER),
            &m.value,
        )
        .map_err(|message| BridgeError::HeaderMismatch {
            id: m.value.get("id").cloned(),
            message,
        })?;
    }
    match parsed {
        Body::Single(m) if m.is_request() && m.method() == Some("initialize") => {
            let session =
                bridge.create_session(SessionKind::Streamable, identity(req), m.value.get("id"))?;
            let offered = m
                .params()
                .and_then(|p| p.get("protocolVersion"))
                .and_then(Value::as_str)
                .unwrap_or(version::ASSUMED)
                .to_string();
            let r = dispatch(req, bridge, &session, vec![m], use_sse, &offered).await;
            if r.is_err() {
                bridge.end_session(&session.id);
            }
            r.map(|mut resp| {
                if let Ok(v) = header::HeaderValue::from_str(&session.id) {
                    resp.headers_mut()
                        .insert(header::HeaderName::from_static(SESSION_HEADER), v);
                }
                resp
            })
        }
        body => {
            let session = session_from(bridge, req)?;
            session.touch(Instant::now());
            let effective = requested
                .map(str::to_string)
                .or_else(|| session.negotiated())
                .unwrap_or_else(|| version::ASSUMED.to_string());
            let messages = match body {
                Body::Single(m) => vec![m],
                Body::Batch(v) => {
                    if !version::allows_batch(&effective) {
                        return Err(BridgeError::BatchNotAllowed);
                    }
                    if v.iter().any(|m| m.method() == Some("initialize")) {
                        return Err(BridgeError::InitializeInBatch);
                    }
                    v
                }
            };
            dispatch(req, bridge, &session, messages, use_sse, &effective).await
        }
    }
}

/// Forwards messages; requests are answered as JSON or on a new SSE stream.
async fn dispatch(
    req: &HttpRequest,
    bridge: &Arc<Bridge>,
    session: &Arc<Session>,
    messages: Vec<Message>,
    use_sse: bool,
    version: &str,
) -> Result<HttpResponse, BridgeError> {
    let upstream = session.upstream.clone();
    let batch = messages.len() > 1;
    let mut requests = Vec::new();
    for m in messages {
        match m.kind {
            Kind::Request { .. } => requests.push(m.value),
            Kind::Notification { .. } => upstream
                .forward_notification(session, m.value)
                .map_err(|e| forward_error(bridge, session, e))?,
            Kind::Response { .. } => upstream
                .forward_response(session, m.value)
                .map_err(|e| forward_error(bridge, session, e))?,
        }
    }
    if requests.is_empty() {
        // Notifications and responses only: 202, no body (transports, "Sending Messages" 4).
        return Ok(HttpResponse::Accepted().finish());
    }
    if !upstream.is_alive() {
        return Err(forward_error(bridge, session, ForwardError::Gone));
    }
    let ctx = upstream
        .is_builtin()
        .then(|| context(req, Some(&session.id), version, "streamable-http"));
    let who = bridge.cfg.tool_gate.as_ref().map(|_| identity(req));
    if use_sse {
        let stream = session.new_request_stream(requests.len());
        let rx = stream.attach(bridge.cfg.max_queued, None);
        let primed = version::primes_streams(version);
        if primed {
            stream.prime(bridge.cfg.sse_retry_ms);
        }
        let connection = stream.connection();
        let single = requests.len() == 1;
        for r in requests {
            let client_id = r.get("id").cloned();
            let followup = match admit(bridge, who.as_ref(), &r) {
                Admission::Refuse(e) => {
                    stream.push(&e, true);
                    continue;
                }
                Admission::Forward(f) => f,
            };
            // A list to filter or a call to audit: take the answer here, then stream it.
            let (reply, pending) = match followup {
                None => (Reply::Stream(stream.clone()), None),
                Some(f) => {
                    let (tx, rx) = oneshot::channel();
                    (Reply::Json(tx), Some((f, rx)))
                }
            };
            match upstream.forward_request(session, r, reply, ctx.as_ref()) {
                Ok(id) => {
                    arm_timeout(bridge, &upstream, id);
                    if let Some((f, rx)) = pending {
                        finish_on_stream(bridge, stream.clone(), f, rx, client_id);
                    }
                }
                Err((e, _)) if single => {
                    stream.close();
                    return Err(forward_error(bridge, session, e));
                }
                Err((e, _)) => stream.push(
                    &jsonrpc::error(client_id.as_ref(), code::SERVER_UNAVAILABLE, &e.to_string()),
                    true,
                ),
            }
        }
        if primed {
            close_unanswered(bridge, &stream, connection);
        }
        return Ok(sse_response(SseBody::new(rx, false, None), None));
    }
    let mut waits = Vec::new();
    for r in requests {
        let client_id = r.get("id").cloned();
        let followup = match admit(bridge, who.as_ref(), &r) {
            Admission::Refuse(e) => {
                let (tx, rx) = oneshot::channel();
                let _ = tx.send(e);
                waits.push((client_id, Some(rx), None));
                continue;
            }
            Admission::Forward(f) => f,
        };
        let (tx, rx) = oneshot::channel();
        match upstream.forward_request(session, r, Reply::Json(tx), ctx.as_ref()) {
            Ok(id) => {
                arm_timeout(bridge, &upstream, id);
                waits.push((client_id, Some(rx), followup));
            }
            Err((e, _)) if !batch => return Err(forward_error(bridge, session, e)),
            Err((e, _)) => {
                let (tx, rx) = oneshot::channel();
                let _ = tx.send(jsonrpc::error(
                    client_id.as_ref(),
                    code::SERVER_UNAVAILABLE,
                    &e.to_string(),
                ));
                waits.push((client_id, Some(rx), None));
            }
        }
    }
    let _busy = session.json_wait();
    let mut out = Vec::with_capacity(waits.len());
    for (client_id, rx, followup) in waits {
        let mut v = match rx {
            Some(rx) => rx.await.unwrap_or_else(|_| {
                jsonrpc::error(
                    client_id.as_ref(),
                    code::INTERNAL_ERROR,
                    "the request was dropped",
                )
            }),
            None => jsonrpc::error(
                client_id.as_ref(),
                code::INTERNAL_ERROR,
                "the request was dropped",
            ),
        };
        if let (Some(f), Some(gate)) = (followup, &bridge.cfg.tool_gate) {
            gate.finish(f, &mut v);
        }
        out.push(v);
    }
    let body = if batch {
        Value::Array(out)
    } else {
        out.pop().unwrap_or(Value::Null)
    };
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body.to_string()))
}

/// SSE polling (2025-11-25 transports, "Sending Messages" 6): with
/// `BRIDGE_SSE_CLOSE_AFTER_MS`, a primed request stream whose answer is not in after that
/// long loses its connection, not its events; the client reconnects after `retry` with
/// `Last-Event-ID` and gets them from the replay buffer.
fn close_unanswered(bridge: &Bridge, stream: &Arc<SseStream>, connection: u64) {
    let Some(after) = bridge.cfg.sse_close_after else {
        return;
    };
    if after.is_zero() {
        stream.disconnect(connection);
        return;
    }
    let weak = Arc::downgrade(stream);
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        if let Some(stream) = weak.upgrade() {
            stream.disconnect(connection);
        }
    });
}

/// Awaits a gated request's answer, filters / audits it, and streams it.
fn finish_on_stream(
    bridge: &Bridge,
    stream: Arc<SseStream>,
    followup: Followup,
    rx: oneshot::Receiver<Value>,
    client_id: Option<Value>,
) {
    let gate = bridge.cfg.tool_gate.clone();
    tokio::spawn(async move {
        let mut v = rx.await.unwrap_or_else(|_| {
            jsonrpc::error(
                client_id.as_ref(),
                code::INTERNAL_ERROR,
                "the request was dropped",
            )
        });
        if let Some(gate) = gate {
            gate.finish(followup, &mut v);
        }
        stream.push(&v, true);
    });
}

/// GET: the server-to-client stream, or the resumption of any stream of the session.
pub async fn get(req: HttpRequest, bridge: Shared) -> HttpResponse {
    let r = get_inner(&req, &bridge);
    respond(&bridge, r)
}

fn get_inner(req: &HttpRequest, bridge: &Arc<Bridge>) -> Result<HttpResponse, BridgeError> {
    let requested = requested_version(req)?;
    // 2026-07-28 removed the GET stream: answer as a server of that revision (405).
    // A native server keeps no session, so it has no stream to offer or resume.
    if !bridge.cfg.get_stream
        || requested.is_some_and(version::is_stateless)
        || bridge.native.is_some()
    {
        return Err(BridgeError::MethodNotAllowed);
    }
    if !accepts(req).sse {
        return Err(BridgeError::NotAcceptable);
    }
    let session = session_from(bridge, req)?;
    session.touch(Instant::now());
    let queue = bridge.cfg.max_queued;
    let resumed: Option<(Arc<SseStream>, u64)> = header_str(req, "last-event-id")
        .and_then(parse_event_id)
        .and_then(|(key, seq)| session.find_stream(key).map(|s| (s, seq)));
    let v = requested
        .map(str::to_string)
        .or_else(|| session.negotiated())
        .unwrap_or_default();
    let rx = match resumed {
        Some((stream, seq)) => {
            let rx = stream.attach(queue, Some(seq));
            // A request stream still owed its answer: poll again, with a fresh event id
            // to resume from (the replay may have carried none).
            if stream.key != 0
                && !stream.is_done()
                && version::primes_streams(&v)
                && bridge.cfg.sse_close_after.is_some()
            {
                let connection = stream.connection();
                stream.prime(bridge.cfg.sse_retry_ms);
                close_unanswered(bridge, &stream, connection);
            }
            rx
        }
        None => {
            let after = session.standalone.undelivered_after();
            let rx = session.standalone.attach(queue, Some(after));
            if version::primes_streams(&v) {
                session.standalone.prime(bridge.cfg.sse_retry_ms);
            }
            rx
        }
    };
    Ok(sse_response(
        SseBody::new(rx, true, None),
        Some(&session.id),
    ))
}

/// DELETE: the client ends its session (transports, "Session Management" 5).
pub async fn delete(req: HttpRequest, bridge: Shared) -> HttpResponse {
    let r = (|| {
        if requested_version(&req)?.is_some_and(version::is_stateless) || bridge.native.is_some() {
            return Err(BridgeError::MethodNotAllowed);
        }
        let session = session_from(&bridge, &req)?;
        bridge.end_session(&session.id);
        Ok(HttpResponse::Ok().finish())
    })();
    respond(&bridge, r)
}

pub async fn method_not_allowed(bridge: Shared) -> HttpResponse {
    respond(&bridge, Err(BridgeError::MethodNotAllowed))
}
