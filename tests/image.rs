//! The image step against real guestfish, on real NixOS-sd-image-shaped
//! disks (msdos label, vfat FIRMWARE, ext4 NIXOS_SD) built without root.
//!
//! Each guestfish launch costs 10–30 s under TCG, so the file launches
//! few appliances (three for inject, seven for the pre-flash check: one
//! per case, on copies of one base disk) and checks everything else with
//! debugfs, dd offsets, zstd and sops.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use age::secrecy::ExposeSecret;
use rumor::image::{inject, plan, ImageError, InjectOptions, Partition};
use zeroize::Zeroizing;

const MIB: u64 = 1024 * 1024;
/// Where the partitions sit on the 64 MiB test disk.
const FIRMWARE: (u64, u64) = (MIB, 16 * MIB);
const ROOT: (u64, u64) = (17 * MIB, 40 * MIB);

/// guestfish without KVM; the machine may have it, CI runners may not.
fn tcg() {
    std::env::set_var("LIBGUESTFS_BACKEND", "direct");
    std::env::set_var("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg");
}

/// The tools these tests need; None skips outside CI.
fn tools() -> Option<()> {
    for tool in ["guestfish", "mkfs.ext4", "mkfs.vfat", "parted", "debugfs"] {
        support::require(tool)?;
    }
    tcg();
    Some(())
}

#[track_caller]
fn sh(cmd: &mut Command) -> String {
    support::ok(cmd)
}

/// A 64 MiB disk shaped like a NixOS sd-image, in `dir`.
fn nixos_disk(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/hostname"), "pidgeon-1\n").unwrap();
    let root_fs = dir.join("root.ext4");
    let fw_fs = dir.join("firmware.vfat");
    fs::File::create(&root_fs).unwrap().set_len(ROOT.1).unwrap();
    fs::File::create(&fw_fs)
        .unwrap()
        .set_len(FIRMWARE.1)
        .unwrap();
    sh(Command::new(support::tool("mkfs.ext4").unwrap())
        .args(["-q", "-F", "-L", "NIXOS_SD", "-d"])
        .arg(&tree)
        .arg(&root_fs));
    sh(Command::new(support::tool("mkfs.vfat").unwrap())
        .args(["-n", "FIRMWARE"])
        .arg(&fw_fs));
    let disk = dir.join("pidgeon-1.img");
    fs::File::create(&disk).unwrap().set_len(64 * MIB).unwrap();
    sh(Command::new(support::tool("parted").unwrap())
        .arg("-s")
        .arg(&disk)
        .args([
            "mklabel", "msdos", "mkpart", "primary", "fat32", "1MiB", "17MiB", "mkpart", "primary",
            "ext4", "17MiB", "57MiB",
        ]));
    for (fs_image, (offset, _)) in [(&fw_fs, FIRMWARE), (&root_fs, ROOT)] {
        sh(Command::new("dd")
            .arg(format!("if={}", fs_image.display()))
            .arg(format!("of={}", disk.display()))
            .args([
                "bs=1M",
                &format!("seek={}", offset / MIB),
                "conv=notrunc",
                "status=none",
            ]));
    }
    fs::remove_file(root_fs).unwrap();
    fs::remove_file(fw_fs).unwrap();
    disk
}

/// A fresh age identity: (the key file's bytes, the recipient).
fn age_key() -> (Zeroizing<Vec<u8>>, String) {
    let identity = age::x25519::Identity::generate();
    let text = Zeroizing::new(format!("{}\n", identity.to_string().expose_secret()));
    (
        Zeroizing::new(text.as_bytes().to_vec()),
        identity.to_public().to_string(),
    )
}

/// The root partition of `disk` as its own file, for debugfs.
fn extract_root(disk: &[u8], dir: &Path) -> PathBuf {
    let part = dir.join("root-extracted.ext4");
    fs::write(&part, &disk[ROOT.0 as usize..(ROOT.0 + ROOT.1) as usize]).unwrap();
    part
}

