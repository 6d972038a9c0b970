//! The Karmada profile with the real executors, against the in-memory API server: from
//! `kubectl apply` of an enablement that leaves the chart to the defaults, to a kubeconfig the
//! user can read, a renewal that upgrades the release, and a teardown that leaves nothing.

mod support;

use serde_json::{Value, json};
use support::*;
use x509_parser::prelude::{FromDer, X509Certificate};

const CP_NS: &str = "karmada-fleet-a";
const NAMESPACE: &str = "/api/v1/namespaces/karmada-fleet-a";
const SERVICE: &str = "/api/v1/namespaces/karmada-fleet-a/services/fleet-a-federation-apiserver";
const SECRETS: &str = "/api/v1/namespaces/karmada-fleet-a/secrets/";
const JOBS: &str = "/apis/batch/v1/namespaces/karmada-fleet-a/jobs/";
const HOOK_ROLE: &str = "/apis/rbac.authorization.k8s.io/v1/clusterroles/karmada-fleet-a-hook-job";
const HOOK_BINDING: &str =
    "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/karmada-fleet-a-hook-job";

/// A policy that allows what the Karmada profile needs, as `installer.allowClusterAdmin` does.
fn karmada_policy() -> federation_controller::policy::Policy {
    let mut policy = policy();
    policy.allow_cluster_scoped_charts = true;
    policy.allowed_installer_roles.push("cluster-admin".into());
    policy
}

/// `examples/fleet-a.yaml`'s chart: the defaults, installed cluster-wide as cluster-admin.
fn karmada_spec() -> Value {
    json!({
        "certificate": {"validityDays": 30},
        "sso": {"clientUuid": "client-1", "issuerUrl": "https://sso.example"},
        "chart": {"clusterScoped": true, "installerClusterRole": "cluster-admin",
                  "values": {"clusterDomain": "corp.local"}},
    })
}

fn setup() -> Harness {
    let h = Harness::new(karmada_policy());
    h.server.insert(ready_node("node-1"));
    let mut fe = enablement_json(NAME, NS, "fleet-a", karmada_spec());
    fe["spec"]["chart"] = karmada_spec()["chart"].clone();
    h.server.insert(fe);
    h.sync_store(&[FE_PATH]);
    h
}

