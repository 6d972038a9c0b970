//! The reconcile loop with the real executors, against an in-memory API server that logs every
//! request: what a user relies on from one `kubectl apply` to the object's deletion.

mod support;

use federation_controller::policy::{DEFAULT_RUNNER_IMAGE, RESERVED_NAMESPACES};
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use std::time::Duration;
use support::*;

const SERVICE: &str = "/api/v1/namespaces/team-a/services/fleet-a-federation-apiserver";
const CERTS: &str = "/api/v1/namespaces/team-a/secrets/fleet-a-federation-certs";
const CA: &str = "/api/v1/namespaces/team-a/secrets/fleet-a-federation-ca";
const VALUES: &str = "/api/v1/namespaces/team-a/secrets/fleet-a-federation-values";
const INSTALLER_SA: &str = "/api/v1/namespaces/team-a/serviceaccounts/fleet-a-federation-installer";
const INSTALLER_RB: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings/fleet-a-federation-installer";
const JOBS: &str = "/apis/batch/v1/namespaces/team-a/jobs/";

fn setup(extra_spec: Value) -> Harness {
    setup_with(policy(), extra_spec)
}

/// fleet-a with `extra_spec`, under `policy`, on a cluster with one ready node.
fn setup_with(policy: federation_controller::policy::Policy, extra_spec: Value) -> Harness {
    let h = Harness::new(policy);
    h.server.insert(ready_node("node-1"));
    h.server
        .insert(enablement_json(NAME, NS, "fleet-a", extra_spec));
    h.sync_store(&[FE_PATH]);
    h
}

fn give_load_balancer_address(h: &Harness) {
    h.server.modify(SERVICE, |svc| {
        svc["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}});
    });
}

fn finish_job(h: &Harness, prefix: &str, condition: &str) -> String {
    finish_job_in(h, JOBS, prefix, condition)
}

/// Runs the job to Success, returning the calls of every reconcile.
async fn run_to_success(h: &Harness) {
    run_to_success_in(h, SERVICE, JOBS).await;
}

#[tokio::test]
async fn first_reconcile_adds_the_finalizer_labels_a_node_and_applies_the_service() {
    let h = setup(json!({}));
    h.reconcile(FE_PATH).await;
    let calls = h.server.take_calls();
    let mut writes = writes(&calls);
    // CreateNode and CreateNetworkResource run at the same time: their order is not fixed.
    writes[2..4].sort();
    assert_eq!(
        writes,
        vec![
            format!("PATCH {FE_PATH}"),
            format!("PATCH {FE_PATH}/status"),
            format!("PATCH {SERVICE}"),
            "PATCH /api/v1/nodes/node-1".to_string(),
            format!("PATCH {FE_PATH}/status"),
        ],
        "what the executors are about to make is on record before they act"
    );
    let fe = h.server.get(FE_PATH).expect("fe");
    assert_eq!(
        fe["metadata"]["finalizers"],
        json!(["federation.fleet.dev/cleanup"])
    );
    let uid = fe["metadata"]["uid"].as_str().expect("uid").to_string();
    let node = h.server.get("/api/v1/nodes/node-1").expect("node");
    assert_eq!(
        node["metadata"]["labels"]["federation.fleet.dev/control-plane"],
        uid.as_str()
    );

    let node_patch = calls
        .iter()
        .find(|c| c.line() == "PATCH /api/v1/nodes/node-1")
        .expect("node patch");
    assert!(
        node_patch
            .uri
            .contains(&format!("fieldManager=federation-controller-{uid}")),
        "a field manager per enablement: {}",
        node_patch.uri
    );
    let record = calls
        .iter()
        .find(|c| c.line() == format!("PATCH {FE_PATH}/status"))
        .and_then(|c| c.body.clone())
        .expect("the first status patch");
    assert_eq!(
        record["status"]["created"]["subJobs"],
        json!(["CreateNode", "CreateNetworkResource"])
    );
    let service_patch = calls
        .iter()
        .find(|c| c.line() == format!("PATCH {SERVICE}"))
        .expect("service patch");
    assert_eq!(
        service_patch.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert!(
        service_patch
            .uri
            .contains("fieldManager=federation-controller")
    );
    assert!(service_patch.uri.contains("force=true"));
    let service = h.server.get(SERVICE).expect("service");
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    assert_eq!(service["spec"]["ports"][0]["port"], 5443);
    assert_eq!(
        service["metadata"]["annotations"]["kubernetes.io/elb.id"],
        "69694819-67dc-44ac-ab6e-9b18087c5c4c"
    );
    let labels = &service["metadata"]["labels"];
    assert_eq!(
        labels["app.kubernetes.io/managed-by"],
        "federation-controller"
    );
    assert_eq!(labels["federation.fleet.dev/enablement"], NAME);
    assert_eq!(labels["federation.fleet.dev/enablement-namespace"], NS);
    let owner = &service["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["controller"].as_bool()),
        (Some("FederationEnablement"), Some(true))
    );

    let status = h.status(FE_PATH);
    assert_eq!(status["phase"], "Running");
    assert_eq!(status["progress"], "1/4");
    assert_eq!(status["observedGeneration"], 1);
    let network = h.sub_job(FE_PATH, "CreateNetworkResource");
    assert_eq!(
        (network["phase"].as_str(), network["reason"].as_str()),
        (Some("Running"), Some("WaitingForLoadBalancer"))
    );
    assert_eq!(
        network["extendParam"]["JobExtendParamKeyElbID"],
        "69694819-67dc-44ac-ab6e-9b18087c5c4c"
    );
    assert_eq!(h.sub_job(FE_PATH, "CreateNode")["phase"], "Success");
}

#[tokio::test]
async fn job_reaches_success_through_all_four_subjobs() {
    let h = setup(json!({"sso": {"configUuid": "c-1", "callbackUrl": "https://sso.example/cb"}}));
    h.reconcile(FE_PATH).await;
    give_load_balancer_address(&h);
    h.clock.advance(2);
    h.reconcile(FE_PATH).await;

    let network = h.sub_job(FE_PATH, "CreateNetworkResource");
    assert_eq!(
        network["extendParam"]["JobExtendParamKeyEndpoint"],
        "203.0.113.10:5443"
    );
    assert_eq!(h.sub_job(FE_PATH, "CreateCert")["phase"], "Success");
    let certs = h.server.get(CERTS).expect("serving certificate");
    assert_eq!(certs["type"], "kubernetes.io/tls");
    for key in ["tls.crt", "tls.key", "ca.crt"] {
        assert!(certs["data"][key].is_string(), "{key}");
    }
    assert!(h.server.get(CA).is_some());
    let install = h.sub_job(FE_PATH, "InstallFederationChart");
    assert_eq!(
        (install["phase"].as_str(), install["reason"].as_str()),
        (Some("Running"), Some("Installing"))
    );
    assert!(h.server.get(INSTALLER_SA).is_some());
    let binding = h.server.get(INSTALLER_RB).expect("rolebinding");
    assert_eq!(binding["roleRef"]["name"], "federation-chart-installer");
    let values = h.server.get(VALUES).expect("values secret");
    let values_yaml = values["data"]["values.yaml"].as_str().expect("values");
    let values: Value = serde_json::from_slice(&base64_decode(values_yaml)).expect("values json");
    assert_eq!(values["federation"]["endpoint"], "203.0.113.10:5443");
    assert_eq!(
        values["federation"]["certificateSecret"],
        "fleet-a-federation-certs"
    );
    assert_eq!(values["sso"]["configUuid"], "c-1");

    let jobs = h.server.paths(JOBS);
    assert_eq!(jobs.len(), 1);
    let job = h.server.get(&jobs[0]).expect("job");
    assert_eq!(job["spec"]["backoffLimit"], 0);
    assert!(
        job["spec"]["activeDeadlineSeconds"]
            .as_i64()
            .expect("deadline")
            <= 600
    );
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert_eq!(container["image"], "docker.io/alpine/helm:3.16.4");

    h.clock.advance(30);
    finish_job(&h, "fleet-a-install-", "Complete");
    h.reconcile(FE_PATH).await;
    let status = h.status(FE_PATH);
    assert_eq!(status["phase"], "Success");
    assert_eq!(status["progress"], "4/4");
    assert!(status.get("currentSubJobs").is_none());
    let ready = status["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
        .expect("Ready");
    assert_eq!(ready["status"], "True");
    // InstallFederationChart started only after CreateNode and CreateCert had succeeded.
    let time = |t: &str, field: &str| {
        h.sub_job(FE_PATH, t)[field]
            .as_str()
            .expect("time")
            .to_string()
    };
    assert!(time("CreateNode", "completionTime") <= time("InstallFederationChart", "startTime"));
    assert!(time("CreateCert", "completionTime") <= time("InstallFederationChart", "startTime"));
}

#[tokio::test]
async fn the_status_is_patched_with_what_changed_guarded_by_the_version_it_was_read_at() {
    let h = setup(json!({}));
    h.reconcile(FE_PATH).await;
    give_load_balancer_address(&h);
    h.clock.advance(2);
    let read_at = h
        .enablement(FE_PATH)
        .expect("enablement")
        .metadata
        .resource_version;
    h.server.take_calls();
    h.reconcile(FE_PATH).await;
    let calls = h.server.take_calls();
    let patch = calls
        .iter()
        .find(|c| c.line() == format!("PATCH {FE_PATH}/status"))
        .expect("a status patch");
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    let body = patch.body.clone().expect("body");
    assert_eq!(
        body["metadata"]["resourceVersion"].as_str(),
        read_at.as_deref()
    );
    assert!(
        body["status"].get("jobUID").is_none() && body["status"]["subJobs"].is_array(),
        "only what changed is sent: {body}"
    );
}

#[tokio::test]
async fn reconcile_that_changes_nothing_writes_nothing() {
    let h = setup(json!({}));
    run_to_success(&h).await;
    h.reconcile(FE_PATH).await;
    h.server.take_calls();
    let status_writes = h.ctx.metrics.status_writes.get();
    assert!(
        status_writes >= 3,
        "the controller counts its status writes"
    );
    h.clock.advance(60);
    let action = h.reconcile(FE_PATH).await;
    let calls = h.server.take_calls();
    assert_eq!(writes(&calls), Vec::<String>::new(), "{:#?}", lines(&calls));
    assert_eq!(h.ctx.metrics.status_writes.get(), status_writes);
    let metrics = h.ctx.metrics.encode([]);
    assert!(
        metrics.contains(
            "federation_subjob_duration_seconds_count{type=\"CreateCert\",outcome=\"success\"} 1"
        ),
        "{metrics}"
    );
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
}

#[tokio::test]
async fn a_deleted_service_is_repaired_and_degraded_until_it_has_an_address() {
    let h = setup(json!({}));
    run_to_success(&h).await;
    h.server.remove(SERVICE);
    h.reconcile(FE_PATH).await;
    assert!(h.server.get(SERVICE).is_some(), "recreated");
    let status = h.status(FE_PATH);
    assert_eq!(status["phase"], "Success");
    let condition = |status: &Value, t: &str| {
        status["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .find(|c| c["type"] == t)
            .cloned()
            .expect("condition")
    };
    assert_eq!(condition(&status, "Degraded")["status"], "True");
    assert_eq!(
        condition(&status, "Degraded")["reason"],
        "WaitingForLoadBalancer"
    );
    assert_eq!(condition(&status, "Ready")["status"], "False");

    give_load_balancer_address(&h);
    h.reconcile(FE_PATH).await;
    let status = h.status(FE_PATH);
    assert_eq!(condition(&status, "Degraded")["status"], "False");
    assert_eq!(condition(&status, "Ready")["status"], "True");
}

#[tokio::test]
async fn a_changed_label_on_a_secret_is_repaired() {
    let h = setup(json!({}));
    run_to_success(&h).await;
    h.server.modify(CERTS, |s| {
        s["metadata"]["annotations"]["federation.fleet.dev/spec-hash"] = json!("tampered");
    });
    h.server.take_calls();
    h.reconcile(FE_PATH).await;
    let calls = h.server.take_calls();
    assert!(
        writes(&calls).contains(&format!("PATCH {CERTS}")),
        "{:#?}",
        lines(&calls)
    );
    assert_ne!(
        h.server.get(CERTS).expect("certs")["metadata"]["annotations"]["federation.fleet.dev/spec-hash"],
        "tampered"
    );
}

#[tokio::test]
async fn an_existing_service_that_is_not_ours_is_a_name_conflict_and_is_left_alone() {
    let h = setup(json!({"backoffLimit": 0}));
    h.server.insert(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "fleet-a-federation-apiserver", "namespace": NS, "labels": {"app": "someone-else"}},
        "spec": {"type": "ClusterIP"},
    }));
    h.reconcile(FE_PATH).await;
    let calls = h.server.take_calls();
    assert!(
        !writes(&calls).contains(&format!("PATCH {SERVICE}")),
        "never applied over someone else's object"
    );
    let network = h.sub_job(FE_PATH, "CreateNetworkResource");
    assert_eq!(
        (network["phase"].as_str(), network["reason"].as_str()),
        (Some("Failed"), Some("NameConflict"))
    );
    assert_eq!(h.status(FE_PATH)["phase"], "Failed");
    assert_eq!(h.status(FE_PATH)["reason"], "NameConflict");
}

/// The uid the fake API server gave the enablement.
fn enablement_uid(h: &Harness) -> String {
    h.server.get(FE_PATH).expect("fe")["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string()
}

/// The labels this enablement's objects carry, `uid` for its uid (None: none).
fn labels_naming_this_enablement(sub_job: &str, uid: Option<&str>) -> Value {
    let mut labels = json!({
        "app.kubernetes.io/managed-by": "federation-controller",
        "federation.fleet.dev/enablement": NAME,
        "federation.fleet.dev/enablement-namespace": NS,
        "federation.fleet.dev/subjob": sub_job,
    });
    if let Some(uid) = uid {
        labels["federation.fleet.dev/enablement-uid"] = json!(uid);
    }
    labels
}

#[tokio::test]
async fn an_existing_object_labelled_with_this_enablements_uid_is_adopted() {
    let h = setup(json!({}));
    let uid = enablement_uid(&h);
    h.server.insert(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "fleet-a-federation-apiserver", "namespace": NS,
            "labels": labels_naming_this_enablement("network", Some(&uid))},
        "spec": {"type": "ClusterIP"},
    }));
    h.reconcile(FE_PATH).await;
    let service = h.server.get(SERVICE).expect("service");
    assert_eq!(
        service["spec"]["type"], "LoadBalancer",
        "adopted and brought to the desired state"
    );
    assert_eq!(
        h.sub_job(FE_PATH, "CreateNetworkResource")["phase"],
        "Running"
    );
}

