//! The certificate maths of CreateCert, pure: which names the serving certificate must cover,
//! whether a stored CA or serving certificate can stay ([`check_ca`], [`check_leaf`]), issuing
//! new ones ([`issue_ca`], [`issue_leaf`]), and deciding between the two ([`renew`]).
//!
//! Private keys never leave [`KeyedCert`]: its `Debug` hides them and no error quotes them.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use jiff::Timestamp;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::key_format::read_sec1_or_pkcs8;
use super::secrets::{TLS_CERT_KEY, TLS_KEY_KEY};
use crate::api::MANAGER;
use crate::subjobs::Error;

/// Clients pin the CA, so it should change far less often than the serving certificate.
const CA_MIN_VALIDITY_DAYS: i64 = 10 * 365;
/// A CA is replaced once it would not outlive a new serving certificate; this margin keeps that
/// from happening at every renewal of a long-lived serving certificate.
const CA_MARGIN_DAYS: i64 = 365;

const SECONDS_PER_DAY: i64 = 24 * 60 * 60;

/// Why a certificate could not be issued. Never quotes key material, so it can go into status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CertError(String);

impl CertError {
    /// `message` must not quote key material.
    pub(super) fn new(message: String) -> Self {
        CertError(message)
    }
}

impl From<CertError> for Error {
    fn from(e: CertError) -> Self {
        Error::Certificate(e.0)
    }
}

/// A subject alternative name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum San {
    /// Kept in lower case: DNS names compare case-insensitively.
    Dns(String),
    Ip(IpAddr),
}

impl San {
    /// An IP SAN when `name` is an IP address, a DNS SAN otherwise.
    pub fn parse(name: &str) -> San {
        match name.parse::<IpAddr>() {
            Ok(ip) => San::Ip(ip),
            Err(_) => San::Dns(name.to_ascii_lowercase()),
        }
    }

    fn to_rcgen(&self) -> Result<SanType, CertError> {
        Ok(match self {
            San::Ip(ip) => SanType::IpAddress(*ip),
            San::Dns(name) => SanType::DnsName(name.as_str().try_into().map_err(|e| {
                CertError(format!("{name} cannot be a DNS name in a certificate: {e}"))
            })?),
        })
    }
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Dns(name) => f.write_str(name),
            San::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// The host of an endpoint written as `host:port` or `[v6]:port` (a bare host is accepted too).
pub fn endpoint_host(endpoint: &str) -> Option<&str> {
    if endpoint.parse::<IpAddr>().is_ok() {
        return Some(endpoint);
    }
    let host = match endpoint.strip_prefix('[') {
        Some(rest) => rest.split_once(']')?.0,
        None => endpoint.rsplit_once(':').map_or(endpoint, |(host, _)| host),
    };
    (!host.is_empty()).then_some(host)
}

/// The names clients reach the federation API server by: the Service's cluster DNS names, the
/// endpoint host, and `certificate.extraSANs`.
pub fn desired_sans(
    service: &str,
    namespace: &str,
    endpoint_host: &str,
    extra_sans: &[String],
) -> BTreeSet<San> {
    let cluster_names = [
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ];
    cluster_names
        .iter()
        .map(String::as_str)
        .chain([endpoint_host])
        .chain(extra_sans.iter().map(String::as_str))
        .map(San::parse)
        .collect()
}

/// A certificate and its private key, both PEM. `Debug` shows the certificate only.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyedCert {
    pub cert_pem: String,
    key_pem: String,
}

impl KeyedCert {
    pub fn new(cert_pem: String, key_pem: String) -> Self {
        KeyedCert { cert_pem, key_pem }
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }
}

impl fmt::Debug for KeyedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[redacted]")
            .finish()
    }
}

/// What the serving certificate must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertRequest {
    /// Common name of the CA.
    pub ca_name: String,
    /// Common name of the serving certificate.
    pub common_name: String,
    pub sans: BTreeSet<San>,
    pub validity_days: i64,
}

/// The CA lives long enough to sign a serving certificate of `leaf_validity_days` and then some.
pub fn ca_validity_days(leaf_validity_days: i64) -> i64 {
    CA_MIN_VALIDITY_DAYS.max(leaf_validity_days.saturating_add(CA_MARGIN_DAYS))
}

/// Whether a stored certificate can stay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Keep {
        valid_until: Timestamp,
    },
    /// Why it has to be replaced (no key material).
    Replace(String),
}

