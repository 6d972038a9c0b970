//! The job run: which subjobs to start, drive, maintain or time out, from the status, what the
//! executors observed and the clock.
//!
//! [`decide`] goes through five named steps: start or retry a run, maintain after success,
//! advance what is in flight, start what is ready, then settle the job and stamp the times.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::conditions::{self, MaintenanceRound};
use super::requeue::{self, PollIntervals};
use super::step::{self, Applied, micro};
use super::{
    Blocked, Command, Decision, InstallFacts, Mode, Observation, RunFacts, Transition,
    monotonic_now, spec_hash,
};
use crate::api::{
    EXTEND_PARAM_CHART_VERSION, EXTEND_PARAM_KUBECONFIG_SECRET, FederationEnablementSpec,
    FederationEnablementStatus, JobPhase, SubJobPhase, SubJobType,
};

/// What the controller knows of the control-plane namespace before a subjob may start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamespaceState {
    /// It exists (or no namespace needs creating: the enablement's own, or simulated executors).
    Ready,
    /// Not looked at in this reconcile: a job that has started ensured it already; one that has
    /// not asks for [`Command::EnsureNamespace`] first.
    Unchecked,
    /// Being deleted: nothing starts until it is gone and created afresh.
    Terminating,
    /// A foreign namespace that exists without `federation.fleet.dev/control-plane-namespace:
    /// "true"`: the job fails `NotAllowed` and nothing starts until it is labelled.
    Unlabelled,
    /// The Karmada profile's namespace exists and this enablement did not create it: the job
    /// fails `NotAllowed`. Its chart's hook account may do anything, so whoever may run pods in
    /// that namespace could act as it: it must be a new namespace that no tenant uses.
    NotCreatedHere,
}

/// Everything the job decision depends on besides the status and the observations.
#[derive(Clone, Debug)]
pub struct JobInput<'a> {
    pub spec: &'a FederationEnablementSpec,
    /// Where the control plane runs (`status.controlPlaneNamespace`) and what the chart is
    /// installed with: recorded in `status.created` when a subjob starts.
    pub install: &'a InstallFacts,
    /// The chart version a run starting now installs: `chart.version`, or the controller's
    /// default. InstallFederationChart pins it when it starts, for the rest of the run.
    pub chart_version: &'a str,
    pub generation: Option<i64>,
    pub retry_annotation: Option<&'a str>,
    pub blocked: Option<Blocked>,
    pub namespace: NamespaceState,
    pub poll: &'a PollIntervals,
    pub now: Timestamp,
}

/// Decides the next status of a job run and the commands that carry it out.
///
/// `observations` holds what executors saw since the last call, for subjobs this call's
/// input said to run. `new_uid` makes the ids of new job runs and subjobs.
pub fn decide(
    input: &JobInput<'_>,
    current: &FederationEnablementStatus,
    observations: &BTreeMap<SubJobType, Observation>,
    new_uid: &mut dyn FnMut() -> String,
) -> Decision {
    let mut round = Round::new(input, current);
    round.start_or_retry_run(new_uid);
    let mut maintenance = MaintenanceRound::NotRun;
    if input.blocked.is_none() {
        if round.job_succeeded() {
            maintenance = round.maintain_after_success(observations);
        } else {
            round.advance_in_flight(observations);
            round.start_ready();
        }
    }
    round.finish(current, maintenance)
}

/// One decision in the making.
struct Round<'a> {
    input: &'a JobInput<'a>,
    /// Never earlier than the last recorded time, so recorded times never run backwards.
    now: Timestamp,
    timeout: Duration,
    attempt_limit: Option<i32>,
    status: FederationEnablementStatus,
    commands: Vec<Command>,
    transitions: Vec<Transition>,
}

impl<'a> Round<'a> {
    fn new(input: &'a JobInput<'a>, current: &FederationEnablementStatus) -> Self {
        Round {
            input,
            now: monotonic_now(input.now, current),
            timeout: super::sub_job_timeout(input.spec),
            attempt_limit: Some(input.spec.backoff_limit.max(0) + 1),
            status: current.clone(),
            commands: Vec::new(),
            transitions: Vec::new(),
        }
    }

