//! The subjob executors: one file per subjob, behind one trait.
//!
//! An executor is idempotent: it observes the cluster, applies what is missing or has
//! drifted (server-side apply with the `federation-controller` field manager), and reports an
//! [`Observation`]. Running it twice does nothing the second time.
//!
//! What every executor does with objects sits beside them, one idea a file: `ownership` (labels,
//! selectors, whether an object is ours), `apply` (create-or-adopt, apply-if-drifted),
//! `deletion` (find by label and delete), `control_plane_namespace`.

mod apply;
pub mod cert;
pub mod chart;
mod control_plane_namespace;
mod deletion;
pub mod names;
pub mod network;
pub mod node;
mod ownership;
pub mod simulated;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::Timestamp;
use kube::{Client, Resource, ResourceExt};

use crate::api::{ChartProfile, FederationEnablement, FederationEnablementSpec, SubJobType};
use crate::chart_source::ChartDefaults;
use crate::job::{InstallFacts, Mode, Observation, RunFacts};

pub use control_plane_namespace::{
    NamespaceState, NamespaceUse, ensure_control_plane_namespace, shared_with, shared_with_another,
};

/// Errors of the executors' calls to the API server. The controller turns them into a
/// failed attempt with reason `ApiError`, naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {kind} {namespace}/{name}: {source}")]
    Api {
        action: &'static str,
        kind: String,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("{0}")]
    Certificate(String),
    #[error("{0}")]
    Serialization(#[from] serde_json::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The one way to build [`Error::Api`]: `action` on the `K` named `name` in `namespace`
    /// (empty for cluster-scoped objects and for lists, which name their label selector).
    pub fn api<K>(
        action: &'static str,
        namespace: &str,
        name: impl Into<String>,
        source: kube::Error,
    ) -> Self
    where
        K: Resource,
        K::DynamicType: Default,
    {
        Error::Api {
            action,
            kind: kind::<K>(),
            namespace: namespace.to_string(),
            name: name.into(),
            source,
        }
    }
}

/// The kind of `K` (`Secret`, `Service`).
fn kind<K>() -> String
where
    K: Resource,
    K::DynamicType: Default,
{
    K::kind(&K::DynamicType::default()).to_string()
}

/// A failed call on `object`.
pub fn api_error<K>(action: &'static str, object: &K, source: kube::Error) -> Error
where
    K: Resource,
    K::DynamicType: Default,
{
    let namespace = object.namespace().unwrap_or_default();
    Error::api::<K>(action, &namespace, object.name_any(), source)
}

/// Controller-wide settings the executors need.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Runner image used when `chart.runnerImage` is not set.
    pub default_runner_image: String,
}

/// Everything an executor knows about the enablement it works for and the command it carries
/// out. It holds no status: what the executors need of it comes in the command.
pub struct Context<'a> {
    pub enablement: &'a FederationEnablement,
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
    pub spec: &'a FederationEnablementSpec,
    /// The run this work belongs to.
    pub run: &'a RunFacts,
    pub settings: &'a Settings,
    /// When the attempt being carried out started, and when it times out.
    pub started_at: Timestamp,
    pub deadline: Timestamp,
    /// The control-plane namespace is missing or being deleted: nothing can run in it.
    pub control_plane_namespace_gone: bool,
    /// For a teardown step: what its subjob makes may exist (it ever started).
    pub work_may_exist: bool,
    /// Objects that name this enablement without its uid (made before the uid label existed)
    /// are taken as its own: the subjob had succeeded (a maintenance round), or, for a teardown
    /// step, had started in this run. See [`ownership::is_ours`].
    pub unmigrated_objects_are_ours: bool,
    pub now: Timestamp,
    /// Where the control plane runs and what the chart is installed with: from the spec for a
    /// run, from the recorded install for a teardown ([`Context::with_installed`]).
    install: InstallFacts,
}

impl<'a> Context<'a> {
    /// The context of a command's work: the run it belongs to, and when its attempt started and
    /// times out. A teardown step sets its own flags on top.
    pub fn for_attempt(
        enablement: &'a FederationEnablement,
        settings: &'a Settings,
        run: &'a RunFacts,
        started_at: Timestamp,
        deadline: Timestamp,
        now: Timestamp,
    ) -> Self {
        let mut ctx = Context::new(enablement, run, settings, now);
        ctx.started_at = started_at;
        ctx.deadline = deadline;
        ctx
    }

    /// The context of `enablement` for an attempt that starts `now`, with the spec's timeout
    /// (tests; the controller uses [`Context::for_attempt`]).
    pub fn new(
        enablement: &'a FederationEnablement,
        run: &'a RunFacts,
        settings: &'a Settings,
        now: Timestamp,
    ) -> Self {
        let meta = &enablement.metadata;
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        let timeout = crate::job::sub_job_timeout(&enablement.spec);
        Context {
            enablement,
            name: meta.name.as_deref().unwrap_or_default(),
            namespace,
            uid: meta.uid.as_deref().unwrap_or_default(),
            spec: &enablement.spec,
            run,
            settings,
            started_at: now,
            deadline: now
                .saturating_add(jiff::SignedDuration::try_from(timeout).unwrap_or_default())
                .unwrap_or(now),
            control_plane_namespace_gone: false,
            work_may_exist: true,
            unmigrated_objects_are_ours: false,
            now,
            install: InstallFacts::of_spec(
                &enablement.spec,
                meta.name.as_deref().unwrap_or_default(),
                namespace,
                &settings.default_runner_image,
            ),
        }
    }

    /// The same context for a teardown step: it works where the chart was installed, with the
    /// recorded release, runner image and installer role (the command's, not the live spec's,
    /// which may still change after the deletion).
    pub fn with_installed(mut self, installed: &InstallFacts) -> Self {
        self.install = installed.clone();
        self
    }

