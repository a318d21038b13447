//! Logging, set up the same way by every binary: `LOG_FORMAT=json|text`
//! (default `json`), filter from `RUST_LOG` (default `info`), and the
//! request-logging middleware [`request_logger`] with a request id per request.
//!
//! What is never logged: the query string (it carries `code`, `state`, and on
//! some clients `access_token`), request headers (`Authorization`, `Cookie`),
//! bodies. tracing-actix-web's default root span records `http.target` as
//! path *and query*, so [`RedactedRootSpan`] replaces it with the path alone.

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
            LogFormat::Json => builder.json().with_span_list(false).try_init(),
            LogFormat::Text => builder.try_init(),
        };
        if installed.is_ok() {
            let _ = INSTALLED.set(self.format);
        }
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
