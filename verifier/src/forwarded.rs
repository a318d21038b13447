//! Reconstructing the client's original request from what a reverse proxy
//! sends to `/verify`. Pure: headers and the peer address in, a
//! [`ForwardedRequest`] out.
//!
//! What each proxy sends (checked against the real proxies in `tests/proxies.rs`):
//! * Traefik `forwardAuth`: `X-Forwarded-Method/Proto/Host/Uri/For` (+ `-Port`),
//!   overwriting any client-sent copies;
//! * nginx `auth_request` with `deploy/nginx/`: `X-Original-URI`,
//!   `X-Original-Method`, `X-Forwarded-Host`, `X-Forwarded-Proto` (and the
//!   Traefik-style `X-Forwarded-Uri`/`-Method`, so client-sent copies are
//!   overwritten there too); ingress-nginx sends `X-Original-URL`;
//! * Caddy `forward_auth`: Traefik's headers, and the original query string on
//!   the `/verify` URI itself, which is ignored.
//!
//! Forwarded headers are believed only from a peer in `TRUSTED_PROXIES`; from
//! anyone else the request is taken as it arrived (so `/verify` itself, which
//! protects nothing, and the answer is 401).
//!
//! Several proxies copy the client's own headers into the auth request, so a
//! client could add an `X-Original-URI` that the proxy does not manage. When
//! more than one of `X-Forwarded-Uri`, `X-Original-URI` and `X-Original-URL`
//! is present they must agree, or the request is refused: the path decides
//! which audience is required, and a client must never choose it.

use std::net::IpAddr;

use gateway_common::trusted_proxies::TrustedProxies;

/// Read access to request headers (names are lower-case).
pub trait HeaderView {
    /// The first value of `name`, if any.
    fn first(&self, name: &str) -> Option<&[u8]>;
    /// How many times `name` occurs.
    fn count(&self, name: &str) -> usize;
}

/// A header list, for tests and in-process callers.
impl HeaderView for [(&str, &str)] {
    fn first(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_bytes())
    }
    fn count(&self, name: &str) -> usize {
        self.iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .count()
    }
}

/// The `Authorization` header as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationHeader<'a> {
    Absent,
    One(&'a [u8]),
    /// Sent more than once: ambiguous, refused (RFC 6750 §3.1 `invalid_request`).
    Several,
}

/// The client's request as the proxy saw it: what [`crate::Verifier::check`] decides on.
///
/// In-process callers (the one-machine launcher guarding the bridge) fill it
/// from their own request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardedRequest<'a> {
    pub method: &'a str,
    /// `http` or `https`.
    pub proto: &'a str,
    /// `host[:port]` as the client addressed it.
    pub host: &'a str,
    /// Origin-form request target: `/path[?query]`.
    pub uri: &'a str,
    pub authorization: AuthorizationHeader<'a>,
    /// A CORS preflight (`OPTIONS` with `Access-Control-Request-Method`).
    pub cors_preflight: bool,
    /// The client prefers HTML (a browser): the denial gets a short page.
    pub wants_html: bool,
}

impl ForwardedRequest<'_> {
    /// The path without the query.
    pub fn path(&self) -> &str {
        let end = self.uri.find(['?', '#']).unwrap_or(self.uri.len());
        &self.uri[..end]
    }
}

/// What was wrong with the forwarded headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ForwardedError {
    #[error("forwarded header {0} is not valid")]
    Invalid(&'static str),
    #[error("forwarded headers disagree about the {0}")]
    Conflict(&'static str),
}

/// The `/verify` request itself, as the adapter received it.
#[derive(Debug, Clone, Copy)]
pub struct VerifyRequest<'a, H: HeaderView + ?Sized> {
    pub peer: Option<IpAddr>,
    pub method: &'a str,
    /// `http` unless the listener terminates TLS.
    pub scheme: &'a str,
    /// Origin-form target of the `/verify` request.
    pub uri: &'a str,
    pub headers: &'a H,
}

