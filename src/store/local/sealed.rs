//! One entry of the local store on disk: an armoured age file, encrypted to
//! every admin recipient, holding `{"version": N, "data": {key: value},
//! "sig": "…"}`.
//!
//! Armour keeps the files diffable and pasteable; JSON with the keys in
//! order keeps them identical to what Vault would hold.
//!
//! age gives secrecy, not authorship: anyone can encrypt a file to the
//! admins' public recipients and commit it. So every entry is signed with
//! the fleet's store key (Ed25519), whose public half rumor.toml pins
//! (`store.signer`) and whose private half only the admins can decrypt.
//! The signature covers the entry's logical path too, so an entry cannot
//! be moved to another device. A timestamped version also carries its
//! provenance (who wrote it and why), under the same signature; entries
//! without one (written before) sign and read exactly as before.

use std::fs::DirBuilder;
use std::io::{self, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use crate::identity::{Identity, Recipient};
use age::armor::{ArmoredReader, ArmoredWriter, Format};
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::store::{Data, Provenance};

/// The plaintext document, borrowed from the caller's data for writing so
/// the values are not copied into buffers that would not be wiped.
#[derive(Serialize)]
struct DocOut<'a> {
    version: u64,
    data: IndexMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provenance: Option<&'a Provenance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sig: Option<String>,
}

#[derive(Deserialize)]
struct DocIn {
    version: u64,
    data: IndexMap<String, String>,
    #[serde(default)]
    provenance: Option<Provenance>,
    #[serde(default)]
    sig: Option<String>,
}

/// What a signature covers: a domain tag, the logical path, and the
/// entry's JSON without its signature, exactly as written.
fn signed_message(
    path: &str,
    version: u64,
    data: IndexMap<&str, &str>,
    provenance: Option<&Provenance>,
) -> Zeroizing<Vec<u8>> {
    let doc = DocOut {
        version,
        data,
        provenance,
        sig: None,
    };
    let mut message = Zeroizing::new(b"rumor local store entry v1\0".to_vec());
    message.extend_from_slice(path.trim_matches('/').as_bytes());
    message.push(0);
    // Serialising a map of strings cannot fail.
    let _ = serde_json::to_writer(&mut *message, &doc);
    message
}

/// Why an entry could not be opened. Messages never quote the plaintext.
#[derive(Debug, thiserror::Error)]
pub(super) enum UnsealError {
    /// None of the identities is a recipient of the file.
    #[error("cannot decrypt {file} with the admin identity; is RUMOR_IDENTITY the right key?")]
    WrongKey {
        /// The file.
        file: String,
    },
    /// The file is damaged or not an age file.
    #[error("{file} is not a readable age file ({reason}); restore it from a backup")]
    Damaged {
        /// The file.
        file: String,
        /// What age said.
        reason: String,
    },
    /// It decrypts, but its signature is missing or wrong.
    #[error("{file} is not signed by the fleet's store key ({reason}); it was not written by rumor for this path, perhaps planted by someone who can push to the repository")]
    Forged {
        /// The file.
        file: String,
        /// Missing, or does not verify.
        reason: &'static str,
    },
    /// It decrypts, but not to a store entry.
    #[error("{file} does not hold a rumor store entry ({reason})")]
    Shape {
        /// The file.
        file: String,
        /// Where the JSON went wrong, without its content.
        reason: String,
    },
}

/// A decrypted entry and whether its signature holds.
pub(super) struct Unsealed {
    pub(super) version: u64,
    pub(super) data: Data,
    pub(super) provenance: Option<Provenance>,
    sig: Option<String>,
}

impl Unsealed {
    /// Whether the entry carries a signature at all.
    pub(super) fn is_signed(&self) -> bool {
        self.sig.is_some()
    }

    /// Checks the signature against `key` for `path`.
    pub(super) fn verify(
        &self,
        file: &Path,
        path: &str,
        key: &VerifyingKey,
    ) -> Result<(), UnsealError> {
        let forged = |reason| UnsealError::Forged {
            file: file.display().to_string(),
            reason,
        };
        let sig = self.sig.as_deref().ok_or_else(|| forged("no signature"))?;
        let sig = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .map_err(|_| forged("a malformed signature"))?;
        let sig = Signature::from_slice(&sig).map_err(|_| forged("a malformed signature"))?;
        let message = signed_message(
            path,
            self.version,
            self.data
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            self.provenance.as_ref(),
        );
        key.verify_strict(&message, &sig)
            .map_err(|_| forged("the signature does not verify"))
    }
}

/// Decrypts and parses an entry read from `file`.
pub(super) fn unseal(
    file: &Path,
    bytes: &[u8],
    identities: &[Identity],
) -> Result<Unsealed, UnsealError> {
    let plain = decrypt(file, bytes, identities)?;
    let doc: DocIn = serde_json::from_slice(&plain).map_err(|e| UnsealError::Shape {
        file: file.display().to_string(),
        // serde_json's own message may quote a value; give only the place.
        reason: format!(
            "{:?} error at line {}, column {}",
            e.classify(),
            e.line(),
            e.column()
        ),
    })?;
    let data = doc
        .data
        .into_iter()
        .map(|(k, v)| (k, Zeroizing::new(v)))
        .collect();
    Ok(Unsealed {
        version: doc.version,
        data,
        provenance: doc.provenance,
        sig: doc.sig,
    })
}

