//! Incremental `text/event-stream` parser (HTML Living Standard §9.2.6, "Interpreting an
//! event stream"), fed with the chunks the HTTP body arrives in: the one parser for the
//! verifier's revocation feed and the client side of `mcp-gateway connect`.
//!
//! Bounded: a line longer than [`MAX_LINE_BYTES`] or an event whose data grows past
//! [`MAX_EVENT_BYTES`] ends the stream with [`Overflow`], so a remote server cannot grow
//! the local process without bound by never ending a line or an event.

/// The longest line kept (a `data:` line carries one JSON-RPC message, usually whole).
pub const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;
/// The most data one event may collect over its `data:` lines.
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// The stream broke a size limit; it is not read further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Overflow {
    #[error("an event-stream line is longer than {0} bytes")]
    Line(usize),
    #[error("an event-stream event is larger than {0} bytes")]
    Event(usize),
}

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    /// `retry:` milliseconds, when the event carried one.
    pub retry: Option<u64>,
}

/// Buffers partial lines across chunks; yields complete events.
#[derive(Debug)]
pub struct Parser {
    max_line: usize,
    max_event: usize,
    buf: Vec<u8>,
    data: Option<String>,
    id: Option<String>,
    event: Option<String>,
    retry: Option<u64>,
    /// A `\r` ended the previous chunk: a `\n` starting the next one belongs to it.
    skip_lf: bool,
}

impl Default for Parser {
    fn default() -> Self {
        Self::with_limits(MAX_LINE_BYTES, MAX_EVENT_BYTES)
    }
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_limits(max_line: usize, max_event: usize) -> Self {
        Self {
            max_line,
            max_event,
            buf: Vec::new(),
            data: None,
            id: None,
            event: None,
            retry: None,
            skip_lf: false,
        }
    }

    /// Feeds a chunk; returns the events it completed, or the limit it broke (after
    /// which the parser must not be fed again).
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Event>, Overflow> {
        let mut out = Vec::new();
        for &b in chunk {
            if self.skip_lf {
                self.skip_lf = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' | b'\r' => {
                    self.skip_lf = b == b'\r';
                    let line = std::mem::take(&mut self.buf);
                    if let Some(ev) = self.line(&String::from_utf8_lossy(&line))? {
                        out.push(ev);
                    }
                }
                _ => {
                    if self.buf.len() >= self.max_line {
                        self.buf = Vec::new();
                        return Err(Overflow::Line(self.max_line));
                    }
                    self.buf.push(b)
                }
            }
        }
        Ok(out)
    }

    fn line(&mut self, line: &str) -> Result<Option<Event>, Overflow> {
        if line.is_empty() {
            // Dispatch. An event with an id but no data still moves the last event id
            // (the priming event of 2025-11-25 streams).
            let data = self.data.take();
            let id = self.id.take();
            let event = self.event.take();
            let retry = self.retry.take();
            if data.is_none() && id.is_none() && retry.is_none() {
                return Ok(None);
            }
            return Ok(Some(Event {
                id,
                event,
                data: data.unwrap_or_default(),
                retry,
            }));
        }
        if line.starts_with(':') {
            return Ok(None); // comment (keepalive)
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data"
                if self.data.as_ref().map_or(0, |d| d.len() + 1) + value.len() > self.max_event =>
            {
                self.data = None;
                return Err(Overflow::Event(self.max_event));
            }
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            "event" => self.event = Some(value.to_string()),
            "retry" => self.retry = value.parse().ok(),
            _ => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_line_endings() {
        let mut p = Parser::new();
        let mut evs = p.feed(b": keepalive\n\nid: 1_0\nda").unwrap();
        assert!(evs.is_empty());
        evs.extend(p.feed(b"ta: {\"a\":1}\r").unwrap());
        evs.extend(
            p.feed(b"\n\r\nevent: message\ndata: x\ndata: y\nretry: 500\n\n")
                .unwrap(),
        );
        assert_eq!(
            evs,
            vec![
                Event {
                    id: Some("1_0".into()),
                    event: None,
                    data: "{\"a\":1}".into(),
                    retry: None
                },
                Event {
                    id: None,
                    event: Some("message".into()),
                    data: "x\ny".into(),
                    retry: Some(500)
                },
            ]
        );
    }

    #[test]
    fn priming_event_with_id_only_is_reported() {
        let mut p = Parser::new();
        let evs = p.feed(b"id: s_0\ndata:\n\n").unwrap();
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].id.as_deref(), Some("s_0"));
        assert_eq!(evs[0].data, "");
    }

    #[test]
    fn a_line_that_never_ends_is_cut_off() {
        let mut p = Parser::with_limits(16, 64);
        assert!(p.feed(b"data: 0123456789").unwrap().is_empty());
        assert_eq!(p.feed(b"abcdef"), Err(Overflow::Line(16)));
        // The buffer was dropped, not kept growing.
        assert!(p.buf.capacity() == 0);
        // Exactly at the limit is still fine.
        let mut p = Parser::with_limits(16, 64);
        assert_eq!(
            p.feed(b"data: 0123456789\n\n").unwrap()[0].data,
            "0123456789"
        );
    }

    #[test]
    fn an_event_that_never_ends_is_cut_off() {
        let mut p = Parser::with_limits(16, 24);
        // Short lines, but the event never dispatches: its data is what grows.
        assert!(p.feed(b"data: 0123456789\n").unwrap().is_empty());
        assert!(p.feed(b"data: 0123456789\n").unwrap().is_empty());
        assert_eq!(p.feed(b"data: 0123456789\n"), Err(Overflow::Event(24)));
        let mut p = Parser::with_limits(16, 24);
        let evs = p
            .feed(b"data: 0123456789\n\ndata: 0123456789\n\ndata: 0123456789\n\n")
            .unwrap();
        assert_eq!(evs.len(), 3, "the limit is per event, not per stream");
    }

    proptest::proptest! {
        /// Where the body is cut into chunks changes nothing, and the buffers stay bounded.
        #[test]
        fn chunking_is_invisible_and_buffers_stay_bounded(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            cut in 0usize..600,
        ) {
            let body: Vec<u8> = body.into_iter().map(|b| match b % 7 { 0 => b'\n', 1 => b'\r', 2 => b':', _ => b }).collect();
            let cut = cut.min(body.len());
            let mut whole = Parser::with_limits(64, 128);
            let once = whole.feed(&body);
            let mut split = Parser::with_limits(64, 128);
            let first = split.feed(&body[..cut]);
            let twice = first.and_then(|mut a| {
                a.extend(split.feed(&body[cut..])?);
                Ok(a)
            });
            proptest::prop_assert_eq!(once.is_ok(), twice.is_ok());
            if let (Ok(a), Ok(b)) = (&once, &twice) {
                proptest::prop_assert_eq!(a, b);
            }
            proptest::prop_assert!(whole.buf.len() <= 64 && split.buf.len() <= 64);
            proptest::prop_assert!(whole.data.as_ref().map_or(0, String::len) <= 128);
        }
    }
}
