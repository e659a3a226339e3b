//! The local store's signing key: Ed25519, its private half kept in the
//! store directory encrypted to the admins (`.signer.age`), its public
//! half pinned in rumor.toml (`store.signer = "ed25519:…"`), which is
//! plaintext that reviewers read like code. A planted `.signer.age` does
//! not help a forger: rumor uses it only when it matches the pin.

use std::io;
use std::path::Path;

use crate::identity::{Identity, Recipient};
use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use zeroize::Zeroizing;

/// The store key in use.
pub(super) const CURRENT: &str = ".signer.age";
/// The key a rekey is moving to, until rumor.toml pins it.
pub(super) const NEXT: &str = ".signer.next.age";

const PREFIX: &str = "ed25519:";

/// `ed25519:<base64>`, the form rumor.toml pins.
pub fn format_pin(key: &VerifyingKey) -> String {
    format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
    )
}

/// Parses a pin; `None` when it is not `ed25519:` and 32 bytes of base64
/// forming a valid public key.
pub fn parse_pin(text: &str) -> Option<VerifyingKey> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.strip_prefix(PREFIX)?)
        .ok()?;
    VerifyingKey::from_bytes(&bytes.try_into().ok()?).ok()
}

/// Makes a new key and writes it to `name` in `dir`, encrypted to
/// `recipients`.
pub(super) fn create(dir: &Path, recipients: &[Recipient], name: &str) -> io::Result<SigningKey> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    save(dir, recipients, name, &key)?;
    Ok(key)
}

/// Writes `key` to `name` in `dir`, encrypted to `recipients`.
pub(super) fn save(
    dir: &Path,
    recipients: &[Recipient],
    name: &str,
    key: &SigningKey,
) -> io::Result<()> {
    let pem = key
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    let sealed = super::sealed::encrypt(recipients, pem.as_bytes())?;
    let fd = crate::fsutil::dir_beneath(dir, Path::new(""), 0o700)
        .map_err(|e| io::Error::other(e.reason()))?;
    crate::fsutil::write_at(&fd, dir, name, &sealed, 0o600).map(|_| ())
}

/// Reads the key in `name`; `None` when there is no such file.
pub(super) fn load_file(
    dir: &Path,
    identities: &[Identity],
    name: &str,
) -> Result<Option<SigningKey>, String> {
    let file = dir.join(name);
    let bytes = match crate::fsutil::read_beneath(dir, Path::new(name), 1 << 20) {
        Ok(b) => b,
        Err(crate::fsutil::ReadError::Missing) => return Ok(None),
        Err(e) => return Err(format!("{}: {}", file.display(), e.reason())),
    };
    let plain = super::sealed::decrypt(&file, &bytes, identities).map_err(|e| e.to_string())?;
    let text = Zeroizing::new(
        String::from_utf8(plain.to_vec())
            .map_err(|_| format!("{} does not hold a store key", file.display()))?,
    );
    SigningKey::from_pkcs8_pem(&text)
        .map(Some)
        .map_err(|_| format!("{} does not hold an Ed25519 store key", file.display()))
}

/// The key whose public half is `pin`: the current one, or the one an
/// interrupted rekey was moving to (after rumor.toml was updated).
pub(super) fn load(
    dir: &Path,
    identities: &[Identity],
    pin: &VerifyingKey,
) -> Result<SigningKey, String> {
    for name in [CURRENT, NEXT] {
        if let Some(key) = load_file(dir, identities, name)? {
            if key.verifying_key() == *pin {
                return Ok(key);
            }
        }
    }
    Err(format!(
        "{} does not hold the store key that rumor.toml's store.signer pins; it was replaced outside rumor, or the pin was edited",
        dir.join(CURRENT).display()
    ))
}

/// Makes the next key the current one.
pub(super) fn promote(dir: &Path) -> io::Result<()> {
    match std::fs::rename(dir.join(NEXT), dir.join(CURRENT)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }?;
    std::fs::File::open(dir)?.sync_all()
}
