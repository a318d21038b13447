//! `mcp-gateway flows [--client ID]`: which OAuth steps each client reached.
//!
//! Two sources: step records written by the services under the
//! `gateway_common::flow` convention (first-seen times), and what can be
//! derived from the authorization server's own records when a service has no
//! hook yet (registration time; a consent means "authorized"; a refresh family
//! means "token issued"; a rotated family means "refreshed").

use std::collections::BTreeMap;
use std::fmt::Write as _;

use gateway_common::flow::{
    flow_client_prefix, parse_flow_key, parse_flow_value, FlowStep, FLOW_PREFIX,
};
use gateway_store::Store;

use crate::error::AdminResult;
use crate::records::{clients, consents_of_client, families};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// First seen at this unix time (a step record).
    At(u64),
    /// Known from another record, time unknown; the text says which.
    Derived(&'static str),
    No,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFlow {
    pub client_id: String,
    pub name: Option<String>,
    pub steps: Vec<(FlowStep, Seen)>,
}

impl ClientFlow {
    fn seen(&self, step: FlowStep) -> bool {
        self.steps.iter().any(|(s, v)| *s == step && *v != Seen::No)
    }

    /// The operator's one-line reading of the trail.
    pub fn diagnosis(&self) -> &'static str {
        use FlowStep::*;
        if self.seen(FirstUse) {
            "working: a token reached the MCP server"
        } else if self.seen(TokenIssued) {
            "got a token but never used it at the verifier (check the MCP URL / resource the client calls)"
        } else if self.seen(Authorized) {
            "authorized but never redeemed the code (check the token endpoint, PKCE, redirect URI)"
        } else if self.seen(Registered) {
            "registered but never completed sign-in and consent"
        } else {
            "no steps recorded"
        }
    }
}

pub async fn flows(store: &dyn Store, only: Option<&str>) -> AdminResult<Vec<ClientFlow>> {
    // Recorded steps by client.
    let prefix = match only {
        Some(id) => flow_client_prefix(id),
        None => FLOW_PREFIX.to_string(),
    };
    let mut recorded: BTreeMap<String, BTreeMap<FlowStep, u64>> = BTreeMap::new();
    for key in store.keys_with_prefix(&prefix).await? {
        let Some((client, step)) = parse_flow_key(&key) else {
            continue;
        };
        if let Some(t) = store.get(&key).await?.as_deref().and_then(parse_flow_value) {
            recorded
                .entry(client.to_string())
                .or_default()
                .insert(step, t);
        }
    }
    let all_clients = clients(store).await?;
    let fams = families(store).await?;
    let mut ids: Vec<String> = all_clients.iter().map(|c| c.client_id.clone()).collect();
    ids.extend(recorded.keys().cloned());
    ids.sort();
    ids.dedup();
    let mut out = Vec::new();
    for id in ids {
        if only.is_some_and(|o| o != id) {
            continue;
        }
        let client = all_clients.iter().find(|c| c.client_id == id);
        let rec = recorded.get(&id);
        let client_fams: Vec<_> = fams.iter().filter(|f| f.client_id == id).collect();
        let consented = !consents_of_client(store, &id).await?.is_empty();
        let steps = FlowStep::ALL
            .into_iter()
            .map(|step| {
                if let Some(t) = rec.and_then(|r| r.get(&step)) {
                    return (step, Seen::At(*t));
                }
                let derived = match step {
                    FlowStep::Registered => client.map(|c| Seen::At(c.issued_at)),
                    FlowStep::Authorized if consented => Some(Seen::Derived("consent record")),
                    FlowStep::Authorized | FlowStep::TokenIssued if !client_fams.is_empty() => {
                        Some(Seen::Derived("refresh token family"))
                    }
                    FlowStep::Refreshed
                        if client_fams
                            .iter()
                            .any(|f| f.generation > 0 || !f.previous_hashes.is_empty()) =>
                    {
                        Some(Seen::Derived("rotated refresh token"))
                    }
                    _ => None,
                };
                (step, derived.unwrap_or(Seen::No))
            })
            .collect();
        out.push(ClientFlow {
            name: client.and_then(|c| c.metadata.client_name.clone()),
            client_id: id,
            steps,
        });
    }
    Ok(out)
}

pub fn render(flows: &[ClientFlow]) -> String {
    let mut out = String::new();
    for f in flows {
        let _ = writeln!(
            out,
            "{} ({})",
            f.client_id,
            f.name.as_deref().unwrap_or("unnamed")
        );
        for (step, seen) in &f.steps {
            let text = match seen {
                Seen::At(t) => format!("yes, first at {t}"),
                Seen::Derived(from) => format!("yes (from the {from})"),
                Seen::No => "no".to_string(),
            };
            let _ = writeln!(out, "  {:<17} {text}", step.as_str());
        }
        let _ = writeln!(out, "  => {}", f.diagnosis());
    }
    out
}
