//! Prometheus metrics of the controller and the HTTP API, served at `/metrics`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::{FederationEnablement, JobPhase};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubJobLabels {
    pub r#type: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteOnly {
    pub route: String,
}

/// 0.1 s to about 55 min: subjobs take seconds to minutes.
fn sub_job_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.1, 2.0, 16))
}

/// 0.1 ms to about 3 s.
fn http_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<ResultLabels, Counter>,
    pub reconcile_duration: Histogram,
    pub status_writes: Counter,
    pub sub_job_duration: Histograms<SubJobLabels>,
    pub enablements: Family<PhaseLabels, Gauge>,
    pub http_requests: Family<RouteLabels, Counter>,
    pub http_duration: Histograms<RouteOnly>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("federation");
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by result (success, error)",
            reconciles.clone(),
        );
        let reconcile_duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile takes",
            reconcile_duration.clone(),
        );
        let status_writes = Counter::default();
        registry.register(
            "status_writes",
            "Status patches sent to the API server",
            status_writes.clone(),
        );
        let sub_job_duration: Histograms<SubJobLabels> =
            Family::new_with_constructor(sub_job_histogram);
        registry.register(
            "subjob_duration_seconds",
            "Time from a subjob's start to its success or final failure, by type and outcome",
            sub_job_duration.clone(),
        );
        let enablements = Family::<PhaseLabels, Gauge>::default();
        registry.register(
            "enablements",
            "FederationEnablements by phase",
            enablements.clone(),
        );
        let http_requests = Family::<RouteLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            http_requests.clone(),
        );
        let http_duration: Histograms<RouteOnly> = Family::new_with_constructor(http_histogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            http_duration.clone(),
        );
        // Every series exists from the start, at zero, so rates and alerts work before the first event.
        for result in ["success", "error"] {
            drop(reconciles.get_or_create(&ResultLabels { result }));
        }
        for type_ in crate::api::SubJobType::ALL {
            for outcome in ["success", "failure"] {
                drop(sub_job_duration.get_or_create(&SubJobLabels {
                    r#type: type_.to_string(),
                    outcome,
                }));
            }
        }
        Metrics {
            registry,
            reconciles,
            reconcile_duration,
            status_writes,
            sub_job_duration,
            enablements,
            http_requests,
            http_duration,
        }
    }

    pub fn reconciled(&self, ok: bool, took: Duration) {
        let result = if ok { "success" } else { "error" };
        self.reconciles
            .get_or_create(&ResultLabels { result })
            .inc();
        self.reconcile_duration.observe(took.as_secs_f64());
    }

    pub fn sub_job_finished(&self, type_: &str, succeeded: bool, took: Duration) {
        let outcome = if succeeded { "success" } else { "failure" };
        self.sub_job_duration
            .get_or_create(&SubJobLabels {
                r#type: type_.to_string(),
                outcome,
            })
            .observe(took.as_secs_f64());
    }

    pub fn http_request(&self, route: &str, status: u16, took: Duration) {
        self.http_requests
            .get_or_create(&RouteLabels {
                route: route.to_string(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteOnly {
                route: route.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// The Prometheus text format, with the phase gauges counted from `enablements`.
    pub fn encode<'a>(
        &self,
        enablements: impl IntoIterator<Item = &'a FederationEnablement>,
    ) -> String {
        let phases = [
            ("Pending", JobPhase::Pending),
            ("Running", JobPhase::Running),
            ("Success", JobPhase::Success),
            ("Failed", JobPhase::Failed),
            ("Deleting", JobPhase::Deleting),
        ];
        let mut counts = [0i64; 5];
        for fe in enablements {
            let phase = fe
                .status
                .as_ref()
                .and_then(|s| s.phase)
                .unwrap_or(JobPhase::Pending);
            if let Some(i) = phases.iter().position(|(_, p)| *p == phase) {
                counts[i] += 1;
            }
        }
        for ((name, _), count) in phases.iter().zip(counts) {
            self.enablements
                .get_or_create(&PhaseLabels { phase: name })
                .set(count);
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
