//! The checked-in CRD is exactly what the Rust types generate, and its schema says what
//! `kubectl apply` will accept.

use federation_controller::api::FederationEnablement;
use kube::CustomResourceExt;
use serde_json::Value;

const CHECKED_IN: &str = include_str!("../crds/federationenablements.yaml");

#[test]
fn checked_in_crd_matches_the_rust_types() {
    let generated = federation_controller::crd::crd_yaml().expect("crd yaml");
    assert!(
        generated == CHECKED_IN,
        "crds/federationenablements.yaml is stale: run `cargo run -- crd > crds/federationenablements.yaml`"
    );
}

fn schema() -> Value {
    let crd = serde_json::to_value(FederationEnablement::crd()).expect("crd json");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

#[test]
fn crd_names_are_the_ones_clients_use() {
    let crd = serde_json::to_value(FederationEnablement::crd()).expect("crd json");
    let names = &crd["spec"]["names"];
    assert_eq!(
        crd["metadata"]["name"],
        "federationenablements.federation.fleet.dev"
    );
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(names["kind"], "FederationEnablement");
    assert_eq!(names["plural"], "federationenablements");
    assert_eq!(names["shortNames"], serde_json::json!(["fe", "fedenable"]));
    assert_eq!(names["categories"], serde_json::json!(["federation"]));
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<(String, Option<i64>)> = version["additionalPrinterColumns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                c["priority"].as_i64(),
            )
        })
        .collect();
    assert_eq!(
        columns,
        vec![
            ("FLEET".into(), None),
            ("PHASE".into(), None),
            ("PROGRESS".into(), None),
            ("AGE".into(), None),
            ("CURRENT".into(), Some(1)),
            ("REASON".into(), Some(1)),
        ]
    );
}

#[test]
fn schema_limits_are_enforced_by_the_api_server() {
    let schema = schema();
    let spec = &schema["properties"]["spec"]["properties"];
    assert_eq!(spec["clusterGroupID"]["pattern"], "^[a-z0-9-]+$");
    assert_eq!(spec["clusterGroupID"]["maxLength"], 64);
    assert_eq!(
        spec["controlPlane"]["properties"]["replicas"]["minimum"],
        1.0
    );
    assert_eq!(
        spec["controlPlane"]["properties"]["replicas"]["maximum"],
        7.0
    );
    assert_eq!(
        spec["certificate"]["properties"]["validityDays"]["maximum"],
        10950.0
    );
    assert_eq!(
        spec["network"]["properties"]["type"]["enum"],
        serde_json::json!(["LoadBalancer", "NodePort"])
    );
    assert_eq!(
        spec["chart"]["properties"]["values"]["x-kubernetes-preserve-unknown-fields"],
        true
    );
    assert_eq!(spec["subJobTimeoutSeconds"]["default"], 600);
    assert_eq!(spec["backoffLimit"]["default"], 3);
    let list_type = |field: &str| {
        schema["properties"]["status"]["properties"][field]["x-kubernetes-list-type"].clone()
    };
    assert_eq!(list_type("subJobs"), "map");
    assert_eq!(list_type("conditions"), "map");
}

#[test]
fn cel_rules_guard_the_name_and_the_immutable_fields() {
    let schema = schema();
    let rules = |v: &Value| -> Vec<String> {
        v["x-kubernetes-validations"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| r["rule"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(
        rules(&schema)
            .iter()
            .any(|r| r.contains("size(self.metadata.name) <= 40"))
    );
    let spec = &schema["properties"]["spec"]["properties"];
    assert_eq!(rules(&spec["clusterGroupID"]), vec!["self == oldSelf"]);
    assert!(
        rules(&spec["controlPlane"])
            .iter()
            .any(|r| r.contains("oldSelf.__namespace__"))
    );
    assert!(
        rules(&spec["chart"])
            .iter()
            .any(|r| r.contains("oldSelf.releaseName"))
    );
}

#[test]
fn cel_rules_refuse_selector_and_annotation_injection() {
    let schema = schema();
    let spec = &schema["properties"]["spec"]["properties"];
    let node_selector = &spec["controlPlane"]["properties"]["nodeSelector"];
    let annotations = &spec["network"]["properties"]["annotations"];
    let secret_ref = &spec["chart"]["properties"]["credentialsSecretRef"];
    // Bounds that keep the API server's estimate of the rules' cost under its limit.
    assert_eq!(node_selector["maxProperties"], 64);
    assert_eq!(annotations["maxProperties"], 64);
    assert_eq!(node_selector["additionalProperties"]["maxLength"], 63);
    assert_eq!(secret_ref["properties"]["name"]["maxLength"], 253);
    let rule_with_message = |v: &Value, rule_part: &str, message_part: &str| {
        let found = v["x-kubernetes-validations"]
            .as_array()
            .is_some_and(|rules| {
                rules.iter().any(|r| {
                    r["rule"].as_str().unwrap_or_default().contains(rule_part)
                        && r["message"]
                            .as_str()
                            .unwrap_or_default()
                            .contains(message_part)
                })
            });
        assert!(
            found,
            "no rule with {rule_part:?} and {message_part:?} in {v}"
        );
    };
    rule_with_message(
        node_selector,
        "self.all(k, k.matches(",
        "controlPlane.nodeSelector keys must be label keys",
    );
    rule_with_message(
        node_selector,
        "self.all(k, self[k].matches(",
        "controlPlane.nodeSelector values must be label values",
    );
    rule_with_message(
        annotations,
        "self.all(k, k.matches(",
        "network.annotations keys must be annotation keys",
    );
    rule_with_message(
        secret_ref,
        "self.name.matches(",
        "chart.credentialsSecretRef.name must be a DNS subdomain",
    );
}

#[test]
fn examples_are_valid_enablements() {
    for entry in
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples")).expect("examples")
    {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let fe: FederationEnablement =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = fe.metadata.name.as_deref().expect("name");
        assert!(name.len() <= 40, "{}", path.display());
        assert!(
            fe.spec
                .cluster_group_id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{}",
            path.display()
        );
    }
}
