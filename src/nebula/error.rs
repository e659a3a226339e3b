//! Why a Nebula certificate or key could not be read, made or trusted.
//!
//! The check-related messages follow `nebula-cert verify`'s reasons so a
//! person comparing the two tools sees the same story. No variant ever
//! carries key material.

use super::net::Ipv4Net;

/// A Nebula certificate or key problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NebulaError {
    /// The text is not one PEM block with the expected banner.
    #[error("not a {banner} PEM block: {reason}")]
    Pem {
        /// The banner that was expected, like `NEBULA CERTIFICATE`.
        banner: &'static str,
        /// What is wrong with the text (never the text itself).
        reason: &'static str,
    },
    /// A name or group holds a control or bidirectional character.
    #[error("{field} \"{value}\" {why}")]
    BadName {
        /// `name` or `group`.
        field: &'static str,
        /// The value, escaped so it prints on one line as it is.
        value: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A key body has the wrong size.
    #[error("the {banner} is {found} bytes long, expected {expected}")]
    KeyLength {
        /// The banner of the key.
        banner: &'static str,
        /// The size it should have.
        expected: usize,
        /// The size it has.
        found: usize,
    },
    /// The Ed25519 key's public half does not belong to its seed.
    #[error("the NEBULA ED25519 PRIVATE KEY is inconsistent (its public half does not match its seed); regenerate the CA")]
    KeyInconsistent,
    /// The certificate bytes are not valid protobuf for this schema.
    #[error("malformed certificate: {reason}")]
    Malformed {
        /// Where decoding stopped.
        reason: &'static str,
    },
    /// A field number nebula-cert 1.6 does not know (100 is the 1.7 curve).
    #[error("certificate has field {field}, which nebula 1.6 does not know; was it made by nebula 1.7 or later?")]
    UnknownField {
        /// The protobuf field number.
        field: u64,
    },
    /// A field with a fixed size has another size.
    #[error("certificate field {field} is {found} bytes long, expected {expected}")]
    FieldLength {
        /// The field's name.
        field: &'static str,
        /// The size it should have.
        expected: usize,
        /// The size it has.
        found: usize,
    },
    /// A network mask is not a run of ones followed by zeros.
    #[error("certificate field {field} holds the mask {mask:#010x}, which is not a prefix length")]
    BadMask {
        /// `ips` or `subnets`.
        field: &'static str,
        /// The mask as read.
        mask: u32,
    },
    /// Valid protobuf, but not the one encoding nebula verifies against.
    #[error("certificate bytes are not in canonical form, so nebula would reject its signature")]
    NotCanonical,
    /// A network written as text is not `a.b.c.d/n`.
    #[error("\"{value}\" is not an IPv4 network like 10.8.0.5/16")]
    BadCidr {
        /// The text as given.
        value: String,
    },
    /// A time does not fit in a certificate.
    #[error("the {what} time is out of range")]
    TimeRange {
        /// Which time.
        what: &'static str,
    },
    /// The certificate that should be a CA is not one.
    #[error("certificate \"{name}\" is not a CA")]
    NotCa {
        /// Its name.
        name: String,
    },
    /// The CA's signature over its own details is wrong.
    #[error("CA certificate \"{name}\" is not correctly self-signed")]
    NotSelfSigned {
        /// Its name.
        name: String,
    },
    /// The CA is outside its validity period.
    #[error("CA certificate \"{name}\" is expired or not yet valid (valid {not_before} to {not_after}); renew the CA")]
    CaExpired {
        /// Its name.
        name: String,
        /// Start, Unix seconds.
        not_before: i64,
        /// End, Unix seconds.
        not_after: i64,
    },
    /// The host certificate is outside its validity period.
    #[error("certificate \"{name}\" is expired or not yet valid (valid {not_before} to {not_after}); renew it")]
    Expired {
        /// Its name.
        name: String,
        /// Start, Unix seconds.
        not_before: i64,
        /// End, Unix seconds.
        not_after: i64,
    },
    /// The certificate names no issuer, or another one.
    #[error("certificate \"{name}\" was not issued by CA \"{ca}\" (issuer does not match the CA fingerprint)")]
    WrongIssuer {
        /// The certificate's name.
        name: String,
        /// The CA's name.
        ca: String,
    },
    /// The CA's signature over the certificate is wrong.
    #[error("certificate \"{name}\" signature did not match CA \"{ca}\"")]
    SignatureMismatch {
        /// The certificate's name.
        name: String,
        /// The CA's name.
        ca: String,
    },
    /// The CA key belongs to another CA certificate.
    #[error("the CA private key does not match the CA certificate \"{ca}\"; pass the key made with that certificate")]
    KeyMismatch {
        /// The CA's name.
        ca: String,
    },
    /// The certificate outlives its CA.
    #[error("certificate \"{name}\" expires after its CA \"{ca}\"")]
    OutlivesCa {
        /// The certificate's name.
        name: String,
        /// The CA's name.
        ca: String,
    },
    /// The certificate starts before its CA.
    #[error("certificate \"{name}\" is valid before its CA \"{ca}\"")]
    PredatesCa {
        /// The certificate's name.
        name: String,
        /// The CA's name.
        ca: String,
    },
    /// A group the CA does not allow.
    #[error("group \"{group}\" is not among the CA's groups [{}]; use one of them or a CA without group limits", .allowed.join(", "))]
    GroupNotInCa {
        /// The group.
        group: String,
        /// The CA's groups.
        allowed: Vec<String>,
    },
    /// An IP outside the CA's networks.
    #[error("ip {ip} is outside the CA's networks [{}]; use an address inside them (with a prefix at least as long)", list(.allowed))]
    IpOutsideCa {
        /// The IP with its prefix.
        ip: Ipv4Net,
        /// The CA's networks.
        allowed: Vec<Ipv4Net>,
    },
    /// A subnet outside the CA's subnets.
    #[error("subnet {subnet} is outside the CA's subnets [{}]; use a subnet inside them", list(.allowed))]
    SubnetOutsideCa {
        /// The subnet.
        subnet: Ipv4Net,
        /// The CA's subnets.
        allowed: Vec<Ipv4Net>,
    },
}

