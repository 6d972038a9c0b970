//! The cache of FederationEnablements, kept by the process's one watch of them so that every
//! replica serves reads whether or not it leads. It holds each object once, in a reflector store
//! it shares with the controller ([`FederationCache::store`], [`FederationCache::subscribe`]):
//! the leader's controller reads the same objects and is woken by the same watch. Lookups by
//! fleet are O(1) through an index the watch keeps up to date; the list is ordered by namespace,
//! then name.
//!
//! The watch also serializes each enablement's answers once per change ([`Cached`]), so a
//! request copies bytes instead of building and serializing a job; and a page of the list is
//! cut from an ordered snapshot, rebuilt on the first read after a change, instead of walking
//! the map to its offset.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::watcher;
use tokio::sync::watch;

use super::wire;
use crate::api::FederationEnablement;

type Key = (String, String);

/// An enablement with its answers, serialized when the watch applies it.
#[derive(Debug)]
pub struct Cached {
    /// `(namespace, name)`: the namespace is empty when the object has none.
    pub key: Key,
    /// The object in the shared store: the same allocation the controller reads.
    pub object: Arc<FederationEnablement>,
    /// The progress route's answer, but for the times of the request.
    pub progress: wire::ProgressBody,
    /// This enablement as an item of the list route.
    pub item: Bytes,
}

impl Cached {
    pub fn new(fe: Arc<FederationEnablement>) -> Self {
        Cached {
            key: key_of(&fe),
            progress: wire::ProgressBody::new(&fe),
            item: wire::item_json(&fe),
            object: fe,
        }
    }
}

/// Every enablement in list order, for cutting pages by position.
type Ordered = Arc<Vec<Arc<Cached>>>;

#[derive(Default)]
struct Index {
    by_key: BTreeMap<Key, Arc<Cached>>,
    /// Every enablement naming a fleet, oldest first: the first one owns it. Nearly always one,
    /// so a sorted vector (a map would take a node per fleet).
    by_fleet: HashMap<String, Vec<Arc<Cached>>>,
    /// `by_key`'s values, built on the first read after a change (writers hold the write lock,
    /// so a snapshot is never built from a half-applied change nor outlives one).
    ordered: OnceLock<Ordered>,
}

impl Index {
    fn insert(&mut self, cached: Cached) {
        let cached = Arc::new(cached);
        self.remove(&cached.key);
        let members = self
            .by_fleet
            .entry(cached.object.spec.cluster_group_id.clone())
            .or_default();
        let at = members.partition_point(|m| seniority(m) < seniority(&cached));
        members.insert(at, cached.clone());
        members.shrink_to_fit();
        self.by_key.insert(cached.key.clone(), cached);
        self.ordered = OnceLock::new();
    }

    fn remove(&mut self, key: &Key) {
        let Some(old) = self.by_key.remove(key) else {
            return;
        };
        self.ordered = OnceLock::new();
        let fleet = &old.object.spec.cluster_group_id;
        if let Some(members) = self.by_fleet.get_mut(fleet) {
            members.retain(|m| m.key != old.key);
            if members.is_empty() {
                self.by_fleet.remove(fleet);
            }
        }
    }

    fn ordered(&self) -> Ordered {
        self.ordered
            .get_or_init(|| Arc::new(self.by_key.values().cloned().collect()))
            .clone()
    }
}

/// [`crate::policy::fleet_seniority`]'s order (oldest, then namespace/name), without copying the names.
fn seniority(cached: &Cached) -> (Option<jiff::Timestamp>, &Key) {
    let created = cached.object.metadata.creation_timestamp.as_ref();
    (created.map(|t| t.0), &cached.key)
}

fn key_of(fe: &FederationEnablement) -> Key {
    (fe.namespace().unwrap_or_default(), fe.name_any())
}

