//! The chart's RBAC is exactly what the controller uses: every API call the code makes is
//! allowed, and every permission granted is used by some call.
//!
//! "Every call the code makes" comes from real calls against the in-memory API server of
//! tests/support, which logs every request: full scenarios of the reconciler with the
//! Kubernetes executors (install to Success, repairs, a failed install retried, a cluster-scoped
//! chart, a foreign control-plane namespace, deletion), the HTTP API's reviews, a replica in the
//! leader election, and the watches the controller starts (`controller::follow_enablements`, the
//! process's one watch of enablements, and those of `controller::run`). Each request is mapped to what the
//! API server authorizes: (API group, resource[/subresource], verb, namespace, name). Checks the
//! API server makes beyond the request itself are derived from the request bodies: `bind` on the
//! ClusterRole a (Cluster)RoleBinding names (RBAC's escalation check), and, for owner references
//! (the OwnerReferencesPermissionEnforcement admission plugin), `delete` on the object and, with
//! `blockOwnerDeletion`, `update` on the owner's `finalizers`.

mod deploy_support;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use deploy_support::{RELEASE_NAMESPACE, all, helm_template, strings};
use federation_controller::api::MANAGER;
use federation_controller::controller;
use federation_controller::health::WatchHealth;
use federation_controller::http::Authorizer;
use federation_controller::http::cache::FederationCache;
use federation_controller::leader::{self, LeaseConfig};
use federation_controller::metrics::Metrics;
use federation_controller::policy::Policy;
use federation_controller::subjobs::Executors;
use http::Method;
use kube::runtime::events::{Recorder, Reporter};
use serde_json::{Value, json};
use support::*;

/// A foreign control-plane namespace (the enablement lives in `team-a`).
const FOREIGN: &str = "fleet-a-control-plane";
/// The leader-election Lease (the chart's `leaderElection.leaseName`).
const LEASE: &str = "federation-controller";

#[tokio::test]
async fn default_values_grant_exactly_what_the_controller_uses() {
    let Some(objects) = helm_template(&[]) else {
        return;
    };
    let used = observe(policy()).await;
    assert_exactly_what_is_used(&objects, &used, "helm template (default values)");
}

#[tokio::test]
async fn the_allow_flags_grant_exactly_what_foreign_namespaces_and_cluster_scoped_charts_use() {
    let Some(objects) = helm_template(&[
        "allowClusterScopedCharts=true",
        "allowForeignControlPlaneNamespaces=true",
    ]) else {
        return;
    };
    let used = observe(allow_everything()).await;
    assert_exactly_what_is_used(&objects, &used, "helm template (allow flags)");
}

#[tokio::test]
async fn the_cluster_admin_value_grants_exactly_what_the_karmada_profile_uses() {
    let Some(objects) = helm_template(&["installer.allowClusterAdmin=true"]) else {
        return;
    };
    let mut policy = policy();
    policy.allow_cluster_scoped_charts = true;
    policy.allowed_installer_roles.push("cluster-admin".into());
    let used = observe(policy).await;
    assert_exactly_what_is_used(
        &objects,
        &used,
        "helm template (installer.allowClusterAdmin)",
    );
}

#[tokio::test]
async fn watch_namespace_grants_the_namespaced_rights_in_that_namespace_only() {
    let Some(objects) = helm_template(&["watchNamespace=team-a"]) else {
        return;
    };
    let used = observe(watching_team_a()).await;
    assert_exactly_what_is_used(&objects, &used, "helm template (watchNamespace=team-a)");
}

/// Needs no tool: the checked-in manifests themselves (tests/deploy.rs keeps them equal to the
/// chart's defaults).
#[tokio::test]
async fn plain_manifests_grant_exactly_what_the_controller_uses() {
    let objects: Vec<Value> = [
        include_str!("../deploy/manifests/rbac.yaml"),
        include_str!("../deploy/manifests/deployment.yaml"),
    ]
    .iter()
    .flat_map(|yaml| deploy_support::documents(yaml))
    .collect();
    let used = observe(policy()).await;
    assert_exactly_what_is_used(&objects, &used, "deploy/manifests");
}

