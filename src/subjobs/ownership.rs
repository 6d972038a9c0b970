//! Ownership: the labels and metadata of everything an enablement creates, the selectors that
//! find it again, and the test of whether an existing object is ours to adopt.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use super::Context;
use crate::api::{
    ENABLEMENT_LABEL, ENABLEMENT_NAMESPACE_LABEL, MANAGED_BY_LABEL, MANAGER, SUBJOB_LABEL,
    SubJobType,
};

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
            ctx.run.spec_hash.clone(),
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
