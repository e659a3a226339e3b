//! The `sops:` block: its on-disk shape, the encryption rule it states, and
//! the age-wrapped data key.

use std::io::{Read, Write};

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use regex::Regex;
use serde::Deserialize;
use serde_yaml_ng::Value;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::leaf::DataKey;
use super::tree::Node;
use super::SopsError;

/// The version rumor writes; the format is that of sops 3.11.
pub(crate) const VERSION: &str = "3.11.0";

/// The suffix rule sops writes when none is asked for.
pub(crate) const UNENCRYPTED_SUFFIX: &str = "_unencrypted";

/// One `age:` entry as stored.
#[derive(Deserialize, Clone)]
pub(crate) struct AgeEntry {
    /// `age1…`.
    pub recipient: String,
    /// An armoured age file holding the 32-byte data key.
    pub enc: String,
}

#[derive(Deserialize)]
struct KeyGroup {
    #[serde(default)]
    age: Vec<AgeEntry>,
}

/// The `sops:` block as stored; fields rumor does not use (kms, pgp…) are
/// ignored, so a file with several key types still opens with age.
#[derive(Deserialize)]
pub(crate) struct Metadata {
    #[serde(default)]
    age: Vec<AgeEntry>,
    #[serde(default)]
    key_groups: Vec<KeyGroup>,
    pub lastmodified: Option<String>,
    pub mac: Option<String>,
    pub unencrypted_suffix: Option<String>,
    pub encrypted_suffix: Option<String>,
    pub unencrypted_regex: Option<String>,
    pub encrypted_regex: Option<String>,
    pub unencrypted_comment_regex: Option<String>,
    pub encrypted_comment_regex: Option<String>,
    #[serde(default)]
    pub mac_only_encrypted: bool,
    pub version: Option<Value>,
}

/// Which values are encrypted (sops' six mutually exclusive options).
pub(crate) enum Rule {
    /// All of them (files without a rule field).
    All,
    /// Unless a key on the path ends with this.
    UnencryptedSuffix(String),
    /// Only if a key on the path ends with this.
    EncryptedSuffix(String),
    /// Unless a key on the path matches.
    UnencryptedRegex(Regex),
    /// Only if a key on the path matches.
    EncryptedRegex(Regex),
}

impl Rule {
    /// Whether the value at `path` is encrypted: one key on the path
    /// decides for the whole subtree, as in sops.
    pub(crate) fn encrypts(&self, path: &[String]) -> bool {
        match self {
            Rule::All => true,
            Rule::UnencryptedSuffix(s) => !path.iter().any(|k| k.ends_with(s.as_str())),
            Rule::EncryptedSuffix(s) => path.iter().any(|k| k.ends_with(s.as_str())),
            Rule::UnencryptedRegex(re) => !path.iter().any(|k| re.is_match(k)),
            Rule::EncryptedRegex(re) => path.iter().any(|k| re.is_match(k)),
        }
    }
}

impl Metadata {
    /// Reads the block from its YAML value.
    pub(crate) fn from_value(value: Value) -> Result<Metadata, SopsError> {
        serde_yaml_ng::from_value(value).map_err(|e| SopsError::Metadata {
            field: "sops",
            reason: format!("is malformed ({e})"),
        })
    }

    /// The age entries, from `age:` or a single key group.
    pub(crate) fn age_entries(&self) -> Result<&[AgeEntry], SopsError> {
        match self.key_groups.as_slice() {
            [] => Ok(&self.age),
            [group] => Ok(&group.age),
            _ => Err(SopsError::Unsupported {
                what: "several key groups (shamir secret sharing)".into(),
            }),
        }
    }

