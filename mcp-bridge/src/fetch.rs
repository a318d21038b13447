//! The built-in fetch server (`BRIDGE_COMMAND=builtin:fetch`, the catalog's `fetchs`):
//! the `fetch` tool of the reference `mcp-server-fetch` (same name, same arguments
//! `url`, `max_length`, `start_index`, `raw`, same output shape), served natively.
//!
//! A URL chosen by a model is an SSRF lever, so:
//! - every address dialled passes `gateway_common::net_filter` (the filter of client ID
//!   metadata documents): names through `PublicOnlyResolver` after DNS resolution, so
//!   the connection goes only to the vetted addresses; literal hosts (`127.1`,
//!   `2130706433`, `0x7f000001`, `[::ffff:7f00:1]` — the URL parser normalises every
//!   IPv4 spelling) in [`check_target`], also for each redirect hop;
//! - http and https only, no proxies, at most [`MAX_REDIRECTS`] redirects;
//! - at most `FETCH_MAX_BYTES` of body (the rest is cut off and said so) within
//!   `FETCH_TIMEOUT` for the whole call, robots.txt included.
//!
//! robots.txt is honoured as the reference does for tool calls: its user agent,
//! 401/403 on robots.txt refuses, any other 4xx allows, and a refusal names the
//! robots.txt URL, the user agent, the page and the file, for the model to relay.
//! `FETCH_IGNORE_ROBOTS_TXT=true` skips it, as the reference's `--ignore-robots-txt`.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use gateway_common::config::{ConfigError, Source};
use gateway_common::net_filter;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde_json::{json, Value};

use crate::jsonrpc::{self, code};

/// The reference server's user agent for model-initiated fetches, so robots.txt rules
/// written for it apply to us too.
pub const USER_AGENT: &str =
    "ModelContextProtocol/1.0 (Autonomous; +https://github.com/modelcontextprotocol/servers)";
pub const MAX_REDIRECTS: usize = 5;
/// Bounds of `max_length` (the reference: greater than 0, less than 1,000,000).
const MAX_LENGTH_DEFAULT: u64 = 5000;
const MAX_LENGTH_LIMIT: u64 = 1_000_000;
/// robots.txt is read up to this size (Google's limit for the file is 500 KiB).
const ROBOTS_MAX_BYTES: usize = 512 * 1024;

/// `FETCH_*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchConfig {
    /// `FETCH_MAX_BYTES`: body bytes read per page; the rest is cut off.
    pub max_bytes: usize,
    /// `FETCH_TIMEOUT`: seconds for one call, robots.txt and redirects included.
    pub timeout: Duration,
    /// `FETCH_USER_AGENT` (default [`USER_AGENT`]).
    pub user_agent: String,
    /// `FETCH_IGNORE_ROBOTS_TXT`.
    pub ignore_robots: bool,
    /// `FETCH_ALLOW_PRIVATE_ADDRESSES`: lifts the SSRF filter. For tests against a local
    /// server only; never in a deployment.
    pub allow_private: bool,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            max_bytes: 5 * 1024 * 1024,
            timeout: Duration::from_secs(30),
            user_agent: USER_AGENT.to_string(),
            ignore_robots: false,
            allow_private: false,
        }
    }
}

impl FetchConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let d = Self::default();
        let max_bytes = usize::try_from(src.u64("FETCH_MAX_BYTES", d.max_bytes as u64)?)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ConfigError::new("FETCH_MAX_BYTES", "must be at least 1", "5242880"))?;
        let timeout = src.seconds("FETCH_TIMEOUT", 30)?;
        if timeout.is_zero() {
            return Err(ConfigError::new(
                "FETCH_TIMEOUT",
                "must be at least 1",
                "30",
            ));
        }
        let user_agent = src.string("FETCH_USER_AGENT", USER_AGENT);
        if user_agent.is_empty() || reqwest::header::HeaderValue::from_str(&user_agent).is_err() {
            return Err(ConfigError::new(
                "FETCH_USER_AGENT",
                "must be a non-empty header value",
                "my-gateway-fetch/1.0",
            ));
        }
        Ok(Self {
            max_bytes,
            timeout,
            user_agent,
            ignore_robots: src.bool("FETCH_IGNORE_ROBOTS_TXT", false)?,
            allow_private: src.bool("FETCH_ALLOW_PRIVATE_ADDRESSES", false)?,
        })
    }
}