/// Decrypts an armoured age file with any of `identities`.
pub(super) fn decrypt(
    file: &Path,
    bytes: &[u8],
    identities: &[Identity],
) -> Result<Zeroizing<Vec<u8>>, UnsealError> {
    let name = file.display().to_string();
    let damaged = |reason: String| UnsealError::Damaged {
        file: name.clone(),
        reason,
    };
    let decryptor =
        age::Decryptor::new(ArmoredReader::new(bytes)).map_err(|e| damaged(e.to_string()))?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => UnsealError::WrongKey { file: name.clone() },
            e => damaged(e.to_string()),
        })?;
    // Sized up front so the plaintext is never reallocated and left behind.
    let mut plain = Zeroizing::new(Vec::with_capacity(bytes.len()));
    reader
        .read_to_end(&mut plain)
        .map_err(|e| damaged(e.to_string()))?;
    Ok(plain)
}

/// Encrypts `plain` to all `recipients` as an armoured age file.
pub(super) fn encrypt(recipients: &[Recipient], plain: &[u8]) -> io::Result<Vec<u8>> {
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let mut out = Vec::new();
    let armored = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor)?;
    let mut stream = encryptor.wrap_output(armored)?;
    stream.write_all(plain)?;
    stream.finish()?.finish()?;
    Ok(out)
}

/// Signs an entry for `path` with `key` and encrypts it to all `recipients`.
pub(super) fn seal(
    recipients: &[Recipient],
    key: &SigningKey,
    path: &str,
    version: u64,
    data: &Data,
    provenance: Option<&Provenance>,
) -> io::Result<Vec<u8>> {
    let pairs = || {
        data.iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<IndexMap<_, _>>()
    };
    let sig = key.sign(&signed_message(path, version, pairs(), provenance));
    let doc = DocOut {
        version,
        data: pairs(),
        provenance,
        sig: Some(base64::engine::general_purpose::STANDARD.encode(sig.to_bytes())),
    };
    let plain = Zeroizing::new(serde_json::to_vec(&doc)?);
    encrypt(recipients, &plain)
}

/// Creates a directory and its missing parents, readable by the owner only.
pub(super) fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_error_renders() {
        let id = Identity::generate();
        let data: Data = [("k".to_owned(), Zeroizing::new("secret-value".to_owned()))]
            .into_iter()
            .collect();
        let key = SigningKey::from_bytes(&[7; 32]);
        let sealed = seal(&[id.to_public()], &key, "kv/x", 3, &data, None).unwrap();
        let file = Path::new("/s/kv/x.age");
        let back = unseal(file, &sealed, std::slice::from_ref(&id)).unwrap();
        assert_eq!((back.version, back.data["k"].as_str()), (3, "secret-value"));
        back.verify(file, "/kv/x/", &key.verifying_key()).unwrap();
        // Another path, another key, or an unsigned entry fails.
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        let moved = back
            .verify(file, "kv/y", &key.verifying_key())
            .err()
            .unwrap();
        assert!(matches!(moved, UnsealError::Forged { .. }));
        assert!(back.verify(file, "kv/x", &other).is_err());
        let unsigned = encrypt(
            &[id.to_public()],
            br#"{"version":3,"data":{"k":"secret-value"}}"#,
        )
        .unwrap();
        let unsigned = unseal(file, &unsigned, std::slice::from_ref(&id))
            .unwrap()
            .verify(file, "kv/x", &key.verifying_key())
            .err()
            .unwrap();
        assert!(unsigned.to_string().contains("no signature"), "{unsigned}");

        let wrong = unseal(file, &sealed, &[Identity::generate()])
            .err()
            .unwrap();
        assert!(matches!(wrong, UnsealError::WrongKey { .. }));
        let damaged = unseal(file, b"not age", &[]).err().unwrap();
        assert!(matches!(damaged, UnsealError::Damaged { .. }));
        let id = Identity::generate();
        let mut odd = Vec::new();
        let mut w = age::Encryptor::with_recipients(std::iter::once(
            &id.to_public() as &dyn age::Recipient
        ))
        .unwrap()
        .wrap_output(&mut odd)
        .unwrap();
        w.write_all(br#"{"version":"secret-value","data":{}}"#)
            .unwrap();
        w.finish().unwrap();
        let shape = unseal(file, &odd, &[id]).err().unwrap();
        assert!(matches!(shape, UnsealError::Shape { .. }));
        for e in [wrong, damaged, shape, moved, unsigned] {
            let message = e.to_string();
            assert!(
                message.contains("/s/kv/x.age") && !message.contains("secret-value"),
                "{message}"
            );
        }
    }
}
