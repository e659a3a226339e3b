//! File writes that are atomic and private from the first byte.
//!
//! Every file rumor writes goes through [`write_atomic`]: a temp file in the
//! target's directory, created with its final mode (never chmod after the
//! write, so a secret is never briefly world-readable), fsynced, then
//! renamed over the target. A crash leaves the old file or the new one,
//! never half of either.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The suffix of rumor's temp files, so a scan can tell them apart.
pub const TEMP_SUFFIX: &str = ".rumor-tmp";

/// Writes `content` to `path` atomically with `mode`. Returns false, and
/// writes nothing, when the file already holds exactly these bytes with
/// this mode: idempotent runs change no byte and no timestamp.
pub fn write_atomic(path: &Path, content: &[u8], mode: u32) -> io::Result<bool> {
    if let Ok(existing) = fs::read(path) {
        let same_mode = fs::metadata(path).map(|m| m.permissions().mode() & 0o7777 == mode).unwrap_or(false);
        if existing == content && same_mode {
            return Ok(false);
        }
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut temp = dir.join(format!(".{}.{}{}", name.to_string_lossy(), std::process::id(), TEMP_SUFFIX));
    let mut attempt = 0;
    let mut file = loop {
        match OpenOptions::new().write(true).create_new(true).mode(mode).open(&temp) {
            Ok(f) => break f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 8 => {
                attempt += 1;
                temp = dir.join(format!(".{}.{}.{attempt}{}", name.to_string_lossy(), std::process::id(), TEMP_SUFFIX));
            }
            Err(e) => return Err(e),
        }
    };
    let result = (|| {
        // The umask may have narrowed the mode; set it exactly before any
        // content is written (narrowing only, so nothing leaks).
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(content)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        if let Ok(d) = fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(true)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Creates a directory (and parents) with mode 0700 for new ones.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        assert!(write_atomic(&path, b"one", 0o600).unwrap());
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let before = fs::metadata(&path).unwrap().modified().unwrap();
        assert!(!write_atomic(&path, b"one", 0o600).unwrap());
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), before);
        assert!(write_atomic(&path, b"two", 0o644).unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().filter(|e| e.as_ref().unwrap().file_name() != "f").collect();
        assert!(leftovers.is_empty());
    }
}