#[tokio::test]
async fn a_ca_secret_pre_created_with_this_enablements_name_labels_is_not_adopted() {
    // A tenant of the namespace creates the CA Secret before the controller does, with the
    // labels naming the victim's enablement, hoping its key signs the victim's certificates.
    let h = setup(json!({"backoffLimit": 0}));
    let planted = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "fleet-a-federation-ca", "namespace": NS,
            "labels": labels_naming_this_enablement("cert", None)},
        "data": {"ca.crt": "YXR0YWNrZXI=", "ca.key": "YXR0YWNrZXI="},
    });
    h.server.insert(planted.clone());
    h.reconcile(FE_PATH).await;
    give_load_balancer_address(&h);
    h.server.take_calls();
    h.reconcile(FE_PATH).await;
    let calls = h.server.take_calls();
    assert!(
        !writes(&calls).contains(&format!("PATCH {CA}")),
        "never applied over the planted Secret: {:#?}",
        lines(&calls)
    );
    let cert = h.sub_job(FE_PATH, "CreateCert");
    assert_eq!(
        (cert["phase"].as_str(), cert["reason"].as_str()),
        (Some("Failed"), Some("NameConflict")),
        "{cert:#}"
    );
    assert!(
        h.server.get(CERTS).is_none(),
        "no certificate signed by the planted CA"
    );
    assert_eq!(h.server.get(CA).expect("ca")["data"], planted["data"]);
}

#[tokio::test]
async fn an_object_made_before_the_upgrade_with_an_owner_reference_is_adopted_and_gets_the_uid_label()
 {
    let h = setup(json!({}));
    let uid = enablement_uid(&h);
    h.server.insert(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "fleet-a-federation-apiserver", "namespace": NS,
            "labels": labels_naming_this_enablement("network", None),
            "ownerReferences": [{"apiVersion": "federation.fleet.dev/v1alpha1",
                "kind": "FederationEnablement", "name": NAME, "uid": uid, "controller": true}]},
        "spec": {"type": "ClusterIP"},
    }));
    h.reconcile(FE_PATH).await;
    let service = h.server.get(SERVICE).expect("service");
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    assert_eq!(
        service["metadata"]["labels"]["federation.fleet.dev/enablement-uid"],
        uid.as_str()
    );
}

