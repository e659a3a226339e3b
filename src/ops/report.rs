//! `rumor report`: the fleet's security state as one data model, which
//! [`html`] renders as a self-contained page and `--json` prints as is.
//!
//! It shows certificate expiry, the age of each secret class against its
//! rotation policy, drift (device files against the store, files against
//! git), which keys open which device file, retired devices with their
//! published revocations, and the latest changes from the history. It
//! never holds a secret value: certificates by name and date, secrets by
//! age, versions by [`crate::store::provenance::fingerprint`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;

use super::history::{self, Change};
use super::Opened;
use crate::device::{self, Device};
use crate::error::Error;
use crate::generate::Args;
use crate::spec::Kind;

pub(crate) mod git;
pub(crate) mod html;

/// How to build a report.
pub(crate) struct ReportOptions {
    /// Certificates expiring within this many days of `now` are flagged.
    pub days: u32,
    /// Secrets the profile marks `renew` older than this are overdue.
    pub max_age: u32,
    /// Compare the fleet's files with git (an error when there is no
    /// repository).
    pub git: bool,
    /// How many of the latest changes to show.
    pub changes: usize,
    /// The moment the report describes (normally now; `--at` plans ahead).
    pub now: OffsetDateTime,
}

/// The fleet's security state.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    /// The moment described, RFC 3339.
    pub at: String,
    /// The fleet directory.
    pub fleet: String,
    /// The store, as rumor describes it.
    pub store: String,
    /// The expiry threshold in days (`check --days`).
    pub days: u32,
    /// The rotation policy's age limit in days.
    pub max_age_days: u32,
    /// Every device.
    pub devices: Vec<DeviceRow>,
    /// Every certificate in the store, CAs included.
    pub certificates: Vec<Cert>,
    /// Every secret class with its age and policy.
    pub secrets: Vec<SecretClass>,
    /// Device files against the store, files against git.
    pub drift: Drift,
    /// Which keys open which device file.
    pub access: Access,
    /// Retired devices and the revocations published for them.
    pub retired: Retirement,
    /// The latest changes, newest first.
    pub changes: Vec<Change>,
}

impl Report {
    /// How many things need attention: expired or expiring certificates,
    /// overdue secrets, drift, odd recipients, unrevoked retired devices.
    pub(crate) fn problems(&self) -> usize {
        self.certificates.iter().filter(|c| c.state != "ok").count()
            + self.secrets.iter().map(|s| s.overdue.len()).sum::<usize>()
            + self.drift.items.len()
            + self
                .access
                .files
                .iter()
                .filter(|f| !f.unknown.is_empty() || f.error.is_some())
                .count()
            + self.retired.problems.len()
    }
}

/// One device.
#[derive(Debug, Serialize)]
pub(crate) struct DeviceRow {
    /// Its id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// Its overlay address.
    pub ip: String,
    /// Whether it is retired.
    pub retired: bool,
}

/// One certificate.
#[derive(Debug, Serialize)]
pub(crate) struct Cert {
    /// The device, or `fleet` for the shared CAs.
    pub device: String,
    /// The stored name (`postgres.crt`).
    pub name: String,
    /// `nebula` or `x509`.
    pub kind: String,
    /// The issuing CA (its subject or Nebula name).
    pub ca: String,
    /// Whether it is a CA itself.
    pub is_ca: bool,
    /// When it expires, RFC 3339.
    pub not_after: String,
    /// Days left (negative: expired that long ago).
    pub days_left: i64,
    /// `expired`, `expiring` (within the threshold) or `ok`.
    pub state: String,
}

/// One secret class (a workspace name) across the fleet.
#[derive(Debug, Serialize)]
pub(crate) struct SecretClass {
    /// The name.
    pub secret: String,
    /// `renew` (rotated by `rumor renew`), `certificate` (by
    /// `renew --expiring`) or `kept` (only with `renew --secret`).
    pub policy: String,
    /// How many devices hold it.
    pub devices: usize,
    /// The age of the oldest value, in days, as the history says.
    pub oldest_days: Option<i64>,
    /// The age of the newest value, in days.
    pub newest_days: Option<i64>,
    /// Devices whose value is older than the policy allows.
    pub overdue: Vec<String>,
}

