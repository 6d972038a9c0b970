//! kube-runtime wiring: watches, reconcile, error policy. The drive loop that carries out the
//! state machine's commands is in `drive.rs`, the two kinds of reconcile in `reconcile.rs`,
//! and what a reconcile writes in `status.rs`.
//!
//! A reconcile reads the status and the cluster, asks the pure state machine (`job`) what to
//! do, runs the executors it names, feeds their observations back, and writes the status once,
//! only when it changed.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, future};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta as Meta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{debug, info, warn};

use crate::api::{
    ENABLEMENT_LABEL, ENABLEMENT_NAMESPACE_LABEL, ENABLEMENT_UID_LABEL, FINALIZER,
    FederationEnablement, MANAGED_BY_LABEL, MANAGER, SubJobPhase, SubJobType,
};
mod drive;
mod reconcile;
mod status;

pub use crate::clock::{Clock, SystemClock};
pub use status::{EVENTS_UNSERVED_RETRY, to_event};

use reconcile::{run_job, teardown};
use status::add_finalizer;

use crate::health::{WATCH_RETRY_CAP, WatchBackoff, WatchHealth};
use crate::http::cache::FederationCache;
use crate::job::PollIntervals;
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::subjobs::{self, Executors, Settings};

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
    #[error(
        "{0} was read at resourceVersion {1}, which a write of this controller has replaced since"
    )]
    BehindOwnWrite(String, String),
}

pub use crate::job::{DUPLICATE_RECHECK_INTERVAL, MAINTENANCE_INTERVAL};
/// Rounds of decide-and-execute in one reconcile (each subjob wave takes one).
const MAX_ROUNDS: usize = 8;

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub executors: Executors,
    /// How often each executor wants an attempt in flight looked at.
    pub poll_intervals: PollIntervals,
    pub policy: Policy,
    pub settings: Settings,
    /// Events are best effort: None records none.
    pub recorder: Option<Recorder>,
    /// All enablements this controller sees, for the one-owner-per-fleet rule (by fleet, in
    /// O(1): a reconcile never scans them all).
    pub cache: FederationCache,
    pub clock: Arc<dyn Clock>,
    pub new_uid: Arc<dyn Fn() -> String + Send + Sync>,
    pub metrics: Arc<Metrics>,
    /// Where a cache found behind the API server (a 409 on a write) is reported.
    pub health: WatchHealth,
    /// Stale reads in a row per enablement, for the backoff of their retries.
    stale_reads: std::sync::Mutex<std::collections::HashMap<ObjectRef<FederationEnablement>, u32>>,
    /// Per enablement, the resourceVersions this controller's own writes replaced, until the
    /// cache shows another: a reconcile of one of them is a stale read known without asking the
    /// API server (whose refusal, a 409, costs it nearly a write).
    superseded:
        std::sync::Mutex<std::collections::HashMap<ObjectRef<FederationEnablement>, Vec<String>>>,
    /// An event failed to record already: later failures are logged at debug level only.
    events_failing: std::sync::atomic::AtomicBool,
    /// The API server answered that it serves no events (404): none is sent before this time.
    events_unserved_until: std::sync::Mutex<Option<jiff::Timestamp>>,
}

impl Context {
    pub fn new(
        client: Client,
        executors: Executors,
        policy: Policy,
        cache: FederationCache,
    ) -> Self {
        let settings = Settings {
            default_runner_image: policy.default_runner_image().to_string(),
        };
        let recorder = Recorder::new(client.clone(), Reporter::from(MANAGER.to_string()));
        let poll_intervals =
            PollIntervals::new(SubJobType::ALL.map(|t| (t, executors.get(t).poll_interval())));
        Context {
            client,
            executors,
            poll_intervals,
            policy,
            settings,
            recorder: Some(recorder),
            cache,
            clock: Arc::new(SystemClock),
            new_uid: Arc::new(|| uuid::Uuid::new_v4().to_string()),
            metrics: Arc::new(Metrics::new()),
            health: WatchHealth::default(),
            stale_reads: Default::default(),
            superseded: Default::default(),
            events_failing: std::sync::atomic::AtomicBool::new(false),
            events_unserved_until: std::sync::Mutex::new(None),
        }
    }
}

