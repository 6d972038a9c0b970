//! The JSON shapes clients depend on, built from a FederationEnablement's status.
//!
//! The types are `federation-api`'s, shared with the clients that read them; this module builds
//! them from the controller's view of an enablement.

use bytes::Bytes;
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
    now: Option<GoTime>,
) -> ProgressJob {
    ProgressJob {
        kind: JOB_KIND.to_string(),
        api_version: JOB_API_VERSION.to_string(),
        metadata: JobMetadata {
            uid: Some(step.uid.clone()),
            creation_timestamp: go(&step.creation_time),
            update_timestamp: go(&step.update_time),
            annotations: Annotations {
                current_timestamp: now,
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
    job_at(fe, Some(GoTime(now)))
}

/// The job with `now` as every job's `currentTimestamp` (None: annotations left empty).
fn job_at(fe: &FederationEnablement, now: Option<GoTime>) -> ProgressJob {
    let status = fe.status.clone().unwrap_or_default();
    let federation_uid = fe.uid();
    let annotations = Annotations {
        current_timestamp: now,
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

/// The progress route's answer for one enablement, serialized once per change: the JSON of
/// [`progress`] with its annotations left empty, and where each job's `currentTimestamp` goes.
/// A request then writes only its own time into it, and gets the bytes [`progress`] would give.
#[derive(Debug)]
pub struct ProgressBody {
    /// Boxed slices, not vectors: held for every enablement, they keep no spare capacity.
    json: Box<[u8]>,
    /// Offsets into `json` just inside each `"annotations":{}`, in order.
    stamps: Box<[usize]>,
}

/// How an empty annotations object serializes; `currentTimestamp` goes before its last byte.
const EMPTY_ANNOTATIONS: &[u8] = br#""annotations":{}"#;

impl ProgressBody {
    pub fn new(fe: &FederationEnablement) -> Self {
        let json = serde_json::to_vec(&job_at(fe, None)).unwrap_or_default();
        // Only a key can be followed by `":`: inside a JSON string every `"` is escaped, and
        // `annotations` is the only object-valued key of that name in a job (extendParam's
        // values are strings). So each match is one job's annotations.
        let stamps = json
            .windows(EMPTY_ANNOTATIONS.len())
            .enumerate()
            .filter(|(_, window)| *window == EMPTY_ANNOTATIONS)
            .map(|(at, _)| at + EMPTY_ANNOTATIONS.len() - 1)
            .collect();
        ProgressBody {
            json: json.into_boxed_slice(),
            stamps,
        }
    }

    /// The job as of `now`, byte for byte what serializing [`progress`] gives.
    pub fn at(&self, now: Timestamp) -> Bytes {
        // Go's time format is digits, spaces and `-:.+UTC`: nothing JSON escapes.
        let mut stamp = String::with_capacity(64);
        stamp.push_str(r#""currentTimestamp":""#);
        push_go_time(&mut stamp, now);
        stamp.push('"');
        let stamp = stamp.as_bytes();
        let mut out = Vec::with_capacity(self.json.len() + stamp.len() * self.stamps.len());
        let mut from = 0;
        for &at in &self.stamps {
            out.extend_from_slice(&self.json[from..at]);
            out.extend_from_slice(stamp);
            from = at;
        }
        out.extend_from_slice(&self.json[from..]);
        Bytes::from(out)
    }
}

/// One item of the list route, serialized once per change.
pub fn item_json(fe: &FederationEnablement) -> Bytes {
    // Boxed first: `Bytes` would keep the vector's spare capacity for every enablement.
    let json = serde_json::to_vec(&federation_item(fe)).unwrap_or_default();
    Bytes::from(json.into_boxed_slice())
}

/// The list route's page from items serialized by [`item_json`]: the bytes serializing a
/// [`FederationList`] of them gives.
pub fn list_json<'a>(
    items: impl IntoIterator<Item = &'a Bytes>,
    total: usize,
    limit: usize,
    offset: usize,
) -> Bytes {
    let mut out = b"{\"items\":[".to_vec();
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.extend_from_slice(
        format!("],\"total\":{total},\"limit\":{limit},\"offset\":{offset}}}").as_bytes(),
    );
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn enablement(status: Value) -> FederationEnablement {
        serde_json::from_value(json!({
            "apiVersion": "federation.fleet.dev/v1alpha1",
            "kind": "FederationEnablement",
            "metadata": {"name": "fe", "namespace": "ns", "uid": "uid-1"},
            "spec": {"clusterGroupID": "fleet", "chart": {"repository": "oci://r/c", "name": "c", "version": "1"}},
            "status": status,
        }))
        .expect("enablement")
    }

    /// A running job whose words (reasons, extendParam) are `word`.
    fn running(word: &str) -> FederationEnablement {
        let step = |type_: &str| {
            json!({"type": type_, "uid": format!("u-{type_}"), "phase": "Running", "attempts": 1,
                "reason": word, "creationTime": "2023-07-31T13:16:20.715779Z",
                "extendParam": {word: word, "annotations": "{}"}})
        };
        enablement(json!({
            "phase": "Running", "reason": word, "jobUID": "job-1",
            "creationTime": "2023-07-31T13:16:20.715779Z",
            "subJobs": [step("CreateNode"), step("CreateNetworkResource")],
        }))
    }

    fn deleting() -> FederationEnablement {
        enablement(json!({
            "phase": "Deleting", "jobUID": "job-1",
            "teardown": {"jobUID": "t", "phase": "Running", "steps": [
                {"type": "UninstallFederationChart", "uid": "t-1", "phase": "Running", "attempts": 1},
                {"type": "ReleaseNode", "uid": "t-2", "phase": "Pending", "attempts": 0},
            ]},
        }))
    }

    fn now() -> Timestamp {
        "2026-01-15T08:00:00.25Z".parse().expect("now")
    }

    #[test]
    fn the_progress_body_is_the_serialized_job_byte_for_byte() {
        for fe in [running("Running"), deleting(), enablement(json!(null))] {
            let expected = serde_json::to_vec(&progress(&fe, now())).expect("json");
            assert_eq!(
                ProgressBody::new(&fe).at(now()),
                expected,
                "{}",
                String::from_utf8_lossy(&expected)
            );
        }
    }

    #[test]
    fn every_job_of_the_progress_body_carries_the_time_of_the_request() {
        let body = ProgressBody::new(&running("Running"));
        for now in [now(), "2027-03-01T00:00:00Z".parse().expect("later")] {
            let job: ProgressJob = serde_json::from_slice(&body.at(now)).expect("job");
            let sub_jobs = job.spec.sub_jobs.clone().unwrap_or_default();
            assert_eq!(sub_jobs.len(), 2);
            for stamp in std::iter::once(&job)
                .chain(&sub_jobs)
                .map(|j| j.metadata.annotations.current_timestamp)
            {
                assert_eq!(stamp, Some(GoTime(now)));
            }
        }
    }

    #[test]
    fn a_list_page_is_the_serialized_list_byte_for_byte() {
        let items = [running("a"), deleting()];
        for page in [&items[..0], &items[..1], &items[..]] {
            let expected = serde_json::to_vec(&FederationList {
                items: page.iter().map(federation_item).collect(),
                total: 7,
                limit: 20,
                offset: 3,
            })
            .expect("json");
            let json: Vec<Bytes> = page.iter().map(item_json).collect();
            assert_eq!(list_json(&json, 7, 20, 3), expected);
        }
    }

    proptest! {
        /// Whatever the words, even ones that spell annotations, only the jobs' own
        /// annotations get the time.
        #[test]
        fn any_words_keep_the_progress_body_byte_for_byte(word in ".{0,40}|.*\"annotations\":\\{\\}.*") {
            let fe = running(&word);
            let expected = serde_json::to_vec(&progress(&fe, now())).expect("json");
            prop_assert_eq!(ProgressBody::new(&fe).at(now()), expected);
        }
    }
}
