//! Who can read the fleet: the admin recipients in rumor.toml, and moving
//! every file to a new admin set without rotating a secret.
//!
//! A rekey touches two kinds of file. The local store's entries (current
//! and timestamped) are re-encrypted and re-signed with a new store key
//! ([`LocalStore::rekey`]). Each device file keeps its data key and its
//! ciphertexts, and gets the key wrapped for its device and the new admins,
//! as `sops updatekeys` does ([`crate::sops::rewrap`]).
//!
//! The order makes a killed rekey safe to run again:
//! 1. rumor.toml gets the new set (what the operator asked for);
//! 2. the local store is rekeyed, which resumes where it stopped;
//! 3. per device, the store's copy of the device file is rewrapped and
//!    written to the store, then the same bytes to git. The store's copy,
//!    not git's, is rewrapped: only it is vouched for, and a git file one
//!    version behind the store is one rumor accepts (see
//!    `engine::io::check_vouched`). A re-run finds the store copy already
//!    rewrapped, leaves it, and writes git.
//!
//! What a rekey cannot undo: a removed admin may have copied secrets, or
//! the data keys of device files, before. Rotate with `rumor renew --all`.

use std::collections::BTreeSet;

use crate::identity::{Identity, Recipient};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::fleet::{Fleet, StoreHandle, StoreKind};
use crate::spec::Spec;
use crate::store::{Data, Store};

