//! `GET /callback/{idp}`: where GitHub and the OpenID Connect provider send the
//! browser back. The `state` is ours, single-use and bound (through our pending
//! request) to this browser; only then is the code exchanged upstream.

use super::signin::sign_in_event;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use super::browser::{error_redirect, load_request};
use super::signin::finish_sign_in;
use super::Form;
use crate::html;
use crate::protocol::error::OAuthError;
use crate::protocol::records::authreq_key;
use crate::signin::{upstream, SignInError};
use crate::state::AppState;

fn expired_page() -> HttpResponse {
    html::error_page(
        StatusCode::BAD_REQUEST,
        "Sign-in expired",
        "This sign-in was already completed or has expired. Go back to the application and start again.",
    )
}

pub async fn callback(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let idp = req.match_info().get("idp").unwrap_or("").to_string();
    let Some(provider) = state.providers.iter().find(|p| p.id() == idp).cloned() else {
        return super::not_found().await;
    };
    let q = Form::from_bytes(req.query_string().as_bytes());
    let field = |n: &str| q.one(n).ok().flatten().unwrap_or("").to_string();
    let pending = match upstream::take(&state.store, &field("state")).await {
        Ok(Some(p)) if p.idp == idp => p,
        Ok(_) => return expired_page(),
        Err(e) => {
            tracing::error!(error = %e, "upstream state lookup failed");
            return html::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Something went wrong",
                "The server could not complete this step. Try again.",
            );
        }
    };
    let (ar, raw) = match load_request(&req, &state, &pending.request_id).await {
        Ok(Some(x)) => x,
        Ok(None) => return expired_page(),
        Err(e) => {
            tracing::error!(error = %e, "pending request lookup failed");
            return expired_page();
        }
    };
    let upstream_error = field("error");
    if !upstream_error.is_empty() {
        // The user declined at the provider (`access_denied`) or it failed: the
        // request ends, and the client hears `access_denied` (RFC 6749 §4.1.2.1).
        tracing::info!(idp = %idp, error = %upstream_error.chars().take(64).collect::<String>(), "upstream sign-in refused");
        state.metrics.failed_sign_ins.inc();
        state.audit(sign_in_event(
            &idp,
            "",
            Some("refused at the identity provider"),
        ));
        return match state
            .store
            .compare_and_swap(&authreq_key(&pending.request_id), &raw, None, None)
            .await
        {
            Ok(true) => error_redirect(
                &state,
                &ar.redirect_uri,
                ar.state.as_deref(),
                &OAuthError::AccessDenied("sign-in at the identity provider was refused".into()),
            ),
            Ok(false) | Err(_) => expired_page(),
        };
    }
    // RFC 9207 §2.4: an `iss` that is not the provider's means a mix-up; stop.
    let iss = field("iss");
    if !iss.is_empty() && provider.expected_iss().is_some_and(|want| want != iss) {
        tracing::warn!(idp = %idp, "authorization response from an unexpected issuer");
        state.metrics.failed_sign_ins.inc();
        state.audit(sign_in_event(
            &idp,
            "",
            Some("unexpected issuer (RFC 9207)"),
        ));
        return html::error_page(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "The answer came from an unexpected identity provider. Go back to the application and start again.",
        );
    }
    let code = field("code");
    if code.is_empty() || code.len() > 2048 {
        return expired_page();
    }
    match provider.complete(&code, &pending).await {
        Ok(identity) => {
            state.metrics.sign_ins.inc();
            state.audit(sign_in_event(&idp, &identity.sub, None));
            finish_sign_in(&state, &pending.request_id, identity).await
        }
        Err(SignInError::Refused(why)) => {
            state.metrics.failed_sign_ins.inc();
            state.audit(sign_in_event(&idp, "", Some("not on the allowlist")));
            tracing::info!(idp = %idp, reason = %why, "sign-in refused by allowlist");
            html::error_page(
                StatusCode::FORBIDDEN,
                "Not allowed",
                "Your account signed in, but it is not allowed to use this server. Ask the administrator to add you.",
            )
        }
        Err(SignInError::Upstream(why)) => {
            state.metrics.failed_sign_ins.inc();
            state.audit(sign_in_event(
                &idp,
                "",
                Some("identity provider answer unusable"),
            ));
            tracing::info!(idp = %idp, reason = %why, "upstream sign-in failed");
            html::error_page(
                StatusCode::BAD_REQUEST,
                "Sign-in failed",
                "The identity provider's answer could not be used (the code may have expired). Go back to the application and start again.",
            )
        }
        Err(SignInError::Unavailable(why)) => {
            tracing::error!(idp = %idp, reason = %why, "identity provider unavailable");
            html::error_page(
                StatusCode::BAD_GATEWAY,
                "Sign-in unavailable",
                "The identity provider could not be reached. Try again in a moment.",
            )
        }
    }
}
