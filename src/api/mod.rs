//! The `FederationEnablement` custom resource, from the `federation-api` crate that the
//! controller shares with its clients.
//!
//! The CRD under `crds/` is generated from these types (`federation-controller crd`).

pub use federation_api::enablement::*;
