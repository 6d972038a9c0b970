//! The HTTP API, driven through its router with a hand-built cache (no network): every field
//! and format clients rely on, each error, pagination, and authentication through TokenReview
//! and SubjectAccessReview answered by the in-memory API server.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ::http::{Method, Request, StatusCode};
use axum::body::Body;
use federation_controller::api::FederationEnablement;
use federation_controller::clock::Clock;
use federation_controller::http::{
    AppState, Authorizer, FederationCache, router, router_with, wire,
};
use federation_controller::metrics::Metrics;
use http_body_util::BodyExt;
use kube::ResourceExt;
use kube::runtime::watcher::Event as WatchEvent;
use proptest::prelude::*;
use serde_json::{Value, json};
use support::{FakeApiServer, ManualClock};
use tower::ServiceExt;

const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
const ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

fn sub_job(type_: &str, phase: &str, extra: Value) -> Value {
    let mut s = json!({
        "type": type_, "uid": format!("uid-{type_}"), "phase": phase, "attempts": 1,
        "creationTime": "2023-07-31T13:16:20.715779Z",
        "updateTime": "2023-07-31T13:17:24.497868Z",
        "startTime": "2023-07-31T13:16:21.000000Z",
    });
    if let (Some(s), Some(extra)) = (s.as_object_mut(), extra.as_object()) {
        s.extend(extra.clone());
    }
    s
}

fn running(name: &str, namespace: &str, fleet: &str) -> Value {
    json!({
        "apiVersion": "federation.fleet.dev/v1alpha1",
        "kind": "FederationEnablement",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("fe-{namespace}-{name}"),
            "creationTimestamp": "2023-07-31T13:16:20Z"},
        "spec": {"clusterGroupID": fleet, "chart": {"repository": "oci://r.example/c", "name": "c", "version": "1"},
            "sso": {"configUuid": "cfg-1", "configName": "corp", "clientUuid": "client-1", "callbackUrl": "https://cb.example"}},
        "status": {
            "phase": "Running", "reason": "Running", "jobUID": "job-1",
            "creationTime": "2023-07-31T13:16:20.715779Z",
            "updateTime": "2023-07-31T13:17:24.497868Z",
            "startTime": "2023-07-31T13:16:21.000000Z",
            "progress": "2/4",
            "subJobs": [
                sub_job("CreateNode", "Success", json!({"completionTime": "2023-07-31T13:16:22.100000Z", "reason": "Succeeded"})),
                sub_job("CreateNetworkResource", "Success", json!({"completionTime": "2023-07-31T13:16:30.000000Z", "reason": "Succeeded",
                    "extendParam": {"JobExtendParamKeyElbID": "69694819-67dc-44ac-ab6e-9b18087c5c4c", "JobExtendParamKeyEndpoint": "203.0.113.10:5443"}})),
                sub_job("CreateCert", "Running", json!({})),
                {"type": "InstallFederationChart", "uid": "uid-InstallFederationChart", "phase": "Pending", "attempts": 0,
                    "creationTime": "2023-07-31T13:16:20.715779Z", "updateTime": "2023-07-31T13:16:20.715779Z"},
            ],
        },
    })
}

fn with_status(mut fe: Value, status: Value) -> Value {
    fe["status"] = status;
    fe
}

fn parse(values: impl IntoIterator<Item = Value>) -> Vec<FederationEnablement> {
    values
        .into_iter()
        .map(|v| serde_json::from_value(v).expect("enablement"))
        .collect()
}

struct Api {
    app: axum::Router,
    clock: ManualClock,
    cache: FederationCache,
}

impl Api {
    fn new(objects: Vec<Value>, auth: Authorizer) -> Self {
        Self::with_routes(objects, auth, axum::Router::new())
    }

    /// The API with `extra` routes beside its own.
    fn with_routes(
        objects: Vec<Value>,
        auth: Authorizer,
        extra: axum::Router<Arc<AppState>>,
    ) -> Self {
        let clock = ManualClock::new();
        let cache = FederationCache::from_objects(parse(objects));
        let state = Arc::new(AppState {
            cache: cache.clone(),
            auth,
            metrics: Arc::new(Metrics::new()),
            clock: Arc::new(clock.clone()),
            health: Default::default(),
        });
        Api {
            app: router_with(state, extra),
            clock,
            cache,
        }
    }

    fn open(objects: Vec<Value>) -> Self {
        Self::new(objects, Authorizer::None)
    }

    async fn call(&self, request: Request<Body>) -> (StatusCode, String, Option<String>) {
        let response = self.app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (
            status,
            String::from_utf8_lossy(&body).into_owned(),
            content_type,
        )
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.get_with(uri, &[]).await
    }