#[test]
fn requests_map_to_what_the_api_server_authorizes() {
    let call = |method: Method, uri: &str| Call {
        method,
        uri: uri.to_string(),
        content_type: None,
        accept: None,
        body: None,
    };
    let cases = [
        (
            call(Method::GET, "/api/v1/namespaces/a/secrets/s"),
            "get core/secrets s in a",
        ),
        (
            call(Method::GET, "/api/v1/secrets?labelSelector=x"),
            "list core/secrets",
        ),
        (
            call(Method::GET, "/api/v1/nodes?watch=true&resourceVersion=0"),
            "watch core/nodes",
        ),
        (
            call(Method::POST, "/api/v1/namespaces"),
            "create core/namespaces",
        ),
        (
            call(Method::DELETE, "/api/v1/namespaces/a"),
            "delete core/namespaces a in a",
        ),
        (
            call(
                Method::PATCH,
                "/apis/federation.fleet.dev/v1alpha1/namespaces/a/federationenablements/f/status?force=true",
            ),
            "patch federation.fleet.dev/federationenablements/status f in a",
        ),
        (
            call(
                Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/a/leases/l",
            ),
            "update coordination.k8s.io/leases l in a",
        ),
        (
            call(Method::POST, "/apis/events.k8s.io/v1/namespaces/a/events"),
            "create events.k8s.io/events in a",
        ),
        // The Karmada teardown (installer.allowClusterAdmin): the chart's hook leftovers and
        // etcd's claims, one by one (a collection delete would need `deletecollection`).
        (
            call(
                Method::DELETE,
                "/apis/rbac.authorization.k8s.io/v1/clusterroles/karmada-a-hook-job",
            ),
            "delete rbac.authorization.k8s.io/clusterroles karmada-a-hook-job",
        ),
        (
            call(
                Method::GET,
                "/api/v1/namespaces/karmada-a/persistentvolumeclaims?labelSelector=app%3Detcd",
            ),
            "list core/persistentvolumeclaims in karmada-a",
        ),
        (
            call(
                Method::DELETE,
                "/api/v1/namespaces/karmada-a/persistentvolumeclaims",
            ),
            "deletecollection core/persistentvolumeclaims in karmada-a",
        ),
    ];
    for (call, expected) in cases {
        assert_eq!(request_access(&call).to_string(), expected, "{}", call.uri);
    }
}

#[test]
fn bindings_imply_bind_and_owner_references_imply_delete_and_finalizers() {
    let write = |uri: &str, body: Value| Call {
        method: Method::PATCH,
        uri: uri.to_string(),
        content_type: Some("application/apply-patch+yaml".to_string()),
        accept: None,
        body: Some(body),
    };
    let owner = json!({"apiVersion": "federation.fleet.dev/v1alpha1", "kind": "FederationEnablement",
                       "name": "f", "uid": "u", "controller": true, "blockOwnerDeletion": true});
    let binding = write(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/a/rolebindings/b",
        json!({"metadata": {"name": "b", "ownerReferences": [owner]},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "r"}}),
    );
    let implied: Vec<String> = implied_accesses(&binding)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        implied,
        [
            "bind rbac.authorization.k8s.io/clusterroles r in a",
            "delete rbac.authorization.k8s.io/rolebindings b in a",
            "update federation.fleet.dev/federationenablements/finalizers f in a",
        ]
    );
}

/// What the API server authorizes for one request.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Access {
    group: String,
    /// `resource` or `resource/subresource`.
    resource: String,
    verb: String,
    /// None: a cluster-scoped object, or a request across all namespaces.
    namespace: Option<String>,
    /// None for collections and for `create` (RBAC cannot restrict either by name).
    name: Option<String>,
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}/{}",
            self.verb,
            group_name(&self.group),
            self.resource
        )?;
        if let Some(name) = &self.name {
            write!(f, " {name}")?;
        }
        if let Some(namespace) = &self.namespace {
            write!(f, " in {namespace}")?;
        }
        Ok(())
    }
}

/// The core API group by a name a reader recognizes.
fn group_name(group: &str) -> &str {
    if group.is_empty() { "core" } else { group }
}

/// Every access, with the request (or reason) it came from.
type Accesses = BTreeMap<Access, String>;

