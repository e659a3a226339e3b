//! The crate's top-level error and the exit codes, chosen in one place.

use crate::spec::SpecError;
use crate::store::StoreError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line is wrong.
    #[error("{0}")]
    Usage(String),
    /// A spec, device file, template or setting is wrong.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// An entry of a spec failed; `label` is `generations[3] (nebula)`.
    #[error("{label}: {message}")]
    Entry {
        /// Which entry.
        label: String,
        /// What went wrong.
        message: String,
        /// What kind of failure, for the exit code.
        kind: Kind,
    },
    /// A store failed outside a spec entry.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Some input is bad (a device name, a config file, a template).
    #[error("{0}")]
    Input(String),
    /// Data failed an integrity check (a tampered SOPS file).
    #[error("{0}")]
    Integrity(String),
    /// Reading or writing a local file failed.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The OS's reason.
        reason: String,
    },
    /// A check answered no (`api-key verify` with the wrong key).
    #[error("{0}")]
    Mismatch(String),
    /// The run was interrupted by a signal.
    #[error("interrupted; the workspace was removed and nothing more was written")]
    Interrupted,
    /// Not a failure: `rumor plan` (or `--dry-run`) found changes to make,
    /// and says so with exit code 2, as `terraform plan -detailed-exitcode`.
    #[error("{0}")]
    Pending(String),
    /// A fleet run took no more devices once the store had failed in a
    /// way every device would meet (unreachable, sealed, token expired).
    #[error("not started: the store failed (see above); run again once it is back")]
    NotStarted,
}

/// Broad classes of failure, each with its own exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Bad input: spec, arguments, files.
    Input,
    /// The store could not be used.
    Store,
    /// Integrity: MAC mismatch, wrong key.
    Integrity,
    /// Local I/O.
    Io,
}

impl Kind {
    /// The class of a store failure.
    pub fn of(e: &StoreError) -> Kind {
        match e {
            StoreError::BadPath { .. }
            | StoreError::Refused { .. }
            | StoreError::Setting { .. } => Kind::Input,
            StoreError::Forged { .. } => Kind::Integrity,
            StoreError::Io { .. } => Kind::Io,
            _ => Kind::Store,
        }
    }
}

impl Error {
    /// A store failure at `path` outside a spec entry (`label` says what
    /// was being read); the path is named even where the store's message
    /// (sealed, unreachable) names only the server.
    pub fn store_at(label: &str, path: &str, e: StoreError) -> Error {
        let kind = Kind::of(&e);
        let message = e.to_string();
        let message = match message.contains(path) {
            true => message,
            false => format!("\"{path}\": {message}"),
        };
        Error::Entry {
            label: label.to_owned(),
            message,
            kind,
        }
    }

    /// The process exit code: 1 a check said no, 2 usage (or, from `plan`
    /// and `--dry-run`, changes pending), 3 input, 4 store,
    /// 5 integrity, 6 local I/O, 130 interrupted.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Pending(_) => 2,
            Error::Spec(_) | Error::Input(_) => 3,
            Error::Entry { kind, .. } => match kind {
                Kind::Input => 3,
                Kind::Store => 4,
                Kind::Integrity => 5,
                Kind::Io => 6,
            },
            Error::Store(StoreError::Forged { .. }) => 5,
            Error::Store(StoreError::Refused { .. }) => 3,
            // A broken setting is the operator's input, not the store's fault.
            Error::Store(StoreError::Setting { .. }) => 3,
            // The embedded store's files on a full or read-only disk.
            Error::Store(StoreError::Io { .. }) => 6,
            Error::Store(_) => 4,
            Error::Integrity(_) => 5,
            Error::Io { .. } => 6,
            Error::Mismatch(_) => 1,
            Error::Interrupted => 130,
            Error::NotStarted => 4,
        }
    }

    /// A file that could not be read: missing or failing is local I/O
    /// (exit 6), a file rumor refuses to read (a symlink out of the fleet,
    /// a FIFO, too large) is bad input (exit 3).
    pub fn read(path: &std::path::Path, e: crate::fsutil::ReadError) -> Error {
        match e {
            crate::fsutil::ReadError::Refused(why) => {
                Error::Input(format!("{}: {why}", path.display()))
            }
            crate::fsutil::ReadError::Io(e) => Error::io(path, &e),
            crate::fsutil::ReadError::Missing => {
                Error::io(path, &std::io::Error::from(std::io::ErrorKind::NotFound))
            }
        }
    }

    /// An I/O error on a path.
    pub fn io(path: &std::path::Path, e: &std::io::Error) -> Error {
        Error::Io {
            path: path.display().to_string(),
            reason: io_reason(e),
        }
    }
}

/// An I/O error's reason in lowercase words, without the "(os error N)".
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(at) => text[..at].to_owned(),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_renders() {
        let cases = [
            (
                Error::Usage("usage: rumor run <spec>".into()),
                2,
                "usage: rumor run <spec>",
            ),
            (
                Error::Input("bad device name \"../x\"".into()),
                3,
                "bad device name",
            ),
            (
                Error::Entry {
                    label: "generations[3] (nebula)".into(),
                    message: "missing argument \"ip\"".into(),
                    kind: Kind::Input,
                },
                3,
                "generations[3] (nebula): missing argument \"ip\"",
            ),
            (
                Error::Store(StoreError::BadPath { path: "x".into() }),
                4,
                "\"x\" is not a store path",
            ),
            (
                Error::Store(StoreError::Setting {
                    variable: "VAULT_ADDR",
                    reason: "contains a newline".into(),
                }),
                3,
                "VAULT_ADDR: contains",
            ),
            (
                Error::Store(StoreError::Io {
                    store: "the local store in store".into(),
                    path: "secret/rumor/devices/a/current".into(),
                    file: "store/secret/rumor/devices/a/current.age".into(),
                    reason: "no space left on device".into(),
                }),
                6,
                "store/secret/rumor/devices/a/current.age: no space left on device (the local store in store, \"secret/rumor/devices/a/current\"); fix that and run again",
            ),
            (Error::Integrity("MAC mismatch".into()), 5, "MAC mismatch"),
            (
                Error::io(
                    std::path::Path::new("/x"),
                    &std::io::Error::from_raw_os_error(2),
                ),
                6,
                "/x: no such file or directory",
            ),
            (
                Error::Mismatch("the key does not match the hash".into()),
                1,
                "does not match",
            ),
            (Error::Interrupted, 130, "interrupted"),
            (
                Error::Pending("plan: 2 devices change".into()),
                2,
                "plan: 2",
            ),
            (Error::NotStarted, 4, "not started"),
        ];
        for (error, code, text) in cases {
            assert_eq!(error.exit_code(), code);
            assert!(error.to_string().contains(text), "{error}");
        }
    }
}
