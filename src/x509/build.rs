//! Issuing certificates: a [`Template`] (subject, serial, validity,
//! extensions) signed by its own key or by a CA, written as PEM.
//!
//! rcgen frames and signs the certificate; every extension is encoded by
//! `x509::ext` so its criticality follows the caller, not rcgen's defaults.

use rand_core::CryptoRngCore;
use rcgen::{CertificateParams, IsCa, KeyIdMethod, SerialNumber};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::ext::{Ext, Issuer, San};
use super::key::PrivateKey;
use super::name::Subject;
use super::X509Error;

/// What to put in a certificate.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    /// The subject name.
    pub subject: Subject,
    /// The serial number, big-endian, positive.
    pub serial: Vec<u8>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// The extensions, in order.
    pub extensions: Vec<Ext>,
}

/// A CA that signs: its certificate and key, checked to belong together.
pub(crate) struct Ca {
    cert: rcgen::Certificate,
    key: PrivateKey,
    key_id: Vec<u8>,
    issuer_name: Vec<u8>,
    serial: Vec<u8>,
}

/// The key identifier rumor writes for a public key: RFC 7093 method 1, the
/// first 20 bytes of the SHA-256 of the subjectPublicKey bits (rcgen's
/// default too).
pub(super) fn key_id(public_key_raw: &[u8]) -> Vec<u8> {
    Sha256::digest(public_key_raw)[..20].to_vec()
}

/// A random positive serial of at most 159 bits, as `openssl req -x509`
/// and `-CAcreateserial` pick them.
pub(crate) fn random_serial(rng: &mut dyn CryptoRngCore) -> Vec<u8> {
    let mut serial = vec![0u8; 20];
    rng.fill_bytes(&mut serial);
    serial[0] &= 0x7f;
    // Zero is not a valid serial; the odds are nil but the cost is one line.
    if serial.iter().all(|b| *b == 0) {
        serial[19] = 1;
    }
    serial
}

fn cert_error(what: &'static str, reason: impl ToString) -> X509Error {
    X509Error::Certificate {
        what,
        reason: reason.to_string(),
    }
}

