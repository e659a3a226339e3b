//! File writes that are atomic and private from the first byte.
//!
//! Every file rumor writes goes through [`write_atomic`]: a temp file in the
//! target's directory, created with its final mode (never chmod after the
//! write, so a secret is never briefly world-readable), fsynced, then
//! renamed over the target. A crash leaves the old file or the new one,
//! never half of either, plus perhaps a temp file that names its writer's
//! PID, which the next run removes with [`remove_stale_temps`].

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};

mod confined;
pub(crate) use confined::{
    dir_beneath, is_plain_relative, read_beneath, read_regular, regular_stat, ReadError, MAX_READ,
};

/// The suffix of rumor's temp files, so a scan can tell them apart.
pub(crate) const TEMP_SUFFIX: &str = ".rumor-tmp";

/// Writes `content` to `path` atomically with `mode`. Returns false, and
/// writes nothing, when the file already holds exactly these bytes with
/// this mode: idempotent runs change no byte and no timestamp.
pub(crate) fn write_atomic(path: &Path, content: &[u8], mode: u32) -> io::Result<bool> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let dir_fd = rustix::fs::open(
        dir,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    write_at(&dir_fd, dir, &name.to_string_lossy(), content, mode)
}

/// [`write_atomic`] for the path `rel` beneath `root`: the parent
/// directory is opened (and made, 0755) without leaving `root`, so a
/// symlinked directory cannot redirect the write.
pub(crate) fn write_beneath(
    root: &Path,
    rel: &Path,
    content: &[u8],
    mode: u32,
) -> Result<bool, ReadError> {
    if !is_plain_relative(rel) {
        return Err(ReadError::Refused(format!(
            "is not a relative path inside {}",
            root.display()
        )));
    }
    let name = rel
        .file_name()
        .ok_or_else(|| ReadError::Refused("has no file name".into()))?;
    let parent = rel.parent().unwrap_or(Path::new(""));
    let dir_fd = dir_beneath(root, parent, 0o755)?;
    write_at(
        &dir_fd,
        &root.join(parent),
        &name.to_string_lossy(),
        content,
        mode,
    )
    .map_err(ReadError::Io)
}

/// Whether `name` in `dir` is a regular file holding exactly `content`
/// with `mode`. Follows no symlink: a planted link is simply replaced.
fn holds(dir: &OwnedFd, name: &str, content: &[u8], mode: u32) -> bool {
    let Ok(fd) = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    let Ok(stat) = rustix::fs::fstat(&fd) else {
        return false;
    };
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile
        || stat.st_mode & 0o7777 != mode
        || u64::try_from(stat.st_size).ok() != Some(content.len() as u64)
    {
        return false;
    }
    let mut existing = Vec::with_capacity(content.len());
    fs::File::from(fd)
        .take(content.len() as u64 + 1)
        .read_to_end(&mut existing)
        .is_ok()
        && existing == content
}

/// The atomic write itself, inside an open directory: a temp file created
/// with its final mode, fsynced, renamed over `name`, then the directory
/// fsynced so the rename is durable.
pub(crate) fn write_at(
    dir: &OwnedFd,
    dir_path: &Path,
    name: &str,
    content: &[u8],
    mode: u32,
) -> io::Result<bool> {
    if holds(dir, name, content, mode) {
        return Ok(false);
    }
    let prefix = temp_prefix(name);
    let mut temp = format!("{prefix}{TEMP_SUFFIX}");
    let mut attempt = 0;
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = loop {
        match rustix::fs::openat(dir, temp.as_str(), flags, Mode::from_raw_mode(mode)) {
            Ok(fd) => break fd,
            Err(rustix::io::Errno::EXIST) if attempt < 8 => {
                attempt += 1;
                temp = format!("{prefix}-{attempt}{TEMP_SUFFIX}");
            }
            Err(e) => return Err(e.into()),
        }
    };
    let mut file = fs::File::from(fd);
    let _leftover = crate::interrupt::remove_on_exit(&dir_path.join(&temp));
    let result = (|| {
        // The umask may have narrowed the mode; set it exactly before any
        // content is written (narrowing only, so nothing leaks).
        rustix::fs::fchmod(file.as_fd(), Mode::from_raw_mode(mode))?;
        file.write_all(content)?;
        file.sync_all()?;
        rustix::fs::renameat(dir, temp.as_str(), dir, name)?;
        let _ = rustix::fs::fsync(dir);
        Ok(true)
    })();
    if result.is_err() {
        let _ = rustix::fs::unlinkat(dir, temp.as_str(), rustix::fs::AtFlags::empty());
    }
    result
}