/// Resolves names and keeps only the addresses `net_filter` allows: reqwest then dials
/// exactly those, so a name cannot be vetted once and resolved again to a private one.
#[derive(Debug, Clone)]
struct PublicOnlyResolver {
    allow_private: bool,
}

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let safe: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| allow_private || net_filter::is_safe_to_dial(a.ip()))
                .collect();
            if safe.is_empty() {
                return Err(
                    Box::new(Refused(format!("{host} resolves to no public address")))
                        as Box<dyn std::error::Error + Send + Sync>,
                );
            }
            let addrs: Addrs = Box::new(safe.into_iter());
            Ok(addrs)
        })
    }
}

/// Why a target is not fetched (shown to the model).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Checks a URL before it is requested (and every redirect target): http(s), a host,
/// and a literal address only if `net_filter` allows it (reqwest never asks the
/// resolver about literals).
pub fn check_target(url: &url::Url, allow_private: bool) -> Result<(), Refused> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refused(format!(
            "only http and https URLs are fetched, not {}:",
            url.scheme()
        )));
    }
    let literal = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        Some(url::Host::Domain(_)) => return Ok(()),
        None => return Err(Refused("the URL has no host".into())),
    };
    if allow_private {
        return Ok(());
    }
    match net_filter::refusal(literal) {
        None => Ok(()),
        Some(why) => Err(Refused(format!("{literal} is not a public address: {why}"))),
    }
}

/// Why a fetch failed, turned into the reference's JSON-RPC errors.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    InvalidParams(String),
    #[error("{0}")]
    Failed(String),
}

impl FetchError {
    fn into_response(self, id: &Value) -> Value {
        match self {
            FetchError::InvalidParams(m) => jsonrpc::error(Some(id), code::INVALID_PARAMS, &m),
            FetchError::Failed(m) => jsonrpc::error(Some(id), code::INTERNAL_ERROR, &m),
        }
    }
}

/// The `fetch` tool's arguments, checked as the reference's model does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchArgs {
    pub url: url::Url,
    pub max_length: usize,
    pub start_index: usize,
    pub raw: bool,
}

impl FetchArgs {
    pub fn parse(args: &Value) -> Result<Self, FetchError> {
        let bad = |m: &str| FetchError::InvalidParams(m.to_string());
        let obj = args
            .as_object()
            .ok_or_else(|| bad("arguments must be an object"))?;
        let raw_url = obj
            .get("url")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| bad("url is required: a string with the URL to fetch"))?;
        let url = url::Url::parse(raw_url).map_err(|e| bad(&format!("url is not a URL: {e}")))?;
        let int = |name: &str, default: u64| -> Result<u64, FetchError> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v
                    .as_u64()
                    .ok_or_else(|| bad(&format!("{name} must be a whole number of at least 0"))),
            }
        };
        let max_length = int("max_length", MAX_LENGTH_DEFAULT)?;
        if max_length == 0 || max_length >= MAX_LENGTH_LIMIT {
            return Err(bad(
                "max_length must be greater than 0 and less than 1000000",
            ));
        }
        let start_index = int("start_index", 0)?;
        let raw = match obj.get("raw") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(bad("raw must be true or false")),
        };
        Ok(Self {
            url,
            max_length: usize::try_from(max_length).unwrap_or(usize::MAX),
            start_index: usize::try_from(start_index).unwrap_or(usize::MAX),
            raw,
        })
    }
}

/// The tool as listed: the reference's name, arguments, bounds and defaults.
pub fn tool() -> Value {
    json!({
        "name": "fetch",
        "description": "Fetches a URL from the internet and returns its content, HTML simplified to Markdown. Long pages come in parts: call again with start_index to read on.",
        "inputSchema": {
            "type": "object",
            "title": "Fetch",
            "properties": {
                "url": { "type": "string", "format": "uri", "minLength": 1, "title": "Url",
                         "description": "The URL to fetch" },
                "max_length": { "type": "integer", "default": 5000, "exclusiveMinimum": 0,
                                "exclusiveMaximum": 1000000, "title": "Max Length",
                                "description": "The most characters to return" },
                "start_index": { "type": "integer", "default": 0, "minimum": 0, "title": "Start Index",
                                 "description": "The character to start at, to read on after a truncated answer" },
                "raw": { "type": "boolean", "default": false, "title": "Raw",
                         "description": "Return the page as served, without converting HTML to Markdown" }
            },
            "required": ["url"]
        },
        "annotations": { "readOnlyHint": true, "idempotentHint": true, "openWorldHint": true }
    })
}

