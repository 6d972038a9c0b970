//! CA rotation: what a new CA changes for those who trust the old one.
//!
//! A CA is replaced before it expires (when it would not outlive a certificate issued now), or
//! when it is broken. Every certificate it signed is then issued again by the new one, at once;
//! but a pod not yet restarted may still serve one signed by the old CA, and a user may still
//! hold a kubeconfig with the old CA. So the trust bundle the controller publishes (`ca.crt`
//! of its Secrets, the kubeconfig's `certificate-authority-data`) carries the new CA first and
//! then the old one, for as long as a certificate the old one signed can be valid: no
//! certificate outlives its CA (leaves are capped at their CA's expiry), so that is until the
//! old CA expires. A broken CA (unreadable, not a CA, its key lost) is never kept.
//! What signs (Karmada's `caCrt`) is the current CA alone.

use jiff::Timestamp;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::pki::{KeyedCert, Verdict, check_ca};

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// The PEM text of each certificate in `bundle`, in order, each ending with a newline.
pub fn split_bundle(bundle: &str) -> Vec<String> {
    let mut certificates = Vec::new();
    let mut rest = bundle;
    while let Some(start) = rest.find(BEGIN) {
        let Some(length) = rest[start..].find(END) else {
            break;
        };
        let end = start + length + END.len();
        certificates.push(format!("{}\n", &rest[start..end]));
        rest = &rest[end..];
    }
    certificates
}

/// A stored CA whose `ca.crt` may be a bundle: the current CA (the first certificate, with the
/// stored key) and the older ones published after it.
pub fn stored_ca(cert_bundle: &str, key_pem: &str) -> Option<(KeyedCert, Vec<String>)> {
    let mut certificates = split_bundle(cert_bundle).into_iter();
    let current = certificates.next()?;
    Some((
        KeyedCert::new(current, key_pem.to_string()),
        certificates.collect(),
    ))
}

/// The older CAs to publish after `current`: `replaced` (the CA a new one just replaced) while
/// it is sound, and those published before, each while it is a CA that has not expired; never
/// `current` itself, never twice.
pub fn previous_cas(
    current: &KeyedCert,
    replaced: Option<&KeyedCert>,
    published_before: &[String],
    now: Timestamp,
) -> Vec<String> {
    // Sound: a CA whose key is its own and that has not expired (replaced for expiring soon).
    let replaced = replaced
        .filter(|ca| matches!(check_ca(ca, 0, now), Verdict::Keep { .. }))
        .map(|ca| ca.cert_pem.clone());
    let mut kept: Vec<String> = Vec::new();
    for pem in replaced.into_iter().chain(published_before.iter().cloned()) {
        if pem != current.cert_pem && !kept.contains(&pem) && unexpired_ca(&pem, now) {
            kept.push(pem);
        }
    }
    kept
}

/// The bundle to publish after a renewal: `current`, then `replaced` (the CA it replaced just
/// now, if it did) and those published before, as [`previous_cas`] keeps them.
pub fn trusted(
    current: &KeyedCert,
    replaced: Option<&KeyedCert>,
    published_before: &[String],
    now: Timestamp,
) -> String {
    bundle(
        current,
        &previous_cas(current, replaced, published_before, now),
    )
}

/// `current` first, then `previous`: the bundle clients trust.
pub fn bundle(current: &KeyedCert, previous: &[String]) -> String {
    std::iter::once(current.cert_pem.as_str())
        .chain(previous.iter().map(String::as_str))
        .collect()
}

fn unexpired_ca(pem: &str, now: Timestamp) -> bool {
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(pem.as_bytes()) else {
        return false;
    };
    X509Certificate::from_der(&pem.contents).is_ok_and(|(_, cert)| {
        cert.is_ca() && cert.validity().not_after.timestamp() > now.as_second()
    })
}

#[cfg(test)]
mod tests {
    use x509_parser::certificate::X509Certificate;

    use super::*;
    use crate::subjobs::cert::pki::tests::{days, t0};
    use crate::subjobs::cert::pki::{CertRequest, San, issue_ca, issue_leaf, renew};

