use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use super::*;
use crate::api::{
    Chart, ChartProfile, FederationEnablementSpec, FederationEnablementStatus, JobPhase,
    SubJobPhase, SubJobType, TeardownStepType,
};

use SubJobType::{CreateCert, CreateNetworkResource, CreateNode, InstallFederationChart};

fn spec() -> FederationEnablementSpec {
    serde_json::from_value(serde_json::json!({
        "clusterGroupID": "fleet-a",
        "chart": {"repository": "oci://registry.example/charts", "name": "federation", "version": "1.2.3"},
    }))
    .expect("valid spec")
}

/// A Generic install in `team-a` with the runner image `image`.
fn install_facts(image: &str) -> InstallFacts {
    InstallFacts {
        control_plane_namespace: "team-a".into(),
        namespaces: vec!["team-a".into()],
        release: "fleet-a".into(),
        release_namespace: "team-a".into(),
        runner_image: image.into(),
        installer_cluster_role: "federation-chart-installer".into(),
        cluster_scoped: false,
        profile: crate::api::ChartProfile::Generic,
    }
}

fn t0() -> Timestamp {
    "2026-01-15T08:00:00Z".parse().expect("timestamp")
}

fn at(seconds: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(seconds)
}

struct Ids(u32);

impl Ids {
    fn next(&mut self) -> String {
        self.0 += 1;
        format!("uid-{}", self.0)
    }
}

/// Drives `decide` the way the controller does.
struct Harness {
    spec: FederationEnablementSpec,
    status: FederationEnablementStatus,
    retry: Option<String>,
    blocked: Option<Blocked>,
    namespace_ready: bool,
    /// The version a run starting now would install (the controller's default, or the spec's).
    chart_version: String,
    /// Where and with what a run starting now installs.
    install: InstallFacts,
    poll: PollIntervals,
    ids: Ids,
}

impl Harness {
    fn new() -> Self {
        Harness {
            spec: spec(),
            status: FederationEnablementStatus::default(),
            retry: None,
            blocked: None,
            namespace_ready: true,
            chart_version: "1.2.3".into(),
            install: install_facts("runner:1"),
            poll: PollIntervals::default(),
            ids: Ids(0),
        }
    }

    fn step(&mut self, now: Timestamp, observations: &[(SubJobType, Observation)]) -> Decision {
        let input = JobInput {
            spec: &self.spec,
            install: &self.install,
            chart_version: &self.chart_version,
            generation: Some(1),
            retry_annotation: self.retry.as_deref(),
            blocked: self.blocked.clone(),
            namespace: if self.namespace_ready {
                NamespaceState::Ready
            } else {
                NamespaceState::Unchecked
            },
            poll: &self.poll,
            now,
        };
        let observations: BTreeMap<_, _> = observations.iter().cloned().collect();
        let ids = &mut self.ids;
        let decision = decide(&input, &self.status, &observations, &mut || ids.next());
        self.status = decision.status.clone();
        decision
    }

    fn sub_job(&self, t: SubJobType) -> &crate::api::SubJobStatus {
        self.status.sub_job(t).expect("subjob present")
    }

    fn phase(&self) -> JobPhase {
        self.status.phase.expect("phase set")
    }

    /// Runs the job to Success with every executor succeeding at once.
    fn run_to_success(&mut self, now: Timestamp) {
        self.succeed_waves(now, 4);
        assert_eq!(self.phase(), JobPhase::Success);
    }

    /// Every executor the next `waves` decisions run succeeds at once.
    fn succeed_waves(&mut self, now: Timestamp, waves: usize) {
        for _ in 0..waves {
            let d = self.step(now, &[]);
            let obs: Vec<_> = runs(&d)
                .iter()
                .map(|(t, _)| (*t, Observation::succeeded()))
                .collect();
            self.step(now, &obs);
        }
    }
}

/// The subjobs the decision runs an executor for, in order, and how.
fn runs(d: &Decision) -> Vec<(SubJobType, Mode)> {
    d.commands
        .iter()
        .filter_map(|c| match c {
            Command::Run { sub_job, mode, .. } => Some((*sub_job, *mode)),
            _ => None,
        })
        .collect()
}

fn attempts(d: &Decision) -> Vec<(SubJobType, Mode)> {
    runs(d)
}

/// The teardown steps the decision runs, with their attempt numbers.
fn undos(d: &Decision) -> Vec<(TeardownStepType, i32)> {
    d.commands
        .iter()
        .filter_map(|c| match c {
            Command::Undo { step, attempt, .. } => Some((*step, *attempt)),
            _ => None,
        })
        .collect()
}

#[test]
fn new_enablement_starts_node_and_network_together() {
    let mut h = Harness::new();
    let d = h.step(t0(), &[]);
    assert_eq!(
        attempts(&d),
        vec![
            (CreateNode, Mode::Attempt(1)),
            (CreateNetworkResource, Mode::Attempt(1))
        ]
    );
    assert_eq!(h.phase(), JobPhase::Running);
    assert_eq!(h.status.progress.as_deref(), Some("0/4"));
    assert_eq!(
        h.status.current_sub_jobs.as_deref(),
        Some("CreateNode,CreateNetworkResource")
    );
    let types: Vec<_> = h.status.sub_jobs.iter().map(|s| s.type_).collect();
    assert_eq!(
        types,
        SubJobType::ALL.to_vec(),
        "always all four, in DAG order"
    );
    assert!(
        d.transitions
            .contains(&Transition::SubJobStarted(CreateNode))
    );
}

