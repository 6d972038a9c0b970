//! `/openapi.json` says what the routes answer: every answer of every route, from the router
//! over enablements in every state (and each error it documents), is valid against the schema
//! the document gives for that route, status and content type.
//!
//! The validator below reads the subset of OpenAPI 3.0 schemas the document uses, and reads it
//! strictly: an object may hold only the properties its schema names (unless the schema gives
//! `additionalProperties`), so a field the server writes but the document lacks fails here,
//! and a keyword the validator does not know fails too rather than passing unchecked.

mod support;

use std::sync::Arc;

use ::http::{Method, Request, StatusCode};
use axum::body::Body;
use federation_controller::api::FederationEnablement;
use federation_controller::http::{AppState, Authorizer, FederationCache, router};
use federation_controller::metrics::Metrics;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use support::{FakeApiServer, ManualClock};
use tower::ServiceExt;

const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
const PROGRESS_ROUTE: &str = "/v1/clustergroups/{clustergroupid}/federations/progress";
const LIST_ROUTE: &str = "/api/v1/sso/federations";
const DASHBOARD_ROUTE: &str = "/dashboard/v1/federations";

fn step(type_: &str, phase: &str, extra: Value) -> Value {
    let mut step = json!({
        "type": type_, "uid": format!("uid-{type_}"), "phase": phase, "attempts": 1,
        "creationTime": "2023-07-31T13:16:20.715779Z", "updateTime": "2023-07-31T13:17:24.497868Z",
        "startTime": "2023-07-31T13:16:21Z",
    });
    if let (Some(step), Some(extra)) = (step.as_object_mut(), extra.as_object()) {
        step.extend(extra.clone());
    }
    step
}

fn enablement(fleet: &str, status: Value) -> Value {
    json!({
        "apiVersion": "federation.fleet.dev/v1alpha1",
        "kind": "FederationEnablement",
        "metadata": {"name": fleet, "namespace": "team-a", "uid": format!("uid-{fleet}"),
            "creationTimestamp": "2023-07-31T13:16:20Z"},
        "spec": {"clusterGroupID": fleet,
            "chart": {"repository": "oci://r.example/c", "name": "c", "version": "1"},
            "platform": {"name": format!("Fleet {fleet}"), "productType": "cce"},
            "sso": {"configUuid": "cfg-1", "configName": "corp", "clientUuid": "client-1",
                "callbackUrl": "https://cb.example"}},
        "status": status,
    })
}

fn subjobs(last: &str, last_extra: Value) -> Value {
    json!([
        step(
            "CreateNode",
            "Success",
            json!({"completionTime": "2023-07-31T13:16:22.1Z", "reason": "Succeeded"})
        ),
        step(
            "CreateNetworkResource",
            "Success",
            json!({"completionTime": "2023-07-31T13:16:30Z",
            "reason": "Succeeded", "extendParam": {"JobExtendParamKeyElbID": "elb-1",
                "JobExtendParamKeyEndpoint": "203.0.113.10:5443"}})
        ),
        step(
            "CreateCert",
            "Success",
            json!({"completionTime": "2023-07-31T13:16:40Z", "reason": "Succeeded"})
        ),
        step("InstallFederationChart", last, last_extra),
    ])
}

fn job_status(phase: &str, extra: Value) -> Value {
    let mut status = json!({
        "phase": phase, "reason": phase, "jobUID": "job-1", "observedGeneration": 1,
        "creationTime": "2023-07-31T13:16:20.715779Z", "updateTime": "2023-07-31T13:17:24.497868Z",
        "startTime": "2023-07-31T13:16:21Z", "progress": "3/4",
    });
    if let (Some(status), Some(extra)) = (status.as_object_mut(), extra.as_object()) {
        status.extend(extra.clone());
    }
    status
}

/// One enablement in each state the routes distinguish.
fn enablements() -> Vec<Value> {
    let running = job_status(
        "Running",
        json!({"subJobs": subjobs("Running", json!({})), "currentSubJobs": "InstallFederationChart"}),
    );
    let succeeded = job_status(
        "Success",
        json!({"completionTime": "2023-07-31T13:17:24Z",
            "subJobs": subjobs("Success", json!({"completionTime": "2023-07-31T13:17:24Z"}))}),
    );
    let failed = job_status(
        "Failed",
        json!({"completionTime": "2023-07-31T13:17:24Z", "message": "InstallFederationChart failed",
            "subJobs": subjobs("Failed", json!({"completionTime": "2023-07-31T13:17:24Z",
                "reason": "InstallFailed", "message": "helm: timed out"})),
            "conditions": [{"type": "Degraded", "status": "True", "reason": "InstallFailed",
                "message": "x", "lastTransitionTime": "2023-07-31T13:17:24Z"}]}),
    );
    let deleting = job_status(
        "Deleting",
        json!({"subJobs": subjobs("Success", json!({})),
        "teardown": {"jobUID": "teardown-1", "phase": "Running", "reason": "Uninstalling",
            "creationTime": "2023-08-01T10:00:00Z", "updateTime": "2023-08-01T10:00:05.5Z",
            "startTime": "2023-08-01T10:00:00Z",
            "steps": [
                {"type": "UninstallFederationChart", "uid": "t-1", "phase": "Success", "attempts": 1,
                    "startTime": "2023-08-01T10:00:00Z", "completionTime": "2023-08-01T10:00:05Z"},
                {"type": "DeleteNetworkResource", "uid": "t-2", "phase": "Running", "attempts": 1},
                {"type": "DeleteCert", "uid": "t-3", "phase": "Pending", "attempts": 0},
                {"type": "ReleaseNode", "uid": "t-4", "phase": "Pending", "attempts": 0},
            ]}}),
    );
    vec![
        enablement("fleet-new", Value::Null),
        enablement("fleet-running", running),
        enablement("fleet-succeeded", succeeded),
        enablement("fleet-failed", failed),
        enablement("fleet-deleting", deleting),
    ]
}