/// Rebuilds the original request. See the module docs for the trust rules.
pub fn reconstruct<'a, H: HeaderView + ?Sized>(
    req: &VerifyRequest<'a, H>,
    trusted: &TrustedProxies,
) -> Result<ForwardedRequest<'a>, ForwardedError> {
    let h = req.headers;
    let from_proxy = req.peer.is_some_and(|p| trusted.contains(p));
    let text = |name: &'static str| -> Result<Option<&'a str>, ForwardedError> {
        match h.first(name) {
            None => Ok(None),
            Some(v) => std::str::from_utf8(v)
                .map(|s| Some(s.trim()))
                .map_err(|_| ForwardedError::Invalid(name)),
        }
    };

    let (method, proto, host, uri) = if from_proxy {
        let method = agree(
            "method",
            [text("x-forwarded-method")?, text("x-original-method")?],
        )?;
        let proto = text("x-forwarded-proto")?.map(first_of_list);
        let host = text("x-forwarded-host")?.map(first_of_list);
        let original_url = match text("x-original-url")? {
            Some(url) => {
                Some(origin_form_of(url).ok_or(ForwardedError::Invalid("x-original-url"))?)
            }
            None => None,
        };
        let uri = agree(
            "request target",
            [
                text("x-forwarded-uri")?,
                text("x-original-uri")?,
                original_url,
            ],
        )?;
        (
            method.unwrap_or(req.method),
            proto.unwrap_or(req.scheme),
            match host {
                Some(host) => host,
                None => text("host")?.unwrap_or(""),
            },
            uri.unwrap_or(req.uri),
        )
    } else {
        (req.method, req.scheme, text("host")?.unwrap_or(""), req.uri)
    };

    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(ForwardedError::Invalid("x-forwarded-method"));
    }
    let proto = match proto {
        p if p.eq_ignore_ascii_case("https") => "https",
        p if p.eq_ignore_ascii_case("http") => "http",
        _ => return Err(ForwardedError::Invalid("x-forwarded-proto")),
    };
    if !valid_host(host) {
        return Err(ForwardedError::Invalid("x-forwarded-host"));
    }
    if !uri.starts_with('/') || !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ForwardedError::Invalid("x-forwarded-uri"));
    }

    let authorization = match h.count("authorization") {
        0 => AuthorizationHeader::Absent,
        1 => AuthorizationHeader::One(h.first("authorization").unwrap_or_default()),
        _ => AuthorizationHeader::Several,
    };
    let cors_preflight = method.eq_ignore_ascii_case("OPTIONS")
        && h.first("access-control-request-method").is_some();
    let wants_html = h
        .first("accept")
        .is_some_and(|a| a.windows(9).any(|w| w.eq_ignore_ascii_case(b"text/html")));

    Ok(ForwardedRequest {
        method,
        proto,
        host,
        uri,
        authorization,
        cors_preflight,
        wants_html,
    })
}

/// All present values must be equal; the first present one wins.
fn agree<'a, const N: usize>(
    what: &'static str,
    values: [Option<&'a str>; N],
) -> Result<Option<&'a str>, ForwardedError> {
    let mut found: Option<&'a str> = None;
    for v in values.into_iter().flatten() {
        match found {
            None => found = Some(v),
            Some(f) if f == v => {}
            Some(_) => return Err(ForwardedError::Conflict(what)),
        }
    }
    Ok(found)
}

/// `a, b` → `a` (a proxy chain appends; the first is what the client used).
fn first_of_list(v: &str) -> &str {
    v.split(',').next().unwrap_or("").trim()
}

/// `https://host/path?q` → `/path?q`.
fn origin_form_of(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    match rest.find('/') {
        Some(i) => Some(&rest[i..]),
        None => Some("/"),
    }
}

