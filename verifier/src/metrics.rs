//! Prometheus metrics: decisions by reason, latency, cache hits and misses,
//! key refreshes, revocation feed lag.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::decision::Reason;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabel {
    decision: &'static str,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Indexed by [`Reason::index`], resolved once so a decision costs one atomic add.
    decisions: Vec<Counter>,
    latency: Histogram,
    pub cache_hits: Counter,
    pub cache_misses: Counter,
    pub negative_hits: Counter,
    pub key_refresh_ok: Counter,
    pub key_refresh_failed: Counter,
    pub feed_reconnects: Counter,
    pub feed_lag_seconds: Gauge<f64, AtomicU64>,
    pub revoked_ids: Gauge,
    pub keys_loaded: Gauge,
    /// Requests with an unknown `kid` decided again after a JWKS refetch.
    pub unknown_kid_refetches: Counter,
    /// Tool-policy decisions on the header path: [allow, deny].
    /// allow, deny. Counted on every MCP call with a tool policy, so without
    /// a locked instruction ([`PerThreadCounter`]).
    tool_decisions: Arc<[PerThreadCounter; 2]>,
    /// `TOOL_POLICY_FILE` reloads: [ok, error].
    tool_reloads: [Counter; 2],
    /// Audit lines for denied verifies: [written, dropped by the rate limit].
    audit_denials: [Counter; 2],
    /// False only in [`Metrics::not_recording`].
    recording: bool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mcp_verifier");
        let decisions_family = Family::<ReasonLabel, Counter>::default();
        let decisions = Reason::ALL
            .iter()
            .map(|r| {
                decisions_family
                    .get_or_create(&ReasonLabel { reason: r.as_str() })
                    .clone()
            })
            .collect();
        registry.register("decisions", "Verify decisions by reason", decisions_family);
        // 10 µs .. 0.1 s
        let latency = Histogram::new([
            0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01,
            0.025, 0.1,
        ]);
        registry.register(
            "verify_duration_seconds",
            "Time to decide a /verify request",
            latency.clone(),
        );
        let cache = Family::<ResultLabel, Counter>::default();
        let cache_hits = cache.get_or_create(&ResultLabel { result: "hit" }).clone();
        let cache_misses = cache.get_or_create(&ResultLabel { result: "miss" }).clone();
        // A token refused before, refused again without a signature check (negative.rs).
        let negative_hits = cache
            .get_or_create(&ResultLabel {
                result: "refused_before",
            })
            .clone();
        registry.register("token_cache_lookups", "Verified-token cache lookups", cache);
        let refresh = Family::<ResultLabel, Counter>::default();
        let key_refresh_ok = refresh.get_or_create(&ResultLabel { result: "ok" }).clone();
        let key_refresh_failed = refresh
            .get_or_create(&ResultLabel { result: "error" })
            .clone();
        registry.register("key_refreshes", "JWKS fetches", refresh);
        let feed_reconnects = Counter::default();
        registry.register(
            "revocation_feed_reconnects",
            "Times the revocation feed was (re)connected",
            feed_reconnects.clone(),
        );
        let feed_lag_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "revocation_feed_lag_seconds",
            "Seconds since the revocation feed was last heard from",
            feed_lag_seconds.clone(),
        );
        let revoked_ids = Gauge::default();
        registry.register(
            "revoked_ids",
            "Revoked token ids held in memory",
            revoked_ids.clone(),
        );
        let keys_loaded = Gauge::default();
        registry.register("keys", "Verification keys loaded", keys_loaded.clone());
        let unknown_kid_refetches = Counter::default();
        registry.register(
            "unknown_kid_refetches",
            "Requests whose unknown kid waited for a JWKS refetch and were decided again",
            unknown_kid_refetches.clone(),
        );
        let tool_decisions = Arc::new([PerThreadCounter::default(), PerThreadCounter::default()]);
        registry.register_collector(Box::new(ToolDecisions(Arc::clone(&tool_decisions))));
        let reloads = Family::<ResultLabel, Counter>::default();
        // One statement per get_or_create: the guard it returns lives to the
        // end of its statement, and a second call in the same one deadlocks.
        let first = reloads.get_or_create(&ResultLabel { result: "ok" }).clone();
        let second = reloads
            .get_or_create(&ResultLabel { result: "error" })
            .clone();
        let tool_reloads = [first, second];
        registry.register(
            "tool_policy_reloads",
            "TOOL_POLICY_FILE changes seen (error: the previous policy stayed)",
            reloads,
        );
        let audit = Family::<ResultLabel, Counter>::default();
        // One statement per get_or_create: the guard it returns lives to the
        // end of its statement, and a second call in the same one deadlocks.
        let first = audit
            .get_or_create(&ResultLabel { result: "written" })
            .clone();
        let second = audit
            .get_or_create(&ResultLabel {
                result: "suppressed",
            })
            .clone();
        let audit_denials = [first, second];
        registry.register(
            "audit_verify_denied",
            "Audit events for denied verifies (suppressed: over the per-second limit)",
            audit,
        );
        Self {
            recording: true,
            registry,
            audit_denials,
            tool_decisions,
            tool_reloads,
            decisions,
            latency,
            cache_hits,
            cache_misses,
            negative_hits,
            key_refresh_ok,
            key_refresh_failed,
            feed_reconnects,
            feed_lag_seconds,
            revoked_ids,
            keys_loaded,
            unknown_kid_refetches,
        }
    }

    /// Metrics that record nothing on the request path (no clock read, no
    /// counter): only for measuring what recording costs a cached `/verify`
    /// (`verifier/examples/bench_verify.rs --metrics-cost`). Not a setting: a
    /// verifier always records.
    #[doc(hidden)]
    pub fn not_recording() -> Self {
        Self {
            recording: false,
            ..Self::new()
        }
    }

    /// The start of a decision's timing; `None` when not recording.
    #[inline]
    pub fn start(&self) -> Option<Instant> {
        self.recording.then(Instant::now)
    }

    /// Counts a decision and its latency since [`Metrics::start`].
    pub fn record(&self, reason: Reason, started: Option<Instant>) {
        let Some(started) = started else {
            return;
        };
        if let Some(c) = self.decisions.get(reason.index()) {
            c.inc();
        }
        self.latency.observe(started.elapsed().as_secs_f64());
    }

    /// A verified-token cache hit.
    #[inline]
    pub fn cache_hit(&self) {
        if self.recording {
            self.cache_hits.inc();
        }
    }

    pub fn record_tool_reload(&self, ok: bool) {
        self.tool_reloads[usize::from(!ok)].inc();
    }

    pub fn record_audit_denial(&self, written: bool) {
        self.audit_denials[usize::from(!written)].inc();
    }

    pub fn record_tool(&self, allowed: bool) {
        self.tool_decisions[usize::from(!allowed)].inc();
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// A counter that a thread increments with a plain load and store of its own
/// slot — no locked read-modify-write, which costs about a third of the tool
/// policy's time on the header path (issue 11: ≤ 5% of a cached verify). A
/// slot has one writer, so nothing is lost; a scrape sums the slots. The
/// first `SLOTS` threads of the process get slots (the server's workers live
/// as long as it does); any later thread counts with an atomic add.
#[derive(Debug)]
pub struct PerThreadCounter {
    slots: [Slot; SLOTS],
    shared: AtomicU64,
}

impl Default for PerThreadCounter {
    fn default() -> Self {
        Self {
            slots: std::array::from_fn(|_| Slot::default()),
            shared: AtomicU64::new(0),
        }
    }
}

const SLOTS: usize = 64;

/// One cache line each, so two workers never write the same line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot(AtomicU64);

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static THREAD_SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn thread_slot() -> usize {
    THREAD_SLOT.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT_SLOT.fetch_add(1, Ordering::Relaxed));
        }
        s.get()
    })
}

