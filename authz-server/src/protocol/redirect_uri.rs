//! Redirect URIs as a checked type: what a client may register (RFC 7591 §2,
//! RFC 8252 §7, OAuth 2.1 §2.3.1) and how a presented URI is matched against the
//! registered ones (exact string match; only the port of a loopback URI may
//! differ, RFC 8252 §7.3). Never a prefix match: the Python gateway accepted
//! `http://localhost.evil.com/cb` for `http://localhost`.

use url::Url;

/// The longest redirect URI we store.
pub const MAX_LEN: usize = 2000;

/// Schemes that run code or embed content in the browser; never a redirect target.
const DANGEROUS_SCHEMES: &[&str] = &[
    "javascript",
    "data",
    "vbscript",
    "file",
    "about",
    "blob",
    "filesystem",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    #[error("redirect URI is not an absolute URI")]
    NotAbsolute,
    #[error("redirect URI is too long")]
    TooLong,
    #[error("redirect URI must not contain a fragment (RFC 6749 §3.1.2)")]
    Fragment,
    #[error("redirect URI scheme {0:?} is never allowed")]
    DangerousScheme(String),
    #[error("http redirect URIs are allowed only on 127.0.0.1, [::1] or localhost (RFC 8252 §7.3); use https")]
    PlainHttp,
    #[error(
        "a private-use URI scheme must be a reverse domain name containing a dot (RFC 8252 §7.1)"
    )]
    PrivateSchemeWithoutDot,
    #[error("redirect URI must not carry user information")]
    UserInfo,
    #[error("https redirect URI must name a host")]
    NoHost,
}

/// What kind of redirect URI this is (RFC 8252 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Https,
    /// `http` on an exact loopback host: the port may vary per request.
    Loopback,
    /// Reverse-domain private-use scheme of a native app.
    PrivateUse,
}

/// Checks a URI a client wants to register.
pub fn validate(raw: &str) -> Result<Kind, RedirectUriError> {
    if raw.len() > MAX_LEN {
        return Err(RedirectUriError::TooLong);
    }
    if raw.contains('#') {
        return Err(RedirectUriError::Fragment);
    }
    if raw.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(RedirectUriError::NotAbsolute);
    }
    let url = Url::parse(raw).map_err(|_| RedirectUriError::NotAbsolute)?;
    let scheme = url.scheme();
    if DANGEROUS_SCHEMES.contains(&scheme) {
        return Err(RedirectUriError::DangerousScheme(scheme.to_string()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(RedirectUriError::UserInfo);
    }
    match scheme {
        "https" => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err(RedirectUriError::NoHost);
            }
            Ok(Kind::Https)
        }
        "http" => {
            if is_loopback_host(&url) {
                Ok(Kind::Loopback)
            } else {
                Err(RedirectUriError::PlainHttp)
            }
        }
        other => {
            if other.contains('.') {
                Ok(Kind::PrivateUse)
            } else {
                Err(RedirectUriError::PrivateSchemeWithoutDot)
            }
        }
    }
}

/// Exact loopback host names: the parsed host, so `localhost.evil.com` and
/// `127.0.0.1.nip.io` are not loopback.
fn is_loopback_host(url: &Url) -> bool {
    matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"))
}

