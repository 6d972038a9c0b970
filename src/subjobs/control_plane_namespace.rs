//! The control-plane namespace: created on demand (marked with the enablement that created it,
//! so that teardown knows it may delete it), and its state read before anything goes into it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;

use super::{Error, Result};
use crate::api::{CREATED_BY_ANNOTATION, MANAGED_BY_LABEL, MANAGER};

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
    let to_error = |action, source| Error::api::<Namespace>(action, "", name, source);
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