    async fn get_with(&self, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut request = Request::get(uri);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let (status, body, content_type) = self
            .call(request.body(Body::empty()).expect("request"))
            .await;
        if uri.starts_with("/v1/") || uri.starts_with("/api/v1/sso") {
            assert_eq!(content_type.as_deref(), Some("application/json"), "{uri}");
        }
        (
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }
}

const PROGRESS: &str = "/v1/clustergroups/fleet-a/federations/progress";

#[tokio::test]
async fn progress_returns_the_job_in_the_cloud_service_shape() {
    let api = Api::open(vec![running("fleet-a", "team-a", "fleet-a")]);
    let (status, body) = api.get(PROGRESS).await;
    assert_eq!(status, StatusCode::OK);
    let now = "2026-01-15 08:00:00 +0000 UTC";
    let sub = |type_: &str, uid: &str, status: Value, extend: Option<Value>| -> Value {
        let mut spec = json!({"type": type_, "federationUID": "fe-team-a-fleet-a"});
        if let Some(extend) = extend {
            spec["extendParam"] = extend;
        }
        json!({
            "kind": "Job", "apiVersion": "v3",
            "metadata": {"uid": uid, "creationTimestamp": "2023-07-31 13:16:20.715779 +0000 UTC",
                "updateTimestamp": if type_ == "InstallFederationChart" { "2023-07-31 13:16:20.715779 +0000 UTC" } else { "2023-07-31 13:17:24.497868 +0000 UTC" },
                "annotations": {"currentTimestamp": now}},
            "spec": spec,
            "status": status,
        })
    };
    let expected = json!({
        "kind": "Job",
        "apiVersion": "v3",
        "metadata": {
            "uid": "job-1",
            "creationTimestamp": "2023-07-31 13:16:20.715779 +0000 UTC",
            "updateTimestamp": "2023-07-31 13:17:24.497868 +0000 UTC",
            "annotations": {"currentTimestamp": now},
        },
        "spec": {
            "type": "CreateFederationContainer",
            "federationUID": "fe-team-a-fleet-a",
            "resourceID": "fe-team-a-fleet-a",
            "resourceName": "fleet-a",
            "subJobs": [
                sub("CreateNode", "uid-CreateNode", json!({"phase": "Success", "reason": "Succeeded",
                    "startTime": "2023-07-31 13:16:21 +0000 UTC", "completionTime": "2023-07-31 13:16:22.1 +0000 UTC"}), None),
                sub("CreateNetworkResource", "uid-CreateNetworkResource", json!({"phase": "Success", "reason": "Succeeded",
                    "startTime": "2023-07-31 13:16:21 +0000 UTC", "completionTime": "2023-07-31 13:16:30 +0000 UTC"}),
                    Some(json!({"JobExtendParamKeyElbID": "69694819-67dc-44ac-ab6e-9b18087c5c4c", "JobExtendParamKeyEndpoint": "203.0.113.10:5443"}))),
                sub("CreateCert", "uid-CreateCert", json!({"phase": "Running", "startTime": "2023-07-31 13:16:21 +0000 UTC"}), None),
                sub("InstallFederationChart", "uid-InstallFederationChart", json!({"phase": "Pending"}), None),
            ],
        },
        "status": {"phase": "Running", "reason": "Running", "startTime": "2023-07-31 13:16:21 +0000 UTC"},
    });
    assert_eq!(body, expected);
}

#[tokio::test]
async fn current_timestamp_is_the_server_time_of_the_response() {
    let api = Api::open(vec![running("fleet-a", "team-a", "fleet-a")]);
    api.clock.advance(90);
    let (_, body) = api.get(PROGRESS).await;
    assert_eq!(
        body["metadata"]["annotations"]["currentTimestamp"],
        "2026-01-15 08:01:30 +0000 UTC"
    );
}

#[tokio::test]
async fn while_deleting_progress_describes_the_teardown() {
    let mut fe = running("fleet-a", "team-a", "fleet-a");
    fe["status"]["phase"] = json!("Deleting");
    fe["status"]["teardown"] = json!({
        "jobUID": "teardown-1", "phase": "Running", "reason": "Uninstalling",
        "creationTime": "2023-08-01T10:00:00Z", "updateTime": "2023-08-01T10:00:05.5Z", "startTime": "2023-08-01T10:00:00Z",
        "steps": [
            {"type": "UninstallFederationChart", "uid": "t-1", "phase": "Running", "attempts": 1, "reason": "Uninstalling"},
            {"type": "DeleteNetworkResource", "uid": "t-2", "phase": "Pending", "attempts": 0},
            {"type": "DeleteCert", "uid": "t-3", "phase": "Pending", "attempts": 0},
            {"type": "ReleaseNode", "uid": "t-4", "phase": "Pending", "attempts": 0},
        ],
    });
    let api = Api::open(vec![fe]);
    let (status, body) = api.get(PROGRESS).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["spec"]["type"], "DeleteFederation");
    assert_eq!(body["metadata"]["uid"], "teardown-1");
    assert_eq!(
        body["metadata"]["updateTimestamp"],
        "2023-08-01 10:00:05.5 +0000 UTC"
    );
    assert_eq!(
        body["status"],
        json!({"phase": "Running", "reason": "Uninstalling", "startTime": "2023-08-01 10:00:00 +0000 UTC"})
    );
    let steps: Vec<_> = body["spec"]["subJobs"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["spec"]["type"].clone())
        .collect();
    assert_eq!(
        steps,
        vec![
            "UninstallFederationChart",
            "DeleteNetworkResource",
            "DeleteCert",
            "ReleaseNode"
        ]
    );
}

