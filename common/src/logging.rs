//! Logging, set up the same way by every binary: `LOG_FORMAT=json|text`
//! (default `json`), filter from `RUST_LOG` (default `info`), and the
//! request-logging middleware [`request_logger`] with a request id per request.
//!
//! What is never logged: the query string (it carries `code`, `state`, and on
//! some clients `access_token`), request headers (`Authorization`, `Cookie`),
//! bodies. tracing-actix-web's default root span records `http.target` as
//! path *and query*, so [`RedactedRootSpan`] replaces it with the path alone.

use std::fmt::Write as _;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::HttpMessage;
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder, TracingLogger};

use crate::config::{ConfigError, Source};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// The logging settings of a binary.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    /// An `EnvFilter` directive (`RUST_LOG`).
    pub filter: String,
}

impl LogConfig {
    /// `LOG_FORMAT` and `RUST_LOG`; `default_filter` when `RUST_LOG` is unset.
    pub fn from_source(src: &Source, default_filter: &str) -> Result<Self, ConfigError> {
        let format = match src
            .get("LOG_FORMAT")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(_) => {
                return Err(ConfigError::new(
                    "LOG_FORMAT",
                    "must be json or text",
                    "LOG_FORMAT=json",
                ))
            }
        };
        let filter = src.string("RUST_LOG", default_filter);
        if tracing_subscriber::EnvFilter::try_new(&filter).is_err() {
            return Err(ConfigError::new(
                "RUST_LOG",
                "is not a valid filter",
                "RUST_LOG=info,mcp_authz=debug",
            ));
        }
        Ok(Self { format, filter })
    }

    /// Installs the global subscriber (to stderr); a second call does nothing.
    pub fn init(&self) {
        let filter = tracing_subscriber::EnvFilter::try_new(&self.filter)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        let installed = match self.format {
            // The request span once per line (`span`, with the request id),
            // not again as a one-element `spans` list: the JSON formatter
            // re-serialises a span's fields for each, a third of a logged
            // request's cost.
            LogFormat::Json => builder
                .json()
                .with_span_list(false)
                .fmt_fields(JsonSpanFields)
                .try_init(),
            LogFormat::Text => builder.try_init(),
        };
        if installed.is_ok() {
            let _ = INSTALLED.set(self.format);
        }
    }
}

/// The JSON formatter's span fields, written as they are visited.
///
/// tracing-subscriber's own `JsonFields` gathers a span's fields into a map of
/// `serde_json::Value`s, one `String` per `%` field, and serialises the map
/// when the span opens. The request span opens on every request, logged or
/// not, and that cost about 7% of a registration on Redis (`wrk -c32`, one
/// worker: 35.7k req/s with the span, 38.3k without). This writes the same
/// JSON object directly. A field recorded later (`Span::record`) is appended
/// to the object; the JSON formatter reads the object back into a map before
/// it writes a line, and there, as in `JsonFields`' map, the last value of a
/// repeated name wins.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonSpanFields;

impl<'writer> tracing_subscriber::fmt::FormatFields<'writer> for JsonSpanFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: tracing_subscriber::fmt::format::Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        let mut v = JsonObject::new(&mut writer);
        fields.record(&mut v);
        v.finish()
    }

    fn add_fields(
        &self,
        current: &'writer mut tracing_subscriber::fmt::FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> std::fmt::Result {
        // `{"a":1}` + b=2 -> `{"a":1,"b":2}`: reopen the object and go on.
        let buf = &mut current.fields;
        if !buf.ends_with('}') {
            buf.push_str("{}");
        }
        buf.pop();
        let first = buf.ends_with('{');
        let mut v = JsonObject {
            out: buf,
            first,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.finish()
    }
}

/// Writes `"name":value` pairs of one JSON object as a visitor meets them;
/// the caller has written the opening brace, [`JsonObject::finish`] the
/// closing one. Names and values as `JsonFields` writes them: `Debug` and
/// `Display` values as strings, `log.` fields skipped, `r#` stripped.
struct JsonObject<'a> {
    out: &'a mut dyn std::fmt::Write,
    first: bool,
    result: std::fmt::Result,
}

impl<'a> JsonObject<'a> {
    fn new(out: &'a mut dyn std::fmt::Write) -> Self {
        let result = out.write_char('{');
        Self {
            out,
            first: true,
            result,
        }
    }

    fn finish(self) -> std::fmt::Result {
        self.result?;
        self.out.write_char('}')
    }

