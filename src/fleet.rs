//! A fleet: the directory holding `rumor.toml`, `devices/`, `templates/`
//! and `secrets/`, and the store it is configured to use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::nebula::Ipv4Net;
use crate::store::local::LocalStore;
use crate::store::vault::{Vault, VaultConfig};
use crate::store::{Data, Provenance, Store, StoreError, Versioned};

/// The settings file's name.
pub(crate) const CONFIG: &str = "rumor.toml";

/// `rumor.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    /// Where secrets are kept.
    #[serde(default)]
    pub store: StoreSettings,
    /// Who can read everything.
    #[serde(default)]
    pub admins: Admins,
    /// The Nebula overlay.
    #[serde(default)]
    pub network: Network,
    /// The cloud service the meter daemon reports to.
    #[serde(default)]
    pub cloud: Cloud,
    /// Where device files go.
    #[serde(default)]
    pub output: Output,
    /// The image step.
    #[serde(default)]
    pub image: Image,
    /// Device ids.
    #[serde(default)]
    pub devices: Devices,
}

/// `[devices]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Devices {
    /// Accept upper-case letters in device ids, as fleets adopted from the
    /// original tool have them (`rumor adopt` sets it when they do).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mixed_case: bool,
}

/// `[store]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreSettings {
    /// `local` (the embedded store) or `vault`.
    #[serde(default)]
    pub kind: StoreKind,
    /// Local store directory, relative to the fleet.
    #[serde(default = "default_store_path")]
    pub path: String,
    /// Vault address; `VAULT_ADDR` wins when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The KV v2 mount.
    #[serde(default = "default_mount")]
    pub mount: String,
    /// The path prefix under the mount.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Where a device's secrets live, `{device}` standing for its id
    /// (default `<mount>/<prefix>/devices/{device}`); an adopted fleet
    /// keeps its own, e.g. `kv/ozds/pidgeon/{device}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<String>,
    /// Where the fleet-shared material (the CAs) lives (default
    /// `<mount>/<prefix>/shared`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<String>,
    /// The public half of the local store's signing key, `ed25519:…`:
    /// only entries it verifies are believed. `rumor init` sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
}

/// Which store a fleet uses: `store.kind`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StoreKind {
    /// The embedded store under `store.path`.
    #[default]
    Local,
    /// OpenBao or Vault.
    Vault,
}

impl StoreKind {
    /// The name `rumor.toml` spells it with.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StoreKind::Local => "local",
            StoreKind::Vault => "vault",
        }
    }
}

impl std::fmt::Display for StoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for StoreKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "local" => Ok(StoreKind::Local),
            "vault" => Ok(StoreKind::Vault),
            _ => Err(serde::de::Error::custom(format!(
                "store.kind is \"{}\"; use \"local\" or \"vault\"",
                s.escape_default()
            ))),
        }
    }
}

/// `[admins]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Admins {
    /// age recipients that can open every device file and the local store.
    #[serde(default)]
    pub recipients: Vec<String>,
}

/// `[network]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Network {
    /// The Nebula overlay network in CIDR form, /8 to /30.
    #[serde(default = "default_overlay", with = "overlay")]
    pub nebula: Ipv4Net,
}

/// `network.nebula` as `rumor.toml` writes it: CIDR text, checked when read.
mod overlay {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    use crate::nebula::Ipv4Net;

    pub(super) fn serialize<S: Serializer>(net: &Ipv4Net, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(net)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ipv4Net, D::Error> {
        let text = String::deserialize(d)?;
        let net: Ipv4Net = text.parse().map_err(|_| {
            D::Error::custom(format!(
                "network.nebula \"{text}\" is not an IPv4 network like 10.8.0.0/16"
            ))
        })?;
        if !(8..=30).contains(&net.prefix()) {
            return Err(D::Error::custom(format!(
                "network.nebula \"{text}\" needs a prefix from /8 to /30"
            )));
        }
        Ok(net)
    }
}

/// `[cloud]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Cloud {
    /// The cloud service's domain.
    #[serde(default = "default_domain")]
    pub domain: String,
}

