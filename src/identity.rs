//! age identities: where rumor finds the keys that open SOPS files and the
//! local store.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::x25519::Identity;
use zeroize::Zeroizing;

use crate::error::Error;

/// Parses an identity file: `AGE-SECRET-KEY-1…` lines, `#` comments and
/// blank lines. `origin` names it in messages (never its content).
pub fn parse(text: &str, origin: &str) -> Result<Vec<Identity>, Error> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let identity = Identity::from_str(line).map_err(|_| {
            Error::Input(format!(
                "{origin}:{}: not an age identity (AGE-SECRET-KEY-1…)",
                n + 1
            ))
        })?;
        out.push(identity);
    }
    if out.is_empty() {
        return Err(Error::Input(format!("{origin}: holds no age identity")));
    }
    Ok(out)
}

/// Reads an identity file.
pub fn read(path: &Path) -> Result<Vec<Identity>, Error> {
    let text = crate::fsutil::read_regular(path, 1 << 20).map_err(|e| Error::read(path, e))?;
    let text = Zeroizing::new(
        String::from_utf8(text)
            .map_err(|_| Error::Input(format!("{}: is not a text file", path.display())))?,
    );
    parse(&text, &path.display().to_string())
}

/// The identities for reading SOPS files, as sops looks for them:
/// `--identity`, then `SOPS_AGE_KEY_FILE`, then `SOPS_AGE_KEY`, then
/// `~/.config/sops/age/keys.txt`, then rumor's admin identity.
pub fn for_sops(explicit: Option<&Path>) -> Result<Vec<Identity>, Error> {
    if let Some(path) = explicit {
        return read(path);
    }
    if let Some(path) = std::env::var_os("SOPS_AGE_KEY_FILE") {
        return read(Path::new(&path));
    }
    if let Ok(key) = std::env::var("SOPS_AGE_KEY") {
        let key = Zeroizing::new(key);
        return parse(&key, "SOPS_AGE_KEY");
    }
    if let Some(home) = std::env::var_os("HOME") {
        let path = PathBuf::from(home).join(".config/sops/age/keys.txt");
        if path.is_file() {
            return read(&path);
        }
    }
    if let Some(path) = admin_path().filter(|p| p.is_file()) {
        return read(&path);
    }
    Err(Error::Input(
        "no age identity to decrypt with; pass --identity FILE or set SOPS_AGE_KEY_FILE".into(),
    ))
}

/// Identities that are available without asking, for re-encrypting SOPS
/// files without churn: the same places as [`for_sops`], none required.
pub fn available() -> Vec<Identity> {
    for_sops(None).unwrap_or_default()
}

/// Where the fleet admin identity lives: `$RUMOR_IDENTITY`, else
/// `~/.config/rumor/identity.txt`.
pub fn admin_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("RUMOR_IDENTITY") {
        return Some(PathBuf::from(path));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("rumor/identity.txt"))
}
