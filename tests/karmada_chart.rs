//! What the Karmada profile's chart values do to the chart: rendered with `helm template` from
//! tests/fixtures/karmada-chart/, our stand-in for the Karmada chart that reads the same value
//! keys (written from its documented behaviour, not copied). Each test is one promise users rely
//! on: the control plane runs only on the reserved nodes, the controller's Service reaches the
//! API server pods, the chart serves the controller's certificates, etcd keeps a quorum on
//! volumes, OIDC follows `spec.sso`, and a new certificate restarts every component.
//!
//! Needs `helm` (see tests/deploy_support: `FEDERATION_HELM`, skipped with one loud line when it
//! is not set, a failure under `CI=true`).

mod deploy_support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use deploy_support::{all, object, strings, try_helm_template_chart};
use federation_controller::api::FederationEnablement;
use federation_controller::job::RunFacts;
use federation_controller::subjobs::cert::KeyedCert;
use federation_controller::subjobs::chart::{KarmadaCerts, karmada_values};
use federation_controller::subjobs::{Context, Settings};
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Value, json};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/karmada-chart");
/// The enablement's uid, as the controller's labels carry it.
const UID: &str = "9a1e5c4f-3b2d-4e6a-8f71-0c2d3e4f5a6b";
/// Release and namespace of fleet `fleet-a`: `karmada-<clusterGroupID>`.
const RELEASE: &str = "karmada-fleet-a";
/// The label CreateNode puts on the reserved nodes.
const CONTROL_PLANE_LABEL: &str = "federation.fleet.dev/control-plane";
/// The label the controller's Service `<name>-federation-apiserver` selects.
const APISERVER_LABEL: &str = "federation.fleet.dev/apiserver";
const CERTIFICATE_HASH: &str = "federation.fleet.dev/certificate-hash";
/// `controlPlane.replicas` of the enablement the values are for.
const REPLICAS: u64 = 4;
const ISSUER: &str = "https://sso.example.com";
const CLIENT_ID: &str = "7f3e2d1c-0b9a-4e8f-a7d6-c5b4a3928170";

/// The chart's workloads: kind, name, and the values key of its node selector.
const WORKLOADS: [(&str, &str, &str); 8] = [
    ("Deployment", "karmada-fleet-a-apiserver", "apiServer"),
    (
        "Deployment",
        "karmada-fleet-a-aggregated-apiserver",
        "aggregatedApiServer",
    ),
    (
        "Deployment",
        "karmada-fleet-a-controller-manager",
        "controllerManager",
    ),
    ("Deployment", "karmada-fleet-a-scheduler", "scheduler"),
    ("Deployment", "karmada-fleet-a-webhook", "webhook"),
    (
        "Deployment",
        "karmada-fleet-a-kube-controller-manager",
        "kubeControllerManager",
    ),
    ("StatefulSet", "etcd", "etcd.internal"),
    (
        "Job",
        "karmada-fleet-a-static-resource",
        "staticResourceJob",
    ),
];

/// The certificate material, one distinct PEM-shaped text per `certs.custom` key.
fn material(key: &str) -> String {
    format!("-----BEGIN FIXTURE-----\n{key}\n-----END FIXTURE-----\n")
}

const CERT_KEYS: [(&str, &str); 7] = [
    ("caCrt", "server-ca.crt"),
    ("caKey", "server-ca.key"),
    ("crt", "karmada.crt"),
    ("key", "karmada.key"),
    ("frontProxyCaCrt", "front-proxy-ca.crt"),
    ("frontProxyCrt", "front-proxy-client.crt"),
    ("frontProxyKey", "front-proxy-client.key"),
];

/// The certificates of [`material`], as CreateCert would have stored them.
fn certificates() -> [KeyedCert; 4] {
    let pair = |cert: &str, key: &str| KeyedCert::new(material(cert), material(key));
    [
        pair("caCrt", "caKey"),
        pair("crt", "key"),
        pair("frontProxyCaCrt", "frontProxyCaKey"),
        pair("frontProxyCrt", "frontProxyKey"),
    ]
}

fn karmada_certs(certificates: &[KeyedCert; 4]) -> KarmadaCerts<'_> {
    let [ca, control_plane, front_proxy_ca, front_proxy_client] = certificates;
    KarmadaCerts {
        ca,
        control_plane,
        front_proxy_ca,
        front_proxy_client,
    }
}

/// The certificate hash the controller puts on every component for [`certificates`].
fn hash() -> String {
    karmada_certs(&certificates()).hash()
}

/// The values InstallFederationChart passes (the controller's own `karmada_values`) for a
/// Karmada enablement of fleet `fleet-a` with `controlPlane.replicas: 4`, `spec.sso`, and
/// `chart.values` naming an etcd storage class.
fn controller_values() -> Value {
    controller_values_for(&certificates())
}