/// Removes the temp files that a killed rumor left in `dir` (and, with
/// `recursive`, below it): names ending in [`TEMP_SUFFIX`] whose writer,
/// the PID in the name, is no longer a running rumor. A live writer's temp
/// file is kept, so this is safe while another run is writing. Returns how
/// many were removed; a directory that does not exist has none.
pub(crate) fn remove_stale_temps(dir: &Path, recursive: bool) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if kind.is_dir() && recursive {
            removed += remove_stale_temps(&entry.path(), true)?;
        } else if kind.is_file() && temp_writer(&name).is_some_and(|pid| !is_rumor(pid)) {
            match fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                // Another cleaner got there first.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

/// The PID in a temp file's name, `.NAME.pidPID[-X].rumor-tmp`, where `X`
/// is an attempt counter or random letters.
fn temp_writer(name: &str) -> Option<u32> {
    let stem = name.strip_prefix('.')?.strip_suffix(TEMP_SUFFIX)?;
    let (_, last) = stem.rsplit_once('.')?;
    let pid = last.strip_prefix("pid")?.split('-').next()?;
    pid.parse().ok()
}

/// The start of a temp file's name for `name` written by this process;
/// append `-X` and [`TEMP_SUFFIX`] to finish it. Dot-first so listings skip
/// it, and with the PID so [`remove_stale_temps`] can tell a dead writer's.
pub(crate) fn temp_prefix(name: &str) -> String {
    format!(".{name}.pid{}", std::process::id())
}

/// Whether `pid` is a running rumor. PIDs are reused, so on Linux the
/// process's name is compared too; where /proc is missing, any live
/// process counts, which only ever keeps a stale file a little longer.
fn is_rumor(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc_dir = Path::new("/proc");
    if proc_dir.join("self").exists() {
        let Ok(comm) = fs::read_to_string(proc_dir.join(pid.to_string()).join("comm")) else {
            return false;
        };
        let mine = fs::read_to_string(proc_dir.join("self/comm")).unwrap_or_default();
        return comm.trim() == mine.trim();
    }
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

/// A per-user base directory: `$<xdg>` (e.g. `XDG_CONFIG_HOME`), else
/// `$HOME/<fallback>` (e.g. `.config`); relative values are ignored, as
/// the XDG base-directory rules say. None without either.
pub(crate) fn user_dir(xdg: &str, fallback: &str) -> Option<std::path::PathBuf> {
    let absolute =
        |v: std::ffi::OsString| Some(std::path::PathBuf::from(v)).filter(|p| p.is_absolute());
    std::env::var_os(xdg).and_then(absolute).or_else(|| {
        std::env::var_os("HOME")
            .and_then(absolute)
            .map(|h| h.join(fallback))
    })
}

/// Creates a directory (and parents) with mode 0700 for new ones.
pub(crate) fn create_private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        assert!(write_atomic(&path, b"one", 0o600).unwrap());
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let before = fs::metadata(&path).unwrap().modified().unwrap();
        assert!(!write_atomic(&path, b"one", 0o600).unwrap());
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), before);
        assert!(write_atomic(&path, b"two", 0o644).unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() != "f")
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn stale_temps_of_dead_writers_go() {
        assert_eq!(temp_writer(".d1.yaml.pid42.rumor-tmp"), Some(42));
        assert_eq!(temp_writer(".x.12.pid42-3.rumor-tmp"), Some(42));
        assert_eq!(temp_writer(".current.age.pid7-Ab3xYz.rumor-tmp"), Some(7));
        for other in [
            "d1.yaml",
            ".d1.yaml.42.rumor-tmp",
            "x.pid42.rumor-tmp",
            ".tmpAbc.rumor-tmp",
        ] {
            assert_eq!(temp_writer(other), None, "{other}");
        }
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        fs::create_dir_all(&sub).unwrap();
        // A child that has exited and been reaped: its PID names no process.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = sub.join(format!(".f.pid{dead}.rumor-tmp"));
        let live = dir
            .path()
            .join(format!("{}-1{TEMP_SUFFIX}", temp_prefix("f")));
        let kept = dir.path().join("f");
        for p in [&stale, &live, &kept] {
            fs::write(p, b"x").unwrap();
        }
        assert_eq!(remove_stale_temps(dir.path(), false).unwrap(), 0);
        assert_eq!(remove_stale_temps(dir.path(), true).unwrap(), 1);
        assert!(!stale.exists() && live.exists() && kept.exists());
        assert_eq!(
            remove_stale_temps(&dir.path().join("missing"), true).unwrap(),
            0
        );
    }
}
