//! Renewing the Karmada set: keep what is still good, issue what is not.

use jiff::Timestamp;
use rcgen::KeyPair;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::check::check_member;
use super::issue::{check_validity, issue_ca, issue_leaf};
use super::{KarmadaRequest, KarmadaSet, Member};
use crate::subjobs::cert::key_format::{self, read_sec1_or_pkcs8};
use crate::subjobs::cert::pki::{CertError, KeyedCert, Verdict, pem_to_der};

/// The set to store, and what changed.
#[derive(Clone, Debug)]
pub struct KarmadaRenewal {
    pub certs: KarmadaSet<KeyedCert>,
    /// Why each certificate was issued anew; None where the stored one stays.
    pub reissued: KarmadaSet<Option<String>>,
    /// Why the control-plane key, the service-account signing key, is new: every service-account
    /// token it signed becomes invalid. None when the stored key is kept.
    pub new_signing_key: Option<String>,
    /// The earliest expiry among the certificates that are not CAs.
    pub valid_until: Timestamp,
}

/// Keeps each stored certificate that is still good and issues the others: a new CA brings new
/// certificates signed by it; a new control-plane certificate brings a new federation-admin
/// one (the kubeconfig is renewed with the serving certificate). The control-plane certificate
/// is re-issued for the key it had whenever that key can be read, in whatever format it was
/// stored, and the key is stored as SEC1 from then on.
pub fn renew_set(
    stored: KarmadaSet<Option<KeyedCert>>,
    request: &KarmadaRequest,
    now: Timestamp,
) -> Result<KarmadaRenewal, CertError> {
    check_validity(request)?;
    let (ca, new_ca) = keep_or_issue_ca(Member::Ca, stored.ca, request, now)?;
    let (front_proxy_ca, new_front_proxy_ca) =
        keep_or_issue_ca(Member::FrontProxyCa, stored.front_proxy_ca, request, now)?;

    let ca_is_new = new_ca.as_ref().map(|_| "a new Karmada CA was generated");
    let (control_plane, new_control_plane, new_signing_key) =
        keep_or_reissue_control_plane(&stored.control_plane, &ca, ca_is_new, request, now)?;

    let control_plane_is_new = new_control_plane
        .as_ref()
        .map(|_| "the control-plane certificate was renewed");
    let (federation_admin, new_federation_admin) = keep_or_issue_leaf(
        Member::FederationAdmin,
        &stored.federation_admin,
        &ca,
        ca_is_new.or(control_plane_is_new),
        request,
        now,
    )?;
    let front_proxy_ca_is_new = new_front_proxy_ca
        .as_ref()
        .map(|_| "a new front-proxy CA was generated");
    let (front_proxy_client, new_front_proxy_client) = keep_or_issue_leaf(
        Member::FrontProxyClient,
        &stored.front_proxy_client,
        &front_proxy_ca,
        front_proxy_ca_is_new,
        request,
        now,
    )?;

    let valid_until = earliest_expiry([&control_plane, &federation_admin, &front_proxy_client])?;
    Ok(KarmadaRenewal {
        certs: KarmadaSet {
            ca,
            control_plane,
            front_proxy_ca,
            front_proxy_client,
            federation_admin,
        },
        reissued: KarmadaSet {
            ca: new_ca,
            control_plane: new_control_plane,
            front_proxy_ca: new_front_proxy_ca,
            front_proxy_client: new_front_proxy_client,
            federation_admin: new_federation_admin,
        },
        new_signing_key,
        valid_until,
    })
}

/// The stored control-plane certificate while it is good and nothing forces a new one;
/// otherwise one issued for the stored key, and why, and why the key is new if it is.
fn keep_or_reissue_control_plane(
    stored: &Option<KeyedCert>,
    ca: &KeyedCert,
    forced: Option<&str>,
    request: &KarmadaRequest,
    now: Timestamp,
) -> Result<(KeyedCert, Option<String>, Option<String>), CertError> {
    match keep_leaf(Member::ControlPlane, stored, ca, forced, request, now) {
        Ok(cert) => Ok((cert, None, None)),
        Err(why) => {
            let (key, new_key) = signing_key(stored.as_ref())?;
            let cert = issue_leaf(Member::ControlPlane, &key, ca, request, now)?;
            Ok((cert, Some(why), new_key))
        }
    }
}

/// The stored CA while it is good, otherwise a new one and why.
fn keep_or_issue_ca(
    member: Member,
    stored: Option<KeyedCert>,
    request: &KarmadaRequest,
    now: Timestamp,
) -> Result<(KeyedCert, Option<String>), CertError> {
    let why = match stored {
        None => format!("no {} is stored", member.description()),
        Some(ca) => match check_member(member, &ca, None, request, now) {
            Verdict::Keep { .. } => return Ok((ca, None)),
            Verdict::Replace(why) => why,
        },
    };
    Ok((issue_ca(member, request, now)?, Some(why)))
}

/// The stored certificate while it is good and nothing else forces a new one; otherwise why not.
fn keep_leaf(
    member: Member,
    stored: &Option<KeyedCert>,
    signer: &KeyedCert,
    forced: Option<&str>,
    request: &KarmadaRequest,
    now: Timestamp,
) -> Result<KeyedCert, String> {
    if let Some(why) = forced {
        return Err(why.to_string());
    }
    let Some(cert) = stored else {
        return Err(format!("no {} is stored", member.description()));
    };
    match check_member(member, cert, Some(signer), request, now) {
        Verdict::Keep { .. } => Ok(cert.clone()),
        Verdict::Replace(why) => Err(why),
    }
}

/// [`keep_leaf`], or a new certificate with a new key and why.
fn keep_or_issue_leaf(
    member: Member,
    stored: &Option<KeyedCert>,
    signer: &KeyedCert,
    forced: Option<&str>,
    request: &KarmadaRequest,
    now: Timestamp,
) -> Result<(KeyedCert, Option<String>), CertError> {
    match keep_leaf(member, stored, signer, forced, request, now) {
        Ok(cert) => Ok((cert, None)),
        Err(why) => {
            let key = key_format::generate(member.description())?;
            Ok((issue_leaf(member, &key, signer, request, now)?, Some(why)))
        }
    }
}

/// The stored control-plane key when it can be read, otherwise a new one and why.
fn signing_key(stored: Option<&KeyedCert>) -> Result<(KeyPair, Option<String>), CertError> {
    let why = match stored.map(|cert| read_sec1_or_pkcs8(cert.key_pem())) {
        Some(Ok(key)) => return Ok((key, None)),
        Some(Err(problem)) => format!("the stored control-plane key {problem}"),
        None => "no control-plane key is stored".to_string(),
    };
    Ok((
        key_format::generate(Member::ControlPlane.description())?,
        Some(why),
    ))
}

fn earliest_expiry<const N: usize>(certs: [&KeyedCert; N]) -> Result<Timestamp, CertError> {
    let unreadable = || CertError::new("a certificate just issued cannot be read".to_string());
    let mut earliest = None;
    for cert in certs {
        let der = pem_to_der(&cert.cert_pem).map_err(|_| unreadable())?;
        let (_, parsed) = X509Certificate::from_der(&der).map_err(|_| unreadable())?;
        let not_after = parsed.validity().not_after.timestamp();
        earliest = Some(earliest.map_or(not_after, |e: i64| e.min(not_after)));
    }
    let earliest = earliest.ok_or_else(unreadable)?;
    Timestamp::from_second(earliest)
        .map_err(|_| CertError::new("a certificate's expiry is out of range".to_string()))
}
