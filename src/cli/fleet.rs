//! Fleet commands: `init`, `new`, `renew`, `get`, `list`, `spec`, `check`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use zeroize::Zeroizing;

use crate::device::{self, Device};
use crate::engine::{self, LazyStore, Mode, Options, Outcome, Rotation};
use crate::error::Error;
use crate::fleet::{Fleet, Settings, StoreHandle, CONFIG};

/// Where the fleet is: `-C/--fleet DIR` or `RUMOR_FLEET`, else the
/// current directory.
#[derive(Args, Debug, Clone)]
pub struct FleetArg {
    /// The fleet directory (holding rumor.toml).
    #[arg(short = 'C', long = "fleet", value_name = "DIR", env = "RUMOR_FLEET", global = true)]
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
pub struct InitArgs {
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
#[command(after_help = "Example (a fleet the original tool provisions, on Vault):\n  \
    rumor init --profile original --device-path 'kv/ozds/pidgeon/{device}' \\\n    \
    --shared-path kv/ozds/shared --output 'assets/secrets/{device}.yaml'\n  \
    rumor adopt assets/pidgeon/pidgeons.json\n  \
    rumor new --all                   # rotates nothing; git and Vault unchanged\n  \
    rumor check")]
pub struct AdoptArgs {
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
pub struct NewArgs {
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
    /// Say what each entry did.
    #[arg(short, long)]
    pub verbose: bool,
}

/// `rumor renew`.
#[derive(Args, Debug)]
pub struct RenewArgs {
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
    /// Say what each entry did.
    #[arg(short, long)]
    pub verbose: bool,
}

/// `rumor rekey`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    rumor rekey                     after editing admins.recipients in rumor.toml\n  \
    rumor rekey --trust-unsigned    once, for a store made by a rumor before 0.2 (review `git log store/` first)")]
pub struct RekeyArgs {
    /// Accept entries that carry no signature (a store made before entries
    /// were signed). You vouch for them: review the store's git history
    /// first, since anyone who can push could have planted one.
    #[arg(long)]
    pub trust_unsigned: bool,
}

/// The admin identities, needed to open the local store and device files.
pub fn admin_identities(required: bool) -> Result<Vec<age::x25519::Identity>, Error> {
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
pub(super) struct Opened {
    pub(super) fleet: Fleet,
    pub(super) identities: Vec<age::x25519::Identity>,
    pub(super) handle: Arc<dyn StoreHandle>,
    /// Who holds each overlay address, read once per command.
    pub(super) owners: std::collections::BTreeMap<std::net::Ipv4Addr, BTreeSet<String>>,
}

pub(super) fn open(arg: &FleetArg) -> Result<Opened, Error> {
    open_fleet(Fleet::open(&arg.dir()?)?)
}

/// [`open`] for a fleet already read.
pub(super) fn open_fleet(fleet: Fleet) -> Result<Opened, Error> {
    let local = fleet.settings.store.kind == "local";
    let identities = admin_identities(local)?;
    let handle = fleet.store(&identities)?;
    remove_stale_temps(&fleet);
    let owners = device::owners(&fleet)?;
    Ok(Opened { fleet, identities, handle, owners })
}

/// Removes the temp files a killed run left beside the fleet's files
/// (those of live writers stay). Best effort: a leftover never blocks a run.
fn remove_stale_temps(fleet: &Fleet) {
    let mut dirs: BTreeSet<PathBuf> = [fleet.dir.clone(), fleet.dir.join("devices"), fleet.dir.join("templates")].into();
    for id in device::ids(fleet).unwrap_or_default() {
        if let Some(parent) = fleet.dir.join(fleet.output(&id)).parent() {
            dirs.insert(parent.to_path_buf());
        }
    }
    for dir in dirs {
        let _ = crate::fsutil::remove_stale_temps(&dir, false);
    }
}

/// Runs one device's spec.
pub(super) fn provision(o: &Opened, id: &str, rotation: Rotation, verbose: bool, dry_run: bool) -> Result<Outcome, Error> {
    provision_with(o, id, rotation, verbose, dry_run, false)
}

/// [`provision`], with `--reencrypt`.
pub(super) fn provision_with(o: &Opened, id: &str, rotation: Rotation, verbose: bool, dry_run: bool, reencrypt: bool) -> Result<Outcome, Error> {
    let device = device::load(&o.fleet, id)?;
    if let Ok(ip) = device.ip.parse() {
        device::check_unique(&o.fleet, id, ip, &o.owners)?;
    }
    if let Some(other) = &device.wifi {
        device::load(&o.fleet, other).map_err(|e| Error::Input(format!("{id}: wifi: {e}")))?;
    }
    let (spec, _) = device::spec(&o.fleet, id, &device)?;
    let options = Options {
        mode: Mode::Device(rotation),
        identities: o.identities.clone(),
        now: time::OffsetDateTime::now_utc(),
        base_dir: o.fleet.dir.clone(),
        verbose,
        dry_run,
        confined: true,
        reencrypt,
        gate: None,
    };
    let store = LazyStore::ready(o.handle.clone());
    engine::run(&spec, crate::workspace::Workspace::new(), &store, &options, &mut rand::rngs::OsRng)
}

/// Runs `work` for each device on a bounded pool of threads; results come
/// back in the input order whatever the scheduling, and a failing device
/// does not stop the others.
fn for_each<T: Send>(ids: &[String], work: impl Fn(&str) -> Result<T, Error> + Sync) -> Vec<Result<T, Error>> {
    let workers = jobs().min(ids.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<T, Error>>>> = ids.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let progress = super::progress::Progress::new(ids.len());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(id) = ids.get(i) else { break };
                let result = work(id);
                progress.tick(id, result.is_ok());
                if let Ok(mut slot) = results[i].lock() {
                    *slot = Some(result);
                }
            });
        }
    });
    progress.finish();
    results
        .into_iter()
        .map(|m| m.into_inner().ok().flatten().unwrap_or_else(|| Err(Error::Input("a worker thread failed".into()))))
        .collect()
}

