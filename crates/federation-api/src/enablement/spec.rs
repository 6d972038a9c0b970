use std::borrow::Cow;
use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::FederationEnablementStatus;
use super::kubernetes_names::{
    DNS_SUBDOMAIN_PATTERN, DNS_SUBDOMAIN_RULE, LABEL_VALUE_RULE, MAX_MAP_ENTRIES, MAX_NAME_LENGTH,
    QUALIFIED_NAME_RULE, label_values_rule, qualified_keys_rule,
};

/// Enables multi-cluster federation for one fleet (cluster group) and reports its progress.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "federation.fleet.dev",
    version = "v1alpha1",
    kind = "FederationEnablement",
    plural = "federationenablements",
    namespaced,
    shortname = "fe",
    shortname = "fedenable",
    category = "federation",
    status = "FederationEnablementStatus",
    derive = "PartialEq",
    doc = "Enables multi-cluster federation for a fleet and reports the progress of every subjob.",
    printcolumn(name = "FLEET", type_ = "string", json_path = ".spec.clusterGroupID"),
    printcolumn(name = "PHASE", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "PROGRESS", type_ = "string", json_path = ".status.progress"),
    printcolumn(name = "AGE", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(
        name = "CURRENT",
        type_ = "string",
        json_path = ".status.currentSubJobs",
        priority = 1
    ),
    printcolumn(name = "REASON", type_ = "string", json_path = ".status.reason", priority = 1),
    validation = Rule::new(
        "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 40"
    )
    .message("metadata.name must be a DNS-1035 label (lower-case letters, digits, '-', starting with a letter) of at most 40 characters")
)]
#[serde(rename_all = "camelCase")]
pub struct FederationEnablementSpec {
    /// The fleet (cluster group) this federation is for. Unique across the cluster; immutable.
    #[serde(rename = "clusterGroupID")]
    #[schemars(length(min = 1, max = 64), pattern(r"^[a-z0-9-]+$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterGroupID is immutable"))]
    pub cluster_group_id: String,

    /// How the federation appears in the federation status list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,

    /// Where the federation control plane runs.
    #[serde(default)]
    pub control_plane: ControlPlane,

    /// The serving certificate of the federation API server.
    #[serde(default)]
    pub certificate: Certificate,

    /// The Service that exposes the federation API server.
    #[serde(default)]
    pub network: Network,

    /// The Helm chart that installs the federation control plane; `{}` (the default) is the
    /// controller's default Karmada chart.
    // Required in the schema, with a default, so that the CEL rules comparing it with its old
    // value always have one.
    #[schemars(extend("default" = {}))]
    pub chart: Chart,

    /// An OIDC configuration federated with the control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso: Option<Sso>,

    /// Time limit of one attempt of a subjob, in seconds.
    #[serde(default = "default_sub_job_timeout_seconds")]
    #[schemars(range(min = 10, max = 86400))]
    pub sub_job_timeout_seconds: i64,

    /// Retries of a failed subjob after its first attempt, as in a Kubernetes Job.
    #[serde(default = "default_backoff_limit")]
    #[schemars(range(min = 0, max = 20))]
    pub backoff_limit: i32,

    /// While true, no new subjob starts; running ones are still observed.
    #[serde(default)]
    pub suspend: bool,
}

fn default_sub_job_timeout_seconds() -> i64 {
    600
}

fn default_backoff_limit() -> i32 {
    3
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    /// Display name; the enablement's name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub name: Option<String>,
    #[serde(default = "default_product_type")]
    #[schemars(length(min = 1, max = 63))]
    pub product_type: String,
}

pub fn default_product_type() -> String {
    "kubernetes".to_string()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.__namespace__) ? self.__namespace__ : '') == (has(oldSelf.__namespace__) ? oldSelf.__namespace__ : '')")
        .message("controlPlane.namespace is immutable")
)]
pub struct ControlPlane {
    /// Namespace of the control plane; the enablement's own namespace when absent. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub namespace: Option<String>,
    /// Labels a node must carry to host the control plane: at most 64, with label keys and
    /// label values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "node_selector_schema")]
    pub node_selector: BTreeMap<String, String>,
    /// How many nodes to reserve for the control plane.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 7))]
    pub replicas: i32,
}

fn default_replicas() -> i32 {
    1
}

impl Default for ControlPlane {
    fn default() -> Self {
        Self {
            namespace: None,
            node_selector: BTreeMap::new(),
            replicas: default_replicas(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    /// Validity of the serving certificate, in days.
    #[serde(default = "default_validity_days")]
    #[schemars(range(min = 1, max = 10950))]
    pub validity_days: i64,
    /// Extra subject alternative names: DNS names or IP addresses.
    #[serde(default, rename = "extraSANs", skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(
            length(min = 1, max = 253),
            pattern(r"^(\*\.)?[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$|^[0-9a-fA-F:.]+$")
        )
    )]
    pub extra_sans: Vec<String>,
}

fn default_validity_days() -> i64 {
    365
}

