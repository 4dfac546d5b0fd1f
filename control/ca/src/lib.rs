//! Shoal's cluster CA: root certificate, node certificates, join tokens and mTLS configs.
//!
//! Mirrors Docker swarmkit: one self-signed root (`CN=swarm-ca`) signs every node's
//! certificate, whose CN is the node id, OU its role and O the cluster id. A joining node
//! pins the root by the digest carried in its join token (`SWMTKN-1-<digest>-<secret>`).

mod base36;
mod ca;
mod error;
mod pem;
mod rotation;
pub mod seal;
pub mod tls;
mod token;

pub use ca::{
    ca_digest, identity_of_cert, identity_of_pem, new_node_key, renewal_time, validity_of_pem,
    ClusterCa, NodeIdentity, Role, CA_COMMON_NAME, CA_VALIDITY, NODE_CERT_VALIDITY,
};
pub use error::CaError;
pub use pem::{encode as pem_encode, normalize_certs};
pub use rotation::{chains_to, issuer_info_of_ca, issuer_of_cert, IssuerInfo, MIN_ROOT_EXPIRATION};
pub use token::{JoinToken, TokenError, DIGEST_LEN, SECRET_LEN, TOKEN_PREFIX};