fn debugfs(part: &Path, request: &str) -> String {
    sh(Command::new(support::tool("debugfs").unwrap())
        .arg("-R")
        .arg(request)
        .arg(part))
}

/// Checks the key file and its directory in an extracted root partition.
#[track_caller]
fn assert_key_in_root(part: &Path, key: &[u8]) {
    assert_eq!(debugfs(part, "cat /root/host.scrt.key").as_bytes(), key);
    let stat = debugfs(part, "stat /root/host.scrt.key");
    assert!(stat.contains("Mode:  0400"), "{stat}");
    assert!(stat.contains("Type: regular"), "{stat}");
    assert!(stat.contains("User:     0   Group:     0"), "{stat}");
    let dir = debugfs(part, "stat /root");
    assert!(dir.contains("Mode:  0700"), "{dir}");
    assert!(dir.contains("Type: directory"), "{dir}");
    // What was there before is still there.
    assert_eq!(debugfs(part, "cat /etc/hostname"), "pidgeon-1\n");
}

#[test]
fn injects_into_a_nixos_sd_image_and_the_key_decrypts_sops() {
    let Some(()) = tools() else { return };
    let Some(sops) = support::require("sops") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let disk = nixos_disk(dir.path());
    let before = fs::read(&disk).unwrap();
    let (key, recipient) = age_key();

    let report = inject(&InjectOptions::new(&disk), &key).unwrap();
    assert!(report.written);
    assert_eq!(report.device, "/dev/sda2");
    assert_eq!(report.partition, Some(2));
    assert_eq!(report.fstype, "ext4");
    assert_eq!(report.label.as_deref(), Some("NIXOS_SD"));
    assert_eq!(report.mode, 0o400);
    assert!(!format!("{report:?}").contains("AGE-SECRET-KEY"));

    let after = fs::read(&disk).unwrap();
    assert_eq!(after.len(), before.len());
    // The label, the gap and the firmware partition are byte-identical.
    let firmware_end = (FIRMWARE.0 + FIRMWARE.1) as usize;
    assert!(
        before[..firmware_end] == after[..firmware_end],
        "firmware partition or label changed"
    );
    assert!(
        before[firmware_end..] != after[firmware_end..],
        "root partition did not change"
    );
    let part = extract_root(&after, dir.path());
    assert_key_in_root(&part, &key);

    // The key read back from the image opens a file real sops encrypted.
    let plain = dir.path().join("secrets.yaml");
    fs::write(&plain, "wifi.env: WIFI_SSID=pidgeon\n").unwrap();
    let encrypted = sh(Command::new(&sops)
        .args(["encrypt", "--age", &recipient])
        .arg(&plain)
        .env("HOME", dir.path()));
    let encrypted_path = dir.path().join("pidgeon-1.yaml");
    fs::write(&encrypted_path, encrypted).unwrap();
    let read_back = dir.path().join("read-back.key");
    fs::write(&read_back, debugfs(&part, "cat /root/host.scrt.key")).unwrap();
    let decrypted = sh(Command::new(&sops)
        .args(["decrypt"])
        .arg(&encrypted_path)
        .env("HOME", dir.path())
        .env_remove("SOPS_AGE_KEY")
        .env("SOPS_AGE_KEY_FILE", &read_back));
    assert_eq!(decrypted, "wifi.env: WIFI_SSID=pidgeon\n");
}

