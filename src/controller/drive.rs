//! The drive loop: the state machine's decisions carried out until it asks for nothing new,
//! for a job run and for a teardown alike.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::future;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::{Resource, ResourceExt};
use tracing::warn;

use super::status::patch_status;
use super::{Context, Error, MAX_ROUNDS};
use crate::api::{
    ChartProfile, FederationEnablement, FederationEnablementStatus, RETRY_ANNOTATION, SubJobType,
    TeardownStepType,
};
use crate::job::{
    self, Command, Decision, JobInput, Mode, Observation, TeardownInput, Transition, reasons,
};
use crate::subjobs::{self, NamespaceState, NamespaceUse};

/// What the drive loop left: the status to write, the events, and when to look again.
pub(super) struct Driven {
    pub status: FederationEnablementStatus,
    pub transitions: Vec<Transition>,
    pub requeue_after: Option<Duration>,
    pub finished: bool,
}

/// One run of the state machine within a reconcile: the job, or the teardown. `decide` is the
/// pure decision of `job/`; `execute` carries out its commands.
pub(super) trait Machine: Sync {
    type Step: Ord + Send;

    fn decide(
        &self,
        status: &FederationEnablementStatus,
        observations: &BTreeMap<Self::Step, Observation>,
    ) -> Decision;

    /// Writes `status` before commands are carried out, when it records something new in
    /// `status.created`: what an executor is about to make is on record before it exists, so
    /// a crash before the reconcile's own status write leaves nothing the teardown cannot see.
    fn persist_record<'s>(
        &'s self,
        _status: &'s FederationEnablementStatus,
    ) -> BoxFuture<'s, Result<(), Error>> {
        Box::pin(future::ready(Ok(())))
    }

    /// Carries out commands; what the executors need comes in them, never from the status.
    fn execute(
        &self,
        commands: Vec<Command>,
    ) -> BoxFuture<'_, Result<BTreeMap<Self::Step, Observation>, Error>>;
}

/// Carries out the machine's commands and feeds what they observed back to it, until it asks
/// for nothing new.
///
/// The rule: **each subjob executes at most once per reconcile** (so do each teardown step and
/// the namespace check). A subjob still in flight after its executor ran is looked at again on
/// the requeue the decision asks for, or on a watch event; this loop never polls.
pub(super) async fn drive<M: Machine>(
    machine: &M,
    current: &FederationEnablementStatus,
) -> Result<Driven, Error> {
    let mut driven = Driven {
        status: current.clone(),
        transitions: Vec::new(),
        requeue_after: None,
        finished: false,
    };
    let mut observations = BTreeMap::new();
    let mut executed = BTreeSet::new();
    let mut recorded = current.created.clone();
    for _ in 0..MAX_ROUNDS {
        let decision = machine.decide(&driven.status, &observations);
        driven.status = decision.status;
        driven.transitions.extend(decision.transitions);
        driven.requeue_after = decision.requeue_after;
        driven.finished = decision.finished;
        let commands: Vec<Command> = decision
            .commands
            .into_iter()
            .filter(|command| executed.insert(command.target()))
            .collect();
        if commands.is_empty() {
            break;
        }
        if driven.status.created != recorded {
            machine.persist_record(&driven.status).await?;
            recorded = driven.status.created.clone();
        }
        observations = machine.execute(commands).await?;
    }
    Ok(driven)
}

/// The object's version and status on the server, as of the last write of this reconcile (the
/// object as read until then).
#[derive(Clone, Debug)]
pub(super) struct Written {
    pub resource_version: Option<String>,
    /// None: the object has no status.
    pub status: Option<FederationEnablementStatus>,
}

/// The job run of one enablement.
pub(super) struct JobMachine<'a> {
    pub fe: &'a FederationEnablement,
    pub api: &'a Api<FederationEnablement>,
    pub ctx: &'a Context,
    /// The status as last written in this reconcile (the record, before an executor acted) and
    /// the resourceVersion that write gave; the object's until then.
    pub written: std::sync::Mutex<Written>,
    pub blocked: Option<job::Blocked>,
    /// Where the control plane runs and what the chart is installed with.
    pub install: job::InstallFacts,
    /// What EnsureNamespace found, for the decisions that follow it in this reconcile.
    pub namespace: std::sync::Mutex<job::NamespaceState>,
}

