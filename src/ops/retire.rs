//! `rumor retire`: a device taken out of service for good (stolen, broken,
//! decommissioned).
//!
//! Retiring publishes what a lighthouse and a PostgreSQL client need to
//! stop trusting the device, and keeps its history:
//! - its Nebula certificate's fingerprint joins `pki.blocklist` in
//!   [`device::NEBULA_BLOCKLIST`];
//! - its X.509 certificates from the fleet PostgreSQL CA join the CRL in
//!   [`device::POSTGRES_CRL`], signed by that CA (the list only grows);
//! - a `retired` entry beside its store data records when and why, and its
//!   data stays as it was, as history;
//! - `devices/<id>.toml` gets `[retired]`, and its device file
//!   (`secrets/<id>.yaml`) is removed; its address stays in
//!   `devices/.allocations`, so it is never handed out again.
//!
//! The store entry is written first: git is untrusted input, so `rumor new`
//! refuses a retired id if either the device file or the store says so.
//! Every step is idempotent, so a re-run after a crash completes the rest
//! and a re-run after success changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use zeroize::Zeroizing;

use super::Opened;
use crate::device::{self, Device, Retired};
use crate::error::Error;
use crate::store::Data;
use crate::x509::crl::{self, Revoked};

/// The store entry beside a device's data that records its retirement.
pub(crate) fn marker_path(o: &Opened, id: &str) -> String {
    format!("{}/retired", o.fleet.device_path(id))
}

/// Whether `id` is retired, by its device file or by the store (either
/// one is enough; a reused id's store entry says `reused`).
pub(crate) fn retired(o: &Opened, id: &str, device: &Device) -> Result<Option<Retired>, Error> {
    if let Some(r) = &device.retired {
        return Ok(Some(r.clone()));
    }
    Ok(read_marker(o, id)?
        .filter(|m| m.state == "retired")
        .map(|m| m.retired))
}

/// The one line for a retired id that a command will not provision.
pub(crate) fn refusal(id: &str, r: &Retired) -> Error {
    let why = if r.reason.is_empty() {
        String::new()
    } else {
        format!(" ({})", r.reason.escape_default())
    };
    Error::Input(format!(
        "{id} was retired at {}{why}; its id is not provisioned again unless you pass --reuse-retired to `rumor new`, which makes every secret anew under a new address",
        r.at.escape_default()
    ))
}

/// Refuses a retired device.
pub(crate) fn refuse_retired(o: &Opened, id: &str, device: &Device) -> Result<(), Error> {
    match retired(o, id, device)? {
        Some(r) => Err(refusal(id, &r)),
        None => Ok(()),
    }
}

/// Refuses the first retired device among `ids` (by its device file or
/// the store), before a command changes anything. The reads run on the
/// pool; the error is the first in `ids`' order, as a serial loop's.
pub(crate) fn refuse_all(o: &Opened, ids: &[String]) -> Result<(), Error> {
    super::first_pass(ids, |id| {
        let device = device::load(&o.fleet, id)?;
        refuse_retired(o, id, &device)
    })
    .into_iter()
    .collect()
}

/// The store's record of a retirement.
struct Marker {
    state: String,
    retired: Retired,
    version: u64,
    data: Data,
}

fn read_marker(o: &Opened, id: &str) -> Result<Option<Marker>, Error> {
    let path = marker_path(o, id);
    let found = o
        .handle
        .read(&path)
        .map_err(|e| Error::store_at(&format!("{id}: retired record"), &path, e))?;
    let Some(found) = found else {
        return Ok(None);
    };
    let get = |k: &str| found.data.get(k).map(|v| v.to_string()).unwrap_or_default();
    Ok(Some(Marker {
        state: get("state"),
        retired: Retired {
            at: get("at"),
            reason: get("reason"),
        },
        version: found.version,
        data: found.data.clone(),
    }))
}

/// `rumor new --reuse-retired`: the store's record keeps when and why the
/// id was retired, and says it is in service again.
pub(crate) fn mark_reused(o: &Opened, id: &str) -> Result<(), Error> {
    let Some(marker) = read_marker(o, id)? else {
        return Ok(());
    };
    let mut data = marker.data;
    data.insert("state".into(), Zeroizing::new("reused".into()));
    data.insert("reused_at".into(), Zeroizing::new(now_rfc3339()));
    o.handle
        .write(&marker_path(o, id), &data, Some(marker.version))?;
    Ok(())
}

fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// A file a retirement writes or removes.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FileChange {
    /// Relative to the fleet.
    pub path: String,
    /// `write` or `remove`.
    pub change: &'static str,
}

