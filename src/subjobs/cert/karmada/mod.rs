//! The Karmada certificate set: what the Karmada chart
//! takes in `certs.mode: custom`, plus the client certificate of the kubeconfig the federation
//! hands out.
//!
//! - the CA (`caCrt`, `caKey`), which also signs the chart's cluster-signing requests;
//! - one control-plane certificate (`crt`, `key`): the serving certificate of karmada-apiserver,
//!   etcd, the webhook and the aggregated apiserver, their client certificate towards etcd and
//!   the chart's own kubeconfig, so an admin (`system:admin` in `system:masters`). Its key is
//!   also the service-account signing key: renewal keeps it, since a new one invalidates every
//!   token;
//! - the front-proxy CA and its `front-proxy-client` certificate;
//! - the `federation-admin` client certificate of the federation kubeconfig, signed by the CA.
//!
//! Every key is SEC1 EC P-256 (see [`super::key_format`]). Issuing ([`issue_set`]), checking
//! ([`check_set`]) and renewing ([`renew_set`]) take the time as an argument.

mod check;
mod issue;
mod names;
mod renew;
pub mod store;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use rcgen::ExtendedKeyUsagePurpose;

pub use self::check::{check_member, check_set, problems};
pub use self::issue::issue_set;
pub use self::names::{DEFAULT_CLUSTER_DOMAIN, DEFAULT_SYSTEM_NAMESPACE, KarmadaNames};
pub use self::renew::{KarmadaRenewal, renew_set};
use super::pki::San;
use crate::api::MANAGER;

/// The organization that makes a client certificate a cluster admin.
pub const SYSTEM_MASTERS: &str = "system:masters";
/// Karmada's `--requestheader-allowed-names`.
pub const FRONT_PROXY_CLIENT: &str = "front-proxy-client";
/// The user of the federation kubeconfig.
pub const FEDERATION_ADMIN: &str = "federation-admin";

/// What the set is issued for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KarmadaRequest {
    pub names: KarmadaNames,
    /// Validity of every certificate but the two CAs, which live longer
    /// ([`super::pki::ca_validity_days`]).
    pub validity_days: i64,
}

/// One certificate of the set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Member {
    Ca,
    ControlPlane,
    FrontProxyCa,
    FrontProxyClient,
    FederationAdmin,
}

/// One value for each certificate of the set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KarmadaSet<T> {
    pub ca: T,
    pub control_plane: T,
    pub front_proxy_ca: T,
    pub front_proxy_client: T,
    pub federation_admin: T,
}

impl<T> KarmadaSet<T> {
    pub fn from_fn(mut value: impl FnMut(Member) -> T) -> Self {
        KarmadaSet {
            ca: value(Member::Ca),
            control_plane: value(Member::ControlPlane),
            front_proxy_ca: value(Member::FrontProxyCa),
            front_proxy_client: value(Member::FrontProxyClient),
            federation_admin: value(Member::FederationAdmin),
        }
    }

    pub fn get(&self, member: Member) -> &T {
        match member {
            Member::Ca => &self.ca,
            Member::ControlPlane => &self.control_plane,
            Member::FrontProxyCa => &self.front_proxy_ca,
            Member::FrontProxyClient => &self.front_proxy_client,
            Member::FederationAdmin => &self.federation_admin,
        }
    }
}

/// What a certificate of the set says about its holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profile {
    pub common_name: &'static str,
    /// None: no organization, so no group.
    pub organization: Option<&'static str>,
    pub server_auth: bool,
    pub client_auth: bool,
    /// The CA that signs it; None for the CAs themselves.
    pub signer: Option<Member>,
}

impl Member {
    pub const ALL: [Member; 5] = [
        Member::Ca,
        Member::ControlPlane,
        Member::FrontProxyCa,
        Member::FrontProxyClient,
        Member::FederationAdmin,
    ];

    /// For messages: "the {description} has expired".
    pub fn description(self) -> &'static str {
        match self {
            Member::Ca => "Karmada CA",
            Member::ControlPlane => "control-plane certificate",
            Member::FrontProxyCa => "front-proxy CA",
            Member::FrontProxyClient => "front-proxy client certificate",
            Member::FederationAdmin => "federation-admin client certificate",
        }
    }

    pub fn profile(self) -> Profile {
        let ca = |common_name| Profile {
            common_name,
            organization: Some(MANAGER),
            server_auth: false,
            client_auth: false,
            signer: None,
        };
        let leaf = |common_name, organization, server_auth, signer| Profile {
            common_name,
            organization,
            server_auth,
            client_auth: true,
            signer: Some(signer),
        };
        match self {
            Member::Ca => ca("federation-karmada-ca"),
            Member::FrontProxyCa => ca("federation-karmada-front-proxy-ca"),
            Member::ControlPlane => leaf("system:admin", Some(SYSTEM_MASTERS), true, Member::Ca),
            // No group: the API server trusts it for its name alone, and through the
            // front-proxy CA only.
            Member::FrontProxyClient => leaf(FRONT_PROXY_CLIENT, None, false, Member::FrontProxyCa),
            Member::FederationAdmin => {
                leaf(FEDERATION_ADMIN, Some(SYSTEM_MASTERS), false, Member::Ca)
            }
        }
    }

    /// The names it must cover: only the control-plane certificate serves.
    pub fn sans(self, names: &KarmadaNames) -> BTreeSet<San> {
        match self {
            Member::ControlPlane => names.control_plane_sans(),
            _ => BTreeSet::new(),
        }
    }
}

impl Profile {
    pub fn extended_key_usages(&self) -> Vec<ExtendedKeyUsagePurpose> {
        let server = self
            .server_auth
            .then_some(ExtendedKeyUsagePurpose::ServerAuth);
        let client = self
            .client_auth
            .then_some(ExtendedKeyUsagePurpose::ClientAuth);
        server.into_iter().chain(client).collect()
    }
}
