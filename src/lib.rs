//! federation-controller: enables multi-cluster federation for a fleet and reports its progress.

pub mod api;
pub mod chart_source;
pub mod clock;
pub mod controller;
pub mod crd;
pub mod health;
pub mod http;
pub mod job;
pub mod leader;
pub mod metrics;
pub mod policy;
pub mod subjobs;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
