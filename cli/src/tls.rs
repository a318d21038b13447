//! TLS certificate expiry for `check-health`: connect, read the leaf
//! certificate's `notAfter` (RFC 5280 §4.1.2.5), report days left.
//!
//! The handshake accepts any certificate on purpose: this reports on
//! certificates (including expired or self-signed ones, which are exactly what
//! an operator needs to hear about); nothing is sent over the connection.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{DigitallySignedStruct, SignatureScheme};

#[derive(Debug)]
struct ReadOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for ReadOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The leaf certificate's `notAfter` (unix seconds) of `host:port`.
pub async fn certificate_not_after(
    host: &str,
    port: u16,
    timeout: Duration,
) -> anyhow::Result<u64> {
    let provider = Arc::new(ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ReadOnly(provider)))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from(host.to_string()).context("not a valid host name")?;
    let connect = async {
        let tcp = tokio::net::TcpStream::connect((host, port)).await?;
        let tls = connector.connect(name, tcp).await?;
        let (_, conn) = tls.get_ref();
        let leaf = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| anyhow!("the server sent no certificate"))?;
        not_after(leaf.as_ref())
    };
    tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| anyhow!("no TLS handshake within {}s", timeout.as_secs()))?
}

/// One DER TLV: (tag, contents, rest).
fn tlv(input: &[u8]) -> anyhow::Result<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input
        .split_first()
        .ok_or_else(|| anyhow!("truncated DER"))?;
    let (&first, rest) = rest.split_first().ok_or_else(|| anyhow!("truncated DER"))?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            bail!("unsupported DER length");
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        bail!("truncated DER");
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// `Certificate.tbsCertificate.validity.notAfter` as unix seconds.
pub fn not_after(cert_der: &[u8]) -> anyhow::Result<u64> {
    let (_, cert, _) = tlv(cert_der)?;
    let (_, tbs, _) = tlv(cert)?;
    let (tag, _, mut rest) = tlv(tbs)?;
    if tag != 0xA0 {
        // No explicit version: that element was the serial number already.
        rest = tbs;
    }
    let (_, _, rest) = tlv(rest)?; // serialNumber
    let (_, _, rest) = tlv(rest)?; // signature
    let (_, _, rest) = tlv(rest)?; // issuer
    let (_, validity, _) = tlv(rest)?;
    let (_, _, rest) = tlv(validity)?; // notBefore
    let (tag, time, _) = tlv(rest)?;
    let text = std::str::from_utf8(time).context("certificate time is not ASCII")?;
    parse_time(tag, text)
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`), RFC 5280 §4.1.2.5.
fn parse_time(tag: u8, s: &str) -> anyhow::Result<u64> {
    let digits = s
        .strip_suffix('Z')
        .ok_or_else(|| anyhow!("certificate time not in UTC"))?;
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy: u64 = digits[..2].parse()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (digits[..4].parse()?, &digits[4..]),
        _ => bail!("unsupported certificate time {s:?}"),
    };
    let n = |i: usize| -> anyhow::Result<u64> { Ok(rest[i..i + 2].parse()?) };
    let days = days_from_civil(year, n(0)?, n(2)?);
    Ok(days * 86_400 + n(4)? * 3600 + n(6)? * 60 + n(8)?)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_times() {
        assert_eq!(parse_time(0x17, "700101000000Z").unwrap(), 0);
        assert_eq!(parse_time(0x17, "240229123456Z").unwrap(), 1_709_210_096);
        assert_eq!(parse_time(0x18, "20500101000000Z").unwrap(), 2_524_608_000);
        assert!(parse_time(0x17, "240229123456+0100").is_err());
        assert!(not_after(&[0x30, 0x05, 0x01]).is_err());
    }
}
