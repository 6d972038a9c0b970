//! The values a chart gets: `chart.values`, deep-merged under the facts the controller knows,
//! and the Secret that carries them (with the repository credentials, when there are any).
//!
//! The Generic profile gets the facts under `federation` and `sso`; the Karmada profile gets
//! them as the Karmada chart reads them ([`karmada_values`]).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{PASSWORD_KEY, SUB_JOB, USERNAME_KEY, VALUES_KEY};
use crate::api::{APISERVER_POD_LABEL, CERTIFICATE_HASH_ANNOTATION, CONTROL_PLANE_NODE_LABEL};
use crate::subjobs::cert::KeyedCert;
use crate::subjobs::cert::karmada::KarmadaSet;
use crate::subjobs::{Context, names, ownership};

/// The Karmada components that run as pods with a `nodeSelector` and `podAnnotations`, by
/// their key in the chart's values (etcd's is `etcd.internal`).
pub const KARMADA_COMPONENTS: [&str; 6] = [
    "apiServer",
    "aggregatedApiServer",
    "controllerManager",
    "scheduler",
    "webhook",
    "kubeControllerManager",
];

/// etcd's PVC size when `chart.values` does not set `etcd.internal.pvc.size`.
pub const DEFAULT_ETCD_PVC_SIZE: &str = "5Gi";

/// What the Karmada chart takes in `certs.mode: custom` (the CreateCert Secrets hold them).
#[derive(Clone, Copy, Debug)]
pub struct KarmadaCerts<'a> {
    pub ca: &'a KeyedCert,
    pub control_plane: &'a KeyedCert,
    pub front_proxy_ca: &'a KeyedCert,
    pub front_proxy_client: &'a KeyedCert,
}

impl<'a> KarmadaCerts<'a> {
    /// The four the chart needs, when all are stored.
    pub fn from_stored(set: &'a KarmadaSet<Option<KeyedCert>>) -> Option<Self> {
        Some(KarmadaCerts {
            ca: set.ca.as_ref()?,
            control_plane: set.control_plane.as_ref()?,
            front_proxy_ca: set.front_proxy_ca.as_ref()?,
            front_proxy_client: set.front_proxy_client.as_ref()?,
        })
    }

    /// A hash of the certificates (a new key always comes with a new certificate): in every
    /// component's `podAnnotations`, so that a renewal restarts them.
    pub fn hash(&self) -> String {
        let mut digest = Sha256::new();
        for cert in [
            self.ca,
            self.control_plane,
            self.front_proxy_ca,
            self.front_proxy_client,
        ] {
            digest.update(cert.cert_pem.as_bytes());
        }
        hex::encode(&digest.finalize()[..16])
    }
}