#[test]
fn cert_waits_until_node_and_network_have_succeeded() {
    let mut h = Harness::new();
    h.step(t0(), &[]);
    let d = h.step(at(1), &[(CreateNode, Observation::succeeded())]);
    assert!(runs(&d).iter().all(|(t, _)| *t != CreateCert));
    assert_eq!(h.sub_job(CreateCert).phase, SubJobPhase::Pending);
    let d = h.step(at(2), &[(CreateNetworkResource, Observation::succeeded())]);
    assert_eq!(attempts(&d), vec![(CreateCert, Mode::Attempt(1))]);
}

#[test]
fn chart_starts_only_after_cert_succeeded() {
    let mut h = Harness::new();
    h.step(t0(), &[]);
    h.step(
        at(1),
        &[
            (CreateNode, Observation::succeeded()),
            (CreateNetworkResource, Observation::succeeded()),
        ],
    );
    assert_eq!(
        h.sub_job(InstallFederationChart).phase,
        SubJobPhase::Pending
    );
    let d = h.step(at(2), &[(CreateCert, Observation::succeeded())]);
    assert_eq!(
        attempts(&d),
        vec![(InstallFederationChart, Mode::Attempt(1))]
    );
    let d = h.step(at(3), &[(InstallFederationChart, Observation::succeeded())]);
    assert_eq!(h.phase(), JobPhase::Success);
    assert_eq!(h.status.progress.as_deref(), Some("4/4"));
    assert_eq!(h.status.current_sub_jobs, None);
    assert_eq!(h.status.completion_time.as_ref().map(|t| t.0), Some(at(3)));
    assert!(d.transitions.contains(&Transition::JobSucceeded));
    let ready = h.status.condition(CONDITION_READY).expect("Ready");
    assert_eq!(ready.status, "True");
    let progressing = h
        .status
        .condition(CONDITION_PROGRESSING)
        .expect("Progressing");
    assert_eq!(progressing.status, "False");
}

#[test]
fn progressing_observation_is_recorded_and_the_subjob_stays_running() {
    let mut h = Harness::new();
    h.step(t0(), &[]);
    let mut extend = BTreeMap::new();
    extend.insert("JobExtendParamKeyElbID".to_string(), "elb-1".to_string());
    h.step(
        at(1),
        &[(
            CreateNetworkResource,
            Observation::Progressing {
                reason: "WaitingForLoadBalancer".into(),
                message: "no ingress yet".into(),
                extend_param: extend,
            },
        )],
    );
    let network = h.sub_job(CreateNetworkResource);
    assert_eq!(network.phase, SubJobPhase::Running);
    assert_eq!(network.reason.as_deref(), Some("WaitingForLoadBalancer"));
    assert_eq!(network.extend_param["JobExtendParamKeyElbID"], "elb-1");
    assert_eq!(network.update_time.as_ref().map(|t| t.0), Some(at(1)));
}

#[test]
fn failed_attempt_is_retried_after_exponential_backoff() {
    let mut h = Harness::new();
    h.step(t0(), &[]);
    let d = h.step(
        at(1),
        &[(CreateNode, Observation::failed("ApiError", "boom"))],
    );
    let node = h.sub_job(CreateNode);
    assert_eq!(node.phase, SubJobPhase::Running);
    assert_eq!(node.attempts, 1);
    assert_eq!(node.reason.as_deref(), Some("ApiError"));
    assert_eq!(node.next_attempt_time.as_ref().map(|t| t.0), Some(at(6)));
    assert!(runs(&d).iter().all(|(t, _)| *t != CreateNode));
    assert_eq!(d.requeue_after, Some(Duration::from_secs(5)));

    let d = h.step(at(5), &[]);
    assert!(
        runs(&d).iter().all(|(t, _)| *t != CreateNode),
        "not before the backoff"
    );
    let d = h.step(at(6), &[]);
    assert!(runs(&d).contains(&(CreateNode, Mode::Attempt(2))));
    h.step(
        at(7),
        &[(CreateNode, Observation::failed("ApiError", "boom again"))],
    );
    let node = h.sub_job(CreateNode);
    assert_eq!(
        node.message.as_deref(),
        Some("boom again"),
        "each attempt replaces the message"
    );
    assert_eq!(node.next_attempt_time.as_ref().map(|t| t.0), Some(at(17)));
}

#[test]
fn backoff_doubles_from_five_seconds_and_is_capped_at_five_minutes() {
    assert_eq!(backoff_delay(1), Duration::from_secs(5));
    assert_eq!(backoff_delay(2), Duration::from_secs(10));
    assert_eq!(backoff_delay(3), Duration::from_secs(20));
    assert_eq!(backoff_delay(7), Duration::from_secs(300));
    assert_eq!(backoff_delay(1000), Duration::from_secs(300));
}

fn fail_node_until_given_up(h: &mut Harness) -> Timestamp {
    let mut now = t0();
    h.step(now, &[]);
    loop {
        now += SignedDuration::from_secs(1);
        h.step(
            now,
            &[(
                CreateNode,
                Observation::failed("ApiError", "nodes unavailable"),
            )],
        );
        if h.sub_job(CreateNode).phase == SubJobPhase::Failed {
            return now;
        }
        now = h
            .sub_job(CreateNode)
            .next_attempt_time
            .as_ref()
            .expect("backoff")
            .0;
        h.step(now, &[]);
    }
}

#[test]
fn failed_subjob_is_retried_until_backoff_limit() {
    let mut h = Harness::new();
    h.spec.backoff_limit = 2;
    fail_node_until_given_up(&mut h);
    assert_eq!(
        h.sub_job(CreateNode).attempts,
        3,
        "backoffLimit + 1 attempts"
    );
}

