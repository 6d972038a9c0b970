//! CreateCert: the CA and the serving certificate of the federation API server, each kept in a
//! Secret of the control-plane namespace. For the Karmada profile, the whole Karmada set and the
//! kubeconfig handed to the user ([`karmada::store`]).
//!
//! DeleteCert (teardown) deletes them all.
//!
//! Deciding and issuing are pure functions ([`desired_sans`], [`check_ca`], [`check_leaf`],
//! [`issue_ca`], [`issue_leaf`], [`renew`]); the executor only reads the two Secrets, calls
//! [`renew`] and writes back what changed. Private keys never leave the Secrets' data: no log,
//! event, error or status message carries them, and [`KeyedCert`]'s `Debug` hides them.
//!
//! The Karmada certificate set ([`karmada`]) and the federation kubeconfig ([`kubeconfig`]) are
//! pure too; [`CertExecutor`] stores them for the Karmada profile.

pub mod karmada;
pub mod key_format;
pub mod kubeconfig;
pub mod pki;
pub mod rotation;
pub mod secrets;

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use self::karmada::store::StoredSecrets;
pub use self::pki::{CertRequest, KeyedCert, San, desired_sans, endpoint_host, renew};
use self::secrets::{
    TLS_CERT_KEY, TLS_KEY_KEY, desired_ca_secret, desired_cert_secret, get_secret, stored,
};
use super::{Context, Result, SubJobExecutor, names};
use super::{apply, deletion};
use crate::api::{ChartProfile, EXTEND_PARAM_KUBECONFIG_SECRET, SubJobType};
use crate::job::{Mode, Observation, reasons};

/// endpoint (the endpoint host must be in the certificate).
pub fn cert_request(ctx: &Context<'_>) -> Option<CertRequest> {
    let host = endpoint_host(ctx.run.endpoint.as_deref()?)?;
    let service = names::service(ctx.name);
    let sans = desired_sans(
        &service,
        ctx.control_plane_namespace(),
        host,
        &ctx.spec.certificate.extra_sans,
    );
    Some(CertRequest {
        ca_name: names::ca_secret(ctx.name),
        common_name: service,
        sans,
        validity_days: ctx.spec.certificate.validity_days,
    })
}

/// What the Karmada set is issued for, once CreateNetworkResource has recorded the endpoint.
/// `clusterDomain` and `systemNamespace` come from `chart.values`, as the chart reads them.
pub fn karmada_request(ctx: &Context<'_>) -> Option<karmada::KarmadaRequest> {
    let host = endpoint_host(ctx.run.endpoint.as_deref()?)?;
    let value = |key: &str, default: &str| {
        ctx.spec
            .chart
            .values
            .as_ref()
            .and_then(|values| values.get(key))
            .and_then(|value| value.as_str())
            .filter(|value| !value.is_empty())
            .unwrap_or(default)
            .to_string()
    };
    Some(karmada::KarmadaRequest {
        names: karmada::KarmadaNames {
            release: ctx.release().to_string(),
            namespace: ctx.control_plane_namespace().to_string(),
            system_namespace: value("systemNamespace", karmada::DEFAULT_SYSTEM_NAMESPACE),
            cluster_domain: value("clusterDomain", karmada::DEFAULT_CLUSTER_DOMAIN),
            endpoint_host: host.to_string(),
            extra_sans: ctx.spec.certificate.extra_sans.clone(),
        },
        validity_days: ctx.spec.certificate.validity_days,
    })
}

fn waiting_for_endpoint() -> Observation {
    Observation::progressing(
        reasons::WAITING_FOR_ENDPOINT,
        "waiting for CreateNetworkResource to record the federation API server endpoint",
    )
}

pub struct CertExecutor {
    client: Client,
}

impl CertExecutor {
    pub fn new(client: Client) -> Self {
        CertExecutor { client }
    }

