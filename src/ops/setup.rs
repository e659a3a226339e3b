//! Setting a fleet up: `rumor init`, the local store's key, `rumor rekey`.

use std::path::Path;

use zeroize::Zeroizing;

use super::admin_identities;
use crate::device;
use crate::engine::{self, LazyStore, Mode, Options, Rotation};
use crate::error::Error;
use crate::fleet::{Fleet, Settings, StoreKind, CONFIG};

/// How to set up a fleet (`rumor init`).
pub(crate) struct InitOptions {
    /// Use Vault (also when VAULT_ADDR is set, unless `local`).
    pub vault: bool,
    /// Use the embedded store even when VAULT_ADDR is set.
    pub local: bool,
    /// The KV v2 mount.
    pub vault_mount: String,
    /// The path prefix under the mount.
    pub vault_prefix: String,
    /// `default` or `original`.
    pub profile: String,
    /// `store.devices`.
    pub device_path: Option<String>,
    /// `store.shared`.
    pub shared_path: Option<String>,
    /// `output.devices`.
    pub output: Option<String>,
}

/// Sets up the fleet in `dir`: its directories, the admin identity,
/// rumor.toml, the templates, the store key and the fleet CAs. What exists
/// is kept, so it is safe to run again.
pub(crate) fn init(dir: &Path, args: &InitOptions) -> Result<(), Error> {
    let dir = dir.to_path_buf();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, &e))?;
    for sub in ["devices", "templates", "secrets"] {
        crate::fsutil::dir_beneath(&dir, Path::new(sub), 0o755)
            .map_err(|e| Error::read(&dir.join(sub), e))?;
    }
    // The admin identity: made once, kept outside the fleet.
    let identity_path = crate::identity::admin_path().ok_or_else(|| {
        Error::Input("cannot tell where the admin identity goes; set RUMOR_IDENTITY or HOME".into())
    })?;
    if !identity_path.is_file() {
        let identity = age::x25519::Identity::generate();
        if let Some(parent) = identity_path.parent() {
            crate::fsutil::create_private_dir(parent).map_err(|e| Error::io(parent, &e))?;
        }
        use age::secrecy::ExposeSecret;
        let text = Zeroizing::new(format!(
            "# rumor fleet admin identity\n# public key: {}\n{}\n",
            identity.to_public(),
            identity.to_string().expose_secret()
        ));
        crate::fsutil::write_atomic(&identity_path, text.as_bytes(), 0o600)
            .map_err(|e| Error::io(&identity_path, &e))?;
        eprintln!(
            "rumor: made the admin identity {} (back it up: it opens every secret)",
            identity_path.display()
        );
    }
    let identities = crate::identity::read(&identity_path)?;
    let recipient = identities[0].recipient().ok_or_else(|| {
        Error::Input(format!(
            "{}: a plugin identity does not tell its recipient; run `rumor init` with an age or SSH identity, then `rumor admins add` the plugin's recipient",
            identity_path.display()
        ))
    })?;
    let config = dir.join(CONFIG);
    if !config.is_file() {
        let mut settings = Settings::default();
        let vault = args.vault
            || (!args.local && std::env::var_os("VAULT_ADDR").is_some_and(|v| !v.is_empty()));
        if vault {
            settings.store.kind = StoreKind::Vault;
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
            toml::to_string(&settings)
                .map_err(|e| Error::Input(format!("{}: {e}", config.display())))?
        );
        crate::fsutil::write_beneath(&dir, Path::new(CONFIG), text.as_bytes(), 0o644)
            .map_err(|e| Error::read(&config, e))?;
        eprintln!(
            "rumor: wrote {} ({} store)",
            config.display(),
            settings.store.kind
        );
    }
    let templates = if args.profile == "original" {
        ORIGINAL_TEMPLATES
    } else {
        DEFAULT_TEMPLATES
    };
    for (name, text) in templates {
        let path = dir.join("templates").join(name);
        if !path.exists() {
            crate::fsutil::write_beneath(
                &dir,
                &Path::new("templates").join(name),
                text.as_bytes(),
                0o644,
            )
            .map_err(|e| Error::read(&path, e))?;
        }
    }
    add_first_admin(&config, &recipient)?;
    sign_new_store(&dir)?;
    let o = super::open(&dir)?;
    if !o.fleet.settings.admins.recipients.contains(&recipient) {
        eprintln!("rumor: warning: your identity's recipient {recipient} is not in admins.recipients of {}", config.display());
    }
    let _lock = o.handle.lock()?;
    let spec = device::shared_spec(&o.fleet)?;
    let options = Options {
        mode: Mode::Device(Rotation::Nothing),
        identities: o.identities.clone(),
        confined: true,
        provenance: crate::store::Provenance::new("init", "init", None),
        ..Options::run(o.fleet.dir.clone())
    };
    let store = LazyStore::ready(o.handle.clone());
    let outcome = engine::run(
        &spec,
        crate::workspace::Workspace::new(),
        &store,
        &options,
        &mut rand::rngs::OsRng,
    )?;
    if outcome.store_writes.is_empty() {
        eprintln!(
            "rumor: the fleet CAs are in {} already",
            o.fleet.shared_path()
        );
    } else {
        eprintln!(
            "rumor: made the fleet CAs in {} ({})",
            o.fleet.shared_path(),
            o.handle.describe()
        );
    }
    Ok(())
}

