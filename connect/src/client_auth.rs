//! How `connect` authenticates to the token endpoint: as a public client (`none`), with a
//! secret (`client_secret_basic` / `client_secret_post`, RFC 6749 §2.3.1), or with a signed
//! assertion (`private_key_jwt`, RFC 7523 §2.2 and OpenID Connect Core §9).

use std::path::Path;

use gateway_common::crypto::random_token;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use oauth2::ClientSecret;

/// RFC 7523 §2.2.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Lifetime of a client assertion: one token request.
const ASSERTION_LIFETIME_SECS: u64 = 60;

type KeyLoader = fn(&[u8]) -> jsonwebtoken::errors::Result<EncodingKey>;

/// A private key for `private_key_jwt`, with the `kid` it is known by.
#[derive(Clone)]
pub struct SigningKey {
    key: EncodingKey,
    pub alg: Algorithm,
    pub kid: String,
}

impl std::fmt::Debug for SigningKey {
    // The key never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A PEM private key (PKCS#8 EC P-256/P-384 or Ed25519; PKCS#1 or PKCS#8 RSA). The `kid`
    /// is the RFC 7638 SHA-256 thumbprint of its public JWK unless `key_id` names one.
    pub fn from_pem(pem: &[u8], key_id: Option<String>) -> Result<Self, String> {
        let candidates: [(Algorithm, KeyLoader); 4] = [
            (Algorithm::ES256, EncodingKey::from_ec_pem),
            (Algorithm::ES384, EncodingKey::from_ec_pem),
            (Algorithm::EdDSA, EncodingKey::from_ed_pem),
            (Algorithm::RS256, EncodingKey::from_rsa_pem),
        ];
        for (alg, load) in candidates {
            let Ok(key) = load(pem) else { continue };
            // The public half gives the thumbprint; a curve that does not fit `alg` fails here.
            let Ok(jwk) = Jwk::from_encoding_key(&key, alg) else {
                continue;
            };
            let Ok(thumbprint) = jwk.thumbprint(ThumbprintHash::SHA256) else {
                continue;
            };
            let candidate = SigningKey {
                key,
                alg,
                kid: key_id.clone().unwrap_or(thumbprint),
            };
            // Sign once now, so an unusable key fails at start-up rather than at sign-in.
            if candidate.assertion("probe", "probe", 0).is_ok() {
                return Ok(candidate);
            }
        }
        Err("not a PEM private key connect can sign with (PKCS#8 EC P-256/P-384 or Ed25519, PKCS#1/PKCS#8 RSA)".into())
    }

    pub fn from_file(path: &Path, key_id: Option<String>) -> Result<Self, String> {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {} ({e})", path.display()))?;
        Self::from_pem(&pem, key_id).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// RFC 7523 §3: `iss` = `sub` = the client id, `aud` the authorization server's issuer
    /// identifier (as RFC 7523bis requires; it names the server, not one of its endpoints),
    /// a short `exp` and a fresh `jti`.
    pub fn assertion(&self, client_id: &str, audience: &str, now: u64) -> Result<String, String> {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        let claims = serde_json::json!({
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
            "jti": random_token(16),
        });
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| format!("cannot sign the client assertion ({e})"))
    }
}

/// The client authentication used at the token endpoint.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// A public client: `client_id` in the body, nothing else.
    None,
    /// RFC 6749 §2.3.1, HTTP Basic (the method servers must support).
    Basic(ClientSecret),
    /// RFC 6749 §2.3.1, `client_secret` in the body.
    Post(ClientSecret),
    /// RFC 7523 §2.2.
    PrivateKeyJwt(SigningKey),
}

impl ClientAuth {
    /// The `token_endpoint_auth_method` name (RFC 7591 §2).
    pub fn method(&self) -> &'static str {
        match self {
            ClientAuth::None => "none",
            ClientAuth::Basic(_) => "client_secret_basic",
            ClientAuth::Post(_) => "client_secret_post",
            ClientAuth::PrivateKeyJwt(_) => "private_key_jwt",
        }
    }
}

