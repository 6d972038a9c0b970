//! Gates checked before a job creates anything: the controller's allowlists (so a user who may
//! create an enablement cannot escalate through it), what the Karmada chart profile needs, and
//! the one-enablement-per-fleet rule.

use std::collections::BTreeMap;

use kube::ResourceExt;

use crate::api::kubernetes_names::{
    DNS_SUBDOMAIN_RULE, LABEL_VALUE_RULE, QUALIFIED_NAME_RULE, is_dns_subdomain, is_label_value,
    is_qualified_name,
};
use crate::api::{Chart, ChartProfile, FederationEnablement, FederationEnablementSpec};
use crate::chart_source::ChartDefaults;
use crate::job::{Blocked, InstallFacts, reasons};
// The owner rule lives with the types: the terminal view finds a fleet's enablement by it too.
pub use federation_api::fleet::{FleetSeniority, fleet_owner, fleet_seniority};

/// The allowlists, from the controller's flags.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Runner images a chart may use; the first is the default.
    pub allowed_runner_images: Vec<String>,
    pub allowed_installer_roles: Vec<String>,
    pub allow_cluster_scoped_charts: bool,
    pub allow_foreign_control_plane_namespaces: bool,
    /// Chart repositories besides the default one (`--allowed-chart-repositories`), each
    /// allowing itself and the paths under it.
    pub allowed_chart_repositories: Vec<String>,
    /// The chart of the Karmada profile (`--default-chart-*`); its repository is always allowed.
    pub chart_defaults: ChartDefaults,
    /// The controller watches only this namespace (`--namespace`).
    pub watch_namespace: Option<String>,
    /// Where the controller itself runs: never a foreign control-plane namespace.
    pub controller_namespace: Option<String>,
    /// Prefixes the keys of `network.annotations` (and `network.elbIDAnnotation`, when
    /// `elbID` is set) must start with (`--allowed-service-annotation-prefixes`); empty: any.
    pub allowed_service_annotation_prefixes: Vec<String>,
    /// Whether `network.elbID` may be set (`--allow-elb-id`).
    pub allow_elb_id: bool,
    /// Who may claim a fleet id (`--fleet-entitlement`).
    pub fleet_entitlement: FleetEntitlement,
}

/// Who may claim a `clusterGroupID`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FleetEntitlement {
    /// Anyone: the oldest enablement naming a fleet owns it.
    #[default]
    None,
    /// Only an enablement whose namespace lists the id in the annotation
    /// [`FLEETS_ANNOTATION`] (comma-separated, or `*`).
    NamespaceAnnotation,
}

/// Annotation of a namespace: the fleet ids its enablements may claim (comma-separated, or `*`).
pub const FLEETS_ANNOTATION: &str = "federation.fleet.dev/fleets";

/// Whether a namespace with these annotations lists `fleet` in [`FLEETS_ANNOTATION`].
pub fn namespace_lists_fleet(
    fleet: &str,
    namespace_annotations: Option<&BTreeMap<String, String>>,
) -> bool {
    namespace_annotations
        .and_then(|a| a.get(FLEETS_ANNOTATION))
        .is_some_and(|list| {
            list.split(',')
                .map(str::trim)
                .any(|entry| entry == "*" || entry == fleet)
        })
}

/// `Blocked` with `FleetNotEntitled` when the enablement's namespace does not list its fleet.
pub fn check_entitlement(
    enablement: &FederationEnablement,
    namespace_annotations: Option<&BTreeMap<String, String>>,
) -> Option<Blocked> {
    let fleet = &enablement.spec.cluster_group_id;
    if namespace_lists_fleet(fleet, namespace_annotations) {
        return None;
    }
    Some(Blocked {
        reason: reasons::FLEET_NOT_ENTITLED,
        message: format!(
            "namespace {} may not claim fleet {fleet:?}: its annotation {FLEETS_ANNOTATION} does not list it; this enablement proceeds once it does",
            enablement.namespace().unwrap_or_default()
        ),
    })
}

/// The ClusterRole the Karmada chart's installer needs; never given to a Generic chart.
pub const CLUSTER_ADMIN: &str = "cluster-admin";

/// Namespaces of the cluster itself: never a foreign control-plane namespace, whatever the flags.
pub const RESERVED_NAMESPACES: [&str; 4] =
    ["kube-system", "kube-public", "kube-node-lease", "default"];

impl Policy {
    /// The image used when `chart.runnerImage` is absent.
    pub fn default_runner_image(&self) -> &str {
        self.allowed_runner_images
            .first()
            .map(String::as_str)
            .unwrap_or(DEFAULT_RUNNER_IMAGE)
    }

    /// The role an installer is bound to when the one recorded is refused now: the spec's
    /// default when allowed, else the first allowed.
    pub fn default_installer_role(&self) -> &str {
        let allowed = &self.allowed_installer_roles;
        if allowed.iter().any(|role| role == DEFAULT_INSTALLER_ROLE) {
            return DEFAULT_INSTALLER_ROLE;
        }
        allowed
            .first()
            .map(String::as_str)
            .unwrap_or(DEFAULT_INSTALLER_ROLE)
    }

