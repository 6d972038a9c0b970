//! Gates checked before a job creates anything: the controller's allowlists (so a user who may
//! create an enablement cannot escalate through it) and the one-enablement-per-fleet rule.

use kube::ResourceExt;

use crate::api::FederationEnablement;
use crate::job::{Blocked, reasons};
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
    /// The controller watches only this namespace (`--namespace`).
    pub watch_namespace: Option<String>,
}

impl Policy {
    /// The image used when `chart.runnerImage` is absent.
    pub fn default_runner_image(&self) -> &str {
        self.allowed_runner_images
            .first()
            .map(String::as_str)
            .unwrap_or(DEFAULT_RUNNER_IMAGE)
    }

    /// Why this enablement may not run, if it may not.
    pub fn check(&self, enablement: &FederationEnablement) -> Option<Blocked> {
        let own_namespace = enablement.namespace().unwrap_or_default();
        let spec = &enablement.spec;
        let chart = &spec.chart;
        let not_allowed = |message: String| {
            Some(Blocked {
                reason: reasons::NOT_ALLOWED,
                message,
            })
        };
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
        let control_plane = spec.control_plane_namespace(&own_namespace);
        if control_plane != own_namespace {
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
        }
        None
    }
}

/// The pinned default runner image (`helm` with a shell).
pub const DEFAULT_RUNNER_IMAGE: &str = "docker.io/alpine/helm:3.16.4";

/// `Blocked` with `DuplicateClusterGroupID` when an older enablement owns the same fleet.
pub fn check_duplicate<'a>(
    enablement: &FederationEnablement,
    all: impl IntoIterator<Item = &'a FederationEnablement>,
) -> Option<Blocked> {
    let fleet = &enablement.spec.cluster_group_id;
    let owner = fleet_owner(fleet, all)?;
    if owner.uid() == enablement.uid() || fleet_seniority(owner) >= fleet_seniority(enablement) {
        return None;
    }
    Some(Blocked {
        reason: reasons::DUPLICATE_CLUSTER_GROUP_ID,
        message: format!(
            "fleet {fleet:?} is owned by the older FederationEnablement {}/{}; this one proceeds once that one is gone",
            owner.namespace().unwrap_or_default(),
            owner.name_any()
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
            watch_namespace: None,
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
    fn the_oldest_enablement_owns_a_fleet() {
        let old = enablement("b", "old", "fleet", "2026-01-01T00:00:00Z");
        let new = enablement("a", "new", "fleet", "2026-01-02T00:00:00Z");
        let other = enablement("a", "other", "another-fleet", "2025-01-01T00:00:00Z");
        let all = [old.clone(), new.clone(), other.clone()];
        assert_eq!(check_duplicate(&old, &all), None);
        assert_eq!(check_duplicate(&other, &all), None);
        let blocked = check_duplicate(&new, &all).expect("duplicate");
        assert_eq!(blocked.reason, "DuplicateClusterGroupID");
        assert!(blocked.message.contains("b/old"));
        assert_eq!(
            check_duplicate(&new, &[new.clone(), other]),
            None,
            "proceeds once the owner is gone"
        );
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
