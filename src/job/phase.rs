//! The job's phase, reason and message, from its subjobs and what gates it.

use super::reasons;
use super::run::{JobInput, NamespaceState};
use crate::api::{
    CONTROL_PLANE_NAMESPACE_LABEL, FederationEnablementStatus, JobPhase, SubJobPhase,
};

/// The job's phase, reason and message.
pub(super) fn job_phase(
    status: &FederationEnablementStatus,
    input: &JobInput<'_>,
    namespace_ready: bool,
) -> (JobPhase, String, String) {
    let count = |phase: SubJobPhase| status.sub_jobs.iter().filter(|s| s.phase == phase).count();
    let succeeded = count(SubJobPhase::Success);
    let running = count(SubJobPhase::Running);
    let started = count(SubJobPhase::Pending) < status.sub_jobs.len();
    let first_failed = status
        .sub_jobs
        .iter()
        .find(|s| s.phase == SubJobPhase::Failed);
    let total = status.sub_jobs.len();

    if let Some(blocked) = &input.blocked {
        return (
            JobPhase::Failed,
            blocked.reason.to_string(),
            blocked.message.clone(),
        );
    }
    if let Some(failed) = first_failed.filter(|_| running == 0) {
        let message = format!(
            "{} failed after {} attempt(s): {}",
            failed.type_,
            failed.attempts,
            failed.message.as_deref().unwrap_or("no message")
        );
        let reason = failed.reason.clone();
        return (
            JobPhase::Failed,
            reason.unwrap_or_else(|| reasons::FAILED.to_string()),
            message,
        );
    }
    if succeeded == total {
        return (
            JobPhase::Success,
            reasons::SUCCEEDED.to_string(),
            format!("all {succeeded} subjobs succeeded"),
        );
    }
    if input.spec.suspend {
        let phase = if started {
            JobPhase::Running
        } else {
            JobPhase::Pending
        };
        return (
            phase,
            reasons::SUSPENDED.to_string(),
            "spec.suspend is true: no new subjob starts".to_string(),
        );
    }
    if started {
        let message = match first_failed {
            Some(failed) => format!(
                "{} failed; waiting for running subjobs to finish",
                failed.type_
            ),
            None => format!("{succeeded}/{total} subjobs succeeded"),
        };
        return (JobPhase::Running, reasons::RUNNING.to_string(), message);
    }
    before_start(status, input, namespace_ready)
}

/// The phase of a job none of whose subjobs has started: waiting for its namespace, or refused
/// the one it found.
fn before_start(
    status: &FederationEnablementStatus,
    input: &JobInput<'_>,
    namespace_ready: bool,
) -> (JobPhase, String, String) {
    if !namespace_ready {
        match input.namespace {
            NamespaceState::Unlabelled => {
                return (
                    JobPhase::Failed,
                    reasons::NOT_ALLOWED.to_string(),
                    unlabelled_message(&input.install.control_plane_namespace),
                );
            }
            NamespaceState::NotCreatedHere => {
                return (
                    JobPhase::Failed,
                    reasons::NOT_ALLOWED.to_string(),
                    not_created_here_message(&input.install.control_plane_namespace),
                );
            }
            // Looked at next in this reconcile: a refusal seen last time stands until then, so
            // one that still holds is not reported afresh.
            NamespaceState::Unchecked
                if status.phase == Some(JobPhase::Failed)
                    && status.reason.as_deref() == Some(reasons::NOT_ALLOWED) =>
            {
                return (
                    JobPhase::Failed,
                    reasons::NOT_ALLOWED.to_string(),
                    status.message.clone().unwrap_or_default(),
                );
            }
            _ => {}
        }
        return (
            JobPhase::Pending,
            reasons::WAITING_FOR_NAMESPACE.to_string(),
            "creating the control-plane namespace".to_string(),
        );
    }
    (
        JobPhase::Pending,
        reasons::PENDING.to_string(),
        "no subjob has started yet".to_string(),
    )
}

/// Why an existing foreign namespace without the label is refused, and what lets the job go on.
fn unlabelled_message(namespace: &str) -> String {
    format!(
        "controlPlane.namespace {namespace:?} exists but is not labelled \
         {CONTROL_PLANE_NAMESPACE_LABEL}: \"true\"; a cluster admin opens it to control planes \
         with that label, and the job proceeds by itself once it is there"
    )
}

/// Why an existing namespace is refused for a Karmada control plane.
fn not_created_here_message(namespace: &str) -> String {
    format!(
        "the Karmada control plane needs a namespace of its own, and {namespace:?} existed before \
         this enablement created it; name a new one in controlPlane.namespace (or delete {namespace:?})"
    )
}
