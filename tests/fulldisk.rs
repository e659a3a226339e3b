//! A full disk: the fleet directory, or the local store's directory alone,
//! on a small tmpfs that fills up during `rumor new` of many devices.
//!
//! The disk fills deterministically: after `init` and a first device, a
//! ballast file takes all but a few devices' worth of the tmpfs, so the
//! run fails part-way whatever the scheduling. The oracles: the exit code
//! and stderr, a snapshot of every file before the failing run, after it,
//! and after the re-run once the ballast is gone (each file after the
//! failure is its old or its new version, never a third), no temp file
//! left, `rumor check` (device files and store agree) and a second re-run
//! that changes no byte.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::fleet::{snapshot, Fleet};

/// Room left beside the ballast in the fleet's own directory: the twelve
/// `devices/*.toml` (a 4 KiB page each) and a few device files, not all.
const LEAVE_FLEET: u64 = 88 * 1024;

/// Room left in the store's directory: a few devices' entries, not all.
const LEAVE_STORE: u64 = 128 * 1024;

/// How many devices the failing run provisions.
const DEVICES: usize = 12;

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `16m`) on `dir`. Outside CI a mount
    /// that fails (no privilege) skips the test; under CI it fails it.
    #[track_caller]
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs {
                dir: dir.to_path_buf(),
            }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
                    Err(e) => e.to_string(),
                };
                if support::ci() {
                    panic!("cannot mount a tmpfs on {}: {why}", dir.display());
                }
                eprintln!("skipping: cannot mount a tmpfs ({why}); run as root");
                None
            }
        }
    }

    /// Fills the filesystem with a ballast file until `leave` bytes are
    /// free; returns its path.
    fn fill(&self, leave: u64) -> PathBuf {
        let stat = rustix::fs::statvfs(&self.dir).unwrap();
        let free = stat.f_bavail * stat.f_frsize;
        let ballast = self.dir.join("ballast");
        let mut file = fs::File::create(&ballast).unwrap();
        // Written, not sparse: tmpfs counts the pages a file holds.
        let chunk = vec![0x55u8; 64 * 1024];
        let mut left = free.saturating_sub(leave);
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            file.write_all(&chunk[..n]).unwrap();
            left -= n as u64;
        }
        file.sync_all().unwrap();
        ballast
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// The fleet's files without the ballast.
fn files(fleet: &Fleet) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    let mut all = snapshot(&fleet.dir());
    all.retain(|path, _| path.file_name().is_none_or(|n| n != "ballast"));
    all
}

/// Fills the disk holding `full`, runs `rumor new` of many devices, and
/// checks the failure, the files left, and the convergence once freed.
/// Every failure must name a file below `full` in one of `dirs`.
fn fill_and_converge(fleet: &Fleet, full: &Tmpfs, leave: u64, dirs: &[&str]) {
    fleet.run(&["new", "pidgeon-1"]);
    let ids: Vec<String> = (1..=DEVICES).map(|n| format!("pidgeon-{n}")).collect();
    let mut args = vec!["new"];
    args.extend(ids.iter().map(String::as_str));

    let ballast = full.fill(leave);
    let before = files(fleet);
    let out = fleet.output(&args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let failures: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("no space left on device"))
        .collect();
    assert!(!failures.is_empty(), "{stderr}");
    let mount = full.dir.display().to_string();
    for line in stderr.lines() {
        assert!(line.starts_with("rumor: "), "{line}");
        if line.contains("failed") && !line.contains("no space") {
            continue; // the summary: "N of M devices failed: ids"
        }
        if line.contains(" store writes") || line.contains("created ") {
            continue; // a device that went through, or a device file made
        }
        // Each failure is one line naming the file on the full disk.
        assert!(
            line.contains("no space left on device")
                && dirs.iter().any(|d| line.contains(&format!("{mount}/{d}/"))),
            "{line}"
        );
    }
    let failed = files(fleet);
    let temps: Vec<_> = failed
        .keys()
        .filter(|p| p.to_string_lossy().ends_with(".rumor-tmp"))
        .collect();
    assert!(temps.is_empty(), "temp files left: {temps:?}");

    fs::remove_file(&ballast).unwrap();
    fleet.run(&args);
    let after = files(fleet);
    let paths: BTreeSet<&PathBuf> = before
        .keys()
        .chain(failed.keys())
        .chain(after.keys())
        .collect();
    let mut changed = 0;
    for path in paths {
        let now = failed.get(path);
        assert!(
            now == before.get(path) || now == after.get(path),
            "{} is neither its old nor its new version after the failure",
            path.display()
        );
        changed += usize::from(now != before.get(path));
    }
    assert!(
        changed > 0,
        "the failing run wrote nothing; leave more room"
    );
    assert!(
        failed.len() < after.len(),
        "the failing run wrote everything; leave less room"
    );
    // Device files and the store agree, and a re-run changes no byte.
    fleet.run(&["check"]);
    fleet.run(&args);
    assert!(
        files(fleet) == after,
        "a re-run with nothing to do changed files"
    );
}

/// The fleet's own files on the full disk: device files, `devices/`. The
/// store sits on a roomy tmpfs of its own, so the writes that fail are the
/// ones git sees.
#[test]
fn a_full_fleet_disk_leaves_every_file_old_or_new_and_converges() {
    let fleet = Fleet::new(vec![]);
    let Some(full) = Tmpfs::mount(&fleet.dir(), "8m") else {
        return;
    };
    let Some(_store) = Tmpfs::mount(&fleet.path("store"), "64m") else {
        return;
    };
    fleet.run(&["init"]);
    fill_and_converge(&fleet, &full, LEAVE_FLEET, &["secrets", "devices"]);
}

/// The local store's directory alone on the full disk.
#[test]
fn a_full_store_disk_leaves_every_file_old_or_new_and_converges() {
    let fleet = Fleet::new(vec![]);
    let Some(full) = Tmpfs::mount(&fleet.path("store"), "24m") else {
        return;
    };
    fleet.run(&["init"]);
    fill_and_converge(&fleet, &full, LEAVE_STORE, &["secret"]);
}