#[test]
fn running_subjobs_finish_before_the_job_fails_and_nothing_new_starts() {
    let mut h = Harness::new();
    h.spec.backoff_limit = 0;
    h.step(t0(), &[]);
    h.step(
        at(1),
        &[(CreateNode, Observation::failed("InsufficientNodes", "0/1"))],
    );
    assert_eq!(h.sub_job(CreateNode).phase, SubJobPhase::Failed);
    assert_eq!(
        h.phase(),
        JobPhase::Running,
        "CreateNetworkResource still runs"
    );
    let d = h.step(at(2), &[(CreateNetworkResource, Observation::succeeded())]);
    assert_eq!(h.phase(), JobPhase::Failed);
    assert_eq!(h.status.reason.as_deref(), Some("InsufficientNodes"));
    assert_eq!(h.sub_job(CreateCert).phase, SubJobPhase::Pending);
    assert!(d.commands.is_empty());
    assert!(d.transitions.iter().any(
        |t| matches!(t, Transition::JobFailed { reason, .. } if reason == "InsufficientNodes")
    ));
    assert_eq!(
        h.status
            .condition(CONDITION_READY)
            .map(|c| c.status.as_str()),
        Some("False")
    );
}

#[test]
fn attempt_that_outlives_its_timeout_fails_with_reason_timeout() {
    let mut h = Harness::new();
    h.spec.sub_job_timeout_seconds = 60;
    // Executors that want no look before the deadline.
    h.poll = PollIntervals::new(SubJobType::ALL.map(|t| (t, Duration::from_secs(120))));
    h.step(t0(), &[]);
    let d = h.step(at(30), &[]);
    assert_eq!(d.requeue_after, Some(Duration::from_secs(30)));
    assert_eq!(h.sub_job(CreateNode).phase, SubJobPhase::Running);
    let d = h.step(at(60), &[]);
    let node = h.sub_job(CreateNode);
    assert_eq!(node.reason.as_deref(), Some("Timeout"));
    assert!(node.next_attempt_time.is_some());
    assert!(runs(&d).iter().all(|(t, _)| *t != CreateNode));
}

#[test]
fn retry_annotation_resets_failed_subjobs_and_keeps_succeeded_ones() {
    let mut h = Harness::new();
    h.spec.backoff_limit = 0;
    h.step(t0(), &[]);
    h.step(
        at(1),
        &[
            (CreateNode, Observation::succeeded()),
            (
                CreateNetworkResource,
                Observation::failed("NameConflict", "taken"),
            ),
        ],
    );
    assert_eq!(h.phase(), JobPhase::Failed);
    let job_uid = h.status.job_uid.clone();
    let network_uid = h.sub_job(CreateNetworkResource).uid.clone();

    h.retry = Some("1".into());
    let d = h.step(at(2), &[]);
    assert_eq!(h.status.last_handled_retry.as_deref(), Some("1"));
    assert_eq!(h.status.job_uid, job_uid);
    let network = h.sub_job(CreateNetworkResource);
    assert_eq!(network.uid, network_uid);
    assert_eq!(network.attempts, 1, "reset to 0 then started again");
    assert_eq!(network.phase, SubJobPhase::Running);
    assert_eq!(h.sub_job(CreateNode).phase, SubJobPhase::Success);
    assert_eq!(
        attempts(&d),
        vec![(CreateNetworkResource, Mode::Attempt(1))]
    );
    assert_eq!(h.phase(), JobPhase::Running);
    assert_eq!(h.status.completion_time, None);
}

#[test]
fn retry_value_present_at_creation_or_already_handled_does_nothing() {
    let mut h = Harness::new();
    h.spec.backoff_limit = 0;
    h.retry = Some("at-creation".into());
    h.step(t0(), &[]);
    assert_eq!(h.status.last_handled_retry.as_deref(), Some("at-creation"));
    h.step(at(1), &[(CreateNode, Observation::failed("ApiError", "x"))]);
    h.step(at(2), &[(CreateNetworkResource, Observation::succeeded())]);
    assert_eq!(h.phase(), JobPhase::Failed);
    let before = h.status.clone();
    let d = h.step(at(3), &[]);
    assert_eq!(h.phase(), JobPhase::Failed);
    assert!(d.commands.is_empty());
    assert_eq!(h.status, before, "nothing changed, nothing to write");
}

#[test]
fn spec_change_starts_a_new_job_run() {
    let mut h = Harness::new();
    h.run_to_success(t0());
    let old_uid = h.status.job_uid.clone();
    h.spec.control_plane.replicas = 3;
    let d = h.step(at(10), &[]);
    assert_ne!(h.status.job_uid, old_uid);
    assert_eq!(h.phase(), JobPhase::Running);
    assert_eq!(h.sub_job(CreateNode).attempts, 1);
    assert_eq!(h.sub_job(CreateCert).phase, SubJobPhase::Pending);
    assert_eq!(h.status.creation_time.as_ref().map(|t| t.0), Some(at(10)));
    assert_eq!(runs(&d).len(), 2);
}

#[test]
fn suspend_stops_new_starts_without_a_new_run() {
    let mut h = Harness::new();
    h.step(t0(), &[]);
    let uid = h.status.job_uid.clone();
    h.spec.suspend = true;
    let d = h.step(
        at(1),
        &[
            (CreateNode, Observation::succeeded()),
            (CreateNetworkResource, Observation::succeeded()),
        ],
    );
    assert_eq!(
        h.status.job_uid, uid,
        "suspend is not part of the spec hash"
    );
    assert_eq!(
        h.sub_job(CreateNode).phase,
        SubJobPhase::Success,
        "running ones observed"
    );
    assert_eq!(h.sub_job(CreateCert).phase, SubJobPhase::Pending);
    assert!(d.commands.is_empty());
    let progressing = h
        .status
        .condition(CONDITION_PROGRESSING)
        .expect("Progressing");
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_str()),
        ("False", "Suspended")
    );

    h.spec.suspend = false;
    let d = h.step(at(2), &[]);
    assert_eq!(attempts(&d), vec![(CreateCert, Mode::Attempt(1))]);
}

