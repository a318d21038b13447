//! The relay: stdin lines → POSTs; POST answers (JSON or SSE) and the GET stream → stdout.
//!
//! Requests are POSTed concurrently (a tool call may wait on a sampling request the
//! client answers meanwhile); notifications, responses and `initialize` go in order.
//! Streamable HTTP (MCP 2025-03-26 and later, "Transports").

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use gateway_common::clock::SharedClock;
use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use url::Url;

use crate::challenge::bearer_params;
use crate::oauth::Auth;
use crate::store::TokenFile;
use crate::{ConnectError, Options};
use gateway_common::jsonrpc::{code, IdKey};
use gateway_common::{mcp_header, sse};

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const LAST_EVENT_ID: &str = "last-event-id";
/// Reconnect delay when the server names none (`retry:`).
const DEFAULT_RETRY: Duration = Duration::from_secs(1);
/// Resumption attempts of a POST stream that closed before its response.
const RESUME_ATTEMPTS: u32 = 5;
/// Re-authorizations one request may cause by 403 `insufficient_scope` (no loop).
const STEP_UP_ATTEMPTS: u32 = 2;
/// The largest JSON body read from the remote (an SSE stream is bounded by `sse`).
const MAX_BODY_BYTES: usize = sse::MAX_EVENT_BYTES;
/// `_meta` key carrying a 2026-07-28 request's protocol version ("Protocol Version").
const META_VERSION: &str = "/params/_meta/io.modelcontextprotocol~1protocolVersion";

#[derive(Debug, Default)]
struct Session {
    id: Option<String>,
    version: Option<String>,
    /// Bumped when a session begins or ends; a GET stream of an older one stops.
    generation: u64,
    /// The id of the `initialize` request in flight, to read the negotiated version.
    init_id: Option<IdKey>,
    get_stream_open: bool,
    /// `server/discover` requests in flight and the version each asked for in `_meta`.
    discover_ids: std::collections::HashMap<IdKey, Option<String>>,
    /// The version `server/discover` settled on (2026-07-28 "Discovery"): sent on requests
    /// whose `_meta` names none, when no `initialize` negotiated one.
    discovered: Option<String>,
}

struct Remote {
    http: reqwest::Client,
    url: Url,
    origin: String,
    auth: Auth,
    session: Mutex<Session>,
    stdout: tokio::sync::Mutex<tokio::io::Stdout>,
    fatal: mpsc::Sender<ConnectError>,
}

/// How a stream ended.
struct StreamEnd {
    last_event_id: Option<String>,
    answered: bool,
    retry: Option<Duration>,
    /// The stream broke a size limit and was dropped.
    overflow: Option<sse::Overflow>,
}

/// Runs until stdin closes (Ok) or the remote refuses or is unreachable (Err).
pub async fn run(opts: Options, dir: PathBuf, clock: SharedClock) -> Result<(), ConnectError> {
    let http = reqwest::Client::builder()
        // Never follow redirects: not for the MCP endpoint, not for discovery (MCP spec),
        // and a bearer token must not travel to another origin.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("mcp-connect/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ConnectError::Internal(format!("cannot build the HTTP client ({e})")))?;
    let file = TokenFile::new(&dir, opts.server.as_str());
    let (fatal, mut fatal_rx) = mpsc::channel(4);
    let remote = Arc::new(Remote {
        origin: opts.server.origin().ascii_serialization(),
        url: opts.server.clone(),
        auth: Auth::new(http.clone(), opts.server.clone(), opts, file, clock),
        http,
        session: Mutex::new(Session::default()),
        stdout: tokio::sync::Mutex::new(tokio::io::stdout()),
        fatal,
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            Some(e) = fatal_rx.recv() => return Err(e),
            line = lines.next_line() => match line {
                Ok(Some(line)) => remote.client_line(line).await?,
                Ok(None) | Err(_) => break,
            },
        }
    }
    remote.end_session().await;
    Ok(())
}

fn is_request(v: &Value) -> bool {
    v.get("method").is_some() && v.get("id").is_some_and(|id| !id.is_null())
}

fn error_for(id: &Value, code: i64, message: String) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

