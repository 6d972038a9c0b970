//! Live streams (`?watch=true`): server-sent events driven by the cache's own watch, no polling.
//!
//! A stream reads the latest state from the cache whenever its enablement changes; a client that
//! falls behind skips to the latest state instead of every intermediate one, so a slow client
//! never holds the controller or other clients back. Access is checked at connect and again
//! whenever the cached decision has expired.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use kube::ResourceExt;
use tokio::time::Instant;

use super::cache::ChangeSet;
use super::decisions::DECISION_TTL;
use super::quotas::StreamSlot;
use super::{AppState, AuthError, Identity, wire};
use crate::api::{FederationEnablement, FederationEnablementStatus, JobPhase};

type Key = (String, String);

/// How often an idle stream sends a comment so proxies keep it open; clients give up after three
/// heartbeats of silence, so they share the constant.
pub use federation_api::wire::HEARTBEAT;

fn sse<S>(stream: S) -> Response
where
    S: Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"))
        .into_response();
    // axum says `no-cache`; federation data must not be kept at all.
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// `body` as JSON; our wire types always serialize, `{}` is only a guard.
fn to_json(body: &impl serde::Serialize) -> String {
    serde_json::to_string(body).unwrap_or_else(|_| "{}".to_string())
}

fn event(kind: &str, data: &str) -> Event {
    Event::default().event(kind).data(data)
}

fn json_event(kind: &str, body: &impl serde::Serialize) -> Event {
    event(kind, &to_json(body))
}

/// Who holds a stream open, and when their access was last reviewed.
pub struct Caller {
    /// Kept to review it again: a revoked or expired token must not keep its streams.
    token: Option<String>,
    who: Option<Arc<Identity>>,
    /// The client's address, for the rate of token reviews.
    from: Option<IpAddr>,
    checked: Instant,
    /// The user's stream slot, given back when the stream is dropped.
    _slot: Option<StreamSlot>,
}

impl Caller {
    /// The caller of a new stream, if they may open one more (`--http-max-streams-per-user`).
    pub fn admit(
        state: &AppState,
        token: Option<&str>,
        who: Option<Arc<Identity>>,
        from: Option<IpAddr>,
    ) -> Result<Self, AuthError> {
        Ok(Caller {
            _slot: state.auth.stream_slot(who.as_deref())?,
            token: token.map(str::to_string),
            who,
            from,
            checked: Instant::now(),
        })
    }

    /// Whether the cached decisions may have expired (never, with authentication off).
    fn due(&self) -> bool {
        self.who.is_some() && self.checked.elapsed() >= DECISION_TTL
    }

    /// Reviews the token again: false when it is no longer valid or names someone else, or
    /// the review failed (the stream ends; a client that reconnects learns why).
    async fn token_still_valid(&mut self, state: &AppState) -> bool {
        self.checked = Instant::now();
        matches!(
            state.auth.authenticate(self.token.as_deref(), self.from).await,
            Ok(Some(who)) if Some(&who) == self.who.as_ref()
        )
    }
}

fn finished(status: &Option<FederationEnablementStatus>) -> bool {
    matches!(
        status.as_ref().and_then(|s| s.phase),
        Some(JobPhase::Success | JobPhase::Failed)
    )
}

