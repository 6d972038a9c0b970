//! Fixtures shared by the integration tests.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use federation_controller::api::FederationEnablement;
use federation_controller::chart_source::ChartDefaults;
use federation_controller::controller::{self, Clock, Context};
use federation_controller::http::{
    AppState, Authorizer, ConnectionLimits, FederationCache, ServeConfig, router, serve_with_limits,
};
use federation_controller::metrics::Metrics;
use federation_controller::policy::{DEFAULT_RUNNER_IMAGE, Policy};
use federation_controller::subjobs::Executors;
use jiff::{SignedDuration, Timestamp};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use serde_json::{Value, json};

pub use federation_controller::testing::{Call, FakeApiServer};

pub const NS: &str = "team-a";
pub const NAME: &str = "fleet-a";
pub const FE_PATH: &str =
    "/apis/federation.fleet.dev/v1alpha1/namespaces/team-a/federationenablements/fleet-a";

/// The HTTP API's state over `cache`, checked by `auth`, on a manual clock.
pub fn app_state(cache: FederationCache, auth: Authorizer) -> Arc<AppState> {
    Arc::new(AppState {
        cache,
        auth,
        metrics: Arc::new(Metrics::new()),
        clock: Arc::new(ManualClock::new()),
        health: Default::default(),
    })
}

/// Serves the router of `state` on `addr` (HTTPS with `tls`: certificate and key files) within
/// `limits`, until the test ends.
pub fn spawn_server(
    addr: std::net::SocketAddr,
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    limits: ConnectionLimits,
    state: Arc<AppState>,
) {
    let config = ServeConfig {
        addr,
        tls,
        reload_every: std::time::Duration::from_secs(3600),
    };
    tokio::spawn(serve_with_limits(
        config,
        limits,
        router(state),
        std::future::pending(),
    ));
}

/// A clock the test moves by hand.
#[derive(Clone)]
pub struct ManualClock(Arc<Mutex<Timestamp>>);

impl ManualClock {
    pub fn new() -> Self {
        ManualClock(Arc::new(Mutex::new(
            "2026-01-15T08:00:00Z".parse().expect("time"),
        )))
    }

    pub fn advance(&self, seconds: i64) {
        let mut now = self.0.lock().expect("lock");
        *now += SignedDuration::from_secs(seconds);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().expect("lock")
    }
}

pub fn policy() -> Policy {
    Policy {
        allowed_runner_images: vec![DEFAULT_RUNNER_IMAGE.to_string()],
        allowed_installer_roles: vec!["federation-chart-installer".to_string()],
        allow_cluster_scoped_charts: false,
        allow_foreign_control_plane_namespaces: false,
        // Every repository the tests name: a repository outside the allowlist is refused.
        allowed_chart_repositories: vec![
            "oci://registry.example/charts".to_string(),
            "https://charts.example".to_string(),
        ],
        chart_defaults: ChartDefaults::default(),
        watch_namespace: None,
        controller_namespace: Some("federation-controller".to_string()),
        allowed_service_annotation_prefixes: Vec::new(),
        allow_elb_id: true,
        fleet_entitlement: Default::default(),
    }
}

pub fn enablement_json(name: &str, namespace: &str, fleet: &str, extra_spec: Value) -> Value {
    let mut spec = json!({
        "clusterGroupID": fleet,
        "network": {"type": "LoadBalancer", "port": 5443, "elbID": "69694819-67dc-44ac-ab6e-9b18087c5c4c"},
        "chart": {"repository": "oci://registry.example/charts", "name": "federation", "version": "1.2.3"},
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    json!({
        "apiVersion": "federation.fleet.dev/v1alpha1",
        "kind": "FederationEnablement",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    })
}

pub fn ready_node(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": format!("10.0.0.{}", name.len())}],
        },
    })
}

/// A controller context on the fake server, with a manual clock and counted uids.
pub struct Harness {
    pub server: FakeApiServer,
    pub clock: ManualClock,
    pub ctx: Arc<Context>,
}

impl Harness {
    pub fn new(policy: Policy) -> Self {
        Self::with_server(FakeApiServer::new(), policy)
    }

    /// A new controller process on an existing cluster.
    pub fn with_server(server: FakeApiServer, policy: Policy) -> Self {
        let chart_defaults = policy.chart_defaults.clone();
        Self::build(server, policy, move |client| {
            Executors::kubernetes(client, chart_defaults)
        })
    }