/// The Karmada chart's values: `chart.values` with ours deep-merged over them, ours winning on
/// every key we set: host mode; the custom certificates; every component on the reserved nodes,
/// restarted when the certificates change; the API server's pods labelled for the load
/// balancer's selector, behind a ClusterIP Service of the chart's own; `controlPlane.replicas`
/// API servers and the largest odd number of etcd members not above it, on PVCs; OIDC from
/// `spec.sso`.
pub fn karmada_values(ctx: &Context<'_>, certs: KarmadaCerts<'_>) -> Map<String, Value> {
    let node_selector = json!({CONTROL_PLANE_NODE_LABEL: ctx.uid});
    let pod_annotations = json!({CERTIFICATE_HASH_ANNOTATION: certs.hash()});
    let component = || json!({"nodeSelector": node_selector, "podAnnotations": pod_annotations});
    let replicas = ctx.spec.control_plane.replicas.max(1);
    let etcd_replicas = if replicas % 2 == 0 {
        replicas - 1
    } else {
        replicas
    };
    let user = ctx.spec.chart.values.as_ref();
    let pvc_size = user
        .and_then(|values| values.get("etcd")?.get("internal")?.get("pvc")?.get("size"))
        .filter(|size| size.as_str().is_some_and(|s| !s.is_empty()))
        .cloned()
        .unwrap_or_else(|| json!(DEFAULT_ETCD_PVC_SIZE));

    let mut ours = json!({
        "installMode": "host",
        "certs": {
            "mode": "custom",
            "custom": {
                "caCrt": certs.ca.cert_pem,
                "caKey": certs.ca.key_pem(),
                "crt": certs.control_plane.cert_pem,
                "key": certs.control_plane.key_pem(),
                "frontProxyCaCrt": certs.front_proxy_ca.cert_pem,
                "frontProxyCrt": certs.front_proxy_client.cert_pem,
                "frontProxyKey": certs.front_proxy_client.key_pem(),
            },
        },
        "etcd": {"internal": {
            "nodeSelector": node_selector,
            "podAnnotations": pod_annotations,
            "replicaCount": etcd_replicas,
            "storageType": "pvc",
            "pvc": {"size": pvc_size},
        }},
        "staticResourceJob": {"nodeSelector": node_selector},
    });
    for key in KARMADA_COMPONENTS {
        ours[key] = component();
    }
    let api_server = &mut ours["apiServer"];
    api_server["podLabels"] = json!({APISERVER_POD_LABEL: ctx.uid});
    api_server["replicaCount"] = json!(replicas);
    api_server["serviceType"] = json!("ClusterIP");
    if let Some(sso) = &ctx.spec.sso {
        let mut oidc = Map::new();
        if let Some(issuer) = &sso.issuer_url {
            oidc.insert("issuerUrl".to_string(), json!(issuer));
        }
        if let Some(client) = &sso.client_uuid {
            oidc.insert("clientId".to_string(), json!(client));
        }
        if !oidc.is_empty() {
            api_server["oidc"] = Value::Object(oidc);
        }
    }
    merged_over_user_values(ctx, ours)
}

