//! CreateNetworkResource: the Service that exposes the federation API server, and its endpoint.
//!
//! DeleteNetworkResource (teardown) deletes it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Api, Client};

use super::apply::{self, Ensured};
use super::node::{is_usable, list_nodes, ours_selector};
use super::{Context, Result, SubJobExecutor, names};
use super::{deletion, ownership};
use crate::api::{
    APISERVER_POD_LABEL, ChartProfile, EXTEND_PARAM_ELB_ID, EXTEND_PARAM_ENDPOINT, NetworkType,
    SubJobType,
};
use crate::job::{Mode, Observation, reasons};

/// The port Karmada's API server listens on (TLS 1.3 only).
const KARMADA_APISERVER_PORT: i32 = 5443;

/// The Service's selector and target port: what the chart gives the federation API server pods,
/// and where they listen. For Karmada, the label the controller has the chart put on them
/// (`apiServer.podLabels`), whose value (a uid) YAML cannot misread.
fn apiserver_target(ctx: &Context<'_>) -> (BTreeMap<String, String>, i32) {
    match ctx.profile() {
        ChartProfile::Karmada => (
            BTreeMap::from([(APISERVER_POD_LABEL.to_string(), ctx.uid.to_string())]),
            KARMADA_APISERVER_PORT,
        ),
        ChartProfile::Generic => (apiserver_selector(ctx.release()), ctx.spec.network.port),
    }
}

/// Labels a Generic control-plane chart gives the federation API server pods.
pub fn apiserver_selector(release: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "federation-apiserver".to_string(),
        ),
        (
            "app.kubernetes.io/instance".to_string(),
            release.to_string(),
        ),
    ])
}

/// The Service CreateNetworkResource applies.
pub fn desired_service(ctx: &Context<'_>) -> Service {
    let network = &ctx.spec.network;
    let mut metadata = ownership::metadata(
        ctx,
        SubJobType::CreateNetworkResource,
        names::service(ctx.name),
        Some(ctx.control_plane_namespace()),
    );
    let annotations = metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.extend(network.annotations.clone());
    if let Some(elb_id) = &network.elb_id {
        annotations.insert(network.elb_id_annotation.clone(), elb_id.clone());
    }
    let type_ = match network.type_ {
        NetworkType::LoadBalancer => "LoadBalancer",
        NetworkType::NodePort => "NodePort",
    };
    let (selector, target_port) = apiserver_target(ctx);
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(type_.to_string()),
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("https".to_string()),
                port: network.port,
                target_port: Some(IntOrString::Int(target_port)),
                protocol: Some("TCP".to_string()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// `host:port`, with brackets around an IPv6 host.
pub fn endpoint(host: &str, port: i32) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("[{host}]:{port}"),
        _ => format!("{host}:{port}"),
    }
}

/// The host of a load balancer's first ingress (IP preferred).
pub fn load_balancer_host(service: &Service) -> Option<String> {
    let ingress = service
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .first()?;
    ingress.ip.clone().or_else(|| ingress.hostname.clone())
}

fn node_port(service: &Service) -> Option<i32> {
    service.spec.as_ref()?.ports.as_ref()?.first()?.node_port
}

/// The address clients reach a node by: ExternalIP, else InternalIP.
pub fn node_address(node: &Node) -> Option<String> {
    let addresses = node.status.as_ref()?.addresses.as_ref()?;
    ["ExternalIP", "InternalIP"].iter().find_map(|kind| {
        addresses
            .iter()
            .find(|a| a.type_ == *kind)
            .map(|a| a.address.clone())
    })
}

/// Whether clients can reach the federation API server yet.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reachability {
    /// At this endpoint (`host:port`).
    At(String),
    /// Not yet: the reason and message of the Progressing observation.
    Waiting(&'static str, &'static str),
}

pub struct NetworkExecutor {
    client: Client,
}

impl NetworkExecutor {
    pub fn new(client: Client) -> Self {
        NetworkExecutor { client }
    }

    async fn ensure(&self, ctx: &Context<'_>) -> Result<Observation> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), ctx.control_plane_namespace());
        let service = match apply::ensure(&api, &desired_service(ctx), ctx).await? {
            Ensured::Conflict(message) => {
                return Ok(Observation::failed(reasons::NAME_CONFLICT, message));
            }
            ensured => ensured.object().cloned().unwrap_or_default(),
        };

        let mut extend_param = BTreeMap::new();
        if let Some(elb_id) = &ctx.spec.network.elb_id {
            extend_param.insert(EXTEND_PARAM_ELB_ID.to_string(), elb_id.clone());
        }
        let reachability = match ctx.spec.network.type_ {
            NetworkType::LoadBalancer => match load_balancer_host(&service) {
                Some(host) => Reachability::At(endpoint(&host, ctx.spec.network.port)),
                None => Reachability::Waiting(
                    reasons::WAITING_FOR_LOAD_BALANCER,
                    "the load balancer has not reported an address yet",
                ),
            },
            NetworkType::NodePort => match node_port(&service) {
                None => Reachability::Waiting(
                    reasons::WAITING_FOR_NODE_PORT,
                    "no node port allocated yet",
                ),
                Some(port) => self.control_plane_node_endpoint(ctx, port).await?,
            },
        };
        Ok(match reachability {
            Reachability::At(endpoint) => {
                extend_param.insert(EXTEND_PARAM_ENDPOINT.to_string(), endpoint.clone());
                Observation::succeeded_with(format!(
                    "federation API server reachable at {endpoint}"
                ))
                .with_extend_param(extend_param)
            }
            Reachability::Waiting(reason, message) => {
                Observation::progressing(reason, message).with_extend_param(extend_param)
            }
        })
    }

