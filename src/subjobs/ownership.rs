//! Ownership: the labels and metadata of everything an enablement creates, the selectors that
//! find it again, and the test of whether an existing object is ours to adopt.
//!
//! An object is ours by the enablement's uid (label [`ENABLEMENT_UID_LABEL`]), not by its name:
//! anyone who may create objects in a namespace can write the name labels, before the enablement
//! even exists, but its uid is not known until then. Objects an earlier version made carry the
//! name labels only ([`Claim::Unmigrated`]); they are ours only with proof (see [`is_ours`]), and
//! the next apply adds the uid label.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use super::Context;
use crate::api::{
    ENABLEMENT_LABEL, ENABLEMENT_NAMESPACE_LABEL, ENABLEMENT_UID_LABEL, MANAGED_BY_LABEL, MANAGER,
    SUBJOB_LABEL, SubJobType,
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
        (ENABLEMENT_UID_LABEL.to_string(), ctx.uid.to_string()),
        (SUBJOB_LABEL.to_string(), sub_job.slug().to_string()),
    ])
}

/// Selects everything whose labels name this enablement (optionally for one subjob): what it
/// created, and what anyone else labelled so. Only candidates: keep those [`is_ours`] accepts.
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

/// Whom an existing object's labels name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This enablement, by uid.
    Ours,
    /// An enablement of this name, without a uid: made by an earlier version, or by someone
    /// who wrote the name labels.
    Unmigrated,
    /// Another enablement, or none.
    NotOurs,
}

/// What `meta`'s labels claim about this enablement, before any proof ([`is_ours`] weighs it).
pub fn claim(meta: &ObjectMeta, ctx: &Context<'_>) -> Claim {
    let labels = meta.labels.as_ref();
    let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
    let named = label(ENABLEMENT_LABEL) == Some(ctx.name)
        && label(ENABLEMENT_NAMESPACE_LABEL) == Some(ctx.namespace);
    match label(ENABLEMENT_UID_LABEL) {
        _ if !named || ctx.uid.is_empty() => Claim::NotOurs,
        Some(uid) if uid == ctx.uid => Claim::Ours,
        Some(_) => Claim::NotOurs,
        None => Claim::Unmigrated,
    }
}

/// The object is ours to adopt, repair or delete: its labels name this enablement's uid. An
/// unmigrated one (name labels only) is ours only with proof that this enablement made it: an
/// owner reference to its uid (control planes in the enablement's own namespace), or the
/// context's word that this subjob had succeeded, so that what the labels name was made or
/// adopted before ([`Context::unmigrated_objects_are_ours`]).
pub fn is_ours(meta: &ObjectMeta, ctx: &Context<'_>) -> bool {
    match claim(meta, ctx) {
        Claim::Ours => true,
        Claim::Unmigrated => ctx.unmigrated_objects_are_ours || owned_by(meta, ctx.uid),
        Claim::NotOurs => false,
    }
}

fn owned_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|owner| owner.uid == uid && owner.kind == "FederationEnablement")
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    use super::{Claim, claim, is_ours, labels};
    use crate::api::{ENABLEMENT_UID_LABEL, SubJobType};
    use crate::job::RunFacts;
    use crate::subjobs::{Context, Settings};
    use crate::testing::enablement;

    /// The labels of `ctx`'s objects, with `uid` in the uid label (None: without it).
    fn labelled(ctx: &Context<'_>, uid: Option<&str>) -> ObjectMeta {
        let mut labels = labels(ctx, SubJobType::CreateCert);
        labels.remove(ENABLEMENT_UID_LABEL);
        if let Some(uid) = uid {
            labels.insert(ENABLEMENT_UID_LABEL.into(), uid.into());
        }
        ObjectMeta {
            labels: Some(labels),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn an_object_is_ours_by_uid_and_an_unmigrated_one_only_with_proof() {
        let fe = enablement("team-a", "fleet-a", "uid-of-fleet-a");
        let run = RunFacts::default();
        let settings = Settings {
            default_runner_image: "runner:1".into(),
        };
        let mut ctx = Context::new(&fe, &run, &settings, jiff::Timestamp::UNIX_EPOCH);

        assert_eq!(
            claim(&labelled(&ctx, Some("uid-of-fleet-a")), &ctx),
            Claim::Ours
        );
        assert!(is_ours(&labelled(&ctx, Some("uid-of-fleet-a")), &ctx));
        assert_eq!(
            claim(&labelled(&ctx, Some("another")), &ctx),
            Claim::NotOurs
        );
        assert_eq!(claim(&labelled(&ctx, None), &ctx), Claim::Unmigrated);
        assert!(
            !is_ours(&labelled(&ctx, None), &ctx),
            "the name labels alone prove nothing"
        );

        let mut owned = labelled(&ctx, None);
        owned.owner_references = Some(vec![OwnerReference {
            kind: "FederationEnablement".into(),
            uid: "uid-of-fleet-a".into(),
            ..OwnerReference::default()
        }]);
        assert!(
            is_ours(&owned, &ctx),
            "an owner reference to our uid is proof"
        );

        ctx.unmigrated_objects_are_ours = true;
        assert!(is_ours(&labelled(&ctx, None), &ctx));
        assert!(
            !is_ours(&labelled(&ctx, Some("another")), &ctx),
            "never what another uid claims"
        );
    }
}