/// What differs between the store, the files and git.
#[derive(Debug, Serialize)]
pub(crate) struct Drift {
    /// The git repository's root, or why git was not consulted.
    pub git: String,
    /// One line per problem.
    pub items: Vec<DriftItem>,
}

/// One drift problem.
#[derive(Debug, Serialize)]
pub(crate) struct DriftItem {
    /// The device, when it concerns one.
    pub device: Option<String>,
    /// The file, relative to the fleet.
    pub file: String,
    /// `differs-from-store`, `store-newer-than-git`, `not-committed`,
    /// `untracked`, `deleted-not-committed` or `check`.
    pub kind: String,
    /// What is wrong, in words.
    pub detail: String,
}

/// Admins × device files.
#[derive(Debug, Serialize)]
pub(crate) struct Access {
    /// The admins' recipients (rumor.toml).
    pub admins: Vec<String>,
    /// One row per device file.
    pub files: Vec<FileKeys>,
}

/// Who can open one device file.
#[derive(Debug, Serialize)]
pub(crate) struct FileKeys {
    /// The device.
    pub device: String,
    /// The file.
    pub file: String,
    /// Per admin (in [`Access::admins`] order): whether it opens the file.
    pub admins: Vec<bool>,
    /// Whether the device's own key opens it (`None`: no key stored).
    pub device_key: Option<bool>,
    /// Recipients that are neither an admin nor the device.
    pub unknown: Vec<String>,
    /// Why the file could not be read.
    pub error: Option<String>,
}

/// Retired devices and the published revocations.
#[derive(Debug, Serialize)]
pub(crate) struct Retirement {
    /// One row per retired device.
    pub devices: Vec<RetiredRow>,
    /// The Nebula blocklist's fingerprints ([`device::NEBULA_BLOCKLIST`]).
    pub nebula_blocklist: Vec<String>,
    /// The serials the PostgreSQL CRL revokes ([`device::POSTGRES_CRL`]).
    pub crl_serials: Vec<String>,
    /// What is missing: a retired device's certificate not revoked, a
    /// device file still present, an unreadable revocation file.
    pub problems: Vec<String>,
}

/// One retired device.
#[derive(Debug, Serialize)]
pub(crate) struct RetiredRow {
    /// Its id.
    pub id: String,
    /// When (RFC 3339, as the device file says).
    pub at: String,
    /// Why.
    pub reason: String,
    /// Its certificates and whether each is revoked.
    pub certificates: Vec<Revoked>,
}

/// A retired device's certificate.
#[derive(Debug, Serialize)]
pub(crate) struct Revoked {
    /// The stored name.
    pub name: String,
    /// The Nebula fingerprint or the X.509 serial (hex).
    pub id: String,
    /// Whether the published list names it.
    pub revoked: bool,
}

