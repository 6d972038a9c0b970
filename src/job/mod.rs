//! The job state machine: a pure function of (status, observations, now).
//!
//! The controller calls [`decide`] (or [`decide_teardown`]) with the current status and what
//! the executors observed; it returns the next status, the [`Command`]s to carry out, and when
//! to be called again. Every decision lives here: namespace readiness, when a run starts, is
//! retried or times out, whether a deletion has anything to tear down, and the requeue policy.
//! No I/O and no clock of its own: everything it needs is an argument.

mod conditions;
mod phase;
pub mod reasons;
mod requeue;
mod run;
mod step;
mod teardown;

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::api::{
    ChartProfile, CreatedRecord, FederationEnablementSpec, FederationEnablementStatus, StepStatus,
    SubJobPhase, SubJobType, TeardownStepType,
};
pub use conditions::{
    CONDITION_DEGRADED, CONDITION_PROGRESSING, CONDITION_READY, MaintenanceRound,
};
pub use requeue::{
    DEFAULT_POLL_INTERVAL, DUPLICATE_RECHECK_INTERVAL, MAINTENANCE_INTERVAL,
    NAMESPACE_LABEL_RECHECK, NAMESPACE_TERMINATING_RECHECK, PollIntervals, TEARDOWN_POLL_CAP,
};
pub use run::{JobInput, NamespaceState, decide};
pub use step::{BACKOFF_BASE, BACKOFF_CAP, backoff_delay};
pub use teardown::{TeardownInput, decide_teardown, nothing_to_tear_down};

/// What an executor saw when it ran for a subjob (or a teardown step).
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// The subjob's objects exist and are ready.
    Succeeded {
        message: Option<String>,
        extend_param: BTreeMap<String, String>,
    },
    /// Work is under way; the reason says what it waits for.
    Progressing {
        reason: String,
        message: String,
        extend_param: BTreeMap<String, String>,
    },
    /// This attempt failed.
    Failed { reason: String, message: String },
}

impl Observation {
    pub fn succeeded() -> Self {
        Observation::Succeeded {
            message: None,
            extend_param: BTreeMap::new(),
        }
    }

    /// Succeeded, saying what was found.
    pub fn succeeded_with(message: impl Into<String>) -> Self {
        Observation::Succeeded {
            message: Some(message.into()),
            extend_param: BTreeMap::new(),
        }
    }

    /// The same observation, with values to keep in the subjob's `extendParam`.
    pub fn with_extend_param(mut self, values: BTreeMap<String, String>) -> Self {
        match &mut self {
            Observation::Succeeded { extend_param, .. }
            | Observation::Progressing { extend_param, .. } => extend_param.extend(values),
            Observation::Failed { .. } => {}
        }
        self
    }

    pub fn progressing(reason: &str, message: impl Into<String>) -> Self {
        Observation::Progressing {
            reason: reason.to_string(),
            message: message.into(),
            extend_param: BTreeMap::new(),
        }
    }