    /// What a teardown undoes the install with: the recorded facts, each checked again against
    /// today's allowlists, since a tenant may be able to write the status. A refused runner
    /// image or installer role gives way to the defaults; a refused namespace to the live
    /// spec's (or the enablement's own); a cluster-wide binding needs today's flags.
    /// `cluster-admin` stays only for a Karmada profile's own namespace.
    pub fn checked_install(
        &self,
        enablement: &FederationEnablement,
        recorded: InstallFacts,
        live: &InstallFacts,
    ) -> InstallFacts {
        let own = enablement.namespace().unwrap_or_default();
        let namespace_allowed = |namespace: &str| {
            namespace == own
                || (self.watch_namespace.is_none() && self.check_reserved(namespace).is_none())
        };
        let namespace = |recorded: String, live: &str| {
            if namespace_allowed(&recorded) {
                recorded
            } else if namespace_allowed(live) {
                live.to_string()
            } else {
                own.clone()
            }
        };
        let control_plane_namespace = namespace(
            recorded.control_plane_namespace,
            &live.control_plane_namespace,
        );
        let release_namespace = namespace(recorded.release_namespace, &live.release_namespace);
        let mut namespaces: Vec<String> = recorded
            .namespaces
            .into_iter()
            .filter(|namespace| namespace_allowed(namespace))
            .collect();
        for namespace in [&control_plane_namespace, &release_namespace] {
            if !namespaces.contains(namespace) {
                namespaces.push(namespace.clone());
            }
        }
        // The controller also makes sure it created that namespace (see `without_cluster_admin`).
        let karmada_namespace =
            recorded.profile == ChartProfile::Karmada && release_namespace != own;
        let role = recorded.installer_cluster_role;
        let role_allowed = self.allowed_installer_roles.contains(&role)
            && (role != CLUSTER_ADMIN || karmada_namespace);
        InstallFacts {
            control_plane_namespace,
            namespaces,
            release: recorded.release,
            release_namespace,
            runner_image: if self.allowed_runner_images.contains(&recorded.runner_image) {
                recorded.runner_image
            } else {
                self.default_runner_image().to_string()
            },
            installer_cluster_role: if role_allowed {
                role
            } else {
                self.default_installer_role().to_string()
            },
            cluster_scoped: recorded.cluster_scoped
                && self.allow_cluster_scoped_charts
                && self.watch_namespace.is_none(),
            profile: recorded.profile,
        }
    }

    /// `installed` without `cluster-admin`: for a release namespace this enablement did not
    /// create, which a tenant may use (the Karmada profile's must be its own).
    pub fn without_cluster_admin(&self, mut installed: InstallFacts) -> InstallFacts {
        if installed.installer_cluster_role == CLUSTER_ADMIN {
            installed.installer_cluster_role = self.default_installer_role().to_string();
        }
        installed
    }

    /// Why this enablement may not run, if it may not.
    pub fn check(&self, enablement: &FederationEnablement) -> Option<Blocked> {
        let own_namespace = enablement.namespace().unwrap_or_default();
        let spec = &enablement.spec;
        let chart = &spec.chart;
        if let Some(blocked) = check_names(spec) {
            return Some(blocked);
        }
        if let Some(blocked) = self.check_repository(chart) {
            return Some(blocked);
        }
        if let Some(image) = &chart.runner_image
            && !self.allowed_runner_images.contains(image)
        {
            return not_allowed(format!(
                "chart.runnerImage {image:?} is not in the controller's --allowed-runner-images"
            ));
        }
        if !self
            .allowed_installer_roles
            .contains(&chart.installer_cluster_role)
        {
            return not_allowed(format!(
                "chart.installerClusterRole {:?} is not in the controller's --allowed-installer-roles",
                chart.installer_cluster_role
            ));
        }
        if chart.cluster_scoped {
            if !self.allow_cluster_scoped_charts {
                return not_allowed(
                    "chart.clusterScoped needs the controller's --allow-cluster-scoped-charts"
                        .to_string(),
                );
            }
            if self.watch_namespace.is_some() {
                return not_allowed(
                    "chart.clusterScoped is refused while the controller watches one namespace (--namespace)"
                        .to_string(),
                );
            }
        }
        if let Some(blocked) = self.check_service_annotations(enablement) {
            return Some(blocked);
        }
        match chart.resolved_profile() {
            ChartProfile::Generic => self.check_foreign_namespace(spec, &own_namespace),
            ChartProfile::Karmada => self.check_karmada(spec, &own_namespace),
        }
    }

    /// `NotAllowed` for a control-plane namespace other than the enablement's own, unless the
    /// flags allow one and it is not reserved; and for `cluster-admin` (Generic profile).
    fn check_foreign_namespace(
        &self,
        spec: &FederationEnablementSpec,
        own_namespace: &str,
    ) -> Option<Blocked> {
        // Its installer account lives in a namespace tenants use: whoever may run pods there
        // could act as it. The Karmada profile's lives in a namespace of its own.
        if spec.chart.installer_cluster_role == CLUSTER_ADMIN {
            return not_allowed(
                "chart.installerClusterRole cluster-admin is allowed for the Karmada profile only, \
                 whose installer runs in a namespace no tenant uses"
                    .to_string(),
            );
        }
        let control_plane = spec.control_plane_namespace(own_namespace);
        let control_plane = control_plane.as_ref();
        if control_plane == own_namespace {
            return None;
        }
        if let Some(blocked) = self.check_reserved(control_plane) {
            return Some(blocked);
        }
        if !self.allow_foreign_control_plane_namespaces {
            return not_allowed(format!(
                "controlPlane.namespace {control_plane:?} is not the enablement's namespace; \
                 that needs the controller's --allow-foreign-control-plane-namespaces"
            ));
        }
        if self.watch_namespace.is_some() {
            return not_allowed(format!(
                "controlPlane.namespace {control_plane:?} is refused while the controller watches one namespace (--namespace)"
            ));
        }
        None
    }