fn access(
    group: &str,
    resource: &str,
    verb: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Access {
    Access {
        group: group.to_string(),
        resource: resource.to_string(),
        verb: verb.to_string(),
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
    }
}

/// The access one request needs, read from its method, path and query the way the API server's
/// request-info parser reads them.
fn request_access(call: &Call) -> Access {
    let path = call.path();
    let (group, rest) = if let Some(rest) = path.strip_prefix("/api/v1/") {
        ("", rest)
    } else {
        let rest = path
            .strip_prefix("/apis/")
            .unwrap_or_else(|| panic!("not a resource path: {path}"));
        let mut parts = rest.splitn(3, '/');
        let group = parts.next().unwrap_or_default();
        let _version = parts.next();
        (group, parts.next().unwrap_or_default())
    };
    let parts: Vec<&str> = rest.split('/').collect();
    // `namespaces/{ns}/{resource}...` is namespaced; `namespaces/{name}` is a Namespace, which
    // the API server also authorizes as within namespace {name}.
    let (namespace, parts) = match parts.as_slice() {
        ["namespaces", namespace, rest @ ..] if !rest.is_empty() => (Some(*namespace), rest),
        parts @ ["namespaces", namespace] => (Some(*namespace), parts),
        parts => (None, parts),
    };
    let (resource, name, subresource) = match parts {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, subresource] => (*resource, Some(*name), Some(*subresource)),
        _ => panic!("unexpected path {path}"),
    };
    let watching = is_watch(&call.uri);
    let verb = match (&call.method, name) {
        (&Method::GET, _) if watching => "watch",
        (&Method::GET, None) => "list",
        (&Method::GET, Some(_)) => "get",
        (&Method::POST, _) => "create",
        (&Method::PATCH, _) => "patch",
        (&Method::PUT, _) => "update",
        (&Method::DELETE, None) => "deletecollection",
        (&Method::DELETE, Some(_)) => "delete",
        (method, _) => panic!("unexpected method {method} {path}"),
    };
    let resource = match subresource {
        Some(subresource) => format!("{resource}/{subresource}"),
        None => resource.to_string(),
    };
    access(
        group,
        &resource,
        verb,
        namespace,
        if verb == "create" { None } else { name },
    )
}

/// What the API server checks beyond the request itself, from what the request writes.
fn implied_accesses(call: &Call) -> Vec<Access> {
    let Some(body) = call
        .body
        .as_ref()
        .filter(|_| matches!(call.method, Method::POST | Method::PATCH | Method::PUT))
    else {
        return Vec::new();
    };
    let request = request_access(call);
    let mut implied = Vec::new();
    // RBAC's escalation check: writing a binding to a role whose rights the writer does not
    // all hold needs `bind` on that role (in the binding's namespace, for a RoleBinding).
    if request.group == "rbac.authorization.k8s.io"
        && ["rolebindings", "clusterrolebindings"].contains(&request.resource.as_str())
        && body["roleRef"]["kind"] == "ClusterRole"
    {
        implied.push(access(
            "rbac.authorization.k8s.io",
            "clusterroles",
            "bind",
            request.namespace.as_deref(),
            body["roleRef"]["name"].as_str(),
        ));
    }
    // OwnerReferencesPermissionEnforcement: setting owner references needs `delete` on the
    // object itself, and one that blocks the owner's deletion `update` on the owner's
    // `finalizers` subresource.
    let owners = body["metadata"]["ownerReferences"].as_array();
    if owners.is_some_and(|o| !o.is_empty()) {
        implied.push(access(
            &request.group,
            &request.resource,
            "delete",
            request.namespace.as_deref(),
            body["metadata"]["name"]
                .as_str()
                .or(request.name.as_deref()),
        ));
    }
    for owner in owners.into_iter().flatten() {
        if owner["blockOwnerDeletion"] == true {
            let group = owner["apiVersion"]
                .as_str()
                .and_then(|v| v.rsplit_once('/'))
                .map_or("", |(group, _)| group);
            let kind = owner["kind"].as_str().expect("owner kind");
            assert_eq!(kind, "FederationEnablement", "only enablements own objects");
            implied.push(access(
                group,
                "federationenablements/finalizers",
                "update",
                request.namespace.as_deref(),
                owner["name"].as_str(),
            ));
        }
    }
    implied
}

fn record(accesses: &mut Accesses, calls: &[Call]) {
    for call in calls {
        let line = format!("{} {}", call.method, call.uri);
        accesses
            .entry(request_access(call))
            .or_insert_with(|| line.clone());
        for implied in implied_accesses(call) {
            accesses
                .entry(implied)
                .or_insert_with(|| format!("implied by {line}"));
        }
    }
}

