//! Leader election through a `coordination.k8s.io` Lease (kube-lease-manager): with several
//! replicas exactly one reconciles; every replica serves the HTTP API from its own cache.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::health::{WATCH_RETRY_CAP, WatchBackoff, WatchHealth};

/// `--leader-elect-*`.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// Unique among replicas: the pod name, where there is one.
    pub identity: String,
    /// A standby takes over at most this long after the leader stopped renewing.
    pub duration: Duration,
}

impl LeaseConfig {
    /// The leader renews this long before the lease would expire (a third of its duration).
    pub fn grace(&self) -> Duration {
        (self.duration / 3).max(Duration::from_secs(1))
    }
}

/// How often a standby looks for a released lease, so that it takes over at once rather than
/// when the last renewal would have expired.
pub const STANDBY_POLL: Duration = Duration::from_secs(1);

type Election = tokio::task::JoinHandle<Result<(), LeaseManagerError>>;

async fn manager(client: &Client, config: &LeaseConfig) -> Result<LeaseManager, LeaseManagerError> {
    let duration = config.duration.as_secs().max(2);
    LeaseManagerBuilder::new(client.clone(), &config.name)
        .with_namespace(&config.namespace)
        .with_identity(&config.identity)
        .with_duration(duration)
        .with_grace(config.grace().as_secs().min(duration - 1))
        .build()
        .await
}

/// What the leader election reports its health under (see [`WatchHealth`]).
pub const LEASE_WATCH: &str = "Lease";

/// Joins the election. The receiver says whether this replica leads now; dropping every
/// receiver releases the lease, so a standby takes over at once.
pub async fn join(
    client: Client,
    config: &LeaseConfig,
    health: WatchHealth,
) -> Result<(watch::Receiver<bool>, Election), LeaseManagerError> {
    let first = manager(&client, config).await?;
    let (leading, receiver) = watch::channel(false);
    let task = tokio::spawn(campaign(client, config.clone(), first, leading, health));
    Ok((receiver, task))
}

/// Why a manager's term in [`campaign`] ended.
enum Next {
    /// Every receiver is gone: release the lease and return.
    Stop,
    /// A standby saw the lease released: a fresh manager takes it at once.
    TakeOver,
    /// The manager's task ended by itself: join again, however long the API server is away.
    Rejoin,
}

/// Keeps `leading` in step with the lease until every receiver is gone, then releases it. It
/// never gives up on an unreachable API server: the election goes on when it is back.
async fn campaign(
    client: Client,
    config: LeaseConfig,
    mut current: LeaseManager,
    leading: watch::Sender<bool>,
    health: WatchHealth,
) -> Result<(), LeaseManagerError> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    loop {
        let (mut state, task) = current.watch().await;
        let mut poll = tokio::time::interval(STANDBY_POLL);
        let next = loop {
            tokio::select! {
                _ = leading.closed() => break Next::Stop,
                changed = state.changed() => {
                    if changed.is_err() {
                        break Next::Rejoin;
                    }
                    leading.send_replace(*state.borrow());
                }
                _ = poll.tick(), if !*state.borrow() => {
                    match leases.get_opt(&config.name).await {
                        Ok(lease) => {
                            health.succeeded(LEASE_WATCH);
                            let held = lease
                                .and_then(|lease| lease.spec)
                                .and_then(|spec| spec.holder_identity);
                            if held.is_none() {
                                break Next::TakeOver;
                            }
                        }
                        // Unknown is not released: keep standing by.
                        Err(error) => health.failed(LEASE_WATCH, &error),
                    }
                }
            }
        };
        // Dropping the state ends the manager's task, which releases the lease if it holds it.
        drop(state);
        let ended = task.await;
        match next {
            Next::Stop => {
                leading.send_replace(false);
                return match ended {
                    Ok(result) => result.map(drop),
                    Err(error) => {
                        warn!(%error, "leader election task failed");
                        Ok(())
                    }
                };
            }
            Next::TakeOver => info!("the leader released the lease; taking over"),
            Next::Rejoin => {
                // Whether this replica still holds the lease is unknown: stop reconciling.
                leading.send_replace(false);
                match ended {
                    Ok(Ok(_)) => warn!("the leader election ended by itself; joining again"),
                    Ok(Err(error)) => warn!(%error, "the leader election failed; joining again"),
                    Err(error) => warn!(%error, "the leader election task failed; joining again"),
                }
            }
        }
        // A fresh manager reads the lease and takes it if it is free, where the old one would
        // sleep until the last renewal expired.
        match rejoin(&client, &config, &health, &leading).await {
            Some(manager) => current = manager,
            None => return Ok(()),
        }
    }
}

