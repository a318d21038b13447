//! Grant decisions for `/token`, as plain functions of the stored record, the
//! request and `now` — no I/O, tested without sockets. The HTTP adapter
//! (`http::token`) takes the records out of the store and acts on the answer.

use crate::error::OAuthError;
use crate::pkce;
use crate::records::{CodeRecord, RefreshFamily};

/// How many rotated-away refresh-token hashes a family remembers to recognise reuse.
pub const MAX_PREVIOUS_HASHES: usize = 32;

/// RFC 6749 §4.1.3 and RFC 7636 §4.6: checks a taken code against the
/// redeeming request. Returns the audience for the access token.
pub fn check_code_grant(
    code: &CodeRecord,
    client_id: &str,
    redirect_uri: Option<&str>,
    code_verifier: Option<&str>,
    requested_resources: &[String],
    now: u64,
) -> Result<Vec<String>, OAuthError> {
    if code.client_id != client_id {
        // Bound to the client that asked for it (the Python gateway was not).
        return Err(OAuthError::InvalidGrant(
            "the code was issued to another client".into(),
        ));
    }
    if now >= code.exp {
        return Err(OAuthError::InvalidGrant("the code has expired".into()));
    }
    // RFC 6749 §4.1.3: required, and identical, when it was in the authorization request.
    match redirect_uri {
        Some(r) if r == code.redirect_uri => {}
        Some(_) => {
            return Err(OAuthError::InvalidGrant(
                "redirect_uri differs from the authorization request".into(),
            ))
        }
        None => {
            return Err(OAuthError::InvalidRequest(
                "redirect_uri is required".into(),
            ))
        }
    }
    let Some(verifier) = code_verifier else {
        return Err(OAuthError::InvalidRequest(
            "code_verifier is required (PKCE)".into(),
        ));
    };
    if !pkce::verify_s256(verifier, &code.code_challenge) {
        return Err(OAuthError::InvalidGrant(
            "code_verifier does not match the code_challenge".into(),
        ));
    }
    narrow_resources(&code.resources, requested_resources)
}

