//! rustls configurations for node-to-node mTLS and for the joining node's pinned-CA handshake.
//!
//! Managers listen with [`server_config`]: they present `[node cert, CA cert]` and accept
//! clients with or without a certificate, because a joining node has none yet. Handlers
//! must therefore check [`peer_identity`] themselves: `None` means an unauthenticated
//! joiner that may only present a join token. Clients connect with the server name
//! [`MANAGER_SERVER_NAME`] (see [`manager_server_name`]), so only certificates with the
//! `swarm-manager` SAN, i.e. managers', are accepted as servers.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, CommonState, DigitallySignedStruct, OtherError, RootCertStore,
    ServerConfig, SignatureScheme,
};

use crate::ca::{digest_of_der, identity_of_cert, NodeIdentity};
use crate::error::CaError;
use crate::token::DIGEST_LEN;
use crate::{base36, pem};

/// The DNS SAN every manager certificate carries and clients verify.
pub const MANAGER_SERVER_NAME: &str = "swarm-manager";

/// [`MANAGER_SERVER_NAME`] as the `ServerName` to pass to `TlsConnector::connect`.
pub fn manager_server_name() -> ServerName<'static> {
    ServerName::DnsName(
        rustls::pki_types::DnsName::try_from(MANAGER_SERVER_NAME)
            .expect("MANAGER_SERVER_NAME is a valid DNS name")
            .to_owned(),
    )
}

/// Server side of a manager's port 2377: presents `[node cert, CA cert]`; client
/// certificates are optional but, when presented, must chain to the cluster CA.
pub fn server_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<ServerConfig>, CaError> {
    let provider = provider();
    let roots = Arc::new(root_store(ca_pem)?);
    let client_verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|source| CaError::Verifier {
            what: "building client-certificate verifier",
            source,
        })?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err("choosing TLS versions"))?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(
            chain(ca_pem, cert_pem)?,
            pem::private_key(key_pem, "node key")?,
        )
        .map_err(tls_err("loading node certificate and key"))?;
    Ok(Arc::new(config))
}

/// Normal mTLS client: trusts only the cluster CA and presents `[node cert, CA cert]`.
/// Connect with [`manager_server_name`].
pub fn client_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<ClientConfig>, CaError> {
    let provider = provider();
    let verifier = WebPkiServerVerifier::builder_with_provider(
        Arc::new(root_store(ca_pem)?),
        provider.clone(),
    )
    .build()
    .map_err(|source| CaError::Verifier {
        what: "building server-certificate verifier",
        source,
    })?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err("choosing TLS versions"))?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(
            chain(ca_pem, cert_pem)?,
            pem::private_key(key_pem, "node key")?,
        )
        .map_err(tls_err("loading node certificate and key"))?;
    Ok(Arc::new(config))
}

/// Client for a node that holds only a join token: no client certificate, and the server
/// is trusted only if the last certificate of its chain is a CA whose [`crate::ca_digest`]
/// is `expected_digest` and its leaf verifies against that CA for [`MANAGER_SERVER_NAME`]
/// (whatever server name the caller connected with).
///
/// After the handshake the pinned CA is the last entry of `peer_certificates()`; use
/// [`peer_ca_pem`] to get it as PEM, to store and pass to [`client_config`] later.
pub fn join_client_config(expected_digest: &str) -> Result<Arc<ClientConfig>, CaError> {
    if expected_digest.len() != DIGEST_LEN || !base36::is_base36(expected_digest) {
        return Err(CaError::InvalidDigest(expected_digest.to_string()));
    }
    let provider = provider();
    let verifier = PinnedCaVerifier {
        expected_digest: expected_digest.to_string(),
        provider: provider.clone(),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err("choosing TLS versions"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Identity in the peer's leaf certificate, or `None` if it presented none (or one that is
/// not a node certificate). Meaningful only on a completed handshake with these configs,
/// which verified the certificate. Takes a `ServerConnection`/`ClientConnection` by deref.
pub fn peer_identity(conn: &CommonState) -> Option<NodeIdentity> {
    let leaf = conn.peer_certificates()?.first()?;
    identity_of_cert(leaf).ok()
}

/// The CA certificate (PEM) at the end of the peer's chain, if it sent more than a leaf.
/// After a [`join_client_config`] handshake this is the pinned, verified cluster CA.
pub fn peer_ca_pem(conn: &CommonState) -> Option<String> {
    match conn.peer_certificates()? {
        [_leaf, .., ca] => Some(pem::encode_cert(ca)),
        _ => None,
    }
}

/// Always the ring provider, never a process-wide default someone else installed.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

pub(crate) fn root_store(ca_pem: &str) -> Result<RootCertStore, CaError> {
    let mut roots = RootCertStore::empty();
    for cert in pem::certs(ca_pem, "CA certificate")? {
        roots
            .add(cert)
            .map_err(tls_err("adding CA to trust store"))?;
    }
    Ok(roots)
}

/// The certificates of `cert_pem`, followed by the CA unless `cert_pem` already ends in it.
fn chain(ca_pem: &str, cert_pem: &str) -> Result<Vec<CertificateDer<'static>>, CaError> {
    let ca = pem::first_cert(ca_pem, "CA certificate")?;
    let mut chain = pem::certs(cert_pem, "node certificate")?;
    if chain.last() != Some(&ca) {
        chain.push(ca);
    }
    Ok(chain)
}

fn tls_err(what: &'static str) -> impl FnOnce(rustls::Error) -> CaError {
    move |source| CaError::Tls { what, source }
}

/// Verifies a manager's chain against the CA it presents itself, after pinning that CA
/// by digest (the trust-on-first-use step of joining, made safe by the token's digest).
#[derive(Debug)]
struct PinnedCaVerifier {
    expected_digest: String,
    provider: Arc<CryptoProvider>,
}

struct DigestMismatch {
    /// The join token's digest (base36).
    expected: String,
}

// rustls prints `CertificateError::Other` with `Debug`: make that the readable message.
impl std::fmt::Debug for DigestMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// swarmkit's words (ca/certificates.go GetRemoteCA): the token's digest, as the hex of
/// the sha256 it stands for.
impl std::fmt::Display for DigestMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let expected =
            base36::to_hex_padded(&self.expected, 64).unwrap_or_else(|| self.expected.clone());
        write!(
            f,
            "remote CA does not match fingerprint. Expected: {expected}"
        )
    }
}