#[test]
fn blocked_job_fails_at_once_creates_nothing_and_resumes_when_unblocked() {
    let mut h = Harness::new();
    h.blocked = Some(Blocked {
        reason: reasons::DUPLICATE_CLUSTER_GROUP_ID,
        message: "fleet-a is owned by ns/other".into(),
    });
    let d = h.step(t0(), &[]);
    assert!(d.commands.is_empty());
    assert!(!d.commands.contains(&Command::EnsureNamespace));
    assert_eq!(h.phase(), JobPhase::Failed);
    assert_eq!(h.status.reason.as_deref(), Some("DuplicateClusterGroupID"));
    assert!(
        h.status
            .sub_jobs
            .iter()
            .all(|s| s.phase == SubJobPhase::Pending)
    );

    h.blocked = None;
    let d = h.step(at(1), &[]);
    assert_eq!(h.phase(), JobPhase::Running);
    assert_eq!(runs(&d).len(), 2);
}

#[test]
fn missing_namespace_is_ensured_before_any_subjob_starts() {
    let mut h = Harness::new();
    h.namespace_ready = false;
    let d = h.step(t0(), &[]);
    assert!(d.commands.contains(&Command::EnsureNamespace));
    assert!(runs(&d).is_empty());
    assert_eq!(h.phase(), JobPhase::Pending);
    assert_eq!(h.status.reason.as_deref(), Some("WaitingForNamespace"));
}

#[test]
fn a_decision_that_changes_nothing_returns_the_same_status() {
    let mut h = Harness::new();
    h.step(t0(), &[]);
    h.step(
        at(1),
        &[(
            CreateNode,
            Observation::progressing("InsufficientNodes", "0/1 nodes"),
        )],
    );
    let before = h.status.clone();
    h.step(
        at(2),
        &[(
            CreateNode,
            Observation::progressing("InsufficientNodes", "0/1 nodes"),
        )],
    );
    assert_eq!(h.status, before);
}

#[test]
fn success_is_maintained_and_drift_sets_degraded() {
    let mut h = Harness::new();
    h.run_to_success(t0());
    let d = h.step(at(10), &[]);
    assert_eq!(runs(&d).len(), 4);
    assert!(runs(&d).iter().all(|(_, m)| *m == Mode::Maintain));

    let mut obs: Vec<_> = SubJobType::ALL
        .iter()
        .map(|t| (*t, Observation::succeeded()))
        .collect();
    obs[1].1 = Observation::progressing("WaitingForLoadBalancer", "service recreated");
    h.step(at(11), &obs);
    assert_eq!(h.phase(), JobPhase::Success);
    let degraded = h.status.condition(CONDITION_DEGRADED).expect("Degraded");
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "WaitingForLoadBalancer")
    );
    assert_eq!(
        h.status
            .condition(CONDITION_READY)
            .map(|c| c.status.as_str()),
        Some("False")
    );

    let healthy: Vec<_> = SubJobType::ALL
        .iter()
        .map(|t| (*t, Observation::succeeded()))
        .collect();
    h.step(at(12), &healthy);
    let degraded = h.status.condition(CONDITION_DEGRADED).expect("Degraded");
    assert_eq!(degraded.status, "False");
    assert_eq!(
        h.status
            .condition(CONDITION_READY)
            .map(|c| c.status.as_str()),
        Some("True")
    );
}

#[test]
fn recorded_times_never_run_backwards_when_the_clock_does() {
    let mut h = Harness::new();
    h.step(at(100), &[]);
    h.step(at(50), &[(CreateNode, Observation::succeeded())]);
    let node = h.sub_job(CreateNode);
    assert!(
        node.completion_time.as_ref().expect("completed").0
            >= node.start_time.as_ref().expect("started").0
    );
    assert_eq!(h.status.update_time.as_ref().map(|t| t.0), Some(at(100)));
}

#[test]
fn spec_hash_ignores_suspend_only() {
    let a = spec();
    let mut b = a.clone();
    b.suspend = true;
    assert_eq!(spec_hash(&a), spec_hash(&b));
    b.chart = Chart {
        version: Some("2.0.0".into()),
        ..b.chart
    };
    assert_ne!(spec_hash(&a), spec_hash(&b));
}

fn run_teardown(
    status: &FederationEnablementStatus,
    now: Timestamp,
    observations: &[(TeardownStepType, Observation)],
    ids: &mut Ids,
) -> Decision {
    let observations: BTreeMap<_, _> = observations.iter().cloned().collect();
    let poll = PollIntervals::default();
    let installed = install_facts("runner:1");
    let input = TeardownInput {
        generation: Some(1),
        timeout: Duration::from_secs(600),
        refused: false,
        control_plane_namespace_gone: false,
        installed: &installed,
        poll: &poll,
        now,
    };
    decide_teardown(&input, status, &observations, &mut || ids.next())
}

#[test]
fn teardown_runs_its_steps_in_order_and_finishes() {
    let mut ids = Ids(100);
    let mut status = FederationEnablementStatus::default();
    let mut now = t0();
    let mut order = Vec::new();
    loop {
        let d = run_teardown(&status, now, &[], &mut ids);
        let next = undos(&d).first().copied();
        status = d.status;
        assert_eq!(status.phase, Some(JobPhase::Deleting));
        let Some((step, _)) = next else {
            break;
        };
        order.push(step);
        let d = run_teardown(&status, now, &[(step, Observation::succeeded())], &mut ids);
        status = d.status;
        now += SignedDuration::from_secs(1);
        if d.finished {
            assert!(d.transitions.contains(&Transition::TeardownSucceeded));
            break;
        }
    }
    assert_eq!(order, TeardownStepType::ALL.to_vec());
    let teardown = status.teardown.expect("teardown");
    assert_eq!(teardown.phase, JobPhase::Success);
    assert_eq!(status.progress.as_deref(), Some("4/4"));
}