struct Api {
    app: axum::Router,
}

impl Api {
    fn new(auth: Authorizer) -> Self {
        let objects: Vec<FederationEnablement> = enablements()
            .into_iter()
            .map(|v| serde_json::from_value(v).expect("enablement"))
            .collect();
        let state = Arc::new(AppState {
            cache: FederationCache::from_objects(objects),
            auth,
            metrics: Arc::new(Metrics::new()),
            clock: Arc::new(ManualClock::new()),
            health: Default::default(),
        });
        Api { app: router(state) }
    }

    /// Status, content type and JSON body of `GET uri`.
    async fn get(&self, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, String, Value) {
        let mut request = Request::get(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .app
            .clone()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let json = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!("{uri}: not JSON ({e}): {}", String::from_utf8_lossy(&body))
        });
        (status, content_type, json)
    }
}

async fn document() -> Value {
    let (status, _, document) = Api::new(Authorizer::None).get("/openapi.json", &[]).await;
    assert_eq!(status, StatusCode::OK);
    document
}

/// The schema the document gives for `route`'s answer with `status` as `content_type`.
fn response_schema<'a>(
    document: &'a Value,
    route: &str,
    status: StatusCode,
    content_type: &str,
) -> &'a Value {
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    let schema = &document["paths"][route]["get"]["responses"][status.as_str()]["content"]
        [media_type]["schema"];
    assert!(
        schema.is_object(),
        "the document has no {media_type} schema for {route} answering {status}"
    );
    schema
}

