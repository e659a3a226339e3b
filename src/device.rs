//! Devices: `devices/<id>.toml`, their names and overlay addresses, and the
//! rendering of a device's rumor spec from `templates/device.spec.toml.j2`.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::Error;
use crate::fleet::Fleet;
use crate::nebula::Ipv4Net;
use crate::spec::{self, Format, Spec};

/// The template a device's spec is rendered from.
pub(crate) const SPEC_TEMPLATE: &str = "templates/device.spec.toml.j2";
/// The template of the fleet-shared material's spec.
pub(crate) const SHARED_TEMPLATE: &str = "templates/shared.spec.toml.j2";
/// Addresses handed out, one per line, so none is handed out twice.
pub(crate) const ALLOCATIONS: &str = "devices/.allocations";
/// The Nebula certificate fingerprints of retired devices, as a Nebula
/// config fragment (`pki.blocklist`) a lighthouse can include.
pub(crate) const NEBULA_BLOCKLIST: &str = "revocations/nebula-blocklist.yaml";
/// The certificate revocation list of retired devices' X.509 certificates,
/// signed by the fleet PostgreSQL CA (PEM).
pub(crate) const POSTGRES_CRL: &str = "revocations/postgres.crl";

/// `devices/<id>.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Device {
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Overlay IP address (without prefix).
    pub ip: String,
    /// Nebula groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Share this other device's Wi-Fi credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wifi: Option<String>,
    /// Free variables for templates.
    #[serde(default)]
    pub vars: toml::Table,
    /// Set by `rumor retire`: the device is out of service for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<Retired>,
}

/// When and why a device was retired (`[retired]` in its device file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Retired {
    /// When, as RFC 3339 (UTC).
    pub at: String,
    /// Why, as the operator said it (`rumor retire --reason`).
    #[serde(default)]
    pub reason: String,
}

/// Checks a device id: `[a-z0-9][a-z0-9-]*`, at most 63 characters. Ids
/// become file names, store paths and certificate names, so nothing else
/// (no path, no quote) may get through. A fleet adopted from the original tool
/// (`devices.mixed_case = true`) also takes upper-case letters, as its
/// existing device ids have them.
pub(crate) fn check_id_in(fleet: &Fleet, id: &str) -> Result<(), Error> {
    check(id, fleet.settings.devices.mixed_case)
}

fn check(id: &str, mixed_case: bool) -> Result<(), Error> {
    let letter = |c: char| c.is_ascii_lowercase() || (mixed_case && c.is_ascii_uppercase());
    let ok = !id.is_empty()
        && id.len() <= 63
        && id.starts_with(|c: char| letter(c) || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| letter(c) || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        let shown: String = id.chars().take(80).flat_map(char::escape_default).collect();
        let letters = if mixed_case {
            "letters"
        } else {
            "lowercase letters"
        };
        Err(Error::Input(format!(
            "\"{shown}\" is not a device name; use {letters}, digits and '-', starting with a letter or digit, at most 63 characters"
        )))
    }
}

/// The device file of `id` in a fleet.
pub(crate) fn path(fleet: &Fleet, id: &str) -> PathBuf {
    fleet.dir.join(rel(id))
}

/// The device file of `id`, relative to the fleet.
fn rel(id: &str) -> String {
    format!("devices/{id}.toml")
}

/// Reads a device.
pub(crate) fn load(fleet: &Fleet, id: &str) -> Result<Device, Error> {
    check_id_in(fleet, id)?;
    let path = path(fleet, id);
    let Some(text) = fleet.read_text(&rel(id))? else {
        return Err(Error::Input(format!(
            "unknown device \"{id}\": {} does not exist; create it with `rumor new {id}`",
            path.display()
        )));
    };
    let device: Device = crate::fleet::parse_toml(&path, &text)?;
    validate(fleet, id, &device)?;
    Ok(device)
}

/// Checks a device's fields (address, Wi-Fi peer, groups) as [`load`]
/// does, for a device not written yet.
pub(crate) fn validate(fleet: &Fleet, id: &str, device: &Device) -> Result<(), Error> {
    let path = path(fleet, id);
    let network = fleet.settings.network.nebula;
    let ip: Ipv4Addr = device.ip.parse().map_err(|_| {
        Error::Input(format!(
            "{}: ip \"{}\" is not an IPv4 address",
            path.display(),
            device.ip
        ))
    })?;
    host_address(network, ip).map_err(|why| {
        Error::Input(format!(
            "{}: ip {ip} {why} (network.nebula = {})",
            path.display(),
            fleet.settings.network.nebula
        ))
    })?;
    if let Some(other) = &device.wifi {
        check_id_in(fleet, other)
            .map_err(|e| Error::Input(format!("{}: wifi: {e}", path.display())))?;
        if other == id {
            return Err(Error::Input(format!(
                "{}: wifi names the device itself",
                path.display()
            )));
        }
    }
    for group in &device.groups {
        if group.is_empty()
            || !group
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(Error::Input(format!(
                "{}: group \"{}\" must be letters, digits, '-', '_' or '.'",
                path.display(),
                group.escape_default()
            )));
        }
    }
    Ok(())
}

