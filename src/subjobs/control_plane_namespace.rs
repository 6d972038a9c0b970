//! The control-plane namespace: created on demand (marked with the enablement that created it,
//! so that teardown knows it may delete it, and labelled as open to control planes), and its
//! state read before anything goes into it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};

use super::{Error, Result};
use crate::api::{
    CONTROL_PLANE_NAMESPACE_LABEL, CREATED_BY_ANNOTATION, FederationEnablement, MANAGED_BY_LABEL,
    MANAGER,
};

/// State of the control-plane namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamespaceState {
    Ready,
    Missing,
    Terminating,
    /// It exists without `federation.fleet.dev/control-plane-namespace: "true"`: not open to
    /// a foreign control plane.
    Unlabelled,
    /// It exists, and the enablement that needs a namespace of its own (Karmada) did not create
    /// it.
    NotCreatedHere,
}

/// Who may use the control-plane namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamespaceUse {
    /// Any namespace labelled for control planes (the Generic profile).
    Labelled,
    /// Only one this enablement created (the Karmada profile).
    OwnOnly,
}

/// Whether the enablement of uid `uid` created `namespace` (its created-by annotation).
pub(crate) fn created_by(namespace: &Namespace, uid: &str) -> bool {
    namespace
        .annotations()
        .get(CREATED_BY_ANNOTATION)
        .is_some_and(|creator| creator == uid)
}

/// The state of a namespace that exists, for the enablement of uid `uid`.
fn state_of(namespace: &Namespace, uid: &str, usage: NamespaceUse) -> NamespaceState {
    let created_here = created_by(namespace, uid);
    let labelled = namespace
        .metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(CONTROL_PLANE_NAMESPACE_LABEL))
        .is_some_and(|value| value == "true");
    if namespace.metadata.deletion_timestamp.is_some() {
        NamespaceState::Terminating
    } else if usage == NamespaceUse::OwnOnly {
        if created_here {
            NamespaceState::Ready
        } else {
            NamespaceState::NotCreatedHere
        }
    } else if labelled {
        NamespaceState::Ready
    } else {
        NamespaceState::Unlabelled
    }
}

/// Reads the namespace; creates it when `create` and it is missing, annotated with the
/// enablement's uid so that teardown knows it may delete it. For [`NamespaceUse::Labelled`] it is
/// also labelled as open to control planes; a namespace of its own ([`NamespaceUse::OwnOnly`],
/// Karmada's, where the chart's all-powerful hook account lives) is not, so no other
/// enablement's installer can ever run pods there.
pub async fn ensure_control_plane_namespace(
    api: &Api<Namespace>,
    name: &str,
    enablement_uid: &str,
    usage: NamespaceUse,
    create: bool,
) -> Result<NamespaceState> {
    let to_error = |action, source| Error::api::<Namespace>(action, "", name, source);
    match api.get_opt(name).await.map_err(|e| to_error("get", e))? {
        Some(ns) => Ok(state_of(&ns, enablement_uid, usage)),
        None if !create => Ok(NamespaceState::Missing),
        None => {
            let mut labels = BTreeMap::from([(MANAGED_BY_LABEL.to_string(), MANAGER.to_string())]);
            if usage == NamespaceUse::Labelled {
                labels.insert(
                    CONTROL_PLANE_NAMESPACE_LABEL.to_string(),
                    "true".to_string(),
                );
            }
            let namespace = Namespace {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    labels: Some(labels),
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
                // Created by someone else meanwhile: not ours; it must be labelled to be used.
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    match api.get_opt(name).await.map_err(|e| to_error("get", e))? {
                        Some(ns) => Ok(state_of(&ns, enablement_uid, usage)),
                        None => Ok(NamespaceState::Missing),
                    }
                }
                Err(e) => Err(to_error("create", e)),
            }
        }
    }
}

/// Another enablement (`namespace/name`) whose control plane is in `namespace`, besides the one
/// of uid `uid`: while there is one, the namespace stays. Being deleted counts: its teardown may
/// still run in there.
pub fn shared_with<'a>(
    namespace: &str,
    uid: &str,
    enablements: impl IntoIterator<Item = &'a FederationEnablement>,
) -> Option<String> {
    enablements.into_iter().find_map(|fe| {
        let own = fe.namespace().unwrap_or_default();
        (fe.uid().as_deref() != Some(uid) && fe.spec.control_plane_namespace(&own) == namespace)
            .then(|| format!("{own}/{}", fe.name_any()))
    })
}

/// [`shared_with`] over every enablement of the cluster, listed afresh (a cache could miss one
/// created a moment ago).
pub async fn shared_with_another(
    api: &Api<FederationEnablement>,
    namespace: &str,
    uid: &str,
) -> Result<Option<String>> {
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|source| Error::api::<FederationEnablement>("list", "", "", source))?;
    Ok(shared_with(namespace, uid, &list.items))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enablement(
        namespace: &str,
        name: &str,
        control_plane: Option<&str>,
    ) -> FederationEnablement {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "federation.fleet.dev/v1alpha1",
            "kind": "FederationEnablement",
            "metadata": {"name": name, "namespace": namespace, "uid": format!("{namespace}-{name}")},
            "spec": {
                "clusterGroupID": name,
                "chart": {"repository": "oci://r.example/c", "name": "c", "version": "1.0.0"},
                "controlPlane": {"namespace": control_plane},
            },
        }))
        .expect("enablement")
    }

    #[test]
    fn a_namespace_is_shared_while_another_enablement_has_its_control_plane_there() {
        let ours = enablement("team-a", "a", Some("fed"));
        let other = enablement("team-b", "b", Some("fed"));
        let elsewhere = enablement("team-c", "c", Some("other"));
        let local = enablement("fed", "d", None);
        assert_eq!(shared_with("fed", "team-a-a", [&ours, &elsewhere]), None);
        assert_eq!(
            shared_with("fed", "team-a-a", [&ours, &other]).as_deref(),
            Some("team-b/b")
        );
        assert_eq!(
            shared_with("fed", "team-a-a", [&ours, &local]).as_deref(),
            Some("fed/d"),
            "an enablement living there uses it too"
        );
    }
}
