//! InstallFederationChart: a batch Job that runs `helm upgrade --install` under a
//! ServiceAccount bound to `chart.installerClusterRole`.
//!
//! UninstallFederationChart (teardown) runs `helm uninstall` the same way, then deletes the
//! Jobs, the values Secret, the ServiceAccount and its bindings (found by label), and for the
//! Karmada profile what its chart's hooks leave ([`hook_leftovers`]).

pub mod hook_leftovers;
pub mod identity;
pub mod job_spec;
pub mod values;

use std::ops::ControlFlow;

use futures::future::BoxFuture;
use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::Patch;
use kube::{Api, Client, Resource, ResourceExt};

use self::identity::ensure_identity;
pub use self::job_spec::{
    INSTALL_SCRIPT, OPERATION_LABEL, Operation, UNINSTALL_SCRIPT, desired_job, remaining_seconds,
};
pub use self::values::{
    KarmadaCerts, deep_merge, desired_values_secret, generic_values, karmada_values,
    values_document,
};
use super::apply::{self, Ensured, apply_params};
use super::cert::karmada::store::StoredSecrets;
use super::{Context, Error, Result, SubJobExecutor, names};
use super::{api_error, deletion, ownership};
use crate::api::{ChartProfile, SubJobType};
use crate::chart_source::{ChartDefaults, ResolvedChart};
use crate::job::{Mode, Observation, reasons};

const SUB_JOB: SubJobType = SubJobType::InstallFederationChart;
/// Key of the values file in the values Secret.
const VALUES_KEY: &str = "values.yaml";
const USERNAME_KEY: &str = "repository-username";
const PASSWORD_KEY: &str = "repository-password";
/// Label of an install Job: the hash of the values it installs.
pub const VALUES_HASH_LABEL: &str = "federation.fleet.dev/values-hash";
/// Label a Secret must carry (`"true"`) to be used as chart repository credentials.
pub const CREDENTIALS_LABEL: &str = "federation.fleet.dev/chart-credentials";
/// Annotation of a credentials Secret: the repositories (comma-separated prefixes, matched on a
/// `/` boundary) it may be sent to.
pub const CREDENTIALS_REPOSITORIES_ANNOTATION: &str = "federation.fleet.dev/chart-repositories";

/// Whether the credentials in `secret` may go to `repository`: never over `http://`, and only
/// to a repository the Secret's annotation names. Err says why not.
fn credentials_may_go_to(secret: &Secret, repository: &str) -> std::result::Result<(), String> {
    if repository
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
    {
        return Err(format!(
            "credentials are never sent over http:// ({repository}); use https:// or oci://"
        ));
    }
    let allowed: Vec<String> = secret
        .annotations()
        .get(CREDENTIALS_REPOSITORIES_ANNOTATION)
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|entry| !entry.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if allowed.is_empty() {
        return Err(format!(
            "it lacks the annotation {CREDENTIALS_REPOSITORIES_ANNOTATION} naming the repositories \
             (comma-separated prefixes) it may be sent to"
        ));
    }
    if !crate::policy::repository_allowed(repository, &allowed) {
        return Err(format!(
            "its annotation {CREDENTIALS_REPOSITORIES_ANNOTATION} does not name {repository}"
        ));
    }
    Ok(())
}

/// What `chart.credentialsSecretRef` gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepositoryCredentials {
    /// No credentials are needed.
    NotSet,
    Found {
        username: ByteString,
        password: ByteString,
    },
    /// Why the referenced Secret cannot be used (it names the Secret, never its data).
    Unusable(String),
}

/// Where a helm Job of ours stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobRun {
    Running,
    /// The Job of that name ended before this attempt started, so it was an earlier attempt's
    /// (a retry starts again at attempt 1): it is deleted, and the next look starts a new one.
    Superseded,
    Completed,
    /// Why it failed (the `Failed` condition's reason and message).
    Failed(String),
    /// A Job of that name exists and is not labelled for this enablement.
    NotOurs(String),
}