#[tokio::test]
async fn invalid_fleet_ids_are_a_400_with_a_json_error() {
    let api = Api::open(vec![]);
    for id in ["Fleet-A", "fleet_a", &"a".repeat(65), "fleet%20a"] {
        let (status, body) = api
            .get(&format!("/v1/clustergroups/{id}/federations/progress"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{id}");
        assert_eq!(body["error_code"], "FED.4000001");
        assert!(
            body["error_msg"]
                .as_str()
                .expect("message")
                .contains("clustergroupid")
        );
    }
    let (status, _) = api
        .get(&format!(
            "/v1/clustergroups/{}/federations/progress",
            "a".repeat(64)
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "64 characters is a valid id");
}

#[tokio::test]
async fn unknown_fleet_is_a_404() {
    let api = Api::open(vec![running("fleet-a", "team-a", "fleet-a")]);
    let (status, body) = api
        .get("/v1/clustergroups/fleet-b/federations/progress")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error_code"], "FED.4040001");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json_errors() {
    let api = Api::open(vec![]);
    let (status, body) = api.get("/v1/clustergroups").await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (StatusCode::NOT_FOUND, Some("FED.4040002"))
    );
    let (status, body, content_type) = api
        .call(
            Request::post(PROGRESS)
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    assert!(body.contains("FED.4040002"));
}

fn fleet(i: usize) -> Value {
    with_status(
        running(
            &format!("fe-{i:02}"),
            if i.is_multiple_of(2) {
                "team-a"
            } else {
                "team-b"
            },
            &format!("fleet-{i:02}"),
        ),
        json!({"phase": "Success", "jobUID": format!("job-{i}"), "completionTime": "2026-01-15T08:00:00.5Z", "updateTime": "2026-01-15T08:00:01.9Z"}),
    )
}

#[tokio::test]
async fn list_pages_through_25_enablements_with_limit_10_without_skipping_or_repeating() {
    let api = Api::open((0..25).map(fleet).collect());
    let mut seen = Vec::new();
    for (offset, expected) in [(0, 10), (10, 10), (20, 5), (30, 0)] {
        let (status, body) = api
            .get(&format!("/api/v1/sso/federations?limit=10&offset={offset}"))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["total"], 25);
        assert_eq!(
            (body["limit"].as_u64(), body["offset"].as_u64()),
            (Some(10), Some(offset))
        );
        let items = body["items"].as_array().expect("items");
        assert_eq!(items.len(), expected, "offset {offset}");
        seen.extend(
            items
                .iter()
                .map(|i| i["platformUuid"].as_str().expect("uuid").to_string()),
        );
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 25, "no item skipped or repeated");
    // Stable order: namespace, then name.
    assert_eq!(seen[0], "fleet-00");
    assert_eq!(seen[1], "fleet-02");
    assert_eq!(seen[13], "fleet-01");
}

#[tokio::test]
async fn list_limit_defaults_clamps_and_refuses_bad_values() {
    let api = Api::open((0..25).map(fleet).collect());
    let (_, body) = api.get("/api/v1/sso/federations").await;
    assert_eq!(
        (
            body["limit"].as_u64(),
            body["items"].as_array().map(Vec::len)
        ),
        (Some(20), Some(20))
    );
    let (_, body) = api
        .get("/api/v1/sso/federations?limit=0&tenantUuid=t-1")
        .await;
    assert_eq!(body["limit"], 20);
    let (_, body) = api.get("/api/v1/sso/federations?limit=100000").await;
    assert_eq!(body["limit"], 500);
    for query in [
        "limit=-1",
        "limit=ten",
        "offset=-5",
        "offset=1.5",
        "limit=1&limit=2",
        "limit=",
    ] {
        let (status, body) = api.get(&format!("/api/v1/sso/federations?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["error_code"], "FED.4000002", "{query}");
    }
}

#[tokio::test]
async fn list_items_carry_every_field() {
    let failed = with_status(
        running("broken", "team-a", "fleet-x"),
        json!({"phase": "Failed", "reason": "InstallFailed", "message": "InstallFederationChart failed after 4 attempt(s): boom",
            "jobUID": "job-x", "updateTime": "2026-01-15T08:00:01.9Z",
            "subJobs": [{"type": "CreateNetworkResource", "uid": "u", "phase": "Success", "attempts": 1,
                "extendParam": {"JobExtendParamKeyElbID": "elb-1"}}]}),
    );
    let mut degraded = fleet(1);
    degraded["status"]["conditions"] = json!([{"type": "Degraded", "status": "True", "reason": "WaitingForLoadBalancer",
        "message": "m", "lastTransitionTime": "2026-01-15T08:00:00Z"}]);
    let mut named = fleet(2);
    named["spec"]["platform"] = json!({"name": "Fleet Two", "productType": "cce"});
    let api = Api::open(vec![
        failed,
        degraded,
        named,
        running("new", "team-c", "fleet-new"),
    ]);
    let (_, body) = api.get("/api/v1/sso/federations").await;
    let items = body["items"].as_array().expect("items");
    let find = |uuid: &str| {
        items
            .iter()
            .find(|i| i["platformUuid"] == uuid)
            .cloned()
            .expect("item")
    };

    let failed = find("fleet-x");
    assert_eq!(
        failed,
        json!({
            "platformUuid": "fleet-x", "platformName": "broken", "productType": "kubernetes",
            "status": "failed", "healthStatus": "unhealthy",
            "federation": {
                "uuid": "job-x", "ssoConfigUuid": "cfg-1", "ssoConfigName": "corp", "ssoClientUuid": "client-1",
                "callbackUrl": "https://cb.example", "platformUuid": "fleet-x", "productType": "kubernetes",
                "metadata": "{\"JobExtendParamKeyElbID\":\"elb-1\"}", "status": "failed",
                "errorMessage": "InstallFederationChart failed after 4 attempt(s): boom",
                "updatedAt": "2026-01-15T08:00:01Z",
            },
        })
    );
    let degraded = find("fleet-01");
    assert_eq!(
        (
            degraded["status"].as_str(),
            degraded["healthStatus"].as_str()
        ),
        (Some("federated"), Some("unhealthy"))
    );
    let named = find("fleet-02");
    assert_eq!(
        (
            named["platformName"].as_str(),
            named["productType"].as_str()
        ),
        (Some("Fleet Two"), Some("cce"))
    );
    assert_eq!(named["healthStatus"], "healthy");
    assert_eq!(named["federation"]["federatedAt"], "2026-01-15T08:00:00Z");
    assert_eq!(named["federation"]["metadata"], "{}");
    let new = find("fleet-new");
    assert_eq!(
        (new["status"].as_str(), new["healthStatus"].as_str()),
        (Some("federating"), Some("unknown"))
    );
    assert_eq!(new["federation"]["status"], "running");
    assert!(new["federation"].get("federatedAt").is_none());
    assert!(new["federation"].get("errorMessage").is_none());
}

// ---- authentication and authorization ----

struct Reviews {
    server: FakeApiServer,
    token_reviews: Arc<AtomicUsize>,
    access_reviews: Arc<AtomicUsize>,
}

/// Token `good` is alice (groups `devs`); she may get and list in team-a only.
fn reviews() -> Reviews {
    let server = FakeApiServer::new();
    let token_reviews = Arc::new(AtomicUsize::new(0));
    let access_reviews = Arc::new(AtomicUsize::new(0));
    let count = token_reviews.clone();
    server.respond(TOKEN_REVIEWS, move |review| {
        count.fetch_add(1, Ordering::SeqCst);
        let mut review = review.clone();
        review["status"] = if review["spec"]["token"] == "good" {
            json!({"authenticated": true, "user": {"username": "alice", "uid": "u-1", "groups": ["devs"], "extra": {"scopes": ["a"]}}})
        } else {
            json!({"authenticated": false})
        };
        review
    });
    let count = access_reviews.clone();
    server.respond(ACCESS_REVIEWS, move |review| {
        count.fetch_add(1, Ordering::SeqCst);
        let spec = &review["spec"];
        let attributes = &spec["resourceAttributes"];
        assert_eq!(spec["user"], "alice");
        assert_eq!(spec["uid"], "u-1");
        assert_eq!(spec["groups"], json!(["devs"]));
        assert_eq!(spec["extra"], json!({"scopes": ["a"]}));
        assert_eq!(attributes["group"], "federation.fleet.dev");
        assert_eq!(attributes["resource"], "federationenablements");
        let allowed = attributes["namespace"] == "team-a";
        let mut review = review.clone();
        review["status"] = json!({"allowed": allowed});
        review
    });
    Reviews {
        server,
        token_reviews,
        access_reviews,
    }
}

fn guarded(reviews: &Reviews) -> Api {
    Api::new(
        vec![
            running("fleet-a", "team-a", "fleet-a"),
            running("fleet-b", "team-b", "fleet-b"),
        ],
        Authorizer::kubernetes(reviews.server.client()),
    )
}

#[tokio::test]
async fn missing_or_invalid_token_is_a_401() {
    let reviews = reviews();
    let api = guarded(&reviews);
    for headers in [
        vec![],
        vec![("x-auth-token", "bad")],
        vec![("authorization", "Bearer bad")],
        vec![("authorization", "Basic Zm9v")],
    ] {
        for uri in [PROGRESS, "/api/v1/sso/federations"] {
            let (status, body) = api.get_with(uri, &headers).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri} {headers:?}");
            assert_eq!(body["error_code"], "FED.4010001");
        }
    }
}

#[tokio::test]
async fn a_caller_sees_only_what_they_may_get_and_never_learns_the_rest_exists() {
    let reviews = reviews();
    let api = guarded(&reviews);
    let (status, body) = api.get_with(PROGRESS, &[("x-auth-token", "good")]).await;
    assert_eq!(
        (status, body["spec"]["resourceName"].as_str()),
        (StatusCode::OK, Some("fleet-a"))
    );
    let (status, forbidden) = api
        .get_with(
            "/v1/clustergroups/fleet-b/federations/progress",
            &[("authorization", "Bearer good")],
        )
        .await;
    let (_, missing) = api
        .get_with(
            "/v1/clustergroups/fleet-zz/federations/progress",
            &[("authorization", "Bearer good")],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        forbidden["error_code"], missing["error_code"],
        "forbidden looks like absent"
    );

    let (status, list) = api
        .get_with(
            "/api/v1/sso/federations",
            &[("authorization", "Bearer good")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        list["total"], 1,
        "filtered to the namespaces alice may list"
    );
    assert_eq!(list["items"][0]["platformUuid"], "fleet-a");
}

#[tokio::test]
async fn a_burst_of_requests_costs_one_review_each() {
    let reviews = reviews();
    let api = guarded(&reviews);
    for _ in 0..5 {
        let (status, _) = api.get_with(PROGRESS, &[("x-auth-token", "good")]).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(reviews.token_reviews.load(Ordering::SeqCst), 1);
    assert_eq!(reviews.access_reviews.load(Ordering::SeqCst), 1);
    let calls = reviews.server.take_calls();
    assert!(
        calls
            .iter()
            .all(|c| c.path() == TOKEN_REVIEWS || c.path() == ACCESS_REVIEWS),
        "no request reads the API server for its data: {:?}",
        calls.iter().map(|c| c.line()).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_missing_fleet_costs_the_same_access_review_as_a_forbidden_one() {
    let reviews = reviews();
    let api = guarded(&reviews);
    let good = [("x-auth-token", "good")];
    // The token's review, out of the way.
    api.get_with(PROGRESS, &good).await;
    let before = reviews.access_reviews.load(Ordering::SeqCst);
    let (forbidden, _) = api
        .get_with("/v1/clustergroups/fleet-b/federations/progress", &good)
        .await;
    let after_forbidden = reviews.access_reviews.load(Ordering::SeqCst);
    let (missing, _) = api
        .get_with("/v1/clustergroups/fleet-zz/federations/progress", &good)
        .await;
    let after_missing = reviews.access_reviews.load(Ordering::SeqCst);
    assert_eq!(
        (forbidden, missing),
        (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND)
    );
    assert_eq!(
        (after_forbidden - before, after_missing - after_forbidden),
        (1, 1),
        "one access review each"
    );
}

#[tokio::test]
async fn responses_with_federation_data_are_never_stored() {
    let api = Api::open(vec![running("fleet-a", "team-a", "fleet-a")]);
    for uri in [
        PROGRESS,
        "/v1/clustergroups/fleet-zz/federations/progress",
        "/api/v1/sso/federations",
        "/dashboard/v1/federations",
        "/metrics",
        &format!("{PROGRESS}?watch=true"),
        "/api/v1/sso/federations?watch=true",
        "/dashboard/v1/federations?watch=true",
    ] {
        let response = response(&api, uri).await;
        assert_eq!(response.headers()["cache-control"], "no-store", "{uri}");
    }
    let (_, headers, _) = raw_get(&api, "/dashboard/app.js").await;
    assert_eq!(headers["cache-control"], "no-cache", "assets keep theirs");
}

#[tokio::test]
async fn a_failing_review_is_a_500_not_a_leak() {
    let server = FakeApiServer::new();
    server.fail(Method::POST, TOKEN_REVIEWS, 503);
    let api = Api::new(
        vec![running("fleet-a", "team-a", "fleet-a")],
        Authorizer::kubernetes(server.client()),
    );
    let (status, body) = api.get_with(PROGRESS, &[("x-auth-token", "good")]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error_code"], "FED.5000001");
    assert!(!body.to_string().contains("good"), "tokens never echoed");
}

// ---- answers serialized once per change ----

/// Every `currentTimestamp` of a progress answer: the job's, then its subjobs'.
fn current_timestamps(job: &Value) -> Vec<Value> {
    let mut stamps = vec![job["metadata"]["annotations"]["currentTimestamp"].clone()];
    for sub in job["spec"]["subJobs"].as_array().into_iter().flatten() {
        stamps.push(sub["metadata"]["annotations"]["currentTimestamp"].clone());
    }
    stamps
}

#[tokio::test]
async fn the_progress_answer_is_the_serialized_job_byte_for_byte() {
    let mut deleting = running("fleet-b", "team-a", "fleet-b");
    deleting["status"]["phase"] = json!("Deleting");
    deleting["status"]["teardown"] = json!({"jobUID": "t", "phase": "Running",
        "steps": [{"type": "ReleaseNode", "uid": "t-1", "phase": "Running", "attempts": 1}]});
    let objects = vec![running("fleet-a", "team-a", "fleet-a"), deleting];
    let api = Api::open(objects.clone());
    api.clock.advance(61);
    for fe in parse(objects) {
        let uri = format!(
            "/v1/clustergroups/{}/federations/progress",
            fe.spec.cluster_group_id
        );
        let expected = serde_json::to_string(&wire::progress(&fe, api.clock.now())).expect("json");
        assert_eq!(raw_body(&api, &uri).await, expected);
    }
}

#[tokio::test]
async fn every_current_timestamp_is_the_time_of_its_own_response() {
    let api = Api::open(vec![running("fleet-a", "team-a", "fleet-a")]);
    for (advance, expected) in [
        (0, "2026-01-15 08:00:00 +0000 UTC"),
        (5, "2026-01-15 08:00:05 +0000 UTC"),
        (3600, "2026-01-15 09:00:05 +0000 UTC"),
    ] {
        api.clock.advance(advance);
        let (_, body) = api.get(PROGRESS).await;
        let stamps = current_timestamps(&body);
        assert_eq!(stamps.len(), 5, "the job and its four subjobs");
        assert!(stamps.iter().all(|s| s == expected), "{stamps:?}");
    }
}

#[tokio::test]
async fn a_change_in_the_cache_is_in_the_next_answer() {
    let api = Api::open(vec![running("fleet-a", "team-a", "fleet-a")]);
    let list = "/api/v1/sso/federations";
    assert_eq!(api.get(PROGRESS).await.1["status"]["phase"], "Running");
    assert_eq!(api.get(list).await.1["items"][0]["status"], "federating");

    let done = with_status(
        running("fleet-a", "team-a", "fleet-a"),
        json!({"phase": "Success", "jobUID": "job-1", "completionTime": "2026-01-15T08:00:00Z"}),
    );
    api.cache
        .apply(WatchEvent::Apply(parse([done.clone()]).remove(0)));
    assert_eq!(api.get(PROGRESS).await.1["status"]["phase"], "Success");
    assert_eq!(api.get(list).await.1["items"][0]["status"], "federated");

    api.cache
        .apply(WatchEvent::Apply(parse([fleet(1)]).remove(0)));
    assert_eq!(
        api.get(list).await.1["total"],
        2,
        "an added enablement is listed"
    );

    api.cache.apply(WatchEvent::Delete(parse([done]).remove(0)));
    assert_eq!(api.get(PROGRESS).await.0, StatusCode::NOT_FOUND);
    let (_, body) = api.get(list).await;
    assert_eq!(body["total"], 1, "a deleted enablement is not listed");
    assert_eq!(body["items"][0]["platformUuid"], "fleet-01");
}

/// The page as the list route wrote it before pages were cut from a snapshot: the enablements
/// by namespace then name, skipped to `offset`, serialized whole.
fn page_walked_to(objects: &[Value], offset: usize, limit: usize) -> String {
    let mut all = parse(objects.to_vec());
    all.sort_by_key(|fe| (fe.namespace().unwrap_or_default(), fe.name_any()));
    serde_json::to_string(&wire::FederationList {
        items: all
            .iter()
            .skip(offset)
            .take(limit)
            .map(wire::federation_item)
            .collect(),
        total: all.len(),
        limit,
        offset,
    })
    .expect("json")
}

#[tokio::test]
async fn each_list_page_is_the_page_walked_to_its_offset_before_and_after_changes() {
    let mut objects: Vec<Value> = (0..25).map(fleet).collect();
    let api = Api::open(objects.clone());
    for round in 0..2 {
        for limit in [1, 7, 20] {
            for offset in 0..=27 {
                assert_eq!(
                    raw_body(
                        &api,
                        &format!("/api/v1/sso/federations?limit={limit}&offset={offset}")
                    )
                    .await,
                    page_walked_to(&objects, offset, limit),
                    "round {round}, limit {limit}, offset {offset}"
                );
            }
        }
        // An enablement in the middle goes, one sorting first comes: the next pages see both.
        let gone = objects.remove(12);
        api.cache.apply(WatchEvent::Delete(parse([gone]).remove(0)));
        let first = running("aaa", "team-a", "fleet-aaa");
        api.cache
            .apply(WatchEvent::Apply(parse([first.clone()]).remove(0)));
        objects.push(first);
    }
}

// ---- the router's layers ----

/// The body of GET `uri`, as sent.
async fn raw_body(api: &Api, uri: &str) -> String {
    let (status, body, _) = api
        .call(Request::get(uri).body(Body::empty()).expect("request"))
        .await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    body
}

#[tokio::test]
async fn an_extra_route_passes_through_the_layers_of_the_real_ones() {
    let api = Api::with_routes(
        vec![],
        Authorizer::None,
        axum::Router::new().route("/fixed", axum::routing::get(|| async { "{}" })),
    );
    let response = response(&api, "/fixed").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let metrics = raw_body(&api, "/metrics").await;
    assert!(
        metrics.contains(r#"federation_http_requests_total{route="/fixed",status="200"} 1"#),
        "{metrics}"
    );
}

// ---- operations endpoints ----

#[tokio::test]
async fn health_readiness_metrics_and_openapi() {
    let api = Api::open(vec![running("fleet-a", "team-a", "fleet-a")]);
    assert_eq!(api.get("/healthz").await.0, StatusCode::OK);
    assert_eq!(api.get("/readyz").await.0, StatusCode::OK);
    api.get(PROGRESS).await;
    let (status, text, _) = api
        .call(
            Request::get("/metrics")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for needle in [
        "federation_enablements{phase=\"Running\"} 1",
        "federation_http_requests_total{route=\"/v1/clustergroups/{clustergroupid}/federations/progress\",status=\"200\"} 1",
        "federation_http_request_duration_seconds_bucket",
        "# TYPE federation_reconciles counter",
        "# TYPE federation_reconcile_duration_seconds histogram",
        "# TYPE federation_subjob_duration_seconds histogram",
        "# TYPE federation_status_writes counter",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    let (status, doc) = api.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["paths"]["/v1/clustergroups/{clustergroupid}/federations/progress"]["get"].is_object()
    );
    assert!(doc["paths"]["/api/v1/sso/federations"]["get"].is_object());
    assert!(doc["paths"]["/dashboard/v1/federations"]["get"].is_object());
    assert!(doc["components"]["schemas"]["DashboardRow"].is_object());
}

#[tokio::test]
async fn readiness_waits_for_the_cache_to_sync() {
    let state = Arc::new(AppState {
        cache: FederationCache::new(),
        auth: Authorizer::None,
        metrics: Arc::new(Metrics::new()),
        clock: Arc::new(ManualClock::new()),
        health: Default::default(),
    });
    let cache = state.cache.clone();
    let app = router(state);
    let ready = |app: axum::Router| async move {
        app.oneshot(
            Request::get("/readyz")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible")
        .status()
    };
    assert_eq!(ready(app.clone()).await, StatusCode::SERVICE_UNAVAILABLE);
    cache.apply(kube::runtime::watcher::Event::Init);
    cache.apply(kube::runtime::watcher::Event::InitDone);
    assert_eq!(ready(app).await, StatusCode::OK);
}

// ---- malformed input never makes a 5xx or a panic ----

fn junk() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z0-9%./?&=_~:@!$'()*+,;\\-]{0,80}").expect("regex")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn malformed_requests_never_cause_a_server_error(
        prefix in prop_oneof![Just("/v1/clustergroups/"), Just("/api/v1/sso/federations?"), Just("/"), Just("/v1/clustergroups/fleet-a/federations/progress?")],
        tail in junk(),
        header in junk(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let api = Api::open(vec![running("fleet-a", "team-a", "fleet-a")]);
            let uri = format!("{prefix}{tail}");
            let Ok(request) = Request::get(uri.as_str())
                .header("x-auth-token", header.as_str())
                .header("authorization", format!("Bearer {header}"))
                .body(Body::empty())
            else {
                return Ok(());
            };
            let (status, _, _) = api.call(request).await;
            prop_assert!(status.as_u16() < 500, "{uri} -> {status}");
            Ok(())
        })?;
    }
}

// ---- the web dashboard ----

/// The response to a GET, its body unread (a stream's never ends).
async fn response(api: &Api, uri: &str) -> axum::response::Response {
    api.app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
        .await
        .expect("infallible")
}

async fn raw_get(api: &Api, uri: &str) -> (StatusCode, http::HeaderMap, String) {
    let response = response(api, uri).await;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn the_dashboard_is_embedded_and_served_under_a_strict_content_security_policy() {
    let api = Api::open(vec![]);
    let (status, headers, html) = raw_get(&api, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().expect("ascii");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");

    // Nothing inline for the policy to refuse, nothing fetched from elsewhere.
    assert!(html.contains(r#"<script src="/dashboard/app.js" defer></script>"#));
    assert_eq!(html.matches("<script").count(), 1, "one script, by src");
    assert!(!html.contains("style="), "no inline style attributes");
    let handler = html.match_indices(" on").find(|(at, _)| {
        let rest = &html[at + 3..];
        let name_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
        name_len > 0 && rest[name_len..].starts_with('=')
    });
    assert_eq!(handler, None, "no inline event handlers");
    for (uri, content_type) in [
        ("/dashboard/app.js", "text/javascript; charset=utf-8"),
        ("/dashboard/app.css", "text/css; charset=utf-8"),
    ] {
        let (status, headers, body) = raw_get(&api, uri).await;
        assert_eq!(
            (status, &headers["content-type"]),
            (StatusCode::OK, &content_type.parse().expect("value"))
        );
        assert!(!body.is_empty(), "{uri}");
        for text in [&html, &body] {
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "{uri}: no external addresses"
            );
        }
    }
    assert!(
        !raw_get(&api, "/dashboard/app.js")
            .await
            .2
            .contains("innerHTML"),
        "server data is written as text, never parsed as HTML"
    );
}

#[tokio::test]
async fn dashboard_rows_carry_progress_health_current_step_age_and_step_messages() {
    let mut moving = running("fe-a", "team-a", "fleet-a");
    moving["status"]["currentSubJobs"] = json!("CreateCert");
    let failed = with_status(
        running("broken", "team-b", "fleet-x"),
        json!({"phase": "Failed", "reason": "SimulatedFailure", "message": "CreateCert failed after 1 attempt(s): boom",
            "jobUID": "job-x", "subJobs": [
                {"type": "CreateNode", "uid": "u1", "phase": "Success", "attempts": 1, "message": "labelled 3 nodes"},
                {"type": "CreateCert", "uid": "u2", "phase": "Failed", "attempts": 1, "reason": "SimulatedFailure", "message": "boom"}]}),
    );
    let api = Api::open(vec![moving, failed]);
    let (status, body) = api.get("/dashboard/v1/federations").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["items"],
        json!([
            {"namespace": "team-a", "name": "fe-a", "clusterGroupID": "fleet-a", "phase": "Running",
                "health": "unknown", "succeeded": 2, "total": 4, "currentStep": "CreateCert",
                "reason": "Running", "created": "2023-07-31T13:16:20Z",
                "steps": [{"type": "CreateNode", "phase": "Success"},
                    {"type": "CreateNetworkResource", "phase": "Success"},
                    {"type": "CreateCert", "phase": "Running"},
                    {"type": "InstallFederationChart", "phase": "Pending"}]},
            {"namespace": "team-b", "name": "broken", "clusterGroupID": "fleet-x", "phase": "Failed",
                "health": "unhealthy", "succeeded": 1, "total": 4, "reason": "SimulatedFailure",
                "message": "CreateCert failed after 1 attempt(s): boom", "created": "2023-07-31T13:16:20Z",
                "steps": [{"type": "CreateNode", "phase": "Success", "message": "labelled 3 nodes"},
                    {"type": "CreateCert", "phase": "Failed", "message": "boom"}]},
        ])
    );
    let (status, body) = api.get("/dashboard/v1/federations?watch=maybe").await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("FED.4000002"))
    );
}

#[tokio::test]
async fn dashboard_rows_need_a_token_and_show_only_what_the_caller_may_list() {
    let reviews = reviews();
    let api = guarded(&reviews);
    // The page itself carries no data and loads without a token, so it can ask for one.
    assert_eq!(raw_get(&api, "/").await.0, StatusCode::OK);
    let (status, body) = api.get("/dashboard/v1/federations").await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("FED.4010001"))
    );
    let (status, body) = api
        .get_with(
            "/dashboard/v1/federations",
            &[("authorization", "Bearer good")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let fleets: Vec<&str> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["clusterGroupID"].as_str())
        .collect();
    assert_eq!(fleets, ["fleet-a"]);
}
