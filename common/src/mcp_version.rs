//! MCP protocol revisions the bridge serves and `mcp-connect` sends, and what each
//! allows on the wire.

/// Oldest first. 2024-11-05 is served by the legacy HTTP+SSE transport.
pub const SUPPORTED: &[&str] = &[
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];

/// Assumed when a request has no `MCP-Protocol-Version` and no session says otherwise
/// (2025-06-18 transports, "Protocol Version Header").
pub const ASSUMED: &str = "2025-03-26";

/// First revision without sessions (2026-07-28 transports/streamable-http).
pub const STATELESS: &str = "2026-07-28";

pub fn is_supported(v: &str) -> bool {
    SUPPORTED.contains(&v)
}

/// JSON-RPC batches were allowed in 2025-03-26 only (removed in 2025-06-18).
pub fn allows_batch(v: &str) -> bool {
    v == "2025-03-26" || v == "2024-11-05"
}

/// Revisions whose requests carry everything (no `initialize`, no `Mcp-Session-Id`).
pub fn is_stateless(v: &str) -> bool {
    // Dates compare correctly as strings.
    v >= STATELESS
}

/// Revisions that prime SSE streams with an empty event (2025-11-25 transports, §6).
pub fn primes_streams(v: &str) -> bool {
    v >= "2025-11-25"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_behave_as_specified() {
        assert!(allows_batch("2025-03-26"));
        assert!(!allows_batch("2025-06-18"));
        assert!(!is_stateless("2025-11-25"));
        assert!(is_stateless("2026-07-28"));
        assert!(!is_supported("2025-01-01"));
        assert!(primes_streams("2025-11-25") && !primes_streams("2025-06-18"));
    }
}
