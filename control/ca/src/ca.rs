//! The cluster root CA, node key/CSR generation, node-certificate signing and identity reading.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
    PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::x509::AttributeTypeAndValue;

use crate::error::CaError;
use crate::{base36, pem};

/// Subject CN of the root certificate, as in swarmkit.
pub const CA_COMMON_NAME: &str = "swarm-ca";
/// Root certificate lifetime: 20 years (swarmkit's `RootCAExpiration`, 630720000s).
pub const CA_VALIDITY: Duration = Duration::from_secs(630_720_000);
/// Node certificate lifetime: 2160h, i.e. 90 days (swarmkit's default `NodeCertExpiry`).
pub const NODE_CERT_VALIDITY: Duration = Duration::from_secs(2160 * 3600);
/// Certificates start this long before "now" so that peers with a slightly slow clock
/// accept them at once (swarmkit's `CertBackdate`).
const CERT_BACKDATE: Duration = Duration::from_secs(3600);

/// The role a node certificate grants; carried in the subject OU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Worker,
    Manager,
}

impl Role {
    /// The lowercase name: "worker" or "manager".
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::Manager => "manager",
        }
    }

    /// The subject OU and DNS SAN for this role: "swarm-worker" or "swarm-manager".
    pub fn ou(self) -> &'static str {
        match self {
            Role::Worker => "swarm-worker",
            Role::Manager => "swarm-manager",
        }
    }

    fn from_ou(ou: &str) -> Result<Self, CaError> {
        match ou {
            "swarm-worker" => Ok(Role::Worker),
            "swarm-manager" => Ok(Role::Manager),
            other => Err(CaError::UnknownRole(other.to_string())),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = CaError;

    /// Accepts "worker" or "manager".
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "worker" => Ok(Role::Worker),
            "manager" => Ok(Role::Manager),
            other => Err(CaError::UnknownRole(other.to_string())),
        }
    }
}

/// Who a node certificate says its holder is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeIdentity {
    /// Subject CN.
    pub node_id: String,
    /// From the subject OU.
    pub role: Role,
    /// Subject O.
    pub cluster_id: String,
}

/// The cluster's root CA: its certificate and the private key that signs node certificates.
pub struct ClusterCa {
    cert_pem: String,
    key_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for ClusterCa {
    // Never print the private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCa")
            .field("digest", &self.digest())
            .finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// A fresh self-signed root: CN "swarm-ca", ECDSA P-256, valid 20 years.
    pub fn generate() -> Result<Self, CaError> {
        Self::generate_valid_for(CA_VALIDITY)
    }

    /// A fresh self-signed root valid for `lifetime`.
    pub(crate) fn generate_valid_for(lifetime: Duration) -> Result<Self, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_err("CA key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, CA_COMMON_NAME);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        (params.not_before, params.not_after) = validity(lifetime)?;
        params.serial_number = Some(random_serial());
        let cert = params
            .self_signed(&key)
            .map_err(rcgen_err("self-signing CA certificate"))?;
        Self::from_pem(&cert.pem(), &key.serialize_pem())
    }

    /// Loads a root from its certificate and PKCS#8 private key, checking that the
    /// certificate is a CA and that the key belongs to it.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CaError> {
        const WHAT: &str = "CA certificate";
        let cert_der = pem::first_cert(cert_pem, WHAT)?;
        let cert = parse_cert(&cert_der, WHAT)?;
        let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
        if !is_ca {
            return Err(CaError::NotACa);
        }
        let key = KeyPair::from_pem(key_pem).map_err(rcgen_err("CA private key"))?;
        if key.public_key_raw() != cert.public_key().subject_public_key.data.as_ref() {
            return Err(CaError::KeyMismatch);
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)
            .map_err(rcgen_err("loading CA certificate as issuer"))?;
        Ok(Self {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
            cert_der,
            issuer,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// The root's digest as carried in join tokens; see [`ca_digest`].
    pub fn digest(&self) -> String {
        digest_of_der(&self.cert_der)
    }

    /// Signs a node CSR (PEM). Only the CSR's public key is used (after checking the CSR's
    /// self-signature); subject and SANs are set by the CA:
    /// CN=node_id, OU="swarm-manager"|"swarm-worker", O=cluster_id, DNS SANs for the role
    /// name and the node id, server+client auth, valid 90 days. Returns the certificate PEM.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        node_id: &str,
        role: Role,
        cluster_id: &str,
    ) -> Result<String, CaError> {
        self.sign_csr_valid_for(csr_pem, node_id, role, cluster_id, NODE_CERT_VALIDITY)
    }

    /// `sign_csr` with the swarm's certificate lifetime (`swarm init/update --cert-expiry`).
    pub fn sign_csr_valid_for(
        &self,
        csr_pem: &str,
        node_id: &str,
        role: Role,
        cluster_id: &str,
        lifetime: Duration,
    ) -> Result<String, CaError> {
        check_node_id(node_id)?;
        check_cluster_id(cluster_id)?;
        let csr =
            CertificateSigningRequestParams::from_pem(csr_pem).map_err(rcgen_err("node CSR"))?;

        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, node_id);
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, role.ou());
        params
            .distinguished_name
            .push(DnType::OrganizationName, cluster_id);
        params.subject_alt_names = vec![dns_san(role.ou())?, dns_san(node_id)?];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        (params.not_before, params.not_after) = validity(lifetime)?;
        params.serial_number = Some(random_serial());
        let cert = params
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(rcgen_err("signing node certificate"))?;
        Ok(cert.pem())
    }

