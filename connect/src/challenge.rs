//! The `WWW-Authenticate: Bearer …` challenge of a protected MCP endpoint
//! (RFC 6750 §3, RFC 9728 §5.1).

use std::collections::HashMap;

/// The auth-params of the `Bearer` challenge, names lower-cased. Empty when the header
/// carries no Bearer challenge.
pub fn bearer_params(header: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let trimmed = header.trim_start();
    let Some(rest) = strip_scheme(trimmed) else {
        return out;
    };
    let mut s = rest;
    loop {
        s = s.trim_start_matches([' ', ',', '\t']);
        let Some(eq) = s.find('=') else { break };
        let name = s[..eq].trim().to_ascii_lowercase();
        if name.contains(' ') {
            // Another scheme begins ("Bearer a=b, DPoP ..."): stop.
            break;
        }
        s = &s[eq + 1..];
        let value;
        if let Some(q) = s.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    _ => v.push(c),
                }
            }
            value = v;
            s = &q[end.min(q.len())..];
        } else {
            let end = s.find(',').unwrap_or(s.len());
            value = s[..end].trim().to_string();
            s = &s[end..];
        }
        out.insert(name, value);
    }
    out
}

fn strip_scheme(h: &str) -> Option<&str> {
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    scheme.eq_ignore_ascii_case("bearer").then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_and_token_params() {
        let p = bearer_params(
            r#"Bearer resource_metadata="https://h/.well-known/oauth-protected-resource/mcp", scope="mcp tools", error=invalid_token"#,
        );
        assert_eq!(
            p["resource_metadata"],
            "https://h/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(p["scope"], "mcp tools");
        assert_eq!(p["error"], "invalid_token");
    }

    #[test]
    fn other_schemes_give_nothing() {
        assert!(bearer_params("Basic realm=\"x\"").is_empty());
        assert!(bearer_params("").is_empty());
        assert!(bearer_params("Bearer").is_empty());
    }

    #[test]
    fn escaped_quotes() {
        let p = bearer_params(r#"bearer error_description="a \"b\"""#);
        assert_eq!(p["error_description"], "a \"b\"");
    }
}
