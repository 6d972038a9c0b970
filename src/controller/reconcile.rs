//! The two kinds of reconcile: run the job, or tear it down once the enablement is deleted.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::drive::{JobMachine, TeardownMachine, Written, drive, ensure_namespace};
use super::status::{remove_finalizer, write_status};
use super::{Context, Error};
use crate::api::{FINALIZER, FederationEnablement};
use crate::job;
use crate::policy;

/// Who may have the fleet: with `--fleet-entitlement=namespace-annotation` only an enablement
/// whose namespace lists it, and among those (or among all, without it) the oldest.
async fn check_fleet(
    fe: &FederationEnablement,
    ctx: &Context,
) -> Result<Option<job::Blocked>, Error> {
    let fleet = &fe.spec.cluster_group_id;
    let members = ctx.cache.fleet_members(fleet);
    if ctx.policy.fleet_entitlement == policy::FleetEntitlement::None {
        return Ok(policy::check_duplicate(
            fe,
            members.iter().map(AsRef::as_ref),
        ));
    }
    // The namespaces of every enablement naming this fleet (a handful), read once each.
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let mut lists: BTreeMap<String, bool> = BTreeMap::new();
    let candidates = members.iter().map(AsRef::as_ref).chain(std::iter::once(fe));
    for candidate in candidates {
        let name = candidate.namespace().unwrap_or_default();
        if lists.contains_key(&name) {
            continue;
        }
        let namespace = namespaces.get_opt(&name).await.map_err(|e| {
            let enablement = format!("{}/{}", fe.namespace().unwrap_or_default(), fe.name_any());
            Error::Namespace(
                enablement,
                crate::subjobs::Error::api::<Namespace>("get", "", &name, e),
            )
        })?;
        let annotations = namespace.as_ref().map(|ns| ns.annotations());
        lists.insert(name, policy::namespace_lists_fleet(fleet, annotations));
    }
    let entitled = |other: &FederationEnablement| {
        lists
            .get(&other.namespace().unwrap_or_default())
            .copied()
            .unwrap_or(false)
    };
    if !entitled(fe) {
        return Ok(policy::check_entitlement(fe, None));
    }
    // An older enablement that may not claim the fleet does not own it.
    Ok(policy::check_duplicate(
        fe,
        members
            .iter()
            .map(AsRef::as_ref)
            .filter(|other| entitled(other)),
    ))
}

/// Where and with what the live spec installs.
fn install_of_spec(fe: &FederationEnablement, ctx: &Context) -> job::InstallFacts {
    let own = fe.namespace().unwrap_or_default();
    job::InstallFacts::of_spec(
        &fe.spec,
        &fe.name_any(),
        &own,
        &ctx.settings.default_runner_image,
    )
}

pub(super) async fn run_job(
    fe: &FederationEnablement,
    api: &Api<FederationEnablement>,
    ctx: &Context,
) -> Result<Action, Error> {
    let current = fe.status.clone().unwrap_or_default();
    let blocked = match ctx.policy.check(fe) {
        Some(blocked) => Some(blocked),
        None => check_fleet(fe, ctx).await?,
    };
    let namespace = fe.namespace().unwrap_or_default();
    let install = install_of_spec(fe, ctx);
    let needs_namespace = ctx.executors.kubernetes && install.control_plane_namespace != namespace;
    let machine = JobMachine {
        fe,
        api,
        ctx,
        written: std::sync::Mutex::new(Written {
            resource_version: fe.resource_version(),
            status: fe.status.clone(),
        }),
        blocked,
        install,
        namespace: std::sync::Mutex::new(if needs_namespace {
            job::NamespaceState::Unchecked
        } else {
            job::NamespaceState::Ready
        }),
    };
    let driven = drive(&machine, &current).await?;
    let written = machine.written();
    write_status(
        fe,
        api,
        ctx,
        written.resource_version,
        written.status.as_ref(),
        &driven.status,
        &driven.transitions,
    )
    .await?;
    Ok(driven
        .requeue_after
        .map_or_else(Action::await_change, Action::requeue))
}

pub(super) async fn teardown(
    fe: &FederationEnablement,
    api: &Api<FederationEnablement>,
    ctx: &Context,
) -> Result<Action, Error> {
    if !fe.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let current = fe.status.clone().unwrap_or_default();
    let refused = ctx.policy.check(fe).is_some();
    let own = fe.namespace().unwrap_or_default();
    let live = install_of_spec(fe, ctx);
    // What was installed, not what the spec (still editable) says now; within today's limits.
    let installed = ctx.policy.checked_install(
        fe,
        job::InstallFacts::recorded_or(current.created.as_ref(), live.clone()),
        &live,
    );
    // Whether the release's namespace (the enablement's own or a foreign one) is missing or
    // being deleted: then nothing can run in it, and no step may wait for it. Only a teardown
    // that will run needs to know; a refused enablement may not even be allowed to look.
    let namespace_state =
        if ctx.executors.kubernetes && !job::nothing_to_tear_down(refused, &current) {
            Some(ensure_namespace(ctx, fe, &installed.release_namespace, false).await?)
        } else {
            None
        };
    let control_plane_namespace_gone = match namespace_state {
        Some(job::NamespaceState::Terminating) => true,
        // The enablement's own namespace cannot be missing while the enablement exists (a
        // server without namespaces, such as the test server, shows none).
        Some(job::NamespaceState::Unchecked) => installed.release_namespace != own,
        // Not labelled for control planes: still there, so the teardown runs in it.
        Some(
            job::NamespaceState::Ready
            | job::NamespaceState::Unlabelled
            | job::NamespaceState::NotCreatedHere,
        )
        | None => false,
    };
    // A Karmada namespace this enablement did not create may be a tenant's.
    let installed = if namespace_state == Some(job::NamespaceState::NotCreatedHere) {
        ctx.policy.without_cluster_admin(installed)
    } else {
        installed
    };
    let machine = TeardownMachine {
        fe,
        ctx,
        refused,
        control_plane_namespace_gone,
        installed,
    };
    let driven = drive(&machine, &current).await?;
    write_status(
        fe,
        api,
        ctx,
        fe.resource_version(),
        fe.status.as_ref(),
        &driven.status,
        &driven.transitions,
    )
    .await?;
    if driven.finished {
        remove_finalizer(fe, api).await?;
        ctx.forget(fe);
        return Ok(Action::await_change());
    }
    Ok(driven
        .requeue_after
        .map_or_else(Action::await_change, Action::requeue))
}
