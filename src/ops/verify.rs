//! The pre-flash check (`rumor verify-image`, `rumor inject --verify`):
//! does this image hold exactly this device's current key, safely?
//!
//! What the image holds is read once, read-only ([`crate::image::verify`]);
//! everything it is compared with is read before the appliance starts, so
//! bad input (an unknown, retired or unprovisioned device) costs no
//! launch. The checks, each a [`Problem`] when it fails:
//! - the key file exists at `[image] key_path` and is a regular file;
//! - its mode is the expected one (0400) and root owns it;
//! - it is the device's current age identity (`age.key` in the store);
//! - it opens the device's own file (`secrets/<id>.yaml`: data key and MAC);
//! - it opens no other device's file (it unwraps none of their data keys).

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::device;
use crate::error::Error;
use crate::fleet::{Fleet, StoreHandle};
use crate::image::verify::{self as read, Found, KeyFile, ReadOptions};

/// What the image is checked against, read before the image is.
pub(crate) struct Expected {
    id: String,
    /// The device's current `age.key`, trimmed.
    key: Zeroizing<String>,
    /// The device's own file: (path relative to the fleet, its text).
    own: (String, String),
    /// Every other device's file that exists.
    others: Vec<(String, String)>,
    /// The key file's expected mode.
    mode: u32,
}

/// One thing wrong with the image. Each renders as one line naming the key
/// path or the device file; none carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Problem {
    /// Nothing at the key path.
    #[error("{path}: no key file on the root filesystem ({device}); write it with `rumor inject {id} <image>`")]
    Missing {
        /// The key path in the image.
        path: String,
        /// The root filesystem, e.g. `/dev/sda2`.
        device: String,
        /// The device.
        id: String,
    },
    /// Something else than a regular file at the key path.
    #[error("{path}: is {kind}, not a regular file")]
    NotRegular {
        /// The key path.
        path: String,
        /// What it is.
        kind: &'static str,
    },
    /// The mode differs from the expected one.
    #[error("{path}: mode is {mode:04o}, not {want:04o}{}", if mode & 0o077 != 0 { " (group or others can read the key)" } else { "" })]
    Mode {
        /// The key path.
        path: String,
        /// Its mode.
        mode: u32,
        /// The mode wanted.
        want: u32,
    },
    /// Not owned by root.
    #[error("{path}: owned by {uid}:{gid}, not root (0:0)")]
    Owner {
        /// The key path.
        path: String,
        /// Its owner.
        uid: u64,
        /// Its group.
        gid: u64,
    },
    /// Too large to be a key file.
    #[error("{path}: is {size} bytes, too large for an age identity file")]
    TooLarge {
        /// The key path.
        path: String,
        /// Its size.
        size: u64,
    },
    /// Not exactly one age identity.
    #[error("{path}: {what}; expected exactly one age identity (AGE-SECRET-KEY-1...)")]
    NotAnIdentity {
        /// The key path.
        path: String,
        /// What it holds instead, in words.
        what: String,
    },
    /// A valid identity, but not the device's current one.
    #[error("{path}: is not {id}'s current age identity (age.key in the store): another device's key, or one renewed since; run `rumor inject {id} <image>`")]
    NotCurrent {
        /// The key path.
        path: String,
        /// The device.
        id: String,
    },
    /// The key does not open the device's own file.
    #[error("{path}: does not open {file}: {reason}")]
    DoesNotOpen {
        /// The key path.
        path: String,
        /// The device file, relative to the fleet.
        file: String,
        /// Why.
        reason: String,
    },
    /// The key opens another device's file.
    #[error("{path}: opens {file}, {other}'s device file; a device's key must open only its own")]
    OpensOther {
        /// The key path.
        path: String,
        /// The other device file, relative to the fleet.
        file: String,
        /// The other device.
        other: String,
    },
}

