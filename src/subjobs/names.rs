//! Deterministic names of everything the executors create.
//!
//! The CRD limits `metadata.name` to 40 characters, so every name here stays within the
//! 63-character limit of DNS labels and label values.

/// The Service of the federation API server.
pub fn service(name: &str) -> String {
    format!("{name}-federation-apiserver")
}

/// The Secret that keeps the CA certificate and key.
pub fn ca_secret(name: &str) -> String {
    format!("{name}-federation-ca")
}

/// The `kubernetes.io/tls` Secret with the serving certificate.
pub fn cert_secret(name: &str) -> String {
    format!("{name}-federation-certs")
}

/// The Secret with the front-proxy CA and client certificate (Karmada profile).
pub fn front_proxy_secret(name: &str) -> String {
    format!("{name}-federation-front-proxy")
}

/// The Secret with the kubeconfig handed to the user (Karmada profile).
pub fn kubeconfig_secret(name: &str) -> String {
    format!("{name}-federation-kubeconfig")
}

/// The ServiceAccount (and RoleBinding) the installer Jobs run under.
pub fn installer(name: &str) -> String {
    format!("{name}-federation-installer")
}

/// The ClusterRoleBinding of a cluster-scoped chart. Cluster-wide, so it names the namespace;
/// dots keep `ns.name` pairs apart (neither may contain one).
pub fn installer_cluster_binding(namespace: &str, name: &str) -> String {
    format!("federation-installer.{namespace}.{name}")
}

/// The Secret with the Helm values.
pub fn values_secret(name: &str) -> String {
    format!("{name}-federation-values")
}

/// The Job of one install attempt.
pub fn install_job(name: &str, job_uid: &str, attempt: i32) -> String {
    format!("{name}-install-{}-{attempt}", short_uid(job_uid))
}

/// The Job of a helm upgrade after Success, for the values of hash `values_hash` (Karmada).
pub fn upgrade_job(name: &str, values_hash: &str) -> String {
    let hash: String = values_hash.chars().take(8).collect();
    format!("{name}-upgrade-{hash}")
}

/// The Job of one uninstall attempt.
pub fn uninstall_job(name: &str, teardown_uid: &str, attempt: i32) -> String {
    format!(
        "{}-{}-{attempt}",
        uninstall_jobs(name),
        short_uid(teardown_uid)
    )
}

/// What every uninstall Job's name starts with.
pub fn uninstall_jobs(name: &str) -> String {
    format!("{name}-uninst")
}

/// Field manager of the node labels one enablement owns, so enablements never remove each
/// other's labels.
pub fn node_field_manager(uid: &str) -> String {
    format!("federation-controller-{uid}")
}

/// The first eight alphanumeric characters of a uid.
fn short_uid(uid: &str) -> String {
    uid.chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect::<String>()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_dns_label(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
    }

    const LONGEST: &str = "a234567890123456789012345678901234567890";
    const UID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

    #[test]
    fn derived_names_are_dns_labels_for_the_longest_allowed_name() {
        assert_eq!(LONGEST.len(), crate::api::MAX_NAME_LEN);
        for name in [
            service(LONGEST),
            ca_secret(LONGEST),
            cert_secret(LONGEST),
            installer(LONGEST),
            values_secret(LONGEST),
            install_job(LONGEST, UID, 21),
            uninstall_job(LONGEST, UID, 999_999),
        ] {
            assert!(is_dns_label(&name), "{name} ({} chars)", name.len());
        }
    }

    #[test]
    fn cluster_binding_name_is_a_valid_object_name_and_unambiguous() {
        let ns = "n".repeat(63);
        let name = installer_cluster_binding(&ns, LONGEST);
        assert!(name.len() <= 253);
        assert_ne!(
            installer_cluster_binding("a-b", "c"),
            installer_cluster_binding("a", "b-c")
        );
    }

    #[test]
    fn node_field_manager_fits_the_field_manager_limit() {
        assert!(node_field_manager(UID).len() <= 128);
    }

    #[test]
    fn job_names_differ_per_run_and_attempt() {
        assert_ne!(install_job("a", UID, 1), install_job("a", UID, 2));
        assert_ne!(
            install_job("a", UID, 1),
            install_job("a", "1f8fad5b-d9cb-469f-a165-70867728950e", 1)
        );
    }
}
