//! Writing a flat map of strings as a SOPS file, without churn.
//!
//! Devices keep their SOPS files in version control and in images, so a run
//! that changes nothing must write nothing new, and a run that changes one
//! value must change one line (plus `lastmodified` and `mac`). Unchanged
//! values keep their ciphertext; a changed value always gets a fresh IV,
//! since GCM with a reused IV leaks the XOR of the two plaintexts.

use rand_core::CryptoRngCore;
use std::collections::{BTreeSet, HashSet};

use sha2::{Digest, Sha512};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::decrypt::{open, path_aad, Opened};
use super::leaf::{seal, DataKey};
use super::metadata::{block, format_time, wrap, AgeEntry, UNENCRYPTED_SUFFIX};
use super::tree::{write_document, Node};
use super::SopsError;

/// What can be carried over from an earlier output.
struct Previous {
    key: DataKey,
    age: Vec<AgeEntry>,
    /// Each key's plaintext and its stored `ENC[…]` string.
    values: Vec<(String, Zeroizing<String>, String)>,
}

impl Previous {
    /// Opens `text` when it is a flat string map rumor could have written.
    fn open(text: &str, identities: &[crate::identity::Identity]) -> Option<Previous> {
        let Opened {
            raw,
            metadata,
            key,
            docs,
        } = open(text, identities).ok()?;
        if !metadata.is_rumor_shaped() || raw.len() != 1 {
            return None;
        }
        let Node::Map(entries) = docs.into_iter().next()? else {
            return None;
        };
        let mut values = Vec::with_capacity(entries.len());
        for ((k, node), (_, stored)) in entries.into_iter().zip(raw[0].iter()) {
            let (Node::Scalar(super::tree::Kind::Str, plain), serde_yaml_ng::Value::String(stored)) =
                (node, stored)
            else {
                return None;
            };
            values.push((k, plain, stored.clone()));
        }
        Some(Previous {
            key,
            age: metadata.age_entries().ok()?.to_vec(),
            values,
        })
    }

    fn same_pairs(&self, pairs: &[(&str, &str)]) -> bool {
        self.values.len() == pairs.len()
            && self
                .values
                .iter()
                .zip(pairs)
                .all(|((k, v, _), (pk, pv))| k == pk && v.as_str() == *pv)
    }

    /// The stored ciphertext of `key` if it still holds `value`.
    fn ciphertext(&self, key: &str, value: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, v, _)| k == key && v.as_str() == value)
            .map(|(_, _, enc)| enc.as_str())
    }
}

fn check_keys(pairs: &[(&str, &str)]) -> Result<(), SopsError> {
    let mut seen = HashSet::new();
    for (key, _) in pairs {
        let bad = |reason| {
            Err(SopsError::Key {
                key: key.escape_debug().to_string(),
                reason,
            })
        };
        if *key == "sops" {
            return bad("is reserved for the sops metadata; rename the secret");
        }
        if key.contains(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']) {
            return bad("contains a line break; sops keys are single-line");
        }
        if !seen.insert(*key) {
            return bad("appears twice; sops maps need unique keys");
        }
    }
    Ok(())
}

/// Encrypts `pairs` (in that order) as a SOPS YAML file for `recipients`.
///
/// With `previous`, an earlier output that one of `identities` opens, the
/// result changes as little as possible: the same pairs and recipient set
/// give `previous` back byte for byte; changed values alone keep the data
/// key, the age blocks and the ciphertext of every unchanged value, and get
/// a new `lastmodified` and MAC; a changed recipient set gets a new data
/// key. A `previous` that does not open is ignored.
///
/// Keys ending in `_unencrypted` and empty values stay in the clear, as
/// with sops. Keys may not be `sops`, repeat, or hold line breaks.
pub fn encrypt(
    pairs: &[(&str, &str)],
    recipients: &[crate::identity::Recipient],
    previous: Option<&str>,
    identities: &[crate::identity::Identity],
    now: OffsetDateTime,
    rng: &mut dyn CryptoRngCore,
) -> Result<String, SopsError> {
    check_keys(pairs)?;
    // The same recipient listed twice would only get a second copy of the key.
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
    let wanted_set: BTreeSet<&str> = wanted.iter().map(|(n, _)| n.as_str()).collect();
    let previous = previous
        .and_then(|text| Previous::open(text, identities).map(|p| (text, p)))
        .filter(|(_, p)| {
            p.age
                .iter()
                .map(|e| e.recipient.as_str())
                .collect::<BTreeSet<_>>()
                == wanted_set
        });

    let (key, age, previous) = match previous {
        // A store keeps values trimmed; the file ends in one newline.
        Some((text, p)) if p.same_pairs(pairs) => return Ok(format!("{}\n", text.trim_end())),
        Some((_, p)) => (Zeroizing::new(*p.key), p.age.clone(), Some(p)),
        None => {
            // A new recipient set gets a new data key: a removed recipient
            // must not be able to read what is written from now on.
            let mut key = Zeroizing::new([0u8; 32]);
            rng.fill_bytes(key.as_mut());
            let age = wanted
                .iter()
                .map(|(name, r)| {
                    Ok(AgeEntry {
                        recipient: name.clone(),
                        enc: wrap(&key, r)?,
                    })
                })
                .collect::<Result<Vec<_>, SopsError>>()?;
            (key, age, None)
        }
    };

    let mut hash = Sha512::new();
    let mut entries = Vec::with_capacity(pairs.len() + 1);
    for (k, v) in pairs {
        hash.update(v.as_bytes());
        let path = [(*k).to_owned()];
        let node = if v.is_empty() || k.ends_with(UNENCRYPTED_SUFFIX) {
            // sops leaves empty strings and `_unencrypted` keys in the clear.
            Node::str(*v)
        } else if let Some(enc) = previous.as_ref().and_then(|p| p.ciphertext(k, v)) {
            Node::str(enc)
        } else {
            Node::str(seal(
                &key,
                v.as_bytes(),
                path_aad(&path).as_bytes(),
                "str",
                rng,
            )?)
        };
        entries.push(((*k).to_owned(), node));
    }
    let lastmodified = format_time(now.to_offset(time::UtcOffset::UTC));
    let mac = Zeroizing::new(hex::encode_upper(hash.finalize()));
    let mac = seal(&key, mac.as_bytes(), lastmodified.as_bytes(), "str", rng)?;
    entries.push(("sops".to_owned(), block(&age, &lastmodified, mac)));
    let mut out = String::new();
    write_document(&mut out, &Node::Map(entries));
    Ok(out)
}