#[tokio::test]
async fn a_job_that_succeeded_before_the_upgrade_labels_what_it_made_with_its_uid() {
    let h = setup(json!({}));
    run_to_success(&h).await;
    let uid = enablement_uid(&h);
    // What an earlier version made: the name labels only, and (say, in a foreign namespace) no
    // owner reference.
    let made = [SERVICE, CERTS, CA, VALUES, INSTALLER_SA, INSTALLER_RB];
    for path in made {
        h.server.modify(path, |object| {
            let meta = object["metadata"].as_object_mut().expect("metadata");
            meta.remove("ownerReferences");
            meta["labels"]
                .as_object_mut()
                .expect("labels")
                .remove("federation.fleet.dev/enablement-uid");
        });
    }
    h.reconcile(FE_PATH).await;
    for path in made {
        let object = h.server.get(path).expect(path);
        assert_eq!(
            object["metadata"]["labels"]["federation.fleet.dev/enablement-uid"],
            uid.as_str(),
            "{path}"
        );
    }
    let status = h.status(FE_PATH);
    assert_eq!(status["phase"], "Success", "{status:#}");
    let degraded = status["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "Degraded");
    assert_eq!(degraded.expect("Degraded")["status"], "False", "{status:#}");
}

#[tokio::test]
async fn runner_image_outside_the_allowlist_fails_at_once_and_creates_nothing() {
    let h = setup(
        json!({"chart": {"repository": "oci://registry.example/charts", "name": "federation", "version": "1.2.3", "runnerImage": "evil/helm"}}),
    );
    h.reconcile(FE_PATH).await;
    assert_refused_creating_nothing(&h, "NotAllowed", "evil/helm");
}

/// The calls of a reconcile that refuses: read nothing else, write the finalizer and the status.
fn assert_refused_creating_nothing(h: &Harness, reason: &str, in_message: &str) {
    let calls = h.server.take_calls();
    assert_eq!(
        lines(&calls),
        vec![
            format!("PATCH {FE_PATH}"),
            format!("PATCH {FE_PATH}/status")
        ]
    );
    let status = h.status(FE_PATH);
    assert_eq!(
        (status["phase"].as_str(), status["reason"].as_str()),
        (Some("Failed"), Some(reason))
    );
    let message = status["message"].as_str().expect("message");
    assert!(message.contains(in_message), "{message}");
    assert_eq!(
        h.sub_job(FE_PATH, "InstallFederationChart")["phase"],
        "Pending"
    );
}

#[tokio::test]
async fn chart_repository_outside_the_allowlist_fails_at_once_and_creates_nothing() {
    let h = setup(
        json!({"chart": {"repository": "https://charts.example-evil.test/x", "name": "federation", "version": "1.2.3"}}),
    );
    h.reconcile(FE_PATH).await;
    assert_refused_creating_nothing(&h, "NotAllowed", "https://charts.example-evil.test/x");
    h.reconcile(FE_PATH).await;
    assert_eq!(lines(&h.server.take_calls()), Vec::<String>::new());
}

#[tokio::test]
async fn chart_repository_is_checked_again_on_every_reconcile() {
    let h = setup(json!({}));
    h.reconcile(FE_PATH).await;
    assert_eq!(h.status(FE_PATH)["phase"], "Running");
    let jobs = h.server.paths(JOBS);

    // The controller restarts without that repository in --allowed-chart-repositories.
    let mut narrower = policy();
    narrower.allowed_chart_repositories = vec!["https://charts.example".to_string()];
    let restarted = Harness::with_server(h.server.clone(), narrower);
    restarted.sync_store(&[FE_PATH]);
    restarted.server.take_calls();
    restarted.reconcile(FE_PATH).await;
    let calls = restarted.server.take_calls();
    assert_eq!(writes(&calls), vec![format!("PATCH {FE_PATH}/status")]);
    let status = restarted.status(FE_PATH);
    assert_eq!(
        (status["phase"].as_str(), status["reason"].as_str()),
        (Some("Failed"), Some("NotAllowed"))
    );
    assert_eq!(restarted.server.paths(JOBS), jobs, "nothing new");
}

#[tokio::test]
async fn simulated_executors_refuse_a_chart_repository_outside_the_allowlist_too() {
    use federation_controller::subjobs::Executors;
    use federation_controller::subjobs::simulated::SimulatedConfig;
    let h = Harness::with_executors(policy(), |_| {
        Executors::simulated(SimulatedConfig::uniform(Duration::ZERO))
    });
    let chart = json!({"chart": {"repository": "oci://elsewhere.example/charts", "name": "federation", "version": "1.2.3"}});
    h.server.insert(enablement_json(NAME, NS, "fleet-a", chart));
    h.sync_store(&[FE_PATH]);
    h.reconcile(FE_PATH).await;
    assert_refused_creating_nothing(&h, "NotAllowed", "oci://elsewhere.example/charts");
}

#[tokio::test]
async fn karmada_profile_without_a_cluster_scoped_install_is_refused_creating_nothing() {
    let h = setup(json!({"chart": {}}));
    h.reconcile(FE_PATH).await;
    assert_refused_creating_nothing(&h, "NotAllowed", "chart.clusterScoped: true");
}

#[tokio::test]
async fn a_second_enablement_for_the_same_fleet_waits_for_the_owner_to_go() {
    let h = setup(json!({}));
    let second =
        "/apis/federation.fleet.dev/v1alpha1/namespaces/team-b/federationenablements/fleet-a-again";
    let mut newer = enablement_json("fleet-a-again", "team-b", "fleet-a", json!({}));
    newer["metadata"]["creationTimestamp"] = json!("2026-01-15T08:05:00Z");
    h.server.insert(newer);
    h.sync_store(&[FE_PATH, second]);
    let action = h.reconcile(second).await;
    let calls = h.server.take_calls();
    assert_eq!(
        writes(&calls),
        vec![format!("PATCH {second}"), format!("PATCH {second}/status")]
    );
    let status = h.status(second);
    assert_eq!(
        (status["phase"].as_str(), status["reason"].as_str()),
        (Some("Failed"), Some("DuplicateClusterGroupID"))
    );
    let message = status["message"].as_str().expect("message");
    assert!(
        message.contains("another namespace") && !message.contains("team-a"),
        "the owner in another namespace is not named: {message}"
    );
    assert_eq!(action, Action::requeue(Duration::from_secs(30)));

    h.server.remove(FE_PATH);
    h.sync_store(&[second]);
    h.reconcile(second).await;
    assert_eq!(h.status(second)["phase"], "Running");
}

/// With `--fleet-entitlement=namespace-annotation` a fleet id is not first come, first served:
/// only an enablement whose namespace lists it may claim it, and one that may not claims nothing,
/// not even against a later rightful owner.
#[tokio::test]
async fn fleet_ids_go_only_to_namespaces_entitled_to_them() {
    let mut entitled = policy();
    entitled.fleet_entitlement =
        federation_controller::policy::FleetEntitlement::NamespaceAnnotation;
    let h = Harness::new(entitled);
    h.server.insert(ready_node("node-1"));
    let namespace = |name: &str, fleets: Option<&str>| {
        let annotations = fleets.map_or(json!({}), |f| json!({"federation.fleet.dev/fleets": f}));
        json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "annotations": annotations}})
    };
    h.server.insert(namespace("team-b", None));
    h.server.insert(namespace(NS, Some("fleet-x, fleet-a")));
    // An older enablement in team-b, which may not claim fleet-a.
    let squatter =
        "/apis/federation.fleet.dev/v1alpha1/namespaces/team-b/federationenablements/squat";
    let mut older = enablement_json("squat", "team-b", "fleet-a", json!({}));
    older["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    h.server.insert(older);
    h.server
        .insert(enablement_json(NAME, NS, "fleet-a", json!({})));
    h.sync_store(&[FE_PATH, squatter]);

    h.reconcile(squatter).await;
    let calls = h.server.take_calls();
    assert_eq!(
        writes(&calls),
        vec![
            format!("PATCH {squatter}"),
            format!("PATCH {squatter}/status")
        ],
        "nothing created"
    );
    let status = h.status(squatter);
    assert_eq!(
        (status["phase"].as_str(), status["reason"].as_str()),
        (Some("Failed"), Some("FleetNotEntitled"))
    );

    h.reconcile(FE_PATH).await;
    assert_eq!(
        h.status(FE_PATH)["phase"],
        "Running",
        "the older enablement that may not claim the fleet does not own it"
    );

    // Once team-b's namespace lists the fleet, the squatter proceeds by itself.
    h.server.modify("/api/v1/namespaces/team-b", |ns| {
        ns["metadata"]["annotations"] = json!({"federation.fleet.dev/fleets": "*"})
    });
    h.reconcile(squatter).await;
    assert_eq!(h.status(squatter)["phase"], "Running");
}

#[tokio::test]
async fn failed_install_is_retried_with_a_new_job_and_the_old_one_deleted() {
    let h = setup(json!({"backoffLimit": 1}));
    h.reconcile(FE_PATH).await;
    give_load_balancer_address(&h);
    h.reconcile(FE_PATH).await;
    let first = finish_job(&h, "fleet-a-install-", "Failed");
    h.reconcile(FE_PATH).await;
    let install = h.sub_job(FE_PATH, "InstallFederationChart");
    assert_eq!(install["reason"], "InstallFailed");
    assert!(
        install["message"]
            .as_str()
            .expect("message")
            .contains("BackoffLimitExceeded")
    );
    assert_eq!(install["attempts"], 1);

    h.clock.advance(5);
    h.reconcile(FE_PATH).await;
    assert!(
        h.server.get(&first).is_none(),
        "the next attempt deletes the old Job first"
    );
    let jobs = h.server.paths(JOBS);
    assert_eq!(jobs.len(), 1);
    assert!(jobs[0].ends_with("-2"), "{jobs:?}");
    assert_eq!(h.sub_job(FE_PATH, "InstallFederationChart")["attempts"], 2);

    finish_job(&h, "fleet-a-install-", "Failed");
    h.reconcile(FE_PATH).await;
    let status = h.status(FE_PATH);
    assert_eq!(
        (status["phase"].as_str(), status["reason"].as_str()),
        (Some("Failed"), Some("InstallFailed"))
    );

    // Retry: only the failed subjob runs again.
    h.server.modify(FE_PATH, |fe| {
        fe["metadata"]["annotations"] = json!({"federation.fleet.dev/retry": "1"});
    });
    h.server.take_calls();
    h.reconcile(FE_PATH).await;
    let status = h.status(FE_PATH);
    assert_eq!(status["phase"], "Running");
    assert_eq!(status["lastHandledRetry"], "1");
    assert_eq!(h.sub_job(FE_PATH, "CreateCert")["phase"], "Success");
    assert_eq!(h.sub_job(FE_PATH, "InstallFederationChart")["attempts"], 1);
    assert_eq!(h.server.paths(JOBS).len(), 1);
}

