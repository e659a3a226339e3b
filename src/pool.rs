//! The work queue under rumor's parallel work (the device pool, a
//! device's store reads): scoped threads that each take the next item
//! until none is left, with the calling thread as one of them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Runs `work` on every item, on at most `workers` threads (the caller's
/// among them), and returns the results in the items' order whatever the
/// scheduling. A result is `None` only if its slot's lock was poisoned.
pub(crate) fn map<I: Sync, T: Send>(
    items: &[I],
    workers: usize,
    work: impl Fn(&I) -> T + Sync,
) -> Vec<Option<T>> {
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<T>>> = items.iter().map(|_| Mutex::new(None)).collect();
    let run = || loop {
        let i = next.fetch_add(1, Ordering::SeqCst);
        let Some(item) = items.get(i) else { break };
        let result = work(item);
        if let Ok(mut slot) = results[i].lock() {
            *slot = Some(result);
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..workers.clamp(1, items.len().max(1)) {
            scope.spawn(run);
        }
        run();
    });
    results
        .into_iter()
        .map(|slot| slot.into_inner().ok().flatten())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_once_in_order() {
        let items: Vec<u32> = (0..100).collect();
        let calls = AtomicUsize::new(0);
        let out = map(&items, 7, |n| {
            calls.fetch_add(1, Ordering::SeqCst);
            n * 2
        });
        assert_eq!(calls.load(Ordering::SeqCst), 100);
        assert_eq!(out, items.iter().map(|n| Some(n * 2)).collect::<Vec<_>>());
        assert!(map(&[] as &[u32], 4, |n| *n).is_empty());
        assert_eq!(map(&[5u32], 0, |n| *n), [Some(5)]);
    }
}
