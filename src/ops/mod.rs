//! Fleet operations: what the fleet commands do, as a library, so tests
//! and other front ends call the same code the CLI does. `cli/` parses
//! arguments and prints; everything else is here.
//!
//! - [`open`]: a fleet, its admin identities, its store, its addresses;
//! - [`provision`]: one device's spec run over the store;
//! - [`for_each`]: a bounded pool of devices at once;
//! - [`create_devices`]: new device files with their addresses;
//! - [`expiring`]: certificates close to expiry;
//! - [`setup`]: init, the store key, rekey; [`check`]: what check reports;
//! - [`verify`]: the pre-flash check of a device's disk image.
//! - [`history`]: a device's changes (`rumor log`); [`report`]: the
//!   fleet's security state on one page (`rumor report`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::device::{self, Device};
use crate::engine::{self, LazyStore, Mode, Options, Outcome, Rotation};
use crate::error::Error;
use crate::fleet::{Fleet, StoreHandle, StoreKind};

pub(crate) mod check;
pub(crate) mod history;
pub(crate) mod plan;
pub(crate) mod report;
pub(crate) mod retire;
pub(crate) mod setup;
pub(crate) mod verify;

/// The admin identities, needed to open the local store and device files.
pub(crate) fn admin_identities(required: bool) -> Result<Vec<crate::identity::Identity>, Error> {
    match crate::identity::admin_path() {
        Some(path) if path.is_file() => crate::identity::read(&path),
        Some(path) if required => Err(Error::Input(format!(
            "no admin identity at {}; run `rumor init`, or set RUMOR_IDENTITY to your age identity file",
            path.display()
        ))),
        _ => Ok(Vec::new()),
    }
}

/// A fleet with its admin identities and its store, opened once per
/// command.
pub(crate) struct Opened {
    /// The fleet.
    pub fleet: Fleet,
    /// The admin identities.
    pub identities: Vec<crate::identity::Identity>,
    /// The store.
    pub handle: Arc<dyn StoreHandle>,
    /// Who holds each overlay address, read once per command.
    pub owners: device::Owners,
}

/// Opens the fleet in `dir`.
pub(crate) fn open(dir: &Path) -> Result<Opened, Error> {
    open_fleet(Fleet::open(dir)?)
}

/// [`open`] for a fleet already read.
pub(crate) fn open_fleet(fleet: Fleet) -> Result<Opened, Error> {
    let local = fleet.settings.store.kind == StoreKind::Local;
    let identities = admin_identities(local)?;
    let handle = fleet.store(&identities)?;
    remove_stale_temps(&fleet);
    let owners = device::owners(&fleet)?;
    Ok(Opened {
        fleet,
        identities,
        handle,
        owners,
    })
}

/// Removes the temp files a killed run left beside the fleet's files
/// (those of live writers stay). Best effort: a leftover never blocks a run.
pub(crate) fn remove_stale_temps(fleet: &Fleet) {
    let mut dirs: BTreeSet<PathBuf> = [
        fleet.dir.clone(),
        fleet.dir.join("devices"),
        fleet.dir.join("templates"),
    ]
    .into();
    for id in device::ids(fleet).unwrap_or_default() {
        if let Some(parent) = fleet.dir.join(fleet.output(&id)).parent() {
            dirs.insert(parent.to_path_buf());
        }
    }
    for dir in dirs {
        let _ = crate::fsutil::remove_stale_temps(&dir, false);
    }
}

/// Runs a device's spec as its file says, with `--reencrypt`.
pub(crate) fn provision_with(
    o: &Opened,
    id: &str,
    rotation: Rotation,
    verbose: bool,
    dry_run: bool,
    reencrypt: bool,
) -> Result<Outcome, Error> {
    let reason = reason(&rotation, reencrypt);
    provision_because(o, id, rotation, &reason, verbose, dry_run, reencrypt)
}

