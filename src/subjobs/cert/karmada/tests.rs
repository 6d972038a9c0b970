use std::collections::BTreeSet;

use jiff::Timestamp;
use p256::elliptic_curve::sec1::ToSec1Point;
use rcgen::{DistinguishedName, DnType, ExtendedKeyUsagePurpose};
use x509_parser::asn1_rs::{Any, Class, Oid, Tag};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::issue::issue_leaf;
use super::*;
use crate::subjobs::cert::key_format::{self, read_sec1};
use crate::subjobs::cert::pki::tests::{days, sans_of_pem, t0};
use crate::subjobs::cert::pki::{
    KeyedCert, LeafSpec, Verdict, ca_validity_days, issued_by, pem_to_der, sign_leaf,
};

const P256_OID: &str = "1.2.840.10045.3.1.7";

fn names(endpoint_host: &str) -> KarmadaNames {
    KarmadaNames {
        release: "fed".to_string(),
        namespace: "fed-cp".to_string(),
        system_namespace: DEFAULT_SYSTEM_NAMESPACE.to_string(),
        cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_string(),
        endpoint_host: endpoint_host.to_string(),
        extra_sans: vec!["API.Example.com".to_string()],
    }
}

fn request(endpoint_host: &str) -> KarmadaRequest {
    KarmadaRequest {
        names: names(endpoint_host),
        validity_days: 300,
    }
}

fn new_set() -> KarmadaSet<KeyedCert> {
    issue_set(&request("203.0.113.7"), t0()).expect("set")
}

fn stored(set: &KarmadaSet<KeyedCert>) -> KarmadaSet<Option<KeyedCert>> {
    KarmadaSet::from_fn(|member| Some(set.get(member).clone()))
}

/// `set` as stored, its control-plane key written as PKCS#8 (as rcgen writes keys).
fn with_pkcs8_control_plane_key(set: &KarmadaSet<KeyedCert>) -> KarmadaSet<Option<KeyedCert>> {
    let mut stored = stored(set);
    let key = read_sec1(set.control_plane.key_pem()).expect("key");
    let cert_pem = set.control_plane.cert_pem.clone();
    stored.control_plane = Some(KeyedCert::new(cert_pem, key.serialize_pem()));
    stored
}

fn der(pem: &str) -> Vec<u8> {
    pem_to_der(pem).expect("PEM")
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    X509Certificate::from_der(der).expect("certificate").1
}

/// The subject's common names and organizations.
fn subject_of(pem: &str) -> (Vec<String>, Vec<String>) {
    let der = der(pem);
    let cert = parse(&der);
    let texts = |attrs: Vec<&x509_parser::x509::AttributeTypeAndValue<'_>>| {
        attrs
            .iter()
            .map(|a| a.as_str().expect("text").to_string())
            .collect()
    };
    (
        texts(cert.subject().iter_common_name().collect()),
        texts(cert.subject().iter_organization().collect()),
    )
}

/// (serverAuth, clientAuth, is a CA).
fn usages_of(pem: &str) -> (bool, bool, bool) {
    let der = der(pem);
    let cert = parse(&der);
    let eku = cert.extended_key_usage().expect("EKU");
    let (server, client) = eku.map_or((false, false), |e| {
        (e.value.server_auth, e.value.client_auth)
    });
    (server, client, cert.is_ca())
}

fn public_key_of(pem: &str) -> Vec<u8> {
    let der = der(pem);
    parse(&der).public_key().subject_public_key.data.to_vec()
}