impl PerThreadCounter {
    pub fn inc(&self) {
        match self.slots.get(thread_slot()) {
            // Only this thread writes this slot.
            Some(Slot(n)) => n.store(n.load(Ordering::Relaxed) + 1, Ordering::Relaxed),
            None => {
                self.shared.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn get(&self) -> u64 {
        self.slots
            .iter()
            .map(|Slot(n)| n.load(Ordering::Relaxed))
            .sum::<u64>()
            + self.shared.load(Ordering::Relaxed)
    }
}

/// `mcp_verifier_tool_policy_decisions_total{decision}` from the per-thread counters.
#[derive(Debug)]
struct ToolDecisions(Arc<[PerThreadCounter; 2]>);

impl Collector for ToolDecisions {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "tool_policy_decisions",
            "Tool-policy decisions from Mcp-Method/Mcp-Name headers",
            None,
            MetricType::Counter,
        )?;
        for (decision, counter) in ["allow", "deny"].into_iter().zip(self.0.iter()) {
            let label = DecisionLabel { decision };
            let metric = family.encode_family(&label)?;
            ConstCounter::new(counter.get()).encode(metric)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod per_thread_tests {
    use super::PerThreadCounter;
    use std::sync::Arc;

    #[test]
    fn increments_from_many_threads_are_all_counted() {
        let c = Arc::new(PerThreadCounter::default());
        // More threads than slots: the late ones share the atomic.
        let handles: Vec<_> = (0..80)
            .map(|_| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.inc();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(c.get(), 80_000);
    }
}