/// `[output]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Output {
    /// The device file path; `{device}` is replaced by the device id.
    #[serde(default = "default_devices")]
    pub devices: String,
}

/// `[image]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Image {
    /// Where `rumor inject` writes the device's age key in the image.
    #[serde(default = "default_key_path")]
    pub key_path: String,
}

fn default_store_path() -> String {
    "store".into()
}
fn default_mount() -> String {
    "secret".into()
}
fn default_prefix() -> String {
    "rumor".into()
}
fn default_overlay() -> Ipv4Net {
    const OVERLAY: Ipv4Net = Ipv4Net::constant(std::net::Ipv4Addr::new(10, 8, 0, 0), 16);
    OVERLAY
}
fn default_domain() -> String {
    "cloud.example.com".into()
}
fn default_devices() -> String {
    "secrets/{device}.yaml".into()
}
fn default_key_path() -> String {
    "/root/host.scrt.key".into()
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            kind: StoreKind::default(),
            path: default_store_path(),
            address: None,
            mount: default_mount(),
            prefix: default_prefix(),
            devices: None,
            shared: None,
            signer: None,
        }
    }
}
impl Default for Network {
    fn default() -> Self {
        Network {
            nebula: default_overlay(),
        }
    }
}
impl Default for Cloud {
    fn default() -> Self {
        Cloud {
            domain: default_domain(),
        }
    }
}
impl Default for Output {
    fn default() -> Self {
        Output {
            devices: default_devices(),
        }
    }
}
impl Default for Image {
    fn default() -> Self {
        Image {
            key_path: default_key_path(),
        }
    }
}

/// Parses a TOML settings file; errors name the file and line.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, Error> {
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start].matches('\n').count() + 1)
            .map(|l| format!(":{l}"))
            .unwrap_or_default();
        Error::Input(format!(
            "{}{line}: {}",
            path.display(),
            crate::spec::toml_message(text, &e)
        ))
    })
}

/// How many more `[` than `]` a TOML line opens, outside strings and
/// comments: an array value spans lines until this sums to zero.
fn open_brackets(line: &str) -> i64 {
    let mut depth = 0;
    let mut quote = None;
    let mut escaped = false;
    for c in line.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q == '"' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' => quote = Some(c),
                '#' => break,
                '[' => depth += 1,
                ']' => depth -= 1,
                _ => {}
            },
        }
    }
    depth
}

/// `text` with `key = value` set in `[section]`: the key's line replaced
/// (with the continuation lines of a multi-line array), or added after the
/// section header, or the section appended.
fn set_in_toml(text: &str, section: &str, key: &str, value: &str) -> String {
    let line = format!("{key} = {value}");
    let mut out: Vec<String> = Vec::new();
    let mut in_section = false;
    let mut done = false;
    let mut header_at = None;
    // Open brackets of the value being replaced, whose lines are dropped.
    let mut replacing = 0;
    for l in text.lines() {
        let t = l.trim();
        if replacing > 0 {
            replacing += open_brackets(l);
            continue;
        }
        if in_section && !done && t.split('=').next().is_some_and(|k| k.trim() == key) {
            out.push(line.clone());
            done = true;
            replacing = open_brackets(l.split_once('=').map_or("", |(_, v)| v));
            continue;
        }
        if t.starts_with('[') {
            in_section = t == format!("[{section}]");
            if in_section {
                header_at = Some(out.len());
            }
        }
        out.push(l.to_owned());
    }
    if !done {
        match header_at {
            Some(at) => out.insert(at + 1, line),
            None => {
                out.push(String::new());
                out.push(format!("[{section}]"));
                out.push(line);
            }
        }
    }
    let mut joined = out.join("\n");
    joined.push('\n');
    joined
}

/// An opened fleet directory.
pub(crate) struct Fleet {
    /// The fleet directory.
    pub dir: PathBuf,
    /// Its settings.
    pub settings: Settings,
    /// The spec templates compiled so far.
    pub(crate) specs: crate::device::SpecTemplates,
}

