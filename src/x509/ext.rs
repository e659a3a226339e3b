//! The certificate extensions rumor writes, and their DER. Both the OpenSSL
//! config reader and the structured generators describe a certificate as a
//! list of [`Ext`], in the order they should appear.

use std::net::IpAddr;

use rcgen::CustomExtension;

use super::der::{self, tag};

/// One extension and whether it is marked critical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ext {
    /// Whether a verifier that does not know it must reject the certificate.
    pub critical: bool,
    /// What it says.
    pub kind: Extension,
}

/// The extensions rumor knows how to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extension {
    /// basicConstraints: whether the subject is a CA, and how deep below it.
    BasicConstraints {
        /// CA:true.
        ca: bool,
        /// pathlen.
        pathlen: Option<u8>,
    },
    /// keyUsage bits, bit 0 being digitalSignature (see [`key_usage_bit`]).
    KeyUsage(u16),
    /// extendedKeyUsage purposes as OID arcs.
    ExtendedKeyUsage(Vec<Vec<u64>>),
    /// subjectKeyIdentifier, derived from the subject's public key.
    SubjectKeyIdentifier,
    /// authorityKeyIdentifier.
    AuthorityKeyIdentifier {
        /// Whether to write the issuer's key id.
        keyid: Want,
        /// Whether to write the issuer's issuer name and serial.
        issuer: Want,
    },
    /// subjectAltName.
    SubjectAltName(Vec<San>),
    /// Netscape comment (nsComment), shown by `openssl x509 -text`.
    Comment(String),
}

/// OpenSSL's authorityKeyIdentifier options: `keyid` writes the key id when
/// the issuer has one, `issuer` writes name and serial only when there is no
/// key id, and `:always` forces either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Not asked for.
    No,
    /// Asked for without `:always`.
    Yes,
    /// Asked for with `:always`.
    Always,
}

/// A subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum San {
    /// A DNS name.
    Dns(String),
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// An email address (rfc822Name).
    Email(String),
    /// A URI.
    Uri(String),
}

impl San {
    /// Refuses a name a certificate should not carry: empty, non-ASCII
    /// (IA5String), or with a control or bidirectional character
    /// ([`crate::names`]); says why, quoting the name escaped.
    pub fn check(&self) -> Result<(), String> {
        let (kind, text) = match self {
            San::Dns(s) => ("DNS", s),
            San::Email(s) => ("email", s),
            San::Uri(s) => ("URI", s),
            San::Ip(_) => return Ok(()),
        };
        let why = if text.is_empty() {
            "is empty"
        } else if let Err(why) = crate::names::check(text) {
            why
        } else if !text.is_ascii() {
            "is not ASCII"
        } else {
            return Ok(());
        };
        Err(format!(
            "subjectAltName {kind}:\"{}\" {why}",
            text.escape_debug()
        ))
    }

    /// Reads a name for the structured generators: `email:`, `uri:`, `dns:`,
    /// `ip:` prefixes are optional; an address is an IP, anything with `@`
    /// an email, anything with `://` a URI, the rest a DNS name.
    pub fn guess(text: &str) -> San {
        let lower = text.to_ascii_lowercase();
        for (prefix, make) in [
            ("email:", San::Email as fn(String) -> San),
            ("uri:", San::Uri),
            ("dns:", San::Dns),
        ] {
            if lower.starts_with(prefix) {
                return make(text[prefix.len()..].to_owned());
            }
        }
        let text = if lower.starts_with("ip:") {
            &text[3..]
        } else {
            text
        };
        if let Ok(ip) = text.parse() {
            San::Ip(ip)
        } else if text.contains("://") {
            San::Uri(text.to_owned())
        } else if text.contains('@') {
            San::Email(text.to_owned())
        } else {
            San::Dns(text.to_owned())
        }
    }
}

/// The keyUsage names OpenSSL accepts, by bit.
const KEY_USAGES: [&str; 9] = [
    "digitalSignature",
    "nonRepudiation",
    "keyEncipherment",
    "dataEncipherment",
    "keyAgreement",
    "keyCertSign",
    "cRLSign",
    "encipherOnly",
    "decipherOnly",
];