    pub fn control_plane_namespace(&self) -> &str {
        &self.install.control_plane_namespace
    }

    /// Every control-plane namespace the enablement used (the current one for a run): a
    /// teardown step deletes what its subjob made in each.
    pub fn namespaces(&self) -> &[String] {
        &self.install.namespaces
    }

    /// The Helm release.
    pub fn release(&self) -> &str {
        &self.install.release
    }

    /// The image the helm Jobs run: `chart.runnerImage`, or the controller's default (for a
    /// teardown, the recorded install's, within today's allowlist).
    pub fn runner_image(&self) -> &str {
        &self.install.runner_image
    }

    /// The ClusterRole the installer account is bound to.
    pub fn installer_cluster_role(&self) -> &str {
        &self.install.installer_cluster_role
    }

    /// The installer role is bound cluster-wide as well.
    pub fn cluster_scoped(&self) -> bool {
        self.install.cluster_scoped
    }

    /// Which chart profile this enablement installs (a teardown: installed).
    pub fn profile(&self) -> ChartProfile {
        self.install.profile
    }

    /// The control plane runs in the enablement's own namespace (owner references work).
    pub fn control_plane_is_local(&self) -> bool {
        self.control_plane_namespace() == self.namespace
    }

    pub fn job_uid(&self) -> &'a str {
        &self.run.job_uid
    }

    /// Whole seconds left before the attempt times out (at least one).
    pub fn remaining_seconds(&self) -> i64 {
        crate::job::elapsed_between(self.now, self.deadline)
            .as_secs()
            .max(1) as i64
    }
}

/// One subjob's executor, with the teardown step that undoes it.
pub trait SubJobExecutor: Send + Sync {
    fn sub_job(&self) -> SubJobType;

    /// Drives an attempt, or (after Success) checks and repairs what the subjob made.
    fn run<'a>(&'a self, ctx: &'a Context<'a>, mode: Mode) -> BoxFuture<'a, Result<Observation>>;

    /// Removes what the subjob made (its teardown step).
    fn teardown<'a>(
        &'a self,
        ctx: &'a Context<'a>,
        attempt: i32,
    ) -> BoxFuture<'a, Result<Observation>>;

    /// How often to look at an attempt in flight when no watch event comes first.
    fn poll_interval(&self) -> Duration {
        Duration::from_secs(15)
    }
}

/// The four executors, looked up by subjob.
#[derive(Clone)]
pub struct Executors {
    executors: Arc<BySubJob>,
    /// The real executors: the controller watches the core objects they make (the simulated
    /// ones make none).
    pub kubernetes: bool,
}

/// One executor per subjob, each in the field named after it.
struct BySubJob {
    create_node: Box<dyn SubJobExecutor>,
    create_network_resource: Box<dyn SubJobExecutor>,
    create_cert: Box<dyn SubJobExecutor>,
    install_federation_chart: Box<dyn SubJobExecutor>,
}

impl Executors {
    /// The real executors, working against the cluster; the chart executor fills what
    /// `spec.chart` leaves out from `chart_defaults`.
    pub fn kubernetes(client: Client, chart_defaults: ChartDefaults) -> Self {
        Executors {
            executors: Arc::new(BySubJob {
                create_node: Box::new(node::NodeExecutor::new(client.clone())),
                create_network_resource: Box::new(network::NetworkExecutor::new(client.clone())),
                create_cert: Box::new(cert::CertExecutor::new(client.clone())),
                install_federation_chart: Box::new(chart::ChartExecutor::new(
                    client,
                    chart_defaults,
                )),
            }),
            kubernetes: true,
        }
    }

    /// Executors that only pretend (demos, load and end-to-end tests of the controller).
    pub fn simulated(config: simulated::SimulatedConfig) -> Self {
        let config = Arc::new(config);
        let simulated = |sub_job| -> Box<dyn SubJobExecutor> {
            Box::new(simulated::SimulatedExecutor::new(sub_job, config.clone()))
        };
        Executors {
            executors: Arc::new(BySubJob {
                create_node: simulated(SubJobType::CreateNode),
                create_network_resource: simulated(SubJobType::CreateNetworkResource),
                create_cert: simulated(SubJobType::CreateCert),
                install_federation_chart: simulated(SubJobType::InstallFederationChart),
            }),
            kubernetes: false,
        }
    }

    pub fn get(&self, sub_job: SubJobType) -> &dyn SubJobExecutor {
        let executors = self.executors.as_ref();
        let executor = match sub_job {
            SubJobType::CreateNode => &executors.create_node,
            SubJobType::CreateNetworkResource => &executors.create_network_resource,
            SubJobType::CreateCert => &executors.create_cert,
            SubJobType::InstallFederationChart => &executors.install_federation_chart,
        };
        executor.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_each_answers_for_its_own_subjob(executors: &Executors) {
        for sub_job in SubJobType::ALL {
            assert_eq!(executors.get(sub_job).sub_job(), sub_job);
        }
    }

    #[test]
    fn every_simulated_executor_answers_for_its_own_subjob() {
        assert_each_answers_for_its_own_subjob(&Executors::simulated(
            simulated::SimulatedConfig::uniform(Duration::ZERO),
        ));
    }

    #[tokio::test]
    async fn every_kubernetes_executor_answers_for_its_own_subjob() {
        let unreachable = tower::service_fn(|_: http::Request<kube::client::Body>| async {
            Err::<http::Response<kube::client::Body>, _>(std::io::Error::other("no API server"))
        });
        assert_each_answers_for_its_own_subjob(&Executors::kubernetes(
            Client::new(unreachable, "default"),
            Default::default(),
        ));
    }
}
