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
