//! Incremental `text/event-stream` parser (HTML Living Standard §9.2.6, "Interpreting an
//! event stream"), fed with the chunks the HTTP body arrives in.

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
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
    data: Option<String>,
    id: Option<String>,
    event: Option<String>,
    retry: Option<u64>,
    /// A `\r` ended the previous chunk: a `\n` starting the next one belongs to it.
    skip_lf: bool,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
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
                    if let Some(ev) = self.line(&String::from_utf8_lossy(&line)) {
                        out.push(ev);
                    }
                }
                _ => self.buf.push(b),
            }
        }
        out
    }

    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            // Dispatch. An event with an id but no data still moves the last event id
            // (the priming event of 2025-11-25 streams).
            let data = self.data.take();
            let id = self.id.take();
            let event = self.event.take();
            let retry = self.retry.take();
            if data.is_none() && id.is_none() && retry.is_none() {
                return None;
            }
            return Some(Event {
                id,
                event,
                data: data.unwrap_or_default(),
                retry,
            });
        }
        if line.starts_with(':') {
            return None; // comment (keepalive)
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
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
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_line_endings() {
        let mut p = Parser::new();
        let mut evs = p.feed(b": keepalive\n\nid: 1_0\nda");
        assert!(evs.is_empty());
        evs.extend(p.feed(b"ta: {\"a\":1}\r"));
        evs.extend(p.feed(b"\n\r\nevent: message\ndata: x\ndata: y\nretry: 500\n\n"));
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
        let evs = p.feed(b"id: s_0\ndata:\n\n");
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].id.as_deref(), Some("s_0"));
        assert_eq!(evs[0].data, "");
    }
}
