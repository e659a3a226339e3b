//! One entry of the local store on disk: an armoured age file, encrypted to
//! every admin recipient, holding `{"version": N, "data": {key: value}}`.
//!
//! Armour keeps the files diffable and pasteable; JSON with the keys in
//! order keeps them identical to what Vault would hold.

use std::fs::{DirBuilder, File, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use age::armor::{ArmoredReader, ArmoredWriter, Format};
use age::x25519::{Identity, Recipient};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::store::Data;

/// The plaintext document, borrowed from the caller's data for writing so
/// the values are not copied into buffers that would not be wiped.
#[derive(Serialize)]
struct DocOut<'a> {
    version: u64,
    data: IndexMap<&'a str, &'a str>,
}

#[derive(Deserialize)]
struct DocIn {
    version: u64,
    data: IndexMap<String, String>,
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
    /// It decrypts, but not to a store entry.
    #[error("{file} does not hold a rumor store entry ({reason})")]
    Shape {
        /// The file.
        file: String,
        /// Where the JSON went wrong, without its content.
        reason: String,
    },
}

/// Decrypts and parses an entry read from `file`.
pub(super) fn unseal(
    file: &Path,
    bytes: &[u8],
    identities: &[Identity],
) -> Result<(u64, Data), UnsealError> {
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
    let doc: DocIn = serde_json::from_slice(&plain).map_err(|e| UnsealError::Shape {
        file: name.clone(),
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
    Ok((doc.version, data))
}

/// Encrypts an entry to all `recipients` into `out`.
pub(super) fn seal(
    out: impl Write,
    recipients: &[Recipient],
    version: u64,
    data: &Data,
) -> io::Result<()> {
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let armored = ArmoredWriter::wrap_output(out, Format::AsciiArmor)?;
    let mut stream = encryptor.wrap_output(armored)?;
    let doc = DocOut {
        version,
        data: data.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
    };
    serde_json::to_writer(&mut stream, &doc)?;
    stream.finish()?.finish()?;
    Ok(())
}

/// Creates a directory and its missing parents, readable by the owner only.
pub(super) fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Replaces `file` with what `fill` writes, so a reader (or a crash) sees
/// the old entry or the new one, never half of one.
pub(super) fn replace(
    file: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = file
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no parent directory"))?;
    create_private_dir(dir)?;
    let name = file
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    // Dot-prefixed so list() skips it, named after its writer so a later
    // run can remove it if this one is killed; 0600 from creation, not
    // chmod after.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!("{}-", crate::fsutil::temp_prefix(&name.to_string_lossy())))
        .suffix(crate::fsutil::TEMP_SUFFIX)
        .permissions(Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    fill(tmp.as_file_mut())?;
    tmp.as_file().sync_all()?;
    tmp.persist(file).map_err(|e| e.error)?;
    // The rename is durable only once the directory itself is synced.
    File::open(dir)?.sync_all()
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
        let mut sealed = Vec::new();
        seal(&mut sealed, &[id.to_public()], 3, &data).unwrap();
        let file = Path::new("/s/kv/x.age");
        let (version, back) = unseal(file, &sealed, &[id]).unwrap();
        assert_eq!((version, back["k"].as_str()), (3, "secret-value"));

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
        for e in [wrong, damaged, shape] {
            let message = e.to_string();
            assert!(
                message.contains("/s/kv/x.age") && !message.contains("secret-value"),
                "{message}"
            );
        }
    }
}