/// [`controller_values`] with other certificates.
fn controller_values_for(certificates: &[KeyedCert; 4]) -> Value {
    let enablement: FederationEnablement = serde_json::from_value(json!({
        "apiVersion": "federation.fleet.dev/v1alpha1",
        "kind": "FederationEnablement",
        "metadata": {"name": "fleet-a", "namespace": "team-a", "uid": UID},
        "spec": {
            "clusterGroupID": "fleet-a",
            "controlPlane": {"replicas": REPLICAS},
            "sso": {"issuerUrl": ISSUER, "clientUuid": CLIENT_ID},
            "chart": {
                "clusterScoped": true,
                "installerClusterRole": "cluster-admin",
                "values": {"etcd": {"internal": {"pvc": {"storageClass": "fast-ssd"}}}},
            },
        },
    }))
    .expect("an enablement");
    let run = RunFacts::default();
    let settings = Settings {
        default_runner_image: "runner".to_string(),
    };
    let now = "2026-01-15T08:00:00Z".parse().expect("a time");
    let ctx = Context::new(&enablement, &run, &settings, now);
    Value::Object(karmada_values(&ctx, karmada_certs(certificates)))
}

/// `helm template` of the fixture as release `karmada-fleet-a` in its namespace, with `values`.
fn render(values: &Value) -> Vec<Value> {
    render_release(RELEASE, values)
}

/// [`render`] as another release (and namespace of the same name).
fn render_release(release: &str, values: &Value) -> Vec<Value> {
    static FILES: AtomicUsize = AtomicUsize::new(0);
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "karmada-values-{}-{}.json",
        std::process::id(),
        FILES.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&file, values.to_string()).expect("the values file is written");
    let path = file.to_str().expect("a UTF-8 path");
    let rendered = try_helm_template_chart(FIXTURE, release, release, &["--values", path])
        .expect("helm is available (checked by the caller)");
    let _ = std::fs::remove_file(&file);
    rendered.unwrap_or_else(|error| panic!("helm template of {FIXTURE} failed:\n{error}"))
}

/// The fixture rendered with the controller's values; None (skipped) without helm.
fn rendered() -> Option<Vec<Value>> {
    deploy_support::helm()?;
    Some(render(&controller_values()))
}

/// The pod template of a workload.
fn pod_template<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    &object(objects, kind, name)["spec"]["template"]
}

fn args(template: &Value) -> Vec<String> {
    strings(&template["spec"]["containers"][0]["args"])
}

#[test]
fn every_component_runs_only_on_the_reserved_nodes() {
    let Some(objects) = rendered() else {
        return;
    };
    let workloads: Vec<(String, String)> = ["Deployment", "StatefulSet", "Job"]
        .iter()
        .flat_map(|kind| all(&objects, kind))
        .map(|o| {
            (
                o["kind"].as_str().unwrap_or_default().to_string(),
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        workloads.len(),
        WORKLOADS.len(),
        "every workload is checked: {workloads:?}"
    );
    for (kind, name, key) in WORKLOADS {
        assert_eq!(
            pod_template(&objects, kind, name)["spec"]["nodeSelector"],
            json!({ CONTROL_PLANE_LABEL: UID }),
            "{kind} {name} ({key}.nodeSelector)"
        );
    }
}

#[test]
fn only_the_apiserver_pods_carry_the_label_the_federation_service_selects() {
    let Some(objects) = rendered() else {
        return;
    };
    for (kind, name, _) in WORKLOADS {
        let label = &pod_template(&objects, kind, name)["metadata"]["labels"][APISERVER_LABEL];
        if name == "karmada-fleet-a-apiserver" {
            assert_eq!(label, UID, "the API server pods are selected");
        } else {
            assert!(label.is_null(), "{kind} {name} is not an API server");
        }
    }
    // The controller's Service sends its port to target port 5443.
    let service = object(&objects, "Service", "karmada-fleet-a-apiserver");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], 5443);
    assert!(
        args(pod_template(
            &objects,
            "Deployment",
            "karmada-fleet-a-apiserver"
        ))
        .contains(&"--secure-port=5443".to_string())
    );
}

#[test]
fn the_charts_own_apiserver_service_stays_inside_the_cluster() {
    let Some(objects) = rendered() else {
        return;
    };
    let service = object(&objects, "Service", "karmada-fleet-a-apiserver");
    assert_eq!(
        service["spec"]["type"], "ClusterIP",
        "the federation endpoint is the controller's Service, not the chart's"
    );
}

#[test]
fn the_cert_secret_holds_the_controllers_material_under_the_charts_keys() {
    let Some(objects) = rendered() else {
        return;
    };
    let secret: Secret =
        serde_json::from_value(object(&objects, "Secret", "karmada-fleet-a-cert").clone())
            .expect("a Secret");
    let data: BTreeMap<String, String> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(key, bytes)| (key, String::from_utf8(bytes.0).expect("PEM text")))
        .collect();
    let expected: BTreeMap<String, String> = CERT_KEYS
        .iter()
        .map(|(value, key)| (key.to_string(), material(value)))
        .collect();
    assert_eq!(data, expected);
    // Every workload mounts it.
    for (kind, name, _) in WORKLOADS.iter().filter(|(kind, ..)| *kind != "Job") {
        let volumes = &pod_template(&objects, kind, name)["spec"]["volumes"];
        assert!(
            volumes
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| v["secret"]["secretName"] == "karmada-fleet-a-cert"),
            "{kind} {name} mounts the certificates"
        );
    }
}

