//! What `rumor check` and `rumor list` report about a fleet.

use std::collections::BTreeSet;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::{admit, expiry, run_rendered, Flags, Opened};
use crate::device;
use crate::engine::Rotation;
use crate::error::Error;
use crate::fleet::{Fleet, Memo};
use crate::store::Store;

/// When the oldest current value of a device was first stored: walks the
/// timestamped copies back from the newest while each value stays equal.
pub(crate) fn oldest_secret(o: &Opened, id: &str) -> Result<Option<time::OffsetDateTime>, Error> {
    let base = o.fleet.device_path(id);
    let Some(current) = o.handle.read(&format!("{base}/current"))? else {
        return Ok(None);
    };
    let mut stamps: Vec<String> = o
        .handle
        .list(&base)?
        .into_iter()
        .filter(|k| k.len() == 14 && k.chars().all(|c| c.is_ascii_digit()))
        .collect();
    stamps.sort();
    let format = time::macros::format_description!("[year][month][day][hour][minute][second]");
    let mut since: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
    let mut alive: BTreeSet<&str> = current.data.keys().map(String::as_str).collect();
    for stamp in stamps.iter().rev() {
        if alive.is_empty() {
            break;
        }
        let Some(old) = o.handle.read(&format!("{base}/{stamp}"))? else {
            continue;
        };
        alive.retain(|k| {
            let same =
                old.data.get(*k).map(|v| v.as_str()) == current.data.get(*k).map(|v| v.as_str());
            if same {
                since.insert(k, stamp.clone());
            }
            same
        });
    }
    let oldest = since
        .values()
        .min()
        .and_then(|s| time::PrimitiveDateTime::parse(s, &format).ok())
        .map(|t| t.assume_utc());
    Ok(oldest)
}

/// The pairs of the plaintext device YAML a run renders.
fn plain_pairs(text: &str) -> Vec<(String, Zeroizing<String>)> {
    let Ok(serde_yaml_ng::Value::Mapping(map)) =
        serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text)
    else {
        return vec![];
    };
    map.into_iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str()?.to_owned(),
                Zeroizing::new(v.as_str()?.to_owned()),
            ))
        })
        .collect()
}

