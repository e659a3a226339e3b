//! Writing a device's age key into its NixOS disk image.
//!
//! A device decrypts its SOPS file at boot with sops-nix, using an age key
//! that must already be on its root filesystem. The image step puts it
//! there: one guestfish appliance per image picks the root filesystem (the
//! ext4 labelled `NIXOS_SD`, else the only Linux one, never the vfat
//! firmware), creates the key's directory with mode 0700, writes the key
//! with mode 0400 owned by root, then reads back its SHA-256, mode and
//! owner before reporting success.
//!
//! The key travels only through guestfish's stdin pipe (see
//! [`guestfish`]): never a command line, never a plaintext file. The one
//! place it lands is the image itself, which is the point; `.img.zst`
//! images are decompressed beside themselves and recompressed atomically.
//!
//! [`verify`] reads the key back out of an image, read-only, for the
//! pre-flash check.
//!
//! guestfish honours `LIBGUESTFS_BACKEND` and `LIBGUESTFS_BACKEND_SETTINGS`
//! from the environment; machines without KVM need `direct` and
//! `force_tcg`.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub(crate) mod error;
pub(crate) mod guestfish;
pub(crate) mod partition;
pub(crate) mod verify;
pub(crate) mod zst;

pub use error::ImageError;
pub use partition::Partition;

use guestfish::{quote, stat_field, Session};

/// The default key path inside the image (`[image] key_path`).
pub(crate) const DEFAULT_KEY_PATH: &str = "/root/host.scrt.key";

/// The default mode of the key file.
pub(crate) const DEFAULT_MODE: u32 = 0o400;

/// Directories that must never be made 0700: the system would stop booting
/// or other users would lose access to it.
const SHARED_DIRS: [&str; 17] = [
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/mnt", "/nix", "/opt", "/proc", "/run",
    "/srv", "/sys", "/tmp", "/usr", "/var",
];

/// What to inject where.
#[derive(Clone, Debug)]
pub struct InjectOptions {
    /// The disk image (`.img`, or `.img.zst`).
    pub image: PathBuf,
    /// The key's absolute path inside the image.
    pub path: String,
    /// Which partition receives it.
    pub partition: Partition,
    /// The key file's mode.
    pub mode: u32,
    /// Only check and describe; change nothing.
    pub dry_run: bool,
}

impl InjectOptions {
    /// Options for `image` with the defaults: `/root/host.scrt.key`, the
    /// automatic partition, mode 0400.
    pub fn new(image: impl Into<PathBuf>) -> InjectOptions {
        InjectOptions {
            image: image.into(),
            path: DEFAULT_KEY_PATH.to_string(),
            partition: Partition::Auto,
            mode: DEFAULT_MODE,
            dry_run: false,
        }
    }
}

/// What was done (no secret in it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectReport {
    /// The image as given.
    pub image: PathBuf,
    /// The appliance device that received the key, e.g. `/dev/sda2`
    /// (empty for a dry run).
    pub device: String,
    /// Its partition number, when it is a partition.
    pub partition: Option<u32>,
    /// Its filesystem type.
    pub fstype: String,
    /// Its label.
    pub label: Option<String>,
    /// The key path inside the image.
    pub path: String,
    /// The key file's mode, as verified.
    pub mode: u32,
    /// Whether the image was a `.zst` archive (and was recompressed).
    pub compressed: bool,
    /// False for a dry run: nothing was written.
    pub written: bool,
}

/// What [`inject`] would do, one line per step, after the same checks it
/// makes before launching guestfish. No secret and no appliance.
pub fn plan(opts: &InjectOptions) -> Result<Vec<String>, ImageError> {
    let parent = check(opts)?;
    let image = opts.image.display();
    let mut lines = Vec::new();
    let raw = if zst::is_compressed(&opts.image) {
        lines.push(format!("decompress '{image}' into a temp file beside it"));
        "the decompressed copy".to_string()
    } else {
        format!("'{image}'")
    };
    lines.push(format!(
        "launch one guestfish appliance on {raw} (read-write, raw format)"
    ));
    lines.push(match opts.partition {
        Partition::Auto => "mount the root: the ext4 labelled NIXOS_SD, else the only Linux filesystem (never the vfat firmware)".to_string(),
        Partition::Number(n) => format!("mount partition {n} (/dev/sda{n}) as the root; it must be ext2/3/4, btrfs or xfs"),
    });
    lines.push(format!(
        "create {parent} if missing and set its mode to 0700"
    ));
    lines.push(format!("write the device's age key to {} with mode {:04o}, owner 0:0 (through guestfish's stdin only)", opts.path, opts.mode));
    lines.push("read it back and compare its SHA-256, mode and owner".to_string());
    if zst::is_compressed(&opts.image) {
        lines.push(format!("recompress into a temp file and rename it over '{image}'; remove the decompressed copy"));
    }
    Ok(lines)
}