/// The annotation `kubectl apply` keeps a whole copy of the object in.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The process's one watch of FederationEnablements, which keeps the cache the controller and
/// the HTTP API share (see [`FederationCache`]): a consistent list
/// (not `any_semantic`: a relist after the API server restarts must not put back versions older
/// than those this controller already wrote on), with its own backoff, and without what nothing
/// here reads and what would be most of each object held in memory: `managedFields` (one entry
/// per field manager, ours and kubectl's) and the copy `kubectl apply` keeps in an annotation.
pub fn enablement_watch(
    api: Api<FederationEnablement>,
) -> impl futures::Stream<Item = Result<watcher::Event<FederationEnablement>, watcher::Error>> {
    watcher(api, watcher::Config::default())
        .backoff(WatchBackoff::default())
        .modify(|fe| {
            fe.managed_fields_mut().clear();
            fe.annotations_mut().remove(LAST_APPLIED_ANNOTATION);
        })
}

/// What wakes the controller: once the cache has synced, every enablement; then each one that
/// changes, and every one again after a relist. A burst of changes to one enablement wakes it
/// once, however far behind the controller is.
pub fn triggers(
    cache: &FederationCache,
) -> impl futures::Stream<Item = Arc<FederationEnablement>> + Send + 'static {
    // Subscribed before the first read: a change in between is seen twice, never missed.
    let changes = cache.subscribe();
    let cache = cache.clone();
    futures::stream::unfold(
        (cache, changes, true),
        |(cache, changes, first)| async move {
            let woken = if first {
                cache.synced().await;
                // What changed before this read is in it: woken once, not twice.
                changes.clear();
                cache.all()
            } else {
                let changed = changes.next().await;
                if changed.all {
                    cache.all()
                } else {
                    let keys = changed.keys.iter();
                    keys.filter_map(|(ns, name)| cache.get(ns, name)).collect()
                }
            };
            Some((futures::stream::iter(woken), (cache, changes, false)))
        },
    )
    .flatten()
}

/// Keeps `cache` in step with the enablements of `namespace` (all when None), through the
/// process's one watch of them; returns only if that watch ends, which it does not (it retries).
pub fn follow_enablements(
    client: &Client,
    namespace: Option<&str>,
    cache: &FederationCache,
    health: &WatchHealth,
) -> impl future::Future<Output = ()> + Send + 'static {
    let api: Api<FederationEnablement> = scoped(client, namespace);
    let cache = cache.clone();
    let events = health.observe("FederationEnablement", enablement_watch(api));
    async move { cache.follow(events).await }
}

/// What the controller reconciles with.
#[derive(Clone)]
pub struct Reconciler {
    pub client: Client,
    /// The enablements, kept by [`follow_enablements`]: the controller holds no copy of its own.
    pub cache: FederationCache,
    pub executors: Executors,
    pub policy: Policy,
    pub concurrency: u16,
    pub metrics: Arc<Metrics>,
    pub health: WatchHealth,
}

/// Reconciles the enablements of the reconciler's cache until `shutdown` resolves; in-flight
/// reconciles finish first.
///
/// Every watch has its own backoff and reports to `health`; its errors never reach the
/// controller's trigger queue, so one failing watch neither pauses the others nor the store.
pub async fn run(
    reconciler: Reconciler,
    shutdown: impl future::Future<Output = ()> + Send + Sync + 'static,
) {
    let Reconciler {
        client,
        cache,
        executors,
        policy,
        concurrency,
        metrics,
        health,
    } = reconciler;
    let namespace = policy.watch_namespace.clone();
    let store = cache.store();
    let mut controller = Controller::for_shared_stream(triggers(&cache), store.clone())
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown);
    if executors.kubernetes {
        let ns = namespace.as_deref();
        let owned = Owned {
            health: &health,
            store: &store,
        };
        controller = owned.watch(controller, scoped::<Meta<Service>>(&client, ns));
        controller = owned.watch(controller, scoped::<Meta<Secret>>(&client, ns));
        controller = owned.watch(controller, scoped::<Meta<Job>>(&client, ns));
        controller = owned.watch(controller, scoped::<Meta<ServiceAccount>>(&client, ns));
        controller = owned.watch(controller, scoped::<Meta<RoleBinding>>(&client, ns));
        controller = owned.watch(
            controller,
            Api::<Meta<ClusterRoleBinding>>::all(client.clone()),
        );
        let nodes_store = store.clone();
        let nodes = watched(
            &health,
            Api::<Meta<Node>>::all(client.clone()),
            watcher::Config::default(),
        );
        controller = controller.watches_stream(nodes, move |node: Meta<Node>| {
            waiting_on_nodes(&nodes_store, &node.metadata)
        });
    }
    let mut context = Context::new(client, executors, policy, cache);
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
                // Read before the newest version reached the cache: the watch brings it next.
                Err(kube::runtime::controller::Error::ReconcilerFailed(error, object))
                    if error.is_stale_read() =>
                {
                    debug!(%object, %error, "reconciled a stale version")
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

/// The watches of the objects the controller made.
struct Owned<'a> {
    health: &'a WatchHealth,
    store: &'a Store<FederationEnablement>,
}

