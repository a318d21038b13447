//! Requests without a session: built-in servers without sessions
//! ([`crate::native`]) and 2026-07-28 stateless requests.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::Value;
use tokio::sync::oneshot;

use super::mirrored::check_mirrored_headers;
use super::relay::{admit, arm_timeout, forward_error};
use super::request::{context, header_str, identity, Accepts};
use super::sse_body::{sse_response, SseBody};
use super::{METHOD_HEADER, NAME_HEADER};
use crate::bridge::Bridge;
use crate::error::BridgeError;
use crate::jsonrpc::{self, code, Body, Kind};
use crate::tool_gate::{check_present_headers, Admission, Followup};
use crate::upstream::Reply;
use crate::version;

/// A request to a built-in server without sessions ([`crate::native`]): answered on its
/// own, whatever the revision; no `Mcp-Session-Id` is issued or needed.
pub(super) async fn native_post(
    req: &HttpRequest,
    bridge: &Arc<Bridge>,
    native: &crate::native::Native,
    parsed: Body,
    requested: Option<&str>,
    acc: Accepts,
) -> Result<HttpResponse, BridgeError> {
    let version = requested.unwrap_or(version::ASSUMED);
    let stateless = version::is_stateless(version);
    let messages = match parsed {
        Body::Single(m) => {
            let id = m.value.get("id").cloned();
            let checked = if stateless {
                check_mirrored_headers(
                    header_str(req, METHOD_HEADER),
                    header_str(req, NAME_HEADER),
                    version,
                    &m,
                )
            } else {
                check_present_headers(
                    header_str(req, METHOD_HEADER),
                    header_str(req, NAME_HEADER),
                    &m.value,
                )
            };
            checked.map_err(|message| BridgeError::HeaderMismatch { id, message })?;
            vec![m]
        }
        Body::Batch(v) if version::allows_batch(version) => v,
        Body::Batch(_) => return Err(BridgeError::BatchNotAllowed),
    };
    let who = identity(req);
    let ctx = context(req, None, version, "streamable-http-stateless");
    let mut answers = Vec::new();
    for m in messages {
        match m.kind {
            Kind::Request { .. } => {}
            // Nothing to notify and no request of ours to answer: accepted, dropped.
            Kind::Notification { .. } => continue,
            Kind::Response { .. } if stateless => return Err(BridgeError::ResponseNotAllowed),
            Kind::Response { .. } => continue,
        }
        let gate = bridge.cfg.tool_gate.as_ref().map(|_| &who);
        let answer = match admit(bridge, gate, &m.value) {
            Admission::Refuse(e) => e,
            Admission::Forward(followup) => {
                bridge.metrics.requests.inc();
                let mut v = native.handle(&m.value, &ctx).await.unwrap_or_else(|| {
                    jsonrpc::error(
                        m.value.get("id"),
                        code::INTERNAL_ERROR,
                        "the request was dropped",
                    )
                });
                if v.get("error").is_some() {
                    bridge.metrics.error_responses.inc();
                }
                if let (Some(f), Some(gate)) = (followup, &bridge.cfg.tool_gate) {
                    gate.finish(f, &mut v);
                }
                v
            }
        };
        answers.push(answer);
    }
    let single = match answers.len() {
        // Notifications and responses only (transports, "Sending Messages" 4).
        0 => return Ok(HttpResponse::Accepted().finish()),
        1 => answers.pop(),
        _ => None,
    };
    let body = match &single {
        Some(v) => v.to_string(),
        None => Value::Array(answers).to_string(),
    };
    // 2026-07-28: an unimplemented method is 404 with -32601.
    let not_found = stateless
        && single
            .as_ref()
            .is_some_and(|v| jsonrpc::error_code(v) == Some(code::METHOD_NOT_FOUND));
    let mut r = if not_found {
        HttpResponse::NotFound()
    } else {
        HttpResponse::Ok()
    };
    if acc.json {
        return Ok(r.content_type("application/json").body(body));
    }
    // SSE only: one event, no id (there is no session to resume it in).
    Ok(r.content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(format!("event: message\ndata: {body}\n\n")))
}