/// Why a run with this rotation writes, as its provenance says:
/// `new`, `renew`, `--secret NAME`.
pub(crate) fn reason(rotation: &Rotation, reencrypt: bool) -> String {
    match rotation {
        Rotation::Nothing if reencrypt => "new --reencrypt".to_owned(),
        Rotation::Nothing => "new".to_owned(),
        Rotation::All => "new --reuse-retired".to_owned(),
        Rotation::Marked => "renew".to_owned(),
        Rotation::Named(names) => names
            .iter()
            .map(|n| format!("--secret {n}"))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// [`provision_with`], recording `reason` as why the store was written
/// (`renew --expiring` names the certificates it found expiring).
pub(crate) fn provision_because(
    o: &Opened,
    id: &str,
    rotation: Rotation,
    reason: &str,
    verbose: bool,
    dry_run: bool,
    reencrypt: bool,
) -> Result<Outcome, Error> {
    let device = device::load(&o.fleet, id)?;
    let flags = Flags {
        verbose,
        dry_run,
        reencrypt,
        record: false,
    };
    run_device(o, id, &device, rotation, reason, flags)
}

/// How a device run runs.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Flags {
    /// Say what each entry did.
    pub verbose: bool,
    /// Imports and generations only (`rumor check`).
    pub dry_run: bool,
    /// `--reencrypt`.
    pub reencrypt: bool,
    /// Record writes instead of making them (`rumor plan`).
    pub record: bool,
}

/// Runs the spec of `device` (read from its file, or planned by
/// [`new_devices`] and not yet written). A device whose file says it is
/// retired is refused.
pub(crate) fn run_device(
    o: &Opened,
    id: &str,
    device: &Device,
    rotation: Rotation,
    reason: &str,
    flags: Flags,
) -> Result<Outcome, Error> {
    let started = std::time::Instant::now();
    admit(o, id, device, flags)?;
    let rendered = device::spec(&o.fleet, id, device)?;
    if crate::timings::enabled() {
        crate::timings::since(&format!("{id}: spec"), started);
    }
    run_rendered(o, o.handle.clone(), &rendered, rotation, reason, flags)
}

/// What a device run checks before its spec: the device file's record of
/// a retirement (the store's is checked before a command starts, by
/// [`retire::refuse_all`]), its address's uniqueness, and the device whose
/// Wi-Fi it shares.
pub(crate) fn admit(o: &Opened, id: &str, device: &Device, flags: Flags) -> Result<(), Error> {
    if let Some(r) = device.retired.as_ref().filter(|_| !flags.dry_run) {
        return Err(retire::refusal(id, r));
    }
    if let Ok(ip) = device.ip.parse() {
        device::check_unique(&o.fleet, id, ip, &o.owners)?;
    }
    if let Some(other) = &device.wifi {
        device::load(&o.fleet, other).map_err(|e| Error::Input(format!("{id}: wifi: {e}")))?;
    }
    Ok(())
}

/// Runs a device's spec and its text, as [`device::spec`] rendered them,
/// through `store`; the device was [`admit`]ted.
pub(crate) fn run_rendered(
    o: &Opened,
    store: Arc<dyn crate::store::Store>,
    (spec, text): &(crate::spec::Spec, String),
    rotation: Rotation,
    reason: &str,
    flags: Flags,
) -> Result<Outcome, Error> {
    let command = match rotation {
        Rotation::Nothing | Rotation::All => "new",
        _ => "renew",
    };
    let options = Options {
        mode: Mode::Device(rotation),
        identities: o.identities.clone(),
        now: time::OffsetDateTime::now_utc(),
        base_dir: o.fleet.dir.clone(),
        verbose: flags.verbose,
        dry_run: flags.dry_run,
        confined: true,
        reencrypt: flags.reencrypt,
        record: flags.record,
        provenance: crate::store::Provenance::new(command, reason, Some(text)),
    };
    engine::run(
        spec,
        crate::workspace::Workspace::new(),
        &LazyStore::ready(store),
        &options,
        &mut rand::rngs::OsRng,
    )
}

/// The fleet's devices that are not retired (their device file says so),
/// for `--all`.
pub(crate) fn active_ids(fleet: &Fleet) -> Result<Vec<String>, Error> {
    Ok(device::ids(fleet)?
        .into_iter()
        .filter(|id| !device::load(fleet, id).is_ok_and(|d| d.retired.is_some()))
        .collect())
}

/// Runs `work` for each device on a bounded pool of threads; results come
/// back in the input order whatever the scheduling, and a failing device
/// does not stop the others.
/// `done` hears of each finished device (for a progress line).
pub(crate) fn for_each<T: Send>(
    ids: &[String],
    done: &(dyn Fn(&str, bool) + Sync),
    work: impl Fn(&str) -> Result<T, Error> + Sync,
) -> Vec<Result<T, Error>> {
    for_each_until(ids, done, &|| false, work)
}

/// [`for_each`], starting no further device once `halt` says so (the
/// store failed in a way every device would meet): those devices get
/// [`Error::NotStarted`], so a dead server costs one failure per worker,
/// not one per device.
pub(crate) fn for_each_until<T: Send>(
    ids: &[String],
    done: &(dyn Fn(&str, bool) + Sync),
    halt: &(dyn Fn() -> bool + Sync),
    work: impl Fn(&str) -> Result<T, Error> + Sync,
) -> Vec<Result<T, Error>> {
    crate::pool::map(ids, jobs(), |id| {
        if halt() {
            return Err(Error::NotStarted);
        }
        let result = work(id);
        done(id, result.is_ok());
        result
    })
    .into_iter()
    .map(|result| result.unwrap_or_else(|| Err(Error::Input("a worker thread failed".into()))))
    .collect()
}

/// A read-only first pass over `ids` on the pool: like [`for_each`], but
/// starting no further id once one has failed. The caller takes the
/// results in order and stops at the first failure, which is the one a
/// serial loop would have met: an id is only left unstarted when one
/// before it has already failed.
pub(crate) fn first_pass<T: Send>(
    ids: &[String],
    work: impl Fn(&str) -> Result<T, Error> + Sync,
) -> Vec<Result<T, Error>> {
    let failed = std::sync::atomic::AtomicBool::new(false);
    let done = |_: &str, ok: bool| {
        if !ok {
            failed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    };
    let halt = || failed.load(std::sync::atomic::Ordering::SeqCst);
    for_each_until(ids, &done, &halt, work)
}

/// How many devices run at once: `RUMOR_JOBS`, else 32 per core, at most
/// 64. Key derivation runs at most once per core whatever the workers
/// ([`crate::generate::kdf`]), so extra workers cost no CPU and little
/// memory; they wait on the store. A no-op re-run needs about
/// cores × (1 + R·L / c) workers to keep the cores busy (R = 2 requests of
/// latency L per device, c ≈ 1.7 ms of rumor's CPU): about 50 on 2 cores
/// at L = 20 ms; the measurements are in bench/results.md. The cap bounds
/// the connections to Vault.
pub(crate) fn jobs() -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    std::env::var("RUMOR_JOBS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(32 * cores)
        .min(64)
}

/// What a fleet run keeps of a device's outcome until its summary: the
/// counts the summary line prints. Neither the secrets nor the rest of the
/// outcome stay in memory that long, so a run's memory hardly grows with
/// the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Done {
    /// Workspace files new or changed.
    pub changed: usize,
    /// Store paths written.
    pub store_writes: usize,
    /// Whether a file was written on disk.
    pub wrote_files: bool,
}

impl From<Outcome> for Done {
    fn from(outcome: Outcome) -> Done {
        Done {
            changed: outcome.changed.len(),
            store_writes: outcome.store_writes.len(),
            wrote_files: !outcome.files_written.is_empty(),
        }
    }
}

/// What `rumor new` gives a device it creates.
#[derive(Default)]
pub(crate) struct NewDevice {
    /// Its overlay address (default: the next free one).
    pub ip: Option<String>,
    /// Its display name.
    pub name: Option<String>,
    /// The device whose Wi-Fi credentials it shares.
    pub wifi: Option<String>,
    /// Provision a retired id again (under a new address).
    pub reuse_retired: bool,
}

/// A device `rumor new` would create, or bring back from retirement.
pub(crate) struct Planned {
    /// Its id.
    pub id: String,
    /// Its device file as it would be written.
    pub device: Device,
    /// A retired id provisioned again (`--reuse-retired`).
    pub reused: bool,
}

/// Decides, writing nothing, which of `ids` `rumor new` creates (no
/// device file yet) or brings back from retirement, and with which
/// address. A retired id is refused unless `new.reuse_retired`; it then
/// gets a new address (its old one stays reserved). Refuses to start when
/// what the embedded store holds for them does not authenticate.
pub(crate) fn new_devices(
    o: &Opened,
    ids: &[String],
    new: &NewDevice,
) -> Result<Vec<Planned>, Error> {
    // What the embedded store holds for these devices must authenticate
    // before anything is created: a planted entry stops the command here.
    // (Vault's entries are guarded by its access control.)
    if o.handle.local().is_some() {
        o.handle
            .read(&format!("{}/current", o.fleet.shared_path()))?;
        first_pass(ids, |id| {
            o.handle
                .read(&format!("{}/current", o.fleet.device_path(id)))?;
            Ok(())
        })
        .into_iter()
        .collect::<Result<(), Error>>()?;
    }
    // Each existing device's file and retirement record, read on the pool
    // (a round trip each to Vault), then weighed in order below.
    let existing = first_pass(ids, |id| {
        if !device::path(&o.fleet, id).exists() {
            return Ok(None);
        }
        let current = device::load(&o.fleet, id)?;
        let retired = retire::retired(o, id, &current)?;
        Ok(Some((current, retired)))
    });
    let mut allocated = BTreeSet::new();
    let mut planned = Vec::new();
    for (id, existing) in ids.iter().zip(existing) {
        let path = device::path(&o.fleet, id);
        let mut reused = None;
        if let Some((current, retired)) = existing? {
            match retired {
                Some(_) if new.reuse_retired => reused = Some(current),
                Some(r) => return Err(retire::refusal(id, &r)),
                None => {
                    if new.ip.as_deref().is_some_and(|ip| ip != current.ip) {
                        return Err(Error::Input(format!(
                            "{id} exists with ip {}; edit {} to change it",
                            current.ip,
                            path.display()
                        )));
                    }
                    continue;
                }
            }
        }
        let ip = match &new.ip {
            Some(ip) => {
                let ip = ip
                    .parse()
                    .map_err(|_| Error::Usage(format!("--ip \"{ip}\" is not an IPv4 address")))?;
                let mut owners = o.owners.clone();
                if reused.is_some() {
                    // Its old address stays its own, reserved, never reused.
                    owners.values_mut().for_each(|ids| {
                        ids.remove(id);
                    });
                }
                device::check_unique(&o.fleet, id, ip, &owners)?;
                ip
            }
            // allocate() reads the ledger; after the first, the next free
            // address is the one after this run's last (it allocates past
            // the highest taken), which keeps creating N devices linear.
            None => match allocated
                .last()
                .and_then(|prev| next_in_overlay(&o.fleet, *prev))
            {
                Some(ip) => ip,
                None => device::allocate(&o.fleet, &o.owners, &allocated)?,
            },
        };
        allocated.insert(ip);
        let device = match reused.clone() {
            Some(old) => Device {
                ip: ip.to_string(),
                retired: None,
                ..old
            },
            None => Device {
                name: new.name.clone().unwrap_or_default(),
                ip: ip.to_string(),
                groups: vec!["pidgeon".into()],
                wifi: new.wifi.clone(),
                vars: Default::default(),
                retired: None,
            },
        };
        device::validate(&o.fleet, id, &device)?;
        planned.push(Planned {
            id: id.clone(),
            device,
            reused: reused.is_some(),
        });
    }
    Ok(planned)
}

/// Creates the devices among `ids` that have no device file yet (and, with
/// `--reuse-retired`, brings back retired ones): each gets the next free
/// address (or `new.ip`) and a ledger line. Returns those it wrote, with
/// their device files. Holds the store's lock while it runs.
pub(crate) fn create_devices(
    o: &Opened,
    ids: &[String],
    new: &NewDevice,
) -> Result<Vec<Planned>, Error> {
    let _lock = o.handle.lock()?;
    let devices_lock = device::lock_devices(&o.fleet)?;
    let planned = new_devices(o, ids, new)?;
    let mut ledger = Vec::new();
    for p in &planned {
        let ip: std::net::Ipv4Addr = p
            .device
            .ip
            .parse()
            .map_err(|_| Error::Input(format!("{}: ip \"{}\"", p.id, p.device.ip)))?;
        ledger.push((ip, p.id.as_str()));
    }
    // The ledger first, in one write: a device file never holds an
    // address the ledger lacks, whatever a crash interrupts.
    device::record_allocations(&o.fleet, &ledger)?;
    // Each device file is its own atomic write with its own sync: on the
    // pool, so a thousand of them are not a serial second before the
    // first device starts. The first error in `ids`' order is returned.
    let by_id: std::collections::BTreeMap<&str, &Planned> =
        planned.iter().map(|p| (p.id.as_str(), p)).collect();
    let order: Vec<String> = planned.iter().map(|p| p.id.clone()).collect();
    first_pass(&order, |id| {
        let Some(p) = by_id.get(id) else {
            return Ok(());
        };
        if p.reused {
            retire::mark_reused(o, id)?;
        }
        device::save(&o.fleet, id, &p.device)
    })
    .into_iter()
    .collect::<Result<(), Error>>()?;
    drop(devices_lock);
    Ok(planned)
}

/// The address after `prev`, if it is still a host address of the overlay.
fn next_in_overlay(fleet: &Fleet, prev: std::net::Ipv4Addr) -> Option<std::net::Ipv4Addr> {
    let last = fleet.settings.network.nebula.last_host()?;
    let next = u32::from(prev).checked_add(1)?;
    (next <= u32::from(last)).then(|| std::net::Ipv4Addr::from(next))
}

/// Certificates of a device that expire within `days`.
pub(crate) fn expiring(o: &Opened, id: &str, days: u32) -> Result<Vec<String>, Error> {
    let Some(current) = o
        .handle
        .read(&format!("{}/current", o.fleet.device_path(id)))?
    else {
        return Ok(vec![]);
    };
    let limit = time::OffsetDateTime::now_utc() + time::Duration::days(days.into());
    let mut out = Vec::new();
    for (name, value) in &current.data {
        if let Some(when) = expiry(value) {
            if when < limit {
                out.push(name.clone());
            }
        }
    }
    Ok(out)
}

/// When a stored certificate expires, for X.509 and Nebula certificates.
pub(crate) fn expiry(value: &str) -> Option<time::OffsetDateTime> {
    if value.contains("-----BEGIN CERTIFICATE-----") {
        return crate::x509::not_after(value).ok();
    }
    if value.contains("-----BEGIN NEBULA CERTIFICATE-----") {
        return crate::nebula::Certificate::from_pem(value)
            .ok()
            .map(|c| c.expires_at());
    }
    None
}
