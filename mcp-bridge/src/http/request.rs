//! Reading a request: headers, identity, `Accept`, the body.

use actix_web::{web, HttpRequest};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::{IDENTITY_HEADERS, VERSION_HEADER};
use crate::echo::{is_secret_header, RequestContext};
use crate::error::BridgeError;
use crate::identity::Identity;
use crate::jsonrpc;
use crate::version;

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

pub(super) fn is_json_content(req: &HttpRequest) -> bool {
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

pub(super) fn requested_version(req: &HttpRequest) -> Result<Option<&str>, BridgeError> {
    match header_str(req, VERSION_HEADER) {
        None => Ok(None),
        Some(v) if version::is_supported(v) => Ok(Some(v)),
        Some(v) => Err(BridgeError::UnsupportedVersion(
            v.chars().take(64).collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
