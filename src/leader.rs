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

/// Joins the election. The receiver says whether this replica leads now; dropping every
/// receiver releases the lease, so a standby takes over at once.
pub async fn join(
    client: Client,
    config: &LeaseConfig,
) -> Result<(watch::Receiver<bool>, Election), LeaseManagerError> {
    let first = manager(&client, config).await?;
    let (leading, receiver) = watch::channel(false);
    let task = tokio::spawn(campaign(client, config.clone(), first, leading));
    Ok((receiver, task))
}

/// Keeps `leading` in step with the lease until every receiver is gone, then releases it.
async fn campaign(
    client: Client,
    config: LeaseConfig,
    mut current: LeaseManager,
    leading: watch::Sender<bool>,
) -> Result<(), LeaseManagerError> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), &config.namespace);
    loop {
        let (mut state, task) = current.watch().await;
        let mut poll = tokio::time::interval(STANDBY_POLL);
        let released_elsewhere = loop {
            tokio::select! {
                _ = leading.closed() => break false,
                changed = state.changed() => {
                    if changed.is_err() {
                        // The manager's task ended on an error it could not recover from.
                        leading.send_replace(false);
                        return match task.await {
                            Ok(result) => result.map(drop),
                            Err(error) => {
                                warn!(%error, "leader election task failed");
                                Ok(())
                            }
                        };
                    }
                    leading.send_replace(*state.borrow());
                }
                _ = poll.tick(), if !*state.borrow() => {
                    let held = leases
                        .get_opt(&config.name)
                        .await
                        .ok()
                        .flatten()
                        .and_then(|lease| lease.spec)
                        .and_then(|spec| spec.holder_identity);
                    if held.is_none() {
                        break true;
                    }
                }
            }
        };
        // Dropping the state ends the manager's task, which releases the lease if it holds it.
        drop(state);
        match task.await {
            Ok(result) => {
                result?;
            }
            Err(error) => warn!(%error, "leader election task failed"),
        }
        if !released_elsewhere {
            leading.send_replace(false);
            return Ok(());
        }
        // Released while this replica stood by: a fresh manager reads the lease and takes it,
        // where the old one would sleep until the last renewal expired.
        info!("the leader released the lease; taking over");
        current = manager(&client, &config).await?;
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