fn params(template: &Template) -> Result<CertificateParams, X509Error> {
    // Every generator's names pass here, whatever parsed them.
    for ext in &template.extensions {
        if let super::ext::Extension::SubjectAltName(names) = &ext.kind {
            names
                .iter()
                .try_for_each(San::check)
                .map_err(|why| cert_error("certificate", why))?;
        }
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = template
        .subject
        .to_rcgen()
        .map_err(|e| cert_error("subject", e))?;
    params.serial_number = Some(SerialNumber::from_slice(&template.serial));
    params.not_before = template.not_before;
    params.not_after = template.not_after;
    params.is_ca = IsCa::NoCa;
    params.use_authority_key_identifier_extension = false;
    Ok(params)
}

fn add_extensions(
    params: &mut CertificateParams,
    template: &Template,
    subject_key_id: &[u8],
    issuer: &Issuer,
) {
    params.custom_extensions = template
        .extensions
        .iter()
        .filter_map(|ext| ext.encode(subject_key_id, issuer))
        .collect();
}

fn to_pem(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// Signs `template` with its own `key`.
pub(crate) fn self_signed(template: &Template, key: &PrivateKey) -> Result<String, X509Error> {
    let own_id = key_id(key.pair().public_key_raw());
    // A self-signed certificate's issuer name is its own subject; its DER
    // comes from rcgen's own encoding, read back from a first draft.
    let draft = params(template)?
        .self_signed(key.pair())
        .map_err(|e| cert_error("certificate", e))?;
    let (_, parsed) =
        X509Certificate::from_der(draft.der()).map_err(|e| cert_error("certificate", e))?;
    let issuer = Issuer {
        key_id: &own_id,
        issuer_name: Some(parsed.subject().as_raw()),
        serial: &template.serial,
    };
    let mut params = params(template)?;
    add_extensions(&mut params, template, &own_id, &issuer);
    let cert = params
        .self_signed(key.pair())
        .map_err(|e| cert_error("certificate", e))?;
    Ok(to_pem(cert.der()))
}

impl Ca {
    /// Loads a CA from its PEM certificate and key, checking they match.
    pub(crate) fn load(cert_pem: &str, key: PrivateKey) -> Result<Ca, X509Error> {
        let block = pem::parse(cert_pem).map_err(|_| cert_error("CA certificate", "is not PEM"))?;
        if block.tag() != "CERTIFICATE" {
            return Err(cert_error(
                "CA certificate",
                format!("is a PEM \"{}\" block, not a certificate", block.tag()),
            ));
        }
        let der = block.contents();
        let (_, parsed) =
            X509Certificate::from_der(der).map_err(|e| cert_error("CA certificate", e))?;
        if parsed.public_key().raw != key.public_key_der().as_slice() {
            return Err(X509Error::KeyMismatch);
        }
        let key_id = parsed
            .iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => {
                    Some(id.0.to_vec())
                }
                _ => None,
            })
            .unwrap_or_else(|| key_id(key.pair().public_key_raw()));
        let issuer_name = parsed.issuer().as_raw().to_vec();
        let serial = parsed.raw_serial().to_vec();
        let mut ca_params = CertificateParams::from_ca_cert_der(&der.to_vec().into())
            .map_err(|e| cert_error("CA certificate", e))?;
        // Only the subject of this re-made CA is used (as the leaf's issuer);
        // its extensions need not survive the round trip.
        ca_params.key_identifier_method = KeyIdMethod::PreSpecified(key_id.clone());
        ca_params.custom_extensions.clear();
        let cert = ca_params
            .self_signed(key.pair())
            .map_err(|e| cert_error("CA certificate", e))?;
        Ok(Ca {
            cert,
            key,
            key_id,
            issuer_name,
            serial,
        })
    }

    /// How this CA names its key in what it signs.
    pub(super) fn key_identifier_method(&self) -> KeyIdMethod {
        KeyIdMethod::PreSpecified(self.key_id.clone())
    }

    /// Signs a certificate revocation list.
    pub(super) fn sign_crl(
        &self,
        params: rcgen::CertificateRevocationListParams,
    ) -> Result<rcgen::CertificateRevocationList, X509Error> {
        params
            .signed_by(&self.cert, self.key.pair())
            .map_err(|e| cert_error("revocation list", e))
    }

    /// Signs `template` for the public half of `subject_key`.
    pub(crate) fn sign(
        &self,
        template: &Template,
        subject_key: &PrivateKey,
    ) -> Result<String, X509Error> {
        let subject_id = key_id(subject_key.pair().public_key_raw());
        let issuer = Issuer {
            key_id: &self.key_id,
            issuer_name: Some(&self.issuer_name),
            serial: &self.serial,
        };
        let mut params = params(template)?;
        add_extensions(&mut params, template, &subject_id, &issuer);
        let cert = params
            .signed_by(subject_key.pair(), &self.cert, self.key.pair())
            .map_err(|e| cert_error("certificate", e))?;
        Ok(to_pem(cert.der()))
    }
}

/// Reads an OpenSSL serial file (hex, as `-CAserial` keeps it), adds one
/// and returns the new serial with the file's new text; with no file, a
/// random serial. The new value is the one used, as OpenSSL does.
pub(crate) fn next_serial(
    current: Option<&str>,
    rng: &mut dyn CryptoRngCore,
) -> Result<(Vec<u8>, String), X509Error> {
    let mut serial = match current {
        None => random_serial(rng),
        Some(text) => {
            let text = text.trim();
            let padded = if text.len() % 2 == 1 {
                format!("0{text}")
            } else {
                text.to_owned()
            };
            let mut bytes = hex::decode(&padded).map_err(|_| X509Error::Serial {
                reason: "is not a hexadecimal number".into(),
            })?;
            if bytes.is_empty() {
                return Err(X509Error::Serial {
                    reason: "is empty".into(),
                });
            }
            increment(&mut bytes);
            bytes
        }
    };
    while serial.len() > 1 && serial[0] == 0 {
        serial.remove(0);
    }
    if serial.len() > 20 {
        return Err(X509Error::Serial {
            reason: "is longer than 20 bytes; start a new serial file".into(),
        });
    }
    // OpenSSL keeps the magnitude as uppercase hex, whole bytes, one line.
    let text = format!("{}\n", hex::encode_upper(&serial));
    Ok((serial, text))
}

