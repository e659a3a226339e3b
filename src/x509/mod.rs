//! X.509 certificates made natively: self-signed CAs and the leaves they
//! sign, for the `openssl-ca`/`openssl`, `cockroach*` and `x509*`
//! generators.
//!
//! OpenSSL configs of the original tool are read by [`parse_config`] and
//! [`read_request`]; everything they ask for is reproduced or refused with
//! an error naming it. rcgen frames and signs the certificates, ring does
//! the signing, and the extensions are encoded here so their criticality
//! is exactly what the config says.

mod build;
pub(crate) mod config;
pub(crate) mod crl;
mod der;
pub(crate) mod ext;
mod key;
pub(crate) mod name;
pub(crate) mod request;

pub(crate) use build::{next_serial, random_serial, self_signed, Ca, Template};
pub use config::parse_config;
pub(crate) use ext::{Ext, Extension, San, Want};
pub(crate) use key::{KeyType, PrivateKey};
pub(crate) use name::Subject;
pub use request::read_request;
pub(crate) use request::{Request, RequestError};

use x509_parser::prelude::X509Certificate;

/// Why a certificate or key could not be made or read. Messages never hold
/// key material.
#[derive(Debug, thiserror::Error)]
pub enum X509Error {
    /// A private key is unusable.
    #[error("private key {reason}")]
    Key {
        /// What is wrong with it.
        reason: String,
    },
    /// A certificate could not be read or made.
    #[error("{what} {reason}")]
    Certificate {
        /// Which certificate.
        what: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The CA key does not belong to the CA certificate.
    #[error("the CA private key does not match the CA certificate; pass the pair made together")]
    KeyMismatch,
    /// A serial file is unusable.
    #[error("serial file {reason}")]
    Serial {
        /// What is wrong with it.
        reason: String,
    },
    /// An OpenSSL config cannot be used.
    #[error("config \"{file}\", {source}")]
    Config {
        /// The workspace file.
        file: String,
        /// The problem.
        source: RequestError,
    },
}

fn parse_pem_cert(pem_text: &str, what: &'static str) -> Result<Vec<u8>, X509Error> {
    let block = pem::parse(pem_text).map_err(|_| X509Error::Certificate {
        what,
        reason: "is not PEM".into(),
    })?;
    if block.tag() != "CERTIFICATE" {
        return Err(X509Error::Certificate {
            what,
            reason: format!("is a PEM \"{}\" block, not a certificate", block.tag()),
        });
    }
    Ok(block.into_contents())
}

fn parse_der<'a>(der: &'a [u8], what: &'static str) -> Result<X509Certificate<'a>, X509Error> {
    use x509_parser::prelude::FromDer;
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|e| X509Error::Certificate {
            what,
            reason: format!("cannot be parsed: {e}"),
        })
}

/// When a PEM certificate expires (`rumor check --days`).
pub fn not_after(cert_pem: &str) -> Result<time::OffsetDateTime, X509Error> {
    let der = parse_pem_cert(cert_pem, "certificate")?;
    Ok(parse_der(&der, "certificate")?
        .validity()
        .not_after
        .to_datetime())
}

/// Whether `cert_pem` names `ca_pem`'s subject as issuer and carries a valid
/// signature by its key.
pub fn verify_signed_by(cert_pem: &str, ca_pem: &str) -> Result<bool, X509Error> {
    let (cert_der, ca_der) = (
        parse_pem_cert(cert_pem, "certificate")?,
        parse_pem_cert(ca_pem, "CA certificate")?,
    );
    let (cert, ca) = (
        parse_der(&cert_der, "certificate")?,
        parse_der(&ca_der, "CA certificate")?,
    );
    if cert.issuer().as_raw() != ca.subject().as_raw() {
        return Ok(false);
    }
    match cert.verify_signature(Some(ca.public_key())) {
        Ok(()) => Ok(true),
        Err(x509_parser::error::X509Error::SignatureVerificationError) => Ok(false),
        Err(e) => Err(X509Error::Certificate {
            what: "certificate",
            reason: format!("signature cannot be checked: {e}"),
        }),
    }
}