    async fn ensure(&self, ctx: &Context<'_>) -> Result<Observation> {
        let Some(request) = cert_request(ctx) else {
            return Ok(waiting_for_endpoint());
        };
        let namespace = ctx.control_plane_namespace();
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        // Read once here, rather than in apply::ensure, because deciding what to reuse needs
        // the stored certificates before the desired Secrets exist.
        let ca_secret = get_secret(&api, namespace, names::ca_secret(ctx.name)).await?;
        let cert_secret = get_secret(&api, namespace, names::cert_secret(ctx.name)).await?;
        let ours = [&ca_secret, &cert_secret].into_iter().flatten();
        if let Some(message) = secrets::conflict(ours, ctx) {
            return Ok(Observation::failed(reasons::NAME_CONFLICT, message));
        }

        let (stored_ca, published_before) = secrets::stored_ca(ca_secret.as_ref())
            .map_or((None, Vec::new()), |(ca, older)| (Some(ca), older));
        let renewal = renew(
            stored_ca.clone(),
            stored(cert_secret.as_ref(), TLS_CERT_KEY, TLS_KEY_KEY),
            &request,
            ctx.now,
        )?;
        let trusted = rotation::trusted(
            &renewal.ca,
            stored_ca.as_ref().filter(|_| renewal.new_ca.is_some()),
            &published_before,
            ctx.now,
        );
        if let Some(why) = &renewal.new_ca {
            tracing::info!(
                enablement = ctx.name,
                namespace,
                reason = %why,
                "generated a new federation CA"
            );
        }
        if let Some(why) = &renewal.new_leaf {
            tracing::info!(
                enablement = ctx.name,
                namespace,
                reason = %why,
                "issued a new serving certificate"
            );
        }

        // The CA first, so the serving Secret never names a CA whose key is not stored. Should
        // the second write fail, the next run finds a serving certificate the stored CA did not
        // sign and issues it again.
        let desired_ca = desired_ca_secret(ctx, &renewal.ca, &trusted);
        apply::apply_if_drifted(&api, ca_secret.as_ref(), &desired_ca).await?;
        let desired_cert = desired_cert_secret(ctx, &renewal.leaf, &trusted);
        apply::apply_if_drifted(&api, cert_secret.as_ref(), &desired_cert).await?;

        Ok(Observation::succeeded_with(format!(
            "serving certificate valid until {}",
            renewal.valid_until
        )))
    }

    /// The Karmada set: renewed as today (the control-plane key kept), stored in four Secrets
    /// with the kubeconfig, each written only when it changed.
    async fn ensure_karmada(&self, ctx: &Context<'_>) -> Result<Observation> {
        let (Some(request), Some(endpoint)) = (karmada_request(ctx), ctx.run.endpoint.as_deref())
        else {
            return Ok(waiting_for_endpoint());
        };
        let namespace = ctx.control_plane_namespace();
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let stored = StoredSecrets::read(&api, ctx).await?;
        if let Some(message) = stored.conflict(ctx) {
            return Ok(Observation::failed(reasons::NAME_CONFLICT, message));
        }
        let stored_set = stored.set();
        let replaced = stored_set.ca.clone();
        let renewal = karmada::renew_set(stored_set, &request, ctx.now)?;
        let trusted = rotation::trusted(
            &renewal.certs.ca,
            replaced.as_ref().filter(|_| renewal.reissued.ca.is_some()),
            &stored.published_before(),
            ctx.now,
        );
        for member in karmada::Member::ALL {
            if let Some(why) = renewal.reissued.get(member) {
                tracing::info!(
                    enablement = ctx.name,
                    namespace,
                    certificate = member.description(),
                    reason = %why,
                    "issued a new certificate"
                );
            }
        }
        if let Some(why) = &renewal.new_signing_key {
            tracing::warn!(
                enablement = ctx.name,
                namespace,
                reason = %why,
                "a new service-account signing key: the tokens the old one signed are no longer valid"
            );
        }
        let server = kubeconfig::server_url(endpoint);
        let document = kubeconfig::kubeconfig(&kubeconfig::KubeconfigInput {
            cluster: &request.names.release,
            user: karmada::FEDERATION_ADMIN,
            server: &server,
            ca_pem: &trusted,
            client: &renewal.certs.federation_admin,
        })?;
        let [ca, front_proxy, certs, kubeconfig] =
            karmada::store::desired_secrets(ctx, &renewal.certs, &trusted, &document);
        // The CAs first, so no Secret names a CA whose key is not stored; should a later write
        // fail, the next run finds a certificate the stored CA did not sign and issues it again.
        apply::apply_if_drifted(&api, stored.ca.as_ref(), &ca).await?;
        apply::apply_if_drifted(&api, stored.front_proxy.as_ref(), &front_proxy).await?;
        apply::apply_if_drifted(&api, stored.certs.as_ref(), &certs).await?;
        apply::apply_if_drifted(&api, stored.kubeconfig.as_ref(), &kubeconfig).await?;
        let kubeconfig_secret = names::kubeconfig_secret(ctx.name);
        Ok(Observation::succeeded_with(format!(
            "Karmada certificates valid until {}; kubeconfig in Secret {kubeconfig_secret}",
            renewal.valid_until
        ))
        .with_extend_param(BTreeMap::from([(
            EXTEND_PARAM_KUBECONFIG_SECRET.to_string(),
            kubeconfig_secret,
        )])))
    }

    async fn delete(&self, ctx: &Context<'_>) -> Result<Observation> {
        deletion::delete_subjob_objects::<Secret>(&self.client, ctx, SubJobType::CreateCert).await
    }
}

