//! The two Secrets CreateCert keeps its certificates in: building them, and reading the
//! certificates back out of them.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::pki::KeyedCert;
use crate::api::SubJobType;
use crate::subjobs::{Context, Error, Result, names, ownership};

/// Keys of the CA Secret (type `Opaque`).
pub const CA_CERT_KEY: &str = "ca.crt";
pub const CA_KEY_KEY: &str = "ca.key";
/// Keys of the serving certificate Secret (type `kubernetes.io/tls`, plus `ca.crt`).
pub const TLS_CERT_KEY: &str = "tls.crt";
pub const TLS_KEY_KEY: &str = "tls.key";

const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";
const OPAQUE_SECRET_TYPE: &str = "Opaque";

/// A certificate and key stored under `cert_key` and `key_key` of `secret`, when both are there.
pub(crate) fn stored(secret: Option<&Secret>, cert_key: &str, key_key: &str) -> Option<KeyedCert> {
    let data = secret?.data.as_ref()?;
    let text = |key: &str| {
        data.get(key)
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
    };
    Some(KeyedCert::new(text(cert_key)?, text(key_key)?))
}

/// The first of `secrets` that is not labelled for this enablement, as a `NameConflict` message.
pub(crate) fn conflict<'a>(
    secrets: impl IntoIterator<Item = &'a Secret>,
    ctx: &Context<'_>,
) -> Option<String> {
    let foreign = secrets
        .into_iter()
        .find(|secret| !ownership::is_ours(&secret.metadata, ctx))?;
    Some(format!(
        "Secret {}/{} exists and is not labelled for this enablement",
        ctx.control_plane_namespace(),
        foreign.metadata.name.as_deref().unwrap_or_default()
    ))
}

/// The current CA of a CA Secret (the first certificate of `ca.crt`, with `ca.key`), and the
/// CAs it replaced that are still published after it ([`super::rotation`]).
pub(crate) fn stored_ca(secret: Option<&Secret>) -> Option<(KeyedCert, Vec<String>)> {
    let stored = stored(secret, CA_CERT_KEY, CA_KEY_KEY)?;
    super::rotation::stored_ca(&stored.cert_pem, stored.key_pem())
}

/// Secret data of text entries (PEM, kubeconfig).
pub(crate) fn pem_data<const N: usize>(entries: [(&str, &str); N]) -> BTreeMap<String, ByteString> {
    entries
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect()
}

/// The CA Secret holding `ca`, its `ca.crt` the bundle `trusted` (`ca` first, then the CAs it
/// replaced while they are trusted: [`super::rotation`]).
pub fn desired_ca_secret(ctx: &Context<'_>, ca: &KeyedCert, trusted: &str) -> Secret {
    Secret {
        metadata: ownership::metadata(
            ctx,
            SubJobType::CreateCert,
            names::ca_secret(ctx.name),
            Some(ctx.control_plane_namespace()),
        ),
        type_: Some(OPAQUE_SECRET_TYPE.to_string()),
        data: Some(pem_data([
            (CA_CERT_KEY, trusted),
            (CA_KEY_KEY, ca.key_pem()),
        ])),
        ..Secret::default()
    }
}

/// The `kubernetes.io/tls` Secret holding the serving certificate and the trusted CAs.
pub fn desired_cert_secret(ctx: &Context<'_>, leaf: &KeyedCert, trusted: &str) -> Secret {
    let mut data = pem_data([
        (TLS_CERT_KEY, &leaf.cert_pem),
        (TLS_KEY_KEY, leaf.key_pem()),
    ]);
    data.insert(
        CA_CERT_KEY.to_string(),
        ByteString(trusted.as_bytes().to_vec()),
    );
    Secret {
        metadata: ownership::metadata(
            ctx,
            SubJobType::CreateCert,
            names::cert_secret(ctx.name),
            Some(ctx.control_plane_namespace()),
        ),
        type_: Some(TLS_SECRET_TYPE.to_string()),
        data: Some(data),
        ..Secret::default()
    }
}
pub(crate) async fn get_secret(
    api: &Api<Secret>,
    namespace: &str,
    name: String,
) -> Result<Option<Secret>> {
    api.get_opt(&name)
        .await
        .map_err(|source| Error::api::<Secret>("get", namespace, name, source))
}