// ------------------------------------------------------------------------------ scenarios

/// A harness whose controller records events, as the real one does (Harness turns them off).
fn harness(policy: Policy) -> Harness {
    let mut h = Harness::new(policy);
    let recorder = Recorder::new(h.server.client(), Reporter::from(MANAGER.to_string()));
    Arc::get_mut(&mut h.ctx)
        .expect("the harness owns its context")
        .recorder = Some(recorder);
    h
}

fn service_path(namespace: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/services/fleet-a-federation-apiserver")
}

fn jobs_path(namespace: &str) -> String {
    format!("/apis/batch/v1/namespaces/{namespace}/jobs/")
}

fn give_load_balancer_address(h: &Harness, namespace: &str) {
    h.server.modify(&service_path(namespace), |svc| {
        svc["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}});
    });
}

fn finish_job(h: &Harness, namespace: &str, prefix: &str, condition: &str) {
    let jobs = jobs_path(namespace);
    let path = h
        .server
        .paths(&jobs)
        .into_iter()
        .find(|p| p.starts_with(&format!("{jobs}{prefix}")))
        .unwrap_or_else(|| panic!("a Job {prefix}* in {namespace}"));
    h.server.modify(&path, |job| {
        job["status"] = json!({"conditions": [{"type": condition, "status": "True", "reason": "BackoffLimitExceeded", "message": "failed"}]});
    });
}

fn new_enablement(h: &Harness, extra_spec: Value) {
    h.server.insert(ready_node("node-1"));
    h.server.insert(ready_node("node-2"));
    h.server
        .insert(enablement_json(NAME, NS, "fleet-a", extra_spec));
    h.sync_store(&[FE_PATH]);
}

async fn run_to_success(h: &Harness, control_plane: &str) {
    h.reconcile(FE_PATH).await;
    give_load_balancer_address(h, control_plane);
    h.reconcile(FE_PATH).await;
    finish_job(h, control_plane, "fleet-a-install-", "Complete");
    h.reconcile(FE_PATH).await;
    assert_eq!(
        h.status(FE_PATH)["phase"],
        "Success",
        "{:#}",
        h.status(FE_PATH)
    );
}

async fn delete_to_the_end(h: &Harness, control_plane: &str) {
    h.server.modify(FE_PATH, |fe| {
        fe["metadata"]["deletionTimestamp"] = json!("2026-01-15T09:00:00Z")
    });
    h.reconcile(FE_PATH).await;
    finish_job(h, control_plane, "fleet-a-uninst-", "Complete");
    for _ in 0..8 {
        if h.server.get(FE_PATH).is_none() {
            break;
        }
        h.reconcile(FE_PATH).await;
    }
    assert!(h.server.get(FE_PATH).is_none(), "teardown finished");
}

/// Install (with repository credentials) to Success, repair what a user broke, then delete.
async fn whole_life(policy: Policy, control_plane: &str, extra_spec: Value) -> Vec<Call> {
    let h = harness(policy);
    h.server.insert(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "repo-credentials", "namespace": NS,
                     "labels": {"federation.fleet.dev/chart-credentials": "true"},
                     "annotations": {"federation.fleet.dev/chart-repositories": "oci://registry.example/charts"}},
        "data": {"username": "dXNlcg==", "password": "cGFzcw=="},
    }));
    let mut spec = json!({
        "chart": {"repository": "oci://registry.example/charts", "name": "federation", "version": "1.2.3",
                  "credentialsSecretRef": {"name": "repo-credentials"}},
    });
    if control_plane != NS {
        spec["controlPlane"] = json!({"namespace": control_plane});
    }
    for (key, value) in extra_spec.as_object().into_iter().flatten() {
        match key.as_str() {
            "chart" => spec["chart"]
                .as_object_mut()
                .expect("chart")
                .extend(value.as_object().cloned().unwrap_or_default()),
            _ => spec[key] = value.clone(),
        }
    }
    new_enablement(&h, spec);
    run_to_success(&h, control_plane).await;

    // What a user might break: each is repaired (get, then apply; a binding to another role
    // is deleted and created again).
    let binding = format!(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/{control_plane}/rolebindings/fleet-a-federation-installer"
    );
    h.server
        .modify(&binding, |b| b["roleRef"]["name"] = json!("edit"));
    h.server.remove(&service_path(control_plane));
    h.server.remove(&format!(
        "/api/v1/namespaces/{control_plane}/serviceaccounts/fleet-a-federation-installer"
    ));
    h.server.modify(
        &format!("/api/v1/namespaces/{control_plane}/secrets/fleet-a-federation-certs"),
        |s| s["metadata"]["annotations"]["federation.fleet.dev/spec-hash"] = json!("tampered"),
    );
    for node in ["/api/v1/nodes/node-1", "/api/v1/nodes/node-2"] {
        h.server.modify(node, |n| {
            if let Some(labels) = n["metadata"]["labels"].as_object_mut() {
                labels.remove("federation.fleet.dev/control-plane");
            }
        });
    }
    h.reconcile(FE_PATH).await;
    give_load_balancer_address(&h, control_plane);
    h.reconcile(FE_PATH).await;
    assert_eq!(h.status(FE_PATH)["phase"], "Success");

    delete_to_the_end(&h, control_plane).await;
    h.server.take_calls()
}

