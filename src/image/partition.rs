//! Choosing the filesystem that receives the key, from what guestfish lists.
//!
//! A NixOS sd-image has a vfat `FIRMWARE` partition (the Raspberry Pi boot
//! files) and an ext4 root labelled `NIXOS_SD`. The key belongs on the root;
//! the firmware partition is never a candidate, whatever its number, because
//! the Pi's boot ROM reads it and nothing on it is private.

use std::path::Path;

use super::error::ImageError;

/// Which partition of the image receives the key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Partition {
    /// The ext4 filesystem labelled `NIXOS_SD`, else the only Linux one.
    #[default]
    Auto,
    /// Partition N of the disk (`/dev/sdaN` inside the appliance).
    Number(u32),
}

/// The root label of NixOS sd-images.
pub(crate) const NIXOS_LABEL: &str = "NIXOS_SD";

/// Filesystem types a NixOS root can have.
const LINUX_TYPES: [&str; 5] = ["ext2", "ext3", "ext4", "btrfs", "xfs"];

/// One line of guestfish's `list-filesystems`, plus its label once known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Filesystem {
    /// The appliance device, e.g. `/dev/sda2`.
    pub device: String,
    /// The type guestfish reports, e.g. `ext4`, `vfat`, `unknown`.
    pub fstype: String,
    /// The filesystem label, when read (empty labels are `None`).
    pub label: Option<String>,
}

impl Filesystem {
    /// Whether this can be a Linux root.
    pub(crate) fn is_linux(&self) -> bool {
        LINUX_TYPES.contains(&self.fstype.as_str())
    }

    /// The partition number of a `/dev/sdXN` device.
    pub(crate) fn number(&self) -> Option<u32> {
        let rest = self.device.strip_prefix("/dev/sd")?;
        let digits = rest.trim_start_matches(|c: char| c.is_ascii_lowercase());
        if digits.len() == rest.len() {
            return None;
        }
        digits.parse().ok()
    }

    fn describe(&self) -> String {
        format!("{} ({})", self.device, self.fstype)
    }
}

/// Parses `list-filesystems` output (`/dev/sda1: vfat` per line).
pub(crate) fn parse_list(output: &str) -> Vec<Filesystem> {
    output
        .lines()
        .filter_map(|line| line.rsplit_once(": "))
        .map(|(device, fstype)| Filesystem {
            device: device.trim().to_string(),
            fstype: fstype.trim().to_string(),
            label: None,
        })
        .collect()
}

/// Picks the filesystem for `wanted`. `found` must carry labels for its
/// Linux entries when `wanted` is [`Partition::Auto`].
pub(crate) fn choose<'a>(
    found: &'a [Filesystem],
    wanted: Partition,
    image: &Path,
) -> Result<&'a Filesystem, ImageError> {
    match wanted {
        Partition::Number(number) => {
            let fs = found
                .iter()
                .find(|f| f.number() == Some(number))
                .ok_or_else(|| ImageError::PartitionNotFound {
                    image: image.to_path_buf(),
                    number,
                    found: describe_all(found.iter()),
                })?;
            if !fs.is_linux() {
                return Err(ImageError::NotLinuxFilesystem {
                    image: image.to_path_buf(),
                    number,
                    fstype: fs.fstype.clone(),
                });
            }
            Ok(fs)
        }
        Partition::Auto => {
            let linux: Vec<&Filesystem> = found.iter().filter(|f| f.is_linux()).collect();
            let labelled: Vec<&Filesystem> = linux
                .iter()
                .copied()
                .filter(|f| f.fstype == "ext4" && f.label.as_deref() == Some(NIXOS_LABEL))
                .collect();
            match (labelled.as_slice(), linux.as_slice()) {
                ([one], _) => Ok(one),
                ([], []) => Err(ImageError::NoRootFilesystem {
                    image: image.to_path_buf(),
                }),
                ([], [one]) => Ok(one),
                // Two NIXOS_SD roots are as ambiguous as two unlabelled ones.
                ([], many) | (many, _) => Err(ImageError::AmbiguousRoot {
                    image: image.to_path_buf(),
                    candidates: describe_all(many.iter().copied()),
                }),
            }
        }
    }
}

