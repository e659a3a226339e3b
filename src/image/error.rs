//! Why writing a key into a disk image failed.
//!
//! Every message is one line that names the image (and partition or path
//! where it matters) and says what to do next. None carries the key: the
//! key only ever travels on guestfish's stdin, and guestfish's stderr is
//! redacted of it anyway before it is quoted here.

use std::path::PathBuf;

/// Why [`inject`](super::inject) or [`plan`](super::plan) failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// `guestfish` is not on PATH.
    #[error("guestfish is not installed; install Debian's libguestfs-tools (apt-get install libguestfs-tools)")]
    GuestfishMissing,
    /// The image file does not exist.
    #[error("image '{}' not found; build it first (ci/build-image.sh) or check the path", image.display())]
    ImageNotFound {
        /// The image asked for.
        image: PathBuf,
    },
    /// The image (or, for `.img.zst`, its directory) cannot be written.
    #[error("image '{}' is not writable: {reason}; copy it somewhere you own (nix store paths are read-only)", image.display())]
    ImageNotWritable {
        /// The image.
        image: PathBuf,
        /// The OS's reason.
        reason: String,
    },
    /// Reading, decompressing or recompressing the image failed.
    #[error("image '{}': {reason}", image.display())]
    ImageIo {
        /// The image.
        image: PathBuf,
        /// What failed.
        reason: String,
    },
    /// No ext2/3/4, btrfs or xfs filesystem on the image.
    #[error("image '{}' has no Linux root filesystem (ext2/3/4, btrfs, xfs); is it a NixOS sd-image?", image.display())]
    NoRootFilesystem {
        /// The image.
        image: PathBuf,
    },
    /// Several Linux filesystems and none labelled `NIXOS_SD`.
    #[error("image '{}' has several Linux filesystems ({candidates}) and none labelled NIXOS_SD; choose one with --partition N", image.display())]
    AmbiguousRoot {
        /// The image.
        image: PathBuf,
        /// e.g. `/dev/sda2 (ext4), /dev/sda3 (xfs)`.
        candidates: String,
    },
    /// `--partition N` names no filesystem.
    #[error("image '{}' has no filesystem on partition {number} (found: {found}); check --partition", image.display())]
    PartitionNotFound {
        /// The image.
        image: PathBuf,
        /// The partition asked for.
        number: u32,
        /// What guestfish listed, e.g. `/dev/sda1 (vfat)`.
        found: String,
    },
    /// `--partition N` is not a Linux filesystem (e.g. the vfat firmware).
    #[error("partition {number} of image '{}' is {fstype}, not a Linux root filesystem; choose the NIXOS_SD partition with --partition N", image.display())]
    NotLinuxFilesystem {
        /// The image.
        image: PathBuf,
        /// The partition asked for.
        number: u32,
        /// Its filesystem type.
        fstype: String,
    },
    /// The in-image key path is unusable.
    #[error("key path '{path}' {reason}; set [image] key_path in rumor.toml (default /root/host.scrt.key)")]
    InvalidPath {
        /// The path asked for.
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// The file mode is not a permission mode.
    #[error("mode {mode:o} is not a file permission mode; use an octal mode such as 400")]
    InvalidMode {
        /// The mode asked for.
        mode: u32,
    },
    /// The mode gives the key to someone besides its owner, or has special bits.
    #[error("mode {mode:04o} gives the group or others access to the key, or sets setuid, setgid or sticky; use 0400 or 0600")]
    ModeTooOpen {
        /// The mode asked for.
        mode: u32,
    },
    /// The key bytes cannot be written (empty, or a NUL guestfish cannot carry).
    #[error(
        "the key to inject {reason}; expected an age identity (AGE-SECRET-KEY-1...) from the store"
    )]
    InvalidKey {
        /// Why, never the key itself.
        reason: String,
    },
    /// guestfish exited or answered unexpectedly.
    #[error("guestfish failed on image '{}': {detail} (rerun with LIBGUESTFS_DEBUG=1 for details; without KVM set LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg)", image.display())]
    Guestfish {
        /// The image.
        image: PathBuf,
        /// The last line guestfish wrote to stderr, or what was unexpected.
        detail: String,
    },
    /// The key read back from the image differs from what was written.
    #[error("verifying '{path}' in image '{}' failed: {what}; the image may be damaged, rebuild it", image.display())]
    VerifyFailed {
        /// The image.
        image: PathBuf,
        /// The key path inside the image.
        path: String,
        /// What differed (a hash, a mode, an owner; never the key).
        what: String,
    },
}

