//! What tests/deploy.rs, tests/rbac.rs and tests/karmada_chart.rs share: the tools they need
//! (`helm`, and the testenv's `kubectl` for kustomize), rendering the charts and the plain
//! manifests, and reading the multi-document YAML those print.
//!
//! The tools come from `FEDERATION_HELM` and `FEDERATION_KUBECTL` (`.ci/deploy-checks.sh` sets
//! both). Without one, the tests that need it are skipped with one loud line, except under CI
//! (`CI=true`), where that is a failure.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::Value;

pub const CHART: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/helm/federation-controller"
);
pub const MANIFESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/manifests");
/// The release name and namespace the plain manifests correspond to.
pub const RELEASE: &str = "federation-controller";
pub const RELEASE_NAMESPACE: &str = "federation-system";

fn tool(variable: &'static str, cell: &'static OnceLock<Option<PathBuf>>) -> Option<&'static Path> {
    cell.get_or_init(|| {
        let Some(path) = std::env::var_os(variable).map(PathBuf::from) else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but {variable} is not set: run `bash .ci/deploy-checks.sh`, or \
                 `eval \"$(bash .ci/deploy-checks.sh env)\"` before `cargo test`"
            );
            eprintln!(
                "\n!!!!! deploy tests that need {variable} SKIPPED: it is not set. \
                 Run `bash .ci/deploy-checks.sh` (it installs helm and sets it). !!!!!\n"
            );
            return None;
        };
        assert!(
            path.is_file(),
            "{variable}={} is not a file",
            path.display()
        );
        Some(path)
    })
    .as_deref()
}

/// `helm`, from `FEDERATION_HELM`; None (after one loud line) when it is not set outside CI.
pub fn helm() -> Option<&'static Path> {
    static HELM: OnceLock<Option<PathBuf>> = OnceLock::new();
    tool("FEDERATION_HELM", &HELM)
}

/// `kubectl` (1.36, from tests/testenv), from `FEDERATION_KUBECTL`; None like [`helm`].
pub fn kubectl() -> Option<&'static Path> {
    static KUBECTL: OnceLock<Option<PathBuf>> = OnceLock::new();
    tool("FEDERATION_KUBECTL", &KUBECTL)
}

/// Runs a tool; its stdout, or its stderr when it fails.
fn run(program: &Path, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        // Nothing of the user's helm or kubectl configuration leaks into the rendering.
        .env("HELM_CONFIG_HOME", env!("CARGO_TARGET_TMPDIR"))
        .env("HELM_CACHE_HOME", env!("CARGO_TARGET_TMPDIR"))
        .env("HELM_DATA_HOME", env!("CARGO_TARGET_TMPDIR"))
        .env("KUBECONFIG", "/dev/null")
        .output()
        .unwrap_or_else(|e| panic!("{} does not run: {e}", program.display()));
    if output.status.success() {
        Ok(String::from_utf8(output.stdout).expect("UTF-8 output"))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// `helm template` of the chart as release `federation-controller` in `federation-system`,
/// with `--set` values: the objects, or helm's error; None when helm is not available.
pub fn try_helm_template(set: &[&str]) -> Option<Result<Vec<Value>, String>> {
    let mut args = vec!["--include-crds"];
    for value in set {
        args.extend(["--set", value]);
    }
    try_helm_template_chart(CHART, RELEASE, RELEASE_NAMESPACE, &args)
}

/// `helm template RELEASE CHART --namespace NAMESPACE` with more arguments (`--values`, `--set`):
/// the objects, or helm's error; None when helm is not available.
pub fn try_helm_template_chart(
    chart: &str,
    release: &str,
    namespace: &str,
    more: &[&str],
) -> Option<Result<Vec<Value>, String>> {
    let helm = helm()?;
    let mut args = vec!["template", release, chart, "--namespace", namespace];
    args.extend(more);
    Some(run(helm, &args).map(|yaml| documents(&yaml)))
}

/// [`try_helm_template`] that must succeed.
pub fn helm_template(set: &[&str]) -> Option<Vec<Value>> {
    try_helm_template(set).map(|rendered| {
        rendered.unwrap_or_else(|error| panic!("helm template {set:?} failed:\n{error}"))
    })
}

/// `kubectl kustomize deploy/manifests`; None when kubectl is not available.
pub fn kustomize() -> Option<Vec<Value>> {
    let kubectl = kubectl()?;
    let yaml = run(kubectl, &["kustomize", MANIFESTS])
        .unwrap_or_else(|error| panic!("kubectl kustomize {MANIFESTS} failed:\n{error}"));
    Some(documents(&yaml))
}

/// The non-empty documents of a multi-document YAML stream.
pub fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|document| Value::deserialize(document).expect("valid YAML"))
        .filter(|document| !document.is_null())
        .collect()
}

/// The one object of `kind` named `name`.
pub fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "exactly one {kind} {name}: {found:#?}");
    found[0]
}

/// Every object of `kind`.
pub fn all<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// The strings of a YAML list (empty when absent).
pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| item.as_str().expect("a string").to_string())
                .collect()
        })
        .unwrap_or_default()
}
