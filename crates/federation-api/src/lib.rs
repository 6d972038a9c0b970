//! What federation-controller and its clients agree on: the `FederationEnablement` custom
//! resource ([`enablement`]), which fleet an enablement owns ([`fleet`]), and the JSON of the
//! HTTP API ([`wire`]), whose OpenAPI schemas are derived from these types.

pub mod enablement;
pub mod fleet;
pub mod wire;