fn uid(h: &Harness) -> String {
    h.server.get(FE_PATH).expect("fe")["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string()
}

fn finish_job(h: &Harness, prefix: &str, condition: &str) {
    finish_job_in(h, JOBS, prefix, condition);
}

fn secret_text(h: &Harness, name: &str, key: &str) -> String {
    let secret = h
        .server
        .get(&format!("{SECRETS}{name}"))
        .unwrap_or_else(|| panic!("Secret {name}"));
    let encoded = secret["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("{name}/{key}"));
    String::from_utf8(base64_decode(encoded)).expect("utf-8")
}

fn base64_decode(text: &str) -> Vec<u8> {
    let bytes: k8s_openapi::ByteString = serde_json::from_value(json!(text)).expect("base64");
    bytes.0
}

/// Subject CN and O of the first certificate in `pem`.
fn subject(pem: &str) -> (String, String) {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("pem");
    let (_, cert) = X509Certificate::from_der(&pem.contents).expect("certificate");
    let first = |attrs: Vec<&x509_parser::x509::AttributeTypeAndValue<'_>>| {
        attrs
            .first()
            .and_then(|a| a.as_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    (
        first(cert.subject().iter_common_name().collect()),
        first(cert.subject().iter_organization().collect()),
    )
}

fn degraded_condition(h: &Harness) -> Value {
    h.status(FE_PATH)["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Degraded"))
        .cloned()
        .expect("Degraded")
}

async fn run_to_success(h: &Harness) {
    run_to_success_in(h, SERVICE, JOBS).await;
}

#[tokio::test]
async fn a_karmada_enablement_builds_its_control_plane_in_a_namespace_of_its_own() {
    let h = setup();
    run_to_success(&h).await;
    let uid = uid(&h);

    let namespace = h.server.get(NAMESPACE).expect("namespace created");
    assert_eq!(
        namespace["metadata"]["annotations"]["federation.fleet.dev/created-by"],
        uid.as_str()
    );
    assert!(
        namespace["metadata"]["labels"]
            .get("federation.fleet.dev/control-plane-namespace")
            .is_none(),
        "not open to other enablements' control planes: the chart's hook account lives there"
    );
    let status = h.status(FE_PATH);
    assert_eq!(status["controlPlaneNamespace"], CP_NS);
    assert_eq!(
        status["kubeconfigSecretName"],
        "fleet-a-federation-kubeconfig"
    );
    assert_eq!(status["chartVersion"], "v1.18.1");

    let service = h.server.get(SERVICE).expect("service");
    assert_eq!(
        service["spec"]["selector"],
        json!({"federation.fleet.dev/apiserver": uid})
    );
    assert_eq!(service["spec"]["ports"][0]["targetPort"], 5443);

    // The install Job runs the default chart under cluster-admin, as the release of the fleet.
    let job_path = h
        .server
        .paths(JOBS)
        .into_iter()
        .next()
        .expect("install job");
    let job = h.server.get(&job_path).expect("job");
    let env = &job["spec"]["template"]["spec"]["containers"][0]["env"];
    let env_value = |name: &str| {
        env.as_array()
            .and_then(|e| e.iter().find(|v| v["name"] == name))
            .map(|v| v["value"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(env_value("RELEASE"), CP_NS);
    assert_eq!(env_value("NAMESPACE"), CP_NS);
    assert_eq!(env_value("CHART_NAME"), "karmada");
    assert_eq!(env_value("CHART_VERSION"), "v1.18.1");

    // The values carry the certificates CreateCert stored.
    let values: Value =
        serde_json::from_str(&secret_text(&h, "fleet-a-federation-values", "values.yaml"))
            .expect("values JSON");
    assert_eq!(values["installMode"], "host");
    assert_eq!(
        values["clusterDomain"], "corp.local",
        "the user's values are kept"
    );
    assert_eq!(
        values["certs"]["custom"]["crt"].as_str(),
        Some(secret_text(&h, "fleet-a-federation-certs", "tls.crt").as_str())
    );
    assert_eq!(
        values["certs"]["custom"]["frontProxyCrt"].as_str(),
        Some(secret_text(&h, "fleet-a-federation-front-proxy", "tls.crt").as_str())
    );
    assert_eq!(values["apiServer"]["oidc"]["clientId"], "client-1");
    let control_plane = secret_text(&h, "fleet-a-federation-certs", "tls.crt");
    assert_eq!(
        subject(&control_plane),
        ("system:admin".to_string(), "system:masters".to_string())
    );
}

#[tokio::test]
async fn the_user_gets_a_kubeconfig_for_the_load_balancer_signed_by_the_federation_ca() {
    let h = setup();
    run_to_success(&h).await;
    let document = secret_text(&h, "fleet-a-federation-kubeconfig", "kubeconfig");
    let config: Value = serde_yaml::from_str(&document).expect("kubeconfig YAML");
    let cluster = &config["clusters"][0]["cluster"];
    assert_eq!(cluster["server"], "https://203.0.113.10:5443");
    let ca = String::from_utf8(base64_decode(
        cluster["certificate-authority-data"]
            .as_str()
            .expect("CA data"),
    ))
    .expect("utf-8");
    assert_eq!(ca, secret_text(&h, "fleet-a-federation-ca", "ca.crt"));
    let user = &config["users"][0]["user"];
    let client = String::from_utf8(base64_decode(
        user["client-certificate-data"]
            .as_str()
            .expect("client cert"),
    ))
    .expect("utf-8");
    assert_eq!(
        subject(&client),
        ("federation-admin".to_string(), "system:masters".to_string())
    );

    // Deleted by someone: repaired by the next maintenance round, with the same CA.
    h.server
        .remove(&format!("{SECRETS}fleet-a-federation-kubeconfig"));
    h.reconcile(FE_PATH).await;
    let repaired = secret_text(&h, "fleet-a-federation-kubeconfig", "kubeconfig");
    let config: Value = serde_yaml::from_str(&repaired).expect("kubeconfig YAML");
    assert_eq!(
        config["clusters"][0]["cluster"]["certificate-authority-data"],
        cluster["certificate-authority-data"]
    );
}

#[tokio::test]
async fn a_reconcile_after_success_that_changes_nothing_writes_nothing() {
    let h = setup();
    run_to_success(&h).await;
    h.reconcile(FE_PATH).await;
    h.server.take_calls();
    h.reconcile(FE_PATH).await;
    assert_eq!(writes(&h.server.take_calls()), Vec::<String>::new());
}

#[tokio::test]
async fn a_renewal_runs_helm_upgrade_as_a_maintenance_round_keeping_the_signing_key() {
    let h = setup();
    run_to_success(&h).await;
    let key_before = secret_text(&h, "fleet-a-federation-certs", "tls.key");
    let cert_before = secret_text(&h, "fleet-a-federation-certs", "tls.crt");

    h.clock.advance(21 * 86_400); // 9 of 30 days left: less than a third
    h.reconcile(FE_PATH).await;
    assert_ne!(
        secret_text(&h, "fleet-a-federation-certs", "tls.crt"),
        cert_before
    );
    assert_eq!(
        secret_text(&h, "fleet-a-federation-certs", "tls.key"),
        key_before,
        "the service-account signing key is kept"
    );
    let upgrades: Vec<String> = h
        .server
        .paths(JOBS)
        .into_iter()
        .filter(|p| p.contains("fleet-a-upgrade-"))
        .collect();
    assert_eq!(upgrades.len(), 1, "{:?}", h.server.paths(JOBS));
    let degraded = degraded_condition(&h);
    assert_eq!(
        (degraded["status"].as_str(), degraded["reason"].as_str()),
        (Some("True"), Some("Upgrading"))
    );
    assert!(
        h.server
            .paths(JOBS)
            .iter()
            .all(|p| !p.contains("fleet-a-install-")),
        "the finished install Job is replaced"
    );

    // Reconciling again while it runs starts nothing more.
    h.reconcile(FE_PATH).await;
    assert_eq!(h.server.paths(JOBS).len(), 1);

    finish_job(&h, "fleet-a-upgrade-", "Complete");
    h.reconcile(FE_PATH).await;
    let degraded = degraded_condition(&h);
    assert_eq!(degraded["status"], "False", "{degraded:#}");
    assert_eq!(h.status(FE_PATH)["phase"], "Success");
}

#[tokio::test]
async fn an_upgrade_that_finds_the_release_is_not_ours_is_a_name_conflict_not_a_success() {
    let h = setup();
    run_to_success(&h).await;
    h.clock.advance(21 * 86_400); // a renewal: new values, an upgrade Job
    h.reconcile(FE_PATH).await;
    let upgrade = h
        .server
        .paths(JOBS)
        .into_iter()
        .find(|p| p.contains("fleet-a-upgrade-"))
        .expect("an upgrade Job");
    h.server.modify(&upgrade, |job| {
        job["status"] = json!({"conditions": [{"type": "Failed", "status": "True",
            "reason": "PodFailurePolicy",
            "message": "Container helm for pod x failed with exit code 3 matching FailJob rule at index 0"}]});
    });
    h.reconcile(FE_PATH).await;
    let degraded = degraded_condition(&h);
    assert_eq!(
        (degraded["status"].as_str(), degraded["reason"].as_str()),
        (Some("True"), Some("NameConflict")),
        "{degraded:#}"
    );
}

#[tokio::test]
async fn a_namespace_that_existed_before_is_refused_and_left_alone() {
    let h = setup();
    h.server.insert(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": CP_NS, "labels": {"federation.fleet.dev/control-plane-namespace": "true"}},
    }));
    h.reconcile(FE_PATH).await;
    let status = h.status(FE_PATH);
    assert_eq!(
        (status["phase"].as_str(), status["reason"].as_str()),
        (Some("Failed"), Some("NotAllowed"))
    );
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("existed before"),
        "{status:#}"
    );
    assert!(
        h.server.paths(&format!("{NAMESPACE}/")).is_empty(),
        "nothing created in it"
    );
    assert!(h.server.get(NAMESPACE).is_some());
}

/// What the Karmada chart's pre-install hooks leave after `helm uninstall`, plus a ClusterRole
/// of that name that no helm hook made, which stays.
fn leave_hook_objects(h: &Harness) {
    let hook = json!({"helm.sh/hook": "pre-install"});
    h.server.insert(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "karmada-fleet-a-hook-job", "annotations": hook},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
    );
    h.server.insert(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "karmada-fleet-a-hook-job", "annotations": hook},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "karmada-fleet-a-hook-job"},
        "subjects": [{"kind": "ServiceAccount", "name": "karmada-fleet-a-hook-job", "namespace": CP_NS}]}));
    h.server.insert(json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "karmada-fleet-a-hook-job", "namespace": CP_NS, "annotations": hook}}));
    for name in [
        "karmada-fleet-a-static-resources",
        "karmada-fleet-a-crds-autoscaling-bases",
    ] {
        h.server
            .insert(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": CP_NS, "annotations": hook}}));
    }
    h.server
        .insert(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "etcd-data-etcd-0", "namespace": CP_NS}}));
}