    pub fn with_executors(
        policy: Policy,
        executors: impl FnOnce(kube::Client) -> Executors,
    ) -> Self {
        Self::build(FakeApiServer::new(), policy, executors)
    }

    fn build(
        server: FakeApiServer,
        policy: Policy,
        executors: impl FnOnce(kube::Client) -> Executors,
    ) -> Self {
        let client = server.client();
        let cache = FederationCache::new();
        let clock = ManualClock::new();
        let ids = Arc::new(AtomicU64::new(0));
        let mut ctx = Context::new(client.clone(), executors(client), policy, cache);
        ctx.recorder = None;
        ctx.clock = Arc::new(clock.clone());
        ctx.new_uid = Arc::new(move || {
            format!(
                "00000000-0000-4000-9000-{:012}",
                ids.fetch_add(1, Ordering::SeqCst) + 1
            )
        });
        Harness {
            server,
            clock,
            ctx: Arc::new(ctx),
        }
    }

    pub fn store(&self) -> Store<FederationEnablement> {
        self.ctx.cache.store()
    }

    /// Makes the controller's cache hold exactly these enablements (as its watch would).
    pub fn sync_store(&self, paths: &[&str]) {
        let objects: Vec<FederationEnablement> = paths
            .iter()
            .filter_map(|p| self.server.get(p))
            .map(|v| serde_json::from_value(v).expect("enablement"))
            .collect();
        let cache = &self.ctx.cache;
        cache.apply(watcher::Event::Init);
        for object in objects {
            cache.apply(watcher::Event::InitApply(object));
        }
        cache.apply(watcher::Event::InitDone);
    }

    pub fn enablement(&self, path: &str) -> Option<FederationEnablement> {
        self.server
            .get(path)
            .map(|v| serde_json::from_value(v).expect("enablement"))
    }

    /// One reconcile of the enablement at `path`, as the controller runs it.
    pub async fn reconcile(&self, path: &str) -> kube::runtime::controller::Action {
        let fe = self.enablement(path).expect("enablement exists");
        controller::reconcile(Arc::new(fe), self.ctx.clone())
            .await
            .expect("reconcile succeeds")
    }

    pub fn status(&self, path: &str) -> Value {
        self.server.get(path).expect("enablement")["status"].clone()
    }

    pub fn sub_job(&self, path: &str, type_: &str) -> Value {
        self.status(path)["subJobs"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["type"] == type_))
            .cloned()
            .unwrap_or(Value::Null)
    }
}

/// The lines (`METHOD path`) of the calls that wrote something.
pub fn writes(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.is_write())
        .map(Call::line)
        .collect()
}

pub fn lines(calls: &[Call]) -> Vec<String> {
    calls.iter().map(Call::line).collect()
}

/// Marks the first Job in `jobs` (a collection path ending in `/`) whose name starts with
/// `prefix` as finished with `condition` (`Complete` or `Failed`) now; returns its path.
pub fn finish_job_in(h: &Harness, jobs: &str, prefix: &str, condition: &str) -> String {
    let path = h
        .server
        .paths(jobs)
        .into_iter()
        .find(|p| p.starts_with(&format!("{jobs}{prefix}")))
        .unwrap_or_else(|| panic!("a Job {prefix}* exists in {jobs}"));
    let now = federation_controller::clock::Clock::now(&h.clock).strftime("%Y-%m-%dT%H:%M:%SZ");
    h.server.modify(&path, |job| {
        job["status"] = json!({"conditions": [{"type": condition, "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastTransitionTime": now.to_string()}]});
    });
    path
}

/// Reconciles the enablement at `path` until its teardown removed the finalizer (or gave up
/// after six rounds).
pub async fn reconcile_until_gone(h: &Harness, path: &str) {
    for _ in 0..6 {
        if h.server.get(path).is_none() {
            break;
        }
        h.reconcile(path).await;
    }
}

/// Runs fleet-a's job to Success: its load balancer (the Service at `service`) gets an
/// address, and its install Job (in `jobs`) completes.
pub async fn run_to_success_in(h: &Harness, service: &str, jobs: &str) {
    h.reconcile(FE_PATH).await;
    h.server.modify(service, |svc| {
        svc["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}});
    });
    h.reconcile(FE_PATH).await;
    finish_job_in(h, jobs, "fleet-a-install-", "Complete");
    h.reconcile(FE_PATH).await;
    let status = h.status(FE_PATH);
    assert_eq!(status["phase"], "Success", "{status:#}");
}
