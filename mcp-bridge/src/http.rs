//! The Streamable HTTP endpoint (MCP 2025-03-26 .. 2025-11-25, and 2026-07-28 stateless
//! requests on the same path). Handlers are thin: they check the HTTP contract, then hand
//! JSON-RPC messages to the session's upstream.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::bridge::Bridge;
use crate::echo::{is_secret_header, RequestContext};
use crate::error::BridgeError;
use crate::identity::Identity;
use crate::jsonrpc::{self, code, Body, Kind, Message};
use crate::session::{Session, SessionKind};
use crate::stream::{parse_event_id, SseStream};
use crate::tool_gate::{check_present_headers, Admission, Followup};
use crate::upstream::{ForwardError, Reply, Upstream};
use crate::version;

pub const SESSION_HEADER: &str = "mcp-session-id";
pub const VERSION_HEADER: &str = "mcp-protocol-version";
pub const METHOD_HEADER: &str = "mcp-method";
pub const NAME_HEADER: &str = "mcp-name";
const KEEPALIVE: Duration = Duration::from_secs(15);

/// Identity header names set by the verifier (shared contract).
pub const IDENTITY_HEADERS: [&str; 5] = [
    "x-user-id",
    "x-user-name",
    "x-user-email",
    "x-client-id",
    "x-scopes",
];

pub type Shared = web::Data<Arc<Bridge>>;

pub fn header_str<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

pub fn identity(req: &HttpRequest) -> Identity {
    let h = |n: &str| header_str(req, n).unwrap_or_default().to_string();
    Identity {
        user_id: h(IDENTITY_HEADERS[0]),
        user_name: h(IDENTITY_HEADERS[1]),
        user_email: h(IDENTITY_HEADERS[2]),
        client_id: h(IDENTITY_HEADERS[3]),
        scopes: h(IDENTITY_HEADERS[4]),
    }
}

/// What the built-in server may show about the request: credentials are dropped here, so
/// they never travel further than this function (the bridge forwards no HTTP header to a
/// child at all).
pub fn context(
    req: &HttpRequest,
    session: Option<&str>,
    version: &str,
    transport: &'static str,
) -> RequestContext {
    let mut headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter(|(k, _)| !is_secret_header(k.as_str()))
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    headers.sort();
    RequestContext {
        identity: identity(req),
        headers,
        session_id: session.map(str::to_string),
        protocol_version: version.to_string(),
        transport,
    }
}

/// Which response bodies the client takes.
#[derive(Debug, Clone, Copy)]
pub struct Accepts {
    pub json: bool,
    pub sse: bool,
    pub sse_named: bool,
}

pub fn accepts(req: &HttpRequest) -> Accepts {
    let Some(raw) = header_str(req, "accept") else {
        return Accepts {
            json: true,
            sse: true,
            sse_named: false,
        };
    };
    let mut a = Accepts {
        json: false,
        sse: false,
        sse_named: false,
    };
    for part in raw.split(',') {
        let mime = part
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/json" | "application/*" => a.json = true,
            "text/event-stream" => {
                a.sse = true;
                a.sse_named = true;
            }
            "text/*" => a.sse = true,
            "*/*" => {
                a.json = true;
                a.sse = true;
            }
            _ => {}
        }
    }
    a
}