impl Owned<'_> {
    /// Watches the objects of kind `K` this controller made (only those: the watch is filtered
    /// by label, so it never sees, say, every Secret of the cluster; and only their metadata, so
    /// no watch holds a Secret's data).
    fn watch<K>(
        &self,
        controller: Controller<FederationEnablement>,
        api: Api<Meta<K>>,
    ) -> Controller<FederationEnablement>
    where
        K: Resource<DynamicType = ()> + k8s_openapi::Resource,
        K: Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    {
        let ours = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"));
        let objects = watched(self.health, api, ours);
        let store = self.store.clone();
        controller.watches_stream(objects, move |object: Meta<K>| {
            owning_enablement(&store, &object.metadata)
        })
    }
}

/// The metadata of the objects a watch touches (`Api<PartialObjectMeta<K>>` makes
/// metadata-only requests: the controller reads labels only), with the watch's own backoff, its
/// health reported under its kind.
fn watched<K>(
    health: &WatchHealth,
    api: Api<Meta<K>>,
    config: watcher::Config,
) -> impl futures::Stream<Item = Result<Meta<K>, watcher::Error>> + Send + 'static
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

/// An object we made belongs to the enablement its labels name, if that enablement has the uid
/// they name: anyone who may create objects in a namespace could write the name labels.
fn owning_enablement(
    store: &Store<FederationEnablement>,
    meta: &ObjectMeta,
) -> Option<ObjectRef<FederationEnablement>> {
    let labels = meta.labels.as_ref()?;
    let name = labels.get(ENABLEMENT_LABEL)?;
    let namespace = labels.get(ENABLEMENT_NAMESPACE_LABEL)?;
    let uid = labels.get(ENABLEMENT_UID_LABEL)?;
    let enablement = ObjectRef::new(name).within(namespace);
    let known = store.get(&enablement)?;
    (known.uid().as_deref() == Some(uid.as_str())).then_some(enablement)
}

/// A node change matters to enablements waiting on nodes, and to the one that labelled it.
fn waiting_on_nodes(
    store: &Store<FederationEnablement>,
    node: &ObjectMeta,
) -> Vec<ObjectRef<FederationEnablement>> {
    let labelled_for = node
        .labels
        .as_ref()
        .and_then(|labels| labels.get(crate::api::CONTROL_PLANE_NODE_LABEL));
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
            Error::BehindOwnWrite(..) => true,
            _ => false,
        }
    }
}

/// The first retry after a stale read; each stale read in a row doubles it, up to
/// [`WATCH_RETRY_CAP`].
pub const STALE_READ_RETRY: Duration = Duration::from_millis(500);

/// Stale reads in a row that the record of our own writes may cause before it is dropped.
const TRUSTED_STALE_READS: u32 = 3;

/// Entries of that record before the deleted enablements' entries are dropped.
const SUPERSEDED_PRUNE_AT: usize = 1024;