/// With `backoffLimit: 0` a retry starts attempt 1 again: it must run helm again, not find the
/// failed Job of the first attempt 1 and fail at once.
#[tokio::test]
async fn a_retry_runs_a_new_install_job_even_with_no_attempts_left() {
    let h = setup(json!({"backoffLimit": 0}));
    h.reconcile(FE_PATH).await;
    give_load_balancer_address(&h);
    h.reconcile(FE_PATH).await;
    let failed = finish_job(&h, "fleet-a-install-", "Failed");
    h.reconcile(FE_PATH).await;
    assert_eq!(h.status(FE_PATH)["phase"], "Failed");

    h.clock.advance(60);
    h.server.modify(FE_PATH, |fe| {
        fe["metadata"]["annotations"] = json!({"federation.fleet.dev/retry": "1"});
    });
    h.reconcile(FE_PATH).await;
    let install = h.sub_job(FE_PATH, "InstallFederationChart");
    assert_eq!(install["phase"], "Running", "{install:#}");
    assert_eq!(install["attempts"], 1);
    assert!(
        h.server.get(&failed).is_none(),
        "the failed Job of the earlier attempt is deleted"
    );

    h.reconcile(FE_PATH).await;
    let jobs = h.server.paths(JOBS);
    assert_eq!(jobs.len(), 1, "a new Job runs helm again: {jobs:?}");
    assert!(
        h.server.get(&jobs[0]).expect("job")["status"].is_null(),
        "a fresh Job, not the failed one"
    );
    finish_job(&h, "fleet-a-install-", "Complete");
    h.reconcile(FE_PATH).await;
    assert_eq!(h.status(FE_PATH)["phase"], "Success");
}

#[tokio::test]
async fn a_restarted_controller_resumes_without_duplicating_objects() {
    let h = setup(json!({}));
    h.reconcile(FE_PATH).await;
    give_load_balancer_address(&h);
    h.reconcile(FE_PATH).await;
    let before = h.status(FE_PATH);
    let jobs = h.server.paths(JOBS);

    // A new process: fresh context, same cluster.
    let fresh = Harness::with_server(h.server.clone(), policy());
    fresh.sync_store(&[FE_PATH]);
    fresh.reconcile(FE_PATH).await;
    assert_eq!(
        fresh.server.paths(JOBS),
        jobs,
        "the same Job, not a new one"
    );
    let after = fresh.status(FE_PATH);
    assert_eq!(after["jobUID"], before["jobUID"]);
    assert_eq!(
        after["subJobs"], before["subJobs"],
        "nothing lost or redone"
    );
}

#[tokio::test]
async fn deletion_tears_everything_down_then_removes_the_finalizer() {
    let h = setup(json!({}));
    run_to_success(&h).await;
    h.server.take_calls();
    // kubectl delete: the finalizer keeps the object, with a deletionTimestamp.
    h.server.modify(FE_PATH, |fe| {
        fe["metadata"]["deletionTimestamp"] = json!("2026-01-15T09:00:00Z")
    });

    h.reconcile(FE_PATH).await;
    let status = h.status(FE_PATH);
    assert_eq!(status["phase"], "Deleting");
    assert_eq!(
        status["teardown"]["steps"][0]["type"],
        "UninstallFederationChart"
    );
    assert_eq!(
        status["teardown"]["steps"][0]["reason"], "Uninstalling",
        "{:#}",
        status["teardown"]["steps"][0]
    );
    assert_eq!(status["currentSubJobs"], "UninstallFederationChart");

    finish_uninstall_and_assert_everything_gone(&h).await;
    assert!(
        h.server.paths(JOBS).iter().all(|p| p.contains("-uninst-")),
        "install Jobs deleted"
    );
}

/// The uninstall Jobs' runner images.
fn uninstall_images(h: &Harness) -> Vec<String> {
    h.server
        .paths(JOBS)
        .iter()
        .filter(|p| p.contains("-uninst-"))
        .filter_map(|p| h.server.get(p))
        .map(|job| {
            job["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn mark_deleted(h: &Harness) {
    h.server.modify(FE_PATH, |fe| {
        fe["metadata"]["deletionTimestamp"] = json!("2026-01-15T09:00:00Z")
    });
}

/// One reconcile of the deleted enablement: the finalizer stays and the uninstall Job runs
/// `image`.
async fn reconcile_expecting_an_uninstall_with(h: &Harness, image: &str, why: &str) {
    h.reconcile(FE_PATH).await;
    assert!(h.server.get(FE_PATH).is_some(), "the finalizer stays");
    assert_eq!(uninstall_images(h), vec![image.to_string()], "{why}");
}

/// After the uninstall Job completes, the teardown ends with everything gone.
async fn finish_uninstall_and_assert_everything_gone(h: &Harness) {
    finish_job(h, "fleet-a-uninst-", "Complete");
    reconcile_until_gone(h, FE_PATH).await;
    assert!(h.server.get(FE_PATH).is_none(), "finalizer removed");
    for path in [SERVICE, CERTS, CA, VALUES, INSTALLER_SA, INSTALLER_RB] {
        assert!(h.server.get(path).is_none(), "{path} deleted");
    }
    let node = h.server.get("/api/v1/nodes/node-1").expect("node");
    assert!(
        node["metadata"]["labels"]
            .get("federation.fleet.dev/control-plane")
            .is_none(),
        "node label released"
    );
}

#[tokio::test]
async fn teardown_leaves_an_object_labelled_with_this_name_but_another_uid() {
    let h = setup(json!({}));
    run_to_success(&h).await;
    let theirs = "/api/v1/namespaces/team-a/secrets/fleet-a-federation-theirs";
    h.server.insert(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "fleet-a-federation-theirs", "namespace": NS,
            "labels": labels_naming_this_enablement("cert", Some("8f1d9c2e-0000-4000-8000-000000000000"))},
    }));
    h.server.modify(FE_PATH, |fe| {
        fe["metadata"]["deletionTimestamp"] = json!("2026-01-15T09:00:00Z")
    });
    h.reconcile(FE_PATH).await;
    finish_job(&h, "fleet-a-uninst-", "Complete");
    for _ in 0..6 {
        if h.server.get(FE_PATH).is_none() {
            break;
        }
        h.reconcile(FE_PATH).await;
    }
    assert!(h.server.get(FE_PATH).is_none(), "torn down");
    assert!(h.server.get(CA).is_none(), "ours deleted");
    assert!(h.server.get(theirs).is_some(), "another uid's object kept");
}

#[tokio::test]
async fn a_spec_change_before_deletion_still_uninstalls_the_release() {
    let h = setup(json!({}));
    run_to_success(&h).await;
    // A new run, held at CreateNode: one node where two are wanted.
    h.server.modify(FE_PATH, |fe| {
        fe["spec"]["controlPlane"] = json!({"replicas": 2})
    });
    h.reconcile(FE_PATH).await;
    assert_eq!(
        h.sub_job(FE_PATH, "InstallFederationChart")["phase"],
        "Pending",
        "the new run has not started its install: {:#}",
        h.status(FE_PATH)
    );

    mark_deleted(&h);
    reconcile_expecting_an_uninstall_with(
        &h,
        DEFAULT_RUNNER_IMAGE,
        "helm uninstall runs: the release of the first run may exist",
    )
    .await;
    finish_uninstall_and_assert_everything_gone(&h).await;
}

#[tokio::test]
async fn a_spec_change_to_a_refused_image_never_removes_the_finalizer_at_once() {
    let h = setup(json!({}));
    run_to_success(&h).await;
    h.server.modify(FE_PATH, |fe| {
        fe["spec"]["chart"]["runnerImage"] = json!("evil/helm:latest")
    });
    h.reconcile(FE_PATH).await;
    assert_eq!(h.status(FE_PATH)["reason"], "NotAllowed");
    assert_eq!(
        h.sub_job(FE_PATH, "InstallFederationChart")["phase"],
        "Success",
        "a refused spec starts no new run"
    );

    mark_deleted(&h);
    reconcile_expecting_an_uninstall_with(
        &h,
        DEFAULT_RUNNER_IMAGE,
        "the uninstall runs with the image that installed, never the refused one",
    )
    .await;
    finish_uninstall_and_assert_everything_gone(&h).await;
}