/// The stored CA stays while it is intact, unexpired, and outlives a serving certificate
/// issued now for `leaf_validity_days`.
pub fn check_ca(ca: &KeyedCert, leaf_validity_days: i64, now: Timestamp) -> Verdict {
    let der = match pem_to_der(&ca.cert_pem) {
        Ok(der) => der,
        Err(why) => return Verdict::Replace(format!("the stored CA certificate {why}")),
    };
    let Ok((_, cert)) = X509Certificate::from_der(&der) else {
        return Verdict::Replace("the stored CA certificate cannot be parsed".to_string());
    };
    if !cert.is_ca() {
        return Verdict::Replace("the stored CA certificate is not a CA".to_string());
    }
    if !key_matches(&ca.key_pem, &cert) {
        return Verdict::Replace(
            "the stored CA key does not belong to its certificate".to_string(),
        );
    }
    let not_after = cert.validity().not_after.timestamp();
    if not_after <= now.as_second() {
        return Verdict::Replace("the CA has expired".to_string());
    }
    let leaf_not_after = leaf_validity_days
        .checked_mul(SECONDS_PER_DAY)
        .and_then(|s| s.checked_add(now.as_second()));
    if leaf_not_after.is_none_or(|leaf| not_after < leaf) {
        return Verdict::Replace(
            "the CA would expire before a serving certificate issued now".to_string(),
        );
    }
    keep_until(not_after)
}

/// The stored serving certificate stays while it is intact, signed by `ca`, covers `sans`, and
/// has more than a third of its validity left (renewing earlier leaves time to retry).
pub fn check_leaf(
    leaf: &KeyedCert,
    ca: &KeyedCert,
    sans: &BTreeSet<San>,
    now: Timestamp,
) -> Verdict {
    let (Ok(leaf_der), Ok(ca_der)) = (pem_to_der(&leaf.cert_pem), pem_to_der(&ca.cert_pem)) else {
        return Verdict::Replace("the serving certificate or the CA is not PEM".to_string());
    };
    let (Ok((_, cert)), Ok((_, ca_cert))) = (
        X509Certificate::from_der(&leaf_der),
        X509Certificate::from_der(&ca_der),
    ) else {
        return Verdict::Replace("the serving certificate or the CA cannot be parsed".to_string());
    };
    if !key_matches(&leaf.key_pem, &cert) {
        return Verdict::Replace(format!("{TLS_KEY_KEY} does not belong to {TLS_CERT_KEY}"));
    }
    if !issued_by(&cert, &ca_cert) {
        return Verdict::Replace("the serving certificate was not issued by the current CA".into());
    }
    let not_after = match renewal_due(&cert, "serving certificate", now) {
        Ok(not_after) => not_after,
        Err(why) => return Verdict::Replace(why),
    };
    let present = match sans_of(&cert) {
        Ok(present) => present,
        Err(_) => {
            return Verdict::Replace(
                "the serving certificate's subject alternative names cannot be parsed".to_string(),
            );
        }
    };
    let missing: Vec<String> = sans.difference(&present).map(San::to_string).collect();
    if !missing.is_empty() {
        return Verdict::Replace(format!(
            "the serving certificate does not cover {}",
            missing.join(", ")
        ));
    }
    keep_until(not_after)
}

/// Why `cert` is to be reissued because `certificate.validityDays` was shortened below its
/// validity; Ok while it is valid for no longer than asked (a certificate capped at its CA's
/// expiry is shorter, never longer).
pub(super) fn validity_problem(
    cert: &X509Certificate<'_>,
    what: &str,
    validity_days: i64,
) -> Result<(), String> {
    let total = cert
        .validity()
        .not_after
        .timestamp()
        .saturating_sub(cert.validity().not_before.timestamp());
    if total > validity_days.saturating_mul(SECONDS_PER_DAY) {
        return Err(format!(
            "the {what} is valid for longer than certificate.validityDays ({validity_days} days)"
        ));
    }
    Ok(())
}

/// [`validity_problem`] of a stored certificate's PEM.
fn longer_than_asked(cert_pem: &str, what: &str, validity_days: i64) -> Option<String> {
    let der = pem_to_der(cert_pem).ok()?;
    let (_, cert) = X509Certificate::from_der(&der).ok()?;
    validity_problem(&cert, what, validity_days).err()
}