/// The public key kube-apiserver finds in a key file, read as client-go's keyutil does: by
/// label for the signing key (`ParsePrivateKeyPEM`), and as Go's `x509.ParseECPrivateKey` reads
/// a SEC1 key, which derives the public key from the private scalar. Written against the DER
/// alone, apart from the code under test.
fn kube_apiserver_public_key(pem: &str) -> Result<Vec<u8>, String> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|_| "not PEM")?;
    match block.label.as_str() {
        "EC PRIVATE KEY" => go_parse_ec_private_key(&block.contents),
        "PRIVATE KEY" => match go_parse_ec_private_key(&block.contents) {
            // PKCS#8 is read as RSA only by the public-key reader; as EC it fails here.
            Ok(_) => Err("a PKCS#8 block parsed as SEC1".to_string()),
            Err(why) => Err(format!(
                "data does not contain any valid RSA or ECDSA public keys: {why}"
            )),
        },
        other => Err(format!("unexpected label {other}")),
    }
}

fn go_parse_ec_private_key(der: &[u8]) -> Result<Vec<u8>, String> {
    let fail = |what: &str| what.to_string();
    let (rest, sequence) = Any::from_der(der).map_err(|_| fail("not DER"))?;
    if !rest.is_empty() || sequence.tag() != Tag::Sequence {
        return Err(fail("not a sequence"));
    }
    let (fields, version) = Any::from_der(sequence.data).map_err(|_| fail("no version"))?;
    if version.tag() != Tag::Integer || version.data != [1] {
        return Err(fail("unknown EC private key version"));
    }
    let (mut fields, private) = Any::from_der(fields).map_err(|_| fail("no private key"))?;
    if private.tag() != Tag::OctetString || private.data.len() != 32 {
        return Err(fail("not a P-256 private key"));
    }
    let mut curve = None;
    while !fields.is_empty() {
        let (rest, field) = Any::from_der(fields).map_err(|_| fail("bad optional field"))?;
        if field.class() == Class::ContextSpecific && field.tag() == Tag(0) {
            let (_, oid) = Oid::from_der(field.data).map_err(|_| fail("bad curve"))?;
            curve = Some(oid.to_id_string());
        }
        fields = rest;
    }
    if curve.as_deref() != Some(P256_OID) {
        return Err(fail("unknown elliptic curve"));
    }
    let secret = p256::SecretKey::from_slice(private.data).map_err(|_| fail("invalid scalar"))?;
    Ok(secret.public_key().to_sec1_point(false).as_bytes().to_vec())
}

#[test]
fn control_plane_sans_are_the_endpoint_the_services_the_wildcards_and_the_extra_sans() {
    let mut expected: BTreeSet<San> = [
        "203.0.113.7",
        "*.etcd.fed-cp.svc.cluster.local",
        "*.fed-cp.svc",
        "*.fed-cp.svc.cluster.local",
        "*.karmada-system.svc",
        "*.karmada-system.svc.cluster.local",
        "kubernetes.default.svc",
        "localhost",
        "127.0.0.1",
        "api.example.com",
    ]
    .into_iter()
    .map(San::parse)
    .collect();
    for service in [
        "fed-apiserver",
        "fed-aggregated-apiserver",
        "fed-webhook",
        "etcd",
        "etcd-client",
    ] {
        for suffix in ["", ".fed-cp", ".fed-cp.svc", ".fed-cp.svc.cluster.local"] {
            expected.insert(San::Dns(format!("{service}{suffix}")));
        }
    }
    let sans = names("203.0.113.7").control_plane_sans();
    assert_eq!(sans, expected);
    assert_eq!(sans.len(), 30);
    assert!(sans.contains(&San::Ip("127.0.0.1".parse().expect("ip"))));
    assert!(sans.contains(&San::Ip("203.0.113.7".parse().expect("ip"))));
}

#[test]
fn a_hostname_endpoint_is_a_dns_san() {
    let sans = names("lb.example.com").control_plane_sans();
    assert!(sans.contains(&San::Dns("lb.example.com".to_string())));
}

