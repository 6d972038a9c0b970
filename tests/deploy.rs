//! The deployment artifacts: the Helm chart, the plain manifests (kept equal to the chart's
//! defaults) and the Dockerfile. The tests that render need `helm` and `kubectl` (see
//! tests/deploy_support); the others read the files.

mod deploy_support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use deploy_support::{
    RELEASE, RELEASE_NAMESPACE, all, helm_template, kustomize, object, strings, try_helm_template,
};
use serde_json::{Value, json};

const CRD: &str = include_str!("../crds/federationenablements.yaml");
const CHART_CRD: &str =
    include_str!("../deploy/helm/federation-controller/crds/federationenablements.yaml");
const MANIFESTS_CRD: &str = include_str!("../deploy/manifests/federationenablements.yaml");
const CHART_YAML: &str = include_str!("../deploy/helm/federation-controller/Chart.yaml");
const VALUES_YAML: &str = include_str!("../deploy/helm/federation-controller/values.yaml");
const DOCKERFILE: &str = include_str!("../deploy/Dockerfile");
const CARGO_TOML: &str = include_str!("../Cargo.toml");

/// What every variant of the chart is rendered with in these tests.
const VARIANTS: [&[&str]; 5] = [
    &[],
    &["watchNamespace=team-a"],
    &[
        "serviceMonitor.enabled=true",
        "networkPolicy.enabled=true",
        "podDisruptionBudget.enabled=true",
        "tls.secretName=x",
    ],
    &[
        "allowClusterScopedCharts=true",
        "allowForeignControlPlaneNamespaces=true",
        "leaderElection.enabled=false",
        "replicas=1",
        "auth=none",
        "extraArgs={--executors=simulated,--simulated-delay-ms=50}",
        "allowedChartRepositories={https://charts.example/team,oci://registry.example/charts}",
    ],
    &["installer.allowClusterAdmin=true"],
];

// ------------------------------------------------------------------ files (no tools needed)

#[test]
fn the_chart_and_the_manifests_ship_the_generated_crd_unchanged() {
    assert!(
        CHART_CRD == CRD,
        "deploy/helm/federation-controller/crds/ differs from crds/: \
         cp crds/federationenablements.yaml deploy/helm/federation-controller/crds/"
    );
    assert!(
        MANIFESTS_CRD == CRD,
        "deploy/manifests/ differs from crds/: \
         cp crds/federationenablements.yaml deploy/manifests/"
    );
}

#[test]
fn chart_app_version_is_the_crate_version() {
    let chart: Value = serde_yaml::from_str(CHART_YAML).expect("Chart.yaml");
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "federation-controller");
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));
    assert!(chart["version"].is_string(), "a chart version");
}

