//! Property tests for the parsers of outside input: forwarded headers and
//! bearer token extraction.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use mcp_verifier::config::TrustedProxies;
use mcp_verifier::forwarded::{reconstruct, AuthorizationHeader, VerifyRequest};
use mcp_verifier::token::{extract, Extracted};
use proptest::prelude::*;

fn any_header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}",
        "[a-z0-9.:\\[\\]-]{1,30}",
        "/[a-zA-Z0-9/._%?=&-]{0,40}",
        Just(String::new()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, .. ProptestConfig::default() })]

    /// Whatever the headers, reconstruction never panics, and whatever it
    /// accepts is safe to put in a quoted challenge and starts with '/'.
    #[test]
    fn reconstruction_accepts_only_safe_values(
        method in any_header_value(),
        proto in any_header_value(),
        host in any_header_value(),
        uri in any_header_value(),
        original in proptest::option::of(any_header_value()),
        trusted in any::<bool>(),
    ) {
        let mut headers: Vec<(&str, &str)> = vec![
            ("X-Forwarded-Method", &method),
            ("X-Forwarded-Proto", &proto),
            ("X-Forwarded-Host", &host),
            ("X-Forwarded-Uri", &uri),
            ("Host", "verifier:8001"),
        ];
        if let Some(o) = &original {
            headers.push(("X-Original-URI", o));
        }
        let req = VerifyRequest {
            peer: Some(if trusted { "127.0.0.1" } else { "192.0.2.1" }.parse().unwrap()),
            method: "GET",
            scheme: "http",
            uri: "/verify?x=1",
            headers: &headers[..],
        };
        if let Ok(r) = reconstruct(&req, &TrustedProxies::loopback()) {
            prop_assert!(r.uri.starts_with('/'));
            prop_assert!(!r.host.contains(['"', '\\', ' ', ',']));
            prop_assert!(r.proto == "http" || r.proto == "https");
            prop_assert!(r.method.bytes().all(|b| b.is_ascii_alphabetic()));
            if !trusted {
                prop_assert_eq!(r.uri, "/verify?x=1");
                prop_assert_eq!(r.host, "verifier:8001");
            } else {
                // A client-added X-Original-URI never overrides the proxy's value.
                prop_assert_eq!(r.uri, uri.trim());
                if let Some(o) = &original {
                    prop_assert_eq!(o.trim(), uri.trim());
                }
            }
        }
    }

    /// Extraction never panics; a token it returns is within the bound and
    /// made only of b64token characters.
    #[test]
    fn extraction_is_bounded_and_strict(value in proptest::collection::vec(any::<u8>(), 0..200), max in 1usize..120) {
        match extract(AuthorizationHeader::One(&value), max) {
            Extracted::Token(t) => {
                prop_assert!(t.len() <= max);
                prop_assert!(!t.is_empty());
                prop_assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)));
                prop_assert!(value[..6].eq_ignore_ascii_case(b"bearer"));
            }
            Extracted::TooLong => prop_assert!(value.len() > max + 6),
            Extracted::None | Extracted::Malformed | Extracted::Ambiguous => {}
        }
    }

    /// Any well-formed bearer token within the bound comes back unchanged.
    #[test]
    fn valid_tokens_round_trip(token in "[A-Za-z0-9._~+/-]{1,100}=?", spaces in 1usize..4) {
        let header = format!("Bearer{}{}", " ".repeat(spaces), token);
        prop_assert_eq!(extract(AuthorizationHeader::One(header.as_bytes()), 200), Extracted::Token(token.as_str()));
        prop_assert_eq!(extract(AuthorizationHeader::One(header.as_bytes()), token.len() - 1), Extracted::TooLong);
    }
}
