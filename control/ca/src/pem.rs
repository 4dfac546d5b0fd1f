//! PEM decoding to rustls DER types, and encoding of DER certificates back to PEM.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::CaError;

/// All certificates in `pem_text`, in order; at least one.
pub(crate) fn certs(
    pem_text: &str,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, CaError> {
    let certs = CertificateDer::pem_slice_iter(pem_text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| malformed(what, e))?;
    if certs.is_empty() {
        return Err(CaError::PemMissing {
            what,
            expected: "CERTIFICATE",
        });
    }
    Ok(certs)
}

/// The first certificate in `pem_text`.
pub(crate) fn first_cert(
    pem_text: &str,
    what: &'static str,
) -> Result<CertificateDer<'static>, CaError> {
    let mut all = certs(pem_text, what)?;
    Ok(all.swap_remove(0))
}

/// The private key (PKCS#8, SEC1 or PKCS#1) in `pem_text`.
pub(crate) fn private_key(
    pem_text: &str,
    what: &'static str,
) -> Result<PrivateKeyDer<'static>, CaError> {
    PrivateKeyDer::from_pem_slice(pem_text.as_bytes()).map_err(|e| match e {
        pem::Error::NoItemsFound => CaError::PemMissing {
            what,
            expected: "PRIVATE KEY",
        },
        other => malformed(what, other),
    })
}

/// `der` as a "CERTIFICATE" PEM block with 64-column lines.
pub(crate) fn encode_cert(der: &[u8]) -> String {
    encode("CERTIFICATE", der)
}

/// Every certificate of `pem_text`, re-encoded from its DER in canonical PEM (LF line
/// endings, 64 columns, a newline after each block, nothing around them): swarmkit's
/// `NormalizePEMs`, so that the same certificates are the same text.
pub fn normalize_certs(pem_text: &str) -> Result<String, CaError> {
    Ok(certs(pem_text, "certificate")?
        .iter()
        .map(|c| encode_cert(c))
        .collect())
}

/// `bytes` as a PEM block labelled `label`, with 64-column lines.
pub fn encode(label: &str, bytes: &[u8]) -> String {
    let b64 = STANDARD.encode(bytes);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 32);
    out.push_str(&format!("-----BEGIN {label}-----\n"));
    // Base64 output is ASCII, so splitting at byte offsets is safe.
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn malformed(what: &'static str, e: pem::Error) -> CaError {
    CaError::PemMalformed {
        what,
        reason: e.to_string(),
    }
}
