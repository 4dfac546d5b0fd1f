//! Root CA rotation, as swarmkit does it: the old root cross-signs the new one, so that a
//! node certificate issued by the new root's key (presented with that cross-signed
//! intermediate) is trusted by nodes that still trust only the old root; which key issued
//! a node's certificate tells whether the node has rotated.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, KeyUsagePurpose,
    SubjectPublicKeyInfo,
};
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::x509::X509Name;

use crate::ca::{parse_cert, random_serial, rcgen_err, to_offset};
use crate::error::CaError;
use crate::{pem, tls, ClusterCa, Role};

/// A root given for a rotation must be valid at least this much longer (swarmkit's
/// `minRootExpiration`, one year).
pub const MIN_ROOT_EXPIRATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Who issued a certificate: the DER of the issuer's subject and of its
/// SubjectPublicKeyInfo (docker's `TLSInfo.CertIssuerSubject` / `CertIssuerPublicKey`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerInfo {
    pub subject: Vec<u8>,
    pub public_key: Vec<u8>,
}

impl ClusterCa {
    /// A certificate for `new_root_pem`'s subject and public key, signed by this (old) root:
    /// the intermediate that makes certificates issued by the new root's key chain to the
    /// old root (swarmkit's `CrossSignCACertificate`). Same validity as the new root.
    pub fn cross_sign(&self, new_root_pem: &str) -> Result<String, CaError> {
        const WHAT: &str = "new root CA certificate";
        let der = pem::first_cert(new_root_pem, WHAT)?;
        let new = parse_cert(&der, WHAT)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = copy_name(new.subject())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.use_authority_key_identifier_extension = true;
        let at = |t: x509_parser::time::ASN1Time| {
            let secs = u64::try_from(t.timestamp()).unwrap_or(0);
            to_offset(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        };
        params.not_before = at(new.validity().not_before)?;
        params.not_after = at(new.validity().not_after)?;
        params.serial_number = Some(random_serial());
        let spki = SubjectPublicKeyInfo::from_der(new.public_key().raw)
            .map_err(rcgen_err("new root CA public key"))?;
        let cert = params
            .signed_by(&spki, self.issuer())
            .map_err(rcgen_err("cross-signing the new root CA"))?;
        // rcgen rebuilds names attribute by attribute, one value per type: a subject it
        // cannot reproduce byte for byte makes a certificate nothing chains through.
        let cross = parse_cert(cert.der(), WHAT)?;
        if cross.subject().as_raw() != new.subject().as_raw()
            || cross.public_key().raw != new.public_key().raw
        {
            return Err(CaError::CrossSignedMismatch);
        }
        Ok(cert.pem())
    }

    /// swarmkit's check that a signer produces certificates that chain: a throwaway node
    /// certificate signed by this (new) root must verify against this root alone, and,
    /// sent with the certificate `old` cross-signs for this root, against `old` alone.
    fn check_signs_chains(&self, old: &ClusterCa) -> Result<(), String> {
        const ID: &str = "root-rotation-check";
        let (_, leaf_pem) = self
            .issue_node(ID, Role::Manager, ID)
            .map_err(|e| e.to_string())?;
        let leaf = pem::first_cert(&leaf_pem, "node certificate").map_err(|e| e.to_string())?;
        let unreproducible = || {
            let parsed = parse_cert(&leaf, "node certificate").ok();
            let this = parse_cert(self.cert_der(), "CA certificate").ok();
            match (parsed, this) {
                (Some(l), Some(c)) if l.issuer().as_raw() != c.subject().as_raw() => {
                    " (its subject cannot be written byte for byte into the certificates it signs: \
                     shoal keeps one value per attribute type, in one attribute per RDN)"
                }
                _ => "",
            }
        };
        verify_chain(
            std::slice::from_ref(&leaf),
            std::slice::from_ref(self.cert_der()),
        )
        .map_err(|e| {
            format!(
                "certificates signed by the new root CA do not chain to it: {e}{}",
                unreproducible()
            )
        })?;
        let cross_pem = old.cross_sign(self.cert_pem()).map_err(|e| e.to_string())?;
        let cross = pem::first_cert(&cross_pem, "cross-signed CA certificate")
            .map_err(|e| e.to_string())?;
        verify_chain(&[leaf, cross], std::slice::from_ref(old.cert_der())).map_err(|e| {
            format!("certificates signed by the new root CA do not chain to the current one: {e}")
        })
    }

    /// The new root a `swarm ca --rotate --ca-cert --ca-key` gives, checked as swarmkit
    /// checks it (`validateCAConfig`): one self-signed CA certificate whose key is the one
    /// given, valid now and for at least a year more, with another key than this root's.
    /// Errors are swarmkit's words.
    pub fn check_new_root(&self, cert_pem: &str, key_pem: &str) -> Result<ClusterCa, String> {
        let certs = pem::certs(cert_pem, "CA certificate").map_err(|e| e.to_string())?;
        if certs.len() != 1 {
            return Err(
                "the desired CA certificate cannot contain multiple certificates".to_string(),
            );
        }
        let cert = parse_cert(&certs[0], "CA certificate").map_err(|e| e.to_string())?;
        let self_signed = cert.verify_signature(None).is_ok();
        let now = x509_parser::time::ASN1Time::now();
        if !self_signed || !cert.validity().is_valid_at(now) {
            return Err("error while validating Root CA Certificate: x509: certificate signed by unknown authority".to_string());
        }
        let new = ClusterCa::from_pem(cert_pem, key_pem).map_err(|e| match e {
            CaError::KeyMismatch => "certificate key mismatch".to_string(),
            other => other.to_string(),
        })?;
        let until = cert.validity().not_after.timestamp();
        let year_from_now = SystemTime::now() + MIN_ROOT_EXPIRATION;
        let year_from_now = year_from_now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(i64::MAX);
        if until < year_from_now {
            return Err("CA certificate expires too soon".to_string());
        }
        let current = parse_cert(self.cert_der(), "CA certificate").map_err(|e| e.to_string())?;
        if current.public_key().raw == cert.public_key().raw {
            return Err("Cannot update to a cert with an identical key".to_string());
        }
        new.check_signs_chains(self)?;
        Ok(new)
    }
}

/// Whether the node certificate that starts `chain_pem` (the rest of `chain_pem` as
/// intermediates) verifies against the roots of `roots_pem` alone, as a peer trusting
/// only them would verify it.
pub fn chains_to(chain_pem: &str, roots_pem: &str) -> Result<(), String> {
    let chain = pem::certs(chain_pem, "node certificate").map_err(|e| e.to_string())?;
    let roots = pem::certs(roots_pem, "CA certificate").map_err(|e| e.to_string())?;
    verify_chain(&chain, &roots)
}

/// webpki's verdict on `chain` (leaf first, then intermediates) against `roots` alone.
fn verify_chain(
    chain: &[CertificateDer<'static>],
    roots: &[CertificateDer<'static>],
) -> Result<(), String> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).map_err(|e| e.to_string())?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(store), tls::provider())
        .build()
        .map_err(|e| e.to_string())?;
    let (leaf, intermediates) = chain.split_first().ok_or("no certificate")?;
    verifier
        .verify_client_cert(leaf, intermediates, UnixTime::now())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The subject and public key of the (first) certificate in `cert_pem`: what a node
/// certificate issued by it names as its issuer.
pub fn issuer_info_of_ca(cert_pem: &str) -> Result<IssuerInfo, CaError> {
    let der = pem::first_cert(cert_pem, "CA certificate")?;
    let cert = parse_cert(&der, "CA certificate")?;
    Ok(IssuerInfo {
        subject: cert.subject().as_raw().to_vec(),
        public_key: cert.public_key().raw.to_vec(),
    })
}

/// Who signed the node certificate that starts `chain_pem`: of the other certificates in
/// `chain_pem` and those of `trust_pem`, the one whose key verifies its signature. None
/// when none does.
pub fn issuer_of_cert(chain_pem: &str, trust_pem: &str) -> Option<IssuerInfo> {
    let chain = pem::certs(chain_pem, "node certificate").ok()?;
    let trust = pem::certs(trust_pem, "CA certificate").unwrap_or_default();
    let leaf = parse_cert(&chain[0], "node certificate").ok()?;
    chain[1..]
        .iter()
        .chain(trust.iter())
        .filter_map(|der| parse_cert(der, "CA certificate").ok())
        .find(|ca| signed_by(&leaf, ca))
        .map(|ca| IssuerInfo {
            subject: ca.subject().as_raw().to_vec(),
            public_key: ca.public_key().raw.to_vec(),
        })
}

fn signed_by(cert: &X509Certificate<'_>, ca: &X509Certificate<'_>) -> bool {
    cert.issuer().as_raw() == ca.subject().as_raw()
        && cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// `name` as rcgen's, attribute by attribute with the same string types, so that what
/// rcgen writes is the same DER (chains are built by comparing names byte for byte).
fn copy_name(name: &X509Name<'_>) -> Result<DistinguishedName, CaError> {
    let bad = |why: &str| CaError::CertParse {
        what: "new root CA certificate",
        reason: format!("subject: {why}"),
    };
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err(bad("only one attribute per RDN is supported"));
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| bad("attribute type"))?
            .collect();
        let data = attr.attr_value().data;
        let text = std::str::from_utf8(data).map_err(|_| bad("attribute value is not text"))?;
        let value = match attr.attr_value().header.tag() {
            Tag::PrintableString => {
                DnValue::PrintableString(text.try_into().map_err(|_| bad("not a PrintableString"))?)
            }
            Tag::Ia5String => {
                DnValue::Ia5String(text.try_into().map_err(|_| bad("not an IA5String"))?)
            }
            Tag::T61String => {
                DnValue::TeletexString(text.try_into().map_err(|_| bad("not a T61String"))?)
            }
            Tag::Utf8String => DnValue::Utf8String(text.to_string()),
            _ => return Err(bad("unsupported string type")),
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::client::WebPkiServerVerifier;
    use rustls::pki_types::{CertificateDer, UnixTime};

    use super::*;
    use crate::{new_node_key, Role};

    const CLUSTER: &str = "c1";

    /// A node certificate signed by `signer`, with `chain` after it, as a node keeps it.
    fn node_cert(signer: &ClusterCa, id: &str, chain: &str) -> (String, String) {
        let (key, csr) = new_node_key().unwrap();
        let cert = signer.sign_csr(&csr, id, Role::Manager, CLUSTER).unwrap();
        (key, format!("{cert}{chain}"))
    }

    /// Whether a verifier trusting `trust_pem` accepts the chain `chain_pem` as a manager's.
    fn accepted(trust_pem: &str, chain_pem: &str) -> Result<(), String> {
        let mut roots = rustls::RootCertStore::empty();
        for c in pem::certs(trust_pem, "t").unwrap() {
            roots.add(c).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let v = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        let certs: Vec<CertificateDer<'static>> = pem::certs(chain_pem, "c").unwrap();
        use rustls::client::danger::ServerCertVerifier;
        v.verify_server_cert(
            &certs[0],
            &certs[1..],
            &crate::tls::manager_server_name(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    /// During a rotation, a certificate from the new root's key, sent with the cross-signed
    /// intermediate, is accepted by a node trusting the old root only, both, or (once the
    /// rotation is over) the new one only; an old certificate is accepted until then.
    #[test]
    fn cross_signed_certificates_chain_to_either_root() {
        let old = ClusterCa::generate().unwrap();
        let new = ClusterCa::generate().unwrap();
        let cross = old.cross_sign(new.cert_pem()).unwrap();
        let (_, rotated) = node_cert(&new, "n1", &cross);
        let (_, before) = node_cert(&old, "n2", "");
        let both = format!("{}{}", old.cert_pem(), new.cert_pem());
        accepted(old.cert_pem(), &rotated).unwrap();
        accepted(&both, &rotated).unwrap();
        accepted(new.cert_pem(), &rotated).unwrap();
        accepted(&both, &before).unwrap();
        accepted(old.cert_pem(), &before).unwrap();
        assert!(accepted(new.cert_pem(), &before).is_err());
        // Without the intermediate, only the new root vouches for it.
        let (_, bare) = node_cert(&new, "n3", "");
        assert!(accepted(old.cert_pem(), &bare).is_err());
        accepted(&both, &bare).unwrap();
    }

    /// The issuer a node reports is the key that signed its certificate, whichever
    /// certificate names that key.
    #[test]
    fn the_issuer_of_a_certificate_is_the_key_that_signed_it() {
        let old = ClusterCa::generate().unwrap();
        let new = ClusterCa::generate().unwrap();
        let cross = old.cross_sign(new.cert_pem()).unwrap();
        let want_new = issuer_info_of_ca(new.cert_pem()).unwrap();
        let want_old = issuer_info_of_ca(old.cert_pem()).unwrap();
        assert_ne!(want_new, want_old);
        assert_eq!(issuer_info_of_ca(&cross).unwrap(), want_new);
        let (_, rotated) = node_cert(&new, "n1", &cross);
        assert_eq!(
            issuer_of_cert(&rotated, old.cert_pem()),
            Some(want_new.clone())
        );
        let (_, before) = node_cert(&old, "n2", "");
        let both = format!("{}{}", old.cert_pem(), new.cert_pem());
        assert_eq!(issuer_of_cert(&before, &both), Some(want_old));
        let (_, bare) = node_cert(&new, "n3", "");
        assert_eq!(issuer_of_cert(&bare, &both), Some(want_new));
        assert_eq!(issuer_of_cert(&bare, old.cert_pem()), None);
    }

    /// Made by `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes
    /// -days 36500 -subj /DC=com/DC=example/CN=Root\ CA`: a valid root whose subject
    /// repeats an attribute type, which rcgen cannot write back byte for byte.
    const REPEATED_DC_CERT: &str = "\
-----BEGIN CERTIFICATE-----
MIIB2DCCAX2gAwIBAgIUVfZ1MHtIAngFtIWo4Aq+Gb9tGE0wCgYIKoZIzj0EAwIw
QDETMBEGCgmSJomT8ixkARkWA2NvbTEXMBUGCgmSJomT8ixkARkWB2V4YW1wbGUx
EDAOBgNVBAMMB1Jvb3QgQ0EwIBcNMjYxMTI4MDExMTAzWhgPMjEyNjExMDQwMTEx
MDNaMEAxEzARBgoJkiaJk/IsZAEZFgNjb20xFzAVBgoJkiaJk/IsZAEZFgdleGFt
cGxlMRAwDgYDVQQDDAdSb290IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE
fSPIdwXhYC/PrC/PSUpKPLCi8kXLc9Dpm06jHra27G08zZ89AF65lxP8A/uo3H2d
rOoUaBs5TKilC7BKzhbjQ6NTMFEwHQYDVR0OBBYEFDXmCFRhIImoi0ebpwMXAJ0B
j2TfMB8GA1UdIwQYMBaAFDXmCFRhIImoi0ebpwMXAJ0Bj2TfMA8GA1UdEwEB/wQF
MAMBAf8wCgYIKoZIzj0EAwIDSQAwRgIhAM9z20GG+++3USHz9WoBz8S3qB6Wqe9U
2yDLJcWkLzgpAiEA9HhZGLKoMcDnHyEZLHpmGlGhqhqMfEbJQd1IVx9xex0=
-----END CERTIFICATE-----
";
    const REPEATED_DC_KEY: &str = "\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgktlNXaY6TsDJkBwf
GdC1UJAIfBChjj2qBnRxkFcwT8ahRANCAAR9I8h3BeFgL8+sL89JSko8sKLyRctz
0OmbTqMetrbsbTzNnz0AXrmXE/wD+6jcfZ2s6hRoGzlMqKULsErOFuND
-----END PRIVATE KEY-----
";
    /// The same with `-subj "/C=US/O=Example Org/CN=Example Root"` (mixed string types).
    const OPENSSL_CERT: &str = "\
-----BEGIN CERTIFICATE-----
MIIBzDCCAXGgAwIBAgIUHePivx3Irbg2UdFpBQR3GllcgBkwCgYIKoZIzj0EAwIw
OjELMAkGA1UEBhMCVVMxFDASBgNVBAoMC0V4YW1wbGUgT3JnMRUwEwYDVQQDDAxF
eGFtcGxlIFJvb3QwIBcNMjYxMTI4MDExMTA0WhgPMjEyNjExMDQwMTExMDRaMDox
CzAJBgNVBAYTAlVTMRQwEgYDVQQKDAtFeGFtcGxlIE9yZzEVMBMGA1UEAwwMRXhh
bXBsZSBSb290MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYnz3P4cAUjYygXHg
tMlVOknzeN7EcnaAPAMmk+PgYbKBk258vE0xgPgolX13s0VPQmmWaOdYCM6BpxJx
oczC6KNTMFEwHQYDVR0OBBYEFHKiG5voFT+FeXx9ThLWc84B7nMmMB8GA1UdIwQY
MBaAFHKiG5voFT+FeXx9ThLWc84B7nMmMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZI
zj0EAwIDSQAwRgIhAN+Rl/mlgQraas9y2jsQGdn9gc3G5nlM9/HDX8Dhq32EAiEA
34UBjy4fVqLNM8w2rxsGgje03ZXMyjTmtCJ4dUSL3QE=
-----END CERTIFICATE-----
";
    const OPENSSL_KEY: &str = "\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgVyFkW8uHFmoBa9R1
BtWPj4UHUX3KUkJRvLLuIZAotSChRANCAARifPc/hwBSNjKBceC0yVU6SfN43sRy
doA8AyaT4+BhsoGTbny8TTGA+CiVfXezRU9CaZZo51gIzoGnEnGhzMLo
-----END PRIVATE KEY-----
";

    /// A root whose subject shoal cannot copy into what it signs is refused: nodes would
    /// never hold a certificate naming it as issuer and the rotation would never end.
    /// Another root made by openssl is taken, and what it signs chains to either root.
    #[test]
    fn a_root_whose_certificates_would_not_chain_is_refused() {
        let current = ClusterCa::generate().unwrap();
        let err = current
            .check_new_root(REPEATED_DC_CERT, REPEATED_DC_KEY)
            .unwrap_err();
        assert!(
            err.starts_with("certificates signed by the new root CA do not chain to it: "),
            "{err}"
        );
        assert!(err.contains("one value per attribute type"), "{err}");
        assert!(matches!(
            current.cross_sign(REPEATED_DC_CERT),
            Err(CaError::CrossSignedMismatch)
        ));
        assert_eq!(
            CaError::CrossSignedMismatch.to_string(),
            "invalid intermediate chain - the first intermediate must have the same subject and public key as the signing cert"
        );

        let new = current.check_new_root(OPENSSL_CERT, OPENSSL_KEY).unwrap();
        let cross = current.cross_sign(new.cert_pem()).unwrap();
        let (_, rotated) = node_cert(&new, "n1", &cross);
        accepted(current.cert_pem(), &rotated).unwrap();
        accepted(new.cert_pem(), &rotated).unwrap();
        assert_eq!(
            issuer_of_cert(&rotated, current.cert_pem()),
            Some(issuer_info_of_ca(new.cert_pem()).unwrap())
        );
    }

    /// A root given by the user is checked as swarmkit checks it.
    #[test]
    fn a_given_root_is_checked() {
        let current = ClusterCa::generate().unwrap();
        let new = ClusterCa::generate().unwrap();
        assert!(current
            .check_new_root(new.cert_pem(), new.key_pem())
            .is_ok());
        let err = |c: &str, k: &str| current.check_new_root(c, k).unwrap_err();
        assert_eq!(
            err(
                &format!("{}{}", new.cert_pem(), current.cert_pem()),
                new.key_pem()
            ),
            "the desired CA certificate cannot contain multiple certificates"
        );
        assert_eq!(
            err(new.cert_pem(), current.key_pem()),
            "certificate key mismatch"
        );
        assert_eq!(
            err(current.cert_pem(), current.key_pem()),
            "Cannot update to a cert with an identical key"
        );
        let soon = ClusterCa::generate_valid_for(Duration::from_secs(300 * 24 * 3600)).unwrap();
        assert_eq!(
            err(soon.cert_pem(), soon.key_pem()),
            "CA certificate expires too soon"
        );
        // A node certificate is no root.
        let (key, leaf) = current.issue_node("n1", Role::Worker, CLUSTER).unwrap();
        assert!(err(&leaf, &key).starts_with("error while validating Root CA Certificate"));
    }
}