/// A fetched body, possibly cut at the size limit.
struct Page {
    text: String,
    content_type: String,
    cut_at: Option<usize>,
}

#[derive(Debug)]
pub struct Fetcher {
    pub cfg: FetchConfig,
    /// Built on first use (building can fail only if TLS cannot start; then that call fails).
    http: OnceLock<Result<reqwest::Client, String>>,
}

impl Fetcher {
    pub fn new(cfg: FetchConfig) -> Arc<Self> {
        Arc::new(Self {
            cfg,
            http: OnceLock::new(),
        })
    }

    fn client(&self) -> Result<&reqwest::Client, FetchError> {
        let allow_private = self.cfg.allow_private;
        self.http
            .get_or_init(|| {
                let redirects = reqwest::redirect::Policy::custom(move |attempt| {
                    if attempt.previous().len() >= MAX_REDIRECTS {
                        return attempt
                            .error(Refused(format!("more than {MAX_REDIRECTS} redirects")));
                    }
                    // A redirect to a literal private address would bypass the resolver.
                    match check_target(attempt.url(), allow_private) {
                        Ok(()) => attempt.follow(),
                        Err(why) => attempt.error(why),
                    }
                });
                reqwest::Client::builder()
                    .redirect(redirects)
                    .no_proxy()
                    .dns_resolver(Arc::new(PublicOnlyResolver { allow_private }))
                    .user_agent(self.cfg.user_agent.clone())
                    .build()
                    .map_err(|e| format!("the HTTP client cannot start: {e}"))
            })
            .as_ref()
            .map_err(|e| FetchError::Failed(e.clone()))
    }

    /// Answers `tools/list` and `tools/call`.
    pub async fn handle(&self, id: &Value, method: &str, params: &Value) -> Value {
        if method == "tools/list" {
            return jsonrpc::result(id, json!({ "tools": [tool()] }));
        }
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if name != "fetch" {
            return jsonrpc::error(
                Some(id),
                code::INVALID_PARAMS,
                &format!("unknown tool: {name}"),
            );
        }
        let args = params
            .get("arguments")
            .cloned()
            .unwrap_or_else(|| json!({}));
        match self.call(&args).await {
            Ok(text) => jsonrpc::result(
                id,
                json!({ "content": [{ "type": "text", "text": text }], "isError": false }),
            ),
            Err(e) => e.into_response(id),
        }
    }

    /// The tool call: robots.txt, the page, conversion, the window the model asked for.
    pub async fn call(&self, args: &Value) -> Result<String, FetchError> {
        let args = FetchArgs::parse(args)?;
        let url = args.url.to_string();
        check_target(&args.url, self.cfg.allow_private)
            .map_err(|why| FetchError::Failed(format!("Failed to fetch {url}: {why}")))?;
        let work = async {
            if !self.cfg.ignore_robots {
                self.check_robots(&args.url).await?;
            }
            self.get(&args.url, self.cfg.max_bytes).await
        };
        let page = tokio::time::timeout(self.cfg.timeout, work)
            .await
            .map_err(|_| {
                FetchError::Failed(format!(
                    "Failed to fetch {url}: no complete answer within {} s (FETCH_TIMEOUT)",
                    self.cfg.timeout.as_secs_f64()
                ))
            })??;
        let ct = page.content_type.to_ascii_lowercase();
        let head: String = page.text.chars().take(100).collect();
        let is_html = head.contains("<html") || ct.contains("text/html") || ct.is_empty();
        let (content, prefix) = if is_html && !args.raw {
            (to_markdown(&page.text), String::new())
        } else {
            (
                page.text,
                format!(
                    "Content type {} cannot be simplified to markdown, but here is the raw content:\n",
                    page.content_type
                ),
            )
        };
        let mut body = window(&content, args.start_index, args.max_length);
        if let Some(n) = page.cut_at {
            body.push_str(&format!(
                "\n\n<error>The page was cut off after {n} bytes (FETCH_MAX_BYTES).</error>"
            ));
        }
        Ok(format!("{prefix}Contents of {url}:\n{body}"))
    }