/// All device ids, sorted.
pub(crate) fn ids(fleet: &Fleet) -> Result<Vec<String>, Error> {
    let dir = fleet.dir.join("devices");
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(&dir, &e)),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(id) = name.strip_suffix(".toml") {
            if check_id_in(fleet, id).is_ok() {
                out.push(id.to_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether `ip` can be a device's address in `network`: inside it, and
/// neither its network, broadcast nor lighthouse (`.1`) address.
pub(crate) fn host_address(network: Ipv4Net, ip: Ipv4Addr) -> Result<(), String> {
    if !network.contains(ip) {
        return Err("is outside the overlay network".into());
    }
    match reserved(network, ip) {
        Some(why) => Err(format!(
            "is {why}; give the device a host address from .2 up"
        )),
        None => Ok(()),
    }
}

/// Why `ip` cannot be a device's address in `network`: the network
/// address, the broadcast address, or `.1`, the lighthouse's.
fn reserved(network: Ipv4Net, ip: Ipv4Addr) -> Option<&'static str> {
    match ip {
        a if a == network.network().addr() => Some("the network address"),
        a if a == network.broadcast() => Some("the broadcast address"),
        a if Some(a) == network.nth_host(1) => Some("the lighthouse's address (.1)"),
        _ => None,
    }
}

/// Who holds each overlay address: every device file's address, and every
/// address the ledger (`devices/.allocations`) ever handed out, with the
/// device it went to. An address stays its device's after the device is
/// removed, so it is never given to another.
pub(crate) fn owners(fleet: &Fleet) -> Result<Owners, Error> {
    let mut owners = Owners::new();
    for id in ids(fleet)? {
        if let Ok(device) = load(fleet, &id) {
            if let Ok(ip) = device.ip.parse() {
                owners.entry(ip).or_default().insert(id);
            }
        }
    }
    add_ledger(fleet, &mut owners)?;
    Ok(owners)
}

/// Who holds each overlay address, by [`owners`].
pub(crate) type Owners = std::collections::BTreeMap<Ipv4Addr, BTreeSet<String>>;

/// Adds the ledger's addresses and devices to `owners`.
fn add_ledger(fleet: &Fleet, owners: &mut Owners) -> Result<(), Error> {
    if let Some(text) = fleet.read_text(ALLOCATIONS)? {
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if let (Some(Ok(ip)), Some(id)) = (words.next().map(str::parse), words.next()) {
                if check_id_in(fleet, id).is_ok() {
                    owners.entry(ip).or_default().insert(id.to_owned());
                }
            }
        }
    }
    Ok(())
}

/// Refuses an address another device holds (see [`owners`]).
pub(crate) fn check_unique(
    fleet: &Fleet,
    id: &str,
    ip: Ipv4Addr,
    owners: &Owners,
) -> Result<(), Error> {
    let others: Vec<&str> = owners
        .get(&ip)
        .into_iter()
        .flatten()
        .filter(|o| *o != id)
        .map(String::as_str)
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    Err(Error::Input(format!(
        "{}: ip {ip} is already {}'s (devices/ or {ALLOCATIONS}); every device needs its own overlay address",
        path(fleet, id).display(),
        others.join("', '")
    )))
}

/// The next free overlay address: above every address ever handed out, so
/// a removed device's address is not given to a new one. `.1` is left for
/// the lighthouse.
///
/// `known` is [`owners`] as the command read it when it opened the fleet;
/// the ledger is read again here, under [`lock_devices`], since another
/// run may have created devices since (it writes the ledger before their
/// files, under the same lock). The device files are not scanned again.
pub(crate) fn allocate(
    fleet: &Fleet,
    known: &Owners,
    also_taken: &BTreeSet<Ipv4Addr>,
) -> Result<Ipv4Addr, Error> {
    let network = fleet.settings.network.nebula;
    let mut taken = known.clone();
    add_ledger(fleet, &mut taken)?;
    let taken = taken.into_keys();
    // A /8 to /30 has hosts .1 and .2 at least.
    let first = network.nth_host(2).map_or(0, u32::from);
    let last = network.last_host().map_or(0, u32::from);
    let next = taken
        .chain(also_taken.iter().copied())
        .map(|ip| u32::from(ip) + 1)
        .max()
        .unwrap_or(first)
        .max(first);
    if next > last {
        return Err(Error::Input(format!(
            "the overlay network {} is full; widen network.nebula in rumor.toml",
            fleet.settings.network.nebula
        )));
    }
    Ok(Ipv4Addr::from(next))
}

/// Holds an exclusive lock on the `devices/` directory while devices are
/// created, so two operators never create the same device twice or hand
/// out one address twice (Vault has no fleet-wide lock; the local store's
/// lock covers the store, not the directory). Released on drop.
pub(crate) fn lock_devices(fleet: &Fleet) -> Result<std::fs::File, Error> {
    use fs4::fs_std::FileExt;
    let dir = fleet.dir.join("devices");
    let handle = std::fs::File::from(
        crate::fsutil::dir_beneath(&fleet.dir, Path::new("devices"), 0o755)
            .map_err(|e| Error::read(&dir, e))?,
    );
    handle.lock_exclusive().map_err(|e| Error::io(&dir, &e))?;
    Ok(handle)
}

/// Records allocations in `devices/.allocations`, in one write of the
/// ledger (none when `lines` is empty).
pub(crate) fn record_allocations(fleet: &Fleet, lines: &[(Ipv4Addr, &str)]) -> Result<(), Error> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut text = fleet.read_text(ALLOCATIONS)?.unwrap_or_default();
    for (ip, id) in lines {
        text.push_str(&format!("{ip} {id}\n"));
    }
    fleet.write(ALLOCATIONS, text.as_bytes(), 0o644)?;
    Ok(())
}