fn describe_all<'a>(found: impl Iterator<Item = &'a Filesystem>) -> String {
    let all: Vec<String> = found.map(Filesystem::describe).collect();
    if all.is_empty() {
        "nothing".to_string()
    } else {
        all.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(device: &str, fstype: &str, label: Option<&str>) -> Filesystem {
        Filesystem {
            device: device.into(),
            fstype: fstype.into(),
            label: label.map(String::from),
        }
    }

    #[test]
    fn parses_list_filesystems() {
        let list = parse_list("/dev/sda1: vfat\n/dev/sda2: ext4\n/dev/vg/root: xfs\n");
        assert_eq!(list.len(), 3);
        assert_eq!(list[1], fs("/dev/sda2", "ext4", None));
        assert_eq!(list[1].number(), Some(2));
        assert_eq!(list[2].number(), None);
        assert_eq!(fs("/dev/sdab12", "ext4", None).number(), Some(12));
        assert_eq!(fs("/dev/sda", "unknown", None).number(), None);
    }

    #[test]
    fn auto_prefers_nixos_sd_and_never_takes_vfat() {
        let image = Path::new("x.img");
        let nixos = [
            fs("/dev/sda1", "vfat", Some("FIRMWARE")),
            fs("/dev/sda2", "ext4", Some("NIXOS_SD")),
            fs("/dev/sda3", "xfs", None),
        ];
        assert_eq!(
            choose(&nixos, Partition::Auto, image).unwrap().device,
            "/dev/sda2"
        );
        let single = [
            fs("/dev/sda1", "vfat", None),
            fs("/dev/sda2", "btrfs", None),
        ];
        assert_eq!(
            choose(&single, Partition::Auto, image).unwrap().device,
            "/dev/sda2"
        );
        let vfat_only = [fs("/dev/sda1", "vfat", Some("NIXOS_SD"))];
        assert!(matches!(
            choose(&vfat_only, Partition::Auto, image),
            Err(ImageError::NoRootFilesystem { .. })
        ));
        assert!(matches!(
            choose(&[], Partition::Auto, image),
            Err(ImageError::NoRootFilesystem { .. })
        ));
    }

    #[test]
    fn auto_refuses_to_guess_between_linux_filesystems() {
        let image = Path::new("x.img");
        let two = [fs("/dev/sda2", "ext4", None), fs("/dev/sda3", "xfs", None)];
        let err = choose(&two, Partition::Auto, image).unwrap_err();
        assert!(
            err.to_string()
                .contains("/dev/sda2 (ext4), /dev/sda3 (xfs)"),
            "{err}"
        );
        assert!(err.to_string().contains("--partition N"), "{err}");
        let twice = [
            fs("/dev/sda2", "ext4", Some("NIXOS_SD")),
            fs("/dev/sda3", "ext4", Some("NIXOS_SD")),
        ];
        assert!(matches!(
            choose(&twice, Partition::Auto, image),
            Err(ImageError::AmbiguousRoot { .. })
        ));
    }

    #[test]
    fn explicit_number_must_be_linux() {
        let image = Path::new("x.img");
        let list = [
            fs("/dev/sda1", "vfat", None),
            fs("/dev/sda2", "ext4", None),
            fs("/dev/sda3", "ext4", None),
        ];
        assert_eq!(
            choose(&list, Partition::Number(3), image).unwrap().device,
            "/dev/sda3"
        );
        assert!(matches!(
            choose(&list, Partition::Number(1), image),
            Err(ImageError::NotLinuxFilesystem { number: 1, .. })
        ));
        let err = choose(&list, Partition::Number(9), image).unwrap_err();
        assert!(matches!(
            err,
            ImageError::PartitionNotFound { number: 9, .. }
        ));
        assert!(err.to_string().contains("/dev/sda1 (vfat)"), "{err}");
    }
}
