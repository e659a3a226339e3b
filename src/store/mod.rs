//! Stores keep the source of truth: Vault KV v2, or the embedded local store.
//!
//! Both speak the same logical layout. A path's first segment is the KV
//! mount (`kv/ozds/x` is mount `kv`, path `ozds/x`); a secret is a flat map
//! of string keys to string values; `<path>/current` holds the live set and
//! `<path>/<YYYYmmddHHMMSS>` the history.

use indexmap::IndexMap;
use zeroize::Zeroizing;

pub mod local;
pub mod provenance;
pub mod vault;

pub use provenance::Provenance;

/// The data of one secret: keys in their stored order, values wiped on drop.
pub type Data = IndexMap<String, Zeroizing<String>>;

/// A secret as read, with the version to use for check-and-set.
pub struct Versioned {
    /// The key/value pairs.
    pub data: Data,
    /// The KV v2 version (local store: its own counter).
    pub version: u64,
    /// Who wrote it and why, for the timestamped versions rumor writes;
    /// `None` for `current` and for versions written without it.
    pub provenance: Option<Provenance>,
}

/// Why a store operation failed. Messages name the store and path, never a
/// token or a value.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The server could not be reached (after retries).
    #[error("cannot reach {store}: {reason}")]
    Unreachable {
        /// e.g. `Vault at http://127.0.0.1:8200`.
        store: String,
        /// e.g. `connection refused`.
        reason: String,
    },
    /// The token or policy does not allow the operation.
    #[error("{store} denied access to \"{path}\": {reason}")]
    Denied {
        /// The store.
        store: String,
        /// The logical path.
        path: String,
        /// What the server said, redacted.
        reason: String,
    },
    /// The server is sealed.
    #[error("{store} is sealed; unseal it (bao operator unseal) and run again")]
    Sealed {
        /// The store.
        store: String,
    },
    /// Someone else wrote the secret since it was read.
    #[error("\"{path}\" in {store} changed while this run was writing it (check-and-set failed); run again to converge")]
    Conflict {
        /// The store.
        store: String,
        /// The logical path.
        path: String,
    },
    /// An entry fails authentication: unsigned, signed by another key, or
    /// signed for another path.
    #[error("{store}, \"{path}\": {reason}")]
    Forged {
        /// The store.
        store: String,
        /// The logical path.
        path: String,
        /// Why, naming the file.
        reason: String,
    },
    /// Something in the store's directory is not what rumor reads: a
    /// symlink out of it, a FIFO, a device, an oversized file.
    #[error("{store}, \"{path}\": {reason}")]
    Refused {
        /// The store.
        store: String,
        /// The logical path.
        path: String,
        /// Why, naming the file.
        reason: String,
    },
    /// The path is not a valid `mount/path`.
    #[error("\"{path}\" is not a store path of the form <mount>/<path>")]
    BadPath {
        /// The path as given.
        path: String,
    },
    /// A setting in the environment cannot be used as it is.
    #[error("{variable}: {reason}")]
    Setting {
        /// The variable, such as `VAULT_ADDR`.
        variable: &'static str,
        /// What is wrong with it; never a credential.
        reason: String,
    },
    /// Reading or writing the embedded store's files failed (a full disk,
    /// a read-only mount): local I/O, not the store's fault.
    #[error("{file}: {reason} ({store}, \"{path}\"); fix that and run again")]
    Io {
        /// The store.
        store: String,
        /// The logical path.
        path: String,
        /// The file or directory that failed.
        file: String,
        /// The OS's reason, e.g. `no space left on device`.
        reason: String,
    },
    /// Anything else.
    #[error("{store}, \"{path}\": {reason}")]
    Other {
        /// The store.
        store: String,
        /// The logical path.
        path: String,
        /// What went wrong, redacted.
        reason: String,
    },
}

/// A key/value secret store.
pub trait Store: Send + Sync {
    /// Says which store this is, for messages: `Vault at http://…`.
    fn describe(&self) -> String;

    /// Reads the secret at a logical path (`<mount>/<path>`), `None` when
    /// it does not exist.
    fn read(&self, path: &str) -> Result<Option<Versioned>, StoreError>;

