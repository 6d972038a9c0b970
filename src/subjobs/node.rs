//! CreateNode: reserves `controlPlane.replicas` Ready, schedulable nodes for the control plane
//! by labelling them `federation.fleet.dev/control-plane: <enablement uid>`.
//!
//! ReleaseNode (teardown) removes those labels and the control-plane namespace when this
//! enablement created it and no other enablement has its control plane there.

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::control_plane_namespace::shared_with_another;
use super::deletion::delete_one;
use super::{Context, Error, Result, SubJobExecutor, names};
use crate::api::{CONTROL_PLANE_NODE_LABEL, SubJobType};
use crate::job::{Mode, Observation, reasons};

pub struct NodeExecutor {
    client: Client,
}

impl NodeExecutor {
    pub fn new(client: Client) -> Self {
        NodeExecutor { client }
    }

    async fn list(&self, selector: &str) -> Result<Vec<Node>> {
        list_nodes(&self.client, selector).await
    }

    async fn reserve(&self, ctx: &Context<'_>) -> Result<Observation> {
        let wanted = usize::try_from(ctx.spec.control_plane.replicas).unwrap_or(1);
        let ours = self.list(&ours_selector(ctx.uid)).await?;
        let matching = self.list(&node_selector(ctx)).await?;

        let mut ready_ours: Vec<&Node> = ours
            .iter()
            .filter(|n| is_usable(n) && matching.iter().any(|m| m.name_any() == n.name_any()))
            .collect();
        ready_ours.sort_by_key(|n| n.name_any());

        // More than wanted (replicas went down): release the extra ones, the unusable first.
        let keep: Vec<String> = ready_ours
            .iter()
            .take(wanted)
            .map(|n| n.name_any())
            .collect();
        if keep.len() == wanted {
            for node in ours.iter().filter(|n| !keep.contains(&n.name_any())) {
                self.release(node.name_any(), ctx.uid).await?;
            }
            return Ok(Observation::succeeded_with(format!(
                "{wanted} node(s) labelled: {}",
                keep.join(", ")
            )));
        }

        let mut free: Vec<&Node> = matching
            .iter()
            .filter(|n| is_usable(n) && !n.labels().contains_key(CONTROL_PLANE_NODE_LABEL))
            .collect();
        free.sort_by_key(|n| n.name_any());
        let mut labelled = keep;
        for node in free.into_iter().take(wanted - labelled.len()) {
            self.label(node.name_any(), ctx.uid).await?;
            labelled.push(node.name_any());
        }
        if labelled.len() == wanted {
            return Ok(Observation::succeeded_with(format!(
                "{wanted} node(s) labelled: {}",
                labelled.join(", ")
            )));
        }
        Ok(Observation::progressing(
            reasons::INSUFFICIENT_NODES,
            format!(
                "{}/{wanted} Ready, schedulable nodes match controlPlane.nodeSelector and are free",
                labelled.len()
            ),
        ))
    }

