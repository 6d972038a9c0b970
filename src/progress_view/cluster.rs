//! The cluster as a source (no `--server`): the FederationEnablement read through the user's
//! kubeconfig, and followed with a watch (no polling) for `--watch`.

use futures::StreamExt;
use futures::stream::BoxStream;
use kube::config::KubeConfigOptions;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

use super::Error;
use super::model::{self, Update};
use crate::api::FederationEnablement;
use crate::policy;

/// Watch errors in a row (each after the watcher's backoff) before the view gives up.
const WATCH_ERRORS: u32 = 5;

pub struct Cluster {
    client: kube::Client,
}

impl Cluster {
    pub fn new(client: kube::Client) -> Self {
        Cluster { client }
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
        Ok(Cluster::new(client))
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
        policy::fleet_owner(fleet, &items)
            .cloned()
            .ok_or_else(|| Error::NotFound {
                fleet: fleet.to_string(),
                searched,
            })
    }

    /// Follows `fe` from now on.
    pub fn watch(&self, fe: &FederationEnablement) -> ClusterWatch {
        let namespace = fe.namespace().unwrap_or_default();
        let api: Api<FederationEnablement> = Api::namespaced(self.client.clone(), &namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={}", fe.name_any()));
        ClusterWatch {
            events: watcher(api, config).default_backoff().boxed(),
            uid: fe.uid(),
            enablement: format!("FederationEnablement {namespace}/{}", fe.name_any()),
            seen: false,
            errors: 0,
        }
    }
}

/// A watch of one enablement, by name; an object of that name with another uid is a new
/// enablement, so this one counts as deleted.
pub struct ClusterWatch {
    events: BoxStream<'static, Result<watcher::Event<FederationEnablement>, watcher::Error>>,
    uid: Option<String>,
    enablement: String,
    /// Seen since the watch last (re)listed.
    seen: bool,
    errors: u32,
}

impl ClusterWatch {
    /// The next state of the job; `Deleted` when the enablement is gone.
    pub async fn next(&mut self) -> Result<Update, Error> {
        let deleted = |w: &Self| Error::Deleted {
            enablement: w.enablement.clone(),
        };
        loop {
            let Some(event) = self.events.next().await else {
                return Err(Error::Watch {
                    enablement: self.enablement.clone(),
                    reason: "the watch ended".to_string(),
                });
            };
            match event {
                Ok(watcher::Event::Apply(fe) | watcher::Event::InitApply(fe)) => {
                    self.errors = 0;
                    if fe.uid() != self.uid {
                        return Err(deleted(self));
                    }
                    self.seen = true;
                    return Ok(Update {
                        job: model::from_enablement(&fe),
                        server_now: None,
                    });
                }
                Ok(watcher::Event::Delete(_)) => return Err(deleted(self)),
                Ok(watcher::Event::Init) => {
                    self.errors = 0;
                    self.seen = false;
                }
                Ok(watcher::Event::InitDone) if !self.seen => return Err(deleted(self)),
                Ok(watcher::Event::InitDone) => {}
                Err(error) => {
                    self.errors += 1;
                    if self.errors >= WATCH_ERRORS {
                        return Err(Error::Watch {
                            enablement: self.enablement.clone(),
                            reason: error.to_string(),
                        });
                    }
                }
            }
        }
    }
}
