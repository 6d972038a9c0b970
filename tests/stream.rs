//! Live streams (`?watch=true`): server-sent events fed by the cache's watch.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use federation_controller::api::FederationEnablement;
use federation_controller::http::{AppState, Authorizer, FederationCache, router};
use federation_controller::metrics::Metrics;
use http_body_util::BodyExt;
use kube::runtime::watcher::Event as WatchEvent;
use serde_json::{Value, json};
use tower::ServiceExt;

fn enablement(
    name: &str,
    namespace: &str,
    phase: Option<&str>,
    progress: &str,
) -> FederationEnablement {
    let mut value = json!({
        "apiVersion": "federation.fleet.dev/v1alpha1",
        "kind": "FederationEnablement",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}"),
            "creationTimestamp": "2026-01-15T08:00:00Z"},
        "spec": {"clusterGroupID": name, "chart": {"repository": "oci://r.example/c", "name": "c", "version": "1"}},
    });
    if let Some(phase) = phase {
        value["status"] = json!({"phase": phase, "progress": progress, "jobUID": "job-1"});
    }
    serde_json::from_value(value).expect("enablement")
}

struct Stream {
    body: Body,
    buffer: String,
}

impl Stream {
    /// The next event as (event name, JSON data); None when the stream ended.
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        name = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if name.is_empty() {
                    continue; // a heartbeat comment
                }
                return Some((name, serde_json::from_str(&data).expect("json data")));
            }
            let frame = tokio::time::timeout(Duration::from_secs(5), self.body.frame())
                .await
                .expect("an event within 5 s")?
                .expect("frame");
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }
}

