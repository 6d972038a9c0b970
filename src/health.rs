//! Whether the controller's watches keep up with the API server.
//!
//! Each watch (the process's one FederationEnablement watch, which the controller and the HTTP
//! cache share, the owned-object watches, the leader election) reports its successes and failures here. A watch
//! that has been failing without a break for longer than `--watch-stall-seconds` makes `/healthz`
//! fail, so that the kubelet restarts a replica that is stuck behind a dead watch rather than
//! leaving it up, healthy-looking and serving stale data.
//!
//! A watch that was re-established after an outage and then sees no change reports nothing, so
//! "failing without a break" is read from the errors alone: a failing watch retries at least every
//! [`WATCH_RETRY_CAP`], so a run of errors whose last one is older than [`QUIET_AFTER`] is over.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt, future};
use kube::runtime::utils::Backoff;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// The longest a watch waits between two attempts while the API server is unreachable, so that
/// it is back within this long of the API server's return.
pub const WATCH_RETRY_CAP: Duration = Duration::from_secs(8);
/// The first retry of a failed watch.
const WATCH_RETRY_FIRST: Duration = Duration::from_millis(500);
/// A run of errors is over when no error came for this long (a few retries of a failing watch).
pub const QUIET_AFTER: Duration = Duration::from_secs(30);
/// `--watch-stall-seconds`' default.
pub const DEFAULT_WATCH_STALL: Duration = Duration::from_secs(120);

/// The health of every watch, shared by the controller, the HTTP cache and `/healthz`.
#[derive(Clone)]
pub struct WatchHealth {
    failing: Arc<Mutex<BTreeMap<&'static str, FailingRun>>>,
    stall_after: Duration,
}

/// An unbroken run of errors of one watch.
#[derive(Clone, Debug)]
struct FailingRun {
    since: Instant,
    last: Instant,
    error: String,
}

/// A watch failing for longer than the stall limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stall {
    pub watch: &'static str,
    pub failing_for: Duration,
    pub last_error: String,
}

impl Default for WatchHealth {
    fn default() -> Self {
        Self::new(DEFAULT_WATCH_STALL)
    }
}

impl WatchHealth {
    pub fn new(stall_after: Duration) -> Self {
        WatchHealth {
            failing: Arc::default(),
            stall_after,
        }
    }

