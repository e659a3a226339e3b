//! Reading a device key back out of a disk image, without changing it.
//!
//! The pre-flash check needs what is really in the image: the key file's
//! type, mode, owner and bytes. One guestfish appliance attaches the disk
//! read-only (`--ro`), mounts the root as [`inject`](super::inject) would
//! choose it with `mount-ro`, stats the key path without following a
//! symlink, and downloads the file to guestfish's stdout pipe, which rumor
//! reads into a buffer wiped on drop. The key never lands in a file of its
//! own; a `.img.zst` is decompressed into a temp file beside the image (as
//! `inject` does), removed on every path.

use std::fmt;
use std::path::PathBuf;

use zeroize::Zeroizing;

use super::guestfish::{self, stat_field, Session};
use super::{mount_root, validate_path, zst, ImageError, Partition};

/// The largest key file read back: an age identity file, comments and
/// all, is a few hundred bytes.
pub(crate) const MAX_KEY_FILE: u64 = 64 * 1024;

/// Where to look.
#[derive(Clone, Debug)]
pub(crate) struct ReadOptions {
    /// The disk image (`.img`, or `.img.zst`).
    pub image: PathBuf,
    /// The key's absolute path inside the image.
    pub path: String,
    /// Which partition holds it.
    pub partition: Partition,
}

/// What the image holds at the key path.
pub(crate) enum KeyFile {
    /// Nothing (or a directory on the way is missing).
    Missing,
    /// Something that is not a regular file: `"a directory"`, `"a symlink"`.
    NotRegular {
        /// What it is, in words.
        kind: &'static str,
    },
    /// A regular file.
    Regular {
        /// Its permission bits.
        mode: u32,
        /// Its owner.
        uid: u64,
        /// Its group.
        gid: u64,
        /// Its size in bytes.
        size: u64,
        /// Its bytes; `None` when it is larger than [`MAX_KEY_FILE`].
        content: Option<Zeroizing<Vec<u8>>>,
    },
}

// Written by hand: the content is a secret and must never be printed.
impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyFile::Missing => f.write_str("Missing"),
            KeyFile::NotRegular { kind } => write!(f, "NotRegular({kind})"),
            KeyFile::Regular {
                mode,
                uid,
                gid,
                size,
                ..
            } => write!(f, "Regular(mode {mode:04o}, {uid}:{gid}, {size} bytes)"),
        }
    }
}

/// The key file, and where it was found.
#[derive(Debug)]
pub(crate) struct Found {
    /// The appliance device of the root filesystem, e.g. `/dev/sda2`.
    pub device: String,
    /// What is at the key path.
    pub file: KeyFile,
}

/// Reads the key file at `opts.path` from the image, read-only, after
/// the checks of [`check`].
pub(crate) fn read_key(opts: &ReadOptions) -> Result<Found, ImageError> {
    check(opts)?;
    let binary = guestfish::find().ok_or(ImageError::GuestfishMissing)?;
    if zst::is_compressed(&opts.image) {
        let raw = zst::decompress(&opts.image)?;
        read_in(&binary, raw.path(), opts)
    } else {
        read_in(&binary, &opts.image, opts)
    }
}

/// The checks made before guestfish starts: the key path is a plain
/// absolute path, and the image is a regular file.
pub(crate) fn check(opts: &ReadOptions) -> Result<(), ImageError> {
    validate_path(&opts.path)?;
    super::check_image_file(&opts.image)
}

fn read_in(
    binary: &std::path::Path,
    raw: &std::path::Path,
    opts: &ReadOptions,
) -> Result<Found, ImageError> {
    let mut session = Session::launch_read_only(binary, raw)?;
    let chosen = mount_root(&mut session, opts.partition, &opts.image, "mount-ro")?;
    let path = guestfish::quote(&opts.path);
    // A leading '-' keeps guestfish going when the path does not exist;
    // the answer is then empty.
    let stat = session.exchange(&format!("-lstatns {path}\n"))?;
    let file = match stat_field(&stat, "st_mode") {
        None => KeyFile::Missing,
        Some(mode) => match mode & 0o170000 {
            0o100000 => {
                let size = stat_field(&stat, "st_size").unwrap_or(0);
                let content = if size <= MAX_KEY_FILE {
                    let size = usize::try_from(size).unwrap_or(0);
                    Some(session.read_file(&opts.path, size)?)
                } else {
                    None
                };
                KeyFile::Regular {
                    mode: (mode & 0o7777) as u32,
                    uid: stat_field(&stat, "st_uid").unwrap_or(u64::MAX),
                    gid: stat_field(&stat, "st_gid").unwrap_or(u64::MAX),
                    size,
                    content,
                }
            }
            0o040000 => KeyFile::NotRegular {
                kind: "a directory",
            },
            0o120000 => KeyFile::NotRegular { kind: "a symlink" },
            _ => KeyFile::NotRegular {
                kind: "a special file",
            },
        },
    };
    session.finish()?;
    Ok(Found {
        device: chosen.device,
        file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let file = KeyFile::Regular {
            mode: 0o400,
            uid: 0,
            gid: 0,
            size: 5,
            content: Some(Zeroizing::new(b"AGE-SECRET-KEY-1X".to_vec())),
        };
        let shown = format!("{file:?}");
        assert_eq!(shown, "Regular(mode 0400, 0:0, 5 bytes)");
    }

    #[test]
    fn refuses_a_bad_path_or_a_missing_image_before_any_launch() {
        let dir = tempfile::tempdir().unwrap();
        let opts = ReadOptions {
            image: dir.path().join("none.img"),
            path: "/root/host.scrt.key".into(),
            partition: Partition::Auto,
        };
        assert!(matches!(
            read_key(&opts),
            Err(ImageError::ImageNotFound { .. })
        ));
        let bad = ReadOptions {
            path: "root/key".into(),
            ..opts
        };
        assert!(matches!(
            read_key(&bad),
            Err(ImageError::InvalidPath { .. })
        ));
    }
}
