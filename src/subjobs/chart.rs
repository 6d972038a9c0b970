//! InstallFederationChart: a batch Job that runs `helm upgrade --install` under a
//! ServiceAccount bound to `chart.installerClusterRole`.
//!
//! UninstallFederationChart (teardown) runs `helm uninstall` the same way, then deletes the
//! Jobs, the values Secret, the ServiceAccount and its bindings (found by label).

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, KeyToPath,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile, Secret,
    SecretKeySelector, SecretVolumeSource, SecurityContext, ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{ListParams, Patch};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Map, Value, json};

use super::objects::{self, Ensured, apply_params};
use super::{Context, Error, Result, SubJobExecutor, names};
use crate::api::{CONTROL_PLANE_NODE_LABEL, SubJobType};
use crate::job::{Mode, Observation, reasons};

const SUB_JOB: SubJobType = SubJobType::InstallFederationChart;
/// Key of the values file in the values Secret.
const VALUES_KEY: &str = "values.yaml";
const USERNAME_KEY: &str = "repository-username";
const PASSWORD_KEY: &str = "repository-password";
/// Label a Secret must carry (`"true"`) to be used as chart repository credentials.
pub const CREDENTIALS_LABEL: &str = "federation.fleet.dev/chart-credentials";
/// The unprivileged user the runner runs as (restricted Pod Security).
const RUNNER_UID: i64 = 65532;

/// Installs the chart; recovers a release an interrupted install left pending first.
pub const INSTALL_SCRIPT: &str = r#"set -eu
if [ -n "${HELM_REPO_USERNAME:-}" ]; then
  case "$CHART_REPOSITORY" in
    oci://*)
      host=$(printf '%s' "${CHART_REPOSITORY#oci://}" | cut -d/ -f1)
      printf '%s' "$HELM_REPO_PASSWORD" | helm registry login "$host" --username "$HELM_REPO_USERNAME" --password-stdin ;;
    *)
      printf '%s' "$HELM_REPO_PASSWORD" | helm repo add federation "$CHART_REPOSITORY" --username "$HELM_REPO_USERNAME" --password-stdin ;;
  esac
fi
case "$CHART_REPOSITORY" in
  oci://*) set -- "$CHART_REPOSITORY/$CHART_NAME" ;;
  *) if [ -n "${HELM_REPO_USERNAME:-}" ]; then set -- "federation/$CHART_NAME"; else set -- "$CHART_NAME" --repo "$CHART_REPOSITORY"; fi ;;
esac
state=$(helm status "$RELEASE" --namespace "$NAMESPACE" -o json 2>/dev/null | grep -o '"status":"[a-z-]*"' | head -n 1 | cut -d '"' -f 4 || true)
case "$state" in
  pending-install)
    echo "release $RELEASE was left pending-install: uninstalling it first"
    helm uninstall "$RELEASE" --namespace "$NAMESPACE" --wait ;;
  pending-upgrade|pending-rollback)
    echo "release $RELEASE was left $state: rolling it back first"
    helm rollback "$RELEASE" --namespace "$NAMESPACE" --wait ;;
esac
exec helm upgrade --install "$RELEASE" "$@" --version "$CHART_VERSION" --namespace "$NAMESPACE" \
  --values /etc/federation/values/values.yaml --wait --timeout "${TIMEOUT_SECONDS}s"
"#;

/// Uninstalls the release; a release that was never installed counts as done.
pub const UNINSTALL_SCRIPT: &str = r#"set -eu
if ! helm status "$RELEASE" --namespace "$NAMESPACE" >/dev/null 2>&1; then
  echo "release $RELEASE is not installed"
  exit 0
fi
exec helm uninstall "$RELEASE" --namespace "$NAMESPACE" --wait --timeout "${TIMEOUT_SECONDS}s"
"#;

/// What a Job of ours is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Install,
    Uninstall,
}

/// The runner image: `chart.runnerImage`, or the controller's default.
pub fn runner_image<'a>(ctx: &'a Context<'a>) -> &'a str {
    ctx.spec
        .chart
        .runner_image
        .as_deref()
        .unwrap_or(&ctx.settings.default_runner_image)
}

