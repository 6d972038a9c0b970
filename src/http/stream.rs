//! Live streams (`?watch=true`): server-sent events driven by the cache's own watch, no polling.
//!
//! A stream reads the latest state from the cache whenever its enablement changes; a client that
//! falls behind skips to the latest state instead of every intermediate one, so a slow client
//! never holds the controller or other clients back. Access is checked at connect and again
//! whenever the cached decision has expired.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use kube::ResourceExt;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::auth::DECISION_TTL;
use super::{AppState, Identity, wire};
use crate::api::{FederationEnablement, FederationEnablementStatus, JobPhase};

type Key = (String, String);

/// How often an idle stream sends a comment so proxies keep it open.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

fn sse<S>(stream: S) -> Response
where
    S: Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"))
        .into_response()
}

fn json_event(kind: &str, body: &impl serde::Serialize) -> Event {
    Event::default()
        .event(kind)
        .data(serde_json::to_string(body).unwrap_or_else(|_| "{}".to_string()))
}

/// What changed, as a list stream sees it.
enum Change {
    /// This one enablement.
    One(Key),
    /// Anything may have: a relist, or this stream fell behind the change buffer.
    All,
    /// The cache is gone.
    Closed,
}

async fn next_change(changes: &mut tokio::sync::broadcast::Receiver<Option<Key>>) -> Change {
    match changes.recv().await {
        Ok(Some(key)) => Change::One(key),
        Ok(None) | Err(RecvError::Lagged(_)) => Change::All,
        Err(RecvError::Closed) => Change::Closed,
    }
}

/// Re-checks access once the cached decision may have expired; false: the caller lost it.
async fn still_allowed(
    state: &AppState,
    who: Option<&Identity>,
    verb: &'static str,
    namespace: Option<&str>,
    name: Option<&str>,
    checked: &mut Instant,
) -> bool {
    if checked.elapsed() < DECISION_TTL {
        return true;
    }
    *checked = Instant::now();
    state
        .auth
        .may(who, verb, namespace, name)
        .await
        .unwrap_or(false)
}

fn finished(status: &Option<FederationEnablementStatus>) -> bool {
    matches!(
        status.as_ref().and_then(|s| s.phase),
        Some(JobPhase::Success | JobPhase::Failed)
    )
}

/// The job of `fe` now, then at every change of its status, then a last event when it reaches
/// Success or Failed (or is gone); then the stream ends.
pub fn progress(
    state: Arc<AppState>,
    fe: Arc<FederationEnablement>,
    who: Option<Identity>,
) -> Response {
    struct Watch {
        state: Arc<AppState>,
        key: Key,
        who: Option<Identity>,
        changes: tokio::sync::watch::Receiver<()>,
        shown: Option<Option<FederationEnablementStatus>>,
        checked: Instant,
        done: bool,
    }
    let key = (fe.namespace().unwrap_or_default(), fe.name_any());
    let watch = Watch {
        changes: state.cache.follow_key(&key.0, &key.1),
        key,
        state,
        who,
        shown: None,
        checked: Instant::now(),
        done: false,
    };
    let events = futures::stream::unfold(watch, |mut w| async move {
        loop {
            if w.done {
                return None;
            }
            if w.shown.is_some() {
                // Only this enablement's changes wake this stream; several while it was busy
                // count as one, and it then shows the latest state.
                if w.changes.changed().await.is_err() {
                    return None;
                }
                let (namespace, name) = (w.key.0.clone(), w.key.1.clone());
                let allowed = still_allowed(
                    &w.state,
                    w.who.as_ref(),
                    "get",
                    Some(&namespace),
                    Some(&name),
                    &mut w.checked,
                )
                .await;
                if !allowed {
                    return None;
                }
            }
            let Some(fe) = w.state.cache.get(&w.key.0, &w.key.1) else {
                w.done = true;
                let gone = serde_json::json!({"resourceName": w.key.1});
                return Some((Ok(json_event("deleted", &gone)), w));
            };
            if w.shown.as_ref() == Some(&fe.status) {
                continue;
            }
            w.done = finished(&fe.status);
            w.shown = Some(fe.status.clone());
            let job = wire::progress(&fe, w.state.clock.now());
            return Some((Ok(json_event("progress", &job)), w));
        }
    });
    sse(events)
}