#[test]
fn every_value_has_a_comment() {
    let missing = uncommented_values(VALUES_YAML);
    assert!(
        missing.is_empty(),
        "values.yaml keys without a comment line right above them:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_comment_check_finds_a_key_without_a_comment() {
    let yaml = "# a\na: 1\nb:\n  # c\n  c: 2\n  d: [1]\nlist:\n  # items are not keys\n  - x: 1\n    y: 2\n# e\ne: 3 # f\nf: 4 # trailing\n";
    assert_eq!(uncommented_values(yaml), vec!["b:", "  d: [1]", "list:"]);
}

/// Keys (outside lists) with neither a comment line right above nor a trailing comment.
fn uncommented_values(yaml: &str) -> Vec<String> {
    let mut missing = Vec::new();
    let mut commented = false;
    let mut list_indent: Option<usize> = None;
    for line in yaml.lines() {
        let text = line.trim_start();
        let indent = line.len() - text.len();
        if text.starts_with('#') {
            commented = true;
            continue;
        }
        let was_commented = std::mem::take(&mut commented);
        if text.is_empty() {
            continue;
        }
        if text.starts_with("- ") {
            list_indent = Some(list_indent.map_or(indent, |l| l.min(indent)));
            continue;
        }
        if list_indent.is_some_and(|l| indent >= l) {
            continue;
        }
        list_indent = None;
        let is_key = text.split_once(':').is_some_and(|(key, _)| {
            !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        });
        if is_key && !was_commented && !text.contains(" # ") {
            missing.push(line.to_string());
        }
    }
    missing
}

#[test]
fn the_image_is_built_with_a_supported_rust_and_runs_as_the_charts_user() {
    let rust_version = CARGO_TOML
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("Cargo.toml rust-version")
        .trim_matches('"');
    let pinned = DOCKERFILE
        .lines()
        .find_map(|l| l.strip_prefix("ARG RUST_VERSION="))
        .expect("ARG RUST_VERSION in deploy/Dockerfile");
    let version =
        |v: &str| -> Vec<u32> { v.split('.').map(|n| n.parse().expect("number")).collect() };
    assert!(
        version(pinned) >= version(rust_version),
        "deploy/Dockerfile builds with Rust {pinned}, Cargo.toml needs {rust_version}"
    );
    let from: Vec<&str> = DOCKERFILE
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .collect();
    assert!(
        from[0].contains("-bookworm"),
        "built on Debian 12, like the runtime image: {}",
        from[0]
    );
    assert_eq!(
        from.last().copied(),
        Some("gcr.io/distroless/cc-debian12:nonroot")
    );
    assert!(DOCKERFILE.contains("cargo build --release --locked --bin federation-controller"));
    assert!(DOCKERFILE.contains("\nUSER 65532:65532\n"));
    assert!(DOCKERFILE.contains(r#"ENTRYPOINT ["/usr/local/bin/federation-controller"]"#));
    let values: Value = serde_yaml::from_str(VALUES_YAML).expect("values.yaml");
    assert_eq!(values["podSecurityContext"]["runAsUser"], 65532);
    assert_eq!(values["podSecurityContext"]["runAsGroup"], 65532);
}

#[test]
fn the_image_stubs_every_bench_and_member_the_manifest_declares() {
    // The dependency layer builds against stub targets: a bench or a workspace member it
    // lacks makes the manifest fail to load, and the image fail to build.
    let mut lines = CARGO_TOML.lines();
    let mut benches = Vec::new();
    while let Some(line) = lines.next() {
        if line == "[[bench]]" {
            let name = lines
                .next()
                .and_then(|l| l.strip_prefix("name = "))
                .expect("a [[bench]] starts with its name");
            benches.push(name.trim_matches('"'));
        }
    }
    assert!(!benches.is_empty(), "Cargo.toml declares benches");
    let stubbed = DOCKERFILE
        .lines()
        .find_map(|l| l.trim_start_matches(" && ").strip_prefix("for bench in "))
        .and_then(|l| l.split_once(';'))
        .map(|(names, _)| names.split_whitespace().collect::<Vec<_>>())
        .expect("deploy/Dockerfile stubs the benches in a `for bench in ...` loop");
    assert_eq!(stubbed, benches, "deploy/Dockerfile stubs these benches");
    let members = CARGO_TOML
        .lines()
        .find_map(|l| l.strip_prefix("members = "))
        .expect("Cargo.toml lists the workspace's members");
    for member in members
        .trim_matches(['[', ']'])
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| *m != ".")
    {
        assert!(
            DOCKERFILE.contains(&format!("COPY {member}/Cargo.toml {member}/\n")),
            "deploy/Dockerfile copies the manifest of the member {member}"
        );
    }
}

// ----------------------------------------------------------------------- rendered (tools)

#[test]
fn plain_manifests_are_the_chart_with_default_values() {
    let (Some(chart), Some(manifests)) = (helm_template(&[]), kustomize()) else {
        return;
    };
    let key = |o: &Value| {
        format!(
            "{} {}/{}",
            o["kind"].as_str().unwrap_or_default(),
            o["metadata"]["namespace"].as_str().unwrap_or_default(),
            o["metadata"]["name"].as_str().unwrap_or_default()
        )
    };
    let chart: BTreeMap<String, Value> = chart
        .into_iter()
        .map(|o| (key(&o), integral(without_helm_labels(o))))
        .collect();
    let mut manifests: BTreeMap<String, Value> = manifests
        .into_iter()
        .map(|o| (key(&o), integral(o)))
        .collect();
    let namespace = manifests
        .remove(&format!("Namespace /{RELEASE_NAMESPACE}"))
        .expect("the manifests create the namespace");
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    assert_eq!(
        manifests.keys().collect::<Vec<_>>(),
        chart.keys().collect::<Vec<_>>(),
        "the same objects"
    );
    let differences: Vec<String> = chart
        .iter()
        .flat_map(|(key, rendered)| {
            let mut found = Vec::new();
            differences(&manifests[key], rendered, key, &mut found);
            found
        })
        .collect();
    assert!(
        differences.is_empty(),
        "deploy/manifests (left) differs from the chart's defaults (right):\n{}",
        differences.join("\n")
    );
}

/// Numbers as kustomize writes them: `1.0` is `1` (the CRD's bounds are written as floats).
fn integral(value: Value) -> Value {
    match value {
        Value::Number(n)
            if n.as_f64()
                .is_some_and(|f| f.fract() == 0.0 && f.abs() < 1e15) =>
        {
            json!(n.as_f64().unwrap_or_default() as i64)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(integral).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, integral(v))).collect())
        }
        other => other,
    }
}

