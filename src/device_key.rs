//! The device's own age key, and the disk image that holds it.
//!
//! `rumor renew <device> --secret age.key` makes a new key and encrypts the
//! device file to it (under a fresh data key, since the recipient set
//! changed, so the old key opens nothing written from then on). The image
//! the device boots still holds the old key, so the device cannot open its
//! new file until `rumor inject` writes the new one. rumor cannot see into
//! flashed images, so it remembers the debt in the fleet: a plaintext
//! marker `devices/<id>.inject-pending` holding the new public key, which
//! `rumor check` reports and a successful `rumor inject` removes.

use crate::error::Error;
use crate::fleet::{Fleet, StoreHandle};

/// The stored name of the device's public key.
const PUBLIC: &str = "age.pub";

fn marker(id: &str) -> String {
    format!("devices/{id}.inject-pending")
}

/// The device's public key as the store holds it now.
pub fn public(fleet: &Fleet, handle: &dyn StoreHandle, id: &str) -> Result<Option<String>, Error> {
    let current = handle.read(&format!("{}/current", fleet.device_path(id)))?;
    Ok(current.and_then(|c| c.data.get(PUBLIC).map(|v| v.trim().to_owned())))
}

/// After a renew: when the device had a key and now has another, records
/// that its image needs the new one; true when it did.
pub fn note_renewal(
    fleet: &Fleet,
    id: &str,
    before: Option<&str>,
    after: Option<&str>,
) -> Result<bool, Error> {
    match (before, after) {
        (Some(before), Some(after)) if before != after => {
            fleet.write(&marker(id), format!("{after}\n").as_bytes(), 0o644)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// For `rumor check`: the device's key was renewed since its image was
/// last injected.
pub fn pending(fleet: &Fleet, id: &str) -> Option<String> {
    fleet.read(&marker(id)).ok()??;
    Some(format!(
        "the device key (age.key) was renewed; the device's image still holds the old one, which cannot open {}: run `rumor inject {id} <image>`",
        fleet.output(id)
    ))
}

/// After a successful inject of the device's current key.
pub fn injected(fleet: &Fleet, id: &str) -> Result<(), Error> {
    let path = fleet.dir.join(marker(id));
    // remove_file does not follow a symlink: a planted link is removed, not its target.
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&path, &e)),
        _ => Ok(()),
    }
}
