//! The embedded store: a directory of age-encrypted files, for fleets
//! without a Vault.
//!
//! The logical path `<mount>/<rest>` is the file `<dir>/<mount>/<rest>.age`,
//! so the layout is Vault's: `<prefix>/devices/<id>/current` next to its
//! timestamped siblings. Each file is encrypted to every admin recipient,
//! so any one admin identity reads the whole store, and signed with the
//! fleet's store key, whose public half rumor.toml pins, so nobody else can
//! forge one (see `sealed`). Files are 0600 and directories 0700 from the
//! moment they exist, every write replaces a whole file atomically, and
//! nothing is read through a symlink out of the store or from anything but
//! a regular file.

mod lock;
mod sealed;
mod signer;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use std::sync::OnceLock;

use crate::identity::{Identity, Recipient};
use ed25519_dalek::{SigningKey, VerifyingKey};

pub use lock::LockGuard;
use lock::Locks;
pub use signer::{format_pin, parse_pin};

use crate::store::{split_mount, Data, Provenance, Store, StoreError, Versioned};

/// A store kept in a local directory.
pub struct LocalStore {
    dir: PathBuf,
    recipients: Vec<Recipient>,
    identities: Vec<Identity>,
    /// The store key's public half, as rumor.toml pins it; `None` for a
    /// store made before entries were signed (it must be rekeyed).
    pin: Option<VerifyingKey>,
    /// The store key, decrypted on the first write.
    signing: OnceLock<Result<SigningKey, String>>,
    locks: Locks,
}

/// What [`LocalStore::rekey`] did.
pub struct Rekeyed {
    /// The new store key's pin, for rumor.toml's `store.signer`.
    pub pin: String,
    /// How many entries were re-encrypted and re-signed.
    pub entries: usize,
}

