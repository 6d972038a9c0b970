//! A job as the terminal shows it. Both sources end up here, so the tree is rendered once: the
//! HTTP progress route's JSON ([`from_wire`]) and a FederationEnablement read from the cluster
//! ([`from_enablement`]).

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::ResourceExt;
use serde::de::DeserializeOwned;

use super::{Error, Outcome};
use federation_api::enablement::{
    FederationEnablement, JobPhase, StepStatus, SubJobPhase, SubJobType, TeardownStepType,
};
pub use federation_api::wire::{ENABLE_JOB, TEARDOWN_JOB};
use federation_api::wire::{GoTime, JobStatus, ProgressJob};
/// The reason of a job whose spec changed since the controller last wrote its status.
pub const NOT_OBSERVED_YET: &str = "NotObservedYet";

/// One job: the enablement's current run, or its teardown while it is being deleted.
#[derive(Clone, Debug, PartialEq)]
pub struct JobView {
    /// [`ENABLE_JOB`] or [`TEARDOWN_JOB`].
    pub type_: String,
    /// The `spec.clusterGroupID` asked for.
    pub fleet: String,
    /// `namespace/name` when the source knows the namespace, else the name.
    pub enablement: String,
    pub standing: Standing<JobPhase>,
    /// In DAG (or teardown) order; a step the status does not list yet shows as Pending.
    pub steps: Vec<StepView>,
}

/// One subjob or teardown step.
#[derive(Clone, Debug, PartialEq)]
pub struct StepView {
    pub type_: String,
    pub standing: Standing<SubJobPhase>,
    /// Attempts started so far, and how many the backoff limit allows (cluster source only).
    pub attempts: Option<u32>,
    pub max_attempts: Option<u32>,
}

/// Where a job or a step stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Standing<P> {
    pub phase: P,
    pub reason: Option<String>,
    /// Only the cluster source says messages.
    pub message: Option<String>,
    pub start: Option<Timestamp>,
    pub completion: Option<Timestamp>,
}

/// A job's or a step's phase, as the view reads it.
pub trait Phase: Copy {
    /// What a source that says nothing about it means.
    const PENDING: Self;

    fn word(self) -> &'static str;

    fn failed(self) -> bool {
        self.word() == "Failed"
    }

    fn succeeded(self) -> bool {
        self.word() == "Success"
    }
}

impl Phase for JobPhase {
    const PENDING: Self = JobPhase::Pending;

    fn word(self) -> &'static str {
        self.as_str()
    }
}

impl Phase for SubJobPhase {
    const PENDING: Self = SubJobPhase::Pending;

    fn word(self) -> &'static str {
        self.as_str()
    }
}

/// A job and, when the source says so, the source's clock at that moment: running durations
/// count up to the server's "now", not to a laptop's clock that may be off.
#[derive(Clone, Debug, PartialEq)]
pub struct Update {
    pub job: JobView,
    pub server_now: Option<Timestamp>,
}

impl JobView {
    /// Steps that succeeded.
    pub fn done(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.standing.phase.succeeded())
            .count()
    }

    /// How the job ended, if it has. A teardown never ends the view by itself: once it is
    /// done the enablement is gone, which a watch reports as an error.
    pub fn outcome(&self) -> Option<Outcome> {
        if self.type_ != ENABLE_JOB {
            return None;
        }
        match self.standing.phase {
            JobPhase::Success => Some(Outcome::Succeeded),
            JobPhase::Failed => Some(Outcome::Failed),
            JobPhase::Pending | JobPhase::Running | JobPhase::Deleting => None,
        }
    }
}

impl StepView {
    fn pending(type_: &str) -> Self {
        StepView {
            type_: type_.to_string(),
            standing: standing(SubJobPhase::Pending, &None, &None, &None, &None),
            attempts: None,
            max_attempts: None,
        }
    }
}

/// Every step of `order`, the ones the source did not list as Pending, then any of a type this
/// version does not know (a newer server), as they came.
fn in_order(mut listed: Vec<StepView>, order: &[&str]) -> Vec<StepView> {
    let mut steps: Vec<StepView> = order
        .iter()
        .map(
            |type_| match listed.iter().position(|s| s.type_ == *type_) {
                Some(i) => listed.remove(i),
                None => StepView::pending(type_),
            },
        )
        .collect();
    steps.extend(listed);
    steps
}

