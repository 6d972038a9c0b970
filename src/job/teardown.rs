//! The teardown that runs when an enablement is deleted: four steps, one after the other,
//! each retried with backoff until it succeeds (a step is never skipped silently).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::step::{self, Applied, micro};
use super::{Observation, Transition, conditions, duration_until, joined_running, reasons};
use crate::api::{
    FederationEnablementStatus, JobPhase, SubJobPhase, TeardownStatus, TeardownStepType,
};

/// What [`decide_teardown`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct TeardownDecision {
    pub status: FederationEnablementStatus,
    /// The step to run an executor for now, with its attempt number.
    pub execute: Vec<(TeardownStepType, i32)>,
    pub requeue_after: Option<Duration>,
    pub transitions: Vec<Transition>,
    /// Every step succeeded: the finalizer may go.
    pub finished: bool,
}

pub fn decide_teardown(
    current: &FederationEnablementStatus,
    generation: Option<i64>,
    timeout: Duration,
    now: Timestamp,
    observations: &BTreeMap<TeardownStepType, Observation>,
    new_uid: &mut dyn FnMut() -> String,
) -> TeardownDecision {
    let now =
        super::status_now(now).max(current.update_time.as_ref().map_or(Timestamp::MIN, |t| t.0));
    let mut status = current.clone();
    let mut transitions = Vec::new();
    let mut execute = Vec::new();

    let teardown = status.teardown.get_or_insert_with(|| {
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
    });

    for current_step in teardown.steps.iter_mut() {
        let type_ = current_step.type_;
        match current_step.phase {
            SubJobPhase::Success => continue,
            SubJobPhase::Pending => {
                step::start_attempt(current_step, now);
                execute.push((type_, current_step.attempts));
                break;
            }
            SubJobPhase::Running if step::backing_off(current_step) => {
                if current_step
                    .next_attempt_time
                    .as_ref()
                    .is_some_and(|t| t.0 <= now)
                {
                    step::start_attempt(current_step, now);
                    execute.push((type_, current_step.attempts));
                }
                break;
            }
            SubJobPhase::Running => {
                let applied = match observations.get(&type_) {
                    Some(observation) => {
                        step::apply_observation(current_step, observation, None, now)
                    }
                    None => {
                        execute.push((type_, current_step.attempts));
                        Applied::Unchanged
                    }
                };
                if matches!(applied, Applied::Succeeded) {
                    continue;
                }
                if let Some(Applied::Retrying) =
                    step::time_out_if_due(current_step, timeout, None, now)
                {
                    execute.retain(|(t, _)| *t != type_);
                }
                break;
            }
            // Teardown steps have no attempt limit, so none stays Failed; never skip one.
            SubJobPhase::Failed => break,
        }
    }

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

    let requeue_after = teardown
        .steps
        .iter()
        .filter_map(|s| step::next_deadline(s, timeout))
        .min()
        .map(|at| duration_until(now, at));
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
    if status != *current {
        status.update_time = Some(micro(now));
    }

    TeardownDecision {
        status,
        execute,
        requeue_after,
        transitions,
        finished,
    }
}
