//! The kubeconfig the federation hands out, as a YAML document (pure; not wired into the
//! executor yet): one cluster, one user with a client certificate, one context, and that
//! context current.

use std::fmt;

use k8s_openapi::ByteString;
use serde::Serialize;

use super::pki::{CertError, KeyedCert};

/// A kubeconfig's text. It holds a private key: `Debug` shows none of it.
#[derive(Clone, PartialEq, Eq)]
pub struct KubeconfigDocument(String);

impl KubeconfigDocument {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for KubeconfigDocument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KubeconfigDocument([redacted])")
    }
}

/// What goes into the kubeconfig.
#[derive(Clone, Debug)]
pub struct KubeconfigInput<'a> {
    /// The name of the cluster entry; the context is `<user>@<cluster>`.
    pub cluster: &'a str,
    /// The name of the user entry.
    pub user: &'a str,
    /// The API server's URL, such as [`server_url`] gives.
    pub server: &'a str,
    /// The CA that signed the API server's certificate.
    pub ca_pem: &'a str,
    /// The client certificate and key of `user`.
    pub client: &'a KeyedCert,
}

/// The URL of an API server reached at `endpoint` (`host:port`, an IPv6 host in brackets).
pub fn server_url(endpoint: &str) -> String {
    format!("https://{endpoint}")
}

/// The kubeconfig's YAML, every `*-data` field base64 as kubectl expects.
pub fn kubeconfig(input: &KubeconfigInput<'_>) -> Result<KubeconfigDocument, CertError> {
    let context = format!("{}@{}", input.user, input.cluster);
    let config = Config {
        api_version: "v1",
        kind: "Config",
        clusters: vec![NamedCluster {
            name: input.cluster,
            cluster: Cluster {
                server: input.server,
                certificate_authority_data: bytes(input.ca_pem),
            },
        }],
        users: vec![NamedUser {
            name: input.user,
            user: User {
                client_certificate_data: bytes(&input.client.cert_pem),
                client_key_data: bytes(input.client.key_pem()),
            },
        }],
        contexts: vec![NamedContext {
            name: &context,
            context: Context {
                cluster: input.cluster,
                user: input.user,
            },
        }],
        current_context: &context,
    };
    // The source error is left out: it could quote what was being written.
    serde_yaml::to_string(&config)
        .map(KubeconfigDocument)
        .map_err(|_| CertError::new("cannot write the kubeconfig".to_string()))
}

fn bytes(text: &str) -> ByteString {
    ByteString(text.as_bytes().to_vec())
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Config<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    kind: &'a str,
    clusters: Vec<NamedCluster<'a>>,
    users: Vec<NamedUser<'a>>,
    contexts: Vec<NamedContext<'a>>,
    current_context: &'a str,
}

#[derive(Serialize)]
struct NamedCluster<'a> {
    name: &'a str,
    cluster: Cluster<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Cluster<'a> {
    server: &'a str,
    certificate_authority_data: ByteString,
}

#[derive(Serialize)]
struct NamedUser<'a> {
    name: &'a str,
    user: User,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct User {
    client_certificate_data: ByteString,
    client_key_data: ByteString,
}

#[derive(Serialize)]
struct NamedContext<'a> {
    name: &'a str,
    context: Context<'a>,
}

