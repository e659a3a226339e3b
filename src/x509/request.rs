//! What an OpenSSL config means for a certificate: the subject from the
//! `[ req ]` section's `distinguished_name`, and the extensions of one
//! extension section (`v3_ca` for `openssl req -x509 -extensions v3_ca`,
//! `ext` for `openssl x509 -req -extensions ext`).
//!
//! Anything rumor cannot reproduce exactly is an error naming it, never
//! skipped: a certificate quietly missing a policy is worse than none.

use super::config::{parse_config, Config, ConfigError, Entry};
use super::ext::{extended_key_usage_oid, key_usage_bit, Ext, Extension, San, Want};
use super::name::{NameError, Subject};

/// The subject and extensions a config asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The subject name.
    pub subject: Subject,
    /// The extensions, in written order.
    pub extensions: Vec<Ext>,
}

/// Why a config cannot be used. Rendered after the config's name, as in
/// `config "ca.cnf", section [v3_ca]: unsupported extension "certificatePolicies"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The text is not valid config syntax.
    #[error(transparent)]
    Syntax(#[from] ConfigError),
    /// A section the certificate needs is absent.
    #[error("section [{section}] is missing; {hint}")]
    MissingSection {
        /// The section.
        section: String,
        /// Who needs it and what to add.
        hint: String,
    },
    /// A problem inside one section.
    #[error("section [{section}]: {why}{at}", at = line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    Section {
        /// The section.
        section: String,
        /// The line, when one entry is at fault.
        line: Option<usize>,
        /// What is wrong and what to do.
        why: String,
    },
}

/// `[ req ]` keys that do not change the certificate rumor makes: key
/// generation settings (the key is made separately, as the original's
/// `openssl genpkey` did), CSR-only settings, and string encoding masks.
const REQ_HARMLESS: [&str; 9] = [
    "default_bits",
    "default_keyfile",
    "encrypt_key",
    "string_mask",
    "utf8",
    "req_extensions",
    "x509_extensions",
    "attributes",
    "input_password",
];

/// Parses `text` and reads the subject plus the extensions of section
/// `extensions`.
pub fn read_request(text: &str, extensions: &str) -> Result<Request, RequestError> {
    let config = parse_config(text)?;
    let subject = read_subject(&config)?;
    let section = config
        .section(extensions)
        .ok_or_else(|| RequestError::MissingSection {
            section: extensions.to_owned(),
            hint: format!("rumor reads the certificate's extensions from [ {extensions} ]; add it"),
        })?;
    let extensions = section
        .iter()
        .map(|e| read_extension(&config, extensions, e))
        .collect::<Result<_, _>>()?;
    Ok(Request {
        subject,
        extensions,
    })
}

fn section_error(section: &str, entry: &Entry, why: impl Into<String>) -> RequestError {
    RequestError::Section {
        section: section.to_owned(),
        line: Some(entry.line),
        why: why.into(),
    }
}

fn read_subject(config: &Config) -> Result<Subject, RequestError> {
    let req = config
        .section("req")
        .ok_or_else(|| RequestError::MissingSection {
            section: "req".into(),
            hint: "add [ req ] with distinguished_name and prompt = no".into(),
        })?;
    let mut dn_section = None;
    let mut prompt = None;
    for entry in req {
        match entry.key.as_str() {
            "distinguished_name" => dn_section = Some(entry.value.as_str()),
            "prompt" => prompt = Some(entry),
            "default_md" if entry.value.eq_ignore_ascii_case("sha256") => {}
            "default_md" => {
                return Err(section_error(
                    "req",
                    entry,
                    format!(
                        "default_md \"{}\" is not supported; rumor signs with sha256",
                        entry.value
                    ),
                ))
            }
            key if REQ_HARMLESS.contains(&key) || key == "output_password" => {}
            key => {
                return Err(section_error(
                    "req",
                    entry,
                    format!("unsupported directive \"{key}\""),
                ))
            }
        }
    }
    match prompt {
        Some(entry) if matches!(entry.value.as_str(), "no" | "NO" | "No") => {}
        Some(entry) => {
            return Err(section_error(
                "req",
                entry,
                "rumor cannot prompt; set prompt = no",
            ))
        }
        None => {
            return Err(RequestError::Section {
                section: "req".into(),
                line: None,
                why: "rumor cannot prompt; add prompt = no".into(),
            })
        }
    }
    let name = dn_section.ok_or_else(|| RequestError::Section {
        section: "req".into(),
        line: None,
        why: "distinguished_name is missing; name the section that holds the subject".into(),
    })?;
    let fields = config
        .section(name)
        .ok_or_else(|| RequestError::MissingSection {
            section: name.to_owned(),
            hint: "[ req ] distinguished_name names it; add it with at least CN".into(),
        })?;
    let mut subject = Subject::new();
    for entry in fields {
        // `0.OU`, `1.OU`: OpenSSL drops everything up to the last separator.
        let field = entry
            .key
            .rsplit(['.', ',', ':'])
            .next()
            .unwrap_or(&entry.key);
        if entry.value.is_empty() {
            continue;
        }
        subject
            .push(field, &entry.value)
            .map_err(|e| section_error(name, entry, e.to_string()))?;
    }
    if subject.is_empty() {
        return Err(RequestError::Section {
            section: name.to_owned(),
            line: None,
            why: NameError::Empty.to_string(),
        });
    }
    Ok(subject)
}

/// Splits an OpenSSL extension value into items, taking a leading
/// `critical` off.
fn items(value: &str) -> (bool, Vec<&str>) {
    let mut items: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let critical = items.first() == Some(&"critical");
    if critical {
        items.remove(0);
    }
    (critical, items)
}