/// Checks `value` against `schema`, resolving `$ref`s in `document`; `at` is where in the
/// answer, for the message.
fn check(document: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = schema
        .as_object()
        .ok_or_else(|| format!("{at}: the schema is not an object: {schema}"))?;
    if let Some(reference) = schema.get("$ref") {
        let name = reference
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .ok_or_else(|| format!("{at}: a $ref outside the components: {reference}"))?;
        let target = &document["components"]["schemas"][name];
        if target.is_null() {
            return Err(format!("{at}: $ref to a missing schema {name}"));
        }
        return check(document, target, value, at);
    }
    for keyword in schema.keys() {
        let known = [
            "type",
            "enum",
            "properties",
            "required",
            "additionalProperties",
            "items",
            "minimum",
            "format",
            "description",
            "example",
        ];
        if !known.contains(&keyword.as_str()) {
            return Err(format!(
                "{at}: the validator does not know the keyword {keyword:?}"
            ));
        }
    }
    if let Some(type_) = schema.get("type") {
        let fits = match type_.as_str() {
            Some("object") => value.is_object(),
            Some("array") => value.is_array(),
            Some("string") => value.is_string(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            _ => return Err(format!("{at}: unknown type {type_}")),
        };
        if !fits {
            return Err(format!("{at}: {value} is not of type {type_}"));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is none of {allowed:?}"));
    }
    if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64)
        && value.as_f64().is_some_and(|v| v < minimum)
    {
        return Err(format!("{at}: {value} is below {minimum}"));
    }
    if schema.get("format").and_then(Value::as_str) == Some("date-time") {
        let text = value.as_str().unwrap_or_default();
        text.parse::<jiff::Timestamp>()
            .map_err(|e| format!("{at}: {text:?} is not a date-time: {e}"))?;
    }
    if let Some(items) = schema.get("items") {
        for (i, item) in value.as_array().into_iter().flatten().enumerate() {
            check(document, items, item, &format!("{at}[{i}]"))?;
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !object.contains_key(name) {
                return Err(format!("{at}: the required {name:?} is missing"));
            }
        }
        for (name, field) in object {
            let at = format!("{at}.{name}");
            match (
                properties.and_then(|p| p.get(name)),
                schema.get("additionalProperties"),
            ) {
                (Some(property), _) => check(document, property, field, &at)?,
                (None, Some(Value::Bool(true))) => {}
                (None, Some(additional @ Value::Object(_))) => {
                    check(document, additional, field, &at)?
                }
                (None, _) => return Err(format!("{at}: not in the document")),
            }
        }
    }
    Ok(())
}

async fn answer_matches_the_document(
    document: &Value,
    api: &Api,
    route: &str,
    uri: &str,
    headers: &[(&str, &str)],
    expected: StatusCode,
) {
    let (status, content_type, body) = api.get(uri, headers).await;
    assert_eq!(status, expected, "{uri}: {body}");
    let schema = response_schema(document, route, status, &content_type);
    if let Err(mismatch) = check(document, schema, &body, "$") {
        panic!("GET {uri} ({status}) does not match /openapi.json: {mismatch}\n{body:#}");
    }
}

#[tokio::test]
async fn every_progress_answer_matches_the_document() {
    let document = document().await;
    let api = Api::new(Authorizer::None);
    for fleet in [
        "fleet-new",
        "fleet-running",
        "fleet-succeeded",
        "fleet-failed",
        "fleet-deleting",
    ] {
        let uri = format!("/v1/clustergroups/{fleet}/federations/progress");
        answer_matches_the_document(&document, &api, PROGRESS_ROUTE, &uri, &[], StatusCode::OK)
            .await;
    }
    for (uri, status) in [
        (
            "/v1/clustergroups/Not_A_Fleet/federations/progress",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/clustergroups/fleet-nobody/federations/progress",
            StatusCode::NOT_FOUND,
        ),
    ] {
        answer_matches_the_document(&document, &api, PROGRESS_ROUTE, uri, &[], status).await;
    }
}

#[tokio::test]
async fn every_list_answer_matches_the_document() {
    let document = document().await;
    let api = Api::new(Authorizer::None);
    for uri in [
        LIST_ROUTE,
        "/api/v1/sso/federations?limit=2&offset=1&tenantUuid=t",
        "/api/v1/sso/federations?offset=99",
    ] {
        answer_matches_the_document(&document, &api, LIST_ROUTE, uri, &[], StatusCode::OK).await;
    }
    answer_matches_the_document(
        &document,
        &api,
        LIST_ROUTE,
        "/api/v1/sso/federations?limit=-1",
        &[],
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn every_dashboard_answer_matches_the_document() {
    let document = document().await;
    let api = Api::new(Authorizer::None);
    answer_matches_the_document(
        &document,
        &api,
        DASHBOARD_ROUTE,
        DASHBOARD_ROUTE,
        &[],
        StatusCode::OK,
    )
    .await;
    answer_matches_the_document(
        &document,
        &api,
        DASHBOARD_ROUTE,
        "/dashboard/v1/federations?watch=maybe",
        &[],
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn refusals_and_failures_match_the_document_on_every_route() {
    let document = document().await;
    let reviews = FakeApiServer::new();
    reviews.fail(Method::POST, TOKEN_REVIEWS, 503);
    let api = Api::new(Authorizer::kubernetes(reviews.client()));
    for (route, uri) in [
        (
            PROGRESS_ROUTE,
            "/v1/clustergroups/fleet-running/federations/progress",
        ),
        (LIST_ROUTE, LIST_ROUTE),
        (DASHBOARD_ROUTE, DASHBOARD_ROUTE),
    ] {
        answer_matches_the_document(&document, &api, route, uri, &[], StatusCode::UNAUTHORIZED)
            .await;
        answer_matches_the_document(
            &document,
            &api,
            route,
            uri,
            &[("x-auth-token", "good")],
            StatusCode::INTERNAL_SERVER_ERROR,
        )
        .await;
    }
}

#[test]
fn the_validator_refuses_what_the_document_does_not_say() {
    let document = json!({"components": {"schemas": {"Thing": {
        "type": "object", "required": ["name"],
        "properties": {"name": {"type": "string"}, "phase": {"type": "string", "enum": ["Running"]},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}}},
    }}}});
    let thing = json!({"$ref": "#/components/schemas/Thing"});
    let fine = json!({"name": "a", "phase": "Running", "labels": {"k": "v"}});
    assert_eq!(check(&document, &thing, &fine, "$"), Ok(()));
    for (wrong, why) in [
        (
            json!({"phase": "Running"}),
            "the required \"name\" is missing",
        ),
        (
            json!({"name": "a", "extra": 1}),
            "$.extra: not in the document",
        ),
        (json!({"name": "a", "phase": "Done"}), "is none of"),
        (json!({"name": 1}), "is not of type"),
        (json!({"name": "a", "labels": {"k": 1}}), "$.labels.k"),
    ] {
        let error = check(&document, &thing, &wrong, "$").expect_err(why);
        assert!(error.contains(why), "{error} (expected {why})");
    }
    let unknown = json!({"type": "string", "pattern": "^a$"});
    let error = check(&document, &unknown, &json!("a"), "$").expect_err("unknown keyword");
    assert!(error.contains("\"pattern\""), "{error}");
}