/// The Karmada profile's namespace.
const KARMADA_NAMESPACE: &str = "karmada-fleet-a";

/// A Karmada enablement installed to Success, its kubeconfig repaired, then deleted with the
/// chart's hook leftovers and etcd's volume there to clean up.
async fn karmada_life(policy: Policy) -> Vec<Call> {
    let h = harness(policy);
    new_enablement(
        &h,
        json!({"chart": {"clusterScoped": true, "installerClusterRole": "cluster-admin"}}),
    );
    h.server.modify(FE_PATH, |fe| {
        fe["spec"]["chart"] =
            json!({"clusterScoped": true, "installerClusterRole": "cluster-admin"});
    });
    h.sync_store(&[FE_PATH]);
    run_to_success(&h, KARMADA_NAMESPACE).await;
    h.server.remove(&format!(
        "/api/v1/namespaces/{KARMADA_NAMESPACE}/secrets/fleet-a-federation-kubeconfig"
    ));
    h.reconcile(FE_PATH).await;
    let hook = json!({"helm.sh/hook": "pre-install,pre-upgrade"});
    let name = "karmada-fleet-a-hook-job";
    h.server.insert(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name, "annotations": hook}, "rules": []}),
    );
    h.server.insert(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "annotations": hook},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": KARMADA_NAMESPACE}]}),
    );
    h.server
        .insert(json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": KARMADA_NAMESPACE, "annotations": hook}}));
    h.server.insert(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "karmada-fleet-a-static-resources", "namespace": KARMADA_NAMESPACE, "annotations": hook}}));
    h.server
        .insert(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "etcd-data-etcd-0", "namespace": KARMADA_NAMESPACE}}));
    delete_to_the_end(&h, KARMADA_NAMESPACE).await;
    let calls = h.server.take_calls();
    for deleted in [
        format!("/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}"),
        format!("/api/v1/namespaces/{KARMADA_NAMESPACE}"),
    ] {
        assert!(
            calls
                .iter()
                .any(|c| c.method == Method::DELETE && c.path() == deleted),
            "the Karmada teardown deleted {deleted}"
        );
    }
    calls
}

/// A failed install Job: the next attempt deletes it; failed for good; a retry.
async fn failed_install_retried(policy: Policy) -> Vec<Call> {
    let h = harness(policy);
    new_enablement(&h, json!({"backoffLimit": 1}));
    h.reconcile(FE_PATH).await;
    give_load_balancer_address(&h, NS);
    h.reconcile(FE_PATH).await;
    finish_job(&h, NS, "fleet-a-install-", "Failed");
    h.reconcile(FE_PATH).await;
    h.clock.advance(5);
    h.reconcile(FE_PATH).await;
    finish_job(&h, NS, "fleet-a-install-", "Failed");
    h.reconcile(FE_PATH).await;
    assert_eq!(h.status(FE_PATH)["phase"], "Failed");
    h.server.modify(FE_PATH, |fe| {
        fe["metadata"]["annotations"] = json!({"federation.fleet.dev/retry": "1"});
    });
    h.reconcile(FE_PATH).await;
    assert_eq!(h.status(FE_PATH)["phase"], "Running");
    h.server.take_calls()
}