/// The values the chart gets: `chart.values`, with the facts the controller knows under
/// `federation` and `sso` (the controller's win over the user's on the same key).
pub fn chart_values(ctx: &Context<'_>) -> Map<String, Value> {
    let mut values = ctx.spec.chart.values.clone().unwrap_or_default();
    let mut federation = json!({
        "clusterGroupID": ctx.spec.cluster_group_id,
        "enablement": ctx.name,
        "service": names::service(ctx.name),
        "certificateSecret": names::cert_secret(ctx.name),
        "replicas": ctx.spec.control_plane.replicas,
        "nodeSelector": {CONTROL_PLANE_NODE_LABEL: ctx.uid},
    });
    if let Some(endpoint) = ctx.status.endpoint() {
        federation["endpoint"] = json!(endpoint);
    }
    merge_into(&mut values, "federation", federation);
    if let Some(sso) = &ctx.spec.sso {
        merge_into(
            &mut values,
            "sso",
            serde_json::to_value(sso).unwrap_or_default(),
        );
    }
    values
}

fn merge_into(values: &mut Map<String, Value>, key: &str, ours: Value) {
    let entry = values
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    match (entry, ours) {
        (Value::Object(theirs), Value::Object(ours)) => theirs.extend(ours),
        (entry, ours) => *entry = ours,
    }
}

/// The Secret with the values (and the repository credentials, when the chart needs them).
pub fn desired_values_secret(
    ctx: &Context<'_>,
    credentials: Option<(ByteString, ByteString)>,
) -> Secret {
    let namespace = ctx.control_plane_namespace();
    let values = Value::Object(chart_values(ctx)).to_string();
    let mut data = BTreeMap::from([(VALUES_KEY.to_string(), ByteString(values.into_bytes()))]);
    if let Some((username, password)) = credentials {
        data.insert(USERNAME_KEY.to_string(), username);
        data.insert(PASSWORD_KEY.to_string(), password);
    }
    Secret {
        metadata: objects::metadata(
            ctx,
            SUB_JOB,
            names::values_secret(ctx.name),
            Some(namespace),
        ),
        type_: Some("Opaque".to_string()),
        data: Some(data),
        ..Secret::default()
    }
}

pub fn desired_service_account(ctx: &Context<'_>) -> ServiceAccount {
    ServiceAccount {
        metadata: objects::metadata(
            ctx,
            SUB_JOB,
            names::installer(ctx.name),
            Some(ctx.control_plane_namespace()),
        ),
        ..ServiceAccount::default()
    }
}

fn installer_role_ref(ctx: &Context<'_>) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".to_string(),
        kind: "ClusterRole".to_string(),
        name: ctx.spec.chart.installer_cluster_role.clone(),
    }
}

fn installer_subject(ctx: &Context<'_>) -> Vec<Subject> {
    vec![Subject {
        kind: "ServiceAccount".to_string(),
        name: names::installer(ctx.name),
        namespace: Some(ctx.control_plane_namespace().to_string()),
        api_group: None,
    }]
}

pub fn desired_role_binding(ctx: &Context<'_>) -> RoleBinding {
    RoleBinding {
        metadata: objects::metadata(
            ctx,
            SUB_JOB,
            names::installer(ctx.name),
            Some(ctx.control_plane_namespace()),
        ),
        role_ref: installer_role_ref(ctx),
        subjects: Some(installer_subject(ctx)),
    }
}

pub fn desired_cluster_role_binding(ctx: &Context<'_>) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: objects::metadata(
            ctx,
            SUB_JOB,
            names::installer_cluster_binding(ctx.control_plane_namespace(), ctx.name),
            None,
        ),
        role_ref: installer_role_ref(ctx),
        subjects: Some(installer_subject(ctx)),
    }
}