    /// `NotAllowed` for a namespace of the cluster itself or of the controller.
    fn check_reserved(&self, control_plane: &str) -> Option<Blocked> {
        if RESERVED_NAMESPACES.contains(&control_plane)
            || self.controller_namespace.as_deref() == Some(control_plane)
        {
            return not_allowed(format!(
                "controlPlane.namespace {control_plane:?} is reserved (kube-system, \
                 kube-public, kube-node-lease, default and the controller's own namespace \
                 never hold a foreign control plane)"
            ));
        }
        None
    }

    /// The Karmada profile: a namespace of its own (never the tenant's, never a reserved one),
    /// a release named by the controller, and a cluster-scoped install (its chart makes CRDs,
    /// webhooks and a ClusterRole that may do anything, so its installer must hold as much).
    fn check_karmada(
        &self,
        spec: &FederationEnablementSpec,
        own_namespace: &str,
    ) -> Option<Blocked> {
        let chart = &spec.chart;
        if let Some(release) = &chart.release_name {
            return not_allowed(format!(
                "chart.releaseName {release:?} is refused for the Karmada profile: its release is \
                 named {:?} after the fleet, because its chart makes cluster-wide objects named \
                 after the release",
                spec.release_name("")
            ));
        }
        if !chart.cluster_scoped {
            return not_allowed(
                "the Karmada chart installs cluster-wide objects (CRDs, webhooks, a ClusterRole \
                 that may do anything): set chart.clusterScoped: true and \
                 chart.installerClusterRole: cluster-admin (the controller needs \
                 --allow-cluster-scoped-charts and cluster-admin in --allowed-installer-roles)"
                    .to_string(),
            );
        }
        let control_plane = spec.control_plane_namespace(own_namespace);
        if control_plane == own_namespace {
            return not_allowed(format!(
                "controlPlane.namespace {own_namespace:?} is the enablement's own namespace: a \
                 Karmada control plane needs a namespace of its own, which no tenant uses"
            ));
        }
        self.check_reserved(&control_plane)
    }

    /// `NotAllowed` for an `elbID` the flags turn off, or a Service annotation outside
    /// `--allowed-service-annotation-prefixes`.
    fn check_service_annotations(&self, enablement: &FederationEnablement) -> Option<Blocked> {
        let network = &enablement.spec.network;
        if network.elb_id.is_some() && !self.allow_elb_id {
            return not_allowed(
                "network.elbID is turned off by the controller's --allow-elb-id=false".to_string(),
            );
        }
        // The elbID annotation is written only with an elbID: its default needs no prefix.
        let elb_id_annotation = network
            .elb_id
            .as_ref()
            .map(|_| ("network.elbIDAnnotation", &network.elb_id_annotation));
        let refused = network
            .annotations
            .keys()
            .map(|key| ("network.annotations", key))
            .chain(elb_id_annotation)
            .find(|(_, key)| !self.service_annotation_allowed(key));
        let (field, key) = refused?;
        not_allowed(format!(
            "{field} {key:?} starts with none of the controller's \
             --allowed-service-annotation-prefixes"
        ))
    }

    fn service_annotation_allowed(&self, key: &str) -> bool {
        let prefixes = &self.allowed_service_annotation_prefixes;
        prefixes.is_empty()
            || prefixes
                .iter()
                .any(|prefix| key.starts_with(prefix.as_str()))
    }

    /// `NotAllowed` unless the chart's repository (the default one when absent) is the default
    /// repository or under an entry of `--allowed-chart-repositories`.
    fn check_repository(&self, chart: &Chart) -> Option<Blocked> {
        let repository = self.chart_defaults.repository(chart);
        let default = &self.chart_defaults.repository;
        if same_repository(repository, default)
            || repository_allowed(repository, &self.allowed_chart_repositories)
        {
            return None;
        }
        not_allowed(format!(
            "chart.repository {repository:?} is neither the controller's --default-chart-repository \
             nor under one of its --allowed-chart-repositories"
        ))
    }
}