/// Picks how to authenticate with what we hold: a key means `private_key_jwt`; a secret
/// means `client_secret_basic` unless the server advertises only `client_secret_post`
/// (RFC 8414 §2: an absent list means `client_secret_basic`); nothing means a public client.
/// `registered` is the method a registration response stated, which wins when it is one of ours.
pub fn choose(
    advertised: Option<&[String]>,
    registered: Option<&str>,
    secret: Option<ClientSecret>,
    key: Option<SigningKey>,
) -> ClientAuth {
    if let Some(key) = key {
        return ClientAuth::PrivateKeyJwt(key);
    }
    let Some(secret) = secret else {
        return ClientAuth::None;
    };
    let offers = |m: &str| advertised.is_some_and(|a| a.iter().any(|x| x == m));
    match registered {
        Some("client_secret_post") => ClientAuth::Post(secret),
        Some("client_secret_basic") => ClientAuth::Basic(secret),
        _ if !offers("client_secret_basic") && offers("client_secret_post") => {
            ClientAuth::Post(secret)
        }
        _ => ClientAuth::Basic(secret),
    }
}

/// The `token_endpoint_auth_method` to register with (RFC 7591 §2): `none` (a public
/// client, as a native app should be) when the server takes it or says nothing, else a
/// secret method it advertises.
pub fn registration_method(advertised: Option<&[String]>) -> Result<&'static str, String> {
    let Some(list) = advertised else {
        return Ok("none");
    };
    for m in ["none", "client_secret_basic", "client_secret_post"] {
        if list.iter().any(|x| x == m) {
            return Ok(m);
        }
    }
    Err(format!(
        "the authorization server accepts only {} at its token endpoint, none of which connect can register with (none, client_secret_basic, client_secret_post)",
        list.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn registration_prefers_a_public_client() {
        assert_eq!(registration_method(None).unwrap(), "none");
        assert_eq!(
            registration_method(Some(&list(&["client_secret_post", "none"]))).unwrap(),
            "none"
        );
        assert_eq!(
            registration_method(Some(&list(&["client_secret_post", "client_secret_basic"])))
                .unwrap(),
            "client_secret_basic"
        );
        assert_eq!(
            registration_method(Some(&list(&["client_secret_post"]))).unwrap(),
            "client_secret_post"
        );
        assert!(registration_method(Some(&list(&["tls_client_auth"]))).is_err());
    }

    #[test]
    fn secret_methods_follow_the_server() {
        let s = || Some(ClientSecret::new("s".into()));
        assert_eq!(
            choose(None, None, s(), None).method(),
            "client_secret_basic"
        );
        assert_eq!(
            choose(Some(&list(&["client_secret_post"])), None, s(), None).method(),
            "client_secret_post"
        );
        assert_eq!(
            choose(
                Some(&list(&["client_secret_post", "client_secret_basic"])),
                None,
                s(),
                None
            )
            .method(),
            "client_secret_basic"
        );
        assert_eq!(
            choose(None, Some("client_secret_post"), s(), None).method(),
            "client_secret_post"
        );
        assert_eq!(choose(None, None, None, None).method(), "none");
    }

    // A throw-away P-256 key (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256).
    const EC_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgfMvsD8w7XOFN7YRc
x2pNQSvKKTA4wfanWEns96K4OU6hRANCAARNrics/5VVBPZM5Urd0BD3MgYSobsT
CMRNoEH8k89js9mlY9seAbvm9ffjUm1Z16TAXwPd4P3Xn8hIuIg2OXv0
-----END PRIVATE KEY-----
";

    #[test]
    fn ec_key_signs_with_a_thumbprint_kid() {
        let k = SigningKey::from_pem(EC_PEM.as_bytes(), None).unwrap();
        assert_eq!(k.alg, Algorithm::ES256);
        // RFC 7638 of {"crv":"P-256","kty":"EC","x":…,"y":…}, computed apart with openssl + sha256.
        assert_eq!(k.kid, "LSI0cztim-MjM8hwaEw5-X4WcZ43iKV0tELH-1J_pXU");
        let jwt = k.assertion("c1", "https://as.example", 1000).unwrap();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.kid.as_deref(), Some(k.kid.as_str()));
        let named = SigningKey::from_pem(EC_PEM.as_bytes(), Some("k-1".into())).unwrap();
        assert_eq!(named.kid, "k-1");
        assert!(SigningKey::from_pem(b"not a key", None).is_err());
        assert!(!format!("{k:?}").contains("fMvsD8"));
    }
}