#[test]
fn failed_teardown_step_is_retried_without_limit_and_reported() {
    let mut ids = Ids(100);
    let d = run_teardown(&FederationEnablementStatus::default(), t0(), &[], &mut ids);
    assert!(d.transitions.contains(&Transition::TeardownStarted));
    let mut status = d.status;
    let mut now = t0();
    for attempt in 1..=10 {
        let d = run_teardown(
            &status,
            now,
            &[(
                TeardownStepType::UninstallFederationChart,
                Observation::failed("UninstallFailed", "helm says no"),
            )],
            &mut ids,
        );
        status = d.status;
        assert!(!d.finished);
        let teardown = status.teardown.as_ref().expect("teardown");
        assert_eq!(teardown.steps[0].attempts, attempt);
        assert_eq!(teardown.steps[0].phase, SubJobPhase::Running);
        assert_eq!(teardown.reason.as_deref(), Some("UninstallFailed"));
        assert_eq!(
            teardown.steps[1].phase,
            SubJobPhase::Pending,
            "never skipped"
        );
        now = teardown.steps[0]
            .next_attempt_time
            .as_ref()
            .expect("backoff")
            .0;
        let d = run_teardown(&status, now, &[], &mut ids);
        assert_eq!(
            undos(&d),
            vec![(TeardownStepType::UninstallFederationChart, attempt + 1)]
        );
        status = d.status;
    }
}

#[test]
fn attempts_in_flight_are_looked_at_at_their_executors_pace() {
    let mut h = Harness::new();
    h.poll = PollIntervals::new([
        (CreateNode, Duration::from_secs(7)),
        (CreateNetworkResource, Duration::from_secs(9)),
    ]);
    let d = h.step(t0(), &[]);
    assert_eq!(d.requeue_after, Some(Duration::from_secs(7)));
    let d = h.step(at(1), &[(CreateNode, Observation::succeeded())]);
    assert_eq!(
        d.requeue_after,
        Some(Duration::from_secs(9)),
        "only what is still in flight"
    );
}

#[test]
fn success_is_checked_again_after_the_maintenance_interval() {
    let mut h = Harness::new();
    h.run_to_success(t0());
    let d = h.step(at(1), &[]);
    assert_eq!(d.requeue_after, Some(MAINTENANCE_INTERVAL));
}

#[test]
fn a_duplicate_checks_again_whether_the_fleet_is_free() {
    let mut h = Harness::new();
    h.blocked = Some(Blocked {
        reason: reasons::DUPLICATE_CLUSTER_GROUP_ID,
        message: "fleet-a is enabled by team-b/fleet-a".into(),
    });
    let d = h.step(t0(), &[]);
    assert_eq!(h.phase(), JobPhase::Failed);
    assert_eq!(d.requeue_after, Some(DUPLICATE_RECHECK_INTERVAL));
    h.blocked = Some(Blocked {
        reason: reasons::NOT_ALLOWED,
        message: "no".into(),
    });
    let d = h.step(at(1), &[]);
    assert_eq!(d.requeue_after, None, "a refusal waits for a change");
}

#[test]
fn a_terminating_namespace_holds_every_start_and_is_checked_again() {
    let mut h = Harness::new();
    let input = JobInput {
        spec: &h.spec,
        install: &h.install,
        chart_version: &h.chart_version,
        generation: Some(1),
        retry_annotation: None,
        blocked: None,
        namespace: NamespaceState::Terminating,
        poll: &h.poll,
        now: t0(),
    };
    let d = decide(&input, &h.status, &BTreeMap::new(), &mut || h.ids.next());
    assert!(d.commands.is_empty(), "{:?}", d.commands);
    assert_eq!(
        d.status.reason.as_deref(),
        Some(reasons::WAITING_FOR_NAMESPACE)
    );
    assert_eq!(d.requeue_after, Some(NAMESPACE_TERMINATING_RECHECK));
}

#[test]
fn a_started_job_needs_no_namespace_check() {
    let mut h = Harness::new();
    h.step(t0(), &[]);
    h.namespace_ready = false;
    let d = h.step(at(1), &[(CreateNode, Observation::succeeded())]);
    assert!(!d.commands.contains(&Command::EnsureNamespace));
}

#[test]
fn commands_carry_the_attempt_start_and_deadline() {
    let mut h = Harness::new();
    h.spec.sub_job_timeout_seconds = 60;
    h.step(t0(), &[]);
    let d = h.step(at(10), &[]);
    let facts = RunFacts {
        job_uid: h.status.job_uid.clone().expect("a run"),
        spec_hash: spec_hash(&h.spec),
        endpoint: None,
        chart_version: None,
        installed_before: false,
    };
    assert!(d.commands.contains(&Command::Run {
        sub_job: CreateNode,
        mode: Mode::Attempt(1),
        started_at: t0(),
        deadline: at(60),
        facts,
    }));
}

#[test]
fn a_refused_enablement_that_never_started_has_nothing_to_tear_down() {
    let mut h = Harness::new();
    h.blocked = Some(Blocked {
        reason: reasons::NOT_ALLOWED,
        message: "no".into(),
    });
    h.step(t0(), &[]);
    let poll = PollIntervals::default();
    let installed = install_facts("runner:1");
    let input = |refused| TeardownInput {
        generation: Some(1),
        timeout: Duration::from_secs(600),
        refused,
        control_plane_namespace_gone: false,
        installed: &installed,
        poll: &poll,
        now: at(1),
    };
    let d = decide_teardown(&input(true), &h.status, &BTreeMap::new(), &mut || {
        h.ids.next()
    });
    assert!(d.finished);
    assert!(d.commands.is_empty());
    assert_eq!(d.status, h.status, "nothing written");

    let d = decide_teardown(&input(false), &h.status, &BTreeMap::new(), &mut || {
        h.ids.next()
    });
    assert!(!d.finished, "allowed now: the teardown runs its steps");
    assert_eq!(undos(&d).len(), 1);
}

