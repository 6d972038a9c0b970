//! The CRD as YAML, generated from the Rust types.

use kube::CustomResourceExt;

use crate::api::FederationEnablement;

/// The CRD manifest exactly as checked in under `crds/`.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&FederationEnablement::crd())
}