    async fn label(&self, node: String, uid: &str) -> Result<()> {
        let api: Api<Node> = Api::all(self.client.clone());
        let patch = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": node, "labels": {CONTROL_PLANE_NODE_LABEL: uid}},
        });
        // Not forced: a label another manager set meanwhile is a conflict, not ours to take.
        let params = PatchParams::apply(&names::node_field_manager(uid));
        api.patch(&node, &params, &Patch::Apply(&patch))
            .await
            .map(drop)
            .map_err(|source| Error::api::<Node>("label", "", node, source))
    }

    /// Removes the label only while it still names this enablement (a JSON patch `test`).
    async fn release(&self, node: String, uid: &str) -> Result<()> {
        let api: Api<Node> = Api::all(self.client.clone());
        let path = format!(
            "/metadata/labels/{}",
            CONTROL_PLANE_NODE_LABEL
                .replace('~', "~0")
                .replace('/', "~1")
        );
        let patch: json_patch::Patch = serde_json::from_value(json!([
            {"op": "test", "path": path, "value": uid},
            {"op": "remove", "path": path},
        ]))?;
        match api
            .patch(&node, &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
        {
            Ok(_) => Ok(()),
            // Gone, or the label no longer names us: nothing of ours is left there.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 422 => Ok(()),
            Err(source) => Err(Error::api::<Node>("unlabel", "", node, source)),
        }
    }

    async fn release_all(&self, ctx: &Context<'_>) -> Result<Observation> {
        for node in self.list(&ours_selector(ctx.uid)).await? {
            self.release(node.name_any(), ctx.uid).await?;
        }
        let mut kept = Vec::new();
        let mut deleted = Vec::new();
        // Every control-plane namespace the enablement used: those it created go, unless
        // another enablement has its control plane there.
        for namespace in ctx.namespaces().iter().filter(|ns| *ns != ctx.namespace) {
            match self.delete_namespace_if_ours(ctx, namespace).await? {
                NamespaceFate::Deleted => deleted.push(namespace.as_str()),
                NamespaceFate::Kept(other) => {
                    kept.push(format!("{namespace} kept: {other} uses it"))
                }
                NamespaceFate::NotOurs => {}
            }
        }
        if !deleted.is_empty() || !kept.is_empty() {
            let mut message = vec!["nodes released".to_string()];
            message.extend(deleted.iter().map(|ns| format!("namespace {ns} deleted")));
            message.extend(kept.into_iter().map(|k| format!("namespace {k}")));
            return Ok(Observation::succeeded_with(message.join("; ")));
        }
        Ok(Observation::succeeded_with("nodes released"))
    }
}

/// What ReleaseNode did with a control-plane namespace.
enum NamespaceFate {
    Deleted,
    /// Another enablement (named) has its control plane there.
    Kept(String),
    /// Not created by this enablement (or already going): left alone.
    NotOurs,
}

impl NodeExecutor {
    /// Deletes `namespace` if this enablement created it and no other uses it.
    async fn delete_namespace_if_ours(
        &self,
        ctx: &Context<'_>,
        namespace: &str,
    ) -> Result<NamespaceFate> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns = api
            .get_opt(namespace)
            .await
            .map_err(|source| Error::api::<Namespace>("get", "", namespace, source))?;
        let created_by_us = ns
            .as_ref()
            .is_some_and(|ns| super::control_plane_namespace::created_by(ns, ctx.uid));
        let Some(ns) = ns.filter(|ns| created_by_us && ns.metadata.deletion_timestamp.is_none())
        else {
            return Ok(NamespaceFate::NotOurs);
        };
        let enablements = Api::all(self.client.clone());
        if let Some(other) = shared_with_another(&enablements, namespace, ctx.uid).await? {
            return Ok(NamespaceFate::Kept(other));
        }
        delete_one(&api, &ns).await?;
        Ok(NamespaceFate::Deleted)
    }
}

impl SubJobExecutor for NodeExecutor {
    fn sub_job(&self) -> SubJobType {
        SubJobType::CreateNode
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>, _mode: Mode) -> BoxFuture<'a, Result<Observation>> {
        Box::pin(self.reserve(ctx))
    }

    fn teardown<'a>(
        &'a self,
        ctx: &'a Context<'a>,
        _attempt: i32,
    ) -> BoxFuture<'a, Result<Observation>> {
        Box::pin(self.release_all(ctx))
    }
}

/// The nodes a label selector matches.
pub async fn list_nodes(client: &Client, selector: &str) -> Result<Vec<Node>> {
    let api: Api<Node> = Api::all(client.clone());
    let list = api
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|source| Error::api::<Node>("list", "", selector, source))?;
    Ok(list.items)
}

/// Nodes this enablement has labelled.
pub fn ours_selector(uid: &str) -> String {
    format!("{CONTROL_PLANE_NODE_LABEL}={uid}")
}

/// `controlPlane.nodeSelector` as a label selector (empty: every node).
pub fn node_selector(ctx: &Context<'_>) -> String {
    ctx.spec
        .control_plane
        .node_selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Ready and schedulable.
pub fn is_usable(node: &Node) -> bool {
    let schedulable = !node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    schedulable && ready
}