    /// GETs `url`, reading at most `limit` bytes of body.
    async fn get(&self, url: &url::Url, limit: usize) -> Result<Page, FetchError> {
        let resp =
            self.client()?.get(url.clone()).send().await.map_err(|e| {
                FetchError::Failed(format!("Failed to fetch {url}: {}", describe(&e)))
            })?;
        let status = resp.status();
        if status.as_u16() >= 400 {
            return Err(FetchError::Failed(format!(
                "Failed to fetch {url} - status code {}",
                status.as_u16()
            )));
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let (bytes, cut_at) = read_limited(resp, limit)
            .await
            .map_err(|e| FetchError::Failed(format!("Failed to fetch {url}: {}", describe(&e))))?;
        Ok(Page {
            text: String::from_utf8_lossy(&bytes).into_owned(),
            content_type,
            cut_at,
        })
    }

    /// robots.txt as the reference reads it for tool calls.
    async fn check_robots(&self, url: &url::Url) -> Result<(), FetchError> {
        let mut robots_url = url.clone();
        robots_url.set_path("/robots.txt");
        robots_url.set_query(None);
        robots_url.set_fragment(None);
        let resp = self
            .client()?
            .get(robots_url.clone())
            .send()
            .await
            .map_err(|e| {
                FetchError::Failed(format!(
                    "Failed to fetch robots.txt {robots_url} due to a connection issue: {}",
                    describe(&e)
                ))
            })?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(FetchError::Failed(format!(
                "When fetching robots.txt ({robots_url}), received status {status} so assuming that autonomous fetching is not allowed, the user can try manually fetching by using the fetch prompt"
            )));
        }
        if (400..500).contains(&status) {
            return Ok(());
        }
        let (bytes, _) = read_limited(resp, ROBOTS_MAX_BYTES).await.map_err(|_| {
            FetchError::Failed(format!(
                "Failed to fetch robots.txt {robots_url} due to a connection issue"
            ))
        })?;
        let text = String::from_utf8_lossy(&bytes);
        if robots_allow(&text, &self.cfg.user_agent, url.as_str()) {
            return Ok(());
        }
        Err(FetchError::Failed(format!(
            "The sites robots.txt ({robots_url}), specifies that autonomous fetching of this page is not allowed, <useragent>{ua}</useragent>\n<url>{url}</url><robots>\n{text}\n</robots>\nThe assistant must let the user know that it failed to view the page. The assistant may provide further guidance based on the above information.\nThe assistant can tell the user that they can try manually fetching the page by using the fetch prompt within their UI.",
            ua = self.cfg.user_agent
        )))
    }
}

/// Whether robots.txt lets `user_agent` fetch `url` (comment lines dropped first, as the
/// reference does; an unparsable file allows). Groups are matched on the agent's product
/// token (RFC 9309 §2.2.1: `ModelContextProtocol` for the default agent), else `*`.
pub fn robots_allow(robots_txt: &str, user_agent: &str, url: &str) -> bool {
    let token: String = user_agent
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect();
    let cleaned: String = robots_txt
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    match texting_robots::Robot::new(&token, cleaned.as_bytes()) {
        Ok(robot) => robot.allowed(url),
        Err(_) => true,
    }
}

/// Reads at most `limit` bytes; `Some(limit)` when more was there (the rest is not read).
async fn read_limited(
    resp: reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, Option<usize>), reqwest::Error> {
    let mut out = Vec::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        let room = limit - out.len();
        if chunk.len() > room {
            out.extend_from_slice(&chunk[..room]);
            return Ok((out, Some(limit)));
        }
        out.extend_from_slice(&chunk);
    }
    Ok((out, None))
}

/// The error and its causes in one line (the resolver's refusal is a cause).
fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

/// HTML to Markdown, scripts, styles and other non-content dropped.
pub fn to_markdown(html: &str) -> String {
    let converter = htmd::HtmlToMarkdown::builder()
        .skip_tags(vec![
            "script", "style", "noscript", "template", "head", "iframe", "svg", "form", "nav",
        ])
        .build();
    match converter.convert(html) {
        Ok(md) if !md.trim().is_empty() => md,
        _ => "<error>Page failed to be simplified from HTML</error>".to_string(),
    }
}