/// The job of `fe` now, then at every change of its status, then a last event when it reaches
/// Success or Failed (or is gone); then the stream ends.
pub fn progress(state: Arc<AppState>, fe: Arc<FederationEnablement>, caller: Caller) -> Response {
    struct Watch {
        state: Arc<AppState>,
        key: Key,
        caller: Caller,
        changes: tokio::sync::watch::Receiver<()>,
        shown: Option<Option<FederationEnablementStatus>>,
        done: bool,
    }
    let key = (fe.namespace().unwrap_or_default(), fe.name_any());
    let watch = Watch {
        changes: state.cache.follow_key(&key.0, &key.1),
        key,
        state,
        caller,
        shown: None,
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
                if w.caller.due() {
                    let still = w.caller.token_still_valid(&w.state).await
                        && w.state
                            .auth
                            .may(w.caller.who.as_ref(), "get", Some(&w.key.0), Some(&w.key.1))
                            .await
                            .unwrap_or(false);
                    if !still {
                        return None;
                    }
                }
            }
            let Some(fe) = w.state.cache.get(&w.key.0, &w.key.1) else {
                w.done = true;
                let gone = federation_api::wire::DeletedJob {
                    resource_name: Some(w.key.1.clone()),
                };
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
    caller: Caller,
    /// The namespaces the caller may list (None: all).
    allowed: Option<BTreeSet<String>>,
    /// Namespaces asked about since the last review and refused.
    refused: BTreeSet<String>,
    changes: ChangeSet,
    item: F,
    /// Each item shown, as sent (JSON): what the next change is compared with.
    shown: BTreeMap<Key, String>,
    pending: VecDeque<Event>,
    started: bool,
}

impl<T, F> ListWatch<F>
where
    T: serde::Serialize,
    F: Fn(&FederationEnablement) -> T,
{
    /// The item of `fe` as the caller may see it: None when it is not visible to them.
    fn visible_item(&self, fe: &FederationEnablement) -> Option<String> {
        super::visible(self.allowed.as_ref(), fe).then(|| to_json(&(self.item)(fe)))
    }

    /// Queues the event that takes `key` from what was shown to `now`, if any.
    fn show(&mut self, key: Key, now: Option<String>) {
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

    /// Compares everything shown with the cache: at the start, after a relist, and when what the
    /// caller may list has grown.
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

    /// Reviews the caller again once the cached decisions have expired: false when they lost
    /// access to anything they could see, or the review failed (the stream ends rather than
    /// showing items deleted that were not).
    async fn review(&mut self) -> bool {
        if !self.caller.due() {
            return true;
        }
        if !self.caller.token_still_valid(&self.state).await {
            return false;
        }
        match super::listable_namespaces(&self.state, self.caller.who.as_ref()).await {
            Ok(allowed) => {
                let shrunk = match (&self.allowed, &allowed) {
                    (_, None) => false,
                    (None, Some(_)) => true,
                    (Some(before), Some(now)) => !before.is_subset(now),
                };
                // Items the caller may no longer see were not deleted: end the stream (as an
                // API server ends a watch) and let a reconnect show what they may see now.
                if shrunk {
                    return false;
                }
                self.refused.clear();
                if allowed != self.allowed {
                    self.allowed = allowed;
                    self.show_all();
                }
                true
            }
            Err(_) => false,
        }
    }

    /// A change in a namespace the caller was not asked about yet (the first enablement
    /// there): asks now rather than at the next review.
    async fn ask_about(&mut self, namespace: &str) -> bool {
        let Some(allowed) = &self.allowed else {
            return true;
        };
        if allowed.contains(namespace) || self.refused.contains(namespace) {
            return true;
        }
        let may = self
            .state
            .auth
            .may(self.caller.who.as_ref(), "list", Some(namespace), None)
            .await;
        match may {
            Ok(true) => {
                if let Some(allowed) = &mut self.allowed {
                    allowed.insert(namespace.to_string());
                }
                true
            }
            Ok(false) => {
                self.refused.insert(namespace.to_string());
                true
            }
            Err(_) => false,
        }
    }
}

/// Every item the caller may see (`added`), then each change: `added`, `modified`, `deleted`.
/// `allowed` says which namespaces the caller may list (None: all); `item` is the shape of one
/// enablement on the wire (the list route's item, or the dashboard's row). A change costs the
/// stream one item, not the whole list; only a relist or a change in what the caller may see
/// costs a full compare. A stream that is slow to send finds each changed item once.
pub fn list<T, F>(
    state: Arc<AppState>,
    caller: Caller,
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
        caller,
        allowed,
        refused: BTreeSet::new(),
        item,
        shown: BTreeMap::new(),
        pending: VecDeque::new(),
        started: false,
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
            let changes = w.changes.next().await;
            if !w.review().await {
                return None;
            }
            if changes.all {
                w.show_all();
                continue;
            }
            for (done, key) in changes.keys.into_iter().enumerate() {
                if !w.ask_about(&key.0).await {
                    return None;
                }
                let now = w
                    .state
                    .cache
                    .get(&key.0, &key.1)
                    .and_then(|fe| w.visible_item(&fe));
                w.show(key, now);
                // A large batch (a stream that was starved) must not hold the worker thread
                // that other streams are waiting on.
                if done % 64 == 63 {
                    tokio::task::yield_now().await;
                }
            }
        }
    });
    sse(events)
}
