//! Issuing the certificates of the Karmada set.

use jiff::Timestamp;
use rcgen::{DistinguishedName, DnType, KeyPair};

use super::{KarmadaRequest, KarmadaSet, Member, Profile};
use crate::subjobs::cert::key_format::{self, read_sec1_or_pkcs8, to_sec1_pem};
use crate::subjobs::cert::pki::{self, CertError, KeyedCert, LeafSpec, ca_validity_days};

/// A whole new set, every key new.
pub fn issue_set(
    request: &KarmadaRequest,
    now: Timestamp,
) -> Result<KarmadaSet<KeyedCert>, CertError> {
    check_validity(request)?;
    let ca = issue_ca(Member::Ca, request, now)?;
    let front_proxy_ca = issue_ca(Member::FrontProxyCa, request, now)?;
    let leaf = |member: Member, signer: &KeyedCert| {
        let key = key_format::generate(member.description())?;
        issue_leaf(member, &key, signer, request, now)
    };
    Ok(KarmadaSet {
        control_plane: leaf(Member::ControlPlane, &ca)?,
        federation_admin: leaf(Member::FederationAdmin, &ca)?,
        front_proxy_client: leaf(Member::FrontProxyClient, &front_proxy_ca)?,
        ca,
        front_proxy_ca,
    })
}

pub(super) fn check_validity(request: &KarmadaRequest) -> Result<(), CertError> {
    if request.validity_days < 1 {
        return Err(CertError::new(
            "certificate.validityDays must be at least 1".to_string(),
        ));
    }
    Ok(())
}

/// A new self-signed CA with a new key, outliving a certificate issued now.
pub(super) fn issue_ca(
    member: Member,
    request: &KarmadaRequest,
    now: Timestamp,
) -> Result<KeyedCert, CertError> {
    let validity_days = ca_validity_days(request.validity_days);
    let ca = pki::issue_ca(member.profile().common_name, now, validity_days)?;
    // rcgen wrote the key as PKCS#8; the chart's kube-controller-manager wants SEC1 or RSA.
    let key = read_sec1_or_pkcs8(ca.key_pem()).map_err(|problem| {
        CertError::new(format!("the new {} key {problem}", member.description()))
    })?;
    Ok(KeyedCert::new(ca.cert_pem, to_sec1_pem(&key)?))
}

/// A certificate of `member` for `key`, signed by `signer`, valid from `now`.
pub(super) fn issue_leaf(
    member: Member,
    key: &KeyPair,
    signer: &KeyedCert,
    request: &KarmadaRequest,
    now: Timestamp,
) -> Result<KeyedCert, CertError> {
    let profile = member.profile();
    let sans = member.sans(&request.names);
    let leaf = LeafSpec {
        what: member.description(),
        subject: subject(&profile),
        sans: &sans,
        extended_key_usages: profile.extended_key_usages(),
        validity_days: request.validity_days,
    };
    let cert_pem = pki::sign_leaf(signer, &leaf, key, now)?;
    Ok(KeyedCert::new(cert_pem, to_sec1_pem(key)?))
}

fn subject(profile: &Profile) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    if let Some(organization) = profile.organization {
        name.push(DnType::OrganizationName, organization);
    }
    name.push(DnType::CommonName, profile.common_name);
    name
}
