//! The JSON shapes clients depend on, built from a FederationEnablement's status.
//!
//! The progress route is wire-compatible with a cloud federation service's "Querying Federation
//! Enabling Progress" API, the list route with its "ListFederationStatus" API. Absent values are
//! omitted, never null.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::ResourceExt;
use serde::Serialize;

use crate::api::{
    FederationEnablement, FederationEnablementStatus, JobPhase, StepStatus, SubJobType,
    default_product_type,
};
use crate::job::CONDITION_DEGRADED;

/// `2023-07-31 13:16:20.715779 +0000 UTC`: UTC, the fraction without trailing zeros, as Go's
/// `time.Time.String()` prints it.
pub fn go_time(ts: Timestamp) -> String {
    let base = ts.strftime("%Y-%m-%d %H:%M:%S").to_string();
    let nanos = ts.subsec_nanosecond();
    if nanos == 0 {
        format!("{base} +0000 UTC")
    } else {
        let fraction = format!("{nanos:09}");
        format!("{base}.{} +0000 UTC", fraction.trim_end_matches('0'))
    }
}

/// `2026-01-15T08:00:00Z`: RFC 3339, UTC, whole seconds.
pub fn rfc3339_seconds(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn go(time: &Option<MicroTime>) -> Option<String> {
    time.as_ref().map(|t| go_time(t.0))
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProgressJob {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub metadata: JobMetadata,
    pub spec: JobSpec,
    pub status: JobStatus,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobMetadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_timestamp: Option<String>,
    pub annotations: Annotations,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Annotations {
    pub current_timestamp: String,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(rename = "federationUID", skip_serializing_if = "Option::is_none")]
    pub federation_uid: Option<String>,
    #[serde(rename = "resourceID", skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extend_param: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_jobs: Option<Vec<ProgressJob>>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
}

fn step_job<T: std::fmt::Display>(
    step: &StepStatus<T>,
    federation_uid: &Option<String>,
    now: &str,
) -> ProgressJob {
    ProgressJob {
        kind: "Job",
        api_version: "v3",
        metadata: JobMetadata {
            uid: Some(step.uid.clone()),
            creation_timestamp: go(&step.creation_time),
            update_timestamp: go(&step.update_time),
            annotations: Annotations {
                current_timestamp: now.to_string(),
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
            phase: Some(step.phase.as_str()),
            reason: step.reason.clone(),
            start_time: go(&step.start_time),
            completion_time: go(&step.completion_time),
        },
    }
}

/// The job of an enablement (its teardown while it is being deleted), as of `now`.
pub fn progress(fe: &FederationEnablement, now: Timestamp) -> ProgressJob {
    let now = go_time(now);
    let status = fe.status.clone().unwrap_or_default();
    let federation_uid = fe.uid();
    let annotations = Annotations {
        current_timestamp: now.clone(),
    };
    let deleting = status.phase == Some(JobPhase::Deleting);
    let (type_, metadata, sub_jobs, job_status) =
        match status.teardown.as_ref().filter(|_| deleting) {
            Some(teardown) => (
                "DeleteFederation",
                JobMetadata {
                    uid: Some(teardown.job_uid.clone()),
                    creation_timestamp: go(&teardown.creation_time),
                    update_timestamp: go(&teardown.update_time),
                    annotations,
                },
                teardown
                    .steps
                    .iter()
                    .map(|s| step_job(s, &federation_uid, &now))
                    .collect(),
                JobStatus {
                    phase: Some(teardown.phase.as_str()),
                    reason: teardown.reason.clone(),
                    start_time: go(&teardown.start_time),
                    completion_time: go(&teardown.completion_time),
                },
            ),
            None => (
                "CreateFederationContainer",
                JobMetadata {
                    uid: status.job_uid.clone(),
                    creation_timestamp: go(&status.creation_time),
                    update_timestamp: go(&status.update_time),
                    annotations,
                },
                SubJobType::ALL
                    .iter()
                    .filter_map(|t| status.sub_job(*t))
                    .map(|s| step_job(s, &federation_uid, &now))
                    .collect(),
                JobStatus {
                    phase: status.phase.map(JobPhase::as_str),
                    reason: status.reason.clone(),
                    start_time: go(&status.start_time),
                    completion_time: go(&status.completion_time),
                },
            ),
        };
    ProgressJob {
        kind: "Job",
        api_version: "v3",
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

/// One item of the federation status list.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FederationItem {
    pub platform_uuid: String,
    pub platform_name: String,
    pub product_type: String,
    pub status: &'static str,
    pub health_status: &'static str,
    pub federation: Federation,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Federation {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sso_config_uuid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sso_config_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sso_client_uuid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    pub platform_uuid: String,
    pub product_type: String,
    /// CreateNetworkResource's `extendParam`, JSON-encoded (`"{}"` when none).
    pub metadata: String,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub federated_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

/// The page the list route answers.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct FederationList {
    pub items: Vec<FederationItem>,
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
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
        },
        health_status: health(&status),
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
            },
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
