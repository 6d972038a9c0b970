//! The routes: federation progress and list, health, readiness, metrics, OpenAPI.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{
    ApiError, AppState, AuthError, Identity, codes, dashboard, json_bytes_response, json_response,
    openapi, stream, wire,
};

/// The routes; `/metrics` counts every request by route template and status.
pub fn router(state: Arc<AppState>) -> Router {
    router_with(state, Router::new())
}

/// The routes and `extra` beside them, every one under the same layers (a benchmark's
/// fixed-body ceiling pays what a real route pays).
pub fn router_with(state: Arc<AppState>, extra: Router<Arc<AppState>>) -> Router {
    Router::new()
        .route(
            "/v1/clustergroups/{clustergroupid}/federations/progress",
            get(progress),
        )
        .route("/api/v1/sso/federations", get(list))
        .merge(dashboard::routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(|| async { json_response(StatusCode::OK, &openapi::document()) }),
        )
        .merge(extra)
        .fallback(no_such_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

async fn record(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let started = Instant::now();
    let mut response = next.run(request).await;
    state
        .metrics
        .http_request(&route, response.status().as_u16(), started.elapsed());
    // Federation data is for the caller alone and goes stale: no cache keeps it. Routes that
    // chose their own policy (the dashboard's assets) keep it.
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The client's address, from its connection (`ConnectInfo`), never from a header; None when
/// the router is driven without a listener (in-process tests).
pub(super) struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

async fn no_such_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, codes::NO_SUCH_ROUTE, "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::NO_SUCH_ROUTE,
        "this route answers GET only",
    )
}

/// Fails while a watch has been failing for longer than `--watch-stall-seconds`: the replica is
/// stuck behind the API server and a restart is the way out.
async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let stalls = state.health.stalls();
    if stalls.is_empty() {
        return (StatusCode::OK, "ok").into_response();
    }
    let message = stalls
        .iter()
        .map(|s| {
            format!(
                "the {} watch has been failing for {} s: {}",
                s.watch,
                s.failing_for.as_secs(),
                s.last_error
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    (StatusCode::SERVICE_UNAVAILABLE, message).into_response()
}

async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    if state.cache.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the FederationEnablement cache has not synced yet",
        )
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let all = state.cache.all();
    let text = state.metrics.encode(all.iter().map(AsRef::as_ref));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

/// The caller's token ([`token`]), read without copying the other headers.
pub(super) struct CallerToken(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for CallerToken {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(CallerToken(token(&parts.headers).map(str::to_string)))
    }
}

/// The caller's token: `X-Auth-Token`, else `Authorization: Bearer`.
fn token(headers: &HeaderMap) -> Option<&str> {
    if let Some(token) = headers.get("x-auth-token").and_then(|v| v.to_str().ok()) {
        return Some(token.trim());
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// 1-64 characters of `[a-z0-9-]`, like `spec.clusterGroupID` (the rule the terminal view
/// applies too).
pub use federation_api::fleet::valid_cluster_group_id as valid_fleet_id;

/// `watch=true` asks for a live stream; absent or `false` for one answer.
pub fn parse_watch(query: Option<&str>) -> Result<bool, ApiError> {
    let mut watch = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if key != "watch" {
            continue;
        }
        if watch.is_some() {
            return Err(ApiError::invalid_query("watch is given more than once"));
        }
        watch = Some(match value.as_ref() {
            "true" => true,
            "false" => false,
            other => {
                return Err(ApiError::invalid_query(format!(
                    "watch must be true or false, not {other:?}"
                )));
            }
        });
    }
    Ok(watch.unwrap_or(false))
}

async fn progress(
    State(state): State<Arc<AppState>>,
    ClientAddr(from): ClientAddr,
    Path(fleet): Path<String>,
    RawQuery(query): RawQuery,
    CallerToken(bearer): CallerToken,
) -> Result<Response, ApiError> {
    let watch = parse_watch(query.as_deref())?;
    if !valid_fleet_id(&fleet) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_FLEET_ID,
            "clustergroupid must be 1-64 characters of lower-case letters, digits and '-'",
        ));
    }
    let who = state.auth.authenticate(bearer.as_deref(), from).await?;
    let cached = state.cache.by_fleet(&fleet);
    // A caller who may not see it learns nothing, not even that it exists; so a missing fleet
    // costs the same access review as a forbidden one, and neither answer nor timing differs.
    let (namespace, name) = match &cached {
        Some(cached) => (Some(cached.key.0.as_str()), cached.key.1.as_str()),
        None => (None, fleet.as_str()),
    };
    let allowed = state
        .auth
        .may(who.as_ref(), "get", namespace, Some(name))
        .await?;
    let Some(cached) = cached.filter(|_| allowed) else {
        return Err(ApiError::not_found(&fleet));
    };
    if watch {
        let caller = stream::Caller::admit(&state, bearer.as_deref(), who, from)?;
        return Ok(stream::progress(
            state.clone(),
            cached.object.clone(),
            caller,
        ));
    }
    Ok(json_bytes_response(
        StatusCode::OK,
        cached.progress.at(state.clock.now()),
    ))
}