#[test]
fn zst_image_with_an_explicit_partition() {
    let Some(()) = tools() else { return };
    let Some(zstd_cli) = support::require("zstd") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    fs::create_dir(&work).unwrap();
    let disk = nixos_disk(&work);
    let raw = fs::read(&disk).unwrap();
    let out = dir.path().join("out");
    fs::create_dir(&out).unwrap();
    let image = out.join("pidgeon-1.img.zst");
    fs::write(&image, zstd::encode_all(&raw[..], 3).unwrap()).unwrap();
    let (key, _) = age_key();

    let mut opts = InjectOptions::new(&image);
    opts.partition = Partition::Number(2);
    let report = inject(&opts, &key).unwrap();
    assert!(report.compressed && report.written);
    assert_eq!(report.device, "/dev/sda2");

    // Only the archive is left: no decompressed copy, no temp file.
    let names: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("pidgeon-1.img.zst")]);
    // The real zstd accepts it, and the key is inside.
    let unpacked = out.join("unpacked.img");
    sh(Command::new(zstd_cli)
        .args(["-q", "-d", "-o"])
        .arg(&unpacked)
        .arg(&image));
    let after = fs::read(&unpacked).unwrap();
    let firmware_end = (FIRMWARE.0 + FIRMWARE.1) as usize;
    assert!(
        raw[..firmware_end] == after[..firmware_end],
        "firmware partition or label changed"
    );
    assert_key_in_root(&extract_root(&after, dir.path()), &key);
}

#[test]
fn a_blank_image_has_no_root_filesystem() {
    let Some(()) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let blank = dir.path().join("blank.img");
    fs::File::create(&blank).unwrap().set_len(16 * MIB).unwrap();
    let (key, _) = age_key();
    let err = inject(&InjectOptions::new(&blank), &key).unwrap_err();
    assert!(matches!(err, ImageError::NoRootFilesystem { .. }), "{err}");
    assert!(!err.to_string().contains("AGE-SECRET-KEY"));
    assert!(
        fs::read(&blank).unwrap().iter().all(|b| *b == 0),
        "blank image was written"
    );
}

#[test]
fn missing_images_and_dry_runs_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = age_key();
    let missing = InjectOptions::new(dir.path().join("nope.img"));
    let err = inject(&missing, &key).unwrap_err();
    assert!(matches!(err, ImageError::ImageNotFound { .. }), "{err}");
    assert!(err.to_string().contains("nope.img"), "{err}");
    assert!(matches!(
        plan(&missing),
        Err(ImageError::ImageNotFound { .. })
    ));

    let image = dir.path().join("disk.img");
    let bytes: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    fs::write(&image, &bytes).unwrap();
    let mut opts = InjectOptions::new(&image);
    opts.dry_run = true;
    let lines = plan(&opts).unwrap();
    assert!(
        lines.iter().any(|l| l.contains("/root/host.scrt.key")),
        "{lines:?}"
    );
    let secret = String::from_utf8(key.to_vec()).unwrap();
    assert!(lines.iter().all(|l| !l.contains(secret.trim())));
    let report = inject(&opts, &key).unwrap();
    assert!(!report.written);
    assert_eq!(fs::read(&image).unwrap(), bytes);
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// `rumor inject` through the binary: a device provisioned on the local
/// store gets its age key written into its image, and that key opens the
/// device file with real sops.
#[test]
fn inject_command_writes_the_provisioned_key() {
    let Some(()) = tools() else { return };
    let Some(sops) = support::require("sops") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let fleet = dir.path().join("fleet");
    fs::create_dir_all(&fleet).unwrap();
    let rumor = || {
        let mut cmd = support::rumor(dir.path());
        cmd.arg("-C")
            .arg(&fleet)
            .env("LIBGUESTFS_BACKEND", "direct")
            .env("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg");
        cmd
    };
    support::ok(rumor().arg("init"));
    support::ok(rumor().args(["new", "pidgeon-1"]));
    let disk = nixos_disk(dir.path());

    // Errors come before any appliance launch and change nothing.
    let before = fs::read(&disk).unwrap();
    let err = support::fails(rumor().args(["inject", "nope"]).arg(&disk));
    assert!(err.contains("unknown device \"nope\""), "{err}");
    fs::write(fleet.join("devices/pidgeon-2.toml"), "ip = \"10.8.0.9\"\n").unwrap();
    let err = support::fails(rumor().args(["inject", "pidgeon-2"]).arg(&disk));
    assert!(err.contains("pidgeon-2 is not provisioned"), "{err}");
    let err = support::fails(
        rumor()
            .args(["inject", "pidgeon-1"])
            .arg(dir.path().join("missing.img")),
    );
    assert!(err.contains("missing.img"), "{err}");
    let plan = support::ok(
        rumor()
            .args(["inject", "pidgeon-1", "--dry-run"])
            .arg(&disk),
    );
    assert!(plan.contains("/root/host.scrt.key"), "{plan}");
    assert_eq!(fs::read(&disk).unwrap(), before);

    support::ok(rumor().args(["inject", "pidgeon-1"]).arg(&disk));
    let key = support::ok(rumor().args(["get", "pidgeon-1", "age.key"]));
    let part = extract_root(&fs::read(&disk).unwrap(), dir.path());
    assert_key_in_root(&part, key.as_bytes());
    let key_file = dir.path().join("from-image.key");
    fs::write(&key_file, debugfs(&part, "cat /root/host.scrt.key")).unwrap();
    let out = Command::new(sops)
        .args(["decrypt"])
        .arg(fleet.join("secrets/pidgeon-1.yaml"))
        .env("SOPS_AGE_KEY_FILE", &key_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("nebula.crt"));
}