impl LocalStore {
    /// Opens (creating it if needed) the store in `dir`. New entries are
    /// encrypted to all `recipients`; entries are read with `identities`.
    pub fn open(
        dir: impl Into<PathBuf>,
        recipients: Vec<Recipient>,
        identities: Vec<Identity>,
        pin: Option<VerifyingKey>,
    ) -> Result<Self, StoreError> {
        let dir = dir.into();
        let store = LocalStore {
            locks: Locks::new(&dir),
            dir,
            recipients,
            identities,
            pin,
            signing: OnceLock::new(),
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
    /// write happens under this lock, so no live writer can own one. A run
    /// that writes marks the store first and unmarks it when done, so the
    /// store is walked only after a run that did not finish.
    pub fn lock(&self) -> Result<LockGuard, StoreError> {
        let guard = self
            .locks
            .guard()
            .map_err(|e| self.io_error("", self.locks.path(), &e))?;
        if self.locks.marked_by_another() {
            self.remove_temps(&self.dir)
                .map_err(|e| self.io_error("", &self.dir, &e))?;
            self.locks
                .clear_mark()
                .map_err(|e| self.io_error("", self.locks.marker(), &e))?;
        }
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

    /// The file behind a logical path, relative to the store's directory,
    /// refusing anything that could leave it or collide with its own dot
    /// files.
    fn file(&self, path: &str) -> Result<PathBuf, StoreError> {
        split_mount(path)?;
        let segments = segments(path).ok_or_else(|| StoreError::BadPath {
            path: path.to_owned(),
        })?;
        let (last, parents) = segments.split_last().ok_or_else(|| StoreError::BadPath {
            path: path.to_owned(),
        })?;
        let dir = parents.iter().fold(PathBuf::new(), |dir, s| dir.join(s));
        Ok(dir.join(format!("{last}.age")))
    }

    /// Reads, decrypts and authenticates one entry; `None` when the file
    /// does not exist.
    fn load(&self, path: &str, rel: &Path) -> Result<Option<Versioned>, StoreError> {
        let Some(entry) = self.unseal(path, rel)? else {
            return Ok(None);
        };
        let file = self.dir.join(rel);
        let pin = self.pin.as_ref().ok_or_else(|| self.unsigned(path))?;
        entry
            .verify(&file, path, pin)
            .map_err(|e| self.forged(path, e.to_string()))?;
        Ok(Some(Versioned {
            data: entry.data,
            version: entry.version,
            provenance: entry.provenance,
        }))
    }

    /// Reads and decrypts one entry without authenticating it.
    fn unseal(&self, path: &str, rel: &Path) -> Result<Option<sealed::Unsealed>, StoreError> {
        let file = self.dir.join(rel);
        let bytes = match crate::fsutil::read_beneath(&self.dir, rel, crate::fsutil::MAX_READ) {
            Ok(bytes) => bytes,
            Err(crate::fsutil::ReadError::Missing) => return Ok(None),
            Err(crate::fsutil::ReadError::Refused(why)) => {
                return Err(StoreError::Refused {
                    store: self.describe(),
                    path: path.to_owned(),
                    reason: format!("{} {why}", file.display()),
                })
            }
            Err(crate::fsutil::ReadError::Io(e)) => return Err(self.io_error(path, &file, &e)),
        };
        sealed::unseal(&file, &bytes, &self.identities)
            .map(Some)
            .map_err(|e| self.other(path, e.to_string()))
    }

    fn unsigned(&self, path: &str) -> StoreError {
        self.forged(
            path,
            "rumor.toml pins no store.signer, so no entry can be authenticated (the store was made by an older rumor); review `git log store/`, then run `rumor rekey --trust-unsigned`".into(),
        )
    }

    fn forged(&self, path: &str, reason: String) -> StoreError {
        StoreError::Forged {
            store: self.describe(),
            path: path.to_owned(),
            reason,
        }
    }

    /// The store key, checked against the pin.
    fn signing_key(&self, path: &str) -> Result<&SigningKey, StoreError> {
        let pin = self.pin.as_ref().ok_or_else(|| self.unsigned(path))?;
        self.signing
            .get_or_init(|| signer::load(&self.dir, &self.identities, pin))
            .as_ref()
            .map_err(|why| self.forged(path, why.clone()))
    }

    /// Writes `data` as the entry at `path` (relative file `rel`) with
    /// `version`, signed with `key`.
    fn put(
        &self,
        path: &str,
        rel: &Path,
        key: &SigningKey,
        version: u64,
        data: &Data,
        provenance: Option<&Provenance>,
    ) -> Result<(), StoreError> {
        let file = self.dir.join(rel);
        let bytes = sealed::seal(&self.recipients, key, path, version, data, provenance)
            .map_err(|e| self.io_error(path, &file, &e))?;
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = rel.parent().unwrap_or(Path::new(""));
        let refused = |e: crate::fsutil::ReadError| StoreError::Refused {
            store: self.describe(),
            path: path.to_owned(),
            reason: format!("{} {}", file.display(), e.reason()),
        };
        let dir = crate::fsutil::dir_beneath(&self.dir, parent, 0o700).map_err(|e| match e {
            crate::fsutil::ReadError::Io(e) => self.io_error(path, &file, &e),
            e => refused(e),
        })?;
        self.locks
            .mark()
            .map_err(|e| self.io_error(path, self.locks.marker(), &e))?;
        crate::fsutil::write_at(&dir, &self.dir.join(parent), &name, &bytes, 0o600)
            .map_err(|e| self.io_error(path, &file, &e))?;
        Ok(())
    }

    /// Writes the store key `name`, `key` or a new one (a temp file and a
    /// rename, like an entry), under the lock and with the store marked.
    fn save_key(&self, name: &str, key: Option<&SigningKey>) -> io::Result<SigningKey> {
        self.locks.with(
            |e| e,
            || {
                self.locks.mark()?;
                match key {
                    Some(key) => {
                        signer::save(&self.dir, &self.recipients, name, key).map(|()| key.clone())
                    }
                    None => signer::create(&self.dir, &self.recipients, name),
                }
            },
        )
    }

    /// Makes the store key of a new store, encrypted to the admins, and
    /// returns its pin for rumor.toml. Refused when the store already holds
    /// entries: those need [`LocalStore::rekey`].
    pub fn create_signer(&self) -> Result<String, StoreError> {
        if !self
            .entries()
            .map_err(|e| self.io_error("", &self.dir, &e))?
            .is_empty()
        {
            return Err(self.unsigned(""));
        }
        let key = self
            .save_key(signer::CURRENT, None)
            .map_err(|e| self.io_error("", &self.dir, &e))?;
        Ok(format_pin(&key.verifying_key()))
    }

    /// Re-encrypts every entry to the current admin recipients and signs it
    /// with a new store key; returns the new pin, which the caller writes
    /// to rumor.toml before calling [`LocalStore::finish_rekey`]. Entries
    /// must verify under the pinned key (or be unsigned, with
    /// `trust_unsigned`). Safe to interrupt: a re-run resumes with the same
    /// new key, and entries it already re-signed verify under it (and are
    /// re-encrypted again, in case the admin set changed in between).
    pub fn rekey(&self, trust_unsigned: bool) -> Result<Rekeyed, StoreError> {
        let _guard = self.lock()?;
        let io = |e: io::Error| self.io_error("", &self.dir, &e);
        let next = match signer::load_file(&self.dir, &self.identities, signer::NEXT) {
            // An interrupted rekey's key, sealed again: the admin set may
            // have changed since, and the key must end up readable by
            // exactly the admins this run encrypts to.
            Ok(Some(key)) => self.save_key(signer::NEXT, Some(&key)).map_err(io)?,
            Ok(None) => self.save_key(signer::NEXT, None).map_err(io)?,
            Err(why) => return Err(self.forged("", why)),
        };
        let next_pin = next.verifying_key();
        let mut count = 0;
        for rel in self.entries().map_err(io)? {
            let path = logical(&rel);
            let Some(entry) = self.unseal(&path, &rel)? else {
                continue;
            };
            let file = self.dir.join(&rel);
            // An entry an interrupted run of this rekey re-signed is
            // re-encrypted all the same: the admin set may have changed
            // since, and age headers do not say whom a file is for.
            let trusted = match &self.pin {
                _ if entry.verify(&file, &path, &next_pin).is_ok() => Ok(()),
                Some(pin) => entry.verify(&file, &path, pin),
                None => Err(sealed::UnsealError::Forged {
                    file: file.display().to_string(),
                    reason: "no store.signer is pinned",
                }),
            };
            if let Err(e) = trusted {
                if !trust_unsigned || entry.is_signed() {
                    return Err(self.forged(&path, e.to_string()));
                }
            }
            self.put(
                &path,
                &rel,
                &next,
                entry.version,
                &entry.data,
                entry.provenance.as_ref(),
            )?;
            count += 1;
        }
        Ok(Rekeyed {
            pin: format_pin(&next_pin),
            entries: count,
        })
    }

    /// After rumor.toml pins the key [`LocalStore::rekey`] returned: makes it
    /// the store key.
    pub fn finish_rekey(&self) -> Result<(), StoreError> {
        signer::promote(&self.dir).map_err(|e| self.io_error("", &self.dir, &e))
    }

    /// Every entry file, relative to the store's directory.
    fn entries(&self) -> io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        walk(&self.dir, Path::new(""), &mut out)?;
        out.sort();
        Ok(out)
    }

    /// Checks every entry's signature; the problems, one per file.
    pub fn verify_all(&self) -> Vec<String> {
        let entries = match self.entries() {
            Ok(e) => e,
            Err(e) => {
                return vec![format!(
                    "{}: {}",
                    self.dir.display(),
                    crate::error::io_reason(&e)
                )]
            }
        };
        entries
            .iter()
            .filter_map(|rel| self.load(&logical(rel), rel).err().map(|e| e.to_string()))
            .collect()
    }

    fn other(&self, path: &str, reason: String) -> StoreError {
        StoreError::Other {
            store: self.describe(),
            path: path.to_owned(),
            reason,
        }
    }

    fn io_error(&self, path: &str, file: &Path, err: &io::Error) -> StoreError {
        StoreError::Io {
            store: self.describe(),
            path: path.to_owned(),
            file: file.display().to_string(),
            reason: crate::error::io_reason(err),
        }
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

/// The logical path of an entry file: `kv/a/b.age` is `kv/a/b`.
fn logical(rel: &Path) -> String {
    let text = rel.to_string_lossy();
    text.strip_suffix(".age").unwrap_or(&text).to_owned()
}

/// Collects the entry files below `dir` (dot files are the lock, the
/// store key and temporaries; symlinks are not followed).
fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    let entries = match std::fs::read_dir(root.join(rel)) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(root, &rel.join(&*name), out)?;
        } else if name.ends_with(".age") {
            out.push(rel.join(&*name));
        }
    }
    Ok(())
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
        let rel = self.file(path)?;
        self.load(path, &rel)
    }