    /// A new spec (or the first reconcile) starts a new run, unless the spec is refused (the
    /// run it would replace stays as it is); a new retry annotation resets the failed subjobs
    /// of a Failed job.
    fn start_or_retry_run(&mut self, new_uid: &mut dyn FnMut() -> String) {
        let hash = spec_hash(self.input.spec);
        let retry = self.input.retry_annotation.map(str::to_string);
        if self.status.job_uid.is_none() {
            start_job_run(&mut self.status, &hash, retry, self.now, new_uid);
            return;
        }
        if self.status.spec_hash.as_deref() != Some(&hash) {
            if self.input.blocked.is_none() {
                start_job_run(&mut self.status, &hash, retry, self.now, new_uid);
            }
            return;
        }
        if retry == self.status.last_handled_retry {
            return;
        }
        // A retry acts on a Failed job only; a value seen in any other phase is just recorded.
        if self.status.phase == Some(JobPhase::Failed) && self.input.blocked.is_none() {
            for sub_job in &mut self.status.sub_jobs {
                if sub_job.phase == SubJobPhase::Failed {
                    step::reset_failed(sub_job);
                    // A retry installs what the controller would install now.
                    sub_job.extend_param.remove(EXTEND_PARAM_CHART_VERSION);
                    sub_job.update_time = Some(micro(self.now));
                }
            }
        }
        self.status.last_handled_retry = retry;
    }

    fn job_succeeded(&self) -> bool {
        self.status
            .sub_jobs
            .iter()
            .all(|s| s.phase == SubJobPhase::Success)
    }

    fn failed_for_good(&self) -> bool {
        self.status
            .sub_jobs
            .iter()
            .any(|s| s.phase == SubJobPhase::Failed)
    }

    /// After Success every executor checks and repairs its objects; a full round of
    /// observations says whether the job is Degraded.
    fn maintain_after_success(
        &mut self,
        observations: &BTreeMap<SubJobType, Observation>,
    ) -> MaintenanceRound {
        let mut observed = 0;
        let mut degraded = None;
        for sub_job in &mut self.status.sub_jobs {
            let type_ = sub_job.type_;
            let (extend_param, problem) = match observations.get(&type_) {
                None => {
                    self.commands.push(Command::Run {
                        sub_job: type_,
                        mode: Mode::Maintain,
                        started_at: self.now,
                        deadline: step::deadline(self.now, self.timeout),
                        facts: RunFacts::default(),
                    });
                    continue;
                }
                Some(Observation::Succeeded { extend_param, .. }) => (Some(extend_param), None),
                Some(Observation::Progressing {
                    reason,
                    message,
                    extend_param,
                }) => (Some(extend_param), Some((reason, message))),
                Some(Observation::Failed { reason, message }) => (None, Some((reason, message))),
            };
            observed += 1;
            if let Some(extend_param) = extend_param {
                sub_job.extend_param.extend(extend_param.clone());
            }
            if let Some((reason, message)) = problem {
                degraded.get_or_insert_with(|| MaintenanceRound::Degraded {
                    reason: reason.clone(),
                    message: format!("{type_}: {message}"),
                });
            }
        }
        if observed < SubJobType::ALL.len() {
            return MaintenanceRound::NotRun;
        }
        degraded.unwrap_or(MaintenanceRound::AsDesired)
    }

    /// Applies what the executors observed, times attempts out, and starts the retries whose
    /// backoff is over; an attempt still in flight is run again to be observed.
    fn advance_in_flight(&mut self, observations: &BTreeMap<SubJobType, Observation>) {
        let failed_for_good = self.failed_for_good();
        let now = self.now;
        for sub_job in &mut self.status.sub_jobs {
            let type_ = sub_job.type_;
            if step::backing_off(sub_job) {
                let due = sub_job
                    .next_attempt_time
                    .as_ref()
                    .is_some_and(|t| t.0 <= now);
                if due && !self.input.spec.suspend && !failed_for_good {
                    step::start_attempt(sub_job, now);
                    self.commands.push(attempt_command(sub_job, self.timeout));
                }
                continue;
            }
            if !step::in_flight(sub_job) {
                continue;
            }
            let applied = match observations.get(&type_) {
                Some(observation) => {
                    step::apply_observation(sub_job, observation, self.attempt_limit, now)
                }
                None => Applied::Unchanged,
            };
            let applied = match applied {
                Applied::Unchanged | Applied::Progressed => {
                    step::time_out_if_due(sub_job, self.timeout, self.attempt_limit, now)
                        .unwrap_or(applied)
                }
                other => other,
            };
            match applied {
                Applied::Unchanged | Applied::Progressed if !observations.contains_key(&type_) => {
                    self.commands.push(attempt_command(sub_job, self.timeout));
                }
                Applied::Succeeded => self.transitions.push(Transition::SubJobSucceeded(type_)),
                Applied::Failed => self.transitions.push(Transition::SubJobFailed {
                    sub_job: type_,
                    reason: sub_job.reason.clone().unwrap_or_default(),
                    message: sub_job.message.clone().unwrap_or_default(),
                }),
                Applied::Unchanged | Applied::Progressed | Applied::Retrying => {}
            }
        }
    }