/// Writes `key` into the image as `opts` says, and verifies it. With
/// `dry_run` it only makes the checks of [`plan`].
pub fn inject(opts: &InjectOptions, key: &Zeroizing<Vec<u8>>) -> Result<InjectReport, ImageError> {
    let parent = check(opts)?;
    if key.is_empty() {
        return Err(ImageError::InvalidKey {
            reason: "is empty".into(),
        });
    }
    if key.contains(&0) {
        return Err(ImageError::InvalidKey {
            reason: "contains a NUL byte".into(),
        });
    }
    let compressed = zst::is_compressed(&opts.image);
    let mut report = InjectReport {
        image: opts.image.clone(),
        device: String::new(),
        partition: None,
        fstype: String::new(),
        label: None,
        path: opts.path.clone(),
        mode: opts.mode,
        compressed,
        written: false,
    };
    if opts.dry_run {
        return Ok(report);
    }
    let binary = guestfish::find().ok_or(ImageError::GuestfishMissing)?;
    if compressed {
        let raw = zst::decompress(&opts.image)?;
        write_key(
            &binary,
            raw.path(),
            &opts.image,
            opts,
            &parent,
            key,
            &mut report,
        )?;
        zst::recompress(raw.path(), &opts.image)?;
    } else {
        write_key(
            &binary,
            &opts.image,
            &opts.image,
            opts,
            &parent,
            key,
            &mut report,
        )?;
    }
    report.written = true;
    Ok(report)
}

/// Refuses a key file mode that is not a permission mode, or that lets
/// anyone but the owner (root) read it: the key decrypts every secret of
/// the device, and setuid, setgid and sticky bits have no business on it.
pub(crate) fn check_mode(mode: u32) -> Result<(), ImageError> {
    if mode > 0o7777 {
        return Err(ImageError::InvalidMode { mode });
    }
    if mode & !0o700 != 0 {
        return Err(ImageError::ModeTooOpen { mode });
    }
    Ok(())
}

