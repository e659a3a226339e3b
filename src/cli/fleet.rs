//! Fleet commands that write: `init`, `adopt`, `new`, `renew`, `rekey`.
//! They parse their arguments, call [`crate::ops`] and print.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::Args;

use crate::device;
use crate::engine::{self, Rotation};
use crate::error::Error;
use crate::fleet::{Fleet, StoreKind};
use crate::ops::{self, setup::InitOptions, NewDevice};
use crate::timings;

/// Where the fleet is: `-C/--fleet DIR` or `RUMOR_FLEET`, else the
/// current directory.
#[derive(Args, Debug, Clone)]
pub(crate) struct FleetArg {
    /// The fleet directory (holding rumor.toml).
    #[arg(
        short = 'C',
        long = "fleet",
        value_name = "DIR",
        env = "RUMOR_FLEET",
        global = true
    )]
    pub fleet: Option<PathBuf>,
}

impl FleetArg {
    pub(super) fn dir(&self) -> Result<PathBuf, Error> {
        match &self.fleet {
            Some(d) => Ok(d.clone()),
            None => super::current_dir(),
        }
    }
}

/// `rumor init`.
#[derive(Args, Debug)]
pub(crate) struct InitArgs {
    /// The fleet directory to create (default: the current directory).
    pub dir: Option<PathBuf>,
    /// Use Vault (the default when VAULT_ADDR is set).
    #[arg(long, conflicts_with = "local")]
    pub vault: bool,
    /// Use the embedded local store even when VAULT_ADDR is set.
    #[arg(long)]
    pub local: bool,
    /// The Vault KV v2 mount.
    #[arg(long, value_name = "M", default_value = "secret")]
    pub vault_mount: String,
    /// The path prefix under the mount.
    #[arg(long, value_name = "P", default_value = "rumor")]
    pub vault_prefix: String,
    /// The template set: `default` (rumor's device profile) or `original`
    /// (the original tool's workspace names and device-file keys, for a
    /// fleet adopted from it).
    #[arg(long, value_name = "NAME", default_value = "default", value_parser = ["default", "original"])]
    pub profile: String,
    /// Where device secrets live in the store, `{device}` for the id
    /// (e.g. kv/ozds/pidgeon/{device}); default <mount>/<prefix>/devices/{device}.
    #[arg(long, value_name = "PATTERN")]
    pub device_path: Option<String>,
    /// Where the fleet CAs live in the store (e.g. kv/ozds/shared);
    /// default <mount>/<prefix>/shared.
    #[arg(long, value_name = "PATH")]
    pub shared_path: Option<String>,
    /// Where device files go, relative to the fleet (e.g.
    /// assets/secrets/{device}.yaml); default secrets/{device}.yaml.
    #[arg(long, value_name = "PATTERN")]
    pub output: Option<String>,
}

/// `rumor adopt`.
#[derive(Args, Debug)]
#[command(
    after_help = "Example (a fleet the original tool provisions, on Vault):\n  \
    rumor init --profile original --device-path 'kv/ozds/pidgeon/{device}' \\\n    \
    --shared-path kv/ozds/shared --output 'assets/secrets/{device}.yaml'\n  \
    rumor adopt assets/pidgeon/pidgeons.json\n  \
    rumor new --all                   # rotates nothing; git and Vault unchanged\n  \
    rumor check"
)]
pub(crate) struct AdoptArgs {
    /// A JSON list of devices: [{"id": …, "ip": …, "name": …, "wifi": …}];
    /// `wifi` names the device whose Wi-Fi credentials are shared.
    #[arg(value_name = "LIST.json")]
    pub list: PathBuf,
    /// Nebula groups for the adopted devices (default: none, as the
    /// original's certificates have none).
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
}

/// `rumor new`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    rumor new pidgeon-1 pidgeon-2          create and provision (next free addresses)\n  \
    rumor new --all --dry-run              what would change, writing nothing (exit 2 if anything)\n  \
    rumor new pidgeon-3 --reuse-retired    a retired id again: every secret anew, a new address")]
