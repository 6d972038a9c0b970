//! The HTTP API: federation progress and status list, health, metrics, OpenAPI.
//! `routes.rs` has the handlers, `error.rs` the JSON errors, `serve.rs` the listener.
//!
//! Every request is answered from [`FederationCache`]; none reads the API server for its data
//! (authentication and authorization reviews aside).

pub mod auth;
pub mod cache;
mod connections;
mod dashboard;
mod decisions;
mod error;
mod openapi;
mod quotas;
mod routes;
mod serve;
pub mod stream;
pub mod wire;

use std::sync::Arc;

use crate::clock::Clock;
use crate::health::WatchHealth;
use crate::metrics::Metrics;
pub use auth::{AuthConfig, AuthError, Authorizer, Identity};
pub use cache::{Cached, FederationCache};
pub use connections::{ConnectionLimits, DEFAULT_MAX_CONNECTIONS, HEADER_READ_TIMEOUT};
pub use decisions::{DECISION_TTL, DEFAULT_AUTH_CACHE_SIZE};
pub use error::{ApiError, codes};
pub use quotas::{DEFAULT_MAX_STREAMS_PER_USER, DEFAULT_TOKEN_REVIEWS_PER_SECOND};
pub use routes::{
    DEFAULT_LIMIT, MAX_LIMIT, Page, parse_page, parse_watch, router, router_with, valid_fleet_id,
};
pub use serve::{ServeConfig, TLS_RELOAD_INTERVAL, serve, serve_with_limits};

use error::{json_bytes_response, json_response};
use routes::{CallerToken, ClientAddr, listable_namespaces, visible};

/// What the handlers share.
pub struct AppState {
    pub cache: FederationCache,
    pub auth: Authorizer,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// The watches' health, for `/healthz`.
    pub health: WatchHealth,
}