/// The paths at which `left` and `right` differ, with both values.
fn differences(left: &Value, right: &Value, path: &str, found: &mut Vec<String>) {
    match (left, right) {
        (Value::Object(l), Value::Object(r)) => {
            for key in l.keys().chain(r.keys().filter(|k| !l.contains_key(*k))) {
                let (a, b) = (
                    l.get(key).unwrap_or(&Value::Null),
                    r.get(key).unwrap_or(&Value::Null),
                );
                differences(a, b, &format!("{path}/{key}"), found);
            }
        }
        (Value::Array(l), Value::Array(r)) if l.len() == r.len() => {
            for (i, (a, b)) in l.iter().zip(r).enumerate() {
                differences(a, b, &format!("{path}/{i}"), found);
            }
        }
        (l, r) if l != r => found.push(format!("  {path}: {l} != {r}")),
        _ => {}
    }
}

/// Helm's own labels, which the plain manifests do not carry.
fn without_helm_labels(mut object: Value) -> Value {
    for path in ["/metadata/labels", "/spec/template/metadata/labels"] {
        if let Some(labels) = object.pointer_mut(path).and_then(Value::as_object_mut) {
            labels.remove("helm.sh/chart");
            labels.remove("app.kubernetes.io/managed-by");
        }
    }
    object
}

fn deployment(objects: &[Value]) -> &Value {
    object(objects, "Deployment", RELEASE)
}

fn container(objects: &[Value]) -> &Value {
    let containers = &deployment(objects)["spec"]["template"]["spec"]["containers"];
    assert_eq!(
        containers.as_array().map(Vec::len),
        Some(1),
        "one container"
    );
    &containers[0]
}

fn args(objects: &[Value]) -> Vec<String> {
    strings(&container(objects)["args"])
}

