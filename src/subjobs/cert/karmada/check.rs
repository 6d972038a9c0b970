//! Whether the stored certificates of the Karmada set can stay, and what is wrong with them.

use jiff::Timestamp;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::x509::AttributeTypeAndValue;

use super::{KarmadaRequest, KarmadaSet, Member};
use crate::subjobs::cert::key_format::read_sec1;
use crate::subjobs::cert::pki::{
    self, KeyedCert, San, Verdict, issued_by, keep_until, key_pair_matches, pem_to_der,
    renewal_due, sans_of, validity_problem,
};

/// Each stored certificate checked against `request` at `now`; a missing one is to be replaced.
/// Certificates are checked against the stored CA that signs them, not against a CA that
/// renewal may yet replace.
pub fn check_set(
    stored: &KarmadaSet<Option<KeyedCert>>,
    request: &KarmadaRequest,
    now: Timestamp,
) -> KarmadaSet<Verdict> {
    KarmadaSet::from_fn(|member| match stored.get(member) {
        None => Verdict::Replace(format!("no {} is stored", member.description())),
        Some(cert) => {
            let signer = member.profile().signer.map(|signer| stored.get(signer));
            match signer {
                None => check_member(member, cert, None, request, now),
                Some(None) => Verdict::Replace(format!(
                    "the {} has no stored CA to check it against",
                    member.description()
                )),
                Some(Some(signer)) => check_member(member, cert, Some(signer), request, now),
            }
        }
    })
}

/// Every reason a certificate of the set is to be replaced, in the order of [`Member::ALL`].
pub fn problems(verdicts: &KarmadaSet<Verdict>) -> Vec<String> {
    Member::ALL
        .iter()
        .filter_map(|member| match verdicts.get(*member) {
            Verdict::Keep { .. } => None,
            Verdict::Replace(why) => Some(why.clone()),
        })
        .collect()
}

/// Whether the stored `cert` of `member` can stay: its key is a SEC1 P-256 key that belongs to
/// it; its subject and extended key usages are the member's; a CA outlives a certificate issued
/// now; any other certificate was signed by `signer`, covers the names `request` asks of it and
/// has more than a third of its validity left.
pub fn check_member(
    member: Member,
    cert: &KeyedCert,
    signer: Option<&KeyedCert>,
    request: &KarmadaRequest,
    now: Timestamp,
) -> Verdict {
    let outcome = match (member.profile().signer, signer) {
        (None, _) => ca_problem(member, cert, request, now),
        (Some(_), Some(signer)) => leaf_problem(member, cert, signer, request, now),
        (Some(_), None) => Err(format!(
            "the {} has no CA to check it against",
            member.description()
        )),
    };
    match outcome {
        Ok(not_after) => keep_until(not_after),
        Err(why) => Verdict::Replace(why),
    }
}

/// The CA's expiry, or why it is to be replaced.
fn ca_problem(
    member: Member,
    ca: &KeyedCert,
    request: &KarmadaRequest,
    now: Timestamp,
) -> Result<i64, String> {
    let what = member.description();
    let der = pem_to_der(&ca.cert_pem).map_err(|why| format!("the {what} {why}"))?;
    let cert = parse(&der, what)?;
    key_problem(what, ca.key_pem(), &cert)?;
    subject_problem(member, &cert)?;
    match pki::check_ca(ca, request.validity_days, now) {
        Verdict::Keep { .. } => Ok(cert.validity().not_after.timestamp()),
        Verdict::Replace(why) => Err(format!("{what}: {why}")),
    }
}

/// The certificate's expiry, or why it is to be replaced.
fn leaf_problem(
    member: Member,
    leaf: &KeyedCert,
    signer: &KeyedCert,
    request: &KarmadaRequest,
    now: Timestamp,
) -> Result<i64, String> {
    let what = member.description();
    let leaf_der = pem_to_der(&leaf.cert_pem).map_err(|why| format!("the {what} {why}"))?;
    let signer_der =
        pem_to_der(&signer.cert_pem).map_err(|why| format!("the CA of the {what} {why}"))?;
    let cert = parse(&leaf_der, what)?;
    let ca = parse(&signer_der, "CA")?;
    key_problem(what, leaf.key_pem(), &cert)?;
    if !issued_by(&cert, &ca) {
        return Err(format!("the {what} was not issued by the current CA"));
    }
    subject_problem(member, &cert)?;
    usage_problem(member, &cert)?;
    let present = sans_of(&cert).map_err(|_| format!("the {what}'s names cannot be parsed"))?;
    let missing: Vec<String> = member
        .sans(&request.names)
        .difference(&present)
        .map(San::to_string)
        .collect();
    if !missing.is_empty() {
        return Err(format!("the {what} does not cover {}", missing.join(", ")));
    }
    validity_problem(&cert, what, request.validity_days)?;
    renewal_due(&cert, what, now)
}

fn parse<'a>(der: &'a [u8], what: &str) -> Result<X509Certificate<'a>, String> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|_| format!("the {what} cannot be parsed"))
}

/// The key is in the format kube-apiserver reads, and belongs to `cert`.
fn key_problem(what: &str, key_pem: &str, cert: &X509Certificate<'_>) -> Result<(), String> {
    let key = read_sec1(key_pem).map_err(|problem| format!("the {what} key {problem}"))?;
    if !key_pair_matches(&key, cert) {
        return Err(format!("the {what} key does not belong to its certificate"));
    }
    Ok(())
}

/// The subject is exactly the member's common name and organization.
fn subject_problem(member: Member, cert: &X509Certificate<'_>) -> Result<(), String> {
    let profile = member.profile();
    let subject = cert.subject();
    let common_names = texts(subject.iter_common_name());
    let organizations = texts(subject.iter_organization());
    let expected_organizations: Vec<&str> = profile.organization.into_iter().collect();
    match (common_names, organizations) {
        (Some(cn), Some(o)) if cn == [profile.common_name] && o == expected_organizations => Ok(()),
        _ => Err(format!(
            "the {} is not for CN={}, O={} alone",
            member.description(),
            profile.common_name,
            profile.organization.unwrap_or("(none)")
        )),
    }
}

/// The attributes as text; None when one is not.
fn texts<'a>(
    attributes: impl Iterator<Item = &'a AttributeTypeAndValue<'a>>,
) -> Option<Vec<&'a str>> {
    attributes
        .map(|attribute| attribute.as_str().ok())
        .collect()
}

/// Not a CA, and exactly the member's extended key usages among serverAuth and clientAuth.
fn usage_problem(member: Member, cert: &X509Certificate<'_>) -> Result<(), String> {
    let profile = member.profile();
    let what = member.description();
    if cert.is_ca() {
        return Err(format!("the {what} is a CA"));
    }
    let usages = cert
        .extended_key_usage()
        .map_err(|_| format!("the {what}'s extended key usages cannot be parsed"))?;
    let (server, client) = usages.map_or((false, false), |ext| {
        (ext.value.server_auth, ext.value.client_auth)
    });
    if (server, client) != (profile.server_auth, profile.client_auth) {
        let wanted: Vec<String> = profile
            .extended_key_usages()
            .iter()
            .map(|usage| format!("{usage:?}"))
            .collect();
        return Err(format!(
            "the {what}'s extended key usages are not {}",
            wanted.join(" and ")
        ));
    }
    Ok(())
}