/// `cert` names `ca` as its issuer and carries its signature.
pub(super) fn issued_by(cert: &X509Certificate<'_>, ca: &X509Certificate<'_>) -> bool {
    cert.issuer().as_raw() == ca.subject().as_raw()
        && cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// The expiry of `cert` (Unix seconds) while more than a third of its validity is left at
/// `now`, or why it is due for renewal (renewing early leaves time to retry).
pub(super) fn renewal_due(
    cert: &X509Certificate<'_>,
    what: &str,
    now: Timestamp,
) -> Result<i64, String> {
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    let left = not_after.saturating_sub(now.as_second());
    if left <= 0 {
        return Err(format!("the {what} has expired"));
    }
    // Compared as left * 3 > total to stay in whole seconds.
    let total = not_after.saturating_sub(not_before);
    if left.saturating_mul(3) <= total {
        return Err(format!("a third or less of the {what}'s validity is left"));
    }
    Ok(not_after)
}

pub(super) fn keep_until(not_after: i64) -> Verdict {
    match Timestamp::from_second(not_after) {
        Ok(valid_until) => Verdict::Keep { valid_until },
        Err(_) => Verdict::Replace("the certificate's expiry is out of range".to_string()),
    }
}

/// A new self-signed CA (ECDSA P-256) valid from `now` for `validity_days`.
pub fn issue_ca(
    common_name: &str,
    now: Timestamp,
    validity_days: i64,
) -> Result<KeyedCert, CertError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    (params.not_before, params.not_after) = validity(now, validity_days)?;
    let key = KeyPair::generate().map_err(rcgen_error("generate the CA key"))?;
    let cert = params
        .self_signed(&key)
        .map_err(rcgen_error("sign the CA certificate"))?;
    Ok(KeyedCert::new(cert.pem(), key.serialize_pem()))
}

/// A new serving certificate (ECDSA P-256) for `request`, signed by `ca`, valid from `now`.
pub fn issue_leaf(
    ca: &KeyedCert,
    request: &CertRequest,
    now: Timestamp,
) -> Result<KeyedCert, CertError> {
    let key = KeyPair::generate().map_err(rcgen_error("generate the serving key"))?;
    let leaf = LeafSpec {
        what: "serving certificate",
        subject: distinguished_name(&request.common_name),
        sans: &request.sans,
        extended_key_usages: vec![ExtendedKeyUsagePurpose::ServerAuth],
        validity_days: request.validity_days,
    };
    let cert_pem = sign_leaf(ca, &leaf, &key, now)?;
    Ok(KeyedCert::new(cert_pem, key.serialize_pem()))
}

/// What a certificate that is not a CA says about its holder.
pub(super) struct LeafSpec<'a> {
    /// For error messages: "serving certificate".
    pub what: &'a str,
    pub subject: DistinguishedName,
    pub sans: &'a BTreeSet<San>,
    pub extended_key_usages: Vec<ExtendedKeyUsagePurpose>,
    pub validity_days: i64,
}

/// The PEM of a certificate for `key` as `leaf` describes it, signed by `ca`, valid from `now`.
pub(super) fn sign_leaf(
    ca: &KeyedCert,
    leaf: &LeafSpec<'_>,
    key: &KeyPair,
    now: Timestamp,
) -> Result<String, CertError> {
    // The source error is left out: it could quote the stored key.
    let ca_key = read_sec1_or_pkcs8(&ca.key_pem)
        .map_err(|_| CertError("the stored CA key cannot be read".to_string()))?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)
        .map_err(rcgen_error("read the stored CA certificate"))?;

    let mut params = CertificateParams::default();
    params.distinguished_name = leaf.subject.clone();
    params.subject_alt_names = leaf
        .sans
        .iter()
        .map(San::to_rcgen)
        .collect::<Result<_, _>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = leaf.extended_key_usages.clone();
    params.use_authority_key_identifier_extension = true;
    let (not_before, not_after) = validity(now, leaf.validity_days)?;
    params.not_before = not_before;
    // Never past its CA's expiry: a certificate its CA no longer vouches for is useless, and
    // the rotation rules (rotation.rs) rely on no certificate outliving its CA.
    params.not_after = match ca_not_after(&ca.cert_pem) {
        Some(ca_not_after) if ca_not_after < not_after => ca_not_after,
        _ => not_after,
    };
    let cert = params
        .signed_by(key, &issuer)
        .map_err(|e| CertError(format!("cannot sign the {}: {e}", leaf.what)))?;
    Ok(cert.pem())
}

