//! What a client may ask for: scopes (RFC 6749 §3.3) and resources (RFC 8707).

use crate::protocol::error::OAuthError;

/// RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E.
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Requested scopes, each supported, duplicates dropped. None or empty means
/// the client's registered scope, else the server's default (RFC 6749 §3.3:
/// the server "MUST either process the request using a pre-defined default
/// value or fail").
pub fn resolve_scope(
    requested: Option<&str>,
    client_scope: Option<&str>,
    supported: &[String],
    server_default: &str,
) -> Result<String, OAuthError> {
    let requested = requested.map(str::trim).filter(|s| !s.is_empty());
    let Some(requested) = requested else {
        return Ok(client_scope.unwrap_or(server_default).to_string());
    };
    let mut out: Vec<&str> = Vec::new();
    for s in requested.split_ascii_whitespace() {
        if !is_scope_token(s) || !supported.iter().any(|x| x == s) {
            return Err(OAuthError::InvalidScope(format!(
                "scope {s} is not supported"
            )));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out.join(" "))
}

/// RFC 8707 §2: every `resource` must be a configured MCP service, byte for
/// byte. Without one, the single configured service is meant; with several
/// services the client must say which (a token for all would be too broad).
pub fn resolve_resources(
    requested: &[String],
    configured: &[&str],
) -> Result<Vec<String>, OAuthError> {
    if requested.is_empty() {
        return match configured {
            [only] => Ok(vec![(*only).to_string()]),
            [] => Err(OAuthError::InvalidTarget(
                "no protected resource is configured".into(),
            )),
            _ => Err(OAuthError::InvalidTarget(
                "resource is required: this server protects several services".into(),
            )),
        };
    }
    let mut out: Vec<String> = Vec::new();
    for r in requested {
        if !configured.contains(&r.as_str()) {
            return Err(OAuthError::InvalidTarget(format!(
                "{r} is not a resource this server issues tokens for"
            )));
        }
        if !out.contains(r) {
            out.push(r.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn scopes_default_deduplicate_and_refuse_the_unknown() {
        let supported = strings(&["mcp", "read", "write"]);
        assert_eq!(resolve_scope(None, None, &supported, "mcp").unwrap(), "mcp");
        assert_eq!(
            resolve_scope(Some("  "), Some("read"), &supported, "mcp").unwrap(),
            "read"
        );
        assert_eq!(
            resolve_scope(Some("read write read"), None, &supported, "mcp").unwrap(),
            "read write"
        );
        for bad in ["admin", "read \"x", "re\\ad"] {
            assert_eq!(
                resolve_scope(Some(bad), None, &supported, "mcp")
                    .unwrap_err()
                    .code(),
                "invalid_scope",
                "{bad}"
            );
        }
    }

    #[test]
    fn resources_must_be_configured_and_one_is_implied_only_when_alone() {
        let one = ["https://a.example/mcp"];
        let two = ["https://a.example/mcp", "https://b.example/mcp"];
        assert_eq!(resolve_resources(&[], &one).unwrap(), strings(&one));
        assert_eq!(
            resolve_resources(&[], &two).unwrap_err().code(),
            "invalid_target"
        );
        assert_eq!(
            resolve_resources(&[], &[]).unwrap_err().code(),
            "invalid_target"
        );
        let asked = strings(&[
            "https://b.example/mcp",
            "https://a.example/mcp",
            "https://b.example/mcp",
        ]);
        assert_eq!(
            resolve_resources(&asked, &two).unwrap(),
            strings(&["https://b.example/mcp", "https://a.example/mcp"])
        );
        // Byte for byte: a trailing slash is another resource.
        let slash = strings(&["https://a.example/mcp/"]);
        assert_eq!(
            resolve_resources(&slash, &two).unwrap_err().code(),
            "invalid_target"
        );
    }
}