async fn open(cache: &FederationCache, uri: &str) -> (u16, Option<String>, Stream) {
    let state = Arc::new(AppState {
        cache: cache.clone(),
        auth: Authorizer::None,
        metrics: Arc::new(Metrics::new()),
        clock: Arc::new(support::ManualClock::new()),
        health: Default::default(),
    });
    let response = router(state)
        .oneshot(
            http::Request::get(uri)
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (
        status,
        content_type,
        Stream {
            body: response.into_body(),
            buffer: String::new(),
        },
    )
}

const WATCH: &str = "/v1/clustergroups/fleet-a/federations/progress?watch=true";

#[tokio::test]
async fn progress_stream_sends_the_job_then_every_change_then_ends_at_success() {
    let cache =
        FederationCache::from_objects([enablement("fleet-a", "team-a", Some("Running"), "1/4")]);
    let (status, content_type, mut stream) = open(&cache, WATCH).await;
    assert_eq!(status, 200);
    assert_eq!(content_type.as_deref(), Some("text/event-stream"));
    let (name, first) = stream.next().await.expect("first event");
    assert_eq!(name, "progress");
    assert_eq!(
        (first["kind"].as_str(), first["status"]["phase"].as_str()),
        (Some("Job"), Some("Running"))
    );

    // Another enablement changing is not this stream's business.
    cache.apply(WatchEvent::Apply(enablement(
        "fleet-b",
        "team-a",
        Some("Running"),
        "2/4",
    )));
    cache.apply(WatchEvent::Apply(enablement(
        "fleet-a",
        "team-a",
        Some("Running"),
        "3/4",
    )));
    let (_, second) = stream.next().await.expect("second event");
    assert_eq!(second["spec"]["resourceName"], "fleet-a");
    assert_eq!(second["status"]["phase"], "Running");

    cache.apply(WatchEvent::Apply(enablement(
        "fleet-a",
        "team-a",
        Some("Success"),
        "4/4",
    )));
    let (_, last) = stream.next().await.expect("final event");
    assert_eq!(last["status"]["phase"], "Success");
    assert!(
        stream.next().await.is_none(),
        "the stream ends after the final event"
    );
}

#[tokio::test]
async fn a_finished_job_streams_one_event_and_ends() {
    let cache =
        FederationCache::from_objects([enablement("fleet-a", "team-a", Some("Failed"), "2/4")]);
    let (_, _, mut stream) = open(&cache, WATCH).await;
    assert_eq!(
        stream.next().await.expect("event").1["status"]["phase"],
        "Failed"
    );
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn a_deleted_enablement_ends_its_stream_with_a_deleted_event() {
    let cache =
        FederationCache::from_objects([enablement("fleet-a", "team-a", Some("Running"), "1/4")]);
    let (_, _, mut stream) = open(&cache, WATCH).await;
    stream.next().await.expect("first event");
    cache.apply(WatchEvent::Delete(enablement(
        "fleet-a",
        "team-a",
        Some("Running"),
        "1/4",
    )));
    let (name, _) = stream.next().await.expect("deleted event");
    assert_eq!(name, "deleted");
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn a_slow_client_skips_to_the_latest_state() {
    let cache =
        FederationCache::from_objects([enablement("fleet-a", "team-a", Some("Running"), "0/4")]);
    let (_, _, mut stream) = open(&cache, WATCH).await;
    stream.next().await.expect("first event");
    // Far more changes than the change buffer holds, while the client reads nothing.
    for i in 0..3000 {
        cache.apply(WatchEvent::Apply(enablement(
            "fleet-b",
            "team-a",
            Some("Running"),
            &format!("{i}"),
        )));
    }
    cache.apply(WatchEvent::Apply(enablement(
        "fleet-a",
        "team-a",
        Some("Success"),
        "4/4",
    )));
    let (_, latest) = stream.next().await.expect("latest event");
    assert_eq!(
        latest["status"]["phase"], "Success",
        "the latest state, not the intermediate ones"
    );
}

#[tokio::test]
async fn list_stream_sends_added_modified_and_deleted_items() {
    let cache =
        FederationCache::from_objects([enablement("fleet-a", "team-a", Some("Running"), "1/4")]);
    let (status, content_type, mut stream) =
        open(&cache, "/api/v1/sso/federations?watch=true").await;
    assert_eq!(
        (status, content_type.as_deref()),
        (200, Some("text/event-stream"))
    );
    let (name, item) = stream.next().await.expect("added");
    assert_eq!(
        (name.as_str(), item["platformUuid"].as_str()),
        ("added", Some("fleet-a"))
    );

    cache.apply(WatchEvent::Apply(enablement("fleet-b", "team-b", None, "")));
    let (name, item) = stream.next().await.expect("added");
    assert_eq!(
        (name.as_str(), item["platformUuid"].as_str()),
        ("added", Some("fleet-b"))
    );

    cache.apply(WatchEvent::Apply(enablement(
        "fleet-a",
        "team-a",
        Some("Success"),
        "4/4",
    )));
    let (name, item) = stream.next().await.expect("modified");
    assert_eq!(
        (name.as_str(), item["status"].as_str()),
        ("modified", Some("federated"))
    );

    cache.apply(WatchEvent::Delete(enablement(
        "fleet-b", "team-b", None, "",
    )));
    let (name, item) = stream.next().await.expect("deleted");
    assert_eq!(
        (name.as_str(), item["platformUuid"].as_str()),
        ("deleted", Some("fleet-b"))
    );
}

#[tokio::test]
async fn a_bad_watch_value_is_a_400() {
    let cache =
        FederationCache::from_objects([enablement("fleet-a", "team-a", Some("Running"), "1/4")]);
    for uri in [
        "/v1/clustergroups/fleet-a/federations/progress?watch=yes",
        "/api/v1/sso/federations?watch=1",
        "/api/v1/sso/federations?watch=true&watch=false",
    ] {
        let (status, content_type, _) = open(&cache, uri).await;
        assert_eq!(
            (status, content_type.as_deref()),
            (400, Some("application/json")),
            "{uri}"
        );
    }
    let (status, content_type, _) = open(
        &cache,
        "/v1/clustergroups/fleet-a/federations/progress?watch=false",
    )
    .await;
    assert_eq!(
        (status, content_type.as_deref()),
        (200, Some("application/json"))
    );
}

#[tokio::test]
async fn dashboard_row_stream_sends_rows_as_they_change() {
    let cache =
        FederationCache::from_objects([enablement("fleet-a", "team-a", Some("Running"), "1/4")]);
    let (status, content_type, mut stream) =
        open(&cache, "/dashboard/v1/federations?watch=true").await;
    assert_eq!(
        (status, content_type.as_deref()),
        (200, Some("text/event-stream"))
    );
    let (name, row) = stream.next().await.expect("added");
    assert_eq!(
        (
            name.as_str(),
            row["clusterGroupID"].as_str(),
            row["phase"].as_str()
        ),
        ("added", Some("fleet-a"), Some("Running"))
    );
    cache.apply(WatchEvent::Apply(enablement(
        "fleet-a",
        "team-a",
        Some("Success"),
        "4/4",
    )));
    let (name, row) = stream.next().await.expect("modified");
    assert_eq!(
        (name.as_str(), row["phase"].as_str(), row["health"].as_str()),
        ("modified", Some("Success"), Some("healthy"))
    );
    cache.apply(WatchEvent::Delete(enablement(
        "fleet-a", "team-a", None, "",
    )));
    let (name, row) = stream.next().await.expect("deleted");
    assert_eq!(
        (name.as_str(), row["name"].as_str()),
        ("deleted", Some("fleet-a"))
    );
}

/// Access as the in-memory API server answers it: token `t` is alice while `token_valid`;
/// she may get and list in the namespaces of `namespaces` (None: everywhere) while `allowed`.
struct Access {
    token_valid: Arc<std::sync::atomic::AtomicBool>,
    allowed: Arc<std::sync::atomic::AtomicBool>,
    state: Arc<AppState>,
}

fn guarded(cache: &FederationCache, namespaces: Option<&'static [&'static str]>) -> Access {
    use std::sync::atomic::{AtomicBool, Ordering};
    let server = support::FakeApiServer::new();
    let token_valid = Arc::new(AtomicBool::new(true));
    let valid = token_valid.clone();
    server.respond(
        "/apis/authentication.k8s.io/v1/tokenreviews",
        move |review| {
            let mut review = review.clone();
            review["status"] = if valid.load(Ordering::SeqCst) && review["spec"]["token"] == "t" {
                json!({"authenticated": true, "user": {"username": "alice"}})
            } else {
                json!({"authenticated": false})
            };
            review
        },
    );
    let allowed = Arc::new(AtomicBool::new(true));
    let answer = allowed.clone();
    server.respond(
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        move |review| {
            let namespace = review["spec"]["resourceAttributes"]["namespace"].as_str();
            let in_scope = match (namespaces, namespace) {
                (None, _) => true,
                (Some(list), Some(ns)) => list.contains(&ns),
                (Some(_), None) => false,
            };
            let mut review = review.clone();
            review["status"] = json!({"allowed": answer.load(Ordering::SeqCst) && in_scope});
            review
        },
    );
    Access {
        token_valid,
        allowed,
        state: Arc::new(AppState {
            cache: cache.clone(),
            auth: Authorizer::kubernetes(server.client()),
            metrics: Arc::new(Metrics::new()),
            clock: Arc::new(support::ManualClock::new()),
            health: Default::default(),
        }),
    }
}

async fn open_as_alice(access: &Access, uri: &str) -> Stream {
    let response = router(access.state.clone())
        .oneshot(
            http::Request::get(uri)
                .header("authorization", "Bearer t")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    assert_eq!(response.status(), 200);
    Stream {
        body: response.into_body(),
        buffer: String::new(),
    }
}

fn change(cache: &FederationCache, progress: &str) {
    cache.apply(WatchEvent::Apply(enablement(
        "fleet-a",
        "team-a",
        Some("Running"),
        progress,
    )));
}

/// A caller whose access is withdrawn keeps the stream until the cached decision expires, then
/// loses it at the next change.
#[tokio::test(start_paused = true)]
async fn a_stream_ends_once_the_caller_loses_access_and_the_cached_decision_expires() {
    use std::sync::atomic::Ordering;
    let cache =
        FederationCache::from_objects([enablement("fleet-a", "team-a", Some("Running"), "1/4")]);
    let access = guarded(&cache, None);
    let mut stream = open_as_alice(&access, WATCH).await;
    assert_eq!(stream.next().await.expect("first").0, "progress");

    access.allowed.store(false, Ordering::SeqCst);
    // Within the decision's lifetime the stream goes on.
    change(&cache, "2/4");
    let (name, job) = stream.next().await.expect("still allowed");
    assert_eq!(
        (name.as_str(), job["status"]["phase"].as_str()),
        ("progress", Some("Running"))
    );

    tokio::time::advance(federation_controller::http::auth::DECISION_TTL).await;
    change(&cache, "3/4");
    assert_eq!(
        stream.next().await,
        None,
        "the stream ends, showing nothing more"
    );
}

#[tokio::test(start_paused = true)]
async fn a_revoked_token_ends_its_stream_at_the_next_review() {
    use std::sync::atomic::Ordering;
    let cache =
        FederationCache::from_objects([enablement("fleet-a", "team-a", Some("Running"), "1/4")]);
    let access = guarded(&cache, None);
    let mut stream = open_as_alice(&access, WATCH).await;
    assert_eq!(stream.next().await.expect("first").0, "progress");
    access.token_valid.store(false, Ordering::SeqCst);
    tokio::time::advance(federation_controller::http::auth::DECISION_TTL).await;
    change(&cache, "2/4");
    assert_eq!(stream.next().await, None, "RBAC alone is not enough");
}

/// A caller who may list everywhere is reviewed too; losing access ends the stream instead of
/// showing every item deleted.
#[tokio::test(start_paused = true)]
async fn a_cluster_wide_list_stream_ends_when_access_is_withdrawn() {
    use std::sync::atomic::Ordering;
    let cache = FederationCache::from_objects([
        enablement("fleet-a", "team-a", Some("Running"), "1/4"),
        enablement("fleet-b", "team-b", Some("Running"), "1/4"),
    ]);
    let access = guarded(&cache, None);
    let mut stream = open_as_alice(&access, "/api/v1/sso/federations?watch=true").await;
    for _ in 0..2 {
        assert_eq!(stream.next().await.expect("added").0, "added");
    }
    access.allowed.store(false, Ordering::SeqCst);
    tokio::time::advance(federation_controller::http::auth::DECISION_TTL).await;
    change(&cache, "2/4");
    assert_eq!(stream.next().await, None);
}

/// The first enablement in a namespace the caller may list shows up at once, not at the next
/// review.
#[tokio::test(start_paused = true)]
async fn an_enablement_in_a_new_namespace_shows_up_at_once() {
    let cache =
        FederationCache::from_objects([enablement("fleet-a", "team-a", Some("Running"), "1/4")]);
    let access = guarded(&cache, Some(&["team-a", "team-new"]));
    let mut stream = open_as_alice(&access, "/api/v1/sso/federations?watch=true").await;
    assert_eq!(stream.next().await.expect("added").0, "added");
    cache.apply(WatchEvent::Apply(enablement(
        "fleet-x",
        "team-other",
        Some("Running"),
        "1/4",
    )));
    cache.apply(WatchEvent::Apply(enablement(
        "fleet-n",
        "team-new",
        Some("Running"),
        "1/4",
    )));
    let (name, item) = stream.next().await.expect("added");
    assert_eq!(
        (name.as_str(), item["platformUuid"].as_str()),
        ("added", Some("fleet-n")),
        "team-other stays hidden, team-new shows"
    );
}

#[tokio::test]
async fn after_a_relist_a_list_stream_shows_what_changed_while_the_watch_was_down() {
    let cache = FederationCache::from_objects([
        enablement("fleet-a", "team-a", Some("Running"), "1/4"),
        enablement("fleet-b", "team-b", Some("Running"), "1/4"),
    ]);
    let (_, _, mut stream) = open(&cache, "/api/v1/sso/federations?watch=true").await;
    for _ in 0..2 {
        assert_eq!(stream.next().await.expect("added").0, "added");
    }
    // The watch restarts: fleet-a finished and fleet-b was deleted meanwhile.
    cache.apply(WatchEvent::Init);
    cache.apply(WatchEvent::InitApply(enablement(
        "fleet-a",
        "team-a",
        Some("Success"),
        "4/4",
    )));
    cache.apply(WatchEvent::InitDone);
    let mut events = Vec::new();
    for _ in 0..2 {
        let (name, item) = stream.next().await.expect("event");
        events.push((name, item["platformUuid"].as_str().map(str::to_string)));
    }
    events.sort();
    assert_eq!(
        events,
        [
            ("deleted".to_string(), Some("fleet-b".to_string())),
            ("modified".to_string(), Some("fleet-a".to_string())),
        ]
    );
}