/// A device holding a secret, and the secret's age there in days.
type Held = (String, Option<i64>);

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Builds the report.
pub(crate) fn build(o: &Opened, options: &ReportOptions) -> Result<Report, Error> {
    let index = if options.git {
        match git::open(&o.fleet.dir).map_err(Error::Input)? {
            Some(index) => Some(index),
            None => {
                return Err(Error::Input(format!(
                    "{}: not in a git repository; the report compares the fleet's files with git (`git init` it, or pass --no-git)",
                    o.fleet.dir.display()
                )))
            }
        }
    } else {
        None
    };
    let ids = device::ids(&o.fleet)?;
    let mut devices = Vec::new();
    let mut loaded: Vec<(String, Device)> = Vec::new();
    for id in &ids {
        let d = device::load(&o.fleet, id)?;
        devices.push(DeviceRow {
            id: id.clone(),
            name: d.name.clone(),
            ip: d.ip.clone(),
            retired: d.retired.is_some(),
        });
        loaded.push((id.clone(), d));
    }
    let mut certificates = Vec::new();
    if let Some(shared) = o
        .handle
        .read(&format!("{}/current", o.fleet.shared_path()))?
    {
        certs_of("fleet", &shared.data, options, &mut certificates);
    }
    let mut drift = Vec::new();
    let mut access = Vec::new();
    let mut histories: Vec<(String, Vec<Change>)> = Vec::new();
    // Per secret: its policy, and each device holding it with its age.
    let mut classes: BTreeMap<String, (String, Vec<Held>)> = BTreeMap::new();
    let mut retired_rows = Vec::new();
    let mut retirement_problems = Vec::new();
    let blocklist = read_blocklist(o, &mut retirement_problems);
    let crl = read_crl(o, &mut retirement_problems);
    for (id, d) in &loaded {
        let current = o
            .handle
            .read(&format!("{}/current", o.fleet.device_path(id)))?;
        let changes = history::log(o, id, None)?;
        if let Some(retired) = &d.retired {
            retired_rows.push(retired_row(
                o,
                id,
                retired,
                current.as_ref().map(|c| &c.data),
                &blocklist,
                &crl,
                &mut retirement_problems,
            ));
            histories.push((id.clone(), changes));
            continue;
        }
        let Some(current) = current else {
            drift.push(DriftItem {
                device: Some(id.clone()),
                file: o.fleet.output(id),
                kind: "check".into(),
                detail: format!("not provisioned; run `rumor new {id}`"),
            });
            continue;
        };
        certs_of(id, &current.data, options, &mut certificates);
        let spec = device::spec(&o.fleet, id, d).ok().map(|(s, _)| s);
        let (renewed, derived) = spec.as_ref().map(policy_names).unwrap_or_default();
        let mut last: BTreeMap<&str, &str> = BTreeMap::new();
        for c in &changes {
            last.insert(c.secret.as_str(), c.at.as_str());
        }
        for name in current.data.keys().filter(|n| !derived.contains(*n)) {
            let policy = if renewed.contains(name) {
                "renew"
            } else if crate::ops::expiry(&current.data[name]).is_some() {
                "certificate"
            } else {
                "kept"
            };
            let age = last.get(name.as_str()).and_then(|at| {
                OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                    .ok()
                    .map(|t| (options.now - t).whole_days())
            });
            let entry = classes
                .entry(name.clone())
                .or_insert_with(|| (policy.to_owned(), Vec::new()));
            entry.1.push((id.clone(), age));
        }
        device_drift(
            o,
            id,
            &current.data,
            spec.as_ref(),
            index.as_ref(),
            &mut drift,
        );
        access.push(file_keys(o, id, &current.data));
        histories.push((id.clone(), changes));
    }
    if let Some(index) = &index {
        git_drift(o, index, &ids, &mut drift);
    }
    let secrets = classes
        .into_iter()
        .map(|(secret, (policy, held))| {
            let ages: Vec<i64> = held.iter().filter_map(|(_, a)| *a).collect();
            let overdue = held
                .iter()
                .filter(|(_, a)| policy == "renew" && a.is_some_and(|a| a > options.max_age.into()))
                .map(|(id, _)| id.clone())
                .collect();
            SecretClass {
                secret,
                policy,
                devices: held.len(),
                oldest_days: ages.iter().max().copied(),
                newest_days: ages.iter().min().copied(),
                overdue,
            }
        })
        .collect();
    let mut changes: Vec<Change> = histories.into_iter().flat_map(|(_, c)| c).collect();
    changes.sort_by(|a, b| b.at.cmp(&a.at).then(a.version.cmp(&b.version)));
    changes.truncate(options.changes);
    Ok(Report {
        at: rfc3339(options.now),
        fleet: o.fleet.dir.display().to_string(),
        store: o.handle.describe(),
        days: options.days,
        max_age_days: options.max_age,
        devices,
        certificates,
        secrets,
        drift: Drift {
            git: match &index {
                Some(index) => index.root.display().to_string(),
                None => "not compared (--no-git)".into(),
            },
            items: drift,
        },
        access: Access {
            admins: o.fleet.settings.admins.recipients.clone(),
            files: access,
        },
        retired: Retirement {
            devices: retired_rows,
            nebula_blocklist: blocklist,
            crl_serials: crl,
            problems: retirement_problems,
        },
        changes,
    })
}