    /// Convenience for a node whose key the CA holder creates itself (the first manager):
    /// a fresh key and its signed certificate, as `(key_pem, cert_pem)`.
    pub fn issue_node(
        &self,
        node_id: &str,
        role: Role,
        cluster_id: &str,
    ) -> Result<(String, String), CaError> {
        let (key_pem, csr_pem) = new_node_key()?;
        let cert_pem = self.sign_csr(&csr_pem, node_id, role, cluster_id)?;
        Ok((key_pem, cert_pem))
    }
}

/// A fresh ECDSA P-256 key for a node and a CSR for it, as `(key_pem, csr_pem)`.
/// The CSR carries no subject: the CA decides the node's identity.
pub fn new_node_key() -> Result<(String, String), CaError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_err("node key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .map_err(rcgen_err("node CSR"))?;
    let csr_pem = csr.pem().map_err(rcgen_err("node CSR PEM"))?;
    Ok((key.serialize_pem(), csr_pem))
}

/// sha256 of the (first) certificate's DER in `cert_pem`, base36 lowercase, left-padded
/// with '0' to 50 characters: the digest format of swarmkit join tokens.
pub fn ca_digest(cert_pem: &str) -> Result<String, CaError> {
    let der = pem::first_cert(cert_pem, "CA certificate")?;
    Ok(digest_of_der(&der))
}

pub(crate) fn digest_of_der(der: &[u8]) -> String {
    base36::encode_padded(&Sha256::digest(der), crate::token::DIGEST_LEN)
}

/// Node id (CN), role (OU) and cluster id (O) of a DER certificate. Does not verify the
/// certificate: use it on certificates a TLS handshake has already verified.
pub fn identity_of_cert(der: &[u8]) -> Result<NodeIdentity, CaError> {
    let cert = parse_cert(der, "node certificate")?;
    let subject = cert.subject();
    let node_id = first_attr(subject.iter_common_name(), "CN (node id)")?;
    let ou = first_attr(subject.iter_organizational_unit(), "OU (role)")?;
    let cluster_id = first_attr(subject.iter_organization(), "O (cluster id)")?;
    Ok(NodeIdentity {
        node_id: node_id.to_string(),
        role: Role::from_ou(ou)?,
        cluster_id: cluster_id.to_string(),
    })
}

