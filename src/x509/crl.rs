//! Certificate revocation lists: the fleet PostgreSQL CA's CRL of retired
//! devices' certificates (`rumor retire`).
//!
//! A CRL only grows: each issue keeps every earlier entry and takes the
//! next CRL number, so a client that cached an older one can tell it is
//! older. rcgen frames and signs it with the CA's key.

use rcgen::{CertificateRevocationListParams, RevocationReason, RevokedCertParams, SerialNumber};
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::build::Ca;
use super::X509Error;

/// How long an issued CRL stays current. Devices are retired rarely, and
/// a CRL past its next update makes `openssl verify -crl_check` refuse
/// every certificate, so it is long; a retirement issues a fresh one.
pub(crate) const CRL_DAYS: i64 = 3650;

/// One revoked certificate: its serial (big-endian, as in the
/// certificate) and when it was revoked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Revoked {
    /// The serial number's bytes.
    pub serial: Vec<u8>,
    /// The revocation time.
    pub at: OffsetDateTime,
}

/// What an existing CRL holds.
#[derive(Debug, Default)]
pub(crate) struct Listed {
    /// Its CRL number (0 when it has none).
    pub number: u64,
    /// Its entries.
    pub revoked: Vec<Revoked>,
}

fn crl_error(reason: impl ToString) -> X509Error {
    X509Error::Certificate {
        what: "revocation list",
        reason: reason.to_string(),
    }
}

/// Reads a PEM CRL, checking that `ca_pem`'s key signed it: an unsigned or
/// foreign list (planted in git) is refused rather than extended.
pub(crate) fn read(crl_pem: &str, ca_pem: &str) -> Result<Listed, X509Error> {
    let block = pem::parse(crl_pem).map_err(|_| crl_error("is not PEM"))?;
    if block.tag() != "X509 CRL" {
        return Err(crl_error(format!(
            "is a PEM \"{}\" block, not an X509 CRL",
            block.tag()
        )));
    }
    let (_, crl) = CertificateRevocationList::from_der(block.contents()).map_err(crl_error)?;
    let ca_block = pem::parse(ca_pem).map_err(|_| crl_error("CA certificate is not PEM"))?;
    let (_, ca) = x509_parser::certificate::X509Certificate::from_der(ca_block.contents())
        .map_err(crl_error)?;
    crl.verify_signature(ca.public_key())
        .map_err(|_| crl_error("is not signed by the CA's key"))?;
    let number = crl
        .crl_number()
        .map(|n| {
            n.to_bytes_be().iter().fold(0u64, |acc, b| {
                acc.saturating_mul(256).saturating_add(u64::from(*b))
            })
        })
        .unwrap_or(0);
    let revoked = crl
        .iter_revoked_certificates()
        .map(|r| Revoked {
            serial: unsigned(r.raw_serial()),
            at: r.revocation_date.to_datetime(),
        })
        .collect();
    Ok(Listed { number, revoked })
}

/// Issues a CRL signed by `ca`, numbered `number`, listing `revoked`
/// (each revoked for cessation of operation), as PEM.
pub(crate) fn issue(
    ca: &Ca,
    revoked: &[Revoked],
    number: u64,
    now: OffsetDateTime,
) -> Result<String, X509Error> {
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: now + time::Duration::days(CRL_DAYS),
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|r| RevokedCertParams {
                serial_number: SerialNumber::from_slice(&r.serial),
                revocation_time: r.at,
                reason_code: Some(RevocationReason::CessationOfOperation),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: ca.key_identifier_method(),
    };
    let crl = ca.sign_crl(params)?;
    crl.pem().map_err(crl_error)
}

/// The serial of a PEM certificate and whether it is a CA.
pub(crate) fn serial_of(cert_pem: &str) -> Result<(Vec<u8>, bool), X509Error> {
    let block = pem::parse(cert_pem).map_err(|_| crl_error("certificate is not PEM"))?;
    let (_, cert) =
        x509_parser::certificate::X509Certificate::from_der(block.contents()).map_err(crl_error)?;
    Ok((unsigned(cert.raw_serial()), cert.is_ca()))
}

/// A serial's magnitude without the sign byte DER may prefix, so the
/// same serial compares equal however it was encoded.
fn unsigned(raw: &[u8]) -> Vec<u8> {
    let start = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    raw[start..].to_vec()
}
