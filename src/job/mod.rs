//! The job state machine: a pure function of (status, observations, now).
//!
//! The controller calls [`decide`] with the current status and what the executors observed;
//! it returns the next status, which subjobs to run an executor for, and when to be called
//! again. No I/O and no clock of its own: everything it needs is an argument.

mod conditions;
pub mod reasons;
mod step;
mod teardown;

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::api::{
    FederationEnablementSpec, FederationEnablementStatus, JobPhase, StepStatus, SubJobPhase,
    SubJobType,
};
pub use conditions::{CONDITION_DEGRADED, CONDITION_PROGRESSING, CONDITION_READY};
pub use step::{BACKOFF_BASE, BACKOFF_CAP, backoff_delay};
pub use teardown::{TeardownDecision, decide_teardown};

use step::{Applied, micro};

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

/// Everything the job decision depends on besides the status and the observations.
#[derive(Clone, Debug)]
pub struct JobInput<'a> {
    pub spec: &'a FederationEnablementSpec,
    pub generation: Option<i64>,
    pub retry_annotation: Option<&'a str>,
    pub blocked: Option<Blocked>,
    /// The control-plane namespace exists (or is the enablement's own).
    pub namespace_ready: bool,
    pub now: Timestamp,
}

/// How an executor should run for a subjob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Drive attempt number `n` (1-based) of a running subjob.
    Attempt(i32),
    /// The job succeeded: check the subjob's objects and repair drift.
    Maintain,
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

/// What [`decide`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub status: FederationEnablementStatus,
    /// Subjobs to run an executor for now, in DAG order.
    pub execute: Vec<(SubJobType, Mode)>,
    /// The control-plane namespace must be created before any subjob starts.
    pub ensure_namespace: bool,
    /// Call again after this long at the latest (a backoff or timeout deadline).
    pub requeue_after: Option<Duration>,
    pub transitions: Vec<Transition>,
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

