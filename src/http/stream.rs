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

/// Waits for the next change that may concern `wanted` (None: any enablement). Returns false
/// when the cache is gone.
async fn next_change(
    changes: &mut tokio::sync::broadcast::Receiver<Option<Key>>,
    wanted: Option<&Key>,
) -> bool {
    loop {
        match changes.recv().await {
            Ok(Some(key)) if wanted.is_some_and(|w| *w != key) => continue,
            Ok(_) | Err(RecvError::Lagged(_)) => return true,
            Err(RecvError::Closed) => return false,
        }
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
        changes: tokio::sync::broadcast::Receiver<Option<Key>>,
        shown: Option<Option<FederationEnablementStatus>>,
        checked: Instant,
        done: bool,
    }
    let watch = Watch {
        changes: state.cache.subscribe(),
        key: (fe.namespace().unwrap_or_default(), fe.name_any()),
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
                if !next_change(&mut w.changes, Some(&w.key)).await {
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
struct ListWatch<T, F> {
    state: Arc<AppState>,
    who: Option<Identity>,
    allowed: Option<BTreeSet<String>>,
    changes: tokio::sync::broadcast::Receiver<Option<Key>>,
    item: F,
    shown: BTreeMap<Key, T>,
    pending: VecDeque<Event>,
    started: bool,
    checked: Instant,
}

/// Every item the caller may see (`added`), then each change: `added`, `modified`, `deleted`.
/// `allowed` says which namespaces the caller may list (None: all); `item` is the shape of one
/// enablement on the wire (the list route's item, or the dashboard's row).
pub fn list<T, F>(
    state: Arc<AppState>,
    who: Option<Identity>,
    allowed: Option<BTreeSet<String>>,
    item: F,
) -> Response
where
    T: serde::Serialize + PartialEq + Send + Sync + 'static,
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
            if w.started {
                if !next_change(&mut w.changes, None).await {
                    return None;
                }
                if w.allowed.is_some() && w.checked.elapsed() >= DECISION_TTL {
                    // Namespaces come and go from what the caller may list: ask again.
                    w.checked = Instant::now();
                    let mut allowed = BTreeSet::new();
                    for namespace in w.state.cache.namespaces() {
                        if w.state
                            .auth
                            .may(w.who.as_ref(), "list", Some(&namespace), None)
                            .await
                            .unwrap_or(false)
                        {
                            allowed.insert(namespace);
                        }
                    }
                    w.allowed = Some(allowed);
                }
            }
            w.started = true;
            let now: BTreeMap<Key, T> = w
                .state
                .cache
                .all()
                .iter()
                .filter(|fe| super::visible(w.allowed.as_ref(), fe))
                .map(|fe| {
                    (
                        (fe.namespace().unwrap_or_default(), fe.name_any()),
                        (w.item)(fe),
                    )
                })
                .collect();
            for (key, item) in &now {
                match w.shown.get(key) {
                    None => w.pending.push_back(json_event("added", item)),
                    Some(old) if old != item => w.pending.push_back(json_event("modified", item)),
                    Some(_) => {}
                }
            }
            for (key, item) in &w.shown {
                if !now.contains_key(key) {
                    w.pending.push_back(json_event("deleted", item));
                }
            }
            w.shown = now;
        }
    });
    sse(events)
}