/// The Job of one install or uninstall attempt, restricted-Pod-Security compliant.
pub fn desired_job(
    ctx: &Context<'_>,
    operation: Operation,
    name: String,
    active_deadline_seconds: i64,
    with_credentials: bool,
) -> Job {
    let namespace = ctx.control_plane_namespace();
    let values_secret = names::values_secret(ctx.name);
    let env_value = |name: &str, value: String| EnvVar {
        name: name.to_string(),
        value: Some(value),
        value_from: None,
    };
    let env_secret = |name: &str, key: &str| EnvVar {
        name: name.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: values_secret.clone(),
                key: key.to_string(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
    };
    let chart = &ctx.spec.chart;
    let mut env = vec![
        env_value("RELEASE", ctx.spec.release_name(ctx.name).to_string()),
        env_value("NAMESPACE", namespace.to_string()),
        env_value(
            "CHART_REPOSITORY",
            chart.repository.trim_end_matches('/').to_string(),
        ),
        env_value("CHART_NAME", chart.name.clone()),
        env_value("CHART_VERSION", chart.version.clone()),
        env_value("TIMEOUT_SECONDS", active_deadline_seconds.to_string()),
        env_value("HOME", "/tmp".to_string()),
        env_value("HELM_CACHE_HOME", "/tmp/helm/cache".to_string()),
        env_value("HELM_CONFIG_HOME", "/tmp/helm/config".to_string()),
        env_value("HELM_DATA_HOME", "/tmp/helm/data".to_string()),
    ];
    if with_credentials && operation == Operation::Install {
        env.push(env_secret("HELM_REPO_USERNAME", USERNAME_KEY));
        env.push(env_secret("HELM_REPO_PASSWORD", PASSWORD_KEY));
    }
    let script = match operation {
        Operation::Install => INSTALL_SCRIPT,
        Operation::Uninstall => UNINSTALL_SCRIPT,
    };
    let quantity = |s: &str| Quantity(s.to_string());
    // The uninstall Job needs no values: the values Secret may be gone by then.
    let mut volume_mounts = vec![VolumeMount {
        name: "tmp".to_string(),
        mount_path: "/tmp".to_string(),
        ..VolumeMount::default()
    }];
    let mut volumes = vec![Volume {
        name: "tmp".to_string(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }];
    if operation == Operation::Install {
        volume_mounts.push(VolumeMount {
            name: "values".to_string(),
            mount_path: "/etc/federation/values".to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
        volumes.push(Volume {
            name: "values".to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(values_secret.clone()),
                items: Some(vec![KeyToPath {
                    key: VALUES_KEY.to_string(),
                    path: VALUES_KEY.to_string(),
                    mode: None,
                }]),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    let container = Container {
        name: "helm".to_string(),
        image: Some(runner_image(ctx).to_string()),
        command: Some(vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            script.to_string(),
        ]),
        env: Some(env),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), quantity("100m")),
                ("memory".to_string(), quantity("128Mi")),
            ])),
            limits: Some(BTreeMap::from([
                ("cpu".to_string(), quantity("1")),
                ("memory".to_string(), quantity("512Mi")),
            ])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                add: None,
            }),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(RUNNER_UID),
            run_as_group: Some(RUNNER_UID),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_string(),
                localhost_profile: None,
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(volume_mounts),
        ..Container::default()
    };
    let mut metadata = objects::metadata(ctx, SUB_JOB, name, Some(namespace));
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(OPERATION_LABEL.to_string(), operation.label().to_string());
    Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(active_deadline_seconds.max(1)),
            // An install Job stays until the next attempt or teardown deletes it: its outcome
            // is the subjob's. An uninstall Job outlives the step that reads it by this much.
            ttl_seconds_after_finished: (operation == Operation::Uninstall).then_some(3600),
            template: PodTemplateSpec {
                metadata: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                    labels: Some(objects::labels(ctx, SUB_JOB)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".to_string()),
                    service_account_name: Some(names::installer(ctx.name)),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(RUNNER_UID),
                        run_as_group: Some(RUNNER_UID),
                        fs_group: Some(RUNNER_UID),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_string(),
                            localhost_profile: None,
                        }),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// Label telling install Jobs from uninstall Jobs.
pub const OPERATION_LABEL: &str = "federation.fleet.dev/operation";

impl Operation {
    fn label(self) -> &'static str {
        match self {
            Operation::Install => "install",
            Operation::Uninstall => "uninstall",
        }
    }
}