/// A change to `admins.recipients`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Change<'a> {
    /// Add this recipient.
    Add(&'a str),
    /// Remove this recipient.
    Remove(&'a str),
}

/// Where the local store records the admin set its entries are encrypted
/// to, beside them: age headers do not say whom a file is for. It is a
/// hint for `rumor check`, plaintext that reviewers see in git, not a
/// security boundary.
pub(crate) const STORE_RECORD: &str = ".admins.age";

/// Parses a recipient given on the command line; one line on error.
fn parse(text: &str) -> Result<Recipient, Error> {
    let text = text.trim();
    let recipient = text
        .parse::<Recipient>()
        .map_err(|e| Error::Input(format!("\"{}\": {e}", text.escape_default())))?;
    recipient.check_plugin().map_err(Error::Input)?;
    Ok(recipient)
}

/// The admin set after `change`, checked: a malformed recipient, one
/// already there, one not there, or removing the last admin is refused.
pub(crate) fn changed(current: &[String], change: Change) -> Result<Vec<String>, Error> {
    let mut list: Vec<String> = current.to_vec();
    match change {
        Change::Add(text) => {
            let name = parse(text)?.to_string();
            if list.contains(&name) {
                return Err(Error::Input(format!(
                    "{name} is already in admins.recipients; nothing changed (to finish an interrupted change, run `rumor rekey`)"
                )));
            }
            list.push(name);
        }
        Change::Remove(text) => {
            let name = parse(text)?.to_string();
            if !list.contains(&name) {
                return Err(Error::Input(format!(
                    "{name} is not in admins.recipients; nothing changed"
                )));
            }
            list.retain(|r| *r != name);
            if list.is_empty() {
                return Err(Error::Input(format!(
                    "{name} is the last admin; add another first, or nobody could open the fleet"
                )));
            }
        }
    }
    Ok(list)
}

/// Applies `change` to rumor.toml, editing it in place. On the local
/// store, one of `identities` must stay an admin: the rekey that follows
/// reads every entry back after re-encrypting it to the new set.
pub(crate) fn apply(
    fleet: &mut Fleet,
    change: Change,
    identities: &[Identity],
) -> Result<(), Error> {
    let list = changed(&fleet.settings.admins.recipients, change)?;
    if fleet.settings.store.kind == StoreKind::Local
        && !identities
            .iter()
            .any(|i| i.recipient().is_none_or(|r| list.contains(&r)))
    {
        return Err(Error::Input("that would remove the admin identity this rumor runs with; run it as another admin (RUMOR_IDENTITY)".into()));
    }
    let value = format!(
        "[{}]",
        list.iter()
            .map(|r| format!("\"{r}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    fleet.set_setting("admins", "recipients", &value)
}

/// What [`rekey`] did.
pub(crate) struct Rekeyed {
    /// Local-store entries re-encrypted (`None` on Vault).
    pub store_entries: Option<usize>,
    /// Devices whose file got the new recipients.
    pub rewrapped: Vec<String>,
    /// Devices already encrypted to them.
    pub unchanged: usize,
}

/// Re-encrypts the fleet in `dir` to the admins rumor.toml lists: the local
/// store (with a new store key) and every device file. Rotates nothing.
pub(crate) fn rekey(
    dir: &std::path::Path,
    identities: &[Identity],
    trust_unsigned: bool,
) -> Result<Rekeyed, Error> {
    let mut fleet = Fleet::open(dir)?;
    // A killed rekey may have left temp files beside the device files.
    crate::ops::remove_stale_temps(&fleet);
    let mut handle = fleet.store(identities)?;
    let mut store_entries = None;
    if let Some(local) = handle.local() {
        let done = local.rekey(trust_unsigned)?;
        fleet.set_setting("store", "signer", &format!("\"{}\"", done.pin))?;
        local.finish_rekey()?;
        record_store_recipients(&fleet)?;
        store_entries = Some(done.entries);
        // The handle still holds the old pin; writes need the new key.
        fleet = Fleet::open(dir)?;
        handle = fleet.store(identities)?;
    }
    let _lock = handle.lock()?;
    let mut rewrapped = Vec::new();
    let mut unchanged = 0;
    for id in crate::device::ids(&fleet)? {
        if crate::engine::interrupted().load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Interrupted);
        }
        if rewrap_device(&fleet, handle.as_ref(), identities, &id)? {
            rewrapped.push(id);
        } else {
            unchanged += 1;
        }
    }
    Ok(Rekeyed {
        store_entries,
        rewrapped,
        unchanged,
    })
}

/// Writes the admin set the local store is now encrypted to.
pub(crate) fn record_store_recipients(fleet: &Fleet) -> Result<(), Error> {
    let mut set: Vec<String> = fleet.recipients().iter().map(ToString::to_string).collect();
    set.sort();
    let text = format!(
        "# the admins the store's entries are encrypted to, written by `rumor rekey`\n{}\n",
        set.join("\n")
    );
    // Encrypted like every other file of the store, which holds no
    // plaintext; the list is public, but only admins need to read it.
    let rel = format!("{}/{STORE_RECORD}", fleet.settings.store.path);
    let recipients = fleet.recipients();
    let fail = |e: String| Error::Io {
        path: fleet.dir.join(&rel).display().to_string(),
        reason: e,
    };
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| fail(e.to_string()))?;
    let mut out = Vec::new();
    let armored = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .map_err(|e| fail(e.to_string()))?;
    let mut stream = encryptor
        .wrap_output(armored)
        .map_err(|e| fail(e.to_string()))?;
    std::io::Write::write_all(&mut stream, text.as_bytes()).map_err(|e| fail(e.to_string()))?;
    stream
        .finish()
        .and_then(|a| a.finish())
        .map_err(|e| fail(e.to_string()))?;
    fleet.write(&rel, &out, 0o600)?;
    Ok(())
}

/// The device file as the store holds it, and whom it should be for.
struct DeviceFile {
    /// The store path of the device's live set.
    path: String,
    current: crate::store::Versioned,
    /// The device file's name in the store entry.
    public: String,
    recipients: Vec<Recipient>,
    /// The admins' identities plus the device's own key (a device file of
    /// the original profile is encrypted to the device alone).
    identities: Vec<Identity>,
}

/// Reads what a device's spec (rendered by [`crate::device::spec`]) says
/// its device file is, from the store; `None` for a device not
/// provisioned yet.
fn device_file(
    fleet: &Fleet,
    handle: &dyn Store,
    identities: &[Identity],
    id: &str,
    spec: &Spec,
) -> Result<Option<DeviceFile>, Error> {
    let path = format!("{}/current", fleet.device_path(id));
    let Some(current) = handle.read(&path)? else {
        return Ok(None);
    };
    let bad = |why: String| Error::Input(format!("{id}: {why}"));
    let entry = spec
        .generations
        .iter()
        .rev()
        .find(|g| g.kind == "sops")
        .ok_or_else(|| bad("the device spec has no sops generation".into()))?;
    let arg = |k: &str| {
        entry
            .arguments
            .get(k)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let public =
        arg("public").ok_or_else(|| bad("the sops generation has no \"public\"".into()))?;
    let age_name = arg("age").ok_or_else(|| bad("the sops generation has no \"age\"".into()))?;
    let lines = |name: &str, text: &str| -> Result<Vec<Recipient>, Error> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                l.parse().map_err(|_| {
                    bad(format!(
                        "\"{name}\" in \"{path}\" does not hold age recipients"
                    ))
                })
            })
            .collect()
    };
    let stored = |name: &str| {
        current.data.get(name).ok_or_else(|| {
            bad(format!(
                "\"{path}\" has no \"{name}\"; run `rumor new {id}`"
            ))
        })
    };
    let mut recipients = lines(&age_name, stored(&age_name)?)?;
    let extra = entry
        .arguments
        .get("recipients")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    for item in extra.iter().filter_map(|v| v.as_str()) {
        match item.trim().parse::<Recipient>() {
            Ok(r) => recipients.push(r),
            Err(_) => recipients.extend(lines(item, stored(item)?)?),
        }
    }
    let mut ids = identities.to_vec();
    for value in current
        .data
        .values()
        .filter(|v| v.trim_start().starts_with("AGE-SECRET-KEY-1"))
    {
        ids.extend(crate::identity::x25519_in(value));
    }
    Ok(Some(DeviceFile {
        path,
        current,
        public,
        recipients,
        identities: ids,
    }))
}