    fn not_after(pem: &str) -> i64 {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("PEM");
        let (_, cert) = X509Certificate::from_der(&pem.contents).expect("certificate");
        cert.validity().not_after.timestamp()
    }

    fn request(validity_days: i64) -> CertRequest {
        CertRequest {
            ca_name: "fed-federation-ca".into(),
            common_name: "fed-federation-apiserver".into(),
            sans: [San::parse("203.0.113.7")].into(),
            validity_days,
        }
    }

    #[test]
    fn a_leaf_never_outlives_its_ca() {
        let ca = issue_ca("short-lived", t0(), 10).expect("CA");
        let leaf = issue_leaf(&ca, &request(300), t0()).expect("leaf");
        assert_eq!(not_after(&leaf.cert_pem), not_after(&ca.cert_pem));
    }

    #[test]
    fn a_bundle_splits_back_into_its_certificates_in_order() {
        let (a, b) = (
            issue_ca("a", t0(), 10).expect("CA"),
            issue_ca("b", t0(), 10).expect("CA"),
        );
        let bundle = bundle(&a, std::slice::from_ref(&b.cert_pem));
        assert_eq!(
            split_bundle(&bundle),
            [a.cert_pem.clone(), b.cert_pem.clone()]
        );
        let (current, older) = stored_ca(&bundle, a.key_pem()).expect("stored");
        assert_eq!(
            current, a,
            "the first is the current CA, with the stored key"
        );
        assert_eq!(older, [b.cert_pem]);
    }

    #[test]
    fn a_replaced_sound_ca_is_published_after_the_new_one_until_it_expires() {
        let first = renew(None, None, &request(300), t0()).expect("first");
        // The CA no longer outlives a certificate issued now: a new one, every leaf reissued.
        let late = t0() + days(3650 - 200);
        let second = renew(
            Some(first.ca.clone()),
            Some(first.leaf.clone()),
            &request(300),
            late,
        )
        .expect("second");
        assert!(second.new_ca.is_some() && second.new_leaf.is_some());
        let previous = previous_cas(&second.ca, Some(&first.ca), &[], late);
        assert_eq!(previous, std::slice::from_ref(&first.ca.cert_pem));
        assert_eq!(
            split_bundle(&bundle(&second.ca, &previous)),
            [second.ca.cert_pem.clone(), first.ca.cert_pem.clone()],
            "new first"
        );
        // Still published on the next round, and gone once it has expired.
        assert_eq!(
            previous_cas(&second.ca, None, &previous, late + days(100)),
            previous
        );
        assert!(previous_cas(&second.ca, None, &previous, t0() + days(3651)).is_empty());
    }

    #[test]
    fn a_broken_ca_is_never_published_again() {
        let first = renew(None, None, &request(300), t0()).expect("first");
        let other = issue_ca("other", t0(), 3650).expect("CA");
        let broken = KeyedCert::new(first.ca.cert_pem.clone(), other.key_pem().to_string());
        let second = renew(Some(broken.clone()), None, &request(300), t0()).expect("second");
        assert!(second.new_ca.is_some());
        assert!(previous_cas(&second.ca, Some(&broken), &[], t0()).is_empty());
    }

    #[test]
    fn a_shorter_validity_reissues_the_leaf_from_the_same_ca() {
        let first = renew(None, None, &request(300), t0()).expect("first");
        let second = renew(
            Some(first.ca.clone()),
            Some(first.leaf.clone()),
            &request(100),
            t0() + days(1),
        )
        .expect("second");
        assert_eq!(second.new_ca, None);
        let why = second.new_leaf.expect("reissued");
        assert!(
            why.contains("longer than certificate.validityDays"),
            "{why}"
        );
        assert_eq!(
            not_after(&second.leaf.cert_pem) - (t0() + days(1)).as_second(),
            100 * 86_400
        );
        let third = renew(
            Some(second.ca.clone()),
            Some(second.leaf.clone()),
            &request(100),
            t0() + days(2),
        )
        .expect("third");
        assert_eq!(third.new_leaf, None, "kept once it is as asked");
    }
}
