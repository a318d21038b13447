//! A real headless Chromium (Debian `/usr/bin/chromium`, driven by
//! `playwright-core` from tests/js) signs in with a local user and allows the
//! client, with the keyboard only (from the provider chooser on), and lands on the client's loopback redirect.
//! Screenshots of every page (phone and desktop sizes) are left in
//! `target/test-artifacts/`.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use common::*;
use serde_json::{json, Value};

/// The client's loopback listener (RFC 8252 §7.3): records what arrives.
async fn loopback() -> (
    String,
    Arc<Mutex<Vec<String>>>,
    actix_web::dev::ServerHandle,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let data = web::Data::new(seen.clone());
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).route(
            "/callback",
            web::get().to(|req: HttpRequest, seen: web::Data<Arc<Mutex<Vec<String>>>>| async move {
                seen.lock().unwrap().push(req.query_string().to_string());
                HttpResponse::Ok()
                    .content_type("text/html; charset=utf-8")
                    .body("<!doctype html><meta name=viewport content=\"width=device-width\"><h1>Signed in</h1><p>You can close this window.</p>")
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    (format!("http://{addr}/callback"), seen, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_signs_in_and_consents_with_the_keyboard() {
    // GitHub is configured too (never reached here), so the chooser page shows.
    let s = start_with(
        Backend::Embedded,
        &[
            ("GITHUB_CLIENT_ID", "Iv1.unused"),
            ("GITHUB_CLIENT_SECRET", "unused"),
            ("GITHUB_BASE_URL", "http://127.0.0.1:9"),
            ("GITHUB_API_URL", "http://127.0.0.1:9"),
            ("ALLOWED_GITHUB_USERS", "*"),
        ],
    )
    .await;
    let (redirect, seen, handle) = loopback().await;
    let r = s
        .register(json!({
            "client_name": "Browser Test Client",
            "redirect_uris": [redirect],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code"],
        }))
        .await;
    assert_eq!(r.status(), 201);
    let client_id = r.json::<Value>().await.unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = verifier();
    let ch = challenge(&v);
    let authorize = auth_request(&client_id, &redirect, &ch, Some("browser-state")).url(&s.base);

    let js = gateway_testkit::js_dir();
    let module = js.join("node_modules/playwright-core/index.mjs");
    assert!(module.exists(), "run scripts/test.sh to install tests/js");
    let artifacts = gateway_testkit::repo_root().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/browser_signin.mjs");
    let out = tokio::process::Command::new("node")
        .arg(&script)
        .current_dir(&js)
        .env("PLAYWRIGHT_MODULE", &module)
        .env("AUTHORIZE_URL", authorize.as_str())
        .env("REDIRECT_PREFIX", &redirect)
        .env("BASE", &s.base)
        .env("USERNAME", USER)
        .env("PASSWORD", PASSWORD)
        .env("ARTIFACTS", &artifacts)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "node failed:\n{stdout}\n{stderr}");
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(result["ok"], true);
    assert_eq!(result["cspViolations"], json!([]), "{result}");

    // The loopback listener got the code, the state and the issuer (RFC 9207).
    let query = seen.lock().unwrap().first().cloned().unwrap();
    let landed = format!("{redirect}?{query}");
    assert_eq!(
        query_param(&landed, "state").as_deref(),
        Some("browser-state")
    );
    assert_eq!(
        query_param(&landed, "iss").as_deref(),
        Some(s.base.as_str())
    );
    let code = query_param(&landed, "code").unwrap();
    let r = s.exchange(&client_id, &redirect, &code, &v).await;
    assert_eq!(r.status(), 200);

    for name in [
        "0-chooser",
        "1-signin",
        "2-consent",
        "3-redirect",
        "4-error",
        "5-device",
    ] {
        for size in ["phone", "desktop"] {
            let shot = artifacts.join(format!("{name}-{size}.png"));
            assert!(
                std::fs::metadata(&shot)
                    .map(|m| m.len() > 1000)
                    .unwrap_or(false),
                "no screenshot {}",
                shot.display()
            );
        }
    }
    drop(handle.stop(false));
}
