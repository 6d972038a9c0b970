//! The dashboard with `--auth=kubernetes`, in a real browser (headless Chromium through
//! WebDriver): it asks for a token once, keeps it only in the tab's session storage, sends it
//! only as a header, and shows only what the token's user may see. The controller's HTTP server
//! runs in-process with TokenReview and SubjectAccessReview answered by the in-memory API server.

mod support;
mod webdriver;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use fantoccini::Locator;
use federation_controller::api::FederationEnablement;
use federation_controller::controller::SystemClock;
use federation_controller::http::{AppState, Authorizer, FederationCache, router};
use federation_controller::metrics::Metrics;
use serde_json::{Value, json};
use support::FakeApiServer;
use webdriver::Browser;

const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
const ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

fn running(name: &str, namespace: &str) -> FederationEnablement {
    let step = |t: &str, phase: &str| {
        json!({"type": t, "uid": format!("{name}-{t}"), "phase": phase, "attempts": 1,
            "creationTime": "2026-01-15T08:00:00Z", "startTime": "2026-01-15T08:00:01Z",
            "completionTime": if phase == "Success" { json!("2026-01-15T08:00:09Z") } else { Value::Null }})
    };
    serde_json::from_value(json!({
        "apiVersion": "federation.fleet.dev/v1alpha1",
        "kind": "FederationEnablement",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}"),
            "creationTimestamp": "2026-01-15T08:00:00Z"},
        "spec": {"clusterGroupID": name,
            "chart": {"repository": "oci://r.example/c", "name": "c", "version": "1"}},
        "status": {"phase": "Running", "jobUID": format!("job-{name}"), "progress": "1/4",
            "startTime": "2026-01-15T08:00:01Z", "currentSubJobs": "CreateNetworkResource",
            "subJobs": [step("CreateNode", "Success"), step("CreateNetworkResource", "Running")]},
    }))
    .expect("enablement")
}

/// Token `good` is alice, who may get and list in team-a only; every other token is refused.
fn api_server() -> FakeApiServer {
    let server = FakeApiServer::new();
    server.respond(TOKEN_REVIEWS, |review| {
        let mut review = review.clone();
        review["status"] = if review["spec"]["token"] == "good" {
            json!({"authenticated": true, "user": {"username": "alice", "groups": ["devs"]}})
        } else {
            json!({"authenticated": false})
        };
        review
    });
    server.respond(ACCESS_REVIEWS, |review| {
        let allowed = review["spec"]["user"] == "alice"
            && review["spec"]["resourceAttributes"]["namespace"] == "team-a";
        let mut review = review.clone();
        review["status"] = json!({"allowed": allowed});
        review
    });
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_asks_for_a_token_once_and_keeps_it_in_session_storage_only() {
    let Some((chromium, driver)) = webdriver::tools() else {
        return;
    };
    let server = api_server();
    let state = Arc::new(AppState {
        cache: FederationCache::from_objects([
            running("fleet-a", "team-a"),
            running("fleet-b", "team-b"),
        ]),
        auth: Authorizer::kubernetes(server.client()),
        metrics: Arc::new(Metrics::new()),
        clock: Arc::new(SystemClock),
        health: Default::default(),
    });
    // Every request URI the server saw: the token must never be in one.
    let uris: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = uris.clone();
    let app = router(state).layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            seen.lock().expect("uris").push(request.uri().to_string());
            next.run(request)
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let browser = Browser::start(&chromium, &driver).await;
    let outcome = scenario(&browser, &format!("http://{addr}/")).await;
    if outcome.is_err() {
        browser.screenshot("dashboard-auth-failed").await;
    }
    browser.close().await;
    if let Err(error) = outcome {
        panic!("{error}");
    }
    let uris = uris.lock().expect("uris");
    assert!(
        uris.iter()
            .any(|u| u.starts_with("/dashboard/v1/federations")),
        "the page never asked for its rows: {uris:?}"
    );
    assert!(
        uris.iter()
            .all(|u| !u.contains("good") && !u.contains("bad")),
        "a token travelled in a URL: {uris:?}"
    );
}

async fn run(browser: &Browser, script: &str) -> Result<Value, String> {
    browser
        .client
        .execute(script, vec![])
        .await
        .map_err(|e| format!("{script}: {e}"))
}

async fn sign_in(browser: &Browser, token: &str) -> Result<(), String> {
    browser
        .wait_for(
            "the sign-in form",
            Duration::from_secs(20),
            "return !document.getElementById('login').hidden;",
            |v| v == true,
        )
        .await?;
    let input = browser
        .client
        .find(Locator::Css("#token"))
        .await
        .map_err(|e| e.to_string())?;
    input.send_keys(token).await.map_err(|e| e.to_string())?;
    browser.click("#login button[type=submit]").await
}

const FLEETS: &str =
    "return [...document.querySelectorAll('#federations tbody tr')].map((r) => r.dataset.fleet);";

async fn scenario(browser: &Browser, page: &str) -> Result<(), String> {
    browser
        .client
        .goto(page)
        .await
        .map_err(|e| format!("open {page}: {e}"))?;
    // No token yet: the page asks, and a refused token is asked for again with the reason.
    sign_in(browser, "bad").await?;
    browser
        .wait_for(
            "the refused token's message",
            Duration::from_secs(20),
            "const e = document.getElementById('login-error'); \
             return !document.getElementById('login').hidden && !e.hidden && e.textContent;",
            |v| v.as_str().is_some_and(|m| m.contains("refused")),
        )
        .await?;
    sign_in(browser, "good").await?;
    // alice sees team-a's fleet only.
    browser
        .wait_for(
            "the table with alice's fleet",
            Duration::from_secs(20),
            FLEETS,
            |v| *v == json!(["fleet-a"]),
        )
        .await?;
    let storage = run(
        browser,
        "return {session: sessionStorage.getItem('federation-controller.token'), \
         local: localStorage.length, cookie: document.cookie, url: location.href};",
    )
    .await?;
    if storage["session"] != "good" || storage["local"] != 0 || storage["cookie"] != "" {
        return Err(format!("where the token is kept: {storage}"));
    }

    // The timeline's progress stream carries the token too.
    browser.click(r#"tr[data-fleet="fleet-a"]"#).await?;
    browser
        .wait_for(
            "fleet-a's timeline",
            Duration::from_secs(20),
            "return [...document.querySelectorAll('#timeline-steps li.step')].map((li) => li.dataset.phase);",
            |v| *v == json!(["Success", "Running"]),
        )
        .await?;

    // Asked once: a reload of the tab keeps the session (and the open timeline) without asking.
    browser.client.refresh().await.map_err(|e| e.to_string())?;
    browser
        .wait_for(
            "the table after a reload, without a sign-in",
            Duration::from_secs(20),
            &format!(
                "if (!document.getElementById('login').hidden) return 'asked again'; {FLEETS}"
            ),
            |v| *v == json!(["fleet-a"]),
        )
        .await?;
    let title = run(
        browser,
        "return document.getElementById('timeline').hidden ? null : \
         document.getElementById('timeline-title').textContent;",
    )
    .await?;
    if title != "fleet-a" {
        return Err(format!("after a reload the timeline shows {title}"));
    }
    Ok(())
}