#[tokio::test]
async fn a_crash_right_after_the_install_job_started_leaves_it_on_record_for_the_teardown() {
    let h = setup(json!({}));
    h.reconcile(FE_PATH).await;
    give_load_balancer_address(&h);
    let before = h.status(FE_PATH);
    h.server.take_calls();
    h.reconcile(FE_PATH).await;
    let calls = h.server.take_calls();
    let job_created = calls
        .iter()
        .position(|c| {
            c.line()
                .starts_with(&format!("PATCH {JOBS}fleet-a-install-"))
        })
        .expect("the install Job is created");
    // The controller dies right after: only what it wrote before the Job stays.
    let on_record = calls[..job_created]
        .iter()
        .rev()
        .find(|c| c.line() == format!("PATCH {FE_PATH}/status"))
        .and_then(|c| c.body.clone())
        .map_or(before, |body| body["status"].clone());
    h.server
        .modify(FE_PATH, |fe| fe["status"] = on_record.clone());
    assert_eq!(
        on_record["created"]["release"], "fleet-a",
        "the release is on record before its install Job exists: {on_record:#}"
    );

    mark_deleted(&h);
    h.reconcile(FE_PATH).await;
    assert!(h.server.get(FE_PATH).is_some(), "the finalizer stays");
    assert!(
        h.server
            .paths(JOBS)
            .iter()
            .all(|p| !p.contains("-install-")),
        "the install in flight is stopped first"
    );
    reconcile_expecting_an_uninstall_with(
        &h,
        DEFAULT_RUNNER_IMAGE,
        "helm uninstall runs: the install may have made the release",
    )
    .await;
    finish_uninstall_and_assert_everything_gone(&h).await;
}

const OTHER_IMAGE: &str = "registry.example/helm:3.17.0";

/// Allows a second runner image and a second installer role.
fn allowing_another_image_and_role() -> Harness {
    let mut allow = policy();
    allow.allowed_runner_images.push(OTHER_IMAGE.to_string());
    allow
        .allowed_installer_roles
        .push("other-installer".to_string());
    setup_with(
        allow,
        json!({"chart": {"repository": "oci://registry.example/charts", "name": "federation",
            "version": "1.2.3", "runnerImage": OTHER_IMAGE, "installerClusterRole": "other-installer"}}),
    )
}

#[tokio::test]
async fn the_uninstall_runs_with_the_recorded_image_and_role_not_the_spec_edited_after_deletion() {
    let h = allowing_another_image_and_role();
    run_to_success(&h).await;
    mark_deleted(&h);
    // Still editable after the deletion, and still allowed.
    h.server.modify(FE_PATH, |fe| {
        fe["spec"]["chart"]["runnerImage"] = json!(DEFAULT_RUNNER_IMAGE);
        fe["spec"]["chart"]["installerClusterRole"] = json!("federation-chart-installer");
    });
    reconcile_expecting_an_uninstall_with(&h, OTHER_IMAGE, "the recorded image").await;
    let binding = h.server.get(INSTALLER_RB).expect("installer binding");
    assert_eq!(binding["roleRef"]["name"], "other-installer");
    finish_uninstall_and_assert_everything_gone(&h).await;
}

#[tokio::test]
async fn a_recorded_image_and_role_refused_now_give_way_to_the_defaults() {
    let h = setup(json!({}));
    run_to_success(&h).await;
    mark_deleted(&h);
    // A tenant who may write the status, and edits the spec after the deletion.
    h.server.modify(FE_PATH, |fe| {
        fe["spec"]["chart"]["runnerImage"] = json!("evil/helm:latest");
        fe["spec"]["chart"]["installerClusterRole"] = json!("cluster-admin");
        fe["status"]["created"]["runnerImage"] = json!("evil/helm:latest");
        fe["status"]["created"]["installerClusterRole"] = json!("cluster-admin");
    });
    reconcile_expecting_an_uninstall_with(&h, DEFAULT_RUNNER_IMAGE, "the default image").await;
    let binding = h.server.get(INSTALLER_RB).expect("installer binding");
    assert_eq!(binding["roleRef"]["name"], "federation-chart-installer");
    finish_uninstall_and_assert_everything_gone(&h).await;
}

/// An enablement whose control plane goes to the foreign namespace `federation-system`, allowed
/// by the flag, on a cluster with one ready node.
fn foreign_namespace_enablement() -> Harness {
    let mut allow = policy();
    allow.allow_foreign_control_plane_namespaces = true;
    setup_with(
        allow,
        json!({"controlPlane": {"namespace": "federation-system"}}),
    )
}

#[tokio::test]
async fn a_foreign_control_plane_namespace_is_created_annotated_and_deleted_on_teardown() {
    let h = foreign_namespace_enablement();
    h.reconcile(FE_PATH).await;
    let uid = h.server.get(FE_PATH).expect("fe")["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string();
    let ns = h
        .server
        .get("/api/v1/namespaces/federation-system")
        .expect("namespace created");
    assert_eq!(
        ns["metadata"]["annotations"]["federation.fleet.dev/created-by"],
        uid.as_str()
    );
    assert_eq!(
        ns["metadata"]["labels"]["federation.fleet.dev/control-plane-namespace"], "true",
        "a namespace the controller creates is open to control planes"
    );
    let service = h
        .server
        .get("/api/v1/namespaces/federation-system/services/fleet-a-federation-apiserver")
        .expect("service in the control-plane namespace");
    assert!(
        service["metadata"].get("ownerReferences").is_none(),
        "no owner reference across namespaces"
    );

    delete_and_tear_down(&h).await;
    assert!(h.server.get(FE_PATH).is_none());
    assert!(
        h.server
            .get("/api/v1/namespaces/federation-system")
            .is_none(),
        "namespace it created is deleted"
    );
}

#[tokio::test]
async fn teardown_cleans_every_control_plane_namespace_the_enablement_used() {
    let h = foreign_namespace_enablement();
    h.reconcile(FE_PATH).await;
    let foreign_service =
        "/api/v1/namespaces/federation-system/services/fleet-a-federation-apiserver";
    assert!(h.server.get(foreign_service).is_some());
    // Back to the enablement's own namespace: a new run starts there.
    h.server
        .modify(FE_PATH, |fe| fe["spec"]["controlPlane"] = json!({}));
    h.reconcile(FE_PATH).await;
    assert!(h.server.get(SERVICE).is_some(), "the new run's Service");
    assert_eq!(
        h.status(FE_PATH)["created"]["namespaces"],
        json!(["federation-system", "team-a"])
    );

    delete_and_tear_down(&h).await;
    assert!(h.server.get(FE_PATH).is_none(), "finalizer removed");
    for path in [
        SERVICE,
        foreign_service,
        "/api/v1/namespaces/federation-system",
    ] {
        assert!(h.server.get(path).is_none(), "{path} deleted");
    }
}

/// Deletes the enablement and reconciles until its teardown removed the finalizer (or gave up).
async fn delete_and_tear_down(h: &Harness) {
    h.server.modify(FE_PATH, |fe| {
        fe["metadata"]["deletionTimestamp"] = json!("2026-01-15T09:00:00Z")
    });
    for _ in 0..6 {
        if h.server.get(FE_PATH).is_none() {
            break;
        }
        h.reconcile(FE_PATH).await;
    }
}

fn allowing_foreign_namespaces() -> Harness {
    let mut allow = policy();
    allow.allow_foreign_control_plane_namespaces = true;
    let h = Harness::new(allow);
    h.server.insert(ready_node("node-1"));
    h
}

#[tokio::test]
async fn an_existing_foreign_namespace_without_the_label_is_refused_until_labelled() {
    let h = allowing_foreign_namespaces();
    h.server.insert(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "team-b-apps"},
    }));
    h.server.insert(enablement_json(
        NAME,
        NS,
        "fleet-a",
        json!({"controlPlane": {"namespace": "team-b-apps"}}),
    ));
    h.sync_store(&[FE_PATH]);
    h.server.take_calls();
    let action = h.reconcile(FE_PATH).await;
    assert_eq!(
        lines(&h.server.take_calls()),
        vec![
            format!("PATCH {FE_PATH}"),
            "GET /api/v1/namespaces/team-b-apps".to_string(),
            format!("PATCH {FE_PATH}/status"),
        ],
        "the finalizer, the namespace looked at, and nothing created"
    );
    let status = h.status(FE_PATH);
    assert_eq!(status["phase"], "Failed");
    assert_eq!(status["reason"], "NotAllowed");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("federation.fleet.dev/control-plane-namespace")),
        "{status:#}"
    );
    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(30)),
        "a label is no event of the enablement's: it is looked for again"
    );

    h.server.modify("/api/v1/namespaces/team-b-apps", |ns| {
        ns["metadata"]["labels"] = json!({"federation.fleet.dev/control-plane-namespace": "true"})
    });
    h.reconcile(FE_PATH).await;
    assert_eq!(h.status(FE_PATH)["phase"], "Running");
    assert!(
        h.server
            .get("/api/v1/namespaces/team-b-apps/services/fleet-a-federation-apiserver")
            .is_some(),
        "proceeds by itself once labelled"
    );
}

/// Reconciles a new enablement of `spec`: it fails `NotAllowed` after adding its finalizer,
/// without looking at or creating anything.
async fn refuses_creating_nothing(h: &Harness, spec: Value) {
    h.server
        .insert(enablement_json(NAME, NS, "fleet-a", spec.clone()));
    h.sync_store(&[FE_PATH]);
    h.server.take_calls();
    h.reconcile(FE_PATH).await;
    assert_eq!(
        lines(&h.server.take_calls()),
        vec![
            format!("PATCH {FE_PATH}"),
            format!("PATCH {FE_PATH}/status")
        ],
        "the finalizer, then nothing for {spec}"
    );
    assert_eq!(h.status(FE_PATH)["reason"], "NotAllowed", "{spec}");
}