pub(crate) struct NewArgs {
    /// Device ids: lowercase letters, digits and '-'.
    #[arg(required_unless_present = "all", value_name = "DEVICE")]
    pub devices: Vec<String>,
    /// Every device of the fleet (devices/*.toml).
    #[arg(long, conflicts_with_all = ["devices", "ip", "name", "wifi"])]
    pub all: bool,
    /// The overlay IP of a new device (default: the next free one).
    #[arg(long, value_name = "A.B.C.D")]
    pub ip: Option<String>,
    /// The display name of a new device.
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
    /// Share this other device's Wi-Fi credentials.
    #[arg(long, value_name = "OTHER")]
    pub wifi: Option<String>,
    /// Re-encrypt the device files from the store under fresh data keys,
    /// replacing what is in git even where the store does not vouch for
    /// it (after reviewing a file `rumor check` flagged). Rotates nothing.
    #[arg(long)]
    pub reencrypt: bool,
    /// Provision a retired id again: every secret is made anew and the
    /// device gets a new address (its old one stays reserved).
    #[arg(long)]
    pub reuse_retired: bool,
    /// Print what would change (as `rumor plan`) and write nothing; exit 2
    /// when something would change, 0 when nothing would.
    #[arg(long, conflicts_with = "reencrypt")]
    pub dry_run: bool,
    /// With --dry-run: print JSON for scripts.
    #[arg(long, requires = "dry_run")]
    pub json: bool,
    /// Say what each entry did.
    #[arg(short, long)]
    pub verbose: bool,
}

/// The devices a command acts on: every active one with `--all`, else
/// those named, each id checked.
pub(crate) fn targets(fleet: &Fleet, all: bool, devices: &[String]) -> Result<Vec<String>, Error> {
    let ids = if all {
        ops::active_ids(fleet)?
    } else {
        devices.to_vec()
    };
    for id in &ids {
        device::check_id_in(fleet, id)?;
    }
    Ok(ids)
}

/// `rumor renew`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    rumor renew --all                            what the profile marks renew\n  \
    rumor renew pidgeon-1 --secret wifi.pass     one secret and what depends on it\n  \
    rumor renew --all --expiring 30 --dry-run    what would rotate, writing nothing (exit 2 if anything)")]
pub(crate) struct RenewArgs {
    /// Device ids.
    #[arg(value_name = "DEVICE", required_unless_present = "all")]
    pub devices: Vec<String>,
    /// Every device of the fleet.
    #[arg(long, conflicts_with = "devices")]
    pub all: bool,
    /// Rotate only this secret (a workspace name like wifi.pass), and what
    /// depends on it. Repeatable. Default: what the profile marks renew.
    #[arg(long = "secret", value_name = "NAME")]
    pub secrets: Vec<String>,
    /// Also rotate certificates that expire within DAYS.
    #[arg(long, value_name = "DAYS")]
    pub expiring: Option<u32>,
    /// Print what would change (as `rumor plan`) and write nothing; exit 2
    /// when something would change, 0 when nothing would.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: print JSON for scripts.
    #[arg(long, requires = "dry_run")]
    pub json: bool,
    /// Say what each entry did.
    #[arg(short, long)]
    pub verbose: bool,
}

/// `rumor rekey`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    rumor rekey                     after editing admins.recipients in rumor.toml\n  \
    rumor rekey --trust-unsigned    once, for a store made by a rumor before 0.2 (review `git log store/` first)")]
pub(crate) struct RekeyArgs {
    /// Accept entries that carry no signature (a store made before entries
    /// were signed). You vouch for them: review the store's git history
    /// first, since anyone who can push could have planted one.
    #[arg(long)]
    pub trust_unsigned: bool,
}

/// [`ops::for_each`] with a progress line on a terminal.
fn pool<T: Send>(
    o: &ops::Opened,
    ids: &[String],
    work: impl Fn(&str) -> Result<T, Error> + Sync,
) -> Vec<Result<T, Error>> {
    let progress = super::progress::Progress::new(ids.len());
    let halt = || o.handle.halted();
    let results = ops::for_each_until(ids, &|id, ok| progress.tick(id, ok), &halt, work);
    progress.finish();
    results
}

fn summarize(
    fleet: &Fleet,
    ids: &[String],
    results: Vec<Result<ops::Done, Error>>,
) -> Result<(), Error> {
    let mut failed = Vec::new();
    let mut not_started = Vec::new();
    let mut first_code = 0;
    for (id, result) in ids.iter().zip(results) {
        match result {
            Err(Error::NotStarted) => {
                not_started.push(id.as_str());
                failed.push(id.clone());
            }
            Ok(done) => {
                let file = fleet.output(id);
                let wrote = if done.wrote_files {
                    format!("{file} written")
                } else {
                    format!("{file} unchanged")
                };
                let rotated = if done.changed == 0 {
                    String::new()
                } else {
                    format!(", {} changed", done.changed)
                };
                eprintln!(
                    "rumor: {id}: {} store writes{rotated}, {wrote}",
                    done.store_writes / 2
                );
            }
            Err(e) => {
                eprintln!("rumor: {id}: {e}");
                if failed.is_empty() {
                    first_code = e.exit_code();
                }
                failed.push(id.clone());
            }
        }
    }
    if !not_started.is_empty() {
        if first_code == 0 {
            first_code = Error::NotStarted.exit_code();
        }
        eprintln!(
            "rumor: {} devices not started once the store had failed: {}",
            not_started.len(),
            not_started.join(", ")
        );
    }
    if failed.is_empty() {
        Ok(())
    } else if engine::interrupted().load(std::sync::atomic::Ordering::SeqCst) {
        Err(Error::Interrupted)
    } else {
        // The exit code says what kind of failure it was (4 for a store
        // fault), as it would for a single `rumor run`.
        let kind = match first_code {
            4 => crate::error::Kind::Store,
            5 => crate::error::Kind::Integrity,
            6 => crate::error::Kind::Io,
            _ => crate::error::Kind::Input,
        };
        Err(Error::Entry {
            label: format!("{} of {} devices failed", failed.len(), ids.len()),
            message: failed.join(", "),
            kind,
        })
    }
}

