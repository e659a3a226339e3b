//! `sops updatekeys`: the same file for another recipient set.
//!
//! Checked against sops 3.11: `updatekeys` keeps the data key, so every
//! value keeps its ciphertext, and it keeps `lastmodified` and `mac` byte
//! for byte (the MAC covers the values only, under the unchanged
//! `lastmodified`). It wraps the data key afresh for every recipient of
//! the new set, old ones included, in the order the rules list them, and
//! leaves a file already encrypted to exactly that set untouched.
//!
//! Keeping the data key is what lets an admin be added or removed without
//! touching any secret; it is also why removing one cannot take back what
//! they could already read (they may have kept the data key).

use std::collections::BTreeSet;

use serde_yaml_ng::Value;

use super::decrypt::open;
use super::metadata::{block, wrap, AgeEntry};
use super::tree::{write_document, Node};
use super::SopsError;

/// `text` with its data key wrapped for `recipients` instead (in this
/// order, duplicates dropped), as `sops updatekeys` does; `text` itself
/// when it is already encrypted to exactly that set.
///
/// The file must open with one of `identities` and its MAC must hold
/// before its data key is handed to anyone new: a file planted with a data
/// key its author kept must not be re-shared. Only files of the shape
/// [`super::encrypt`] writes (one flat map of strings, the default rule)
/// are rewritten.
pub(crate) fn rewrap(
    text: &str,
    recipients: &[crate::identity::Recipient],
    identities: &[crate::identity::Identity],
) -> Result<String, SopsError> {
    let mut wanted: Vec<(String, &crate::identity::Recipient)> = Vec::new();
    for r in recipients {
        let name = r.to_string();
        if !wanted.iter().any(|(n, _)| *n == name) {
            wanted.push((name, r));
        }
    }
    if wanted.is_empty() {
        return Err(SopsError::NoRecipients);
    }
    let opened = open(text, identities)?;
    let have: BTreeSet<&str> = opened
        .metadata
        .age_entries()?
        .iter()
        .map(|e| e.recipient.as_str())
        .collect();
    if have == wanted.iter().map(|(n, _)| n.as_str()).collect() {
        return Ok(text.to_owned());
    }
    let unsupported = |what: &str| SopsError::Unsupported {
        what: format!("{what}; `sops updatekeys` it instead"),
    };
    if !opened.metadata.is_rumor_shaped() {
        return Err(unsupported(
            "rewrapping a file with key groups or another encryption rule",
        ));
    }
    let [raw] = opened.raw.as_slice() else {
        return Err(unsupported("rewrapping a file of several documents"));
    };
    let mut entries = Vec::with_capacity(raw.len() + 1);
    for (k, v) in raw {
        let (Value::String(k), Value::String(v)) = (k, v) else {
            return Err(unsupported(
                "rewrapping a file that is not a flat map of strings",
            ));
        };
        entries.push((k.clone(), Node::str(v.clone())));
    }
    let field = |name: &'static str, value: &Option<String>| {
        value.clone().ok_or(SopsError::Metadata {
            field: name,
            reason: "is missing".into(),
        })
    };
    let lastmodified = field("lastmodified", &opened.metadata.lastmodified)?;
    let mac = field("mac", &opened.metadata.mac)?;
    let age = wanted
        .iter()
        .map(|(name, r)| {
            Ok(AgeEntry {
                recipient: name.clone(),
                enc: wrap(&opened.key, r)?,
            })
        })
        .collect::<Result<Vec<_>, SopsError>>()?;
    entries.push(("sops".to_owned(), block(&age, &lastmodified, mac)));
    let mut out = String::new();
    write_document(&mut out, &Node::Map(entries));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn keeps_values_and_mac_and_moves_the_key() {
        let (a, b, device) = (
            crate::identity::Identity::generate(),
            crate::identity::Identity::generate(),
            crate::identity::Identity::generate(),
        );
        let pairs = [("x", "secret-one"), ("y", ""), ("z_unencrypted", "plain")];
        let first = crate::sops::encrypt(
            &pairs,
            &[device.to_public(), a.to_public()],
            None,
            &[],
            datetime!(2026-01-02 03:04:05 UTC),
            &mut rand::rngs::OsRng,
        )
        .unwrap();
        let both = rewrap(
            &first,
            &[device.to_public(), a.to_public(), b.to_public()],
            std::slice::from_ref(&a),
        )
        .unwrap();
        // Everything but the age block is unchanged.
        let before: Vec<&str> = first
            .lines()
            .filter(|l| !l.starts_with("        ") && !l.starts_with("    age:"))
            .collect();
        let after: Vec<&str> = both
            .lines()
            .filter(|l| !l.starts_with("        ") && !l.starts_with("    age:"))
            .collect();
        assert_eq!(before, after);
        for id in [&a, &b, &device] {
            assert_eq!(
                crate::sops::decrypt(&both, std::slice::from_ref(id))
                    .unwrap()
                    .yaml(),
                crate::sops::decrypt(&first, std::slice::from_ref(&a))
                    .unwrap()
                    .yaml()
            );
        }
        assert_eq!(
            rewrap(
                &both,
                &[b.to_public(), device.to_public(), a.to_public()],
                std::slice::from_ref(&b)
            )
            .unwrap(),
            both,
            "same set: untouched"
        );
        let without_a = rewrap(
            &both,
            &[device.to_public(), b.to_public()],
            std::slice::from_ref(&b),
        )
        .unwrap();
        assert!(crate::sops::decrypt(&without_a, std::slice::from_ref(&a)).is_err());
        assert_eq!(
            crate::sops::recipients_of(&without_a).unwrap(),
            [device.to_public().to_string(), b.to_public().to_string()]
        );
        // A file that does not authenticate is not re-shared.
        let tampered = without_a.replace("plain", "edited");
        assert!(matches!(
            rewrap(&tampered, &[a.to_public()], std::slice::from_ref(&b)),
            Err(SopsError::MacMismatch)
        ));
        assert!(rewrap(&both, &[], std::slice::from_ref(&b)).is_err());
    }
}