impl Remote {
    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        // A poisoned lock only means a panicking task; the data is still usable.
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn client_line(self: &Arc<Self>, line: String) -> Result<(), ConnectError> {
        if line.trim().is_empty() {
            return Ok(());
        }
        let msg: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                self.to_client(&error_for(
                    &Value::Null,
                    code::PARSE_ERROR,
                    format!("parse error: {e}"),
                ))
                .await;
                return Ok(());
            }
        };
        let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
        if is_request(&msg) && method != "initialize" {
            let me = Arc::clone(self);
            tokio::spawn(async move {
                if let Err(e) = me.post(&msg).await {
                    let _ = me.fatal.send(e).await;
                }
            });
            return Ok(());
        }
        self.post(&msg).await?;
        if method == "notifications/initialized" {
            self.start_get_stream();
        }
        Ok(())
    }

    async fn to_client(&self, v: &Value) {
        let mut line = match serde_json::to_vec(v) {
            Ok(l) => l,
            Err(_) => return,
        };
        line.push(b'\n');
        let mut out = self.stdout.lock().await;
        let _ = out.write_all(&line).await;
        let _ = out.flush().await;
    }

    /// Forwards one server message, noting the negotiated protocol version.
    async fn forward(&self, v: &Value) {
        if let (Some(id), None) = (v.get("id"), v.get("method")) {
            let mut s = self.session();
            if let Some(asked) = s.discover_ids.remove(&IdKey::of(id)) {
                let supported: Vec<&str> = v
                    .pointer("/result/supportedVersions")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if let Some(chosen) = choose_version(asked.as_deref(), &supported) {
                    s.discovered = Some(chosen);
                }
            }
        }
        if let (Some(id), Some(version)) = (
            v.get("id"),
            v.pointer("/result/protocolVersion").and_then(Value::as_str),
        ) {
            let mut s = self.session();
            if s.init_id.as_ref() == Some(&IdKey::of(id)) {
                s.version = Some(version.to_string());
                s.init_id = None;
            }
        }
        self.to_client(v).await;
    }

    /// Session and version headers. A message whose `_meta` names its protocol version
    /// (2026-07-28, stateless) is sent with that version and no session; others with the
    /// session's negotiated version, else the one `server/discover` settled on.
    fn with_session(
        &self,
        mut req: reqwest::RequestBuilder,
        initialize: bool,
        msg: Option<&Value>,
    ) -> reqwest::RequestBuilder {
        let s = self.session();
        if initialize {
            return req;
        }
        let own = msg
            .and_then(|m| m.pointer(META_VERSION))
            .and_then(Value::as_str);
        let stateless = own.is_some_and(gateway_common::mcp_version::is_stateless);
        if !stateless {
            if let Some(id) = &s.id {
                req = req.header(SESSION_HEADER, id);
            }
        }
        let version = own.or(s.version.as_deref()).or(s.discovered.as_deref());
        if let Some(v) = version {
            req = req.header(VERSION_HEADER, v);
        }
        req
    }

    /// POSTs one client message and relays what comes back.
    async fn post(self: &Arc<Self>, msg: &Value) -> Result<(), ConnectError> {
        let request_id = is_request(msg).then(|| msg["id"].clone());
        let initialize = request_id.is_some() && msg["method"] == "initialize";
        if initialize {
            // A new initialize starts a new session (after a 404, or a client restart).
            let old = {
                let mut s = self.session();
                let old = s.id.take();
                s.version = None;
                s.generation += 1;
                s.get_stream_open = false;
                s.init_id = request_id.as_ref().map(IdKey::of);
                old
            };
            if let Some(old) = old {
                self.delete_session(&old).await;
            }
        }
        if request_id.is_some() && msg["method"] == "server/discover" {
            let asked = msg
                .pointer(META_VERSION)
                .and_then(Value::as_str)
                .map(str::to_string);
            self.session()
                .discover_ids
                .insert(IdKey::of(&msg["id"]), asked);
        }
        let body = serde_json::to_vec(msg).map_err(|e| ConnectError::Internal(e.to_string()))?;
        let mut signed_in_again = false;
        let mut step_ups = 0;
        loop {
            let token = self.auth.token().await?;
            let mut req = self
                .http
                .post(self.url.clone())
                .header(CONTENT_TYPE, "application/json")
                .header(ACCEPT, "application/json, text/event-stream")
                .body(body.clone());
            req = self.with_session(req, initialize, Some(msg));
            for (name, value) in mirrored_headers(msg) {
                req = req.header(name, value);
            }
            if let Some(t) = &token {
                req = req.bearer_auth(t);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| ConnectError::from_transport(&self.url, e))?;
            let status = resp.status();
            match status {
                StatusCode::UNAUTHORIZED => {
                    if signed_in_again {
                        return Err(ConnectError::Refused(
                            self.origin.clone(),
                            "401 Unauthorized even after signing in again".into(),
                        ));
                    }
                    let ch = challenge(resp.headers());
                    self.auth.unauthorized(token.as_deref(), &ch).await?;
                    signed_in_again = true;
                }
                StatusCode::FORBIDDEN => {
                    let ch = challenge(resp.headers());
                    let why = ch
                        .get("error_description")
                        .or_else(|| ch.get("error"))
                        .cloned()
                        .unwrap_or_else(|| "403 Forbidden".into());
                    // Step-up (RFC 6750 §3.1 insufficient_scope; MCP 2025-11-25 "Step-Up
                    // Authorization Flow"): authorize again for the union of scopes and retry,
                    // a bounded number of times; then answer this one request with the refusal.
                    let insufficient =
                        ch.get("error").map(String::as_str) == Some("insufficient_scope");
                    if insufficient
                        && step_ups < STEP_UP_ATTEMPTS
                        && self.auth.step_up(token.as_deref(), &ch).await?
                    {
                        step_ups += 1;
                        continue;
                    }
                    match (&request_id, insufficient) {
                        (Some(id), true) if !initialize => {
                            self.to_client(&error_for(
                                id,
                                code::INVALID_REQUEST,
                                format!("the remote refused: {why}"),
                            ))
                            .await;
                            return Ok(());
                        }
                        _ => {
                            return Err(ConnectError::Refused(
                                self.origin.clone(),
                                format!("403 Forbidden ({why})"),
                            ))
                        }
                    }
                }
                StatusCode::NOT_FOUND if !initialize && self.session().id.is_some() => {
                    // The session is gone: the client must initialize again (Transports §Session Management).
                    {
                        let mut s = self.session();
                        s.id = None;
                        s.version = None;
                        s.generation += 1;
                        s.get_stream_open = false;
                    }
                    match &request_id {
                        Some(id) => {
                            self.to_client(&error_for(
                                id,
                                code::SESSION_NOT_FOUND,
                                "Session not found: the remote ended the session; initialize again"
                                    .into(),
                            ))
                            .await
                        }
                        None => eprintln!(
                            "mcp-connect: the remote session ended; a message was dropped"
                        ),
                    }
                    return Ok(());
                }
                s if s.is_success() => {
                    return self
                        .relay_answer(resp, request_id.as_ref(), initialize)
                        .await
                }
                s => {
                    let answer: Option<Value> = read_body(resp)
                        .await
                        .and_then(|b| serde_json::from_slice(&b).ok());
                    match (&request_id, answer) {
                        (Some(id), Some(v)) if v.get("error").is_some() && v.get("id") == Some(id) => {
                            self.forward(&v).await
                        }
                        (Some(id), answer) => {
                            let detail = answer
                                .as_ref()
                                .and_then(|v| v.pointer("/error/message").and_then(Value::as_str))
                                .map(|m| format!(": {m}"))
                                .unwrap_or_default();
                            self.to_client(&error_for(id, code::SERVER_UNAVAILABLE, format!("the remote answered HTTP {s}{detail}")))
                                .await
                        }
                        (None, _) => eprintln!("mcp-connect: the remote answered HTTP {s} to a notification or response"),
                    }
                    return Ok(());
                }
            }
        }
    }

    async fn relay_answer(
        self: &Arc<Self>,
        resp: reqwest::Response,
        request_id: Option<&Value>,
        initialize: bool,
    ) -> Result<(), ConnectError> {
        if initialize {
            let id = resp
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            self.session().id = id;
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("text/event-stream") {
            let generation = self.session().generation;
            let end = self.read_stream(resp, request_id).await;
            if let Some(id) = request_id.filter(|_| !end.answered) {
                match &end.overflow {
                    Some(o) => {
                        self.to_client(&error_for(
                            id,
                            code::SERVER_UNAVAILABLE,
                            format!("the remote's answer was dropped: {o}"),
                        ))
                        .await
                    }
                    None => self.resume(id, end, generation).await,
                }
            }
            return Ok(());
        }
        let Some(bytes) = read_body(resp).await else {
            if let Some(id) = request_id {
                self.to_client(&error_for(
                    id,
                    code::SERVER_UNAVAILABLE,
                    format!("the remote's answer was dropped: it is larger than {MAX_BODY_BYTES} bytes or broke off"),
                ))
                .await;
            }
            return Ok(());
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            if let Some(id) = request_id {
                self.to_client(&error_for(
                    id,
                    code::SERVER_UNAVAILABLE,
                    "the remote answered without a response".into(),
                ))
                .await;
            }
            return Ok(());
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Array(items)) => {
                for v in &items {
                    self.forward(v).await;
                }
            }
            Ok(v) => self.forward(&v).await,
            Err(_) => {
                if let Some(id) = request_id {
                    self.to_client(&error_for(
                        id,
                        code::SERVER_UNAVAILABLE,
                        "the remote answered with invalid JSON".into(),
                    ))
                    .await;
                }
            }
        }
        Ok(())
    }

    /// Relays the events of an SSE response until it ends (or carried `until`'s response).
    async fn read_stream(&self, resp: reqwest::Response, until: Option<&Value>) -> StreamEnd {
        let until = until.map(IdKey::of);
        let mut end = StreamEnd {
            last_event_id: None,
            answered: false,
            retry: None,
            overflow: None,
        };
        let mut parser = sse::Parser::new();
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else { break };
            let events = match parser.feed(&chunk) {
                Ok(evs) => evs,
                Err(o) => {
                    eprintln!("mcp-connect: dropped a stream from the remote: {o}");
                    end.overflow = Some(o);
                    return end;
                }
            };
            for ev in events {
                if let Some(id) = ev.id {
                    end.last_event_id = Some(id);
                }
                if let Some(ms) = ev.retry {
                    end.retry = Some(Duration::from_millis(ms));
                }
                if ev.data.trim().is_empty() {
                    continue;
                }
                let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
                    eprintln!("mcp-connect: skipped an event that is not JSON");
                    continue;
                };
                let answers = v.get("method").is_none()
                    && until.is_some()
                    && v.get("id").map(IdKey::of) == until;
                self.forward(&v).await;
                if answers {
                    end.answered = true;
                    return end;
                }
            }
        }
        end
    }

    /// A POST stream closed before its response: resume it with `Last-Event-ID`
    /// (Transports §Resumability and Redelivery), else answer the client with an error.
    async fn resume(self: &Arc<Self>, id: &Value, mut end: StreamEnd, generation: u64) {
        for _ in 0..RESUME_ATTEMPTS {
            let Some(last) = end.last_event_id.clone() else {
                break;
            };
            if self.session().generation != generation {
                break;
            }
            tokio::time::sleep(
                end.retry
                    .unwrap_or(DEFAULT_RETRY)
                    .min(Duration::from_secs(10)),
            )
            .await;
            let resp = match self.open_get(Some(&last)).await {
                Ok(Some(r)) => r,
                _ => break,
            };
            let next = self.read_stream(resp, Some(id)).await;
            if next.answered {
                return;
            }
            if next.overflow.is_some() {
                break;
            }
            end = StreamEnd {
                last_event_id: next.last_event_id.or(Some(last)),
                answered: false,
                retry: next.retry.or(end.retry),
                overflow: None,
            };
        }
        self.to_client(&error_for(
            id,
            code::SERVER_UNAVAILABLE,
            "the remote closed the stream before answering".into(),
        ))
        .await;
    }

    /// GET the session's stream. `Ok(None)`: not offered (405), session gone (404) or refused.
    async fn open_get(
        &self,
        last_event_id: Option<&str>,
    ) -> Result<Option<reqwest::Response>, ConnectError> {
        let mut signed_in_again = false;
        loop {
            let token = self.auth.token().await?;
            let mut req = self
                .http
                .get(self.url.clone())
                .header(ACCEPT, "text/event-stream");
            req = self.with_session(req, false, None);
            if let Some(l) = last_event_id {
                req = req.header(LAST_EVENT_ID, l);
            }
            if let Some(t) = &token {
                req = req.bearer_auth(t);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| ConnectError::from_transport(&self.url, e))?;
            match resp.status() {
                StatusCode::UNAUTHORIZED if !signed_in_again => {
                    let ch = challenge(resp.headers());
                    self.auth.unauthorized(token.as_deref(), &ch).await?;
                    signed_in_again = true;
                }
                s if s.is_success() => return Ok(Some(resp)),
                _ => return Ok(None),
            }
        }
    }

    /// Opens the server-to-client stream once per session and keeps it open.
    fn start_get_stream(self: &Arc<Self>) {
        let generation = {
            let mut s = self.session();
            if s.get_stream_open {
                return;
            }
            s.get_stream_open = true;
            s.generation
        };
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut last: Option<String> = None;
            let mut failures = 0u32;
            loop {
                if me.session().generation != generation {
                    return;
                }
                match me.open_get(last.as_deref()).await {
                    Ok(Some(resp)) => {
                        failures = 0;
                        let end = me.read_stream(resp, None).await;
                        if end.overflow.is_some() {
                            // Reconnecting would only fetch the same flood again.
                            return;
                        }
                        if end.last_event_id.is_some() {
                            last = end.last_event_id;
                        }
                        tokio::time::sleep(end.retry.unwrap_or(DEFAULT_RETRY)).await;
                    }
                    // 405: no stream offered; 404: the session ended (the next POST says so).
                    Ok(None) => return,
                    Err(ConnectError::Unreachable(..)) if failures < 5 => {
                        failures += 1;
                        tokio::time::sleep(DEFAULT_RETRY * failures).await;
                    }
                    Err(e) => {
                        let _ = me.fatal.send(e).await;
                        return;
                    }
                }
            }
        });
    }

    async fn delete_session(&self, id: &str) {
        let token = self.auth.token().await.ok().flatten();
        let mut req = self
            .http
            .delete(self.url.clone())
            .header(SESSION_HEADER, id);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), req.send()).await;
    }

    /// The client went away: end the remote session (Transports §Session Management).
    async fn end_session(&self) {
        let id = self.session().id.take();
        if let Some(id) = id {
            self.delete_session(&id).await;
        }
    }
}