#[tokio::test]
async fn reserved_namespaces_are_refused_even_with_foreign_namespaces_allowed() {
    let controller_namespace = policy().controller_namespace.expect("set in tests");
    for reserved in RESERVED_NAMESPACES
        .into_iter()
        .chain([controller_namespace.as_str()])
    {
        let h = allowing_foreign_namespaces();
        h.server.insert(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": reserved, "labels": {"federation.fleet.dev/control-plane-namespace": "true"}},
        }));
        refuses_creating_nothing(&h, json!({"controlPlane": {"namespace": reserved}})).await;
    }
}

#[tokio::test]
async fn service_annotations_outside_the_allowed_prefixes_and_a_turned_off_elb_id_are_refused() {
    let mut narrow = policy();
    narrow.allowed_service_annotation_prefixes = vec!["service.beta.kubernetes.io/".to_string()];
    narrow.allow_elb_id = false;
    for network in [
        json!({"annotations": {"metallb.universe.tf/loadBalancerIPs": "10.0.0.1"}}),
        json!({"type": "LoadBalancer", "elbID": "elb-of-another-tenant"}),
    ] {
        let h = Harness::new(narrow.clone());
        h.server.insert(ready_node("node-1"));
        refuses_creating_nothing(&h, json!({ "network": network })).await;
    }
}

#[tokio::test]
async fn a_created_namespace_another_enablement_uses_is_kept_at_teardown() {
    let h = allowing_foreign_namespaces();
    let other =
        "/apis/federation.fleet.dev/v1alpha1/namespaces/team-b/federationenablements/fleet-b";
    for (name, ns, fleet) in [(NAME, NS, "fleet-a"), ("fleet-b", "team-b", "fleet-b")] {
        h.server.insert(enablement_json(
            name,
            ns,
            fleet,
            json!({"controlPlane": {"namespace": "federation-system"}}),
        ));
    }
    h.sync_store(&[FE_PATH, other]);
    h.reconcile(FE_PATH).await;
    assert!(
        h.server
            .get("/api/v1/namespaces/federation-system")
            .is_some(),
        "created by fleet-a"
    );

    delete_and_tear_down(&h).await;
    assert!(h.server.get(FE_PATH).is_none(), "teardown finished");
    assert!(
        h.server
            .get("/api/v1/namespaces/federation-system")
            .is_some(),
        "fleet-b still has its control plane there"
    );
}

#[tokio::test]
async fn not_enough_nodes_keeps_create_node_running_with_counts() {
    let h = Harness::new(policy());
    h.server.insert(ready_node("node-1"));
    let mut taken = ready_node("node-2");
    taken["metadata"]["labels"]["federation.fleet.dev/control-plane"] = json!("someone-else");
    h.server.insert(taken);
    let mut not_ready = ready_node("node-3");
    not_ready["status"]["conditions"][0]["status"] = json!("False");
    h.server.insert(not_ready);
    h.server.insert(enablement_json(
        NAME,
        NS,
        "fleet-a",
        json!({"controlPlane": {"replicas": 2}}),
    ));
    h.sync_store(&[FE_PATH]);
    h.reconcile(FE_PATH).await;
    let node = h.sub_job(FE_PATH, "CreateNode");
    assert_eq!(
        (node["phase"].as_str(), node["reason"].as_str()),
        (Some("Running"), Some("InsufficientNodes"))
    );
    assert!(
        node["message"]
            .as_str()
            .expect("message")
            .starts_with("1/2")
    );
    let taken = h.server.get("/api/v1/nodes/node-2").expect("node-2");
    assert_eq!(
        taken["metadata"]["labels"]["federation.fleet.dev/control-plane"], "someone-else",
        "never taken over"
    );

    h.server.insert(ready_node("node-4"));
    h.reconcile(FE_PATH).await;
    assert_eq!(h.sub_job(FE_PATH, "CreateNode")["phase"], "Success");
}

fn base64_decode(s: &str) -> Vec<u8> {
    let value: k8s_openapi::ByteString = serde_json::from_value(json!(s)).expect("base64");
    value.0
}

#[tokio::test]
async fn an_install_attempt_that_outlives_its_timeout_fails_with_timeout_and_is_retried() {
    let h = setup(json!({"subJobTimeoutSeconds": 60}));
    h.reconcile(FE_PATH).await;
    give_load_balancer_address(&h);
    h.reconcile(FE_PATH).await;
    let first = h.server.paths(JOBS);
    assert_eq!(
        h.server.get(&first[0]).expect("job")["spec"]["activeDeadlineSeconds"],
        60
    );

    h.clock.advance(60);
    let action = h.reconcile(FE_PATH).await;
    let install = h.sub_job(FE_PATH, "InstallFederationChart");
    assert_eq!(
        (install["phase"].as_str(), install["reason"].as_str()),
        (Some("Running"), Some("Timeout"))
    );
    assert_eq!(
        action,
        Action::requeue(Duration::from_secs(5)),
        "woken for the retry"
    );

    h.clock.advance(5);
    h.reconcile(FE_PATH).await;
    let jobs = h.server.paths(JOBS);
    assert_eq!(jobs.len(), 1);
    assert_ne!(
        jobs, first,
        "a new Job for attempt 2; the timed-out one deleted"
    );
}

#[tokio::test]
async fn simulated_executors_run_the_whole_job_and_write_only_the_enablement() {
    use federation_controller::subjobs::Executors;
    use federation_controller::subjobs::simulated::SimulatedConfig;
    let h = Harness::with_executors(policy(), |_| {
        Executors::simulated(SimulatedConfig::uniform(Duration::ZERO))
    });
    h.server
        .insert(enablement_json(NAME, NS, "fleet-a", json!({})));
    h.sync_store(&[FE_PATH]);
    h.reconcile(FE_PATH).await;
    let calls = h.server.take_calls();
    assert_eq!(
        writes(&calls),
        vec![
            format!("PATCH {FE_PATH}"),
            format!("PATCH {FE_PATH}/status")
        ]
    );
    assert!(
        calls
            .iter()
            .all(|c| c.path().starts_with("/apis/federation.fleet.dev/")),
        "{:#?}",
        lines(&calls)
    );
    let status = h.status(FE_PATH);
    assert_eq!(
        (status["phase"].as_str(), status["progress"].as_str()),
        (Some("Success"), Some("4/4"))
    );
    assert_eq!(
        (
            status["controlPlaneNamespace"].as_str(),
            status["chartVersion"].as_str()
        ),
        (Some(NS), Some("1.2.3"))
    );
    assert_eq!(status.get("kubeconfigSecretName"), None);
    assert_eq!(
        h.sub_job(FE_PATH, "CreateNetworkResource")["extendParam"]["JobExtendParamKeyElbID"],
        "69694819-67dc-44ac-ab6e-9b18087c5c4c"
    );
}

#[tokio::test]
async fn simulated_failure_annotation_fails_the_subjob_every_attempt() {
    use federation_controller::subjobs::Executors;
    use federation_controller::subjobs::simulated::SimulatedConfig;
    let h = Harness::with_executors(policy(), |_| {
        Executors::simulated(SimulatedConfig::uniform(Duration::ZERO))
    });
    let mut fe = enablement_json(NAME, NS, "fleet-a", json!({"backoffLimit": 1}));
    fe["metadata"]["annotations"] = json!({"federation.fleet.dev/simulate-failure": "CreateCert"});
    h.server.insert(fe);
    h.sync_store(&[FE_PATH]);
    for _ in 0..4 {
        h.reconcile(FE_PATH).await;
        h.clock.advance(10);
    }
    let cert = h.sub_job(FE_PATH, "CreateCert");
    assert_eq!(
        (
            cert["phase"].as_str(),
            cert["reason"].as_str(),
            cert["attempts"].as_i64()
        ),
        (Some("Failed"), Some("SimulatedFailure"), Some(2))
    );
    assert!(
        cert["message"]
            .as_str()
            .expect("message")
            .contains("simulated")
    );
    assert_eq!(h.status(FE_PATH)["phase"], "Failed");
    assert_eq!(
        h.sub_job(FE_PATH, "InstallFederationChart")["phase"],
        "Pending"
    );
}