/// How a Job ended, read only from its `Complete`/`Failed` conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    Running,
    Complete,
    Failed(String),
}

pub fn job_outcome(job: &Job) -> JobOutcome {
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
        return JobOutcome::Complete;
    }
    match holds("Failed") {
        Some(c) => JobOutcome::Failed(format!(
            "{}: {}",
            c.reason.as_deref().unwrap_or("Failed"),
            c.message.as_deref().unwrap_or("the Job failed")
        )),
        None => JobOutcome::Running,
    }
}

/// Seconds left of the current attempt (the Job's `activeDeadlineSeconds`).
pub fn remaining_seconds(ctx: &Context<'_>, attempt_started: Option<jiff::Timestamp>) -> i64 {
    let timeout = ctx.spec.sub_job_timeout_seconds.max(1);
    let elapsed = attempt_started
        .map(|start| crate::job::elapsed_between(start, ctx.now).as_secs() as i64)
        .unwrap_or(0);
    (timeout - elapsed).max(1)
}

pub struct ChartExecutor {
    client: Client,
}

impl ChartExecutor {
    pub fn new(client: Client) -> Self {
        ChartExecutor { client }
    }

    fn api<K>(&self, ctx: &Context<'_>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), ctx.control_plane_namespace())
    }

    /// The ServiceAccount and its bindings; returns a conflict message if one is not ours.
    async fn ensure_identity(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        if let Ensured::Conflict(message) = objects::ensure(
            &self.api::<ServiceAccount>(ctx),
            &desired_service_account(ctx),
            ctx,
        )
        .await?
        {
            return Ok(Some(message));
        }
        let bindings: Api<RoleBinding> = self.api(ctx);
        if let Some(message) = self
            .ensure_binding(&bindings, &desired_role_binding(ctx), ctx)
            .await?
        {
            return Ok(Some(message));
        }
        let cluster_bindings: Api<ClusterRoleBinding> = Api::all(self.client.clone());
        if ctx.spec.chart.cluster_scoped {
            let desired = desired_cluster_role_binding(ctx);
            if let Some(message) = self
                .ensure_binding(&cluster_bindings, &desired, ctx)
                .await?
            {
                return Ok(Some(message));
            }
        } else {
            // The chart was cluster-scoped in an earlier run: take the cluster-wide rights back.
            let name = names::installer_cluster_binding(ctx.control_plane_namespace(), ctx.name);
            if let Some(binding) = cluster_bindings
                .get_opt(&name)
                .await
                .map_err(|e| objects::api_error("get", &desired_cluster_role_binding(ctx), e))?
                .filter(|b| objects::is_ours(b.meta(), ctx))
            {
                objects::delete_one(&cluster_bindings, &binding).await?;
            }
        }
        Ok(None)
    }

    /// A binding's `roleRef` cannot change: one with another role is deleted and recreated.
    async fn ensure_binding<K>(
        &self,
        api: &Api<K>,
        desired: &K,
        ctx: &Context<'_>,
    ) -> Result<Option<String>>
    where
        K: Resource + Clone + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
        K::DynamicType: Default,
    {
        let role_of = |k: &K| serde_json::to_value(k).ok().map(|v| v["roleRef"].clone());
        if let Some(existing) = api
            .get_opt(&desired.name_any())
            .await
            .map_err(|e| objects::api_error("get", desired, e))?
            .filter(|e| objects::is_ours(e.meta(), ctx) && role_of(e) != role_of(desired))
        {
            objects::delete_one(api, &existing).await?;
        }
        Ok(match objects::ensure(api, desired, ctx).await? {
            Ensured::Conflict(message) => Some(message),
            _ => None,
        })
    }

