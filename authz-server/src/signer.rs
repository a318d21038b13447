//! Access-token signing with the private key parsed once, at load.
//!
//! `jsonwebtoken::encode` takes the key as PEM/DER bytes and parses the
//! PKCS#8 document again on every call: for ES256 that parse was a fifth of a
//! whole refresh grant (instruction counts under callgrind). An ES256 key is
//! therefore parsed into an aws-lc key pair (the library jsonwebtoken itself
//! signs with) when it is loaded, and a token is the JWS Compact
//! Serialization of RFC 7515 §7.1 signed with it: `BASE64URL(header) "."
//! BASE64URL(claims) "." BASE64URL(R || S)` (RFC 7518 §3.4, the fixed-length
//! signature). Other algorithms keep jsonwebtoken's path.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::DecodePrivateKey;
use serde::Serialize;

/// A private key ready to sign JWTs.
pub enum Signer {
    Es256 {
        pair: EcdsaKeyPair,
        rng: SystemRandom,
    },
    Other(EncodingKey),
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Es256 { .. } => "Signer(ES256)",
            Self::Other(_) => "Signer(jsonwebtoken)",
        })
    }
}

impl Signer {
    /// Parses a PKCS#8 PEM private key for `alg`.
    pub fn from_pem(alg: Algorithm, pem: &str) -> anyhow::Result<Self> {
        Ok(match alg {
            Algorithm::ES256 => {
                let secret = p256::SecretKey::from_pkcs8_pem(pem)
                    .map_err(|e| anyhow::anyhow!("the ES256 key is not a P-256 PKCS#8 key: {e}"))?;
                let public = secret.public_key().to_encoded_point(false);
                let pair = EcdsaKeyPair::from_private_key_and_public_key(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &secret.to_bytes()[..],
                    public.as_bytes(),
                )
                .map_err(|_| anyhow::anyhow!("the ES256 key was refused by aws-lc"))?;
                Self::Es256 {
                    pair,
                    rng: SystemRandom::new(),
                }
            }
            Algorithm::RS256 => Self::Other(EncodingKey::from_rsa_pem(pem.as_bytes())?),
            Algorithm::EdDSA => Self::Other(EncodingKey::from_ed_pem(pem.as_bytes())?),
            other => anyhow::bail!("unsupported signing algorithm {other:?}"),
        })
    }

    /// The compact JWS of `claims` under `header` (whose `alg` must be this key's).
    pub fn sign<T: Serialize>(&self, header: &Header, claims: &T) -> anyhow::Result<String> {
        match self {
            Self::Other(key) => Ok(jsonwebtoken::encode(header, claims, key)?),
            Self::Es256 { pair, rng } => {
                anyhow::ensure!(header.alg == Algorithm::ES256, "header alg is not ES256");
                let header = serde_json::to_vec(header)?;
                let claims = serde_json::to_vec(claims)?;
                let mut out = String::with_capacity((header.len() + claims.len()) * 4 / 3 + 90);
                URL_SAFE_NO_PAD.encode_string(header, &mut out);
                out.push('.');
                URL_SAFE_NO_PAD.encode_string(claims, &mut out);
                let signature = pair
                    .sign(rng, out.as_bytes())
                    .map_err(|_| anyhow::anyhow!("ES256 signing failed"))?;
                out.push('.');
                URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut out);
                Ok(out)
            }
        }
    }
}

/// Parses an imported RSA key (PKCS#1 or PKCS#8 PEM), requires ≥ 2048 bits, and
/// returns it as PKCS#8 PEM.
///
/// aws-lc parses and re-encodes it, the library that signs with it; the pure-Rust `rsa`
/// crate is not used, for its private-key operations are not constant-time
/// (RUSTSEC-2023-0071).
pub fn validate_rsa_pem(pem: &str) -> anyhow::Result<String> {
    use aws_lc_rs::encoding::AsDer as _;
    use p256::pkcs8::der::pem as pem_rfc7468;
    let not_rsa = || anyhow::anyhow!("not an RSA private key");
    let (label, der) = pem_rfc7468::decode_vec(pem.trim().as_bytes()).map_err(|_| not_rsa())?;
    let parsed = match label {
        "RSA PRIVATE KEY" => aws_lc_rs::rsa::KeyPair::from_der(&der),
        "PRIVATE KEY" => aws_lc_rs::rsa::KeyPair::from_pkcs8(&der),
        _ => return Err(not_rsa()),
    };
    let key = match parsed {
        Ok(key) => key,
        // aws-lc takes 2048 to 8192 bits: anything else it refuses as a key of the
        // wrong size, and a key of another type as invalid.
        Err(e) if e.description_() == "TooSmall" => {
            anyhow::bail!("RSA key shorter than 2048 bits")
        }
        Err(_) => return Err(not_rsa()),
    };
    if key.public_modulus_len() < 256 {
        anyhow::bail!("RSA key shorter than 2048 bits");
    }
    let der = key
        .as_der()
        .map_err(|_| anyhow::anyhow!("RSA key encoding failed"))?;
    pem_rfc7468::encode_string("PRIVATE KEY", pem_rfc7468::LineEnding::LF, der.as_ref())
        .map_err(|e| anyhow::anyhow!("RSA key encoding failed: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};
    use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

    #[test]
    fn es256_tokens_verify_and_match_jsonwebtokens_shape() {
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
        let public_pem = secret
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let signer = Signer::from_pem(Algorithm::ES256, &pem).unwrap();
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("at+jwt".into());
        header.kid = Some("k1".into());
        let claims = serde_json::json!({"sub": "alice", "exp": 4_000_000_000u64});
        let ours = signer.sign(&header, &claims).unwrap();
        let theirs = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        )
        .unwrap();
        // Header and claims are the same bytes; only the (randomised) signature differs.
        let head = |t: &str| t.rsplit_once('.').unwrap().0.to_string();
        assert_eq!(head(&ours), head(&theirs));
        let key = DecodingKey::from_ec_pem(public_pem.as_bytes()).unwrap();
        let mut v = Validation::new(Algorithm::ES256);
        v.validate_aud = false;
        let d = jsonwebtoken::decode::<serde_json::Value>(&ours, &key, &v).unwrap();
        assert_eq!(d.claims["sub"], "alice");
        // A signature of another message does not verify (the check above could not pass by accident).
        let (msg, sig) = ours.rsplit_once('.').unwrap();
        let other = format!("{}x.{sig}", msg);
        assert!(jsonwebtoken::decode::<serde_json::Value>(&other, &key, &v).is_err());
    }

    #[test]
    fn a_header_for_another_algorithm_is_refused() {
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
        let signer = Signer::from_pem(Algorithm::ES256, &pem).unwrap();
        assert!(signer
            .sign(&Header::new(Algorithm::RS256), &serde_json::json!({}))
            .is_err());
    }
}