/// What retiring one device did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Retirement {
    /// The device.
    pub device: String,
    /// When and why.
    pub retired: Retired,
    /// It was retired before this run.
    pub already: bool,
    /// Its Nebula certificate's fingerprint, as `nebula-cert print` shows it.
    pub nebula_fingerprint: Option<String>,
    /// The serials (hex) of its certificates from the PostgreSQL CA.
    pub revoked_serials: Vec<String>,
    /// Other devices still using secrets it knew: device → names.
    pub shared: BTreeMap<String, Vec<String>>,
    /// Files changed.
    pub files: Vec<FileChange>,
    /// Store entries written.
    pub store_writes: Vec<String>,
}

/// Retires `ids` in turn. Holds the store's and `devices/`'s locks.
pub(crate) fn retire(
    o: &Opened,
    ids: &[String],
    reason: &str,
    dry_run: bool,
) -> Result<Vec<Retirement>, Error> {
    let _lock = if dry_run { None } else { o.handle.lock()? };
    let _devices = if dry_run {
        None
    } else {
        Some(device::lock_devices(&o.fleet)?)
    };
    let devices: Vec<(String, Device)> = ids
        .iter()
        .map(|id| device::load(&o.fleet, id).map(|d| (id.clone(), d)))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (id, device) in devices {
        out.push(retire_one(o, &id, device, reason, dry_run)?);
    }
    Ok(out)
}

fn retire_one(
    o: &Opened,
    id: &str,
    mut device: Device,
    reason: &str,
    dry_run: bool,
) -> Result<Retirement, Error> {
    let marker = read_marker(o, id)?.filter(|m| m.state == "retired");
    let already = marker.is_some() || device.retired.is_some();
    let retired = marker
        .as_ref()
        .map(|m| m.retired.clone())
        .or_else(|| device.retired.clone())
        .unwrap_or_else(|| Retired {
            at: now_rfc3339(),
            reason: reason.to_owned(),
        });
    let current = o
        .handle
        .read(&format!("{}/current", o.fleet.device_path(id)))?;
    let data = current.map(|c| c.data).unwrap_or_default();
    let fingerprint = nebula_fingerprint(&data);
    let shared_ca = o
        .handle
        .read(&format!("{}/current", o.fleet.shared_path()))?
        .map(|c| c.data)
        .unwrap_or_default();
    let at =
        time::OffsetDateTime::parse(&retired.at, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    let revoked = postgres_revocations(&data, &shared_ca, at)?;
    let known = known_values(o, id, &data)?;
    let shared = shared_with(o, id, &known)?;

    let mut files = Vec::new();
    let mut store_writes = Vec::new();
    // 1. The store's record: the one a repository writer cannot forge.
    if marker.is_none() {
        let path = marker_path(o, id);
        if !dry_run {
            let mut record = Data::new();
            record.insert("state".into(), Zeroizing::new("retired".into()));
            record.insert("at".into(), Zeroizing::new(retired.at.clone()));
            record.insert("reason".into(), Zeroizing::new(retired.reason.clone()));
            if let Some(fp) = &fingerprint {
                record.insert("nebula.fingerprint".into(), Zeroizing::new(fp.clone()));
            }
            let serials: Vec<String> = revoked.iter().map(|r| hex::encode(&r.serial)).collect();
            record.insert("x509.serials".into(), Zeroizing::new(serials.join(",")));
            let version = read_marker(o, id)?.map_or(0, |m| m.version);
            o.handle.write(&path, &record, Some(version))?;
        }
        store_writes.push(path);
    }
    // 2. The lighthouse's blocklist.
    if let Some(fp) = &fingerprint {
        if let Some(text) = blocklist_with(o, fp)? {
            if dry_run
                || o.fleet
                    .write(device::NEBULA_BLOCKLIST, text.as_bytes(), 0o644)?
            {
                files.push(FileChange {
                    path: device::NEBULA_BLOCKLIST.into(),
                    change: "write",
                });
            }
        }
    }
    // 3. The PostgreSQL CA's revocation list.
    if !revoked.is_empty() && crl_with(o, &shared_ca, &revoked, dry_run)? {
        files.push(FileChange {
            path: device::POSTGRES_CRL.into(),
            change: "write",
        });
    }
    // 4. The device file in devices/, then the SOPS file in git.
    if device.retired.is_none() {
        device.retired = Some(retired.clone());
        if !dry_run {
            device::save(&o.fleet, id, &device)?;
        }
        files.push(FileChange {
            path: format!("devices/{id}.toml"),
            change: "write",
        });
    }
    let output = o.fleet.output(id);
    if o.fleet.read(&output)?.is_some() {
        if !dry_run {
            remove_beneath(&o.fleet.dir, &output)?;
        }
        files.push(FileChange {
            path: output,
            change: "remove",
        });
    }
    Ok(Retirement {
        device: id.to_owned(),
        retired,
        already,
        nebula_fingerprint: fingerprint,
        revoked_serials: revoked.iter().map(|r| hex::encode(&r.serial)).collect(),
        shared,
        files,
        store_writes,
    })
}

/// The fingerprint of the device's Nebula host certificate.
fn nebula_fingerprint(data: &Data) -> Option<String> {
    data.values().find_map(|v| {
        if !v.contains("-----BEGIN NEBULA CERTIFICATE-----") {
            return None;
        }
        let cert = crate::nebula::Certificate::from_pem(v).ok()?;
        (!cert.details.is_ca).then(|| cert.fingerprint_hex())
    })
}

/// The device's certificates that the fleet PostgreSQL CA signed.
fn postgres_revocations(
    data: &Data,
    shared: &Data,
    at: time::OffsetDateTime,
) -> Result<Vec<Revoked>, Error> {
    let Some(ca) = shared.get("postgres-ca.crt") else {
        return Ok(vec![]);
    };
    let mut out = BTreeSet::new();
    for value in data.values() {
        if !value.contains("-----BEGIN CERTIFICATE-----") {
            continue;
        }
        let pem = format!("{}\n", value.trim());
        let Ok((serial, is_ca)) = crl::serial_of(&pem) else {
            continue;
        };
        if !is_ca && crate::x509::verify_signed_by(&pem, ca).unwrap_or(false) {
            out.insert(Revoked { serial, at });
        }
    }
    Ok(out.into_iter().collect())
}

/// The blocklist with `fp` added, or `None` when it already lists it.
fn blocklist_with(o: &Opened, fp: &str) -> Result<Option<String>, Error> {
    let path = o.fleet.dir.join(device::NEBULA_BLOCKLIST);
    let mut listed: BTreeSet<String> = BTreeSet::new();
    if let Some(text) = o.fleet.read_text(device::NEBULA_BLOCKLIST)? {
        let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
            .map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
        let list = value
            .get("pki")
            .and_then(|p| p.get("blocklist"))
            .and_then(|b| b.as_sequence());
        for item in list.into_iter().flatten() {
            let fp = item
                .as_str()
                .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()));
            match fp {
                Some(fp) => listed.insert(fp.to_ascii_lowercase()),
                None => {
                    return Err(Error::Input(format!(
                        "{}: pki.blocklist holds an entry that is not a certificate fingerprint (64 hex digits)",
                        path.display()
                    )))
                }
            };
        }
    }
    if !listed.insert(fp.to_owned()) {
        return Ok(None);
    }
    let mut text = String::from("# Nebula certificates of retired devices (rumor retire); include in the lighthouse's config.\npki:\n  blocklist:\n");
    for fp in &listed {
        text.push_str(&format!("    - {fp}\n"));
    }
    Ok(Some(text))
}

