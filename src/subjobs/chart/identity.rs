//! The installer identity: the ServiceAccount the install and uninstall Jobs run under, bound
//! to `chart.installerClusterRole` in the control-plane namespace, and cluster-wide as well when
//! the chart is cluster-scoped.

use std::ops::ControlFlow;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Api, Client, Resource, ResourceExt};

use super::SUB_JOB;
use crate::subjobs::apply::{self, Ensured};
use crate::subjobs::{Context, Result, names};
use crate::subjobs::{api_error, deletion, ownership};

pub fn desired_service_account(ctx: &Context<'_>) -> ServiceAccount {
    ServiceAccount {
        metadata: installer_metadata(ctx),
        ..ServiceAccount::default()
    }
}

/// The ServiceAccount and its RoleBinding share one name, in the control-plane namespace.
fn installer_metadata(ctx: &Context<'_>) -> ObjectMeta {
    ownership::metadata(
        ctx,
        SUB_JOB,
        names::installer(ctx.name),
        Some(ctx.control_plane_namespace()),
    )
}

fn installer_role_ref(ctx: &Context<'_>) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".to_string(),
        kind: "ClusterRole".to_string(),
        name: ctx.installer_cluster_role().to_string(),
    }
}

fn installer_subject(ctx: &Context<'_>) -> Vec<Subject> {
    vec![Subject {
        kind: "ServiceAccount".to_string(),
        name: names::installer(ctx.name),
        namespace: Some(ctx.control_plane_namespace().to_string()),
        api_group: None,
    }]
}

pub fn desired_role_binding(ctx: &Context<'_>) -> RoleBinding {
    RoleBinding {
        metadata: installer_metadata(ctx),
        role_ref: installer_role_ref(ctx),
        subjects: Some(installer_subject(ctx)),
    }
}

pub fn desired_cluster_role_binding(ctx: &Context<'_>) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: ownership::metadata(
            ctx,
            SUB_JOB,
            names::installer_cluster_binding(ctx.control_plane_namespace(), ctx.name),
            None,
        ),
        role_ref: installer_role_ref(ctx),
        subjects: Some(installer_subject(ctx)),
    }
}

/// The ServiceAccount and its bindings. Breaks with a message when an object of one of their
/// names exists and is not ours (nothing further is written then).
pub(super) async fn ensure_identity(
    client: &Client,
    ctx: &Context<'_>,
) -> Result<ControlFlow<String>> {
    let namespace = ctx.control_plane_namespace();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    if let Ensured::Conflict(message) =
        apply::ensure(&accounts, &desired_service_account(ctx), ctx).await?
    {
        return Ok(ControlFlow::Break(message));
    }
    let bindings: Api<RoleBinding> = Api::namespaced(client.clone(), namespace);
    if let ControlFlow::Break(message) =
        ensure_binding(&bindings, &desired_role_binding(ctx), ctx).await?
    {
        return Ok(ControlFlow::Break(message));
    }
    let cluster_bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    if ctx.cluster_scoped() {
        let desired = desired_cluster_role_binding(ctx);
        if let ControlFlow::Break(message) =
            ensure_binding(&cluster_bindings, &desired, ctx).await?
        {
            return Ok(ControlFlow::Break(message));
        }
    } else {
        // The chart was cluster-scoped in an earlier run: take the cluster-wide rights back.
        let name = names::installer_cluster_binding(ctx.control_plane_namespace(), ctx.name);
        if let Some(binding) = cluster_bindings
            .get_opt(&name)
            .await
            .map_err(|e| api_error("get", &desired_cluster_role_binding(ctx), e))?
            .filter(|b| ownership::is_ours(b.meta(), ctx))
        {
            deletion::delete_one(&cluster_bindings, &binding).await?;
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// A binding's `roleRef` cannot change: one with another role is deleted and recreated.
async fn ensure_binding<K>(
    api: &Api<K>,
    desired: &K,
    ctx: &Context<'_>,
) -> Result<ControlFlow<String>>
where
    K: Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
    K::DynamicType: Default,
{
    let role_of = |k: &K| serde_json::to_value(k).ok().map(|v| v["roleRef"].clone());
    if let Some(existing) = api
        .get_opt(&desired.name_any())
        .await
        .map_err(|e| api_error("get", desired, e))?
        .filter(|e| ownership::is_ours(e.meta(), ctx) && role_of(e) != role_of(desired))
    {
        deletion::delete_one(api, &existing).await?;
    }
    Ok(match apply::ensure(api, desired, ctx).await? {
        Ensured::Conflict(message) => ControlFlow::Break(message),
        _ => ControlFlow::Continue(()),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Fixture, LONGEST, NAMESPACE, spec};
    use super::*;

    #[test]
    fn bindings_bind_the_installer_account_to_the_allowed_role() {
        let f = Fixture::new(spec());
        let binding = desired_role_binding(&f.ctx());
        assert_eq!(binding.role_ref.kind, "ClusterRole");
        assert_eq!(binding.role_ref.name, "federation-chart-installer");
        let subject = &binding.subjects.expect("subjects")[0];
        assert_eq!(subject.name, names::installer(LONGEST));
        assert_eq!(subject.namespace.as_deref(), Some(NAMESPACE));
        let cluster = desired_cluster_role_binding(&f.ctx());
        assert!(cluster.metadata.namespace.is_none());
        assert!(
            cluster.metadata.owner_references.is_none(),
            "cluster-scoped: found by label"
        );
    }
}
