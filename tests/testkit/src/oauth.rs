//! The OAuth client steps the integration tests take, written once: dynamic
//! client registration (RFC 7591), a PKCE pair (RFC 7636, S256 only), the
//! authorization request (RFC 6749 §4.1.1), the code exchange (§4.1.3), the
//! refresh grant (§6) and the local sign-in and consent forms.
//!
//! Each step sends one request and hands back what came back; the checks a
//! test makes on the answer stay in that test, so it fails for its own reasons.
//! The PKCE challenge is computed here, independently of the server's code.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The loopback redirect URI most tests register (RFC 8252 §7.3).
pub const LOOPBACK_REDIRECT: &str = "http://127.0.0.1:4567/callback";

/// `BASE64URL(SHA256(ASCII(verifier)))`: the S256 challenge (RFC 7636 §4.2).
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A fresh PKCE pair (verifier, S256 challenge): the verifier is 32 random
/// bytes in base64url, 43 characters of the unreserved set (RFC 7636 §4.1).
pub fn pkce() -> (String, String) {
    let mut b = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    let verifier = URL_SAFE_NO_PAD.encode(b);
    let challenge = s256(&verifier);
    (verifier, challenge)
}

/// A cookie-keeping client that does not follow redirects: a browser whose
/// every hop the test sees.
pub fn browser() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// The metadata of a public client (`token_endpoint_auth_method` none) that
/// may use the code and refresh grants.
pub fn public_client(name: &str, redirect: &str) -> Value {
    json!({
        "client_name": name,
        "redirect_uris": [redirect],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
    })
}

/// The metadata of a confidential client authenticating with `method`
/// (`client_secret_basic`, `client_secret_post`, ...).
pub fn confidential_client(name: &str, redirect: &str, method: &str) -> Value {
    json!({
        "client_name": name,
        "redirect_uris": [redirect],
        "token_endpoint_auth_method": method,
        "grant_types": ["authorization_code", "refresh_token"],
    })
}

/// POST `body` to `{base}/register` (RFC 7591 §3.1); the answer as it came.
pub async fn register_raw(
    http: &reqwest::Client,
    base: &str,
    body: &Value,
) -> reqwest::Result<reqwest::Response> {
    http.post(format!("{base}/register"))
        .json(body)
        .send()
        .await
}

/// Registers `body`; the client information response, or an error naming
/// the status and body when it is not 201 Created (RFC 7591 §3.2.1).
pub async fn register(http: &reqwest::Client, base: &str, body: &Value) -> anyhow::Result<Value> {
    let r = register_raw(http, base, body).await?;
    let status = r.status();
    let text = r.text().await?;
    anyhow::ensure!(status == 201, "registration {status}: {text}");
    Ok(serde_json::from_str(&text)?)
}

/// A string member of a JSON answer, or "" (the caller asserts on it).
pub fn str_of(v: &Value, member: &str) -> String {
    v[member].as_str().unwrap_or_default().to_string()
}

/// An authorization request (RFC 6749 §4.1.1 with PKCE, RFC 8707 resource).
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub challenge: &'a str,
    pub state: Option<&'a str>,
    pub scope: Option<&'a str>,
    pub resource: Option<&'a str>,
}

impl<'a> AuthRequest<'a> {
    /// The query parameters, in the order the tests have always sent them.
    pub fn query(&self) -> Vec<(&'static str, &'a str)> {
        let mut q = vec![
            ("response_type", "code"),
            ("client_id", self.client_id),
            ("redirect_uri", self.redirect_uri),
            ("code_challenge", self.challenge),
            ("code_challenge_method", "S256"),
        ];
        if let Some(s) = self.state {
            q.push(("state", s));
        }
        if let Some(s) = self.scope {
            q.push(("scope", s));
        }
        if let Some(r) = self.resource {
            q.push(("resource", r));
        }
        q
    }

    /// `{base}/authorize?...`, form-encoded.
    pub fn url(&self, base: &str) -> String {
        let query: String = self
            .query()
            .into_iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        format!("{base}/authorize?{query}")
    }
}

/// application/x-www-form-urlencoded encoding of one value.
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The value of `<input name="{field}" value="...">` in a page (values are
/// HTML-escaped, so they hold no quote).
pub fn hidden(html: &str, field: &str) -> Option<String> {
    let needle = format!("name=\"{field}\" value=\"");
    let start = html.find(&needle)? + needle.len();
    let rest = &html[start..];
    Some(rest[..rest.find('"')?].to_string())
}

/// A query parameter of an absolute URL or of a path with a query.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let (_, q) = url.split_once('?')?;
    reqwest::Url::parse(&format!("http://q.invalid/?{q}"))
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The local sign-in form filled from the sign-in page `html`.
pub fn sign_in_form(html: &str, user: &str, password: &str) -> Vec<(&'static str, String)> {
    vec![
        ("req", hidden(html, "req").unwrap_or_default()),
        ("csrf", hidden(html, "csrf").unwrap_or_default()),
        ("idp", "local".into()),
        ("username", user.into()),
        ("password", password.into()),
    ]
}

/// The consent form filled from the consent page `html` with `decision`
/// (`allow` or `deny`).
pub fn consent_form(html: &str, decision: &str) -> Vec<(&'static str, String)> {
    vec![
        ("req", hidden(html, "req").unwrap_or_default()),
        ("csrf", hidden(html, "csrf").unwrap_or_default()),
        ("decision", decision.into()),
    ]
}

/// The authorization code grant of a public client (RFC 6749 §4.1.3, RFC
/// 7636 §4.5, RFC 8707 resource).
pub fn code_grant<'a>(
    client_id: &'a str,
    code: &'a str,
    redirect_uri: &'a str,
    verifier: &'a str,
    resource: &'a str,
) -> [(&'static str, &'a str); 6] {
    [
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
        ("resource", resource),
    ]
}

/// POST a form to `{base}/token`; the answer as it came.
pub async fn token(
    http: &reqwest::Client,
    base: &str,
    form: &[(&str, &str)],
) -> reqwest::Result<reqwest::Response> {
    http.post(format!("{base}/token")).form(form).send().await
}

/// The refresh grant of a public client (RFC 6749 §6); the answer as it came.
pub async fn refresh(
    http: &reqwest::Client,
    base: &str,
    client_id: &str,
    refresh_token: &str,
) -> reqwest::Result<reqwest::Response> {
    token(
        http,
        base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn query_param_reads_paths_and_urls() {
        assert_eq!(
            query_param("/signin?req=a%2Bb&x=1", "req").as_deref(),
            Some("a+b")
        );
        assert_eq!(
            query_param("http://127.0.0.1:4567/callback?code=c&state=s", "code").as_deref(),
            Some("c")
        );
        assert_eq!(query_param("/consent", "req"), None);
    }

    #[test]
    fn authorize_url_encodes_values() {
        let r = AuthRequest {
            client_id: "c",
            redirect_uri: "http://127.0.0.1:9/cb",
            challenge: "x",
            state: Some("s"),
            scope: None,
            resource: None,
        };
        assert_eq!(
            r.url("http://h"),
            "http://h/authorize?response_type=code&client_id=c&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb&code_challenge=x&code_challenge_method=S256&state=s"
        );
    }
}