pub fn error_policy(fe: Arc<FederationEnablement>, error: &Error, ctx: Arc<Context>) -> Action {
    if error.is_stale_read() {
        // The watch normally brings the newer version within moments. If it does not, the cache
        // is stuck behind the API server: retrying at a fixed pace would only repeat the 409, so
        // back off, and report it like a failing watch (a stuck one fails `/healthz`).
        let in_a_row = ctx.stale_read(&fe);
        // One stale read is the normal echo of a write; a run of them is a cache left behind.
        if in_a_row >= 2 {
            ctx.health.failed(
                "FederationEnablement",
                &format_args!("the cache is behind the API server: {error}"),
            );
        }
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

    /// Notes that a write of ours replaced `fe` at `replaced` with `written` (a write that
    /// changed nothing keeps the version, and replaced nothing).
    fn replaced(&self, fe: &FederationEnablement, replaced: Option<String>, written: Option<&str>) {
        let Some(version) = replaced.filter(|v| Some(v.as_str()) != written) else {
            return;
        };
        let enablements = self.cache.len();
        let mut superseded = self.superseded.lock().unwrap_or_else(|e| e.into_inner());
        // Enablements deleted while an entry was kept: dropped now and then, not per write.
        if superseded.len() >= SUPERSEDED_PRUNE_AT.max(2 * enablements) {
            let store = self.cache.store();
            superseded.retain(|key, _| store.get(key).is_some());
        }
        superseded
            .entry(ObjectRef::from_obj(fe))
            .or_default()
            .push(version);
    }

    /// Whether `fe` is a version our own writes replaced; once the cache shows another, the
    /// record of them is dropped. It only saves requests: after a few stale reads in a row it
    /// is dropped too and the server's precondition decides (a version seen again after an
    /// etcd restore must not stop the enablement).
    fn behind_own_write(&self, fe: &FederationEnablement) -> bool {
        let key = ObjectRef::from_obj(fe);
        let in_a_row = {
            let reads = self.stale_reads.lock().unwrap_or_else(|e| e.into_inner());
            reads.get(&key).copied().unwrap_or(0)
        };
        let mut superseded = self.superseded.lock().unwrap_or_else(|e| e.into_inner());
        let Some(versions) = superseded.get(&key) else {
            return false;
        };
        let replaced = fe
            .resource_version()
            .is_some_and(|version| versions.contains(&version));
        if replaced && in_a_row < TRUSTED_STALE_READS {
            return true;
        }
        superseded.remove(&key);
        false
    }

    /// The enablement is gone (its finalizer removed): nothing of it to remember.
    fn forget(&self, fe: &FederationEnablement) {
        let key = ObjectRef::from_obj(fe);
        let mut superseded = self.superseded.lock().unwrap_or_else(|e| e.into_inner());
        superseded.remove(&key);
        drop(superseded);
        self.read_fresh(fe);
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
    if ctx.behind_own_write(fe) {
        let version = fe.resource_version().unwrap_or_default();
        return Err(Error::BehindOwnWrite(fe.name_any(), version));
    }
    let namespace = fe.namespace().unwrap_or_default();
    let api: Api<FederationEnablement> = Api::namespaced(ctx.client.clone(), &namespace);
    if fe.meta().deletion_timestamp.is_some() {
        return teardown(fe, &api, ctx).await;
    }
    if fe.finalizers().iter().any(|f| f == FINALIZER) {
        return run_job(fe, &api, ctx).await;
    }
    // Go on with the object as patched: its resourceVersion guards the status write.
    let patched = add_finalizer(fe, &api).await?;
    ctx.replaced(
        fe,
        fe.resource_version(),
        patched.resource_version().as_deref(),
    );
    let fe = patched;
    run_job(&fe, &api, ctx).await
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kube::ResourceExt;
    use kube::runtime::reflector::{self, ObjectRef};
    use kube::runtime::watcher::Event;

    use super::owning_enablement;
    use crate::api::{
        ENABLEMENT_LABEL, ENABLEMENT_NAMESPACE_LABEL, ENABLEMENT_UID_LABEL, FederationEnablement,
    };
    use crate::http::cache::FederationCache;
    use crate::testing::enablement;

    fn labelled(labels: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn a_watch_event_maps_to_the_enablement_whose_uid_its_labels_name_and_to_no_other() {
        let (store, mut writer) = reflector::store::<FederationEnablement>();
        writer.apply_watcher_event(&Event::Apply(enablement("team-a", "fleet-a", "uid-a")));
        let naming = [
            (ENABLEMENT_LABEL, "fleet-a"),
            (ENABLEMENT_NAMESPACE_LABEL, "team-a"),
        ];
        let with_uid = |uid| labelled(&[naming[0], naming[1], (ENABLEMENT_UID_LABEL, uid)]);
        assert_eq!(
            owning_enablement(&store, &with_uid("uid-a")),
            Some(ObjectRef::new("fleet-a").within("team-a"))
        );
        assert_eq!(owning_enablement(&store, &with_uid("uid-b")), None);
        assert_eq!(
            owning_enablement(&store, &labelled(&naming)),
            None,
            "the name labels alone wake no enablement"
        );
    }

    #[tokio::test]
    async fn the_enablement_watch_holds_no_managed_fields_and_no_last_applied_copy() {
        let server = crate::testing::FakeApiServer::new();
        let mut object =
            serde_json::to_value(enablement("team-a", "fleet-a", "uid-1")).expect("json");
        object["metadata"]["annotations"] = serde_json::json!({
            "kubectl.kubernetes.io/last-applied-configuration": "{\"spec\":{}}",
            "federation.fleet.dev/retry": "1",
        });
        object["metadata"]["managedFields"] = serde_json::json!([{
            "manager": "kubectl", "operation": "Apply", "apiVersion": "federation.fleet.dev/v1alpha1",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:clusterGroupID": {}}},
        }]);
        server.insert(object);
        let api = kube::Api::<FederationEnablement>::all(server.client());
        let mut events = Box::pin(super::enablement_watch(api));
        let mut seen = 0;
        while let Some(event) = events.next().await {
            match event.expect("an event") {
                Event::InitApply(fe) => {
                    let annotations: Vec<&String> = fe.annotations().keys().collect();
                    assert_eq!(
                        annotations,
                        ["federation.fleet.dev/retry"],
                        "others are kept"
                    );
                    assert!(fe.metadata.managed_fields.unwrap_or_default().is_empty());
                    seen += 1;
                }
                Event::InitDone => break,
                _ => {}
            }
        }
        assert_eq!(seen, 1, "the enablement was listed");
    }

    /// The names of the next `n` enablements the controller is woken for, each checked to be
    /// the store's own object (the controller holds no copy of its own).
    async fn woken(
        triggers: &mut (impl futures::Stream<Item = std::sync::Arc<FederationEnablement>> + Unpin),
        cache: &FederationCache,
        n: usize,
    ) -> Vec<String> {
        let mut names = Vec::new();
        for _ in 0..n {
            let next = tokio::time::timeout(std::time::Duration::from_secs(5), triggers.next());
            let fe = next.await.expect("woken in time").expect("a trigger");
            let stored = cache
                .store()
                .get(&ObjectRef::from_obj(&*fe))
                .expect("stored");
            assert!(std::sync::Arc::ptr_eq(&fe, &stored), "one copy of each");
            names.push(fe.name_any());
        }
        names.sort();
        names
    }

    #[tokio::test]
    async fn the_controller_is_woken_from_the_shared_cache_for_all_at_start_and_relist_then_each_change()
     {
        let cache = FederationCache::new();
        let mut triggers = Box::pin(super::triggers(&cache));
        cache.apply(Event::Init);
        cache.apply(Event::InitApply(enablement("ns", "a", "uid-a")));
        cache.apply(Event::InitApply(enablement("ns", "b", "uid-b")));
        cache.apply(Event::InitDone);
        assert_eq!(woken(&mut triggers, &cache, 2).await, ["a", "b"]);

        let mut changed = enablement("ns", "b", "uid-b");
        changed.metadata.resource_version = Some("2".into());
        cache.apply(Event::Apply(changed));
        assert_eq!(woken(&mut triggers, &cache, 1).await, ["b"]);
        let cached = cache.get("ns", "b").expect("cached");
        assert_eq!(cached.metadata.resource_version.as_deref(), Some("2"));

        // A deleted enablement wakes nothing; a relist wakes every one listed.
        cache.apply(Event::Delete(enablement("ns", "a", "uid-a")));
        let idle = tokio::time::timeout(std::time::Duration::from_millis(200), triggers.next());
        assert!(
            idle.await.is_err(),
            "nothing to reconcile for a deleted one"
        );
        cache.apply(Event::Init);
        cache.apply(Event::InitApply(enablement("ns", "b", "uid-b")));
        cache.apply(Event::InitApply(enablement("ns", "c", "uid-c")));
        cache.apply(Event::InitDone);
        assert_eq!(woken(&mut triggers, &cache, 2).await, ["b", "c"]);
        let idle = tokio::time::timeout(std::time::Duration::from_millis(200), triggers.next());
        assert!(idle.await.is_err(), "nothing else changed");
    }
}
