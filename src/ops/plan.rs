//! `rumor plan` and `--dry-run`: what `rumor new` or `rumor renew` would
//! do, writing nothing.
//!
//! A plan runs the very code the command runs ([`super::run_device`] over
//! the same store, with the same rotation), with every write turned into a
//! record ([`crate::engine::Options::record`]). That is how a plan and the
//! run after it agree: there is no second model of what a run does. What
//! the run writes outside the engine (a new device's file and its address
//! in the ledger, a renewed device key's inject marker) is listed by the
//! same functions that decide it ([`super::new_devices`]).

use std::collections::BTreeSet;

use serde::Serialize;

use super::{Flags, NewDevice, Opened};
use crate::device;
use crate::engine::{Action, Decision, Reason, Rotation};
use crate::error::Error;

/// Which command is planned.
#[derive(Debug, Clone, Default)]
pub(crate) enum Command {
    /// `rumor new`: create what is missing, rotate nothing.
    #[default]
    New,
    /// `rumor renew`: rotate what the profile marks renew, or `secrets`,
    /// or certificates expiring within `expiring` days.
    Renew {
        /// `--secret NAME`.
        secrets: Vec<String>,
        /// `--expiring DAYS`.
        expiring: Option<u32>,
    },
}

/// One change to one device.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Change {
    /// `generate`, `rotate` or `rerender`.
    pub action: Action,
    /// The workspace names that change.
    pub secrets: Vec<String>,
    /// Why.
    pub reason: Reason,
    /// The spec entry.
    pub entry: String,
}

/// A secret a retired device knew, still in use here.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Due {
    /// The workspace name.
    pub secret: String,
    /// Why: the retired device that knew it.
    pub reason: Reason,
}

/// What the command would do to one device.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DevicePlan {
    /// The device.
    pub device: String,
    /// Set when the command creates the device: its new address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create: Option<String>,
    /// Secrets generated, rotated or re-rendered, in spec order.
    pub changes: Vec<Change>,
    /// Every secret the run keeps as it is.
    pub keep: Vec<String>,
    /// Files written, relative to the fleet.
    pub files: Vec<String>,
    /// Store entries written (`current` and its timestamped copy).
    pub store_writes: Vec<String>,
    /// Secrets a retired device knew, due for rotation (not done by this
    /// command: see [`Due`]).
    pub due: Vec<Due>,
}

impl DevicePlan {
    /// Whether anything would change (or is due).
    pub(crate) fn changes_anything(&self) -> bool {
        !self.changes.is_empty()
            || !self.files.is_empty()
            || !self.store_writes.is_empty()
            || !self.due.is_empty()
    }
}

/// Plans `command` for `ids`. Writes nothing: no store entry, no file, no
/// lock, no temp file.
pub(crate) fn plan(
    o: &Opened,
    ids: &[String],
    command: &Command,
    new: &NewDevice,
) -> Result<Vec<DevicePlan>, Error> {
    let planned = match command {
        Command::New => super::new_devices(o, ids, new)?,
        Command::Renew { .. } => {
            super::retire::refuse_all(o, ids)?;
            vec![]
        }
    };
    let knowledge = super::retire::retired_knowledge(o)?;
    let results = super::for_each(ids, &|_, _| {}, |id| {
        let fresh = planned.iter().find(|p| p.id == id);
        let device = match fresh {
            Some(p) => p.device.clone(),
            None => device::load(&o.fleet, id)?,
        };
        let asked = rotation(o, id, command, fresh.is_some_and(|p| p.reused))?;
        let flags = Flags {
            record: true,
            ..Flags::default()
        };
        let reason = super::reason(&asked.rotation, false);
        let outcome = super::run_device(o, id, &device, asked.rotation, &reason, flags)?;
        let mut files: Vec<String> = outcome
            .files_written
            .iter()
            .map(|p| relative(o, p))
            .collect();
        if let Some(p) = fresh {
            files.push(format!("devices/{}.toml", p.id));
            files.push(device::ALLOCATIONS.to_owned());
        }
        if matches!(command, Command::Renew { .. }) && outcome.changed.contains("age.pub") {
            files.push(format!("devices/{id}.inject-pending"));
        }
        files.sort();
        files.dedup();
        let (changes, keep) = changes(&outcome.decisions, &asked.named, &asked.expiring);
        let due = super::retire::due(o, id, &knowledge)?
            .into_iter()
            .map(|(secret, device)| Due {
                secret,
                reason: Reason::RetiredDeviceKnewIt { device },
            })
            .collect();
        Ok(DevicePlan {
            device: id.to_owned(),
            create: fresh.map(|p| p.device.ip.clone()),
            changes,
            keep,
            files,
            store_writes: outcome.store_writes.clone(),
            due,
        })
    });
    results.into_iter().collect()
}

/// The rotation the command runs for a device, with the names asked for
/// by `--secret` and those found expiring (for the reasons).
struct Asked {
    rotation: Rotation,
    named: BTreeSet<String>,
    expiring: (BTreeSet<String>, u32),
}