/// `NotAllowed` unless the values the controller puts into a label selector, onto a Service or
/// into a Secret's name follow the Kubernetes rules. The CRD refuses such values at apply; this
/// holds enablements stored before it did (a `,` in a nodeSelector value would add a term to
/// the node selector).
fn check_names(spec: &FederationEnablementSpec) -> Option<Blocked> {
    let node_selector = &spec.control_plane.node_selector;
    if let Some(key) = node_selector.keys().find(|k| !is_qualified_name(k)) {
        return not_allowed(format!(
            "controlPlane.nodeSelector key {key:?} is not a label key: a label key is {QUALIFIED_NAME_RULE}"
        ));
    }
    if let Some((key, value)) = node_selector.iter().find(|(_, v)| !is_label_value(v)) {
        return not_allowed(format!(
            "controlPlane.nodeSelector value {value:?} (key {key:?}) is not a label value: a label value is \
             {LABEL_VALUE_RULE}"
        ));
    }
    if let Some(key) = spec
        .network
        .annotations
        .keys()
        .find(|k| !is_qualified_name(k))
    {
        return not_allowed(format!(
            "network.annotations key {key:?} is not an annotation key: an annotation key is {QUALIFIED_NAME_RULE}"
        ));
    }
    if let Some(reference) = &spec.chart.credentials_secret_ref
        && !is_dns_subdomain(&reference.name)
    {
        return not_allowed(format!(
            "chart.credentialsSecretRef.name {:?} is not a DNS subdomain: a Secret's name is {DNS_SUBDOMAIN_RULE}",
            reference.name
        ));
    }
    None
}

fn not_allowed(message: String) -> Option<Blocked> {
    Some(Blocked {
        reason: reasons::NOT_ALLOWED,
        message,
    })
}