fn increment(bytes: &mut Vec<u8>) {
    for byte in bytes.iter_mut().rev() {
        let (next, carry) = byte.overflowing_add(1);
        *byte = next;
        if !carry {
            return;
        }
    }
    bytes.insert(0, 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials() {
        let mut rng = rand::rngs::OsRng;
        assert_eq!(
            next_serial(Some("01\n"), &mut rng).unwrap(),
            (vec![2], "02\n".to_owned())
        );
        assert_eq!(
            next_serial(Some("FF"), &mut rng).unwrap(),
            (vec![1, 0], "0100\n".to_owned())
        );
        assert_eq!(
            next_serial(Some("7F"), &mut rng).unwrap(),
            (vec![0x80], "80\n".to_owned())
        );
        // As a 1.x fleet left them: either case, with or without a newline.
        for text in ["3f1aa0c2e9", "3F1AA0C2E9\n", "3f1aA0c2e9\n", " 3f1aa0c2e9"] {
            assert_eq!(
                next_serial(Some(text), &mut rng).unwrap().1,
                "3F1AA0C2EA\n",
                "{text:?}"
            );
        }
        assert!(next_serial(Some("xyz"), &mut rng).is_err());
        let (random, text) = next_serial(None, &mut rng).unwrap();
        assert!(random[0] != 0 && der_octets(&random) <= 20, "{random:02x?}");
        assert_eq!(text.trim().len() % 2, 0);
    }

    /// The octets of a serial's DER INTEGER content: its magnitude, and a
    /// zero octet before it when its top bit is set (else it reads as
    /// negative).
    fn der_octets(magnitude: &[u8]) -> usize {
        magnitude.len() + usize::from(magnitude[0] >> 7)
    }

    /// Gives these bytes, over and over.
    struct Fixed(Vec<u8>);

    impl rand_core::RngCore for Fixed {
        fn next_u32(&mut self) -> u32 {
            rand_core::impls::next_u32_via_fill(self)
        }
        fn next_u64(&mut self) -> u64 {
            rand_core::impls::next_u64_via_fill(self)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for (d, s) in dest.iter_mut().zip(self.0.iter().cycle()) {
                *d = *s;
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    impl rand_core::CryptoRng for Fixed {}

    #[test]
    fn a_random_serial_whose_first_octet_is_zero_still_fits_rfc_5280() {
        // The first octet loses its top bit (0x80 → 0) and is dropped, so
        // the magnitude is 19 octets with its top bit set: DER adds a zero
        // octet before it, and the serial is 20 octets on the wire. One
        // draw in 256 looks like this.
        let mut draw = vec![0xff; 20];
        draw[0] = 0x80;
        let (serial, text) = next_serial(None, &mut Fixed(draw)).unwrap();
        assert_eq!(serial.len(), 19);
        assert_eq!(serial[0], 0xff);
        assert_eq!(der_octets(&serial), 20);
        assert_eq!(text, format!("{}\n", "FF".repeat(19)));
        // As the certificate carries it: rcgen writes the zero octet, and
        // the parsed serial is the same positive number.
        let key =
            PrivateKey::generate(super::super::key::KeyType::P256, &mut rand::rngs::OsRng).unwrap();
        let mut subject = Subject::new();
        subject.push("CN", "serial").unwrap();
        let now = OffsetDateTime::now_utc();
        let template = Template {
            subject,
            serial: serial.clone(),
            not_before: now,
            not_after: now + time::Duration::days(1),
            extensions: Vec::new(),
        };
        let pem = pem::parse(self_signed(&template, &key).unwrap()).unwrap();
        let (_, cert) = X509Certificate::from_der(pem.contents()).unwrap();
        assert_eq!(cert.raw_serial(), [&[0u8][..], &serial].concat());
        assert_eq!(cert.serial.to_bytes_be(), serial);
    }
}
