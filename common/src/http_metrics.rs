//! Per-endpoint latency histograms for the HTTP services (authz-server,
//! bridge; the verifier's `/verify` has its own, cheaper one), one
//! implementation with prometheus-client.
//!
//! The endpoint label is the route pattern (`/register/{client_id}`), never
//! the raw path, so ids and tokens cannot make labels.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The metric's name under the service's registry prefix.
pub const NAME: &str = "http_request_duration_seconds";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    pub endpoint: String,
}

fn buckets() -> Histogram {
    // 100 µs .. 10 s: token issuance with argon2 client secrets, bridged calls.
    Histogram::new([
        0.000_1, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
    ])
}

/// Time to the response head, per endpoint. Cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct EndpointLatency(Family<EndpointLabel, Histogram, fn() -> Histogram>);

impl Default for EndpointLatency {
    fn default() -> Self {
        Self(Family::new_with_constructor(buckets))
    }
}

impl EndpointLatency {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            NAME,
            "Time from request to response head, by endpoint (route pattern)",
            self.0.clone(),
        );
    }

    pub fn observe(&self, endpoint: &str, seconds: f64) {
        let label = EndpointLabel {
            endpoint: endpoint.to_string(),
        };
        self.0.get_or_create(&label).observe(seconds);
    }

    /// Observes a response `started` earlier, labelled with its route pattern.
    pub fn observe_response<B>(
        &self,
        res: &Result<ServiceResponse<B>, actix_web::Error>,
        started: Instant,
    ) {
        let endpoint = match res {
            Ok(r) => r.request().match_pattern(),
            Err(_) => None,
        };
        self.observe(
            endpoint.as_deref().unwrap_or("unmatched"),
            started.elapsed().as_secs_f64(),
        );
    }
}

/// Middleware (`actix_web::middleware::from_fn(record)`) observing into the
/// app's `web::Data<EndpointLatency>`.
pub async fn record<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let latency = req.app_data::<web::Data<EndpointLatency>>().cloned();
    let started = Instant::now();
    let res = next.call(req).await;
    if let Some(l) = latency {
        l.observe_response(&res, started);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::{middleware::from_fn, test, App, HttpResponse};

    #[actix_web::test]
    async fn responses_are_observed_by_route_pattern_never_by_path() {
        let latency = EndpointLatency::default();
        let mut registry = Registry::default();
        latency.register(&mut registry);
        let app = test::init_service(
            App::new()
                .app_data(web::Data::new(latency.clone()))
                .wrap(from_fn(record))
                .route("/register/{client_id}", web::get().to(HttpResponse::Ok)),
        )
        .await;
        for path in ["/register/a", "/register/b", "/elsewhere"] {
            let req = test::TestRequest::get().uri(path).to_request();
            let _ = test::call_service(&app, req).await;
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(&format!(
                "{NAME}_count{{endpoint=\"/register/{{client_id}}\"}} 2\n"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("{NAME}_count{{endpoint=\"unmatched\"}} 1\n")),
            "{text}"
        );
        assert!(!text.contains("/register/a"), "{text}");
    }
}