/// `chart.values` with `ours` deep-merged over them.
fn merged_over_user_values(ctx: &Context<'_>, ours: Value) -> Map<String, Value> {
    let mut values = Value::Object(ctx.spec.chart.values.clone().unwrap_or_default());
    deep_merge(&mut values, ours);
    match values {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The values a Generic chart gets: `chart.values`, with the facts the controller knows under
/// `federation` and `sso`, deep-merged: on a key the controller sets its value wins, at any
/// depth; every other key of the user's is kept.
pub fn generic_values(ctx: &Context<'_>) -> Map<String, Value> {
    let mut federation = json!({
        "clusterGroupID": ctx.spec.cluster_group_id,
        "enablement": ctx.name,
        "service": names::service(ctx.name),
        "certificateSecret": names::cert_secret(ctx.name),
        "replicas": ctx.spec.control_plane.replicas,
        "nodeSelector": {CONTROL_PLANE_NODE_LABEL: ctx.uid},
    });
    if let Some(endpoint) = ctx.run.endpoint.as_deref() {
        federation["endpoint"] = json!(endpoint);
    }
    let mut ours = json!({ "federation": federation });
    if let Some(sso) = &ctx.spec.sso {
        ours["sso"] = serde_json::to_value(sso).unwrap_or_default();
    }
    merged_over_user_values(ctx, ours)
}

/// Merges `ours` into `theirs`: objects key by key, recursively; anything else of ours
/// replaces theirs.
pub fn deep_merge(theirs: &mut Value, ours: Value) {
    match (theirs, ours) {
        (Value::Object(theirs), Value::Object(ours)) => {
            for (key, value) in ours {
                deep_merge(theirs.entry(key).or_insert(Value::Null), value);
            }
        }
        (theirs, ours) => *theirs = ours,
    }
}

/// The values file's text, and a short hash of it that names what an install Job installed.
pub fn values_document(values: Map<String, Value>) -> (String, String) {
    let text = Value::Object(values).to_string();
    let hash = hex::encode(&Sha256::digest(text.as_bytes())[..8]);
    (text, hash)
}

/// The Secret with the values (and the repository credentials, when the chart needs them).
pub fn desired_values_secret(
    ctx: &Context<'_>,
    values: String,
    credentials: Option<(ByteString, ByteString)>,
) -> Secret {
    let namespace = ctx.control_plane_namespace();
    let mut data = BTreeMap::from([(VALUES_KEY.to_string(), ByteString(values.into_bytes()))]);
    if let Some((username, password)) = credentials {
        data.insert(USERNAME_KEY.to_string(), username);
        data.insert(PASSWORD_KEY.to_string(), password);
    }
    Secret {
        metadata: ownership::metadata(
            ctx,
            SUB_JOB,
            names::values_secret(ctx.name),
            Some(namespace),
        ),
        type_: Some("Opaque".to_string()),
        data: Some(data),
        ..Secret::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Fixture, spec};
    use super::*;

    #[test]
    fn controller_facts_win_over_user_values_and_user_values_are_kept() {
        let f = Fixture::new(spec());
        let values = generic_values(&f.ctx());
        assert_eq!(values["image"]["tag"], "v1");
        assert_eq!(values["federation"]["extra"], true);
        assert_eq!(values["federation"]["replicas"], 1);
        assert_eq!(values["federation"]["endpoint"], "203.0.113.10:5443");
        assert_eq!(values["sso"]["issuerUrl"], "https://issuer.example");
        assert_eq!(
            values["federation"]["nodeSelector"]["federation.fleet.dev/control-plane"],
            "0f8fad5b-d9cb-469f-a165-70867728950e"
        );
    }

    #[test]
    fn user_values_are_deep_merged_under_the_controller_facts() {
        let mut s = spec();
        s["chart"]["values"] = json!({
            "federation": {"nodeSelector": {"zone": "a"}, "extra": {"keep": 1}},
            "sso": {"configUuid": "theirs", "scopes": ["openid"]},
        });
        let f = Fixture::new(s);
        let values = generic_values(&f.ctx());
        let selector = &values["federation"]["nodeSelector"];
        assert_eq!(selector["zone"], "a", "a nested key of theirs is kept");
        assert_eq!(
            selector["federation.fleet.dev/control-plane"],
            "0f8fad5b-d9cb-469f-a165-70867728950e"
        );
        assert_eq!(values["federation"]["extra"]["keep"], 1);
        assert_eq!(
            values["sso"]["configUuid"], "c-1",
            "ours wins on a key we set"
        );
        assert_eq!(values["sso"]["scopes"][0], "openid");
    }

    #[test]
    fn deep_merge_replaces_what_is_not_an_object_on_both_sides() {
        let mut theirs = json!({"a": {"b": 1, "c": [1]}, "d": "x"});
        deep_merge(
            &mut theirs,
            json!({"a": {"c": [2], "e": null}, "d": {"f": 1}}),
        );
        assert_eq!(
            theirs,
            json!({"a": {"b": 1, "c": [2], "e": null}, "d": {"f": 1}})
        );
    }

    // --- The Karmada profile ---

    use crate::subjobs::cert::karmada::issue_set;
    use crate::testing::karmada_request;

    const UID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

    fn karmada_spec(replicas: i32, values: Value) -> Value {
        json!({
            "clusterGroupID": "fleet-a",
            "controlPlane": {"replicas": replicas},
            "sso": {"clientUuid": "client-1", "issuerUrl": "https://issuer.example"},
            "chart": {"clusterScoped": true, "installerClusterRole": "cluster-admin", "values": values},
        })
    }

    fn certificate_set() -> KarmadaSet<Option<KeyedCert>> {
        let request = karmada_request("karmada-fleet-a", "karmada-fleet-a", "203.0.113.10");
        let now = "2026-01-15T08:00:00Z".parse().expect("time");
        let set = issue_set(&request, now).expect("set");
        KarmadaSet::from_fn(|member| Some(set.get(member).clone()))
    }

    fn karmada(
        replicas: i32,
        values: Value,
    ) -> (Map<String, Value>, KarmadaSet<Option<KeyedCert>>) {
        let f = Fixture::new(karmada_spec(replicas, values));
        let set = certificate_set();
        let certs = KarmadaCerts::from_stored(&set).expect("all stored");
        (karmada_values(&f.ctx(), certs), set)
    }

    #[test]
    fn karmada_gets_host_mode_and_its_custom_certificates_with_the_signing_ca_alone() {
        let (values, set) = karmada(1, json!({}));
        assert_eq!(values["installMode"], "host");
        assert_eq!(values["certs"]["mode"], "custom");
        let custom = &values["certs"]["custom"];
        let pem = |member: Option<KeyedCert>| member.expect("stored");
        let (ca, cp) = (pem(set.ca.clone()), pem(set.control_plane.clone()));
        let (fp_ca, fp) = (
            pem(set.front_proxy_ca.clone()),
            pem(set.front_proxy_client.clone()),
        );
        assert_eq!(custom["caCrt"], ca.cert_pem.as_str());
        assert_eq!(
            custom["caCrt"]
                .as_str()
                .map(|c| c.matches("BEGIN CERTIFICATE").count()),
            Some(1)
        );
        assert_eq!(custom["caKey"], ca.key_pem());
        assert_eq!(custom["crt"], cp.cert_pem.as_str());
        assert_eq!(custom["key"], cp.key_pem());
        assert_eq!(custom["frontProxyCaCrt"], fp_ca.cert_pem.as_str());
        assert_eq!(custom["frontProxyCrt"], fp.cert_pem.as_str());
        assert_eq!(custom["frontProxyKey"], fp.key_pem());
        assert!(
            values.get("federation").is_none(),
            "the Generic facts are not given"
        );
    }

    #[test]
    fn every_karmada_component_runs_on_the_reserved_nodes_and_restarts_on_new_certificates() {
        let (values, set) = karmada(3, json!({}));
        let hash = KarmadaCerts::from_stored(&set).expect("stored").hash();
        let selector = json!({"federation.fleet.dev/control-plane": UID});
        let annotations = json!({"federation.fleet.dev/certificate-hash": hash});
        for key in KARMADA_COMPONENTS {
            assert_eq!(values[key]["nodeSelector"], selector, "{key}");
            assert_eq!(values[key]["podAnnotations"], annotations, "{key}");
        }
        assert_eq!(values["etcd"]["internal"]["nodeSelector"], selector);
        assert_eq!(values["etcd"]["internal"]["podAnnotations"], annotations);
        assert_eq!(values["staticResourceJob"]["nodeSelector"], selector);

        let renewed = certificate_set();
        let renewed_hash = KarmadaCerts::from_stored(&renewed).expect("stored").hash();
        assert_ne!(renewed_hash, hash, "new certificates, a new hash");
    }

    #[test]
    fn karmada_api_server_is_labelled_for_the_load_balancer_behind_a_cluster_ip_with_oidc() {
        let (values, _) = karmada(
            3,
            json!({"apiServer": {"serviceType": "LoadBalancer", "image": {"tag": "x"}}}),
        );
        let api_server = &values["apiServer"];
        assert_eq!(
            api_server["podLabels"],
            json!({"federation.fleet.dev/apiserver": UID})
        );
        assert_eq!(api_server["serviceType"], "ClusterIP", "ours win");
        assert_eq!(api_server["image"]["tag"], "x", "theirs are kept");
        assert_eq!(api_server["replicaCount"], 3);
        assert_eq!(api_server["oidc"]["issuerUrl"], "https://issuer.example");
        assert_eq!(api_server["oidc"]["clientId"], "client-1");
    }

    #[test]
    fn etcd_gets_the_largest_odd_member_count_on_pvcs_of_5gi_unless_the_user_sizes_them() {
        for (replicas, members) in [(1, 1), (2, 1), (3, 3), (4, 3), (5, 5)] {
            let (values, _) = karmada(replicas, json!({}));
            assert_eq!(
                values["etcd"]["internal"]["replicaCount"], members,
                "{replicas}"
            );
            assert_eq!(values["apiServer"]["replicaCount"], replicas);
        }
        let (values, _) = karmada(
            1,
            json!({"etcd": {"internal": {"storageType": "hostPath"}}}),
        );
        let etcd = &values["etcd"]["internal"];
        assert_eq!(
            etcd["storageType"], "pvc",
            "never hostPath: data would outlive the release"
        );
        assert_eq!(etcd["pvc"]["size"], "5Gi");
        let (values, _) = karmada(
            1,
            json!({"etcd": {"internal": {"pvc": {"size": "20Gi", "storageClass": "fast"}}}}),
        );
        assert_eq!(
            values["etcd"]["internal"]["pvc"],
            json!({"size": "20Gi", "storageClass": "fast"})
        );
    }
}