    fn runs(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, FailingRun>> {
        // A panic while holding this lock cannot leave the map half-written: every change is one
        // insert or remove.
        self.failing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The watch delivered something: any run of errors is over.
    pub fn succeeded(&self, watch: &'static str) {
        if let Some(run) = self.runs().remove(watch) {
            info!(
                watch,
                failed_for = ?run.last.duration_since(run.since),
                "watch recovered"
            );
        }
    }

    /// The watch failed. Logged as a warning at the start of a run, then at debug level.
    pub fn failed(&self, watch: &'static str, error: &dyn Display) {
        let now = Instant::now();
        let error = error.to_string();
        let mut runs = self.runs();
        let run = runs.entry(watch).or_insert_with(|| FailingRun {
            since: now,
            last: now,
            error: String::new(),
        });
        if now.duration_since(run.last) > QUIET_AFTER {
            run.since = now;
        }
        let starts = run.since == now;
        run.last = now;
        run.error = error;
        if starts {
            warn!(watch, error = %run.error, "watch failed; retrying with backoff");
        } else {
            debug!(watch, error = %run.error, "watch still failing");
        }
    }

    /// The watches failing without a break for longer than the stall limit.
    pub fn stalls(&self) -> Vec<Stall> {
        let now = Instant::now();
        self.runs()
            .iter()
            .filter(|(_, run)| now.duration_since(run.last) <= QUIET_AFTER)
            .map(|(watch, run)| Stall {
                watch,
                failing_for: now.duration_since(run.since),
                last_error: run.error.clone(),
            })
            .filter(|stall| stall.failing_for > self.stall_after)
            .collect()
    }

    /// Reports every item of a watch stream: errors are logged and dropped (the stream retries by
    /// itself, with its own backoff), events are passed on.
    pub fn observe<S, T, E>(
        &self,
        watch: &'static str,
        events: S,
    ) -> impl Stream<Item = T> + use<S, T, E>
    where
        S: Stream<Item = Result<T, E>>,
        E: Display,
    {
        let health = self.clone();
        events.filter_map(move |item| {
            future::ready(match item {
                Ok(event) => {
                    health.succeeded(watch);
                    Some(event)
                }
                Err(error) => {
                    health.failed(watch, &error);
                    None
                }
            })
        })
    }
}

/// The backoff of every watch: exponential from half a second up to [`WATCH_RETRY_CAP`], with
/// jitter so that replicas do not retry in step, and reset by the first success.
pub struct WatchBackoff {
    builder: backon::ExponentialBuilder,
    current: backon::ExponentialBackoff,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        use backon::BackoffBuilder;
        let builder = backon::ExponentialBuilder::default()
            .with_min_delay(WATCH_RETRY_FIRST)
            .with_max_delay(WATCH_RETRY_CAP)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        WatchBackoff {
            builder,
            current: builder.build(),
        }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        // Jitter may add up to the first delay on top of the cap; keep the cap a cap.
        self.current.next().map(|d| d.min(WATCH_RETRY_CAP))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        use backon::BackoffBuilder;
        self.current = self.builder.build();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_secs(120);

    #[tokio::test(start_paused = true)]
    async fn a_watch_failing_longer_than_the_stall_limit_is_stalled() {
        let health = WatchHealth::new(STALL);
        for _ in 0..=(STALL.as_secs() / 10) {
            health.failed("FederationEnablement", &"connection refused");
            tokio::time::advance(Duration::from_secs(10)).await;
        }
        let stalls = health.stalls();
        assert_eq!(stalls.len(), 1, "{stalls:?}");
        assert_eq!(stalls[0].watch, "FederationEnablement");
        assert_eq!(stalls[0].last_error, "connection refused");
        assert!(stalls[0].failing_for > STALL);
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_ends_the_run() {
        let health = WatchHealth::new(STALL);
        for _ in 0..20 {
            health.failed("Node", &"connection refused");
            tokio::time::advance(Duration::from_secs(10)).await;
        }
        health.succeeded("Node");
        assert_eq!(health.stalls(), []);
        health.failed("Node", &"connection refused");
        assert_eq!(health.stalls(), [], "a new run starts from zero");
    }

    #[tokio::test(start_paused = true)]
    async fn errors_far_apart_are_separate_runs_and_a_quiet_watch_is_not_stalled() {
        let health = WatchHealth::new(STALL);
        for _ in 0..10 {
            health.failed("Secret", &"too old resource version");
            tokio::time::advance(QUIET_AFTER + Duration::from_secs(1)).await;
        }
        assert_eq!(
            health.stalls(),
            [],
            "one error every few minutes is no stall"
        );

        for _ in 0..20 {
            health.failed("Secret", &"connection refused");
            tokio::time::advance(Duration::from_secs(10)).await;
        }
        assert_eq!(health.stalls().len(), 1);
        // Re-established and idle: no more errors, and no event to report either.
        tokio::time::advance(QUIET_AFTER + Duration::from_secs(1)).await;
        assert_eq!(health.stalls(), []);
    }

    #[tokio::test(start_paused = true)]
    async fn observe_drops_errors_and_reports_both() {
        let health = WatchHealth::new(Duration::from_secs(5));
        let items = futures::stream::iter(vec![Err("refused"), Ok(1), Err("refused"), Ok(2)]);
        let seen: Vec<i32> = health.observe("Job", items).collect().await;
        assert_eq!(seen, [1, 2]);
        assert_eq!(health.runs().len(), 0, "the last item was a success");
    }

    #[test]
    fn the_backoff_grows_to_its_cap_and_resets() {
        let mut backoff = WatchBackoff::default();
        let delays: Vec<Duration> = backoff.by_ref().take(12).collect();
        assert!(delays[0] >= WATCH_RETRY_FIRST && delays[0] < 2 * WATCH_RETRY_FIRST);
        assert!(delays.iter().all(|d| *d <= WATCH_RETRY_CAP));
        assert_eq!(delays[11], WATCH_RETRY_CAP);
        backoff.reset();
        assert!(backoff.next().expect("never gives up") < 2 * WATCH_RETRY_FIRST);
    }
}