/// `limit` and `offset` of the list route.
#[derive(Debug, PartialEq, Eq)]
pub struct Page {
    pub limit: usize,
    pub offset: usize,
}

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 500;

/// Parses the list route's query: absent or 0 `limit` means 20, above 500 is 500; a negative
/// or non-numeric value, or one given twice, is an error. `tenantUuid` is accepted and ignored.
pub fn parse_page(query: Option<&str>) -> Result<Page, ApiError> {
    let mut limit: Option<usize> = None;
    let mut offset: Option<usize> = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let slot = match key.as_ref() {
            "limit" => &mut limit,
            "offset" => &mut offset,
            _ => continue,
        };
        if slot.is_some() {
            return Err(ApiError::invalid_query(format!(
                "{key} is given more than once"
            )));
        }
        let parsed: i64 = value.trim().parse().map_err(|_| {
            ApiError::invalid_query(format!("{key} must be a whole number, not {value:?}"))
        })?;
        if parsed < 0 {
            return Err(ApiError::invalid_query(format!(
                "{key} must not be negative"
            )));
        }
        *slot = Some(usize::try_from(parsed).unwrap_or(usize::MAX));
    }
    let limit = match limit.unwrap_or(0) {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    };
    Ok(Page {
        limit,
        offset: offset.unwrap_or(0),
    })
}

/// None when the caller may list cluster-wide, else the namespaces they may list in.
pub(super) async fn listable_namespaces(
    state: &AppState,
    who: Option<&Arc<Identity>>,
) -> Result<Option<BTreeSet<String>>, AuthError> {
    if state.auth.may(who, "list", None, None).await? {
        return Ok(None);
    }
    let mut allowed = BTreeSet::new();
    for namespace in state.cache.namespaces() {
        if state.auth.may(who, "list", Some(&namespace), None).await? {
            allowed.insert(namespace);
        }
    }
    Ok(Some(allowed))
}

/// Whether `fe` is in a namespace of `allowed` (None: every namespace).
pub(super) fn visible(
    allowed: Option<&BTreeSet<String>>,
    fe: &crate::api::FederationEnablement,
) -> bool {
    allowed.is_none_or(|a| {
        fe.metadata
            .namespace
            .as_ref()
            .is_some_and(|ns| a.contains(ns))
    })
}

async fn list(
    State(state): State<Arc<AppState>>,
    ClientAddr(from): ClientAddr,
    RawQuery(query): RawQuery,
    CallerToken(bearer): CallerToken,
) -> Result<Response, ApiError> {
    let page = parse_page(query.as_deref())?;
    let watch = parse_watch(query.as_deref())?;
    let who = state.auth.authenticate(bearer.as_deref(), from).await?;
    let allowed = listable_namespaces(&state, who.as_ref()).await?;
    if watch {
        let caller = stream::Caller::admit(&state, bearer.as_deref(), who, from)?;
        return Ok(stream::list(
            state.clone(),
            caller,
            allowed,
            wire::federation_item,
        ));
    }
    let in_allowed_namespace =
        |fe: &crate::api::FederationEnablement| visible(allowed.as_ref(), fe);
    let filter: Option<&dyn Fn(&crate::api::FederationEnablement) -> bool> =
        allowed.as_ref().map(|_| &in_allowed_namespace as _);
    let (total, page_items) = state.cache.page(page.offset, page.limit, filter);
    Ok(json_bytes_response(
        StatusCode::OK,
        wire::list_json(
            page_items.iter().map(|cached| &cached.item),
            total,
            page.limit,
            page.offset,
        ),
    ))
}