impl Default for Certificate {
    fn default() -> Self {
        Self {
            validity_days: default_validity_days(),
            extra_sans: Vec::new(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum NetworkType {
    #[default]
    LoadBalancer,
    NodePort,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.elbID) || self.type == 'LoadBalancer'")
        .message("network.elbID requires network.type LoadBalancer")
)]
pub struct Network {
    /// `LoadBalancer` or `NodePort`.
    #[serde(default, rename = "type")]
    pub type_: NetworkType,
    /// Port of the federation API server on the Service.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Id of an existing cloud load balancer to use.
    #[serde(default, rename = "elbID", skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub elb_id: Option<String>,
    /// Service annotation that carries `elbID`.
    #[serde(default = "default_elb_id_annotation", rename = "elbIDAnnotation")]
    #[schemars(
        length(min = 1, max = 316),
        pattern(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
    )]
    pub elb_id_annotation: String,
    /// Annotations copied onto the Service: at most 64, with annotation keys.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "annotations_schema")]
    pub annotations: BTreeMap<String, String>,
}

fn default_port() -> i32 {
    5443
}

fn default_elb_id_annotation() -> String {
    "kubernetes.io/elb.id".to_string()
}

impl Default for Network {
    fn default() -> Self {
        Self {
            type_: NetworkType::default(),
            port: default_port(),
            elb_id: None,
            elb_id_annotation: default_elb_id_annotation(),
            annotations: BTreeMap::new(),
        }
    }
}

// What the chart installs, and so which values the controller gives it. (No doc comment: the
// CRD would show it instead of the `chart.profile` field's.)
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ChartProfile {
    /// A Karmada control plane from the Karmada chart (the controller's default chart).
    #[default]
    Karmada,
    /// Any chart, given the controller's facts under `federation` in its values.
    Generic,
}

/// The profile an absent `chart.profile` means: `Generic` when the spec names a repository
/// (every enablement written before profiles existed), `Karmada` otherwise.
const RESOLVED_PROFILE: &str =
    "(has(self.profile) ? self.profile == 'Generic' : has(self.repository))";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.releaseName) ? self.releaseName : '') == (has(oldSelf.releaseName) ? oldSelf.releaseName : '')")
        .message("chart.releaseName is immutable"),
    validation = Rule::new(format!("!{RESOLVED_PROFILE} || (has(self.repository) && has(self.name) && has(self.version))"))
        .message("the Generic chart profile requires chart.repository, chart.name and chart.version")
)]
pub struct Chart {
    /// `Karmada` or `Generic`. When absent: `Generic` if `repository` is set, else `Karmada`.
    /// `Generic` requires `repository`, `name` and `version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ChartProfile>,
    /// Chart repository: an `http(s)://` URL or an `oci://` registry path; the controller's
    /// `--default-chart-repository` when absent. Must be allowed by `--allowed-chart-repositories`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048), pattern(r"^(https?|oci)://[^\s]+$"))]
    pub repository: Option<String>,
    /// Chart name in the repository; the controller's `--default-chart-name` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
    )]
    pub name: Option<String>,
    /// Chart version (or a semver range); the controller's `--default-chart-version` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), pattern(r"^[^\s]+$"))]
    pub version: Option<String>,
    /// Helm release name; the enablement's name when absent. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 53), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub release_name: Option<String>,
    /// Values passed to the chart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub values: Option<serde_json::Map<String, serde_json::Value>>,
    /// Secret in the enablement's namespace with `username` and `password` for a private repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    /// Image that runs `helm`; must be in the controller's `--allowed-runner-images`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub runner_image: Option<String>,
    /// ClusterRole the installer Job is bound to; must be in `--allowed-installer-roles`.
    #[serde(default = "default_installer_cluster_role")]
    #[schemars(length(min = 1, max = 253))]
    pub installer_cluster_role: String,
    /// Bind the installer role cluster-wide (needs `--allow-cluster-scoped-charts`).
    #[serde(default)]
    pub cluster_scoped: bool,
}

pub(crate) fn default_installer_cluster_role() -> String {
    "federation-chart-installer".to_string()
}

/// `chart: {}`: the Karmada profile with the controller's default chart.
impl Default for Chart {
    fn default() -> Self {
        Self {
            profile: None,
            repository: None,
            name: None,
            version: None,
            release_name: None,
            values: None,
            credentials_secret_ref: None,
            runner_image: None,
            installer_cluster_role: default_installer_cluster_role(),
            cluster_scoped: false,
        }
    }
}

fn node_selector_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "maxProperties": MAX_MAP_ENTRIES,
        "additionalProperties": {"type": "string", "maxLength": MAX_NAME_LENGTH},
        "x-kubernetes-validations": [
            {
                "rule": qualified_keys_rule(),
                "message": format!("controlPlane.nodeSelector keys must be label keys: {QUALIFIED_NAME_RULE}"),
            },
            {
                "rule": label_values_rule(),
                "message": format!("controlPlane.nodeSelector values must be label values: {LABEL_VALUE_RULE}"),
            },
        ],
    })
}

