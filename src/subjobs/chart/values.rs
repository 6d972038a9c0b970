//! The values a chart gets: `chart.values`, deep-merged under the facts the controller knows,
//! and the Secret that carries them (with the repository credentials, when there are any).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Map, Value, json};

use super::{PASSWORD_KEY, SUB_JOB, USERNAME_KEY, VALUES_KEY};
use crate::api::CONTROL_PLANE_NODE_LABEL;
use crate::subjobs::{Context, names, ownership};

/// The values the chart gets: `chart.values`, with the facts the controller knows under
/// `federation` and `sso`, deep-merged: on a key the controller sets its value wins, at any
/// depth; every other key of the user's is kept.
pub fn chart_values(ctx: &Context<'_>) -> Map<String, Value> {
    let mut values = Value::Object(ctx.spec.chart.values.clone().unwrap_or_default());
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
    deep_merge(&mut values, ours);
    match values {
        Value::Object(map) => map,
        _ => Map::new(),
    }
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

/// The Secret with the values (and the repository credentials, when the chart needs them).
pub fn desired_values_secret(
    ctx: &Context<'_>,
    credentials: Option<(ByteString, ByteString)>,
) -> Secret {
    let namespace = ctx.control_plane_namespace();
    let values = Value::Object(chart_values(ctx)).to_string();
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
        let values = chart_values(&f.ctx());
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
        let values = chart_values(&f.ctx());
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
}