impl Expected {
    /// Reads what device `id`'s image must match: refuses (one line, exit
    /// 3) an unknown, retired or unprovisioned device, or one whose device
    /// file is missing.
    pub(crate) fn load(
        fleet: &Fleet,
        handle: &dyn StoreHandle,
        id: &str,
        mode: u32,
    ) -> Result<Expected, Error> {
        let device = device::load(fleet, id)?;
        if let Some(retired) = &device.retired {
            return Err(Error::Input(format!(
                "{id} was retired at {}: its key opens nothing new and its image must not be flashed",
                retired.at
            )));
        }
        let path = format!("{}/current", fleet.device_path(id));
        let current = handle.read(&path)?.ok_or_else(|| {
            Error::Input(format!(
                "{id} is not provisioned: nothing at \"{path}\" in {}; run `rumor new {id}`",
                handle.describe()
            ))
        })?;
        let key = current.data.get("age.key").ok_or_else(|| {
            Error::Input(format!(
                "{id} has no age.key in the store; run `rumor new {id}`"
            ))
        })?;
        let key = Zeroizing::new(key.trim().to_owned());
        let own_rel = fleet.output(id);
        let own = fleet.read_text(&own_rel)?.ok_or_else(|| {
            Error::Input(format!(
                "{}: does not exist; run `rumor new {id}` to write it",
                fleet.dir.join(&own_rel).display()
            ))
        })?;
        let mut others = Vec::new();
        for other in device::ids(fleet)? {
            if other == id {
                continue;
            }
            let rel = fleet.output(&other);
            if let Some(text) = fleet.read_text(&rel)? {
                others.push((rel, text));
            }
        }
        Ok(Expected {
            id: id.to_owned(),
            key,
            own: (own_rel, own),
            others,
            mode,
        })
    }

    /// The problems of what was found in the image; empty when it is ready
    /// to flash.
    pub(crate) fn check(&self, found: &Found, path: &str) -> Vec<Problem> {
        let path = path.to_owned();
        let (mode, uid, gid, size, content) = match &found.file {
            KeyFile::Missing => {
                return vec![Problem::Missing {
                    path,
                    device: found.device.clone(),
                    id: self.id.clone(),
                }]
            }
            KeyFile::NotRegular { kind } => return vec![Problem::NotRegular { path, kind }],
            KeyFile::Regular {
                mode,
                uid,
                gid,
                size,
                content,
            } => (*mode, *uid, *gid, *size, content),
        };
        let mut problems = Vec::new();
        if mode != self.mode {
            problems.push(Problem::Mode {
                path: path.clone(),
                mode,
                want: self.mode,
            });
        }
        if uid != 0 || gid != 0 {
            problems.push(Problem::Owner {
                path: path.clone(),
                uid,
                gid,
            });
        }
        let Some(content) = content else {
            problems.push(Problem::TooLarge { path, size });
            return problems;
        };
        let identities = match identities(content) {
            Ok(ids) => ids,
            Err(what) => {
                problems.push(Problem::NotAnIdentity { path, what });
                return problems;
            }
        };
        if !self.is_current(&identities) {
            problems.push(Problem::NotCurrent {
                path: path.clone(),
                id: self.id.clone(),
            });
        }
        let identities: Vec<crate::identity::Identity> =
            identities.into_iter().map(Into::into).collect();
        let (own_rel, own_text) = &self.own;
        if let Err(e) = crate::sops::decrypt(own_text, &identities) {
            let reason = match e {
                crate::sops::SopsError::NoMatchingIdentity { .. } => {
                    "the key is not among its recipients".to_owned()
                }
                e => e.to_string(),
            };
            problems.push(Problem::DoesNotOpen {
                path: path.clone(),
                file: own_rel.clone(),
                reason,
            });
        }
        for (rel, text) in &self.others {
            // A file that cannot even be parsed opens for nobody.
            if crate::sops::opens(text, &identities).unwrap_or(false) {
                problems.push(Problem::OpensOther {
                    path: path.clone(),
                    file: rel.clone(),
                    other: other_id(rel),
                });
            }
        }
        problems
    }

    /// Whether the image's one identity is the store's `age.key`, compared
    /// in constant time.
    fn is_current(&self, identities: &[age::x25519::Identity]) -> bool {
        use age::secrecy::ExposeSecret;
        let [only] = identities else {
            return false;
        };
        let text = only.to_string();
        bool::from(text.expose_secret().as_bytes().ct_eq(self.key.as_bytes()))
    }
}