/// The expiry of the CA certificate in `ca_pem`.
fn ca_not_after(ca_pem: &str) -> Option<OffsetDateTime> {
    let der = pem_to_der(ca_pem).ok()?;
    let (_, cert) = X509Certificate::from_der(&der).ok()?;
    OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp()).ok()
}

/// The certificates to store, and what changed.
#[derive(Clone, Debug)]
pub struct Renewal {
    pub ca: KeyedCert,
    pub leaf: KeyedCert,
    /// Expiry of `leaf`.
    pub valid_until: Timestamp,
    /// Why a new CA was generated; None when the stored one stays.
    pub new_ca: Option<String>,
    /// Why a new serving certificate was issued; None when the stored one stays.
    pub new_leaf: Option<String>,
}

/// Keeps what is stored where it is still good, and issues what is missing or no longer good.
/// A new CA always brings a new serving certificate.
pub fn renew(
    stored_ca: Option<KeyedCert>,
    stored_leaf: Option<KeyedCert>,
    request: &CertRequest,
    now: Timestamp,
) -> Result<Renewal, CertError> {
    if request.validity_days < 1 {
        return Err(CertError(
            "certificate.validityDays must be at least 1".to_string(),
        ));
    }
    let kept_ca = match stored_ca {
        None => Err("no CA is stored".to_string()),
        Some(ca) => match check_ca(&ca, request.validity_days, now) {
            Verdict::Keep { .. } => Ok(ca),
            Verdict::Replace(why) => Err(why),
        },
    };
    let (ca, new_ca) = match kept_ca {
        Ok(ca) => (ca, None),
        Err(why) => {
            let validity_days = ca_validity_days(request.validity_days);
            (issue_ca(&request.ca_name, now, validity_days)?, Some(why))
        }
    };
    let kept_leaf = match (stored_leaf, &new_ca) {
        (None, _) => Err("no serving certificate is stored".to_string()),
        (Some(_), Some(_)) => Err("a new CA was generated".to_string()),
        (Some(leaf), None) => match check_leaf(&leaf, &ca, &request.sans, now) {
            Verdict::Keep { valid_until } => {
                match longer_than_asked(
                    &leaf.cert_pem,
                    "serving certificate",
                    request.validity_days,
                ) {
                    Some(why) => Err(why),
                    None => Ok((leaf, valid_until)),
                }
            }
            Verdict::Replace(why) => Err(why),
        },
    };
    let (leaf, valid_until, new_leaf) = match kept_leaf {
        Ok((leaf, valid_until)) => (leaf, valid_until, None),
        Err(why) => {
            let leaf = issue_leaf(&ca, request, now)?;
            let (_, not_after) = validity(now, request.validity_days)?;
            let not_after = ca_not_after(&ca.cert_pem).map_or(not_after, |ca| ca.min(not_after));
            (leaf, from_offset(not_after)?, Some(why))
        }
    };
    Ok(Renewal {
        ca,
        leaf,
        valid_until,
        new_ca,
        new_leaf,
    })
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, MANAGER);
    name.push(DnType::CommonName, common_name);
    name
}

/// `now` (whole seconds, as X.509 keeps them) to `now + days`.
fn validity(now: Timestamp, days: i64) -> Result<(OffsetDateTime, OffsetDateTime), CertError> {
    let out_of_range = || CertError(format!("a validity of {days} days is out of range"));
    let start = now.as_second();
    let end = days
        .checked_mul(SECONDS_PER_DAY)
        .and_then(|s| s.checked_add(start))
        .ok_or_else(out_of_range)?;
    let to_offset = |s| OffsetDateTime::from_unix_timestamp(s).map_err(|_| out_of_range());
    Ok((to_offset(start)?, to_offset(end)?))
}

fn from_offset(time: OffsetDateTime) -> Result<Timestamp, CertError> {
    Timestamp::from_second(time.unix_timestamp())
        .map_err(|e| CertError(format!("certificate expiry out of range: {e}")))
}

fn rcgen_error(action: &'static str) -> impl Fn(rcgen::Error) -> CertError {
    move |e| CertError(format!("cannot {action}: {e}"))
}