/// The HTTP API's TokenReview and SubjectAccessReviews (progress: get on one enablement;
/// list: list in every namespace, then per namespace).
async fn reviews() -> Vec<Call> {
    let server = FakeApiServer::new();
    server.respond("/apis/authentication.k8s.io/v1/tokenreviews", |review| {
        let mut review = review.clone();
        review["status"] =
            json!({"authenticated": true, "user": {"username": "alice", "groups": ["devs"]}});
        review
    });
    server.respond(
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        |review| {
            let mut review = review.clone();
            review["status"] = json!({"allowed": true});
            review
        },
    );
    let auth = Authorizer::kubernetes(server.client());
    let who = auth
        .authenticate(Some("token"), None)
        .await
        .expect("reviewed")
        .expect("authenticated");
    for (verb, namespace, name) in [
        ("get", Some(NS), Some(NAME)),
        ("list", Some(NS), None),
        ("list", None, None),
    ] {
        assert!(
            auth.may(Some(&who), verb, namespace, name)
                .await
                .expect("reviewed")
        );
    }
    server.take_calls()
}

/// One replica of src/main.rs in the leader election (`--leader-elect` with the chart's Lease
/// name, in the release namespace as the downward API gives it): it acquires and renews the
/// Lease, then releases it on shutdown.
async fn leader_election() -> Vec<Call> {
    let server = FakeApiServer::new();
    let config = LeaseConfig {
        name: LEASE.to_string(),
        namespace: RELEASE_NAMESPACE.to_string(),
        identity: "federation-controller-0".to_string(),
        duration: Duration::from_secs(3),
    };
    let (mut leading, election) = leader::join(server.client(), &config, Default::default())
        .await
        .expect("joins the election");
    tokio::time::timeout(Duration::from_secs(10), leading.wait_for(|l| *l))
        .await
        .expect("leads within the lease duration")
        .expect("the election runs");
    drop(leading);
    election
        .await
        .expect("the election task")
        .expect("the lease is released");
    server.take_calls()
}

/// A client of `server` on which every watch stays open with nothing happening, as on a
/// quiet cluster (the in-memory server answers a watch with a list, which the watchers would
/// retry with backoff); the watch requests go to `watches`.
fn quiet_watches_client(server: &FakeApiServer, watches: Arc<Mutex<Vec<Call>>>) -> kube::Client {
    let server = server.client();
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let (server, watches) = (server.clone(), watches.clone());
        async move {
            let uri = request.uri().to_string();
            if is_watch(&uri) {
                let accept = request
                    .headers()
                    .get("accept")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                watches.lock().expect("lock").push(Call {
                    method: request.method().clone(),
                    uri,
                    content_type: None,
                    accept,
                    body: None,
                });
                let open = futures::stream::pending::<Result<bytes::Bytes, std::io::Error>>();
                return Ok::<_, kube::Error>(http::Response::new(Body::from_stream(open)));
            }
            Ok(server.send(request).await?.map(Body::new))
        }
    });
    kube::Client::new(service, "default")
}

fn is_watch(uri: &str) -> bool {
    uri.split_once('?').is_some_and(|(_, query)| {
        query
            .split('&')
            .any(|kv| kv == "watch=true" || kv == "watch=1")
    })
}

/// The lists and watches the controller starts (`controller::follow_enablements` and
/// `controller::run`): it runs against a quiet cluster until every
/// collection it listed is watched too.
async fn watches(policy: Policy) -> Vec<Call> {
    let server = FakeApiServer::new();
    let watch_calls = Arc::new(Mutex::new(Vec::new()));
    let client = quiet_watches_client(&server, watch_calls.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|s| *s).await;
    };
    let cache = FederationCache::new();
    let health = WatchHealth::default();
    let namespace = policy.watch_namespace.clone();
    let following = tokio::spawn(controller::follow_enablements(
        &client,
        namespace.as_deref(),
        &cache,
        &health,
    ));
    let reconciler = controller::Reconciler {
        client: client.clone(),
        cache,
        executors: Executors::kubernetes(client, policy.chart_defaults.clone()),
        policy,
        concurrency: 1,
        metrics: Arc::new(Metrics::new()),
        health,
    };
    let running = tokio::spawn(controller::run(reconciler, shutdown));
    let started = Instant::now();
    let mut calls = Vec::new();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        calls.extend(server.take_calls());
        calls.append(&mut watch_calls.lock().expect("lock"));
        let collections = |verb: &str| -> BTreeSet<(String, String)> {
            calls
                .iter()
                .map(request_access)
                .filter(|a| a.verb == verb)
                .map(|a| (a.group, a.resource))
                .collect()
        };
        let (listed, watched) = (collections("list"), collections("watch"));
        if started.elapsed() > Duration::from_secs(1) && !listed.is_empty() && listed == watched {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the controller's watches did not all start: listed {listed:?}, watched {watched:?}"
        );
    }
    let _ = stop.send(true);
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the controller stops")
        .expect("the controller task");
    following.abort();
    calls
}