#[tokio::test]
async fn a_status_computed_from_a_stale_read_is_refused_not_written_over_newer_progress() {
    let h = setup(json!({}));
    h.reconcile(FE_PATH).await;
    let stale = h.enablement(FE_PATH).expect("enablement");
    give_load_balancer_address(&h);
    h.reconcile(FE_PATH).await;
    let progressed = h.status(FE_PATH);
    assert_eq!(progressed["progress"], "3/4");

    // A reconcile of the old version (a lagging cache) must not undo that. The controller's own
    // write replaced that version: it knows without asking the API server.
    h.clock.advance(1);
    h.server.take_calls();
    let error = federation_controller::controller::reconcile(
        std::sync::Arc::new(stale.clone()),
        h.ctx.clone(),
    )
    .await
    .expect_err("the stale read is refused");
    assert!(error.is_stale_read(), "{error}");
    assert_eq!(writes(&h.server.take_calls()), Vec::<String>::new());
    assert_eq!(h.status(FE_PATH), progressed, "newer progress kept");

    // Another writer's change: the cache's newest version is stale too, and the API server's
    // resourceVersion precondition refuses the write computed from it.
    let current = h.enablement(FE_PATH).expect("enablement");
    h.server.modify(FE_PATH, |fe| {
        fe["metadata"]["annotations"] = json!({"example.com/touched": "yes"});
    });
    h.clock.advance(30);
    finish_job(&h, "fleet-a-install-", "Complete");
    let error =
        federation_controller::controller::reconcile(std::sync::Arc::new(current), h.ctx.clone())
            .await;
    match error {
        Err(error) => assert!(error.is_stale_read(), "{error}"),
        Ok(action) => panic!("a write over another writer's version: {action:?}"),
    }
    let status_patch = format!("PATCH {FE_PATH}/status");
    assert!(
        h.server
            .take_calls()
            .iter()
            .any(|c| c.line() == status_patch),
        "the API server refused it"
    );
    assert_eq!(h.status(FE_PATH), progressed, "newer progress kept");
}

/// A second later, a reconcile of `stale`, which must be a stale read; then the error policy,
/// as the controller runs it.
async fn stale_read_again(
    h: &Harness,
    stale: &std::sync::Arc<federation_controller::api::FederationEnablement>,
) -> Action {
    use federation_controller::controller::{error_policy, reconcile};
    h.clock.advance(1);
    let error = reconcile(stale.clone(), h.ctx.clone())
        .await
        .expect_err("a stale read is refused");
    assert!(error.is_stale_read(), "{error}");
    error_policy(stale.clone(), &error, h.ctx.clone())
}

/// The record of the versions our own writes replaced only saves requests: when such a version
/// stays in the cache (the watch never brings the newer one, or a restored etcd gives an old
/// version back), a few stale reads later the server's precondition decides again.
#[tokio::test]
async fn a_version_our_write_replaced_is_refused_locally_only_a_few_times_in_a_row() {
    use std::sync::Arc;

    let h = setup(json!({}));
    h.reconcile(FE_PATH).await;
    let stale = Arc::new(h.enablement(FE_PATH).expect("enablement"));
    give_load_balancer_address(&h);
    h.reconcile(FE_PATH).await;
    h.server.take_calls();
    let mut status_patches = Vec::new();
    for _ in 0..4 {
        stale_read_again(&h, &stale).await;
        let calls = h.server.take_calls();
        let line = format!("PATCH {FE_PATH}/status");
        status_patches.push(calls.iter().filter(|c| c.line() == line).count());
    }
    assert_eq!(
        status_patches,
        [0, 0, 0, 1],
        "three refused locally, then the server's 409"
    );
}

/// A cache stuck behind the API server (a dead watch) makes every write a 409. Retrying at a
/// fixed pace only repeats the conflict: the retries back off, and the run of stale reads is
/// reported like a failing watch, which fails `/healthz` once it lasts.
#[tokio::test(start_paused = true)]
async fn stale_reads_in_a_row_back_off_and_report_the_cache_as_failing() {
    use federation_controller::controller::{error_policy, reconcile, stale_read_retry};
    use federation_controller::health::WATCH_RETRY_CAP;
    use std::sync::Arc;

    let mut h = setup(json!({}));
    let health = federation_controller::health::WatchHealth::new(Duration::from_secs(20));
    Arc::get_mut(&mut h.ctx).expect("not shared yet").health = health.clone();
    h.reconcile(FE_PATH).await;
    let stale = Arc::new(h.enablement(FE_PATH).expect("enablement"));
    give_load_balancer_address(&h);
    h.reconcile(FE_PATH).await;

    let mut requeues = Vec::new();
    for _ in 0..8 {
        requeues.push(stale_read_again(&h, &stale).await);
        tokio::time::advance(Duration::from_secs(5)).await;
    }
    let expected: Vec<Action> = (1..=8)
        .map(|n| Action::requeue(stale_read_retry(n)))
        .collect();
    assert_eq!(requeues, expected);
    assert_eq!(stale_read_retry(1), Duration::from_millis(500));
    assert_eq!(stale_read_retry(2), Duration::from_secs(1));
    assert_eq!(stale_read_retry(8), WATCH_RETRY_CAP, "capped");
    let stalls = health.stalls();
    assert_eq!(stalls.len(), 1, "40 s of stale reads: {stalls:?}");
    assert_eq!(stalls[0].watch, "FederationEnablement");
    assert!(stalls[0].last_error.contains("behind the API server"));

    // The watch brings the new version: the count starts again.
    health.succeeded("FederationEnablement");
    h.reconcile(FE_PATH).await;
    let error = reconcile(stale.clone(), h.ctx.clone())
        .await
        .expect_err("still stale");
    assert_eq!(
        error_policy(stale, &error, h.ctx.clone()),
        Action::requeue(stale_read_retry(1)),
        "a fresh read resets the backoff"
    );
    assert_eq!(health.stalls(), []);
}

/// A labelled credentials Secret is sent only to the repositories its annotation names, and
/// never over plain http.
#[tokio::test]
async fn repository_credentials_go_only_where_their_secret_says_and_never_over_http() {
    let attempt = |repository: &str, annotation: Option<&str>| {
        let repository = repository.to_string();
        let annotation = annotation.map(str::to_string);
        async move {
            let chart = json!({"repository": repository, "name": "federation", "version": "1.2.3",
                "credentialsSecretRef": {"name": "repo"}});
            let mut allow = policy();
            allow.allowed_chart_repositories = vec![repository.clone()];
            let h = Harness::new(allow);
            h.server.insert(ready_node("node-1"));
            h.server.insert(enablement_json(
                NAME,
                NS,
                "fleet-a",
                json!({"chart": chart, "backoffLimit": 0}),
            ));
            h.sync_store(&[FE_PATH]);
            let annotations = annotation.map_or(
                json!({}),
                |a| json!({"federation.fleet.dev/chart-repositories": a}),
            );
            h.server.insert(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "repo", "namespace": NS, "annotations": annotations,
                    "labels": {"federation.fleet.dev/chart-credentials": "true"}},
                "data": {"username": "dXNlcg==", "password": "cGFzcw=="}}));
            h.reconcile(FE_PATH).await;
            give_load_balancer_address(&h);
            h.reconcile(FE_PATH).await;
            let install = h.sub_job(FE_PATH, "InstallFederationChart");
            let sent = h
                .server
                .get(VALUES)
                .is_some_and(|v| v["data"].get("repository-password").is_some());
            (
                install["reason"].as_str().unwrap_or_default().to_string(),
                install["message"].as_str().unwrap_or_default().to_string(),
                sent,
            )
        }
    };

    let (reason, message, sent) = attempt("https://charts.example/team", None).await;
    assert_eq!(reason, "CredentialsNotFound");
    assert!(
        message.contains("federation.fleet.dev/chart-repositories"),
        "{message}"
    );
    assert!(!sent, "not sent without the annotation");

    let (reason, message, sent) = attempt(
        "https://charts.example/team-x",
        Some("https://charts.example/team"),
    )
    .await;
    assert_eq!(reason, "CredentialsNotFound");
    assert!(message.contains("does not name"), "{message}");
    assert!(
        !sent,
        "not sent to a repository the annotation does not name"
    );

    let (reason, message, sent) =
        attempt("http://charts.example/team", Some("http://charts.example")).await;
    assert_eq!(reason, "CredentialsNotFound");
    assert!(message.contains("never sent over http://"), "{message}");
    assert!(!sent, "never over plain http");

    let (reason, _, sent) = attempt(
        "https://charts.example/team/stable",
        Some("oci://registry.example, https://charts.example/team"),
    )
    .await;
    assert_ne!(reason, "CredentialsNotFound");
    assert!(sent, "sent where the annotation allows it");
}

#[tokio::test]
async fn repository_credentials_are_used_only_from_a_secret_labelled_for_it() {
    let chart = json!({"repository": "https://charts.example", "name": "federation", "version": "1.2.3",
        "credentialsSecretRef": {"name": "repo"}});
    let h = setup(json!({"chart": chart, "backoffLimit": 0}));
    let secret = |labels: Value| {
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "repo", "namespace": NS, "labels": labels,
                "annotations": {"federation.fleet.dev/chart-repositories": "https://charts.example"}},
            "data": {"username": "dXNlcg==", "password": "cGFzcw=="}})
    };
    h.server.insert(secret(json!({})));
    h.reconcile(FE_PATH).await;
    give_load_balancer_address(&h);
    h.reconcile(FE_PATH).await;
    let install = h.sub_job(FE_PATH, "InstallFederationChart");
    assert_eq!(install["reason"], "CredentialsNotFound");
    assert!(
        install["message"]
            .as_str()
            .expect("message")
            .contains("federation.fleet.dev/chart-credentials=true")
    );
    assert!(
        h.server.paths(JOBS).is_empty(),
        "no Job without usable credentials"
    );
    assert!(
        h.server.get(VALUES).is_none(),
        "the unlabelled Secret was not copied"
    );

    h.server.insert(secret(
        json!({"federation.fleet.dev/chart-credentials": "true"}),
    ));
    h.server.modify(FE_PATH, |fe| {
        fe["metadata"]["annotations"] = json!({"federation.fleet.dev/retry": "1"})
    });
    h.reconcile(FE_PATH).await;
    let values = h.server.get(VALUES).expect("values secret");
    assert_eq!(values["data"]["repository-username"], "dXNlcg==");
    let job = h.server.get(&h.server.paths(JOBS)[0]).expect("job");
    let env = job["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env")
        .clone();
    let password = env
        .iter()
        .find(|e| e["name"] == "HELM_REPO_PASSWORD")
        .expect("password env");
    assert_eq!(
        password["valueFrom"]["secretKeyRef"]["name"],
        "fleet-a-federation-values"
    );
    assert!(password.get("value").is_none());
}

