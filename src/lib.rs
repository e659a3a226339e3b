//! rumor provisions the secrets of a fleet of edge devices.
//!
//! A *spec* lists imports, generations and exports. The engine runs them in
//! that order over an in-memory *workspace* of named files: imports fill it
//! from a store (Vault KV v2 or the embedded age-encrypted local store),
//! generators add what is missing, exporters write it back to the store and
//! to disk. Secret bytes live in zeroizing buffers and touch persistent disk
//! only where the user asks for it (`--stay --keep`, or a `copy` exporter).
//!
//! Compatibility promise: specs of the original Nushell rumor (2.x) run
//! unchanged, and the Vault layout (`<path>/current` plus timestamped copies)
//! is the same, so existing data keeps working; 1.x spec forms run too.
//!
//! Trust: only rumor.toml (reviewed plaintext) and the store (Vault's
//! access control, or the local store's signatures) are believed; files in
//! git are authenticated against them before anything is derived from them.
// Denied, not forbidden: the libxcrypt binding (generate::mkpasswd::crypt)
// is the one module allowed `unsafe`.
#![deny(unsafe_code)]
#![warn(missing_docs)]
// Bad input gets an error, never a panic: outside tests these are denied.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod admins;
pub mod adopt;
pub mod cli;
pub mod device;
pub mod device_key;
pub mod engine;
pub mod error;
pub mod fleet;
pub mod fsutil;
pub mod generate;
pub mod identity;
pub mod image;
pub mod interrupt;
pub mod names;
pub mod nebula;
pub mod ops;
pub mod schema;
pub mod sops;
pub mod spec;
pub mod store;
pub mod template;
pub mod transfer;
pub mod workspace;
pub mod x509;
pub(crate) mod yaml;