/// The bit for a keyUsage name (`contentCommitment` is `nonRepudiation`).
pub(crate) fn key_usage_bit(name: &str) -> Option<u16> {
    let name = if name == "contentCommitment" {
        "nonRepudiation"
    } else {
        name
    };
    KEY_USAGES.iter().position(|n| *n == name).map(|i| 1 << i)
}

const PKIX_KP: [u64; 8] = [1, 3, 6, 1, 5, 5, 7, 3];

/// The OID arcs of an extendedKeyUsage name, or of a dotted OID.
pub(crate) fn extended_key_usage_oid(name: &str) -> Option<Vec<u64>> {
    let kp = |n: u64| Some([&PKIX_KP[..], &[n]].concat());
    match name {
        "serverAuth" => kp(1),
        "clientAuth" => kp(2),
        "codeSigning" => kp(3),
        "emailProtection" => kp(4),
        "ipsecEndSystem" => kp(5),
        "ipsecTunnel" => kp(6),
        "ipsecUser" => kp(7),
        "timeStamping" => kp(8),
        "OCSPSigning" => kp(9),
        "ipsecIKE" => kp(17),
        "msCodeInd" => Some(vec![1, 3, 6, 1, 4, 1, 311, 2, 1, 21]),
        "msCodeCom" => Some(vec![1, 3, 6, 1, 4, 1, 311, 2, 1, 22]),
        "msCTLSign" => Some(vec![1, 3, 6, 1, 4, 1, 311, 10, 3, 1]),
        "msEFS" => Some(vec![1, 3, 6, 1, 4, 1, 311, 10, 3, 4]),
        "anyExtendedKeyUsage" => Some(vec![2, 5, 29, 37, 0]),
        dotted => parse_oid(dotted),
    }
}

/// A dotted OID such as `1.2.3.4`, checked to be encodable.
pub(crate) fn parse_oid(text: &str) -> Option<Vec<u64>> {
    let arcs: Vec<u64> = text
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    // The first two arcs share one byte-group, so they have limits.
    let ok = arcs.len() >= 2
        && arcs[0] <= 2
        && (arcs[0] == 2 || arcs[1] < 40)
        && arcs[1] < u64::MAX / 128 - 80;
    ok.then_some(arcs)
}

/// What the extensions refer to outside the certificate being made.
pub(crate) struct Issuer<'a> {
    /// The issuer's key id (its subjectKeyIdentifier).
    pub key_id: &'a [u8],
    /// The DER of the issuer certificate's own issuer name.
    pub issuer_name: Option<&'a [u8]>,
    /// The issuer certificate's serial, big-endian.
    pub serial: &'a [u8],
}

const OID_BASIC_CONSTRAINTS: [u64; 4] = [2, 5, 29, 19];
const OID_KEY_USAGE: [u64; 4] = [2, 5, 29, 15];
const OID_EXT_KEY_USAGE: [u64; 4] = [2, 5, 29, 37];
const OID_SUBJECT_KEY_ID: [u64; 4] = [2, 5, 29, 14];
const OID_AUTHORITY_KEY_ID: [u64; 4] = [2, 5, 29, 35];
const OID_SUBJECT_ALT_NAME: [u64; 4] = [2, 5, 29, 17];
const OID_NS_COMMENT: [u64; 7] = [2, 16, 840, 1, 113730, 1, 13];

