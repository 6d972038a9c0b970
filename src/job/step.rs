//! Transitions of one subjob or teardown step: start, observe, fail, back off.
//!
//! Shared by the job and the teardown so that both count attempts, time out and back off alike.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

use super::{Observation, reasons};
use crate::api::{StepStatus, SubJobPhase};

/// First retry delay; doubled on every further failed attempt.
pub const BACKOFF_BASE: Duration = Duration::from_secs(5);
/// Longest delay between two attempts.
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);

/// Delay before the attempt that follows failed attempt number `attempts` (1-based).
pub fn backoff_delay(attempts: i32) -> Duration {
    let doublings = attempts.saturating_sub(1).clamp(0, 16) as u32;
    BACKOFF_BASE
        .saturating_mul(1u32 << doublings)
        .min(BACKOFF_CAP)
}

pub(crate) fn micro(ts: Timestamp) -> MicroTime {
    MicroTime(ts)
}

pub(crate) fn new_step<T>(type_: T, uid: String, now: Timestamp) -> StepStatus<T> {
    StepStatus {
        type_,
        uid,
        phase: SubJobPhase::Pending,
        reason: None,
        message: None,
        attempts: 0,
        creation_time: Some(micro(now)),
        start_time: None,
        completion_time: None,
        update_time: Some(micro(now)),
        attempt_start_time: None,
        next_attempt_time: None,
        extend_param: BTreeMap::new(),
    }
}

/// An attempt is under way: the executor must be asked how it goes.
pub(crate) fn in_flight<T>(step: &StepStatus<T>) -> bool {
    step.phase == SubJobPhase::Running && step.next_attempt_time.is_none()
}

/// Waiting out the backoff delay of a failed attempt.
pub(crate) fn backing_off<T>(step: &StepStatus<T>) -> bool {
    step.phase == SubJobPhase::Running && step.next_attempt_time.is_some()
}

/// Starts the next attempt (the first one for a Pending step).
pub(crate) fn start_attempt<T>(step: &mut StepStatus<T>, now: Timestamp) {
    if step.start_time.is_none() {
        step.start_time = Some(micro(now));
    }
    step.phase = SubJobPhase::Running;
    step.attempts += 1;
    step.attempt_start_time = Some(micro(now));
    step.next_attempt_time = None;
    step.completion_time = None;
}

pub(crate) enum Applied {
    Unchanged,
    Progressed,
    Succeeded,
    /// The attempt failed and another one is scheduled.
    Retrying,
    /// The attempt failed and no attempt is left.
    Failed,
}

/// Applies what the executor observed to an in-flight step.
///
/// `attempt_limit` is the largest number of attempts (None: unlimited, for teardown steps).
pub(crate) fn apply_observation<T>(
    step: &mut StepStatus<T>,
    observation: &Observation,
    attempt_limit: Option<i32>,
    now: Timestamp,
) -> Applied {
    match observation {
        Observation::Succeeded {
            message,
            extend_param,
        } => {
            step.phase = SubJobPhase::Success;
            step.reason = Some(reasons::SUCCEEDED.to_string());
            step.message = message.clone();
            step.completion_time = Some(micro(now));
            step.attempt_start_time = None;
            step.extend_param.extend(extend_param.clone());
            Applied::Succeeded
        }
        Observation::Progressing {
            reason,
            message,
            extend_param,
        } => {
            let before = (
                step.reason.clone(),
                step.message.clone(),
                step.extend_param.clone(),
            );
            step.reason = Some(reason.clone());
            step.message = Some(message.clone());
            step.extend_param.extend(extend_param.clone());
            if before
                == (
                    step.reason.clone(),
                    step.message.clone(),
                    step.extend_param.clone(),
                )
            {
                Applied::Unchanged
            } else {
                Applied::Progressed
            }
        }
        Observation::Failed { reason, message } => {
            fail_attempt(step, reason, message, attempt_limit, now)
        }
    }
}

/// Fails the in-flight attempt after its time limit.
pub(crate) fn time_out_if_due<T>(
    step: &mut StepStatus<T>,
    timeout: Duration,
    attempt_limit: Option<i32>,
    now: Timestamp,
) -> Option<Applied> {
    let started = step.attempt_start_time.as_ref()?.0;
    if now < deadline(started, timeout) {
        return None;
    }
    let message = format!(
        "attempt {} did not finish within {}s",
        step.attempts,
        timeout.as_secs()
    );
    Some(fail_attempt(
        step,
        reasons::TIMEOUT,
        &message,
        attempt_limit,
        now,
    ))
}

fn fail_attempt<T>(
    step: &mut StepStatus<T>,
    reason: &str,
    message: &str,
    attempt_limit: Option<i32>,
    now: Timestamp,
) -> Applied {
    step.reason = Some(reason.to_string());
    step.message = Some(message.to_string());
    step.attempt_start_time = None;
    if attempt_limit.is_some_and(|limit| step.attempts >= limit) {
        step.phase = SubJobPhase::Failed;
        step.completion_time = Some(micro(now));
        Applied::Failed
    } else {
        step.next_attempt_time = Some(micro(deadline(now, backoff_delay(step.attempts))));
        Applied::Retrying
    }
}

/// The earliest time this step needs the state machine again, if it waits on the clock.
pub(crate) fn next_deadline<T>(step: &StepStatus<T>, timeout: Duration) -> Option<Timestamp> {
    if let Some(next) = &step.next_attempt_time {
        return Some(next.0);
    }
    if in_flight(step) {
        return step
            .attempt_start_time
            .as_ref()
            .map(|t| deadline(t.0, timeout));
    }
    None
}

pub(crate) fn deadline(from: Timestamp, after: Duration) -> Timestamp {
    let after = SignedDuration::try_from(after).unwrap_or(SignedDuration::MAX);
    from.saturating_add(after).unwrap_or(Timestamp::MAX)
}

/// Resets a failed step so that a retry starts it afresh (its uid is kept).
pub(crate) fn reset_failed<T>(step: &mut StepStatus<T>) {
    step.phase = SubJobPhase::Pending;
    step.attempts = 0;
    step.reason = None;
    step.message = None;
    step.start_time = None;
    step.completion_time = None;
    step.attempt_start_time = None;
    step.next_attempt_time = None;
}
