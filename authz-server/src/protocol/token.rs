//! Grant decisions for `/token`, as plain functions of the stored record, the
//! request and `now` — no I/O, tested without sockets. The HTTP adapter
//! (`http::token`) takes the records out of the store and acts on the answer.

use std::borrow::Cow;

use crate::protocol::error::OAuthError;
use crate::protocol::records::{CodeRecord, RefreshFamily};
use gateway_common::pkce;

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

/// Whether a presented refresh token is the family's current one, a
/// rotated-away one, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recognised {
    Current,
    Rotated,
    Unknown,
}

/// A presented refresh token, split: `<family id>.<generation>.<secret>`
/// (or `<family id>.<secret>` as issued before generations existed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presented<'a> {
    pub family_id: &'a str,
    /// `None` for a token from before generations.
    pub generation: Option<u64>,
    /// SHA-256 hex of the whole token.
    pub hash: &'a str,
}

/// Reuse detection for the family's whole life at a constant record size
/// (RFC 9700 §4.14.2). Every token carries its generation; the family keeps
/// only the current generation and the hash of the current token. A token
/// of an older generation is a rotated one — whoever presents it knew the
/// family id, which exists nowhere but in the family's own tokens (access
/// tokens carry only a one-way `sid`) — so it is reuse however many
/// rotations ago it was issued. The current token is compared in constant
/// time; anything else of the current or a later generation is unknown.
pub fn recognise(family: &RefreshFamily, presented: &Presented<'_>) -> Recognised {
    use gateway_common::crypto::ct_eq;
    if ct_eq(family.current_hash.as_bytes(), presented.hash.as_bytes()) {
        return Recognised::Current;
    }
    match presented.generation {
        Some(g) if g < family.generation => Recognised::Rotated,
        Some(_) => Recognised::Unknown,
        // A token from before generations: older than any generation-tagged one.
        None if family.generation > 0 => Recognised::Rotated,
        None => {
            // Families rotated before generations existed remember a few hashes.
            let id = presented
                .hash
                .get(..LEGACY_HISTORY_HEX)
                .unwrap_or(presented.hash);
            if family.previous_hashes.iter().any(|h| {
                ct_eq(
                    h.get(..LEGACY_HISTORY_HEX).unwrap_or(h).as_bytes(),
                    id.as_bytes(),
                )
            }) {
                Recognised::Rotated
            } else {
                Recognised::Unknown
            }
        }
    }
}

/// Hash prefix length of the legacy history (`previous_hashes`).
const LEGACY_HISTORY_HEX: usize = 32;