#[test]
fn cluster_domain_and_system_namespace_come_from_the_names() {
    let mut names = names("203.0.113.7");
    names.cluster_domain = "fleet.internal".to_string();
    names.system_namespace = "karmada-core".to_string();
    let sans = names.control_plane_sans();
    for name in [
        "fed-apiserver.fed-cp.svc.fleet.internal",
        "*.etcd.fed-cp.svc.fleet.internal",
        "*.karmada-core.svc",
        "*.karmada-core.svc.fleet.internal",
    ] {
        assert!(sans.contains(&San::Dns(name.to_string())), "{name}");
    }
    assert!(
        !sans
            .iter()
            .any(|san| san.to_string().contains("cluster.local"))
    );
    assert!(
        !sans
            .iter()
            .any(|san| san.to_string().contains("karmada-system"))
    );
}

#[test]
fn each_certificate_has_its_subject_and_extended_key_usages() {
    let set = new_set();
    let strings = |values: &[&str]| values.iter().map(|v| v.to_string()).collect::<Vec<_>>();
    let expect = [
        (
            &set.control_plane,
            "system:admin",
            strings(&["system:masters"]),
            (true, true, false),
        ),
        (
            &set.federation_admin,
            "federation-admin",
            strings(&["system:masters"]),
            (false, true, false),
        ),
        (
            &set.front_proxy_client,
            "front-proxy-client",
            vec![],
            (false, true, false),
        ),
        (
            &set.ca,
            "federation-karmada-ca",
            strings(&["federation-controller"]),
            (false, false, true),
        ),
    ];
    for (cert, common_name, organizations, usages) in expect {
        let (cns, orgs) = subject_of(&cert.cert_pem);
        assert_eq!(cns, [common_name]);
        assert_eq!(orgs, organizations, "{common_name}");
        assert_eq!(usages_of(&cert.cert_pem), usages, "{common_name}");
    }
    let (fp_ca, _) = subject_of(&set.front_proxy_ca.cert_pem);
    assert_eq!(fp_ca, ["federation-karmada-front-proxy-ca"]);
    assert!(usages_of(&set.front_proxy_ca.cert_pem).2);
}

#[test]
fn only_the_control_plane_certificate_carries_names() {
    let set = new_set();
    assert_eq!(
        sans_of_pem(&set.control_plane.cert_pem),
        names("203.0.113.7").control_plane_sans()
    );
    assert!(sans_of_pem(&set.federation_admin.cert_pem).is_empty());
    assert!(sans_of_pem(&set.front_proxy_client.cert_pem).is_empty());
}

#[test]
fn every_key_is_sec1_and_kube_apiserver_reads_the_public_key_of_its_certificate() {
    let set = new_set();
    for member in Member::ALL {
        let cert = set.get(member);
        assert!(
            cert.key_pem()
                .starts_with("-----BEGIN EC PRIVATE KEY-----\n"),
            "{member:?}"
        );
        assert!(!cert.key_pem().contains("BEGIN PRIVATE KEY"), "{member:?}");
        assert_eq!(
            kube_apiserver_public_key(cert.key_pem()),
            Ok(public_key_of(&cert.cert_pem)),
            "{member:?}"
        );
    }
}

#[test]
fn the_keyutil_reading_refuses_the_pkcs8_ec_keys_rcgen_writes() {
    let pkcs8 = rcgen::KeyPair::generate().expect("key").serialize_pem();
    assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(kube_apiserver_public_key(&pkcs8).is_err());
    assert_eq!(read_sec1(&pkcs8).err(), Some(key_format::KeyProblem::Pkcs8));
}

#[test]
fn each_certificate_is_signed_by_its_own_ca() {
    let set = new_set();
    let (ca_der, fp_ca_der) = (der(&set.ca.cert_pem), der(&set.front_proxy_ca.cert_pem));
    let (ca, fp_ca) = (parse(&ca_der), parse(&fp_ca_der));
    for (leaf, signer, other) in [
        (&set.control_plane, &ca, &fp_ca),
        (&set.federation_admin, &ca, &fp_ca),
        (&set.front_proxy_client, &fp_ca, &ca),
    ] {
        let leaf_der = der(&leaf.cert_pem);
        assert!(issued_by(&parse(&leaf_der), signer));
        assert!(!issued_by(&parse(&leaf_der), other));
    }
    assert_ne!(ca.subject().as_raw(), fp_ca.subject().as_raw());
}

