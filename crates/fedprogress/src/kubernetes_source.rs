//! The cluster as a source (no `--server`): the FederationEnablement read through the user's
//! kubeconfig, and followed with a watch (no polling) for `--watch`.

use futures::StreamExt;
use futures::stream::BoxStream;
use kube::config::KubeConfigOptions;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

use super::Error;
use super::model::{self, Update};
use federation_api::enablement::FederationEnablement;
use federation_api::fleet;

/// Watch errors in a row (each after the watcher's backoff) before the view gives up.
const WATCH_ERRORS: u32 = 5;

pub struct KubernetesSource {
    client: kube::Client,
}

impl KubernetesSource {
    pub fn new(client: kube::Client) -> Self {
        KubernetesSource { client }
    }

    /// The kubeconfig's current context (or `context`), else the pod's service account.
    pub async fn connect(context: Option<&str>) -> Result<Self, Error> {
        let no_cluster = |e: &dyn std::fmt::Display| Error::NoCluster(e.to_string());
        let config = match context {
            None => kube::Config::infer().await.map_err(|e| no_cluster(&e))?,
            Some(context) => kube::Config::from_kubeconfig(&KubeConfigOptions {
                context: Some(context.to_string()),
                ..KubeConfigOptions::default()
            })
            .await
            .map_err(|e| no_cluster(&e))?,
        };
        let client = kube::Client::try_from(config).map_err(|e| no_cluster(&e))?;
        Ok(KubernetesSource::new(client))
    }

    async fn list(&self, namespace: Option<&str>) -> Result<Vec<FederationEnablement>, Error> {
        let api: Api<FederationEnablement> = match namespace {
            Some(namespace) => Api::namespaced(self.client.clone(), namespace),
            None => Api::all(self.client.clone()),
        };
        api.list(&Default::default())
            .await
            .map(|list| list.items)
            .map_err(|source| Error::List {
                scope: namespace.map_or("all namespaces".to_string(), |ns| {
                    format!("namespace {ns:?}")
                }),
                source,
            })
    }

    /// The enablement that owns `fleet` (the oldest naming it, as the controller decides), in
    /// `namespace`, else in any namespace, else, when listing all namespaces is forbidden, in the
    /// kubeconfig's namespace.
    pub async fn find(
        &self,
        fleet: &str,
        namespace: Option<&str>,
    ) -> Result<FederationEnablement, Error> {
        let (items, searched) = match namespace {
            Some(namespace) => (
                self.list(Some(namespace)).await?,
                format!("namespace {namespace:?}"),
            ),
            None => match self.list(None).await {
                Ok(items) => (items, "all namespaces".to_string()),
                Err(Error::List {
                    source: kube::Error::Api(status),
                    ..
                }) if status.is_forbidden() || status.code == 403 => {
                    let namespace = self.client.default_namespace().to_string();
                    let items = self.list(Some(&namespace)).await?;
                    let searched = format!(
                        "namespace {namespace:?} (the kubeconfig's: listing all namespaces is forbidden: {}); \
                         name another with -n/--namespace",
                        status.message
                    );
                    (items, searched)
                }
                Err(error) => return Err(error),
            },
        };
        fleet::fleet_owner(fleet, &items)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                fleet: fleet.to_string(),
                searched,
            })
    }

    /// Follows `fe` from now on.
    pub fn watch(&self, fe: &FederationEnablement) -> KubernetesWatch {
        let namespace = fe.namespace().unwrap_or_default();
        let api: Api<FederationEnablement> = Api::namespaced(self.client.clone(), &namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={}", fe.name_any()));
        KubernetesWatch {
            events: watcher(api, config).default_backoff().boxed(),
            following: Following::new(
                fe.uid(),
                format!("FederationEnablement {namespace}/{}", fe.name_any()),
            ),
        }
    }
}

