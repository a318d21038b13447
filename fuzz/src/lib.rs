//! Fuzz target bodies, one function per parser of outside input.
//!
//! Each `fuzz_targets/<name>.rs` is a libFuzzer `fuzz_target!` calling the
//! function of the same name; `tests/tests/fuzz_bounded.rs` (package
//! gateway-tests) runs the same functions on stable Rust for a bounded time in
//! the ordinary test suite. A target fails by panicking: every assertion here
//! states a property the parser promises for ANY input, not only "no crash".

use std::net::IpAddr;

use actix_web::test::TestRequest;
use mcp_authz::http::Form;
use mcp_verifier::config::TrustedProxies;
use mcp_verifier::forwarded::{AuthorizationHeader, VerifyRequest};
use mcp_verifier::token::Extracted;

/// A target body: panics on a broken property.
pub type Target = fn(&[u8]);

/// Every target, by name (the libFuzzer binary names).
pub const TARGETS: &[(&str, Target)] = &[
    ("jwt_token", jwt_token),
    ("jwt_claims", jwt_claims),
    ("token_form", token_form),
    ("register_json", register_json),
    ("redirect_uri", redirect_uri),
    ("forwarded", forwarded),
    ("jsonrpc", jsonrpc),
    ("cimd", cimd),
    ("net_filter", net_filter),
    ("sse", sse),
    ("mcp_header", mcp_header),
];

