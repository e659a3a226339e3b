//! How many requests may be in flight at once, lowered when the server
//! rate-limits.
//!
//! A fleet run's workers share one store. When the server answers 429,
//! backing off alone is not enough: every worker would come back at once
//! and be refused again. So the limit halves on each 429 and grows back by
//! one after as many answers in a row as the limit is (additive increase,
//! multiplicative decrease, as TCP does), never above the number of
//! workers and never below one.

use std::sync::{Condvar, Mutex, MutexGuard};

/// The shared limit.
pub(super) struct Limiter {
    state: Mutex<State>,
    freed: Condvar,
    max: usize,
}

struct State {
    in_flight: usize,
    limit: usize,
    /// Answers without a 429 since the limit last changed.
    streak: usize,
    /// The lowest the limit went.
    lowest: usize,
}

/// One request's place; give it back with [`Permit::finish`].
pub(super) struct Permit<'a> {
    limiter: &'a Limiter,
    limited: bool,
}

impl Limiter {
    /// A limiter that starts at (and never goes above) `max`.
    pub(super) fn new(max: usize) -> Limiter {
        let max = max.max(1);
        Limiter {
            state: Mutex::new(State {
                in_flight: 0,
                limit: max,
                streak: 0,
                lowest: max,
            }),
            freed: Condvar::new(),
            max,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicked holder cannot leave the counts inconsistent mid-update
        // in a way that matters more than stopping would.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until fewer requests than the limit are in flight.
    pub(super) fn acquire(&self) -> Permit<'_> {
        let mut state = self.lock();
        while state.in_flight >= state.limit {
            state = self.freed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.in_flight += 1;
        Permit {
            limiter: self,
            limited: false,
        }
    }

    /// The lowest the limit went, if a 429 ever lowered it.
    pub(super) fn lowest(&self) -> Option<usize> {
        let state = self.lock();
        (state.lowest < self.max).then_some(state.lowest)
    }

    /// The limit now.
    #[cfg(test)]
    fn limit(&self) -> usize {
        self.lock().limit
    }
}

impl Permit<'_> {
    /// Gives the place back; `limited` when the server answered 429.
    pub(super) fn finish(mut self, limited: bool) {
        self.limited = limited;
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let limiter = self.limiter;
        let mut state = limiter.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        if self.limited {
            state.limit = (state.limit / 2).max(1);
            state.lowest = state.lowest.min(state.limit);
            state.streak = 0;
        } else {
            state.streak += 1;
            if state.streak >= state.limit && state.limit < limiter.max {
                state.limit += 1;
                state.streak = 0;
            }
        }
        drop(state);
        limiter.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_on_429_and_grows_back_slowly() {
        let limiter = Limiter::new(8);
        assert_eq!(limiter.lowest(), None);
        limiter.acquire().finish(true);
        assert_eq!(limiter.limit(), 4);
        limiter.acquire().finish(true);
        limiter.acquire().finish(true);
        limiter.acquire().finish(true);
        assert_eq!(limiter.limit(), 1, "never below one");
        assert_eq!(limiter.lowest(), Some(1));
        limiter.acquire().finish(false);
        assert_eq!(limiter.limit(), 2);
        limiter.acquire().finish(false);
        assert_eq!(limiter.limit(), 2, "two answers in a row before 3");
        for _ in 0..100 {
            limiter.acquire().finish(false);
        }
        assert_eq!(limiter.limit(), 8, "never above the start");
        assert_eq!(limiter.lowest(), Some(1));
    }

    #[test]
    fn at_most_limit_requests_at_once() {
        let limiter = Limiter::new(4);
        limiter.acquire().finish(true);
        limiter.acquire().finish(true);
        // The limit is now 1: a second request waits for the first.
        let in_flight = std::sync::atomic::AtomicUsize::new(0);
        let most = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let permit = limiter.acquire();
                    let now = in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                    std::thread::yield_now();
                    in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    permit.finish(true);
                });
            }
        });
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
