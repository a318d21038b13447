//! What every handler shares when it hands a message to the upstream: the
//! tool gate's admission, timeouts, forward errors and the refusal response.

use std::sync::{Arc, Weak};

use actix_web::HttpResponse;
use serde_json::Value;

use crate::bridge::Bridge;
use crate::error::BridgeError;
use crate::identity::Identity;
use crate::session::Session;
use crate::tool_gate::Admission;
use crate::upstream::{ForwardError, Upstream};

pub(super) fn respond(bridge: &Bridge, result: Result<HttpResponse, BridgeError>) -> HttpResponse {
    match result {
        Ok(r) => r,
        Err(e) => {
            bridge.metrics.http_rejections.inc();
            tracing::debug!("refused: {e}");
            actix_web::ResponseError::error_response(&e)
        }
    }
}

pub(super) fn forward_error(bridge: &Bridge, session: &Session, e: ForwardError) -> BridgeError {
    match e {
        ForwardError::Busy => BridgeError::UpstreamBusy,
        ForwardError::Gone => {
            // The child is gone: so is the session (the client re-initializes on 404).
            bridge.end_session(&session.id);
            BridgeError::UnknownSession
        }
    }
}

pub(super) fn arm_timeout(bridge: &Bridge, upstream: &Arc<Upstream>, id: u64) {
    if let Some(d) = bridge.cfg.request_timeout {
        let weak: Weak<Upstream> = Arc::downgrade(upstream);
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            if let Some(up) = weak.upgrade() {
                up.expire(id);
            }
        });
    }
}

/// The tool gate's answer for one request (relay unchanged when no gate is configured).
pub fn admit(bridge: &Bridge, who: Option<&Identity>, request: &Value) -> Admission {
    match (&bridge.cfg.tool_gate, who) {
        (Some(gate), Some(who)) => gate.admit(&bridge.metrics, who, request),
        _ => Admission::Forward(None),
    }
}
