//! Deletion: everything a subjob made is found again by label and deleted; a teardown step is
//! done once nothing labelled is left. What the labels name is kept only when it is ours by the
//! enablement's uid, or made by an earlier version and proven ours ([`ownership::is_ours`]).

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::ownership::{self, selector};
use super::{Context, Error, Result, api_error, kind};
use crate::api::SubJobType;
use crate::job::{Observation, reasons};

/// The teardown of a subjob that made objects of one kind `K` in the control-plane namespaces
/// (every one the enablement used): deletes them, and is done once none is left.
pub async fn delete_subjob_objects<K>(
    client: &Client,
    ctx: &Context<'_>,
    sub_job: SubJobType,
) -> Result<Observation>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + Debug + DeserializeOwned,
    K::DynamicType: Default,
{
    let mut remaining = 0;
    for namespace in ctx.namespaces() {
        let api: Api<K> = Api::namespaced(client.clone(), namespace);
        remaining += delete_labelled(&api, ctx, sub_job).await?;
    }
    Ok(deletion_observation(remaining, &kind::<K>()))
}

/// Deletes every object of kind `K` this enablement's `sub_job` made ([`list_ours`]).
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
    delete_labelled_where(api, ctx, sub_job, "").await
}

/// [`delete_labelled`], of those objects that also meet `requirements` ([`list_ours`]).
pub async fn delete_labelled_where<K>(
    api: &Api<K>,
    ctx: &Context<'_>,
    sub_job: SubJobType,
    requirements: &str,
) -> Result<usize>
where
    K: Resource + Clone + Debug + DeserializeOwned,
    K::DynamicType: Default,
{
    let objects = list_ours(api, ctx, sub_job, requirements).await?;
    delete_all(api, &objects).await
}

/// The objects of kind `K` this enablement's `sub_job` made that also meet `requirements` (more
/// label requirements, comma-separated, or ""): listed by the labels naming the enablement, and
/// kept when they are ours ([`ownership::is_ours`]: labelled with its uid, or made by an earlier
/// version and proven ours). One list serves both, where a selector by uid would need a second
/// one for what an earlier version made.
pub async fn list_ours<K>(
    api: &Api<K>,
    ctx: &Context<'_>,
    sub_job: SubJobType,
    requirements: &str,
) -> Result<Vec<K>>
where
    K: Resource + Clone + Debug + DeserializeOwned,
    K::DynamicType: Default,
{
    let naming = match requirements {
        "" => selector(ctx, Some(sub_job)),
        more => format!("{},{more}", selector(ctx, Some(sub_job))),
    };
    let mut candidates = list(api, &naming).await?;
    candidates.retain(|object| ownership::is_ours(object.meta(), ctx));
    Ok(candidates)
}

/// Deletes every object of kind `K` that `label_selector` matches; returns how many were
/// still there.
pub async fn delete_matching<K>(api: &Api<K>, label_selector: &str) -> Result<usize>
where
    K: Resource + Clone + Debug + DeserializeOwned,
    K::DynamicType: Default,
{
    let objects = list(api, label_selector).await?;
    delete_all(api, &objects).await
}

/// Deletes each of `objects` not being deleted already; returns how many were still there.
pub async fn delete_all<K>(api: &Api<K>, objects: &[K]) -> Result<usize>
where
    K: Resource + Clone + Debug + DeserializeOwned,
    K::DynamicType: Default,
{
    for object in objects {
        delete_unless_deleting(api, object).await?;
    }
    Ok(objects.len())
}

async fn list<K>(api: &Api<K>, label_selector: &str) -> Result<Vec<K>>
where
    K: Resource + Clone + Debug + DeserializeOwned,
    K::DynamicType: Default,
{
    let params = ListParams::default().labels(label_selector);
    api.list(&params)
        .await
        .map(|list| list.items)
        .map_err(|e| Error::api::<K>("list", "", label_selector, e))
}

/// Deletes `object` unless its deletion has begun.
async fn delete_unless_deleting<K>(api: &Api<K>, object: &K) -> Result<()>
where
    K: Resource + Clone + Debug + DeserializeOwned,
    K::DynamicType: Default,
{
    if object.meta().deletion_timestamp.is_some() {
        return Ok(());
    }
    delete_one(api, object).await
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
