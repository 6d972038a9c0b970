//! The standard conditions `Ready`, `Progressing` and `Degraded`, derived from the job.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::reasons;
use crate::api::{FederationEnablementStatus, JobPhase};

pub const CONDITION_READY: &str = "Ready";
pub const CONDITION_PROGRESSING: &str = "Progressing";
pub const CONDITION_DEGRADED: &str = "Degraded";

/// The outcome of a maintenance round over a successful job's subjobs.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum MaintenanceRound {
    /// No full round ran in this decision: `Degraded` keeps what it says, so a partial round
    /// never flips it.
    #[default]
    NotRun,
    /// Every subjob's objects are as desired.
    AsDesired,
    /// The first subjob found drifted or failing.
    Degraded { reason: String, message: String },
}

pub(super) fn update(
    status: &mut FederationEnablementStatus,
    generation: Option<i64>,
    round: MaintenanceRound,
    now: Timestamp,
) {
    let phase = status.phase.unwrap_or(JobPhase::Pending);
    let reason = status.reason.clone().unwrap_or_default();
    let message = status.message.clone().unwrap_or_default();

    let degraded = match (phase, round) {
        (JobPhase::Success, MaintenanceRound::AsDesired) => None,
        (JobPhase::Success, MaintenanceRound::Degraded { reason, message }) => {
            Some((reason, message))
        }
        (JobPhase::Success, MaintenanceRound::NotRun) => status
            .condition(CONDITION_DEGRADED)
            .filter(|c| c.status == "True")
            .map(|c| (c.reason.clone(), c.message.clone())),
        _ => None,
    };
    let (degraded_status, degraded_reason, degraded_message) = match &degraded {
        Some((reason, message)) => ("True", reason.clone(), message.clone()),
        None => (
            "False",
            reasons::AS_EXPECTED.to_string(),
            "every object of the federation is as desired".to_string(),
        ),
    };

    let (ready_status, ready_reason, ready_message) = match (phase, &degraded) {
        (JobPhase::Success, None) => ("True", reason.clone(), message.clone()),
        (JobPhase::Success, Some((r, m))) => ("False", r.clone(), m.clone()),
        _ => ("False", reason.clone(), message.clone()),
    };
    let progressing_status = match phase {
        JobPhase::Pending | JobPhase::Running | JobPhase::Deleting
            if reason != reasons::SUSPENDED =>
        {
            "True"
        }
        _ => "False",
    };

    set(
        &mut status.conditions,
        CONDITION_READY,
        ready_status,
        &ready_reason,
        &ready_message,
        generation,
        now,
    );
    set(
        &mut status.conditions,
        CONDITION_PROGRESSING,
        progressing_status,
        &reason,
        &message,
        generation,
        now,
    );
    set(
        &mut status.conditions,
        CONDITION_DEGRADED,
        degraded_status,
        &degraded_reason,
        &degraded_message,
        generation,
        now,
    );
}

/// Sets a condition; its `lastTransitionTime` moves only when its status changes.
pub(crate) fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Timestamp,
) {
    let transition_time = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(seconds(now)));
    let condition = Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time: transition_time,
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => *existing = condition,
        None => conditions.push(condition),
    }
}

/// Condition times are stored with second precision.
fn seconds(now: Timestamp) -> Timestamp {
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}