/// A new manager for the lease, retried with backoff until the API server answers; None when
/// every receiver went away meanwhile.
async fn rejoin(
    client: &Client,
    config: &LeaseConfig,
    health: &WatchHealth,
    leading: &watch::Sender<bool>,
) -> Option<LeaseManager> {
    let mut backoff = WatchBackoff::default();
    loop {
        match manager(client, config).await {
            Ok(manager) => {
                health.succeeded(LEASE_WATCH);
                return Some(manager);
            }
            Err(error) => health.failed(LEASE_WATCH, &error),
        }
        let wait = backoff.next().unwrap_or(WATCH_RETRY_CAP);
        tokio::select! {
            _ = leading.closed() => return None,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Resolves when a term of leadership is over (leadership lost, or shutting down).
pub type TermOver = std::pin::Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

/// Runs `term` for as long as this replica leads: starts it on gaining leadership, tells it to
/// stop (the future it is given resolves) on losing it, and starts it again on regaining it.
/// Returns once `shutdown` resolves and the running term has finished.
pub async fn lead<T, F>(
    mut leading: watch::Receiver<bool>,
    shutdown: impl Future<Output = ()>,
    mut term: T,
) where
    T: FnMut(TermOver) -> F,
    F: Future<Output = ()>,
{
    let (stop, stopped) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => return,
            changed = leading.wait_for(|leads| *leads) => {
                if changed.is_err() {
                    warn!("leader election ended; this replica stops reconciling");
                    return;
                }
            }
        }
        info!("leading: reconciling");
        let mut lost = leading.clone();
        let mut stopping = stopped.clone();
        let term_over: std::pin::Pin<Box<dyn Future<Output = ()> + Send + Sync>> =
            Box::pin(async move {
                tokio::select! {
                    _ = lost.wait_for(|leads| !*leads) => {}
                    _ = stopping.wait_for(|stop| *stop) => {}
                }
            });
        let running = term(term_over);
        tokio::pin!(running);
        let shut_down = tokio::select! {
            biased;
            _ = &mut shutdown => {
                let _ = stop.send(true);
                running.await;
                true
            }
            _ = &mut running => false,
        };
        if shut_down {
            return;
        }
        info!("lost leadership: stopped reconciling; standing by");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A term that counts its starts and ends, and ends when told to.
    fn counting(
        starts: Arc<AtomicUsize>,
        ends: Arc<AtomicUsize>,
    ) -> impl FnMut(TermOver) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
        move |over| {
            starts.fetch_add(1, Ordering::SeqCst);
            let ends = ends.clone();
            Box::pin(async move {
                over.await;
                ends.fetch_add(1, Ordering::SeqCst);
            })
        }
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn reconciles_only_while_leading_and_again_after_regaining_it() {
        let (leading, leadership) = watch::channel(false);
        let (stop, stopped) = watch::channel(false);
        let starts = Arc::new(AtomicUsize::new(0));
        let ends = Arc::new(AtomicUsize::new(0));
        let mut shutdown = stopped.clone();
        let task = tokio::spawn(lead(
            leadership,
            async move {
                let _ = shutdown.wait_for(|s| *s).await;
            },
            counting(starts.clone(), ends.clone()),
        ));
        settle().await;
        assert_eq!(
            starts.load(Ordering::SeqCst),
            0,
            "a standby does not reconcile"
        );

        leading.send_replace(true);
        settle().await;
        assert_eq!(starts.load(Ordering::SeqCst), 1);

        leading.send_replace(false);
        settle().await;
        assert_eq!(
            ends.load(Ordering::SeqCst),
            1,
            "losing the lease stops reconciling"
        );

        leading.send_replace(true);
        settle().await;
        assert_eq!(
            starts.load(Ordering::SeqCst),
            2,
            "regaining it starts again"
        );

        stop.send_replace(true);
        task.await.expect("lead returns");
        assert_eq!(
            ends.load(Ordering::SeqCst),
            2,
            "shutdown lets the running term finish"
        );
    }

    #[tokio::test]
    async fn shutdown_while_standing_by_returns_at_once() {
        let (_leading, leadership) = watch::channel(false);
        let starts = Arc::new(AtomicUsize::new(0));
        let ends = Arc::new(AtomicUsize::new(0));
        lead(leadership, async {}, counting(starts.clone(), ends)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn grace_is_a_third_of_the_duration_and_at_least_a_second() {
        let config = |secs| LeaseConfig {
            name: "l".into(),
            namespace: "n".into(),
            identity: "i".into(),
            duration: Duration::from_secs(secs),
        };
        assert_eq!(config(15).grace(), Duration::from_secs(5));
        assert_eq!(config(2).grace(), Duration::from_secs(1));
    }
}
