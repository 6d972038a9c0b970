//! The JSON shapes clients depend on, built from a FederationEnablement's status.
//!
//! The types are `federation-api`'s, shared with the clients that read them; this module builds
//! them from the controller's view of an enablement.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::ResourceExt;

pub use federation_api::wire::*;

use crate::api::{
    FederationEnablement, FederationEnablementStatus, JobPhase, StepStatus, SubJobType,
    default_product_type,
};
use crate::job::CONDITION_DEGRADED;

fn go(time: &Option<MicroTime>) -> Option<GoTime> {
    time.as_ref().map(|t| GoTime(t.0))
}

fn step_job<T: std::fmt::Display>(
    step: &StepStatus<T>,
    federation_uid: &Option<String>,
    now: GoTime,
) -> ProgressJob {
    ProgressJob {
        kind: JOB_KIND.to_string(),
        api_version: JOB_API_VERSION.to_string(),
        metadata: JobMetadata {
            uid: Some(step.uid.clone()),
            creation_timestamp: go(&step.creation_time),
            update_timestamp: go(&step.update_time),
            annotations: Annotations {
                current_timestamp: Some(now),
            },
        },
        spec: JobSpec {
            type_: step.type_.to_string(),
            federation_uid: federation_uid.clone(),
            resource_id: None,
            resource_name: None,
            extend_param: (!step.extend_param.is_empty()).then(|| step.extend_param.clone()),
            sub_jobs: None,
        },
        status: JobStatus {
            phase: Some(step.phase.as_str().to_string()),
            reason: step.reason.clone(),
            start_time: go(&step.start_time),
            completion_time: go(&step.completion_time),
        },
    }
}

/// The job of an enablement (its teardown while it is being deleted), as of `now`.
pub fn progress(fe: &FederationEnablement, now: Timestamp) -> ProgressJob {
    let now = GoTime(now);
    let status = fe.status.clone().unwrap_or_default();
    let federation_uid = fe.uid();
    let annotations = Annotations {
        current_timestamp: Some(now),
    };
    let deleting = status.phase == Some(JobPhase::Deleting);
    let (type_, metadata, sub_jobs, job_status) =
        match status.teardown.as_ref().filter(|_| deleting) {
            Some(teardown) => (
                TEARDOWN_JOB,
                JobMetadata {
                    uid: Some(teardown.job_uid.clone()),
                    creation_timestamp: go(&teardown.creation_time),
                    update_timestamp: go(&teardown.update_time),
                    annotations,
                },
                teardown
                    .steps
                    .iter()
                    .map(|s| step_job(s, &federation_uid, now))
                    .collect(),
                JobStatus {
                    phase: Some(teardown.phase.as_str().to_string()),
                    reason: teardown.reason.clone(),
                    start_time: go(&teardown.start_time),
                    completion_time: go(&teardown.completion_time),
                },
            ),
            None => (
                ENABLE_JOB,
                JobMetadata {
                    uid: status.job_uid.clone(),
                    creation_timestamp: go(&status.creation_time),
                    update_timestamp: go(&status.update_time),
                    annotations,
                },
                SubJobType::ALL
                    .iter()
                    .filter_map(|t| status.sub_job(*t))
                    .map(|s| step_job(s, &federation_uid, now))
                    .collect(),
                JobStatus {
                    phase: status.phase.map(|p| p.as_str().to_string()),
                    reason: status.reason.clone(),
                    start_time: go(&status.start_time),
                    completion_time: go(&status.completion_time),
                },
            ),
        };
    ProgressJob {
        kind: JOB_KIND.to_string(),
        api_version: JOB_API_VERSION.to_string(),
        metadata,
        spec: JobSpec {
            type_: type_.to_string(),
            federation_uid: federation_uid.clone(),
            resource_id: federation_uid,
            resource_name: Some(fe.name_any()),
            extend_param: None,
            sub_jobs: Some(sub_jobs),
        },
        status: job_status,
    }
}

/// `healthy` once federated and not Degraded, `unhealthy` when failed or Degraded, else
/// `unknown`.
pub fn health(status: &FederationEnablementStatus) -> &'static str {
    let degraded = status
        .condition(CONDITION_DEGRADED)
        .is_some_and(|c| c.status == "True");
    match status.phase.unwrap_or(JobPhase::Pending) {
        JobPhase::Success if !degraded => "healthy",
        JobPhase::Failed => "unhealthy",
        _ if degraded => "unhealthy",
        _ => "unknown",
    }
}

pub fn federation_item(fe: &FederationEnablement) -> FederationItem {
    let spec = &fe.spec;
    let status = fe.status.clone().unwrap_or_default();
    let phase = status.phase.unwrap_or(JobPhase::Pending);
    let product_type = spec
        .platform
        .as_ref()
        .map(|p| p.product_type.clone())
        .unwrap_or_else(default_product_type);
    let sso = spec.sso.clone().unwrap_or_default();
    let network_params = status
        .sub_job(SubJobType::CreateNetworkResource)
        .map(|s| s.extend_param.clone())
        .unwrap_or_default();
    FederationItem {
        platform_uuid: spec.cluster_group_id.clone(),
        platform_name: spec
            .platform
            .as_ref()
            .and_then(|p| p.name.clone())
            .unwrap_or_else(|| fe.name_any()),
        product_type: product_type.clone(),
        status: match phase {
            JobPhase::Success => "federated",
            JobPhase::Pending | JobPhase::Running => "federating",
            JobPhase::Failed => "failed",
            JobPhase::Deleting => "unfederating",
        }
        .to_string(),
        health_status: health(&status).to_string(),
        federation: Federation {
            uuid: status.job_uid.clone(),
            sso_config_uuid: sso.config_uuid,
            sso_config_name: sso.config_name,
            sso_client_uuid: sso.client_uuid,
            callback_url: sso.callback_url,
            platform_uuid: spec.cluster_group_id.clone(),
            product_type,
            metadata: serde_json::to_string(&network_params).unwrap_or_else(|_| "{}".to_string()),
            status: match phase {
                JobPhase::Success => "success",
                JobPhase::Running => "running",
                JobPhase::Pending => "pending",
                JobPhase::Failed => "failed",
                JobPhase::Deleting => "deleting",
            }
            .to_string(),
            error_message: (phase == JobPhase::Failed)
                .then(|| status.message.clone())
                .flatten(),
            federated_at: (phase == JobPhase::Success)
                .then(|| {
                    status
                        .completion_time
                        .as_ref()
                        .map(|t| rfc3339_seconds(t.0))
                })
                .flatten(),
            updated_at: status.update_time.as_ref().map(|t| rfc3339_seconds(t.0)),
        },
    }
}

#[cfg(test)]
mod tests {}
