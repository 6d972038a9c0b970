//! What a reconcile writes: one status patch when the status changed, its events and metrics,
//! and the finalizer.

use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Map, Value, json};
use tracing::{debug, warn};

use super::{Context, Error};
use crate::api::{FINALIZER, FederationEnablement, FederationEnablementStatus, MANAGER};
use crate::job::{self, Transition};

/// One status patch, only when the status changed; then the events. `resource_version` is the
/// version the status was computed from (the object's, or that of an earlier write in this
/// reconcile), and `current` the status at that version (None: the object has none).
pub(super) async fn write_status(
    fe: &FederationEnablement,
    api: &Api<FederationEnablement>,
    ctx: &Context,
    resource_version: Option<String>,
    current: Option<&FederationEnablementStatus>,
    status: &FederationEnablementStatus,
    transitions: &[Transition],
) -> Result<(), Error> {
    // No status yet reads as the empty one.
    let changed = current.map_or(*status != Default::default(), |current| status != current);
    if changed {
        patch_status(fe, api, ctx, resource_version, current, status).await?;
    }
    record_durations(ctx, status, transitions);
    publish(fe, ctx, transitions).await;
    Ok(())
}

/// Patches the status from `current` (the status at `resource_version`; None: none) to
/// `status`; returns the object's new resourceVersion.
///
/// A JSON merge patch of what changed, not a server-side apply of the whole status: the status
/// is this controller's alone, and perf on the test API server put the apply at a third of its
/// CPU at scale, about 5 ms each (it parses the body as YAML and merges field ownership), against
/// 1.8 ms for the finalizer's JSON patch (see the README's Performance section).
pub(super) async fn patch_status(
    fe: &FederationEnablement,
    api: &Api<FederationEnablement>,
    ctx: &Context,
    resource_version: Option<String>,
    current: Option<&FederationEnablementStatus>,
    status: &FederationEnablementStatus,
) -> Result<Option<String>, Error> {
    let to = serde_json::to_value(status)?;
    let changes = match current {
        Some(current) => merge_diff(&serde_json::to_value(current)?, &to),
        None => to,
    };
    // Different values that serialize alike: nothing to send.
    if changes == json!({}) {
        return Ok(resource_version);
    }
    // The resourceVersion we read is a precondition: a status computed from a stale view
    // (a lagging cache, a second writer) is refused rather than overwriting newer progress,
    // and the changes apply to exactly the status they were computed from.
    let patch = json!({
        "metadata": {"resourceVersion": resource_version},
        "status": changes,
    });
    let params = PatchParams {
        field_manager: Some(MANAGER.to_string()),
        ..PatchParams::default()
    };
    let written = api
        .patch_status(&fe.name_any(), &params, &Patch::Merge(&patch))
        .await
        .map_err(|e| Error::StatusPatch(fe.name_any(), e))?;
    ctx.replaced(fe, resource_version, written.resource_version().as_deref());
    ctx.metrics.status_writes.inc();
    Ok(written.resource_version())
}

/// The JSON merge patch (RFC 7386) that turns `from` into `to`: the members that changed,
/// `null` for those removed, arrays and scalars whole.
fn merge_diff(from: &Value, to: &Value) -> Value {
    let (Value::Object(from), Value::Object(to)) = (from, to) else {
        return to.clone();
    };
    let mut patch = Map::new();
    for (key, value) in to {
        match from.get(key) {
            Some(old) if old == value => {}
            Some(old) => {
                patch.insert(key.clone(), merge_diff(old, value));
            }
            None => {
                patch.insert(key.clone(), value.clone());
            }
        }
    }
    for key in from.keys().filter(|key| !to.contains_key(*key)) {
        patch.insert(key.clone(), Value::Null);
    }
    Value::Object(patch)
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

/// How long the controller sends no events after the API server answered that it serves none
/// (a 404 on `events.k8s.io/v1`); then it tries again.
pub const EVENTS_UNSERVED_RETRY: jiff::SignedDuration = jiff::SignedDuration::from_mins(5);

/// A 404 that names no object: the events API is not served. A 404 naming an event is that
/// event gone (the recorder patches a repeated one), not the API.
fn events_unserved(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404
        && status.details.as_ref().is_none_or(|d| d.name.is_empty()))
}

/// Records an event per transition; a failure to record is logged, never fatal.
async fn publish(fe: &FederationEnablement, ctx: &Context, transitions: &[Transition]) {
    let Some(recorder) = &ctx.recorder else {
        return;
    };
    let now = ctx.clock.now();
    {
        let mut unserved = ctx
            .events_unserved_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match *unserved {
            Some(until) if now < until => return,
            Some(_) => *unserved = None,
            None => {}
        }
    }
    let reference = fe.object_ref(&());
    for transition in transitions {
        let event = to_event(transition);
        if let Err(error) = recorder.publish(&event, &reference).await {
            // Not served at all (an API server without the events API): asking again for every
            // transition would only cost it a request each.
            if events_unserved(&error) {
                *ctx.events_unserved_until
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) =
                    Some(now.saturating_add(EVENTS_UNSERVED_RETRY).unwrap_or(now));
                warn!(%error, "the API server serves no events; none is recorded for the next 5 minutes");
                return;
            }
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
pub(super) async fn add_finalizer(
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

pub(super) async fn remove_finalizer(
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::{events_unserved, merge_diff};

    /// JSON as statuses serialize: no member is `null` (an absent field is left out).
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-c]{0,2}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::btree_map("[a-d]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// The patch the server merges into what it has gives exactly the status computed.
        #[test]
        fn a_merge_diff_applied_to_its_source_gives_its_target(from in json_value(), to in json_value()) {
            let mut merged = from.clone();
            json_patch::merge(&mut merged, &merge_diff(&from, &to));
            prop_assert_eq!(merged, to);
        }
    }

    #[test]
    fn only_a_404_that_names_no_event_means_the_events_api_is_not_served() {
        let not_found = |details: serde_json::Value| {
            let status = json!({"code": 404, "reason": "NotFound", "details": details});
            kube::Error::Api(Box::new(serde_json::from_value(status).expect("status")))
        };
        assert!(events_unserved(&not_found(json!(null))));
        assert!(events_unserved(&not_found(json!({}))));
        let gone =
            not_found(json!({"name": "fleet-a.1", "group": "events.k8s.io", "kind": "events"}));
        assert!(!events_unserved(&gone), "that event is gone, not the API");
        let refused = json!({"code": 403, "reason": "Forbidden"});
        let refused = kube::Error::Api(Box::new(serde_json::from_value(refused).expect("status")));
        assert!(!events_unserved(&refused));
    }

    #[test]
    fn a_merge_diff_carries_only_what_changed() {
        let from = json!({"phase": "Running", "message": "waiting", "progress": "1/4",
            "subJobs": [{"type": "CreateNode", "phase": "Running"}]});
        let to = json!({"phase": "Running", "progress": "2/4",
            "subJobs": [{"type": "CreateNode", "phase": "Success"}]});
        assert_eq!(
            merge_diff(&from, &to),
            json!({"message": null, "progress": "2/4",
                "subJobs": [{"type": "CreateNode", "phase": "Success"}]})
        );
        assert_eq!(merge_diff(&to, &to), json!({}));
    }
}
