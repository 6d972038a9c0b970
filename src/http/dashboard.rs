//! The web dashboard at `/`: static assets embedded in the binary (no CDN, works offline) served
//! under a strict Content-Security-Policy, and the row stream its table is drawn from.
//!
//! The page reads only the controller's own routes: `/dashboard/v1/federations?watch=true` for
//! the table and the progress stream (`/v1/clustergroups/{id}/federations/progress?watch=true`)
//! for a job's timeline. Both are checked like the list and progress routes.

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kube::ResourceExt;
use serde::Serialize;

use super::{
    ApiError, AppState, CallerToken, ClientAddr, json_response, listable_namespaces, parse_watch,
    stream, visible,
};
use crate::api::{FederationEnablement, JobPhase, StepStatus, SubJobType, TeardownStepType};

const INDEX_HTML: &str = include_str!("dashboard/index.html");
const APP_JS: &str = include_str!("dashboard/app.js");
const APP_CSS: &str = include_str!("dashboard/app.css");

/// Scripts and styles from this origin only, no inline code, no framing, and requests to this
/// origin only: a page that cannot be made to run or send anything else.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/dashboard/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/dashboard/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route("/dashboard/v1/federations", get(rows))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers: [(HeaderName, HeaderValue); 6] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        // Assets change with the binary; `no-cache` revalidates instead of serving a stale one.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (StatusCode::OK, headers, body).into_response()
}

/// One enablement as the dashboard's table shows it.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub namespace: String,
    pub name: String,
    #[serde(rename = "clusterGroupID")]
    pub cluster_group_id: String,
    pub phase: &'static str,
    pub health: &'static str,
    /// Steps done of `total`: the four subjobs, or the teardown's steps while deleting.
    pub succeeded: usize,
    pub total: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_step: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Each step's message (the progress route carries reasons, not messages).
    pub steps: Vec<RowStep>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RowStep {
    #[serde(rename = "type")]
    pub type_: String,
    pub phase: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

fn row_steps<T: std::fmt::Display>(steps: &[StepStatus<T>]) -> Vec<RowStep> {
    steps
        .iter()
        .map(|s| RowStep {
            type_: s.type_.to_string(),
            phase: s.phase.as_str(),
            message: s.message.clone(),
        })
        .collect()
}

pub fn row(fe: &FederationEnablement) -> Row {
    let status = fe.status.clone().unwrap_or_default();
    let phase = status.phase.unwrap_or(JobPhase::Pending);
    let (steps, total) = match status
        .teardown
        .as_ref()
        .filter(|_| phase == JobPhase::Deleting)
    {
        Some(teardown) => (row_steps(&teardown.steps), TeardownStepType::ALL.len()),
        None => (row_steps(&status.sub_jobs), SubJobType::ALL.len()),
    };
    Row {
        namespace: fe.namespace().unwrap_or_default(),
        name: fe.name_any(),
        cluster_group_id: fe.spec.cluster_group_id.clone(),
        phase: phase.as_str(),
        health: super::wire::health(&status),
        succeeded: steps.iter().filter(|s| s.phase == "Success").count(),
        total,
        current_step: status.current_sub_jobs.clone(),
        reason: status.reason.clone(),
        message: status.message.clone(),
        created: fe
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| super::wire::rfc3339_seconds(t.0)),
        steps,
    }
}

#[derive(Serialize)]
struct Rows {
    items: Vec<Row>,
}

/// Every row the caller may see, or with `watch=true` a stream of `added`, `modified` and
/// `deleted` rows (as the list route's stream).
async fn rows(
    State(state): State<Arc<AppState>>,
    ClientAddr(from): ClientAddr,
    RawQuery(query): RawQuery,
    CallerToken(bearer): CallerToken,
) -> Result<Response, ApiError> {
    let watch = parse_watch(query.as_deref())?;
    let who = state.auth.authenticate(bearer.as_deref(), from).await?;
    let allowed = listable_namespaces(&state, who.as_ref()).await?;
    if watch {
        let caller = stream::Caller::admit(&state, bearer.as_deref(), who, from)?;
        return Ok(stream::list(state.clone(), caller, allowed, row));
    }
    let items = state
        .cache
        .all()
        .iter()
        .filter(|fe| visible(allowed.as_ref(), fe))
        .map(|fe| row(fe))
        .collect();
    Ok(json_response(StatusCode::OK, &Rows { items }))
}
