//! The names the Karmada control-plane certificate must cover.

use std::collections::BTreeSet;

use crate::subjobs::cert::pki::San;

/// `clusterDomain` when `chart.values` does not set it (the chart's own default).
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
/// `systemNamespace` when `chart.values` does not set it (the chart's own default).
pub const DEFAULT_SYSTEM_NAMESPACE: &str = "karmada-system";

/// Where the Karmada chart is installed, and the names it is reached by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KarmadaNames {
    /// The Helm release: the chart names its Services `<release>-apiserver` and so on.
    pub release: String,
    /// The release's namespace, where the control plane runs.
    pub namespace: String,
    /// `systemNamespace` of the chart values.
    pub system_namespace: String,
    /// `clusterDomain` of the chart values.
    pub cluster_domain: String,
    /// The host of the federation endpoint (no port).
    pub endpoint_host: String,
    /// `certificate.extraSANs`.
    pub extra_sans: Vec<String>,
}

impl KarmadaNames {
    /// The Services the one control-plane certificate serves behind: the chart's own, and
    /// etcd's, whose names are fixed and carry no release name.
    fn services(&self) -> [String; 5] {
        let release = &self.release;
        [
            format!("{release}-apiserver"),
            format!("{release}-aggregated-apiserver"),
            format!("{release}-webhook"),
            "etcd".to_string(),
            "etcd-client".to_string(),
        ]
    }

    /// Every name of the control-plane certificate: the endpoint; each Service short, with its
    /// namespace, `.svc` and the cluster domain; the wildcards of etcd's peers, the release
    /// namespace and the system namespace; the in-cluster and loopback names;
    /// `certificate.extraSANs`.
    pub fn control_plane_sans(&self) -> BTreeSet<San> {
        let (ns, system, domain) = (
            &self.namespace,
            &self.system_namespace,
            &self.cluster_domain,
        );
        let service_names = self.services().into_iter().flat_map(|service| {
            [
                format!("{service}.{ns}"),
                format!("{service}.{ns}.svc"),
                format!("{service}.{ns}.svc.{domain}"),
                service,
            ]
        });
        let wildcards = [
            format!("*.etcd.{ns}.svc.{domain}"),
            format!("*.{ns}.svc"),
            format!("*.{ns}.svc.{domain}"),
            format!("*.{system}.svc"),
            format!("*.{system}.svc.{domain}"),
        ];
        let fixed = ["kubernetes.default.svc", "localhost", "127.0.0.1"].map(String::from);
        [self.endpoint_host.clone()]
            .into_iter()
            .chain(service_names)
            .chain(wildcards)
            .chain(fixed)
            .chain(self.extra_sans.iter().cloned())
            .map(|name| San::parse(&name))
            .collect()
    }
}