/// RFC 8707 §2.2: the token request may name a subset of what was authorized;
/// anything else is `invalid_target`. No request names all that was authorized.
pub fn narrow_resources(
    granted: &[String],
    requested: &[String],
) -> Result<Vec<String>, OAuthError> {
    if requested.is_empty() {
        return Ok(granted.to_vec());
    }
    for r in requested {
        if !granted.contains(r) {
            return Err(OAuthError::InvalidTarget(format!(
                "resource {r} was not authorized for this grant"
            )));
        }
    }
    let mut out: Vec<String> = Vec::new();
    for r in requested {
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    Ok(out)
}

/// RFC 6749 §6: a refresh may ask for the same or fewer scopes; empty means all granted.
pub fn narrow_scope(granted: &str, requested: Option<&str>) -> Result<String, OAuthError> {
    let requested = requested.map(str::trim).filter(|s| !s.is_empty());
    let Some(requested) = requested else {
        return Ok(granted.to_string());
    };
    let granted_set: Vec<&str> = granted.split_ascii_whitespace().collect();
    let mut out: Vec<&str> = Vec::new();
    for s in requested.split_ascii_whitespace() {
        if !granted_set.contains(&s) {
            return Err(OAuthError::InvalidScope(format!(
                "scope {s} exceeds the original grant"
            )));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out.join(" "))
}

/// What to do with a presented refresh token.
#[derive(Debug, PartialEq, Eq)]
pub enum RefreshDecision {
    /// Valid and current: rotate it.
    Rotate,
    /// A rotated-away token came back, or the family is already revoked: the
    /// family has leaked; revoke it all (RFC 9700 §4.14.2).
    RevokeFamily,
    /// Not usable, nothing to revoke.
    Refuse(&'static str),
}

/// Rotated-away tokens are remembered by the first 128 bits of their hash
/// (hex): as unguessable as the whole for recognising reuse, and the family
/// record — read and rewritten on every refresh — half the size.
pub const HISTORY_HEX: usize = 32;

fn history_id(hash: &str) -> &str {
    hash.get(..HISTORY_HEX).unwrap_or(hash)
}

/// Whether a presented refresh token (by its hash) is the family's current
/// one, a rotated-away one, or neither. Compared in constant time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recognised {
    Current,
    Rotated,
    Unknown,
}

pub fn recognise(family: &RefreshFamily, presented_hash: &str) -> Recognised {
    use gateway_common::crypto::ct_eq;
    if ct_eq(family.current_hash.as_bytes(), presented_hash.as_bytes()) {
        return Recognised::Current;
    }
    let id = history_id(presented_hash);
    if family
        .previous_hashes
        .iter()
        .any(|h| ct_eq(history_id(h).as_bytes(), id.as_bytes()))
    {
        Recognised::Rotated
    } else {
        Recognised::Unknown
    }
}

pub fn check_refresh(
    family: &RefreshFamily,
    client_id: &str,
    presented_hash: &str,
    now: u64,
) -> RefreshDecision {
    let was_rotated = match recognise(family, presented_hash) {
        Recognised::Unknown => return RefreshDecision::Refuse("unknown refresh token"),
        Recognised::Current => false,
        Recognised::Rotated => true,
    };
    if family.client_id != client_id {
        // Bound to its client (OAuth 2.1 §4.3.1); presenting another's token is not reuse by the owner.
        return RefreshDecision::Refuse("the refresh token was issued to another client");
    }
    if family.revoked {
        return RefreshDecision::Refuse("the refresh token was revoked");
    }
    if was_rotated {
        return RefreshDecision::RevokeFamily;
    }
    if now >= family.exp {
        return RefreshDecision::Refuse("the refresh token has expired");
    }
    RefreshDecision::Rotate
}

/// The family after rotating to `new_hash` and issuing access token `jti`.
pub fn rotated(
    family: &RefreshFamily,
    new_hash: String,
    new_exp: u64,
    jti: &str,
    access_exp: u64,
) -> RefreshFamily {
    let mut next = family.clone();
    let old = std::mem::replace(&mut next.current_hash, new_hash);
    next.previous_hashes.push(history_id(&old).to_string());
    if next.previous_hashes.len() > MAX_PREVIOUS_HASHES {
        let excess = next.previous_hashes.len() - MAX_PREVIOUS_HASHES;
        next.previous_hashes.drain(..excess);
    }
    next.exp = new_exp;
    next.last_access = Some(crate::records::LiveToken {
        jti: jti.to_string(),
        exp: access_exp,
    });
    next
}

/// Parses `refresh_token = <family id>.<secret>`.
pub fn split_refresh_token(token: &str) -> Option<(&str, &str)> {
    let (family, secret) = token.split_once('.')?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (ok(family) && ok(secret)).then_some((family, secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signin::Identity;

    fn user() -> Identity {
        Identity {
            sub: "local:alice".into(),
            name: "alice".into(),
            email: None,
            groups: vec![],
            idp: "local".into(),
            ..Identity::default()
        }
    }

    fn code() -> CodeRecord {
        CodeRecord {
            client_id: "c1".into(),
            redirect_uri: "http://127.0.0.1:5000/cb".into(),
            user: user(),
            scope: "mcp".into(),
            resources: vec!["https://echo.example.com/mcp".into()],
            code_challenge: pkce::s256(&"v".repeat(43)),
            exp: 1000,
        }
    }

    #[test]
    fn code_is_bound_to_client_redirect_verifier_and_time() {
        let v = "v".repeat(43);
        let ok = check_code_grant(
            &code(),
            "c1",
            Some("http://127.0.0.1:5000/cb"),
            Some(&v),
            &[],
            999,
        )
        .unwrap();
        assert_eq!(ok, vec!["https://echo.example.com/mcp"]);
        let e = |r: Result<Vec<String>, OAuthError>| r.unwrap_err().code();
        assert_eq!(
            e(check_code_grant(
                &code(),
                "c2",
                Some("http://127.0.0.1:5000/cb"),
                Some(&v),
                &[],
                999
            )),
            "invalid_grant"
        );
        assert_eq!(
            e(check_code_grant(
                &code(),
                "c1",
                Some("http://127.0.0.1:5000/cb"),
                Some(&v),
                &[],
                1000
            )),
            "invalid_grant"
        );
        assert_eq!(
            e(check_code_grant(
                &code(),
                "c1",
                Some("http://127.0.0.1:5001/cb"),
                Some(&v),
                &[],
                999
            )),
            "invalid_grant"
        );
        assert_eq!(
            e(check_code_grant(&code(), "c1", None, Some(&v), &[], 999)),
            "invalid_request"
        );
        assert_eq!(
            e(check_code_grant(
                &code(),
                "c1",
                Some("http://127.0.0.1:5000/cb"),
                None,
                &[],
                999
            )),
            "invalid_request"
        );
        let wrong = "w".repeat(43);
        assert_eq!(
            e(check_code_grant(
                &code(),
                "c1",
                Some("http://127.0.0.1:5000/cb"),
                Some(&wrong),
                &[],
                999
            )),
            "invalid_grant"
        );
        let other = vec!["https://other.example.com/mcp".to_string()];
        assert_eq!(
            e(check_code_grant(
                &code(),
                "c1",
                Some("http://127.0.0.1:5000/cb"),
                Some(&v),
                &other,
                999
            )),
            "invalid_target"
        );
    }

    #[test]
    fn scope_and_resource_only_narrow() {
        assert_eq!(narrow_scope("mcp admin", None).unwrap(), "mcp admin");
        assert_eq!(narrow_scope("mcp admin", Some("")).unwrap(), "mcp admin");
        assert_eq!(narrow_scope("mcp admin", Some("mcp")).unwrap(), "mcp");
        assert_eq!(
            narrow_scope("mcp", Some("mcp admin")).unwrap_err().code(),
            "invalid_scope"
        );
        let g = vec!["a".to_string(), "b".to_string()];
        assert_eq!(narrow_resources(&g, &["b".to_string()]).unwrap(), vec!["b"]);
        assert_eq!(
            narrow_resources(&g, &["c".to_string()]).unwrap_err().code(),
            "invalid_target"
        );
    }

    fn family() -> RefreshFamily {
        RefreshFamily {
            family_id: "f".into(),
            client_id: "c1".into(),
            user: user(),
            scope: "mcp".into(),
            resources: vec![],
            current_hash: "h2".into(),
            previous_hashes: vec!["h1".into()],
            revoked: false,
            exp: 100,
            last_access: None,
            jkt: None,
        }
    }

    #[test]
    fn rotated_tokens_are_recognised_by_a_shortened_hash() {
        use gateway_common::crypto::hash_secret;
        let (t0, t1, t2) = ("fam.zero", "fam.one", "fam.two");
        let mut f = family();
        f.current_hash = hash_secret(t0);
        f.previous_hashes.clear();
        f = rotated(&f, hash_secret(t1), 100, "j1", 60);
        f = rotated(&f, hash_secret(t2), 100, "j2", 60);
        assert!(f.previous_hashes.iter().all(|h| h.len() == HISTORY_HEX));
        assert_eq!(recognise(&f, &hash_secret(t2)), Recognised::Current);
        assert_eq!(recognise(&f, &hash_secret(t0)), Recognised::Rotated);
        assert_eq!(recognise(&f, &hash_secret(t1)), Recognised::Rotated);
        assert_eq!(
            recognise(&f, &hash_secret("fam.other")),
            Recognised::Unknown
        );
        assert_eq!(
            check_refresh(&f, "c1", &hash_secret(t0), 50),
            RefreshDecision::RevokeFamily
        );
    }

    #[test]
    fn refresh_decisions() {
        assert_eq!(
            check_refresh(&family(), "c1", "h2", 50),
            RefreshDecision::Rotate
        );
        assert_eq!(
            check_refresh(&family(), "c1", "h1", 50),
            RefreshDecision::RevokeFamily
        );
        assert!(matches!(
            check_refresh(&family(), "c2", "h2", 50),
            RefreshDecision::Refuse(_)
        ));
        assert!(matches!(
            check_refresh(&family(), "c1", "zz", 50),
            RefreshDecision::Refuse(_)
        ));
        assert!(matches!(
            check_refresh(&family(), "c1", "h2", 100),
            RefreshDecision::Refuse(_)
        ));
        let mut revoked = family();
        revoked.revoked = true;
        assert!(matches!(
            check_refresh(&revoked, "c1", "h2", 50),
            RefreshDecision::Refuse(_)
        ));
    }

    #[test]
    fn rotation_keeps_a_bounded_history_and_a_constant_size() {
        let mut f = family();
        let size = |f: &RefreshFamily| serde_json::to_vec(f).unwrap().len();
        let mut sizes = Vec::new();
        for i in 0..400 {
            f = rotated(&f, format!("n{i:03}"), 200, &format!("j{i:03}"), 1000 + i);
            sizes.push(size(&f));
        }
        assert_eq!(f.current_hash, "n399");
        assert_eq!(f.previous_hashes.len(), MAX_PREVIOUS_HASHES);
        assert!(f.previous_hashes.contains(&"n398".to_string()));
        assert_eq!(f.last_access_exp(), 1399);
        assert_eq!(f.last_access.as_ref().unwrap().jti, "j399");
        // However often a grant is refreshed, its record stops growing once
        // the reuse history is full.
        assert_eq!(sizes[MAX_PREVIOUS_HASHES + 10], sizes[399]);
    }

    #[test]
    fn refresh_token_shape() {
        assert_eq!(split_refresh_token("fam.sec"), Some(("fam", "sec")));
        assert_eq!(split_refresh_token("famsec"), None);
        assert_eq!(split_refresh_token(".sec"), None);
        assert_eq!(split_refresh_token("fa m.sec"), None);
    }
}
