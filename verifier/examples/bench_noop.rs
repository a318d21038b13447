//! The no-op anchor of `bench/run.sh`: an actix-web server with one worker
//! whose every route reads the request body and answers `200` with an empty
//! body, and does nothing else.
//! What `/verify` does beyond this is what the verifier costs.
//!
//! With `--es256`, the forged-token row's anchor on the same HTTP stack: every
//! request's `Authorization: Bearer <jwt>` signature is checked with ES256
//! (aws-lc, a P-256 key parsed once at start, as the verifier's own check)
//! and nothing else is looked at: `200` if it verifies (or there is no
//! `Authorization` header: nothing to check), `401` if not. What
//! `/verify` does beyond this for a forged token is what the verifier's own
//! checks cost.
//!
//! `cargo run --release -p mcp-verifier --example bench_noop -- 127.0.0.1:0 [--es256]`
//! prints `LISTEN <addr>` once bound, then serves until killed.

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, ParsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// The raw check: the signature of the bearer token against one key. A
/// request without a token has nothing to check (readiness probes pass).
fn es256_check(key: &ParsedPublicKey, req: &actix_web::HttpRequest) -> bool {
    let Some(auth) = req.headers().get(actix_web::http::header::AUTHORIZATION) else {
        return true;
    };
    let Some(token) = auth.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else {
        return false;
    };
    let Some((signed, sig)) = token.rsplit_once('.') else {
        return false;
    };
    // decode_slice wants room for a whole last quantum (86 characters: 66).
    let mut raw = [0u8; 66];
    matches!(URL_SAFE_NO_PAD.decode_slice(sig, &mut raw), Ok(64))
        && key.verify_sig(signed.as_bytes(), &raw[..64]).is_ok()
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:0".to_string());
    let es256 = match args.next().as_deref() {
        None => None,
        Some("--es256") => {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &SystemRandom::new(),
            )
            .map_err(|e| std::io::Error::other(format!("key: {e}")))?;
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
                .map_err(|e| std::io::Error::other(format!("key: {e}")))?;
            let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref())
                .map_err(|e| std::io::Error::other(format!("key: {e}")))?;
            Some(Arc::new(key))
        }
        Some(other) => {
            return Err(std::io::Error::other(format!(
                "unknown argument {other}; usage: bench_noop [ADDR] [--es256]"
            )))
        }
    };
    actix_web::rt::System::new().block_on(async move {
        let server = actix_web::HttpServer::new(move || {
            // The body is read (and dropped): a POST answered without reading
            // its body costs actix the connection, which would make this
            // anchor slower than the services it is compared with.
            let app = actix_web::App::new();
            match es256.clone() {
                None => {
                    app.default_service(actix_web::web::to(|_body: actix_web::web::Bytes| async {
                        actix_web::HttpResponse::Ok().finish()
                    }))
                }
                Some(key) => app.default_service(actix_web::web::to(
                    move |req: actix_web::HttpRequest, _body: actix_web::web::Bytes| {
                        let pass = es256_check(&key, &req);
                        async move {
                            if pass {
                                actix_web::HttpResponse::Ok().finish()
                            } else {
                                actix_web::HttpResponse::Unauthorized().finish()
                            }
                        }
                    },
                )),
            }
        })
        .workers(1)
        .bind(listen)?;
        for addr in server.addrs() {
            println!("LISTEN {addr}");
        }
        server.run().await
    })
}
