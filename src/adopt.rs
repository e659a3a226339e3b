//! Adopting a fleet that the original tool provisioned: its device list
//! (a JSON array of `{id, ip, name, wifi}`, as the pidgeon fleet keeps in
//! `assets/pidgeon/pidgeons.json`) becomes `devices/<id>.toml`, with every
//! existing address in the ledger, so rumor's fleet commands take over
//! without rotating anything.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;

use serde::Deserialize;

use crate::device::{self, Device};
use crate::error::Error;
use crate::fleet::Fleet;

/// One entry of the list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Listed {
    id: String,
    ip: String,
    #[serde(default)]
    name: Option<String>,
    /// The device whose Wi-Fi credentials this one shares; its own id
    /// means its own.
    #[serde(default)]
    wifi: Option<String>,
}

/// What [`adopt`] did.
pub(crate) struct Adopted {
    /// Device files written.
    pub created: Vec<String>,
    /// Devices already there with the same address.
    pub unchanged: Vec<String>,
    /// Whether device ids with upper-case letters made the fleet accept
    /// them (`devices.mixed_case`).
    pub mixed_case: bool,
}

/// Reads a device list and writes its devices into `fleet`. Every entry is
/// checked before anything is written, so a bad list changes nothing.
pub(crate) fn adopt(fleet: &mut Fleet, list: &Path, groups: &[String]) -> Result<Adopted, Error> {
    let shown = list.display().to_string();
    let bytes = crate::fsutil::read_regular(list, crate::fsutil::MAX_READ)
        .map_err(|e| Error::read(list, e))?;
    let entries: Vec<Listed> = serde_json::from_slice(&bytes).map_err(|e| {
        // serde_json names the field and place; it quotes no value but a
        // field name or type, which is not secret here.
        Error::Input(format!(
            "{shown}:{}: {}",
            e.line(),
            e.to_string().split(" at line").next().unwrap_or_default()
        ))
    })?;
    let mixed_case = entries
        .iter()
        .any(|e| e.id.chars().any(|c| c.is_ascii_uppercase()));
    if mixed_case && !fleet.settings.devices.mixed_case {
        fleet.settings.devices.mixed_case = true;
    }
    let network = fleet.settings.network.nebula;
    let owners = device::owners(fleet)?;
    let ids: BTreeSet<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    let mut seen_ids = BTreeSet::new();
    let mut seen_ips: BTreeMap<Ipv4Addr, &str> = BTreeMap::new();
    let mut planned = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let at = |field: &str, why: String| {
            Error::Input(format!(
                "{shown}: [{i}] (\"{}\") {field}: {why}",
                e.id.escape_default()
            ))
        };
        device::check_id_in(fleet, &e.id).map_err(|err| at("id", err.to_string()))?;
        if !seen_ids.insert(e.id.as_str()) {
            return Err(at("id", "appears twice in the list".into()));
        }
        let ip: Ipv4Addr = e.ip.parse().map_err(|_| {
            at(
                "ip",
                format!("\"{}\" is not an IPv4 address", e.ip.escape_default()),
            )
        })?;
        if let Some(other) = seen_ips.insert(ip, &e.id) {
            return Err(at("ip", format!("{ip} is also \"{other}\"'s in the list")));
        }
        if let Err(why) = device::host_address(network, ip) {
            return Err(at(
                "ip",
                format!(
                    "{ip} {why} (network.nebula = {})",
                    fleet.settings.network.nebula
                ),
            ));
        }
        if let Some(holders) = owners.get(&ip).filter(|h| h.iter().any(|h| h != &e.id)) {
            let holders: Vec<&str> = holders.iter().map(String::as_str).collect();
            return Err(at(
                "ip",
                format!("{ip} is already {}'s in this fleet", holders.join("', '")),
            ));
        }
        let wifi = e.wifi.as_deref().filter(|w| *w != e.id);
        if let Some(w) = wifi {
            if !ids.contains(w) && device::load(fleet, w).is_err() {
                return Err(at(
                    "wifi",
                    format!(
                        "\"{}\" is neither in the list nor a device of this fleet",
                        w.escape_default()
                    ),
                ));
            }
        }
        let name = e.name.clone().unwrap_or_default();
        if name.chars().any(char::is_control) {
            return Err(at("name", "contains a control character".into()));
        }
        let wanted = Device {
            name,
            ip: ip.to_string(),
            groups: groups.to_vec(),
            wifi: wifi.map(str::to_owned),
            vars: Default::default(),
            retired: None,
        };
        match fleet.read_text(&format!("devices/{}.toml", e.id))? {
            Some(_) => {
                let have = device::load(fleet, &e.id)?;
                if have.ip != wanted.ip || have.wifi != wanted.wifi {
                    return Err(at("ip", format!("devices/{}.toml exists with ip {} and wifi {:?}; the list says {} and {:?}", e.id, have.ip, have.wifi, wanted.ip, wanted.wifi)));
                }
                planned.push((e.id.clone(), ip, None));
            }
            None => planned.push((e.id.clone(), ip, Some(wanted))),
        }
    }
    if mixed_case {
        fleet.set_setting("devices", "mixed_case", "true")?;
    }
    let mut done = Adopted {
        created: Vec::new(),
        unchanged: Vec::new(),
        mixed_case,
    };
    let mut ledger = fleet.read_text(device::ALLOCATIONS)?.unwrap_or_default();
    let recorded: BTreeSet<(Ipv4Addr, String)> = ledger
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.parse().ok()?, w.next()?.to_owned()))
        })
        .collect();
    for (id, ip, _) in &planned {
        if !recorded.contains(&(*ip, id.clone())) {
            ledger.push_str(&format!("{ip} {id}\n"));
        }
    }
    // The ledger first: an address is never in a device file without it.
    fleet.write(device::ALLOCATIONS, ledger.as_bytes(), 0o644)?;
    for (id, _, device) in planned {
        match device {
            Some(device) => {
                device::save(fleet, &id, &device)?;
                done.created.push(id);
            }
            None => done.unchanged.push(id),
        }
    }
    Ok(done)
}