/// Rewraps one device file, store first, then git; whether it changed.
fn rewrap_device(
    fleet: &Fleet,
    handle: &dyn StoreHandle,
    identities: &[Identity],
    id: &str,
) -> Result<bool, Error> {
    let device = crate::device::load(fleet, id)?;
    let (spec, _) = crate::device::spec(fleet, id, &device)?;
    let Some(file) = device_file(fleet, handle, identities, id, &spec)? else {
        return Ok(false);
    };
    let output = fleet.output(id);
    let Some(copy) = file.current.data.get(&file.public) else {
        return Err(Error::Input(format!(
            "{id}: the store holds no copy of {output} to rewrap; run `rumor new --reencrypt {id}` (a fresh data key), then `rumor rekey`"
        )));
    };
    let integrity = |e: crate::sops::SopsError| {
        Error::Integrity(format!("{id}: the store's copy of {output}: {e}"))
    };
    let text = crate::sops::rewrap(copy, &file.recipients, &file.identities).map_err(integrity)?;
    let changed = text.trim_end() != copy.trim_end();
    if changed {
        let mut data: Data = file.current.data.clone();
        // Stores keep values trimmed, as the engine's exports do.
        data.insert(file.public.clone(), Zeroizing::new(text.trim().to_owned()));
        handle.write(&file.path, &data, Some(file.current.version))?;
        let base = file.path.trim_end_matches("/current");
        handle.write_with(
            &format!("{base}/{}", stamp(time::OffsetDateTime::now_utc())),
            &data,
            None,
            &crate::store::Provenance::new("rekey", "rekey", None),
        )?;
    }
    // Git gets the store's bytes, also when a killed run wrote only the store.
    let wanted = format!("{}\n", text.trim_end());
    let in_git = fleet.read(&output)?;
    if in_git.as_deref() != Some(wanted.as_bytes()) {
        fleet.write(&output, wanted.as_bytes(), 0o644)?;
        return Ok(true);
    }
    Ok(changed)
}

