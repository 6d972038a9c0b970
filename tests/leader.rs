//! Leader election through a Lease on the in-memory API server: acquire, renew, lose and
//! take over, with two replicas.

mod support;

use std::time::Duration;

use federation_controller::health::WatchHealth;
use federation_controller::leader::{self, LeaseConfig};
use http::Method;
use serde_json::json;
use support::FakeApiServer;
use tokio::sync::watch;

const LEASE: &str =
    "/apis/coordination.k8s.io/v1/namespaces/federation-system/leases/federation-controller";

fn config(identity: &str) -> LeaseConfig {
    config_for(identity, 3)
}

fn config_for(identity: &str, seconds: u64) -> LeaseConfig {
    LeaseConfig {
        name: "federation-controller".into(),
        namespace: "federation-system".into(),
        identity: identity.into(),
        duration: Duration::from_secs(seconds),
    }
}

async fn becomes(leading: &mut watch::Receiver<bool>, value: bool, within: Duration) -> bool {
    tokio::time::timeout(within, leading.wait_for(|l| *l == value))
        .await
        .is_ok_and(|r| r.is_ok())
}

fn holder(server: &FakeApiServer) -> Option<String> {
    server
        .get(LEASE)
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
}

#[tokio::test]
async fn one_replica_leads_renews_and_a_standby_takes_over_after_release() {
    let server = FakeApiServer::new();
    let (mut a, a_task) = leader::join(server.client(), &config("replica-a"), Default::default())
        .await
        .expect("a joins");
    assert!(
        becomes(&mut a, true, Duration::from_secs(5)).await,
        "the first replica acquires the lease"
    );
    assert_eq!(holder(&server).as_deref(), Some("replica-a"));

    let (mut b, b_task) = leader::join(server.client(), &config("replica-b"), Default::default())
        .await
        .expect("b joins");
    assert!(
        !becomes(&mut b, true, Duration::from_secs(1)).await,
        "exactly one leads"
    );

    let renewed_before = server.get(LEASE).expect("lease")["spec"]["renewTime"].clone();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let renewed_after = server.get(LEASE).expect("lease")["spec"]["renewTime"].clone();
    assert_ne!(
        renewed_before, renewed_after,
        "the leader renews before the lease expires"
    );
    assert!(!*b.borrow(), "a renewed lease is not taken over");
    assert_eq!(holder(&server).as_deref(), Some("replica-a"));

    // SIGTERM on the leader: its receiver goes, the lease is released.
    drop(a);
    a_task.await.expect("a's election task").expect("released");
    assert_ne!(holder(&server).as_deref(), Some("replica-a"));
    assert!(
        becomes(&mut b, true, Duration::from_secs(5)).await,
        "the standby takes over within the lease duration"
    );
    assert_eq!(holder(&server).as_deref(), Some("replica-b"));
    drop(b);
    b_task.await.expect("b's election task").expect("released");
}

#[tokio::test]
async fn a_standby_takes_over_at_once_when_the_leader_releases() {
    let server = FakeApiServer::new();
    // A 30 s lease: a takeover within seconds cannot be the lease expiring.
    let (mut a, a_task) = leader::join(
        server.client(),
        &config_for("replica-a", 30),
        Default::default(),
    )
    .await
    .expect("a joins");
    assert!(becomes(&mut a, true, Duration::from_secs(5)).await);
    let (mut b, _b_task) = leader::join(
        server.client(),
        &config_for("replica-b", 30),
        Default::default(),
    )
    .await
    .expect("b joins");
    assert!(!becomes(&mut b, true, Duration::from_secs(1)).await);
    drop(a);
    a_task.await.expect("a's election task").expect("released");
    assert!(
        becomes(&mut b, true, Duration::from_secs(3)).await,
        "the standby takes over well before the released lease would have expired"
    );
    assert_eq!(holder(&server).as_deref(), Some("replica-b"));
}

#[tokio::test]
async fn a_leader_whose_lease_is_taken_stops_leading() {
    let server = FakeApiServer::new();
    let (mut a, _task) = leader::join(server.client(), &config("replica-a"), Default::default())
        .await
        .expect("a joins");
    assert!(becomes(&mut a, true, Duration::from_secs(5)).await);
    // Another holder took the lease (as after a long pause of this replica).
    server.modify(LEASE, |lease| {
        lease["spec"]["holderIdentity"] = json!("replica-z");
        lease["spec"]["renewTime"] = json!(
            jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string()
        );
    });
    assert!(
        becomes(&mut a, false, Duration::from_secs(5)).await,
        "losing the lease is noticed"
    );
}

#[tokio::test]
async fn a_standby_outlasts_an_unreachable_api_server_and_takes_over_afterwards() {
    let server = FakeApiServer::new();
    let (mut a, a_task) = leader::join(
        server.client(),
        &config_for("replica-a", 30),
        Default::default(),
    )
    .await
    .expect("a joins");
    assert!(becomes(&mut a, true, Duration::from_secs(5)).await);
    let health = WatchHealth::new(Duration::from_secs(1));
    let (mut b, b_task) = leader::join(
        server.client(),
        &config_for("replica-b", 30),
        health.clone(),
    )
    .await
    .expect("b joins");

    // The standby cannot read the lease: that is not a released lease, and not the end.
    server.fail(Method::GET, LEASE, 503);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!*b.borrow(), "an unreadable lease is not taken over");
    assert!(!b_task.is_finished(), "the standby keeps standing by");
    let stalls = health.stalls();
    assert_eq!(stalls.len(), 1, "{stalls:?}");
    assert_eq!(stalls[0].watch, leader::LEASE_WATCH);

    server.heal(Method::GET, LEASE);
    drop(a);
    a_task.await.expect("a's election task").expect("released");
    assert!(
        becomes(&mut b, true, Duration::from_secs(5)).await,
        "once the API server answers, the standby takes over"
    );
    assert_eq!(
        health.stalls(),
        [],
        "reading the lease again ends the failing run"
    );
}