    pub fn failed(reason: &str, message: impl Into<String>) -> Self {
        Observation::Failed {
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// Why the job may not run at all (checked before anything is created).
#[derive(Clone, Debug, PartialEq)]
pub struct Blocked {
    pub reason: &'static str,
    pub message: String,
}

/// How an executor should run for a subjob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Drive attempt number `n` (1-based) of a running subjob.
    Attempt(i32),
    /// The job succeeded: check the subjob's objects and repair drift.
    Maintain,
}

/// What an executor knows of the run it works for. The state machine takes it from the status,
/// so that no executor reads the status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunFacts {
    /// The job run's uid (the teardown's own uid for a teardown step): it names the helm Jobs.
    pub job_uid: String,
    /// The hash of the spec the run is for, labelled on what it creates.
    pub spec_hash: String,
    /// `host:port` of the federation API server, once CreateNetworkResource found it.
    pub endpoint: Option<String>,
    /// The chart version InstallFederationChart pinned when it started in this run.
    pub chart_version: Option<String>,
    /// InstallFederationChart has succeeded for this enablement before (`status.chartVersion`):
    /// a release without an owner label, made before releases were labelled, is its own.
    pub installed_before: bool,
}

impl RunFacts {
    fn of(status: &FederationEnablementStatus, job_uid: Option<&str>) -> Self {
        RunFacts {
            job_uid: job_uid
                .or(status.job_uid.as_deref())
                .unwrap_or_default()
                .to_string(),
            spec_hash: status.spec_hash.clone().unwrap_or_default(),
            endpoint: status.endpoint().map(str::to_string),
            chart_version: status.pinned_chart_version().map(str::to_string),
            installed_before: status.chart_version.is_some(),
        }
    }
}

/// Where and with what the chart is installed: what a run installs with (from the spec and the
/// controller's defaults), or what a teardown undoes with (from `status.created`, checked again
/// against today's allowlists by the controller).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstallFacts {
    /// Where the control plane runs (the namespace a teardown step works in).
    pub control_plane_namespace: String,
    /// Every control-plane namespace used, this one included: a teardown deletes what it made
    /// in each.
    pub namespaces: Vec<String>,
    pub release: String,
    /// Where the release is; the control-plane namespace of the run that installed it.
    pub release_namespace: String,
    pub runner_image: String,
    pub installer_cluster_role: String,
    pub cluster_scoped: bool,
    /// The chart profile: what the install gets, and what its teardown cleans up after.
    pub profile: ChartProfile,
}

impl InstallFacts {
    /// What a run of `spec` (of the enablement `name` in `own_namespace`) installs with.
    pub fn of_spec(
        spec: &FederationEnablementSpec,
        name: &str,
        own_namespace: &str,
        default_runner_image: &str,
    ) -> Self {
        let control_plane_namespace = spec.control_plane_namespace(own_namespace).into_owned();
        InstallFacts {
            release: spec.release_name(name).into_owned(),
            release_namespace: control_plane_namespace.clone(),
            namespaces: vec![control_plane_namespace.clone()],
            control_plane_namespace,
            runner_image: spec
                .chart
                .runner_image
                .clone()
                .unwrap_or_else(|| default_runner_image.to_string()),
            installer_cluster_role: spec.chart.installer_cluster_role.clone(),
            cluster_scoped: spec.chart.cluster_scoped,
            profile: spec.chart.resolved_profile(),
        }
    }

    /// The recorded facts, each one the record lacks taken from `live` (a status written
    /// before the record existed).
    pub fn recorded_or(created: Option<&CreatedRecord>, live: InstallFacts) -> Self {
        let Some(created) = created else {
            return live;
        };
        let control_plane_namespace = created
            .control_plane_namespace
            .clone()
            .unwrap_or(live.control_plane_namespace);
        let release_namespace = created
            .release_namespace
            .clone()
            .unwrap_or_else(|| control_plane_namespace.clone());
        let mut namespaces = created.namespaces.clone();
        for namespace in [&control_plane_namespace, &release_namespace] {
            if !namespaces.contains(namespace) {
                namespaces.push(namespace.clone());
            }
        }
        InstallFacts {
            release: created.release.clone().unwrap_or(live.release),
            release_namespace,
            namespaces,
            control_plane_namespace,
            runner_image: created.runner_image.clone().unwrap_or(live.runner_image),
            installer_cluster_role: created
                .installer_cluster_role
                .clone()
                .unwrap_or(live.installer_cluster_role),
            cluster_scoped: if created.release.is_some() {
                created.cluster_scoped
            } else {
                live.cluster_scoped
            },
            profile: created.profile.unwrap_or(live.profile),
        }
    }
}