    /// The control-plane namespace may be used: it is ready, or a started job ensured it.
    fn namespace_ready(&self) -> bool {
        match self.input.namespace {
            NamespaceState::Ready => true,
            NamespaceState::Unchecked => self.started(),
            NamespaceState::Terminating
            | NamespaceState::Unlabelled
            | NamespaceState::NotCreatedHere => false,
        }
    }

    fn started(&self) -> bool {
        self.status
            .sub_jobs
            .iter()
            .any(|s| s.phase != SubJobPhase::Pending)
    }

    /// Starts the Pending subjobs whose dependencies succeeded, once the control-plane
    /// namespace is ready (asking for it first), unless suspended or failed.
    fn start_ready(&mut self) {
        if self.input.spec.suspend || self.failed_for_good() {
            return;
        }
        let namespace_ready = self.namespace_ready();
        for index in 0..self.status.sub_jobs.len() {
            let type_ = self.status.sub_jobs[index].type_;
            let ready = self.status.sub_jobs[index].phase == SubJobPhase::Pending
                && type_.dependencies().iter().all(|dep| {
                    self.status
                        .sub_job(*dep)
                        .is_some_and(|s| s.phase == SubJobPhase::Success)
                });
            if !ready {
                continue;
            }
            if !namespace_ready {
                if self.input.namespace == NamespaceState::Unchecked {
                    self.commands.push(Command::EnsureNamespace);
                }
                return;
            }
            let sub_job = &mut self.status.sub_jobs[index];
            step::start_attempt(sub_job, self.now);
            if type_ == SubJobType::InstallFederationChart {
                sub_job
                    .extend_param
                    .entry(EXTEND_PARAM_CHART_VERSION.to_string())
                    .or_insert_with(|| self.input.chart_version.to_string());
            }
            self.transitions.push(Transition::SubJobStarted(type_));
            self.commands.push(attempt_command(sub_job, self.timeout));
        }
    }

    /// Settles the job's phase and conditions, stamps the times of what changed, and says when
    /// to look again.
    fn finish(mut self, current: &FederationEnablementStatus, round: MaintenanceRound) -> Decision {
        let namespace_ready = self.namespace_ready();
        settle_job(&mut self.status, self.input, namespace_ready, self.now);
        record_control_plane(&mut self.status, self.input);
        match self.status.phase {
            Some(JobPhase::Success) if current.phase != Some(JobPhase::Success) => {
                self.transitions.push(Transition::JobSucceeded)
            }
            Some(JobPhase::Failed) if current.phase != Some(JobPhase::Failed) => {
                self.transitions.push(Transition::JobFailed {
                    reason: self.status.reason.clone().unwrap_or_default(),
                    message: self.status.message.clone().unwrap_or_default(),
                })
            }
            _ => {}
        }
        conditions::update(&mut self.status, self.input.generation, round, self.now);
        self.status.observed_generation = self.input.generation;
        stamp_times(&mut self.status, current, self.now);

        let requeue_after = requeue::after_job(
            &self.status,
            self.timeout,
            self.input.poll,
            self.input.namespace,
            self.now,
        );
        self.commands.sort_by_key(Command::order);
        for command in &self.commands {
            if let Command::Run { sub_job, .. } = command {
                record_created(&mut self.status, *sub_job, self.input.install);
            }
        }
        let run_facts = RunFacts::of(&self.status, None);
        for command in &mut self.commands {
            if let Command::Run { facts, .. } = command {
                *facts = run_facts.clone();
            }
        }
        Decision {
            status: self.status,
            commands: self.commands,
            requeue_after,
            transitions: self.transitions,
            finished: false,
        }
    }
}

/// Runs an attempt under way, with its start and deadline.
fn attempt_command(sub_job: &crate::api::SubJobStatus, timeout: Duration) -> Command {
    let started_at = sub_job
        .attempt_start_time
        .as_ref()
        .map_or(Timestamp::MIN, |t| t.0);
    Command::Run {
        sub_job: sub_job.type_,
        mode: Mode::Attempt(sub_job.attempts),
        started_at,
        deadline: step::deadline(started_at, timeout),
        facts: RunFacts::default(),
    }
}

