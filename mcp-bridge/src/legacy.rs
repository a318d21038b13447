//! The deprecated HTTP+SSE transport (MCP 2024-11-05) for older clients:
//! `GET /sse` opens the session and its only stream, whose first event (`endpoint`) names
//! where to POST; every server message, responses included, goes on that stream. The
//! session ends when the stream closes.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde::Deserialize;

use crate::bridge::Bridge;
use crate::error::BridgeError;
use crate::http::{accepts, context, identity, read_body, sse_response, Shared, SseBody};
use crate::jsonrpc::{self, Body, Kind};
use crate::session::SessionKind;
use crate::upstream::{ForwardError, Reply};

pub const SSE_PATH: &str = "/sse";
pub const MESSAGES_PATH: &str = "/messages";

pub async fn open(req: HttpRequest, bridge: Shared) -> HttpResponse {
    let r = (|| {
        if !accepts(&req).sse {
            return Err(BridgeError::NotAcceptable);
        }
        let session = bridge.create_session(SessionKind::Legacy, identity(&req), None)?;
        let rx = session.standalone.attach(bridge.cfg.max_queued, None);
        session.standalone.push_raw(Bytes::from(format!(
            "event: endpoint\ndata: {MESSAGES_PATH}?session_id={}\n\n",
            session.id
        )));
        let weak = Arc::downgrade(bridge.get_ref());
        let id = session.id.clone();
        let on_drop: Box<dyn FnOnce() + Send> = Box::new(move || {
            if let Some(b) = weak.upgrade() {
                b.end_session(&id);
            }
        });
        Ok(sse_response(SseBody::new(rx, true, Some(on_drop)), None))
    })();
    match r {
        Ok(r) => r,
        Err(e) => {
            bridge.metrics.http_rejections.inc();
            actix_web::ResponseError::error_response(&e)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Query {
    session_id: Option<String>,
}

pub async fn message(
    req: HttpRequest,
    query: web::Query<Query>,
    payload: web::Payload,
    bridge: Shared,
) -> HttpResponse {
    let r = message_inner(&req, query.into_inner(), payload, bridge.get_ref()).await;
    match r {
        Ok(r) => r,
        Err(e) => {
            bridge.metrics.http_rejections.inc();
            actix_web::ResponseError::error_response(&e)
        }
    }
}

async fn message_inner(
    req: &HttpRequest,
    query: Query,
    payload: web::Payload,
    bridge: &Arc<Bridge>,
) -> Result<HttpResponse, BridgeError> {
    let id = query.session_id.ok_or(BridgeError::MissingSession)?;
    let session = bridge
        .lookup_for(&id, &crate::http::identity(req))
        .filter(|s| s.kind == SessionKind::Legacy)
        .ok_or(BridgeError::UnknownSession)?;
    session.touch(std::time::Instant::now());
    let body = read_body(payload, bridge.cfg.max_message_bytes).await?;
    let messages = match jsonrpc::parse_body(&body).map_err(BridgeError::Frame)? {
        Body::Single(m) => vec![m],
        Body::Batch(v) => v,
    };
    let upstream = session.upstream.clone();
    let ctx = upstream
        .is_builtin()
        .then(|| context(req, Some(&session.id), "2024-11-05", "http+sse"));
    let gone = |e: ForwardError| match e {
        ForwardError::Busy => BridgeError::UpstreamBusy,
        ForwardError::Gone => {
            bridge.end_session(&session.id);
            BridgeError::UnknownSession
        }
    };
    let who = bridge.cfg.tool_gate.as_ref().map(|g| {
        g.watch();
        crate::http::identity(req)
    });
    for m in messages {
        match m.kind {
            Kind::Request { .. } => {
                // Tool policy (crate::tool_gate): refusals and gated answers go
                // to the session's stream like every legacy response.
                let followup = match crate::http::admit(bridge, who.as_ref(), &m.value) {
                    crate::tool_gate::Admission::Refuse(e) => {
                        session.standalone.push(&e, false);
                        continue;
                    }
                    crate::tool_gate::Admission::Forward(f) => f,
                };
                match followup {
                    None => {
                        upstream
                            .forward_request(&session, m.value, Reply::Standalone, ctx.as_ref())
                            .map_err(|(e, _)| gone(e))?;
                    }
                    Some(f) => {
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        upstream
                            .forward_request(&session, m.value, Reply::Json(tx), ctx.as_ref())
                            .map_err(|(e, _)| gone(e))?;
                        let gate = bridge.cfg.tool_gate.clone();
                        let session = session.clone();
                        tokio::spawn(async move {
                            if let (Ok(mut v), Some(gate)) = (rx.await, gate) {
                                gate.finish(f, &mut v);
                                session.standalone.push(&v, false);
                            }
                        });
                    }
                };
            }
            Kind::Notification { .. } => upstream
                .forward_notification(&session, m.value)
                .map_err(gone)?,
            Kind::Response { .. } => upstream.forward_response(&session, m.value).map_err(gone)?,
        }
    }
    Ok(HttpResponse::Accepted().finish())
}
