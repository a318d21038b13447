//! Bearer token extraction (RFC 6750 §2.1), bounded before anything else looks
//! at the token.

use crate::forwarded::AuthorizationHeader;

/// What came out of the `Authorization` header: a token (`T`: checked `&str`
/// from [`extract`], unchecked bytes from `locate`) or why there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extracted<T> {
    /// No `Authorization: Bearer` at all (another scheme counts as none:
    /// RFC 6750 §3.1, the challenge then carries no error code).
    None,
    Token(T),
    /// Longer than `MAX_TOKEN_BYTES`; never decoded.
    TooLong,
    /// `Bearer` with an empty or syntactically invalid value.
    Malformed,
    /// `Authorization` sent more than once.
    Ambiguous,
}

/// Takes the bearer token out of the `Authorization` header.
///
/// `credentials = "Bearer" 1*SP b64token` where the scheme is case-insensitive
/// (RFC 9110 §11.1) and `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
/// "+" / "/" ) *"="`. The length bound is applied to the header first, so an
/// oversized header costs one comparison.
pub fn extract(header: AuthorizationHeader<'_>, max_token_bytes: usize) -> Extracted<&str> {
    checked(locate(header, max_token_bytes))
}

/// [`extract`] without the token's syntax check: the bytes after the scheme
/// and its spaces, bounded and non-empty. The verifier checks them with
/// [`validate`] only for a token it has not seen: its caches only ever hold
/// tokens that passed, so a token found there needs no second scan.
pub(crate) fn locate(header: AuthorizationHeader<'_>, max_token_bytes: usize) -> Extracted<&[u8]> {
    let raw = match header {
        AuthorizationHeader::Absent => return Extracted::None,
        AuthorizationHeader::Several => return Extracted::Ambiguous,
        AuthorizationHeader::One(raw) => raw,
    };
    // "Bearer" + spaces + token: anything longer than this cannot hold a token
    // within the bound, whatever the spacing.
    const SCHEME: usize = 6;
    let Some(scheme) = raw.get(..SCHEME) else {
        return Extracted::None;
    };
    if !scheme.eq_ignore_ascii_case(b"Bearer") {
        return Extracted::None;
    }
    locate_after_scheme(&raw[SCHEME..], max_token_bytes)
}

/// The token part of `<scheme> 1*SP b64token`, given what follows the scheme
/// name (also used for `DPoP`, `crate::dpop::locate`); not yet [`validate`]d.
pub(crate) fn locate_after_scheme(rest: &[u8], max_token_bytes: usize) -> Extracted<&[u8]> {
    let token_start = rest.iter().take_while(|&&b| b == b' ').count();
    if token_start == 0 {
        // "Bearerxyz" is another scheme; bare "Bearer" is a bearer request without a token.
        return if rest.is_empty() {
            Extracted::Malformed
        } else {
            Extracted::None
        };
    }
    let token = &rest[token_start..];
    if token.len() > max_token_bytes {
        return Extracted::TooLong;
    }
    if token.is_empty() {
        return Extracted::Malformed;
    }
    Extracted::Token(token)
}

/// A located token's syntax check: `Malformed` unless it is a b64token.
pub(crate) fn checked(located: Extracted<&[u8]>) -> Extracted<&str> {
    match located {
        Extracted::Token(t) => validate(t).map_or(Extracted::Malformed, Extracted::Token),
        Extracted::None => Extracted::None,
        Extracted::TooLong => Extracted::TooLong,
        Extracted::Malformed => Extracted::Malformed,
        Extracted::Ambiguous => Extracted::Ambiguous,
    }
}

/// The token as text if it is a b64token (RFC 6750 §2.1), else `None`.
pub(crate) fn validate(token: &[u8]) -> Option<&str> {
    if !is_b64token(token) {
        return None;
    }
    std::str::from_utf8(token).ok()
}

fn is_b64token(t: &[u8]) -> bool {
    let body_len = t.len() - t.iter().rev().take_while(|&&b| b == b'=').count();
    // Branch-free per byte, folded without an early exit, so the compiler can
    // check many bytes per instruction: this runs over every token on every
    // request, before the cache lookup (a cached verify is a few hundred ns).
    body_len > 0
        && t[..body_len]
            .iter()
            .fold(true, |ok, &b| ok & is_b64token_byte(b))
}

#[inline(always)]
fn is_b64token_byte(b: u8) -> bool {
    (b | 0x20).wrapping_sub(b'a') < 26
        || b.wrapping_sub(b'0') < 10
        || b == b'-'
        || b == b'.'
        || b == b'_'
        || b == b'~'
        || b == b'+'
        || b == b'/'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Extracted<&str> {
        extract(AuthorizationHeader::One(s.as_bytes()), 32)
    }

    #[test]
    fn bearer_tokens_are_extracted() {
        assert_eq!(one("Bearer abc.def.ghi"), Extracted::Token("abc.def.ghi"));
        assert_eq!(one("bearer   abc"), Extracted::Token("abc"));
        assert_eq!(one("BEARER a+b/c=="), Extracted::Token("a+b/c=="));
    }

    #[test]
    fn the_byte_class_is_exactly_b64token() {
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            assert_eq!(is_b64token_byte(b), want, "byte {b:#04x}");
        }
    }

    #[test]
    fn other_schemes_and_absence_are_no_token() {
        assert_eq!(extract(AuthorizationHeader::Absent, 32), Extracted::None);
        assert_eq!(one("Basic dXNlcjpwYXNz"), Extracted::None);
        assert_eq!(one("Bearerabc"), Extracted::None);
        assert_eq!(one("Bear"), Extracted::None);
    }

    #[test]
    fn bad_values_are_malformed_or_too_long() {
        assert_eq!(one("Bearer"), Extracted::Malformed);
        assert_eq!(one("Bearer "), Extracted::Malformed);
        assert_eq!(one("Bearer a b"), Extracted::Malformed);
        assert_eq!(one("Bearer ===="), Extracted::Malformed);
        assert_eq!(one("Bearer a=b"), Extracted::Malformed);
        assert_eq!(one("Bearer é"), Extracted::Malformed);
        assert_eq!(
            one(&format!("Bearer {}", "a".repeat(33))),
            Extracted::TooLong
        );
        assert_eq!(
            one(&format!("Bearer {}", "a".repeat(32))),
            Extracted::Token("a".repeat(32).as_str())
        );
        assert_eq!(
            extract(AuthorizationHeader::Several, 32),
            Extracted::Ambiguous
        );
    }
}