#[tokio::test]
async fn teardown_uninstalls_then_deletes_the_hook_leftovers_the_pvcs_and_the_namespace() {
    let h = setup();
    run_to_success(&h).await;
    leave_hook_objects(&h);
    h.server.modify(FE_PATH, |fe| {
        fe["metadata"]["deletionTimestamp"] = json!("2026-01-15T09:00:00Z")
    });
    h.reconcile(FE_PATH).await;
    assert!(
        h.server.get(HOOK_ROLE).is_some(),
        "kept until helm uninstall is done"
    );
    finish_job(&h, "fleet-a-uninst-", "Complete");
    reconcile_until_gone(&h, FE_PATH).await;
    assert!(
        h.server.get(FE_PATH).is_none(),
        "finalizer removed: {:#}",
        h.status(FE_PATH)["teardown"]
    );
    for path in [
        HOOK_ROLE.to_string(),
        HOOK_BINDING.to_string(),
        format!("{NAMESPACE}/serviceaccounts/karmada-fleet-a-hook-job"),
        format!("{NAMESPACE}/configmaps/karmada-fleet-a-static-resources"),
        format!("{NAMESPACE}/configmaps/karmada-fleet-a-crds-autoscaling-bases"),
        format!("{NAMESPACE}/persistentvolumeclaims/etcd-data-etcd-0"),
        format!("{SECRETS}fleet-a-federation-kubeconfig"),
        NAMESPACE.to_string(),
    ] {
        assert!(h.server.get(&path).is_none(), "{path} deleted");
    }
}

