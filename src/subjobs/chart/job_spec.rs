//! The batch Job of one install or uninstall attempt: the runner image running `install.sh` or
//! `uninstall.sh` under the installer ServiceAccount, restricted-Pod-Security compliant.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, KeyToPath,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{PASSWORD_KEY, SUB_JOB, USERNAME_KEY, VALUES_KEY};
use crate::chart_source::ResolvedChart;
use crate::subjobs::{Context, names, ownership};

/// Installs the chart; recovers a release an interrupted install left pending first.
pub const INSTALL_SCRIPT: &str = include_str!("install.sh");

/// Uninstalls the release; a release that was never installed counts as done.
pub const UNINSTALL_SCRIPT: &str = include_str!("uninstall.sh");

/// Label of a helm release (`helm upgrade --install --labels`): the uid of the enablement that
/// made it, under the name every object the controller makes carries it. Install and uninstall
/// act only on a release that carries this enablement's.
pub use crate::api::ENABLEMENT_UID_LABEL as RELEASE_OWNER_LABEL;

/// The container that runs helm.
const CONTAINER: &str = "helm";

/// Label telling install Jobs from uninstall Jobs.
pub const OPERATION_LABEL: &str = "federation.fleet.dev/operation";

/// The unprivileged user the runner runs as (restricted Pod Security).
const RUNNER_UID: i64 = 65532;

/// What a Job of ours is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Install,
    Uninstall,
}

impl Operation {
    pub(super) fn label(self) -> &'static str {
        match self {
            Operation::Install => "install",
            Operation::Uninstall => "uninstall",
        }
    }

    fn script(self) -> &'static str {
        match self {
            Operation::Install => INSTALL_SCRIPT,
            Operation::Uninstall => UNINSTALL_SCRIPT,
        }
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

/// The Job of one install or uninstall attempt of `chart`, restricted-Pod-Security compliant.
pub fn desired_job(
    ctx: &Context<'_>,
    operation: Operation,
    chart: ResolvedChart<'_>,
    name: String,
    active_deadline_seconds: i64,
    with_credentials: bool,
) -> Job {
    let namespace = ctx.control_plane_namespace();
    let env = environment(
        ctx,
        operation,
        chart,
        active_deadline_seconds,
        with_credentials,
    );
    let (volume_mounts, volumes) = volumes(ctx, operation);
    let mut metadata = ownership::metadata(ctx, SUB_JOB, name, Some(namespace));
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(OPERATION_LABEL.to_string(), operation.label().to_string());
    Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            pod_failure_policy: Some(release_not_ours_policy()),
            active_deadline_seconds: Some(active_deadline_seconds.max(1)),
            // An install Job stays until the next attempt or teardown deletes it: its outcome
            // is the subjob's. An uninstall Job outlives the step that reads it by this much.
            ttl_seconds_after_finished: (operation == Operation::Uninstall).then_some(3600),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(ownership::labels(ctx, SUB_JOB)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".to_string()),
                    service_account_name: Some(names::installer(ctx.name)),
                    security_context: Some(pod_security_context()),
                    containers: vec![container(ctx, operation, env, volume_mounts)],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// The exit code of the scripts when the release exists and is not this enablement's.
pub const RELEASE_NOT_OURS_EXIT_CODE: i32 = 3;

/// Ends the Job at once on [`RELEASE_NOT_OURS_EXIT_CODE`], with the `PodFailurePolicy` reason,
/// so the controller can tell a release conflict from a failed install.
fn release_not_ours_policy() -> PodFailurePolicy {
    PodFailurePolicy {
        rules: vec![PodFailurePolicyRule {
            action: "FailJob".to_string(),
            on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                container_name: Some(CONTAINER.to_string()),
                operator: "In".to_string(),
                values: vec![RELEASE_NOT_OURS_EXIT_CODE],
            }),
            on_pod_conditions: None,
        }],
    }
}