#[test]
fn a_new_set_passes_its_check() {
    let verdicts = check_set(
        &stored(&new_set()),
        &request("203.0.113.7"),
        t0() + days(199),
    );
    assert_eq!(problems(&verdicts), Vec::<String>::new());
    assert_eq!(
        verdicts.control_plane,
        Verdict::Keep {
            valid_until: t0() + days(300)
        }
    );
}

#[test]
fn the_check_reports_a_key_stored_as_pkcs8() {
    let set = new_set();
    let stored = with_pkcs8_control_plane_key(&set);
    let verdicts = check_set(&stored, &request("203.0.113.7"), t0());
    assert_eq!(
        problems(&verdicts),
        [
            "the control-plane certificate key is PKCS#8 (PRIVATE KEY), which kube-apiserver refuses for EC"
        ]
    );
}

#[test]
fn the_check_reports_a_certificate_with_the_wrong_subject() {
    let set = new_set();
    let mut stored = stored(&set);
    stored.control_plane = Some(set.federation_admin.clone());
    let verdicts = check_set(&stored, &request("203.0.113.7"), t0());
    assert_eq!(
        problems(&verdicts),
        ["the control-plane certificate is not for CN=system:admin, O=system:masters alone"]
    );
}

#[test]
fn the_check_reports_missing_extended_key_usages() {
    let set = new_set();
    let key = read_sec1(set.control_plane.key_pem()).expect("key");
    let mut subject = DistinguishedName::new();
    subject.push(DnType::OrganizationName, "system:masters");
    subject.push(DnType::CommonName, "system:admin");
    let sans = names("203.0.113.7").control_plane_sans();
    let client_only = LeafSpec {
        what: "client-only certificate",
        subject,
        sans: &sans,
        extended_key_usages: vec![ExtendedKeyUsagePurpose::ClientAuth],
        validity_days: 300,
    };
    let cert_pem = sign_leaf(&set.ca, &client_only, &key, t0()).expect("leaf");
    let mut stored = stored(&set);
    stored.control_plane = Some(KeyedCert::new(
        cert_pem,
        set.control_plane.key_pem().to_string(),
    ));
    let verdicts = check_set(&stored, &request("203.0.113.7"), t0());
    assert_eq!(
        problems(&verdicts),
        ["the control-plane certificate's extended key usages are not ServerAuth and ClientAuth"]
    );
}

#[test]
fn the_check_reports_the_names_a_moved_endpoint_needs() {
    let verdicts = check_set(&stored(&new_set()), &request("198.51.100.9"), t0());
    assert_eq!(
        problems(&verdicts),
        ["the control-plane certificate does not cover 198.51.100.9"]
    );
}

#[test]
fn the_check_reports_certificates_due_for_renewal() {
    let verdicts = check_set(
        &stored(&new_set()),
        &request("203.0.113.7"),
        t0() + days(200),
    );
    assert_eq!(
        problems(&verdicts),
        [
            "a third or less of the control-plane certificate's validity is left",
            "a third or less of the front-proxy client certificate's validity is left",
            "a third or less of the federation-admin client certificate's validity is left",
        ]
    );
}

#[test]
fn the_check_reports_a_certificate_from_another_ca() {
    let set = new_set();
    let mut stored = stored(&set);
    stored.control_plane = Some(
        issue_leaf(
            Member::ControlPlane,
            &read_sec1(set.control_plane.key_pem()).expect("key"),
            &set.front_proxy_ca,
            &request("203.0.113.7"),
            t0(),
        )
        .expect("leaf"),
    );
    let verdicts = check_set(&stored, &request("203.0.113.7"), t0());
    assert_eq!(
        problems(&verdicts),
        ["the control-plane certificate was not issued by the current CA"]
    );
}