#[tokio::test]
async fn teardown_leaves_a_cluster_role_of_that_name_that_no_helm_hook_made() {
    let h = setup();
    run_to_success(&h).await;
    h.server.insert(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "karmada-fleet-a-hook-job"}, "rules": []}),
    );
    h.server.modify(FE_PATH, |fe| {
        fe["metadata"]["deletionTimestamp"] = json!("2026-01-15T09:00:00Z")
    });
    h.reconcile(FE_PATH).await;
    finish_job(&h, "fleet-a-uninst-", "Complete");
    reconcile_until_gone(&h, FE_PATH).await;
    assert!(h.server.get(FE_PATH).is_none());
    assert!(
        h.server.get(HOOK_ROLE).is_some(),
        "not a hook object: not ours"
    );
}

#[tokio::test]
async fn a_new_ca_is_published_with_the_old_one_while_the_chart_signs_with_the_new_alone() {
    let h = setup();
    run_to_success(&h).await;
    let old_ca = secret_text(&h, "fleet-a-federation-ca", "ca.crt");
    // Ten years on, the CA would not outlive a certificate issued now: it is replaced.
    h.clock.advance((3650 - 20) * 86_400);
    h.reconcile(FE_PATH).await;
    let bundle = secret_text(&h, "fleet-a-federation-ca", "ca.crt");
    let new_ca = bundle.strip_suffix(&old_ca).expect("the old CA last");
    assert!(
        new_ca.contains("BEGIN CERTIFICATE") && new_ca != old_ca,
        "the new CA first"
    );

    let document = secret_text(&h, "fleet-a-federation-kubeconfig", "kubeconfig");
    let config: Value = serde_yaml::from_str(&document).expect("kubeconfig YAML");
    let trusted = String::from_utf8(base64_decode(
        config["clusters"][0]["cluster"]["certificate-authority-data"]
            .as_str()
            .expect("CA data"),
    ))
    .expect("utf-8");
    assert_eq!(trusted, bundle, "the kubeconfig trusts both");
    assert_eq!(
        secret_text(&h, "fleet-a-federation-certs", "ca.crt"),
        bundle
    );
    let values: Value =
        serde_json::from_str(&secret_text(&h, "fleet-a-federation-values", "values.yaml"))
            .expect("values JSON");
    assert_eq!(
        values["certs"]["custom"]["caCrt"].as_str(),
        Some(new_ca),
        "the chart signs with the new CA alone"
    );
}

#[tokio::test]
async fn a_generic_enablement_cannot_put_its_installer_into_a_karmada_namespace() {
    let mut policy = karmada_policy();
    policy.allow_foreign_control_plane_namespaces = true;
    let h = Harness::new(policy);
    h.server.insert(ready_node("node-1"));
    let mut fe = enablement_json(NAME, NS, "fleet-a", karmada_spec());
    fe["spec"]["chart"] = karmada_spec()["chart"].clone();
    h.server.insert(fe);
    let intruder =
        "/apis/federation.fleet.dev/v1alpha1/namespaces/team-b/federationenablements/intruder";
    h.server.insert(enablement_json(
        "intruder",
        "team-b",
        "fleet-b",
        json!({"controlPlane": {"namespace": CP_NS}}),
    ));
    h.sync_store(&[FE_PATH, intruder]);
    h.reconcile(FE_PATH).await;
    assert!(h.server.get(NAMESPACE).is_some());
    h.reconcile(intruder).await;
    let status = h.status(intruder);
    assert_eq!(
        (status["phase"].as_str(), status["reason"].as_str()),
        (Some("Failed"), Some("NotAllowed")),
        "{status:#}"
    );
    assert!(
        h.server
            .paths(&format!("{NAMESPACE}/"))
            .iter()
            .all(|p| !p.contains("intruder")),
        "nothing of the intruder's in the Karmada namespace"
    );
}