/// The names a spec's `renew = true` generations make, and the names its
/// derived generations re-render.
fn policy_names(spec: &crate::spec::Spec) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut renewed = BTreeSet::new();
    let mut derived = BTreeSet::new();
    for entry in &spec.generations {
        let Kind::Generator(g) = &entry.kind else {
            continue;
        };
        let args = Args::new(&entry.arguments);
        let Ok(outputs) = g.generator.outputs(&args) else {
            continue;
        };
        if g.generator.derived() {
            derived.extend(outputs);
        } else if args.renew().unwrap_or(false) {
            renewed.extend(outputs);
        }
    }
    (renewed, derived)
}

/// The certificates among a stored set.
fn certs_of(device: &str, data: &crate::store::Data, options: &ReportOptions, out: &mut Vec<Cert>) {
    for (name, value) in data {
        let Some(found) = describe_cert(value) else {
            continue;
        };
        let (kind, ca, is_ca, not_after) = found;
        // A device's copy of a fleet CA is reported once, with the fleet.
        if is_ca && device != "fleet" {
            continue;
        }
        let left = (not_after - options.now).whole_days();
        let state = if not_after <= options.now {
            "expired"
        } else if not_after < options.now + time::Duration::days(options.days.into()) {
            "expiring"
        } else {
            "ok"
        };
        out.push(Cert {
            device: device.to_owned(),
            name: name.clone(),
            kind: kind.to_owned(),
            ca,
            is_ca,
            not_after: rfc3339(not_after),
            days_left: left,
            state: state.to_owned(),
        });
    }
}

/// (kind, issuing CA, is a CA, expiry) of a stored certificate.
fn describe_cert(value: &str) -> Option<(&'static str, String, bool, OffsetDateTime)> {
    if value.contains("-----BEGIN CERTIFICATE-----") {
        let pem = ::pem::parse(value.trim()).ok()?;
        let (_, cert) = x509_parser::parse_x509_certificate(pem.contents()).ok()?;
        let issuer = cert.issuer().to_string();
        let is_ca = cert.is_ca();
        return Some((
            "x509",
            issuer,
            is_ca,
            cert.validity().not_after.to_datetime(),
        ));
    }
    if value.contains("-----BEGIN NEBULA CERTIFICATE-----") {
        let cert = crate::nebula::Certificate::from_pem(value).ok()?;
        let ca = match cert.details.issuer {
            Some(fp) => format!("nebula CA {}", &hex::encode(fp)[..12]),
            None => format!("nebula CA {}", cert.details.name),
        };
        return Some(("nebula", ca, cert.details.is_ca, cert.expires_at()));
    }
    None
}

/// The device file against the store (through `rumor check`) and, with
/// git, the store's copy against git's.
fn device_drift(
    o: &Opened,
    id: &str,
    data: &crate::store::Data,
    spec: Option<&crate::spec::Spec>,
    index: Option<&git::Index>,
    out: &mut Vec<DriftItem>,
) {
    let file = o.fleet.output(id);
    // Expiry has its own section, against the report's own moment.
    for problem in super::check::device(o, id, 0)
        .into_iter()
        .filter(|p| !p.contains("\" expires in "))
    {
        let kind = if problem.contains("differs from the store") {
            "differs-from-store"
        } else {
            "check"
        };
        out.push(DriftItem {
            device: Some(id.to_owned()),
            file: file.clone(),
            kind: kind.into(),
            detail: problem,
        });
    }
    let (Some(index), Some(spec)) = (index, spec) else {
        return;
    };
    let Some((_, public)) = super::check::sops_names(spec) else {
        return;
    };
    let Some(copy) = data.get(&public) else {
        return;
    };
    let path = o.fleet.dir.join(&file);
    let wanted = format!("{}\n", copy.trim_end());
    if index.tracks(&path) && !index.holds(&path, wanted.as_bytes()) {
        out.push(DriftItem {
            device: Some(id.to_owned()),
            file,
            kind: "store-newer-than-git".into(),
            detail: "the store holds another version of this device file than git: commit the one rumor wrote (or, if git's is the newer one, it was written outside rumor)".into(),
        });
    }
}

