//! Counters, gauges and per-endpoint latency at `/metrics`, with
//! prometheus-client (OpenMetrics text), as in the other services.

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use prometheus_client::metrics::counter::Counter;

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
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
    sessions_active: Gauge,
    children_alive: Gauge,
    /// Per-endpoint latency (`mcp_bridge_http_request_duration_seconds`).
    pub latency: gateway_common::http_metrics::EndpointLatency,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mcp_bridge");
        let mut counter = |name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let sessions_created = counter("sessions_created", "Sessions opened");
        let sessions_ended = counter("sessions_ended", "Sessions ended");
        let children_spawned = counter("children_spawned", "MCP server processes started");
        let children_exited = counter("children_exited", "MCP server processes ended");
        let spawn_failures = counter(
            "spawn_failures",
            "MCP server processes that failed to start",
        );
        let requests = counter("requests", "JSON-RPC requests forwarded");
        let error_responses = counter("error_responses", "JSON-RPC error responses from servers");
        let timeouts = counter(
            "request_timeouts",
            "Requests that hit BRIDGE_REQUEST_TIMEOUT",
        );
        let cancellations = counter("cancellations", "Requests cancelled by clients");
        let http_rejections = counter(
            "http_rejections",
            "HTTP requests refused (4xx/5xx before forwarding)",
        );
        let tool_allowed = counter(
            "tool_policy_allowed",
            "Tool, prompt and resource calls the tool policy allowed",
        );
        let tool_denied = counter("tool_policy_denied", "Requests the tool policy refused");
        let session_limit_refusals = counter(
            "session_limit_refusals",
            "New sessions refused: the user or client held BRIDGE_MAX_SESSIONS_PER_USER / _PER_CLIENT",
        );
        let sessions_active = Gauge::default();
        registry.register("sessions_active", "Open sessions", sessions_active.clone());
        let children_alive = Gauge::default();
        registry.register(
            "children_alive",
            "MCP server processes running",
            children_alive.clone(),
        );
        let latency = gateway_common::http_metrics::EndpointLatency::default();
        latency.register(&mut registry);
        Self {
            registry,
            sessions_created,
            sessions_ended,
            children_spawned,
            children_exited,
            spawn_failures,
            requests,
            error_responses,
            timeouts,
            cancellations,
            http_rejections,
            tool_allowed,
            tool_denied,
            session_limit_refusals,
            sessions_active,
            children_alive,
            latency,
        }
    }

    /// The exposition, with the gauges set to the given values.
    pub fn render(&self, sessions_active: usize, children_alive: usize) -> String {
        self.sessions_active
            .set(i64::try_from(sessions_active).unwrap_or(i64::MAX));
        self.children_alive
            .set(i64::try_from(children_alive).unwrap_or(i64::MAX));
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_openmetrics_text() {
        let m = Metrics::default();
        m.requests.inc();
        m.latency.observe("/mcp", 0.002);
        let text = m.render(2, 1);
        assert!(text.contains("mcp_bridge_requests_total 1\n"), "{text}");
        assert!(text.contains("mcp_bridge_sessions_active 2\n"), "{text}");
        assert!(
            text.contains("mcp_bridge_http_request_duration_seconds_count{endpoint=\"/mcp\"} 1\n"),
            "{text}"
        );
    }
}
