//! Create-or-adopt and apply-if-drifted: an object is read first, refused when it is not ours,
//! and applied (server-side, field manager `federation-controller`) only when a field we set
//! differs, so that running an executor twice writes nothing the second time.

use std::fmt::Debug;

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ownership::is_ours;
use super::{Context, Result, api_error};
use crate::api::MANAGER;

/// What [`ensure`] did.
#[derive(Debug)]
pub enum Ensured<K> {
    /// The object was already as desired.
    Unchanged(K),
    Created(K),
    /// The object had drifted and was applied again.
    Repaired(K),
    /// An object of that name exists and is not ours.
    Conflict(String),
}

impl<K> Ensured<K> {
    pub fn object(&self) -> Option<&K> {
        match self {
            Ensured::Unchanged(k) | Ensured::Created(k) | Ensured::Repaired(k) => Some(k),
            Ensured::Conflict(_) => None,
        }
    }
}

/// Creates or adopts `desired`: reads it first, refuses an object that is not ours, and applies
/// (server-side, field manager `federation-controller`) only when something we set differs.
pub async fn ensure<K>(api: &Api<K>, desired: &K, ctx: &Context<'_>) -> Result<Ensured<K>>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
    K::DynamicType: Default,
{
    let name = desired.name_any();
    let existing = api
        .get_opt(&name)
        .await
        .map_err(|e| api_error("get", desired, e))?;
    if let Some(existing) = &existing
        && !is_ours(existing.meta(), ctx)
    {
        return Ok(Ensured::Conflict(format!(
            "{} {} exists and is not labelled for this enablement",
            K::kind(&K::DynamicType::default()),
            qualified(existing)
        )));
    }
    let applied = apply_if_drifted(api, existing.as_ref(), desired).await?;
    Ok(match (existing, applied) {
        (Some(existing), None) => Ensured::Unchanged(existing),
        (Some(_), Some(applied)) => Ensured::Repaired(applied),
        (None, applied) => Ensured::Created(applied.unwrap_or_else(|| desired.clone())),
    })
}

/// Applies `desired` unless `existing` (already read, already known to be ours) holds every
/// field we set. Returns the applied object, or None when nothing was written.
pub async fn apply_if_drifted<K>(
    api: &Api<K>,
    existing: Option<&K>,
    desired: &K,
) -> Result<Option<K>>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
    K::DynamicType: Default,
{
    if let Some(existing) = existing
        && contains(
            &serde_json::to_value(existing)?,
            &serde_json::to_value(desired)?,
        )
    {
        return Ok(None);
    }
    api.patch(&desired.name_any(), &apply_params(), &Patch::Apply(desired))
        .await
        .map(Some)
        .map_err(|e| api_error("apply", desired, e))
}

pub fn apply_params() -> PatchParams {
    PatchParams::apply(MANAGER).force()
}

/// Every field set in `desired` has the same value in `actual` (lists: same length, item by item).
pub fn contains(actual: &Value, desired: &Value) -> bool {
    match (actual, desired) {
        (_, Value::Null) => true,
        (Value::Object(a), Value::Object(d)) => d
            .iter()
            .all(|(k, dv)| dv.is_null() || a.get(k).is_some_and(|av| contains(av, dv))),
        (Value::Array(a), Value::Array(d)) => {
            a.len() == d.len() && a.iter().zip(d).all(|(av, dv)| contains(av, dv))
        }
        (a, d) => a == d,
    }
}

fn qualified<K: Resource>(object: &K) -> String {
    match object.namespace() {
        Some(ns) => format!("{ns}/{}", object.name_any()),
        None => object.name_any(),
    }
}

#[cfg(test)]
mod tests {
    use super::contains;
    use serde_json::json;

    #[test]
    fn contains_ignores_fields_the_server_added() {
        let actual = json!({"spec": {"type": "NodePort", "ports": [{"port": 5443, "nodePort": 31000}], "clusterIP": "10.0.0.1"}});
        let desired = json!({"spec": {"type": "NodePort", "ports": [{"port": 5443}]}});
        assert!(contains(&actual, &desired));
    }

    #[test]
    fn contains_sees_changed_removed_and_extra_list_items() {
        let actual = json!({"metadata": {"labels": {"a": "1"}}, "ports": [{"port": 1}]});
        assert!(!contains(
            &actual,
            &json!({"metadata": {"labels": {"a": "2"}}})
        ));
        assert!(!contains(
            &actual,
            &json!({"metadata": {"labels": {"b": "1"}}})
        ));
        assert!(!contains(
            &actual,
            &json!({"ports": [{"port": 1}, {"port": 2}]})
        ));
    }
}