/// The fleet's own files that git does not hold as they are.
fn git_drift(o: &Opened, index: &git::Index, ids: &[String], out: &mut Vec<DriftItem>) {
    let dir = &o.fleet.dir;
    let mut files: BTreeSet<PathBuf> = BTreeSet::new();
    let mut dirs = vec![
        dir.join("devices"),
        dir.join("templates"),
        dir.join("revocations"),
    ];
    if o.fleet.settings.store.kind == crate::fleet::StoreKind::Local {
        dirs.push(dir.join(&o.fleet.settings.store.path));
    }
    files.insert(dir.join(crate::fleet::CONFIG));
    for id in ids {
        files.insert(dir.join(o.fleet.output(id)));
    }
    let mut tracked = Vec::new();
    for d in &dirs {
        walk(d, &mut files);
        tracked.extend(index.tracked_under(d));
    }
    if let Some(parent) = Path::new(&o.fleet.output("x")).parent() {
        tracked.extend(index.tracked_under(&dir.join(parent)));
    }
    let rel = |p: &Path| {
        p.strip_prefix(dir)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    };
    for file in &files {
        let Ok(content) = crate::fsutil::read_regular(file, crate::fsutil::MAX_READ) else {
            continue;
        };
        let (kind, detail) = match index.state(file, &content) {
            git::State::Clean => continue,
            git::State::Modified => ("not-committed", "changed since it was staged or committed"),
            git::State::Untracked => ("untracked", "not in git"),
        };
        out.push(DriftItem {
            device: None,
            file: rel(file),
            kind: kind.into(),
            detail: detail.into(),
        });
    }
    let mut gone: Vec<PathBuf> = tracked.into_iter().filter(|p| !p.exists()).collect();
    gone.sort();
    gone.dedup();
    for file in gone {
        out.push(DriftItem {
            device: None,
            file: rel(&file),
            kind: "deleted-not-committed".into(),
            detail: "deleted, and the deletion is not committed".into(),
        });
    }
}

/// The regular files under `dir`, without lock and temp files.
fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        if kind.is_dir() {
            walk(&entry.path(), out);
        } else if kind.is_file()
            && name != ".lock"
            && !name.ends_with(".lock")
            && !name.ends_with(crate::fsutil::TEMP_SUFFIX)
        {
            out.insert(entry.path());
        }
    }
}

/// Who can open a device's file.
fn file_keys(o: &Opened, id: &str, data: &crate::store::Data) -> FileKeys {
    let file = o.fleet.output(id);
    let admins = &o.fleet.settings.admins.recipients;
    let device_key = data
        .iter()
        .find(|(k, v)| k.ends_with(".pub") && v.trim().starts_with("age1"))
        .map(|(_, v)| v.trim().to_owned());
    let mut row = FileKeys {
        device: id.to_owned(),
        file: file.clone(),
        admins: vec![false; admins.len()],
        device_key: None,
        unknown: Vec::new(),
        error: None,
    };
    let recipients = match o.fleet.read_text(&file) {
        Ok(Some(text)) => match crate::sops::recipients_of(&text) {
            Ok(r) => r,
            Err(e) => {
                row.error = Some(e.to_string());
                return row;
            }
        },
        Ok(None) => {
            row.error = Some("no such file".into());
            return row;
        }
        Err(e) => {
            row.error = Some(e.to_string());
            return row;
        }
    };
    for (i, admin) in admins.iter().enumerate() {
        row.admins[i] = recipients.contains(admin);
    }
    row.device_key = device_key.as_ref().map(|k| recipients.contains(k));
    row.unknown = recipients
        .into_iter()
        .filter(|r| !admins.contains(r) && device_key.as_ref() != Some(r))
        .collect();
    row
}