fn rotation(o: &Opened, id: &str, command: &Command, reused: bool) -> Result<Asked, Error> {
    let nothing = |rotation| Asked {
        rotation,
        named: BTreeSet::new(),
        expiring: (BTreeSet::new(), 0),
    };
    if reused {
        return Ok(nothing(Rotation::All));
    }
    match command {
        Command::New => Ok(nothing(Rotation::Nothing)),
        Command::Renew { secrets, expiring } => {
            let (rotation, found) = renew_rotation(o, id, secrets, *expiring)?;
            Ok(Asked {
                rotation,
                named: secrets.iter().cloned().collect(),
                expiring: (found, expiring.unwrap_or(0)),
            })
        }
    }
}

/// What `rumor renew` rotates for `id`: what the profile marks renew, or
/// `--secret` names and certificates expiring within `--expiring` days.
/// Also returns the expiring names.
pub(crate) fn renew_rotation(
    o: &Opened,
    id: &str,
    secrets: &[String],
    expiring: Option<u32>,
) -> Result<(Rotation, BTreeSet<String>), Error> {
    let mut names: BTreeSet<String> = secrets.iter().cloned().collect();
    let mut found = BTreeSet::new();
    if let Some(days) = expiring {
        found.extend(super::expiring(o, id, days)?);
        names.extend(found.iter().cloned());
    }
    let rotation = if secrets.is_empty() && expiring.is_none() {
        Rotation::Marked
    } else {
        Rotation::Named(names)
    };
    Ok((rotation, found))
}

/// The changes among a run's decisions, with the precise reason for a
/// named rotation; and the names kept.
fn changes(
    decisions: &[Decision],
    named: &BTreeSet<String>,
    expiring: &(BTreeSet<String>, u32),
) -> (Vec<Change>, Vec<String>) {
    let mut changes = Vec::new();
    let mut keep = Vec::new();
    for d in decisions {
        if d.action == Action::Keep || d.changed.is_empty() {
            keep.extend(d.outputs.iter().cloned());
            continue;
        }
        let reason = match &d.reason {
            Some(Reason::Secret)
                if !d.outputs.iter().any(|o| named.contains(o))
                    && d.outputs.iter().any(|o| expiring.0.contains(o)) =>
            {
                Reason::Expiring { days: expiring.1 }
            }
            Some(r) => r.clone(),
            None => Reason::Rendered,
        };
        changes.push(Change {
            action: d.action,
            secrets: d.changed.clone(),
            reason,
            entry: d.entry.clone(),
        });
    }
    (changes, keep)
}

fn relative(o: &Opened, path: &std::path::Path) -> String {
    path.strip_prefix(&o.fleet.dir)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// A reason in words, for the human output.
pub(crate) fn describe(reason: &Reason) -> String {
    match reason {
        Reason::Missing => "missing".into(),
        Reason::MarkedRenew => "marked renew".into(),
        Reason::Secret => "--secret".into(),
        Reason::Expiring { days } => format!("expiring within {days} days"),
        Reason::RetiredDeviceKnewIt { device } => format!("retired device {device} knew it"),
        Reason::ReuseRetired => "retired id reused: every secret made anew".into(),
        Reason::InputsRotated { inputs } => format!("its inputs changed: {}", inputs.join(", ")),
        Reason::RecipientsChanged => "recipients changed".into(),
        Reason::Rendered => "its template or device fields changed".into(),
    }
}

/// The human form of a plan, one line per change, grouped per device.
pub(crate) fn render(plans: &[DevicePlan]) -> String {
    let mut out = String::new();
    for p in plans {
        match &p.create {
            Some(ip) => out.push_str(&format!("{} (new, ip {ip}):\n", p.device)),
            None if !p.changes_anything() => {
                out.push_str(&format!("{}: no changes\n", p.device));
                continue;
            }
            None => out.push_str(&format!("{}:\n", p.device)),
        }
        for c in &p.changes {
            let verb = match c.action {
                Action::Generate => "generate",
                Action::Rotate => "rotate",
                Action::Rerender => "re-render",
                Action::Keep => "keep",
            };
            out.push_str(&format!(
                "  {verb} {} ({})\n",
                c.secrets.join(", "),
                describe(&c.reason)
            ));
        }
        for d in &p.due {
            out.push_str(&format!(
                "  due for rotation {} ({})\n",
                d.secret,
                describe(&d.reason)
            ));
        }
        for f in &p.files {
            out.push_str(&format!("  write {f}\n"));
        }
        for s in p.store_writes.iter().filter(|s| s.ends_with("/current")) {
            out.push_str(&format!(
                "  store {s} (new version, and a timestamped copy)\n"
            ));
        }
    }
    out
}

/// Opens a fleet for planning: as [`super::open_fleet`], but leaves even
/// a killed run's temp files alone, so a plan changes nothing at all.
pub(crate) fn open_read_only(fleet: crate::fleet::Fleet) -> Result<Opened, Error> {
    let local = fleet.settings.store.kind == crate::fleet::StoreKind::Local;
    let identities = super::admin_identities(local)?;
    let handle = fleet.store(&identities)?;
    let owners = device::owners(&fleet)?;
    Ok(Opened {
        fleet,
        identities,
        handle,
        owners,
    })
}