/// A local store without a pinned store key gets one, when it holds no
/// entries yet; a store with entries needs `rumor rekey --trust-unsigned`.
fn sign_new_store(dir: &Path) -> Result<(), Error> {
    let mut fleet = Fleet::open(dir)?;
    if fleet.settings.store.kind != StoreKind::Local || fleet.settings.store.signer.is_some() {
        return Ok(());
    }
    let identities = admin_identities(true)?;
    let handle = fleet.store(&identities)?;
    let Some(local) = handle.local() else {
        return Ok(());
    };
    let pin = local.create_signer()?;
    fleet.set_setting("store", "signer", &format!("\"{pin}\""))?;
    crate::admins::record_store_recipients(&fleet)?;
    eprintln!(
        "rumor: made the store key; {} pins it as store.signer",
        fleet.dir.join(CONFIG).display()
    );
    Ok(())
}

/// A fleet checked out without admins (like this repository's example)
/// gets the caller's recipient, edited in place so comments survive.
fn add_first_admin(config: &Path, recipient: &str) -> Result<(), Error> {
    let dir = config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let bytes = crate::fsutil::read_beneath(dir, Path::new(CONFIG), 1 << 20)
        .map_err(|e| Error::read(config, e))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::Input(format!("{}: is not UTF-8 text", config.display())))?;
    let settings: Settings = match toml::from_str(&text) {
        Ok(s) => s,
        Err(_) => return Ok(()), // Fleet::open reports it properly.
    };
    if !settings.admins.recipients.is_empty() {
        return Ok(());
    }
    let Some(line) = text
        .lines()
        .find(|l| l.trim().replace(' ', "") == "recipients=[]")
    else {
        return Ok(());
    };
    let edited = text.replacen(line, &format!("recipients = [\"{recipient}\"]"), 1);
    crate::fsutil::write_beneath(dir, Path::new(CONFIG), edited.as_bytes(), 0o644)
        .map_err(|e| Error::read(config, e))?;
    eprintln!(
        "rumor: added your recipient to admins.recipients in {}",
        config.display()
    );
    Ok(())
}

/// The built-in templates `rumor init` writes.
pub(crate) const DEFAULT_TEMPLATES: &[(&str, &str)] = &[
    (
        "device.spec.toml.j2",
        include_str!("../../templates/device.spec.toml.j2"),
    ),
    (
        "shared.spec.toml.j2",
        include_str!("../../templates/shared.spec.toml.j2"),
    ),
    (
        "postgres-init.sql.j2",
        include_str!("../../templates/postgres-init.sql.j2"),
    ),
    (
        "pidgeon.env.j2",
        include_str!("../../templates/pidgeon.env.j2"),
    ),
    ("wifi.env.j2", include_str!("../../templates/wifi.env.j2")),
];

/// The original tool's profile (`rumor init --profile original`): its
/// workspace names, store layout and device-file keys.
pub(crate) const ORIGINAL_TEMPLATES: &[(&str, &str)] = &[
    (
        "device.spec.toml.j2",
        include_str!("../../examples/original/templates/device.spec.toml.j2"),
    ),
    (
        "shared.spec.toml.j2",
        include_str!("../../examples/original/templates/shared.spec.toml.j2"),
    ),
];