impl SubJobExecutor for CertExecutor {
    fn sub_job(&self) -> SubJobType {
        SubJobType::CreateCert
    }

    /// Maintain runs the same check: it renews and repairs what an attempt created.
    fn run<'a>(&'a self, ctx: &'a Context<'a>, _mode: Mode) -> BoxFuture<'a, Result<Observation>> {
        match ctx.profile() {
            ChartProfile::Karmada => Box::pin(self.ensure_karmada(ctx)),
            ChartProfile::Generic => Box::pin(self.ensure(ctx)),
        }
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
    use std::collections::BTreeMap;

    use jiff::Timestamp;
    use serde_json::json;

    use super::pki::tests::{days, sans_of_pem, t0};
    use super::secrets::CA_CERT_KEY;
    use super::*;
    use crate::api::{FederationEnablement, FederationEnablementSpec};
    use crate::job::RunFacts;
    use crate::subjobs::Settings;
    use crate::testing::{Call, FakeApiServer};

    const NAME: &str = "fed";
    const NAMESPACE: &str = "fleet";
    const UID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

    // --- The executor against the fake API server ---

    const SECRETS: &str = "/api/v1/namespaces/fleet/secrets";

    const CA_SECRET: &str = "fed-federation-ca";
    const CERT_SECRET: &str = "fed-federation-certs";

    /// The executor for enablement `fleet/fed`, talking to a fake API server.
    struct Harness {
        server: FakeApiServer,
        executor: CertExecutor,
        enablement: FederationEnablement,
        run: RunFacts,
        settings: Settings,
    }

    impl Harness {
        /// `endpoint`: what CreateNetworkResource recorded, if anything.
        fn new(endpoint: Option<&str>) -> Self {
            let spec: FederationEnablementSpec = serde_json::from_value(json!({
                "clusterGroupID": "fleet-a",
                "certificate": {"validityDays": 300, "extraSANs": ["api.example.com"]},
                "chart": {"repository": "oci://registry.example/charts", "name": "federation", "version": "1.2.3"},
            }))
            .expect("spec");
            let mut enablement = FederationEnablement::new(NAME, spec);
            enablement.metadata.namespace = Some(NAMESPACE.to_string());
            enablement.metadata.uid = Some(UID.to_string());
            let run = RunFacts {
                job_uid: "job-1".to_string(),
                spec_hash: "hash-1".to_string(),
                endpoint: endpoint.map(str::to_string),
                chart_version: None,
                installed_before: false,
            };
            let server = FakeApiServer::new();
            Harness {
                executor: CertExecutor::new(server.client()),
                server,
                enablement,
                run,
                settings: Settings {
                    default_runner_image: "runner:1".to_string(),
                },
            }
        }

        fn ctx(&self, now: Timestamp) -> Context<'_> {
            Context::new(&self.enablement, &self.run, &self.settings, now)
        }

        async fn run(&self, now: Timestamp, mode: Mode) -> Observation {
            self.executor.run(&self.ctx(now), mode).await.expect("run")
        }

        async fn teardown(&self) -> Observation {
            let ctx = self.ctx(t0());
            self.executor.teardown(&ctx, 1).await.expect("teardown")
        }

        /// The requests since the last call, as `VERB name` (`LIST` for the collection).
        fn requests(&self) -> Vec<String> {
            let line = |call: &Call| match call.path().strip_prefix(SECRETS) {
                Some("") if call.method == http::Method::GET => "LIST".to_string(),
                Some(name) => format!("{} {}", call.method, name.trim_start_matches('/')),
                None => call.line(),
            };
            self.server.take_calls().iter().map(line).collect()
        }

        /// Stores a Secret as if someone else had created it (no request is logged).
        fn insert(&self, secret: Secret) {
            self.server
                .insert(serde_json::to_value(secret).expect("a Secret"));
        }

        fn stored(&self, name: &str) -> Option<Secret> {
            let secret = self.server.get(&format!("{SECRETS}/{name}"))?;
            Some(serde_json::from_value(secret).expect("a Secret"))
        }

        fn text(&self, name: &str, key: &str) -> String {
            let secret = self.stored(name).expect("secret");
            let bytes = &secret.data.as_ref().expect("data")[key];
            String::from_utf8(bytes.0.clone()).expect("utf-8")
        }
    }

    fn data_keys(secret: &Secret) -> Vec<&str> {
        secret
            .data
            .as_ref()
            .map_or(Vec::new(), |d| d.keys().map(String::as_str).collect())
    }

    #[tokio::test]
    async fn waits_for_the_endpoint_without_calling_the_api() {
        let harness = Harness::new(None);
        let observation = harness.run(t0(), Mode::Attempt(1)).await;
        assert!(matches!(
            observation,
            Observation::Progressing { ref reason, .. } if reason == reasons::WAITING_FOR_ENDPOINT
        ));
        assert!(harness.requests().is_empty());
    }

    #[tokio::test]
    async fn first_run_creates_both_secrets_and_a_second_run_writes_nothing() {
        let harness = Harness::new(Some("[2001:db8::7]:5443"));

        let first = harness.run(t0(), Mode::Attempt(1)).await;
        let valid_until = t0() + days(300);
        assert_eq!(
            first,
            Observation::Succeeded {
                message: Some(format!("serving certificate valid until {valid_until}")),
                extend_param: BTreeMap::new(),
            }
        );
        assert_eq!(
            harness.requests(),
            [
                format!("GET {CA_SECRET}"),
                format!("GET {CERT_SECRET}"),
                format!("PATCH {CA_SECRET}"),
                format!("PATCH {CERT_SECRET}"),
            ]
        );
        let ca = harness.stored(CA_SECRET).expect("CA Secret");
        assert_eq!(ca.type_.as_deref(), Some("Opaque"));
        assert_eq!(data_keys(&ca), ["ca.crt", "ca.key"]);
        let tls = harness.stored(CERT_SECRET).expect("TLS Secret");
        assert_eq!(tls.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(data_keys(&tls), ["ca.crt", "tls.crt", "tls.key"]);
        assert_eq!(
            harness.text(CERT_SECRET, CA_CERT_KEY),
            harness.text(CA_SECRET, CA_CERT_KEY)
        );
        let sans = sans_of_pem(&harness.text(CERT_SECRET, TLS_CERT_KEY));
        assert!(sans.contains(&San::parse("2001:db8::7")));
        assert!(sans.contains(&San::parse("api.example.com")));
        assert!(sans.contains(&San::parse("fed-federation-apiserver.fleet.svc")));

        let second = harness.run(t0() + days(1), Mode::Maintain).await;
        assert_eq!(second, first);
        assert_eq!(
            harness.requests(),
            [format!("GET {CA_SECRET}"), format!("GET {CERT_SECRET}")]
        );
    }

    #[tokio::test]
    async fn maintain_renews_a_serving_certificate_near_expiry_from_the_same_ca() {
        let harness = Harness::new(Some("203.0.113.7:5443"));
        harness.run(t0(), Mode::Attempt(1)).await;
        let ca_before = harness.text(CA_SECRET, CA_CERT_KEY);
        let leaf_before = harness.text(CERT_SECRET, TLS_CERT_KEY);
        harness.requests();

        harness.run(t0() + days(250), Mode::Maintain).await;
        assert_eq!(
            harness.requests(),
            [
                format!("GET {CA_SECRET}"),
                format!("GET {CERT_SECRET}"),
                format!("PATCH {CERT_SECRET}"),
            ]
        );
        assert_eq!(harness.text(CA_SECRET, CA_CERT_KEY), ca_before);
        assert_ne!(harness.text(CERT_SECRET, TLS_CERT_KEY), leaf_before);
    }

    #[tokio::test]
    async fn a_secret_not_labelled_for_this_enablement_is_a_name_conflict() {
        let harness = Harness::new(Some("203.0.113.7:5443"));
        let mut foreign = Secret::default();
        foreign.metadata.name = Some(CERT_SECRET.to_string());
        foreign.metadata.namespace = Some(NAMESPACE.to_string());
        harness.insert(foreign);

        let observation = harness.run(t0(), Mode::Attempt(1)).await;
        let message = format!(
            "Secret {NAMESPACE}/{CERT_SECRET} exists and is not labelled for this enablement"
        );
        assert_eq!(
            observation,
            Observation::failed(reasons::NAME_CONFLICT, message)
        );
        assert_eq!(
            harness.requests(),
            [format!("GET {CA_SECRET}"), format!("GET {CERT_SECRET}")]
        );
    }

    #[tokio::test]
    async fn teardown_deletes_both_secrets_then_reports_none_left() {
        let harness = Harness::new(Some("203.0.113.7:5443"));
        harness.run(t0(), Mode::Attempt(1)).await;
        harness.requests();

        let first = harness.teardown().await;
        assert!(matches!(
            first,
            Observation::Progressing { ref reason, .. } if reason == reasons::DELETING
        ));
        assert_eq!(
            harness.requests(),
            [
                "LIST".to_string(),
                format!("DELETE {CA_SECRET}"),
                format!("DELETE {CERT_SECRET}"),
            ]
        );
        assert!(matches!(
            harness.teardown().await,
            Observation::Succeeded { .. }
        ));
    }
}
