//! What every binary does the same way at the edges of its life: `--help` and
//! `--version` before any configuration is read, and a bounded stop on
//! SIGTERM or Ctrl-C.
//!
//! Leaving rotation first (`SHUTDOWN_DELAY`, default 0): `/ready` answers 503
//! and every response closes its connection while the listener stays open, so
//! a load balancer's active health check takes the replica out before it
//! stops accepting. Closing a listener resets the connections the kernel
//! accepted but the server had not yet taken; a proxy that already wrote its
//! request on one sees a reset and, as Traefik does, will not retry a request
//! it has sent. Without the delay that window is small but real.
//!
//! Stopping: the listeners close, every further response closes its
//! connection (a proxy reconnects, is refused, and asks another replica),
//! requests already in flight are
//! given up to `SHUTDOWN_TIMEOUT` to finish, then long-lived event streams
//! (GET requests answered with `text/event-stream`: the revocation feed, MCP
//! GET streams) are ended by their owner so clients see a clean end of stream,
//! and what is left is dropped. Idle keep-alive connections never hold the
//! stop: they are not requests (actix's own graceful stop waits for them
//! until its timeout, 30 s by default, which is what made the services slow
//! to exit).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, EitherBody, MessageBody};
use actix_web::dev::{ServerHandle, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header;
use actix_web::web::Bytes;
use pin_project_lite::pin_project;

use crate::config::{ConfigError, Source};

/// `SHUTDOWN_TIMEOUT` when unset: below the 10 s most orchestrators (compose,
/// Kubernetes) wait between SIGTERM and SIGKILL.
pub const DEFAULT_SHUTDOWN_TIMEOUT: u64 = 5;

/// How long in-flight requests may take to finish after SIGTERM (`SHUTDOWN_TIMEOUT`, seconds).
pub fn shutdown_timeout(src: &Source) -> Result<Duration, ConfigError> {
    src.seconds("SHUTDOWN_TIMEOUT", DEFAULT_SHUTDOWN_TIMEOUT)
}

/// How long a stopping replica stays out of rotation, still serving, before
/// its listener closes (`SHUTDOWN_DELAY`, seconds, default 0). Behind a load
/// balancer with an active health check on `/ready`, at least twice its
/// interval plus its timeout.
pub fn shutdown_delay(src: &Source) -> Result<Duration, ConfigError> {
    src.seconds("SHUTDOWN_DELAY", 0)
}

/// What the command line asked for before any configuration is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyFlag {
    Help,
    Version,
}

/// Runs a service's `main` future on its own actix system, then ends without
/// dropping the runtime: queued `AUDIT_LOG_FILE` lines are flushed first, and the
/// runtime is forgotten, because dropping it waits for every blocking task, and a
/// name lookup (`getaddrinfo`, on the blocking pool) that the DNS server never
/// answers holds that up to 20 s after the service has stopped, past an
/// orchestrator's grace period. Call it last in `main`: the process ends after it.
pub fn run_to_exit<T>(service: impl std::future::Future<Output = T>) -> T {
    let system = actix_web::rt::System::new();
    let out = system.block_on(service);
    crate::audit::flush_all();
    std::mem::forget(system);
    out
}

/// `--help`/`-h` or `--version`/`-V` among `args` (program name excluded).
pub fn early_flag(args: &[String]) -> Option<EarlyFlag> {
    args.iter().find_map(|a| match a.as_str() {
        "--help" | "-h" => Some(EarlyFlag::Help),
        "--version" | "-V" => Some(EarlyFlag::Version),
        _ => None,
    })
}

