//! Process hardening for a program that holds secrets: a 077 umask so every
//! file starts private, no core dumps, and signals that stop the run
//! within a second ([`crate::interrupt`]).

/// Applies the umask, disables core dumps and starts the signal watcher.
/// A first SIGINT/SIGTERM asks the engine to stop at the next step and
/// exits 130 half a second later if it has not; a second one exits at
/// once. Either way the temp files are removed and every write is atomic,
/// so nothing half-written survives.
pub(crate) fn harden() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Core,
        rustix::process::Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    if crate::interrupt::watch().is_err() {
        // No thread: fall back to the flag, and a second signal exits.
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            let _ = signal_hook::flag::register_conditional_shutdown(
                signal,
                crate::interrupt::EXIT_CODE,
                crate::engine::interrupted(),
            );
            let _ = signal_hook::flag::register(signal, crate::engine::interrupted());
        }
    }
}
