//! Who wrote a store version, and why.
//!
//! Every timestamped version rumor writes (`<path>/<YYYYmmddHHMMSS>`)
//! carries a [`Provenance`]: rumor's version, the command, the reason
//! (`new`, `renew`, `--secret NAME`, `expiring`, `rekey`, …), the SHA-256 of
//! the rendered spec, and the operator (the admin's `age1…` recipient, or
//! the Vault token's display name and entity). On Vault it is the
//! `custom_metadata` of the timestamped path, so the data stays exactly the
//! original tool's layout; the local store keeps the same fields inside
//! the signed entry. Versions written before (or by the original tool)
//! have none, and read as unknown.
//!
//! Nothing here is secret: a provenance never holds a value, and
//! [`fingerprint`] shows a value only as a short hash.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The metadata keys on Vault, one per field, prefixed so they do not
/// collide with an operator's own custom metadata.
const KEYS: [&str; 5] = [
    "rumor-version",
    "rumor-command",
    "rumor-reason",
    "rumor-spec-sha256",
    "rumor-operator",
];

/// Vault's limit on one custom_metadata value.
const MAX_VALUE: usize = 512;

/// Who wrote a store version, and why.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// rumor's version (`0.1.0`).
    pub version: String,
    /// The command (`new`, `renew`, `rekey`, `run`, `init`).
    pub command: String,
    /// Why: `new`, `renew`, `--secret NAME`, `expiring`, `rekey`, `run`.
    pub reason: String,
    /// SHA-256 (hex) of the rendered spec the run executed; empty when no
    /// spec was involved (a rekey).
    pub spec: String,
    /// The admin recipient (`age1…`) or Vault token display name (and
    /// entity id) that wrote it.
    pub operator: String,
}

impl Provenance {
    /// A provenance for this build of rumor; the operator is filled in by
    /// the store when it writes ([`crate::store::Store::operator`]).
    pub fn new(command: &str, reason: &str, spec_text: Option<&str>) -> Provenance {
        Provenance {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            command: command.to_owned(),
            reason: reason.to_owned(),
            spec: spec_text.map(spec_hash).unwrap_or_default(),
            operator: String::new(),
        }
    }

    /// The fields with control characters replaced and each value cut to
    /// Vault's limit, so what is stored is what is read back and shown.
    pub fn cleaned(&self) -> Provenance {
        Provenance {
            version: clean(&self.version),
            command: clean(&self.command),
            reason: clean(&self.reason),
            spec: clean(&self.spec),
            operator: clean(&self.operator),
        }
    }

    fn fields(&self) -> [&str; 5] {
        [
            self.version.as_str(),
            self.command.as_str(),
            self.reason.as_str(),
            self.spec.as_str(),
            self.operator.as_str(),
        ]
    }

    /// As Vault `custom_metadata`. Vault refuses empty values, so an
    /// empty field (no spec, for a rekey) is left out.
    pub fn to_metadata(&self) -> HashMap<String, String> {
        let clean = self.cleaned();
        KEYS.iter()
            .zip(clean.fields())
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| ((*k).to_owned(), v.to_owned()))
            .collect()
    }

    /// From Vault `custom_metadata`; `None` when it holds no rumor fields.
    pub fn from_metadata(metadata: Option<&HashMap<String, String>>) -> Option<Provenance> {
        let metadata = metadata?;
        if !KEYS.iter().any(|k| metadata.contains_key(*k)) {
            return None;
        }
        let get = |i: usize| clean(metadata.get(KEYS[i]).map_or("", String::as_str));
        Some(Provenance {
            version: get(0),
            command: get(1),
            reason: get(2),
            spec: get(3),
            operator: get(4),
        })
    }
}

/// Control characters become U+FFFD and the value is cut at Vault's limit
/// (on a character boundary): an operator name from a token cannot move a
/// terminal's cursor or break a line of `rumor log`.
fn clean(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(MAX_VALUE));
    for c in value.chars() {
        let c = if c.is_control() { '\u{fffd}' } else { c };
        if out.len() + c.len_utf8() > MAX_VALUE {
            break;
        }
        out.push(c);
    }
    out
}

/// The SHA-256 of a rendered spec, in hex.
pub fn spec_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A value's fingerprint: the first 12 hex digits of its SHA-256, enough
/// to tell two versions apart, too short to help guess the value (a hash
/// of a high-entropy secret reveals nothing of it). Stored values are
/// trimmed, so the fingerprint is of the trimmed value.
pub fn fingerprint(value: &str) -> String {
    let mut hex = hex::encode(Sha256::digest(value.trim().as_bytes()));
    hex.truncate(12);
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trip_and_cleaning() {
        let rekey = Provenance::new("rekey", "rekey", None);
        assert_eq!(rekey.to_metadata().len(), 3);
        assert_eq!(
            Provenance::from_metadata(Some(&rekey.to_metadata())).unwrap(),
            rekey
        );
        let mut p = Provenance::new("renew", "--secret wifi.pass", Some("spec"));
        p.operator = "token\n\u{1b}[31mevil".into();
        let back = Provenance::from_metadata(Some(&p.to_metadata())).unwrap();
        assert_eq!(back.reason, "--secret wifi.pass");
        assert_eq!(back.spec, spec_hash("spec"));
        assert!(!back.operator.chars().any(char::is_control), "{back:?}");
        assert_eq!(Provenance::from_metadata(Some(&HashMap::new())), None);
        assert_eq!(Provenance::from_metadata(None), None);
        let long = "é".repeat(400);
        assert!(clean(&long).len() <= MAX_VALUE);
    }

    #[test]
    fn fingerprints() {
        assert_eq!(fingerprint("a"), fingerprint(" a\n"));
        assert_ne!(fingerprint("a"), fingerprint("b"));
        assert_eq!(fingerprint("a").len(), 12);
    }
}