#[test]
fn defaults_run_two_hardened_replicas_with_leader_election_and_probes() {
    let Some(objects) = helm_template(&[]) else {
        return;
    };
    let deployment = deployment(&objects);
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], RELEASE);
    assert_eq!(pod["enableServiceLinks"], false);
    assert_eq!(
        pod["securityContext"],
        json!({"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
               "seccompProfile": {"type": "RuntimeDefault"}})
    );
    let container = container(&objects);
    assert_eq!(
        container["image"],
        format!("federation-controller:{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        container["securityContext"],
        json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
               "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]},
               "seccompProfile": {"type": "RuntimeDefault"}})
    );
    assert!(container["resources"]["requests"]["cpu"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert_eq!(
        container["ports"],
        json!([{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(
            container[probe]["httpGet"],
            json!({"path": path, "port": "http", "scheme": "HTTP"}),
            "{probe}"
        );
    }
    assert_eq!(
        args(&objects),
        [
            "run",
            "--http-addr=0.0.0.0:8080",
            "--auth=kubernetes",
            "--log-level=info",
            "--log-format=json",
            "--concurrency=4",
            "--watch-stall-seconds=120",
            "--http-max-connections=4096",
            "--http-max-streams-per-user=32",
            "--auth-cache-size=10000",
            "--token-reviews-per-second=20",
            "--allowed-runner-images=docker.io/alpine/helm:3.16.4",
            "--allowed-installer-roles=federation-chart-installer",
            "--default-chart-repository=https://raw.githubusercontent.com/karmada-io/karmada/master/charts",
            "--default-chart-name=karmada",
            "--default-chart-version=v1.18.1",
            "--leader-elect",
            "--leader-elect-lease-name=federation-controller",
            "--leader-elect-lease-duration=15",
        ]
    );
    let env: BTreeMap<&str, &Value> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().expect("name"),
                &e["valueFrom"]["fieldRef"]["fieldPath"],
            )
        })
        .collect();
    assert_eq!(
        env,
        BTreeMap::from([
            ("POD_NAME", &json!("metadata.name")),
            (
                "FEDERATION_CONTROLLER_LEADER_ELECT_NAMESPACE",
                &json!("metadata.namespace")
            ),
        ])
    );
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], "8080");
    assert_eq!(annotations["prometheus.io/path"], "/metrics");

    let service = object(&objects, "Service", RELEASE);
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}])
    );
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    for optional in ["ServiceMonitor", "NetworkPolicy", "PodDisruptionBudget"] {
        assert!(
            all(&objects, optional).is_empty(),
            "{optional} is off by default"
        );
    }
    let roles: Vec<&Value> = all(&objects, "Role")
        .iter()
        .map(|o| &o["metadata"]["name"])
        .collect();
    assert_eq!(
        roles,
        [&json!("federation-controller-leader-election")],
        "only the leader-election Role by default"
    );
    for labels in [
        &deployment["metadata"]["labels"],
        &deployment["spec"]["template"]["metadata"]["labels"],
    ] {
        for key in [
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/version",
            "app.kubernetes.io/part-of",
            "app.kubernetes.io/managed-by",
            "helm.sh/chart",
        ] {
            assert!(labels[key].is_string(), "{key}");
        }
        assert_ne!(
            labels["app.kubernetes.io/managed-by"], "federation-controller",
            "that value marks the controller's own objects, which it watches"
        );
    }
}

#[test]
fn watch_namespace_passes_namespace_and_moves_the_namespaced_rights_into_a_role() {
    let Some(objects) = helm_template(&["watchNamespace=team-a"]) else {
        return;
    };
    assert!(args(&objects).contains(&"--namespace=team-a".to_string()));
    let role = object(&objects, "Role", RELEASE);
    assert_eq!(role["metadata"]["namespace"], "team-a");
    let binding = object(&objects, "RoleBinding", RELEASE);
    assert_eq!(binding["metadata"]["namespace"], "team-a");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": RELEASE, "namespace": RELEASE_NAMESPACE}])
    );
    let resources = |o: &Value| -> Vec<String> {
        o["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| strings(&r["resources"]))
            .collect()
    };
    let namespaced = resources(role);
    for resource in [
        "federationenablements",
        "services",
        "secrets",
        "jobs",
        "events",
    ] {
        assert!(
            namespaced.iter().any(|r| r == resource),
            "{resource} in the Role"
        );
    }
    let cluster_wide = resources(object(&objects, "ClusterRole", RELEASE));
    for resource in &namespaced {
        assert!(
            !cluster_wide.contains(resource),
            "{resource} is not granted cluster-wide with watchNamespace"
        );
    }
}

