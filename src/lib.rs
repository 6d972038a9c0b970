//! federation-controller: enables multi-cluster federation for a fleet and reports its progress.

pub mod api;
pub mod crd;
pub mod job;