    fn write(&self, path: &str, data: &Data, cas: Option<u64>) -> Result<(), StoreError> {
        self.write_entry(path, data, cas, None)
    }

    fn write_with(
        &self,
        path: &str,
        data: &Data,
        cas: Option<u64>,
        provenance: &Provenance,
    ) -> Result<(), StoreError> {
        let provenance = provenance.cleaned().with_operator(self);
        self.write_entry(path, data, cas, Some(&provenance))
    }

    /// The admin recipient of the identity this store reads with: the
    /// first one that rumor.toml lists, else the first identity's.
    fn operator(&self) -> String {
        // A plugin identity does not tell its recipient: "unknown" then,
        // unless another identity is listed.
        let publics: Vec<String> = self
            .identities
            .iter()
            .filter_map(|i| i.recipient())
            .collect();
        let listed: Vec<String> = self.recipients.iter().map(ToString::to_string).collect();
        publics
            .iter()
            .find(|p| listed.contains(p))
            .or(publics.first())
            .cloned()
            .unwrap_or_else(|| "unknown".to_owned())
    }

    fn list(&self, path: &str) -> Result<Vec<String>, StoreError> {
        LocalStore::list(self, path)
    }

    fn remove(&self, path: &str) -> Result<(), StoreError> {
        let rel = self.file(path)?;
        let file = self.dir.join(&rel);
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = rel.parent().unwrap_or(Path::new(""));
        self.locks.with(
            |e| self.io_error(path, self.locks.path(), &e),
            || {
                let dir = match crate::fsutil::dir_beneath(&self.dir, parent, 0o700) {
                    Ok(dir) => dir,
                    Err(crate::fsutil::ReadError::Io(e)) => {
                        return Err(self.io_error(path, &file, &e))
                    }
                    Err(e) => {
                        return Err(StoreError::Refused {
                            store: self.describe(),
                            path: path.to_owned(),
                            reason: format!("{} {}", file.display(), e.reason()),
                        })
                    }
                };
                match rustix::fs::unlinkat(&dir, name.as_str(), rustix::fs::AtFlags::empty()) {
                    Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
                    Err(e) => Err(self.io_error(path, &file, &e.into())),
                }
            },
        )
    }
}

