//! The task that keeps the verifier's tool policy current: `TOOL_POLICY_FILE`
//! is re-read every second and a changed, valid policy swapped in; a new file
//! that does not validate is logged and the previous policy stays.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gateway_common::tool_policy::{Reload, Reloader};

use crate::tool_policy::check_services;
use crate::verifier::Verifier;

/// Polls `TOOL_POLICY_FILE` every second and swaps in a changed, valid policy.
pub async fn run(verifier: Arc<Verifier>, path: PathBuf) {
    let mut reloader = Reloader::new(path);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // A small file, read once a second: not worth a blocking-pool hop.
        let found = reloader.poll();
        match found {
            Reload::Unchanged => {}
            Reload::Changed(policy) => {
                let services: Vec<&str> = verifier
                    .config()
                    .services
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect();
                match check_services(&policy, &services) {
                    Ok(()) => {
                        verifier.set_tool_policy(Arc::new(policy));
                        verifier.metrics().record_tool_reload(true);
                        tracing::info!(path = %reloader.path().display(), "tool policy reloaded");
                    }
                    Err(e) => {
                        verifier.metrics().record_tool_reload(false);
                        tracing::error!(error = %e, "tool policy not reloaded; keeping the previous one")
                    }
                }
            }
            Reload::Invalid(e) => {
                verifier.metrics().record_tool_reload(false);
                tracing::error!(error = %e, "tool policy not reloaded; keeping the previous one")
            }
        }
    }
}
