//! A device's history, from the timestamped versions in the store: when
//! each secret was created and rotated, by whom and why (`rumor log`).
//!
//! Values never leave this module: each version of a secret is shown by
//! its [`fingerprint`], so two versions can be compared and nothing can be
//! read back from the log.

use std::collections::BTreeSet;

use serde::Serialize;

use super::Opened;
use crate::device;
use crate::error::Error;
use crate::generate::Args;
use crate::spec::Kind;
use crate::store::provenance::fingerprint;
use crate::store::{Data, Provenance};

/// What happened to a secret in one version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Action {
    /// It appeared.
    Created,
    /// It got a new value (a generated secret, key or certificate).
    Rotated,
    /// It was rendered again from other values (a template, an env file,
    /// the device file) and came out different.
    ReRendered,
    /// It is no longer stored.
    Removed,
}

impl Action {
    /// The word `rumor log` prints.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Rotated => "rotated",
            Action::ReRendered => "re-rendered",
            Action::Removed => "removed",
        }
    }
}

/// One secret's change in one version.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Change {
    /// When the version was written, RFC 3339 UTC (from its timestamp).
    pub at: String,
    /// The version's store path.
    pub version: String,
    /// The secret (workspace file name).
    pub secret: String,
    /// What happened to it.
    pub action: Action,
    /// The first 12 hex digits of the new value's SHA-256; `None` when
    /// it was removed.
    pub fingerprint: Option<String>,
    /// Who wrote the version and why; `None` for a version written before
    /// rumor recorded it (or by the original tool).
    pub provenance: Option<Provenance>,
}

/// The names of a timestamped version: `YYYYmmddHHMMSS`, sorted.
pub(crate) fn stamps(o: &Opened, base: &str) -> Result<Vec<String>, Error> {
    let mut stamps: Vec<String> = o
        .handle
        .list(base)?
        .into_iter()
        .filter(|k| k.len() == 14 && k.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    stamps.sort();
    Ok(stamps)
}

/// `20261202014007` as `2026-12-02T01:40:07Z`.
pub(crate) fn stamp_time(stamp: &str) -> String {
    let format = time::macros::format_description!("[year][month][day][hour][minute][second]");
    time::PrimitiveDateTime::parse(stamp, &format)
        .ok()
        .and_then(|t| {
            t.assume_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| stamp.to_owned())
}

/// The workspace names a device's spec re-renders from other values
/// rather than generates (templates, env files, copies, the device file).
fn derived_names(o: &Opened, id: &str, device: &device::Device) -> BTreeSet<String> {
    let Ok((spec, _)) = device::spec(&o.fleet, id, device) else {
        return BTreeSet::new();
    };
    spec.generations
        .iter()
        .filter_map(|entry| match &entry.kind {
            Kind::Generator(g) if g.generator.derived() => {
                g.generator.outputs(&Args::new(&entry.arguments)).ok()
            }
            _ => None,
        })
        .flatten()
        .collect()
}

/// Every change to a device's secrets (or to one `secret`), oldest first.
pub(crate) fn log(o: &Opened, id: &str, secret: Option<&str>) -> Result<Vec<Change>, Error> {
    device::check_id_in(&o.fleet, id)?;
    let device = device::load(&o.fleet, id)?;
    let base = o.fleet.device_path(id);
    let derived = derived_names(o, id, &device);
    let mut changes = Vec::new();
    let mut previous = Data::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for stamp in stamps(o, &base)? {
        let path = format!("{base}/{stamp}");
        let Some(version) = o.handle.read(&path)? else {
            continue;
        };
        let at = stamp_time(&stamp);
        let change = |secret: &str, action, fingerprint| Change {
            at: at.clone(),
            version: path.clone(),
            secret: secret.to_owned(),
            action,
            fingerprint,
            provenance: version.provenance.clone(),
        };
        for (name, value) in &version.data {
            seen.insert(name.clone());
            let action = match previous.get(name) {
                None => Action::Created,
                Some(old) if old.as_str() == value.as_str() => continue,
                Some(_) if derived.contains(name) => Action::ReRendered,
                Some(_) => Action::Rotated,
            };
            changes.push(change(name, action, Some(fingerprint(value))));
        }
        for name in previous.keys().filter(|n| !version.data.contains_key(*n)) {
            changes.push(change(name, Action::Removed, None));
        }
        previous = version.data;
    }
    match secret {
        Some(secret) if !seen.contains(secret) => Err(Error::Input(format!(
            "{id} has no \"{secret}\" in its history; stored names: {}",
            seen.into_iter().collect::<Vec<_>>().join(", ")
        ))),
        Some(secret) => Ok(changes.into_iter().filter(|c| c.secret == secret).collect()),
        None => Ok(changes),
    }
}
