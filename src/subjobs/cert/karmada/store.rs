//! Where CreateCert keeps the Karmada set: four Secrets of the control-plane namespace, and
//! reading the set back out of them (for renewal, and for InstallFederationChart's values).
//!
//! - `<name>-federation-ca`: the CA (`ca.crt`, `ca.key`);
//! - `<name>-federation-certs`: the control-plane certificate (`tls.crt`, `tls.key`, and the
//!   CA's `ca.crt`);
//! - `<name>-federation-front-proxy`: the front-proxy CA (`ca.crt`, `ca.key`) and the
//!   `front-proxy-client` certificate (`tls.crt`, `tls.key`);
//! - `<name>-federation-kubeconfig`: the kubeconfig handed to the user (`kubeconfig`), and its
//!   `federation-admin` client certificate (`tls.crt`, `tls.key`).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::{KarmadaSet, Member};
use crate::api::SubJobType;
use crate::subjobs::cert::kubeconfig::KubeconfigDocument;
use crate::subjobs::cert::pki::KeyedCert;
use crate::subjobs::cert::secrets;
use crate::subjobs::cert::secrets::{
    CA_CERT_KEY, CA_KEY_KEY, TLS_CERT_KEY, TLS_KEY_KEY, get_secret, pem_data, stored,
};
use crate::subjobs::{Context, Result, names, ownership};

/// The key of the kubeconfig in its Secret.
const KUBECONFIG_KEY: &str = "kubeconfig";

/// The four Secrets as they are stored (None: missing).
#[derive(Clone, Debug, Default)]
pub struct StoredSecrets {
    pub ca: Option<Secret>,
    pub certs: Option<Secret>,
    pub front_proxy: Option<Secret>,
    pub kubeconfig: Option<Secret>,
}

impl StoredSecrets {
    /// Reads the four Secrets of `ctx`'s enablement.
    pub async fn read(api: &Api<Secret>, ctx: &Context<'_>) -> Result<Self> {
        let namespace = ctx.control_plane_namespace();
        let get = |name| get_secret(api, namespace, name);
        Ok(StoredSecrets {
            ca: get(names::ca_secret(ctx.name)).await?,
            certs: get(names::cert_secret(ctx.name)).await?,
            front_proxy: get(names::front_proxy_secret(ctx.name)).await?,
            kubeconfig: get(names::kubeconfig_secret(ctx.name)).await?,
        })
    }

    fn all(&self) -> [Option<&Secret>; 4] {
        [
            self.ca.as_ref(),
            self.certs.as_ref(),
            self.front_proxy.as_ref(),
            self.kubeconfig.as_ref(),
        ]
    }

    /// The first of them that exists and is not labelled for this enablement, as a message.
    pub fn conflict(&self, ctx: &Context<'_>) -> Option<String> {
        secrets::conflict(self.all().into_iter().flatten(), ctx)
    }

    /// The current CA and the CAs it replaced still published after it.
    fn ca(&self) -> Option<(KeyedCert, Vec<String>)> {
        secrets::stored_ca(self.ca.as_ref())
    }

    /// The CAs published after the current one.
    pub fn published_before(&self) -> Vec<String> {
        self.ca().map(|(_, older)| older).unwrap_or_default()
    }

    /// The certificates they hold, each where both its certificate and its key are stored.
    pub fn set(&self) -> KarmadaSet<Option<KeyedCert>> {
        KarmadaSet::from_fn(|member| {
            let (secret, cert_key, key_key) = match member {
                // The current CA: the first certificate of a bundle.
                Member::Ca => return self.ca().map(|(current, _)| current),
                Member::ControlPlane => (&self.certs, TLS_CERT_KEY, TLS_KEY_KEY),
                Member::FrontProxyCa => (&self.front_proxy, CA_CERT_KEY, CA_KEY_KEY),
                Member::FrontProxyClient => (&self.front_proxy, TLS_CERT_KEY, TLS_KEY_KEY),
                Member::FederationAdmin => (&self.kubeconfig, TLS_CERT_KEY, TLS_KEY_KEY),
            };
            stored(secret.as_ref(), cert_key, key_key)
        })
    }
}

fn secret(
    ctx: &Context<'_>,
    name: String,
    type_: &str,
    data: BTreeMap<String, ByteString>,
) -> Secret {
    Secret {
        metadata: ownership::metadata(
            ctx,
            SubJobType::CreateCert,
            name,
            Some(ctx.control_plane_namespace()),
        ),
        type_: Some(type_.to_string()),
        data: Some(data),
        ..Secret::default()
    }
}

/// The four Secrets that hold `set`, and `kubeconfig` made from it, in the order they are
/// written: the CAs before what they sign. `ca.crt` is the bundle `trusted`.
pub fn desired_secrets(
    ctx: &Context<'_>,
    set: &KarmadaSet<KeyedCert>,
    trusted: &str,
    kubeconfig: &KubeconfigDocument,
) -> [Secret; 4] {
    let ca = secret(
        ctx,
        names::ca_secret(ctx.name),
        "Opaque",
        pem_data([(CA_CERT_KEY, trusted), (CA_KEY_KEY, set.ca.key_pem())]),
    );
    let front_proxy = secret(
        ctx,
        names::front_proxy_secret(ctx.name),
        "Opaque",
        pem_data([
            (CA_CERT_KEY, &set.front_proxy_ca.cert_pem),
            (CA_KEY_KEY, set.front_proxy_ca.key_pem()),
            (TLS_CERT_KEY, &set.front_proxy_client.cert_pem),
            (TLS_KEY_KEY, set.front_proxy_client.key_pem()),
        ]),
    );
    let certs = secret(
        ctx,
        names::cert_secret(ctx.name),
        "kubernetes.io/tls",
        pem_data([
            (TLS_CERT_KEY, &set.control_plane.cert_pem),
            (TLS_KEY_KEY, set.control_plane.key_pem()),
            (CA_CERT_KEY, trusted),
        ]),
    );
    let kubeconfig = secret(
        ctx,
        names::kubeconfig_secret(ctx.name),
        "Opaque",
        pem_data([
            (KUBECONFIG_KEY, kubeconfig.as_str()),
            (TLS_CERT_KEY, &set.federation_admin.cert_pem),
            (TLS_KEY_KEY, set.federation_admin.key_pem()),
        ]),
    );
    [ca, front_proxy, certs, kubeconfig]
}