#[test]
fn the_check_reports_what_is_missing() {
    let mut stored = stored(&new_set());
    stored.front_proxy_ca = None;
    let verdicts = check_set(&stored, &request("203.0.113.7"), t0());
    assert_eq!(
        problems(&verdicts),
        [
            "no front-proxy CA is stored",
            "the front-proxy client certificate has no stored CA to check it against",
        ]
    );
}

#[test]
fn nothing_stored_issues_the_whole_set() {
    let renewal = renew_set(KarmadaSet::default(), &request("203.0.113.7"), t0()).expect("set");
    for member in Member::ALL {
        assert!(renewal.reissued.get(member).is_some(), "{member:?}");
    }
    assert_eq!(renewal.valid_until, t0() + days(300));
    let verdicts = check_set(&stored(&renewal.certs), &request("203.0.113.7"), t0());
    assert!(problems(&verdicts).is_empty());
}

#[test]
fn a_set_that_is_still_good_is_kept_whole() {
    let set = new_set();
    let renewal = renew_set(stored(&set), &request("203.0.113.7"), t0() + days(150)).expect("set");
    assert_eq!(renewal.certs, set);
    assert_eq!(renewal.reissued, KarmadaSet::default());
    assert_eq!(renewal.new_signing_key, None);
    assert_eq!(renewal.valid_until, t0() + days(300));
}

#[test]
fn a_moved_endpoint_reissues_the_control_plane_certificate_for_the_same_key() {
    let set = new_set();
    let later = t0() + days(1);
    let renewal = renew_set(stored(&set), &request("198.51.100.9"), later).expect("set");
    let control_plane = &renewal.certs.control_plane;
    assert_eq!(control_plane.key_pem(), set.control_plane.key_pem());
    assert_eq!(
        public_key_of(&control_plane.cert_pem),
        public_key_of(&set.control_plane.cert_pem)
    );
    let sans = sans_of_pem(&control_plane.cert_pem);
    assert_eq!(sans, names("198.51.100.9").control_plane_sans());
    assert!(!sans.contains(&San::parse("203.0.113.7")));
    assert_eq!(
        renewal.reissued.control_plane.as_deref(),
        Some("the control-plane certificate does not cover 198.51.100.9")
    );
    assert_eq!(renewal.new_signing_key, None);
    // The kubeconfig's client certificate is renewed with the serving certificate.
    assert_eq!(
        renewal.reissued.federation_admin.as_deref(),
        Some("the control-plane certificate was renewed")
    );
    assert_ne!(renewal.certs.federation_admin, set.federation_admin);
    assert_eq!(renewal.certs.ca, set.ca);
    assert_eq!(renewal.certs.front_proxy_ca, set.front_proxy_ca);
    assert_eq!(renewal.certs.front_proxy_client, set.front_proxy_client);
    assert_eq!(renewal.valid_until, t0() + days(300));
}

#[test]
fn a_certificate_due_for_renewal_is_reissued_for_the_same_key() {
    let set = new_set();
    let later = t0() + days(250);
    let renewal = renew_set(stored(&set), &request("203.0.113.7"), later).expect("set");
    assert_eq!(
        renewal.certs.control_plane.key_pem(),
        set.control_plane.key_pem()
    );
    assert_ne!(
        renewal.certs.control_plane.cert_pem,
        set.control_plane.cert_pem
    );
    assert_ne!(
        renewal.certs.front_proxy_client.key_pem(),
        set.front_proxy_client.key_pem()
    );
    assert_eq!(renewal.certs.ca, set.ca);
    assert_eq!(renewal.valid_until, later + days(300));
}