impl Fleet {
    /// Opens the fleet in `dir` (which must hold `rumor.toml`).
    pub(crate) fn open(dir: &Path) -> Result<Fleet, Error> {
        let path = dir.join(CONFIG);
        let bytes = match crate::fsutil::read_beneath(dir, Path::new(CONFIG), 1 << 20) {
            Ok(b) => b,
            Err(crate::fsutil::ReadError::Missing) => {
                return Err(Error::Input(format!(
                "{}: not found; run `rumor init` first, or -C/--fleet DIR to point at the fleet",
                path.display()
            )))
            }
            Err(e) => return Err(Error::read(&path, e)),
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::Input(format!("{}: is not UTF-8 text", path.display())))?;
        let settings: Settings = parse_toml(&path, &text)?;
        let fleet = Fleet {
            dir: dir.to_path_buf(),
            settings,
            specs: Default::default(),
        };
        fleet.check()?;
        Ok(fleet)
    }

    fn check(&self) -> Result<(), Error> {
        let s = &self.settings;
        let bad = |field: &str, why: String| {
            Error::Input(format!(
                "{}: {field} {why}",
                self.dir.join(CONFIG).display()
            ))
        };
        let store_path = |field: &str, value: &str| {
            let ok = crate::store::split_mount(value).is_ok()
                && value.trim_matches('/').split('/').all(|p| {
                    let p = p.replace("{device}", "x");
                    !p.is_empty()
                        && !p.starts_with('.')
                        && p.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                });
            if ok {
                Ok(())
            } else {
                Err(bad(field, format!("\"{}\" must be a store path <mount>/<path> of letters, digits, '.', '_' and '-'", value.escape_default())))
            }
        };
        if let Some(devices) = &s.store.devices {
            store_path("store.devices", devices)?;
            if devices.matches("{device}").count() != 1 {
                return Err(bad("store.devices", "must contain {device} once".into()));
            }
        }
        if let Some(shared) = &s.store.shared {
            store_path("store.shared", shared)?;
            if shared.contains('{') {
                return Err(bad(
                    "store.shared",
                    "is one path for the whole fleet; it takes no {device}".into(),
                ));
            }
        }
        for (field, value) in [
            ("store.mount", &s.store.mount),
            ("store.prefix", &s.store.prefix),
        ] {
            let ok = !value.is_empty()
                && value.split('/').all(|p| {
                    !p.is_empty()
                        && p != ".."
                        && p.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                });
            if !ok {
                return Err(bad(
                    field,
                    format!(
                        "\"{value}\" must be path segments of letters, digits, '.', '_' and '-'"
                    ),
                ));
            }
        }
        if let Some(pin) = &s.store.signer {
            crate::store::local::parse_pin(pin).ok_or_else(|| {
                bad(
                    "store.signer",
                    format!(
                        "\"{}\" is not a store key pin (ed25519:<base64 of 32 bytes>)",
                        pin.escape_default()
                    ),
                )
            })?;
        }
        for r in &s.admins.recipients {
            // A plugin recipient needs its plugin on every admin's machine:
            // every device file is encrypted to it.
            r.parse::<crate::identity::Recipient>()
                .and_then(|r| r.check_plugin())
                .map_err(|e| bad("admins.recipients", format!("has \"{r}\": {e}")))?;
        }
        if !s.output.devices.contains("{device}") {
            return Err(bad("output.devices", "must contain {device}".into()));
        }
        // Everything rumor writes stays inside the fleet directory.
        for (field, value) in [
            ("output.devices", s.output.devices.as_str()),
            ("store.path", s.store.path.as_str()),
        ] {
            if !crate::fsutil::is_plain_relative(Path::new(value))
                || value.chars().any(char::is_control)
            {
                return Err(bad(
                    field,
                    format!(
                        "\"{}\" must be a relative path inside the fleet, without '..'",
                        value.escape_default()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Reads the fleet file `rel` (a regular file inside the fleet, never
    /// through a symlink out of it, at most [`crate::fsutil::MAX_READ`]
    /// bytes); `None` when it does not exist.
    pub(crate) fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, Error> {
        match crate::fsutil::read_beneath(&self.dir, Path::new(rel), crate::fsutil::MAX_READ) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(crate::fsutil::ReadError::Missing) => Ok(None),
            Err(e) => Err(Error::read(&self.dir.join(rel), e)),
        }
    }

    /// [`Fleet::read`] as UTF-8 text.
    pub(crate) fn read_text(&self, rel: &str) -> Result<Option<String>, Error> {
        match self.read(rel)? {
            Some(bytes) => String::from_utf8(bytes).map(Some).map_err(|_| {
                Error::Input(format!(
                    "{}: is not UTF-8 text",
                    self.dir.join(rel).display()
                ))
            }),
            None => Ok(None),
        }
    }

    /// Writes the fleet file `rel` atomically with `mode`, never leaving
    /// the fleet directory; false when it already held these bytes.
    pub(crate) fn write(&self, rel: &str, content: &[u8], mode: u32) -> Result<bool, Error> {
        crate::fsutil::write_beneath(&self.dir, Path::new(rel), content, mode)
            .map_err(|e| Error::read(&self.dir.join(rel), e))
    }

    /// Sets `key = value` (a TOML value) in `[section]` of rumor.toml,
    /// editing the file in place so comments survive.
    pub(crate) fn set_setting(
        &mut self,
        section: &str,
        key: &str,
        value: &str,
    ) -> Result<(), Error> {
        let text = self.read_text(CONFIG)?.unwrap_or_default();
        let edited = set_in_toml(&text, section, key, value);
        let _: Settings = parse_toml(&self.dir.join(CONFIG), &edited)?;
        self.write(CONFIG, edited.as_bytes(), 0o644)?;
        self.settings = parse_toml(&self.dir.join(CONFIG), &edited)?;
        Ok(())
    }

    /// The admin recipients.
    pub(crate) fn recipients(&self) -> Vec<crate::identity::Recipient> {
        self.settings
            .admins
            .recipients
            .iter()
            .filter_map(|r| r.parse().ok())
            .collect()
    }

    /// `<mount>/<prefix>`, the root of the fleet's store paths.
    pub(crate) fn base(&self) -> String {
        format!(
            "{}/{}",
            self.settings.store.mount, self.settings.store.prefix
        )
    }

    /// The store path of a device.
    pub(crate) fn device_path(&self, id: &str) -> String {
        match &self.settings.store.devices {
            Some(pattern) => pattern.trim_matches('/').replace("{device}", id),
            None => format!("{}/devices/{id}", self.base()),
        }
    }

    /// The store path of the fleet-shared material.
    pub(crate) fn shared_path(&self) -> String {
        match &self.settings.store.shared {
            Some(path) => path.trim_matches('/').to_owned(),
            None => format!("{}/shared", self.base()),
        }
    }

    /// The logical path every device spec imports: the live shared set.
    fn shared_current(&self) -> String {
        format!("{}/current", self.shared_path())
    }

    /// The device file of a device, relative to the fleet.
    pub(crate) fn output(&self, id: &str) -> String {
        self.settings.output.devices.replace("{device}", id)
    }

    /// Opens the configured store.
    pub(crate) fn store(
        &self,
        identities: &[crate::identity::Identity],
    ) -> Result<Arc<dyn StoreHandle>, Error> {
        match self.settings.store.kind {
            StoreKind::Vault => {
                // VAULT_ADDR wins; rumor.toml's address is the fallback.
                let fallback = self.settings.store.address.clone();
                let home = std::env::var_os("HOME").map(PathBuf::from);
                let config = VaultConfig::from_vars(
                    |name| {
                        std::env::var(name).ok().or_else(|| {
                            if name == "VAULT_ADDR" {
                                fallback.clone()
                            } else {
                                None
                            }
                        })
                    },
                    home.as_deref(),
                )?;
                Ok(Arc::new(Memo::new(
                    Vault::connect(&config)?,
                    self.shared_current(),
                )))
            }
            StoreKind::Local => {
                if self.recipients().is_empty() {
                    return Err(Error::Input(format!("{}: admins.recipients is empty; the local store needs someone to encrypt to", self.dir.join(CONFIG).display())));
                }
                let dir = self.dir.join(&self.settings.store.path);
                let pin = self
                    .settings
                    .store
                    .signer
                    .as_deref()
                    .and_then(crate::store::local::parse_pin);
                let store = LocalStore::open(dir, self.recipients(), identities.to_vec(), pin)?;
                Ok(Arc::new(Memo::new(store, self.shared_current())))
            }
        }
    }
}

/// A store with the extras fleet commands need. It is a [`Store`] itself,
/// so the engine takes it as one.
pub(crate) trait StoreHandle: Store {
    /// Holds the store's lock for a whole run, where it has one.
    fn lock(&self) -> Result<Option<crate::store::local::LockGuard>, StoreError>;
    /// The embedded store, when that is what this is.
    fn local(&self) -> Option<&LocalStore> {
        None
    }
    /// What the run's requests went through (Vault only).
    fn retries(&self) -> Option<crate::store::vault::Retries> {
        None
    }
    /// Whether the store failed in a way every further request would
    /// meet, so a fleet run should start no more devices.
    fn halted(&self) -> bool {
        false
    }
}

impl StoreHandle for Memo<Vault> {
    fn lock(&self) -> Result<Option<crate::store::local::LockGuard>, StoreError> {
        Ok(None)
    }
    fn retries(&self) -> Option<crate::store::vault::Retries> {
        Some(self.inner.retries())
    }
    fn halted(&self) -> bool {
        self.inner.halted()
    }
}

impl StoreHandle for Memo<LocalStore> {
    fn lock(&self) -> Result<Option<crate::store::local::LockGuard>, StoreError> {
        self.inner.lock().map(Some)
    }
    fn local(&self) -> Option<&LocalStore> {
        Some(&self.inner)
    }
}

/// A store that reads one path at most once per run: the fleet-shared
/// set, which every device spec imports and no device spec writes. For a
/// fleet run of N devices that saves N - 1 round trips. A write through
/// this store to that path (`rumor init`) drops the memo, so a run still
/// reads its own writes; another process's change made during the run is
/// seen by the next run, as with any read made at the start of a run.
/// `rumor check` also wraps the handle in one for each device, so that the
/// recipients' check and the dry run share one read of its set.
pub(crate) struct Memo<S> {
    inner: S,
    path: String,
    /// `None`: not read yet; `Some(None)`: read, and absent.
    cell: Mutex<Option<Option<(Data, u64)>>>,
}

impl<S: Store> Memo<S> {
    /// `inner`, reading `path` at most once.
    pub(crate) fn new(inner: S, path: String) -> Memo<S> {
        Memo {
            inner,
            path,
            cell: Mutex::new(None),
        }
    }

    fn is_memoized(&self, path: &str) -> bool {
        path.trim_matches('/') == self.path
    }
}

impl<S: Store> Store for Memo<S> {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn read(&self, path: &str) -> Result<Option<Versioned>, StoreError> {
        if !self.is_memoized(path) {
            return self.inner.read(path);
        }
        // Held across the read, so concurrent devices wait for the one
        // round trip instead of all making it.
        let Ok(mut cell) = self.cell.lock() else {
            return self.inner.read(path);
        };
        if cell.is_none() {
            *cell = Some(self.inner.read(path)?.map(|v| (v.data, v.version)));
        }
        Ok(cell
            .as_ref()
            .and_then(|c| c.as_ref())
            .map(|(data, version)| Versioned {
                data: data.clone(),
                version: *version,
                provenance: None,
            }))
    }

    fn write(&self, path: &str, data: &Data, cas: Option<u64>) -> Result<(), StoreError> {
        if self.is_memoized(path) {
            if let Ok(mut cell) = self.cell.lock() {
                *cell = None;
            }
        }
        self.inner.write(path, data, cas)
    }

    fn list(&self, path: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(path)
    }

    fn write_with(
        &self,
        path: &str,
        data: &Data,
        cas: Option<u64>,
        provenance: &Provenance,
    ) -> Result<(), StoreError> {
        if self.is_memoized(path) {
            if let Ok(mut cell) = self.cell.lock() {
                *cell = None;
            }
        }
        self.inner.write_with(path, data, cas, provenance)
    }

    fn operator(&self) -> String {
        self.inner.operator()
    }

    fn operator_unknown(&self) -> bool {
        self.inner.operator_unknown()
    }

    fn holds(&self, path: &str) -> bool {
        // A read in flight holds the lock: not in memory yet.
        (self.is_memoized(path) && matches!(self.cell.try_lock(), Ok(cell) if cell.is_some()))
            || self.inner.holds(path)
    }

    fn remove(&self, path: &str) -> Result<(), StoreError> {
        if self.is_memoized(path) {
            if let Ok(mut cell) = self.cell.lock() {
                *cell = None;
            }
        }
        self.inner.remove(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memo_holds_its_path_once_read_and_until_written() {
        let dir = tempfile::tempdir().unwrap();
        let admin = age::x25519::Identity::generate();
        let store = LocalStore::open(
            dir.path().join("store"),
            vec![admin.to_public().into()],
            vec![admin.into()],
            None,
        )
        .unwrap();
        let shared = "secret/fleet/shared/current";
        let memo = Memo::new(store, shared.to_owned());
        assert!(!memo.holds(shared), "not read yet");
        assert!(memo.read(shared).unwrap().is_none());
        assert!(memo.holds(shared));
        assert!(memo.holds("/secret/fleet/shared/current/"));
        assert!(!memo.holds("secret/fleet/devices/a/current"));
        let _ = memo.write(shared, &Data::new(), None);
        assert!(!memo.holds(shared), "a write drops what was held");
    }

    #[test]
    fn settings_parse_kind_and_overlay() {
        let parse = |text: &str| parse_toml::<Settings>(Path::new("rumor.toml"), text);
        let s = parse("[network]\nnebula = \"10.8.1.7/16\"\n").unwrap();
        assert_eq!(s.store.kind, StoreKind::Local);
        assert_eq!(s.network.nebula.to_string(), "10.8.1.7/16");
        assert_eq!(
            s.network.nebula.network().addr(),
            std::net::Ipv4Addr::new(10, 8, 0, 0)
        );
        assert!(toml::to_string(&s)
            .unwrap()
            .contains("nebula = \"10.8.1.7/16\""));
        let err = |text: &str| parse(text).unwrap_err().to_string();
        assert_eq!(
            err("[store]\nkind = \"foo\"\n"),
            "rumor.toml:2: store.kind is \"foo\"; use \"local\" or \"vault\""
        );
        assert_eq!(
            err("[network]\nnebula = \"10.8.0.0\"\n"),
            "rumor.toml:2: network.nebula \"10.8.0.0\" is not an IPv4 network like 10.8.0.0/16"
        );
        assert_eq!(
            err("[network]\nnebula = \"10.8.0.0/31\"\n"),
            "rumor.toml:2: network.nebula \"10.8.0.0/31\" needs a prefix from /8 to /30"
        );
    }

    #[test]
    fn set_in_toml_replaces_lists_over_lines() {
        let text = "# top\n[admins]\n# who\nrecipients = [\n  \"a\", # first\n  \"b]\",\n]\n\n[store]\nkind = \"local\"\n";
        let edited = set_in_toml(text, "admins", "recipients", "[\"c\"]");
        assert_eq!(
            edited,
            "# top\n[admins]\n# who\nrecipients = [\"c\"]\n\n[store]\nkind = \"local\"\n"
        );
        assert_eq!(
            set_in_toml(
                "[admins]\nrecipients = [\"a\"]\n",
                "admins",
                "recipients",
                "[]"
            ),
            "[admins]\nrecipients = []\n"
        );
        assert_eq!(
            set_in_toml("[store]\n", "admins", "recipients", "[]"),
            "[store]\n\n[admins]\nrecipients = []\n"
        );
    }
}