    /// The version, which sops requires. Only major version 3 is read: a
    /// file claiming another format version may mean something else by
    /// the same fields, and guessing is how a parser gets talked into
    /// trusting what it should not.
    pub(crate) fn check_version(&self) -> Result<(), SopsError> {
        let text = match &self.version {
            Some(Value::String(s)) => s.trim().to_owned(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        if text.is_empty() {
            return Err(SopsError::Metadata {
                field: "version",
                reason: "is missing or empty".into(),
            });
        }
        let major = text.split('.').next().unwrap_or_default();
        if major != "3" {
            // Quoted escaped and cut short: it is plaintext anyone can write.
            let shown: String = text.escape_debug().take(40).collect();
            return Err(SopsError::UnknownVersion { version: shown });
        }
        Ok(())
    }

    /// The encryption rule the block states.
    pub(crate) fn rule(&self) -> Result<Rule, SopsError> {
        if self.unencrypted_comment_regex.is_some() || self.encrypted_comment_regex.is_some() {
            return Err(SopsError::Unsupported {
                what: "comment-based encryption rules".into(),
            });
        }
        let regex = |field: &'static str, text: &str| {
            Regex::new(text).map_err(|_| SopsError::Metadata {
                field,
                reason: "is not a valid regular expression".into(),
            })
        };
        let mut rules = Vec::new();
        if let Some(s) = &self.unencrypted_suffix {
            rules.push(Rule::UnencryptedSuffix(s.clone()));
        }
        if let Some(s) = &self.encrypted_suffix {
            rules.push(Rule::EncryptedSuffix(s.clone()));
        }
        if let Some(s) = &self.unencrypted_regex {
            rules.push(Rule::UnencryptedRegex(regex("unencrypted_regex", s)?));
        }
        if let Some(s) = &self.encrypted_regex {
            rules.push(Rule::EncryptedRegex(regex("encrypted_regex", s)?));
        }
        match rules.len() {
            0 => Ok(Rule::All),
            1 => Ok(rules.remove(0)),
            _ => Err(SopsError::Metadata {
                field: "unencrypted_suffix",
                reason: "is set together with another rule".into(),
            }),
        }
    }

    /// Whether this block could have come from [`super::encrypt`]: age
    /// only, the default rule, a MAC over every value.
    pub(crate) fn is_rumor_shaped(&self) -> bool {
        self.key_groups.is_empty()
            && !self.mac_only_encrypted
            && self.unencrypted_suffix.as_deref() == Some(UNENCRYPTED_SUFFIX)
            && self.encrypted_suffix.is_none()
            && self.unencrypted_regex.is_none()
            && self.encrypted_regex.is_none()
    }
}

/// `lastmodified` as sops authenticates the MAC with it: RFC 3339 to the
/// second, `Z` for UTC, `±hh:mm` otherwise (Go's `time.RFC3339`).
pub(crate) fn lastmodified_aad(text: &str) -> Result<String, SopsError> {
    let bad = || SopsError::Metadata {
        field: "lastmodified",
        reason: "is not an RFC 3339 time".into(),
    };
    let t = OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|_| bad())?;
    Ok(format_time(t))
}