/// The version to send after `server/discover`: the one the client asked for when the
/// server lists it, else the newest the server lists.
pub fn choose_version(asked: Option<&str>, supported: &[&str]) -> Option<String> {
    if let Some(a) = asked.filter(|a| supported.contains(a)) {
        return Some(a.to_string());
    }
    // Dates (YYYY-MM-DD) compare correctly as strings.
    supported.iter().max().map(|v| v.to_string())
}

/// A whole response body, or `None` past `MAX_BODY_BYTES` or on a broken transfer.
async fn read_body(resp: reqwest::Response) -> Option<Vec<u8>> {
    if resp
        .content_length()
        .is_some_and(|l| l > MAX_BODY_BYTES as u64)
    {
        return None;
    }
    let mut out = Vec::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.ok()?;
        if out.len() + chunk.len() > MAX_BODY_BYTES {
            return None;
        }
        out.extend_from_slice(&chunk);
    }
    Some(out)
}

/// MCP 2026-07-28 mirrors the method (and the tool, prompt or resource name) in headers
/// ("Standard Headers"); servers of earlier revisions ignore them, so they are always sent.
pub fn mirrored_headers(msg: &Value) -> Vec<(&'static str, String)> {
    let Some(method) = msg.get("method").and_then(Value::as_str) else {
        return Vec::new();
    };
    let mut out = vec![("mcp-method", mcp_header::encode(method).into_owned())];
    let name = match method {
        "tools/call" | "prompts/get" => msg.pointer("/params/name"),
        "resources/read" => msg.pointer("/params/uri"),
        _ => None,
    };
    if let Some(n) = name.and_then(Value::as_str) {
        out.push(("mcp-name", mcp_header::encode(n).into_owned()));
    }
    out
}