    /// Reads `chart.credentialsSecretRef` from the enablement's namespace.
    async fn credentials(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Result<Option<(ByteString, ByteString)>, String>> {
        let Some(reference) = &ctx.spec.chart.credentials_secret_ref else {
            return Ok(Ok(None));
        };
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ctx.namespace);
        let secret = api
            .get_opt(&reference.name)
            .await
            .map_err(|source| Error::Api {
                action: "get",
                kind: "Secret".to_string(),
                namespace: ctx.namespace.to_string(),
                name: reference.name.clone(),
                source,
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
                return Ok(Err(format!(
                    "Secret {}/{} (chart.credentialsSecretRef) lacks the label {CREDENTIALS_LABEL}=true \
                     that allows its use as chart repository credentials",
                    ctx.namespace, reference.name
                )));
            }
            None => {
                return Ok(Err(format!(
                    "Secret {}/{} (chart.credentialsSecretRef) not found",
                    ctx.namespace, reference.name
                )));
            }
        };
        let Some(data) = secret.data else {
            return Ok(Err(format!(
                "Secret {}/{} (chart.credentialsSecretRef) is empty",
                ctx.namespace, reference.name
            )));
        };
        match (data.get("username"), data.get("password")) {
            (Some(u), Some(p)) => Ok(Ok(Some((u.clone(), p.clone())))),
            _ => Ok(Err(format!(
                "Secret {}/{} needs the keys username and password",
                ctx.namespace, reference.name
            ))),
        }
    }

    async fn install(&self, ctx: &Context<'_>, mode: Mode) -> Result<Observation> {
        if let Some(message) = self.ensure_identity(ctx).await? {
            return Ok(Observation::failed(reasons::NAME_CONFLICT, message));
        }
        let credentials = match self.credentials(ctx).await? {
            Ok(credentials) => credentials,
            Err(message) => {
                return Ok(Observation::failed(reasons::CREDENTIALS_NOT_FOUND, message));
            }
        };
        let with_credentials = credentials.is_some();
        let secrets: Api<Secret> = self.api(ctx);
        if let Ensured::Conflict(message) =
            objects::ensure(&secrets, &desired_values_secret(ctx, credentials), ctx).await?
        {
            return Ok(Observation::failed(reasons::NAME_CONFLICT, message));
        }
        let Mode::Attempt(attempt) = mode else {
            // Jobs are not repaired: the release was installed; its identity and values are.
            return Ok(Observation::Succeeded {
                message: Some("chart installed".to_string()),
                extend_param: BTreeMap::new(),
            });
        };
        let attempt_started = ctx
            .status
            .sub_job(SUB_JOB)
            .and_then(|s| s.attempt_start_time.as_ref())
            .map(|t| t.0);
        let name = names::install_job(ctx.name, ctx.job_uid(), attempt);
        let desired = desired_job(
            ctx,
            Operation::Install,
            name,
            remaining_seconds(ctx, attempt_started),
            with_credentials,
        );
        let existing = self.get_job(ctx, &desired).await?;
        Ok(self
            .run_job(ctx, existing, desired, Operation::Install)
            .await?
            .unwrap_or_else(|outcome| outcome))
    }

    /// Starts the Job (deleting older attempts of the same operation first) or reads its outcome.
    /// Ok(Ok(_)) is the outcome of a finished Job; Ok(Err(_)) an observation to report as is.
    async fn run_job(
        &self,
        ctx: &Context<'_>,
        existing: Option<Job>,
        desired: Job,
        operation: Operation,
    ) -> Result<Result<Observation, Observation>> {
        let jobs: Api<Job> = self.api(ctx);
        let name = desired.name_any();
        let job = match existing {
            Some(job) if !objects::is_ours(job.meta(), ctx) => {
                return Ok(Err(Observation::failed(
                    reasons::NAME_CONFLICT,
                    format!(
                        "Job {}/{name} exists and is not labelled for this enablement",
                        ctx.control_plane_namespace()
                    ),
                )));
            }
            Some(job) => job,
            None => {
                let selector = format!(
                    "{},{OPERATION_LABEL}={}",
                    objects::selector(ctx, Some(SUB_JOB)),
                    operation.label()
                );
                let older = jobs
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .map_err(|e| objects::api_error("list", &desired, e))?;
                for old in older.items.iter().filter(|j| j.name_any() != name) {
                    objects::delete_one(&jobs, old).await?;
                }
                jobs.patch(&name, &apply_params(), &Patch::Apply(&desired))
                    .await
                    .map_err(|e| objects::api_error("apply", &desired, e))?
            }
        };
        let (running, failed) = match operation {
            Operation::Install => (reasons::INSTALLING, reasons::INSTALL_FAILED),
            Operation::Uninstall => (reasons::UNINSTALLING, reasons::UNINSTALL_FAILED),
        };
        Ok(match job_outcome(&job) {
            JobOutcome::Complete => Ok(Observation::Succeeded {
                message: Some(format!("Job {name} completed")),
                extend_param: BTreeMap::new(),
            }),
            JobOutcome::Failed(why) => Err(Observation::failed(
                failed,
                format!("Job {name} failed: {why}"),
            )),
            JobOutcome::Running => Err(Observation::progressing(
                running,
                format!("Job {name} is running"),
            )),
        })
    }

