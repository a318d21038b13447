//! The body of an SSE response: frames from a channel, keep-alives, and an
//! action when the client goes away.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::http::header;
use actix_web::HttpResponse;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::SESSION_HEADER;

const KEEPALIVE: Duration = Duration::from_secs(15);

/// An SSE response body: frames from a channel, optional keep-alive comments, and an
/// optional action when the client goes away.
pub struct SseBody {
    rx: mpsc::Receiver<Bytes>,
    keepalive: Option<tokio::time::Interval>,
    on_drop: Option<Box<dyn FnOnce() + Send>>,
}

impl SseBody {
    pub fn new(
        rx: mpsc::Receiver<Bytes>,
        keepalive: bool,
        on_drop: Option<Box<dyn FnOnce() + Send>>,
    ) -> Self {
        let keepalive = keepalive.then(|| {
            let mut i =
                tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        Self {
            rx,
            keepalive,
            on_drop,
        }
    }
}

impl futures_util::Stream for SseBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(b)) => return Poll::Ready(Some(Ok(b))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        if let Some(k) = self.keepalive.as_mut() {
            if k.poll_tick(cx).is_ready() {
                return Poll::Ready(Some(Ok(Bytes::from_static(b": keepalive\n\n"))));
            }
        }
        Poll::Pending
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        if let Some(f) = self.on_drop.take() {
            f();
        }
    }
}

pub fn sse_response(body: SseBody, session_id: Option<&str>) -> HttpResponse {
    let mut r = HttpResponse::Ok();
    r.content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // Proxies must not buffer the stream (nginx honours this header).
        .insert_header(("X-Accel-Buffering", "no"));
    if let Some(id) = session_id {
        r.insert_header((SESSION_HEADER, id));
    }
    r.streaming(body)
}