/// A cheap handle to the cache; clones share it.
#[derive(Clone)]
pub struct FederationCache {
    index: Arc<RwLock<Index>>,
    /// The objects, one copy each: `index` points into it. During a relist it gathers the new
    /// list aside and swaps it in when complete; `index` is then rebuilt from it.
    writer: Arc<Mutex<Writer<FederationEnablement>>>,
    store: Store<FederationEnablement>,
    ready: watch::Sender<bool>,
    /// What changed, per subscriber (a list stream), since it last looked.
    subscribers: Arc<Mutex<Vec<Weak<ChangeSetShared>>>>,
    /// One signal per enablement someone follows (a progress stream): a change wakes only its
    /// followers, not every stream.
    followers: Arc<Mutex<HashMap<Key, watch::Sender<()>>>>,
}

/// The enablements that changed since a subscriber last looked: a set, so a subscriber that is
/// slow to look finds each changed enablement once (and then reads its latest state), never a
/// backlog, and never falls so far behind that it must compare everything.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub keys: HashSet<Key>,
    /// Anything may have changed (a relist).
    pub all: bool,
}

#[derive(Default)]
struct ChangeSetShared {
    changes: Mutex<Changes>,
    wake: tokio::sync::Notify,
}

/// A subscriber's change set; dropping it unsubscribes.
pub struct ChangeSet(Arc<ChangeSetShared>);

impl ChangeSet {
    /// Forgets what changed so far: the caller is about to read everything.
    pub fn clear(&self) {
        *self.0.changes.lock().unwrap_or_else(|p| p.into_inner()) = Changes::default();
    }

    /// Waits until something changed, then takes everything that did.
    pub async fn next(&self) -> Changes {
        loop {
            {
                let mut changes = self.0.changes.lock().unwrap_or_else(|p| p.into_inner());
                if changes.all || !changes.keys.is_empty() {
                    return std::mem::take(&mut *changes);
                }
            }
            // A wake-up between the check and here is kept as a permit: none is lost.
            self.0.wake.notified().await;
        }
    }
}

impl Default for FederationCache {
    fn default() -> Self {
        Self::new()
    }
}

impl FederationCache {
    pub fn new() -> Self {
        let writer = Writer::default();
        FederationCache {
            index: Arc::default(),
            store: writer.as_reader(),
            writer: Arc::new(Mutex::new(writer)),
            ready: watch::Sender::new(false),
            subscribers: Arc::default(),
            followers: Arc::default(),
        }
    }

    /// Filled by hand (tests, benchmarks): ready at once.
    pub fn from_objects(objects: impl IntoIterator<Item = FederationEnablement>) -> Self {
        let cache = Self::new();
        cache.apply(watcher::Event::Init);
        for fe in objects {
            cache.apply(watcher::Event::InitApply(fe));
        }
        cache.apply(watcher::Event::InitDone);
        cache
    }

    /// The store the objects are kept in, for the controller: the same objects, not a copy.
    pub fn store(&self) -> Store<FederationEnablement> {
        self.store.clone()
    }

