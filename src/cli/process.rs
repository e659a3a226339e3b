//! Process hardening for a program that holds secrets: a 077 umask so every
//! file starts private, no core dumps, and signals that stop the run
//! between steps instead of mid-write.

use crate::engine::interrupted;

/// Applies the umask, disables core dumps and installs the signal flags.
/// A first SIGINT/SIGTERM asks the engine to stop at the next step; a
/// second one exits at once (nothing half-written survives either way:
/// every write is atomic).
pub fn harden() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let _ = rustix::process::setrlimit(rustix::process::Resource::Core, rustix::process::Rlimit { current: Some(0), maximum: Some(0) });
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register_conditional_shutdown(signal, 130, interrupted());
        let _ = signal_hook::flag::register(signal, interrupted());
    }
}
