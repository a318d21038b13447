//! Which protected service a request is for: the resource URL's host and port,
//! and its path as a prefix ending on a segment boundary. The longest prefix wins.

use gateway_common::authority::split_host_port;

use crate::config::ServiceConfig;

/// The service `host` + `path` address, if any.
///
/// `path` must be canonical: a dot segment (`.`/`..`, also percent-encoded, or
/// with `\` as separator) never matches, because the proxy may normalise it
/// and route the request somewhere other than the prefix we checked.
pub fn match_service<'s>(
    services: &'s [ServiceConfig],
    proto: &str,
    host: &str,
    path: &str,
) -> Option<&'s ServiceConfig> {
    let (name, port) = split_host_port(host)?;
    let port = match port {
        Some(p) => p,
        None if proto == "https" => 443,
        None => 80,
    };
    if has_dot_segment(path) {
        return None;
    }
    services
        .iter()
        .filter(|s| s.host == name && s.port == port && path_has_prefix(path, &s.path_prefix))
        .max_by_key(|s| s.path_prefix.len())
}

/// `/mcp` is a prefix of `/mcp`, `/mcp/`, `/mcp/x`; not of `/mcpx`.
fn path_has_prefix(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

fn has_dot_segment(path: &str) -> bool {
    // Most paths have no escapes: no copy for them (this runs on every request).
    if path.contains('%') {
        is_dot_segmented(&percent_decode_lossy(path))
    } else {
        is_dot_segmented(path)
    }
}

fn is_dot_segmented(path: &str) -> bool {
    path.split(['/', '\\']).any(|seg| seg == "." || seg == "..")
}

fn percent_decode_lossy(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;

    fn svc(name: &str, host: &str, port: u16, prefix: &str) -> ServiceConfig {
        ServiceConfig {
            name: name.into(),
            resource: format!("https://{host}:{port}{prefix}"),
            host: host.into(),
            port,
            path_prefix: prefix.into(),
            policy: Policy::default(),
        }
    }

    #[test]
    fn host_port_and_path_boundary() {
        let s = vec![
            svc("echo", "echo.example.com", 443, "/mcp"),
            svc("root", "root.example.com", 443, ""),
            svc("a", "shared.example.com", 8443, "/a"),
            svc("ab", "shared.example.com", 8443, "/a/b"),
        ];
        let m = |proto, host, path| match_service(&s, proto, host, path).map(|s| s.name.as_str());
        assert_eq!(m("https", "echo.example.com", "/mcp"), Some("echo"));
        assert_eq!(m("https", "ECHO.example.com:443", "/mcp/x"), Some("echo"));
        assert_eq!(m("https", "echo.example.com", "/mcpx"), None);
        assert_eq!(m("http", "echo.example.com", "/mcp"), None);
        assert_eq!(m("https", "echo.example.com", "/"), None);
        assert_eq!(m("https", "other.example.com", "/mcp"), None);
        assert_eq!(m("https", "root.example.com", "/anything"), Some("root"));
        assert_eq!(m("https", "shared.example.com:8443", "/a/b/c"), Some("ab"));
        assert_eq!(m("https", "shared.example.com:8443", "/a/c"), Some("a"));
    }

    #[test]
    fn dot_segments_never_match() {
        let s = vec![svc("echo", "echo.example.com", 443, "/mcp")];
        for p in [
            "/mcp/../admin",
            "/mcp/%2e%2e/admin",
            "/mcp/%2E./x",
            "/mcp/.",
            "/mcp\\..\\x",
            "/mcp%2f..%2fx",
        ] {
            assert!(
                match_service(&s, "https", "echo.example.com", p).is_none(),
                "{p}"
            );
        }
        assert!(match_service(&s, "https", "echo.example.com", "/mcp/a..b").is_some());
    }
}
