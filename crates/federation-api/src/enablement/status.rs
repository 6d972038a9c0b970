use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Phase of a job run (and of a teardown).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum JobPhase {
    Pending,
    Running,
    Success,
    Failed,
    Deleting,
}

impl JobPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            JobPhase::Pending => "Pending",
            JobPhase::Running => "Running",
            JobPhase::Success => "Success",
            JobPhase::Failed => "Failed",
            JobPhase::Deleting => "Deleting",
        }
    }
}

/// Phase of one subjob or teardown step.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum SubJobPhase {
    Pending,
    Running,
    Success,
    Failed,
}

impl SubJobPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            SubJobPhase::Pending => "Pending",
            SubJobPhase::Running => "Running",
            SubJobPhase::Success => "Success",
            SubJobPhase::Failed => "Failed",
        }
    }
}

/// The four subjobs of an enablement, in DAG order.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub enum SubJobType {
    CreateNode,
    CreateNetworkResource,
    CreateCert,
    InstallFederationChart,
}

impl SubJobType {
    /// All subjobs in DAG order: the order status lists them in.
    pub const ALL: [SubJobType; 4] = [
        SubJobType::CreateNode,
        SubJobType::CreateNetworkResource,
        SubJobType::CreateCert,
        SubJobType::InstallFederationChart,
    ];

    /// Subjobs that must have succeeded before this one starts.
    pub fn dependencies(self) -> &'static [SubJobType] {
        match self {
            SubJobType::CreateNode | SubJobType::CreateNetworkResource => &[],
            SubJobType::CreateCert => &[SubJobType::CreateNode, SubJobType::CreateNetworkResource],
            SubJobType::InstallFederationChart => &[SubJobType::CreateCert],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SubJobType::CreateNode => "CreateNode",
            SubJobType::CreateNetworkResource => "CreateNetworkResource",
            SubJobType::CreateCert => "CreateCert",
            SubJobType::InstallFederationChart => "InstallFederationChart",
        }
    }

    /// Short form used in object names and label values.
    pub fn slug(self) -> &'static str {
        match self {
            SubJobType::CreateNode => "node",
            SubJobType::CreateNetworkResource => "network",
            SubJobType::CreateCert => "cert",
            SubJobType::InstallFederationChart => "chart",
        }
    }
}

impl std::str::FromStr for SubJobType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SubJobType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown subjob type {s:?}"))
    }
}

impl std::fmt::Display for SubJobType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The four teardown steps, run in this order when an enablement is deleted.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
pub enum TeardownStepType {
    UninstallFederationChart,
    DeleteNetworkResource,
    DeleteCert,
    ReleaseNode,
}

impl TeardownStepType {
    pub const ALL: [TeardownStepType; 4] = [
        TeardownStepType::UninstallFederationChart,
        TeardownStepType::DeleteNetworkResource,
        TeardownStepType::DeleteCert,
        TeardownStepType::ReleaseNode,
    ];

    /// The subjob whose work this step undoes.
    pub fn undoes(self) -> SubJobType {
        match self {
            TeardownStepType::UninstallFederationChart => SubJobType::InstallFederationChart,
            TeardownStepType::DeleteNetworkResource => SubJobType::CreateNetworkResource,
            TeardownStepType::DeleteCert => SubJobType::CreateCert,
            TeardownStepType::ReleaseNode => SubJobType::CreateNode,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TeardownStepType::UninstallFederationChart => "UninstallFederationChart",
            TeardownStepType::DeleteNetworkResource => "DeleteNetworkResource",
            TeardownStepType::DeleteCert => "DeleteCert",
            TeardownStepType::ReleaseNode => "ReleaseNode",
        }
    }
}

