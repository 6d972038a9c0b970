//! kube-runtime wiring: watches, reconcile, finalizer, and one status patch per reconcile.
//!
//! A reconcile reads the status and the cluster, asks the pure state machine (`job`) what to
//! do, runs the executors it names, feeds their observations back, and writes the status once,
//! only when it changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, future};
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Node, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use crate::api::{
    ENABLEMENT_LABEL, ENABLEMENT_NAMESPACE_LABEL, FINALIZER, FederationEnablement,
    FederationEnablementStatus, JobPhase, MANAGED_BY_LABEL, MANAGER, RETRY_ANNOTATION, SubJobPhase,
    SubJobType, TeardownStepType,
};
use crate::health::{WATCH_RETRY_CAP, WatchBackoff, WatchHealth};
use crate::job::{self, JobInput, Mode, Observation, Transition, reasons};
use crate::metrics::Metrics;
use crate::policy::{self, Policy};
use crate::subjobs::{self, Executors, NamespaceState, Settings};

/// Errors that fail a reconcile (it is retried by the error policy).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("patching the status of {0}: {1}")]
    StatusPatch(String, #[source] kube::Error),
    #[error("updating the finalizers of {0}: {1}")]
    Finalizer(String, #[source] kube::Error),
    #[error("control-plane namespace of {0}: {1}")]
    Namespace(String, #[source] subjobs::Error),
    #[error("building a patch: {0}")]
    Serialization(#[from] serde_json::Error),
}

/// The clock the controller reads; tests move it by hand.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// How often a successful job's objects are checked for drift when no watch event comes.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(300);
/// How often a duplicate enablement checks whether the fleet's owner is gone.
pub const DUPLICATE_RECHECK_INTERVAL: Duration = Duration::from_secs(30);
/// Rounds of decide-and-execute in one reconcile (each subjob wave takes one).
const MAX_ROUNDS: usize = 8;

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub executors: Executors,
    pub policy: Policy,
    pub settings: Settings,
    /// Events are best effort: None records none.
    pub recorder: Option<Recorder>,
    /// All enablements this controller sees, for the one-owner-per-fleet rule.
    pub store: Store<FederationEnablement>,
    pub clock: Arc<dyn Clock>,
    pub new_uid: Arc<dyn Fn() -> String + Send + Sync>,
    pub metrics: Arc<Metrics>,
    /// Where a cache found behind the API server (a 409 on a write) is reported.
    pub health: WatchHealth,
    /// Stale reads in a row per enablement, for the backoff of their retries.
    stale_reads: std::sync::Mutex<std::collections::HashMap<ObjectRef<FederationEnablement>, u32>>,
    /// An event failed to record already: later failures are logged at debug level only.
    events_failing: std::sync::atomic::AtomicBool,
}

impl Context {
    pub fn new(
        client: Client,
        executors: Executors,
        policy: Policy,
        store: Store<FederationEnablement>,
    ) -> Self {
        let settings = Settings {
            default_runner_image: policy.default_runner_image().to_string(),
        };
        let recorder = Recorder::new(client.clone(), Reporter::from(MANAGER.to_string()));
        Context {
            client,
            executors,
            policy,
            settings,
            recorder: Some(recorder),
            store,
            clock: Arc::new(SystemClock),
            new_uid: Arc::new(|| uuid::Uuid::new_v4().to_string()),
            metrics: Arc::new(Metrics::new()),
            health: WatchHealth::default(),
            stale_reads: Default::default(),
            events_failing: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// Runs the controller until `shutdown` resolves; in-flight reconciles finish first.
///
/// Every watch has its own backoff and reports to `health`; its errors never reach the
/// controller's trigger queue, so one failing watch neither pauses the others nor the store.
pub async fn run(
    client: Client,
    executors: Executors,
    policy: Policy,
    concurrency: u16,
    metrics: Arc<Metrics>,
    health: WatchHealth,
    shutdown: impl future::Future<Output = ()> + Send + Sync + 'static,
) {
    let namespace = policy.watch_namespace.clone();
    let api: Api<FederationEnablement> = scoped(&client, namespace.as_deref());
    let (store, writer) = reflector::store();
    // A consistent list (not `any_semantic`): a relist after the API server restarts must not
    // put back versions older than those this controller already wrote on.
    let enablements = health
        .observe(
            "FederationEnablement",
            watcher(api, watcher::Config::default()).backoff(WatchBackoff::default()),
        )
        .map(Ok)
        .reflect(writer)
        .applied_objects();
    let mut controller = Controller::for_stream(enablements, store.clone())
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown);
    if executors.kubernetes {
        let ns = namespace.as_deref();
        controller = watch_ours(controller, &health, scoped::<Service>(&client, ns));
        controller = watch_ours(controller, &health, scoped::<Secret>(&client, ns));
        controller = watch_ours(controller, &health, scoped::<Job>(&client, ns));
        controller = watch_ours(controller, &health, scoped::<ServiceAccount>(&client, ns));
        controller = watch_ours(controller, &health, scoped::<RoleBinding>(&client, ns));
        controller = watch_ours(
            controller,
            &health,
            Api::<ClusterRoleBinding>::all(client.clone()),
        );
        let nodes_store = store.clone();
        let nodes = watched(
            &health,
            Api::<Node>::all(client.clone()),
            watcher::Config::default(),
        );
        controller =
            controller.watches_stream(nodes, move |node| waiting_on_nodes(&nodes_store, &node));
    }
    let mut context = Context::new(client, executors, policy, store);
    context.metrics = metrics;
    context.health = health;
    let context = Arc::new(context);
    info!("controller started");
    controller
        .run(reconcile, error_policy, context)
        .for_each(|result| {
            match result {
                Ok((object, action)) => debug!(%object, ?action, "reconciled"),
                // Deleted while a reconcile was queued: nothing left to do.
                Err(kube::runtime::controller::Error::ObjectNotFound(object)) => {
                    debug!(%object, "gone before its reconcile")
                }
                Err(error) => warn!(%error, "reconcile failed"),
            }
            future::ready(())
        })
        .await;
    info!("controller stopped");
}

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Watches the objects of kind `K` this controller made (only those: the watch is filtered by
/// label, so the cache never holds, say, every Secret of the cluster).
fn watch_ours<K>(
    controller: Controller<FederationEnablement>,
    health: &WatchHealth,
    api: Api<K>,
) -> Controller<FederationEnablement>
where
    K: Resource<DynamicType = ()> + k8s_openapi::Resource,
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let ours = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"));
    controller.watches_stream(watched(health, api, ours), by_labels)
}

/// The objects a watch touches, with the watch's own backoff, its health reported under its kind.
fn watched<K>(
    health: &WatchHealth,
    api: Api<K>,
    config: watcher::Config,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + k8s_openapi::Resource,
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let events = watcher(api, config).backoff(WatchBackoff::default());
    health
        .observe(<K as k8s_openapi::Resource>::KIND, events)
        .map(Ok)
        .touched_objects()
}

/// An object we made belongs to the enablement its labels name.
fn by_labels<K: Resource>(object: K) -> Option<ObjectRef<FederationEnablement>> {
    let labels = object.meta().labels.as_ref()?;
    let name = labels.get(ENABLEMENT_LABEL)?;
    let namespace = labels.get(ENABLEMENT_NAMESPACE_LABEL)?;
    Some(ObjectRef::new(name).within(namespace))
}

/// A node change matters to enablements waiting on nodes, and to the one that labelled it.
fn waiting_on_nodes(
    store: &Store<FederationEnablement>,
    node: &Node,
) -> Vec<ObjectRef<FederationEnablement>> {
    let labelled_for = node.labels().get(crate::api::CONTROL_PLANE_NODE_LABEL);
    store
        .state()
        .iter()
        .filter(|fe| {
            let waiting = fe.status.as_ref().is_some_and(|s| {
                [SubJobType::CreateNode, SubJobType::CreateNetworkResource]
                    .iter()
                    .any(|t| {
                        s.sub_job(*t)
                            .is_some_and(|j| j.phase == SubJobPhase::Running)
                    })
            });
            waiting || labelled_for.is_some_and(|uid| fe.uid().as_deref() == Some(uid.as_str()))
        })
        .map(|fe| ObjectRef::from_obj(fe.as_ref()))
        .collect()
}

impl Error {
    /// The object changed since it was read: not a failure, the newer version is reconciled next.
    pub fn is_stale_read(&self) -> bool {
        match self {
            Error::StatusPatch(_, kube::Error::Api(status)) => status.code == 409,
            Error::Finalizer(_, kube::Error::Api(status)) => {
                status.code == 409 || status.code == 422
            }
            _ => false,
        }
    }
}

/// The first retry after a stale read; each stale read in a row doubles it, up to
/// [`WATCH_RETRY_CAP`].
pub const STALE_READ_RETRY: Duration = Duration::from_millis(500);

pub fn error_policy(fe: Arc<FederationEnablement>, error: &Error, ctx: Arc<Context>) -> Action {
    if error.is_stale_read() {
        // The watch normally brings the newer version within moments. If it does not, the cache
        // is stuck behind the API server: retrying at a fixed pace would only repeat the 409, so
        // back off, and report it like a failing watch (a stuck one fails `/healthz`).
        let in_a_row = ctx.stale_read(&fe);
        ctx.health.failed(
            "FederationEnablement",
            &format_args!("the cache is behind the API server: {error}"),
        );
        debug!(enablement = %fe.name_any(), %error, in_a_row, "read a stale version; reconciling the newer one");
        return Action::requeue(stale_read_retry(in_a_row));
    }
    warn!(enablement = %fe.name_any(), namespace = fe.namespace().unwrap_or_default(), %error, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(10))
}

/// How long to wait before the retry that follows `in_a_row` stale reads of one enablement.
pub fn stale_read_retry(in_a_row: u32) -> Duration {
    let doublings = in_a_row.saturating_sub(1).min(16);
    STALE_READ_RETRY
        .saturating_mul(1 << doublings)
        .min(WATCH_RETRY_CAP)
}

impl Context {
    /// Counts a stale read of `fe`; returns how many came in a row.
    fn stale_read(&self, fe: &FederationEnablement) -> u32 {
        let mut reads = self.stale_reads.lock().unwrap_or_else(|e| e.into_inner());
        let count = reads.entry(ObjectRef::from_obj(fe)).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    fn read_fresh(&self, fe: &FederationEnablement) {
        let mut reads = self.stale_reads.lock().unwrap_or_else(|e| e.into_inner());
        if !reads.is_empty() {
            reads.remove(&ObjectRef::from_obj(fe));
        }
    }
}

/// Reconciles one FederationEnablement.
pub async fn reconcile(fe: Arc<FederationEnablement>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = reconcile_once(&fe, &ctx).await;
    ctx.metrics.reconciled(result.is_ok(), started.elapsed());
    if !result.as_ref().is_err_and(Error::is_stale_read) {
        ctx.read_fresh(&fe);
    }
    result
}

async fn reconcile_once(fe: &FederationEnablement, ctx: &Context) -> Result<Action, Error> {
    let namespace = fe.namespace().unwrap_or_default();
    let api: Api<FederationEnablement> = Api::namespaced(ctx.client.clone(), &namespace);
    if fe.meta().deletion_timestamp.is_some() {
        return teardown(fe, &api, ctx).await;
    }
    if fe.finalizers().iter().any(|f| f == FINALIZER) {
        return run_job(fe, &api, ctx).await;
    }
    // Go on with the object as patched: its resourceVersion guards the status write.
    let fe = add_finalizer(fe, &api).await?;
    run_job(&fe, &api, ctx).await
}

async fn run_job(
    fe: &FederationEnablement,
    api: &Api<FederationEnablement>,
    ctx: &Context,
) -> Result<Action, Error> {
    let name = fe.name_any();
    let namespace = fe.namespace().unwrap_or_default();
    let uid = fe.uid().unwrap_or_default();
    let current = fe.status.clone().unwrap_or_default();
    let blocked = ctx.policy.check(fe).or_else(|| {
        let all = ctx.store.state();
        policy::check_duplicate(fe, all.iter().map(AsRef::as_ref))
    });
    let control_plane_namespace = fe.spec.control_plane_namespace(&namespace).to_string();
    // The namespace was ensured when the first subjob started; only a start needs a look.
    let mut namespace_ready = !ctx.executors.kubernetes
        || control_plane_namespace == namespace
        || current
            .sub_jobs
            .iter()
            .any(|s| s.phase != SubJobPhase::Pending);

    let mut status = current.clone();
    let mut observations = BTreeMap::new();
    let mut observed = BTreeSet::new();
    let mut transitions = Vec::new();
    let mut requeue_after = None;
    let mut polling = None;
    for _ in 0..MAX_ROUNDS {
        let now = ctx.clock.now();
        let input = JobInput {
            spec: &fe.spec,
            generation: fe.meta().generation,
            retry_annotation: fe.annotations().get(RETRY_ANNOTATION).map(String::as_str),
            blocked: blocked.clone(),
            namespace_ready,
            now,
        };
        let decision = job::decide(&input, &status, &observations, &mut || (ctx.new_uid)());
        status = decision.status;
        transitions.extend(decision.transitions);
        requeue_after = decision.requeue_after;
        observations.clear();
        if decision.ensure_namespace {
            let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
            let state = subjobs::ensure_control_plane_namespace(
                &namespaces,
                &control_plane_namespace,
                &uid,
                true,
            )
            .await
            .map_err(|e| Error::Namespace(format!("{namespace}/{name}"), e))?;
            if state == NamespaceState::Ready {
                namespace_ready = true;
                continue;
            }
            // Terminating: wait for it to go, then it is created afresh.
            requeue_after = Some(Duration::from_secs(5));
            break;
        }
        let pending: Vec<(SubJobType, Mode)> = decision
            .execute
            .into_iter()
            .filter(|(t, _)| observed.insert(*t))
            .collect();
        if pending.is_empty() {
            break;
        }
        let sub_ctx = subjobs::Context::new(fe, &status, &ctx.settings, false, now);
        let sub_ctx = &sub_ctx;
        let results = future::join_all(pending.iter().map(|(t, mode)| {
            let executor = ctx.executors.get(*t);
            async move { (*t, observe(executor.run(sub_ctx, *mode).await, *t)) }
        }))
        .await;
        for (t, _) in &pending {
            if matches!(
                status.sub_job(*t).map(|s| s.phase),
                Some(SubJobPhase::Running)
            ) {
                let interval = ctx.executors.get(*t).poll_interval();
                polling = Some(polling.map_or(interval, |p: Duration| p.min(interval)));
            }
        }
        observations.extend(results);
    }

    write_status(fe, api, ctx, &current, &status, &transitions).await?;

    let phase = status.phase.unwrap_or(JobPhase::Pending);
    let in_flight = status
        .sub_jobs
        .iter()
        .any(|s| s.phase == SubJobPhase::Running && s.next_attempt_time.is_none());
    let mut after = requeue_after;
    let mut at_most = |d: Duration| after = Some(after.map_or(d, |a: Duration| a.min(d)));
    if in_flight {
        at_most(polling.unwrap_or(Duration::from_secs(15)));
    }
    match (phase, status.reason.as_deref()) {
        (JobPhase::Success, _) => at_most(MAINTENANCE_INTERVAL),
        (JobPhase::Failed, Some(reasons::DUPLICATE_CLUSTER_GROUP_ID)) => {
            at_most(DUPLICATE_RECHECK_INTERVAL)
        }
        _ => {}
    }
    Ok(after.map_or_else(Action::await_change, Action::requeue))
}

/// An executor's error is a failed attempt that names what failed.
fn observe(result: subjobs::Result<Observation>, sub_job: impl std::fmt::Display) -> Observation {
    result.unwrap_or_else(|error| {
        warn!(%sub_job, %error, "executor failed");
        Observation::failed(reasons::API_ERROR, error.to_string())
    })
}

async fn teardown(
    fe: &FederationEnablement,
    api: &Api<FederationEnablement>,
    ctx: &Context,
) -> Result<Action, Error> {
    if !fe.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let current = fe.status.clone().unwrap_or_default();
    // Refused by the allowlists and never started: nothing was created, so there is nothing to
    // tear down, and the controller may not even be allowed to look (a foreign namespace while
    // it watches one namespace). Without this the deletion would wait forever.
    let never_started = current.teardown.is_none()
        && current
            .sub_jobs
            .iter()
            .all(|s| s.phase == SubJobPhase::Pending && s.attempts == 0);
    if never_started && ctx.policy.check(fe).is_some() {
        remove_finalizer(fe, api).await?;
        return Ok(Action::await_change());
    }
    let name = fe.name_any();
    let namespace = fe.namespace().unwrap_or_default();
    let uid = fe.uid().unwrap_or_default();
    let own_namespace_terminating = ctx.executors.kubernetes && {
        let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
        subjobs::ensure_control_plane_namespace(&namespaces, &namespace, &uid, false)
            .await
            .map_err(|e| Error::Namespace(format!("{namespace}/{name}"), e))?
            == NamespaceState::Terminating
    };
    let timeout = Duration::from_secs(fe.spec.sub_job_timeout_seconds.max(1) as u64);

    let mut status = current.clone();
    let mut observations = BTreeMap::new();
    let mut observed = BTreeSet::new();
    let mut transitions = Vec::new();
    let mut requeue_after = None;
    let mut finished = false;
    for _ in 0..MAX_ROUNDS {
        let now = ctx.clock.now();
        let decision = job::decide_teardown(
            &status,
            fe.meta().generation,
            timeout,
            now,
            &observations,
            &mut || (ctx.new_uid)(),
        );
        status = decision.status;
        transitions.extend(decision.transitions);
        requeue_after = decision.requeue_after;
        finished = decision.finished;
        observations.clear();
        let pending: Vec<(TeardownStepType, i32)> = decision
            .execute
            .into_iter()
            .filter(|(t, _)| observed.insert(*t))
            .collect();
        if pending.is_empty() {
            break;
        }
        let sub_ctx =
            subjobs::Context::new(fe, &status, &ctx.settings, own_namespace_terminating, now);
        for (step, attempt) in pending {
            let executor = ctx.executors.get(step.undoes());
            let observation = observe(executor.teardown(&sub_ctx, attempt).await, step);
            observations.insert(step, observation);
            requeue_after = Some(executor.poll_interval().min(Duration::from_secs(5)));
        }
    }

    write_status(fe, api, ctx, &current, &status, &transitions).await?;
    if finished {
        remove_finalizer(fe, api).await?;
        return Ok(Action::await_change());
    }
    Ok(requeue_after.map_or_else(Action::await_change, Action::requeue))
}

/// One server-side apply of the whole status, only when it changed; then the events.
async fn write_status(
    fe: &FederationEnablement,
    api: &Api<FederationEnablement>,
    ctx: &Context,
    current: &FederationEnablementStatus,
    status: &FederationEnablementStatus,
    transitions: &[Transition],
) -> Result<(), Error> {
    if status != current {
        // The resourceVersion we read is a precondition: a status computed from a stale view
        // (a lagging cache, a second writer) is refused rather than overwriting newer progress.
        let patch = json!({
            "apiVersion": FederationEnablement::api_version(&()),
            "kind": FederationEnablement::kind(&()),
            "metadata": {"resourceVersion": fe.resource_version()},
            "status": status,
        });
        api.patch_status(
            &fe.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|e| Error::StatusPatch(fe.name_any(), e))?;
        ctx.metrics.status_writes.inc();
    }
    record_durations(ctx, status, transitions);
    publish(fe, ctx, transitions).await;
    Ok(())
}

/// Observes how long each subjob that ended in this reconcile took.
fn record_durations(
    ctx: &Context,
    status: &FederationEnablementStatus,
    transitions: &[Transition],
) {
    for transition in transitions {
        let (sub_job, succeeded) = match transition {
            Transition::SubJobSucceeded(t) => (*t, true),
            Transition::SubJobFailed { sub_job, .. } => (*sub_job, false),
            _ => continue,
        };
        let times = status
            .sub_job(sub_job)
            .and_then(|s| Some((s.start_time.as_ref()?.0, s.completion_time.as_ref()?.0)));
        if let Some((start, end)) = times {
            let took = job::elapsed_between(start, end);
            ctx.metrics
                .sub_job_finished(sub_job.as_str(), succeeded, took);
        }
    }
}

/// Records an event per transition; a failure to record is logged, never fatal.
async fn publish(fe: &FederationEnablement, ctx: &Context, transitions: &[Transition]) {
    let Some(recorder) = &ctx.recorder else {
        return;
    };
    let reference = fe.object_ref(&());
    for transition in transitions {
        let event = to_event(transition);
        if let Err(error) = recorder.publish(&event, &reference).await {
            if ctx
                .events_failing
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                debug!(reason = %event.reason, %error, "could not record an event");
            } else {
                warn!(reason = %event.reason, %error, "could not record an event; later failures are logged at debug level");
            }
        }
    }
}

pub fn to_event(transition: &Transition) -> Event {
    let (type_, reason, note) = match transition {
        Transition::SubJobStarted(t) => {
            (EventType::Normal, "SubJobStarted", format!("{t} started"))
        }
        Transition::SubJobSucceeded(t) => (
            EventType::Normal,
            "SubJobSucceeded",
            format!("{t} succeeded"),
        ),
        Transition::SubJobFailed {
            sub_job,
            reason,
            message,
        } => (
            EventType::Warning,
            "SubJobFailed",
            format!("{sub_job} failed ({reason}): {message}"),
        ),
        Transition::JobSucceeded => (
            EventType::Normal,
            "JobSucceeded",
            "federation enabled".to_string(),
        ),
        Transition::JobFailed { reason, message } => (
            EventType::Warning,
            "JobFailed",
            format!("{reason}: {message}"),
        ),
        Transition::TeardownStarted => (
            EventType::Normal,
            "TeardownStarted",
            "tearing the federation down".to_string(),
        ),
        Transition::TeardownSucceeded => (
            EventType::Normal,
            "TeardownSucceeded",
            "federation removed".to_string(),
        ),
    };
    Event {
        type_,
        reason: reason.to_string(),
        note: Some(truncate(&note, 1024)),
        action: reason.to_string(),
        secondary: None,
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// Adds the finalizer; the `test` makes a concurrent change fail instead of being overwritten.
async fn add_finalizer(
    fe: &FederationEnablement,
    api: &Api<FederationEnablement>,
) -> Result<FederationEnablement, Error> {
    let patch = match &fe.metadata.finalizers {
        None => json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ]),
        Some(finalizers) => json!([
            {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
        ]),
    };
    json_patch(fe, api, patch).await
}

async fn remove_finalizer(
    fe: &FederationEnablement,
    api: &Api<FederationEnablement>,
) -> Result<(), Error> {
    let Some(index) = fe.finalizers().iter().position(|f| f == FINALIZER) else {
        return Ok(());
    };
    let path = format!("/metadata/finalizers/{index}");
    let patch = json!([
        {"op": "test", "path": path, "value": FINALIZER},
        {"op": "remove", "path": path},
    ]);
    json_patch(fe, api, patch).await.map(drop)
}

/// A JSON patch of the finalizers; returns the object as patched.
async fn json_patch(
    fe: &FederationEnablement,
    api: &Api<FederationEnablement>,
    patch: serde_json::Value,
) -> Result<FederationEnablement, Error> {
    let patch: json_patch::Patch = serde_json::from_value(patch)?;
    api.patch(
        &fe.name_any(),
        &PatchParams::default(),
        &Patch::Json::<()>(patch),
    )
    .await
    .map_err(|e| Error::Finalizer(fe.name_any(), e))
}