#[tokio::test]
async fn the_watches_of_what_the_controller_made_and_of_nodes_read_metadata_only() {
    let calls = watches(allow_everything()).await;
    let mut reads: Vec<(String, bool)> = calls
        .iter()
        .filter(|call| call.method == Method::GET)
        .filter(|call| !call.path().contains("/federationenablements"))
        .map(|call| {
            let metadata_only = call
                .accept
                .as_deref()
                .is_some_and(|accept| accept.contains("as=PartialObjectMetadata"));
            (call.uri.clone(), metadata_only)
        })
        .collect();
    reads.sort();
    assert!(
        reads
            .iter()
            .any(|(uri, _)| uri.starts_with("/api/v1/secrets")),
        "{reads:#?}"
    );
    assert!(
        reads.iter().all(|(_, metadata_only)| *metadata_only),
        "no watch holds a Secret's data (or any other body): {reads:#?}"
    );
}

fn allow_everything() -> Policy {
    let mut policy = policy();
    policy.allow_cluster_scoped_charts = true;
    policy.allow_foreign_control_plane_namespaces = true;
    policy
}

fn watching_team_a() -> Policy {
    let mut policy = policy();
    policy.watch_namespace = Some(NS.to_string());
    policy
}

/// Everything the controller does under `policy`: the scenarios it allows, the reviews, the
/// watches, and what no scenario observes.
async fn observe(policy: Policy) -> Accesses {
    let mut accesses = Accesses::new();
    record(
        &mut accesses,
        &whole_life(policy.clone(), NS, json!({})).await,
    );
    record(&mut accesses, &failed_install_retried(policy.clone()).await);
    if policy.allow_cluster_scoped_charts && policy.watch_namespace.is_none() {
        let calls = whole_life(
            policy.clone(),
            NS,
            json!({"chart": {"clusterScoped": true}}),
        )
        .await;
        assert!(
            calls
                .iter()
                .any(|c| c.path().contains("/clusterrolebindings/")),
            "the cluster-scoped scenario made a ClusterRoleBinding"
        );
        record(&mut accesses, &calls);
    }
    if policy
        .allowed_installer_roles
        .iter()
        .any(|role| role == "cluster-admin")
    {
        record(&mut accesses, &karmada_life(policy.clone()).await);
    }
    if policy.allow_foreign_control_plane_namespaces && policy.watch_namespace.is_none() {
        let calls = whole_life(policy.clone(), FOREIGN, json!({})).await;
        assert!(
            calls.iter().any(|c| c.method == Method::DELETE
                && c.path() == format!("/api/v1/namespaces/{FOREIGN}")),
            "the foreign namespace was created and deleted"
        );
        record(&mut accesses, &calls);
    }
    record(&mut accesses, &reviews().await);
    record(&mut accesses, &leader_election().await);
    record(&mut accesses, &watches(policy).await);
    accesses
}

// --------------------------------------------------------------------------------- grants

/// One rule the controller's ServiceAccount holds, and where.
#[derive(Debug)]
struct Grant {
    /// "ClusterRole/x" or "Role/ns/x", for messages.
    from: String,
    /// None: cluster-wide (a ClusterRoleBinding); Some: within this namespace.
    namespace: Option<String>,
    api_groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
    resource_names: Vec<String>,
}

impl Grant {
    fn allows(&self, a: &Access) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|ns| a.namespace.as_ref() == Some(ns))
            && self.api_groups.contains(&a.group)
            && self.resources.contains(&a.resource)
            && self.verbs.contains(&a.verb)
            && (self.resource_names.is_empty()
                || a.name
                    .as_ref()
                    .is_some_and(|n| self.resource_names.contains(n)))
    }
}