/// The name of a timestamped store version, as the engine writes them.
fn stamp(now: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year][month][day][hour][minute][second]");
    now.format(&f)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

/// For `rumor check`: how a device file's recipients differ from what its
/// store entry and its spec (rendered by [`crate::device::spec`]) say;
/// `None` when they agree or when the device is not provisioned.
pub(crate) fn device_mismatch(
    fleet: &Fleet,
    handle: &dyn Store,
    identities: &[Identity],
    id: &str,
    spec: &Spec,
    text: &str,
) -> Option<String> {
    let file = device_file(fleet, handle, identities, id, spec).ok()??;
    let have: BTreeSet<String> = crate::sops::recipients_of(text).ok()?.into_iter().collect();
    let want: BTreeSet<String> = file.recipients.iter().map(ToString::to_string).collect();
    let extra: Vec<&str> = have.difference(&want).map(String::as_str).collect();
    let missing: Vec<&str> = want.difference(&have).map(String::as_str).collect();
    if extra.is_empty() && missing.is_empty() {
        return None;
    }
    let mut why = Vec::new();
    if !missing.is_empty() {
        why.push(format!("not encrypted to {}", missing.join(", ")));
    }
    if !extra.is_empty() {
        why.push(format!("still encrypted to {}", extra.join(", ")));
    }
    Some(format!(
        "{}: {} (rumor.toml admins.recipients or the device key changed); run `rumor rekey`",
        fleet.output(id),
        why.join("; ")
    ))
}

/// For `rumor check`: whether the local store is recorded as encrypted to
/// another admin set than rumor.toml lists. A store whose set was never
/// recorded (made before rumor recorded it) cannot be told from its files:
/// age headers do not name recipients.
pub(crate) fn store_mismatch(fleet: &Fleet, identities: &[Identity]) -> Option<String> {
    if fleet.settings.store.kind != StoreKind::Local {
        return None;
    }
    let rel = format!("{}/{STORE_RECORD}", fleet.settings.store.path);
    let bytes = fleet.read(&rel).ok()??;
    let decryptor = age::Decryptor::new(age::armor::ArmoredReader::new(&bytes[..])).ok()?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
        .ok()?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut reader, &mut text).ok()?;
    let recorded: BTreeSet<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let wanted: Vec<String> = fleet.recipients().iter().map(ToString::to_string).collect();
    let wanted: BTreeSet<&str> = wanted.iter().map(String::as_str).collect();
    (recorded != wanted).then(|| format!("{rel}: the local store is encrypted to other admins than rumor.toml's admins.recipients; run `rumor rekey`"))
}

/// The admins, for `rumor admins list`.
pub(crate) fn list(fleet: &Fleet) -> Vec<String> {
    fleet.settings.admins.recipients.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_checked() {
        let a = Identity::generate().to_public().to_string();
        let b = Identity::generate().to_public().to_string();
        let one = vec![a.clone()];
        assert_eq!(
            changed(&one, Change::Add(&b)).unwrap(),
            [a.clone(), b.clone()]
        );
        assert_eq!(
            changed(&[a.clone(), b.clone()], Change::Remove(&a)).unwrap(),
            std::slice::from_ref(&b)
        );
        for (change, says) in [
            (Change::Add(&a), "already"),
            (Change::Add("age1nope"), "not an age recipient"),
            (Change::Add("ssh-ed25519 AAAA"), "SSH"),
            (Change::Remove(&a), "last admin"),
            (Change::Remove(&b), "is not in"),
        ] {
            let e = changed(&one, change).err().unwrap();
            assert_eq!(e.exit_code(), 3);
            assert!(e.to_string().contains(says), "{e}");
            assert_eq!(e.to_string().lines().count(), 1);
        }
    }
}