/// `rumor init`.
pub(crate) fn init(arg: &FleetArg, args: InitArgs) -> Result<(), Error> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => arg.dir()?,
    };
    let options = InitOptions {
        vault: args.vault,
        local: args.local,
        vault_mount: args.vault_mount,
        vault_prefix: args.vault_prefix,
        profile: args.profile,
        device_path: args.device_path,
        shared_path: args.shared_path,
        output: args.output,
    };
    ops::setup::init(&dir, &options)
}

/// `rumor rekey`.
pub(crate) fn rekey(arg: &FleetArg, args: RekeyArgs) -> Result<(), Error> {
    let dir = arg.dir()?;
    let local = Fleet::open(&dir)?.settings.store.kind == StoreKind::Local;
    let done = crate::admins::rekey(&dir, &ops::admin_identities(local)?, args.trust_unsigned)?;
    report_rekey(&done);
    Ok(())
}

fn report_rekey(done: &crate::admins::Rekeyed) {
    if let Some(n) = done.store_entries {
        eprintln!("rumor: re-encrypted and re-signed {n} store entries; rumor.toml pins the new store key");
    }
    eprintln!("rumor: {} device files rewrapped for the new recipients, {} unchanged; no secret was rotated", done.rewrapped.len(), done.unchanged);
}

/// `rumor admins`.
#[derive(clap::Subcommand, Debug)]
#[command(after_help = "Examples:\n  \
    rumor admins add age1…                     a new admin reads every device file and the store\n  \
    rumor admins add \"$(cat ~/.ssh/id_ed25519.pub)\"   an SSH key as an admin key\n  \
    rumor admins add age1yubikey1…             a hardware key (age-plugin-yubikey on PATH)\n  \
    rumor admins remove age1…                  then rotate what they saw: rumor renew --all\n\n\
    A removed admin may have copied secrets before: follow a removal with `rumor renew --all`.")]
pub(crate) enum AdminsCommand {
    /// Add a recipient to admins.recipients and rekey the fleet.
    Add {
        /// An age (age1…), OpenSSH (ssh-ed25519 …, ssh-rsa …) or plugin
        /// (age1<name>1…) recipient.
        recipient: String,
    },
    /// Remove an admin and rekey the fleet.
    Remove {
        /// The admin's recipient, as `rumor admins list` prints it.
        recipient: String,
    },
    /// Print admins.recipients, one per line.
    List,
}

/// `rumor admins`.
pub(crate) fn admins(arg: &FleetArg, command: AdminsCommand) -> Result<(), Error> {
    let dir = arg.dir()?;
    let mut fleet = Fleet::open(&dir)?;
    let change = match &command {
        AdminsCommand::Add { recipient } => crate::admins::Change::Add(recipient),
        AdminsCommand::Remove { recipient } => crate::admins::Change::Remove(recipient),
        AdminsCommand::List => {
            crate::admins::list(&fleet)
                .iter()
                .for_each(|r| println!("{r}"));
            return Ok(());
        }
    };
    // The identity must open the fleet before rumor.toml changes.
    let identities = ops::admin_identities(fleet.settings.store.kind == StoreKind::Local)?;
    crate::admins::apply(&mut fleet, change, &identities)?;
    eprintln!(
        "rumor: admins.recipients in {} now lists {} admins; rekeying",
        fleet.dir.join(crate::fleet::CONFIG).display(),
        fleet.recipients().len()
    );
    let done = crate::admins::rekey(&dir, &identities, false)?;
    report_rekey(&done);
    if matches!(change, crate::admins::Change::Remove(_)) {
        eprintln!("rumor: the removed admin may have copied secrets before; rotate them with `rumor renew --all`");
    }
    Ok(())
}

/// `rumor adopt`.
pub(crate) fn adopt(arg: &FleetArg, args: AdoptArgs) -> Result<(), Error> {
    let mut fleet = Fleet::open(&arg.dir()?)?;
    let _devices = device::lock_devices(&fleet)?;
    let done = crate::adopt::adopt(&mut fleet, &args.list, &args.groups)?;
    if done.mixed_case {
        eprintln!("rumor: device ids with upper-case letters: set devices.mixed_case = true in rumor.toml");
    }
    eprintln!(
        "rumor: adopted {} devices ({} already there); next: `rumor new` them, which rotates nothing, then `rumor check`",
        done.created.len(),
        done.unchanged.len()
    );
    Ok(())
}

