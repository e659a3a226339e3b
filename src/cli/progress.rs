//! The progress line of multi-device runs (`rumor new a b c`, `renew --all`).
//!
//! Progress is a diagnostic, so it goes to stderr, and only to a terminal:
//! a pipe or a CI log gets the per-device summary lines and nothing else.
//! The line is redrawn in place at most ten times a second, so a fast
//! no-op run over thousands of devices does not spend its time drawing.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the line may be redrawn.
const REDRAW: Duration = Duration::from_millis(100);

/// A progress line for `total` devices, shared by the worker threads.
pub(crate) struct Progress {
    total: usize,
    started: Instant,
    state: Option<Mutex<State>>,
}

struct State {
    done: usize,
    failed: usize,
    drawn: Option<Instant>,
}

impl Progress {
    /// A progress line, shown only when stderr is a terminal and there is
    /// more than one device.
    pub(crate) fn new(total: usize) -> Progress {
        let shown = total > 1 && std::io::stderr().is_terminal();
        Progress::with(total, shown)
    }

    fn with(total: usize, shown: bool) -> Progress {
        let state = shown.then(|| {
            Mutex::new(State {
                done: 0,
                failed: 0,
                drawn: None,
            })
        });
        Progress {
            total,
            started: Instant::now(),
            state,
        }
    }

    /// Records one finished device and redraws the line if it is time to.
    pub(crate) fn tick(&self, id: &str, ok: bool) {
        let Some(state) = &self.state else { return };
        let Ok(mut s) = state.lock() else { return };
        s.done += 1;
        if !ok {
            s.failed += 1;
        }
        let due = s.drawn.is_none_or(|t| t.elapsed() >= REDRAW) || s.done == self.total;
        if due {
            s.drawn = Some(Instant::now());
            let line = self.line(s.done, s.failed, id);
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K{line}");
            let _ = err.flush();
        }
    }

    /// Ends the line, so the summary starts on a fresh one.
    pub(crate) fn finish(&self) {
        if self.state.is_some() {
            eprintln!();
        }
    }

    /// `rumor: [12/200] d0011, 1 failed, 3.1 s, about 48 s left`.
    fn line(&self, done: usize, failed: usize, id: &str) -> String {
        let elapsed = self.started.elapsed().as_secs_f64();
        let mut line = format!("rumor: [{done}/{}] {id}", self.total);
        if failed > 0 {
            line.push_str(&format!(", {failed} failed"));
        }
        line.push_str(&format!(", {elapsed:.1} s"));
        if done > 0 && done < self.total {
            let left = elapsed / done as f64 * (self.total - done) as f64;
            line.push_str(&format!(", about {left:.0} s left"));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_counts_failures_and_estimates_what_is_left() {
        let p = Progress::with(4, false);
        let line = p.line(2, 1, "pidgeon-2");
        assert!(
            line.starts_with("rumor: [2/4] pidgeon-2, 1 failed, "),
            "{line}"
        );
        assert!(line.ends_with(" s left"), "{line}");
        let done = p.line(4, 0, "pidgeon-4");
        assert!(!done.contains("left") && !done.contains("failed"), "{done}");
    }

    #[test]
    fn hidden_progress_draws_nothing() {
        let p = Progress::with(3, false);
        p.tick("a", true);
        p.finish();
        assert!(p.state.is_none());
    }
}
