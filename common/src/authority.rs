//! `host[:port]` as a `Host` header or a forwarded host carries it
//! (RFC 9110 §7.2; RFC 3986 §3.2.2–3.2.3: a host name, an IPv4 address or a
//! bracketed IPv6 literal, then an optional port). The verifier matches
//! services by it; the bridge checks `Host` against its allow-list with it.

/// The longest authority read: a 255-byte host name (RFC 1035 §2.3.4 bounds
/// names to 255 octets), `:` and a five-digit port. Nothing longer names a
/// configured service or an allowed host.
pub const MAX_AUTHORITY_BYTES: usize = 255 + 1 + 5;

/// Splits `host[:port]`, lower-casing the host (host names compare without
/// case, RFC 4343). An IPv6 literal keeps its brackets. `None` when the port
/// is not a number that fits a `u16`, when anything but `:port` follows an
/// IPv6 literal, or when the value is longer than [`MAX_AUTHORITY_BYTES`].
pub fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    if authority.len() > MAX_AUTHORITY_BYTES {
        return None;
    }
    let (name, port) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let name = &authority[..end + 2];
        match &rest[end + 1..] {
            "" => (name, None),
            p => (name, Some(p.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok()?),
    };
    Some((name.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_split() {
        assert_eq!(
            split_host_port("Echo.Example.com"),
            Some(("echo.example.com".into(), None))
        );
        assert_eq!(
            split_host_port("127.0.0.1:9000"),
            Some(("127.0.0.1".into(), Some(9000)))
        );
        assert_eq!(
            split_host_port("[::1]:80"),
            Some(("[::1]".into(), Some(80)))
        );
        assert_eq!(split_host_port("[::1]"), Some(("[::1]".into(), None)));
        assert_eq!(
            split_host_port("[FD00::A]"),
            Some(("[fd00::a]".into(), None))
        );
    }

    #[test]
    fn malformed_ports_are_refused() {
        for bad in [
            "a:b",
            "[::1]x",
            "[::1]:",
            "host:",
            "host:65536",
            "[::1",
            "h:-1",
        ] {
            assert_eq!(split_host_port(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_length_is_bounded() {
        let name = "a".repeat(255);
        assert!(split_host_port(&format!("{name}:65535")).is_some());
        assert_eq!(split_host_port(&format!("{name}:065535")), None);
    }
}