#[test]
fn a_new_ca_reissues_its_certificates_and_keeps_the_signing_key() {
    let set = new_set();
    let late = t0() + days(ca_validity_days(300)) - days(10);
    let renewal = renew_set(stored(&set), &request("203.0.113.7"), late).expect("set");
    assert!(renewal.reissued.ca.is_some());
    assert!(renewal.reissued.front_proxy_ca.is_some());
    assert_eq!(
        renewal.reissued.control_plane.as_deref(),
        Some("a new Karmada CA was generated")
    );
    assert_eq!(
        renewal.certs.control_plane.key_pem(),
        set.control_plane.key_pem()
    );
    assert_eq!(renewal.new_signing_key, None);
    let verdicts = check_set(&stored(&renewal.certs), &request("203.0.113.7"), late);
    assert!(problems(&verdicts).is_empty());
}

#[test]
fn a_control_plane_key_stored_as_pkcs8_is_kept_and_stored_as_sec1() {
    let set = new_set();
    let stored = with_pkcs8_control_plane_key(&set);
    let renewal = renew_set(stored, &request("203.0.113.7"), t0()).expect("set");
    let control_plane = &renewal.certs.control_plane;
    assert!(
        control_plane
            .key_pem()
            .starts_with("-----BEGIN EC PRIVATE KEY-----")
    );
    assert_eq!(control_plane.key_pem(), set.control_plane.key_pem());
    assert_eq!(renewal.new_signing_key, None);
    assert!(renewal.reissued.control_plane.is_some());
}

#[test]
fn an_unreadable_control_plane_key_is_replaced_and_said_so() {
    let set = new_set();
    let mut stored = stored(&set);
    stored.control_plane = Some(KeyedCert::new(
        set.control_plane.cert_pem.clone(),
        "not a key".to_string(),
    ));
    let renewal = renew_set(stored, &request("203.0.113.7"), t0()).expect("set");
    assert_eq!(
        renewal.new_signing_key.as_deref(),
        Some("the stored control-plane key is not PEM")
    );
    assert_eq!(
        kube_apiserver_public_key(renewal.certs.control_plane.key_pem()),
        Ok(public_key_of(&renewal.certs.control_plane.cert_pem))
    );
}

#[test]
fn a_validity_under_one_day_is_refused() {
    let mut request = request("203.0.113.7");
    request.validity_days = 0;
    assert!(issue_set(&request, t0()).is_err());
    assert!(renew_set(KarmadaSet::default(), &request, t0()).is_err());
}

#[test]
fn debug_output_and_errors_never_show_a_private_key() {
    let renewal = renew_set(KarmadaSet::default(), &request("203.0.113.7"), t0()).expect("set");
    let debug = format!("{renewal:?}");
    assert!(!debug.contains("PRIVATE KEY"));
    for member in Member::ALL {
        let key_body = renewal
            .certs
            .get(member)
            .key_pem()
            .lines()
            .nth(1)
            .expect("line");
        assert!(!debug.contains(key_body), "{member:?}");
    }

    let broken_key = renewal.certs.ca.key_pem().replace('A', "*");
    let broken_ca = KeyedCert::new(renewal.certs.ca.cert_pem.clone(), broken_key.clone());
    let key = key_format::generate("test").expect("key");
    let error = issue_leaf(Member::ControlPlane, &key, &broken_ca, &request("x"), t0())
        .expect_err("a broken CA key cannot sign");
    let mut stored = stored(&renewal.certs);
    stored.ca = Some(broken_ca);
    let verdicts = check_set(&stored, &request("203.0.113.7"), t0());
    let messages = [error.to_string(), problems(&verdicts).join("; ")];
    for message in messages {
        assert!(!message.contains("PRIVATE KEY"), "{message}");
        assert!(
            !broken_key
                .lines()
                .skip(1)
                .any(|line| message.contains(line))
        );
    }
}

#[test]
fn issuing_takes_the_time_it_is_given() {
    let at: Timestamp = "2030-06-01T00:00:00Z".parse().expect("timestamp");
    let set = issue_set(&request("203.0.113.7"), at).expect("set");
    let der = der(&set.control_plane.cert_pem);
    assert_eq!(
        parse(&der).validity().not_before.timestamp(),
        at.as_second()
    );
}