/// Writes a device file (0644: it holds no secret).
pub(crate) fn save(fleet: &Fleet, id: &str, device: &Device) -> Result<(), Error> {
    let text = toml::to_string(device)
        .map_err(|e| Error::Input(format!("{}: {e}", path(fleet, id).display())))?;
    fleet.write(&rel(id), text.as_bytes(), 0o644)?;
    Ok(())
}

/// The variables every fleet template sees.
fn fleet_context(fleet: &Fleet) -> serde_json::Value {
    let s = &fleet.settings;
    let network = s.network.nebula;
    let host = |h: Option<Ipv4Addr>| h.map(|h| h.to_string()).unwrap_or_default();
    json!({
        "store": { "mount": s.store.mount, "prefix": s.store.prefix, "base": fleet.base(), "shared": fleet.shared_path() },
        "admins": s.admins.recipients,
        "network": { "cidr": network.to_string(), "prefix": network.prefix(), "first": host(network.nth_host(1)), "last": host(network.last_host()) },
        "cloud": { "domain": s.cloud.domain },
    })
}

/// Renders a spec template; returns the spec and its text (for
/// `rumor spec`).
fn render_spec(
    fleet: &Fleet,
    template: &str,
    context: &serde_json::Value,
) -> Result<(Spec, String), Error> {
    let path = fleet.dir.join(template);
    let text = fleet
        .read_text(template)?
        .ok_or_else(|| Error::io(&path, &std::io::Error::from(std::io::ErrorKind::NotFound)))?;
    let env = fleet.specs.environment(template, &text)?;
    let rendered = render(&env, template, context)?;
    let mut spec = spec::parse(&rendered, Format::Toml, &format!("{template} (rendered)"))?;
    crate::engine::load_templates(&mut spec, &fleet.dir)?;
    Ok((spec, rendered))
}

/// Renders a device's spec.
pub(crate) fn spec(fleet: &Fleet, id: &str, device: &Device) -> Result<(Spec, String), Error> {
    let mut context = fleet_context(fleet);
    let prefix = fleet.settings.network.nebula.prefix();
    context["device"] = json!({
        "id": id,
        "name": if device.name.is_empty() { id } else { device.name.as_str() },
        "ip": device.ip,
        "cidr": format!("{}/{prefix}", device.ip),
        "groups": device.groups,
        "wifi": device.wifi,
        "vars": device.vars,
        "path": fleet.device_path(id),
        "wifi_path": device.wifi.as_ref().map(|w| fleet.device_path(w)),
        "output": fleet.output(id),
    });
    render_spec(fleet, SPEC_TEMPLATE, &context)
}