/// Writes an extracted root partition back into `disk` at its offset.
fn put_root(disk: &Path, part: &Path) {
    sh(Command::new("dd")
        .arg(format!("if={}", part.display()))
        .arg(format!("of={}", disk.display()))
        .args([
            "bs=1M",
            &format!("seek={}", ROOT.0 / MIB),
            "conv=notrunc",
            "status=none",
        ]));
}

/// The pre-flash check through the binary, one read-only appliance per
/// case: the right device's image passes (through `inject --verify` and
/// `verify-image`), and another device's key, a stale key, no key and a
/// world-readable key each fail with exit 5 and one line per problem.
/// Bad input is refused before any launch.
#[test]
fn verify_image_passes_the_right_key_and_names_every_problem() {
    let Some(()) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let fleet = support::fleet::Fleet::init(vec![
        ("LIBGUESTFS_BACKEND", "direct".into()),
        ("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg".into()),
    ]);
    fleet.run(&["new", "pidgeon-1", "pidgeon-2"]);
    let base = nixos_disk(dir.path());
    let copy = |name: &str| {
        let path = dir.path().join(name);
        fs::copy(&base, &path).unwrap();
        path
    };
    let verify = |id: &str, image: &Path| {
        let out = fleet.output(&["verify-image", id, image.to_str().unwrap()]);
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            !stdout.contains("AGE-SECRET-KEY") && !stderr.contains("AGE-SECRET-KEY"),
            "a key leaked: {stdout}{stderr}"
        );
        (out.status.code(), stdout, stderr)
    };
    let problems = |stdout: &str| -> Vec<String> { stdout.lines().map(String::from).collect() };

    // Bad input: one line, exit 3 (or 2 for usage), no launch, no change.
    let image = copy("good.img");
    let before = fs::read(&image).unwrap();
    let img = image.to_str().unwrap();
    fs::write(
        fleet.path("devices/pidgeon-3.toml"),
        "ip = \"10.8.0.30\"\n[retired]\nat = \"2026-01-02T03:04:05Z\"\nreason = \"stolen\"\n",
    )
    .unwrap();
    fs::write(fleet.path("devices/pidgeon-4.toml"), "ip = \"10.8.0.31\"\n").unwrap();
    let missing = dir.path().join("missing.img");
    for (args, code, says) in [
        (
            vec!["verify-image", "nope", img],
            3,
            "unknown device \"nope\"",
        ),
        (vec!["verify-image", "../x", img], 3, "is not a device name"),
        (
            vec!["verify-image", "pidgeon-3", img],
            3,
            "pidgeon-3 was retired at 2026-01-02T03:04:05Z",
        ),
        (
            vec!["verify-image", "pidgeon-4", img],
            3,
            "pidgeon-4 is not provisioned",
        ),
        (
            vec!["verify-image", "pidgeon-1", missing.to_str().unwrap()],
            3,
            "missing.img' not found",
        ),
        (
            vec!["verify-image", "pidgeon-1", img, "--mode", "0644"],
            3,
            "gives the group or others access",
        ),
        (
            vec!["verify-image", "pidgeon-1", img, "--partition", "x"],
            2,
            "--partition \"x\"",
        ),
        (
            vec!["verify-image", "pidgeon-1", img, "--path", "/etc/key"],
            3,
            "key path '/etc/key'",
        ),
        (
            vec!["inject", "pidgeon-3", img, "--verify"],
            3,
            "pidgeon-3 was retired",
        ),
    ] {
        let out = fleet.output(&args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("rumor: ") && stderr.contains(says),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(fs::read(&image).unwrap(), before);
    fs::remove_file(fleet.path("devices/pidgeon-3.toml")).unwrap();
    fs::remove_file(fleet.path("devices/pidgeon-4.toml")).unwrap();

    // The right device: inject --verify passes, and so does verify-image,
    // which changes no byte of the image.
    fleet.run(&["inject", "pidgeon-1", img, "--verify"]);
    let injected = fs::read(&image).unwrap();
    let (code, stdout, stderr) = verify("pidgeon-1", &image);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "");
    assert!(stderr.contains("holds pidgeon-1's current key"), "{stderr}");
    assert_eq!(
        fs::read(&image).unwrap(),
        injected,
        "verify-image wrote to the image"
    );

    // Another device's key: not its identity, does not open its file,
    // and opens the other device's file.
    let (code, stdout, stderr) = verify("pidgeon-2", &image);
    assert_eq!(code, Some(5), "{stderr}");
    assert_eq!(
        problems(&stdout),
        [
            "pidgeon-2: /root/host.scrt.key: is not pidgeon-2's current age identity (age.key in the store): another device's key, or one renewed since; run `rumor inject pidgeon-2 <image>`",
            "pidgeon-2: /root/host.scrt.key: does not open secrets/pidgeon-2.yaml: the key is not among its recipients",
            "pidgeon-2: /root/host.scrt.key: opens secrets/pidgeon-1.yaml, pidgeon-1's device file; a device's key must open only its own",
        ]
    );
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
    assert!(
        stderr.contains("3 problems with pidgeon-2's key; do not flash it"),
        "{stderr}"
    );

    // A world-readable key (set behind rumor's back with debugfs).
    let open = dir.path().join("open.img");
    fs::copy(&image, &open).unwrap();
    let part = extract_root(&fs::read(&open).unwrap(), dir.path());
    sh(Command::new(support::tool("debugfs").unwrap())
        .args(["-w", "-R", "sif /root/host.scrt.key mode 0100404"])
        .arg(&part));
    put_root(&open, &part);
    let (code, stdout, _) = verify("pidgeon-1", &open);
    assert_eq!(code, Some(5));
    assert_eq!(
        problems(&stdout),
        ["pidgeon-1: /root/host.scrt.key: mode is 0404, not 0400 (group or others can read the key)"]
    );

    // No key at all.
    let blank = copy("blank.img");
    let (code, stdout, _) = verify("pidgeon-1", &blank);
    assert_eq!(code, Some(5));
    assert_eq!(
        problems(&stdout),
        ["pidgeon-1: /root/host.scrt.key: no key file on the root filesystem (/dev/sda2); write it with `rumor inject pidgeon-1 <image>`"]
    );

    // A stale key: the device's key was renewed since the image was made.
    fleet.run(&["renew", "pidgeon-1", "--secret", "age.key"]);
    let (code, stdout, _) = verify("pidgeon-1", &image);
    assert_eq!(code, Some(5));
    assert_eq!(
        problems(&stdout),
        [
            "pidgeon-1: /root/host.scrt.key: is not pidgeon-1's current age identity (age.key in the store): another device's key, or one renewed since; run `rumor inject pidgeon-1 <image>`",
            "pidgeon-1: /root/host.scrt.key: does not open secrets/pidgeon-1.yaml: the key is not among its recipients",
        ]
    );
}