/// A host name, IPv4 or bracketed IPv6, with an optional port. Nothing that
/// could break out of the quoted `resource_metadata` value.
pub fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> TrustedProxies {
        TrustedProxies::loopback()
    }

    fn verify_req<'a>(
        peer: &str,
        uri: &'a str,
        headers: &'a [(&'a str, &'a str)],
    ) -> VerifyRequest<'a, [(&'a str, &'a str)]> {
        VerifyRequest {
            peer: Some(peer.parse().unwrap()),
            method: "GET",
            scheme: "http",
            uri,
            headers,
        }
    }

    #[test]
    fn traefik_headers_from_a_trusted_proxy() {
        let h = [
            ("X-Forwarded-Method", "POST"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "echo.example.com"),
            ("X-Forwarded-Uri", "/mcp?session=1"),
            ("X-Forwarded-For", "203.0.113.9"),
            ("Authorization", "Bearer abc"),
            ("Host", "verifier:8001"),
        ];
        let r = reconstruct(&verify_req("127.0.0.1", "/verify", &h), &loopback()).unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.proto, "https");
        assert_eq!(r.host, "echo.example.com");
        assert_eq!(r.uri, "/mcp?session=1");
        assert_eq!(r.path(), "/mcp");
        assert_eq!(r.authorization, AuthorizationHeader::One(b"Bearer abc"));
    }

    #[test]
    fn nginx_headers_from_a_trusted_proxy() {
        let h = [
            ("X-Original-Method", "DELETE"),
            ("X-Original-URI", "/mcp"),
            ("X-Forwarded-Host", "echo.example.com:8443"),
            ("X-Forwarded-Proto", "https"),
        ];
        let r = reconstruct(&verify_req("::1", "/verify", &h), &loopback()).unwrap();
        assert_eq!(
            (r.method, r.host, r.uri),
            ("DELETE", "echo.example.com:8443", "/mcp")
        );
        assert_eq!(r.authorization, AuthorizationHeader::Absent);
    }

    #[test]
    fn caddy_query_on_verify_is_ignored() {
        let h = [
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Host", "127.0.0.1:9000"),
            ("X-Forwarded-Uri", "/mcp?x=1"),
        ];
        let r = reconstruct(&verify_req("127.0.0.1", "/verify?x=1", &h), &loopback()).unwrap();
        assert_eq!(r.uri, "/mcp?x=1");
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let h = [
            ("X-Forwarded-Host", "echo.example.com"),
            ("X-Forwarded-Uri", "/mcp"),
            ("Host", "verifier.internal:8001"),
        ];
        let r = reconstruct(&verify_req("10.1.2.3", "/verify", &h), &loopback()).unwrap();
        assert_eq!((r.host, r.uri), ("verifier.internal:8001", "/verify"));
    }

    #[test]
    fn a_client_added_original_uri_cannot_choose_the_path() {
        let h = [
            ("X-Forwarded-Host", "echo.example.com"),
            ("X-Forwarded-Uri", "/other/mcp"),
            ("X-Original-URI", "/mcp"),
        ];
        assert_eq!(
            reconstruct(&verify_req("127.0.0.1", "/verify", &h), &loopback()),
            Err(ForwardedError::Conflict("request target"))
        );
        let h = [
            ("X-Forwarded-Host", "echo.example.com"),
            ("X-Forwarded-Uri", "/mcp"),
            ("X-Original-URL", "https://echo.example.com/mcp"),
        ];
        assert!(reconstruct(&verify_req("127.0.0.1", "/verify", &h), &loopback()).is_ok());
    }

    #[test]
    fn hostile_values_are_refused() {
        for (name, value) in [
            ("X-Forwarded-Host", "evil\".com"),
            ("X-Forwarded-Host", "a b"),
            ("X-Forwarded-Proto", "gopher"),
            ("X-Forwarded-Uri", "mcp"),
            ("X-Forwarded-Uri", "/mcp x"),
            ("X-Forwarded-Method", "GE T"),
        ] {
            let h = [("X-Forwarded-Host", "ok.example"), (name, value)];
            // the tested header comes last; put it first so it wins `first`
            let h = [h[1], h[0]];
            assert!(
                reconstruct(&verify_req("127.0.0.1", "/verify", &h), &loopback()).is_err(),
                "{name}: {value}"
            );
        }
    }

    #[test]
    fn several_authorization_headers_are_flagged() {
        let h = [
            ("Host", "a"),
            ("Authorization", "Bearer a"),
            ("authorization", "Bearer b"),
        ];
        let r = reconstruct(&verify_req("127.0.0.1", "/mcp", &h), &loopback()).unwrap();
        assert_eq!(r.authorization, AuthorizationHeader::Several);
    }

    #[test]
    fn preflight_and_html_are_noticed() {
        let h = [
            ("Host", "a"),
            ("X-Forwarded-Method", "OPTIONS"),
            ("Access-Control-Request-Method", "POST"),
            ("Accept", "text/html,application/xhtml+xml"),
        ];
        let r = reconstruct(&verify_req("127.0.0.1", "/mcp", &h), &loopback()).unwrap();
        assert!(r.cors_preflight && r.wants_html);
    }
}
