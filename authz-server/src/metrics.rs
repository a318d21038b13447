//! Prometheus counters and latency histograms at `/metrics` (OpenMetrics text).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrantLabel {
    pub grant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabel {
    pub event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabel {
    pub limit: &'static str,
}

#[derive(Debug)]
pub struct Metrics {
    /// Requests refused by a budget, by which one (`http::rate_limit`, sign-in throttles, feed caps).
    pub limited: Family<LimitLabel, Counter>,
    registry: Registry,
    /// Audit events written, by kind (`gateway_common::audit`).
    pub audit_events: Family<EventLabel, Counter>,
    pub tokens_issued: Family<GrantLabel, Counter>,
    pub token_errors: Family<ErrorLabel, Counter>,
    pub registrations: Counter,
    pub revocations: Counter,
    pub sign_ins: Counter,
    pub failed_sign_ins: Counter,
    /// Per-endpoint latency (`authz_http_request_duration_seconds`).
    pub latency: gateway_common::http_metrics::EndpointLatency,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("authz");
        let tokens_issued = Family::<GrantLabel, Counter>::default();
        let token_errors = Family::<ErrorLabel, Counter>::default();
        let registrations = Counter::default();
        let revocations = Counter::default();
        let sign_ins = Counter::default();
        let failed_sign_ins = Counter::default();
        let audit_events = Family::<EventLabel, Counter>::default();
        let limited = Family::<LimitLabel, Counter>::default();
        registry.register(
            "limited_requests",
            "Requests refused by a budget, by limit",
            limited.clone(),
        );
        registry.register(
            "audit_events",
            "Security audit events, by kind",
            audit_events.clone(),
        );
        registry.register(
            "tokens_issued",
            "Access tokens issued, by grant type",
            tokens_issued.clone(),
        );
        registry.register(
            "token_errors",
            "Token endpoint errors, by OAuth error code",
            token_errors.clone(),
        );
        registry.register(
            "registrations",
            "Clients registered (RFC 7591)",
            registrations.clone(),
        );
        registry.register("revocations", "Access tokens revoked", revocations.clone());
        registry.register("sign_ins", "Successful sign-ins", sign_ins.clone());
        registry.register(
            "failed_sign_ins",
            "Failed sign-in attempts",
            failed_sign_ins.clone(),
        );
        let latency = gateway_common::http_metrics::EndpointLatency::default();
        latency.register(&mut registry);
        Self {
            latency,
            limited,
            registry,
            audit_events,
            tokens_issued,
            token_errors,
            registrations,
            revocations,
            sign_ins,
            failed_sign_ins,
        }
    }

    pub fn token_issued(&self, grant: &str) {
        self.tokens_issued
            .get_or_create(&GrantLabel {
                grant: grant.to_string(),
            })
            .inc();
    }

    pub fn token_error(&self, error: &str) {
        self.token_errors
            .get_or_create(&ErrorLabel {
                error: error.to_string(),
            })
            .inc();
    }

    pub fn limited(&self, limit: &'static str) {
        self.limited.get_or_create(&LimitLabel { limit }).inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
