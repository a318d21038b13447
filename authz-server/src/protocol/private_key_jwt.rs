//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, with the
//! audience rules of its update, draft-ietf-oauth-rfc7523bis): the client
//! proves itself with a JWT signed by a key it registered (`jwks`, or
//! `jwks_uri` fetched by `http::machine`), instead of a shared secret.
//!
//! Pure: the assertion, the client's keys, the issuer and `now` in; the
//! assertion's `jti` and `exp` out (the caller makes the `jti` single-use for
//! the assertion's lifetime in the store).
//!
//! Rules:
//! * `client_assertion_type` = `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`;
//! * header: an asymmetric `alg` we support (the registered
//!   `token_endpoint_auth_signing_alg`, when there is one); `typ`, when
//!   present, `JWT` or `client-authentication+jwt`; no `crit`;
//! * `iss` = `sub` = the client id;
//! * `aud` = this server's issuer identifier, as a single string: the update
//!   of RFC 7523 closes the audience-confusion attack by accepting nothing
//!   else (not the token endpoint URL, not an array);
//! * `exp` required and at most [`MAX_LIFETIME`] ahead; `nbf`/`iat` not in the future;
//! * `jti` required (single use, enforced by the caller).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gateway_common::keys::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Algorithms advertised in `token_endpoint_auth_signing_alg_values_supported`.
pub const SIGNING_ALGS: &[&str] = gateway_common::dpop::SUPPORTED_ALGS;

/// The longest an assertion may be valid for (its `jti` is kept that long).
pub const MAX_LIFETIME: u64 = 3600;
/// Clock skew allowed on `exp`, `nbf` and `iat`.
pub const LEEWAY: u64 = 30;
/// Most keys a client may register inline.
pub const MAX_KEYS: usize = 10;

/// What a verified assertion leaves for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    pub jti: String,
    pub exp: u64,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    aud: Option<serde_json::Value>,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    jti: Option<String>,
}

fn payload(assertion: &str) -> Option<Claims> {
    let b64 = assertion.split('.').nth(1)?;
    let raw = URL_SAFE_NO_PAD.decode(b64).ok()?;
    serde_json::from_slice(&raw).ok()
}

/// The client id an assertion claims to be from (`sub`, else `iss`), read
/// without verifying anything: only to find the client whose keys verify it.
pub fn claimed_client(assertion: &str) -> Option<String> {
    if assertion.len() > 16 * 1024 {
        return None;
    }
    let c = payload(assertion)?;
    c.sub.or(c.iss).filter(|s| !s.is_empty())
}

/// Why an assertion was refused (every one is `invalid_client`).
pub type Refusal = &'static str;

fn alg_of(name: &str) -> Option<Algorithm> {
    SIGNING_ALGS
        .contains(&name)
        .then(|| name.parse().ok())
        .flatten()
}