#[test]
fn tls_monitoring_network_policy_and_disruption_budget_render_when_enabled() {
    let Some(objects) = helm_template(VARIANTS[2]) else {
        return;
    };
    let args = args(&objects);
    for arg in [
        "--tls-cert-file=/etc/federation-controller/tls/tls.crt",
        "--tls-key-file=/etc/federation-controller/tls/tls.key",
    ] {
        assert!(args.contains(&arg.to_string()), "{arg}");
    }
    let container = container(&objects);
    assert_eq!(
        container["volumeMounts"],
        json!([{"name": "tls", "mountPath": "/etc/federation-controller/tls", "readOnly": true}])
    );
    assert_eq!(
        deployment(&objects)["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "tls", "secret": {"secretName": "x"}}])
    );
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(container[probe]["httpGet"]["scheme"], "HTTPS", "{probe}");
    }
    assert!(
        deployment(&objects)["spec"]["template"]["metadata"]["annotations"]
            .get("prometheus.io/scrape")
            .is_none(),
        "the ServiceMonitor scrapes; the annotations would scrape twice"
    );
    let monitor = object(&objects, "ServiceMonitor", RELEASE);
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"], "http",
        "{monitor:#}"
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["scheme"], "https");
    let selector = &deployment(&objects)["spec"]["selector"]["matchLabels"];
    assert_eq!(&monitor["spec"]["selector"]["matchLabels"], selector);
    let policy = object(&objects, "NetworkPolicy", RELEASE);
    assert_eq!(&policy["spec"]["podSelector"]["matchLabels"], selector);
    assert_eq!(
        policy["spec"]["ingress"],
        json!([{"ports": [{"port": "http", "protocol": "TCP"}]}])
    );
    let budget = object(&objects, "PodDisruptionBudget", RELEASE);
    assert_eq!(budget["spec"]["minAvailable"], 1);
    assert_eq!(&budget["spec"]["selector"]["matchLabels"], selector);
}

#[test]
fn allowlists_become_flags_and_the_controller_may_bind_only_the_allowed_roles() {
    let Some(objects) = helm_template(&[
        "allowedRunnerImages={registry.example/helm:3.17.3,docker.io/alpine/helm:3.16.4}",
        "allowedInstallerRoles={federation-chart-installer,wide-installer}",
        "allowClusterScopedCharts=true",
        "allowForeignControlPlaneNamespaces=true",
        "allowedChartRepositories={https://charts.example/team,oci://registry.example/charts}",
        "defaultChartVersion=v1.19.0",
        "allowedServiceAnnotationPrefixes={service.beta.kubernetes.io/,kubernetes.io/elb.}",
        "allowElbId=false",
    ]) else {
        return;
    };
    let args = args(&objects);
    for arg in [
        "--allowed-runner-images=registry.example/helm:3.17.3,docker.io/alpine/helm:3.16.4",
        "--allowed-installer-roles=federation-chart-installer,wide-installer",
        "--allowed-chart-repositories=https://charts.example/team,oci://registry.example/charts",
        "--default-chart-version=v1.19.0",
        "--allow-cluster-scoped-charts",
        "--allow-foreign-control-plane-namespaces",
        "--allowed-service-annotation-prefixes=service.beta.kubernetes.io/,kubernetes.io/elb.",
        "--allow-elb-id=false",
    ] {
        assert!(args.contains(&arg.to_string()), "{arg} in {args:?}");
    }
    let bind: Vec<&Value> = object(&objects, "ClusterRole", RELEASE)["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter(|r| strings(&r["verbs"]).contains(&"bind".to_string()))
        .collect();
    assert_eq!(bind.len(), 1);
    assert_eq!(
        strings(&bind[0]["resourceNames"]),
        ["federation-chart-installer", "wide-installer"]
    );
}

/// The verbs a role grants per `group/resource` (`/pods` for the core group); with `by_name`,
/// the rules limited to resourceNames count as `group/resource[name,...]`.
fn granted(role: &Value, by_name: bool) -> BTreeMap<String, Vec<String>> {
    let mut granted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rule in role["rules"].as_array().expect("rules") {
        let names = strings(&rule["resourceNames"]);
        let suffix = if by_name && !names.is_empty() {
            format!("[{}]", names.join(","))
        } else {
            String::new()
        };
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                granted
                    .entry(format!("{group}/{resource}{suffix}"))
                    .or_default()
                    .extend(strings(&rule["verbs"]));
            }
        }
    }
    granted
}