/// Stamps `updateTime` on every subjob that changed, and on the status if anything did.
fn stamp_times(
    status: &mut FederationEnablementStatus,
    current: &FederationEnablementStatus,
    now: Timestamp,
) {
    for sub_job in &mut status.sub_jobs {
        let changed = current
            .sub_job(sub_job.type_)
            .is_some_and(|old| old != sub_job && sub_job.uid == old.uid);
        if changed {
            sub_job.update_time = Some(micro(now));
        }
    }
    if status != current {
        status.update_time = Some(micro(now));
    }
}

fn start_job_run(
    status: &mut FederationEnablementStatus,
    hash: &str,
    retry_annotation: Option<String>,
    now: Timestamp,
    new_uid: &mut dyn FnMut() -> String,
) {
    status.job_uid = Some(new_uid());
    status.spec_hash = Some(hash.to_string());
    status.creation_time = Some(micro(now));
    status.start_time = None;
    status.completion_time = None;
    status.phase = None;
    status.reason = None;
    status.message = None;
    status.last_handled_retry = retry_annotation;
    status.sub_jobs = SubJobType::ALL
        .into_iter()
        .map(|t| step::new_step(t, new_uid(), now))
        .collect();
}

/// Where the control plane runs, and the chart version once InstallFederationChart succeeded
/// (pinned when it started; runs started before pins existed installed `chart.version`).
fn record_control_plane(status: &mut FederationEnablementStatus, input: &JobInput<'_>) {
    status.control_plane_namespace = Some(input.install.control_plane_namespace.clone());
    let installed = status
        .sub_job(SubJobType::InstallFederationChart)
        .filter(|s| s.phase == SubJobPhase::Success)
        .map(|_| {
            status
                .pinned_chart_version()
                .unwrap_or(input.chart_version)
                .to_string()
        });
    if installed.is_some() {
        status.chart_version = installed;
    }
    let kubeconfig = status
        .sub_job(SubJobType::CreateCert)
        .filter(|s| s.phase == SubJobPhase::Success)
        .and_then(|s| s.extend_param.get(EXTEND_PARAM_KUBECONFIG_SECRET))
        .cloned();
    if kubeconfig.is_some() {
        status.kubeconfig_secret_name = kubeconfig;
    }
}

/// Adds to `status.created` what `sub_job`'s executor is about to make, and where: written in
/// the decision that runs it, so the record is never behind what exists. For the install, the
/// release, runner image and installer role it uses replace the last install's.
fn record_created(
    status: &mut FederationEnablementStatus,
    sub_job: SubJobType,
    install: &InstallFacts,
) {
    let created = status.created.get_or_insert_with(Default::default);
    if !created.sub_jobs.contains(&sub_job) {
        created.sub_jobs.push(sub_job);
        created.sub_jobs.sort();
    }
    let namespace = &install.control_plane_namespace;
    if !created.namespaces.contains(namespace) {
        created.namespaces.push(namespace.clone());
    }
    created.control_plane_namespace = Some(namespace.clone());
    if sub_job == SubJobType::InstallFederationChart {
        created.release = Some(install.release.clone());
        created.release_namespace = Some(install.release_namespace.clone());
        created.runner_image = Some(install.runner_image.clone());
        created.installer_cluster_role = Some(install.installer_cluster_role.clone());
        created.cluster_scoped = install.cluster_scoped;
        created.profile = Some(install.profile);
    }
}

/// Derives the job's phase, reason, message, progress and times from its subjobs.
fn settle_job(
    status: &mut FederationEnablementStatus,
    input: &JobInput<'_>,
    namespace_ready: bool,
    now: Timestamp,
) {
    let succeeded = status
        .sub_jobs
        .iter()
        .filter(|s| s.phase == SubJobPhase::Success)
        .count();
    let started = status
        .sub_jobs
        .iter()
        .any(|s| s.phase != SubJobPhase::Pending);
    let (phase, reason, message) = super::phase::job_phase(status, input, namespace_ready);
    let terminal = matches!(phase, JobPhase::Success | JobPhase::Failed);
    if terminal && status.phase != Some(phase) {
        status.completion_time = Some(micro(now));
    } else if !terminal {
        status.completion_time = None;
    }
    if status.start_time.is_none() && started {
        status.start_time = Some(micro(now));
    }
    status.phase = Some(phase);
    status.reason = Some(reason);
    status.message = Some(message);
    status.progress = Some(format!("{succeeded}/{}", status.sub_jobs.len()));
    status.current_sub_jobs = super::joined_running(&status.sub_jobs);
}
