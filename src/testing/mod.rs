//! What the unit tests and the integration tests (`tests/`) share: an in-memory API server that
//! logs every request. Compiled for this crate's own tests only (`cfg(test)`, or the `testing`
//! feature its dev-dependency on itself enables); the controller is built without it.

pub mod fake_apiserver;

pub use fake_apiserver::{Call, FakeApiServer, object_path};
