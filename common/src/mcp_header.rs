//! The MCP header-value codec: how a client mirrors a JSON-RPC method, tool
//! name or resource URI into `Mcp-Method` / `Mcp-Name` (MCP 2026-07-28
//! streamable-http, "Value Encoding").
//!
//! Visible ASCII travels as is; anything else (non-ASCII, control characters,
//! leading or trailing spaces, or a value that itself starts with `=?`) as
//! `=?base64?<standard base64 of the UTF-8 bytes>?=`. The client side of
//! `connect` encodes; the verifier and the bridge decode.

use std::borrow::Cow;

use base64::Engine;

/// The longest value [`decode`] reads. No longer header reaches the services
/// (actix-http refuses a request head over 128 KiB), so the bound changes
/// nothing over HTTP; it keeps direct callers linear in what they hand over.
pub const MAX_VALUE_BYTES: usize = 128 * 1024;

const PREFIX: &str = "=?base64?";
const SUFFIX: &str = "?=";

/// Decodes a header value: the sentinel form to its text, anything else as
/// is. `None`: the sentinel with invalid base64 or non-UTF-8 content, or a
/// value over [`MAX_VALUE_BYTES`].
pub fn decode(raw: &str) -> Option<Cow<'_, str>> {
    if raw.len() > MAX_VALUE_BYTES {
        return None;
    }
    match raw
        .strip_prefix(PREFIX)
        .and_then(|r| r.strip_suffix(SUFFIX))
    {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .map(Cow::Owned),
        None => Some(Cow::Borrowed(raw)),
    }
}

/// Encodes a value for `Mcp-Method` / `Mcp-Name`: visible ASCII as is,
/// anything else in the sentinel form, so [`decode`] gives it back.
pub fn encode(value: &str) -> Cow<'_, str> {
    let plain = !value.is_empty()
        && value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !value.starts_with(' ')
        && !value.ends_with(' ')
        && !value.starts_with("=?");
    if plain {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(format!(
            "{PREFIX}{}{SUFFIX}",
            base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_pass_through() {
        assert!(matches!(
            decode("tools/call"),
            Some(Cow::Borrowed("tools/call"))
        ));
        assert!(matches!(encode("echo"), Cow::Borrowed("echo")));
    }

    #[test]
    fn the_sentinel_form_is_decoded() {
        assert_eq!(decode("=?base64?ZWNobw==?=").as_deref(), Some("echo"));
        assert_eq!(
            decode("=?base64?ZmlsZTovLy/DpA==?=").as_deref(),
            Some("file:///ä")
        );
        // Invalid base64, or bytes that are not UTF-8.
        assert_eq!(decode("=?base64?!!?="), None);
        assert_eq!(decode("=?base64?/w==?="), None);
        // Not the whole sentinel: taken literally.
        assert_eq!(
            decode("=?base64?ZWNobw==").as_deref(),
            Some("=?base64?ZWNobw==")
        );
    }

    #[test]
    fn what_is_not_visible_ascii_is_encoded() {
        assert_eq!(encode("file:///ä"), "=?base64?ZmlsZTovLy/DpA==?=");
        for v in ["", " padded", "padded ", "a\nb", "=?x", "tab\t"] {
            assert!(encode(v).starts_with(PREFIX), "{v:?}");
        }
    }

    #[test]
    fn every_value_round_trips() {
        for v in [
            "echo",
            " padded ",
            "naïve",
            "=?base64?x?=",
            "a\nb",
            "",
            "日本",
        ] {
            assert_eq!(decode(&encode(v)).as_deref(), Some(v));
        }
    }

    #[test]
    fn values_over_the_bound_are_refused() {
        let long = "a".repeat(MAX_VALUE_BYTES + 1);
        assert_eq!(decode(&long), None);
        let at_bound = "a".repeat(MAX_VALUE_BYTES);
        assert!(decode(&at_bound).is_some());
    }
}