    /// The node port on the first Ready control-plane node (by name) that has an address.
    async fn control_plane_node_endpoint(
        &self,
        ctx: &Context<'_>,
        port: i32,
    ) -> Result<Reachability> {
        let mut nodes = list_nodes(&self.client, &ours_selector(ctx.uid)).await?;
        nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        Ok(
            match nodes.iter().filter(|n| is_usable(n)).find_map(node_address) {
                Some(host) => Reachability::At(endpoint(&host, port)),
                None => Reachability::Waiting(
                    reasons::WAITING_FOR_NODE_ADDRESS,
                    "no Ready control-plane node with an address yet",
                ),
            },
        )
    }

    async fn delete(&self, ctx: &Context<'_>) -> Result<Observation> {
        let sub_job = SubJobType::CreateNetworkResource;
        deletion::delete_subjob_objects::<Service>(&self.client, ctx, sub_job).await
    }
}

impl SubJobExecutor for NetworkExecutor {
    fn sub_job(&self) -> SubJobType {
        SubJobType::CreateNetworkResource
    }

    fn run<'a>(&'a self, ctx: &'a Context<'a>, _mode: Mode) -> BoxFuture<'a, Result<Observation>> {
        Box::pin(self.ensure(ctx))
    }

    fn teardown<'a>(
        &'a self,
        ctx: &'a Context<'a>,
        _attempt: i32,
    ) -> BoxFuture<'a, Result<Observation>> {
        Box::pin(self.delete(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_brackets_ipv6_hosts_only() {
        assert_eq!(endpoint("203.0.113.10", 5443), "203.0.113.10:5443");
        assert_eq!(endpoint("2001:db8::1", 5443), "[2001:db8::1]:5443");
        assert_eq!(endpoint("lb.example.com", 443), "lb.example.com:443");
    }

    #[test]
    fn load_balancer_host_prefers_the_ip() {
        let service: Service = serde_json::from_value(serde_json::json!({
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10", "hostname": "lb.example.com"}]}}
        }))
        .expect("service");
        assert_eq!(
            load_balancer_host(&service).as_deref(),
            Some("203.0.113.10")
        );
        assert_eq!(load_balancer_host(&Service::default()), None);
    }

    #[test]
    fn node_address_prefers_external_ip() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "ExternalIP", "address": "198.51.100.1"}]}
        }))
        .expect("node");
        assert_eq!(node_address(&node).as_deref(), Some("198.51.100.1"));
    }
}

#[cfg(test)]
mod service_tests {
    use jiff::Timestamp;
    use serde_json::json;

    use super::*;
    use crate::api::FederationEnablement;
    use crate::job::RunFacts;
    use crate::subjobs::Settings;

    const UID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

    fn service_for(chart: serde_json::Value) -> Service {
        let fe: FederationEnablement = serde_json::from_value(json!({
            "apiVersion": "federation.fleet.dev/v1alpha1",
            "kind": "FederationEnablement",
            "metadata": {"name": "fed", "namespace": "team", "uid": UID},
            "spec": {"clusterGroupID": "fleet-a", "network": {"port": 443}, "chart": chart},
        }))
        .expect("enablement");
        let run = RunFacts::default();
        let settings = Settings {
            default_runner_image: "runner:1".to_string(),
        };
        desired_service(&Context::new(&fe, &run, &settings, Timestamp::UNIX_EPOCH))
    }

    fn selector_and_target(service: &Service) -> (BTreeMap<String, String>, Option<IntOrString>) {
        let spec = service.spec.clone().expect("spec");
        let port = spec.ports.expect("ports").remove(0);
        assert_eq!(port.port, 443, "clients use network.port");
        (spec.selector.expect("selector"), port.target_port)
    }

    #[test]
    fn a_karmada_service_selects_the_apiserver_label_and_targets_5443_in_its_namespace() {
        let service = service_for(json!({"clusterScoped": true}));
        assert_eq!(
            service.metadata.namespace.as_deref(),
            Some("karmada-fleet-a")
        );
        let (selector, target) = selector_and_target(&service);
        assert_eq!(
            selector,
            BTreeMap::from([(
                "federation.fleet.dev/apiserver".to_string(),
                UID.to_string()
            )])
        );
        assert_eq!(target, Some(IntOrString::Int(5443)));
    }

    #[test]
    fn a_generic_service_keeps_the_release_selector_and_network_port() {
        let service = service_for(json!({
            "repository": "oci://r.example/c", "name": "c", "version": "1.0.0",
        }));
        assert_eq!(service.metadata.namespace.as_deref(), Some("team"));
        let (selector, target) = selector_and_target(&service);
        assert_eq!(selector, apiserver_selector("fed"));
        assert_eq!(target, Some(IntOrString::Int(443)));
    }
}