/// The DER of the first PEM block. The reason it fails never quotes the input.
pub(super) fn pem_to_der(pem: &str) -> Result<Vec<u8>, &'static str> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map(|(_, pem)| pem.contents)
        .map_err(|_| "is not PEM")
}

/// The private key in `key_pem` (PKCS#8 or SEC1) is the one `cert` was issued for.
fn key_matches(key_pem: &str, cert: &X509Certificate<'_>) -> bool {
    read_sec1_or_pkcs8(key_pem).is_ok_and(|key| key_pair_matches(&key, cert))
}

/// `key` is the key pair `cert` was issued for.
pub(super) fn key_pair_matches(key: &KeyPair, cert: &X509Certificate<'_>) -> bool {
    key.public_key_raw() == cert.public_key().subject_public_key.data.as_ref()
}

pub(super) fn sans_of(
    cert: &X509Certificate<'_>,
) -> Result<BTreeSet<San>, x509_parser::error::X509Error> {
    let Some(extension) = cert.subject_alternative_name()? else {
        return Ok(BTreeSet::new());
    };
    Ok(extension
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(San::Dns(dns.to_ascii_lowercase())),
            GeneralName::IPAddress(bytes) => ip_from_octets(bytes).map(San::Ip),
            _ => None,
        })
        .collect())
}

fn ip_from_octets(octets: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(octets) {
        return Some(IpAddr::from(v4));
    }
    <[u8; 16]>::try_from(octets).ok().map(IpAddr::from)
}

#[cfg(test)]
pub(super) mod tests {
    use jiff::SignedDuration;
    use x509_parser::extensions::ParsedExtension;

    use super::*;
    use crate::subjobs::names;

    pub(in crate::subjobs::cert) fn t0() -> Timestamp {
        "2026-01-15T08:00:00Z".parse().expect("timestamp")
    }

    pub(in crate::subjobs::cert) fn days(n: i64) -> SignedDuration {
        SignedDuration::from_hours(n * 24)
    }

    /// The subject alternative names of a PEM certificate.
    pub(in crate::subjobs::cert) fn sans_of_pem(pem: &str) -> BTreeSet<San> {
        let der = der(pem);
        sans_of(&parse(&der)).expect("SANs")
    }

    fn request(sans: &[&str], validity_days: i64) -> CertRequest {
        CertRequest {
            ca_name: "fed-federation-ca".to_string(),
            common_name: "fed-federation-apiserver".to_string(),
            sans: sans.iter().map(|s| San::parse(s)).collect(),
            validity_days,
        }
    }

    fn default_request() -> CertRequest {
        request(&["fed-federation-apiserver", "203.0.113.7"], 300)
    }

    fn ca_at(now: Timestamp) -> KeyedCert {
        issue_ca("fed-federation-ca", now, ca_validity_days(300)).expect("CA")
    }

    fn der(pem: &str) -> Vec<u8> {
        pem_to_der(pem).expect("PEM")
    }