    fn entry(
        &mut self,
        name: &str,
        value: impl FnOnce(&mut dyn std::fmt::Write) -> std::fmt::Result,
    ) {
        if self.result.is_err() {
            return;
        }
        let sep = if std::mem::take(&mut self.first) {
            ""
        } else {
            ","
        };
        self.result = (|| {
            self.out.write_str(sep)?;
            JsonEscaped(&mut *self.out).write_quoted(name)?;
            self.out.write_char(':')?;
            value(&mut *self.out)
        })();
    }
}

impl tracing::field::Visit for JsonObject<'_> {
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        // As `serde_json::Value::from(f64)`: not a finite number -> null.
        self.entry(field.name(), |w| {
            if value.is_finite() {
                write!(w, "{value:?}")
            } else {
                w.write_str("null")
            }
        });
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.entry(field.name(), |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.entry(field.name(), |w| write!(w, "{value}"));
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.entry(field.name(), |w| write!(w, "{value}"));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.entry(field.name(), |w| JsonEscaped(w).write_quoted(value));
    }

    fn record_bytes(&mut self, field: &tracing::field::Field, value: &[u8]) {
        self.entry(field.name(), |w| {
            w.write_char('[')?;
            for (i, b) in value.iter().enumerate() {
                if i > 0 {
                    w.write_char(',')?;
                }
                write!(w, "{b}")?;
            }
            w.write_char(']')
        });
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let name = field.name();
        if name.starts_with("log.") {
            return; // log metadata, which the formatter has already handled
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.entry(name, |w| {
            w.write_char('"')?;
            write!(JsonEscaped(&mut *w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// A writer that escapes what goes through it for the inside of a JSON
/// string (RFC 8259 §7).
struct JsonEscaped<'a>(&'a mut dyn std::fmt::Write);

impl JsonEscaped<'_> {
    fn write_quoted(mut self, s: &str) -> std::fmt::Result {
        self.0.write_char('"')?;
        self.write_str(s)?;
        self.0.write_char('"')
    }
}

impl std::fmt::Write for JsonEscaped<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let mut plain = 0;
        for (i, b) in s.bytes().enumerate() {
            let escaped = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&s[plain..i])?;
            if escaped.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(escaped)?;
            }
            plain = i + 1;
        }
        self.0.write_str(&s[plain..])
    }
}

/// The format of the subscriber [`LogConfig::init`] installed.
static INSTALLED: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

/// The service log's format, once [`LogConfig::init`] has installed it (`None`
/// before, and in processes that log elsewhere, such as tests): lines written
/// beside tracing, such as the audit log's ([`crate::audit::log_line`]), follow it.
pub fn installed_format() -> Option<LogFormat> {
    INSTALLED.get().copied()
}

/// Parses `LOG_FORMAT`/`RUST_LOG` from `src` and installs the subscriber.
pub fn init(src: &Source, default_filter: &str) -> Result<(), ConfigError> {
    LogConfig::from_source(src, default_filter)?.init();
    Ok(())
}

/// `App::new().wrap(request_logger())`: a span per request with a request id
/// (`request_id`), method, route and path; one `request finished` event at
/// debug (warn for 5xx), so the default level adds no per-request writes.
pub fn request_logger() -> TracingLogger<RedactedRootSpan> {
    TracingLogger::<RedactedRootSpan>::new()
}

/// Root span without query string or headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactedRootSpan;