    async fn get_job(&self, ctx: &Context<'_>, desired: &Job) -> Result<Option<Job>> {
        self.api::<Job>(ctx)
            .get_opt(&desired.name_any())
            .await
            .map_err(|e| objects::api_error("get", desired, e))
    }

    async fn uninstall(&self, ctx: &Context<'_>, attempt: i32) -> Result<Observation> {
        let never_started = ctx
            .status
            .sub_job(SUB_JOB)
            .is_none_or(|s| s.attempts == 0 && s.start_time.is_none());
        let namespace_gone = ctx.control_plane_is_local() && ctx.own_namespace_terminating;
        if !never_started && !namespace_gone {
            let teardown_uid = ctx
                .status
                .teardown
                .as_ref()
                .map_or("", |t| t.job_uid.as_str());
            let started = ctx
                .status
                .teardown
                .as_ref()
                .and_then(|t| t.steps.first())
                .and_then(|s| s.attempt_start_time.as_ref())
                .map(|t| t.0);
            let desired = desired_job(
                ctx,
                Operation::Uninstall,
                names::uninstall_job(ctx.name, teardown_uid, attempt),
                remaining_seconds(ctx, started),
                false,
            );
            let existing = self.get_job(ctx, &desired).await?;
            // Once the uninstall Job completed, only the clean-up below is left: recreating the
            // installer identity for it would undo that clean-up.
            let uninstalled = existing.as_ref().map(job_outcome) == Some(JobOutcome::Complete);
            if !uninstalled {
                if let Some(message) = self.ensure_identity(ctx).await? {
                    return Ok(Observation::failed(reasons::NAME_CONFLICT, message));
                }
                if let Err(observation) = self
                    .run_job(ctx, existing, desired, Operation::Uninstall)
                    .await?
                {
                    return Ok(observation);
                }
            }
        }
        let remaining = self.delete_everything(ctx).await?;
        let mut observation = objects::deletion_observation(remaining, "installer");
        if let Observation::Succeeded { message, .. } = &mut observation {
            *message = Some(if never_started {
                format!("{}: the chart was never installed", reasons::NOT_INSTALLED)
            } else if namespace_gone {
                format!(
                    "{}: helm uninstall skipped, the namespace is being deleted",
                    reasons::NAMESPACE_TERMINATING
                )
            } else {
                "release uninstalled".to_string()
            });
        }
        Ok(observation)
    }