/// The device id of a device file path (its file stem), for messages.
fn other_id(rel: &str) -> String {
    std::path::Path::new(rel)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The age identities of a key file's bytes (`#` comments and blank lines
/// allowed, as age-keygen writes them), or what is wrong, in words that
/// never quote the content.
fn identities(content: &[u8]) -> Result<Vec<age::x25519::Identity>, String> {
    use std::str::FromStr;
    let text = std::str::from_utf8(content).map_err(|_| "is not text".to_owned())?;
    let mut parsed = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let identity = age::x25519::Identity::from_str(line)
            .map_err(|_| format!("line {} is not an age identity", n + 1))?;
        parsed.push(identity);
    }
    match parsed.len() {
        0 => Err("holds no age identity".to_owned()),
        1 => Ok(parsed),
        n => Err(format!("holds {n} age identities")),
    }
}

/// Reads device `id`'s image and checks it against `expected`.
pub(crate) fn image(expected: &Expected, opts: &ReadOptions) -> Result<Vec<Problem>, Error> {
    let found = read::read_key(opts).map_err(|e| e.into_error("verify-image"))?;
    Ok(expected.check(&found, &opts.path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn every_problem_renders_one_line() {
        let path = "/root/host.scrt.key".to_owned();
        let all = [
            Problem::Missing {
                path: path.clone(),
                device: "/dev/sda2".into(),
                id: "pidgeon-1".into(),
            },
            Problem::NotRegular {
                path: path.clone(),
                kind: "a directory",
            },
            Problem::Mode {
                path: path.clone(),
                mode: 0o404,
                want: 0o400,
            },
            Problem::Mode {
                path: path.clone(),
                mode: 0o600,
                want: 0o400,
            },
            Problem::Owner {
                path: path.clone(),
                uid: 1000,
                gid: 100,
            },
            Problem::TooLarge {
                path: path.clone(),
                size: 70000,
            },
            Problem::NotAnIdentity {
                path: path.clone(),
                what: "holds 2 age identities".into(),
            },
            Problem::NotCurrent {
                path: path.clone(),
                id: "pidgeon-1".into(),
            },
            Problem::DoesNotOpen {
                path: path.clone(),
                file: "secrets/pidgeon-1.yaml".into(),
                reason: "the key is not among its recipients".into(),
            },
            Problem::OpensOther {
                path: path.clone(),
                file: "secrets/pidgeon-2.yaml".into(),
                other: "pidgeon-2".into(),
            },
        ];
        let expected = [
            "/root/host.scrt.key: no key file on the root filesystem (/dev/sda2); write it with `rumor inject pidgeon-1 <image>`",
            "/root/host.scrt.key: is a directory, not a regular file",
            "/root/host.scrt.key: mode is 0404, not 0400 (group or others can read the key)",
            "/root/host.scrt.key: mode is 0600, not 0400",
            "/root/host.scrt.key: owned by 1000:100, not root (0:0)",
            "/root/host.scrt.key: is 70000 bytes, too large for an age identity file",
            "/root/host.scrt.key: holds 2 age identities; expected exactly one age identity (AGE-SECRET-KEY-1...)",
            "/root/host.scrt.key: is not pidgeon-1's current age identity (age.key in the store): another device's key, or one renewed since; run `rumor inject pidgeon-1 <image>`",
            "/root/host.scrt.key: does not open secrets/pidgeon-1.yaml: the key is not among its recipients",
            "/root/host.scrt.key: opens secrets/pidgeon-2.yaml, pidgeon-2's device file; a device's key must open only its own",
        ];
        for (problem, want) in all.iter().zip(expected) {
            assert_eq!(problem.to_string(), want);
        }
    }

    #[test]
    fn key_files_are_parsed_without_quoting_them() {
        let one = age::x25519::Identity::generate();
        let two = age::x25519::Identity::generate();
        let text = format!("# created\n{}\n", one.to_string().expose_secret());
        assert_eq!(identities(text.as_bytes()).unwrap().len(), 1);
        let both = format!(
            "{}\n{}\n",
            one.to_string().expose_secret(),
            two.to_string().expose_secret()
        );
        assert_eq!(
            identities(both.as_bytes()).err().unwrap(),
            "holds 2 age identities"
        );
        let garbage = identities(b"AGE-SECRET-KEY-1NOTAKEY\n").err().unwrap();
        assert!(!garbage.contains("NOTAKEY"), "{garbage}");
        assert_eq!(garbage, "line 1 is not an age identity");
        assert_eq!(identities(&[0xff, 0xfe]).err().unwrap(), "is not text");
        assert!(identities(b"# nothing\n").is_err());
    }
}