/// Adds `revoked` to the CRL, signing a new one; false when it already
/// lists them all.
fn crl_with(o: &Opened, shared: &Data, revoked: &[Revoked], dry_run: bool) -> Result<bool, Error> {
    let path = o.fleet.dir.join(device::POSTGRES_CRL);
    let (Some(ca_pem), Some(ca_key)) =
        (shared.get("postgres-ca.crt"), shared.get("postgres-ca.key"))
    else {
        return Ok(false);
    };
    let bad = |e: crate::x509::X509Error| Error::Input(format!("{}: {e}", path.display()));
    let mut listed = match o.fleet.read_text(device::POSTGRES_CRL)? {
        Some(text) => crl::read(&text, ca_pem).map_err(bad)?,
        None => crl::Listed::default(),
    };
    let have: BTreeSet<Vec<u8>> = listed.revoked.iter().map(|r| r.serial.clone()).collect();
    let new: Vec<&Revoked> = revoked
        .iter()
        .filter(|r| !have.contains(&r.serial))
        .collect();
    if new.is_empty() {
        return Ok(false);
    }
    if dry_run {
        return Ok(true);
    }
    listed.revoked.extend(new.into_iter().cloned());
    let key = crate::x509::PrivateKey::from_pem(ca_key)
        .map_err(|e| Error::Input(format!("{}: postgres-ca.key: {e}", o.fleet.shared_path())))?;
    let ca = crate::x509::Ca::load(&format!("{}\n", ca_pem.trim()), key)
        .map_err(|e| Error::Input(format!("{}: postgres-ca.crt: {e}", o.fleet.shared_path())))?;
    let pem = crl::issue(
        &ca,
        &listed.revoked,
        listed.number + 1,
        time::OffsetDateTime::now_utc(),
    )
    .map_err(bad)?;
    o.fleet.write(device::POSTGRES_CRL, pem.as_bytes(), 0o644)?;
    Ok(true)
}