/// [`identity_of_cert`] of the first certificate in `cert_pem`.
pub fn identity_of_pem(cert_pem: &str) -> Result<NodeIdentity, CaError> {
    identity_of_cert(&pem::first_cert(cert_pem, "node certificate")?)
}

/// A certificate's `(not before, not after)`.
pub fn validity_of_pem(cert_pem: &str) -> Result<(SystemTime, SystemTime), CaError> {
    let der = pem::first_cert(cert_pem, "node certificate")?;
    let cert = parse_cert(&der, "node certificate")?;
    let at = |t: x509_parser::time::ASN1Time| {
        let secs = u64::try_from(t.timestamp()).unwrap_or(0);
        UNIX_EPOCH + Duration::from_secs(secs)
    };
    Ok((
        at(cert.validity().not_before),
        at(cert.validity().not_after),
    ))
}

/// When a node renews a certificate valid `(not_before, not_after)`: as swarmkit, at a
/// random point (`fraction` in 0..1) between 50% and 80% of its lifetime, so that the
/// nodes of a swarm do not all renew at once. The lifetime counts from issuance, not
/// from the backdated start: a short `--cert-expiry` would otherwise be due at once.
pub fn renewal_time(not_before: SystemTime, not_after: SystemTime, fraction: f64) -> SystemTime {
    let issued = not_before
        .checked_add(CERT_BACKDATE)
        .unwrap_or(not_before)
        .min(not_after);
    let life = not_after.duration_since(issued).unwrap_or_default();
    issued + life.mul_f64(0.5 + 0.3 * fraction.clamp(0.0, 1.0))
}

pub(crate) fn parse_cert<'a>(
    der: &'a [u8],
    what: &'static str,
) -> Result<X509Certificate<'a>, CaError> {
    let (rest, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| CaError::CertParse {
            what,
            reason: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(CaError::CertParse {
            what,
            reason: format!("{} trailing bytes after the certificate", rest.len()),
        });
    }
    Ok(cert)
}

fn first_attr<'a, 'b: 'a>(
    mut attrs: impl Iterator<Item = &'a AttributeTypeAndValue<'b>>,
    field: &'static str,
) -> Result<&'a str, CaError> {
    attrs
        .next()
        .and_then(|attr| attr.as_str().ok())
        .ok_or(CaError::MissingSubjectField(field))
}

/// Node ids become a DNS SAN, so they must be a valid DNS label.
fn check_node_id(node_id: &str) -> Result<(), CaError> {
    let valid = (1..=63).contains(&node_id.len())
        && node_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !node_id.starts_with('-')
        && !node_id.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(CaError::InvalidNodeId(node_id.to_string()))
    }
}

/// X.520 caps O at 64 characters; printable ASCII keeps the subject unambiguous.
fn check_cluster_id(cluster_id: &str) -> Result<(), CaError> {
    let valid =
        (1..=64).contains(&cluster_id.len()) && cluster_id.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        Ok(())
    } else {
        Err(CaError::InvalidClusterId(cluster_id.to_string()))
    }
}

fn dns_san(name: &str) -> Result<SanType, CaError> {
    let ia5 = name.try_into().map_err(rcgen_err("DNS SAN"))?;
    Ok(SanType::DnsName(ia5))
}

/// `(now - backdate, now + lifetime)`.
fn validity(lifetime: Duration) -> Result<(OffsetDateTime, OffsetDateTime), CaError> {
    let now = SystemTime::now();
    let start = now.checked_sub(CERT_BACKDATE).unwrap_or(now);
    let end = now.checked_add(lifetime).unwrap_or(now);
    Ok((to_offset(start)?, to_offset(end)?))
}

pub(crate) fn to_offset(t: SystemTime) -> Result<OffsetDateTime, CaError> {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| CaError::Clock("system time is before 1970".to_string()))?
        .as_secs();
    let secs = i64::try_from(secs).map_err(|e| CaError::Clock(e.to_string()))?;
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| CaError::Clock(e.to_string()))
}

