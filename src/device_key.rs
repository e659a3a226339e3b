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

use crate::engine::Outcome;
use crate::error::Error;
use crate::fleet::Fleet;

/// The stored name of the device's public key.
const PUBLIC: &str = "age.pub";

fn marker(id: &str) -> String {
    format!("devices/{id}.inject-pending")
}

/// After a renew: when the run rotated the device's key, records that its
/// image needs the new one; true when it did. The run's own outcome says
/// so, with no store read of its own.
pub(crate) fn note_renewal(fleet: &Fleet, id: &str, outcome: &Outcome) -> Result<bool, Error> {
    if !outcome.changed.contains(PUBLIC) {
        return Ok(false);
    }
    let Some(public) = outcome.workspace.text(PUBLIC) else {
        return Ok(false);
    };
    fleet.write(
        &marker(id),
        format!("{}\n", public.trim()).as_bytes(),
        0o644,
    )?;
    Ok(true)
}

/// For `rumor check`: the device's key was renewed since its image was
/// last injected.
pub(crate) fn pending(fleet: &Fleet, id: &str) -> Option<String> {
    fleet.read(&marker(id)).ok()??;
    Some(format!(
        "the device key (age.key) was renewed; the device's image still holds the old one, which cannot open {}: run `rumor inject {id} <image>`",
        fleet.output(id)
    ))
}

/// After a successful inject of the device's current key.
pub(crate) fn injected(fleet: &Fleet, id: &str) -> Result<(), Error> {
    let path = fleet.dir.join(marker(id));
    // remove_file does not follow a symlink: a planted link is removed, not its target.
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&path, &e)),
        _ => Ok(()),
    }
}
