//! When to reconcile again without a watch event: the requeue policy of the job and the
//! teardown, decided from the status they leave.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::{NamespaceState, duration_until, reasons, step};
use crate::api::{FederationEnablementStatus, JobPhase, SubJobPhase, SubJobType};

/// How often a successful job's objects are checked for drift when no watch event comes.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(300);
/// How often a duplicate enablement checks whether the fleet's owner is gone.
pub const DUPLICATE_RECHECK_INTERVAL: Duration = Duration::from_secs(30);
/// How often to look again at a control-plane namespace that is still being deleted.
pub const NAMESPACE_TERMINATING_RECHECK: Duration = Duration::from_secs(5);
/// How often to look again for the label on a foreign control-plane namespace that lacks it.
pub const NAMESPACE_LABEL_RECHECK: Duration = Duration::from_secs(30);
/// A teardown step in flight is looked at again at least this often.
pub const TEARDOWN_POLL_CAP: Duration = Duration::from_secs(5);
/// How often an attempt in flight is looked at when its executor names no interval.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(15);

/// How often each executor wants an attempt in flight looked at when no watch event comes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollIntervals(BTreeMap<SubJobType, Duration>);

impl PollIntervals {
    pub fn new(intervals: impl IntoIterator<Item = (SubJobType, Duration)>) -> Self {
        PollIntervals(intervals.into_iter().collect())
    }

    pub fn get(&self, sub_job: SubJobType) -> Duration {
        self.0
            .get(&sub_job)
            .copied()
            .unwrap_or(DEFAULT_POLL_INTERVAL)
    }
}

/// The shortest of the durations given (None: wait for a change).
#[derive(Clone, Copy, Debug, Default)]
struct Soonest(Option<Duration>);

impl Soonest {
    fn at_most(&mut self, after: Duration) {
        self.0 = Some(self.0.map_or(after, |a| a.min(after)));
    }
}

/// The job: its backoff and timeout deadlines, attempts in flight at their executor's pace, a
/// successful job's maintenance, a duplicate's recheck, a namespace still being deleted.
pub(super) fn after_job(
    status: &FederationEnablementStatus,
    timeout: Duration,
    poll: &PollIntervals,
    namespace: NamespaceState,
    now: Timestamp,
) -> Option<Duration> {
    let mut soonest = Soonest::default();
    for sub_job in &status.sub_jobs {
        if let Some(at) = step::next_deadline(sub_job, timeout) {
            soonest.at_most(duration_until(now, at));
        }
        if step::in_flight(sub_job) {
            soonest.at_most(poll.get(sub_job.type_));
        }
    }
    match (status.phase, status.reason.as_deref()) {
        (Some(JobPhase::Success), _) => soonest.at_most(MAINTENANCE_INTERVAL),
        // Neither the fleet's owner going nor a namespace annotation is an event of this
        // enablement's: look again.
        (
            Some(JobPhase::Failed),
            Some(reasons::DUPLICATE_CLUSTER_GROUP_ID | reasons::FLEET_NOT_ENTITLED),
        ) => soonest.at_most(DUPLICATE_RECHECK_INTERVAL),
        _ => {}
    }
    match namespace {
        NamespaceState::Terminating => soonest.at_most(NAMESPACE_TERMINATING_RECHECK),
        // A label on a namespace is no event of the enablement's: look again for it.
        NamespaceState::Unlabelled | NamespaceState::NotCreatedHere => {
            soonest.at_most(NAMESPACE_LABEL_RECHECK)
        }
        NamespaceState::Ready | NamespaceState::Unchecked => {}
    }
    soonest.0
}

/// The teardown: its deadlines, and the step in flight at least every [`TEARDOWN_POLL_CAP`].
pub(super) fn after_teardown(
    status: &FederationEnablementStatus,
    timeout: Duration,
    poll: &PollIntervals,
    now: Timestamp,
) -> Option<Duration> {
    let mut soonest = Soonest::default();
    for teardown_step in status.teardown.iter().flat_map(|t| &t.steps) {
        if let Some(at) = step::next_deadline(teardown_step, timeout) {
            soonest.at_most(duration_until(now, at));
        }
        if teardown_step.phase == SubJobPhase::Running && step::in_flight(teardown_step) {
            soonest.at_most(
                poll.get(teardown_step.type_.undoes())
                    .min(TEARDOWN_POLL_CAP),
            );
        }
    }
    soonest.0
}
