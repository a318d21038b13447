//! `/health` (the process answers), `/ready` (store reachable, keys loaded), `/metrics`.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// 200 once the store answers and the signing keys are loaded, else 503. Container
/// health checks ask this (deploy/compose), so nothing is routed to a server that cannot
/// reach its store; the reason goes to the log, never to the caller.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let store_ok = match state.store.ping().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the store does not answer");
            false
        }
    };
    let keys_ok = !state.keys.current().jwks.keys.is_empty();
    let body = json!({
        "status": if store_ok && keys_ok { "ready" } else { "not ready" },
        "store": state.store.backend(),
        "store_ok": store_ok,
        "keys_loaded": keys_ok,
    });
    if store_ok && keys_ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ))
        .body(state.metrics.encode())
}
