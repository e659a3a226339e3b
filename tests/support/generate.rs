//! Runs one generator from the registry, as the engine does, outside a fleet.
#![allow(dead_code)]

use rumor::generate::{lookup, Args, Context, CryptoRngCore, GenError, Output};
use rumor::identity::Identity;
use rumor::workspace::Workspace;
use serde_json::Value;
use time::OffsetDateTime;

/// Runs generator `kind` with `args` (a JSON object) over `ws`: the OS
/// random source, the current time, no identities.
#[track_caller]
pub fn generate(kind: &str, args: &Value, ws: &Workspace) -> Result<Vec<Output>, GenError> {
    generate_with(
        kind,
        args,
        ws,
        &mut rand::rngs::OsRng,
        OffsetDateTime::now_utc(),
        &[],
    )
}

/// Runs generator `kind` with `args` (a JSON object) over `ws`, drawing
/// from `rng`, at `now`, with `identities` to re-open earlier SOPS files.
#[track_caller]
pub fn generate_with(
    kind: &str,
    args: &Value,
    ws: &Workspace,
    rng: &mut dyn CryptoRngCore,
    now: OffsetDateTime,
    identities: &[Identity],
) -> Result<Vec<Output>, GenError> {
    let generator = lookup(kind).unwrap_or_else(|| panic!("{kind} is not registered"));
    let args = Args::new(args.as_object().expect("arguments are a JSON object"));
    let mut cx = Context {
        workspace: ws,
        rng,
        now,
        identities,
    };
    generator.generate(&args, &mut cx)
}

/// The names generator `kind` declares for `args`, checked as the engine
/// checks them before it generates.
#[track_caller]
pub fn declared(kind: &str, args: &Value) -> Result<Vec<String>, GenError> {
    let generator = lookup(kind).unwrap_or_else(|| panic!("{kind} is not registered"));
    let args = Args::new(args.as_object().expect("arguments are a JSON object"));
    generator.outputs(&args).map_err(GenError::from)
}
