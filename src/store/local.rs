//! The embedded store: a directory of age-encrypted files, for fleets
//! without a Vault.
//!
//! The logical path `<mount>/<rest>` is the file `<dir>/<mount>/<rest>.age`,
//! so the layout is Vault's: `<prefix>/devices/<id>/current` next to its
//! timestamped siblings. Each file is encrypted to every admin recipient,
//! so any one admin identity reads the whole store. Files are 0600 and
//! directories 0700 from the moment they exist, and every write replaces
//! a whole file atomically.

mod lock;
mod sealed;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use age::x25519::{Identity, Recipient};

pub use lock::LockGuard;
use lock::Locks;

use crate::store::{split_mount, Data, Store, StoreError, Versioned};

/// A store kept in a local directory.
pub struct LocalStore {
    dir: PathBuf,
    recipients: Vec<Recipient>,
    identities: Vec<Identity>,
    locks: Locks,
}

impl LocalStore {
    /// Opens (creating it if needed) the store in `dir`. New entries are
    /// encrypted to all `recipients`; entries are read with `identities`.
    pub fn open(
        dir: impl Into<PathBuf>,
        recipients: Vec<Recipient>,
        identities: Vec<Identity>,
    ) -> Result<Self, StoreError> {
        let dir = dir.into();
        let store = LocalStore {
            locks: Locks::new(&dir),
            dir,
            recipients,
            identities,
        };
        if store.recipients.is_empty() {
            return Err(store.other(
                "",
                "no recipients to encrypt to; give at least one admin age recipient".to_owned(),
            ));
        }
        sealed::create_private_dir(&store.dir).map_err(|e| store.io_error("", &store.dir, &e))?;
        Ok(store)
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the store's exclusive lock until the guard is dropped, so two
    /// runs on one fleet take turns (a second one waits here). Writes
    /// through this store keep working while the guard is held; calling
    /// `lock` again before dropping it is an error.
    ///
    /// Holding the lock, it removes the temp files a killed run left: every
    /// write happens under this lock, so no live writer can own one.
    pub fn lock(&self) -> Result<LockGuard, StoreError> {
        let guard = self
            .locks
            .guard()
            .map_err(|e| self.io_error("", self.locks.path(), &e))?;
        self.remove_temps(&self.dir)
            .map_err(|e| self.io_error("", &self.dir, &e))?;
        Ok(guard)
    }

    /// Removes every temp file under `dir`; only called with the lock held.
    fn remove_temps(&self, dir: &Path) -> io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                self.remove_temps(&entry.path())?;
            } else if kind.is_file()
                && entry
                    .file_name()
                    .to_string_lossy()
                    .ends_with(crate::fsutil::TEMP_SUFFIX)
            {
                match std::fs::remove_file(entry.path()) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The names directly under a logical path, sorted; sub-folders end in
    /// `/` as in `vault kv list`. A path with nothing under it gives an
    /// empty list.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let segments = segments(prefix).ok_or_else(|| StoreError::BadPath {
            path: prefix.to_owned(),
        })?;
        let dir = segments.iter().fold(self.dir.clone(), |dir, s| dir.join(s));
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io_error(prefix, &dir, &e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.io_error(prefix, &dir, &e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            // Dot files are the lock and half-written temporaries.
            if name.starts_with('.') {
                continue;
            }
            let is_dir = entry
                .file_type()
                .map_err(|e| self.io_error(prefix, &entry.path(), &e))?
                .is_dir();
            if is_dir {
                names.push(format!("{name}/"));
            } else if let Some(stem) = name.strip_suffix(".age") {
                names.push(stem.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The file behind a logical path, refusing anything that could leave
    /// the store's directory or collide with its own dot files.
    fn file(&self, path: &str) -> Result<PathBuf, StoreError> {
        split_mount(path)?;
        let segments = segments(path).ok_or_else(|| StoreError::BadPath {
            path: path.to_owned(),
        })?;
        let (last, parents) = segments.split_last().ok_or_else(|| StoreError::BadPath {
            path: path.to_owned(),
        })?;
        let dir = parents.iter().fold(self.dir.clone(), |dir, s| dir.join(s));
        Ok(dir.join(format!("{last}.age")))
    }

    /// Reads and decrypts one entry; `None` when the file does not exist.
    fn load(&self, path: &str, file: &Path) -> Result<Option<Versioned>, StoreError> {
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io_error(path, file, &e)),
        };
        let (version, data) = sealed::unseal(file, &bytes, &self.identities)
            .map_err(|e| self.other(path, e.to_string()))?;
        Ok(Some(Versioned { data, version }))
    }

    fn other(&self, path: &str, reason: String) -> StoreError {
        StoreError::Other {
            store: self.describe(),
            path: path.to_owned(),
            reason,
        }
    }

    fn io_error(&self, path: &str, file: &Path, err: &io::Error) -> StoreError {
        self.other(path, format!("{}: {err}", file.display()))
    }
}

/// The segments of a logical path, or `None` when one is empty, starts
/// with a dot (`.`, `..`, the lock file) or has characters outside
/// `[A-Za-z0-9._-]`. Leading and trailing slashes are ignored, as in Vault.
fn segments(path: &str) -> Option<Vec<&str>> {
    let trimmed = path.trim_matches('/');
    let segments: Vec<&str> = trimmed.split('/').collect();
    let valid = |s: &&str| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    segments.iter().all(valid).then_some(segments)
}

/// Whether two secrets hold the same keys, in the same order, with the
/// same values; order counts because it is part of what is stored.
fn same(a: &Data, b: &Data) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, va), (kb, vb))| ka == kb && va.as_str() == vb.as_str())
}

impl Store for LocalStore {
    fn describe(&self) -> String {
        format!("local store at {}", self.dir.display())
    }

    fn read(&self, path: &str) -> Result<Option<Versioned>, StoreError> {
        let file = self.file(path)?;
        self.load(path, &file)
    }

    fn write(&self, path: &str, data: &Data, cas: Option<u64>) -> Result<(), StoreError> {
        let file = self.file(path)?;
        self.locks.with(
            |e| self.io_error(path, self.locks.path(), &e),
            || {
                // Re-read under the lock: the version seen here is the one
                // no other writer can change before the rename below.
                let current = self.load(path, &file)?;
                let version = current.as_ref().map_or(0, |c| c.version);
                if cas.is_some_and(|expected| expected != version) {
                    return Err(StoreError::Conflict {
                        store: self.describe(),
                        path: path.to_owned(),
                    });
                }
                // age output is randomised, so rewriting equal data would
                // still change every byte; leave the file alone instead.
                if current.is_some_and(|c| same(&c.data, data)) {
                    return Ok(());
                }
                sealed::replace(&file, |out| {
                    sealed::seal(out, &self.recipients, version + 1, data)
                })
                .map_err(|e| self.io_error(path, &file, &e))
            },
        )
    }
}

impl fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalStore")
            .field("dir", &self.dir)
            .field(
                "recipients",
                &self
                    .recipients
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
            )
            .field("identities", &self.identities.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments() {
        assert_eq!(segments("/kv/a/b-1.x_y/"), Some(vec!["kv", "a", "b-1.x_y"]));
        for bad in ["kv/../x", "kv//x", "kv/.lock", "kv/a b", "kv/ä", "", "kv/."] {
            assert_eq!(segments(bad), None, "{bad}");
        }
    }
}