/// What the scripts read: the release, where the chart comes from, whose the release must be,
/// and the credentials (from the values Secret, never inline).
fn environment(
    ctx: &Context<'_>,
    operation: Operation,
    chart: ResolvedChart<'_>,
    active_deadline_seconds: i64,
    with_credentials: bool,
) -> Vec<EnvVar> {
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
    let mut env = vec![
        env_value("RELEASE", ctx.release().to_string()),
        env_value("NAMESPACE", ctx.control_plane_namespace().to_string()),
        env_value("OWNER_LABEL", RELEASE_OWNER_LABEL.to_string()),
        env_value("OWNER_UID", ctx.uid.to_string()),
        env_value("ADOPT_UNLABELLED", ctx.run.installed_before.to_string()),
        env_value(
            "CHART_REPOSITORY",
            chart.repository.trim_end_matches('/').to_string(),
        ),
        env_value("CHART_NAME", chart.name.to_string()),
        env_value("CHART_VERSION", chart.version.to_string()),
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
    env
}

/// A writable `/tmp`, and (install only) the values file.
fn volumes(ctx: &Context<'_>, operation: Operation) -> (Vec<VolumeMount>, Vec<Volume>) {
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
                secret_name: Some(names::values_secret(ctx.name)),
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
    (volume_mounts, volumes)
}

/// The runner container: the operation's script under `/bin/sh -c`, bounded and unprivileged.
fn container(
    ctx: &Context<'_>,
    operation: Operation,
    env: Vec<EnvVar>,
    volume_mounts: Vec<VolumeMount>,
) -> Container {
    let quantity = |s: &str| Quantity(s.to_string());
    Container {
        name: CONTAINER.to_string(),
        image: Some(ctx.runner_image().to_string()),
        command: Some(vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            operation.script().to_string(),
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
            seccomp_profile: Some(runtime_default_seccomp()),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(volume_mounts),
        ..Container::default()
    }
}

fn pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUNNER_UID),
        run_as_group: Some(RUNNER_UID),
        fs_group: Some(RUNNER_UID),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..PodSecurityContext::default()
    }
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_string(),
        localhost_profile: None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::identity::desired_cluster_role_binding;
    use super::super::tests::{Fixture, LONGEST, spec};
    use super::*;

    #[test]
    fn install_job_is_restricted_pod_security_compliant_and_bounded() {
        let f = Fixture::new(spec());
        let job = desired_job(
            &f.ctx(),
            Operation::Install,
            f.chart(),
            "j".into(),
            90,
            true,
        );
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
    fn both_jobs_name_the_release_owner_and_stop_at_once_on_a_release_that_is_not_ours() {
        let f = Fixture::new(spec());
        for operation in [Operation::Install, Operation::Uninstall] {
            let job = desired_job(&f.ctx(), operation, f.chart(), "j".into(), 90, false);
            let spec = job.spec.expect("job spec");
            let rule = &spec.pod_failure_policy.expect("a pod failure policy").rules[0];
            assert_eq!(rule.action, "FailJob");
            let codes = rule.on_exit_codes.as_ref().expect("on exit codes");
            assert_eq!(
                (codes.operator.as_str(), codes.values.as_slice()),
                ("In", [RELEASE_NOT_OURS_EXIT_CODE].as_slice())
            );
            let pod = spec.template.spec.expect("pod spec");
            let env: BTreeMap<_, _> = pod.containers[0]
                .env
                .iter()
                .flatten()
                .map(|e| (e.name.as_str(), e.value.clone().unwrap_or_default()))
                .collect();
            assert_eq!(env["OWNER_LABEL"], RELEASE_OWNER_LABEL);
            assert_eq!(env["OWNER_UID"], "0f8fad5b-d9cb-469f-a165-70867728950e");
            assert_eq!(env["ADOPT_UNLABELLED"], "false");
        }
    }

    #[test]
    fn uninstall_job_needs_no_values_secret() {
        let f = Fixture::new(spec());
        let job = desired_job(
            &f.ctx(),
            Operation::Uninstall,
            f.chart(),
            "j".into(),
            90,
            false,
        );
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
            f.chart(),
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