impl RootSpanBuilder for RedactedRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        // The id and route as borrowed text: the formatter copies each field
        // anyway, so an owned `String` of our own would be a second copy.
        let mut id_buf = [0u8; 36]; // a hyphenated UUID
        let request_id: &str = match request.extensions().get::<RequestId>() {
            Some(id) => id.hyphenated().encode_lower(&mut id_buf),
            None => "",
        };
        let pattern = request.match_pattern();
        let route = pattern.as_deref().unwrap_or("default");
        // No fields filled in later: with the JSON formatter every
        // `Span::record` re-serialises all of the span's fields, which cost
        // more than a registration's own work. The status goes on the
        // `request finished` event instead.
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = %route,
            http.target = %request.path(),
            request_id = %request_id,
        )
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        let status = match outcome {
            Ok(r) => r.status().as_u16(),
            Err(e) => e.as_response_error().status_code().as_u16(),
        };
        if status >= 500 {
            // What went wrong, as tracing-actix-web's default builder would
            // have recorded it on the span.
            let error = match outcome {
                Ok(r) => r.response().error().map(ToString::to_string),
                Err(e) => Some(e.to_string()),
            };
            tracing::warn!(parent: &span, status, error = error.as_deref().unwrap_or(""), "request finished");
        } else {
            tracing::debug!(parent: &span, status, "request finished");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{test as atest, web, App, HttpResponse};
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[actix_web::test]
    async fn request_lines_have_an_id_and_no_secrets() {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_env_filter("debug")
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let app = atest::init_service(App::new().wrap(request_logger()).route(
            "/callback",
            web::get().to(|| async {
                tracing::info!("handler ran");
                HttpResponse::Ok().finish()
            }),
        ))
        .await;
        let req = atest::TestRequest::get()
            .uri("/callback?code=SECRET-CODE&state=x")
            .insert_header(("Authorization", "Bearer SECRET-TOKEN"))
            .insert_header(("Cookie", "session=SECRET-COOKIE"))
            .to_request();
        let resp = atest::call_service(&app, req).await;
        assert_eq!(resp.status(), 200);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(lines.len() >= 2, "{text}");
        for l in &lines {
            let id = l["span"]["request_id"].as_str().unwrap_or_default();
            assert_eq!(id.len(), 36, "a uuid request id on every line: {l}");
            assert_eq!(l["span"]["http.target"], "/callback");
        }
        assert!(text.contains("request finished"), "{text}");
        assert!(!text.contains("SECRET"), "{text}");
    }

    /// The lines a span's events produce, with `JsonFields` (tracing-subscriber's
    /// own) or with ours; the timestamps dropped.
    fn span_lines(ours: bool) -> Vec<serde_json::Value> {
        let buf = Buf::default();
        let writer = buf.clone();
        let builder = tracing_subscriber::fmt()
            .json()
            .with_span_list(true)
            .with_env_filter("trace")
            .with_writer(move || writer.clone());
        let emit = || {
            let span = tracing::info_span!(
                "work",
                text = "quote \" backslash \\ newline \n tab \t bell \u{7} é ☃",
                shown = %"a \"display\" value",
                debugged = ?vec!["x\ny", "z"],
                r#type = ?"raw",
                negative = -42i64,
                big = u64::MAX,
                yes = true,
                ratio = 1.5f64,
                nan = f64::NAN,
                bytes = &b"ab"[..],
                later = tracing::field::Empty,
                again = 1u64,
            );
            span.in_scope(|| tracing::info!("inside"));
            span.record("later", "recorded afterwards");
            span.record("again", 2u64);
            span.in_scope(|| {
                tracing::info!("after the records");
                tracing::info_span!("empty").in_scope(|| tracing::warn!(n = 3, "nested"));
            });
        };
        if ours {
            tracing::subscriber::with_default(builder.fmt_fields(JsonSpanFields).finish(), emit);
        } else {
            tracing::subscriber::with_default(builder.finish(), emit);
        }
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("timestamp");
                v
            })
            .collect()
    }

    #[test]
    fn span_fields_come_out_as_tracing_subscribers_own_json_writes_them() {
        let theirs = span_lines(false);
        let ours = span_lines(true);
        assert_eq!(theirs.len(), 3);
        assert_eq!(ours, theirs);
        // And they are all there.
        let span = &ours[1]["span"];
        assert_eq!(
            span["text"],
            "quote \" backslash \\ newline \n tab \t bell \u{7} é ☃"
        );
        assert_eq!(span["shown"], "a \"display\" value");
        assert_eq!(span["type"], "\"raw\"");
        assert_eq!(span["big"], u64::MAX);
        assert_eq!(span["nan"], serde_json::Value::Null);
        assert_eq!(span["later"], "recorded afterwards");
        assert_eq!(span["again"], 2);
        assert_eq!(ours[2]["spans"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn config_is_checked() {
        let src = Source::from_pairs([("LOG_FORMAT", "yaml")]);
        let e = LogConfig::from_source(&src, "info")
            .unwrap_err()
            .to_string();
        assert!(e.contains("LOG_FORMAT"), "{e}");
        let src = Source::from_pairs([("LOG_FORMAT", "TEXT")]);
        let c = LogConfig::from_source(&src, "info").unwrap();
        assert_eq!((c.format, c.filter.as_str()), (LogFormat::Text, "info"));
    }
}
