//! A DPoP client (RFC 9449) on the kept crates: a P-256 key, proofs for any
//! request, and the client side of `private_key_jwt` (RFC 7523) assertions.
//! What the tests use to be a real sender-constrained client.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use sha2::{Digest, Sha256};

/// An ES256 key pair with its public JWK.
pub struct DpopKey {
    encoding: EncodingKey,
    /// PKCS#8 PEM of the private key (what SDKs take).
    pub pkcs8_pem: String,
    /// The public JWK (`kty`, `crv`, `x`, `y`).
    pub jwk: serde_json::Value,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopKey").field("jwk", &self.jwk).finish()
    }
}

/// base64url(SHA-256(token)): the `ath` claim.
pub fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// A client's own clock: what a DPoP client stamps on its proofs (`iat`).
#[allow(clippy::disallowed_methods)] // the test client is outside the services' clock seam
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn jti() -> String {
    let mut b = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    URL_SAFE_NO_PAD.encode(b)
}

impl DpopKey {
    pub fn generate() -> Self {
        let sk = SigningKey::random(&mut rand::rngs::OsRng);
        let der = sk.to_pkcs8_der().expect("pkcs8");
        let pkcs8_pem = sk.to_pkcs8_pem(LineEnding::LF).expect("pem").to_string();
        let point = sk.verifying_key().to_encoded_point(false);
        let jwk = serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(point.x().expect("x")),
            "y": URL_SAFE_NO_PAD.encode(point.y().expect("y")),
        });
        Self {
            encoding: EncodingKey::from_ec_der(der.as_bytes()),
            pkcs8_pem,
            jwk,
        }
    }

    /// RFC 7638 thumbprint: what `cnf.jkt` of a token bound to this key holds.
    pub fn thumbprint(&self) -> String {
        let canonical = format!(
            "{{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"{}\",\"y\":\"{}\"}}",
            self.jwk["x"].as_str().unwrap_or_default(),
            self.jwk["y"].as_str().unwrap_or_default()
        );
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// A fresh proof for `method url`, with `ath` for `token` and `nonce` when given.
    pub fn proof(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        nonce: Option<&str>,
    ) -> String {
        let mut claims = serde_json::json!({
            "jti": jti(),
            "htm": method,
            "htu": url,
            "iat": now(),
        });
        if let Some(t) = token {
            claims["ath"] = ath(t).into();
        }
        if let Some(n) = nonce {
            claims["nonce"] = n.into();
        }
        self.sign_proof(&claims)
    }

    /// Signs arbitrary proof claims (tests that forge a field).
    pub fn sign_proof(&self, claims: &serde_json::Value) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.typ = Some("dpop+jwt".into());
        h.jwk = Some(serde_json::from_value(self.jwk.clone()).expect("jwk"));
        jsonwebtoken::encode(&h, claims, &self.encoding).expect("sign")
    }

    /// A `private_key_jwt` client assertion (RFC 7523 §2.2) for `client_id`
    /// with `aud` = the issuer.
    pub fn client_assertion(&self, client_id: &str, issuer: &str) -> String {
        let n = now();
        let claims = serde_json::json!({
            "iss": client_id, "sub": client_id, "aud": issuer,
            "iat": n, "exp": n + 120, "jti": jti(),
        });
        let mut h = Header::new(Algorithm::ES256);
        h.typ = Some("JWT".into());
        jsonwebtoken::encode(&h, &claims, &self.encoding).expect("sign")
    }
}