fn read_bool(text: &str) -> Option<bool> {
    match text {
        "TRUE" | "true" | "Y" | "y" | "YES" | "yes" => Some(true),
        "FALSE" | "false" | "N" | "n" | "NO" | "no" => Some(false),
        _ => None,
    }
}

fn read_extension(config: &Config, section: &str, entry: &Entry) -> Result<Ext, RequestError> {
    let err = |why: String| section_error(section, entry, why);
    let key = entry.key.as_str();
    if entry.value.starts_with("DER:")
        || entry.value.starts_with("ASN1:")
        || entry.value.contains(", DER:")
    {
        return Err(err(format!(
            "raw DER/ASN1 values are not supported for \"{key}\""
        )));
    }
    if key == "nsComment" {
        // The comment is free text: commas are part of it.
        let (critical, text) = match entry.value.strip_prefix("critical,") {
            Some(rest) => (true, rest.trim()),
            None => (false, entry.value.as_str()),
        };
        if !text.is_ascii() {
            return Err(err("nsComment must be ASCII".into()));
        }
        return Ok(Ext {
            critical,
            kind: Extension::Comment(text.to_owned()),
        });
    }
    let (critical, items) = items(&entry.value);
    let kind = match key {
        "basicConstraints" => {
            let (mut ca, mut pathlen) = (None, None);
            for item in &items {
                let (name, value) = item
                    .split_once(':')
                    .map(|(n, v)| (n.trim(), v.trim()))
                    .unwrap_or((item, ""));
                if name.eq_ignore_ascii_case("CA") {
                    ca = Some(read_bool(value).ok_or_else(|| {
                        err(format!("CA must be true or false, not \"{value}\""))
                    })?);
                } else if name.eq_ignore_ascii_case("pathlen") {
                    pathlen = Some(
                        value
                            .parse()
                            .map_err(|_| err(format!("pathlen must be 0-255, not \"{value}\"")))?,
                    );
                } else {
                    return Err(err(format!(
                        "unsupported basicConstraints value \"{item}\""
                    )));
                }
            }
            Extension::BasicConstraints {
                ca: ca.unwrap_or(false),
                pathlen,
            }
        }
        "keyUsage" => {
            let mut bits = 0;
            for item in &items {
                bits |= key_usage_bit(item)
                    .ok_or_else(|| err(format!("unknown keyUsage \"{item}\"")))?;
            }
            Extension::KeyUsage(bits)
        }
        "extendedKeyUsage" => Extension::ExtendedKeyUsage(
            items
                .iter()
                .map(|item| {
                    extended_key_usage_oid(item)
                        .ok_or_else(|| err(format!("unknown extendedKeyUsage \"{item}\"")))
                })
                .collect::<Result<_, _>>()?,
        ),
        "subjectKeyIdentifier" => match items.as_slice() {
            ["hash"] => Extension::SubjectKeyIdentifier,
            _ => {
                return Err(err(format!(
                    "subjectKeyIdentifier \"{}\" is not supported; use hash",
                    entry.value
                )))
            }
        },
        "authorityKeyIdentifier" => {
            let (mut keyid, mut issuer) = (Want::No, Want::No);
            for item in &items {
                match *item {
                    "keyid" => keyid = Want::Yes,
                    "keyid:always" => keyid = Want::Always,
                    "issuer" => issuer = Want::Yes,
                    "issuer:always" => issuer = Want::Always,
                    other => {
                        return Err(err(format!(
                            "unsupported authorityKeyIdentifier value \"{other}\""
                        )))
                    }
                }
            }
            Extension::AuthorityKeyIdentifier { keyid, issuer }
        }
        "subjectAltName" => {
            let mut names = Vec::new();
            for item in &items {
                if let Some(reference) = item.strip_prefix('@') {
                    let referenced = config.section(reference).ok_or_else(|| {
                        err(format!(
                            "subjectAltName references [{reference}], which does not exist; add it"
                        ))
                    })?;
                    for alt in referenced {
                        // `DNS.1 = x`: the type is the key up to the first '.'.
                        let kind = alt.key.split('.').next().unwrap_or(&alt.key);
                        names.push(
                            read_san(kind, &alt.value)
                                .map_err(|why| section_error(reference, alt, why))?,
                        );
                    }
                } else {
                    let (kind, value) = item.split_once(':').ok_or_else(|| {
                        err(format!(
                            "subjectAltName \"{item}\" needs a type, e.g. DNS:{item}"
                        ))
                    })?;
                    names.push(read_san(kind, value).map_err(err)?);
                }
            }
            Extension::SubjectAltName(names)
        }
        other => return Err(err(format!("unsupported extension \"{other}\""))),
    };
    Ok(Ext { critical, kind })
}

fn read_san(kind: &str, value: &str) -> Result<San, String> {
    let value = value.trim();
    match kind {
        "DNS" => Ok(San::Dns(value.to_owned())),
        "IP" => value
            .parse()
            .map(San::Ip)
            .map_err(|_| format!("\"{value}\" is not an IP address")),
        "email" if value == "copy" || value == "move" => {
            Err(format!("email:{value} is not supported; write the address"))
        }
        "email" => Ok(San::Email(value.to_owned())),
        "URI" => Ok(San::Uri(value.to_owned())),
        other => Err(format!(
            "unsupported subjectAltName type \"{other}\" (use DNS, IP, email or URI)"
        )),
    }
    .and_then(|san| san.check().map(|()| san))
}