/// RFC 7515 Appendix A.3's P-256 public key, under kid `k1`: a real key, so
/// parsing reaches the signature check.
fn key_table() -> gateway_common::keys::KeyTable {
    let set: gateway_common::keys::JwkSet = match serde_json::from_value(serde_json::json!({
        "keys": [{
            "kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
        }]
    })) {
        Ok(s) => s,
        Err(e) => panic!("fixed JWKS does not parse: {e}"),
    };
    gateway_common::keys::KeyTable::from_jwks(&set)
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// The verifier's JWT path (`mcp_verifier::jwt::verify`, behind bearer
/// extraction): the input as a whole token, and as a JOSE header spliced into
/// a token so the header parser sees arbitrary JSON. Nobody holds the private
/// key, so NO input may verify.
pub fn jwt_token(data: &[u8]) {
    let keys = key_table();
    let expect = mcp_verifier::jwt::Expectations {
        issuer: "https://auth.example.com".into(),
        leeway_secs: 30,
    };
    let raw = format!("Bearer {}", text(data));
    if let Extracted::Token(t) =
        mcp_verifier::token::extract(AuthorizationHeader::One(raw.as_bytes()), 4096)
    {
        assert!(mcp_verifier::jwt::verify(t, &keys, &expect, 1_700_000_000).is_err());
    }
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let spliced = format!(
        "{}.{}.{}",
        b64.encode(data),
        b64.encode(b"{}"),
        b64.encode(data)
    );
    assert!(mcp_verifier::jwt::verify(&spliced, &keys, &expect, 0).is_err());
}

/// Access-token claims as the verifier deserialises them, and the time checks
/// (saturating: no overflow for any `exp`, `nbf`, `now`, leeway).
pub fn jwt_claims(data: &[u8]) {
    let now = data
        .iter()
        .take(8)
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if let Ok(claims) = serde_json::from_slice::<gateway_common::claims::AccessClaims>(data) {
        for leeway in [0, 60, u64::MAX] {
            let r = mcp_verifier::jwt::check_time(&claims, now, leeway);
            if leeway == 0 && now >= claims.exp {
                assert!(r.is_err(), "expired claims accepted");
            }
        }
        // Round trip: what we accept, we can serialise back to the same claims.
        let again = serde_json::to_vec(&claims).unwrap_or_default();
        let back: Option<gateway_common::claims::AccessClaims> =
            serde_json::from_slice(&again).ok();
        assert_eq!(back.as_ref(), Some(&claims));
    }
}

/// The `/token` (and `/revoke`, `/introspect`) form body and the client
/// credentials read from it and from `Authorization: Basic`.
pub fn token_form(data: &[u8]) {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let form = Form::from_bytes(body);
    for name in [
        "grant_type",
        "code",
        "redirect_uri",
        "code_verifier",
        "refresh_token",
        "client_id",
        "client_secret",
        "scope",
        "resource",
        "device_code",
    ] {
        if let Ok(Some(v)) = form.one(name) {
            assert!(!v.is_empty(), "an empty parameter counts as absent");
        }
        let _ = form.all(name);
        let _ = form.has(name);
    }
    if let Ok(Some(rt)) = form.one("refresh_token") {
        if let Some((family, generation)) = mcp_authz::protocol::token::parse_refresh_token(rt) {
            assert!(!family.is_empty() && !family.contains('.'));
            if let Some(g) = generation {
                // One spelling per generation: the token names it canonically.
                assert!(rt[family.len() + 1..].starts_with(&format!("{g}.")));
            }
        }
    }
    if let Ok(Some(v)) = form.one("code_verifier") {
        let c = gateway_common::pkce::s256(v);
        assert!(gateway_common::pkce::valid_challenge(&c));
        assert_eq!(
            gateway_common::pkce::verify_s256(v, &c),
            gateway_common::pkce::valid_verifier(v)
        );
    }
    if let Ok(Some(s)) = form.one("scope") {
        if let Ok(narrowed) = mcp_authz::protocol::token::narrow_scope("mcp read", Some(s)) {
            assert!(narrowed.split(' ').all(|t| t == "mcp" || t == "read"));
        }
    }
    let mut req = TestRequest::post().uri("/token");
    if let Ok(h) = actix_web::http::header::HeaderValue::from_bytes(header) {
        req = req.insert_header((actix_web::http::header::AUTHORIZATION, h));
    }
    let _ = mcp_authz::http::client_auth::presented(&req.to_http_request(), &form);
}

/// The `/register` (RFC 7591) JSON body.
pub fn register_json(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let supported = ["mcp".to_string()];
    if let Ok(meta) = mcp_authz::protocol::registration::validate_metadata(&body, &supported) {
        // Whatever was accepted names only valid redirect URIs.
        let v = serde_json::to_value(&meta).unwrap_or_default();
        if let Some(uris) = v.get("redirect_uris").and_then(|u| u.as_array()) {
            for u in uris.iter().filter_map(|u| u.as_str()) {
                assert!(
                    mcp_authz::protocol::redirect_uri::validate(u).is_ok(),
                    "stored invalid {u:?}"
                );
            }
        }
    }
}

/// Redirect URI validation and matching: `registered\npresented`.
pub fn redirect_uri(data: &[u8]) {
    use mcp_authz::protocol::redirect_uri::{find_match, validate, Kind};
    let s = text(data);
    let (registered, presented) = s.split_once('\n').unwrap_or((s.as_str(), s.as_str()));
    // Only validated URIs are ever stored (registration and CIMD both check),
    // so matching is specified for those. (An unvalidated one with a trailing
    // control character would match: `url` strips it before comparing.)
    if validate(registered).is_err() {
        return;
    }
    let reg = vec![registered.to_string()];
    if let Some(m) = find_match(&reg, presented) {
        assert_eq!(m, registered);
        if m != presented {
            // Only a loopback port may differ (RFC 8252 §7.3).
            assert_eq!(
                validate(presented),
                Ok(Kind::Loopback),
                "{presented:?} for {m:?}"
            );
            assert_eq!(validate(m), Ok(Kind::Loopback));
        }
    }
}

/// Forwarded headers at `/verify`: `name: value` lines; the first byte picks
/// a trusted or untrusted peer.
pub fn forwarded(data: &[u8]) {
    let trusted_peer = data.first().is_some_and(|b| b & 1 == 1);
    let s = text(data.get(1..).unwrap_or_default());
    let headers: Vec<(&str, &str)> = s
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v))
        .collect();
    let peer: IpAddr = if trusted_peer {
        IpAddr::from([127, 0, 0, 1])
    } else {
        IpAddr::from([192, 0, 2, 1])
    };
    let req = VerifyRequest {
        peer: Some(peer),
        method: "GET",
        scheme: "http",
        uri: "/verify",
        headers: &headers[..],
    };
    if let Ok(r) = mcp_verifier::forwarded::reconstruct(&req, &TrustedProxies::loopback()) {
        assert!(r.uri.starts_with('/'), "{:?}", r.uri);
        assert!(r.proto == "http" || r.proto == "https");
        assert!(!r.host.contains(['"', '\\', ' ', ',']), "{:?}", r.host);
        let _ = r.path();
        let _ = mcp_verifier::token::extract(r.authorization, 4096);
    }
    // host:port splitting (`gateway_common::authority`): bounded, lower-cased,
    // and what it splits joins back to the same authority.
    if let Some((host, port)) = gateway_common::authority::split_host_port(&s) {
        assert!(s.len() <= gateway_common::authority::MAX_AUTHORITY_BYTES);
        assert!(!host.bytes().any(|b| b.is_ascii_uppercase()), "{host:?}");
        if let Some(p) = port {
            let joined = format!("{host}:{p}");
            assert_eq!(
                gateway_common::authority::split_host_port(&joined),
                Some((host.clone(), Some(p)))
            );
        }
    }
    let _ = mcp_verifier::forwarded::valid_host(&s);
}

