//! SOPS files with age recipients, read and written natively.
//!
//! A SOPS file is YAML whose values are each encrypted with AES-256-GCM
//! under one random 32-byte data key, with the value's key path as
//! associated data; the data key is wrapped for each age recipient in the
//! `sops:` block, and a MAC over all plaintext values, encrypted under the
//! `lastmodified` time, binds the whole file. rumor writes the files the
//! way sops 3.11 does (`sops decrypt` reads them) and reads any age-only
//! file sops writes. The format facts are in the project's sops notes; the
//! tests check them against the real binary.
//!
//! Comments are not kept when reading: sops encrypts them, but they carry
//! nothing rumor needs and they are outside the MAC.

mod decrypt;
mod encrypt;
mod error;
mod leaf;
mod metadata;
mod rewrap;
mod scalar;
mod tree;

pub use error::SopsError;

use zeroize::Zeroizing;

use tree::{write_document, Kind, Node};

pub use encrypt::encrypt;
pub(crate) use rewrap::rewrap;

/// Decrypts a SOPS YAML file with any of `identities`, verifying its MAC.
pub fn decrypt(
    text: &str,
    identities: &[crate::identity::Identity],
) -> Result<Decrypted, SopsError> {
    let opened = decrypt::open(text, identities)?;
    Ok(Decrypted { docs: opened.docs })
}

/// The plaintext YAML of a flat string map, in the style sops writes.
pub fn plain_yaml(pairs: &[(&str, &str)]) -> String {
    let node = Node::Map(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Node::str(*v)))
            .collect(),
    );
    let mut out = String::new();
    write_document(&mut out, &node);
    out
}

/// Whether any of `identities` unwraps the file's data key: what a device
/// needs to read the file, checked without decrypting a value. `Ok(false)`
/// when none does; an unparseable file is an error.
pub(crate) fn opens(
    text: &str,
    identities: &[crate::identity::Identity],
) -> Result<bool, SopsError> {
    let (_, metadata) = decrypt::parse(text)?;
    match metadata::unwrap(metadata.age_entries()?, identities) {
        Ok(_key) => Ok(true),
        Err(SopsError::NoMatchingIdentity { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The `age1…` recipients a SOPS file lists, without decrypting anything.
pub fn recipients_of(text: &str) -> Result<Vec<String>, SopsError> {
    let (_, metadata) = decrypt::parse(text)?;
    Ok(metadata
        .age_entries()?
        .iter()
        .map(|e| e.recipient.clone())
        .collect())
}

/// A decrypted SOPS file. Its values are secrets: it has no `Debug`, and
/// they are wiped when it is dropped.
pub struct Decrypted {
    docs: Vec<Node>,
}

impl Decrypted {
    /// The plaintext document(s), as `sops decrypt` prints them.
    pub fn yaml(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::new());
        for (i, doc) in self.docs.iter().enumerate() {
            if i > 0 {
                out.push_str("---\n");
            }
            write_document(&mut out, doc);
        }
        out
    }

    /// The key/value pairs, in file order, when the file is one flat map of
    /// strings (as [`encrypt`] writes); `None` for anything else.
    pub fn pairs(&self) -> Option<Vec<(String, Zeroizing<String>)>> {
        let [Node::Map(entries)] = self.docs.as_slice() else {
            return None;
        };
        entries
            .iter()
            .map(|(k, v)| match v {
                Node::Scalar(Kind::Str, text) => Some((k.clone(), text.clone())),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `decrypt` must fail cleanly, never panic, on any input.
    #[test]
    fn garbage_never_panics() {
        let id = crate::identity::Identity::generate();
        let inputs = [
            "",
            "\0\0\0",
            "- a\n- b\n",
            "just a string",
            "sops: 3",
            "a: b\nsops:\n  version: 3.11.0\n",
            "a: b\nsops: {age: [{recipient: x, enc: y}], lastmodified: '2020-01-01T00:00:00Z', version: 1}\n",
            "a: [1, {b: [2, {c: d}]}]\nsops: {lastmodified: nope}\n",
            "{{{{",
            "a: &x [*x]\n",
            "? [1, 2]\n: c\nsops: {}\n",
            "a: ENC[AES256_GCM,data:,iv:,tag:,type:str]\nsops: {version: 1, lastmodified: '2020-01-01T00:00:00Z'}\n",
            "a: b\n---\n- c\n",
        ];
        for input in inputs {
            assert!(
                decrypt(input, std::slice::from_ref(&id)).is_err(),
                "{input:?}"
            );
            let _ = recipients_of(input);
        }
    }

    #[test]
    fn plain_yaml_round_trips() {
        let pairs = [
            ("a", "on"),
            ("b", "multi\nline"),
            ("c", ""),
            ("d-e.f", "x: #y"),
            ("n", "00123"),
        ];
        let text = plain_yaml(&pairs);
        assert_eq!(
            text,
            "a: \"on\"\nb: |-\n    multi\n    line\nc: \"\"\nd-e.f: 'x: #y'\n\"n\": \"00123\"\n"
        );
        let back: serde_yaml_ng::Mapping = serde_yaml_ng::from_str(&text).unwrap();
        for (k, v) in pairs {
            assert_eq!(back.get(k).and_then(|v| v.as_str()), Some(v));
        }
        assert_eq!(plain_yaml(&[]), "{}\n");
    }
}