fn is_json_content(req: &HttpRequest) -> bool {
    header_str(req, "content-type")
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// Reads the body, refusing more than `limit` bytes (413) without buffering them.
pub async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Bytes, BridgeError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| BridgeError::Frame(jsonrpc::FrameError::NotJson))?;
        if buf.len() + chunk.len() > limit {
            return Err(BridgeError::PayloadTooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// An SSE response body: frames from a channel, optional keep-alive comments, and an
/// optional action when the client goes away.
pub struct SseBody {
    rx: mpsc::Receiver<Bytes>,
    keepalive: Option<tokio::time::Interval>,
    on_drop: Option<Box<dyn FnOnce() + Send>>,
}

impl SseBody {
    pub fn new(
        rx: mpsc::Receiver<Bytes>,
        keepalive: bool,
        on_drop: Option<Box<dyn FnOnce() + Send>>,
    ) -> Self {
        let keepalive = keepalive.then(|| {
            let mut i =
                tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        Self {
            rx,
            keepalive,
            on_drop,
        }
    }
}

impl futures_util::Stream for SseBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(b)) => return Poll::Ready(Some(Ok(b))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        if let Some(k) = self.keepalive.as_mut() {
            if k.poll_tick(cx).is_ready() {
                return Poll::Ready(Some(Ok(Bytes::from_static(b": keepalive\n\n"))));
            }
        }
        Poll::Pending
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        if let Some(f) = self.on_drop.take() {
            f();
        }
    }
}

pub fn sse_response(body: SseBody, session_id: Option<&str>) -> HttpResponse {
    let mut r = HttpResponse::Ok();
    r.content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // Proxies must not buffer the stream (nginx honours this header).
        .insert_header(("X-Accel-Buffering", "no"));
    if let Some(id) = session_id {
        r.insert_header((SESSION_HEADER, id));
    }
    r.streaming(body)
}

fn respond(bridge: &Bridge, result: Result<HttpResponse, BridgeError>) -> HttpResponse {
    match result {
        Ok(r) => r,
        Err(e) => {
            bridge.metrics.http_rejections.inc();
            tracing::debug!("refused: {e}");
            actix_web::ResponseError::error_response(&e)
        }
    }
}

fn requested_version(req: &HttpRequest) -> Result<Option<&str>, BridgeError> {
    match header_str(req, VERSION_HEADER) {
        None => Ok(None),
        Some(v) if version::is_supported(v) => Ok(Some(v)),
        Some(v) => Err(BridgeError::UnsupportedVersion(
            v.chars().take(64).collect(),
        )),
    }
}

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

fn forward_error(bridge: &Bridge, session: &Session, e: ForwardError) -> BridgeError {
    match e {
        ForwardError::Busy => BridgeError::UpstreamBusy,
        ForwardError::Gone => {
            // The child is gone: so is the session (the client re-initializes on 404).
            bridge.end_session(&session.id);
            BridgeError::UnknownSession
        }
    }
}

fn arm_timeout(bridge: &Bridge, upstream: &Arc<Upstream>, id: u64) {
    if let Some(d) = bridge.cfg.request_timeout {
        let weak: Weak<Upstream> = Arc::downgrade(upstream);
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            if let Some(up) = weak.upgrade() {
                up.expire(id);
            }
        });
    }
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

/// The tool gate's answer for one request (relay unchanged when no gate is configured).
pub fn admit(bridge: &Bridge, who: Option<&Identity>, request: &Value) -> Admission {
    match (&bridge.cfg.tool_gate, who) {
        (Some(gate), Some(who)) => gate.admit(&bridge.metrics, who, request),
        _ => Admission::Forward(None),
    }
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

/// Checks the mirrored request headers of a 2026-07-28 request against the body
/// ("Server Validation"): `Mcp-Method` always; `Mcp-Name` for tools/call, prompts/get
/// (params.name) and resources/read (params.uri); `_meta` protocol version.
pub fn check_mirrored_headers(
    method_header: Option<&str>,
    name_header: Option<&str>,
    version_header: &str,
    m: &Message,
) -> Result<(), String> {
    let method = m.method().unwrap_or_default();
    match method_header {
        None => return Err("required header Mcp-Method is missing".into()),
        Some(h) if h != method => {
            return Err(format!(
                "Mcp-Method header value {h:?} does not match body value {method:?}"
            ))
        }
        Some(_) => {}
    }
    let field = match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    };
    if let Some(field) = field {
        let body = m
            .params()
            .and_then(|p| p.get(field))
            .and_then(Value::as_str);
        let header = name_header.map(gateway_common::mcp_header::decode);
        match (header, body) {
            (None, _) => return Err("required header Mcp-Name is missing".into()),
            (Some(None), _) => return Err("Mcp-Name header is not valid base64 UTF-8".into()),
            (Some(Some(h)), Some(b)) if h == b => {}
            (Some(Some(h)), b) => {
                return Err(format!(
                    "Mcp-Name header value {h:?} does not match body value {:?}",
                    b.unwrap_or_default()
                ))
            }
        }
    }
    let meta_version = m
        .params()
        .and_then(|p| p.get("_meta"))
        .and_then(|meta| meta.get("io.modelcontextprotocol/protocolVersion"))
        .and_then(Value::as_str);
    if let Some(v) = meta_version {
        if v != version_header {
            return Err(format!(
                "MCP-Protocol-Version header value {version_header:?} does not match body value {v:?}"
            ));
        }
    }
    Ok(())
}

/// A request to a built-in server without sessions ([`crate::native`]): answered on its
/// own, whatever the revision; no `Mcp-Session-Id` is issued or needed.
async fn native_post(
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
async fn stateless_post(
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(v: Value) -> Message {
        jsonrpc::classify(v).unwrap()
    }

    #[test]
    fn mirrored_headers_must_match_the_body() {
        let call = msg(
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo",
            "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}),
        );
        assert!(
            check_mirrored_headers(Some("tools/call"), Some("echo"), "2026-07-28", &call).is_ok()
        );
        assert!(check_mirrored_headers(
            Some("tools/call"),
            Some("=?base64?ZWNobw==?="),
            "2026-07-28",
            &call
        )
        .is_ok());
        assert!(
            check_mirrored_headers(Some("tools/list"), Some("echo"), "2026-07-28", &call).is_err()
        );
        assert!(
            check_mirrored_headers(Some("tools/call"), Some("other"), "2026-07-28", &call).is_err()
        );
        assert!(check_mirrored_headers(Some("tools/call"), None, "2026-07-28", &call).is_err());
        assert!(check_mirrored_headers(None, Some("echo"), "2026-07-28", &call).is_err());
        assert!(check_mirrored_headers(
            Some("tools/call"),
            Some("=?base64?!!?="),
            "2026-07-28",
            &call
        )
        .is_err());
        let read = msg(
            json!({"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}),
        );
        assert!(check_mirrored_headers(
            Some("resources/read"),
            Some("file:///a"),
            "2026-07-28",
            &read
        )
        .is_ok());
        let list = msg(json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}));
        assert!(check_mirrored_headers(Some("tools/list"), None, "2026-07-28", &list).is_ok());
        let stale = msg(json!({"jsonrpc":"2.0","id":1,"method":"tools/list",
            "params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25"}}}));
        assert!(check_mirrored_headers(Some("tools/list"), None, "2026-07-28", &stale).is_err());
    }

    #[test]
    fn accept_parsing() {
        let req = actix_web::test::TestRequest::default()
            .insert_header(("accept", "application/json, text/event-stream"))
            .to_http_request();
        let a = accepts(&req);
        assert!(a.json && a.sse && a.sse_named);
        let req = actix_web::test::TestRequest::default()
            .insert_header(("accept", "text/html"))
            .to_http_request();
        let a = accepts(&req);
        assert!(!a.json && !a.sse);
    }
}
