//! Property tests for the protocol logic: PKCE (RFC 7636), redirect URI
//! matching (RFC 8252 §7.3, exact otherwise), expiry arithmetic and refresh
//! rotation (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2). Pure functions, no sockets.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use gateway_common::pkce;
use mcp_authz::protocol::records::{CodeRecord, RefreshFamily};
use mcp_authz::protocol::redirect_uri::{find_match, validate, Kind};
use mcp_authz::protocol::token::{
    check_code_grant, check_refresh, parse_refresh_token, rotated, Presented, RefreshDecision,
};
use mcp_authz::signin::Identity;
use proptest::prelude::*;

fn verifier() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._~-]{43,128}"
}

fn family(current: &str, exp: u64) -> RefreshFamily {
    RefreshFamily {
        family_id: "fam".into(),
        client_id: "client-a".into(),
        user: Identity {
            sub: "local:alice".into(),
            name: "alice".into(),
            idp: "local".into(),
            ..Identity::default()
        },
        scope: "mcp".into(),
        resources: vec!["https://mcp.example.com/mcp".into()],
        current_hash: current.into(),
        previous_hashes: vec![],
        generation: 0,
        revoked: false,
        exp,
        last_access: None,
        jkt: None,
    }
}

/// A presented token by its hash and generation.
fn at(hash: &str, generation: u64) -> Presented<'_> {
    Presented {
        family_id: "fam",
        generation: Some(generation),
        hash,
    }
}

fn code(challenge: &str, exp: u64) -> CodeRecord {
    CodeRecord {
        client_id: "client-a".into(),
        redirect_uri: "http://127.0.0.1:3000/cb".into(),
        user: Identity::default(),
        scope: "mcp".into(),
        resources: vec!["https://mcp.example.com/mcp".into()],
        code_challenge: challenge.into(),
        exp,
    }
}