/// A watch of one enablement, by name; an object of that name with another uid is a new
/// enablement, so this one counts as deleted.
pub struct KubernetesWatch {
    events: BoxStream<'static, Result<watcher::Event<FederationEnablement>, watcher::Error>>,
    following: Following,
}

impl KubernetesWatch {
    /// The next state of the job; `Deleted` when the enablement is gone.
    pub async fn next(&mut self) -> Result<Update, Error> {
        loop {
            let Some(event) = self.events.next().await else {
                return Err(Error::Watch {
                    enablement: self.following.enablement.clone(),
                    reason: "the watch ended".to_string(),
                });
            };
            if let Some(result) = self.following.on(event) {
                return result;
            }
        }
    }
}

/// What a watch knows of its enablement between two events. Apart from the stream, so what
/// each event means is tested without an API server.
struct Following {
    uid: Option<String>,
    enablement: String,
    /// Seen since the watch last (re)listed.
    seen: bool,
    /// Watch errors in a row.
    errors: u32,
}

impl Following {
    fn new(uid: Option<String>, enablement: String) -> Self {
        Following {
            uid,
            enablement,
            seen: false,
            errors: 0,
        }
    }

    fn deleted(&self) -> Error {
        Error::Deleted {
            enablement: self.enablement.clone(),
        }
    }