fn list(nets: &[Ipv4Net]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn every_variant_renders() {
        let net = |a, p| Ipv4Net::new(Ipv4Addr::new(10, 8, 0, a), p).unwrap();
        let n = || "h".to_string();
        let all = [
            NebulaError::Pem {
                banner: "NEBULA CERTIFICATE",
                reason: "no BEGIN line",
            },
            NebulaError::KeyLength {
                banner: "NEBULA X25519 PRIVATE KEY",
                expected: 32,
                found: 3,
            },
            NebulaError::KeyInconsistent,
            NebulaError::Malformed {
                reason: "truncated varint",
            },
            NebulaError::UnknownField { field: 100 },
            NebulaError::FieldLength {
                field: "public key",
                expected: 32,
                found: 1,
            },
            NebulaError::BadMask {
                field: "ips",
                mask: 0xff00ff00,
            },
            NebulaError::NotCanonical,
            NebulaError::BadCidr { value: "x".into() },
            NebulaError::TimeRange { what: "expiry" },
            NebulaError::NotCa { name: n() },
            NebulaError::NotSelfSigned { name: n() },
            NebulaError::CaExpired {
                name: n(),
                not_before: 1,
                not_after: 2,
            },
            NebulaError::Expired {
                name: n(),
                not_before: 1,
                not_after: 2,
            },
            NebulaError::WrongIssuer { name: n(), ca: n() },
            NebulaError::SignatureMismatch { name: n(), ca: n() },
            NebulaError::KeyMismatch { ca: n() },
            NebulaError::OutlivesCa { name: n(), ca: n() },
            NebulaError::PredatesCa { name: n(), ca: n() },
            NebulaError::GroupNotInCa {
                group: "x".into(),
                allowed: vec!["a".into(), "b".into()],
            },
            NebulaError::IpOutsideCa {
                ip: net(9, 24),
                allowed: vec![net(0, 16), net(0, 8)],
            },
            NebulaError::SubnetOutsideCa {
                subnet: net(0, 24),
                allowed: vec![],
            },
            NebulaError::BadName {
                field: "name",
                value: "a\\u{202e}".into(),
                why: "contains a Unicode bidirectional control character",
            },
        ];
        for e in &all {
            let text = e.to_string();
            assert!(
                !text.is_empty()
                    && text
                        .chars()
                        .next()
                        .is_some_and(|c| !c.is_uppercase() || text.starts_with("CA")),
                "{text}"
            );
        }
        assert_eq!(all[19].to_string(), "group \"x\" is not among the CA's groups [a, b]; use one of them or a CA without group limits");
        assert!(all[20]
            .to_string()
            .starts_with("ip 10.8.0.9/24 is outside the CA's networks [10.8.0.0/16, 10.8.0.0/8]"));
    }
}
