//! Admin keys the way teams hold them: OpenSSH keys and plugin (hardware)
//! keys as admin recipients and identities, checked with the real sops,
//! age and ssh-keygen, and with a test plugin that speaks the real age
//! plugin protocol (examples/age-plugin-rumortest.rs).

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::fleet::Fleet;
use support::{fails, ok, require, run};

fn tools() -> bool {
    ["sops", "age", "age-keygen", "ssh-keygen"]
        .iter()
        .all(|t| require(t).is_some())
}

/// A new OpenSSH key pair made by the real ssh-keygen: (private key file,
/// public key line).
fn ssh_keygen(dir: &Path, kind: &str, passphrase: &str) -> (PathBuf, String) {
    let path = dir.join(format!("id_{kind}"));
    let mut cmd = Command::new(require("ssh-keygen").unwrap());
    cmd.args([
        "-q",
        "-t",
        kind,
        "-N",
        passphrase,
        "-C",
        "ops@example",
        "-f",
    ])
    .arg(&path);
    if kind == "rsa" {
        cmd.args(["-b", "3072"]);
    }
    ok(&mut cmd);
    let public = fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.trim().to_owned())
}

/// The public key without its comment, as rumor.toml and sops hold it.
fn bare(public: &str) -> String {
    public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs rumor in `fleet` as the admin whose identity is `key`.
fn as_admin(fleet: &Fleet, key: &Path, args: &[&str]) -> String {
    ok(fleet.rumor().env("RUMOR_IDENTITY", key).args(args))
}

/// Whether the real sops opens the device file of `id` with `env`.
fn sops_opens(fleet: &Fleet, id: &str, env: (&str, &Path)) -> bool {
    let out = run(Command::new(require("sops").unwrap())
        .args(["decrypt", "--input-type", "yaml", "--output-type", "json"])
        .arg(fleet.file(id))
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY")
        .env("HOME", fleet.tmp.path())
        .env(env.0, env.1));
    out.status.success()
}

/// Whether the real age opens every local-store file with `key`; the
/// number of files tried.
fn age_opens_store(fleet: &Fleet, key: &Path, path_env: Option<&str>) -> (bool, usize) {
    let mut all = true;
    let mut n = 0;
    for (path, _) in fleet.snapshot() {
        if !path.starts_with(fleet.path("store"))
            || !path.to_string_lossy().ends_with(".age")
            || path.to_string_lossy().contains(".signer")
        {
            continue;
        }
        n += 1;
        let mut cmd = Command::new(require("age").unwrap());
        cmd.args(["-d", "-o", "/dev/null", "-i"])
            .arg(key)
            .arg(&path);
        if let Some(p) = path_env {
            cmd.env("PATH", p);
        }
        all &= cmd.output().unwrap().status.success();
    }
    (all, n)
}

#[test]
fn ssh_keys_are_admins() {
    if !tools() {
        return;
    }
    let fleet = Fleet::init(vec![]);
    let keys = fleet.tmp.path();
    let (ed, ed_pub) = ssh_keygen(keys, "ed25519", "");
    let (rsa, rsa_pub) = ssh_keygen(keys, "rsa", "");
    let age_admin = fleet.admin_recipient();

    // Both SSH keys join; the age admin leaves, run as the ed25519 admin.
    fleet.run(&["admins", "add", &ed_pub]);
    fleet.run(&["admins", "add", &rsa_pub]);
    as_admin(&fleet, &ed, &["admins", "remove", &age_admin]);
    let config = fs::read_to_string(fleet.path("rumor.toml")).unwrap();
    assert!(config.contains(&bare(&ed_pub)), "{config}");
    assert!(!config.contains("ops@example"), "comment kept: {config}");
    assert!(!config.contains(&age_admin), "{config}");

    // The whole job with only SSH keys.
    as_admin(&fleet, &ed, &["new", "pidgeon-1"]);
    let key = as_admin(&fleet, &rsa, &["get", "pidgeon-1", "age.key"]);
    assert!(key.starts_with("AGE-SECRET-KEY-1"), "{key}");
    as_admin(&fleet, &rsa, &["renew", "pidgeon-1"]);
    let file = fleet.file("pidgeon-1");
    let plain = as_admin(&fleet, &ed, &["decrypt", file.to_str().unwrap()]);
    assert!(plain.contains("nebula.key"), "{plain}");
    as_admin(&fleet, &ed, &["rekey"]);
    as_admin(&fleet, &ed, &["check"]);

    // The real sops (3.10+) opens the device file with either SSH key.
    for key in [&ed, &rsa] {
        assert!(sops_opens(
            &fleet,
            "pidgeon-1",
            ("SOPS_AGE_SSH_PRIVATE_KEY_FILE", key)
        ));
    }
    let text = fs::read_to_string(fleet.file("pidgeon-1")).unwrap();
    assert!(
        text.contains(&format!("- recipient: {}", bare(&ed_pub))),
        "{text}"
    );
    // The real age opens every store file with either, and the removed
    // age admin opens nothing.
    for key in [&ed, &rsa] {
        let (all, n) = age_opens_store(&fleet, key, None);
        assert!(
            all && n > 3,
            "{} opens the store: {all} ({n} files)",
            key.display()
        );
    }
    let old = fleet.identity();
    assert!(!sops_opens(
        &fleet,
        "pidgeon-1",
        ("SOPS_AGE_KEY_FILE", &old)
    ));
    let (any, _) = age_opens_store(&fleet, &old, None);
    assert!(!any);
}

#[test]
fn ssh_key_is_the_default_identity_when_there_is_no_age_one() {
    if !tools() {
        return;
    }
    let fleet = Fleet::new(vec![]);
    let ssh = fleet.tmp.path().join(".home/.ssh");
    fs::create_dir_all(&ssh).unwrap();
    let (_, public) = ssh_keygen(&ssh, "ed25519", "");
    fleet.run(&["init"]);
    assert!(
        !fleet.identity().exists(),
        "made an age identity beside the SSH key"
    );
    let config = fs::read_to_string(fleet.path("rumor.toml")).unwrap();
    assert!(config.contains(&bare(&public)), "{config}");
    fleet.run(&["new", "pidgeon-1"]);
    fleet.run(&["get", "pidgeon-1", "age.key"]);
}

#[test]
fn passphrase_key_without_a_terminal_is_one_line() {
    if !tools() {
        return;
    }
    let fleet = Fleet::init(vec![]);
    let (key, public) = ssh_keygen(fleet.tmp.path(), "ed25519", "correct horse");
    fleet.run(&["admins", "add", &public]);
    let mut cmd = fleet.rumor();
    cmd.env("RUMOR_IDENTITY", &key)
        .args(["get", "pidgeon-1", "age.key"]);
    // A new session has no controlling terminal, as in CI or cron.
    use std::os::unix::process::CommandExt;
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid()?;
            Ok(())
        });
    }
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("passphrase") && err.contains("no terminal"),
        "{err}"
    );
    assert!(err.contains(&key.display().to_string()), "{err}");
}

