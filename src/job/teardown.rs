//! The teardown that runs when an enablement is deleted: four steps, one after the other,
//! each retried with backoff until it succeeds (a step is never skipped silently).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::requeue::{self, PollIntervals};
use super::step::{self, Applied, micro};
use super::{
    Command, Decision, InstallFacts, Observation, RunFacts, Transition, conditions, joined_running,
    reasons,
};
use crate::api::{
    FederationEnablementStatus, JobPhase, SubJobPhase, SubJobType, TeardownStatus, TeardownStepType,
};

/// Everything the teardown decision depends on besides the status and the observations.
#[derive(Clone, Debug)]
pub struct TeardownInput<'a> {
    pub generation: Option<i64>,
    /// The time a step's attempt may take.
    pub timeout: Duration,
    /// The allowlists refuse the enablement now.
    pub refused: bool,
    /// The control-plane namespace is missing or being deleted: nothing can run in it.
    pub control_plane_namespace_gone: bool,
    /// Where and with what the chart was installed (`status.created`), within today's
    /// allowlists: every step works there, the uninstall with its release, image and role.
    pub installed: &'a InstallFacts,
    pub poll: &'a PollIntervals,
    pub now: Timestamp,
}

/// Refused by the allowlists and nothing ever started: nothing was created, so there is nothing
/// to tear down, and the controller may not even be allowed to look (a foreign namespace while
/// it watches one namespace). Without this the deletion would wait forever.
///
/// "Ever" is `status.created`, which no new run, retry or spec change resets; the current run's
/// subjobs count too, for a status written before the record existed.
pub fn nothing_to_tear_down(refused: bool, current: &FederationEnablementStatus) -> bool {
    refused
        && current.teardown.is_none()
        && SubJobType::ALL
            .into_iter()
            .all(|sub_job| !ever_started(current, sub_job))
}

/// `sub_job` started at some time, so what it makes may exist.
fn ever_started(status: &FederationEnablementStatus, sub_job: SubJobType) -> bool {
    let recorded = status
        .created
        .as_ref()
        .is_some_and(|created| created.sub_jobs.contains(&sub_job));
    let in_this_run = status.sub_job(sub_job).is_some_and(|s| {
        s.phase != SubJobPhase::Pending || s.attempts > 0 || s.start_time.is_some()
    });
    recorded || in_this_run
}

/// Decides the next step of the teardown; `finished` once every step succeeded.
///
/// Named steps: begin the teardown record, advance the one step under way (the steps run one
/// after the other), settle the teardown and the job's conditions, stamp the times.
pub fn decide_teardown(
    input: &TeardownInput<'_>,
    current: &FederationEnablementStatus,
    observations: &BTreeMap<TeardownStepType, Observation>,
    new_uid: &mut dyn FnMut() -> String,
) -> Decision {
    if nothing_to_tear_down(input.refused, current) {
        return Decision {
            status: current.clone(),
            commands: Vec::new(),
            requeue_after: None,
            transitions: Vec::new(),
            finished: true,
        };
    }
    let now = super::monotonic_now(input.now, current);
    let mut status = current.clone();
    let mut transitions = Vec::new();
    let teardown = begin_teardown(&mut status, &mut transitions, now, new_uid);
    let running = advance_steps(teardown, observations, input.timeout, now);
    let finished = settle_teardown(&mut status, &mut transitions, input.generation, now);
    stamp_times(&mut status, current, now);

    let commands = running
        .and_then(|type_| {
            let step = status
                .teardown
                .as_ref()?
                .steps
                .iter()
                .find(|s| s.type_ == type_)?;
            let started_at = step.attempt_start_time.as_ref().map_or(now, |t| t.0);
            let teardown_uid = status.teardown.as_ref().map(|t| t.job_uid.as_str());
            let work_may_exist = ever_started(&status, type_.undoes());
            // The release may be elsewhere than the last run's control plane.
            let mut installed = input.installed.clone();
            if type_ == TeardownStepType::UninstallFederationChart {
                installed.control_plane_namespace = installed.release_namespace.clone();
            }
            Some(Command::Undo {
                step: type_,
                attempt: step.attempts,
                started_at,
                deadline: step::deadline(started_at, input.timeout),
                facts: RunFacts::of(&status, teardown_uid),
                control_plane_namespace_gone: input.control_plane_namespace_gone,
                work_may_exist,
                installed,
            })
        })
        .into_iter()
        .collect();
    Decision {
        requeue_after: requeue::after_teardown(&status, input.timeout, input.poll, now),
        status,
        commands,
        transitions,
        finished,
    }
}