impl std::error::Error for DigestMismatch {}

/// Why a join's TLS handshake failed, if it is that the manager's CA is not the one the
/// join token names: swarmkit's words (`remote CA does not match fingerprint. Expected:
/// <sha256 hex>`). `err` is the connection's error; the refusal is found in its chain
/// (an I/O error carrying rustls' error carrying the pinning verifier's).
pub fn ca_mismatch(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(err);
    while let Some(e) = next {
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        for candidate in [Some(e), inner].into_iter().flatten() {
            if let Some(rustls::Error::InvalidCertificate(CertificateError::Other(other))) =
                candidate.downcast_ref::<rustls::Error>()
            {
                if let Some(m) = other.0.downcast_ref::<DigestMismatch>() {
                    return Some(m.to_string());
                }
            }
        }
        next = e.source();
    }
    None
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some((ca, rest)) = intermediates.split_last() else {
            // A manager always sends its CA; without it there is nothing to pin.
            return Err(CertificateError::UnknownIssuer.into());
        };
        if digest_of_der(ca) != self.expected_digest {
            return Err(CertificateError::Other(OtherError(Arc::new(DigestMismatch {
                expected: self.expected_digest.clone(),
            })))
            .into());
        }
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(format!("pinned CA verifier: {e}")))?;
        inner.verify_server_cert(end_entity, rest, &manager_server_name(), ocsp_response, now)
    }

    // Handshake signatures depend only on the leaf's key and the algorithms, not on the
    // trust anchor: these are the same checks WebPkiServerVerifier makes.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::time::Duration;

    use sha2::Digest;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    use super::*;
    use crate::{ClusterCa, Role};

    const CLUSTER: &str = "testcluster";

    struct Node {
        key: String,
        cert: String,
    }

    fn node(ca: &ClusterCa, id: &str, role: Role) -> Node {
        let (key, cert) = ca.issue_node(id, role, CLUSTER).unwrap();
        Node { key, cert }
    }

    fn server(ca: &ClusterCa, n: &Node) -> Arc<ServerConfig> {
        server_config(ca.cert_pem(), &n.cert, &n.key).unwrap()
    }

    fn client(ca: &ClusterCa, n: &Node) -> Arc<ClientConfig> {
        client_config(ca.cert_pem(), &n.cert, &n.key).unwrap()
    }

    /// A server presenting exactly `chain_pems`, for impersonation attempts.
    fn raw_server(chain_pems: &[&str], key_pem: &str) -> Arc<ServerConfig> {
        let chain = chain_pems
            .iter()
            .map(|p| pem::first_cert(p, "test").unwrap())
            .collect();
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, pem::private_key(key_pem, "test").unwrap())
            .unwrap();
        Arc::new(config)
    }

    struct Outcome {
        /// The client identity the server saw, if the server side succeeded.
        server: io::Result<Option<NodeIdentity>>,
        /// The server identity and CA PEM the client saw, if the client side succeeded.
        client: io::Result<(Option<NodeIdentity>, Option<String>)>,
    }

    /// Handshake over an in-memory pipe, then one request/response so that a rejection
    /// the server makes after the client's TLS 1.3 handshake finished also reaches the client.
    async fn exchange(server: Arc<ServerConfig>, client: Arc<ClientConfig>) -> Outcome {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let server_side = async move {
            let mut tls = TlsAcceptor::from(server).accept(server_io).await?;
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).await?;
            tls.write_all(b"pong").await?;
            tls.flush().await?;
            Ok(peer_identity(tls.get_ref().1))
        };
        let client_side = async move {
            let mut tls = TlsConnector::from(client)
                .connect(manager_server_name(), client_io)
                .await?;
            tls.write_all(b"ping").await?;
            tls.flush().await?;
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).await?;
            let conn = tls.get_ref().1;
            Ok((peer_identity(conn), peer_ca_pem(conn)))
        };
        let both = async { tokio::join!(server_side, client_side) };
        let (server, client) = tokio::time::timeout(Duration::from_secs(20), both)
            .await
            .expect("handshake hung");
        Outcome { server, client }
    }

    /// Two managers of one cluster authenticate each other and learn each other's identity.
    #[tokio::test]
    async fn manager_to_manager_mtls() {
        let ca = ClusterCa::generate().unwrap();
        let m1 = node(&ca, "manager1", Role::Manager);
        let m2 = node(&ca, "manager2", Role::Manager);
        let out = exchange(server(&ca, &m1), client(&ca, &m2)).await;
        let seen_by_server = out.server.unwrap().expect("client presented a cert");
        assert_eq!(seen_by_server.node_id, "manager2");
        assert_eq!(seen_by_server.role, Role::Manager);
        assert_eq!(seen_by_server.cluster_id, CLUSTER);
        let (seen_by_client, ca_pem) = out.client.unwrap();
        assert_eq!(seen_by_client.unwrap().node_id, "manager1");
        assert_eq!(ca_digest_of(&ca_pem.unwrap()), ca.digest());
    }

    /// A worker may connect to a manager with its certificate.
    #[tokio::test]
    async fn worker_client_to_manager() {
        let ca = ClusterCa::generate().unwrap();
        let m = node(&ca, "manager1", Role::Manager);
        let w = node(&ca, "worker1", Role::Worker);
        let out = exchange(server(&ca, &m), client(&ca, &w)).await;
        assert_eq!(out.server.unwrap().unwrap().role, Role::Worker);
        out.client.unwrap();
    }

    /// A joining node with the right digest connects without a certificate and obtains
    /// the cluster CA, which it can then use for ordinary mTLS.
    #[tokio::test]
    async fn join_with_right_digest_gets_the_ca() {
        let ca = ClusterCa::generate().unwrap();
        let m = node(&ca, "manager1", Role::Manager);
        let joiner = join_client_config(&ca.digest()).unwrap();
        let out = exchange(server(&ca, &m), joiner).await;
        assert_eq!(out.server.unwrap(), None, "joiner has no certificate");
        let (manager, ca_pem) = out.client.unwrap();
        assert_eq!(manager.unwrap().role, Role::Manager);
        let ca_pem = ca_pem.expect("server sent its CA");
        assert_eq!(crate::ca_digest(&ca_pem).unwrap(), ca.digest());
        // The PEM we hand back is usable as a trust root.
        client_config(&ca_pem, &m.cert, &m.key).unwrap();
    }

    /// A token for another cluster does not let the joiner trust this manager.
    #[tokio::test]
    async fn join_with_wrong_digest_fails() {
        let ca = ClusterCa::generate().unwrap();
        let other = ClusterCa::generate().unwrap();
        let m = node(&ca, "manager1", Role::Manager);
        let out = exchange(
            server(&ca, &m),
            join_client_config(&other.digest()).unwrap(),
        )
        .await;
        let err = out.client.unwrap_err();
        // swarmkit's words: the token's digest as the sha256 hex of the CA it names.
        let other_der = crate::pem::first_cert(other.cert_pem(), "CA").unwrap();
        let hex: String = sha2::Sha256::digest(&other_der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            ca_mismatch(&err),
            Some(format!(
                "remote CA does not match fingerprint. Expected: {hex}"
            ))
        );
        assert!(out.server.is_err());
    }

    /// An impostor that sends the genuine CA certificate but a leaf signed by its own CA
    /// passes the digest pin and still fails chain verification.
    #[tokio::test]
    async fn join_rejects_leaf_not_signed_by_pinned_ca() {
        let ca = ClusterCa::generate().unwrap();
        let rogue_ca = ClusterCa::generate().unwrap();
        let rogue = node(&rogue_ca, "manager1", Role::Manager);
        let impostor = raw_server(&[&rogue.cert, ca.cert_pem()], &rogue.key);
        let out = exchange(impostor, join_client_config(&ca.digest()).unwrap()).await;
        let err = out.client.unwrap_err().to_string();
        assert!(err.contains("BadSignature"), "{err}");
    }

    /// Without a CA in the chain there is nothing to pin, so joining fails.
    #[tokio::test]
    async fn join_rejects_chain_without_ca() {
        let ca = ClusterCa::generate().unwrap();
        let m = node(&ca, "manager1", Role::Manager);
        let out = exchange(
            raw_server(&[&m.cert], &m.key),
            join_client_config(&ca.digest()).unwrap(),
        )
        .await;
        let err = out.client.unwrap_err().to_string();
        assert!(err.contains("UnknownIssuer"), "{err}");
    }

    /// Joiners only talk to managers: a worker's certificate lacks the swarm-manager SAN.
    #[tokio::test]
    async fn join_rejects_worker_server() {
        let ca = ClusterCa::generate().unwrap();
        let w = node(&ca, "worker1", Role::Worker);
        let out = exchange(server(&ca, &w), join_client_config(&ca.digest()).unwrap()).await;
        let err = out.client.unwrap_err().to_string();
        assert!(err.contains("not valid for name"), "{err}");
    }

    /// A client certificate from another cluster's CA is refused by the server.
    #[tokio::test]
    async fn server_rejects_client_cert_from_other_ca() {
        let ca = ClusterCa::generate().unwrap();
        let other = ClusterCa::generate().unwrap();
        let m = node(&ca, "manager1", Role::Manager);
        let stranger = node(&other, "manager2", Role::Manager);
        // The stranger trusts our CA, so only the server's check can stop it.
        let stranger_client = client_config(ca.cert_pem(), &stranger.cert, &stranger.key).unwrap();
        let out = exchange(server(&ca, &m), stranger_client).await;
        let err = out
            .server
            .expect_err("server accepted a foreign client cert");
        // Both roots are named CN=swarm-ca, so webpki reports the signature, not the issuer.
        assert!(err.to_string().contains("BadSignature"), "{err}");
        assert!(out.client.is_err());
    }

    /// An mTLS client refuses a server whose certificate is a worker's.
    #[tokio::test]
    async fn client_rejects_worker_as_server() {
        let ca = ClusterCa::generate().unwrap();
        let w = node(&ca, "worker1", Role::Worker);
        let m = node(&ca, "manager1", Role::Manager);
        let out = exchange(server(&ca, &w), client(&ca, &m)).await;
        let err = out.client.unwrap_err().to_string();
        assert!(err.contains("not valid for name"), "{err}");
        assert!(out.server.is_err());
    }

    #[test]
    fn join_client_config_validates_digest() {
        assert!(matches!(
            join_client_config("short"),
            Err(CaError::InvalidDigest(_))
        ));
        assert!(join_client_config(&"A".repeat(DIGEST_LEN)).is_err());
        assert!(join_client_config(&"a".repeat(DIGEST_LEN)).is_ok());
    }

    #[test]
    fn configs_reject_bad_pem() {
        let ca = ClusterCa::generate().unwrap();
        let m = node(&ca, "manager1", Role::Manager);
        assert!(server_config("nope", &m.cert, &m.key).is_err());
        assert!(server_config(ca.cert_pem(), "nope", &m.key).is_err());
        assert!(client_config(ca.cert_pem(), &m.cert, "nope").is_err());
        // A key that does not belong to the certificate.
        let other = node(&ca, "manager2", Role::Manager);
        assert!(server_config(ca.cert_pem(), &m.cert, &other.key).is_err());
    }

    #[test]
    fn chain_appends_ca_once() {
        let ca = ClusterCa::generate().unwrap();
        let m = node(&ca, "manager1", Role::Manager);
        assert_eq!(chain(ca.cert_pem(), &m.cert).unwrap().len(), 2);
        let bundle = format!("{}{}", m.cert, ca.cert_pem());
        assert_eq!(chain(ca.cert_pem(), &bundle).unwrap().len(), 2);
    }

    fn ca_digest_of(pem_text: &str) -> String {
        crate::ca_digest(pem_text).unwrap()
    }

    /// A certificate with another key than the one given is refused when the configs are
    /// built (the daemon checks a renewed identity this way before saving it).
    #[test]
    fn a_certificate_with_another_key_is_refused() {
        let ca = crate::ClusterCa::generate().unwrap();
        let (key, csr) = crate::new_node_key().unwrap();
        let (other_key, _) = crate::new_node_key().unwrap();
        let cert = ca.sign_csr(&csr, "n1", crate::Role::Worker, "c1").unwrap();
        assert!(server_config(ca.cert_pem(), &cert, &key).is_ok());
        assert!(server_config(ca.cert_pem(), &cert, &other_key).is_err());
        assert!(client_config(ca.cert_pem(), &cert, &other_key).is_err());
    }
}
