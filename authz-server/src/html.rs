//! Server-rendered pages (sign-in, consent, errors). Escaped by construction:
//! every value reaches the markup through [`Esc`], the only way a page
//! interpolates text; page functions take plain `&str` data, never markup.
//! Pages carry a strict `Content-Security-Policy` with `frame-ancestors 'none'`
//! (RFC 9700 §4.16, clickjacking).

use std::fmt;
use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use base64::Engine;
use sha2::{Digest, Sha256};

/// HTML-escapes its contents when displayed (text and attribute contexts).
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '&' => f.write_str("&amp;")?,
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&#x27;")?,
                '/' => f.write_str("&#x2F;")?,
                c => write!(f, "{c}")?,
            }
        }
        Ok(())
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1a1a1a}\
h1{font-size:1.4rem}label{display:block;margin-top:1rem;font-weight:600}\
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.6rem;font-size:1rem;margin-top:.25rem}\
button{margin-top:1.25rem;padding:.7rem 1.2rem;font-size:1rem;margin-right:.5rem;cursor:pointer}\
button:focus,input:focus{outline:3px solid #2563eb;outline-offset:2px}\
.err{color:#b00020;font-weight:600}dt{font-weight:600;margin-top:.5rem}dd{margin:0;word-break:break-all}\
code{background:#f1f1f1;padding:0 .2rem}\
button{border-radius:6px;border:1px solid #767676;background:#f4f4f4;color:#1a1a1a}\
button.primary{background:#1d4ed8;border-color:#1d4ed8;color:#fff}\
ul.choices{list-style:none;padding:0}ul.choices a{display:block;padding:.8rem 1rem;margin:.6rem 0;border:1px solid #767676;border-radius:6px;color:#1a1a1a;text-decoration:none;font-weight:600}\
ul.choices a:focus{outline:3px solid #2563eb;outline-offset:2px}\
#user_code{font-family:ui-monospace,monospace;letter-spacing:.2em;text-transform:uppercase;font-size:1.3rem}";

fn style_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE.as_bytes()))
        )
    })
}

/// `form-action` sources: our own origin, plus where the consent form's answer
/// redirects (browsers apply `form-action` to redirects after a submission).
pub fn csp(extra_form_targets: &[String]) -> String {
    let mut targets = String::from("'self'");
    for t in extra_form_targets {
        // Only well-formed origins or schemes reach here (see `redirect_target_source`).
        targets.push(' ');
        targets.push_str(t);
    }
    format!(
        "default-src 'none'; style-src {}; form-action {targets}; frame-ancestors 'none'; base-uri 'none'",
        style_hash()
    )
}

/// The CSP source expression that allows a redirect to `uri`: its origin for
/// http(s), its scheme for a private-use scheme.
pub fn redirect_target_source(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    match url.scheme() {
        "http" | "https" => Some(url.origin().ascii_serialization()).filter(|o| o != "null"),
        s if s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-')) =>
        {
            Some(format!("{s}:"))
        }
        _ => None,
    }
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        Esc(title)
    )
}

pub fn respond(status: StatusCode, html: String, form_targets: &[String]) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CONTENT_SECURITY_POLICY, csp(form_targets)))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(html)
}

/// A sign-in or consent request that is unknown, used, expired or from another browser.
pub fn expired_page() -> HttpResponse {
    error_page(
        StatusCode::BAD_REQUEST,
        "Sign-in expired",
        "This sign-in request is no longer valid. Go back to the application and start again.",
    )
}

/// An internal failure during an interactive step: detail to the log, none to the page.
pub fn server_error_page(e: &crate::protocol::error::OAuthError, step: &str) -> HttpResponse {
    tracing::error!(error = %e, step, "interactive step failed");
    error_page(
        crate::http::error::status_of(e),
        "Something went wrong",
        "The server could not complete this step. Try again.",
    )
}

/// An error that must not go back to the client (unknown client, bad redirect URI).
pub fn error_page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    let body = format!(
        "<main><h1>{}</h1><p>{}</p></main>",
        Esc(title),
        Esc(message)
    );
    respond(status, page(title, &body), &[])
}

/// A plain message (device connected, consent withdrawn).
pub fn message_page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    error_page(status, title, message)
}

/// RFC 8628 §3.3: where the user types the code their device shows.
pub fn device_page(csrf: &str, code: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"err\" role=\"alert\">{}</p>", Esc(e)))
        .unwrap_or_default();
    let body = format!(
        "<main><h1>Connect a device</h1><p>Enter the code shown on your device.</p>{error}\
<form method=\"post\" action=\"/device\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<label for=\"user_code\">Code</label>\
<input type=\"text\" id=\"user_code\" name=\"user_code\" value=\"{code}\" autocomplete=\"one-time-code\" autocapitalize=\"characters\" spellcheck=\"false\" required autofocus>\
<button type=\"submit\" class=\"primary\">Continue</button></form></main>",
        csrf = Esc(csrf),
        code = Esc(code),
    );
    page("Connect a device", &body)
}

/// Withdraws remembered consent for one application (consent lasts until revoked).
pub fn revoke_consent_page(csrf: &str, client_id: &str, client_name: &str, user: &str) -> String {
    let body = format!(
        "<main><h1>Withdraw access?</h1>\
<p><strong>{name}</strong> (<code>{id}</code>) will have to ask <strong>{user}</strong> again next time.</p>\
<form method=\"post\" action=\"/consent/revoke\">\
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"client_id\" value=\"{id}\">\
<button type=\"submit\">Withdraw</button></form></main>",
        name = Esc(client_name),
        id = Esc(client_id),
        user = Esc(user),
        csrf = Esc(csrf),
    );
    page("Withdraw access?", &body)
}