    /// Deletes every object of this subjob, cluster-scoped binding included, but the uninstall
    /// Jobs (their TTL and owner reference remove them); returns how many were still there.
    async fn delete_everything(&self, ctx: &Context<'_>) -> Result<usize> {
        let install_jobs = format!(
            "{},{OPERATION_LABEL}!={}",
            objects::selector(ctx, Some(SUB_JOB)),
            Operation::Uninstall.label()
        );
        let mut remaining = objects::delete_matching(&self.api::<Job>(ctx), &install_jobs).await?;
        remaining += objects::delete_labelled(&self.api::<Secret>(ctx), ctx, SUB_JOB).await?;
        remaining += objects::delete_labelled(&self.api::<RoleBinding>(ctx), ctx, SUB_JOB).await?;
        remaining +=
            objects::delete_labelled(&self.api::<ServiceAccount>(ctx), ctx, SUB_JOB).await?;
        let cluster_bindings: Api<ClusterRoleBinding> = Api::all(self.client.clone());
        remaining += objects::delete_labelled(&cluster_bindings, ctx, SUB_JOB).await?;
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
mod tests {
    use super::*;
    use crate::api::{FederationEnablement, FederationEnablementStatus};
    use crate::subjobs::Settings;
    use serde_json::json;

    const LONGEST: &str = "a234567890123456789012345678901234567890";
    const NAMESPACE: &str = "n23456789012345678901234567890123456789012345678901234567890123";

    struct Fixture {
        enablement: FederationEnablement,
        status: FederationEnablementStatus,
        settings: Settings,
    }

    impl Fixture {
        fn new(spec: serde_json::Value) -> Self {
            let mut enablement: FederationEnablement = serde_json::from_value(json!({
                "apiVersion": "federation.fleet.dev/v1alpha1",
                "kind": "FederationEnablement",
                "metadata": {"name": LONGEST, "namespace": NAMESPACE, "uid": "0f8fad5b-d9cb-469f-a165-70867728950e"},
                "spec": spec,
            }))
            .expect("enablement");
            enablement.metadata.generation = Some(1);
            let status = serde_json::from_value(json!({
                "jobUID": "5d2e6a1b-0000-4000-8000-000000000001",
                "specHash": "abc",
                "subJobs": [{"type": "CreateNetworkResource", "uid": "u", "phase": "Success",
                    "extendParam": {"JobExtendParamKeyEndpoint": "203.0.113.10:5443"}}],
            }))
            .expect("status");
            Fixture {
                enablement,
                status,
                settings: Settings {
                    default_runner_image: "docker.io/alpine/helm:3.16.4".into(),
                },
            }
        }

        fn ctx(&self) -> Context<'_> {
            Context {
                enablement: &self.enablement,
                name: LONGEST,
                namespace: NAMESPACE,
                uid: "0f8fad5b-d9cb-469f-a165-70867728950e",
                spec: &self.enablement.spec,
                status: &self.status,
                settings: &self.settings,
                own_namespace_terminating: false,
                now: "2026-01-15T08:00:00Z".parse().expect("time"),
            }
        }
    }

    fn spec() -> serde_json::Value {
        json!({
            "clusterGroupID": "fleet-a",
            "sso": {"configUuid": "c-1", "issuerUrl": "https://issuer.example"},
            "chart": {"repository": "oci://registry.example/charts/", "name": "federation", "version": "1.2.3",
                "values": {"federation": {"replicas": 9, "extra": true}, "image": {"tag": "v1"}}},
        })
    }

    #[test]
    fn controller_facts_win_over_user_values_and_user_values_are_kept() {
        let f = Fixture::new(spec());
        let values = chart_values(&f.ctx());
        assert_eq!(values["image"]["tag"], "v1");
        assert_eq!(values["federation"]["extra"], true);
        assert_eq!(values["federation"]["replicas"], 1);
        assert_eq!(values["federation"]["endpoint"], "203.0.113.10:5443");
        assert_eq!(values["sso"]["issuerUrl"], "https://issuer.example");
        assert_eq!(
            values["federation"]["nodeSelector"]["federation.fleet.dev/control-plane"],
            "0f8fad5b-d9cb-469f-a165-70867728950e"
        );
    }

    #[test]
    fn install_job_is_restricted_pod_security_compliant_and_bounded() {
        let f = Fixture::new(spec());
        let job = desired_job(&f.ctx(), Operation::Install, "j".into(), 90, true);
        let spec = job.spec.expect("job spec");
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(spec.active_deadline_seconds, Some(90));
        let pod = spec.template.spec.expect("pod spec");
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let pod_security = pod.security_context.expect("pod security");
        assert_eq!(pod_security.run_as_non_root, Some(true));
        assert_eq!(
            pod_security.seccomp_profile.map(|p| p.type_).as_deref(),
            Some("RuntimeDefault")
        );
        let container = &pod.containers[0];
        let security = container
            .security_context
            .as_ref()
            .expect("container security");
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(
            security.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_string()])
        );
        assert_eq!(security.run_as_non_root, Some(true));
        let resources = container.resources.as_ref().expect("resources");
        assert!(resources.requests.is_some() && resources.limits.is_some());
        let env: Vec<_> = container
            .env
            .iter()
            .flatten()
            .map(|e| e.name.as_str())
            .collect();
        assert!(
            env.contains(&"HELM_REPO_PASSWORD"),
            "credentials come from the Secret"
        );
        let password = container
            .env
            .iter()
            .flatten()
            .find(|e| e.name == "HELM_REPO_PASSWORD")
            .expect("password env");
        assert!(password.value.is_none(), "never inline in the Job spec");
        assert!(
            container
                .env
                .iter()
                .flatten()
                .any(|e| e.name == "CHART_REPOSITORY"
                    && e.value.as_deref() == Some("oci://registry.example/charts")),
            "trailing slash trimmed"
        );
    }

    #[test]
    fn uninstall_job_needs_no_values_secret() {
        let f = Fixture::new(spec());
        let job = desired_job(&f.ctx(), Operation::Uninstall, "j".into(), 90, false);
        let pod = job.spec.and_then(|s| s.template.spec).expect("pod");
        assert!(pod.volumes.iter().flatten().all(|v| v.secret.is_none()));
        assert!(
            pod.containers[0]
                .command
                .iter()
                .flatten()
                .any(|c| c.contains("helm uninstall"))
        );
    }

    #[test]
    fn label_values_stay_valid_for_the_longest_names() {
        let f = Fixture::new(spec());
        let job = desired_job(
            &f.ctx(),
            Operation::Install,
            names::install_job(LONGEST, f.ctx().job_uid(), 21),
            90,
            false,
        );
        for (key, value) in job.metadata.labels.iter().flatten() {
            assert!(value.len() <= 63, "{key}={value}");
        }
        assert!(job.metadata.name.expect("name").len() <= 63);
        let binding = desired_cluster_role_binding(&f.ctx());
        assert!(binding.metadata.name.expect("name").len() <= 253);
    }

    #[test]
    fn bindings_bind_the_installer_account_to_the_allowed_role() {
        let f = Fixture::new(spec());
        let binding = desired_role_binding(&f.ctx());
        assert_eq!(binding.role_ref.kind, "ClusterRole");
        assert_eq!(binding.role_ref.name, "federation-chart-installer");
        let subject = &binding.subjects.expect("subjects")[0];
        assert_eq!(subject.name, names::installer(LONGEST));
        assert_eq!(subject.namespace.as_deref(), Some(NAMESPACE));
        let cluster = desired_cluster_role_binding(&f.ctx());
        assert!(cluster.metadata.namespace.is_none());
        assert!(
            cluster.metadata.owner_references.is_none(),
            "cluster-scoped: found by label"
        );
    }

    #[test]
    fn job_outcome_comes_only_from_complete_and_failed_conditions() {
        let job = |conditions: serde_json::Value| -> Job {
            serde_json::from_value(json!({"status": {"conditions": conditions, "active": 1}}))
                .expect("job")
        };
        assert_eq!(job_outcome(&job(json!([]))), JobOutcome::Running);
        assert_eq!(
            job_outcome(&job(json!([{"type": "Complete", "status": "True"}]))),
            JobOutcome::Complete
        );
        assert_eq!(
            job_outcome(&job(
                json!([{"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"}])
            )),
            JobOutcome::Failed(
                "DeadlineExceeded: Job was active longer than specified deadline".into()
            )
        );
        assert_eq!(
            job_outcome(&job(json!([{"type": "Failed", "status": "False"}]))),
            JobOutcome::Running
        );
    }

    #[test]
    fn the_install_script_recovers_a_pending_release_before_installing() {
        let pending = INSTALL_SCRIPT
            .find("pending-install")
            .expect("pending check");
        let install = INSTALL_SCRIPT
            .find("helm upgrade --install")
            .expect("install");
        assert!(pending < install);
        assert!(INSTALL_SCRIPT.contains("helm rollback"));
        assert!(
            UNINSTALL_SCRIPT.contains("exit 0"),
            "a release never installed counts as done"
        );
    }
}