/// 20 random bytes, positive (RFC 5280 allows at most 20 octets).
pub(crate) fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 20];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01; // never leading zero, so the encoding stays 20 octets
    SerialNumber::from_slice(&bytes)
}

pub(crate) fn rcgen_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> CaError {
    move |source| CaError::Rcgen { what, source }
}

#[cfg(test)]
mod tests {
    use x509_parser::extensions::GeneralName;

    use super::*;

    const CLUSTER: &str = "c1uster1d";

    fn dns_sans(cert_pem: &str) -> Vec<String> {
        let der = pem::first_cert(cert_pem, "test").unwrap();
        let cert = parse_cert(&der, "test").unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        san.value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_string()),
                _ => None,
            })
            .collect()
    }

    /// A signed CSR reads back as the identity the CA gave it, whatever the CSR asked for.
    #[test]
    fn signed_cert_carries_the_assigned_identity() {
        let ca = ClusterCa::generate().unwrap();
        let (_key, csr) = new_node_key().unwrap();
        let cert = ca
            .sign_csr(&csr, "node1abc", Role::Manager, CLUSTER)
            .unwrap();
        let id = identity_of_pem(&cert).unwrap();
        assert_eq!(
            id,
            NodeIdentity {
                node_id: "node1abc".into(),
                role: Role::Manager,
                cluster_id: CLUSTER.into()
            }
        );
        assert_eq!(dns_sans(&cert), ["swarm-manager", "node1abc"]);
    }

    /// A worker certificate can never pass as a manager's server certificate.
    #[test]
    fn worker_cert_has_no_manager_san() {
        let ca = ClusterCa::generate().unwrap();
        let (_key, csr) = new_node_key().unwrap();
        let cert = ca.sign_csr(&csr, "w0rker", Role::Worker, CLUSTER).unwrap();
        assert_eq!(identity_of_pem(&cert).unwrap().role, Role::Worker);
        let sans = dns_sans(&cert);
        assert!(!sans.iter().any(|s| s == "swarm-manager"), "{sans:?}");
        assert_eq!(sans, ["swarm-worker", "w0rker"]);
    }

    #[test]
    fn node_cert_validity_is_90_days_and_ca_20_years() {
        let ca = ClusterCa::generate().unwrap();
        let (_key, node) = ca.issue_node("n1", Role::Worker, CLUSTER).unwrap();
        let lifetime = |pem_text: &str| {
            let der = pem::first_cert(pem_text, "test").unwrap();
            let cert = parse_cert(&der, "test").unwrap();
            let v = cert.validity();
            (v.not_after.timestamp() - v.not_before.timestamp()) as u64
        };
        let backdate = CERT_BACKDATE.as_secs();
        assert_eq!(lifetime(&node), NODE_CERT_VALIDITY.as_secs() + backdate);
        assert_eq!(lifetime(ca.cert_pem()), CA_VALIDITY.as_secs() + backdate);
    }

    #[test]
    fn ca_round_trips_through_pem() {
        let ca = ClusterCa::generate().unwrap();
        let again = ClusterCa::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
        assert_eq!(again.digest(), ca.digest());
        let (_key, csr) = new_node_key().unwrap();
        let cert = again.sign_csr(&csr, "n2", Role::Worker, CLUSTER).unwrap();
        assert_eq!(identity_of_pem(&cert).unwrap().node_id, "n2");
    }

    #[test]
    fn from_pem_rejects_mismatched_key_and_non_ca() {
        let a = ClusterCa::generate().unwrap();
        let b = ClusterCa::generate().unwrap();
        assert!(matches!(
            ClusterCa::from_pem(a.cert_pem(), b.key_pem()),
            Err(CaError::KeyMismatch)
        ));
        let (key, cert) = a.issue_node("n1", Role::Manager, CLUSTER).unwrap();
        assert!(matches!(
            ClusterCa::from_pem(&cert, &key),
            Err(CaError::NotACa)
        ));
        assert!(matches!(
            ClusterCa::from_pem("garbage", a.key_pem()),
            Err(CaError::PemMissing { .. })
        ));
        assert!(ClusterCa::from_pem(a.cert_pem(), "garbage").is_err());
    }

    #[test]
    fn digest_is_50_base36_stable_and_per_ca() {
        let a = ClusterCa::generate().unwrap();
        let b = ClusterCa::generate().unwrap();
        let d = a.digest();
        assert_eq!(d.len(), 50);
        assert!(base36::is_base36(&d));
        assert_eq!(ca_digest(a.cert_pem()).unwrap(), d);
        assert_eq!(a.digest(), d);
        assert_ne!(b.digest(), d);
    }

    #[test]
    fn sign_csr_rejects_bad_input() {
        let ca = ClusterCa::generate().unwrap();
        let (_key, csr) = new_node_key().unwrap();
        assert!(matches!(
            ca.sign_csr("not a csr", "n1", Role::Worker, CLUSTER),
            Err(CaError::Rcgen { .. })
        ));
        for bad in ["", "-n", "n_1", "n 1", &"x".repeat(64)] {
            assert!(
                matches!(
                    ca.sign_csr(&csr, bad, Role::Worker, CLUSTER),
                    Err(CaError::InvalidNodeId(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            ca.sign_csr(&csr, "n1", Role::Worker, ""),
            Err(CaError::InvalidClusterId(_))
        ));
    }

    #[test]
    fn identity_rejects_garbage_and_foreign_certs() {
        assert!(identity_of_cert(b"\x30\x03junk").is_err());
        assert!(identity_of_pem("").is_err());
        let ca = ClusterCa::generate().unwrap();
        // The CA certificate has a CN but no OU/O.
        assert!(matches!(
            identity_of_pem(ca.cert_pem()),
            Err(CaError::MissingSubjectField(_))
        ));
    }

    #[test]
    fn role_names() {
        assert_eq!(Role::Manager.to_string(), "manager");
        assert_eq!("worker".parse::<Role>().unwrap(), Role::Worker);
        assert!("Manager".parse::<Role>().is_err());
        assert_eq!(serde_json::to_string(&Role::Worker).unwrap(), "\"worker\"");
        let manager: Role = serde_json::from_str("\"manager\"").unwrap();
        assert_eq!(manager, Role::Manager);
    }

    /// A certificate signed for a given lifetime says so; it is renewed between 50% and
    /// 80% of that lifetime, counted from issuance (not the backdated start).
    #[test]
    fn certificates_carry_their_lifetime_and_renew_within_it() {
        let ca = ClusterCa::generate().unwrap();
        let (_, csr) = crate::new_node_key().unwrap();
        let life = Duration::from_secs(7200);
        let cert = ca
            .sign_csr_valid_for(&csr, "n1", Role::Worker, CLUSTER, life)
            .unwrap();
        let (from, until) = validity_of_pem(&cert).unwrap();
        assert_eq!(
            until.duration_since(from).unwrap().as_secs(),
            life.as_secs() + CERT_BACKDATE.as_secs()
        );
        let issued = from + CERT_BACKDATE;
        assert_eq!(renewal_time(from, until, 0.0), issued + life / 2);
        assert_eq!(renewal_time(from, until, 1.0), issued + life.mul_f64(0.8));
        // A 20 s certificate is not due at once.
        let short = ca
            .sign_csr_valid_for(&csr, "n1", Role::Worker, CLUSTER, Duration::from_secs(20))
            .unwrap();
        let (from, until) = validity_of_pem(&short).unwrap();
        assert!(renewal_time(from, until, 0.0) > SystemTime::now());
        assert!(renewal_time(from, until, 1.0) < until);
    }
}