/// Decides the next status of a job run.
///
/// `observations` holds what executors saw since the last call, for subjobs this call's
/// input said to execute. `new_uid` makes the ids of new job runs and subjobs.
pub fn decide(
    input: &JobInput<'_>,
    current: &FederationEnablementStatus,
    observations: &BTreeMap<SubJobType, Observation>,
    new_uid: &mut dyn FnMut() -> String,
) -> Decision {
    // Recorded times never run backwards, even if this clock is behind the last writer's.
    let now =
        status_now(input.now).max(current.update_time.as_ref().map_or(Timestamp::MIN, |t| t.0));
    let mut status = current.clone();
    let mut transitions = Vec::new();
    let hash = spec_hash(input.spec);
    let timeout = Duration::from_secs(input.spec.sub_job_timeout_seconds.max(1) as u64);
    let attempt_limit = Some(input.spec.backoff_limit.max(0) + 1);
    let previous_phase = current.phase;

    if status.job_uid.is_none() || status.spec_hash.as_deref() != Some(hash.as_str()) {
        start_job_run(&mut status, &hash, input.retry_annotation, now, new_uid);
    } else if input.retry_annotation.map(str::to_string) != status.last_handled_retry {
        // A retry acts on a Failed job only; a value seen in any other phase is just recorded.
        if status.phase == Some(JobPhase::Failed) && input.blocked.is_none() {
            for sub_job in &mut status.sub_jobs {
                if sub_job.phase == SubJobPhase::Failed {
                    step::reset_failed(sub_job);
                    sub_job.update_time = Some(micro(now));
                }
            }
        }
        status.last_handled_retry = input.retry_annotation.map(str::to_string);
    }

    let mut execute = Vec::new();
    let mut ensure_namespace = false;
    let mut degraded: Option<(String, String)> = None;
    let mut maintained = 0;

    if input.blocked.is_none() {
        let failed_for_good = status
            .sub_jobs
            .iter()
            .any(|s| s.phase == SubJobPhase::Failed);
        let job_succeeded = status
            .sub_jobs
            .iter()
            .all(|s| s.phase == SubJobPhase::Success);

        for index in 0..status.sub_jobs.len() {
            let type_ = status.sub_jobs[index].type_;
            let observation = observations.get(&type_);
            if job_succeeded {
                match observation {
                    Some(Observation::Succeeded { extend_param, .. }) => {
                        maintained += 1;
                        status.sub_jobs[index]
                            .extend_param
                            .extend(extend_param.clone());
                    }
                    Some(Observation::Progressing {
                        reason,
                        message,
                        extend_param,
                    }) => {
                        maintained += 1;
                        status.sub_jobs[index]
                            .extend_param
                            .extend(extend_param.clone());
                        degraded.get_or_insert((reason.clone(), format!("{type_}: {message}")));
                    }
                    Some(Observation::Failed { reason, message }) => {
                        maintained += 1;
                        degraded.get_or_insert((reason.clone(), format!("{type_}: {message}")));
                    }
                    None => execute.push((type_, Mode::Maintain)),
                }
                continue;
            }
            let sub_job = &mut status.sub_jobs[index];
            if step::backing_off(sub_job) {
                let due = sub_job
                    .next_attempt_time
                    .as_ref()
                    .is_some_and(|t| t.0 <= now);
                if due && !input.spec.suspend && !failed_for_good {
                    step::start_attempt(sub_job, now);
                    execute.push((type_, Mode::Attempt(sub_job.attempts)));
                }
                continue;
            }
            if !step::in_flight(sub_job) {
                continue;
            }
            let applied = match observation {
                Some(observation) => {
                    step::apply_observation(sub_job, observation, attempt_limit, now)
                }
                None => {
                    execute.push((type_, Mode::Attempt(sub_job.attempts)));
                    Applied::Unchanged
                }
            };
            let applied = match applied {
                Applied::Unchanged | Applied::Progressed => {
                    step::time_out_if_due(sub_job, timeout, attempt_limit, now).unwrap_or(applied)
                }
                other => other,
            };
            if matches!(applied, Applied::Retrying | Applied::Failed) {
                execute.retain(|(t, _)| *t != type_);
            }
            match applied {
                Applied::Succeeded => transitions.push(Transition::SubJobSucceeded(type_)),
                Applied::Failed => transitions.push(Transition::SubJobFailed {
                    sub_job: type_,
                    reason: sub_job.reason.clone().unwrap_or_default(),
                    message: sub_job.message.clone().unwrap_or_default(),
                }),
                Applied::Unchanged | Applied::Progressed | Applied::Retrying => {}
            }
        }

        let failed_for_good = status
            .sub_jobs
            .iter()
            .any(|s| s.phase == SubJobPhase::Failed);
        if !input.spec.suspend && !failed_for_good {
            for index in 0..status.sub_jobs.len() {
                let type_ = status.sub_jobs[index].type_;
                let ready = status.sub_jobs[index].phase == SubJobPhase::Pending
                    && type_.dependencies().iter().all(|dep| {
                        status
                            .sub_job(*dep)
                            .is_some_and(|s| s.phase == SubJobPhase::Success)
                    });
                if !ready {
                    continue;
                }
                if !input.namespace_ready {
                    ensure_namespace = true;
                    break;
                }
                step::start_attempt(&mut status.sub_jobs[index], now);
                transitions.push(Transition::SubJobStarted(type_));
                execute.push((type_, Mode::Attempt(1)));
            }
        }
    }

    settle_job(&mut status, input, now);
    match status.phase {
        Some(JobPhase::Success) if previous_phase != Some(JobPhase::Success) => {
            transitions.push(Transition::JobSucceeded)
        }
        Some(JobPhase::Failed) if previous_phase != Some(JobPhase::Failed) => {
            transitions.push(Transition::JobFailed {
                reason: status.reason.clone().unwrap_or_default(),
                message: status.message.clone().unwrap_or_default(),
            })
        }
        _ => {}
    }

    // Degraded changes only on a full maintenance round, so a partial one never flips it.
    let degraded = if maintained == SubJobType::ALL.len() {
        Some(degraded)
    } else {
        None
    };
    conditions::update(&mut status, input, degraded, now);
    status.observed_generation = input.generation;

    for sub_job in &mut status.sub_jobs {
        let changed = current
            .sub_job(sub_job.type_)
            .is_some_and(|old| old != sub_job && sub_job.uid == old.uid);
        if changed {
            sub_job.update_time = Some(micro(now));
        }
    }
    if status != *current {
        status.update_time = Some(micro(now));
    }

    let requeue_after = status
        .sub_jobs
        .iter()
        .filter_map(|s| step::next_deadline(s, timeout))
        .min()
        .map(|at| duration_until(now, at));
    execute.sort_by_key(|(t, _)| *t);
    Decision {
        status,
        execute,
        ensure_namespace,
        requeue_after,
        transitions,
    }
}

