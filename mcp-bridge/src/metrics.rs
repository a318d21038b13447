//! Counters exposed at `/metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub sessions_created: Counter,
    pub sessions_ended: Counter,
    pub children_spawned: Counter,
    pub children_exited: Counter,
    pub spawn_failures: Counter,
    pub requests: Counter,
    pub error_responses: Counter,
    pub timeouts: Counter,
    pub cancellations: Counter,
    pub http_rejections: Counter,
    /// Tool-policy decisions on the body path (calls allowed / requests refused).
    pub tool_allowed: Counter,
    pub tool_denied: Counter,
    /// New sessions refused because the user or client held its share of the cap.
    pub session_limit_refusals: Counter,
}

impl Metrics {
    /// Renders every counter plus the given gauges.
    pub fn render(&self, sessions_active: usize, children_alive: usize) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, &Counter); 13] = [
            (
                "mcp_bridge_sessions_created_total",
                "Sessions opened",
                &self.sessions_created,
            ),
            (
                "mcp_bridge_sessions_ended_total",
                "Sessions ended",
                &self.sessions_ended,
            ),
            (
                "mcp_bridge_children_spawned_total",
                "MCP server processes started",
                &self.children_spawned,
            ),
            (
                "mcp_bridge_children_exited_total",
                "MCP server processes ended",
                &self.children_exited,
            ),
            (
                "mcp_bridge_spawn_failures_total",
                "MCP server processes that failed to start",
                &self.spawn_failures,
            ),
            (
                "mcp_bridge_requests_total",
                "JSON-RPC requests forwarded",
                &self.requests,
            ),
            (
                "mcp_bridge_error_responses_total",
                "JSON-RPC error responses from servers",
                &self.error_responses,
            ),
            (
                "mcp_bridge_request_timeouts_total",
                "Requests that hit BRIDGE_REQUEST_TIMEOUT",
                &self.timeouts,
            ),
            (
                "mcp_bridge_cancellations_total",
                "Requests cancelled by clients",
                &self.cancellations,
            ),
            (
                "mcp_bridge_http_rejections_total",
                "HTTP requests refused (4xx/5xx before forwarding)",
                &self.http_rejections,
            ),
            (
                "mcp_bridge_tool_policy_allowed_total",
                "Tool, prompt and resource calls the tool policy allowed",
                &self.tool_allowed,
            ),
            (
                "mcp_bridge_tool_policy_denied_total",
                "Requests the tool policy refused",
                &self.tool_denied,
            ),
            (
                "mcp_bridge_session_limit_refusals_total",
                "New sessions refused: the user or client held BRIDGE_MAX_SESSIONS_PER_USER / _PER_CLIENT",
                &self.session_limit_refusals,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.get()
            );
        }
        let _ = writeln!(
            out,
            "# HELP mcp_bridge_sessions_active Open sessions\n# TYPE mcp_bridge_sessions_active gauge\nmcp_bridge_sessions_active {sessions_active}"
        );
        let _ = writeln!(
            out,
            "# HELP mcp_bridge_children_alive MCP server processes running\n# TYPE mcp_bridge_children_alive gauge\nmcp_bridge_children_alive {children_alive}"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.requests.inc();
        let text = m.render(2, 1);
        assert!(text.contains("mcp_bridge_requests_total 1\n"));
        assert!(text.contains("mcp_bridge_sessions_active 2\n"));
    }
}