/// What the controller carries out for the state machine. Each command carries what its
/// executor needs, so no executor decides anything from the status.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Create (or find) the control-plane namespace before any subjob starts; the outcome comes
    /// back as [`NamespaceState`] in the next decision's input.
    EnsureNamespace,
    /// Run a subjob's executor for an attempt or a maintenance check. An attempt not finished by
    /// `deadline` has timed out.
    Run {
        sub_job: SubJobType,
        mode: Mode,
        started_at: Timestamp,
        deadline: Timestamp,
        facts: RunFacts,
    },
    /// Run a teardown step's executor.
    Undo {
        step: TeardownStepType,
        attempt: i32,
        started_at: Timestamp,
        deadline: Timestamp,
        facts: RunFacts,
        /// The control-plane namespace is missing or being deleted: nothing can run in it.
        control_plane_namespace_gone: bool,
        /// The step's subjob ever started (`status.created`), so something it makes (a helm
        /// release, say) may exist.
        work_may_exist: bool,
        /// Where and with what to undo: the recorded install, within today's allowlists.
        installed: InstallFacts,
    },
}

/// What a command acts on: the drive loop runs each at most once per reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Namespace,
    SubJob(SubJobType),
    TeardownStep(TeardownStepType),
}

impl Command {
    pub fn target(&self) -> Target {
        match self {
            Command::EnsureNamespace => Target::Namespace,
            Command::Run { sub_job, .. } => Target::SubJob(*sub_job),
            Command::Undo { step, .. } => Target::TeardownStep(*step),
        }
    }

    /// Commands are carried out in this order: the namespace first, then the DAG's.
    fn order(&self) -> Target {
        self.target()
    }
}

/// A change worth an event.
#[derive(Clone, Debug, PartialEq)]
pub enum Transition {
    SubJobStarted(SubJobType),
    SubJobSucceeded(SubJobType),
    SubJobFailed {
        sub_job: SubJobType,
        reason: String,
        message: String,
    },
    JobSucceeded,
    JobFailed {
        reason: String,
        message: String,
    },
    TeardownStarted,
    TeardownSucceeded,
}

/// What [`decide`] and [`decide_teardown`] return.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub status: FederationEnablementStatus,
    /// What to carry out now, in order.
    pub commands: Vec<Command>,
    /// Reconcile again after this long at the latest (None: on the next change only).
    pub requeue_after: Option<Duration>,
    pub transitions: Vec<Transition>,
    /// The teardown is over (or there was nothing to tear down): the finalizer may go.
    pub finished: bool,
}

/// The time an attempt may take (`subJobTimeoutSeconds`, at least a second).
pub fn sub_job_timeout(spec: &FederationEnablementSpec) -> Duration {
    Duration::from_secs(spec.sub_job_timeout_seconds.max(1) as u64)
}

/// `now`, never earlier than the last time recorded in `current`: recorded times never run
/// backwards, even if this clock is behind the last writer's.
fn monotonic_now(now: Timestamp, current: &FederationEnablementStatus) -> Timestamp {
    status_now(now).max(current.update_time.as_ref().map_or(Timestamp::MIN, |t| t.0))
}

/// Hash of the spec without `suspend`: a change starts a new job run.
pub fn spec_hash(spec: &FederationEnablementSpec) -> String {
    let mut value = serde_json::to_value(spec).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("suspend");
    }
    // serde_json's Map is ordered by key, so equal specs serialize identically.
    let digest = Sha256::digest(value.to_string().as_bytes());
    hex::encode(&digest[..8])
}

/// `now` truncated to what a status time keeps (microseconds), so a stored time reads back equal.
pub fn status_now(now: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now)
}

pub(crate) fn joined_running<T: std::fmt::Display>(steps: &[StepStatus<T>]) -> Option<String> {
    let running: Vec<String> = steps
        .iter()
        .filter(|s| s.phase == SubJobPhase::Running)
        .map(|s| s.type_.to_string())
        .collect();
    (!running.is_empty()).then(|| running.join(","))
}

/// Time from `from` to `to` (zero when `to` is earlier).
pub fn elapsed_between(from: Timestamp, to: Timestamp) -> Duration {
    duration_until(from, to)
}

pub(crate) fn duration_until(now: Timestamp, at: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests;
