//! What every executor does with objects: label them, own them, adopt or refuse existing ones,
//! apply only what has drifted, and find them again by label for teardown.

use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Context, Error, Result};
use crate::api::{
    CREATED_BY_ANNOTATION, ENABLEMENT_LABEL, ENABLEMENT_NAMESPACE_LABEL, MANAGED_BY_LABEL, MANAGER,
    SUBJOB_LABEL, SubJobType,
};
use crate::job::{Observation, reasons};

/// Annotation with the spec hash an object was applied for: a new job run re-applies.
pub const SPEC_HASH_ANNOTATION: &str = "federation.fleet.dev/spec-hash";

/// The labels of everything this enablement creates.
pub fn labels(ctx: &Context<'_>, sub_job: SubJobType) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGER.to_string()),
        (ENABLEMENT_LABEL.to_string(), ctx.name.to_string()),
        (
            ENABLEMENT_NAMESPACE_LABEL.to_string(),
            ctx.namespace.to_string(),
        ),
        (SUBJOB_LABEL.to_string(), sub_job.slug().to_string()),
    ])
}

/// Selects everything this enablement created (optionally for one subjob).
pub fn selector(ctx: &Context<'_>, sub_job: Option<SubJobType>) -> String {
    let mut selector = format!(
        "{MANAGED_BY_LABEL}={MANAGER},{ENABLEMENT_LABEL}={},{ENABLEMENT_NAMESPACE_LABEL}={}",
        ctx.name, ctx.namespace
    );
    if let Some(sub_job) = sub_job {
        selector.push_str(&format!(",{SUBJOB_LABEL}={}", sub_job.slug()));
    }
    selector
}

/// Metadata of an object this subjob creates in `namespace` (None: cluster-scoped).
pub fn metadata(
    ctx: &Context<'_>,
    sub_job: SubJobType,
    name: String,
    namespace: Option<&str>,
) -> ObjectMeta {
    let owner: Option<OwnerReference> = (namespace == Some(ctx.namespace))
        .then(|| ctx.enablement.controller_owner_ref(&()))
        .flatten();
    ObjectMeta {
        name: Some(name),
        namespace: namespace.map(str::to_string),
        labels: Some(labels(ctx, sub_job)),
        annotations: Some(BTreeMap::from([(
            SPEC_HASH_ANNOTATION.to_string(),
            ctx.status.spec_hash.clone().unwrap_or_default(),
        )])),
        owner_references: owner.map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// The object carries labels naming this enablement: it is ours to adopt.
pub fn is_ours(meta: &ObjectMeta, ctx: &Context<'_>) -> bool {
    let labels = meta.labels.as_ref();
    let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
    label(ENABLEMENT_LABEL) == Some(ctx.name)
        && label(ENABLEMENT_NAMESPACE_LABEL) == Some(ctx.namespace)
}

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

/// Deletes every object of kind `K` this enablement's `sub_job` made (found by label).
/// Returns how many were still there.
pub async fn delete_labelled<K>(
    api: &Api<K>,
    ctx: &Context<'_>,
    sub_job: SubJobType,
) -> Result<usize>
where
    K: Resource + Clone + Debug + DeserializeOwned,
    K::DynamicType: Default,
{
    delete_matching(api, &selector(ctx, Some(sub_job))).await
}

/// Deletes every object of kind `K` that `label_selector` matches; returns how many were
/// still there.
pub async fn delete_matching<K>(api: &Api<K>, label_selector: &str) -> Result<usize>
where
    K: Resource + Clone + Debug + DeserializeOwned,
    K::DynamicType: Default,
{
    let params = ListParams::default().labels(label_selector);
    let list = api.list(&params).await.map_err(|e| Error::Api {
        action: "list",
        kind: kind_of::<K>(),
        namespace: String::new(),
        name: label_selector.to_string(),
        source: e,
    })?;
    let mut remaining = 0;
    for object in list.items {
        remaining += 1;
        if object.meta().deletion_timestamp.is_some() {
            continue;
        }
        delete_one(api, &object).await?;
    }
    Ok(remaining)
}

/// Deletes one object; an object already gone counts as deleted.
pub async fn delete_one<K>(api: &Api<K>, object: &K) -> Result<()>
where
    K: Resource + Clone + Debug + DeserializeOwned,
    K::DynamicType: Default,
{
    match api
        .delete(&object.name_any(), &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(api_error("delete", object, e)),
    }
}

pub fn api_error<K>(action: &'static str, object: &K, source: kube::Error) -> Error
where
    K: Resource,
    K::DynamicType: Default,
{
    Error::Api {
        action,
        kind: kind_of::<K>(),
        namespace: object.namespace().unwrap_or_default(),
        name: object.name_any(),
        source,
    }
}

fn kind_of<K: Resource>() -> String
where
    K::DynamicType: Default,
{
    K::kind(&K::DynamicType::default()).to_string()
}

fn qualified<K: Resource>(object: &K) -> String {
    match object.namespace() {
        Some(ns) => format!("{ns}/{}", object.name_any()),
        None => object.name_any(),
    }
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

/// Done once nothing labelled is left; otherwise wait for the deletions to finish.
pub fn deletion_observation(remaining: usize, what: &str) -> Observation {
    if remaining == 0 {
        Observation::succeeded_with(format!("no {what} of this enablement is left"))
    } else {
        Observation::progressing(
            reasons::DELETING,
            format!("waiting for {remaining} {what} object(s) to be deleted"),
        )
    }
}

/// State of the control-plane namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamespaceState {
    Ready,
    Missing,
    Terminating,
}

/// Reads the namespace; creates it when `create` and it is missing, annotated with the
/// enablement's uid so that teardown knows it may delete it.
pub async fn ensure_control_plane_namespace(
    api: &Api<Namespace>,
    name: &str,
    enablement_uid: &str,
    create: bool,
) -> Result<NamespaceState> {
    let to_error = |action, source| Error::Api {
        action,
        kind: "Namespace".to_string(),
        namespace: String::new(),
        name: name.to_string(),
        source,
    };
    match api.get_opt(name).await.map_err(|e| to_error("get", e))? {
        Some(ns) if ns.metadata.deletion_timestamp.is_some() => Ok(NamespaceState::Terminating),
        Some(_) => Ok(NamespaceState::Ready),
        None if !create => Ok(NamespaceState::Missing),
        None => {
            let namespace = Namespace {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    labels: Some(BTreeMap::from([(
                        MANAGED_BY_LABEL.to_string(),
                        MANAGER.to_string(),
                    )])),
                    annotations: Some(BTreeMap::from([(
                        CREATED_BY_ANNOTATION.to_string(),
                        enablement_uid.to_string(),
                    )])),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            };
            match api.create(&PostParams::default(), &namespace).await {
                Ok(_) => Ok(NamespaceState::Ready),
                // Created by someone else meanwhile: it is not ours, but it exists.
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(NamespaceState::Ready),
                Err(e) => Err(to_error("create", e)),
            }
        }
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