pub fn check_refresh(
    family: &RefreshFamily,
    client_id: &str,
    presented: &Presented<'_>,
    now: u64,
) -> RefreshDecision {
    let was_rotated = match recognise(family, presented) {
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

/// A new refresh token of `family_id` at `generation` (only its hash is stored).
pub fn mint_refresh_token(family_id: &str, generation: u64) -> String {
    format!(
        "{family_id}.{generation}.{}",
        gateway_common::crypto::random_token(32)
    )
}

/// The family after rotating to the token whose hash is `new_hash` (of
/// generation `family.generation + 1`) and issuing access token `jti`.
pub fn rotated(
    family: &RefreshFamily,
    new_hash: String,
    new_exp: u64,
    jti: &str,
    access_exp: u64,
) -> RefreshFamily {
    let mut next = family.clone();
    next.current_hash = new_hash;
    next.generation = family.generation.saturating_add(1);
    // Every older token is now recognised by its generation.
    next.previous_hashes.clear();
    next.exp = new_exp;
    next.last_access = Some(crate::protocol::records::LiveToken {
        jti: jti.to_string(),
        exp: access_exp,
    });
    next
}

/// Parses `refresh_token = <family id>.<generation>.<secret>` or the older
/// `<family id>.<secret>`; returns the family id and the generation.
pub fn parse_refresh_token(token: &str) -> Option<(&str, Option<u64>)> {
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let (family, rest) = token.split_once('.')?;
    if !ok(family) {
        return None;
    }
    match rest.split_once('.') {
        None => ok(rest).then_some((family, None)),
        Some((generation, secret)) => {
            // Canonical decimal only (no sign, no leading zero): one spelling per generation.
            let canonical = !generation.is_empty()
                && generation.len() <= 19
                && generation.bytes().all(|b| b.is_ascii_digit())
                && !(generation.len() > 1 && generation.starts_with('0'));
            let g = canonical
                .then(|| generation.parse::<u64>().ok())
                .flatten()?;
            ok(secret).then_some((family, Some(g)))
        }
    }
}

/// The family id of a refresh token: ours (`<family id>[.<generation>].<secret>`),
/// or a Python gateway token brought over by `mcp-gateway import-python`
/// ([`imported_family_id`]), which is of no generation.
pub fn split_refresh_token(token: &str) -> Option<(Cow<'_, str>, Option<u64>)> {
    match parse_refresh_token(token) {
        Some((family, generation)) => Some((Cow::Borrowed(family), generation)),
        None => imported_family_id(token).map(|f| (Cow::Owned(f), None)),
    }
}

/// Prefix of the family ids of imported Python gateway refresh tokens.
pub const IMPORTED_FAMILY_PREFIX: &str = "py-";

/// The family id of a refresh token issued by the Python gateway
/// (`secrets.token_urlsafe(32)`: base64url, no dot), as `import-python`
/// stored it: derived from the token one way, so the token itself is found
/// without an index and never stored (only its hash, as ours). `None` for
/// anything that is not of that shape.
pub fn imported_family_id(token: &str) -> Option<String> {
    let shaped = (32..=128).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !shaped {
        return None;
    }
    let mut h = gateway_common::crypto::hash_secret(&format!("python-refresh:{token}"));
    h.truncate(32);
    Some(format!("{IMPORTED_FAMILY_PREFIX}{h}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::identity::Identity;

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
            previous_hashes: vec![],
            generation: 2,
            revoked: false,
            exp: 100,
            last_access: None,
            jkt: None,
        }
    }

    fn p(hash: &str, generation: Option<u64>) -> Presented<'_> {
        Presented {
            family_id: "f",
            generation,
            hash,
        }
    }

    #[test]
    fn reuse_is_detected_for_the_whole_life_of_the_family() {
        use gateway_common::crypto::hash_secret;
        let first = mint_refresh_token("fam", 0);
        let mut f = family();
        f.generation = 0;
        f.current_hash = hash_secret(&first);
        let mut tokens = vec![first];
        for i in 0..1000 {
            let t = mint_refresh_token("fam", f.generation + 1);
            f = rotated(&f, hash_secret(&t), 100, &format!("j{i}"), 60);
            tokens.push(t);
        }
        assert_eq!(f.generation, 1000);
        let judge = |t: &str| {
            let (_, generation) = parse_refresh_token(t).unwrap();
            recognise(&f, &p(&hash_secret(t), generation))
        };
        assert_eq!(judge(&tokens[1000]), Recognised::Current);
        // The very first token, a thousand rotations ago, is still reuse.
        assert_eq!(judge(&tokens[0]), Recognised::Rotated);
        assert_eq!(judge(&tokens[999]), Recognised::Rotated);
        // A forged token of the current generation is unknown, not reuse.
        assert_eq!(judge("fam.1000.forged"), Recognised::Unknown);
        assert_eq!(judge("fam.1001.forged"), Recognised::Unknown);
        let (_, g) = parse_refresh_token(&tokens[3]).unwrap();
        assert_eq!(
            check_refresh(&f, "c1", &p(&hash_secret(&tokens[3]), g), 50),
            RefreshDecision::RevokeFamily
        );
    }

    #[test]
    fn tokens_from_before_generations_still_work_and_are_caught_when_reused() {
        use gateway_common::crypto::hash_secret;
        let (t0, t1) = ("fam.zero", "fam.one");
        let mut f = family();
        f.generation = 0;
        f.current_hash = hash_secret(t1);
        f.previous_hashes = vec![hash_secret(t0)[..32].to_string()];
        assert_eq!(
            recognise(&f, &p(&hash_secret(t1), None)),
            Recognised::Current
        );
        assert_eq!(
            recognise(&f, &p(&hash_secret(t0), None)),
            Recognised::Rotated
        );
        assert_eq!(
            recognise(&f, &p(&hash_secret("fam.x"), None)),
            Recognised::Unknown
        );
        let t2 = mint_refresh_token("fam", 1);
        f = rotated(&f, hash_secret(&t2), 100, "j", 60);
        assert!(f.previous_hashes.is_empty());
        assert_eq!(
            recognise(&f, &p(&hash_secret(t1), None)),
            Recognised::Rotated
        );
        assert_eq!(
            recognise(&f, &p(&hash_secret("fam.x"), None)),
            Recognised::Rotated
        );
    }

    #[test]
    fn refresh_decisions() {
        assert_eq!(
            check_refresh(&family(), "c1", &p("h2", Some(2)), 50),
            RefreshDecision::Rotate
        );
        assert_eq!(
            check_refresh(&family(), "c1", &p("h1", Some(1)), 50),
            RefreshDecision::RevokeFamily
        );
        assert!(matches!(
            check_refresh(&family(), "c2", &p("h2", Some(2)), 50),
            RefreshDecision::Refuse(_)
        ));
        assert!(matches!(
            check_refresh(&family(), "c1", &p("zz", Some(2)), 50),
            RefreshDecision::Refuse(_)
        ));
        assert!(matches!(
            check_refresh(&family(), "c1", &p("h2", Some(2)), 100),
            RefreshDecision::Refuse(_)
        ));
        let mut revoked = family();
        revoked.revoked = true;
        assert!(matches!(
            check_refresh(&revoked, "c1", &p("h2", Some(2)), 50),
            RefreshDecision::Refuse(_)
        ));
    }

    #[test]
    fn rotation_keeps_a_constant_size() {
        let mut f = family();
        let size = |f: &RefreshFamily| serde_json::to_vec(f).unwrap().len();
        let mut sizes = Vec::new();
        for i in 0..400 {
            f = rotated(&f, format!("n{i:03}"), 200, &format!("j{i:03}"), 1000 + i);
            sizes.push(size(&f));
        }
        assert_eq!(f.current_hash, "n399");
        assert!(f.previous_hashes.is_empty());
        assert_eq!(f.last_access_exp(), 1399);
        assert_eq!(f.last_access.as_ref().unwrap().jti, "j399");
        // However often a grant is refreshed, its record stays one size
        // (give or take the digits of the generation).
        assert!(
            sizes[399] <= sizes[10] + 2,
            "{} vs {}",
            sizes[399],
            sizes[10]
        );
    }

    #[test]
    fn refresh_token_shape() {
        assert_eq!(parse_refresh_token("fam.sec"), Some(("fam", None)));
        assert_eq!(parse_refresh_token("fam.7.sec"), Some(("fam", Some(7))));
        assert_eq!(parse_refresh_token("famsec"), None);
        assert_eq!(parse_refresh_token(".sec"), None);
        assert_eq!(parse_refresh_token("fa m.sec"), None);
        assert_eq!(parse_refresh_token("fam.x7.sec"), None);
        assert_eq!(parse_refresh_token("fam.7.sec.more"), None);
        assert_eq!(parse_refresh_token("fam.99999999999999999999.sec"), None);
    }

    #[test]
    fn imported_python_tokens_find_their_family_and_are_reuse_once_rotated() {
        // The shape of the Python gateway's `secrets.token_urlsafe(32)`.
        let py = "uJ3k-_x9QmZ0aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0u";
        let (family_id, generation) = split_refresh_token(py).unwrap();
        assert!(family_id.starts_with(IMPORTED_FAMILY_PREFIX));
        assert_eq!(Some(family_id.to_string()), imported_family_id(py));
        assert_eq!(generation, None);
        // Ours are still split as ours; short or dotted strings are not Python tokens.
        let ours = mint_refresh_token("fam", 3);
        assert_eq!(
            split_refresh_token(&ours).map(|(f, g)| (f.into_owned(), g)),
            Some(("fam".to_string(), Some(3)))
        );
        assert_eq!(imported_family_id("short"), None);
        assert_eq!(imported_family_id(&"a b".repeat(20)), None);

        use gateway_common::crypto::hash_secret;
        let mut f = family();
        f.family_id = family_id.to_string();
        f.generation = 0;
        f.current_hash = hash_secret(py);
        let (py_hash, next_token) = (hash_secret(py), mint_refresh_token(&f.family_id, 1));
        let next_hash = hash_secret(&next_token);
        let presented = |hash, generation| Presented {
            family_id: &family_id,
            generation,
            hash,
        };
        assert_eq!(
            recognise(&f, &presented(&py_hash, None)),
            Recognised::Current
        );
        let next = rotated(&f, next_hash.clone(), 99, "j", 99);
        // After one rotation the Python token is a rotated one: reuse.
        assert_eq!(
            recognise(&next, &presented(&py_hash, None)),
            Recognised::Rotated
        );
        assert_eq!(
            recognise(&next, &presented(&next_hash, Some(1))),
            Recognised::Current
        );
    }
}