#[tokio::test]
async fn a_fleet_id_edited_after_deletion_still_tears_down_the_control_plane_installed() {
    let h = setup();
    run_to_success(&h).await;
    leave_hook_objects(&h);
    h.server.modify(FE_PATH, |fe| {
        fe["metadata"]["deletionTimestamp"] = json!("2026-01-15T09:00:00Z");
        // The Karmada namespace and release derive from the fleet id: the live spec now names
        // others, which were never made.
        fe["spec"]["clusterGroupID"] = json!("fleet-b");
    });
    h.reconcile(FE_PATH).await;
    let uninstall = h
        .server
        .paths(JOBS)
        .into_iter()
        .find(|p| p.contains("-uninst-"))
        .and_then(|p| h.server.get(&p))
        .expect("an uninstall Job in the recorded namespace");
    let env = &uninstall["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .expect("env")
            .contains(&json!({"name": "RELEASE", "value": CP_NS})),
        "the recorded release: {env:#}"
    );
    finish_the_cluster_admin_uninstall(
        &h,
        &[
            HOOK_ROLE.to_string(),
            HOOK_BINDING.to_string(),
            format!("{SECRETS}fleet-a-federation-kubeconfig"),
            NAMESPACE.to_string(),
        ],
    )
    .await;
}

/// The uninstall Job runs as `cluster-admin`, bound cluster-wide; once it completes, the
/// enablement goes, and every path of `gone` with it.
async fn finish_the_cluster_admin_uninstall(h: &Harness, gone: &[String]) {
    let binding = h
        .server
        .get(&format!(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/federation-installer.{CP_NS}.{NAME}"
        ))
        .expect("the installer bound cluster-wide for the uninstall");
    assert_eq!(binding["roleRef"]["name"], "cluster-admin");
    finish_job(h, "fleet-a-uninst-", "Complete");
    reconcile_until_gone(h, FE_PATH).await;
    assert!(h.server.get(FE_PATH).is_none(), "finalizer removed");
    for path in gone {
        assert!(h.server.get(path).is_none(), "{path} deleted");
    }
}

#[tokio::test]
async fn cluster_admin_is_never_bound_in_a_namespace_the_enablement_did_not_create() {
    let h = setup();
    run_to_success(&h).await;
    h.server
        .insert(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "team-b"}}));
    // A tenant who may write the status points the teardown at a namespace of theirs.
    h.server.modify(FE_PATH, |fe| {
        fe["metadata"]["deletionTimestamp"] = json!("2026-01-15T09:00:00Z");
        fe["status"]["created"]["releaseNamespace"] = json!("team-b");
    });
    h.reconcile(FE_PATH).await;
    let binding = h
        .server
        .get("/apis/rbac.authorization.k8s.io/v1/namespaces/team-b/rolebindings/fleet-a-federation-installer")
        .expect("the installer's binding in the recorded namespace");
    assert_eq!(binding["roleRef"]["name"], "federation-chart-installer");
    assert!(
        h.server
            .get("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/federation-installer.team-b.fleet-a")
            .is_none_or(|b| b["roleRef"]["name"] != "cluster-admin"),
        "no cluster-admin for an account in team-b"
    );
}

#[tokio::test]
async fn a_profile_edited_after_deletion_still_cleans_up_after_the_karmada_install() {
    let h = setup();
    run_to_success(&h).await;
    assert_eq!(h.status(FE_PATH)["created"]["profile"], "Karmada");
    leave_hook_objects(&h);
    h.server.modify(FE_PATH, |fe| {
        fe["metadata"]["deletionTimestamp"] = json!("2026-01-15T09:00:00Z");
        // The live spec now says Generic, with a chart of its own.
        fe["spec"]["chart"] = json!({"profile": "Generic", "repository": "oci://registry.example/charts",
            "name": "federation", "version": "1.2.3", "clusterScoped": true,
            "installerClusterRole": "cluster-admin"});
    });
    h.reconcile(FE_PATH).await;
    finish_the_cluster_admin_uninstall(
        &h,
        &[
            HOOK_ROLE.to_string(),
            HOOK_BINDING.to_string(),
            NAMESPACE.to_string(),
        ],
    )
    .await;
}