#[test]
fn cluster_admin_for_karmada_becomes_flags_and_only_the_rights_its_teardown_needs() {
    let Some(objects) = helm_template(&["installer.allowClusterAdmin=true"]) else {
        return;
    };
    let args = args(&objects);
    assert!(
        args.contains(&"--allowed-installer-roles=federation-chart-installer,cluster-admin".into()),
        "{args:?}"
    );
    assert_eq!(
        args.iter()
            .filter(|a| *a == "--allow-cluster-scoped-charts")
            .count(),
        1,
        "{args:?}"
    );
    let granted = granted(object(&objects, "ClusterRole", RELEASE), true);
    let verbs = |key: &str| granted.get(key).cloned().unwrap_or_default();
    // Bind only the named roles: cluster-admin by name, never every ClusterRole.
    assert_eq!(
        verbs("rbac.authorization.k8s.io/clusterroles[federation-chart-installer,cluster-admin]"),
        ["bind"]
    );
    // The chart's hook leftovers <release>-hook-job: read and delete, nothing else.
    assert_eq!(
        verbs("rbac.authorization.k8s.io/clusterroles"),
        ["get", "delete"]
    );
    for verb in ["get", "delete"] {
        assert!(
            verbs("rbac.authorization.k8s.io/clusterrolebindings").contains(&verb.to_string()),
            "{verb} clusterrolebindings"
        );
    }
    // Each Karmada enablement's own namespace, and etcd's volumes.
    assert_eq!(verbs("/namespaces"), ["get", "create", "delete"]);
    assert_eq!(verbs("/persistentvolumeclaims"), ["list", "delete"]);
    for (key, verbs) in &granted {
        for verb in ["escalate", "*"] {
            assert!(!verbs.contains(&verb.to_string()), "{verb} on {key}");
        }
    }
}

#[test]
fn cluster_admin_is_off_by_default() {
    let Some(objects) = helm_template(&[]) else {
        return;
    };
    let args = args(&objects);
    assert!(
        args.contains(&"--allowed-installer-roles=federation-chart-installer".into()),
        "{args:?}"
    );
    assert!(!args.contains(&"--allow-cluster-scoped-charts".into()));
    let granted = granted(object(&objects, "ClusterRole", RELEASE), true);
    let keys: Vec<&String> = granted.keys().collect();
    for absent in [
        "/persistentvolumeclaims",
        "rbac.authorization.k8s.io/clusterroles",
    ] {
        assert!(!granted.contains_key(absent), "{absent} in {keys:?}");
    }
    assert!(
        !keys.iter().any(|k| k.contains("cluster-admin")),
        "{keys:?}"
    );
    assert_eq!(granted["/namespaces"], ["get"]);
}