impl JobMachine<'_> {
    fn namespace(&self) -> job::NamespaceState {
        *self.namespace.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn written(&self) -> Written {
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Machine for JobMachine<'_> {
    type Step = SubJobType;

    fn decide(
        &self,
        status: &FederationEnablementStatus,
        observations: &BTreeMap<SubJobType, Observation>,
    ) -> Decision {
        let input = JobInput {
            spec: &self.fe.spec,
            install: &self.install,
            chart_version: self
                .ctx
                .policy
                .chart_defaults
                .resolve(&self.fe.spec.chart)
                .version,
            generation: self.fe.meta().generation,
            retry_annotation: self
                .fe
                .annotations()
                .get(RETRY_ANNOTATION)
                .map(String::as_str),
            blocked: self.blocked.clone(),
            namespace: self.namespace(),
            poll: &self.ctx.poll_intervals,
            now: self.ctx.clock.now(),
        };
        job::decide(&input, status, observations, &mut || (self.ctx.new_uid)())
    }

    fn persist_record<'s>(
        &'s self,
        status: &'s FederationEnablementStatus,
    ) -> BoxFuture<'s, Result<(), Error>> {
        Box::pin(async move {
            // Simulated executors make nothing that could be left behind.
            if !self.ctx.executors.kubernetes {
                return Ok(());
            }
            let before = self.written();
            let resource_version = patch_status(
                self.fe,
                self.api,
                self.ctx,
                before.resource_version,
                before.status.as_ref(),
                status,
            )
            .await?;
            *self.written.lock().unwrap_or_else(|e| e.into_inner()) = Written {
                resource_version,
                status: Some(status.clone()),
            };
            Ok(())
        })
    }

    fn execute(
        &self,
        commands: Vec<Command>,
    ) -> BoxFuture<'_, Result<BTreeMap<SubJobType, Observation>, Error>> {
        Box::pin(async move {
            let (ctx, fe) = (self.ctx, self.fe);
            let mut runs = Vec::new();
            for command in commands {
                match command {
                    Command::EnsureNamespace => {
                        let state =
                            ensure_namespace(ctx, fe, &self.install.control_plane_namespace, true)
                                .await?;
                        *self.namespace.lock().unwrap_or_else(|e| e.into_inner()) = state;
                    }
                    Command::Run {
                        sub_job,
                        mode,
                        started_at,
                        deadline,
                        facts,
                    } => runs.push((sub_job, mode, started_at, deadline, facts)),
                    Command::Undo { step, .. } => {
                        warn!(%step, "a job run asked for a teardown step")
                    }
                }
            }
            let now = ctx.clock.now();
            let observed = future::join_all(runs.iter().map(
                |(sub_job, mode, started_at, deadline, facts)| async move {
                    let mut sub_ctx = subjobs::Context::for_attempt(
                        fe,
                        &ctx.settings,
                        facts,
                        *started_at,
                        *deadline,
                        now,
                    );
                    sub_ctx.unmigrated_objects_are_ours = *mode == Mode::Maintain;
                    let result = ctx.executors.get(*sub_job).run(&sub_ctx, *mode).await;
                    (*sub_job, observe(result, sub_job))
                },
            ))
            .await;
            Ok(observed.into_iter().collect())
        })
    }
}

/// The teardown of one enablement being deleted.
pub(super) struct TeardownMachine<'a> {
    pub fe: &'a FederationEnablement,
    pub ctx: &'a Context,
    pub refused: bool,
    pub control_plane_namespace_gone: bool,
    /// The recorded install, within today's allowlists.
    pub installed: job::InstallFacts,
}

impl Machine for TeardownMachine<'_> {
    type Step = TeardownStepType;

    fn decide(
        &self,
        status: &FederationEnablementStatus,
        observations: &BTreeMap<TeardownStepType, Observation>,
    ) -> Decision {
        let input = TeardownInput {
            generation: self.fe.meta().generation,
            timeout: job::sub_job_timeout(&self.fe.spec),
            refused: self.refused,
            control_plane_namespace_gone: self.control_plane_namespace_gone,
            installed: &self.installed,
            poll: &self.ctx.poll_intervals,
            now: self.ctx.clock.now(),
        };
        job::decide_teardown(&input, status, observations, &mut || (self.ctx.new_uid)())
    }

    fn execute(
        &self,
        commands: Vec<Command>,
    ) -> BoxFuture<'_, Result<BTreeMap<TeardownStepType, Observation>, Error>> {
        Box::pin(async move {
            let ctx = self.ctx;
            let mut observed = BTreeMap::new();
            for command in &commands {
                let Command::Undo {
                    step,
                    attempt,
                    started_at,
                    deadline,
                    facts,
                    control_plane_namespace_gone,
                    work_may_exist,
                    installed,
                } = command
                else {
                    warn!(?command, "a teardown asked for a job command");
                    continue;
                };
                let mut sub_ctx = subjobs::Context::for_attempt(
                    self.fe,
                    &ctx.settings,
                    facts,
                    *started_at,
                    *deadline,
                    ctx.clock.now(),
                )
                .with_installed(installed);
                sub_ctx.control_plane_namespace_gone = *control_plane_namespace_gone;
                sub_ctx.work_may_exist = *work_may_exist;
                sub_ctx.unmigrated_objects_are_ours = *work_may_exist;
                let executor = ctx.executors.get(step.undoes());
                let observation = observe(executor.teardown(&sub_ctx, *attempt).await, step);
                observed.insert(*step, observation);
            }
            Ok(observed)
        })
    }
}

/// Creates (or finds) a namespace the controller may use, annotated with the enablement's uid.
pub(super) async fn ensure_namespace(
    ctx: &Context,
    fe: &FederationEnablement,
    name: &str,
    create: bool,
) -> Result<job::NamespaceState, Error> {
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let uid = fe.uid().unwrap_or_default();
    let usage = match fe.spec.chart.resolved_profile() {
        ChartProfile::Karmada => NamespaceUse::OwnOnly,
        ChartProfile::Generic => NamespaceUse::Labelled,
    };
    let state = subjobs::ensure_control_plane_namespace(&namespaces, name, &uid, usage, create)
        .await
        .map_err(|e| {
            let enablement = format!("{}/{}", fe.namespace().unwrap_or_default(), fe.name_any());
            Error::Namespace(enablement, e)
        })?;
    Ok(match state {
        NamespaceState::Ready => job::NamespaceState::Ready,
        NamespaceState::Missing => job::NamespaceState::Unchecked,
        // Being deleted: wait for it to go, then it is created afresh.
        NamespaceState::Terminating => job::NamespaceState::Terminating,
        NamespaceState::Unlabelled => job::NamespaceState::Unlabelled,
        NamespaceState::NotCreatedHere => job::NamespaceState::NotCreatedHere,
    })
}

/// An executor's error is a failed attempt that names what failed.
fn observe(result: subjobs::Result<Observation>, sub_job: impl std::fmt::Display) -> Observation {
    result.unwrap_or_else(|error| {
        warn!(%sub_job, %error, "executor failed");
        Observation::failed(reasons::API_ERROR, error.to_string())
    })
}