/// Equal but for trailing slashes.
fn same_repository(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Whether `repository` is an entry of `allowed` or under one, on a `/` boundary
/// (`https://charts.example/team` allows `https://charts.example/team/x`, not
/// `https://charts.example/team-x`). A repository with a dot segment (`..`), an encoded one,
/// a query or a fragment is never allowed: it could leave the prefix once a client resolves it.
pub fn repository_allowed(repository: &str, allowed: &[String]) -> bool {
    let lower = repository.to_ascii_lowercase();
    let escapes = repository
        .split('/')
        .any(|segment| segment == "." || segment == "..")
        || lower.contains("%2e")
        || lower.contains("%2f")
        || repository.contains(['?', '#', '\\']);
    if escapes {
        return false;
    }
    let repository = repository.trim_end_matches('/');
    allowed.iter().any(|entry| {
        let entry = entry.trim_end_matches('/');
        repository
            .strip_prefix(entry)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// A repository flag (`--default-chart-repository`, an entry of `--allowed-chart-repositories`):
/// an `https://`, `oci://` or `http://` URL with a host.
pub fn parse_repository_url(entry: &str) -> Result<String, String> {
    let rest = ["https://", "oci://", "http://"]
        .iter()
        .find_map(|scheme| entry.strip_prefix(scheme));
    match rest {
        Some(rest)
            if !rest.is_empty()
                && !rest.starts_with('/')
                && !rest.contains(char::is_whitespace) =>
        {
            Ok(entry.to_string())
        }
        _ => Err(format!(
            "{entry:?} is not an https://, oci:// or http:// URL with a host"
        )),
    }
}

/// The installer role of a spec that names none (`chart.installerClusterRole`'s default).
pub const DEFAULT_INSTALLER_ROLE: &str = "federation-chart-installer";

/// The pinned default runner image (`helm` with a shell).
pub const DEFAULT_RUNNER_IMAGE: &str = "docker.io/alpine/helm:3.16.4";

/// `Blocked` with `DuplicateClusterGroupID` when an older enablement owns the same fleet.
/// `all` holds the enablements that may own it (with fleet entitlement on, the entitled ones).
/// The owner is named only to an enablement in its own namespace.
pub fn check_duplicate<'a>(
    enablement: &FederationEnablement,
    all: impl IntoIterator<Item = &'a FederationEnablement>,
) -> Option<Blocked> {
    let fleet = &enablement.spec.cluster_group_id;
    let owner = fleet_owner(fleet, all)?;
    if owner.uid() == enablement.uid() || fleet_seniority(owner) >= fleet_seniority(enablement) {
        return None;
    }
    let owner_name = if owner.namespace() == enablement.namespace() {
        format!("FederationEnablement {}", owner.name_any())
    } else {
        "FederationEnablement in another namespace".to_string()
    };
    Some(Blocked {
        reason: reasons::DUPLICATE_CLUSTER_GROUP_ID,
        message: format!(
            "fleet {fleet:?} is owned by an older {owner_name}; this one proceeds once that one is gone"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn policy() -> Policy {
        Policy {
            allowed_runner_images: vec![DEFAULT_RUNNER_IMAGE.to_string()],
            allowed_installer_roles: vec!["federation-chart-installer".to_string()],
            allow_cluster_scoped_charts: false,
            allow_foreign_control_plane_namespaces: false,
            allowed_chart_repositories: vec!["oci://r.example/c".to_string()],
            chart_defaults: ChartDefaults::default(),
            watch_namespace: None,
            controller_namespace: Some("federation-controller".into()),
            allowed_service_annotation_prefixes: Vec::new(),
            allow_elb_id: true,
            fleet_entitlement: FleetEntitlement::None,
        }
    }

    fn enablement(ns: &str, name: &str, fleet: &str, created: &str) -> FederationEnablement {
        let mut fe: FederationEnablement = serde_json::from_value(serde_json::json!({
            "apiVersion": "federation.fleet.dev/v1alpha1",
            "kind": "FederationEnablement",
            "metadata": {"name": name, "namespace": ns, "uid": format!("{ns}-{name}")},
            "spec": {
                "clusterGroupID": fleet,
                "chart": {"repository": "oci://r.example/c", "name": "federation", "version": "1.0.0"},
            },
        }))
        .expect("enablement");
        fe.metadata.creation_timestamp = Some(Time(created.parse().expect("time")));
        fe
    }

    #[test]
    fn defaults_pass_the_allowlists() {
        let fe = enablement("team", "a", "fleet", "2026-01-01T00:00:00Z");
        assert_eq!(policy().check(&fe), None);
    }

    /// A `NotAllowed` whose message holds each of `parts`.
    fn assert_not_allowed(fe: &FederationEnablement, parts: &[&str]) {
        assert_not_allowed_by(&policy(), fe, parts);
    }

    /// [`assert_not_allowed`] under `policy`.
    fn assert_not_allowed_by(policy: &Policy, fe: &FederationEnablement, parts: &[&str]) {
        let blocked = policy.check(fe).expect("blocked");
        assert_eq!(blocked.reason, "NotAllowed");
        for part in parts {
            assert!(
                blocked.message.contains(part),
                "{part:?} not in {blocked:?}"
            );
        }
    }

    #[test]
    fn a_comma_in_a_node_selector_value_is_not_allowed() {
        let mut fe = enablement("team", "a", "fleet", "2026-01-01T00:00:00Z");
        fe.spec.control_plane.node_selector = [(
            "zone".to_string(),
            "eu,kubernetes.io/hostname=x".to_string(),
        )]
        .into();
        assert_not_allowed(
            &fe,
            &[
                "controlPlane.nodeSelector value",
                "is not a label value",
                "\"zone\"",
            ],
        );
    }

    #[test]
    fn a_node_selector_key_that_is_not_a_label_key_is_not_allowed() {
        let mut fe = enablement("team", "a", "fleet", "2026-01-01T00:00:00Z");
        fe.spec.control_plane.node_selector = [("a,b".to_string(), "c".to_string())].into();
        assert_not_allowed(
            &fe,
            &["controlPlane.nodeSelector key \"a,b\" is not a label key"],
        );
    }

    #[test]
    fn an_annotation_key_that_is_not_an_annotation_key_is_not_allowed() {
        let mut fe = enablement("team", "a", "fleet", "2026-01-01T00:00:00Z");
        fe.spec.network.annotations = [("Example.com/x".to_string(), "1".to_string())].into();
        assert_not_allowed(
            &fe,
            &["network.annotations key \"Example.com/x\" is not an annotation key"],
        );
    }

    #[test]
    fn a_credentials_secret_name_that_is_not_a_dns_subdomain_is_not_allowed() {
        let mut fe = enablement("team", "a", "fleet", "2026-01-01T00:00:00Z");
        fe.spec.chart.credentials_secret_ref = Some(crate::api::SecretRef {
            name: "../creds".to_string(),
        });
        assert_not_allowed(
            &fe,
            &["chart.credentialsSecretRef.name \"../creds\" is not a DNS subdomain"],
        );
    }

    #[test]
    fn valid_selector_annotations_and_secret_name_are_allowed() {
        let mut fe = enablement("team", "a", "fleet", "2026-01-01T00:00:00Z");
        fe.spec.control_plane.node_selector = [
            (
                "topology.kubernetes.io/zone".to_string(),
                "eu-west-1a".to_string(),
            ),
            ("dedicated".to_string(), String::new()),
        ]
        .into();
        fe.spec.network.annotations = [(
            "service.beta.kubernetes.io/aws-load-balancer-type".to_string(),
            "nlb, with any value".to_string(),
        )]
        .into();
        fe.spec.chart.credentials_secret_ref = Some(crate::api::SecretRef {
            name: "repo-creds.v1".to_string(),
        });
        assert_eq!(policy().check(&fe), None);
    }

    #[test]
    fn runner_image_outside_the_allowlist_is_not_allowed() {
        let mut fe = enablement("team", "a", "fleet", "2026-01-01T00:00:00Z");
        fe.spec.chart.runner_image = Some("evil/helm:latest".into());
        let blocked = policy().check(&fe).expect("blocked");
        assert_eq!(blocked.reason, "NotAllowed");
        assert!(blocked.message.contains("evil/helm:latest"));
    }

    #[test]
    fn installer_role_outside_the_allowlist_is_not_allowed() {
        let mut fe = enablement("team", "a", "fleet", "2026-01-01T00:00:00Z");
        fe.spec.chart.installer_cluster_role = "cluster-admin".into();
        assert_eq!(policy().check(&fe).map(|b| b.reason), Some("NotAllowed"));
    }

    #[test]
    fn cluster_scoped_chart_needs_the_flag_and_a_cluster_wide_controller() {
        let mut fe = enablement("team", "a", "fleet", "2026-01-01T00:00:00Z");
        fe.spec.chart.cluster_scoped = true;
        assert_eq!(policy().check(&fe).map(|b| b.reason), Some("NotAllowed"));
        let mut allowed = policy();
        allowed.allow_cluster_scoped_charts = true;
        assert_eq!(allowed.check(&fe), None);
        allowed.watch_namespace = Some("team".into());
        assert_eq!(allowed.check(&fe).map(|b| b.reason), Some("NotAllowed"));
    }

    #[test]
    fn foreign_control_plane_namespace_needs_the_flag() {
        let mut fe = enablement("team", "a", "fleet", "2026-01-01T00:00:00Z");
        fe.spec.control_plane.namespace = Some("federation-system".into());
        assert_eq!(policy().check(&fe).map(|b| b.reason), Some("NotAllowed"));
        let mut allowed = policy();
        allowed.allow_foreign_control_plane_namespaces = true;
        assert_eq!(allowed.check(&fe), None);
        fe.spec.control_plane.namespace = Some("team".into());
        assert_eq!(
            policy().check(&fe),
            None,
            "naming its own namespace is not foreign"
        );
    }

    #[test]
    fn reserved_and_the_controllers_namespaces_are_refused_whatever_the_flags() {
        let mut allowed = policy();
        allowed.allow_foreign_control_plane_namespaces = true;
        for reserved in [
            "kube-system",
            "kube-public",
            "kube-node-lease",
            "default",
            "federation-controller",
        ] {
            let mut fe = enablement("team", "a", "fleet", "2026-01-01T00:00:00Z");
            fe.spec.control_plane.namespace = Some(reserved.into());
            let blocked = allowed.check(&fe).expect(reserved);
            assert_eq!(blocked.reason, "NotAllowed", "{reserved}");
            assert!(blocked.message.contains("reserved"), "{reserved}");
        }
        let own = enablement("default", "a", "fleet", "2026-01-01T00:00:00Z");
        assert_eq!(
            allowed.check(&own),
            None,
            "an enablement's own namespace is not foreign, even default"
        );
    }

    #[test]
    fn service_annotations_must_start_with_an_allowed_prefix_once_some_are_set() {
        let mut fe = enablement("team", "a", "fleet", "2026-01-01T00:00:00Z");
        fe.spec
            .network
            .annotations
            .insert("metallb.universe.tf/address-pool".into(), "shared".into());
        assert_eq!(policy().check(&fe), None, "no prefixes: any annotation");
        let mut narrow = policy();
        narrow.allowed_service_annotation_prefixes = vec![
            "service.beta.kubernetes.io/".into(),
            "kubernetes.io/elb.".into(),
        ];
        let blocked = narrow.check(&fe).expect("blocked");
        assert_eq!(blocked.reason, "NotAllowed");
        assert!(blocked.message.contains("metallb.universe.tf/address-pool"));
        fe.spec.network.annotations.clear();
        fe.spec.network.annotations.insert(
            "service.beta.kubernetes.io/aws-load-balancer-internal".into(),
            "true".into(),
        );
        assert_eq!(narrow.check(&fe), None);
    }

    #[test]
    fn the_elb_id_annotation_must_match_a_prefix_only_with_an_elb_id() {
        let mut fe = enablement("team", "a", "fleet", "2026-01-01T00:00:00Z");
        fe.spec.network.elb_id_annotation = "evil.example/lb".into();
        let mut narrow = policy();
        narrow.allowed_service_annotation_prefixes = vec!["kubernetes.io/elb.".into()];
        assert_eq!(narrow.check(&fe), None, "not written without an elbID");
        fe.spec.network.elb_id = Some("elb-1".into());
        let blocked = narrow.check(&fe).expect("blocked");
        assert!(blocked.message.contains("network.elbIDAnnotation"));
        fe.spec.network.elb_id_annotation = "kubernetes.io/elb.id".into();
        assert_eq!(narrow.check(&fe), None);
    }

    #[test]
    fn elb_id_can_be_turned_off() {
        let mut fe = enablement("team", "a", "fleet", "2026-01-01T00:00:00Z");
        fe.spec.network.elb_id = Some("elb-1".into());
        assert_eq!(policy().check(&fe), None, "on by default");
        let mut off = policy();
        off.allow_elb_id = false;
        let blocked = off.check(&fe).expect("blocked");
        assert_eq!(blocked.reason, "NotAllowed");
        assert!(blocked.message.contains("--allow-elb-id"));
    }

    #[test]
    fn a_repository_outside_the_allowlist_is_not_allowed() {
        let mut fe = enablement("team", "a", "fleet", "2026-01-01T00:00:00Z");
        fe.spec.chart.repository = Some("https://evil.example/charts".into());
        let blocked = policy().check(&fe).expect("blocked");
        assert_eq!(blocked.reason, "NotAllowed");
        assert!(blocked.message.contains("https://evil.example/charts"));
        fe.spec.chart.repository = Some("oci://r.example/c/".into());
        assert_eq!(policy().check(&fe), None, "a trailing slash is the same");
    }

    #[test]
    fn repositories_match_an_entry_as_a_prefix_on_a_slash_boundary() {
        let allowed = ["https://charts.example/team/".to_string()];
        for ok in [
            "https://charts.example/team",
            "https://charts.example/team/",
            "https://charts.example/team/sub",
        ] {
            assert!(repository_allowed(ok, &allowed), "{ok}");
        }
        for refused in [
            "https://charts.example/team-evil",
            "https://charts.example/teamx/sub",
            "https://charts.example",
            "http://charts.example/team",
            "https://charts.example/team/../evil",
            "https://charts.example/team/%2E%2E/evil",
            "https://charts.example/team?x=1",
            "https://charts.example.evil.example/team",
        ] {
            assert!(!repository_allowed(refused, &allowed), "{refused}");
        }
        assert!(!repository_allowed("https://charts.example/team", &[]));
    }

    /// A Karmada enablement as the README shows it, and a policy that allows it.
    fn karmada() -> (FederationEnablement, Policy) {
        let mut fe = enablement("team", "a", "fleet-a", "2026-01-01T00:00:00Z");
        fe.spec.chart = Chart {
            cluster_scoped: true,
            installer_cluster_role: "cluster-admin".into(),
            ..Chart::default()
        };
        let mut policy = policy();
        policy.allowed_chart_repositories.clear();
        policy.allow_cluster_scoped_charts = true;
        policy.allowed_installer_roles.push("cluster-admin".into());
        (fe, policy)
    }

    /// What `fe` installs with under `policy`'s defaults.
    fn live(fe: &FederationEnablement) -> InstallFacts {
        InstallFacts::of_spec(&fe.spec, "a", "team", DEFAULT_RUNNER_IMAGE)
    }

    #[test]
    fn a_teardown_keeps_the_recorded_install_while_it_is_allowed() {
        let fe = enablement("team", "a", "fleet", "2026-01-01T00:00:00Z");
        let mut policy = policy();
        policy.allowed_runner_images.push("r.example/helm:2".into());
        policy
            .allowed_installer_roles
            .push("other-installer".into());
        let recorded = InstallFacts {
            runner_image: "r.example/helm:2".into(),
            installer_cluster_role: "other-installer".into(),
            release: "old-release".into(),
            ..live(&fe)
        };
        assert_eq!(
            policy.checked_install(&fe, recorded.clone(), &live(&fe)),
            recorded
        );
    }

    #[test]
    fn a_teardown_uses_the_defaults_for_a_recorded_image_or_role_refused_now() {
        let fe = enablement("team", "a", "fleet", "2026-01-01T00:00:00Z");
        let mut policy = policy();
        policy.allow_cluster_scoped_charts = true;
        policy.allowed_installer_roles.push("cluster-admin".into());
        let recorded = InstallFacts {
            runner_image: "evil/helm:latest".into(),
            // Allowed, but for a Karmada control plane's own namespace only.
            installer_cluster_role: CLUSTER_ADMIN.into(),
            cluster_scoped: true,
            ..live(&fe)
        };
        let checked = policy.checked_install(&fe, recorded, &live(&fe));
        assert_eq!(checked.runner_image, DEFAULT_RUNNER_IMAGE);
        assert_eq!(checked.installer_cluster_role, DEFAULT_INSTALLER_ROLE);
        assert!(checked.cluster_scoped, "allowed by today's flags");
        policy.allow_cluster_scoped_charts = false;
        let recorded = InstallFacts {
            cluster_scoped: true,
            ..live(&fe)
        };
        assert!(
            !policy
                .checked_install(&fe, recorded, &live(&fe))
                .cluster_scoped
        );
    }

    #[test]
    fn a_teardown_never_goes_to_a_reserved_namespace_the_status_names() {
        let fe = enablement("team", "a", "fleet", "2026-01-01T00:00:00Z");
        let recorded = InstallFacts {
            control_plane_namespace: "kube-system".into(),
            release_namespace: "federation-controller".into(),
            namespaces: vec!["kube-system".into(), "federation-controller".into()],
            ..live(&fe)
        };
        let checked = policy().checked_install(&fe, recorded, &live(&fe));
        assert_eq!(checked.control_plane_namespace, "team");
        assert_eq!(checked.release_namespace, "team");
        assert_eq!(checked.namespaces, vec!["team".to_string()]);
    }

    #[test]
    fn a_karmada_teardown_keeps_cluster_admin_in_its_own_namespace() {
        let (fe, policy) = karmada();
        let live = InstallFacts::of_spec(&fe.spec, "a", "team", DEFAULT_RUNNER_IMAGE);
        let checked = policy.checked_install(&fe, live.clone(), &live);
        assert_eq!(checked, live);
        assert_eq!(checked.installer_cluster_role, CLUSTER_ADMIN);
    }

    #[test]
    fn the_default_installer_role_is_the_first_allowed_when_the_spec_default_is_not() {
        let mut policy = policy();
        assert_eq!(policy.default_installer_role(), DEFAULT_INSTALLER_ROLE);
        policy.allowed_installer_roles = vec!["site-installer".into()];
        assert_eq!(policy.default_installer_role(), "site-installer");
    }

    #[test]
    fn the_default_repository_is_always_allowed_for_either_profile() {
        let (mut fe, policy) = karmada();
        assert_eq!(policy.check(&fe), None, "Karmada from the default chart");
        fe.spec.chart.repository = Some(policy.chart_defaults.repository.clone());
        fe.spec.chart.name = Some("karmada".into());
        fe.spec.chart.version = Some("v1.18.1".into());
        fe.spec.control_plane.namespace = Some("team".into());
        fe.spec.chart.cluster_scoped = false;
        fe.spec.chart.installer_cluster_role = "federation-chart-installer".into();
        let mut generic = policy.clone();
        generic.allow_cluster_scoped_charts = false;
        assert_eq!(
            generic.check(&fe),
            None,
            "Generic from the default repository"
        );
    }

    #[test]
    fn a_karmada_control_plane_gets_a_namespace_and_release_named_after_its_fleet() {
        let (fe, _) = karmada();
        assert_eq!(fe.spec.control_plane_namespace("team"), "karmada-fleet-a");
        assert_eq!(fe.spec.release_name("a"), "karmada-fleet-a");
    }

    #[test]
    fn karmada_without_a_cluster_scoped_install_is_not_allowed() {
        let (mut fe, policy) = karmada();
        fe.spec.chart.cluster_scoped = false;
        assert_not_allowed_by(&policy, &fe, &["chart.clusterScoped: true"]);
    }

    #[test]
    fn karmada_never_runs_in_the_tenants_own_or_a_reserved_namespace() {
        let (mut fe, policy) = karmada();
        for namespace in ["team", "kube-system", "federation-controller"] {
            fe.spec.control_plane.namespace = Some(namespace.into());
            assert_not_allowed_by(&policy, &fe, &[namespace]);
        }
        fe.spec.control_plane.namespace = Some("fleet-a-federation".into());
        assert_eq!(
            policy.check(&fe),
            None,
            "a new namespace needs no --allow-foreign-control-plane-namespaces"
        );
    }

    #[test]
    fn cluster_admin_is_never_given_to_a_generic_chart() {
        let (mut fe, policy) = karmada();
        fe.spec.chart.profile = Some(ChartProfile::Generic);
        fe.spec.chart.repository = Some(policy.chart_defaults.repository.clone());
        fe.spec.chart.name = Some("any".into());
        fe.spec.chart.version = Some("1.0.0".into());
        assert_not_allowed_by(&policy, &fe, &["Karmada profile only"]);
    }

    #[test]
    fn karmada_refuses_a_release_name_of_the_tenants_choosing() {
        let (mut fe, policy) = karmada();
        fe.spec.chart.release_name = Some("someone-elses".into());
        assert_not_allowed_by(&policy, &fe, &["karmada-fleet-a"]);
    }

    #[test]
    fn allowed_repository_entries_are_urls_with_a_host() {
        for ok in [
            "https://charts.example/x",
            "oci://r.example",
            "http://10.0.0.1:8080",
        ] {
            assert_eq!(parse_repository_url(ok).as_deref(), Ok(ok));
        }
        for bad in [
            "charts.example",
            "ftp://x",
            "https://",
            "oci:///x",
            "https://a b",
        ] {
            assert!(parse_repository_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_oldest_enablement_owns_a_fleet() {
        let old = enablement("b", "old", "fleet", "2026-01-01T00:00:00Z");
        let new = enablement("a", "new", "fleet", "2026-01-02T00:00:00Z");
        let other = enablement("a", "other", "another-fleet", "2025-01-01T00:00:00Z");
        let all = [old.clone(), new.clone(), other.clone()];
        assert_eq!(check_duplicate(&old, &all), None);
        assert_eq!(check_duplicate(&other, &all), None);
        let blocked = check_duplicate(&new, &all).expect("duplicate");
        assert_eq!(blocked.reason, "DuplicateClusterGroupID");
        assert!(
            blocked.message.contains("another namespace")
                && !blocked.message.contains("FederationEnablement old")
                && !blocked.message.contains("b/"),
            "the owner in another namespace is not named: {}",
            blocked.message
        );
        let neighbour = enablement("b", "neighbour", "fleet", "2026-01-03T00:00:00Z");
        let blocked = check_duplicate(&neighbour, &all).expect("duplicate");
        assert!(
            blocked.message.contains("FederationEnablement old"),
            "the owner in the same namespace is named: {}",
            blocked.message
        );
        assert_eq!(
            check_duplicate(&new, &[new.clone(), other]),
            None,
            "proceeds once the owner is gone"
        );
    }

    #[test]
    fn a_namespace_entitles_the_fleets_its_annotation_lists() {
        let fe = enablement("a", "x", "fleet-1", "2026-01-01T00:00:00Z");
        let annotations =
            |list: &str| BTreeMap::from([(FLEETS_ANNOTATION.to_string(), list.to_string())]);
        assert_eq!(
            check_entitlement(&fe, Some(&annotations("fleet-0, fleet-1"))),
            None
        );
        assert_eq!(check_entitlement(&fe, Some(&annotations("*"))), None);
        for refused in [None, Some(annotations("fleet-10")), Some(annotations(""))] {
            let blocked = check_entitlement(&fe, refused.as_ref()).expect("not entitled");
            assert_eq!(blocked.reason, "FleetNotEntitled");
            assert!(
                blocked.message.contains(FLEETS_ANNOTATION),
                "{}",
                blocked.message
            );
        }
    }

    #[test]
    fn same_creation_time_is_broken_by_namespace_then_name() {
        let a = enablement("a", "z", "fleet", "2026-01-01T00:00:00Z");
        let b = enablement("b", "a", "fleet", "2026-01-01T00:00:00Z");
        let all = [a.clone(), b.clone()];
        assert_eq!(check_duplicate(&a, &all), None);
        assert!(check_duplicate(&b, &all).is_some());
    }
}
