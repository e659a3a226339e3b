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
#![warn(unreachable_pub)]
// Bad input gets an error, never a panic: outside tests these are denied.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub(crate) mod admins;
pub(crate) mod adopt;
pub mod cli;
pub mod device;
pub(crate) mod device_key;
pub(crate) mod engine;
pub(crate) mod error;
pub(crate) mod fleet;
pub(crate) mod fsutil;
pub mod generate;
pub mod identity;
pub mod image;
pub(crate) mod interrupt;
pub(crate) mod names;
pub mod nebula;
pub(crate) mod ops;
pub(crate) mod pool;
pub(crate) mod schema;
pub mod sops;
pub mod spec;
pub mod store;
pub mod template;
pub(crate) mod timings;
pub(crate) mod transfer;
pub mod workspace;
pub mod x509;
pub(crate) mod yaml;