#[test]
fn a_teardown_step_in_flight_is_looked_at_every_few_seconds() {
    let mut ids = Ids(100);
    let d = run_teardown(&FederationEnablementStatus::default(), t0(), &[], &mut ids);
    assert_eq!(undos(&d).len(), 1);
    assert_eq!(d.requeue_after, Some(TEARDOWN_POLL_CAP));
}

/// The first teardown decision for `status`, undoing `installed`.
fn begin_teardown_of(
    status: &FederationEnablementStatus,
    refused: bool,
    installed: &InstallFacts,
) -> Decision {
    let poll = PollIntervals::default();
    let input = TeardownInput {
        generation: Some(1),
        timeout: Duration::from_secs(600),
        refused,
        control_plane_namespace_gone: false,
        installed,
        poll: &poll,
        now: at(100),
    };
    let mut ids = Ids(100);
    decide_teardown(&input, status, &BTreeMap::new(), &mut || ids.next())
}

/// A job that succeeded with `runner:1`, then got a new spec (`runner:2`): a new run whose
/// install has not started.
fn installed_then_changed() -> Harness {
    let mut h = Harness::new();
    h.run_to_success(t0());
    h.spec.chart.version = Some("2.0.0".into());
    h.install = install_facts("runner:2");
    h.step(at(1), &[]);
    assert_eq!(
        h.sub_job(InstallFederationChart).phase,
        SubJobPhase::Pending
    );
    assert_eq!(h.sub_job(InstallFederationChart).attempts, 0);
    h
}

#[test]
fn what_a_run_starts_is_recorded_and_a_new_run_does_not_reset_it() {
    let mut h = Harness::new();
    h.step(t0(), &[]);
    let created = h
        .status
        .created
        .clone()
        .expect("recorded when the first attempts start");
    assert_eq!(created.sub_jobs, vec![CreateNode, CreateNetworkResource]);
    assert_eq!(created.namespaces, vec!["team-a".to_string()]);
    assert_eq!(created.release, None, "no install started yet");

    let h = installed_then_changed();
    let created = h.status.created.clone().expect("record");
    assert_eq!(created.sub_jobs, SubJobType::ALL.to_vec());
    assert_eq!(created.release.as_deref(), Some("fleet-a"));
    assert_eq!(
        created.runner_image.as_deref(),
        Some("runner:1"),
        "the last install's image, until the new run's install starts"
    );
    assert_eq!(
        created.installer_cluster_role.as_deref(),
        Some("federation-chart-installer")
    );
}

#[test]
fn a_spec_change_never_skips_the_teardown_of_what_was_installed() {
    let h = installed_then_changed();
    // The live spec now says runner:2; the record says what installed.
    let installed = InstallFacts::recorded_or(h.status.created.as_ref(), install_facts("runner:2"));
    let d = begin_teardown_of(&h.status, true, &installed);
    assert!(!d.finished, "the install is there: the finalizer stays");
    let Some(Command::Undo {
        step,
        work_may_exist,
        installed: carried,
        ..
    }) = d.commands.first()
    else {
        panic!("an undo command: {:?}", d.commands);
    };
    assert_eq!(*step, TeardownStepType::UninstallFederationChart);
    assert!(*work_may_exist, "helm uninstall runs: a release may exist");
    assert_eq!(carried, &installed, "the uninstall uses what was installed");
    assert_eq!(
        carried.runner_image, "runner:1",
        "not the live spec's image"
    );
}

#[test]
fn the_uninstall_runs_where_the_release_is() {
    let h = installed_then_changed();
    let mut installed = install_facts("runner:1");
    installed.control_plane_namespace = "elsewhere".into();
    let d = begin_teardown_of(&h.status, false, &installed);
    let Some(Command::Undo {
        installed: carried, ..
    }) = d.commands.first()
    else {
        panic!("an undo command: {:?}", d.commands);
    };
    assert_eq!(carried.control_plane_namespace, "team-a");
}

/// The uninstall step of the first teardown decision for `status` runs helm uninstall.
fn assert_uninstall_runs(status: &FederationEnablementStatus) {
    let d = begin_teardown_of(status, true, &install_facts("runner:1"));
    assert!(!d.finished, "the install is there: the finalizer stays");
    assert!(
        matches!(
            d.commands.first(),
            Some(Command::Undo {
                step: TeardownStepType::UninstallFederationChart,
                work_may_exist: true,
                ..
            })
        ),
        "{:?}",
        d.commands
    );
}

#[test]
fn suspend_and_a_spec_change_never_skip_the_teardown_of_what_was_installed() {
    let mut h = Harness::new();
    h.run_to_success(t0());
    h.spec.suspend = true;
    h.spec.chart.version = Some("2.0.0".into());
    h.step(at(1), &[]);
    assert!(
        h.status
            .sub_jobs
            .iter()
            .all(|s| s.phase == SubJobPhase::Pending && s.attempts == 0),
        "a new run, suspended: nothing started"
    );
    assert_uninstall_runs(&h.status);
}

#[test]
fn a_retry_never_skips_the_teardown_of_what_was_installed() {
    let mut h = Harness::new();
    h.spec.backoff_limit = 0;
    // Node and network, then the certificate: the install starts once it succeeded.
    h.succeed_waves(t0(), 2);
    assert_eq!(
        h.sub_job(InstallFederationChart).phase,
        SubJobPhase::Running
    );
    h.step(
        at(1),
        &[(
            InstallFederationChart,
            Observation::failed("InstallFailed", "helm failed"),
        )],
    );
    assert_eq!(h.phase(), JobPhase::Failed);
    // Suspended, so the retry resets the install without starting it again.
    h.spec.suspend = true;
    h.retry = Some("1".into());
    h.step(at(2), &[]);
    let install = h.sub_job(InstallFederationChart);
    assert_eq!((install.phase, install.attempts), (SubJobPhase::Pending, 0));
    assert_uninstall_runs(&h.status);
}