/// A valid verifier that differs from `v` in its last character.
fn other_verifier(v: &str) -> String {
    let last = if v.ends_with('a') { 'b' } else { 'a' };
    format!("{}{last}", &v[..v.len() - 1])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, .. ProptestConfig::default() })]

    /// A verifier matches its own S256 challenge, and no other verifier does.
    #[test]
    fn pkce_accepts_exactly_the_matching_verifier(v in verifier(), w in verifier()) {
        let c = pkce::s256(&v);
        prop_assert!(pkce::valid_challenge(&c));
        prop_assert!(pkce::verify_s256(&v, &c));
        prop_assert_eq!(pkce::verify_s256(&w, &c), v == w);
        // `plain` (the verifier as its own challenge) never passes.
        prop_assert!(!pkce::verify_s256(&v, &v));
    }

    /// Verifiers of the wrong shape are refused even against their own hash.
    #[test]
    fn pkce_refuses_malformed_verifiers(v in "[ -~]{0,42}|[A-Za-z0-9]{129,140}|[A-Za-z0-9]{20,60}[ +/=][A-Za-z0-9]{20,60}") {
        let c = pkce::s256(&v);
        prop_assert!(!pkce::verify_s256(&v, &c));
    }

    /// The code grant checks PKCE, client and expiry whatever the order of failures.
    #[test]
    fn code_grant_needs_every_binding(v in verifier(), now in 0u64..2_000, exp in 0u64..2_000, same_client in any::<bool>()) {
        let rec = code(&pkce::s256(&v), exp);
        let client = if same_client { "client-a" } else { "client-b" };
        let r = check_code_grant(&rec, client, Some("http://127.0.0.1:3000/cb"), Some(&v), &[], now);
        prop_assert_eq!(r.is_ok(), same_client && now < exp);
        let wrong = check_code_grant(&rec, "client-a", Some("http://127.0.0.1:3000/cb"), Some(&other_verifier(&v)), &[], 0);
        prop_assert!(wrong.is_err());
    }

    /// Loopback: any port matches (RFC 8252 §7.3); anything else about the URI must be equal.
    #[test]
    fn loopback_redirects_match_on_any_port(
        host in prop_oneof![Just("127.0.0.1"), Just("[::1]"), Just("localhost")],
        reg_port in proptest::option::of(1u16..),
        port in 1u16..,
        path in "/[a-z]{0,8}",
        other_path in "/[a-z]{0,8}",
    ) {
        let registered = match reg_port {
            Some(p) => format!("http://{host}:{p}{path}"),
            None => format!("http://{host}{path}"),
        };
        prop_assert_eq!(validate(&registered), Ok(Kind::Loopback));
        let presented = format!("http://{host}:{port}{path}");
        let reg = vec![registered.clone()];
        // `url` drops a default port (80), so `:80` is written differently; skip that one form.
        if port != 80 && path.len() > 1 {
            prop_assert_eq!(find_match(&reg, &presented), Some(registered.as_str()));
        }
        let elsewhere = format!("http://{host}:{port}{other_path}");
        if other_path != path {
            prop_assert_eq!(find_match(&reg, &elsewhere), None);
        }
        // Never a prefix or suffix match.
        prop_assert_eq!(find_match(&reg, &format!("{presented}x")), None);
        prop_assert_eq!(find_match(&reg, &format!("http://{host}.evil.com:{port}{path}")), None);
    }

    /// https (and private-use) URIs match only byte for byte.
    #[test]
    fn non_loopback_redirects_match_exactly(
        host in "[a-z]{1,10}\\.example\\.com",
        path in "/[a-zA-Z0-9/_-]{0,20}",
        suffix in "[a-zA-Z0-9/._?=-]{1,5}",
        port in 1u16..,
    ) {
        let registered = format!("https://{host}{path}");
        prop_assert_eq!(validate(&registered), Ok(Kind::Https));
        let reg = vec![registered.clone()];
        prop_assert_eq!(find_match(&reg, &registered), Some(registered.as_str()));
        prop_assert_eq!(find_match(&reg, &format!("{registered}{suffix}")), None);
        prop_assert_eq!(find_match(&reg, &format!("https://{host}:{port}{path}")), None);
        prop_assert_eq!(find_match(&reg, &format!("http://{host}{path}")), None);
        prop_assert_eq!(find_match(&reg, &registered.to_uppercase()).is_some(), registered.to_uppercase() == registered);
    }

    /// Expiry is `now >= exp` (RFC 7519 §4.1.4) for codes and refresh tokens,
    /// and the arithmetic saturates: no `exp` near u64::MAX wraps to the past.
    #[test]
    fn expiry_is_half_open_and_saturating(now in any::<u64>(), exp in any::<u64>(), v in verifier()) {
        let f = family("h", exp);
        let d = check_refresh(&f, "client-a", &at("h", 0), now);
        if now >= exp {
            prop_assert_eq!(d, RefreshDecision::Refuse("the refresh token has expired"));
        } else {
            prop_assert_eq!(d, RefreshDecision::Rotate);
        }
        let rec = code(&pkce::s256(&v), exp);
        let r = check_code_grant(&rec, "client-a", Some("http://127.0.0.1:3000/cb"), Some(&v), &[], now);
        prop_assert_eq!(r.is_ok(), now < exp);
    }

    /// Rotation: after any number of rotations only the newest token rotates;
    /// every earlier one, however old, revokes the family; another client's
    /// presentation is refused without revoking.
    #[test]
    fn refresh_rotation_detects_reuse(steps in 1usize..300, pick in any::<prop::sample::Index>()) {
        let mut f = family("h0", 10_000);
        for i in 1..=steps {
            prop_assert_eq!(check_refresh(&f, "client-a", &at(&format!("h{}", i - 1), i as u64 - 1), 100), RefreshDecision::Rotate);
            f = rotated(&f, format!("h{i}"), 10_000 + i as u64, &format!("jti{i}"), 200 + i as u64);
            prop_assert_eq!(&f.current_hash, &format!("h{i}"));
            prop_assert_eq!(f.generation, i as u64);
        }
        let old = pick.index(steps);
        let decision = check_refresh(&f, "client-a", &at(&format!("h{old}"), old as u64), 100);
        prop_assert_eq!(decision, RefreshDecision::RevokeFamily);
        let newest = format!("h{steps}");
        let by_other = check_refresh(&f, "client-b", &at(&newest, steps as u64), 100);
        prop_assert!(matches!(by_other, RefreshDecision::Refuse(_)));
        let mut revoked = f.clone();
        revoked.revoked = true;
        let after_revoke = check_refresh(&revoked, "client-a", &at(&newest, steps as u64), 100);
        prop_assert!(matches!(after_revoke, RefreshDecision::Refuse(_)));
        // The grant remembers only its newest access token (all carry its `sid`).
        prop_assert_eq!(f.last_access_exp(), 200 + steps as u64);
    }

    /// `<family>.[<generation>.]<secret>` parses only into non-empty, bounded parts.
    #[test]
    fn refresh_token_parse_is_strict(s in "[ -~]{0,300}") {
        if let Some((family, generation)) = parse_refresh_token(&s) {
            prop_assert!(!family.is_empty() && family.len() <= 128 && !family.contains('.'));
            let rest = &s[family.len() + 1..];
            match generation {
                None => prop_assert!(!rest.contains('.') && !rest.is_empty() && rest.len() <= 128),
                Some(g) => {
                    let prefix = format!("{}.", g);
                    prop_assert!(rest.starts_with(&prefix));
                }
            }
        }
    }
}
