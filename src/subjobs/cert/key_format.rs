//! Private keys in the one format both kube-apiserver and this controller can use: SEC1
//! (`EC PRIVATE KEY`) P-256 keys, the curve named inside the key.
//!
//! rcgen (on ring) reads and writes PKCS#8 (`PRIVATE KEY`) only, while kube-apiserver's
//! `--service-account-key-file` refuses a PKCS#8 EC key: client-go's keyutil tries each PEM block
//! as PKCS#1 or PKCS#8 RSA, then as SEC1 EC, never as PKCS#8 EC. So keys are stored as SEC1 and
//! turned back into PKCS#8 only to sign with. A SEC1 key standing alone must name its curve
//! (Go's `x509.ParseECPrivateKey` fails without it), and [`to_sec1_pem`] always writes it.
//!
//! No function here quotes key material in an error.

use std::fmt;

use p256::pkcs8::{AssociatedOid, DecodePrivateKey, EncodePrivateKey, LineEnding};
use p256::{NistP256, SecretKey};
use rcgen::KeyPair;
use sec1::{EcParameters, EcPrivateKey};

use super::pki::CertError;

/// The PEM label of a SEC1 EC private key.
pub const SEC1_PEM_LABEL: &str = "EC PRIVATE KEY";
/// The PEM label of a PKCS#8 private key.
pub const PKCS8_PEM_LABEL: &str = "PRIVATE KEY";
/// The PEM label of a PKCS#1 RSA private key.
pub const PKCS1_PEM_LABEL: &str = "RSA PRIVATE KEY";

/// Why a stored private key cannot be used. Never quotes the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyProblem {
    NotPem,
    /// `PRIVATE KEY`: kube-apiserver refuses a PKCS#8 EC key.
    Pkcs8,
    /// `RSA PRIVATE KEY`: kube-apiserver reads it, but this controller signs with P-256 keys only.
    Rsa,
    /// Any other PEM label.
    NotAPrivateKey,
    /// The label says SEC1 but the DER is not an `ECPrivateKey`, or its scalar is not a P-256 key.
    Malformed,
    /// The SEC1 key does not name its curve.
    NoCurve,
    /// The SEC1 key names a curve other than P-256.
    NotP256,
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyProblem::NotPem => "is not PEM",
            KeyProblem::Pkcs8 => "is PKCS#8 (PRIVATE KEY), which kube-apiserver refuses for EC",
            KeyProblem::Rsa => "is RSA, and this controller signs with EC P-256 keys only",
            KeyProblem::NotAPrivateKey => "is not a private key",
            KeyProblem::Malformed => "is not a valid SEC1 EC P-256 key",
            KeyProblem::NoCurve => "does not name its curve",
            KeyProblem::NotP256 => "is not on the P-256 curve",
        })
    }
}

/// A new P-256 key.
pub fn generate(what: &str) -> Result<KeyPair, CertError> {
    KeyPair::generate().map_err(|e| CertError::new(format!("cannot generate the {what} key: {e}")))
}

/// The SEC1 PEM of `key`, a P-256 key pair. Line endings are `\n`.
pub fn to_sec1_pem(key: &KeyPair) -> Result<String, CertError> {
    let cannot = || CertError::new("cannot write a key as SEC1 (EC PRIVATE KEY)".to_string());
    let secret = SecretKey::from_pkcs8_der(&key.serialize_der()).map_err(|_| cannot())?;
    let pem = secret.to_sec1_pem(LineEnding::LF).map_err(|_| cannot())?;
    Ok(pem.as_str().to_string())
}

/// Reads a SEC1 P-256 key as kube-apiserver would (label, DER, named curve), into a key pair
/// that can sign.
pub fn read_sec1(pem: &str) -> Result<KeyPair, KeyProblem> {
    let (label, der) = pem_block(pem)?;
    match label.as_str() {
        SEC1_PEM_LABEL => {}
        PKCS8_PEM_LABEL => return Err(KeyProblem::Pkcs8),
        PKCS1_PEM_LABEL => return Err(KeyProblem::Rsa),
        _ => return Err(KeyProblem::NotAPrivateKey),
    }
    let sec1 = EcPrivateKey::try_from(der.as_slice()).map_err(|_| KeyProblem::Malformed)?;
    match sec1.parameters {
        None => return Err(KeyProblem::NoCurve),
        Some(EcParameters::NamedCurve(oid)) if oid != NistP256::OID => {
            return Err(KeyProblem::NotP256);
        }
        Some(EcParameters::NamedCurve(_)) => {}
    }
    let secret = SecretKey::try_from(sec1).map_err(|_| KeyProblem::Malformed)?;
    let pkcs8 = secret.to_pkcs8_der().map_err(|_| KeyProblem::Malformed)?;
    KeyPair::try_from(pkcs8.as_bytes()).map_err(|_| KeyProblem::Malformed)
}