#[test]
fn a_refused_spec_starts_no_new_run() {
    let mut h = Harness::new();
    h.step(t0(), &[]);
    let before = h.status.clone();
    h.spec.chart.version = Some("2.0.0".into());
    h.blocked = Some(Blocked {
        reason: reasons::NOT_ALLOWED,
        message: "no".into(),
    });
    let d = h.step(at(1), &[]);
    assert!(d.commands.is_empty(), "{:?}", d.commands);
    assert_eq!(h.status.job_uid, before.job_uid, "the run stays");
    assert_eq!(h.status.spec_hash, before.spec_hash);
    assert_eq!(h.status.sub_jobs, before.sub_jobs, "nothing reset");
    assert_eq!(h.phase(), JobPhase::Failed);
    assert_eq!(h.status.reason.as_deref(), Some(reasons::NOT_ALLOWED));

    h.blocked = None;
    h.step(at(2), &[]);
    assert_ne!(
        h.status.job_uid, before.job_uid,
        "allowed again: the new run starts"
    );
}

// ---- properties ----

#[derive(Clone, Debug)]
enum Event {
    Advance(u16),
    Observe(Vec<u8>),
    Retry,
    ToggleSuspend,
    ChangeSpec,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => (1u16..400).prop_map(Event::Advance),
        6 => proptest::collection::vec(0u8..3, 4).prop_map(Event::Observe),
        1 => Just(Event::Retry),
        1 => Just(Event::ToggleSuspend),
        1 => Just(Event::ChangeSpec),
    ]
}