/// Refuses an image that is missing or not a regular file.
fn check_image_file(image: &std::path::Path) -> Result<(), ImageError> {
    match std::fs::metadata(image) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(ImageError::ImageIo {
            image: image.to_path_buf(),
            reason: "is not a regular file".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ImageError::ImageNotFound {
            image: image.to_path_buf(),
        }),
        Err(e) => Err(ImageError::ImageIo {
            image: image.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

/// The checks made before anything runs; returns the key's directory.
fn check(opts: &InjectOptions) -> Result<String, ImageError> {
    let parent = validate_path(&opts.path)?;
    check_mode(opts.mode)?;
    let image = &opts.image;
    check_image_file(image)?;
    // Opening for writing changes neither content nor timestamps.
    OpenOptions::new()
        .write(true)
        .open(image)
        .map_err(|e| ImageError::ImageNotWritable {
            image: image.clone(),
            reason: e.to_string(),
        })?;
    if zst::is_compressed(image) {
        drop(zst::temp_beside(image)?);
    }
    Ok(parent)
}

/// Checks the in-image path and returns its directory. Only plain names
/// are allowed, so the path needs no quoting tricks in guestfish.
fn validate_path(path: &str) -> Result<String, ImageError> {
    let refuse = |reason: &str| ImageError::InvalidPath {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    if !path.starts_with('/') {
        return Err(refuse("is not absolute"));
    }
    if !path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+@".contains(c))
    {
        return Err(refuse(
            "may only contain letters, digits, '/', '.', '_', '-', '+' and '@'",
        ));
    }
    // Checked on the text: Path::components would silently drop "." parts.
    if path[1..]
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(refuse("must name a file without empty, '.' or '..' parts"));
    }
    let as_path = Path::new(path);
    let parent = as_path
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = if parent.is_empty() {
        "/".to_string()
    } else {
        parent
    };
    if SHARED_DIRS.contains(&parent.as_str()) || parent == "/var/lib" {
        return Err(refuse(&format!("is directly in {parent}, which must not be made mode 0700; use a directory of its own such as /root")));
    }
    Ok(parent)
}

/// Picks the root filesystem as `wanted` says and mounts it on `/` with
/// `command` (`mount`, or `mount-ro` for a read-only session).
fn mount_root(
    session: &mut Session,
    wanted: Partition,
    shown: &Path,
    command: &str,
) -> Result<partition::Filesystem, ImageError> {
    let mut found = partition::parse_list(&session.exchange("list-filesystems\n")?);
    for fs in found.iter_mut().filter(|f| f.is_linux()) {
        // A leading '-' keeps guestfish going if the label cannot be read.
        let label = session.exchange(&format!("-vfs-label {}\n", fs.device))?;
        let label = label.trim();
        fs.label = (!label.is_empty()).then(|| label.to_string());
    }
    let chosen = partition::choose(&found, wanted, shown)?.clone();
    session.exchange(&format!("{command} {} /\n", chosen.device))?;
    Ok(chosen)
}

/// The guestfish session proper: pick, write, verify.
fn write_key(
    binary: &Path,
    raw: &Path,
    shown: &Path,
    opts: &InjectOptions,
    parent: &str,
    key: &Zeroizing<Vec<u8>>,
    report: &mut InjectReport,
) -> Result<(), ImageError> {
    let mut session = Session::launch(binary, raw)?;
    if let Ok(text) = std::str::from_utf8(key) {
        session.redact(Zeroizing::new(text.trim_end().to_string()));
    }
    let chosen = mount_root(&mut session, opts.partition, shown, "mount")?;
    let (path, dir) = (quote(&opts.path), quote(parent));
    session.exchange(&format!("mkdir-p {dir}\nchmod 0700 {dir}\nrm-f {path}\n"))?;
    session.write_file(&opts.path, key)?;
    session.exchange(&format!(
        "chmod 0{:o} {path}\nchown 0 0 {path}\n",
        opts.mode
    ))?;

    let verify = |what: String| ImageError::VerifyFailed {
        image: shown.to_path_buf(),
        path: opts.path.clone(),
        what,
    };
    let written = session.exchange(&format!("checksum sha256 {path}\n"))?;
    let expected = hex::encode(Sha256::digest(key.as_slice()));
    if written.trim() != expected {
        return Err(verify("its SHA-256 differs from the key's".into()));
    }
    let stat = session.exchange(&format!("lstatns {path}\n"))?;
    let mode =
        stat_field(&stat, "st_mode").ok_or_else(|| verify("guestfish reported no mode".into()))?;
    if mode & 0o170000 != 0o100000 {
        return Err(verify("it is not a regular file".into()));
    }
    if mode & 0o7777 != u64::from(opts.mode) {
        return Err(verify(format!(
            "its mode is {:04o}, not {:04o}",
            mode & 0o7777,
            opts.mode
        )));
    }
    if stat_field(&stat, "st_uid") != Some(0) || stat_field(&stat, "st_gid") != Some(0) {
        return Err(verify("it is not owned by 0:0".into()));
    }
    let dir_stat = session.exchange(&format!("lstatns {dir}\n"))?;
    if stat_field(&dir_stat, "st_mode").map(|m| m & 0o7777) != Some(0o700) {
        return Err(verify(format!("its directory {parent} is not mode 0700")));
    }
    session.finish()?;
    report.device = chosen.device.clone();
    report.partition = chosen.number();
    report.fstype = chosen.fstype;
    report.label = chosen.label;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_are_checked() {
        assert_eq!(validate_path("/root/host.scrt.key").unwrap(), "/root");
        assert_eq!(
            validate_path("/var/lib/rumor/key").unwrap(),
            "/var/lib/rumor"
        );
        for bad in [
            "root/key",
            "/root/../etc/key",
            "/root/./key",
            "/root/",
            "/etc/key",
            "/key",
            "/var/lib/key",
            "/root/a key",
            "/root/\"k",
            "/root//key",
        ] {
            assert!(
                matches!(validate_path(bad), Err(ImageError::InvalidPath { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn plan_checks_the_image_and_names_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let missing = InjectOptions::new(dir.path().join("none.img"));
        assert!(matches!(
            plan(&missing),
            Err(ImageError::ImageNotFound { .. })
        ));
        let image = dir.path().join("disk.img.zst");
        std::fs::write(&image, b"x").unwrap();
        let mut opts = InjectOptions::new(&image);
        opts.partition = Partition::Number(2);
        let lines = plan(&opts).unwrap();
        assert!(lines[0].starts_with("decompress"), "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("/dev/sda2")), "{lines:?}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("/root/host.scrt.key with mode 0400")),
            "{lines:?}"
        );
        opts.mode = 0o20000;
        assert!(matches!(plan(&opts), Err(ImageError::InvalidMode { .. })));
        for open in [0o440, 0o404, 0o4400, 0o2400, 0o1400, 0o644, 0o777] {
            opts.mode = open;
            assert!(
                matches!(plan(&opts), Err(ImageError::ModeTooOpen { .. })),
                "{open:o}"
            );
        }
        for fine in [0o400, 0o600, 0o700, 0o000] {
            assert!(check_mode(fine).is_ok(), "{fine:o}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn dry_run_and_bad_keys_touch_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        std::fs::write(&image, b"bytes").unwrap();
        let mut opts = InjectOptions::new(&image);
        let empty = Zeroizing::new(Vec::new());
        assert!(matches!(
            inject(&opts, &empty),
            Err(ImageError::InvalidKey { .. })
        ));
        let nul = Zeroizing::new(b"AGE\0".to_vec());
        assert!(matches!(
            inject(&opts, &nul),
            Err(ImageError::InvalidKey { .. })
        ));
        opts.dry_run = true;
        let report = inject(&opts, &Zeroizing::new(b"AGE-SECRET-KEY-1X\n".to_vec())).unwrap();
        assert!(!report.written);
        assert_eq!(std::fs::read(&image).unwrap(), b"bytes");
    }
}