    /// Resolves once the first list has been applied.
    pub async fn synced(&self) {
        let _ = self.ready.subscribe().wait_for(|ready| *ready).await;
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The first list has been applied.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// The enablement that owns `fleet` (the oldest naming it).
    pub fn by_fleet(&self, fleet: &str) -> Option<Arc<Cached>> {
        let index = self.read();
        index.by_fleet.get(fleet)?.first().cloned()
    }

    /// Every enablement naming `fleet`, oldest first (the first owns it).
    pub fn fleet_members(&self, fleet: &str) -> Vec<Arc<FederationEnablement>> {
        let index = self.read();
        let members = index
            .by_fleet
            .get(fleet)
            .map(Vec::as_slice)
            .unwrap_or_default();
        members.iter().map(|m| m.object.clone()).collect()
    }

    /// Every enablement, by namespace then name.
    pub fn all(&self) -> Vec<Arc<FederationEnablement>> {
        self.read()
            .by_key
            .values()
            .map(|c| c.object.clone())
            .collect()
    }

    /// One page of the enablements `visible` admits (all when None), in list order, and how
    /// many it admits. Without a filter the page is cut by position, whatever the offset.
    pub fn page(
        &self,
        offset: usize,
        limit: usize,
        visible: Option<&dyn Fn(&FederationEnablement) -> bool>,
    ) -> (usize, Vec<Arc<Cached>>) {
        let ordered = self.read().ordered();
        let Some(visible) = visible else {
            let start = offset.min(ordered.len());
            let end = start.saturating_add(limit).min(ordered.len());
            return (ordered.len(), ordered[start..end].to_vec());
        };
        let mut total = 0;
        let mut page = Vec::with_capacity(limit.min(ordered.len()));
        for cached in ordered.iter() {
            if !visible(&cached.object) {
                continue;
            }
            if total >= offset && page.len() < limit {
                page.push(cached.clone());
            }
            total += 1;
        }
        (total, page)
    }

    /// The namespaces that hold enablements.
    pub fn namespaces(&self) -> Vec<String> {
        let index = self.read();
        let mut namespaces: Vec<String> = Vec::new();
        for (namespace, _) in index.by_key.keys() {
            if namespaces.last() != Some(namespace) {
                namespaces.push(namespace.clone());
            }
        }
        namespaces
    }

    pub fn len(&self) -> usize {
        self.read().by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies one watch event: to the store, then to the index and the answers.
    pub fn apply(&self, event: watcher::Event<FederationEnablement>) {
        // One writer, and only here: what the store holds below is what this event made it.
        self.writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .apply_watcher_event(&event);
        match event {
            watcher::Event::Apply(fe) => {
                let Some(object) = self.store.get(&ObjectRef::from_obj(&fe)) else {
                    return;
                };
                // Serialized before the lock is taken: readers never wait for it.
                let cached = Cached::new(object);
                let key = cached.key.clone();
                self.write().insert(cached);
                self.notify(Some(key));
            }
            watcher::Event::Delete(fe) => {
                let key = key_of(&fe);
                self.write().remove(&key);
                self.notify(Some(key));
            }
            // The store gathers the relist aside; the old state is served until it is complete.
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
            watcher::Event::InitDone => {
                let mut fresh = Index::default();
                for object in self.store.state() {
                    fresh.insert(Cached::new(object));
                }
                *self.write() = fresh;
                // Subscribers hear of the relist before anyone is told the cache is ready, so
                // one that reads everything once ready is not told to read it all again.
                self.notify(None);
                self.ready.send_replace(true);
            }
        }
    }

    fn notify(&self, change: Option<Key>) {
        {
            let index = self.read();
            let mut followers = self.followers.lock().unwrap_or_else(|p| p.into_inner());
            // A signal is kept while someone holds it and its enablement exists; a follower
            // still sees the last signal after it is dropped (a deletion, then the end).
            let keep = |key: &Key, tx: &watch::Sender<()>| {
                let followed = tx.receiver_count() > 0;
                if followed {
                    tx.send_replace(());
                }
                followed && index.by_key.contains_key(key)
            };
            match &change {
                Some(key) => {
                    if followers.get(key).is_some_and(|tx| !keep(key, tx)) {
                        followers.remove(key);
                    }
                }
                None => followers.retain(|key, tx| keep(key, tx)),
            }
        }
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        subscribers.retain(|subscriber| {
            let Some(subscriber) = subscriber.upgrade() else {
                return false;
            };
            {
                let mut changes = subscriber.changes.lock().unwrap_or_else(|p| p.into_inner());
                match &change {
                    Some(key) if !changes.all => {
                        changes.keys.insert(key.clone());
                    }
                    Some(_) => {}
                    None => {
                        changes.all = true;
                        changes.keys.clear();
                    }
                }
            }
            subscriber.wake.notify_one();
            true
        });
    }

    /// A signal that fires whenever `namespace/name` changes (is applied, deleted, or may have
    /// changed in a relist). Being a `watch`, a follower that is slow to look sees one pending
    /// change, never a backlog.
    pub fn follow_key(&self, namespace: &str, name: &str) -> watch::Receiver<()> {
        let key = (namespace.to_string(), name.to_string());
        let mut followers = self.followers.lock().unwrap_or_else(|p| p.into_inner());
        let mut rx = followers
            .entry(key)
            .or_insert_with(|| watch::Sender::new(()))
            .subscribe();
        rx.mark_unchanged();
        rx
    }

    /// The enablements that change from now on (see [`Changes`]).
    pub fn subscribe(&self) -> ChangeSet {
        let shared = Arc::new(ChangeSetShared::default());
        self.subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::downgrade(&shared));
        ChangeSet(shared)
    }

    /// The enablement `namespace/name`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<FederationEnablement>> {
        self.read()
            .by_key
            .get(&(namespace.to_string(), name.to_string()))
            .map(|c| c.object.clone())
    }