impl Ext {
    /// The extension as rcgen should write it, or None when nothing is to be
    /// written (an authorityKeyIdentifier with nothing asked for).
    pub(crate) fn encode(&self, subject_key_id: &[u8], issuer: &Issuer) -> Option<CustomExtension> {
        let (oid, content): (&[u64], Vec<u8>) = match &self.kind {
            Extension::BasicConstraints { ca, pathlen } => {
                let mut items = Vec::new();
                if *ca {
                    items.push(der::tlv(tag::BOOLEAN, &[0xff]));
                }
                if let Some(n) = pathlen {
                    items.push(der::unsigned(&[*n]));
                }
                (&OID_BASIC_CONSTRAINTS, der::sequence(&items))
            }
            Extension::KeyUsage(bits) => (&OID_KEY_USAGE, der::named_bits(*bits)),
            Extension::ExtendedKeyUsage(oids) => (
                &OID_EXT_KEY_USAGE,
                der::sequence(&oids.iter().map(|o| der::oid(o)).collect::<Vec<_>>()),
            ),
            Extension::SubjectKeyIdentifier => (
                &OID_SUBJECT_KEY_ID,
                der::tlv(tag::OCTET_STRING, subject_key_id),
            ),
            Extension::AuthorityKeyIdentifier {
                keyid,
                issuer: want_issuer,
            } => {
                let mut items = Vec::new();
                if *keyid != Want::No {
                    items.push(der::tlv(0x80, issuer.key_id));
                }
                let name_wanted =
                    *want_issuer == Want::Always || (*want_issuer == Want::Yes && items.is_empty());
                if let (true, Some(name)) = (name_wanted, issuer.issuer_name) {
                    // authorityCertIssuer [1] GeneralNames { directoryName [4] Name }
                    items.push(der::tlv(0xa1, &der::tlv(0xa4, name)));
                    items.push(der::tlv(0x82, &der::unsigned_content(issuer.serial)));
                }
                if items.is_empty() {
                    return None;
                }
                (&OID_AUTHORITY_KEY_ID, der::sequence(&items))
            }
            Extension::SubjectAltName(names) => {
                let items: Vec<Vec<u8>> = names
                    .iter()
                    .map(|name| match name {
                        San::Email(s) => der::tlv(0x81, s.as_bytes()),
                        San::Dns(s) => der::tlv(0x82, s.as_bytes()),
                        San::Uri(s) => der::tlv(0x86, s.as_bytes()),
                        San::Ip(IpAddr::V4(ip)) => der::tlv(0x87, &ip.octets()),
                        San::Ip(IpAddr::V6(ip)) => der::tlv(0x87, &ip.octets()),
                    })
                    .collect();
                (&OID_SUBJECT_ALT_NAME, der::sequence(&items))
            }
            Extension::Comment(text) => {
                (&OID_NS_COMMENT, der::tlv(tag::IA5_STRING, text.as_bytes()))
            }
        };
        let mut ext = CustomExtension::from_oid_content(oid, content);
        ext.set_criticality(self.critical);
        Some(ext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(key_usage_bit("cRLSign"), Some(1 << 6));
        assert_eq!(key_usage_bit("nope"), None);
        assert_eq!(
            extended_key_usage_oid("clientAuth"),
            Some(vec![1, 3, 6, 1, 5, 5, 7, 3, 2])
        );
        assert_eq!(extended_key_usage_oid("1.2.3"), Some(vec![1, 2, 3]));
        assert_eq!(extended_key_usage_oid("7.1"), None);
        assert_eq!(San::guess("10.0.0.1"), San::Ip("10.0.0.1".parse().unwrap()));
        assert_eq!(San::guess("a@b.c"), San::Email("a@b.c".into()));
        assert_eq!(San::guess("URI:spiffe://x"), San::Uri("spiffe://x".into()));
        assert_eq!(San::guess("db.local"), San::Dns("db.local".into()));
    }

    #[test]
    fn san_names_are_checked() {
        assert!(San::Dns("db.local".into()).check().is_ok());
        assert!(San::Ip("10.0.0.1".parse().unwrap()).check().is_ok());
        assert!(San::Dns(String::new())
            .check()
            .unwrap_err()
            .contains("is empty"));
        assert!(San::Dns("dé.local".into())
            .check()
            .unwrap_err()
            .contains("not ASCII"));
        let err = San::Dns("db\0.local".into()).check().unwrap_err();
        assert_eq!(
            err,
            "subjectAltName DNS:\"db\\0.local\" contains a control character"
        );
        assert!(San::Email("a@b\u{202e}c".into())
            .check()
            .unwrap_err()
            .contains("bidirectional"));
        assert!(San::Uri("x://y\n".into())
            .check()
            .unwrap_err()
            .contains("control"));
    }
}