/// The registered URI a presented one stands for, if any. Exact string match,
/// except that for an `http` loopback URI the port may differ (RFC 8252 §7.3:
/// native apps take an ephemeral port). Everything else — path, query, host —
/// must be identical.
pub fn find_match<'a>(registered: &'a [String], presented: &str) -> Option<&'a str> {
    if let Some(exact) = registered.iter().find(|r| r.as_str() == presented) {
        return Some(exact);
    }
    let p = Url::parse(presented).ok()?;
    if p.scheme() != "http" || !is_loopback_host(&p) || validate(presented) != Ok(Kind::Loopback) {
        return None;
    }
    registered.iter().map(String::as_str).find(|r| {
        let Ok(mut reg) = Url::parse(r) else {
            return false;
        };
        if reg.scheme() != "http" || !is_loopback_host(&reg) {
            return false;
        }
        if reg.set_port(p.port()).is_err() {
            return false;
        }
        // Compare serialisations, and demand the presented string was already in
        // that form, so no normalisation (dot segments, case) widens the match.
        reg.as_str() == p.as_str() && p.as_str() == presented
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_accepts_https_loopback_and_reverse_domain_schemes() {
        assert_eq!(validate("https://app.example.com/cb"), Ok(Kind::Https));
        assert_eq!(
            validate("http://127.0.0.1:33418/callback"),
            Ok(Kind::Loopback)
        );
        assert_eq!(validate("http://[::1]:8080/cb"), Ok(Kind::Loopback));
        assert_eq!(
            validate("http://localhost:6274/oauth/callback"),
            Ok(Kind::Loopback)
        );
        assert_eq!(
            validate("com.example.app:/oauth2redirect"),
            Ok(Kind::PrivateUse)
        );
    }

    #[test]
    fn registration_refuses_what_the_python_gateway_accepted() {
        assert_eq!(
            validate("javascript:alert(1)"),
            Err(RedirectUriError::DangerousScheme("javascript".into()))
        );
        assert!(matches!(
            validate("data:text/html,<script>x</script>"),
            Err(RedirectUriError::DangerousScheme(_))
        ));
        assert_eq!(
            validate("http://localhost.evil.com/cb"),
            Err(RedirectUriError::PlainHttp)
        );
        assert_eq!(
            validate("http://127.0.0.1.nip.io/cb"),
            Err(RedirectUriError::PlainHttp)
        );
        assert_eq!(
            validate("http://example.com/cb"),
            Err(RedirectUriError::PlainHttp)
        );
        assert_eq!(
            validate("https://app.example.com/cb#frag"),
            Err(RedirectUriError::Fragment)
        );
        assert_eq!(
            validate("myapp:/cb"),
            Err(RedirectUriError::PrivateSchemeWithoutDot)
        );
        assert_eq!(validate("/relative"), Err(RedirectUriError::NotAbsolute));
        assert_eq!(
            validate("https://user:pw@app.example.com/cb"),
            Err(RedirectUriError::UserInfo)
        );
        assert_eq!(
            validate("http://localhost@evil.com/cb"),
            Err(RedirectUriError::UserInfo)
        );
    }

    #[test]
    fn matching_is_exact_except_the_loopback_port() {
        let reg = vec![
            "http://127.0.0.1:1234/callback".to_string(),
            "https://app.example.com/cb".to_string(),
            "http://localhost/cb".to_string(),
        ];
        assert_eq!(
            find_match(&reg, "https://app.example.com/cb"),
            Some("https://app.example.com/cb")
        );
        assert_eq!(
            find_match(&reg, "http://127.0.0.1:9999/callback"),
            Some("http://127.0.0.1:1234/callback")
        );
        assert_eq!(
            find_match(&reg, "http://127.0.0.1/callback"),
            Some("http://127.0.0.1:1234/callback")
        );
        assert_eq!(
            find_match(&reg, "http://localhost:5555/cb"),
            Some("http://localhost/cb")
        );
        // One character off, a prefix, another path or host: refused.
        assert_eq!(find_match(&reg, "https://app.example.com/cb2"), None);
        assert_eq!(find_match(&reg, "https://app.example.com/c"), None);
        assert_eq!(find_match(&reg, "https://app.example.com:444/cb"), None);
        assert_eq!(
            find_match(&reg, "http://127.0.0.1:9999/callback/../callback"),
            None
        );
        assert_eq!(find_match(&reg, "http://127.0.0.1:9999/callback?x=1"), None);
        assert_eq!(find_match(&reg, "http://localhost.evil.com/cb"), None);
        assert_eq!(find_match(&reg, "http://[::1]:1234/callback"), None);
        assert_eq!(find_match(&reg, "HTTPS://app.example.com/cb"), None);
    }
}