    /// What `event` means for the view: a state to show, the end of the view (`Deleted`, or
    /// `Watch` after [`WATCH_ERRORS`] errors in a row), or nothing yet (`None`). A relist
    /// (`Init`, `InitApply`..., `InitDone`) without the enablement means it was deleted while
    /// the watch was down.
    fn on(
        &mut self,
        event: Result<watcher::Event<FederationEnablement>, watcher::Error>,
    ) -> Option<Result<Update, Error>> {
        match event {
            Ok(watcher::Event::Apply(fe) | watcher::Event::InitApply(fe)) => {
                self.errors = 0;
                if fe.uid() != self.uid {
                    return Some(Err(self.deleted()));
                }
                self.seen = true;
                Some(Ok(Update {
                    job: model::from_enablement(&fe),
                    server_now: None,
                }))
            }
            Ok(watcher::Event::Delete(_)) => Some(Err(self.deleted())),
            Ok(watcher::Event::Init) => {
                self.errors = 0;
                self.seen = false;
                None
            }
            Ok(watcher::Event::InitDone) if !self.seen => Some(Err(self.deleted())),
            Ok(watcher::Event::InitDone) => None,
            Err(error) => {
                self.errors += 1;
                (self.errors >= WATCH_ERRORS).then(|| {
                    Err(Error::Watch {
                        enablement: self.enablement.clone(),
                        reason: error.to_string(),
                    })
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use federation_api::enablement::JobPhase;
    use serde_json::json;

    fn enablement(uid: &str, phase: &str) -> FederationEnablement {
        serde_json::from_value(json!({
            "apiVersion": "federation.fleet.dev/v1alpha1",
            "kind": "FederationEnablement",
            "metadata": {"name": "fleet-a", "namespace": "team-a", "uid": uid},
            "spec": {"clusterGroupID": "fleet-a",
                "chart": {"repository": "oci://r.example/c", "name": "c", "version": "1"}},
            "status": {"phase": phase},
        }))
        .expect("enablement")
    }

    fn following() -> Following {
        Following::new(
            Some("uid-1".to_string()),
            "FederationEnablement team-a/fleet-a".to_string(),
        )
    }

    type Event = Result<watcher::Event<FederationEnablement>, watcher::Error>;

    /// The phase shown for each event that shows one, then how the view ended (if it did).
    fn feed(following: &mut Following, events: Vec<Event>) -> (Vec<JobPhase>, Option<Error>) {
        let mut shown = Vec::new();
        for event in events {
            match following.on(event) {
                Some(Ok(update)) => shown.push(update.job.standing.phase),
                Some(Err(error)) => return (shown, Some(error)),
                None => {}
            }
        }
        (shown, None)
    }

    fn apply(uid: &str, phase: &str) -> Event {
        Ok(watcher::Event::Apply(enablement(uid, phase)))
    }

    fn init_apply(uid: &str, phase: &str) -> Event {
        Ok(watcher::Event::InitApply(enablement(uid, phase)))
    }

    fn failure() -> Event {
        Err(watcher::Error::NoResourceVersion)
    }

    fn is_deleted(error: &Option<Error>) -> bool {
        matches!(error, Some(Error::Deleted { enablement }) if enablement == "FederationEnablement team-a/fleet-a")
    }

    #[test]
    fn each_change_of_the_enablement_is_shown() {
        let (shown, end) = feed(
            &mut following(),
            vec![apply("uid-1", "Running"), apply("uid-1", "Success")],
        );
        assert_eq!(shown, [JobPhase::Running, JobPhase::Success]);
        assert!(end.is_none());
    }

    #[test]
    fn a_relist_that_still_holds_the_enablement_goes_on() {
        let mut following = following();
        let (shown, end) = feed(
            &mut following,
            vec![
                Ok(watcher::Event::Init),
                init_apply("uid-1", "Running"),
                Ok(watcher::Event::InitDone),
                // A second relist, after the watch was down again.
                Ok(watcher::Event::Init),
                init_apply("uid-1", "Running"),
                Ok(watcher::Event::InitDone),
                apply("uid-1", "Success"),
            ],
        );
        assert!(end.is_none(), "{end:?}");
        assert_eq!(
            shown,
            [JobPhase::Running, JobPhase::Running, JobPhase::Success]
        );
    }

    #[test]
    fn a_relist_without_the_enablement_means_it_was_deleted() {
        let (shown, end) = feed(
            &mut following(),
            vec![
                apply("uid-1", "Running"),
                Ok(watcher::Event::Init),
                Ok(watcher::Event::InitDone),
                apply("uid-1", "Running"),
            ],
        );
        assert_eq!(shown, [JobPhase::Running]);
        assert!(is_deleted(&end), "{end:?}");
    }

    #[test]
    fn an_enablement_recreated_with_a_new_uid_counts_as_deleted() {
        for recreated in [
            vec![apply("uid-2", "Pending")],
            vec![
                Ok(watcher::Event::Init),
                init_apply("uid-2", "Pending"),
                Ok(watcher::Event::InitDone),
            ],
        ] {
            let (shown, end) = feed(&mut following(), recreated);
            assert!(shown.is_empty(), "{shown:?}");
            assert!(is_deleted(&end), "{end:?}");
        }
    }

    #[test]
    fn a_delete_event_ends_the_view() {
        let (_, end) = feed(
            &mut following(),
            vec![Ok(watcher::Event::Delete(enablement("uid-1", "Running")))],
        );
        assert!(is_deleted(&end), "{end:?}");
    }

    #[test]
    fn watch_errors_end_the_view_only_when_they_come_in_a_row_up_to_the_limit() {
        let mut following = following();
        let almost: Vec<Event> = (1..WATCH_ERRORS).map(|_| failure()).collect();
        let (_, end) = feed(&mut following, almost);
        assert!(
            end.is_none(),
            "{} errors are not enough: {end:?}",
            WATCH_ERRORS - 1
        );

        // An event in between starts the count again.
        let mut events = vec![apply("uid-1", "Running")];
        events.extend((1..WATCH_ERRORS).map(|_| failure()));
        events.push(Ok(watcher::Event::Init));
        events.extend((1..WATCH_ERRORS).map(|_| failure()));
        let (shown, end) = feed(&mut following, events);
        assert_eq!(shown, [JobPhase::Running]);
        assert!(end.is_none(), "{end:?}");

        let (_, end) = feed(&mut following, vec![failure()]);
        assert!(
            matches!(&end, Some(Error::Watch { enablement, reason })
                if enablement == "FederationEnablement team-a/fleet-a"
                    && reason.contains("resourceVersion")),
            "{end:?}"
        );
    }
}