/// Renders the shared material's spec.
pub(crate) fn shared_spec(fleet: &Fleet) -> Result<Spec, Error> {
    render_spec(fleet, SHARED_TEMPLATE, &fleet_context(fleet)).map(|(spec, _)| spec)
}

/// Renders a spec template. Besides the escaping filters of
/// [`crate::template`], spec templates get `toml`, which writes any value as
/// a TOML value (a JSON string is a valid TOML basic string), so a device
/// field cannot break out of the spec.
pub fn render_text(text: &str, name: &str, context: &serde_json::Value) -> Result<String, Error> {
    render(&spec_environment(name, text)?, name, context)
}

fn render(
    env: &minijinja::Environment<'static>,
    name: &str,
    context: &serde_json::Value,
) -> Result<String, Error> {
    env.get_template(name)
        .and_then(|t| t.render(context))
        .map_err(|e| template_error(name, &e))
}

/// An environment holding the spec template `text`, compiled, as `name`.
fn spec_environment(name: &str, text: &str) -> Result<minijinja::Environment<'static>, Error> {
    let mut env = crate::template::environment();
    env.add_filter(
        "toml",
        |value: minijinja::Value| -> Result<String, minijinja::Error> {
            let json = serde_json::to_value(&value).map_err(|e| {
                minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
            })?;
            if json.is_null() {
                return Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    "cannot write an undefined or null value into TOML",
                ));
            }
            // JSON leaves DEL raw, which TOML forbids in strings; `\u007f` means
            // the same in both (found by fuzz/fuzz_targets/template.rs).
            serde_json::to_string(&json)
                .map(|text| text.replace('\u{7f}', "\\u007f"))
                .map_err(|e| {
                    minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
                })
        },
    );
    env.add_template_owned(name.to_owned(), text.to_owned())
        .map_err(|e| template_error(name, &e))?;
    Ok(env)
}

/// The spec templates a fleet command has compiled, by name, with the text
/// each was compiled from: its devices render the same template, so it is
/// compiled once, and again only if the file's text changed.
#[derive(Default)]
pub(crate) struct SpecTemplates(
    Mutex<HashMap<String, (String, Arc<minijinja::Environment<'static>>)>>,
);

impl SpecTemplates {
    fn environment(
        &self,
        name: &str,
        text: &str,
    ) -> Result<Arc<minijinja::Environment<'static>>, Error> {
        let mut known = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((seen, env)) = known.get(name) {
            if seen == text {
                return Ok(Arc::clone(env));
            }
        }
        let env = Arc::new(spec_environment(name, text)?);
        known.insert(name.to_owned(), (text.to_owned(), Arc::clone(&env)));
        Ok(env)
    }
}

fn template_error(name: &str, e: &minijinja::Error) -> Error {
    let line = e.line().map(|l| format!(":{l}")).unwrap_or_default();
    let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
    Error::Input(format!("{name}{line}: {}{detail}", e.kind()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_template_is_compiled_once_per_text() {
        let specs = SpecTemplates::default();
        let cx = json!({ "device": { "id": "a\"b" } });
        let first = specs
            .environment("t.j2", "id = {{ device.id | toml }}\n")
            .unwrap();
        let again = specs
            .environment("t.j2", "id = {{ device.id | toml }}\n")
            .unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(render(&again, "t.j2", &cx).unwrap(), "id = \"a\\\"b\"\n");
        // The file changed under the run: the new text is what renders.
        let changed = specs
            .environment("t.j2", "name = {{ device.id | toml }}\n")
            .unwrap();
        assert!(!Arc::ptr_eq(&first, &changed));
        assert_eq!(
            render(&changed, "t.j2", &cx).unwrap(),
            "name = \"a\\\"b\"\n"
        );
        // A template that does not compile is an error naming it, not cached.
        let bad = specs
            .environment("t.j2", "{% if %}")
            .map(|_| ())
            .unwrap_err();
        assert!(bad.to_string().contains("t.j2"), "{bad}");
        assert!(Arc::ptr_eq(
            &changed,
            &specs
                .environment("t.j2", "name = {{ device.id | toml }}\n")
                .unwrap()
        ));
    }

    #[test]
    fn ids() {
        for good in ["pidgeon-1", "a", "0abc", &"a".repeat(63)] {
            assert!(check(good, false).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            "A",
            "a/b",
            "../x",
            "a b",
            "a\"b",
            "a'b",
            &"a".repeat(64),
            "é",
        ] {
            let e = check(bad, false).unwrap_err().to_string();
            assert!(e.contains("is not a device name"), "{e}");
        }
    }
}