impl std::fmt::Display for TeardownStepType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Progress of one subjob (`T` = [`SubJobType`]) or teardown step (`T` = [`TeardownStepType`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepStatus<T> {
    #[serde(rename = "type")]
    pub type_: T,
    /// Unique id of this subjob record; kept across retries of the same job run.
    pub uid: String,
    pub phase: SubJobPhase,
    /// A CamelCase word that scripts can match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Attempts started in this job run.
    #[serde(default)]
    pub attempts: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<MicroTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<MicroTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<MicroTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<MicroTime>,
    /// Start of the current attempt: its timeout counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_start_time: Option<MicroTime>,
    /// When a failed attempt is retried (exponential backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_time: Option<MicroTime>,
    /// Results other systems read: `JobExtendParamKeyElbID`, `JobExtendParamKeyEndpoint`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extend_param: BTreeMap<String, String>,
}

pub type SubJobStatus = StepStatus<SubJobType>;
pub type TeardownStepStatus = StepStatus<TeardownStepType>;

/// Progress of the teardown that runs when the enablement is deleted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeardownStatus {
    #[serde(rename = "jobUID")]
    pub job_uid: String,
    pub phase: JobPhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<MicroTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<MicroTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<MicroTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<MicroTime>,
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub steps: Vec<TeardownStepStatus>,
}

/// Observed state of a FederationEnablement: the current job run, its subjobs and the teardown.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FederationEnablementStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<JobPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Unique id of the current job run.
    #[serde(default, rename = "jobUID", skip_serializing_if = "Option::is_none")]
    pub job_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<MicroTime>,
    /// Last change of anything in status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<MicroTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<MicroTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<MicroTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Hash of the spec (without `suspend`) the current job run was started for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<String>,
    /// The last value of the retry annotation that was acted on (or seen at creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_retry: Option<String>,
    /// `<succeeded>/<total>` subjobs of the current job (teardown steps while deleting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Comma-joined subjobs (teardown steps while deleting) running now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_sub_jobs: Option<String>,
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub sub_jobs: Vec<SubJobStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teardown: Option<TeardownStatus>,
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Namespace the control plane runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_namespace: Option<String>,
    /// Secret (in `controlPlaneNamespace`) holding the control plane's kubeconfig, once it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_secret_name: Option<String>,
    /// Chart version last installed by InstallFederationChart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart_version: Option<String>,
    /// What the enablement ever created and where. Never reset by a new run, a retry or a spec
    /// change, only extended: the teardown is driven by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<CreatedRecord>,
}

/// What an enablement ever created and where, written when a subjob's attempt starts (before
/// its executor acts) and only ever extended. The teardown undoes what it names, with the
/// release, runner image and installer role of the last install (checked again against the
/// controller's allowlists).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedRecord {
    /// The subjobs that ever started: what their teardown steps undo may exist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub_jobs: Vec<SubJobType>,
    /// Every control-plane namespace a subjob ever ran for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// The control-plane namespace of the last run that started a subjob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_namespace: Option<String>,
    /// The Helm release of the last install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// The namespace of that release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_namespace: Option<String>,
    /// The runner image of the last install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_image: Option<String>,
    /// The ClusterRole the last install's installer was bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installer_cluster_role: Option<String>,
    /// The last install bound its installer role cluster-wide.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster_scoped: bool,
    /// The chart profile of the last install: what its teardown cleans up after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<super::ChartProfile>,
}

impl FederationEnablementStatus {
    pub fn sub_job(&self, type_: SubJobType) -> Option<&SubJobStatus> {
        self.sub_jobs.iter().find(|s| s.type_ == type_)
    }

    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// The endpoint (`host:port`) recorded by CreateNetworkResource.
    pub fn endpoint(&self) -> Option<&str> {
        self.sub_job(SubJobType::CreateNetworkResource)
            .and_then(|s| s.extend_param.get(super::EXTEND_PARAM_ENDPOINT))
            .map(String::as_str)
    }

    /// The chart version InstallFederationChart was pinned to when it started in this run.
    pub fn pinned_chart_version(&self) -> Option<&str> {
        self.sub_job(SubJobType::InstallFederationChart)
            .and_then(|s| s.extend_param.get(super::EXTEND_PARAM_CHART_VERSION))
            .map(String::as_str)
    }
}
