//! Reading and writing files that someone else may have planted.
//!
//! Anyone who can push to a fleet's repository controls what is at its
//! paths: a symlink to `~/.config/rumor/identity.txt` where rumor expects
//! `devices/.allocations`, a FIFO where it expects a device file, or
//! `/dev/zero`. So every fleet path is opened relative to the fleet
//! directory with `openat2(RESOLVE_BENEATH)`, which refuses any `..` or
//! symlink that would lead out of it, with `O_NONBLOCK` so a FIFO cannot
//! hang the open, and is then checked to be a regular file within a size
//! limit before a byte is read. Writes open their parent directory the
//! same way, so a symlinked `secrets/` cannot send a device file elsewhere.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// The most rumor reads from one file it did not make in this run. The
/// largest real inputs (a device file, a store entry, the allocation
/// ledger of a large fleet) are far below it.
pub(crate) const MAX_READ: u64 = 16 << 20;

/// Why a file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// There is nothing at the path.
    Missing,
    /// Something is there, but rumor will not read it: the reason.
    Refused(String),
    /// The OS failed.
    Io(io::Error),
}

impl ReadError {
    /// The reason in words, for messages that already name the path.
    pub fn reason(&self) -> String {
        match self {
            ReadError::Missing => "no such file".into(),
            ReadError::Refused(why) => why.clone(),
            ReadError::Io(e) => crate::error::io_reason(e),
        }
    }
}

fn refused(errno: Errno, root: &Path) -> ReadError {
    match errno {
        Errno::NOENT => ReadError::Missing,
        // RESOLVE_BENEATH answers EXDEV for a path that escapes, ELOOP for
        // a final symlink under O_NOFOLLOW.
        Errno::XDEV => ReadError::Refused(format!(
            "leads outside {} (through a symlink or '..'); rumor reads only files inside it",
            root.display()
        )),
        Errno::LOOP => ReadError::Refused("is a symbolic link; rumor follows none here".into()),
        Errno::NOTDIR => ReadError::Refused("has a part that is not a directory".into()),
        e => ReadError::Io(e.into()),
    }
}

/// Whether `rel` is a plain relative path: no root, no `..`.
pub(crate) fn is_plain_relative(rel: &Path) -> bool {
    !rel.as_os_str().is_empty()
        && rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Opens `rel` beneath `root` with `flags`, never leaving `root`.
fn open_beneath(root: &Path, rel: &Path, flags: OFlags, mode: Mode) -> Result<OwnedFd, ReadError> {
    if !is_plain_relative(rel) {
        return Err(ReadError::Refused(format!(
            "is not a relative path inside {}",
            root.display()
        )));
    }
    let dir = rustix::fs::open(
        root,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| refused(e, root))?;
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    match rustix::fs::openat2(&dir, rel, flags | OFlags::CLOEXEC, mode, resolve) {
        Ok(fd) => Ok(fd),
        // Kernels before 5.6 (and some sandboxes) lack openat2: walk the
        // path one component at a time and follow no symlink at all.
        Err(Errno::NOSYS) | Err(Errno::PERM) => {
            walk_no_symlinks(dir, rel, flags, mode).map_err(|e| refused(e, root))
        }
        Err(e) => Err(refused(e, root)),
    }
}

fn walk_no_symlinks(
    mut dir: OwnedFd,
    rel: &Path,
    flags: OFlags,
    mode: Mode,
) -> Result<OwnedFd, Errno> {
    let parts: Vec<&std::ffi::OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p),
            _ => None,
        })
        .collect();
    let Some((last, parents)) = parts.split_last() else {
        return Err(Errno::INVAL);
    };
    for part in parents {
        dir = rustix::fs::openat(
            &dir,
            *part,
            OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
    }
    rustix::fs::openat(
        &dir,
        *last,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        mode,
    )
}

/// The status of an open descriptor, refused unless it is a regular file.
pub(crate) fn regular_stat(fd: &OwnedFd) -> Result<rustix::fs::Stat, ReadError> {
    let stat = rustix::fs::fstat(fd).map_err(|e| ReadError::Io(e.into()))?;
    let kind = FileType::from_raw_mode(stat.st_mode);
    if kind != FileType::RegularFile {
        let what = match kind {
            FileType::Directory => "a directory",
            FileType::Fifo => "a FIFO",
            FileType::CharacterDevice => "a character device",
            FileType::BlockDevice => "a block device",
            FileType::Socket => "a socket",
            FileType::Symlink => "a symbolic link",
            _ => "not a plain file",
        };
        return Err(ReadError::Refused(format!("is {what}, not a regular file")));
    }
    Ok(stat)
}

/// Reads a regular file from an open descriptor, within `limit` bytes.
fn read_regular_fd(fd: OwnedFd, limit: u64) -> Result<Vec<u8>, ReadError> {
    let stat = regular_stat(&fd)?;
    let too_big = || ReadError::Refused(format!("is larger than {} MiB", limit >> 20));
    if u64::try_from(stat.st_size).unwrap_or(u64::MAX) > limit {
        return Err(too_big());
    }
    let mut out = Vec::with_capacity(usize::try_from(stat.st_size).unwrap_or(0));
    // The file may grow after fstat; never read more than the limit.
    File::from(fd)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(ReadError::Io)?;
    if out.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(out)
}