/// How many devices run at once: `RUMOR_JOBS`, else twice the cores. A
/// device's run alternates CPU-bound key derivation (yescrypt, PBKDF2)
/// with store round trips, so two per core keep the cores busy while half
/// the workers wait on Vault; each worker's yescrypt holds 16 MiB, which
/// bounds memory, and the cap bounds the connections to Vault.
fn jobs() -> usize {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    std::env::var("RUMOR_JOBS").ok().and_then(|v| v.parse::<usize>().ok()).filter(|n| *n > 0).unwrap_or(2 * cores).min(64)
}

/// An outcome without its workspace: a fleet run keeps one per device
/// until the summary, and the secrets need not stay in memory that long.
fn light(mut outcome: Outcome) -> Outcome {
    outcome.workspace = crate::workspace::Workspace::new();
    outcome
}

fn summarize(fleet: &Fleet, ids: &[String], results: Vec<Result<Outcome, Error>>) -> Result<(), Error> {
    let mut failed = Vec::new();
    let mut first_code = 0;
    for (id, result) in ids.iter().zip(results) {
        match result {
            Ok(outcome) => {
                let file = fleet.output(id);
                let wrote = if outcome.files_written.is_empty() { format!("{file} unchanged") } else { format!("{file} written") };
                let rotated = if outcome.changed.is_empty() { String::new() } else { format!(", {} changed", outcome.changed.len()) };
                eprintln!("rumor: {id}: {} store writes{rotated}, {wrote}", outcome.store_writes.len() / 2);
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
        Err(Error::Entry { label: format!("{} of {} devices failed", failed.len(), ids.len()), message: failed.join(", "), kind })
    }
}

/// `rumor init`.
pub fn init(arg: &FleetArg, args: InitArgs) -> Result<(), Error> {
    let dir = match args.dir {
        Some(d) => d,
        None => arg.dir()?,
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, &e))?;
    for sub in ["devices", "templates", "secrets"] {
        crate::fsutil::dir_beneath(&dir, Path::new(sub), 0o755).map_err(|e| Error::read(&dir.join(sub), e))?;
    }
    // The admin identity: made once, kept outside the fleet.
    let identity_path = crate::identity::admin_path().ok_or_else(|| Error::Input("cannot tell where the admin identity goes; set RUMOR_IDENTITY or HOME".into()))?;
    if !identity_path.is_file() {
        let identity = age::x25519::Identity::generate();
        if let Some(parent) = identity_path.parent() {
            crate::fsutil::create_private_dir(parent).map_err(|e| Error::io(parent, &e))?;
        }
        use age::secrecy::ExposeSecret;
        let text = Zeroizing::new(format!("# rumor fleet admin identity\n# public key: {}\n{}\n", identity.to_public(), identity.to_string().expose_secret()));
        crate::fsutil::write_atomic(&identity_path, text.as_bytes(), 0o600).map_err(|e| Error::io(&identity_path, &e))?;
        eprintln!("rumor: made the admin identity {} (back it up: it opens every secret)", identity_path.display());
    }
    let identities = crate::identity::read(&identity_path)?;
    let recipient = identities[0].to_public().to_string();
    let config = dir.join(CONFIG);
    if !config.is_file() {
        let mut settings = Settings::default();
        let vault = args.vault || (!args.local && std::env::var_os("VAULT_ADDR").is_some_and(|v| !v.is_empty()));
        if vault {
            settings.store.kind = "vault".into();
        }
        settings.store.mount = args.vault_mount.clone();
        settings.store.prefix = args.vault_prefix.clone();
        settings.store.devices = args.device_path.clone();
        settings.store.shared = args.shared_path.clone();
        if let Some(output) = &args.output {
            settings.output.devices = output.clone();
        }
        settings.admins.recipients = vec![recipient.clone()];
        let text = format!(
            "# rumor fleet settings; see the README for every field.\n{}",
            toml::to_string(&settings).map_err(|e| Error::Input(format!("{}: {e}", config.display())))?
        );
        crate::fsutil::write_beneath(&dir, Path::new(CONFIG), text.as_bytes(), 0o644).map_err(|e| Error::read(&config, e))?;
        eprintln!("rumor: wrote {} ({} store)", config.display(), settings.store.kind);
    }
    let templates = if args.profile == "original" { ORIGINAL_TEMPLATES } else { DEFAULT_TEMPLATES };
    for (name, text) in templates {
        let path = dir.join("templates").join(name);
        if !path.exists() {
            crate::fsutil::write_beneath(&dir, &Path::new("templates").join(name), text.as_bytes(), 0o644).map_err(|e| Error::read(&path, e))?;
        }
    }
    add_first_admin(&config, &recipient)?;
    sign_new_store(&dir)?;
    let o = open(&FleetArg { fleet: Some(dir.clone()) })?;
    if !o.fleet.settings.admins.recipients.contains(&recipient) {
        eprintln!("rumor: warning: your identity's recipient {recipient} is not in admins.recipients of {}", config.display());
    }
    let _lock = o.handle.lock()?;
    let spec = device::shared_spec(&o.fleet)?;
    let options = Options { mode: Mode::Device(Rotation::Nothing), identities: o.identities.clone(), confined: true, ..Options::run(o.fleet.dir.clone()) };
    let store = LazyStore::ready(o.handle.clone());
    let outcome = engine::run(&spec, crate::workspace::Workspace::new(), &store, &options, &mut rand::rngs::OsRng)?;
    if outcome.store_writes.is_empty() {
        eprintln!("rumor: the fleet CAs are in {} already", o.fleet.shared_path());
    } else {
        eprintln!("rumor: made the fleet CAs in {} ({})", o.fleet.shared_path(), o.handle.describe());
    }
    Ok(())
}

/// A local store without a pinned store key gets one, when it holds no
/// entries yet; a store with entries needs `rumor rekey --trust-unsigned`.
fn sign_new_store(dir: &Path) -> Result<(), Error> {
    let mut fleet = Fleet::open(dir)?;
    if fleet.settings.store.kind != "local" || fleet.settings.store.signer.is_some() {
        return Ok(());
    }
    let identities = admin_identities(true)?;
    let handle = fleet.store(&identities)?;
    let Some(local) = handle.local() else { return Ok(()) };
    let pin = local.create_signer()?;
    fleet.set_setting("store", "signer", &format!("\"{pin}\""))?;
    crate::admins::record_store_recipients(&fleet)?;
    eprintln!("rumor: made the store key; {} pins it as store.signer", fleet.dir.join(CONFIG).display());
    Ok(())
}

/// `rumor rekey`.
pub fn rekey(arg: &FleetArg, args: RekeyArgs) -> Result<(), Error> {
    let dir = arg.dir()?;
    let local = Fleet::open(&dir)?.settings.store.kind == "local";
    let done = crate::admins::rekey(&dir, &admin_identities(local)?, args.trust_unsigned)?;
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
#[command(after_help = "A removed admin may have copied secrets before: follow a removal with `rumor renew --all`.")]
pub enum AdminsCommand {
    /// Add an age recipient to admins.recipients and rekey the fleet.
    Add {
        /// An age recipient (age1…).
        recipient: String,
    },
    /// Remove an admin and rekey the fleet.
    Remove {
        /// The admin's age recipient (age1…).
        recipient: String,
    },
    /// Print admins.recipients, one per line.
    List,
}

/// `rumor admins`.
pub fn admins(arg: &FleetArg, command: AdminsCommand) -> Result<(), Error> {
    let dir = arg.dir()?;
    let mut fleet = Fleet::open(&dir)?;
    let change = match &command {
        AdminsCommand::Add { recipient } => crate::admins::Change::Add(recipient),
        AdminsCommand::Remove { recipient } => crate::admins::Change::Remove(recipient),
        AdminsCommand::List => {
            crate::admins::list(&fleet).iter().for_each(|r| println!("{r}"));
            return Ok(());
        }
    };
    // The identity must open the fleet before rumor.toml changes.
    let identities = admin_identities(fleet.settings.store.kind == "local")?;
    crate::admins::apply(&mut fleet, change, &identities)?;
    eprintln!("rumor: admins.recipients in {} now lists {} admins; rekeying", fleet.dir.join(CONFIG).display(), fleet.recipients().len());
    let done = crate::admins::rekey(&dir, &identities, false)?;
    report_rekey(&done);
    if matches!(change, crate::admins::Change::Remove(_)) {
        eprintln!("rumor: the removed admin may have copied secrets before; rotate them with `rumor renew --all`");
    }
    Ok(())
}

/// A fleet checked out without admins (like this repository's example)
/// gets the caller's recipient, edited in place so comments survive.
fn add_first_admin(config: &Path, recipient: &str) -> Result<(), Error> {
    let dir = config.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let bytes = crate::fsutil::read_beneath(dir, Path::new(CONFIG), 1 << 20).map_err(|e| Error::read(config, e))?;
    let text = String::from_utf8(bytes).map_err(|_| Error::Input(format!("{}: is not UTF-8 text", config.display())))?;
    let settings: Settings = match toml::from_str(&text) {
        Ok(s) => s,
        Err(_) => return Ok(()), // Fleet::open reports it properly.
    };
    if !settings.admins.recipients.is_empty() {
        return Ok(());
    }
    let Some(line) = text.lines().find(|l| l.trim().replace(' ', "") == "recipients=[]") else { return Ok(()) };
    let edited = text.replacen(line, &format!("recipients = [\"{recipient}\"]"), 1);
    crate::fsutil::write_beneath(dir, Path::new(CONFIG), edited.as_bytes(), 0o644).map_err(|e| Error::read(config, e))?;
    eprintln!("rumor: added your recipient to admins.recipients in {}", config.display());
    Ok(())
}

/// The built-in templates `rumor init` writes.
pub const DEFAULT_TEMPLATES: &[(&str, &str)] = &[
    ("device.spec.toml.j2", include_str!("../../templates/device.spec.toml.j2")),
    ("shared.spec.toml.j2", include_str!("../../templates/shared.spec.toml.j2")),
    ("postgres-init.sql.j2", include_str!("../../templates/postgres-init.sql.j2")),
    ("pidgeon.env.j2", include_str!("../../templates/pidgeon.env.j2")),
    ("wifi.env.j2", include_str!("../../templates/wifi.env.j2")),
];

/// The original tool's profile (`rumor init --profile original`): its
/// workspace names, store layout and device-file keys.
pub const ORIGINAL_TEMPLATES: &[(&str, &str)] = &[
    ("device.spec.toml.j2", include_str!("../../examples/original/templates/device.spec.toml.j2")),
    ("shared.spec.toml.j2", include_str!("../../examples/original/templates/shared.spec.toml.j2")),
];

/// `rumor adopt`.
pub fn adopt(arg: &FleetArg, args: AdoptArgs) -> Result<(), Error> {
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
pub fn new(arg: &FleetArg, mut args: NewArgs) -> Result<(), Error> {
    if args.devices.len() > 1 && args.ip.is_some() {
        return Err(Error::Usage("--ip sets one device's address; name one device with it".into()));
    }
    let fleet = Fleet::open(&arg.dir()?)?;
    if args.all {
        args.devices = device::ids(&fleet)?;
    }
    for id in args.devices.iter().chain(&args.wifi) {
        device::check_id_in(&fleet, id)?;
    }
    let o = open_fleet(fleet)?;
    let _lock = o.handle.lock()?;
    // What the embedded store holds for these devices must authenticate
    // before anything is created: a planted entry stops the command here.
    // (Vault's entries are guarded by its access control.)
    if o.handle.local().is_some() {
        o.handle.read(&format!("{}/current", o.fleet.shared_path()))?;
        for id in &args.devices {
            o.handle.read(&format!("{}/current", o.fleet.device_path(id)))?;
        }
    }
    let devices_lock = device::lock_devices(&o.fleet)?;
    let mut allocated = BTreeSet::new();
    for id in &args.devices {
        let path = device::path(&o.fleet, id);
        if path.exists() {
            if args.ip.is_some() || args.name.is_some() || args.wifi.is_some() {
                let current = device::load(&o.fleet, id)?;
                if args.ip.as_deref().is_some_and(|ip| ip != current.ip) {
                    return Err(Error::Input(format!("{id} exists with ip {}; edit {} to change it", current.ip, path.display())));
                }
            }
            continue;
        }
        let ip = match &args.ip {
            Some(ip) => {
                let ip = ip.parse().map_err(|_| Error::Usage(format!("--ip \"{ip}\" is not an IPv4 address")))?;
                device::check_unique(&o.fleet, id, ip, &o.owners)?;
                ip
            }
            // allocate() scans every device file; after the first, the next
            // free address is the one after this run's last (it allocates
            // past the highest taken), which keeps creating N devices linear.
            None => match allocated.last().and_then(|prev| next_in_overlay(&o.fleet, *prev)) {
                Some(ip) => ip,
                None => device::allocate(&o.fleet, &allocated)?,
            },
        };
        allocated.insert(ip);
        let device = Device { name: args.name.clone().unwrap_or_default(), ip: ip.to_string(), groups: vec!["pidgeon".into()], wifi: args.wifi.clone(), vars: Default::default() };
        device::save(&o.fleet, id, &device)?;
        // Validates the address against the overlay and the other fields.
        if let Err(e) = device::load(&o.fleet, id) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        device::record_allocation(&o.fleet, ip, id)?;
        eprintln!("rumor: {id}: created {} with ip {ip}", path.display());
    }
    drop(devices_lock);
    let results = for_each(&args.devices, |id| provision_with(&o, id, Rotation::Nothing, args.verbose, false, args.reencrypt).map(light));
    summarize(&o.fleet, &args.devices, results)
}

/// The address after `prev`, if it is still a host address of the overlay.
fn next_in_overlay(fleet: &Fleet, prev: std::net::Ipv4Addr) -> Option<std::net::Ipv4Addr> {
    let (network, prefix) = device::parse_network(&fleet.settings.network.nebula).ok()?;
    let last = u32::from(network).checked_add((1u32 << (32 - u32::from(prefix))).checked_sub(2)?)?;
    let next = u32::from(prev).checked_add(1)?;
    (next <= last).then(|| std::net::Ipv4Addr::from(next))
}

/// `rumor renew`.
pub fn renew(arg: &FleetArg, args: RenewArgs) -> Result<(), Error> {
    let o = open(arg)?;
    let ids = if args.all { device::ids(&o.fleet)? } else { args.devices.clone() };
    for id in &ids {
        device::check_id_in(&o.fleet, id)?;
    }
    let _lock = o.handle.lock()?;
    let results = for_each(&ids, |id| {
        let mut names: BTreeSet<String> = args.secrets.iter().cloned().collect();
        if let Some(days) = args.expiring {
            names.extend(expiring(&o, id, days)?);
        }
        let rotation = if args.secrets.is_empty() && args.expiring.is_none() { Rotation::Marked } else { Rotation::Named(names) };
        let before = crate::device_key::public(&o.fleet, o.handle.as_ref(), id)?;
        let outcome = provision(&o, id, rotation, args.verbose, false).map(light)?;
        let after = crate::device_key::public(&o.fleet, o.handle.as_ref(), id)?;
        if crate::device_key::note_renewal(&o.fleet, id, before.as_deref(), after.as_deref())? {
            eprintln!("rumor: {id}: new device key; its image needs it: run `rumor inject {id} <image>` (the old key no longer opens {})", o.fleet.output(id));
        }
        Ok(outcome)
    });
    summarize(&o.fleet, &ids, results)
}

/// Certificates of a device that expire within `days`.
fn expiring(o: &Opened, id: &str, days: u32) -> Result<Vec<String>, Error> {
    let Some(current) = o.handle.read(&format!("{}/current", o.fleet.device_path(id)))? else { return Ok(vec![]) };
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
pub(super) fn expiry(value: &str) -> Option<time::OffsetDateTime> {
    if value.contains("-----BEGIN CERTIFICATE-----") {
        return crate::x509::not_after(value).ok();
    }
    if value.contains("-----BEGIN NEBULA CERTIFICATE-----") {
        return crate::nebula::Certificate::from_pem(value).ok().map(|c| c.expires_at());
    }
    None
}