/// The rules bound to the ServiceAccount the controller's Deployment runs as.
fn grants(objects: &[Value]) -> Vec<Grant> {
    let deployments = all(objects, "Deployment");
    assert_eq!(deployments.len(), 1, "one Deployment");
    let deployment = deployments[0];
    let account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .expect("the Deployment names its ServiceAccount");
    let account_namespace = deployment["metadata"]["namespace"]
        .as_str()
        .unwrap_or(RELEASE_NAMESPACE);
    let is_controller = |binding: &Value| {
        binding["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| {
                s["kind"] == "ServiceAccount"
                    && s["name"] == account
                    && s["namespace"] == account_namespace
            })
    };
    let rules_of = |kind: &str, name: &str, namespace: Option<&str>| -> Vec<Value> {
        let role = objects
            .iter()
            .find(|o| {
                o["kind"] == kind
                    && o["metadata"]["name"] == name
                    && (kind == "ClusterRole" || o["metadata"]["namespace"].as_str() == namespace)
            })
            .unwrap_or_else(|| panic!("{kind} {name} is bound but not rendered"));
        role["rules"].as_array().cloned().unwrap_or_default()
    };
    let mut grants = Vec::new();
    for binding in objects.iter().filter(|o| {
        (o["kind"] == "ClusterRoleBinding" || o["kind"] == "RoleBinding") && is_controller(o)
    }) {
        let namespace = binding["metadata"]["namespace"].as_str();
        let role_kind = binding["roleRef"]["kind"].as_str().expect("roleRef.kind");
        let role_name = binding["roleRef"]["name"].as_str().expect("roleRef.name");
        let scope =
            (binding["kind"] == "RoleBinding").then(|| namespace.expect("namespace").to_string());
        for rule in rules_of(role_kind, role_name, namespace) {
            assert!(
                rule.get("nonResourceURLs").is_none(),
                "the controller needs no non-resource URL: {rule}"
            );
            grants.push(Grant {
                from: format!(
                    "{role_kind}/{}{role_name}",
                    scope.as_ref().map(|s| format!("{s}/")).unwrap_or_default()
                ),
                namespace: scope.clone(),
                api_groups: strings(&rule["apiGroups"]),
                resources: strings(&rule["resources"]),
                verbs: strings(&rule["verbs"]),
                resource_names: strings(&rule["resourceNames"]),
            });
        }
    }
    assert!(
        !grants.is_empty(),
        "the controller's ServiceAccount is bound to nothing"
    );
    grants
}

/// Every access is allowed; every (group, resource, verb) of every rule is used.
fn assert_exactly_what_is_used(objects: &[Value], accesses: &Accesses, what: &str) {
    for role in all(objects, "ClusterRole")
        .into_iter()
        .chain(all(objects, "Role"))
    {
        for rule in role["rules"].as_array().into_iter().flatten() {
            for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                assert!(
                    !strings(&rule[field]).iter().any(|s| s.contains('*')),
                    "{what}: a wildcard in {} {}: {rule}",
                    role["kind"],
                    role["metadata"]["name"]
                );
            }
        }
    }
    let grants = grants(objects);
    let refused: Vec<String> = accesses
        .iter()
        .filter(|(a, _)| !grants.iter().any(|g| g.allows(a)))
        .map(|(a, why)| format!("{a}   ({why})"))
        .collect();
    let mut unused = Vec::new();
    for grant in &grants {
        for group in &grant.api_groups {
            for resource in &grant.resources {
                for verb in &grant.verbs {
                    let used = accesses.keys().any(|a| {
                        &a.group == group
                            && &a.resource == resource
                            && &a.verb == verb
                            && grant.allows(a)
                    });
                    if !used {
                        let group = group_name(group);
                        unused.push(format!("{verb} {group}/{resource} ({})", grant.from));
                    }
                }
            }
        }
    }
    assert!(
        refused.is_empty() && unused.is_empty(),
        "{what}:\nthe RBAC refuses calls the controller makes:\n  {}\nthe RBAC grants what the controller never uses:\n  {}",
        refused.join("\n  "),
        unused.join("\n  ")
    );
}