/// Reads the regular file `rel` beneath `root` (a fleet or a working
/// directory), following no symlink out of it, within `limit` bytes.
pub(crate) fn read_beneath(root: &Path, rel: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let fd = open_beneath(
        root,
        rel,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
    )?;
    read_regular_fd(fd, limit)
}

/// Reads a file the user named (a spec on the command line, an identity
/// file): wherever it is, but only a regular file within `limit` bytes, and
/// never blocking on a FIFO.
pub(crate) fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| refused(e, path.parent().unwrap_or(Path::new("/"))))?;
    read_regular_fd(fd, limit)
}

/// Opens the directory `rel` beneath `root`, creating what is missing with
/// `mode` (an empty `rel` is `root` itself).
pub(crate) fn dir_beneath(root: &Path, rel: &Path, mode: u32) -> Result<OwnedFd, ReadError> {
    let dir_flags = OFlags::DIRECTORY | OFlags::RDONLY;
    if rel.as_os_str().is_empty() || rel == Path::new(".") {
        return rustix::fs::open(root, dir_flags | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| refused(e, root));
    }
    match open_beneath(root, rel, dir_flags, Mode::empty()) {
        Err(ReadError::Missing) => {}
        other => return other,
    }
    // Create one level at a time, each opened beneath root again, so a
    // symlink swapped in meanwhile is still caught.
    let mut sofar = std::path::PathBuf::new();
    for part in rel.components() {
        sofar.push(part);
        match open_beneath(root, &sofar, dir_flags, Mode::empty()) {
            Ok(_) => continue,
            Err(ReadError::Missing) => {}
            Err(e) => return Err(e),
        }
        let parent = sofar.parent().map(Path::to_path_buf).unwrap_or_default();
        let parent_fd = if parent.as_os_str().is_empty() {
            rustix::fs::open(root, dir_flags | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| refused(e, root))?
        } else {
            open_beneath(root, &parent, dir_flags, Mode::empty())?
        };
        let name = sofar
            .file_name()
            .ok_or_else(|| ReadError::Refused("has no name".into()))?;
        match rustix::fs::mkdirat(&parent_fd, name, Mode::from_raw_mode(mode)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(refused(e, root)),
        }
    }
    open_beneath(root, rel, dir_flags, Mode::empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn refuses_what_could_leak_or_hang() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("identity.txt");
        std::fs::write(&secret, "AGE-SECRET-KEY-1").unwrap();
        std::fs::write(root.path().join("ok"), "fine").unwrap();
        std::fs::create_dir(root.path().join("sub")).unwrap();
        symlink(&secret, root.path().join("out")).unwrap();
        symlink(outside.path(), root.path().join("outdir")).unwrap();
        symlink("../ok", root.path().join("sub/inside")).unwrap();
        assert!(std::process::Command::new("mkfifo")
            .arg(root.path().join("fifo"))
            .status()
            .unwrap()
            .success());
        symlink("/dev/zero", root.path().join("zero")).unwrap();
        std::fs::write(root.path().join("big"), vec![b'x'; 2048]).unwrap();

        let read = |p: &str| read_beneath(root.path(), Path::new(p), 1024);
        assert_eq!(read("ok").unwrap(), b"fine");
        assert_eq!(
            read("sub/inside").unwrap(),
            b"fine",
            "a symlink that stays inside is fine"
        );
        assert!(matches!(read("missing"), Err(ReadError::Missing)));
        for (bad, why) in [
            ("out", "outside"),
            ("outdir/identity.txt", "outside"),
            ("../x", "relative path"),
            ("/etc/passwd", "relative path"),
            ("fifo", "FIFO"),
            ("zero", "outside"),
            ("big", "larger than"),
            ("sub", "directory"),
        ] {
            match read(bad) {
                Err(ReadError::Refused(r)) => assert!(r.contains(why), "{bad}: {r}"),
                Err(e) => panic!("{bad}: {e:?}"),
                Ok(_) => panic!("{bad} was read"),
            }
        }
        assert!(matches!(
            read_regular(&root.path().join("fifo"), 1024),
            Err(ReadError::Refused(_))
        ));
        assert!(matches!(
            read_regular(Path::new("/dev/zero"), 1024),
            Err(ReadError::Refused(_))
        ));
        assert_eq!(read_regular(&secret, 1024).unwrap(), b"AGE-SECRET-KEY-1");

        assert!(dir_beneath(root.path(), Path::new("a/b/c"), 0o755).is_ok());
        assert!(root.path().join("a/b/c").is_dir());
        assert!(matches!(
            dir_beneath(root.path(), Path::new("outdir/x"), 0o755),
            Err(ReadError::Refused(_))
        ));
        assert!(!outside.path().join("x").exists());
    }
}