fn step_order(job_type: &str) -> Vec<&'static str> {
    if job_type == TEARDOWN_JOB {
        TeardownStepType::ALL.iter().map(|t| t.as_str()).collect()
    } else {
        SubJobType::ALL.iter().map(|t| t.as_str()).collect()
    }
}

fn standing<P>(
    phase: P,
    reason: &Option<String>,
    message: &Option<String>,
    start: &Option<MicroTime>,
    completion: &Option<MicroTime>,
) -> Standing<P> {
    Standing {
        phase,
        reason: reason.clone(),
        message: message.clone(),
        start: start.as_ref().map(|t| t.0),
        completion: completion.as_ref().map(|t| t.0),
    }
}

fn step_of<T: std::fmt::Display>(step: &StepStatus<T>, max_attempts: Option<u32>) -> StepView {
    StepView {
        type_: step.type_.to_string(),
        standing: standing(
            step.phase,
            &step.reason,
            &step.message,
            &step.start_time,
            &step.completion_time,
        ),
        attempts: u32::try_from(step.attempts).ok(),
        max_attempts,
    }
}

/// The job the controller has not looked at since its spec changed to `generation`: Pending,
/// with no steps started, as nothing in the status says anything about this spec yet.
fn not_observed_yet(generation: i64, observed: i64) -> (Standing<JobPhase>, Vec<StepView>) {
    let message = format!(
        "the controller has not acted on generation {generation} of the spec yet; \
         the status is of generation {observed}"
    );
    (
        standing(
            JobPhase::Pending,
            &Some(NOT_OBSERVED_YET.to_string()),
            &Some(message),
            &None,
            &None,
        ),
        Vec::new(),
    )
}

/// The job of an enablement read from the cluster: its teardown while it is being deleted (as
/// the progress route shows it), else its current run.
///
/// Right after a change of the spec (`kubectl apply`), the status is still the previous run's
/// until the controller acts on it: while `status.observedGeneration` is below
/// `metadata.generation` the run is shown as Pending ([`NOT_OBSERVED_YET`]), so its old
/// Success or Failed is no outcome. A teardown is shown as it is: the controller writes it
/// only once the deletion is under way, and does not move `observedGeneration` for it.
pub fn from_enablement(fe: &FederationEnablement) -> JobView {
    let empty = Default::default();
    let status = fe.status.as_ref().unwrap_or(&empty);
    let teardown = status
        .teardown
        .as_ref()
        .filter(|_| status.phase == Some(JobPhase::Deleting));
    let unobserved = match (fe.metadata.generation, status.observed_generation) {
        (Some(generation), Some(observed)) if observed < generation => Some((generation, observed)),
        _ => None,
    };
    let (type_, standing, steps) = match (teardown, unobserved) {
        (Some(t), _) => (
            TEARDOWN_JOB,
            standing(
                t.phase,
                &t.reason,
                &t.message,
                &t.start_time,
                &t.completion_time,
            ),
            t.steps.iter().map(|s| step_of(s, None)).collect(),
        ),
        (None, Some((generation, observed))) => {
            let (standing, steps) = not_observed_yet(generation, observed);
            (ENABLE_JOB, standing, steps)
        }
        (None, None) => {
            let max_attempts = u32::try_from(fe.spec.backoff_limit)
                .ok()
                .map(|retries| retries + 1);
            (
                ENABLE_JOB,
                standing(
                    status.phase.unwrap_or(JobPhase::Pending),
                    &status.reason,
                    &status.message,
                    &status.start_time,
                    &status.completion_time,
                ),
                status
                    .sub_jobs
                    .iter()
                    .map(|s| step_of(s, max_attempts))
                    .collect(),
            )
        }
    };
    JobView {
        type_: type_.to_string(),
        fleet: fe.spec.cluster_group_id.clone(),
        enablement: format!("{}/{}", fe.namespace().unwrap_or_default(), fe.name_any()),
        standing,
        steps: in_order(steps, &step_order(type_)),
    }
}