impl JobRun {
    /// What the subjob reports while its Job `name` of `operation` is here.
    fn observation(self, name: &str, operation: Operation) -> Observation {
        let (running, failed) = match operation {
            Operation::Install => (reasons::INSTALLING, reasons::INSTALL_FAILED),
            Operation::Uninstall => (reasons::UNINSTALLING, reasons::UNINSTALL_FAILED),
        };
        match self {
            JobRun::Completed => Observation::succeeded_with(format!("Job {name} completed")),
            JobRun::Failed(why) => Observation::failed(failed, format!("Job {name} failed: {why}")),
            JobRun::Running => Observation::progressing(running, format!("Job {name} is running")),
            JobRun::Superseded => Observation::progressing(
                running,
                format!("Job {name} was an earlier attempt's; deleted it to start this one"),
            ),
            JobRun::NotOurs(message) => Observation::failed(reasons::NAME_CONFLICT, message),
        }
    }
}

/// The Job ended (completed or failed) before `started_at`: it cannot be the Job of an attempt
/// that started then. Condition times have whole seconds, so the comparison does too.
fn ended_before(job: &Job, started_at: jiff::Timestamp) -> bool {
    let Ok(started) = jiff::Timestamp::from_second(started_at.as_second()) else {
        return false;
    };
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|c| c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed"))
        .filter_map(|c| c.last_transition_time.as_ref())
        .any(|t| t.0 < started)
}

/// What a Job reports when its script found a release that is not this enablement's.
fn release_not_ours() -> String {
    format!(
        "the helm release exists and was not made by this enablement (it lacks the label {} \
         with this enablement's uid); it is left untouched",
        job_spec::RELEASE_OWNER_LABEL
    )
}

/// Where a Job of ours stands, read only from its `Complete`/`Failed` conditions. A failure by
/// the pod failure policy on [`job_spec::RELEASE_NOT_OURS_EXIT_CODE`] is a release conflict.
pub fn job_outcome(job: &Job) -> JobRun {
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let holds = |type_: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == "True")
    };
    if holds("Complete").is_some() {
        return JobRun::Completed;
    }
    let not_ours = format!("exit code {}", job_spec::RELEASE_NOT_OURS_EXIT_CODE);
    match holds("Failed") {
        Some(c)
            if c.reason.as_deref() == Some("PodFailurePolicy")
                && c.message.as_deref().is_some_and(|m| m.contains(&not_ours)) =>
        {
            JobRun::NotOurs(release_not_ours())
        }
        Some(c) => JobRun::Failed(format!(
            "{}: {}",
            c.reason.as_deref().unwrap_or("Failed"),
            c.message.as_deref().unwrap_or("the Job failed")
        )),
        None => JobRun::Running,
    }
}

pub struct ChartExecutor {
    client: Client,
    /// What `spec.chart` leaves out (`--default-chart-*`).
    chart_defaults: ChartDefaults,
}

impl ChartExecutor {
    pub fn new(client: Client, chart_defaults: ChartDefaults) -> Self {
        ChartExecutor {
            client,
            chart_defaults,
        }
    }