/// Formats a time the way sops writes `lastmodified`.
pub(crate) fn format_time(t: OffsetDateTime) -> String {
    let (h, m, _) = t.offset().as_hms();
    let zone = if t.offset().is_utc() {
        "Z".to_owned()
    } else {
        format!("{:+03}:{:02}", h, m.abs())
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{zone}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Wraps the data key for one recipient as an armoured age file.
pub(crate) fn wrap(
    key: &DataKey,
    recipient: &crate::identity::Recipient,
) -> Result<String, SopsError> {
    let age_err = |e: &dyn std::fmt::Display| SopsError::Age {
        reason: e.to_string(),
    };
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
            .map_err(|e| age_err(&e))?;
    let mut out = Vec::new();
    let armor =
        ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor).map_err(|e| age_err(&e))?;
    let mut writer = encryptor.wrap_output(armor).map_err(|e| age_err(&e))?;
    writer.write_all(key.as_ref()).map_err(|e| age_err(&e))?;
    writer
        .finish()
        .and_then(|armor| armor.finish())
        .map_err(|e| age_err(&e))?;
    String::from_utf8(out).map_err(|e| age_err(&e))
}

/// Opens the data key with any of `identities`.
pub(crate) fn unwrap(
    entries: &[AgeEntry],
    identities: &[crate::identity::Identity],
) -> Result<DataKey, SopsError> {
    if entries.is_empty() {
        return Err(SopsError::NoAgeRecipients);
    }
    for entry in entries {
        let bad = |reason: String| SopsError::DataKey {
            recipient: entry.recipient.clone(),
            reason,
        };
        let decryptor = match age::Decryptor::new(ArmoredReader::new(entry.enc.as_bytes())) {
            Ok(d) => d,
            Err(e) => return Err(bad(format!("not an age file ({e})"))),
        };
        let mut reader = match decryptor.decrypt(identities.iter().map(|i| i as &dyn age::Identity))
        {
            Ok(r) => r,
            Err(age::DecryptError::NoMatchingKeys) => continue,
            Err(e) => return Err(bad(e.to_string())),
        };
        let mut bytes = Zeroizing::new(Vec::with_capacity(32));
        reader
            .read_to_end(&mut bytes)
            .map_err(|e| bad(format!("its payload does not decrypt ({e})")))?;
        let mut key = Zeroizing::new([0u8; 32]);
        if bytes.len() != 32 {
            return Err(bad("it does not hold a 32-byte key".into()));
        }
        key.copy_from_slice(&bytes);
        return Ok(key);
    }
    Err(SopsError::NoMatchingIdentity {
        recipients: entries.iter().map(|e| e.recipient.clone()).collect(),
    })
}

/// The `sops:` block rumor writes, in sops 3.11's field order.
pub(crate) fn block(entries: &[AgeEntry], lastmodified: &str, mac: String) -> Node {
    let age = entries
        .iter()
        .map(|e| {
            Node::Map(vec![
                ("recipient".into(), Node::str(e.recipient.clone())),
                ("enc".into(), Node::str(e.enc.clone())),
            ])
        })
        .collect();
    Node::Map(vec![
        ("age".into(), Node::List(age)),
        ("lastmodified".into(), Node::str(lastmodified)),
        ("mac".into(), Node::str(mac)),
        ("unencrypted_suffix".into(), Node::str(UNENCRYPTED_SUFFIX)),
        ("version".into(), Node::str(VERSION)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lastmodified_is_reformatted_like_go() {
        assert_eq!(
            lastmodified_aad("2026-11-23T05:40:49Z").unwrap(),
            "2026-11-23T05:40:49Z"
        );
        assert_eq!(
            lastmodified_aad("2026-11-23T05:40:49.123456Z").unwrap(),
            "2026-11-23T05:40:49Z"
        );
        assert_eq!(
            lastmodified_aad("2026-11-23T07:40:49+02:00").unwrap(),
            "2026-11-23T07:40:49+02:00"
        );
        assert_eq!(
            lastmodified_aad("2026-11-23T05:40:49+00:00").unwrap(),
            "2026-11-23T05:40:49Z"
        );
        assert!(lastmodified_aad("yesterday").is_err());
    }

    #[test]
    fn only_major_version_3_is_read() {
        let with = |version: &str| {
            let yaml = format!("version: {version}\n");
            Metadata::from_value(serde_yaml_ng::from_str(&yaml).unwrap())
                .unwrap()
                .check_version()
        };
        for good in ["3.11.0", "3.7.3", "\"3.0\"", "3"] {
            assert!(with(good).is_ok(), "{good}");
        }
        for bad in [
            "4.0.0",
            "2.1",
            "30.0",
            "\"03.1\"",
            "v3.11",
            "4",
            "\"3\\n.1\"",
        ] {
            assert!(
                matches!(with(bad), Err(SopsError::UnknownVersion { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            with("\"\""),
            Err(SopsError::Metadata {
                field: "version",
                ..
            })
        ));
        let err = with("\"4.0\\n\\u202e\"").unwrap_err().to_string();
        assert!(!err.contains('\n') && !err.contains('\u{202e}'), "{err}");
    }

    #[test]
    fn key_wraps_and_unwraps() {
        let id = crate::identity::Identity::generate();
        let other = crate::identity::Identity::generate();
        let key = Zeroizing::new([7u8; 32]);
        let enc = wrap(&key, &id.to_public()).unwrap();
        assert!(enc.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"));
        assert!(enc.ends_with("-----END AGE ENCRYPTED FILE-----\n"));
        let entries = [AgeEntry {
            recipient: id.to_public().to_string(),
            enc,
        }];
        assert_eq!(*unwrap(&entries, &[id]).unwrap(), [7u8; 32]);
        let err = unwrap(&entries, &[other]).unwrap_err().to_string();
        assert!(
            err.contains(&entries[0].recipient) && err.contains("SOPS_AGE_KEY_FILE"),
            "{err}"
        );
    }
}