/// The teardown record, made on the first decision after the deletion.
fn begin_teardown<'a>(
    status: &'a mut FederationEnablementStatus,
    transitions: &mut Vec<Transition>,
    now: Timestamp,
    new_uid: &mut dyn FnMut() -> String,
) -> &'a mut TeardownStatus {
    status.teardown.get_or_insert_with(|| {
        transitions.push(Transition::TeardownStarted);
        TeardownStatus {
            job_uid: new_uid(),
            phase: JobPhase::Running,
            reason: None,
            message: None,
            creation_time: Some(micro(now)),
            start_time: Some(micro(now)),
            completion_time: None,
            update_time: Some(micro(now)),
            steps: TeardownStepType::ALL
                .into_iter()
                .map(|t| step::new_step(t, new_uid(), now))
                .collect(),
        }
    })
}

/// Applies what was observed to the step under way, times it out or starts the next attempt
/// or step; returns the step whose executor runs now.
fn advance_steps(
    teardown: &mut TeardownStatus,
    observations: &BTreeMap<TeardownStepType, Observation>,
    timeout: Duration,
    now: Timestamp,
) -> Option<TeardownStepType> {
    for current_step in teardown.steps.iter_mut() {
        let type_ = current_step.type_;
        match current_step.phase {
            SubJobPhase::Success => continue,
            SubJobPhase::Pending => {
                step::start_attempt(current_step, now);
                return Some(type_);
            }
            SubJobPhase::Running if step::backing_off(current_step) => {
                let due = current_step
                    .next_attempt_time
                    .as_ref()
                    .is_some_and(|t| t.0 <= now);
                if due {
                    step::start_attempt(current_step, now);
                    return Some(type_);
                }
                return None;
            }
            SubJobPhase::Running => {
                let observation = observations.get(&type_);
                let applied = match observation {
                    Some(observation) => {
                        step::apply_observation(current_step, observation, None, now)
                    }
                    None => Applied::Unchanged,
                };
                if matches!(applied, Applied::Succeeded) {
                    continue;
                }
                let timed_out = step::time_out_if_due(current_step, timeout, None, now);
                let retrying = matches!(applied, Applied::Retrying)
                    || matches!(timed_out, Some(Applied::Retrying));
                return (observation.is_none() && !retrying).then_some(type_);
            }
            // Teardown steps have no attempt limit, so none stays Failed; never skip one.
            SubJobPhase::Failed => return None,
        }
    }
    None
}

/// The teardown's phase, reason and message, and the job's while it is deleted; true once every
/// step succeeded.
fn settle_teardown(
    status: &mut FederationEnablementStatus,
    transitions: &mut Vec<Transition>,
    generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let Some(teardown) = status.teardown.as_mut() else {
        return false;
    };
    let done = teardown
        .steps
        .iter()
        .filter(|s| s.phase == SubJobPhase::Success)
        .count();
    let total = teardown.steps.len();
    let finished = done == total;
    if finished && teardown.phase != JobPhase::Success {
        teardown.phase = JobPhase::Success;
        teardown.completion_time = Some(micro(now));
        transitions.push(Transition::TeardownSucceeded);
    }
    let (reason, message) = if finished {
        (
            reasons::SUCCEEDED.to_string(),
            format!("all {total} teardown steps succeeded"),
        )
    } else {
        let active = teardown
            .steps
            .iter()
            .find(|s| s.phase != SubJobPhase::Success);
        match active.and_then(|s| s.reason.clone().map(|r| (s, r))) {
            Some((s, r)) if r != reasons::SUCCEEDED => (
                r,
                format!(
                    "{}: {}",
                    s.type_,
                    s.message.as_deref().unwrap_or("in progress")
                ),
            ),
            _ => (
                reasons::DELETING.to_string(),
                format!("{done}/{total} teardown steps succeeded"),
            ),
        }
    };
    teardown.reason = Some(reason);
    teardown.message = Some(message.clone());

    let progress = format!("{done}/{total}");
    let running = joined_running(&teardown.steps);

    status.phase = Some(JobPhase::Deleting);
    status.reason = Some(reasons::DELETING.to_string());
    status.message = Some(message);
    status.progress = Some(progress);
    status.current_sub_jobs = running;
    let message = status.message.clone().unwrap_or_default();
    for (type_, value) in [
        (conditions::CONDITION_READY, "False"),
        (conditions::CONDITION_PROGRESSING, "True"),
    ] {
        conditions::set(
            &mut status.conditions,
            type_,
            value,
            reasons::DELETING,
            &message,
            generation,
            now,
        );
    }

    finished
}

/// Stamps `updateTime` on every step that changed, on the teardown and on the status.
fn stamp_times(
    status: &mut FederationEnablementStatus,
    current: &FederationEnablementStatus,
    now: Timestamp,
) {
    if let (Some(new), Some(old)) = (status.teardown.as_mut(), current.teardown.as_ref()) {
        for new_step in &mut new.steps {
            if old
                .steps
                .iter()
                .any(|o| o.type_ == new_step.type_ && o != new_step)
            {
                new_step.update_time = Some(micro(now));
            }
        }
        if new != old {
            new.update_time = Some(micro(now));
        }
    }
    if *status != *current {
        status.update_time = Some(micro(now));
    }
}