pub struct SignInForm<'a> {
    pub request_id: &'a str,
    pub csrf: &'a str,
    pub client_name: &'a str,
    pub error: Option<&'a str>,
    pub username: &'a str,
}

pub fn signin_page(f: &SignInForm<'_>) -> String {
    let error = f
        .error
        .map(|e| format!("<p class=\"err\" role=\"alert\">{}</p>", Esc(e)))
        .unwrap_or_default();
    let body = format!(
        "<main><h1>Sign in</h1><p>to continue to <strong>{client}</strong></p>{error}\
<form method=\"post\" action=\"/signin\">\
<input type=\"hidden\" name=\"req\" value=\"{req}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<input type=\"hidden\" name=\"idp\" value=\"local\">\
<label for=\"username\">Username</label>\
<input type=\"text\" id=\"username\" name=\"username\" value=\"{user}\" autocomplete=\"username\" autocapitalize=\"none\" required autofocus>\
<label for=\"password\">Password</label>\
<input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
<button type=\"submit\" class=\"primary\">Sign in</button></form></main>",
        client = Esc(f.client_name),
        req = Esc(f.request_id),
        csrf = Esc(f.csrf),
        user = Esc(f.username),
    );
    page("Sign in", &body)
}

pub struct Choice<'a> {
    pub id: &'a str,
    pub label: &'a str,
}

pub fn chooser_page(request_id: &str, client_name: &str, choices: &[Choice<'_>]) -> String {
    let mut items = String::new();
    for c in choices {
        items.push_str(&format!(
            "<li><a href=\"/signin?req={}&amp;idp={}\">{}</a></li>",
            Esc(request_id),
            Esc(c.id),
            Esc(c.label)
        ));
    }
    let body = format!(
        "<main><h1>Sign in</h1><p>to continue to <strong>{}</strong></p><ul class=\"choices\">{items}</ul></main>",
        Esc(client_name)
    );
    page("Sign in", &body)
}

pub struct ConsentForm<'a> {
    pub request_id: &'a str,
    pub csrf: &'a str,
    pub client_name: &'a str,
    pub client_id: &'a str,
    pub redirect_host: &'a str,
    pub scopes: &'a [&'a str],
    pub resources: &'a [String],
    pub user: &'a str,
}

pub fn consent_page(f: &ConsentForm<'_>) -> String {
    let scopes: String = f
        .scopes
        .iter()
        .map(|s| format!("<li><code>{}</code></li>", Esc(s)))
        .collect();
    let resources: String = f
        .resources
        .iter()
        .map(|r| format!("<li><code>{}</code></li>", Esc(r)))
        .collect();
    let body = format!(
        "<main><h1>Allow access?</h1>\
<p><strong>{client}</strong> wants to act as <strong>{user}</strong>.</p>\
<dl><dt>Application</dt><dd>{client} (<code>{client_id}</code>)</dd>\
<dt>Will return to</dt><dd><code>{host}</code></dd>\
<dt>Permissions</dt><dd><ul>{scopes}</ul></dd>\
<dt>Services</dt><dd><ul>{resources}</ul></dd>\
<dt>Signed in as</dt><dd>{user}</dd></dl>\
<form method=\"post\" action=\"/consent\">\
<input type=\"hidden\" name=\"req\" value=\"{req}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<button type=\"submit\" name=\"decision\" value=\"allow\" class=\"primary\" autofocus>Allow</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form></main>",
        client = Esc(f.client_name),
        client_id = Esc(f.client_id),
        user = Esc(f.user),
        host = Esc(f.redirect_host),
        req = Esc(f.request_id),
        csrf = Esc(f.csrf),
    );
    page("Allow access?", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reflected_value_is_escaped() {
        let evil = "<script>alert('x')</script>\"&";
        let html = consent_page(&ConsentForm {
            request_id: evil,
            csrf: evil,
            client_name: evil,
            client_id: evil,
            redirect_host: evil,
            scopes: &[evil],
            resources: &[evil.to_string()],
            user: evil,
        });
        assert!(!html.contains("<script>"));
        assert!(!html.contains("'x'"));
        let html = signin_page(&SignInForm {
            request_id: evil,
            csrf: evil,
            client_name: evil,
            error: Some(evil),
            username: evil,
        });
        assert!(!html.contains("<script>"));
        assert!(!html.contains(evil));
        let html = chooser_page(
            evil,
            evil,
            &[Choice {
                id: evil,
                label: evil,
            }],
        );
        assert!(!html.contains("<script>"));
    }

    #[test]
    fn pages_are_not_framed_cached_sniffed_or_referred() {
        let r = respond(StatusCode::OK, page("t", "b"), &[]);
        let h = |n: header::HeaderName| {
            r.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        // RFC 9700 §4.2.4: no Referer may carry what the page's URL holds.
        assert_eq!(h(header::REFERRER_POLICY).as_deref(), Some("no-referrer"));
        assert_eq!(h(header::X_FRAME_OPTIONS).as_deref(), Some("DENY"));
        assert_eq!(h(header::CACHE_CONTROL).as_deref(), Some("no-store"));
        assert!(h(header::CONTENT_SECURITY_POLICY)
            .is_some_and(|c| c.contains("frame-ancestors 'none'")));
    }

    #[test]
    fn csp_forbids_framing_and_allows_the_redirect_origin() {
        let c = csp(&[redirect_target_source("http://127.0.0.1:5000/cb?x=1").unwrap()]);
        assert!(c.contains("frame-ancestors 'none'"));
        assert!(c.contains("form-action 'self' http://127.0.0.1:5000;"));
        assert_eq!(
            redirect_target_source("com.example.app:/cb").as_deref(),
            Some("com.example.app:")
        );
    }
}