impl LocalStore {
    /// Writes an entry, with its provenance when it is a timestamped version.
    fn write_entry(
        &self,
        path: &str,
        data: &Data,
        cas: Option<u64>,
        provenance: Option<&Provenance>,
    ) -> Result<(), StoreError> {
        let rel = self.file(path)?;
        let key = self.signing_key(path)?;
        self.locks.with(
            |e| self.io_error(path, self.locks.path(), &e),
            || {
                // Re-read under the lock: the version seen here is the one
                // no other writer can change before the rename below. A
                // forged entry stops the write: nothing is replaced.
                let current = self.load(path, &rel)?;
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
                self.put(path, &rel, key, version + 1, data, provenance)
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

    /// The store in `root` as `admin` reads it, pinned to `pin` if given.
    fn open_as(root: &Path, admin: &age::x25519::Identity, pin: Option<&str>) -> LocalStore {
        LocalStore::open(
            root,
            vec![admin.to_public().into()],
            vec![admin.clone().into()],
            pin.and_then(parse_pin),
        )
        .unwrap()
    }

    /// A new store in `root` for one admin, its store key made: the admin
    /// and the pin.
    fn one_admin_store(root: &Path) -> (age::x25519::Identity, String) {
        let admin = age::x25519::Identity::generate();
        let pin = open_as(root, &admin, None).create_signer().unwrap();
        (admin, pin)
    }

    fn entry() -> Data {
        [("k".to_owned(), zeroize::Zeroizing::new("v".to_owned()))].into()
    }

    #[test]
    fn only_a_run_that_did_not_finish_its_writes_makes_the_next_lock_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let (admin, pin) = one_admin_store(&root);
        let store = open_as(&root, &admin, Some(&pin));
        let marker = root.join(".writing");
        assert!(!marker.exists(), "making the store key leaves no mark");
        let data = entry();
        {
            let _guard = store.lock().unwrap();
            Store::write(&store, "kv/a/current", &data, None).unwrap();
            assert!(marker.exists(), "marked while its writes are under way");
        }
        assert!(!marker.exists(), "unmarked once they are done");
        // A write without the guard takes the lock, marks and unmarks.
        Store::write(&store, "kv/b/current", &data, None).unwrap();
        assert!(!marker.exists());

        // A temp file without the mark is not looked for: no walk.
        let temp = root.join("kv/a/.current.age.pid1-x.rumor-tmp");
        std::fs::write(&temp, "half a file").unwrap();
        drop(store.lock().unwrap());
        assert!(temp.exists());
        // A killed run leaves its mark: the next lock sweeps and clears it.
        std::fs::write(&marker, "").unwrap();
        drop(store.lock().unwrap());
        assert!(!temp.exists(), "the killed run's temp file is swept");
        assert!(!marker.exists(), "and its mark cleared");
        assert_eq!(
            Store::read(&store, "kv/a/current").unwrap().unwrap().data,
            data
        );
    }

    #[test]
    fn a_fifo_at_the_marker_is_refused_not_waited_on_and_the_lock_clears_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let (admin, pin) = one_admin_store(&root);
        let marker = root.join(".writing");
        assert!(std::process::Command::new("mkfifo")
            .arg(&marker)
            .status()
            .unwrap()
            .success());
        let (tx, rx) = std::sync::mpsc::channel();
        let store = open_as(&root, &admin, Some(&pin));
        std::thread::spawn(move || {
            let _ = tx.send(
                Store::write(&store, "kv/a/current", &entry(), None).map_err(|e| e.to_string()),
            );
        });
        let Ok(result) = rx.recv_timeout(std::time::Duration::from_secs(20)) else {
            let _ = std::fs::OpenOptions::new().read(true).open(&marker);
            panic!("a write waited on a FIFO at the marker");
        };
        let message = result.unwrap_err();
        assert!(
            message.contains(".writing") && message.contains("FIFO"),
            "{message}"
        );
        assert!(!root.join("kv/a/current.age").exists(), "nothing written");
        // Taking the lock counts it as a killed run's mark and clears it.
        let store = open_as(&root, &admin, Some(&pin));
        drop(store.lock().unwrap());
        assert!(std::fs::symlink_metadata(&marker).is_err(), "cleared");
        Store::write(&store, "kv/a/current", &entry(), None).unwrap();
        assert!(
            std::fs::symlink_metadata(&marker).is_err(),
            "unmarked after"
        );
    }

    #[test]
    fn path_segments() {
        assert_eq!(segments("/kv/a/b-1.x_y/"), Some(vec!["kv", "a", "b-1.x_y"]));
        for bad in ["kv/../x", "kv//x", "kv/.lock", "kv/a b", "kv/ä", "", "kv/."] {
            assert_eq!(segments(bad), None, "{bad}");
        }
    }
}
