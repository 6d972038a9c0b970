//! What the Karmada chart's pre-install hooks leave behind after `helm uninstall` (helm does
//! not track hook objects): the `<release>-hook-job` ServiceAccount, ClusterRole (every verb on
//! every resource) and ClusterRoleBinding, the ConfigMaps `<release>-static-resources` and
//! `<release>-crds-*`; and etcd's PVCs, which no release owns.
//!
//! Each is deleted by name, and only when it shows it is this release's hook object: it carries
//! helm's `helm.sh/hook` annotation and, for the binding, binds the release's hook account. The
//! cluster-wide ones go even when the namespace is already gone.

use std::fmt::Debug;

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::ListParams;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::subjobs::{Context, Error, Result, deletion};

/// Helm's annotation on a hook object.
const HELM_HOOK_ANNOTATION: &str = "helm.sh/hook";

/// The name the chart gives its hook account, role and binding.
fn hook_job_name(release: &str) -> String {
    format!("{release}-hook-job")
}

fn is_hook<K: Resource>(object: &K) -> bool {
    object.annotations().contains_key(HELM_HOOK_ANNOTATION)
}

/// Deletes `name` when it exists and `ours` says it is this release's; returns whether it was
/// still there.
async fn delete_named<K>(api: &Api<K>, name: &str, ours: impl Fn(&K) -> bool) -> Result<bool>
where
    K: Resource + Clone + Debug + DeserializeOwned,
    K::DynamicType: Default,
{
    let object = api
        .get_opt(name)
        .await
        .map_err(|e| Error::api::<K>("get", "", name, e))?;
    let ours: Vec<K> = object.into_iter().filter(|o| ours(o)).collect();
    Ok(deletion::delete_all(api, &ours).await? > 0)
}

/// Deletes the hook leftovers of the release; returns how many were still there (0: done).
/// `namespace_gone`: only the cluster-wide ones are left to look for.
pub async fn delete_hook_leftovers(
    client: &Client,
    ctx: &Context<'_>,
    namespace_gone: bool,
) -> Result<usize> {
    let release = ctx.release();
    let namespace = ctx.control_plane_namespace();
    let hook = hook_job_name(release);
    let binds_our_account = |binding: &ClusterRoleBinding| {
        is_hook(binding)
            && binding.subjects.iter().flatten().any(|subject| {
                subject.kind == "ServiceAccount"
                    && subject.name == hook
                    && subject.namespace.as_deref() == Some(namespace)
            })
    };
    let mut remaining = 0;
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    remaining += usize::from(delete_named(&bindings, &hook, binds_our_account).await?);
    let roles: Api<ClusterRole> = Api::all(client.clone());
    remaining += usize::from(delete_named(&roles, &hook, is_hook).await?);
    if namespace_gone {
        return Ok(remaining);
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    remaining += usize::from(delete_named(&accounts, &hook, is_hook).await?);

    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let static_resources = format!("{release}-static-resources");
    let crds = format!("{release}-crds-");
    let listed = config_maps
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::api::<ConfigMap>("list", namespace, "", e))?;
    let hooks: Vec<ConfigMap> = listed
        .items
        .into_iter()
        .filter(|cm| {
            let name = cm.name_any();
            is_hook(cm) && (name == static_resources || name.starts_with(&crds))
        })
        .collect();
    remaining += deletion::delete_all(&config_maps, &hooks).await?;
    // The namespace holds this control plane alone (it was created for it), so every claim in
    // it is etcd's.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    remaining += deletion::delete_matching(&claims, "").await?;
    Ok(remaining)
}