fn start_job_run(
    status: &mut FederationEnablementStatus,
    hash: &str,
    retry_annotation: Option<&str>,
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
    status.last_handled_retry = retry_annotation.map(str::to_string);
    status.sub_jobs = SubJobType::ALL
        .into_iter()
        .map(|t| step::new_step(t, new_uid(), now))
        .collect();
}

/// Derives the job's phase, reason, message, progress and times from its subjobs.
fn settle_job(status: &mut FederationEnablementStatus, input: &JobInput<'_>, now: Timestamp) {
    let count = |phase: SubJobPhase| status.sub_jobs.iter().filter(|s| s.phase == phase).count();
    let succeeded = count(SubJobPhase::Success);
    let running = count(SubJobPhase::Running);
    let started = status
        .sub_jobs
        .iter()
        .any(|s| s.phase != SubJobPhase::Pending);
    let first_failed = status
        .sub_jobs
        .iter()
        .find(|s| s.phase == SubJobPhase::Failed);

    let (phase, reason, message) = if let Some(blocked) = &input.blocked {
        (
            JobPhase::Failed,
            blocked.reason.to_string(),
            blocked.message.clone(),
        )
    } else if let Some(failed) = first_failed.filter(|_| running == 0) {
        (
            JobPhase::Failed,
            failed
                .reason
                .clone()
                .unwrap_or_else(|| reasons::FAILED.to_string()),
            format!(
                "{} failed after {} attempt(s): {}",
                failed.type_,
                failed.attempts,
                failed.message.as_deref().unwrap_or("no message")
            ),
        )
    } else if succeeded == status.sub_jobs.len() {
        (
            JobPhase::Success,
            reasons::SUCCEEDED.to_string(),
            format!("all {succeeded} subjobs succeeded"),
        )
    } else if input.spec.suspend {
        let phase = if started {
            JobPhase::Running
        } else {
            JobPhase::Pending
        };
        (
            phase,
            reasons::SUSPENDED.to_string(),
            "spec.suspend is true: no new subjob starts".to_string(),
        )
    } else if started {
        let message = match first_failed {
            Some(failed) => format!(
                "{} failed; waiting for running subjobs to finish",
                failed.type_
            ),
            None => format!("{succeeded}/{} subjobs succeeded", status.sub_jobs.len()),
        };
        (JobPhase::Running, reasons::RUNNING.to_string(), message)
    } else if !input.namespace_ready {
        (
            JobPhase::Pending,
            reasons::WAITING_FOR_NAMESPACE.to_string(),
            "creating the control-plane namespace".to_string(),
        )
    } else {
        (
            JobPhase::Pending,
            reasons::PENDING.to_string(),
            "no subjob has started yet".to_string(),
        )
    };

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
    status.current_sub_jobs = joined_running(&status.sub_jobs);
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