/// JSON-RPC framing in the bridge: POST bodies and child stdout lines.
pub fn jsonrpc(data: &[u8]) {
    match mcp_bridge::jsonrpc::parse_body(data) {
        Ok(mcp_bridge::jsonrpc::Body::Single(m)) => {
            let _ = (m.method(), m.is_request(), m.params());
        }
        Ok(mcp_bridge::jsonrpc::Body::Batch(ms)) => assert!(!ms.is_empty()),
        Err(e) => {
            // Every refusal maps to a JSON-RPC error code (§5.1).
            assert!((-32700..=-32600).contains(&e.code()), "{}", e.code());
        }
    }
}

/// Client ID Metadata Documents as fetched from the client's URL.
pub fn cimd(data: &[u8]) {
    let id = "https://client.example.com/oauth/metadata.json";
    if let Ok(rec) = mcp_authz::cimd::parse_document(id, data, 1_700_000_000) {
        assert_eq!(rec.client_id, id);
        for u in &rec.metadata.redirect_uris {
            assert!(
                mcp_authz::protocol::redirect_uri::validate(u).is_ok(),
                "{u:?}"
            );
        }
    }
}

/// The SSRF address filter (`gateway_common::net_filter`) and the metadata
/// document URL check in front of it. Input: address text (or a URL), or raw
/// bytes read as an address.
pub fn net_filter(data: &[u8]) {
    use gateway_common::net_filter::{is_safe_to_dial, refusal};
    use std::net::{Ipv4Addr, Ipv6Addr};
    let mut addrs: Vec<IpAddr> = Vec::new();
    if let Ok(ip) = text(data).trim().parse::<IpAddr>() {
        addrs.push(ip);
    }
    if let Ok(b) = <[u8; 16]>::try_from(data.get(..16).unwrap_or_default()) {
        addrs.push(IpAddr::V6(Ipv6Addr::from(b)));
    }
    if let Ok(b) = <[u8; 4]>::try_from(data.get(..4).unwrap_or_default()) {
        addrs.push(IpAddr::V4(Ipv4Addr::from(b)));
    }
    for ip in addrs {
        let safe = is_safe_to_dial(ip);
        assert_eq!(safe, refusal(ip).is_none(), "{ip}");
        match ip {
            IpAddr::V4(v4) => {
                // The IPv4-mapped form of an address is judged exactly as the address.
                assert_eq!(
                    is_safe_to_dial(IpAddr::V6(v4.to_ipv6_mapped())),
                    safe,
                    "{ip}"
                );
                if safe {
                    assert!(
                        !(v4.is_private()
                            || v4.is_loopback()
                            || v4.is_link_local()
                            || v4.is_unspecified()
                            || v4.is_broadcast()
                            || v4.is_multicast()
                            || v4.is_documentation()),
                        "{ip}"
                    );
                }
            }
            IpAddr::V6(v6) => {
                if let Some(v4) = v6.to_ipv4_mapped() {
                    assert_eq!(is_safe_to_dial(IpAddr::V4(v4)), safe, "{ip}");
                }
                if safe {
                    assert!(
                        !(v6.is_loopback()
                            || v6.is_unspecified()
                            || v6.is_multicast()
                            || v6.is_unique_local()
                            || v6.is_unicast_link_local()),
                        "{ip}"
                    );
                }
            }
        }
    }
    // A URL the metadata-document check lets through names no refused literal address.
    static STRICT: std::sync::OnceLock<mcp_authz::cimd::CimdResolver> = std::sync::OnceLock::new();
    let strict = STRICT.get_or_init(|| {
        match mcp_authz::cimd::CimdResolver::new(false, gateway_common::clock::system()) {
            Ok(r) => r,
            Err(e) => panic!("resolver does not build: {e}"),
        }
    });
    let candidate = text(data);
    if let Ok(url) = strict.check_url(&candidate) {
        assert_eq!(url.scheme(), "https", "{candidate}");
        match url.host() {
            Some(url::Host::Ipv4(ip)) => assert!(is_safe_to_dial(IpAddr::V4(ip)), "{candidate}"),
            Some(url::Host::Ipv6(ip)) => assert!(is_safe_to_dial(IpAddr::V6(ip)), "{candidate}"),
            _ => {}
        }
    }
}

