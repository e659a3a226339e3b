//! Subject names: the attribute names OpenSSL configs use (`CN`,
//! `commonName`, `emailAddress`, …) and their conversion to rcgen.

use rcgen::{DistinguishedName, DnType, DnValue, Ia5String, PrintableString};

/// How an attribute's value is encoded, following OpenSSL's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Printable,
    Ia5,
}

/// One subject attribute type.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Attribute {
    /// OpenSSL's short name, e.g. `CN`.
    pub short: &'static str,
    /// OpenSSL's long name, e.g. `commonName`.
    pub long: &'static str,
    oid: &'static [u64],
    encoding: Encoding,
}

const fn attr(
    short: &'static str,
    long: &'static str,
    oid: &'static [u64],
    encoding: Encoding,
) -> Attribute {
    Attribute {
        short,
        long,
        oid,
        encoding,
    }
}

static ATTRIBUTES: &[Attribute] = &[
    attr("CN", "commonName", &[2, 5, 4, 3], Encoding::Utf8),
    attr("SN", "surname", &[2, 5, 4, 4], Encoding::Utf8),
    attr(
        "serialNumber",
        "serialNumber",
        &[2, 5, 4, 5],
        Encoding::Printable,
    ),
    attr("C", "countryName", &[2, 5, 4, 6], Encoding::Printable),
    attr("L", "localityName", &[2, 5, 4, 7], Encoding::Utf8),
    attr("ST", "stateOrProvinceName", &[2, 5, 4, 8], Encoding::Utf8),
    attr("street", "streetAddress", &[2, 5, 4, 9], Encoding::Utf8),
    attr("O", "organizationName", &[2, 5, 4, 10], Encoding::Utf8),
    attr(
        "OU",
        "organizationalUnitName",
        &[2, 5, 4, 11],
        Encoding::Utf8,
    ),
    attr("title", "title", &[2, 5, 4, 12], Encoding::Utf8),
    attr("postalCode", "postalCode", &[2, 5, 4, 17], Encoding::Utf8),
    attr("name", "name", &[2, 5, 4, 41], Encoding::Utf8),
    attr("GN", "givenName", &[2, 5, 4, 42], Encoding::Utf8),
    attr("initials", "initials", &[2, 5, 4, 43], Encoding::Utf8),
    attr("pseudonym", "pseudonym", &[2, 5, 4, 65], Encoding::Utf8),
    attr(
        "emailAddress",
        "emailAddress",
        &[1, 2, 840, 113549, 1, 9, 1],
        Encoding::Ia5,
    ),
    attr(
        "UID",
        "userId",
        &[0, 9, 2342, 19200300, 100, 1, 1],
        Encoding::Utf8,
    ),
    attr(
        "DC",
        "domainComponent",
        &[0, 9, 2342, 19200300, 100, 1, 25],
        Encoding::Ia5,
    ),
];

/// The attribute called `name` (short or long form, any case).
pub(crate) fn attribute(name: &str) -> Option<&'static Attribute> {
    ATTRIBUTES
        .iter()
        .find(|a| a.short.eq_ignore_ascii_case(name) || a.long.eq_ignore_ascii_case(name))
}

/// A problem with a subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The attribute type is not known.
    #[error("unknown subject field \"{0}\" (use CN, O, OU, C, ST, L, emailAddress, …)")]
    Unknown(String),
    /// The same attribute twice; rcgen keeps one value per type.
    #[error("subject field \"{0}\" is given twice; give each field once")]
    Repeated(&'static str),
    /// A value its encoding cannot hold.
    #[error("subject field \"{field}\" {why}")]
    BadValue {
        /// The field's short name.
        field: &'static str,
        /// What is wrong.
        why: &'static str,
    },
    /// No fields at all.
    #[error("the subject is empty; give at least CN")]
    Empty,
}

/// A subject, in written order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    fields: Vec<(&'static Attribute, String)>,
}

impl Subject {
    /// An empty subject.
    pub fn new() -> Subject {
        Subject::default()
    }

    /// Appends a field by its OpenSSL name.
    pub fn push(&mut self, name: &str, value: &str) -> Result<(), NameError> {
        let attribute = attribute(name).ok_or_else(|| NameError::Unknown(name.to_owned()))?;
        if self.fields.iter().any(|(a, _)| *a == attribute) {
            return Err(NameError::Repeated(attribute.short));
        }
        let field = attribute.short;
        crate::names::check(value).map_err(|why| NameError::BadValue { field, why })?;
        match attribute.encoding {
            Encoding::Printable if PrintableString::try_from(value).is_err() => {
                return Err(NameError::BadValue {
                    field,
                    why: "may hold only letters, digits, spaces and '()+,-./:=?",
                })
            }
            Encoding::Ia5 if !value.is_ascii() => {
                return Err(NameError::BadValue {
                    field,
                    why: "must be ASCII",
                })
            }
            _ => {}
        }
        if attribute.short == "C" && value.len() != 2 {
            return Err(NameError::BadValue {
                field,
                why: "must be a two-letter country code",
            });
        }
        self.fields.push((attribute, value.to_owned()));
        Ok(())
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The fields as (short name, value).
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.fields.iter().map(|(a, v)| (a.short, v.as_str()))
    }

    /// The rcgen form. Values were checked by [`Subject::push`].
    pub(crate) fn to_rcgen(&self) -> Result<DistinguishedName, NameError> {
        let mut dn = DistinguishedName::new();
        for (attribute, value) in &self.fields {
            let ty = match attribute.short {
                "CN" => DnType::CommonName,
                "C" => DnType::CountryName,
                "L" => DnType::LocalityName,
                "ST" => DnType::StateOrProvinceName,
                "O" => DnType::OrganizationName,
                "OU" => DnType::OrganizationalUnitName,
                _ => DnType::CustomDnType(attribute.oid.to_vec()),
            };
            let bad = |why| NameError::BadValue {
                field: attribute.short,
                why,
            };
            let value = match attribute.encoding {
                Encoding::Utf8 => DnValue::Utf8String(value.clone()),
                Encoding::Printable => DnValue::PrintableString(
                    PrintableString::try_from(value.as_str())
                        .map_err(|_| bad("is not printable"))?,
                ),
                Encoding::Ia5 => DnValue::Ia5String(
                    Ia5String::try_from(value.as_str()).map_err(|_| bad("must be ASCII"))?,
                ),
            };
            dn.push(ty, value);
        }
        Ok(dn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_refused() {
        let mut subject = Subject::new();
        subject.push("CN", "db.pidgeon-1 Ünïcödé").unwrap();
        for (field, value) in [
            ("O", "a\0b"),
            ("OU", "x\ny"),
            ("L", "\u{202e}gpj"),
            ("ST", "\u{2067}"),
        ] {
            let err = Subject::new().push(field, value).unwrap_err();
            assert!(
                matches!(err, NameError::BadValue { .. }),
                "{value:?}: {err}"
            );
        }
    }
}