/// The `start_index` / `max_length` window in characters, with the reference's notes.
pub fn window(content: &str, start: usize, max: usize) -> String {
    let total = content.chars().count();
    if start >= total {
        return "<error>No more content available.</error>".to_string();
    }
    let part: String = content.chars().skip(start).take(max).collect();
    let taken = part.chars().count();
    let remaining = total - (start + taken);
    if taken == max && remaining > 0 {
        let next = start + taken;
        format!("{part}\n\n<error>Content truncated. Call the fetch tool with a start_index of {next} to get more content.</error>")
    } else {
        part
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_follow_the_reference_model() {
        let a = FetchArgs::parse(&json!({"url":"https://example.com/x"})).unwrap();
        assert_eq!((a.max_length, a.start_index, a.raw), (5000, 0, false));
        for bad in [
            json!({}),
            json!({"url": ""}),
            json!({"url": "not a url"}),
            json!({"url": "https://e.com", "max_length": 0}),
            json!({"url": "https://e.com", "max_length": 1000000}),
            json!({"url": "https://e.com", "start_index": -1}),
            json!({"url": "https://e.com", "raw": "yes"}),
        ] {
            assert!(
                matches!(FetchArgs::parse(&bad), Err(FetchError::InvalidParams(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn windows_say_where_to_read_on() {
        assert_eq!(window("abcdef", 0, 10), "abcdef");
        assert!(window("abcdef", 0, 4).starts_with("abcd\n\n<error>Content truncated"));
        assert!(window("abcdef", 0, 4).contains("start_index of 4"));
        assert_eq!(window("abcdef", 4, 4), "ef");
        assert_eq!(
            window("abcdef", 6, 4),
            "<error>No more content available.</error>"
        );
        assert_eq!(
            window("héllo", 1, 2).chars().take(2).collect::<String>(),
            "él"
        );
    }

    #[test]
    fn every_private_literal_form_is_refused() {
        // The URL parser turns every IPv4 spelling into the dotted form first.
        for u in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0x7f.0.0.1/",
            "http://0177.0.0.1/",
            "http://10.0.0.1/",
            "http://172.16.5.4/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[::]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[::ffff:10.0.0.1]/",
            "http://[64:ff9b::a00:1]/",
            "http://[fe80::1]/",
            "http://[fc00::1]/",
            "http://[fd12:3456::1]/",
            "http://[2002:7f00:1::]/",
        ] {
            let url = url::Url::parse(u).unwrap();
            assert!(check_target(&url, false).is_err(), "{u} was allowed");
            assert!(
                check_target(&url, true).is_ok(),
                "{u} with the filter lifted"
            );
        }
        for u in [
            "https://93.184.215.14/",
            "https://[2606:4700::1]/",
            "https://example.com/",
        ] {
            assert!(
                check_target(&url::Url::parse(u).unwrap(), false).is_ok(),
                "{u}"
            );
        }
        assert!(check_target(&url::Url::parse("file:///etc/passwd").unwrap(), true).is_err());
        assert!(check_target(&url::Url::parse("ftp://example.com/").unwrap(), true).is_err());
    }

    #[test]
    fn robots_rules_for_our_agent_and_for_everyone() {
        let ours = "User-agent: ModelContextProtocol\nDisallow: /private\n";
        assert!(!robots_allow(ours, USER_AGENT, "https://e.com/private/x"));
        assert!(robots_allow(ours, USER_AGENT, "https://e.com/public"));
        assert!(robots_allow(
            ours,
            "OtherAgent/2.0",
            "https://e.com/private/x"
        ));
        let all = "# a comment\nUser-agent: *\nDisallow: /\n";
        assert!(!robots_allow(all, USER_AGENT, "https://e.com/anything"));
        let others = "User-agent: SomeOtherBot\nDisallow: /\n";
        assert!(robots_allow(others, USER_AGENT, "https://e.com/anything"));
    }

    #[test]
    fn html_becomes_markdown_without_scripts() {
        let md = to_markdown(
            "<html><head><title>t</title><script>alert(1)</script></head><body><h1>Title</h1><p>Some <strong>bold</strong> text and <a href=\"https://e.com/\">a link</a>.</p><ul><li>one</li><li>two</li></ul></body></html>",
        );
        assert!(md.contains("# Title"), "{md}");
        assert!(md.contains("**bold**"), "{md}");
        assert!(md.contains("[a link](https://e.com/)"), "{md}");
        assert!(!md.contains("alert"), "{md}");
    }
}