/// The route says no messages. A phase the view does not know is a bad answer.
fn standing_from_wire<P: Phase + DeserializeOwned>(
    status: JobStatus,
) -> Result<Standing<P>, Error> {
    let phase = match status.phase {
        None => P::PENDING,
        Some(word) => serde_json::from_value(serde_json::Value::String(word)).map_err(|e| {
            Error::BadAnswer {
                detail: format!("the progress JSON: {e}"),
            }
        })?,
    };
    Ok(Standing {
        phase,
        reason: status.reason,
        message: None,
        start: status.start_time.map(|t| t.0),
        completion: status.completion_time.map(|t| t.0),
    })
}

/// The job in an answer of `GET /v1/clustergroups/{fleet}/federations/progress` (or the data of
/// one of its `progress` events). The route says neither attempts nor messages.
///
/// Nor generations: unlike [`from_enablement`], this cannot tell a status written for an
/// earlier spec from a current one, so for the moment between a change of the spec and the
/// controller acting on it, the view (and its exit code) is the previous run's.
pub fn from_wire(fleet: &str, json: &str) -> Result<Update, Error> {
    let job: ProgressJob = serde_json::from_str(json).map_err(|e| Error::BadAnswer {
        detail: format!("the progress JSON: {e}"),
    })?;
    let steps = job
        .spec
        .sub_jobs
        .unwrap_or_default()
        .into_iter()
        .map(|step| {
            Ok(StepView {
                type_: step.spec.type_,
                standing: standing_from_wire(step.status)?,
                attempts: None,
                max_attempts: None,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let order = step_order(&job.spec.type_);
    Ok(Update {
        job: JobView {
            fleet: fleet.to_string(),
            enablement: job.spec.resource_name.unwrap_or_default(),
            standing: standing_from_wire(job.status)?,
            steps: in_order(steps, &order),
            type_: job.spec.type_,
        },
        server_now: job
            .metadata
            .annotations
            .current_timestamp
            .map(|t: GoTime| t.0),
    })
}

/// Jobs and steps built by hand, for the tests of the view.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub fn ts(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    /// Started at 08:00:00 unless Pending, not finished.
    pub fn standing<P: Phase>(phase: P) -> Standing<P> {
        Standing {
            phase,
            reason: None,
            message: None,
            start: (phase.word() != "Pending").then(|| ts("2026-01-15T08:00:00Z")),
            completion: None,
        }
    }

    pub fn step(type_: &str, phase: SubJobPhase) -> StepView {
        StepView {
            type_: type_.to_string(),
            standing: standing(phase),
            attempts: None,
            max_attempts: None,
        }
    }

    /// fleet-a's enablement job, team-a/fleet-a.
    pub fn job(phase: JobPhase, steps: Vec<StepView>) -> JobView {
        JobView {
            type_: ENABLE_JOB.to_string(),
            fleet: "fleet-a".to_string(),
            enablement: "team-a/fleet-a".to_string(),
            standing: standing(phase),
            steps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::ts;
    use super::*;
    use federation_controller::http::wire;
    use serde_json::json;

    fn names(job: &JobView) -> Vec<&str> {
        job.steps.iter().map(|s| s.type_.as_str()).collect()
    }

    fn enablement(status: serde_json::Value) -> FederationEnablement {
        serde_json::from_value(json!({
            "apiVersion": "federation.fleet.dev/v1alpha1",
            "kind": "FederationEnablement",
            "metadata": {"name": "fleet-a", "namespace": "team-a", "uid": "uid-1"},
            "spec": {"clusterGroupID": "fleet-a", "backoffLimit": 2,
                "chart": {"repository": "oci://r.example/c", "name": "c", "version": "1"}},
            "status": status,
        }))
        .expect("enablement")
    }

    fn step(type_: &str, phase: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut s = json!({"type": type_, "uid": format!("u-{type_}"), "phase": phase, "attempts": 1,
            "startTime": "2026-01-15T08:00:01Z"});
        if let (Some(s), Some(extra)) = (s.as_object_mut(), extra.as_object()) {
            s.extend(extra.clone());
        }
        s
    }

    fn failed_status() -> serde_json::Value {
        json!({
            "phase": "Failed", "reason": "SimulatedFailure", "message": "CreateCert failed",
            "jobUID": "job-1", "startTime": "2026-01-15T08:00:00.5Z", "completionTime": "2026-01-15T08:00:09Z",
            "subJobs": [
                step("CreateNode", "Success", json!({"reason": "Succeeded", "completionTime": "2026-01-15T08:00:02Z"})),
                step("CreateNetworkResource", "Success", json!({"completionTime": "2026-01-15T08:00:03Z"})),
                step("CreateCert", "Failed", json!({"reason": "SimulatedFailure", "message": "simulated failure of CreateCert",
                    "attempts": 3, "completionTime": "2026-01-15T08:00:09Z"})),
                {"type": "InstallFederationChart", "uid": "u-i", "phase": "Pending"},
            ],
        })
    }

    #[test]
    fn an_enablement_shows_its_run_with_attempts_messages_and_the_backoff_limit() {
        let job = from_enablement(&enablement(failed_status()));
        assert_eq!(job.type_, ENABLE_JOB);
        assert_eq!(
            (job.fleet.as_str(), job.enablement.as_str()),
            ("fleet-a", "team-a/fleet-a")
        );
        assert_eq!(job.standing.phase, JobPhase::Failed);
        assert_eq!(job.standing.message.as_deref(), Some("CreateCert failed"));
        assert_eq!(job.standing.start, Some(ts("2026-01-15T08:00:00.5Z")));
        let cert = &job.steps[2];
        assert_eq!(cert.type_, "CreateCert");
        assert_eq!((cert.attempts, cert.max_attempts), (Some(3), Some(3)));
        assert_eq!(
            cert.standing.message.as_deref(),
            Some("simulated failure of CreateCert")
        );
        assert_eq!(cert.standing.completion, Some(ts("2026-01-15T08:00:09Z")));
        assert_eq!(job.done(), 2);
        assert_eq!(job.outcome(), Some(Outcome::Failed));
    }

    /// The enablement with `metadata.generation` and `status.observedGeneration`.
    fn at_generation(
        mut status: serde_json::Value,
        generation: i64,
        observed: i64,
    ) -> FederationEnablement {
        status["observedGeneration"] = json!(observed);
        let mut fe = enablement(status);
        fe.metadata.generation = Some(generation);
        fe
    }

    #[test]
    fn a_status_of_an_earlier_spec_is_not_yet_observed_and_no_outcome() {
        let job = from_enablement(&at_generation(failed_status(), 2, 1));
        assert_eq!(job.type_, ENABLE_JOB);
        assert_eq!(job.standing.phase, JobPhase::Pending);
        assert_eq!(job.standing.reason.as_deref(), Some(NOT_OBSERVED_YET));
        assert_eq!((job.standing.start, job.standing.completion), (None, None));
        assert_eq!(names(&job), SubJobType::ALL.map(SubJobType::as_str));
        assert!(
            job.steps
                .iter()
                .all(|s| s.standing.phase == SubJobPhase::Pending && s.attempts.is_none()),
            "the previous run's steps are not this spec's: {job:?}"
        );
        assert_eq!(job.outcome(), None);
    }

    #[test]
    fn a_status_of_the_current_spec_or_without_generations_is_the_outcome() {
        let observed = from_enablement(&at_generation(failed_status(), 2, 2));
        assert_eq!(observed.outcome(), Some(Outcome::Failed));
        let mut no_observed = failed_status();
        no_observed["observedGeneration"] = json!(null);
        let mut no_observed = enablement(no_observed);
        no_observed.metadata.generation = Some(2);
        assert_eq!(
            from_enablement(&no_observed).outcome(),
            Some(Outcome::Failed)
        );
        let mut no_generation = at_generation(failed_status(), 2, 1);
        no_generation.metadata.generation = None;
        assert_eq!(
            from_enablement(&no_generation).outcome(),
            Some(Outcome::Failed)
        );
    }

    #[test]
    fn a_teardown_is_shown_whatever_generation_the_status_observed() {
        let mut status = failed_status();
        status["phase"] = json!("Deleting");
        status["teardown"] = json!({"jobUID": "t-1", "phase": "Running", "steps": []});
        let job = from_enablement(&at_generation(status, 3, 2));
        assert_eq!(
            (job.type_.as_str(), job.standing.phase),
            (TEARDOWN_JOB, JobPhase::Running)
        );
    }

    #[test]
    fn an_enablement_without_status_shows_four_pending_subjobs() {
        let mut fe = enablement(json!({}));
        fe.status = None;
        let job = from_enablement(&fe);
        assert_eq!(job.standing.phase, JobPhase::Pending);
        assert_eq!(names(&job), SubJobType::ALL.map(SubJobType::as_str));
        assert!(
            job.steps
                .iter()
                .all(|s| s.standing.phase == SubJobPhase::Pending)
        );
        assert_eq!(job.outcome(), None);
    }

    #[test]
    fn a_deleting_enablement_shows_its_teardown_which_never_ends_the_view() {
        let mut status = failed_status();
        status["phase"] = json!("Deleting");
        status["teardown"] = json!({
            "jobUID": "t-1", "phase": "Success", "reason": "Deleting", "startTime": "2026-01-15T09:00:00Z",
            "steps": [{"type": "DeleteNetworkResource", "uid": "t2", "phase": "Running", "attempts": 1},
                      {"type": "UninstallFederationChart", "uid": "t1", "phase": "Success", "attempts": 1}],
        });
        let job = from_enablement(&enablement(status));
        assert_eq!(job.type_, TEARDOWN_JOB);
        assert_eq!(
            names(&job),
            TeardownStepType::ALL.map(TeardownStepType::as_str)
        );
        assert_eq!(job.steps[1].standing.phase, SubJobPhase::Running);
        assert_eq!(job.outcome(), None);
    }

    #[test]
    fn the_wire_json_and_the_enablement_give_the_same_view_but_for_what_the_route_omits() {
        let fe = enablement(failed_status());
        let now = ts("2026-01-15T08:01:00Z");
        let json = serde_json::to_string(&wire::progress(&fe, now)).expect("json");
        let update = from_wire("fleet-a", &json).expect("parses");
        assert_eq!(update.server_now, Some(now));
        let mut expected = from_enablement(&fe);
        expected.enablement = "fleet-a".to_string();
        expected.standing.message = None;
        for step in &mut expected.steps {
            (step.standing.message, step.attempts, step.max_attempts) = (None, None, None);
        }
        assert_eq!(update.job, expected);
    }

    #[test]
    fn the_wire_json_of_a_teardown_is_a_teardown() {
        let mut status = failed_status();
        status["phase"] = json!("Deleting");
        status["teardown"] = json!({"jobUID": "t-1", "phase": "Running", "steps": []});
        let fe = enablement(status);
        let json =
            serde_json::to_string(&wire::progress(&fe, ts("2026-01-15T09:00:00Z"))).expect("json");
        let job = from_wire("fleet-a", &json).expect("parses").job;
        assert_eq!((job.type_.as_str(), job.steps.len()), (TEARDOWN_JOB, 4));
    }

    #[test]
    fn steps_of_an_unknown_type_are_kept_after_the_known_ones() {
        let json = json!({"spec": {"type": ENABLE_JOB, "subJobs": [
            {"spec": {"type": "Frobnicate"}, "status": {"phase": "Running"}},
            {"spec": {"type": "CreateNode"}, "status": {"phase": "Success"}},
        ]}});
        let job = from_wire("f", &json.to_string()).expect("parses").job;
        let mut expected = SubJobType::ALL.map(SubJobType::as_str).to_vec();
        expected.push("Frobnicate");
        assert_eq!(names(&job), expected);
    }

    #[test]
    fn a_bad_answer_is_an_error_that_says_what_was_wrong() {
        let error = from_wire(
            "f",
            r#"{"spec": {"type": "X"}, "status": {"phase": "Exploded"}}"#,
        )
        .expect_err("unknown phase");
        assert!(error.to_string().contains("Exploded"), "{error}");
        let error = from_wire(
            "f",
            r#"{"spec": {"type": "X"}, "status": {"startTime": "yesterday"}}"#,
        )
        .expect_err("bad time");
        assert!(error.to_string().contains("yesterday"), "{error}");
    }
}
