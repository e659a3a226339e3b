//! A v1 certificate: its details, the CA's signature over them, and the
//! checks `nebula-cert verify` makes.

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};
use time::{OffsetDateTime, PrimitiveDateTime};

use super::net::Ipv4Net;
use super::{pem, wire, NebulaError};

/// What a certificate says, field by field as in nebula's protobuf schema.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Details {
    /// The host or CA name.
    pub name: String,
    /// The host's addresses with their prefixes (host bits kept); for a CA,
    /// the networks it may issue from (empty: any).
    pub ips: Vec<Ipv4Net>,
    /// Networks the host routes for (masked); for a CA, those it allows.
    pub subnets: Vec<Ipv4Net>,
    /// Firewall groups; for a CA, those it allows (empty: any).
    pub groups: Vec<String>,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// Ed25519 for a CA, X25519 for a host.
    pub public_key: [u8; 32],
    /// Whether this is a CA.
    pub is_ca: bool,
    /// SHA-256 of the issuing CA's certificate bytes; none on a CA.
    pub issuer: Option<[u8; 32]>,
}

impl Details {
    /// The canonical bytes, exactly what the CA signs.
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode_details(self)
    }
}

/// A signed certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    /// What it says.
    pub details: Details,
    /// Ed25519 signature by the issuing CA over [`Details::to_bytes`].
    pub signature: [u8; 64],
}

fn instant(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(if unix < 0 {
        PrimitiveDateTime::MIN.assume_utc()
    } else {
        PrimitiveDateTime::MAX.assume_utc()
    })
}

/// Go's `Expired`: before NotBefore or after NotAfter, at full precision.
fn outside(d: &Details, now: OffsetDateTime) -> bool {
    let now = now.unix_timestamp_nanos();
    i128::from(d.not_before) * 1_000_000_000 > now || i128::from(d.not_after) * 1_000_000_000 < now
}

impl Certificate {
    /// The canonical `RawNebulaCertificate` bytes (the PEM body).
    pub fn to_bytes(&self) -> Vec<u8> {
        wire::encode_certificate(self)
    }

    /// Reads certificate bytes; only the canonical encoding is accepted.
    pub fn from_bytes(bytes: &[u8]) -> Result<Certificate, NebulaError> {
        wire::decode_certificate(bytes)
    }

    /// The `NEBULA CERTIFICATE` PEM block.
    pub fn to_pem(&self) -> String {
        pem::encode(pem::CERTIFICATE, &self.to_bytes()).to_string()
    }

    /// Reads one `NEBULA CERTIFICATE` PEM block. Strict: unknown fields
    /// (including 1.7's field 100), wrong sizes and non-canonical bytes are
    /// errors, because nebula 1.6 would reject them at handshake time.
    pub fn from_pem(text: &str) -> Result<Certificate, NebulaError> {
        Certificate::from_bytes(&pem::decode(pem::CERTIFICATE, text)?)
    }

    /// SHA-256 of the certificate bytes: a CA's fingerprint, and the issuer
    /// its hosts carry.
    pub fn fingerprint(&self) -> [u8; 32] {
        Sha256::digest(self.to_bytes()).into()
    }

    /// The fingerprint in lowercase hex, as `nebula-cert print` shows it.
    pub fn fingerprint_hex(&self) -> String {
        hex::encode(self.fingerprint())
    }

    /// When it stops being valid.
    pub fn expires_at(&self) -> OffsetDateTime {
        instant(self.details.not_after)
    }

    /// When it starts being valid.
    pub fn valid_from(&self) -> OffsetDateTime {
        instant(self.details.not_before)
    }

    /// Whether `key` made [`Certificate::signature`].
    pub fn signed_by(&self, key: &[u8; 32]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(key) else {
            return false;
        };
        key.verify_strict(
            &self.details.to_bytes(),
            &Signature::from_bytes(&self.signature),
        )
        .is_ok()
    }

    /// Checks that `ca` is a usable root: a CA, self-signed, valid `now`.
    pub fn check_ca(&self, now: OffsetDateTime) -> Result<(), NebulaError> {
        let d = &self.details;
        if !d.is_ca {
            return Err(NebulaError::NotCa {
                name: d.name.clone(),
            });
        }
        if !self.signed_by(&d.public_key) {
            return Err(NebulaError::NotSelfSigned {
                name: d.name.clone(),
            });
        }
        if outside(d, now) {
            return Err(NebulaError::CaExpired {
                name: d.name.clone(),
                not_before: d.not_before,
                not_after: d.not_after,
            });
        }
        Ok(())
    }

    /// The checks of `nebula-cert verify -ca CA -crt SELF` at `now`: a good
    /// root, the issuer is its fingerprint, both are in their validity
    /// periods, the signature holds, and the root's limits are kept.
    pub fn verify(&self, ca: &Certificate, now: OffsetDateTime) -> Result<(), NebulaError> {
        ca.check_ca(now)?;
        let d = &self.details;
        let names = || (d.name.clone(), ca.details.name.clone());
        if d.issuer != Some(ca.fingerprint()) {
            let (name, ca) = names();
            return Err(NebulaError::WrongIssuer { name, ca });
        }
        if outside(d, now) {
            return Err(NebulaError::Expired {
                name: d.name.clone(),
                not_before: d.not_before,
                not_after: d.not_after,
            });
        }
        if !self.signed_by(&ca.details.public_key) {
            let (name, ca) = names();
            return Err(NebulaError::SignatureMismatch { name, ca });
        }
        self.check_constraints(ca)
    }

    /// nebula's root constraints: not outliving or predating the CA, and
    /// groups, IPs and subnets within the CA's lists when it has any.
    pub fn check_constraints(&self, ca: &Certificate) -> Result<(), NebulaError> {
        let (d, c) = (&self.details, &ca.details);
        let names = || (d.name.clone(), c.name.clone());
        if d.not_after > c.not_after {
            let (name, ca) = names();
            return Err(NebulaError::OutlivesCa { name, ca });
        }
        if d.not_before < c.not_before {
            let (name, ca) = names();
            return Err(NebulaError::PredatesCa { name, ca });
        }
        if !c.groups.is_empty() {
            if let Some(group) = d.groups.iter().find(|g| !c.groups.contains(g)) {
                return Err(NebulaError::GroupNotInCa {
                    group: group.clone(),
                    allowed: c.groups.clone(),
                });
            }
        }
        if !c.ips.is_empty() {
            if let Some(ip) = d.ips.iter().find(|ip| !c.ips.iter().any(|n| n.allows(ip))) {
                return Err(NebulaError::IpOutsideCa {
                    ip: *ip,
                    allowed: c.ips.clone(),
                });
            }
        }
        if !c.subnets.is_empty() {
            if let Some(s) = d
                .subnets
                .iter()
                .find(|s| !c.subnets.iter().any(|n| n.allows(s)))
            {
                return Err(NebulaError::SubnetOutsideCa {
                    subnet: *s,
                    allowed: c.subnets.clone(),
                });
            }
        }
        Ok(())
    }
}