/// Whether `jwk` can verify `alg`.
fn fits(jwk: &Jwk, alg: Algorithm, alg_name: &str) -> bool {
    use jsonwebtoken::jwk::{AlgorithmParameters as P, EllipticCurve as C};
    let type_ok = match (&jwk.algorithm, alg) {
        (P::EllipticCurve(ec), Algorithm::ES256) => ec.curve == C::P256,
        (P::EllipticCurve(ec), Algorithm::ES384) => ec.curve == C::P384,
        (
            P::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        (P::OctetKeyPair(okp), Algorithm::EdDSA) => okp.curve == C::Ed25519,
        _ => false,
    };
    // A key that names its algorithm is used for that one only.
    let alg_ok = jwk
        .common
        .key_algorithm
        .is_none_or(|ka| serde_json::to_value(ka).ok() == Some(serde_json::Value::from(alg_name)));
    type_ok && alg_ok
}

/// Verifies a client assertion for `client_id` against its keys.
pub fn verify(
    assertion: &str,
    client_id: &str,
    issuer: &str,
    keys: &JwkSet,
    registered_alg: Option<&str>,
    now: u64,
) -> Result<Assertion, Refusal> {
    let mut parts = assertion.split('.');
    let (Some(h64), Some(p64), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the client assertion is not a JWT");
    };
    let header: Header = URL_SAFE_NO_PAD
        .decode(h64)
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .ok_or("the client assertion header is malformed")?;
    if header.crit.is_some() {
        return Err("the client assertion has unsupported crit headers");
    }
    if let Some(typ) = header.typ.as_deref() {
        if !(typ.eq_ignore_ascii_case("JWT")
            || typ.eq_ignore_ascii_case("client-authentication+jwt"))
        {
            return Err("the client assertion typ must be JWT or client-authentication+jwt");
        }
    }
    let alg = alg_of(&header.alg).ok_or("the client assertion alg is not supported")?;
    if registered_alg.is_some_and(|r| r != header.alg) {
        return Err(
            "the client assertion alg is not the registered token_endpoint_auth_signing_alg",
        );
    }
    let candidates: Vec<&Jwk> = keys
        .keys
        .iter()
        .filter(|k| match (&header.kid, &k.common.key_id) {
            (Some(want), Some(have)) => want == have,
            (Some(_), None) => true,
            (None, _) => true,
        })
        .filter(|k| fits(k, alg, &header.alg))
        .collect();
    if candidates.is_empty() {
        return Err("no registered key of the client fits the client assertion");
    }
    let message = &assertion.as_bytes()[..h64.len() + 1 + p64.len()];
    let verified = candidates.iter().any(|jwk| {
        DecodingKey::from_jwk(jwk).ok().is_some_and(|key| {
            jsonwebtoken::crypto::verify(sig, message, &key, alg).unwrap_or(false)
        })
    });
    if !verified {
        return Err("the client assertion signature does not verify with the client's keys");
    }
    let c = payload(assertion).ok_or("the client assertion claims are malformed")?;
    if c.iss.as_deref() != Some(client_id) || c.sub.as_deref() != Some(client_id) {
        return Err("the client assertion iss and sub must both be the client id");
    }
    match &c.aud {
        Some(serde_json::Value::String(a)) if a == issuer => {}
        _ => {
            return Err(
                "the client assertion aud must be the authorization server's issuer identifier, as a single string",
            )
        }
    }
    let exp = c.exp.ok_or("the client assertion has no exp")?;
    if exp.saturating_add(LEEWAY) <= now {
        return Err("the client assertion has expired");
    }
    if exp > now.saturating_add(MAX_LIFETIME + LEEWAY) {
        return Err("the client assertion lives too long (at most an hour)");
    }
    if c.nbf.is_some_and(|nbf| nbf > now + LEEWAY) || c.iat.is_some_and(|iat| iat > now + LEEWAY) {
        return Err("the client assertion is not valid yet");
    }
    let jti = c
        .jti
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or("the client assertion has no jti")?;
    Ok(Assertion { jti, exp })
}

/// Validates registered `jwks` (RFC 7591 §2): a JWK set of public,
/// asymmetric signing keys.
pub fn validate_jwks(v: &serde_json::Value) -> Result<JwkSet, String> {
    let keys = v
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or("jwks must be a JWK set: {\"keys\": [...]}")?;
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return Err(format!("jwks must hold 1 to {MAX_KEYS} keys"));
    }
    for k in keys {
        let obj = k.as_object().ok_or("every jwks key must be an object")?;
        if ["d", "p", "q", "dp", "dq", "qi", "k"]
            .iter()
            .any(|m| obj.contains_key(*m))
        {
            return Err("jwks must hold public keys only".into());
        }
        match obj.get("kty").and_then(|t| t.as_str()) {
            Some("EC" | "RSA" | "OKP") => {}
            _ => return Err("jwks keys must be EC, RSA or OKP".into()),
        }
    }
    let set: JwkSet =
        serde_json::from_value(v.clone()).map_err(|_| "jwks holds a key that cannot be read")?;
    for k in &set.keys {
        DecodingKey::from_jwk(k).map_err(|_| "jwks holds a key that cannot be used")?;
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use jsonwebtoken::{EncodingKey, Header as JwtHeader};
    use p256::pkcs8::EncodePrivateKey;
    use serde_json::json;

    const ISS: &str = "https://auth.example.com";

    fn key() -> (EncodingKey, serde_json::Value) {
        let sk = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let der = sk.to_pkcs8_der().unwrap();
        let p = sk.verifying_key().to_encoded_point(false);
        (
            EncodingKey::from_ec_der(der.as_bytes()),
            json!({"kty":"EC","crv":"P-256","kid":"k1",
                   "x": URL_SAFE_NO_PAD.encode(p.x().unwrap()),
                   "y": URL_SAFE_NO_PAD.encode(p.y().unwrap())}),
        )
    }

    fn sign(enc: &EncodingKey, claims: serde_json::Value) -> String {
        let mut h = JwtHeader::new(Algorithm::ES256);
        h.typ = Some("JWT".into());
        jsonwebtoken::encode(&h, &claims, enc).unwrap()
    }

    fn good(now: u64) -> serde_json::Value {
        json!({"iss":"c1","sub":"c1","aud":ISS,"exp":now+300,"iat":now,"jti":"j1"})
    }

    #[test]
    fn an_sdk_style_assertion_verifies() {
        let (enc, jwk) = key();
        let set = validate_jwks(&json!({"keys":[jwk]})).unwrap();
        let a = sign(&enc, good(1000));
        assert_eq!(claimed_client(&a).as_deref(), Some("c1"));
        assert_eq!(
            verify(&a, "c1", ISS, &set, None, 1000).unwrap(),
            Assertion {
                jti: "j1".into(),
                exp: 1300
            }
        );
        assert!(verify(&a, "c1", ISS, &set, Some("ES256"), 1000).is_ok());
        assert!(verify(&a, "c1", ISS, &set, Some("RS256"), 1000).is_err());
    }

    #[test]
    fn audience_must_be_the_issuer_alone() {
        let (enc, jwk) = key();
        let set = validate_jwks(&json!({"keys":[jwk]})).unwrap();
        for aud in [
            json!(format!("{ISS}/token")),
            json!([ISS]),
            json!([ISS, "https://other"]),
            json!("https://other.example.com"),
        ] {
            let mut c = good(1000);
            c["aud"] = aud.clone();
            assert!(
                verify(&sign(&enc, c), "c1", ISS, &set, None, 1000).is_err(),
                "{aud}"
            );
        }
    }

    #[test]
    fn wrong_client_key_or_time_is_refused() {
        let (enc, jwk) = key();
        let (other_enc, _) = key();
        let set = validate_jwks(&json!({"keys":[jwk]})).unwrap();
        let a = sign(&enc, good(1000));
        assert!(verify(&a, "c2", ISS, &set, None, 1000).is_err());
        assert!(verify(&sign(&other_enc, good(1000)), "c1", ISS, &set, None, 1000).is_err());
        assert!(verify(&a, "c1", ISS, &set, None, 1400).is_err());
        let mut long = good(1000);
        long["exp"] = json!(1000 + 2 * MAX_LIFETIME);
        assert!(verify(&sign(&enc, long), "c1", ISS, &set, None, 1000).is_err());
        let mut no_jti = good(1000);
        no_jti.as_object_mut().unwrap().remove("jti");
        assert!(verify(&sign(&enc, no_jti), "c1", ISS, &set, None, 1000).is_err());
        let mut future = good(1000);
        future["iat"] = json!(1100);
        assert!(verify(&sign(&enc, future), "c1", ISS, &set, None, 1000).is_err());
    }

    #[test]
    fn registered_key_sets_are_public_asymmetric_keys() {
        let (_, mut jwk) = key();
        assert!(validate_jwks(&json!({"keys":[jwk.clone()]})).is_ok());
        assert!(validate_jwks(&json!({"keys":[]})).is_err());
        assert!(validate_jwks(&json!([jwk.clone()])).is_err());
        assert!(validate_jwks(&json!({"keys":[{"kty":"oct","k":"c2VjcmV0"}]})).is_err());
        jwk["d"] = json!("AAAA");
        assert!(validate_jwks(&json!({"keys":[jwk]})).is_err());
    }
}