fn read_blocklist(o: &Opened, problems: &mut Vec<String>) -> Vec<String> {
    let text = match o.fleet.read_text(device::NEBULA_BLOCKLIST) {
        Ok(Some(t)) => t,
        Ok(None) => return Vec::new(),
        Err(e) => {
            problems.push(e.to_string());
            return Vec::new();
        }
    };
    let value: serde_yaml_ng::Value = match serde_yaml_ng::from_str(&text) {
        Ok(v) => v,
        Err(_) => {
            problems.push(format!(
                "{}: is not YAML with pki.blocklist",
                device::NEBULA_BLOCKLIST
            ));
            return Vec::new();
        }
    };
    value
        .get("pki")
        .and_then(|p| p.get("blocklist"))
        .and_then(|b| b.as_sequence())
        .map(|s| {
            s.iter()
                .filter_map(|v| v.as_str())
                .map(|v| v.trim().to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default()
}

fn read_crl(o: &Opened, problems: &mut Vec<String>) -> Vec<String> {
    let text = match o.fleet.read_text(device::POSTGRES_CRL) {
        Ok(Some(t)) => t,
        Ok(None) => return Vec::new(),
        Err(e) => {
            problems.push(e.to_string());
            return Vec::new();
        }
    };
    let parsed = ::pem::parse(text.trim())
        .ok()
        .filter(|p| p.tag() == "X509 CRL");
    let Some(pem) = parsed else {
        problems.push(format!("{}: is not a PEM CRL", device::POSTGRES_CRL));
        return Vec::new();
    };
    match x509_parser::parse_x509_crl(pem.contents()) {
        Ok((_, crl)) => crl
            .iter_revoked_certificates()
            .map(|r| hex::encode(r.raw_serial()))
            .collect(),
        Err(_) => {
            problems.push(format!("{}: is not a readable CRL", device::POSTGRES_CRL));
            Vec::new()
        }
    }
}

fn retired_row(
    o: &Opened,
    id: &str,
    retired: &device::Retired,
    data: Option<&crate::store::Data>,
    blocklist: &[String],
    crl: &[String],
    problems: &mut Vec<String>,
) -> RetiredRow {
    let mut certificates = Vec::new();
    for (name, value) in data.into_iter().flatten() {
        if value.contains("-----BEGIN NEBULA CERTIFICATE-----") {
            if let Ok(cert) = crate::nebula::Certificate::from_pem(value) {
                if cert.details.is_ca {
                    continue;
                }
                let fp = cert.fingerprint_hex();
                let revoked = blocklist.contains(&fp);
                if !revoked {
                    problems.push(format!(
                        "{id}: {name} ({fp}) is not in {}",
                        device::NEBULA_BLOCKLIST
                    ));
                }
                certificates.push(Revoked {
                    name: name.clone(),
                    id: fp,
                    revoked,
                });
            }
        } else if value.contains("-----BEGIN CERTIFICATE-----") {
            let Ok(pem) = ::pem::parse(value.trim()) else {
                continue;
            };
            let Ok((_, cert)) = x509_parser::parse_x509_certificate(pem.contents()) else {
                continue;
            };
            if cert.is_ca() {
                continue;
            }
            let serial = hex::encode(cert.raw_serial());
            let revoked = crl.contains(&serial);
            if !revoked {
                problems.push(format!(
                    "{id}: {name} (serial {serial}) is not in {}",
                    device::POSTGRES_CRL
                ));
            }
            certificates.push(Revoked {
                name: name.clone(),
                id: serial,
                revoked,
            });
        }
    }
    if matches!(o.fleet.read(&o.fleet.output(id)), Ok(Some(_))) {
        problems.push(format!(
            "{id}: retired, but {} is still there",
            o.fleet.output(id)
        ));
    }
    RetiredRow {
        id: id.to_owned(),
        at: retired.at.clone(),
        reason: retired.reason.clone(),
        certificates,
    }
}
