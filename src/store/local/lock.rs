//! The local store's exclusive lock: `flock` on `<dir>/.lock` between
//! processes, a mutex between the threads of one process.
//!
//! `flock` is per open file, so a process that already holds the lock
//! through a [`LockGuard`] would block on itself if a write opened the file
//! again. The shared state records that the guard is held, and writes then
//! rely on it instead of locking twice.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The lock file and whether this process holds it through a guard.
pub(super) struct Locks {
    file: PathBuf,
    held: Arc<Mutex<bool>>,
}

/// Holds the store's exclusive lock until dropped, so that two runs on one
/// fleet take turns. Writes through the same store keep working meanwhile.
pub struct LockGuard {
    held: Arc<Mutex<bool>>,
    file: Option<File>,
}

impl Locks {
    /// Locks for the store in `dir`.
    pub(super) fn new(dir: &Path) -> Self {
        Locks {
            file: dir.join(".lock"),
            held: Arc::new(Mutex::new(false)),
        }
    }

    /// The lock file, for messages.
    pub(super) fn path(&self) -> &Path {
        &self.file
    }

    /// Takes the lock for the caller's whole run; waits for other processes.
    pub(super) fn guard(&self) -> io::Result<LockGuard> {
        let mut held = lock_ignoring_poison(&self.held);
        if *held {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "this process already holds the lock",
            ));
        }
        let file = self.open_locked()?;
        *held = true;
        Ok(LockGuard {
            held: Arc::clone(&self.held),
            file: Some(file),
        })
    }

    /// Runs `f` holding the lock: this process's guard if there is one,
    /// else the file lock for the duration of `f`.
    pub(super) fn with<T, E>(
        &self,
        lock_error: impl FnOnce(io::Error) -> E,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let held = lock_ignoring_poison(&self.held);
        let _file = if *held {
            None
        } else {
            Some(self.open_locked().map_err(lock_error)?)
        };
        let result = f();
        drop(held);
        result
    }

    fn open_locked(&self) -> io::Result<File> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.file)?;
        fs4::fs_std::FileExt::lock_exclusive(&file)?;
        Ok(file)
    }
}

/// A panic elsewhere must not turn every later write into another panic;
/// the flag it guards is always consistent.
fn lock_ignoring_poison(m: &Mutex<bool>) -> MutexGuard<'_, bool> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let mut held = lock_ignoring_poison(&self.held);
        // Closing the file releases the flock; do it before others may write.
        drop(self.file.take());
        *held = false;
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}