/// The `private` and `public` names of a spec's (last) SOPS generation:
/// the device file's plaintext and ciphertext in the workspace.
pub(crate) fn sops_names(spec: &crate::spec::Spec) -> Option<(String, String)> {
    let entry = spec.generations.iter().rev().find(|g| g.kind == "sops")?;
    let name = |k: &str| {
        entry
            .arguments
            .get(k)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    Some((name("private")?, name("public")?))
}

/// How a Nebula host certificate disagrees with its device file: another
/// address, or other groups (a hand-edited device file, or a certificate
/// issued for another device).
fn nebula_mismatch(device: &device::Device, fleet: &Fleet, value: &str) -> Option<String> {
    if !value.contains("-----BEGIN NEBULA CERTIFICATE-----") {
        return None;
    }
    let cert = crate::nebula::Certificate::from_pem(value).ok()?;
    if cert.details.is_ca {
        return None;
    }
    let ip: std::net::Ipv4Addr = device.ip.parse().ok()?;
    let prefix = fleet.settings.network.nebula.prefix();
    let ips: Vec<String> = cert
        .details
        .ips
        .iter()
        .map(|n| format!("{}/{}", n.addr(), n.prefix()))
        .collect();
    if ips != [format!("{ip}/{prefix}")] {
        return Some(format!(
            "is for {} but the device's ip is {ip}/{prefix}",
            ips.join(", ")
        ));
    }
    let mut have = cert.details.groups.clone();
    let mut want = device.groups.clone();
    have.sort();
    want.sort();
    (have != want).then(|| {
        format!(
            "has groups [{}] but the device file says [{}]",
            have.join(", "),
            want.join(", ")
        )
    })
}

/// The problems of one device, one line each.
pub(crate) fn device(o: &Opened, id: &str, days: u32) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = device::check_id_in(&o.fleet, id) {
        return vec![e.to_string()];
    }
    let file = o.fleet.output(id);
    let device = match device::load(&o.fleet, id) {
        Ok(d) => d,
        Err(e) => return vec![e.to_string()],
    };
    if let Ok(ip) = device.ip.parse() {
        if let Err(e) = device::check_unique(&o.fleet, id, ip, &o.owners) {
            problems.push(e.to_string());
        }
    }
    let text = match o.fleet.read_text(&file) {
        Ok(Some(t)) => t,
        Ok(None) => {
            problems.push(format!("{file}: no such file; run `rumor new {id}`"));
            return problems;
        }
        Err(e) => {
            problems.push(e.to_string());
            return problems;
        }
    };
    problems.extend(crate::device_key::pending(&o.fleet, id));
    // The spec is rendered once, and the device's stored set read once,
    // for both the recipients' check and the dry run.
    let rendered = device::spec(&o.fleet, id, &device);
    let store: Arc<dyn Store> = Arc::new(Memo::new(
        o.handle.clone(),
        format!("{}/current", o.fleet.device_path(id)),
    ));
    let flags = Flags {
        dry_run: true,
        ..Flags::default()
    };
    let outcome = rendered.as_ref().map_err(Error::to_string).and_then(|r| {
        problems.extend(crate::admins::device_mismatch(
            &o.fleet,
            store.as_ref(),
            &o.identities,
            id,
            &r.0,
            &text,
        ));
        // What the store holds, rendered the way a run would render it;
        // its workspace also has the device's own key, which opens a
        // device file encrypted to the device alone (as the original
        // profile's are).
        admit(o, id, &device, flags)
            .and_then(|()| run_rendered(o, store, r, Rotation::Nothing, "new", flags))
            .map_err(|e| e.to_string())
    });
    let outcome = match outcome {
        Ok(outcome) => Some(outcome),
        Err(e) => {
            problems.push(format!("cannot render from the store: {e}"));
            None
        }
    };
    let mut identities = o.identities.clone();
    if let Some(outcome) = &outcome {
        for (_, f) in outcome.workspace.iter() {
            if let Some(t) = f
                .text()
                .filter(|t| t.trim_start().starts_with("AGE-SECRET-KEY-1"))
            {
                identities.extend(crate::identity::x25519_in(t));
            }
        }
    }
    let decrypted = match crate::sops::decrypt(&text, &identities) {
        Ok(d) => d,
        Err(e) => {
            problems.push(format!(
                "{file}: does not decrypt with the admin identity or the device's key: {e}"
            ));
            return problems;
        }
    };
    let Some(pairs) = decrypted.pairs() else {
        problems.push(format!("{file}: is not a flat map of strings"));
        return problems;
    };
    for (key, value) in &pairs {
        if let Some(why) = nebula_mismatch(&device, &o.fleet, value) {
            problems.push(format!("{file}: \"{key}\" {why}; rotate the certificate with `rumor renew {id} --secret <its name>`"));
        }
        if let Some(when) = expiry(value) {
            let left = (when - time::OffsetDateTime::now_utc()).whole_days();
            if left < days as i64 {
                problems.push(format!("{file}: \"{key}\" expires in {left} days; run `rumor renew {id} --expiring {days}`"));
            }
        }
    }
    let (Some(outcome), Some((private, _))) =
        (outcome, rendered.ok().and_then(|r| sops_names(&r.0)))
    else {
        return problems;
    };
    let expected = plain_pairs(outcome.workspace.text(&private).unwrap_or_default());
    for (key, value) in &pairs {
        match expected.iter().find(|(k, _)| k == key) {
            Some((_, v)) if v.as_str() == value.as_str() => {}
            Some(_) => problems.push(format!(
                "{file}: \"{key}\" differs from the store; run `rumor new {id}`"
            )),
            None => problems.push(format!("{file}: \"{key}\" is not in the profile")),
        }
    }
    for (k, _) in &expected {
        if !pairs.iter().any(|(key, _)| key == k) {
            problems.push(format!("{file}: \"{k}\" is missing; run `rumor new {id}`"));
        }
    }
    problems
}