/// Prints the help or version text for `flag` to stdout.
pub fn print_early(flag: EarlyFlag, binary: &str, version: &str, help: &str) {
    match flag {
        EarlyFlag::Help => println!("{binary} {version}\n\n{}", help.trim_end()),
        EarlyFlag::Version => println!("{binary} {version}"),
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[derive(Debug, Default)]
struct Counts {
    requests: AtomicUsize,
    streams: AtomicUsize,
    /// Set by [`drain`] and [`leave_rotation`]: every response closes its connection.
    draining: AtomicBool,
    /// Set by [`leave_rotation`]: `/ready` answers 503.
    leaving: AtomicBool,
    /// `/ready` probes answered 503 since leaving rotation.
    unready_answers: AtomicUsize,
    /// Tasks in [`InFlight::wait_zero`]. A finished response wakes waiters
    /// only when there are any: `notify_waiters` takes a lock, and nobody
    /// waits outside a stop.
    waiting: AtomicUsize,
    changed: tokio::sync::Notify,
}

impl Counts {
    /// After a count changed. `SeqCst` here and in [`InFlight::wait_zero`]:
    /// either this load sees the waiter, or the waiter's load of the count
    /// sees the change (the store-then-load pattern needs a total order).
    fn changed(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.changed.notify_waiters();
        }
    }
}

/// Counts the responses not yet fully sent: ordinary requests and long-lived
/// event streams apart. Mount [`Track`] with this as app data.
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<Counts>);

/// Held by a response body; dropped when the body is finished or abandoned.
#[derive(Debug)]
struct Held {
    counts: Arc<Counts>,
    stream: bool,
}

impl Held {
    fn counter(&self) -> &AtomicUsize {
        if self.stream {
            &self.counts.streams
        } else {
            &self.counts.requests
        }
    }

    /// A request whose answer turned out to be an event stream: counted as a
    /// stream from now on. Added before it is taken away, so the two counts
    /// are never both zero in between.
    fn into_stream(mut self) -> Self {
        if !self.stream {
            self.counts.streams.fetch_add(1, Ordering::SeqCst);
            self.counts.requests.fetch_sub(1, Ordering::SeqCst);
            self.stream = true;
            self.counts.changed();
        }
        self
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.counter().fetch_sub(1, Ordering::SeqCst);
        self.counts.changed();
    }
}

impl InFlight {
    fn hold(&self, stream: bool) -> Held {
        let held = Held {
            counts: Arc::clone(&self.0),
            stream,
        };
        held.counter().fetch_add(1, Ordering::SeqCst);
        held
    }

    /// Requests (not streams) whose responses are not finished.
    pub fn requests(&self) -> usize {
        self.0.requests.load(Ordering::SeqCst)
    }

    /// Open event streams.
    pub fn streams(&self) -> usize {
        self.0.streams.load(Ordering::SeqCst)
    }

    /// Out of rotation from now on: `/ready` answers 503 and every response
    /// closes its connection; requests are still served.
    pub fn leave(&self) {
        self.0.draining.store(true, Ordering::Release);
        self.0.leaving.store(true, Ordering::Release);
    }