/// Removes the fleet file `rel` without following a symlink out of the
/// fleet.
fn remove_beneath(root: &std::path::Path, rel: &str) -> Result<(), Error> {
    let rel = std::path::Path::new(rel);
    let full = root.join(rel);
    let name = rel
        .file_name()
        .ok_or_else(|| Error::Input(format!("{}: has no file name", full.display())))?;
    let parent = rel.parent().unwrap_or(std::path::Path::new(""));
    let dir = crate::fsutil::dir_beneath(root, parent, 0o755).map_err(|e| Error::read(&full, e))?;
    match rustix::fs::unlinkat(&dir, name, rustix::fs::AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(Error::io(&full, &e.into())),
    }
    let _ = rustix::fs::fsync(&dir);
    Ok(())
}

/// The secret values device `id` knew: the private values of its store
/// entry that its device file carries (inside a rendered file or as they
/// are). Certificates, public keys and what its spec states literally
/// (an SSID) are not secrets.
fn known_values(o: &Opened, id: &str, data: &Data) -> Result<Vec<Zeroizing<String>>, Error> {
    let plain = device_plaintext(o, id, data);
    let Some(plain) = plain else {
        return Ok(vec![]);
    };
    let literal = device::load(&o.fleet, id)
        .and_then(|d| device::spec(&o.fleet, id, &d))
        .map(|(_, text)| text)
        .unwrap_or_default();
    Ok(data
        .values()
        .filter(|v| is_secret(v) && plain.contains(v.as_str()) && !literal.contains(v.as_str()))
        .cloned()
        .collect())
}

fn is_secret(v: &str) -> bool {
    v.len() >= 8
        && !v.contains("-----BEGIN CERTIFICATE-----")
        && !v.contains("-----BEGIN NEBULA CERTIFICATE-----")
        && !v.contains("sops:")
        && !v.starts_with("age1")
        && !v.starts_with("ssh-")
        && !v.starts_with("$y$")
}

/// The plaintext of the device's SOPS file: the store's copy, else the
/// file in git, opened with the admin identities.
fn device_plaintext(o: &Opened, id: &str, data: &Data) -> Option<Zeroizing<String>> {
    let texts = data
        .values()
        .filter(|v| v.contains("sops:"))
        .map(|v| v.to_string())
        .chain(o.fleet.read_text(&o.fleet.output(id)).ok().flatten());
    for text in texts {
        if let Ok(decrypted) = crate::sops::decrypt(&text, &o.identities) {
            return Some(decrypted.yaml());
        }
    }
    None
}

/// The other devices (not retired) whose store entries hold one of
/// `known`: device → names.
fn shared_with(
    o: &Opened,
    id: &str,
    known: &[Zeroizing<String>],
) -> Result<BTreeMap<String, Vec<String>>, Error> {
    let mut out = BTreeMap::new();
    if known.is_empty() {
        return Ok(out);
    }
    for other in super::active_ids(&o.fleet)? {
        if other == id {
            continue;
        }
        let names = shared_names(o, &other, known)?;
        if !names.is_empty() {
            out.insert(other, names);
        }
    }
    Ok(out)
}

fn shared_names(o: &Opened, id: &str, known: &[Zeroizing<String>]) -> Result<Vec<String>, Error> {
    let Some(current) = o
        .handle
        .read(&format!("{}/current", o.fleet.device_path(id)))?
    else {
        return Ok(vec![]);
    };
    Ok(current
        .data
        .iter()
        .filter(|(_, v)| known.iter().any(|k| k.as_str() == v.as_str()))
        .map(|(k, _)| k.clone())
        .collect())
}

/// Each retired device with the secret values it knew.
pub(crate) type Knowledge = Vec<(String, Vec<Zeroizing<String>>)>;

/// What `rumor plan` says of the secrets retired devices knew: for each
/// retired device, the values it knew (computed once per plan).
pub(crate) fn retired_knowledge(o: &Opened) -> Result<Knowledge, Error> {
    let mut out = Vec::new();
    for id in device::ids(&o.fleet)? {
        let Ok(device) = device::load(&o.fleet, &id) else {
            continue;
        };
        if device.retired.is_none() {
            continue;
        }
        let data = o
            .handle
            .read(&format!("{}/current", o.fleet.device_path(&id)))?
            .map(|c| c.data)
            .unwrap_or_default();
        let known = known_values(o, &id, &data)?;
        if !known.is_empty() {
            out.push((id, known));
        }
    }
    Ok(out)
}

/// The names of `id`'s secrets a retired device knew: (name, retired device).
pub(crate) fn due(
    o: &Opened,
    id: &str,
    knowledge: &Knowledge,
) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    for (retired, known) in knowledge {
        if retired == id {
            continue;
        }
        for name in shared_names(o, id, known)? {
            out.push((name, retired.clone()));
        }
    }
    Ok(out)
}
