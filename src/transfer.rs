//! Importers and exporters: the kinds a spec's `imports` and `exports`
//! name, each with its arguments declared once (as generators declare
//! theirs). The engine's `io` module runs them; the spec parser checks
//! their arguments and `rumor schema` describes them from these tables.

use crate::generate::{Arg, Type};

/// Every importer takes `allow_fail`: a missing source is no error.
const ALLOW_FAIL: Arg =
    Arg::value("allow_fail", Type::Bool, "a missing source is not an error").optional();

const STORE_READ: Arg = Arg::value(
    "path",
    Type::Str,
    "the store entry, <mount>/<path>; reads <path>/current",
);
const STORE_WRITE: Arg = Arg::value(
    "path",
    Type::Str,
    "the store entry, <mount>/<path>; writes <path>/current and a dated copy",
);
const DISK: &str = "the file on disk, relative to the spec's directory";

const IMPORT_COPY: &[Arg] = &[
    Arg::value("from", Type::Str, DISK),
    Arg::private("to", "its workspace name"),
    ALLOW_FAIL,
];
const IMPORT_VAULT: &[Arg] = &[STORE_READ, ALLOW_FAIL];
const IMPORT_VAULT_FILE: &[Arg] = &[
    STORE_READ,
    Arg::private("file", "the key to import, and its workspace name"),
    ALLOW_FAIL,
];
const EXPORT_COPY: &[Arg] = &[
    Arg::input("from", "the workspace file"),
    Arg::value("to", Type::Str, DISK),
];
const EXPORT_VAULT: &[Arg] = &[
    STORE_WRITE,
    Arg::value(
        "files",
        Type::List,
        "the workspace files to store (all by default)",
    )
    .optional(),
];
const EXPORT_VAULT_FILE: &[Arg] = &[
    STORE_WRITE,
    Arg::input("file", "the workspace file to store under its name"),
];

/// An import's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Importer {
    /// `copy`: a file from disk into the workspace.
    Copy,
    /// `vault`: every key of a store entry.
    Vault,
    /// `vault-file`: one key of a store entry.
    VaultFile,
}

/// An export's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exporter {
    /// `copy`: a workspace file onto disk.
    Copy,
    /// `vault`: workspace files into a store entry.
    Vault,
    /// `vault-file`: one workspace file into a store entry.
    VaultFile,
}

impl Importer {
    /// Every importer, in the order `rumor schema` lists them.
    pub(crate) const ALL: [Importer; 3] = [Importer::Copy, Importer::Vault, Importer::VaultFile];

    /// The name a spec uses.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Importer::Copy => "copy",
            Importer::Vault => "vault",
            Importer::VaultFile => "vault-file",
        }
    }

    /// The importer a spec names.
    pub(crate) fn from_name(name: &str) -> Option<Importer> {
        Importer::ALL.into_iter().find(|i| i.name() == name)
    }

    /// Whether it reads the store.
    pub(crate) fn reads_store(self) -> bool {
        self != Importer::Copy
    }

    /// Its arguments.
    pub(crate) fn args(self) -> &'static [Arg] {
        match self {
            Importer::Copy => IMPORT_COPY,
            Importer::Vault => IMPORT_VAULT,
            Importer::VaultFile => IMPORT_VAULT_FILE,
        }
    }
}

impl Exporter {
    /// Every exporter, in the order `rumor schema` lists them.
    pub(crate) const ALL: [Exporter; 3] = [Exporter::Copy, Exporter::Vault, Exporter::VaultFile];

    /// The name a spec uses.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Exporter::Copy => "copy",
            Exporter::Vault => "vault",
            Exporter::VaultFile => "vault-file",
        }
    }

    /// The exporter a spec names.
    pub(crate) fn from_name(name: &str) -> Option<Exporter> {
        Exporter::ALL.into_iter().find(|e| e.name() == name)
    }

    /// Its arguments.
    pub(crate) fn args(self) -> &'static [Arg] {
        match self {
            Exporter::Copy => EXPORT_COPY,
            Exporter::Vault => EXPORT_VAULT,
            Exporter::VaultFile => EXPORT_VAULT_FILE,
        }
    }

    /// Whether it writes the store (run before the file exports, so no file
    /// on disk holds a secret the store lacks).
    pub(crate) fn to_store(self) -> bool {
        self != Exporter::Copy
    }
}