/// A 2026-07-28 request: no session; relayed through an internal, bridge-initialized one.
pub(super) async fn stateless_post(
    req: &HttpRequest,
    bridge: &Arc<Bridge>,
    parsed: Body,
    version: &str,
    acc: Accepts,
) -> Result<HttpResponse, BridgeError> {
    let m = match parsed {
        Body::Single(m) => m,
        Body::Batch(_) => return Err(BridgeError::BatchNotAllowed),
    };
    let id = match &m.kind {
        Kind::Request { id, .. } => Some(id.clone()),
        Kind::Notification { .. } => None,
        Kind::Response { .. } => return Err(BridgeError::ResponseNotAllowed),
    };
    check_mirrored_headers(
        header_str(req, METHOD_HEADER),
        header_str(req, NAME_HEADER),
        version,
        &m,
    )
    .map_err(|message| BridgeError::HeaderMismatch {
        id: id.clone(),
        message,
    })?;
    let who = identity(req);
    if let Some(gate) = &bridge.cfg.tool_gate {
        gate.watch();
    }
    let followup = match id {
        Some(_) => match admit(
            bridge,
            bridge.cfg.tool_gate.as_ref().map(|_| &who),
            &m.value,
        ) {
            // The normal response path: HTTP 200 with the JSON-RPC error.
            Admission::Refuse(e) => {
                return Ok(HttpResponse::Ok()
                    .content_type("application/json")
                    .body(e.to_string()))
            }
            Admission::Forward(f) => f,
        },
        None => None,
    };
    let session = bridge.stateless_session(&who).await?;
    let upstream = session.upstream.clone();
    if id.is_none() {
        upstream
            .forward_notification(&session, m.value)
            .map_err(|e| forward_error(bridge, &session, e))?;
        return Ok(HttpResponse::Accepted().finish());
    }
    let ctx = upstream
        .is_builtin()
        .then(|| context(req, None, version, "streamable-http-stateless"));
    // A stream only pays off when the server will send progress before the result.
    let wants_progress = jsonrpc::progress_token(&m.value).is_some();
    // A list to filter is answered as JSON (its result must pass the gate first).
    let filtered = followup.as_ref().is_some_and(Followup::is_list);
    if acc.sse && wants_progress && !bridge.cfg.prefer_json && !filtered {
        if let (Some(f), Some(gate)) = (followup, &bridge.cfg.tool_gate) {
            // Streamed straight to the client: audited when relayed (latency unknown here).
            gate.finish(f, &mut Value::Null);
        }
        let stream = session.new_request_stream(1);
        let rx = stream.attach(bridge.cfg.max_queued, None);
        let upstream_id = match upstream.forward_request(
            &session,
            m.value,
            Reply::Stream(stream.clone()),
            ctx.as_ref(),
        ) {
            Ok(n) => {
                arm_timeout(bridge, &upstream, n);
                n
            }
            Err((e, _)) => return Err(forward_error(bridge, &session, e)),
        };
        // Closing the stream cancels the request (2026-07-28 streamable-http, "Cancellation").
        let weak = Arc::downgrade(&upstream);
        let cancel_stream = stream.clone();
        let on_drop: Box<dyn FnOnce() + Send> = Box::new(move || {
            if !cancel_stream.is_done() {
                if let Some(up) = weak.upgrade() {
                    up.cancel(upstream_id, "the client closed the response stream");
                }
            }
        });
        return Ok(sse_response(SseBody::new(rx, false, Some(on_drop)), None));
    }
    let (tx, rx) = oneshot::channel();
    match upstream.forward_request(&session, m.value, Reply::Json(tx), ctx.as_ref()) {
        Ok(n) => arm_timeout(bridge, &upstream, n),
        Err((e, _)) => return Err(forward_error(bridge, &session, e)),
    }
    let mut resp = rx.await.unwrap_or_else(|_| {
        jsonrpc::error(id.as_ref(), code::INTERNAL_ERROR, "the request was dropped")
    });
    if let (Some(f), Some(gate)) = (followup, &bridge.cfg.tool_gate) {
        gate.finish(f, &mut resp);
    }
    // 2026-07-28: an unimplemented method is 404 with -32601 (distinguishes us from a
    // legacy server's plain 404).
    let mut r = if jsonrpc::error_code(&resp) == Some(code::METHOD_NOT_FOUND) {
        HttpResponse::NotFound()
    } else {
        HttpResponse::Ok()
    };
    Ok(r.content_type("application/json").body(resp.to_string()))
}