    /// Keeps the cache in step with a watch stream until it ends. The stream's errors are
    /// handled where it is made (see [`crate::health::WatchHealth::observe`]).
    pub async fn follow(&self, events: impl Stream<Item = watcher::Event<FederationEnablement>>) {
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            self.apply(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn fe(ns: &str, name: &str, fleet: &str, created: &str) -> FederationEnablement {
        let mut fe: FederationEnablement = serde_json::from_value(serde_json::json!({
            "apiVersion": "federation.fleet.dev/v1alpha1",
            "kind": "FederationEnablement",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterGroupID": fleet, "chart": {"repository": "oci://r/c", "name": "c", "version": "1"}},
        }))
        .expect("fe");
        fe.metadata.creation_timestamp = Some(Time(created.parse().expect("time")));
        fe
    }

    #[test]
    fn the_oldest_enablement_answers_for_its_fleet_until_it_is_deleted() {
        let cache = FederationCache::new();
        cache.apply(watcher::Event::Apply(fe(
            "b",
            "new",
            "f",
            "2026-01-02T00:00:00Z",
        )));
        cache.apply(watcher::Event::Apply(fe(
            "a",
            "old",
            "f",
            "2026-01-01T00:00:00Z",
        )));
        assert_eq!(
            cache.by_fleet("f").map(|f| f.object.name_any()).as_deref(),
            Some("old")
        );
        let members: Vec<String> = cache
            .fleet_members("f")
            .iter()
            .map(|m| m.name_any())
            .collect();
        assert_eq!(members, ["old", "new"], "oldest first");
        cache.apply(watcher::Event::Delete(fe(
            "a",
            "old",
            "f",
            "2026-01-01T00:00:00Z",
        )));
        assert_eq!(
            cache.by_fleet("f").map(|f| f.object.name_any()).as_deref(),
            Some("new")
        );
        assert!(cache.by_fleet("other").is_none());
    }

    #[test]
    fn an_update_moves_an_enablement_out_of_its_old_fleet() {
        let cache = FederationCache::new();
        cache.apply(watcher::Event::Apply(fe(
            "a",
            "x",
            "f1",
            "2026-01-01T00:00:00Z",
        )));
        cache.apply(watcher::Event::Apply(fe(
            "a",
            "x",
            "f2",
            "2026-01-01T00:00:00Z",
        )));
        assert!(cache.by_fleet("f1").is_none());
        assert!(cache.by_fleet("f2").is_some());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_relist_replaces_the_cache_when_complete_and_marks_it_ready() {
        let cache = FederationCache::new();
        cache.apply(watcher::Event::Apply(fe(
            "a",
            "gone",
            "f1",
            "2026-01-01T00:00:00Z",
        )));
        assert!(!cache.is_ready());
        cache.apply(watcher::Event::Init);
        cache.apply(watcher::Event::InitApply(fe(
            "a",
            "kept",
            "f2",
            "2026-01-01T00:00:00Z",
        )));
        assert!(
            cache.by_fleet("f1").is_some(),
            "old state served until the relist is complete"
        );
        cache.apply(watcher::Event::InitDone);
        assert!(cache.is_ready());
        assert!(cache.by_fleet("f1").is_none());
        assert_eq!(
            cache.all().iter().map(|f| f.name_any()).collect::<Vec<_>>(),
            vec!["kept"]
        );
    }

    #[test]
    fn all_is_ordered_by_namespace_then_name() {
        let cache = FederationCache::from_objects([
            fe("b", "a", "f1", "2026-01-01T00:00:00Z"),
            fe("a", "z", "f2", "2026-01-01T00:00:00Z"),
            fe("a", "b", "f3", "2026-01-01T00:00:00Z"),
        ]);
        let keys: Vec<_> = cache
            .all()
            .iter()
            .map(|f| (f.namespace().unwrap_or_default(), f.name_any()))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("a".into(), "b".into()),
                ("a".into(), "z".into()),
                ("b".into(), "a".into())
            ]
        );
    }

    /// `ns/<name>` for fleet `fleet-<name>`, created at one fixed time.
    fn at_start(name: &str) -> FederationEnablement {
        fe("ns", name, &format!("fleet-{name}"), "2026-01-15T08:00:00Z")
    }

    #[test]
    fn a_follower_is_signalled_for_its_enablement_only_and_after_a_relist() {
        let cache = FederationCache::from_objects([at_start("a"), at_start("b")]);
        let a = cache.follow_key("ns", "a");
        assert!(!a.has_changed().unwrap_or(true), "nothing yet");

        cache.apply(watcher::Event::Apply(at_start("b")));
        assert!(
            !a.has_changed().unwrap_or(true),
            "b's change is not a's business"
        );

        cache.apply(watcher::Event::Apply(at_start("a")));
        cache.apply(watcher::Event::Apply(at_start("a")));
        let mut a = a;
        assert!(a.has_changed().unwrap_or(false), "a's own change");
        a.mark_unchanged();

        cache.apply(watcher::Event::Init);
        for name in ["a", "b"] {
            cache.apply(watcher::Event::InitApply(at_start(name)));
        }
        cache.apply(watcher::Event::InitDone);
        assert!(
            a.has_changed().unwrap_or(false),
            "after a relist anything may have changed"
        );

        a.mark_unchanged();
        cache.apply(watcher::Event::Delete(at_start("a")));
        // The signal is gone with the enablement, but its last change is still seen.
        assert!(
            futures::executor::block_on(a.changed()).is_ok(),
            "the deletion is seen"
        );
        assert!(
            cache.followers.lock().expect("followers").is_empty(),
            "the signal of a deleted enablement is dropped at once"
        );

        drop(cache.follow_key("ns", "b"));
        cache.apply(watcher::Event::Apply(at_start("b")));
        assert!(
            cache.followers.lock().expect("followers").is_empty(),
            "a signal nobody holds is dropped at the next change"
        );
    }

    #[tokio::test]
    async fn a_slow_subscriber_finds_each_changed_enablement_once_and_a_relist_as_all() {
        let cache = FederationCache::from_objects([]);
        let changes = cache.subscribe();
        for i in 0..5_000 {
            let name = format!("fe-{}", i % 3);
            cache.apply(watcher::Event::Apply(at_start(&name)));
        }
        let seen = changes.next().await;
        assert!(!seen.all);
        let mut names: Vec<&str> = seen.keys.iter().map(|(_, name)| name.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            ["fe-0", "fe-1", "fe-2"],
            "5,000 changes, three enablements"
        );

        cache.apply(watcher::Event::Delete(at_start("fe-0")));
        cache.apply(watcher::Event::Init);
        cache.apply(watcher::Event::InitDone);
        assert_eq!(
            changes.next().await,
            Changes {
                keys: HashSet::new(),
                all: true
            }
        );

        drop(changes);
        cache.apply(watcher::Event::Apply(at_start("fe-1")));
        assert!(
            cache.subscribers.lock().expect("subscribers").is_empty(),
            "a dropped subscriber is forgotten"
        );
    }
}