fn observation(code: u8) -> Observation {
    match code {
        0 => Observation::succeeded(),
        1 => Observation::progressing("Working", "still working"),
        _ => Observation::failed("ApiError", "failed"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn job_invariants_hold_for_any_sequence_of_events(
        backoff_limit in 0i32..4,
        events in proptest::collection::vec(event(), 1..80),
    ) {
        let mut h = Harness::new();
        h.spec.backoff_limit = backoff_limit;
        h.spec.sub_job_timeout_seconds = 60;
        let mut now = t0();
        let mut retries = 0;
        let mut last = h.step(now, &[]);
        for event in events {
            let before = h.status.clone();
            let mut retried_or_changed = false;
            let observations: Vec<(SubJobType, Observation)> = match &event {
                Event::Advance(s) => { now += SignedDuration::from_secs(i64::from(*s)); vec![] }
                Event::Observe(codes) => runs(&last).iter().zip(codes).map(|((t, _), c)| (*t, observation(*c))).collect(),
                Event::Retry => { retries += 1; h.retry = Some(retries.to_string()); retried_or_changed = true; vec![] }
                Event::ToggleSuspend => { h.spec.suspend = !h.spec.suspend; vec![] }
                Event::ChangeSpec => { h.spec.control_plane.replicas = h.spec.control_plane.replicas % 7 + 1; retried_or_changed = true; vec![] }
            };
            last = h.step(now, &observations);
            let s = &h.status;

            // progress always equals the count of Success subjobs
            let succeeded = s.sub_jobs.iter().filter(|j| j.phase == SubJobPhase::Success).count();
            prop_assert_eq!(s.progress.clone(), Some(format!("{succeeded}/4")));
            // attempts never exceed backoffLimit + 1
            for j in &s.sub_jobs {
                prop_assert!(j.attempts <= backoff_limit + 1, "{:?}", j);
            }
            // no subjob starts before its dependencies succeeded
            for j in &s.sub_jobs {
                if j.phase != SubJobPhase::Pending {
                    for dep in j.type_.dependencies() {
                        let dep = s.sub_job(*dep).expect("dep");
                        prop_assert_eq!(dep.phase, SubJobPhase::Success);
                        prop_assert!(dep.completion_time.as_ref().map(|t| &t.0) <= j.start_time.as_ref().map(|t| &t.0));
                    }
                }
            }
            // recorded times never run backwards
            prop_assert!(s.update_time.as_ref().map(|t| t.0) >= before.update_time.as_ref().map(|t| t.0));
            for j in &s.sub_jobs {
                if let (Some(start), Some(end)) = (&j.start_time, &j.completion_time) {
                    prop_assert!(start.0 <= end.0);
                }
            }
            // terminal phases change only by a retry or a new run
            if matches!(before.phase, Some(JobPhase::Success) | Some(JobPhase::Failed)) && !retried_or_changed {
                prop_assert_eq!(s.phase, before.phase);
            }
            // executors only run for subjobs that are running
            for (t, _) in &runs(&last) {
                prop_assert!(s.sub_job(*t).expect("present").phase != SubJobPhase::Pending);
            }
        }
    }
}

/// The hash of a spec as enablements store it today must not change when the API grows: a
/// changed hash would restart every existing run on upgrade.
#[test]
fn spec_hash_of_an_existing_enablement_is_unchanged_by_the_chart_profile() {
    let full: FederationEnablementSpec = serde_json::from_value(serde_json::json!({
        "clusterGroupID": "fleet-a",
        "chart": {"repository": "https://charts.example.com/federation", "name": "federation", "version": "1.2.3",
            "releaseName": "fed", "values": {"image": {"tag": "v1"}}},
        "sso": {"configUuid": "c-1"},
    }))
    .expect("valid spec");
    // Computed with `spec_hash` on main at b475766, before `chart.profile` existed.
    assert_eq!(spec_hash(&spec()), "94076fc9bf9ef6fc");
    assert_eq!(spec_hash(&full), "f64decffa411f7eb");
    assert_eq!(spec().chart.resolved_profile(), ChartProfile::Generic);
}

#[test]
fn an_absent_profile_is_karmada_without_a_repository_and_generic_with_one() {
    let chart = |value| -> Chart { serde_json::from_value(value).expect("chart") };
    let karmada = chart(serde_json::json!({}));
    assert_eq!(karmada.resolved_profile(), ChartProfile::Karmada);
    assert_eq!(karmada, Chart::default());
    assert_eq!(
        chart(serde_json::json!({"repository": "oci://r.example/c"})).resolved_profile(),
        ChartProfile::Generic
    );
    assert_eq!(
        chart(serde_json::json!({"repository": "oci://r.example/c", "profile": "Karmada"}))
            .resolved_profile(),
        ChartProfile::Karmada
    );
    assert_eq!(
        serde_json::to_value(&karmada).expect("json"),
        serde_json::json!({"installerClusterRole": "federation-chart-installer", "clusterScoped": false}),
        "absent fields stay absent"
    );
}

#[test]
fn status_records_the_control_plane_namespace_and_the_installed_chart_version() {
    let mut h = Harness::new();
    h.step(t0(), &[]);
    assert_eq!(h.status.control_plane_namespace.as_deref(), Some("team-a"));
    assert_eq!(h.status.chart_version, None, "nothing installed yet");
    assert_eq!(h.status.kubeconfig_secret_name, None);
    h.run_to_success(at(1));
    assert_eq!(h.status.chart_version.as_deref(), Some("1.2.3"));
}

#[test]
fn a_new_default_chart_version_does_not_change_a_started_run() {
    let mut h = Harness::new();
    h.spec.backoff_limit = 0;
    let d = h.step(t0(), &[]);
    let obs: Vec<_> = runs(&d)
        .iter()
        .map(|(t, _)| (*t, Observation::succeeded()))
        .collect();
    h.step(t0(), &obs);
    h.step(at(1), &[(CreateCert, Observation::succeeded())]);
    let pinned = |h: &Harness| h.status.pinned_chart_version().map(str::to_string);
    assert_eq!(pinned(&h).as_deref(), Some("1.2.3"));

    h.chart_version = "2.0.0".into(); // the controller restarted with a new default
    h.step(
        at(2),
        &[(
            InstallFederationChart,
            Observation::failed("InstallFailed", "x"),
        )],
    );
    assert_eq!(h.phase(), JobPhase::Failed);
    assert_eq!(
        pinned(&h).as_deref(),
        Some("1.2.3"),
        "kept while the run lasts"
    );

    h.retry = Some("1".into());
    h.step(at(3), &[]);
    assert_eq!(
        pinned(&h).as_deref(),
        Some("2.0.0"),
        "a retry takes the new one"
    );
    h.step(at(4), &[(InstallFederationChart, Observation::succeeded())]);
    assert_eq!(h.status.chart_version.as_deref(), Some("2.0.0"));
}

/// One reconcile of a job whose foreign namespace is not looked at yet: the namespace check,
/// then the decision on what it found, as the drive loop runs them.
fn reconcile_with_namespace(h: &mut Harness, now: Timestamp, found: NamespaceState) -> Decision {
    let mut foreign = install_facts("runner:1");
    foreign.control_plane_namespace = "federation-system".into();
    foreign.release_namespace = "federation-system".into();
    let decide_with = |h: &mut Harness, namespace| {
        let input = JobInput {
            spec: &h.spec,
            install: &foreign,
            chart_version: &h.chart_version,
            generation: Some(1),
            retry_annotation: None,
            blocked: None,
            namespace,
            poll: &h.poll,
            now,
        };
        let ids = &mut h.ids;
        let d = decide(&input, &h.status, &BTreeMap::new(), &mut || ids.next());
        h.status = d.status.clone();
        d
    };
    let first = decide_with(h, NamespaceState::Unchecked);
    assert!(first.commands.contains(&Command::EnsureNamespace));
    assert!(runs(&first).is_empty());
    let mut second = decide_with(h, found);
    second.transitions = [first.transitions, second.transitions].concat();
    second
}

#[test]
fn an_unlabelled_foreign_namespace_fails_the_job_not_allowed_until_it_is_labelled() {
    let mut h = Harness::new();
    let d = reconcile_with_namespace(&mut h, t0(), NamespaceState::Unlabelled);
    assert!(d.commands.is_empty(), "nothing created: {:?}", d.commands);
    assert_eq!(h.phase(), JobPhase::Failed);
    assert_eq!(h.status.reason.as_deref(), Some(reasons::NOT_ALLOWED));
    let message = h.status.message.clone().unwrap_or_default();
    assert!(
        message.contains("federation-system")
            && message.contains("federation.fleet.dev/control-plane-namespace"),
        "{message}"
    );
    assert_eq!(d.requeue_after, Some(NAMESPACE_LABEL_RECHECK));
    assert!(matches!(
        d.transitions.as_slice(),
        [Transition::JobFailed { .. }]
    ));
    let failed_at = h.status.completion_time.clone();

    let d = reconcile_with_namespace(&mut h, at(30), NamespaceState::Unlabelled);
    assert!(
        d.transitions.is_empty(),
        "a refusal that holds is not reported again"
    );
    assert_eq!(h.status.completion_time, failed_at);
    assert_eq!(d.requeue_after, Some(NAMESPACE_LABEL_RECHECK));

    let d = reconcile_with_namespace(&mut h, at(60), NamespaceState::Ready);
    assert_eq!(h.phase(), JobPhase::Running);
    assert_eq!(runs(&d).len(), 2, "proceeds by itself once labelled");
}