#[test]
fn without_kubernetes_auth_the_controller_may_not_review_tokens_or_access() {
    let resources = |set: &[&str]| -> Option<Vec<String>> {
        let objects = helm_template(set)?;
        Some(
            object(&objects, "ClusterRole", RELEASE)["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|r| strings(&r["resources"]))
                .collect(),
        )
    };
    let (Some(kubernetes), Some(none)) = (resources(&[]), resources(&["auth=none"])) else {
        return;
    };
    for review in ["tokenreviews", "subjectaccessreviews"] {
        assert!(
            kubernetes.contains(&review.to_string()),
            "{review} with auth=kubernetes"
        );
        assert!(
            !none.contains(&review.to_string()),
            "no {review} with auth=none"
        );
    }
}

#[test]
fn the_installer_role_is_explicit_and_refuses_wildcards() {
    let Some(objects) = helm_template(&[]) else {
        return;
    };
    let role = object(&objects, "ClusterRole", "federation-chart-installer");
    for rule in role["rules"].as_array().expect("rules") {
        for field in ["apiGroups", "resources", "verbs"] {
            assert!(!strings(&rule[field]).contains(&"*".to_string()), "{rule}");
        }
    }
    let granted = granted(role, false);
    let all_verbs = [
        "get", "list", "watch", "create", "update", "patch", "delete",
    ];
    for kind in [
        "apps/deployments",
        "apps/statefulsets",
        "/services",
        "/configmaps",
        "/secrets",
        "/serviceaccounts",
        "policy/poddisruptionbudgets",
    ] {
        assert_eq!(
            granted.get(kind).map(Vec::as_slice),
            Some(all_verbs.map(String::from).as_slice()),
            "{kind}"
        );
    }
    assert_eq!(
        granted.get("/pods").map(Vec::as_slice),
        Some(["get", "list", "watch"].map(String::from).as_slice()),
        "helm --wait reads pods"
    );
    let Some(Err(error)) = try_helm_template(&["installerClusterRole.rules[0].verbs={*}"]) else {
        panic!("a wildcard in installerClusterRole.rules renders");
    };
    assert!(error.contains("no wildcards"), "{error}");
}

#[test]
fn bad_settings_are_refused_at_render_time() {
    for (set, message) in [
        (&["auth=oidc"][..], "auth must be kubernetes or none"),
        (&["logFormat=xml"][..], "logFormat must be json or text"),
        (
            &["leaderElection.enabled=false"][..],
            "replicas > 1 needs leaderElection.enabled",
        ),
        (
            &["installer.allowClusterAdmin=true", "watchNamespace=team-a"][..],
            "installer.allowClusterAdmin needs every namespace watched",
        ),
    ] {
        let Some(rendered) = try_helm_template(set) else {
            return;
        };
        let error = rendered.expect_err(&format!("{set:?} renders"));
        assert!(error.contains(message), "{set:?}: {error}");
    }
}

/// Each variant's container args are accepted by the controller's own command line: it gets
/// past parsing to looking for a cluster (none here), instead of a usage error (exit code 2).
#[test]
fn the_controller_accepts_the_charts_arguments() {
    for set in VARIANTS {
        let Some(objects) = helm_template(set) else {
            return;
        };
        let container = container(&objects);
        let env: Vec<(String, String)> = container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let name = e["name"].as_str().expect("name").to_string();
                let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                    Some("metadata.namespace") => RELEASE_NAMESPACE.to_string(),
                    Some("metadata.name") => "federation-controller-0".to_string(),
                    _ => e["value"].as_str().expect("a value").to_string(),
                };
                (name, value)
            })
            .collect();
        let (code, stderr) = run_controller(&strings(&container["args"]), &env);
        assert_ne!(code, Some(2), "{set:?}: a usage error:\n{stderr}");
        assert!(
            stderr.contains("no cluster found"),
            "{set:?}: expected to get as far as looking for a cluster:\n{stderr}"
        );
    }
}

/// Flags whose chart value is not their own camelCase name: the value that sets them, or why
/// none does.
const FLAG_VALUES: [(&str, &str); 11] = [
    ("--http-addr", "service.port"),
    ("--tls-cert-file", "tls.secretName"),
    ("--tls-key-file", "tls.secretName"),
    ("--executors", "extraArgs (demos and load tests only)"),
    (
        "--simulated-delay-ms",
        "extraArgs (demos and load tests only)",
    ),
    (
        "--simulated-delay-for",
        "extraArgs (demos and load tests only)",
    ),
    ("--leader-elect", "leaderElection.enabled"),
    ("--leader-elect-lease-name", "leaderElection.leaseName"),
    ("--leader-elect-namespace", "(the release namespace)"),
    (
        "--leader-elect-lease-duration",
        "leaderElection.leaseDurationSeconds",
    ),
    ("--namespace", "watchNamespace"),
];

