//! What a SIGINT or SIGTERM does: stop the run within a second and leave
//! no temp file behind.
//!
//! The first signal sets [`crate::engine::interrupted`], which the engine
//! checks between entries: a run that is between steps stops there and
//! says what it did not do. A run can also be blocked where no check is
//! reached (a Vault request to a server that never answers, a lock, a long
//! KDF), so a watcher thread gives it [`GRACE`]; if the process is still
//! alive then, or a second signal comes, the watcher removes every path
//! registered here and exits 130 itself.
//!
//! What is registered is what would otherwise outlive the process: the
//! temp file of an atomic write, a `--keep` directory not yet handed to the
//! user, a decompressed disk image. The workspace itself lives in memory
//! and goes with the process.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::engine::interrupted;

/// How long a blocked run has to stop by itself after the first signal.
pub(crate) const GRACE: Duration = Duration::from_millis(500);

/// The exit code after a signal: 128 + SIGINT, as shells report it.
pub(crate) const EXIT_CODE: i32 = 130;

struct Entry {
    id: u64,
    path: PathBuf,
    dir: bool,
}

struct Registry {
    next: u64,
    entries: Vec<Entry>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next: 0,
    entries: Vec::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    // A panic while holding the lock leaves a list that is still valid.
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A path removed if the process is stopped by a signal; dropping this
/// forgets it (the owner removed it, renamed it or handed it over).
#[must_use = "the path is forgotten when this is dropped"]
pub(crate) struct Leftover {
    id: u64,
}

impl Drop for Leftover {
    fn drop(&mut self) {
        registry().entries.retain(|e| e.id != self.id);
    }
}

fn register(path: &Path, dir: bool) -> Leftover {
    let mut registry = registry();
    registry.next += 1;
    let id = registry.next;
    registry.entries.push(Entry {
        id,
        path: path.to_path_buf(),
        dir,
    });
    Leftover { id }
}

/// Removes the file at `path` if a signal stops the process before the
/// returned guard is dropped.
pub(crate) fn remove_on_exit(path: &Path) -> Leftover {
    register(path, false)
}

/// Removes the directory at `path` and everything in it if a signal stops
/// the process before the returned guard is dropped.
pub(crate) fn remove_dir_on_exit(path: &Path) -> Leftover {
    register(path, true)
}

/// Removes every registered path and exits with [`EXIT_CODE`]. The lock is
/// held until the process is gone, so no other thread registers (and then
/// creates) a file after the sweep.
fn sweep_and_exit(why: &str) -> ! {
    let registry = registry();
    for entry in &registry.entries {
        let _ = if entry.dir {
            std::fs::remove_dir_all(&entry.path)
        } else {
            std::fs::remove_file(&entry.path)
        };
    }
    eprintln!("rumor: interrupted {why}; stopped without finishing, temp files removed, nothing more written");
    std::process::exit(EXIT_CODE)
}

/// Starts the watcher for SIGINT and SIGTERM. Without it (it could not be
/// installed) the flag alone still stops the run between steps.
pub(crate) fn watch() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("rumor-signals".into())
        .spawn(move || {
            if signals.forever().next().is_none() {
                return;
            }
            interrupted().store(true, Ordering::SeqCst);
            let deadline = Instant::now() + GRACE;
            while Instant::now() < deadline {
                if signals.pending().next().is_some() {
                    sweep_and_exit("twice");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            sweep_and_exit("while waiting");
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_guards_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let guard = remove_on_exit(&a);
        assert!(registry().entries.iter().any(|e| e.path == a));
        drop(guard);
        assert!(!registry().entries.iter().any(|e| e.path == a));
    }
}