    fn parse(der: &[u8]) -> X509Certificate<'_> {
        X509Certificate::from_der(der).expect("certificate").1
    }

    fn key_id<'a>(cert: &'a X509Certificate<'_>, authority: bool) -> Option<&'a [u8]> {
        cert.iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(aki) if authority => {
                    aki.key_identifier.as_ref().map(|k| k.0)
                }
                ParsedExtension::SubjectKeyIdentifier(ski) if !authority => Some(ski.0),
                _ => None,
            })
    }

    /// Renews at `now` what `stored` left in the Secrets.
    fn renew_stored(stored: &Renewal, now: Timestamp) -> Renewal {
        let (ca, leaf) = (Some(stored.ca.clone()), Some(stored.leaf.clone()));
        renew(ca, leaf, &default_request(), now).expect("renewal")
    }

    fn is_replace(verdict: &Verdict) -> bool {
        matches!(verdict, Verdict::Replace(_))
    }

    #[test]
    fn endpoint_host_strips_the_port_and_ipv6_brackets() {
        assert_eq!(endpoint_host("203.0.113.7:5443"), Some("203.0.113.7"));
        assert_eq!(
            endpoint_host("api.example.com:31000"),
            Some("api.example.com")
        );
        assert_eq!(endpoint_host("[2001:db8::1]:5443"), Some("2001:db8::1"));
        assert_eq!(endpoint_host("2001:db8::1"), Some("2001:db8::1"));
        assert_eq!(endpoint_host(":5443"), None);
        assert_eq!(endpoint_host("[2001:db8::1"), None);
    }

    #[test]
    fn desired_sans_are_the_service_names_the_endpoint_host_and_the_extra_sans() {
        let extra = ["API.Example.com".to_string(), "2001:db8::1".to_string()];
        let sans = desired_sans("svc", "ns", "198.51.100.2", &extra);
        let expected: BTreeSet<San> = [
            San::Dns("svc".into()),
            San::Dns("svc.ns".into()),
            San::Dns("svc.ns.svc".into()),
            San::Dns("svc.ns.svc.cluster.local".into()),
            San::Ip("198.51.100.2".parse().expect("ip")),
            San::Dns("api.example.com".into()),
            San::Ip("2001:db8::1".parse().expect("ip")),
        ]
        .into();
        assert_eq!(sans, expected);
    }

    #[test]
    fn a_hostname_endpoint_is_a_dns_san() {
        let sans = desired_sans("svc", "ns", "lb.example.com", &[]);
        assert!(sans.contains(&San::Dns("lb.example.com".into())));
        assert!(!sans.iter().any(|s| matches!(s, San::Ip(_))));
    }

    #[test]
    fn issued_leaf_chains_to_the_ca() {
        let ca = ca_at(t0());
        let leaf = issue_leaf(&ca, &default_request(), t0()).expect("leaf");
        let (ca_der, leaf_der) = (der(&ca.cert_pem), der(&leaf.cert_pem));
        let (ca_cert, leaf_cert) = (parse(&ca_der), parse(&leaf_der));

        assert!(ca_cert.is_ca());
        ca_cert
            .verify_signature(None)
            .expect("the CA is self-signed");
        assert!(!leaf_cert.is_ca());
        leaf_cert
            .verify_signature(Some(ca_cert.public_key()))
            .expect("the CA signed the leaf");
        assert_eq!(leaf_cert.issuer().as_raw(), ca_cert.subject().as_raw());
        assert!(key_id(&ca_cert, false).is_some());
        assert_eq!(key_id(&leaf_cert, true), key_id(&ca_cert, false));
    }

    #[test]
    fn issued_leaf_carries_exactly_the_desired_sans() {
        let request = request(
            &[
                "svc",
                "svc.ns.svc.cluster.local",
                "203.0.113.7",
                "2001:db8::1",
                "*.example.com",
            ],
            300,
        );
        let leaf = issue_leaf(&ca_at(t0()), &request, t0()).expect("leaf");
        let leaf_der = der(&leaf.cert_pem);
        assert_eq!(sans_of(&parse(&leaf_der)).expect("SANs"), request.sans);
    }

    #[test]
    fn issued_keys_are_ecdsa_p256() {
        let ca = ca_at(t0());
        let leaf = issue_leaf(&ca, &default_request(), t0()).expect("leaf");
        for pem in [ca.key_pem(), leaf.key_pem()] {
            let key = KeyPair::from_pem(pem).expect("key");
            assert_eq!(key.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
        }
    }

    #[test]
    fn leaf_validity_starts_now_and_lasts_validity_days() {
        let now = t0() + SignedDuration::from_millis(1500);
        let leaf = issue_leaf(&ca_at(t0()), &request(&["svc"], 90), now).expect("leaf");
        let leaf_der = der(&leaf.cert_pem);
        let validity = parse(&leaf_der).validity().clone();
        assert_eq!(validity.not_before.timestamp(), now.as_second());
        assert_eq!(validity.not_after.timestamp(), (now + days(90)).as_second());
    }

    #[test]
    fn ca_validity_is_ten_years_or_the_leaf_validity_plus_a_year() {
        assert_eq!(ca_validity_days(365), 3650);
        assert_eq!(ca_validity_days(10950), 11315);
        let renewal = renew(None, None, &request(&["svc"], 10950), t0()).expect("renewal");
        let ca_der = der(&renewal.ca.cert_pem);
        assert_eq!(
            parse(&ca_der).validity().not_after.timestamp(),
            (t0() + days(11315)).as_second()
        );
    }

    #[test]
    fn a_leaf_with_more_than_a_third_of_its_validity_left_is_kept() {
        let ca = ca_at(t0());
        let request = default_request();
        let leaf = issue_leaf(&ca, &request, t0()).expect("leaf");
        // 300 days: a third is 100 days, so 101 days left is still more than a third.
        let at = t0() + days(199);
        assert_eq!(
            check_leaf(&leaf, &ca, &request.sans, at),
            Verdict::Keep {
                valid_until: t0() + days(300)
            }
        );
    }

    #[test]
    fn a_leaf_with_a_third_or_less_of_its_validity_left_is_reissued() {
        let ca = ca_at(t0());
        let request = default_request();
        let leaf = issue_leaf(&ca, &request, t0()).expect("leaf");
        assert!(is_replace(&check_leaf(
            &leaf,
            &ca,
            &request.sans,
            t0() + days(200)
        )));
        assert!(is_replace(&check_leaf(
            &leaf,
            &ca,
            &request.sans,
            t0() + days(250)
        )));
    }

    #[test]
    fn an_expired_leaf_is_reissued() {
        let ca = ca_at(t0());
        let request = default_request();
        let leaf = issue_leaf(&ca, &request, t0()).expect("leaf");
        let verdict = check_leaf(&leaf, &ca, &request.sans, t0() + days(301));
        assert_eq!(
            verdict,
            Verdict::Replace("the serving certificate has expired".to_string())
        );
    }

    #[test]
    fn a_leaf_missing_a_desired_san_is_reissued() {
        let ca = ca_at(t0());
        let leaf = issue_leaf(&ca, &default_request(), t0()).expect("leaf");
        let mut wanted = default_request().sans;
        wanted.insert(San::parse("198.51.100.9"));
        assert_eq!(
            check_leaf(&leaf, &ca, &wanted, t0()),
            Verdict::Replace("the serving certificate does not cover 198.51.100.9".to_string())
        );
    }

    #[test]
    fn a_leaf_covering_more_than_the_desired_sans_is_kept() {
        let ca = ca_at(t0());
        let leaf = issue_leaf(&ca, &default_request(), t0()).expect("leaf");
        let fewer = request(&["FED-federation-apiserver"], 300).sans;
        assert!(!is_replace(&check_leaf(&leaf, &ca, &fewer, t0())));
    }

    #[test]
    fn a_leaf_issued_by_a_different_ca_is_reissued() {
        // Same subject, different key: only the signature tells them apart.
        let (old_ca, current_ca) = (ca_at(t0()), ca_at(t0()));
        let request = default_request();
        let leaf = issue_leaf(&old_ca, &request, t0()).expect("leaf");
        assert_eq!(
            check_leaf(&leaf, &current_ca, &request.sans, t0()),
            Verdict::Replace(
                "the serving certificate was not issued by the current CA".to_string()
            )
        );
    }

    #[test]
    fn a_leaf_stored_with_another_key_is_reissued() {
        let ca = ca_at(t0());
        let request = default_request();
        let leaf = issue_leaf(&ca, &request, t0()).expect("leaf");
        let other = issue_leaf(&ca, &request, t0()).expect("leaf");
        let mixed = KeyedCert::new(leaf.cert_pem.clone(), other.key_pem().to_string());
        assert!(is_replace(&check_leaf(&mixed, &ca, &request.sans, t0())));
    }

    #[test]
    fn an_unreadable_leaf_is_reissued() {
        let ca = ca_at(t0());
        let garbage = KeyedCert::new("not a certificate".into(), "not a key".into());
        assert!(is_replace(&check_leaf(
            &garbage,
            &ca,
            &default_request().sans,
            t0()
        )));
    }

    #[test]
    fn a_ca_that_outlives_a_new_leaf_is_kept() {
        let ca = ca_at(t0());
        let ca_end = t0() + days(ca_validity_days(300));
        let at = ca_end - days(300);
        assert_eq!(
            check_ca(&ca, 300, at),
            Verdict::Keep {
                valid_until: ca_end
            }
        );
    }

    #[test]
    fn a_ca_that_would_expire_before_a_new_leaf_is_replaced() {
        let ca = ca_at(t0());
        let at = t0() + days(ca_validity_days(300)) - days(299);
        assert!(is_replace(&check_ca(&ca, 300, at)));
        assert!(is_replace(&check_ca(
            &ca,
            300,
            t0() + days(ca_validity_days(300))
        )));
    }

    #[test]
    fn a_ca_stored_with_another_key_is_replaced() {
        let ca = ca_at(t0());
        let other = ca_at(t0());
        let mixed = KeyedCert::new(ca.cert_pem.clone(), other.key_pem().to_string());
        assert!(is_replace(&check_ca(&mixed, 300, t0())));
    }

    #[test]
    fn renew_issues_a_ca_and_a_leaf_when_nothing_is_stored() {
        let renewal = renew(None, None, &default_request(), t0()).expect("renewal");
        assert_eq!(renewal.new_ca.as_deref(), Some("no CA is stored"));
        assert!(renewal.new_leaf.is_some());
        assert_eq!(renewal.valid_until, t0() + days(300));
        assert!(!is_replace(&check_ca(&renewal.ca, 300, t0())));
        assert!(!is_replace(&check_leaf(
            &renewal.leaf,
            &renewal.ca,
            &default_request().sans,
            t0()
        )));
    }

    #[test]
    fn renew_keeps_what_is_still_good() {
        let first = renew(None, None, &default_request(), t0()).expect("renewal");
        let second = renew_stored(&first, t0() + days(150));
        assert_eq!((second.new_ca, second.new_leaf), (None, None));
        assert_eq!(second.ca, first.ca);
        assert_eq!(second.leaf, first.leaf);
        assert_eq!(second.valid_until, first.valid_until);
    }

    #[test]
    fn renew_reissues_the_leaf_from_the_stored_ca() {
        let first = renew(None, None, &default_request(), t0()).expect("renewal");
        let later = t0() + days(250);
        let second = renew_stored(&first, later);
        assert_eq!(second.new_ca, None);
        assert_eq!(second.ca, first.ca);
        assert!(second.new_leaf.is_some());
        assert_eq!(second.valid_until, later + days(300));
    }

    #[test]
    fn a_new_ca_brings_a_new_leaf() {
        let first = renew(None, None, &default_request(), t0()).expect("renewal");
        let late = t0() + days(ca_validity_days(300)) - days(10);
        let still_good_leaf =
            issue_leaf(&first.ca, &default_request(), late - days(1)).expect("leaf");
        let second = renew(
            Some(first.ca.clone()),
            Some(still_good_leaf),
            &default_request(),
            late,
        )
        .expect("renewal");
        assert!(second.new_ca.is_some());
        assert_eq!(second.new_leaf.as_deref(), Some("a new CA was generated"));
        assert!(!is_replace(&check_leaf(
            &second.leaf,
            &second.ca,
            &default_request().sans,
            late
        )));
    }

    #[test]
    fn the_longest_enablement_name_yields_valid_dns_sans() {
        let name = "a".repeat(crate::api::MAX_NAME_LEN);
        let namespace = "n".repeat(63);
        let service = names::service(&name);
        let sans = desired_sans(&service, &namespace, "203.0.113.7", &[]);
        for san in &sans {
            if let San::Dns(dns) = san {
                assert!(dns.len() <= 253, "{dns}");
                for label in dns.split('.') {
                    assert!(!label.is_empty() && label.len() <= 63, "{label}");
                    assert!(
                        label
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                        "{label}"
                    );
                }
            }
        }
        let request = CertRequest {
            ca_name: names::ca_secret(&name),
            common_name: service,
            sans,
            validity_days: 365,
        };
        let renewal = renew(None, None, &request, t0()).expect("renewal");
        let leaf_der = der(&renewal.leaf.cert_pem);
        assert_eq!(sans_of(&parse(&leaf_der)).expect("SANs"), request.sans);
    }

    #[test]
    fn debug_output_and_errors_never_show_a_private_key() {
        let renewal = renew(None, None, &default_request(), t0()).expect("renewal");
        let debug = format!("{renewal:?}");
        assert!(!debug.contains("PRIVATE KEY"));
        let key_body = renewal.leaf.key_pem().lines().nth(1).expect("key line");
        assert!(!debug.contains(key_body));

        let broken_key = renewal.ca.key_pem().replace('A', "*");
        let broken_ca = KeyedCert::new(renewal.ca.cert_pem.clone(), broken_key.clone());
        let error = issue_leaf(&broken_ca, &default_request(), t0())
            .expect_err("a broken CA key cannot sign");
        let message = error.to_string();
        assert!(!message.contains("PRIVATE KEY"));
        assert!(
            !broken_key
                .lines()
                .skip(1)
                .any(|line| message.contains(line))
        );
    }
}
