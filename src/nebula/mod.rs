//! Nebula v1 certificates and keys, made and checked natively.
//!
//! The format is the one nebula 1.6 speaks: a small protobuf message (nine
//! detail fields and an Ed25519 signature) in PEM. nebula checks signatures
//! over its own re-encoding of the details, so rumor writes, and accepts,
//! only the canonical encoding; see `wire`. CA keys are Ed25519, host keys
//! X25519, both stored the way `nebula-cert` stores them, so files move
//! freely between the two tools.
//!
//! [`new_ca`] and [`sign_host`] follow `nebula-cert ca` and `nebula-cert
//! sign`; [`Certificate::verify`] follows `nebula-cert verify`.

mod cert;
mod error;
mod issue;
mod keys;
mod net;
pub mod pem;
mod wire;

pub use cert::{Certificate, Details};
pub use error::NebulaError;
pub(crate) use issue::issue_host;
pub use issue::{new_ca, sign_host, CaSpec, HostSpec};
pub use keys::{CaKey, HostKey};
pub(crate) use net::Ipv4Net;
