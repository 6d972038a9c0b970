//! What the unit tests and the integration tests (`tests/`) share: an in-memory API server that
//! logs every request. Compiled for this crate's own tests only (`cfg(test)`, or the `testing`
//! feature its dev-dependency on itself enables); the controller is built without it.

pub mod fake_apiserver;

pub use fake_apiserver::{Call, FakeApiServer, object_path};

use crate::api::FederationEnablement;

/// An enablement `namespace/name` with uid `uid`, as the API server would hand it out.
pub fn enablement(namespace: &str, name: &str, uid: &str) -> FederationEnablement {
    let mut fe = FederationEnablement::new(
        name,
        serde_json::from_value(serde_json::json!({
            "clusterGroupID": name,
            "chart": {"repository": "oci://registry.example/charts", "name": "federation", "version": "1.2.3"},
        }))
        .unwrap_or_else(|e| panic!("enablement spec: {e}")),
    );
    fe.metadata.namespace = Some(namespace.to_string());
    fe.metadata.uid = Some(uid.to_string());
    fe
}

/// The certificate request for a Karmada control plane `release` in `namespace` reached at
/// `endpoint_host`: the chart's default names, no extra SANs, 30 days.
pub fn karmada_request(
    release: &str,
    namespace: &str,
    endpoint_host: &str,
) -> crate::subjobs::cert::karmada::KarmadaRequest {
    use crate::subjobs::cert::karmada::{
        DEFAULT_CLUSTER_DOMAIN, DEFAULT_SYSTEM_NAMESPACE, KarmadaNames, KarmadaRequest,
    };
    KarmadaRequest {
        names: KarmadaNames {
            release: release.to_string(),
            namespace: namespace.to_string(),
            system_namespace: DEFAULT_SYSTEM_NAMESPACE.to_string(),
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_string(),
            endpoint_host: endpoint_host.to_string(),
            extra_sans: Vec::new(),
        },
        validity_days: 30,
    }
}