#[test]
fn etcd_keeps_an_odd_quorum_on_persistent_volumes() {
    let Some(objects) = rendered() else {
        return;
    };
    let etcd = object(&objects, "StatefulSet", "etcd");
    assert_eq!(
        etcd["spec"]["replicas"], 3,
        "the largest odd number <= {REPLICAS}"
    );
    let claims = etcd["spec"]["volumeClaimTemplates"]
        .as_array()
        .expect("volume claim templates");
    assert_eq!(claims.len(), 1);
    // The PVCs are etcd-data-etcd-0, -1, -2: what the teardown deletes.
    assert_eq!(claims[0]["metadata"]["name"], "etcd-data");
    assert_eq!(claims[0]["spec"]["resources"]["requests"]["storage"], "5Gi");
    assert_eq!(claims[0]["spec"]["storageClassName"], "fast-ssd");
    assert!(
        etcd["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|v| v["hostPath"].is_null()),
        "no data on the node's disk"
    );
}

#[test]
fn sso_becomes_the_apiservers_oidc_flags() {
    let Some(objects) = rendered() else {
        return;
    };
    let flags = args(pod_template(
        &objects,
        "Deployment",
        "karmada-fleet-a-apiserver",
    ));
    assert!(
        flags.contains(&format!("--oidc-issuer-url={ISSUER}")),
        "{flags:?}"
    );
    assert!(
        flags.contains(&format!("--oidc-client-id={CLIENT_ID}")),
        "{flags:?}"
    );

    let mut without_sso = controller_values();
    without_sso["apiServer"]
        .as_object_mut()
        .expect("apiServer")
        .remove("oidc");
    let objects = render(&without_sso);
    let flags = args(pod_template(
        &objects,
        "Deployment",
        "karmada-fleet-a-apiserver",
    ));
    assert!(!flags.iter().any(|f| f.starts_with("--oidc-")), "{flags:?}");
}

/// The upstream chart takes podAnnotations for its Deployments only: etcd (which reads its
/// certificate files again on new connections) and the one-off static-resource Job have none.
#[test]
fn a_new_certificate_restarts_every_component() {
    let Some(objects) = rendered() else {
        return;
    };
    // A renewal: a new control-plane certificate for the same key.
    let mut renewed = certificates();
    renewed[1] = KeyedCert::new(material("renewed crt"), material("key"));
    let after = render(&controller_values_for(&renewed));
    for (kind, name, _) in WORKLOADS.iter().filter(|(kind, ..)| *kind == "Deployment") {
        let before = pod_template(&objects, kind, name);
        assert_eq!(
            before["metadata"]["annotations"][CERTIFICATE_HASH],
            hash(),
            "{kind} {name}"
        );
        assert_ne!(
            before,
            pod_template(&after, kind, name),
            "{kind} {name}: a changed pod template rolls the pods"
        );
    }
}

#[test]
fn the_pre_install_hooks_leave_what_the_teardown_deletes() {
    let Some(objects) = rendered() else {
        return;
    };
    let hook = format!("{RELEASE}-hook-job");
    let is_pre_install = |o: &Value| o["metadata"]["annotations"]["helm.sh/hook"] == "pre-install";
    for kind in ["ServiceAccount", "ClusterRole", "ClusterRoleBinding"] {
        assert!(
            is_pre_install(object(&objects, kind, &hook)),
            "{kind} {hook}"
        );
    }
    let config_maps: Vec<&str> = all(&objects, "ConfigMap")
        .into_iter()
        .filter(|o| is_pre_install(o))
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    assert!(config_maps.contains(&"karmada-fleet-a-static-resources"));
    assert!(
        config_maps
            .iter()
            .any(|name| name.starts_with("karmada-fleet-a-crds-")),
        "{config_maps:?}"
    );
    // Why the installer must be cluster-admin: nobody may grant what they do not hold.
    let rules = &object(&objects, "ClusterRole", &hook)["rules"][0];
    for field in ["apiGroups", "resources", "verbs"] {
        assert_eq!(strings(&rules[field]), ["*"], "{field}");
    }
}

/// The release (and namespace) name is fitted to 41 characters, so that the longest name the
/// chart derives from it, `<release>-aggregated-apiserver`, is a valid Service name.
#[test]
fn a_release_of_41_characters_gives_valid_service_names() {
    if deploy_support::helm().is_none() {
        return;
    }
    let release = format!("karmada-{}", "f".repeat(33));
    assert_eq!(release.len(), 41);
    for service in all(&render_release(&release, &controller_values()), "Service") {
        let name = service["metadata"]["name"].as_str().expect("a name");
        assert!(name.len() <= 63, "{name} is {} characters", name.len());
    }
}
