//! A process-wide cap on key derivations running at once (yescrypt,
//! PBKDF2): at most one per core, however many devices `RUMOR_JOBS` runs
//! at once. Key derivation is CPU-bound, so more at once gains no speed,
//! and each yescrypt holds 16 MiB. A permit covers the derivation alone,
//! never a store round trip.

use std::sync::{Condvar, Mutex};

/// How many derivations may run at once: the cores.
fn limit() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

static RUNNING: Mutex<usize> = Mutex::new(0);
static FREED: Condvar = Condvar::new();

/// The right to run one derivation, given back when dropped.
pub(crate) struct Permit(());

impl Drop for Permit {
    fn drop(&mut self) {
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        *running = running.saturating_sub(1);
        drop(running);
        FREED.notify_one();
    }
}

/// Waits until fewer derivations than cores are running, and counts this
/// one in.
pub(crate) fn permit() -> Permit {
    let limit = limit();
    let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    while *running >= limit {
        running = FREED.wait(running).unwrap_or_else(|e| e.into_inner());
    }
    *running += 1;
    Permit(())
}

/// Runs `f` under a [`permit`].
pub(crate) fn limited<T>(f: impl FnOnce() -> T) -> T {
    let _permit = permit();
    f()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn at_most_one_per_core() {
        let now = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 * super::limit() {
                s.spawn(|| {
                    super::limited(|| {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        now.fetch_sub(1, Ordering::SeqCst);
                    })
                });
            }
        });
        assert!(most.load(Ordering::SeqCst) <= super::limit());
        assert!(most.load(Ordering::SeqCst) >= 1);
    }
}
