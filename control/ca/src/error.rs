//! The error type of the CA, certificate and TLS-configuration functions.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CaError {
    #[error("{what}: no PEM block of type {expected} found")]
    PemMissing {
        what: &'static str,
        expected: &'static str,
    },
    #[error("{what}: malformed PEM: {reason}")]
    PemMalformed { what: &'static str, reason: String },
    #[error("{what}: cannot parse X.509 certificate: {reason}")]
    CertParse { what: &'static str, reason: String },
    #[error("certificate has no {0} in its subject")]
    MissingSubjectField(&'static str),
    #[error("certificate OU {0:?} is not a swarm role (expected swarm-manager or swarm-worker)")]
    UnknownRole(String),
    #[error("CA certificate is not a CA (basic constraints CA:TRUE missing)")]
    NotACa,
    #[error("CA private key does not match the CA certificate's public key")]
    KeyMismatch,
    #[error("{what}: {source}")]
    Rcgen {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("invalid node id {0:?}: expected 1-63 characters of [A-Za-z0-9-]")]
    InvalidNodeId(String),
    #[error("invalid cluster id {0:?}: expected 1-64 printable ASCII characters")]
    InvalidClusterId(String),
    #[error("invalid CA digest {0:?}: expected 50 base36 characters")]
    InvalidDigest(String),
    #[error("cannot compute certificate validity: {0}")]
    Clock(String),
    #[error("{what}: {source}")]
    Tls {
        what: &'static str,
        #[source]
        source: rustls::Error,
    },
    /// swarmkit's words for a cross-signed certificate that is not the new root's twin.
    #[error("invalid intermediate chain - the first intermediate must have the same subject and public key as the signing cert")]
    CrossSignedMismatch,
    #[error("{what}: {source}")]
    Verifier {
        what: &'static str,
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
}