#[derive(Serialize)]
struct Context<'a> {
    cluster: &'a str,
    user: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n";
    const CERT_PEM: &str = "-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----\n";
    const KEY_PEM: &str = "-----BEGIN EC PRIVATE KEY-----\nS0VZ\n-----END EC PRIVATE KEY-----\n";

    fn client() -> KeyedCert {
        KeyedCert::new(CERT_PEM.to_string(), KEY_PEM.to_string())
    }

    fn document(client: &KeyedCert) -> KubeconfigDocument {
        kubeconfig(&KubeconfigInput {
            cluster: "karmada",
            user: "federation-admin",
            server: &server_url("[2001:db8::1]:5443"),
            ca_pem: CA_PEM,
            client,
        })
        .expect("kubeconfig")
    }

    fn parsed(document: &KubeconfigDocument) -> serde_yaml::Value {
        serde_yaml::from_str(document.as_str()).expect("YAML")
    }

    /// The bytes of a base64 field, decoded as Kubernetes decodes `[]byte`.
    fn data(value: &serde_yaml::Value) -> String {
        let bytes: ByteString = serde_yaml::from_value(value.clone()).expect("base64");
        String::from_utf8(bytes.0).expect("text")
    }

    #[test]
    fn the_server_url_is_https_at_the_endpoint() {
        assert_eq!(server_url("203.0.113.7:5443"), "https://203.0.113.7:5443");
        assert_eq!(
            server_url("[2001:db8::1]:5443"),
            "https://[2001:db8::1]:5443"
        );
    }

    #[test]
    fn the_kubeconfig_has_one_cluster_one_user_and_their_context_current() {
        let config = parsed(&document(&client()));
        assert_eq!(config["apiVersion"], "v1");
        assert_eq!(config["kind"], "Config");
        assert_eq!(config["clusters"].as_sequence().map(Vec::len), Some(1));
        assert_eq!(config["users"].as_sequence().map(Vec::len), Some(1));
        assert_eq!(config["contexts"].as_sequence().map(Vec::len), Some(1));

        let cluster = &config["clusters"][0];
        assert_eq!(cluster["name"], "karmada");
        assert_eq!(cluster["cluster"]["server"], "https://[2001:db8::1]:5443");
        assert_eq!(
            data(&cluster["cluster"]["certificate-authority-data"]),
            CA_PEM
        );

        let user = &config["users"][0];
        assert_eq!(user["name"], "federation-admin");
        assert_eq!(data(&user["user"]["client-certificate-data"]), CERT_PEM);
        assert_eq!(data(&user["user"]["client-key-data"]), KEY_PEM);

        let context = &config["contexts"][0];
        assert_eq!(context["name"], "federation-admin@karmada");
        assert_eq!(context["context"]["cluster"], "karmada");
        assert_eq!(context["context"]["user"], "federation-admin");
        assert_eq!(config["current-context"], "federation-admin@karmada");
    }

    #[test]
    fn data_fields_are_standard_base64_and_nothing_is_written_in_clear() {
        let text = document(&client()).into_string();
        // KEY_PEM as `base64 -w0` writes it.
        assert!(text.contains("LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0tClMwVloKLS0tLS1FTkQgRUMgUFJJVkFURSBLRVktLS0tLQo="));
        assert!(!text.contains("PRIVATE KEY"));
        assert!(!text.contains("BEGIN CERTIFICATE"));
    }

    #[test]
    fn a_kubeconfig_from_the_karmada_set_holds_the_ca_and_the_admin_certificate() {
        let request = crate::testing::karmada_request("fed", "fed-cp", "203.0.113.7");
        let now = "2026-01-15T08:00:00Z".parse().expect("timestamp");
        let set = crate::subjobs::cert::karmada::issue_set(&request, now).expect("set");
        let document = kubeconfig(&KubeconfigInput {
            cluster: "karmada",
            user: "federation-admin",
            server: &server_url("203.0.113.7:5443"),
            ca_pem: &set.ca.cert_pem,
            client: &set.federation_admin,
        })
        .expect("kubeconfig");
        let config = parsed(&document);
        let cluster = &config["clusters"][0]["cluster"];
        assert_eq!(
            data(&cluster["certificate-authority-data"]),
            set.ca.cert_pem
        );
        let user = &config["users"][0]["user"];
        let client = &set.federation_admin;
        assert_eq!(data(&user["client-certificate-data"]), client.cert_pem);
        assert_eq!(data(&user["client-key-data"]), client.key_pem());
        assert!(data(&user["client-key-data"]).starts_with("-----BEGIN EC PRIVATE KEY-----"));
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let document = document(&client());
        let debug = format!("{document:?}");
        assert!(!debug.contains("S0VZ"));
        assert_eq!(debug, "KubeconfigDocument([redacted])");
    }
}