#[test]
fn bad_ssh_recipients_are_one_line_and_change_nothing() {
    if !tools() {
        return;
    }
    let fleet = Fleet::init(vec![]);
    let before = fleet.snapshot();
    let (_, ecdsa) = ssh_keygen(fleet.tmp.path(), "ecdsa", "");
    let cases = [
        (ecdsa.as_str(), "does not support"),
        ("ssh-ed25519 AAAAnot-base64", "not a valid SSH public key"),
        ("age1yubikey", "not an age recipient"),
    ];
    for (recipient, says) in cases {
        let out = run(fleet.rumor().args(["admins", "add", recipient]));
        assert_eq!(out.status.code(), Some(3), "{recipient}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(says), "{recipient}: {err}");
    }
    assert_eq!(before, fleet.snapshot());
}

/// The directory holding the test plugin `age-plugin-rumortest`, which
/// `cargo test` builds with the examples (a nested `cargo build` here would
/// resolve other features and rebuild half the dependencies each time).
/// `None` (skip) when it was not built, outside CI.
fn plugin_dir() -> Option<PathBuf> {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_rumor"));
    let dir = exe.parent().unwrap().join("examples");
    if dir.join("age-plugin-rumortest").is_file() {
        return Some(dir);
    }
    let why = "age-plugin-rumortest is not built; run `cargo test` without a target filter, or `cargo build --example age-plugin-rumortest`";
    assert!(!support::ci(), "{why}");
    eprintln!("skipping: {why}");
    None
}

#[test]
fn a_plugin_key_is_the_only_admin() {
    if !tools() {
        return;
    }
    let Some(plugins) = plugin_dir() else { return };
    let path = format!(
        "{}:{}",
        plugins.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let fleet = Fleet::init(vec![("PATH", path.clone())]);
    let generated = ok(Command::new(plugins.join("age-plugin-rumortest")).arg("--generate"));
    let hw = fleet.write("hardware-key.txt", &generated);
    let recipient = generated
        .lines()
        .find_map(|l| l.strip_prefix("# recipient: "))
        .unwrap()
        .trim()
        .to_owned();
    assert!(recipient.starts_with("age1rumortest1"), "{recipient}");

    let age_admin = fleet.admin_recipient();
    fleet.run(&["new", "pidgeon-1"]);
    fleet.run(&["admins", "add", &recipient]);
    as_admin(&fleet, &hw, &["admins", "remove", &age_admin]);

    // new, get, decrypt, renew and rekey, with the plugin as the only key.
    as_admin(&fleet, &hw, &["new", "pidgeon-2"]);
    let key = as_admin(&fleet, &hw, &["get", "pidgeon-2", "age.key"]);
    assert!(key.starts_with("AGE-SECRET-KEY-1"));
    let file = fleet.file("pidgeon-1");
    let plain = as_admin(&fleet, &hw, &["decrypt", file.to_str().unwrap()]);
    assert!(plain.contains("nebula.key"), "{plain}");
    as_admin(&fleet, &hw, &["renew", "pidgeon-1", "pidgeon-2"]);
    as_admin(&fleet, &hw, &["rekey"]);
    as_admin(&fleet, &hw, &["check"]);
    let text = fs::read_to_string(fleet.file("pidgeon-2")).unwrap();
    assert!(
        text.contains(&format!("- recipient: {recipient}")),
        "{text}"
    );

    // The real age opens the store with the plugin; the old admin, nothing.
    let (all, n) = age_opens_store(&fleet, &hw, Some(&path));
    assert!(all && n > 3, "plugin opens the store: {all} ({n} files)");
    let (any, _) = age_opens_store(&fleet, &fleet.identity(), None);
    assert!(!any);
    assert!(!sops_opens(
        &fleet,
        "pidgeon-1",
        ("SOPS_AGE_KEY_FILE", &fleet.identity())
    ));

    // Without the plugin on PATH: one line naming it, nothing written.
    let before = fleet.snapshot();
    let err = fails(
        fleet
            .rumor()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUMOR_IDENTITY", &hw)
            .args(["get", "pidgeon-1", "age.key"]),
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("age-plugin-rumortest"), "{err}");
    assert_eq!(before, fleet.snapshot());
}
