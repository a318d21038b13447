//! `/health` (the process answers), `/ready` (store reachable, keys loaded), `/metrics`.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let store_ok = state.store.ping().await.is_ok();
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
