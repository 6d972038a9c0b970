//! The `FederationEnablement` custom resource: spec, status and the names clients depend on.
//!
//! The CRD under `crds/` is generated from these types (`federation-controller crd`).

pub mod kubernetes_names;
mod spec;
mod status;

pub use spec::*;
pub use status::*;

/// API group of every resource this controller defines.
pub const GROUP: &str = "federation.fleet.dev";
/// Finalizer that keeps an enablement until its teardown has finished.
pub const FINALIZER: &str = "federation.fleet.dev/cleanup";
/// Annotation whose new value asks the controller to retry a failed job.
pub const RETRY_ANNOTATION: &str = "federation.fleet.dev/retry";
/// Annotation on a namespace the controller created; its value is the enablement's uid.
pub const CREATED_BY_ANNOTATION: &str = "federation.fleet.dev/created-by";
/// Label (value `"true"`) that opens an existing namespace to foreign control planes, set by a
/// cluster admin; the controller sets it on the namespaces it creates.
pub const CONTROL_PLANE_NAMESPACE_LABEL: &str = "federation.fleet.dev/control-plane-namespace";
/// Node label that reserves a node for one enablement's control plane; the value is its uid.
pub const CONTROL_PLANE_NODE_LABEL: &str = "federation.fleet.dev/control-plane";
/// Label naming the enablement that owns an object.
pub const ENABLEMENT_LABEL: &str = "federation.fleet.dev/enablement";
/// Label naming the namespace of the enablement that owns an object.
pub const ENABLEMENT_NAMESPACE_LABEL: &str = "federation.fleet.dev/enablement-namespace";
/// Label carrying the uid of the enablement that owns an object: the name labels can be written
/// by anyone who may create objects in the namespace, the uid is not known before the enablement
/// exists.
pub const ENABLEMENT_UID_LABEL: &str = "federation.fleet.dev/enablement-uid";
/// Label naming the subjob (or teardown step) that created an object.
pub const SUBJOB_LABEL: &str = "federation.fleet.dev/subjob";
/// The standard managed-by label and the value this controller writes.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGER: &str = "federation-controller";

/// Key of `extendParam` that holds the load balancer id.
pub const EXTEND_PARAM_ELB_ID: &str = "JobExtendParamKeyElbID";
/// Key of `extendParam` that holds the federation API server endpoint (`host:port`).
pub const EXTEND_PARAM_ENDPOINT: &str = "JobExtendParamKeyEndpoint";
/// Key of `extendParam` (of InstallFederationChart) that pins the chart version of a run, so a
/// new `--default-chart-version` never changes what a started run installs.
pub const EXTEND_PARAM_CHART_VERSION: &str = "JobExtendParamKeyChartVersion";
/// CreateCert's extendParam: the kubeconfig Secret it keeps (Karmada profile).
pub const EXTEND_PARAM_KUBECONFIG_SECRET: &str = "JobExtendParamKeyKubeconfigSecret";
/// Label of the Karmada API server's pods, the load-balancer Service's selector (value: the
/// enablement's uid).
pub const APISERVER_POD_LABEL: &str = "federation.fleet.dev/apiserver";
/// Pod annotation of every Karmada component: a hash of the certificate material, so that a
/// renewal restarts them.
pub const CERTIFICATE_HASH_ANNOTATION: &str = "federation.fleet.dev/certificate-hash";

/// Longest `metadata.name` the CRD accepts, so that every derived name stays within 63 characters.
pub const MAX_NAME_LEN: usize = 40;