/// Every flag of `federation-controller run`, as its help lists them.
fn run_flags() -> Vec<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_federation-controller"))
        .args(["run", "--help"])
        .output()
        .expect("the controller runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("--"))
        .filter_map(|rest| rest.split([' ', '=', '<']).next())
        .filter(|flag| *flag != "help")
        .map(|flag| format!("--{flag}"))
        .collect()
}

fn camel_case(flag: &str) -> String {
    let mut camel = String::new();
    let mut upper = false;
    for c in flag.trim_start_matches('-').chars() {
        match c {
            '-' => upper = true,
            c if upper => {
                camel.extend(c.to_uppercase());
                upper = false;
            }
            c => camel.push(c),
        }
    }
    camel
}

/// Whether `values.yaml` has the dotted `path` (`leaderElection.enabled`).
fn has_value(values: &serde_yaml::Value, path: &str) -> bool {
    path.split('.')
        .try_fold(values, |node, key| node.get(key))
        .is_some()
}

#[test]
fn every_flag_has_a_chart_value_and_a_line_in_the_readme() {
    let flags = run_flags();
    assert!(flags.len() > 20, "the help lists the flags: {flags:?}");
    let values: serde_yaml::Value = serde_yaml::from_str(VALUES_YAML).expect("values.yaml");
    let readme = include_str!("../README.md");
    let mut missing = Vec::new();
    for flag in &flags {
        let named = ['`', '=', ' ', '[']
            .iter()
            .any(|end| readme.contains(&format!("`{flag}{end}")));
        if !named {
            missing.push(format!("{flag}: not in the README"));
        }
        match FLAG_VALUES.iter().find(|(f, _)| f == flag) {
            Some((_, value)) if value.contains(' ') => {}
            Some((_, value)) if !has_value(&values, value) => {
                missing.push(format!("{flag}: values.yaml lacks {value}"))
            }
            Some(_) => {}
            None if !has_value(&values, &camel_case(flag)) => {
                missing.push(format!("{flag}: values.yaml lacks {}", camel_case(flag)))
            }
            None => {}
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
}

#[test]
fn the_flag_check_finds_a_flag_without_a_value() {
    let values: serde_yaml::Value =
        serde_yaml::from_str("allowElbId: true\nleaderElection:\n  enabled: true\n").expect("yaml");
    assert!(has_value(&values, &camel_case("--allow-elb-id")));
    assert!(has_value(&values, "leaderElection.enabled"));
    assert!(!has_value(&values, &camel_case("--fleet-entitlement")));
}

/// Runs the controller binary with no cluster to find; its exit code and stderr.
fn run_controller(args: &[String], env: &[(String, String)]) -> (Option<i32>, String) {
    let home = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("deploy-home");
    std::fs::create_dir_all(&home).expect("home");
    let mut child = Command::new(env!("CARGO_BIN_EXE_federation-controller"))
        .args(args)
        .env_clear()
        .envs(env.iter().cloned())
        .env("HOME", &home)
        .env("KUBECONFIG", home.join("no-kubeconfig"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the controller starts");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).map(|_| text)
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the controller kept running with args {args:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = reader.join().expect("reader").expect("stderr is text");
    (status.code(), stderr)
}

#[test]
fn every_variant_renders_complete_objects_in_their_namespace() {
    let cluster_scoped = [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
    ];
    for set in VARIANTS {
        let Some(objects) = helm_template(set) else {
            return;
        };
        for o in &objects {
            let kind = o["kind"].as_str().unwrap_or_default();
            assert!(
                o["apiVersion"].is_string() && o["metadata"]["name"].is_string(),
                "{set:?}: {o:#}"
            );
            assert_eq!(
                o["metadata"]["namespace"].is_string(),
                !cluster_scoped.contains(&kind),
                "{set:?}: {kind} {} names its namespace exactly when it has one",
                o["metadata"]["name"]
            );
        }
        assert_eq!(
            all(&objects, "CustomResourceDefinition").len(),
            1,
            "{set:?}: the CRD from crds/"
        );
    }
}
