//! Simulated executors (`--executors=simulated`): each subjob "succeeds" after a delay and
//! creates nothing outside the FederationEnablement's status. For demos, load tests and
//! end-to-end tests of the controller itself, like Cluster API's in-memory provider.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use kube::ResourceExt;

use super::{Context, Result, SubJobExecutor};
use crate::api::{EXTEND_PARAM_ELB_ID, EXTEND_PARAM_ENDPOINT, SubJobType};
use crate::job::{Mode, Observation, reasons};

/// Annotation listing subjobs that fail every attempt: `"CreateCert,InstallFederationChart"`.
pub const SIMULATE_FAILURE_ANNOTATION: &str = "federation.fleet.dev/simulate-failure";

/// How long each simulated subjob takes.
#[derive(Clone, Debug)]
pub struct SimulatedConfig {
    pub delays: BTreeMap<SubJobType, Duration>,
}

impl SimulatedConfig {
    pub fn uniform(delay: Duration) -> Self {
        SimulatedConfig {
            delays: SubJobType::ALL.into_iter().map(|t| (t, delay)).collect(),
        }
    }

    pub fn delay(&self, sub_job: SubJobType) -> Duration {
        self.delays.get(&sub_job).copied().unwrap_or_default()
    }
}

/// The subjobs the annotation asks to fail.
pub fn simulated_failures(annotation: Option<&String>) -> Vec<SubJobType> {
    annotation
        .map(|v| v.split(',').filter_map(|t| t.trim().parse().ok()).collect())
        .unwrap_or_default()
}

pub struct SimulatedExecutor {
    sub_job: SubJobType,
    config: Arc<SimulatedConfig>,
}

impl SimulatedExecutor {
    pub fn new(sub_job: SubJobType, config: Arc<SimulatedConfig>) -> Self {
        SimulatedExecutor { sub_job, config }
    }

    fn observe(&self, ctx: &Context<'_>, mode: Mode) -> Observation {
        let failures = simulated_failures(
            ctx.enablement
                .annotations()
                .get(SIMULATE_FAILURE_ANNOTATION),
        );
        if failures.contains(&self.sub_job) {
            return Observation::failed(
                reasons::SIMULATED_FAILURE,
                format!(
                    "simulated failure of {} (annotation {SIMULATE_FAILURE_ANNOTATION})",
                    self.sub_job
                ),
            );
        }
        let delay = self.config.delay(self.sub_job);
        let elapsed = crate::job::elapsed_between(ctx.started_at, ctx.now);
        if mode != Mode::Maintain && elapsed < delay {
            return Observation::progressing(
                reasons::SIMULATING,
                format!("simulated {} takes {}ms", self.sub_job, delay.as_millis()),
            );
        }
        let mut extend_param = BTreeMap::new();
        if self.sub_job == SubJobType::CreateNetworkResource {
            if let Some(elb_id) = &ctx.spec.network.elb_id {
                extend_param.insert(EXTEND_PARAM_ELB_ID.to_string(), elb_id.clone());
            }
            extend_param.insert(
                EXTEND_PARAM_ENDPOINT.to_string(),
                format!("192.0.2.10:{}", ctx.spec.network.port),
            );
        }
        Observation::Succeeded {
            message: Some(format!("simulated {} succeeded", self.sub_job)),
            extend_param,
        }
    }
}

impl SubJobExecutor for SimulatedExecutor {
    fn sub_job(&self) -> SubJobType {
        self.sub_job
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>, mode: Mode) -> BoxFuture<'a, Result<Observation>> {
        Box::pin(async move { Ok(self.observe(ctx, mode)) })
    }

    fn teardown<'a>(
        &'a self,
        _ctx: &'a Context<'a>,
        _attempt: i32,
    ) -> BoxFuture<'a, Result<Observation>> {
        Box::pin(async move {
            Ok(Observation::Succeeded {
                message: Some("simulated teardown step succeeded".to_string()),
                extend_param: BTreeMap::new(),
            })
        })
    }

    fn poll_interval(&self) -> Duration {
        self.config
            .delay(self.sub_job)
            .max(Duration::from_millis(50))
    }
}
