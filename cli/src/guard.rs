//! The verifier as an in-process guard in front of the bridge (one-machine
//! mode): the same decision `/verify` gives a proxy, without the proxy hop.
//!
//! On allow, client-sent identity headers are replaced by the verified ones and
//! the `Authorization` header is removed, so the bridge never sees the token
//! (MCP security best practices: no token passthrough).

use std::sync::Arc;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use mcp_verifier::tool_policy::{denial_body, McpCall};
use mcp_verifier::{AuthorizationHeader, Decision, Deny, ForwardedRequest, Verifier};

/// `actix_web::middleware::from_fn(guard)` with `web::Data<Arc<Verifier>>` in app data.
pub async fn guard<B: MessageBody + 'static>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B, BoxBody>>, actix_web::Error> {
    let Some(verifier) = req.app_data::<web::Data<Arc<Verifier>>>().cloned() else {
        let resp = HttpResponse::InternalServerError().json(serde_error(
            "server_error",
            "the verifier is not configured",
        ));
        return Ok(req.into_response(resp).map_into_right_body());
    };
    let headers_to_set = {
        let head = req.head();
        let auth_values: Vec<&HeaderValue> = head.headers.get_all(header::AUTHORIZATION).collect();
        let authorization = match auth_values.as_slice() {
            [] => AuthorizationHeader::Absent,
            [one] => AuthorizationHeader::One(one.as_bytes()),
            _ => AuthorizationHeader::Several,
        };
        // `up` mounts this behind `exposure::gate`, which refused any Host that is not
        // this gateway's, so the `resource_metadata` URL built from it is ours.
        let host = head
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let uri = head.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let wants_html = head
            .headers
            .get(header::ACCEPT)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|a| a.starts_with("text/html"));
        let cors_preflight = head.method == actix_web::http::Method::OPTIONS
            && head
                .headers
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        let fwd = ForwardedRequest {
            method: head.method.as_str(),
            proto: "http",
            host,
            uri,
            authorization,
            cors_preflight,
            wants_html,
        };
        // The 2026-07-28 clients mirror the JSON-RPC method and tool name in
        // headers: the per-tool policy decides on them here, as at /verify;
        // the bridge decides again from the body for every client.
        let call = McpCall::from_headers(
            head.headers.get("mcp-method").map(HeaderValue::as_bytes),
            head.headers.get("mcp-name").map(HeaderValue::as_bytes),
        );
        let proof = mcp_verifier::ProofHeader::from_values(
            head.headers.get_all("dpop").map(HeaderValue::as_bytes),
        );
        let started = verifier.metrics().start();
        let decision = verifier.check_refetching(&fwd, call.as_ref(), proof).await;
        // The same decision counters and latency as `/verify` (one /metrics in `up`).
        let reason = match &decision {
            Decision::Allow(a) => a.reason,
            Decision::Deny(d) => d.deny.reason(),
        };
        verifier.metrics().record(reason, started);
        match decision {
            Decision::Allow(allowed) => {
                let id = allowed.who.identity();
                let names = &verifier.config().headers;
                Ok((
                    allowed.dpop.clone(),
                    [
                        (names.user_id.clone(), id.user_id.clone()),
                        (names.user_name.clone(), id.user_name.clone()),
                        (names.user_email.clone(), id.user_email.clone()),
                        (names.client_id.clone(), id.client_id.clone()),
                        (names.scopes.clone(), id.scopes.clone()),
                    ],
                ))
            }
            Decision::Deny(denial) => {
                let token_sent = !matches!(authorization, AuthorizationHeader::Absent);
                let tool_denial = match (&denial.deny, &call) {
                    (Deny::ToolNotAllowed, Some(call)) => Some(denial_body(call)),
                    _ => None,
                };
                Err((denial.render(token_sent), tool_denial))
            }
        }
    };
    // A DPoP proof's jti, claimed in Redis too when replicas share one.
    let headers_to_set = match headers_to_set {
        Ok((Some(seen), pairs)) => {
            let head = req.head();
            let host = head
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            let uri = head.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let fwd = ForwardedRequest {
                method: head.method.as_str(),
                proto: "http",
                host,
                uri,
                authorization: AuthorizationHeader::Absent,
                cors_preflight: false,
                wants_html: false,
            };
            match verifier.claim_proof(&fwd, &seen).await {
                Some(denial) => Err((denial.render(true), None)),
                None => Ok(pairs),
            }
        }
        Ok((None, pairs)) => Ok(pairs),
        Err(e) => Err(e),
    };
    match headers_to_set {
        Ok(pairs) => {
            let headers = req.headers_mut();
            headers.remove(header::AUTHORIZATION);
            // The MCP server never sees the DPoP proof either.
            headers.remove("dpop");
            // Every spelling a client could use for an identity header goes,
            // underscores included (some servers fold `_` into `-`).
            let ours: Vec<String> = pairs.iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
            let doomed: Vec<HeaderName> = headers
                .keys()
                .filter(|k| ours.contains(&k.as_str().replace(['_', '.'], "-")))
                .cloned()
                .collect();
            for name in doomed {
                headers.remove(name);
            }
            for (name, value) in pairs {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(&value),
                ) {
                    headers.insert(n, v);
                }
            }
            next.call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err((deny, tool_denial)) => {
            let status = actix_web::http::StatusCode::from_u16(deny.status)
                .unwrap_or(actix_web::http::StatusCode::UNAUTHORIZED);
            let mut resp = HttpResponse::build(status);
            if let Some(www) = &deny.www_authenticate {
                resp.insert_header((header::WWW_AUTHENTICATE, www.as_str()));
            }
            if let Some(secs) = deny.retry_after {
                resp.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
            if let Some(nonce) = &deny.dpop_nonce {
                resp.insert_header(("dpop-nonce", nonce.as_str()));
            }
            resp.insert_header((header::CACHE_CONTROL, "no-store"));
            // A tool denial is a JSON-RPC error the client can show (its id is
            // unknown here: the body is not read on this path).
            let resp = match tool_denial {
                Some(body) => resp.content_type("application/json").body(body),
                None => resp.json(serde_error(deny.error, deny.description)),
            };
            Ok(req.into_response(resp).map_into_right_body())
        }
    }
}

fn serde_error(error: &str, description: &str) -> serde_json::Value {
    serde_json::json!({ "error": error, "error_description": description })
}