/// The event-stream parser (`gateway_common::sse`) that reads the verifier's
/// revocation feed and remote MCP servers for `connect`. Input: a stream, cut
/// into chunks at the positions its first bytes name. Properties: chunking
/// never changes the events; the limits hold (an over-long line or event ends
/// the stream with an error, never grows the buffers).
pub fn sse(data: &[u8]) {
    use gateway_common::sse::Parser;
    let (cuts, body) = data.split_at(data.len().min(4));
    let whole = Parser::with_limits(64, 256).feed(body);
    let mut split = Parser::with_limits(64, 256);
    let mut events = Vec::new();
    let mut result = Ok(());
    let mut at = 0;
    for &c in cuts.iter().chain(std::iter::once(&u8::MAX)) {
        let end = (at + usize::from(c)).min(body.len());
        match split.feed(&body[at..end]) {
            Ok(mut e) => events.append(&mut e),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
        at = end;
    }
    if result.is_ok() && at < body.len() {
        match split.feed(&body[at..]) {
            Ok(mut e) => events.append(&mut e),
            Err(e) => result = Err(e),
        }
    }
    match (whole, result) {
        (Ok(a), Ok(())) => {
            assert_eq!(a, events, "chunking changed the events");
            for e in &a {
                assert!(
                    e.data.len() <= 256,
                    "an event past the limit was dispatched"
                );
            }
        }
        (Err(_), Err(_)) => {}
        (w, r) => panic!("chunking changed the outcome: {w:?} vs {r:?}"),
    }
}

/// The MCP header-value codec (`gateway_common::mcp_header`): decoding never
/// reads past its bound; whatever decodes re-encodes to something that decodes
/// to the same text; any text (the input read as UTF-8) round-trips.
pub fn mcp_header(data: &[u8]) {
    use gateway_common::mcp_header::{decode, encode, MAX_VALUE_BYTES};
    let raw = text(data);
    if let Some(v) = decode(&raw) {
        assert!(
            raw.len() <= MAX_VALUE_BYTES,
            "a value past the bound decoded"
        );
        let again = encode(&v);
        if again.len() <= MAX_VALUE_BYTES {
            assert_eq!(
                decode(&again).as_deref(),
                Some(&*v),
                "a decoded value does not survive encoding"
            );
        }
    }
    let encoded = encode(&raw);
    assert!(
        encoded.bytes().all(|b| (0x20..0x7f).contains(&b)),
        "encoding left a byte that is not visible ASCII"
    );
    if encoded.len() <= MAX_VALUE_BYTES {
        assert_eq!(
            decode(&encoded).as_deref(),
            Some(raw.as_str()),
            "no round trip"
        );
    }
}