impl ImageError {
    /// The crate error, with the exit code of its kind: guestfish and the
    /// image file are local I/O (6), a failed read-back is integrity (5),
    /// everything else (a path, a mode, a partition) is input (3).
    /// `label` names the command (`inject`).
    pub fn into_error(self, label: &str) -> crate::error::Error {
        use crate::error::Kind;
        let kind = match self {
            ImageError::GuestfishMissing
            | ImageError::Guestfish { .. }
            | ImageError::ImageIo { .. }
            | ImageError::ImageNotWritable { .. } => Kind::Io,
            ImageError::VerifyFailed { .. } => Kind::Integrity,
            _ => Kind::Input,
        };
        crate::error::Error::Entry {
            label: label.into(),
            message: self.to_string(),
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_renders_one_clear_line() {
        let image = PathBuf::from("out/pidgeon-1.img");
        let all = vec![
            ImageError::GuestfishMissing,
            ImageError::ImageNotFound {
                image: image.clone(),
            },
            ImageError::ImageNotWritable {
                image: image.clone(),
                reason: "permission denied".into(),
            },
            ImageError::ImageIo {
                image: image.clone(),
                reason: "decompressing: unknown frame descriptor".into(),
            },
            ImageError::NoRootFilesystem {
                image: image.clone(),
            },
            ImageError::AmbiguousRoot {
                image: image.clone(),
                candidates: "/dev/sda2 (ext4), /dev/sda3 (xfs)".into(),
            },
            ImageError::PartitionNotFound {
                image: image.clone(),
                number: 7,
                found: "/dev/sda1 (vfat)".into(),
            },
            ImageError::NotLinuxFilesystem {
                image: image.clone(),
                number: 1,
                fstype: "vfat".into(),
            },
            ImageError::InvalidPath {
                path: "root/key".into(),
                reason: "is not absolute".into(),
            },
            ImageError::InvalidMode { mode: 0o10000 },
            ImageError::ModeTooOpen { mode: 0o4400 },
            ImageError::InvalidKey {
                reason: "is empty".into(),
            },
            ImageError::Guestfish {
                image: image.clone(),
                detail: "libguestfs: error: could not create appliance".into(),
            },
            ImageError::VerifyFailed {
                image: image.clone(),
                path: "/root/host.scrt.key".into(),
                what: "mode is 0644, not 0400".into(),
            },
        ];
        let expected = [
            "guestfish is not installed; install Debian's libguestfs-tools (apt-get install libguestfs-tools)",
            "image 'out/pidgeon-1.img' not found; build it first (ci/build-image.sh) or check the path",
            "image 'out/pidgeon-1.img' is not writable: permission denied; copy it somewhere you own (nix store paths are read-only)",
            "image 'out/pidgeon-1.img': decompressing: unknown frame descriptor",
            "image 'out/pidgeon-1.img' has no Linux root filesystem (ext2/3/4, btrfs, xfs); is it a NixOS sd-image?",
            "image 'out/pidgeon-1.img' has several Linux filesystems (/dev/sda2 (ext4), /dev/sda3 (xfs)) and none labelled NIXOS_SD; choose one with --partition N",
            "image 'out/pidgeon-1.img' has no filesystem on partition 7 (found: /dev/sda1 (vfat)); check --partition",
            "partition 1 of image 'out/pidgeon-1.img' is vfat, not a Linux root filesystem; choose the NIXOS_SD partition with --partition N",
            "key path 'root/key' is not absolute; set [image] key_path in rumor.toml (default /root/host.scrt.key)",
            "mode 10000 is not a file permission mode; use an octal mode such as 400",
            "mode 4400 gives the group or others access to the key, or sets setuid, setgid or sticky; use 0400 or 0600",
            "the key to inject is empty; expected an age identity (AGE-SECRET-KEY-1...) from the store",
            "guestfish failed on image 'out/pidgeon-1.img': libguestfs: error: could not create appliance (rerun with LIBGUESTFS_DEBUG=1 for details; without KVM set LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg)",
            "verifying '/root/host.scrt.key' in image 'out/pidgeon-1.img' failed: mode is 0644, not 0400; the image may be damaged, rebuild it",
        ];
        assert_eq!(all.len(), expected.len());
        for (err, want) in all.iter().zip(expected) {
            let text = err.to_string();
            assert_eq!(text, want);
            assert!(!text.contains('\n'), "{text}");
            assert!(text.starts_with(char::is_lowercase), "{text}");
        }
    }
}