#[tokio::test]
async fn when_the_enablements_namespace_is_terminating_teardown_creates_nothing_there() {
    let h = setup(json!({}));
    run_to_success(&h).await;
    h.server.take_calls();
    h.server.insert(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NS, "deletionTimestamp": "2026-01-15T09:00:00Z", "finalizers": ["kubernetes"]}}));
    h.server.modify(FE_PATH, |fe| {
        fe["metadata"]["deletionTimestamp"] = json!("2026-01-15T09:00:00Z")
    });
    let mut seen = None;
    for _ in 0..6 {
        let Some(fe) = h.server.get(FE_PATH) else {
            break;
        };
        seen = Some(fe["status"]["teardown"].clone());
        h.reconcile(FE_PATH).await;
    }
    assert!(h.server.get(FE_PATH).is_none(), "teardown finished");
    assert!(
        !h.server
            .take_calls()
            .iter()
            .any(|c| c.method == http::Method::PATCH && c.path().starts_with(JOBS)),
        "no uninstall Job in a terminating namespace"
    );
    assert!(
        h.server.get(SERVICE).is_none() && h.server.get(CERTS).is_none(),
        "the other steps still ran"
    );
    let uninstall = &seen.expect("teardown seen")["steps"][0];
    assert_eq!(uninstall["phase"], "Success");
    assert!(
        uninstall["message"]
            .as_str()
            .expect("message")
            .contains("NamespaceTerminating"),
        "{uninstall}"
    );
}

/// A foreign control-plane namespace deleted by someone else (here: gone before the teardown)
/// holds no release to uninstall: the uninstall step must not wait for a Job that cannot run.
#[tokio::test]
async fn a_missing_foreign_control_plane_namespace_never_blocks_teardown() {
    let h = foreign_namespace_enablement();
    h.reconcile(FE_PATH).await;
    h.server.modify(
        "/api/v1/namespaces/federation-system/services/fleet-a-federation-apiserver",
        |svc| svc["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}}),
    );
    h.reconcile(FE_PATH).await;
    assert_eq!(
        h.sub_job(FE_PATH, "InstallFederationChart")["phase"],
        "Running"
    );

    // The namespace and everything in it are gone.
    for path in h.server.paths("/") {
        if path.contains("/namespaces/federation-system") {
            h.server.remove(&path);
        }
    }
    h.server.take_calls();
    h.server.modify(FE_PATH, |fe| {
        fe["metadata"]["deletionTimestamp"] = json!("2026-01-15T09:00:00Z")
    });
    let mut calls = Vec::new();
    for _ in 0..8 {
        if h.server.get(FE_PATH).is_none() {
            break;
        }
        h.reconcile(FE_PATH).await;
        calls.extend(h.server.take_calls());
    }
    assert!(h.server.get(FE_PATH).is_none(), "teardown finished");
    assert!(
        !calls
            .iter()
            .any(|c| c.method == http::Method::PATCH && c.path().contains("/jobs/")),
        "no uninstall Job in a namespace that is gone"
    );
    let last_status = calls
        .iter()
        .filter(|c| c.path() == format!("{FE_PATH}/status"))
        .filter_map(|c| c.body.clone())
        .next_back()
        .expect("the teardown's status was written");
    let uninstall = &last_status["status"]["teardown"]["steps"][0];
    assert!(
        uninstall["message"]
            .as_str()
            .is_some_and(|m| m.contains("NamespaceTerminating")),
        "{uninstall}"
    );
}

/// Deleting an enablement whose install is still running: helm uninstall must not race the
/// install (which could install the release again after it). The install Job goes first, and
/// the uninstall waits until its pod has gone.
#[tokio::test]
async fn an_install_in_flight_is_stopped_before_helm_uninstall_starts() {
    let h = setup(json!({}));
    h.reconcile(FE_PATH).await;
    give_load_balancer_address(&h);
    h.reconcile(FE_PATH).await;
    let install = h.server.paths(JOBS);
    assert_eq!(install.len(), 1, "the install Job runs");
    let job_name = install[0].rsplit('/').next().expect("name").to_string();
    let labels =
        h.server.get(&install[0]).expect("job")["spec"]["template"]["metadata"]["labels"].clone();
    let mut pod_labels = labels.as_object().cloned().expect("template labels");
    pod_labels.insert("job-name".into(), json!(job_name));
    let pod = h.server.insert(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{job_name}-x1"), "namespace": NS, "labels": pod_labels},
        "status": {"phase": "Running"}}));
    let pod_path = format!(
        "/api/v1/namespaces/{NS}/pods/{}",
        pod["metadata"]["name"].as_str().expect("name")
    );

    h.server.modify(FE_PATH, |fe| {
        fe["metadata"]["deletionTimestamp"] = json!("2026-01-15T09:00:00Z")
    });
    h.reconcile(FE_PATH).await;
    assert!(
        h.server.get(&install[0]).is_none(),
        "the install Job is deleted"
    );
    let uninstall = &h.status(FE_PATH)["teardown"]["steps"][0];
    assert_eq!(uninstall["phase"], "Running");
    assert!(
        uninstall["message"]
            .as_str()
            .is_some_and(|m| m.contains("stopping the install")),
        "{uninstall}"
    );
    assert!(h.server.paths(JOBS).is_empty(), "no uninstall Job yet");

    h.clock.advance(5);
    h.reconcile(FE_PATH).await;
    assert!(h.server.paths(JOBS).is_empty(), "still waiting for the pod");

    h.server.remove(&pod_path);
    h.clock.advance(5);
    h.reconcile(FE_PATH).await;
    let jobs = h.server.paths(JOBS);
    assert!(
        jobs.len() == 1 && jobs[0].contains("-uninst-"),
        "helm uninstall starts once the install's pod is gone: {jobs:?}"
    );
}

#[tokio::test]
async fn a_refused_enablement_is_deleted_at_once_without_looking_for_objects() {
    let h = setup(json!({"controlPlane": {"namespace": "kube-system"}}));
    h.reconcile(FE_PATH).await;
    assert_eq!(h.status(FE_PATH)["reason"], "NotAllowed");
    h.server.take_calls();
    h.server.modify(FE_PATH, |fe| {
        fe["metadata"]["deletionTimestamp"] = json!("2026-01-15T09:00:00Z")
    });
    h.reconcile(FE_PATH).await;
    assert!(h.server.get(FE_PATH).is_none(), "finalizer removed");
    let calls = h.server.take_calls();
    assert_eq!(
        lines(&calls),
        vec![format!("PATCH {FE_PATH}")],
        "nothing looked up in kube-system"
    );
}

/// An API server that serves no events (a 404 on `events.k8s.io/v1`) is not asked again for
/// every transition: the controller records none for a while, then tries again.
#[tokio::test]
async fn events_pause_after_the_api_server_answers_that_it_serves_none() {
    use federation_controller::api::MANAGER;
    use federation_controller::controller::EVENTS_UNSERVED_RETRY;
    use kube::runtime::events::{Recorder, Reporter};

    const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/team-a/events";
    let mut h = setup(json!({}));
    let recorder = Recorder::new(h.server.client(), Reporter::from(MANAGER.to_string()));
    std::sync::Arc::get_mut(&mut h.ctx)
        .expect("the harness owns its context")
        .recorder = Some(recorder);
    let event_posts = |calls: &[Call]| {
        calls
            .iter()
            .filter(|c| c.line() == format!("POST {EVENTS}"))
            .count()
    };

    h.server.fail(http::Method::POST, EVENTS, 404);
    h.reconcile(FE_PATH).await;
    let calls = h.server.take_calls();
    assert_eq!(event_posts(&calls), 1, "one 404, then no more tries");
    assert!(
        h.status(FE_PATH)["subJobs"].is_array(),
        "the reconcile goes on without events"
    );

    give_load_balancer_address(&h);
    h.clock.advance(2);
    h.reconcile(FE_PATH).await;
    assert_eq!(event_posts(&h.server.take_calls()), 0, "paused");

    h.server.heal(http::Method::POST, EVENTS);
    h.clock.advance(EVENTS_UNSERVED_RETRY.as_secs());
    finish_job(&h, "fleet-a-install-", "Complete");
    h.reconcile(FE_PATH).await;
    assert!(
        event_posts(&h.server.take_calls()) > 0,
        "tried again once the pause is over"
    );
}
