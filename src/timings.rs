//! `RUMOR_TIMINGS=1`: the wall time of a run's phases and of each spec
//! entry, on stderr, for the benchmarks' cost split. Names and
//! milliseconds only, never a value.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Whether `RUMOR_TIMINGS=1` is set (read once).
pub(crate) fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("RUMOR_TIMINGS").is_some_and(|v| v == "1"))
}

/// Prints `rumor: timing: <what> <ms> ms` when timings are on.
pub(crate) fn took(what: &str, time: Duration) {
    if enabled() {
        eprintln!("rumor: timing: {what} {:.3} ms", time.as_secs_f64() * 1e3);
    }
}

/// [`took`] for the time since `started`.
pub(crate) fn since(what: &str, started: Instant) {
    took(what, started.elapsed());
}