    /// The chart this run installs (its version pinned when the run's install started).
    fn chart<'a>(&'a self, ctx: &'a Context<'a>) -> ResolvedChart<'a> {
        self.chart_defaults
            .for_run(&ctx.spec.chart, ctx.run.chart_version.as_deref())
    }

    fn api<K>(&self, ctx: &Context<'_>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), ctx.control_plane_namespace())
    }

    /// Reads `chart.credentialsSecretRef` from the enablement's namespace.
    async fn credentials(&self, ctx: &Context<'_>) -> Result<RepositoryCredentials> {
        let Some(reference) = &ctx.spec.chart.credentials_secret_ref else {
            return Ok(RepositoryCredentials::NotSet);
        };
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ctx.namespace);
        let secret = api.get_opt(&reference.name).await.map_err(|source| {
            Error::api::<Secret>("get", ctx.namespace, &reference.name, source)
        })?;
        // Only a Secret labelled for this use is read: otherwise anyone who may create an
        // enablement could have any Secret with these keys sent to a repository they name.
        let secret = match secret {
            Some(secret)
                if secret.labels().get(CREDENTIALS_LABEL).map(String::as_str) == Some("true") =>
            {
                secret
            }
            Some(_) => {
                return Ok(RepositoryCredentials::Unusable(format!(
                    "Secret {}/{} (chart.credentialsSecretRef) lacks the label {CREDENTIALS_LABEL}=true \
                     that allows its use as chart repository credentials",
                    ctx.namespace, reference.name
                )));
            }
            None => {
                return Ok(RepositoryCredentials::Unusable(format!(
                    "Secret {}/{} (chart.credentialsSecretRef) not found",
                    ctx.namespace, reference.name
                )));
            }
        };
        if let Err(why) = credentials_may_go_to(&secret, self.chart(ctx).repository) {
            return Ok(RepositoryCredentials::Unusable(format!(
                "Secret {}/{} (chart.credentialsSecretRef) is not used: {why}",
                ctx.namespace, reference.name
            )));
        }
        let Some(data) = secret.data else {
            return Ok(RepositoryCredentials::Unusable(format!(
                "Secret {}/{} (chart.credentialsSecretRef) is empty",
                ctx.namespace, reference.name
            )));
        };
        match (data.get("username"), data.get("password")) {
            (Some(username), Some(password)) => Ok(RepositoryCredentials::Found {
                username: username.clone(),
                password: password.clone(),
            }),
            _ => Ok(RepositoryCredentials::Unusable(format!(
                "Secret {}/{} needs the keys username and password",
                ctx.namespace, reference.name
            ))),
        }
    }

    async fn install(&self, ctx: &Context<'_>, mode: Mode) -> Result<Observation> {
        if let ControlFlow::Break(message) = ensure_identity(&self.client, ctx).await? {
            return Ok(Observation::failed(reasons::NAME_CONFLICT, message));
        }
        let credentials = match self.credentials(ctx).await? {
            RepositoryCredentials::NotSet => None,
            RepositoryCredentials::Found { username, password } => Some((username, password)),
            RepositoryCredentials::Unusable(message) => {
                return Ok(Observation::failed(reasons::CREDENTIALS_NOT_FOUND, message));
            }
        };
        let with_credentials = credentials.is_some();
        let secrets: Api<Secret> = self.api(ctx);
        let stored_certs = match ctx.profile() {
            ChartProfile::Karmada => {
                let stored = StoredSecrets::read(&secrets, ctx).await?;
                if let Some(message) = stored.conflict(ctx) {
                    return Ok(Observation::failed(reasons::NAME_CONFLICT, message));
                }
                Some(stored.set())
            }
            ChartProfile::Generic => None,
        };
        let values = match &stored_certs {
            None => generic_values(ctx),
            Some(set) => match KarmadaCerts::from_stored(set) {
                Some(certs) => karmada_values(ctx, certs),
                None => {
                    return Ok(Observation::progressing(
                        reasons::WAITING_FOR_CERTIFICATES,
                        "waiting for CreateCert to store the Karmada certificates",
                    ));
                }
            },
        };
        let (values, values_hash) = values_document(values);
        let values_secret = desired_values_secret(ctx, values, credentials);
        if let Ensured::Conflict(message) = apply::ensure(&secrets, &values_secret, ctx).await? {
            return Ok(Observation::failed(reasons::NAME_CONFLICT, message));
        }
        let attempt = match mode {
            Mode::Attempt(attempt) => attempt,
            Mode::Maintain if ctx.profile() == ChartProfile::Karmada => {
                return self
                    .upgrade_if_changed(ctx, &values_hash, with_credentials)
                    .await;
            }
            // Jobs are not repaired: the release was installed; its identity and values are.
            Mode::Maintain => return Ok(Observation::succeeded_with("chart installed")),
        };
        let name = names::install_job(ctx.name, ctx.job_uid(), attempt);
        let desired = self.install_job(ctx, name, &values_hash, with_credentials);
        let name = desired.name_any();
        let existing = self.get_job(ctx, &desired).await?;
        let run = self.run_job(ctx, existing, desired, Operation::Install);
        Ok(run.await?.observation(&name, Operation::Install))
    }

    /// An install Job named `name`, labelled with the hash of the values it installs.
    fn install_job(
        &self,
        ctx: &Context<'_>,
        name: String,
        values_hash: &str,
        with_credentials: bool,
    ) -> Job {
        let mut job = desired_job(
            ctx,
            Operation::Install,
            self.chart(ctx),
            name,
            ctx.remaining_seconds(),
            with_credentials,
        );
        job.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(VALUES_HASH_LABEL.to_string(), values_hash.to_string());
        job
    }

    /// Karmada after Success: when no install Job installed the values of hash `values_hash`
    /// (a renewal or a new endpoint changed them), runs `helm upgrade` again in a Job named
    /// after them, once no other install Job runs. Reported as `Upgrading` while it runs.
    async fn upgrade_if_changed(
        &self,
        ctx: &Context<'_>,
        values_hash: &str,
        with_credentials: bool,
    ) -> Result<Observation> {
        let jobs: Api<Job> = self.api(ctx);
        let install = format!("{OPERATION_LABEL}={}", Operation::Install.label());
        let installs = deletion::list_ours(&jobs, ctx, SUB_JOB, &install).await?;
        let installed = |job: &&Job| {
            job.labels().get(VALUES_HASH_LABEL).map(String::as_str) == Some(values_hash)
        };
        if let Some(job) = installs.iter().find(installed) {
            let name = job.name_any();
            return Ok(match job_outcome(job) {
                JobRun::Running => Observation::progressing(
                    reasons::UPGRADING,
                    format!("helm upgrade with the changed values: Job {name} is running"),
                ),
                JobRun::Failed(why) => Observation::failed(
                    reasons::UPGRADE_FAILED,
                    format!("helm upgrade with the changed values: Job {name} failed: {why}"),
                ),
                JobRun::NotOurs(message) => Observation::failed(reasons::NAME_CONFLICT, message),
                JobRun::Completed | JobRun::Superseded => {
                    Observation::succeeded_with("chart installed")
                }
            });
        }
        if let Some(job) = installs
            .iter()
            .find(|job| job_outcome(job) == JobRun::Running)
        {
            return Ok(Observation::progressing(
                reasons::UPGRADING,
                format!(
                    "the values changed; helm upgrade waits for Job {} to finish",
                    job.name_any()
                ),
            ));
        }
        for old in &installs {
            deletion::delete_one(&jobs, old).await?;
        }
        let desired = self.install_job(
            ctx,
            names::upgrade_job(ctx.name, values_hash),
            values_hash,
            with_credentials,
        );
        let name = desired.name_any();
        jobs.patch(&name, &apply_params(), &Patch::Apply(&desired))
            .await
            .map_err(|e| api_error("apply", &desired, e))?;
        Ok(Observation::progressing(
            reasons::UPGRADING,
            format!("the values changed (a renewal or a new endpoint): helm upgrade in Job {name}"),
        ))
    }

    /// Starts the Job (deleting older attempts of the same operation first) or reads where it
    /// stands.
    async fn run_job(
        &self,
        ctx: &Context<'_>,
        existing: Option<Job>,
        desired: Job,
        operation: Operation,
    ) -> Result<JobRun> {
        let jobs: Api<Job> = self.api(ctx);
        let name = desired.name_any();
        let job = match existing {
            Some(job) if !ownership::is_ours(job.meta(), ctx) => {
                return Ok(JobRun::NotOurs(format!(
                    "Job {}/{name} exists and is not labelled for this enablement",
                    ctx.control_plane_namespace()
                )));
            }
            Some(job) if ended_before(&job, ctx.started_at) => {
                deletion::delete_one(&jobs, &job).await?;
                return Ok(JobRun::Superseded);
            }
            Some(job) => job,
            None => {
                let same_operation = format!("{OPERATION_LABEL}={}", operation.label());
                let older = deletion::list_ours(&jobs, ctx, SUB_JOB, &same_operation).await?;
                for old in older.iter().filter(|j| j.name_any() != name) {
                    deletion::delete_one(&jobs, old).await?;
                }
                jobs.patch(&name, &apply_params(), &Patch::Apply(&desired))
                    .await
                    .map_err(|e| api_error("apply", &desired, e))?
            }
        };
        Ok(job_outcome(&job))
    }

    async fn get_job(&self, ctx: &Context<'_>, desired: &Job) -> Result<Option<Job>> {
        self.api::<Job>(ctx)
            .get_opt(&desired.name_any())
            .await
            .map_err(|e| api_error("get", desired, e))
    }

    async fn uninstall(&self, ctx: &Context<'_>, attempt: i32) -> Result<Observation> {
        let never_started = !ctx.work_may_exist;
        let namespace_gone = ctx.control_plane_namespace_gone;
        if !never_started && !namespace_gone {
            let installing = self.stop_installs(ctx).await?;
            if installing > 0 {
                return Ok(Observation::progressing(
                    reasons::UNINSTALLING,
                    format!(
                        "stopping the install before helm uninstall: {installing} install Job(s) or pod(s) still there"
                    ),
                ));
            }
            let desired = desired_job(
                ctx,
                Operation::Uninstall,
                self.chart(ctx),
                names::uninstall_job(ctx.name, ctx.job_uid(), attempt),
                ctx.remaining_seconds(),
                false,
            );
            let existing = self.get_job(ctx, &desired).await?;
            // Once the uninstall Job completed, only the clean-up below is left: recreating the
            // installer identity for it would undo that clean-up.
            let uninstalled = existing.as_ref().map(job_outcome) == Some(JobRun::Completed);
            if !uninstalled {
                if let ControlFlow::Break(message) = ensure_identity(&self.client, ctx).await? {
                    return Ok(Observation::failed(reasons::NAME_CONFLICT, message));
                }
                let name = desired.name_any();
                match self
                    .run_job(ctx, existing, desired, Operation::Uninstall)
                    .await?
                {
                    JobRun::Completed => {}
                    run => return Ok(run.observation(&name, Operation::Uninstall)),
                }
            }
        }
        let mut remaining = self.delete_everything(ctx).await?;
        if ctx.profile() == ChartProfile::Karmada && !never_started {
            remaining +=
                hook_leftovers::delete_hook_leftovers(&self.client, ctx, namespace_gone).await?;
        }
        let mut observation = deletion::deletion_observation(remaining, "installer");
        if let Observation::Succeeded { message, .. } = &mut observation {
            *message = Some(if never_started {
                format!("{}: the chart was never installed", reasons::NOT_INSTALLED)
            } else if namespace_gone {
                format!(
                    "{}: helm uninstall skipped, the control-plane namespace is gone or being deleted",
                    reasons::NAMESPACE_TERMINATING
                )
            } else {
                "release uninstalled".to_string()
            });
        }
        Ok(observation)
    }

    /// Deletes the install Jobs; returns how many of them, and of their pods, were still
    /// running. An install still running would race `helm uninstall` (and could install again
    /// after it), so the uninstall waits for them.
    async fn stop_installs(&self, ctx: &Context<'_>) -> Result<usize> {
        let install_jobs = format!("{OPERATION_LABEL}!={}", Operation::Uninstall.label());
        let api = self.api::<Job>(ctx);
        let jobs = deletion::list_ours(&api, ctx, SUB_JOB, &install_jobs).await?;
        let mut running = 0;
        for job in &jobs {
            if job_outcome(job) == JobRun::Running {
                running += 1;
            }
            deletion::delete_one(&api, job).await?;
        }
        // The pods carry the Jobs' template labels (ours, without the operation) and the
        // `job-name` label Kubernetes adds.
        let uninstall_prefix = names::uninstall_jobs(ctx.name);
        let pods = deletion::list_ours(&self.api::<Pod>(ctx), ctx, SUB_JOB, "").await?;
        let installing = pods
            .iter()
            .filter(|pod| {
                let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
                let job = pod.labels().get("job-name");
                !matches!(phase, Some("Succeeded" | "Failed"))
                    && job.is_none_or(|job| !job.starts_with(&uninstall_prefix))
            })
            .count();
        Ok(running + installing)
    }

    /// Deletes every object of this subjob, cluster-scoped binding included, but the uninstall
    /// Jobs (their TTL and owner reference remove them); returns how many were still there.
    async fn delete_everything(&self, ctx: &Context<'_>) -> Result<usize> {
        let install_jobs = format!("{OPERATION_LABEL}!={}", Operation::Uninstall.label());
        let mut remaining = 0;
        // Every namespace an install ran in: the release's, and those of earlier runs.
        for namespace in ctx.namespaces() {
            let jobs: Api<Job> = Api::namespaced(self.client.clone(), namespace);
            let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
            let bindings: Api<RoleBinding> = Api::namespaced(self.client.clone(), namespace);
            let accounts: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
            remaining +=
                deletion::delete_labelled_where(&jobs, ctx, SUB_JOB, &install_jobs).await?;
            remaining += deletion::delete_labelled(&secrets, ctx, SUB_JOB).await?;
            remaining += deletion::delete_labelled(&bindings, ctx, SUB_JOB).await?;
            remaining += deletion::delete_labelled(&accounts, ctx, SUB_JOB).await?;
        }
        let cluster_bindings: Api<ClusterRoleBinding> = Api::all(self.client.clone());
        remaining += deletion::delete_labelled(&cluster_bindings, ctx, SUB_JOB).await?;
        Ok(remaining)
    }
}