    /// Writes the whole secret at a logical path. With `cas`, the write
    /// only succeeds if the current version is that one (0: must not exist),
    /// and otherwise fails with [`StoreError::Conflict`].
    fn write(&self, path: &str, data: &Data, cas: Option<u64>) -> Result<(), StoreError>;

    /// [`Store::write`] for a timestamped version, recording who wrote it
    /// and why (Vault: the path's `custom_metadata`; the local store: in
    /// the signed entry). `provenance.operator`, when empty, is filled in
    /// with [`Store::operator`].
    fn write_with(
        &self,
        path: &str,
        data: &Data,
        cas: Option<u64>,
        provenance: &Provenance,
    ) -> Result<(), StoreError>;

    /// Who writes through this store: the admin's `age1…` recipient, or
    /// the Vault token's display name (and entity id). Never a secret.
    fn operator(&self) -> String;

    /// Whether [`Store::operator`] would still ask the store, so that it is
    /// worth asking ahead of the first write. False once the answer is
    /// known or being asked for, and for a store that knows it offline.
    fn operator_unknown(&self) -> bool {
        false
    }

    /// Whether a read of `path` would be answered from memory, without a
    /// request: nothing to read ahead of its import.
    fn holds(&self, _path: &str) -> bool {
        false
    }

    /// The names directly under a logical path, sorted; sub-folders end in
    /// `/`, as `vault kv list` shows them.
    fn list(&self, path: &str) -> Result<Vec<String>, StoreError>;

    /// Removes the secret at a logical path with all its versions (Vault:
    /// its metadata; the local store: its entry). rumor removes only a
    /// history copy it wrote itself beside a `current` write that then
    /// lost its check-and-set. Nothing there is not an error.
    fn remove(&self, path: &str) -> Result<(), StoreError>;
}

/// A shared store is a store: [`crate::fleet::Memo`] wraps a fleet's open
/// handle for one device's run.
impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn read(&self, path: &str) -> Result<Option<Versioned>, StoreError> {
        (**self).read(path)
    }
    fn write(&self, path: &str, data: &Data, cas: Option<u64>) -> Result<(), StoreError> {
        (**self).write(path, data, cas)
    }
    fn write_with(
        &self,
        path: &str,
        data: &Data,
        cas: Option<u64>,
        provenance: &Provenance,
    ) -> Result<(), StoreError> {
        (**self).write_with(path, data, cas, provenance)
    }
    fn operator(&self) -> String {
        (**self).operator()
    }
    fn operator_unknown(&self) -> bool {
        (**self).operator_unknown()
    }
    fn holds(&self, path: &str) -> bool {
        (**self).holds(path)
    }
    fn list(&self, path: &str) -> Result<Vec<String>, StoreError> {
        (**self).list(path)
    }
    fn remove(&self, path: &str) -> Result<(), StoreError> {
        (**self).remove(path)
    }
}

impl Provenance {
    /// This provenance with its operator, when empty, filled in with
    /// `store`'s [`Store::operator`]: what every store records.
    pub(crate) fn with_operator(mut self, store: &(impl Store + ?Sized)) -> Provenance {
        if self.operator.is_empty() {
            self.operator = store.operator();
        }
        self
    }
}

/// Splits `kv/ozds/x` into the mount `kv` and the path `ozds/x`, ignoring
/// leading and trailing slashes as the original did.
pub fn split_mount(path: &str) -> Result<(&str, &str), StoreError> {
    let trimmed = path.trim_matches('/');
    match trimmed.split_once('/') {
        Some((mount, rest)) if !mount.is_empty() && !rest.is_empty() => Ok((mount, rest)),
        _ => Err(StoreError::BadPath {
            path: path.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts() {
        assert_eq!(split_mount("kv/ozds/x").unwrap(), ("kv", "ozds/x"));
        assert_eq!(split_mount("/secret/id/").unwrap(), ("secret", "id"));
        assert!(split_mount("secret").is_err());
        assert!(split_mount("").is_err());
    }
}