fn annotations_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "maxProperties": MAX_MAP_ENTRIES,
        "additionalProperties": {"type": "string"},
        "x-kubernetes-validations": [{
            "rule": qualified_keys_rule(),
            "message": format!("network.annotations keys must be annotation keys: {QUALIFIED_NAME_RULE}"),
        }],
    })
}

fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(
    validation = Rule::new(format!("self.name.matches('{DNS_SUBDOMAIN_PATTERN}')"))
        .message(format!("chart.credentialsSecretRef.name must be a DNS subdomain: {DNS_SUBDOMAIN_RULE}").as_str())
)]
pub struct SecretRef {
    /// A Secret's name: a DNS subdomain.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sso {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub config_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub config_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub client_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), pattern(r"^https?://[^\s]+$"))]
    pub callback_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), pattern(r"^https?://[^\s]+$"))]
    pub issuer_url: Option<String>,
}

/// The longest name of a Karmada release (and so of its namespace): the chart names a Service
/// `<release>-aggregated-apiserver`, which must stay a DNS label (63 characters).
pub const MAX_KARMADA_RELEASE_LENGTH: usize = 41;

/// The Karmada control plane of fleet `cluster_group_id`: its namespace (unless
/// `controlPlane.namespace` names one) and always its Helm release. `karmada-<clusterGroupID>`,
/// unique cluster-wide as the fleet is; when that is too long, or ends with `-` (which a fleet id
/// may), its start and a hash of the whole id.
pub fn karmada_name(cluster_group_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let whole = format!("karmada-{cluster_group_id}");
    if whole.len() <= MAX_KARMADA_RELEASE_LENGTH && !whole.ends_with('-') {
        return whole;
    }
    let digest = Sha256::digest(cluster_group_id.as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let room = MAX_KARMADA_RELEASE_LENGTH - "karmada-".len() - 1 - hash.len();
    let start: String = cluster_group_id.chars().take(room).collect();
    let start = start.trim_end_matches('-');
    if start.is_empty() {
        format!("karmada-{hash}")
    } else {
        format!("karmada-{start}-{hash}")
    }
}

impl FederationEnablementSpec {
    /// The namespace the control plane runs in, given the enablement's own namespace:
    /// `controlPlane.namespace`, else the own namespace (Generic) or [`karmada_name`] (Karmada,
    /// never the tenant's own namespace).
    pub fn control_plane_namespace<'a>(&'a self, own_namespace: &'a str) -> Cow<'a, str> {
        match (&self.control_plane.namespace, self.chart.resolved_profile()) {
            (Some(namespace), _) => Cow::Borrowed(namespace),
            (None, ChartProfile::Generic) => Cow::Borrowed(own_namespace),
            (None, ChartProfile::Karmada) => Cow::Owned(karmada_name(&self.cluster_group_id)),
        }
    }

    /// The Helm release name, given the enablement's name: `chart.releaseName`, else the
    /// enablement's name (Generic); always [`karmada_name`] for Karmada, whose chart makes
    /// cluster-wide objects named after the release.
    pub fn release_name<'a>(&'a self, name: &'a str) -> Cow<'a, str> {
        match self.chart.resolved_profile() {
            ChartProfile::Generic => {
                Cow::Borrowed(self.chart.release_name.as_deref().unwrap_or(name))
            }
            ChartProfile::Karmada => Cow::Owned(karmada_name(&self.cluster_group_id)),
        }
    }
}

impl Chart {
    /// `profile`, or what its absence means: `Generic` when a repository is named, else
    /// `Karmada` (the same rule as the CRD's CEL).
    pub fn resolved_profile(&self) -> ChartProfile {
        match (self.profile, &self.repository) {
            (Some(profile), _) => profile,
            (None, Some(_)) => ChartProfile::Generic,
            (None, None) => ChartProfile::Karmada,
        }
    }
}

#[cfg(test)]
mod karmada_name_tests {
    use super::*;

    fn is_dns_label(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= MAX_KARMADA_RELEASE_LENGTH
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    }

    #[test]
    fn a_short_fleet_id_names_its_karmada_plainly() {
        assert_eq!(karmada_name("fleet-a"), "karmada-fleet-a");
    }

    #[test]
    fn long_or_dash_ended_fleet_ids_are_fitted_and_stay_distinct() {
        let long_a = "a".repeat(64);
        let long_b = format!("{}b", "a".repeat(63));
        let names = [
            karmada_name(&long_a),
            karmada_name(&long_b),
            karmada_name("fleet-"),
            karmada_name("-"),
            karmada_name(&"-".repeat(64)),
        ];
        for name in &names {
            assert!(is_dns_label(name), "{name}");
        }
        assert_ne!(names[0], names[1], "ids that share a start differ by hash");
        assert_ne!(karmada_name("fleet-"), karmada_name("fleet"));
    }
}
