//! What the benchmarks share: their options and the enablements they load.

#![allow(dead_code)]

use std::str::FromStr;

use federation_controller::api::FederationEnablement;
use serde_json::json;

/// The value after `name` on the command line (`cargo bench --bench x -- --name value`).
pub fn argument<T: FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Enablement `i`: `fe-{i:05}` in `team-{i % 50}` for fleet `fleet-{i:05}`, its job a Success
/// with all four subjobs.
pub fn enablement(i: usize) -> FederationEnablement {
    let sub_job = |t: &str, phase: &str| {
        json!({"type": t, "uid": format!("{i}-{t}"), "phase": phase, "attempts": 1,
            "creationTime": "2026-01-15T08:00:00.123456Z", "updateTime": "2026-01-15T08:01:00.5Z",
            "startTime": "2026-01-15T08:00:01Z", "completionTime": "2026-01-15T08:00:30.25Z",
            "extendParam": if t == "CreateNetworkResource" { json!({"JobExtendParamKeyEndpoint": "203.0.113.10:5443"}) } else { json!({}) }})
    };
    serde_json::from_value(json!({
        "apiVersion": "federation.fleet.dev/v1alpha1",
        "kind": "FederationEnablement",
        "metadata": {"name": format!("fe-{i:05}"), "namespace": format!("team-{:02}", i % 50),
            "uid": format!("00000000-0000-4000-8000-{i:012}"), "creationTimestamp": "2026-01-15T08:00:00Z"},
        "spec": {"clusterGroupID": format!("fleet-{i:05}"),
            "chart": {"repository": "oci://r.example/c", "name": "c", "version": "1"},
            "sso": {"configUuid": "cfg", "callbackUrl": "https://cb.example"}},
        "status": {"phase": "Success", "reason": "Succeeded", "jobUID": format!("job-{i}"),
            "creationTime": "2026-01-15T08:00:00.123456Z", "updateTime": "2026-01-15T08:01:00.5Z",
            "startTime": "2026-01-15T08:00:01Z", "completionTime": "2026-01-15T08:01:00.5Z", "progress": "4/4",
            "subJobs": [sub_job("CreateNode", "Success"), sub_job("CreateNetworkResource", "Success"),
                sub_job("CreateCert", "Success"), sub_job("InstallFederationChart", "Success")]},
    }))
    .expect("enablement")
}