fn challenge(headers: &HeaderMap) -> std::collections::HashMap<String, String> {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(bearer_params)
        .find(|p| !p.is_empty())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_and_name_are_mirrored() {
        let call =
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo"}});
        assert_eq!(
            mirrored_headers(&call),
            [
                ("mcp-method", "tools/call".to_string()),
                ("mcp-name", "echo".to_string())
            ]
        );
        let read = json!({"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": "file:///ä"}});
        assert_eq!(
            mirrored_headers(&read)[1],
            ("mcp-name", "=?base64?ZmlsZTovLy/DpA==?=".to_string())
        );
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert_eq!(mirrored_headers(&note).len(), 1);
        assert!(mirrored_headers(&json!({"jsonrpc": "2.0", "id": 1, "result": {}})).is_empty());
    }

    #[test]
    fn discover_settles_the_version() {
        let listed = ["2025-11-25", "2026-07-28"];
        assert_eq!(
            choose_version(Some("2026-07-28"), &listed).as_deref(),
            Some("2026-07-28")
        );
        assert_eq!(
            choose_version(Some("2025-11-25"), &listed).as_deref(),
            Some("2025-11-25")
        );
        assert_eq!(
            choose_version(Some("2030-01-01"), &listed).as_deref(),
            Some("2026-07-28")
        );
        assert_eq!(choose_version(None, &listed).as_deref(), Some("2026-07-28"));
        assert_eq!(choose_version(None, &[]), None);
    }
}