impl SubJobExecutor for ChartExecutor {
    fn sub_job(&self) -> SubJobType {
        SUB_JOB
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>, mode: Mode) -> BoxFuture<'a, Result<Observation>> {
        Box::pin(self.install(ctx, mode))
    }

    fn teardown<'a>(
        &'a self,
        ctx: &'a Context<'a>,
        attempt: i32,
    ) -> BoxFuture<'a, Result<Observation>> {
        Box::pin(self.uninstall(ctx, attempt))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::api::FederationEnablement;
    use crate::job::RunFacts;
    use crate::subjobs::Settings;
    use serde_json::json;

    pub(super) const LONGEST: &str = "a234567890123456789012345678901234567890";
    pub(super) const NAMESPACE: &str =
        "n23456789012345678901234567890123456789012345678901234567890123";

    pub(super) struct Fixture {
        enablement: FederationEnablement,
        run: RunFacts,
        settings: Settings,
        chart_defaults: ChartDefaults,
    }

    impl Fixture {
        pub(super) fn new(spec: serde_json::Value) -> Self {
            let mut enablement: FederationEnablement = serde_json::from_value(json!({
                "apiVersion": "federation.fleet.dev/v1alpha1",
                "kind": "FederationEnablement",
                "metadata": {"name": LONGEST, "namespace": NAMESPACE, "uid": "0f8fad5b-d9cb-469f-a165-70867728950e"},
                "spec": spec,
            }))
            .expect("enablement");
            enablement.metadata.generation = Some(1);
            let run = RunFacts {
                job_uid: "5d2e6a1b-0000-4000-8000-000000000001".to_string(),
                spec_hash: "abc".to_string(),
                endpoint: Some("203.0.113.10:5443".to_string()),
                chart_version: None,
                installed_before: false,
            };
            Fixture {
                enablement,
                run,
                settings: Settings {
                    default_runner_image: "docker.io/alpine/helm:3.16.4".into(),
                },
                chart_defaults: ChartDefaults::default(),
            }
        }

        pub(super) fn chart(&self) -> ResolvedChart<'_> {
            self.chart_defaults.for_run(
                &self.enablement.spec.chart,
                self.run.chart_version.as_deref(),
            )
        }

        pub(super) fn ctx(&self) -> Context<'_> {
            let now = "2026-01-15T08:00:00Z".parse().expect("time");
            Context::new(&self.enablement, &self.run, &self.settings, now)
        }
    }

    pub(super) fn spec() -> serde_json::Value {
        json!({
            "clusterGroupID": "fleet-a",
            "sso": {"configUuid": "c-1", "issuerUrl": "https://issuer.example"},
            "chart": {"repository": "oci://registry.example/charts/", "name": "federation", "version": "1.2.3",
                "values": {"federation": {"replicas": 9, "extra": true}, "image": {"tag": "v1"}}},
        })
    }

    #[test]
    fn a_job_ended_by_the_release_conflict_rule_is_a_name_conflict_and_another_failure_is_not() {
        let failed = |reason: &str, message: &str| -> Job {
            serde_json::from_value(json!({"status": {"conditions": [{
                "type": "Failed", "status": "True", "reason": reason, "message": message,
            }]}}))
            .expect("a Job")
        };
        let conflict = failed(
            "PodFailurePolicy",
            "Container helm for pod team-a/fed-install-1 failed with exit code 3 matching FailJob rule at index 0",
        );
        match job_outcome(&conflict).observation("j", Operation::Install) {
            Observation::Failed { reason, message } => {
                assert_eq!(reason, reasons::NAME_CONFLICT);
                assert!(message.contains("left untouched"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let other = failed(
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        );
        assert!(matches!(
            job_outcome(&other).observation("j", Operation::Install),
            Observation::Failed { ref reason, .. } if reason == reasons::INSTALL_FAILED
        ));
    }

    #[test]
    fn a_job_run_reports_the_reason_of_its_operation() {
        let reason = |run: JobRun, operation| match run.observation("j", operation) {
            Observation::Succeeded { message, .. } => message.unwrap_or_default(),
            Observation::Progressing { reason, .. } | Observation::Failed { reason, .. } => reason,
        };
        assert_eq!(
            reason(JobRun::Completed, Operation::Install),
            "Job j completed"
        );
        assert_eq!(
            reason(JobRun::Running, Operation::Uninstall),
            reasons::UNINSTALLING
        );
        assert_eq!(
            reason(JobRun::Failed("x".into()), Operation::Install),
            reasons::INSTALL_FAILED
        );
        assert_eq!(
            reason(JobRun::NotOurs("x".into()), Operation::Uninstall),
            reasons::NAME_CONFLICT
        );
    }

    #[test]
    fn job_outcome_comes_only_from_complete_and_failed_conditions() {
        let job = |conditions: serde_json::Value| -> Job {
            serde_json::from_value(json!({"status": {"conditions": conditions, "active": 1}}))
                .expect("job")
        };
        assert_eq!(job_outcome(&job(json!([]))), JobRun::Running);
        assert_eq!(
            job_outcome(&job(json!([{"type": "Complete", "status": "True"}]))),
            JobRun::Completed
        );
        assert_eq!(
            job_outcome(&job(
                json!([{"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"}])
            )),
            JobRun::Failed(
                "DeadlineExceeded: Job was active longer than specified deadline".into()
            )
        );
        assert_eq!(
            job_outcome(&job(json!([{"type": "Failed", "status": "False"}]))),
            JobRun::Running
        );
    }
}
