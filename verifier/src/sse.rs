//! A small `text/event-stream` parser (WHATWG HTML §9.2.6): enough for the
//! revocation stream — `data:` lines joined by `\n`, dispatched on a blank
//! line; comments (`: keepalive`) and other fields ignored.

#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
}

/// Bytes per line kept before the stream is declared broken.
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("event-stream line longer than {MAX_LINE} bytes")]
pub struct LineTooLong;

impl SseParser {
    /// Feeds bytes; calls `on_event` with each complete event's data.
    pub fn push(
        &mut self,
        chunk: &[u8],
        mut on_event: impl FnMut(&[u8]),
    ) -> Result<(), LineTooLong> {
        for &b in chunk {
            if b == b'\n' {
                self.end_line(&mut on_event);
            } else {
                if self.line.len() >= MAX_LINE {
                    return Err(LineTooLong);
                }
                self.line.push(b);
            }
        }
        Ok(())
    }

    fn end_line(&mut self, on_event: &mut impl FnMut(&[u8])) {
        let line = match self.line.last() {
            Some(b'\r') => &self.line[..self.line.len() - 1],
            _ => &self.line[..],
        };
        if line.is_empty() {
            if self.has_data {
                on_event(&self.data);
            }
            self.data.clear();
            self.has_data = false;
        } else if line.first() == Some(&b':') {
            // comment / keepalive
        } else {
            let (field, value) = match line.iter().position(|&c| c == b':') {
                Some(i) => {
                    let v = &line[i + 1..];
                    (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (line, &[][..]),
            };
            if field == b"data" {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
        }
        self.line.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&str]) -> Vec<String> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.push(c.as_bytes(), |d| {
                out.push(String::from_utf8_lossy(d).into_owned())
            })
            .unwrap();
        }
        out
    }

    #[test]
    fn events_split_across_chunks_and_keepalives() {
        assert_eq!(
            events(&[
                ": keepalive\n\nda",
                "ta: {\"a\":1}\r\n",
                "\r\n",
                "event: x\ndata:b\ndata: c\n\n"
            ]),
            vec!["{\"a\":1}", "b\nc"]
        );
        assert!(events(&["data: unterminated\n"]).is_empty());
    }

    #[test]
    fn endless_lines_are_refused() {
        let mut p = SseParser::default();
        assert_eq!(p.push(&vec![b'a'; MAX_LINE + 1], |_| {}), Err(LineTooLong));
    }
}
