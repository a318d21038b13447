//! A minimal HTTP/1.1 keep-alive client for load generators: one request at
//! a time on one connection, `Content-Length` bodies only. A benchmark that
//! shares two cores with the server it measures should spend as little of
//! them as it can on its own side; a full client (connection pool, header
//! maps, decompression) costs about as much CPU per request as a fast server.
//! The same client drives every side of a comparison.

use std::net::SocketAddr;

use anyhow::{bail, ensure, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct RawConn {
    stream: TcpStream,
    host: String,
    buf: Vec<u8>,
}

/// One response: status and body.
pub struct RawResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

impl RawConn {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            host: addr.to_string(),
            buf: Vec::with_capacity(16 * 1024),
        })
    }

    /// `POST path` with `body` of `content_type`; waits for the whole response.
    pub async fn post(
        &mut self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> anyhow::Result<RawResponse> {
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nAccept: application/json\r\n\r\n",
            self.host,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        self.send(&req).await
    }

    /// Sends a complete, prebuilt request and waits for the whole response.
    pub async fn send(&mut self, request: &[u8]) -> anyhow::Result<RawResponse> {
        self.stream.write_all(request).await?;
        self.read_response().await
    }

    async fn read_response(&mut self) -> anyhow::Result<RawResponse> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).context("response head")?;
                let (status_line, fields) = head.split_once("\r\n").unwrap_or((head, ""));
                let status: u16 = status_line.get(9..12).unwrap_or("0").parse()?;
                let mut len = None;
                for line in fields.lines() {
                    let Some((k, v)) = line.split_once(':') else {
                        continue;
                    };
                    if k.eq_ignore_ascii_case("content-length") {
                        len = Some(v.trim().parse::<usize>()?);
                    } else if k.eq_ignore_ascii_case("transfer-encoding") {
                        bail!("chunked responses are not supported by this load client");
                    }
                }
                let total = end + 4 + len.unwrap_or(0);
                while self.buf.len() < total {
                    self.fill().await?;
                }
                let body = self.buf[end + 4..total].to_vec();
                self.buf.drain(..total);
                return Ok(RawResponse { status, body });
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await?;
        ensure!(n > 0, "connection closed");
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// `application/x-www-form-urlencoded` of `pairs` (RFC 3986 unreserved kept).
pub fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    let enc = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

#[cfg(test)]
mod tests {
    #[test]
    fn form_encodes_reserved_characters() {
        assert_eq!(
            super::form(&[("a b", "x/y=z&"), ("t", "A-._~9")]),
            b"a%20b=x%2Fy%3Dz%26&t=A-._~9".to_vec()
        );
    }
}
