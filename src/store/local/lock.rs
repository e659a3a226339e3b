//! The local store's exclusive lock: `flock` on `<dir>/.lock` between
//! processes, a mutex between the threads of one process.
//!
//! `flock` is per open file, so a process that already holds the lock
//! through a [`LockGuard`] would block on itself if a write opened the file
//! again. The shared state records that the guard is held, and writes then
//! rely on it instead of locking twice.
//!
//! Writing marks the store: `<dir>/.writing` exists, synced, before this
//! process makes its first temp file there, and is removed once its writes
//! under the lock are done. A killed run leaves the marker behind, and the
//! next one to take the lock sweeps the store for its temp files; the
//! runs in between only look for the marker instead of walking the store.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rustix::fs::{Mode, OFlags};

/// The lock file and whether this process holds it through a guard.
pub(super) struct Locks {
    file: PathBuf,
    held: Arc<Mutex<bool>>,
    marker: Arc<Marker>,
}

/// Holds the store's exclusive lock until dropped, so that two runs on one
/// fleet take turns. Writes through the same store keep working meanwhile.
pub struct LockGuard {
    held: Arc<Mutex<bool>>,
    file: Option<File>,
    marker: Arc<Marker>,
}

/// The marker's name in the store's directory.
const MARKER: &str = ".writing";

/// The store's `.writing` marker, and whether this process made it (and
/// has not removed it since).
struct Marker {
    dir: PathBuf,
    path: PathBuf,
    made: Mutex<bool>,
}

impl Locks {
    /// Locks for the store in `dir`.
    pub(super) fn new(dir: &Path) -> Self {
        Locks {
            file: dir.join(".lock"),
            held: Arc::new(Mutex::new(false)),
            marker: Arc::new(Marker {
                dir: dir.to_path_buf(),
                path: dir.join(MARKER),
                made: Mutex::new(false),
            }),
        }
    }

    /// Marks the store as being written, before this process's first temp
    /// file in it: the marker is synced, with its directory, before this
    /// returns, and other threads wait until it is. Whatever else sits at
    /// its name (a symlink, a FIFO: the store may come from git) is refused
    /// without being followed or waited on.
    pub(super) fn mark(&self) -> io::Result<()> {
        let mut made = lock_ignoring_poison(&self.marker.made);
        if !*made {
            let refused = |e: crate::fsutil::ReadError| match e {
                crate::fsutil::ReadError::Io(e) => e,
                e => io::Error::other(e.reason()),
            };
            let dir = crate::fsutil::dir_beneath(&self.marker.dir, Path::new(""), 0o700)
                .map_err(refused)?;
            // Read-write and non-blocking: opening a FIFO neither waits for
            // a reader nor fails before it can be named as one.
            let flags = OFlags::CREATE
                | OFlags::RDWR
                | OFlags::NOFOLLOW
                | OFlags::NONBLOCK
                | OFlags::CLOEXEC;
            let fd = rustix::fs::openat(&dir, MARKER, flags, Mode::from_raw_mode(0o600))?;
            crate::fsutil::regular_stat(&fd).map_err(refused)?;
            rustix::fs::fsync(&fd)?;
            rustix::fs::fsync(&dir)?;
            *made = true;
        }
        Ok(())
    }

    /// The marker file, for messages.
    pub(super) fn marker(&self) -> &Path {
        &self.marker.path
    }

    /// Whether the store is marked by a run that did not finish its writes
    /// (not this one); only meaningful with the lock held. Whatever sits at
    /// the marker's name but a directory counts: at worst it costs a sweep.
    pub(super) fn marked_by_another(&self) -> bool {
        !*lock_ignoring_poison(&self.marker.made)
            && std::fs::symlink_metadata(&self.marker.path).is_ok_and(|m| !m.is_dir())
    }

    /// Removes a killed run's marker, once its temp files are swept.
    pub(super) fn clear_mark(&self) -> io::Result<()> {
        match std::fs::remove_file(&self.marker.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
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
            marker: Arc::clone(&self.marker),
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
        if _file.is_some() {
            self.marker.unmark();
        }
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

impl Marker {
    /// Removes the marker this process made. Called with the lock held,
    /// after the writes under it: each either renamed its temp file into
    /// place or removed it when it failed.
    fn unmark(&self) {
        let mut made = lock_ignoring_poison(&self.made);
        if *made {
            // Left behind, it only costs the next run a sweep.
            let _ = std::fs::remove_file(&self.path);
            *made = false;
        }
    }
}

/// A panic elsewhere must not turn every later write into another panic;
/// the flag it guards is always consistent.
fn lock_ignoring_poison<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let mut held = lock_ignoring_poison(&self.held);
        // The writes are done: a later run need not sweep for temp files.
        self.marker.unmark();
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