/// What a list stream remembers between changes.
struct ListWatch<F> {
    state: Arc<AppState>,
    who: Option<Identity>,
    allowed: Option<BTreeSet<String>>,
    changes: tokio::sync::broadcast::Receiver<Option<Key>>,
    item: F,
    /// Each item shown, as sent (JSON): what the next change is compared with.
    shown: BTreeMap<Key, String>,
    pending: VecDeque<Event>,
    started: bool,
    checked: Instant,
}

impl<T, F> ListWatch<F>
where
    T: serde::Serialize,
    F: Fn(&FederationEnablement) -> T,
{
    /// The item of `fe` as the caller may see it: None when it is not visible to them.
    fn visible_item(&self, fe: &FederationEnablement) -> Option<String> {
        super::visible(self.allowed.as_ref(), fe)
            .then(|| serde_json::to_string(&(self.item)(fe)).unwrap_or_else(|_| "{}".to_string()))
    }

    /// Queues the event that takes `key` from what was shown to `now`, if any.
    fn show(&mut self, key: Key, now: Option<String>) {
        let event = |kind: &str, data: &str| Event::default().event(kind).data(data);
        match (self.shown.get(&key), now) {
            (None, Some(item)) => {
                self.pending.push_back(event("added", &item));
                self.shown.insert(key, item);
            }
            (Some(old), Some(item)) if *old != item => {
                self.pending.push_back(event("modified", &item));
                self.shown.insert(key, item);
            }
            (Some(_), None) => {
                if let Some(old) = self.shown.remove(&key) {
                    self.pending.push_back(event("deleted", &old));
                }
            }
            _ => {}
        }
    }

    /// Compares everything shown with the cache: at the start, after a relist, after falling
    /// behind, and when what the caller may list is asked again.
    fn show_all(&mut self) {
        let now: BTreeMap<Key, String> = self
            .state
            .cache
            .all()
            .iter()
            .filter_map(|fe| {
                Some((
                    (fe.namespace().unwrap_or_default(), fe.name_any()),
                    self.visible_item(fe)?,
                ))
            })
            .collect();
        let gone: Vec<Key> = self
            .shown
            .keys()
            .filter(|key| !now.contains_key(*key))
            .cloned()
            .collect();
        for (key, item) in now {
            self.show(key, Some(item));
        }
        for key in gone {
            self.show(key, None);
        }
    }

    /// Asks again which namespaces the caller may list once the cached decision has expired;
    /// true when it asked.
    async fn refresh_allowed(&mut self) -> bool {
        if self.allowed.is_none() || self.checked.elapsed() < DECISION_TTL {
            return false;
        }
        self.checked = Instant::now();
        let mut allowed = BTreeSet::new();
        for namespace in self.state.cache.namespaces() {
            if self
                .state
                .auth
                .may(self.who.as_ref(), "list", Some(&namespace), None)
                .await
                .unwrap_or(false)
            {
                allowed.insert(namespace);
            }
        }
        self.allowed = Some(allowed);
        true
    }
}

/// Every item the caller may see (`added`), then each change: `added`, `modified`, `deleted`.
/// `allowed` says which namespaces the caller may list (None: all); `item` is the shape of one
/// enablement on the wire (the list route's item, or the dashboard's row). A change costs the
/// stream one item, not the whole list; only a relist or falling behind costs a full compare.
pub fn list<T, F>(
    state: Arc<AppState>,
    who: Option<Identity>,
    allowed: Option<BTreeSet<String>>,
    item: F,
) -> Response
where
    T: serde::Serialize + Send + 'static,
    F: Fn(&FederationEnablement) -> T + Send + Sync + 'static,
{
    let watch = ListWatch {
        changes: state.cache.subscribe(),
        state,
        who,
        allowed,
        item,
        shown: BTreeMap::new(),
        pending: VecDeque::new(),
        started: false,
        checked: Instant::now(),
    };
    let events = futures::stream::unfold(watch, |mut w| async move {
        loop {
            if let Some(event) = w.pending.pop_front() {
                return Some((Ok(event), w));
            }
            if !w.started {
                w.started = true;
                w.show_all();
                continue;
            }
            let change = next_change(&mut w.changes).await;
            // Namespaces come and go from what the caller may list.
            let asked = w.refresh_allowed().await;
            match change {
                Change::Closed => return None,
                Change::All => w.show_all(),
                Change::One(_) if asked => w.show_all(),
                Change::One(key) => {
                    let now = w
                        .state
                        .cache
                        .get(&key.0, &key.1)
                        .and_then(|fe| w.visible_item(&fe));
                    w.show(key, now);
                }
            }
        }
    });
    sse(events)
}