/// Reads a key stored as SEC1 or as PKCS#8, the format rcgen writes: to sign with it, or to keep
/// a key whose stored format has to change.
pub fn read_sec1_or_pkcs8(pem: &str) -> Result<KeyPair, KeyProblem> {
    match read_sec1(pem) {
        Err(KeyProblem::Pkcs8) => KeyPair::from_pem(pem).map_err(|_| KeyProblem::Malformed),
        read => read,
    }
}

/// The label and DER of the first PEM block.
fn pem_block(pem: &str) -> Result<(String, Vec<u8>), KeyProblem> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map(|(_, block)| (block.label, block.contents))
        .map_err(|_| KeyProblem::NotPem)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `der` as a PEM block labelled `label`.
    fn pem(label: &str, der: &[u8]) -> String {
        p256::pkcs8::der::pem::encode_string(label, LineEnding::LF, der).expect("PEM")
    }

    fn sec1_der(parameters: Option<EcParameters>) -> Vec<u8> {
        use p256::pkcs8::der::Encode;
        let key = generate("test").expect("key");
        let key = SecretKey::from_pkcs8_der(&key.serialize_der()).expect("PKCS#8");
        let private_key = key.to_bytes();
        EcPrivateKey {
            private_key: &private_key,
            parameters,
            public_key: None,
        }
        .to_der()
        .expect("DER")
    }

    #[test]
    fn a_key_written_as_sec1_reads_back_as_the_same_key() {
        let key = generate("test").expect("key");
        let sec1 = to_sec1_pem(&key).expect("SEC1");
        assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
        let read = read_sec1(&sec1).expect("read");
        assert_eq!(read.public_key_raw(), key.public_key_raw());
        assert_eq!(read.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
    }

    #[test]
    fn pkcs8_is_refused_as_sec1_and_read_when_either_will_do() {
        let key = generate("test").expect("key");
        let pkcs8 = key.serialize_pem();
        assert_eq!(read_sec1(&pkcs8).err(), Some(KeyProblem::Pkcs8));
        let read = read_sec1_or_pkcs8(&pkcs8).expect("read");
        assert_eq!(read.public_key_raw(), key.public_key_raw());
    }

    #[test]
    fn a_sec1_key_must_name_the_p256_curve() {
        assert_eq!(
            read_sec1(&pem(SEC1_PEM_LABEL, &sec1_der(None))).err(),
            Some(KeyProblem::NoCurve)
        );
        // secp384r1
        let p384 = EcParameters::NamedCurve("1.3.132.0.34".parse().expect("OID"));
        assert_eq!(
            read_sec1(&pem(SEC1_PEM_LABEL, &sec1_der(Some(p384)))).err(),
            Some(KeyProblem::NotP256)
        );
        let p256 = EcParameters::NamedCurve(NistP256::OID);
        assert!(read_sec1(&pem(SEC1_PEM_LABEL, &sec1_der(Some(p256)))).is_ok());
    }

    #[test]
    fn other_labels_and_garbage_are_refused() {
        assert_eq!(read_sec1("not a key").err(), Some(KeyProblem::NotPem));
        assert_eq!(
            read_sec1(&pem(PKCS1_PEM_LABEL, b"\x30\x00")).err(),
            Some(KeyProblem::Rsa)
        );
        assert_eq!(
            read_sec1(&pem("CERTIFICATE", b"\x30\x00")).err(),
            Some(KeyProblem::NotAPrivateKey)
        );
        assert_eq!(
            read_sec1(&pem(SEC1_PEM_LABEL, b"\x30\x00")).err(),
            Some(KeyProblem::Malformed)
        );
    }
}