/// `rumor new`.
pub(crate) fn new(arg: &FleetArg, mut args: NewArgs) -> Result<(), Error> {
    if args.devices.len() > 1 && args.ip.is_some() {
        return Err(Error::Usage(
            "--ip sets one device's address; name one device with it".into(),
        ));
    }
    let started = std::time::Instant::now();
    let fleet = Fleet::open(&arg.dir()?)?;
    if args.all {
        args.devices = ops::active_ids(&fleet)?;
    }
    for id in args.devices.iter().chain(&args.wifi) {
        device::check_id_in(&fleet, id)?;
    }
    let new = NewDevice {
        ip: args.ip.clone(),
        name: args.name.clone(),
        wifi: args.wifi.clone(),
        reuse_retired: args.reuse_retired,
    };
    if args.dry_run {
        let o = ops::plan::open_read_only(fleet)?;
        let plans = ops::plan::plan(&o, &args.devices, &ops::plan::Command::New, &new)?;
        return super::plan::print(&plans, args.json);
    }
    timings::since("read fleet", started);
    let started = std::time::Instant::now();
    let o = ops::open_fleet(fleet)?;
    timings::since("open store", started);
    let started = std::time::Instant::now();
    let created = ops::create_devices(&o, &args.devices, &new)?;
    timings::since("create devices", started);
    let mut reused = BTreeSet::new();
    for planned in created {
        let id = &planned.id;
        if planned.reused {
            eprintln!(
                "rumor: {id}: retired id provisioned again with ip {}: every secret is made anew",
                planned.device.ip
            );
            reused.insert(id.clone());
        } else {
            eprintln!(
                "rumor: {id}: created {} with ip {}",
                device::path(&o.fleet, id).display(),
                planned.device.ip
            );
        }
    }
    let _lock = o.handle.lock()?;
    let results = pool(&o, &args.devices, |id| {
        let rotation = if reused.contains(id) {
            Rotation::All
        } else {
            Rotation::Nothing
        };
        ops::provision_with(&o, id, rotation, args.verbose, false, args.reencrypt)
            .map(ops::Done::from)
    });
    report_retries(&o);
    summarize(&o.fleet, &args.devices, results)
}

/// `rumor renew`.
pub(crate) fn renew(arg: &FleetArg, args: RenewArgs) -> Result<(), Error> {
    let fleet = Fleet::open(&arg.dir()?)?;
    let ids = targets(&fleet, args.all, &args.devices)?;
    if args.dry_run {
        let o = ops::plan::open_read_only(fleet)?;
        let command = ops::plan::Command::Renew {
            secrets: args.secrets.clone(),
            expiring: args.expiring,
        };
        let plans = ops::plan::plan(&o, &ids, &command, &NewDevice::default())?;
        return super::plan::print(&plans, args.json);
    }
    let o = ops::open_fleet(fleet)?;
    ops::retire::refuse_all(&o, &ids)?;
    let _lock = o.handle.lock()?;
    let results = pool(&o, &ids, |id| {
        let (rotation, expiring) = ops::plan::renew_rotation(&o, id, &args.secrets, args.expiring)?;
        let mut reason = Vec::new();
        if !args.secrets.is_empty() {
            let named = args.secrets.iter().cloned().collect();
            reason.push(ops::reason(&Rotation::Named(named), false));
        }
        if let Some(days) = args.expiring {
            let found: Vec<String> = expiring.into_iter().collect();
            reason.push(format!("expiring within {days} days: {}", found.join(", ")));
        }
        let reason = match reason.is_empty() {
            true => ops::reason(&rotation, false),
            false => reason.join("; "),
        };
        let outcome =
            ops::provision_because(&o, id, rotation, &reason, args.verbose, false, false)?;
        if crate::device_key::note_renewal(&o.fleet, id, &outcome)? {
            eprintln!(
                "rumor: {id}: new device key; its image needs it: run `rumor inject {id} <image>` (the old key no longer opens {})",
                o.fleet.output(id)
            );
        }
        Ok(ops::Done::from(outcome))
    });
    report_retries(&o);
    summarize(&o.fleet, &ids, results)
}

/// The store's retries, on one line, when there were any:
/// `rumor: Vault at …: 37 requests retried (29 rate-limited; at most 4 in flight)`.
fn report_retries(o: &ops::Opened) {
    if let Some(line) = o.handle.retries().and_then(|r| r.summary()) {
        eprintln!("rumor: {}: {line}", o.handle.describe());
    }
}