    /// `/ready` probes answered 503 since [`InFlight::leave`].
    pub fn unready_answers(&self) -> usize {
        self.0.unready_answers.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` `/ready` probes were answered 503, or
    /// `timeout` passes; true when they were. A health checker that acts on
    /// each answer before sending the next probe (Traefik's does) has taken
    /// the replica out of rotation once a second probe arrives.
    pub async fn wait_unready_answers(&self, n: usize, timeout: Duration) -> bool {
        self.wait_zero(|f| n.saturating_sub(f.unready_answers()), timeout)
            .await
    }

    /// Waits until `count` reads zero or `timeout` passes; true when it reached zero.
    async fn wait_zero(&self, count: impl Fn(&Self) -> usize, timeout: Duration) -> bool {
        /// Registered as a waiter for as long as it lives (also when the
        /// wait is dropped half-way).
        struct Waiting<'a>(&'a Counts);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.waiting.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.0.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.0);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Made before the check: `notify_waiters` wakes every `Notified`
            // made before it, so a drop in between is not missed.
            let changed = self.0.changed.notified();
            if count(self) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return count(self) == 0;
            }
        }
    }
}

pin_project! {
    /// A body that holds its [`Held`] until it is dropped (no count without
    /// an [`InFlight`] in app data).
    pub struct Tracked<B> {
        #[pin]
        body: B,
        held: Option<Held>,
    }
}

impl<B: MessageBody> MessageBody for Tracked<B> {
    type Error = B::Error;

    #[inline]
    fn size(&self) -> BodySize {
        self.body.size()
    }

    #[inline]
    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        self.project().body.poll_next(cx)
    }
}

/// Middleware (`App::new().wrap(Track)`) counting every response until its
/// body is sent, with the [`InFlight`] found in app data (requests pass
/// uncounted without one). While leaving rotation it answers `/ready` 503
/// itself, and while leaving or draining it closes each connection after its
/// response.
///
/// A `Transform` of its own rather than `middleware::from_fn`: that boxes the
/// handler's future and the inner call's, and type-erases the body, three
/// allocations per request on the verifier's hot path.
#[derive(Debug, Clone, Copy, Default)]
pub struct Track;

impl<S, B> Transform<S, ServiceRequest> for Track
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<Tracked<B>>>;
    type Error = actix_web::Error;
    type Transform = TrackService<S>;
    type InitError = ();
    type Future = std::future::Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(TrackService { service }))
    }
}

/// The service [`Track`] wraps around the app.
#[derive(Debug)]
pub struct TrackService<S> {
    service: S,
}

impl<S, B> Service<ServiceRequest> for TrackService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<Tracked<B>>>;
    type Error = actix_web::Error;
    type Future = TrackFuture<S::Future>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let Some(in_flight) = req.app_data::<InFlight>() else {
            return TrackFuture::Call {
                fut: self.service.call(req),
                held: None,
                is_get: false,
            };
        };
        if in_flight.0.leaving.load(Ordering::Acquire) && req.path() == "/ready" {
            in_flight.0.unready_answers.fetch_add(1, Ordering::SeqCst);
            in_flight.0.changed();
            let res = actix_web::HttpResponse::ServiceUnavailable()
                .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
                .force_close()
                .json(serde_json::json!({ "status": "stopping" }));
            return TrackFuture::Answered {
                res: Some(req.into_response(res)),
            };
        }
        let is_get = req.method() == actix_web::http::Method::GET;
        // Counted from the start: a request still in its handler is in flight.
        let held = Some(in_flight.hold(false));
        TrackFuture::Call {
            fut: self.service.call(req),
            held,
            is_get,
        }
    }
}

pin_project! {
    /// [`TrackService`]'s future: the inner call with its count, or an answer of its own.
    #[project = TrackProj]
    pub enum TrackFuture<F> {
        Call { #[pin] fut: F, held: Option<Held>, is_get: bool },
        Answered { res: Option<ServiceResponse> },
    }
}

impl<F, B> Future for TrackFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody + 'static,
{
    type Output = Result<ServiceResponse<EitherBody<Tracked<B>>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            TrackProj::Answered { res } => match res.take() {
                Some(res) => Poll::Ready(Ok(res.map_into_right_body())),
                None => Poll::Pending,
            },
            TrackProj::Call { fut, held, is_get } => {
                let mut res = std::task::ready!(fut.poll(cx))?;
                let held = held.take().map(|h| {
                    if h.counts.draining.load(Ordering::Acquire) {
                        // A proxy must not send the next request on this
                        // connection: it opens a new one, which is refused,
                        // and asks another replica.
                        res.response_mut()
                            .head_mut()
                            .set_connection_type(actix_web::http::ConnectionType::Close);
                    }
                    if *is_get && is_event_stream(res.headers()) {
                        h.into_stream()
                    } else {
                        h
                    }
                });
                Poll::Ready(Ok(
                    res.map_body(|_, body| EitherBody::left(Tracked { body, held }))
                ))
            }
        }
    }
}

fn is_event_stream(headers: &actix_web::http::header::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// The first step of a stop on SIGTERM: out of rotation ([`InFlight::leave`])
/// for `delay`, still serving, so health-checking load balancers move away
/// before [`drain`] closes the listener. A zero delay returns at once.
pub async fn leave_rotation(in_flight: &InFlight, delay: Duration) {
    in_flight.leave();
    if !delay.is_zero() {
        tracing::info!(
            delay_secs = delay.as_secs(),
            "out of rotation (/ready answers 503); closing the listener after SHUTDOWN_DELAY"
        );
        tokio::time::sleep(delay).await;
    }
}

/// The stop every binary makes on SIGTERM: close the listeners at once (a
/// stopping replica refuses new connections, so a proxy moves to the next
/// one instead of waiting), let in-flight requests finish within `timeout`,
/// then `close_streams` (the owner ends its event streams so they end
/// cleanly) and give those a moment to flush. Returns then, without waiting
/// for idle keep-alive connections: the caller exits, which closes them
/// (actix's own graceful stop would wait for them until its timeout).
pub async fn drain(
    handle: &ServerHandle,
    in_flight: &InFlight,
    timeout: Duration,
    close_streams: impl FnOnce(),
) {
    in_flight.0.draining.store(true, Ordering::Release);
    // Sent now; the workers keep serving the connections they have, each
    // closed after its next response.
    let stopped = handle.stop(true);
    let started = tokio::time::Instant::now();
    if !in_flight.wait_zero(InFlight::requests, timeout).await {
        tracing::warn!(
            requests = in_flight.requests(),
            timeout_secs = timeout.as_secs(),
            "requests still in flight at SHUTDOWN_TIMEOUT; dropping them"
        );
    }
    close_streams();
    // Ended streams send their last chunk and are dropped; a client that
    // stopped reading does not hold the exit for long.
    let left = timeout.saturating_sub(started.elapsed());
    in_flight
        .wait_zero(
            InFlight::streams,
            left.clamp(Duration::from_millis(200), Duration::from_secs(1)),
        )
        .await;
    // Without connections left the stop completes at once; with idle ones
    // it would wait for them, and nothing is lost by not waiting.
    let _ = tokio::time::timeout(Duration::from_millis(50), stopped).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_flags_are_found_anywhere() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(early_flag(&args(&["--help"])), Some(EarlyFlag::Help));
        assert_eq!(early_flag(&args(&["-V"])), Some(EarlyFlag::Version));
        assert_eq!(
            early_flag(&args(&["--check-config", "--version"])),
            Some(EarlyFlag::Version)
        );
        assert_eq!(early_flag(&args(&["--check-config"])), None);
    }

    #[test]
    fn shutdown_timeout_defaults_and_names_its_variable() {
        assert_eq!(
            shutdown_timeout(&Source::default()).unwrap(),
            Duration::from_secs(DEFAULT_SHUTDOWN_TIMEOUT)
        );
        let e = shutdown_timeout(&Source::default().with("SHUTDOWN_TIMEOUT", "soon")).unwrap_err();
        assert!(e.to_string().contains("SHUTDOWN_TIMEOUT"), "{e}");
    }

    #[tokio::test]
    async fn waiting_ends_when_the_last_body_is_dropped() {
        let in_flight = InFlight::default();
        let held = in_flight.hold(false);
        let stream = in_flight.hold(true);
        assert_eq!((in_flight.requests(), in_flight.streams()), (1, 1));
        assert!(
            !in_flight
                .wait_zero(InFlight::requests, Duration::ZERO)
                .await
        );
        let waiter = {
            let in_flight = in_flight.clone();
            tokio::spawn(async move {
                in_flight
                    .wait_zero(InFlight::requests, Duration::from_secs(60))
                    .await
            })
        };
        // The waiter is parked before the drop, so the drop has to wake it.
        while in_flight.0.waiting.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        drop(held);
        // Woken by the drop, not by its 60 s timeout: done after a few turns
        // of this one-thread runtime.
        for _ in 0..100 {
            if waiter.is_finished() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(waiter.is_finished(), "the drop did not wake the waiter");
        assert!(waiter.await.unwrap());
        assert_eq!(in_flight.0.waiting.load(Ordering::SeqCst), 0);
        assert_eq!(in_flight.streams(), 1, "streams are counted apart");
        drop(stream);
        assert!(in_flight.wait_zero(InFlight::streams, Duration::ZERO).await);
    }

    #[actix_web::test]
    async fn leaving_rotation_fails_ready_and_closes_connections_but_serves() {
        use actix_web::{test, web, App, HttpResponse};
        let in_flight = InFlight::default();
        let app = test::init_service(
            App::new()
                .app_data(in_flight.clone())
                .wrap(Track)
                .route("/ready", web::get().to(HttpResponse::Ok))
                .route("/verify", web::get().to(HttpResponse::Ok)),
        )
        .await;
        let get = |path: &str| test::TestRequest::get().uri(path).to_request();
        let r = test::call_service(&app, get("/ready")).await;
        assert_eq!(r.status(), 200);
        assert_ne!(
            r.response().head().connection_type(),
            actix_web::http::ConnectionType::Close
        );
        assert_eq!(in_flight.unready_answers(), 0);

        in_flight.leave();
        assert!(!in_flight.wait_unready_answers(1, Duration::ZERO).await);
        let r = test::call_service(&app, get("/ready")).await;
        assert_eq!(r.status(), 503);
        let body = test::read_body(r).await;
        assert_eq!(&body[..], br#"{"status":"stopping"}"#);
        let r = test::call_service(&app, get("/verify")).await;
        assert_eq!(r.status(), 200, "still serving while out of rotation");
        assert_eq!(
            r.response().head().connection_type(),
            actix_web::http::ConnectionType::Close
        );
        let _ = test::call_service(&app, get("/ready")).await;
        assert_eq!(in_flight.unready_answers(), 2);
        assert!(in_flight.wait_unready_answers(2, Duration::ZERO).await);
    }

    #[actix_web::test]
    async fn a_response_is_counted_until_its_body_is_dropped_and_an_event_stream_apart() {
        use actix_web::{test, web, App, HttpResponse};
        let in_flight = InFlight::default();
        let app = test::init_service(
            App::new()
                .app_data(in_flight.clone())
                .wrap(Track)
                .route(
                    "/events",
                    web::get().to(|| async {
                        HttpResponse::Ok()
                            .content_type("text/event-stream")
                            .body("data: x\n\n")
                    }),
                )
                .route(
                    "/plain",
                    web::route().to(|| async { HttpResponse::Ok().body("x") }),
                ),
        )
        .await;
        let counts = |f: &InFlight| (f.requests(), f.streams());
        let plain =
            test::call_service(&app, test::TestRequest::get().uri("/plain").to_request()).await;
        assert_eq!(counts(&in_flight), (1, 0), "held by the unsent body");
        let events =
            test::call_service(&app, test::TestRequest::get().uri("/events").to_request()).await;
        assert_eq!(counts(&in_flight), (1, 1));
        // Only a GET is a long-lived stream (a POST's stream answers one request).
        let posted =
            test::call_service(&app, test::TestRequest::post().uri("/plain").to_request()).await;
        assert_eq!(counts(&in_flight), (2, 1));
        drop(plain);
        drop(posted);
        assert_eq!(counts(&in_flight), (0, 1));
        assert_eq!(&test::read_body(events).await[..], b"data: x\n\n");
        assert_eq!(counts(&in_flight), (0, 0));
        assert!(
            in_flight
                .wait_zero(InFlight::requests, Duration::ZERO)
                .await
        );
    }

    #[test]
    fn shutdown_delay_defaults_to_none_and_names_its_variable() {
        assert_eq!(shutdown_delay(&Source::default()).unwrap(), Duration::ZERO);
        let e = shutdown_delay(&Source::default().with("SHUTDOWN_DELAY", "-1")).unwrap_err();
        assert!(e.to_string().contains("SHUTDOWN_DELAY"), "{e}");
    }
}
