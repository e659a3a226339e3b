//! Onboarding and offboarding admins: `rumor admins add|remove|list` and
//! `rumor rekey` move every file to the new admin set and rotate nothing,
//! checked with the real sops and age, and against `sops updatekeys`.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use support::fleet::{age_keygen, recipients, snapshot, Fleet};
use support::{ok, require, Bao};

fn tools() -> bool {
    ["sops", "age", "age-keygen"]
        .iter()
        .all(|t| require(t).is_some())
}

/// A SOPS file without its `age:` block: the values, lastmodified, mac.
fn outside_age_block(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with("        ") && *l != "    age:")
        .map(str::to_owned)
        .collect()
}

/// Every device file and every local-store file, and whether `key` opens
/// it (sops for device files, age for store files).
fn opens(fleet: &Fleet, key: &Path) -> BTreeMap<PathBuf, bool> {
    let mut out = BTreeMap::new();
    for (path, _) in snapshot(&fleet.dir()) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let status = if name.ends_with(".age") {
            Command::new(require("age").unwrap())
                .args(["-d", "-i"])
                .arg(key)
                .arg(&path)
                .output()
                .unwrap()
                .status
        } else if path.starts_with(fleet.path("secrets")) {
            Command::new(require("sops").unwrap())
                .args(["decrypt", "--input-type", "yaml", "--output-type", "yaml"])
                .arg(&path)
                .env("SOPS_AGE_KEY_FILE", key)
                .env_remove("SOPS_AGE_KEY")
                .env("HOME", fleet.tmp.path())
                .output()
                .unwrap()
                .status
        } else {
            continue;
        };
        out.insert(path, status.success());
    }
    out
}

#[track_caller]
fn opens_all(fleet: &Fleet, key: &Path, expected: bool) {
    let result = opens(fleet, key);
    assert!(result.len() > 4, "files to test: {result:?}");
    let wrong: Vec<_> = result.iter().filter(|(_, ok)| **ok != expected).collect();
    assert!(
        wrong.is_empty(),
        "{} should {}open: {wrong:?}",
        key.display(),
        if expected { "" } else { "not " }
    );
}

/// Plaintext of every device file, by sops with `key`.
fn plaintexts(
    fleet: &Fleet,
    ids: &[&str],
    key: &Path,
) -> BTreeMap<String, BTreeMap<String, String>> {
    ids.iter()
        .map(|id| (id.to_string(), fleet.sops_decrypt(id, key)))
        .collect()
}

fn temps(dir: &Path) -> Vec<PathBuf> {
    snapshot(dir)
        .into_keys()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(".rumor-tmp"))
        })
        .collect()
}

#[test]
fn add_remove_list_local() {
    if !tools() {
        return;
    }
    let fleet = Fleet::init(vec![]);
    fleet.run(&["new", "dev1", "dev2"]);
    let first = fleet.identity();
    let admin = fleet.admin_recipient();
    assert_eq!(fleet.run(&["admins", "list"]), format!("{admin}\n"));
    let before: BTreeMap<&str, String> = ["dev1", "dev2"]
        .iter()
        .map(|id| (*id, fs::read_to_string(fleet.file(id)).unwrap()))
        .collect();
    let plain = plaintexts(&fleet, &["dev1", "dev2"], &first);
    let stored = fleet.run(&["get", "dev1", "wifi.pass"]);

    let (second, recipient) = age_keygen(fleet.tmp.path(), "second.txt");
    fleet.run(&["admins", "add", &recipient]);
    assert_eq!(
        fleet.run(&["admins", "list"]),
        format!("{admin}\n{recipient}\n")
    );
    for (id, old) in &before {
        let new = fs::read_to_string(fleet.file(id)).unwrap();
        let device = recipients(old)[0].clone();
        assert_eq!(
            recipients(&new),
            [device, admin.clone(), recipient.clone()],
            "{id}: the device, then the admins"
        );
        assert_eq!(
            outside_age_block(&new),
            outside_age_block(old),
            "{id}: values, lastmodified and mac keep their bytes"
        );
    }
    assert_eq!(
        plaintexts(&fleet, &["dev1", "dev2"], &second),
        plain,
        "the new admin reads every device file"
    );
    let mut cmd = fleet.rumor();
    cmd.env("RUMOR_IDENTITY", &second)
        .args(["get", "dev1", "wifi.pass"]);
    assert_eq!(ok(&mut cmd), stored, "the new admin reads the store");
    opens_all(&fleet, &second, true);
    fleet.run(&["check"]);
    // Nothing is left for `new` to do: the store vouches for git's files.
    let settled = fleet.snapshot();
    fleet.run(&["new", "dev1", "dev2"]);
    assert_eq!(fleet.snapshot(), settled);
    // And a rekey of a fleet already on its set changes no device file.
    fleet.run(&["rekey"]);
    for id in ["dev1", "dev2"] {
        assert_eq!(
            fs::read(fleet.file(id)).unwrap(),
            settled[&fleet.file(id)].0
        );
    }

    // The second admin removes the first, who then opens nothing.
    let mut cmd = fleet.rumor();
    cmd.env("RUMOR_IDENTITY", &second)
        .args(["admins", "remove", &admin]);
    let out = support::run(&mut cmd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("rumor renew --all"));
    opens_all(&fleet, &first, false);
    opens_all(&fleet, &second, true);
    assert_eq!(
        plaintexts(&fleet, &["dev1", "dev2"], &second),
        plain,
        "no value changed"
    );
    let mut cmd = fleet.rumor();
    cmd.env("RUMOR_IDENTITY", &second).args(["check"]);
    ok(&mut cmd);
    // The device still opens its file.
    let mut cmd = fleet.rumor();
    cmd.env("RUMOR_IDENTITY", &second)
        .args(["get", "dev1", "age.key"]);
    let device_key = fleet.write("device.txt", &ok(&mut cmd));
    assert_eq!(fleet.sops_decrypt("dev1", &device_key), plain["dev1"]);
}

/// Bad input: one line, exit 3, nothing changed.
#[test]
fn bad_input_changes_nothing() {
    if !tools() {
        return;
    }
    let fleet = Fleet::init(vec![]);
    fleet.run(&["new", "dev1"]);
    let admin = fleet.admin_recipient();
    let (_, other) = age_keygen(fleet.tmp.path(), "other.txt");
    let before = fleet.snapshot();
    for args in [
        vec!["admins", "add", "age1notarecipient"],
        vec![
            "admins",
            "add",
            // An SSH key type age does not support (tests/keys.rs adds the
            // supported ones).
            "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY= me",
        ],
        vec!["admins", "add", &admin],
        vec!["admins", "remove", &admin],
        vec!["admins", "remove", &other],
        vec!["admins", "remove", "nonsense"],
    ] {
        let out = fleet.output(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("rumor: "), "{stderr}");
        assert_eq!(fleet.snapshot(), before, "{args:?} changed the fleet");
    }
    // Removing the identity rumor runs with, while another admin remains.
    fleet.run(&["admins", "add", &other]);
    let before = fleet.snapshot();
    let out = fleet.output(&["admins", "remove", &admin]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fleet.snapshot(), before);
}

/// rumor.toml edited by hand: `check` names every file on the old set,
/// `rekey` fixes them all.
#[test]
fn check_reports_files_on_another_set() {
    if !tools() {
        return;
    }
    let fleet = Fleet::init(vec![]);
    fleet.run(&["new", "dev1", "dev2"]);
    let admin = fleet.admin_recipient();
    let (_, second) = age_keygen(fleet.tmp.path(), "second.txt");
    let config = fs::read_to_string(fleet.path("rumor.toml")).unwrap();
    fs::write(
        fleet.path("rumor.toml"),
        config.replace(
            &format!("recipients = [\"{admin}\"]"),
            &format!("recipients = [\n    \"{admin}\",\n    \"{second}\",\n]"),
        ),
    )
    .unwrap();
    let out = fleet.output(&["check"]);
    assert_eq!(out.status.code(), Some(5));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for file in ["secrets/dev1.yaml", "secrets/dev2.yaml", "store/.admins"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(file) && l.contains("rumor rekey")),
            "{file} not reported: {stdout}"
        );
    }
    fleet.run(&["rekey"]);
    fleet.run(&["check"]);
    // The multi-line list was replaced whole by `admins remove`.
    let (_, third) = age_keygen(fleet.tmp.path(), "third.txt");
    fleet.run(&["admins", "add", &third]);
    fleet.run(&["admins", "remove", &second]);
    assert_eq!(
        fleet.run(&["admins", "list"]),
        format!("{admin}\n{third}\n")
    );
    fleet.run(&["check"]);
}

/// Parity: rumor's rewrap and the real `sops updatekeys` change the same
/// parts of a device file, and each reads the other's output.
#[test]
fn matches_sops_updatekeys() {
    if !tools() {
        return;
    }
    let fleet = Fleet::init(vec![]);
    fleet.run(&["new", "dev1"]);
    let original = fs::read_to_string(fleet.file("dev1")).unwrap();
    let (second, recipient) = age_keygen(fleet.tmp.path(), "second.txt");
    let wanted = [recipients(&original), vec![recipient.clone()]].concat();
    // The real sops, in a directory whose .sops.yaml lists the new set.
    let work = fleet.tmp.path().join("sops-work");
    fs::create_dir_all(&work).unwrap();
    fs::write(
        work.join(".sops.yaml"),
        format!("creation_rules:\n  - age: {}\n", wanted.join(",")),
    )
    .unwrap();
    fs::write(work.join("dev1.yaml"), &original).unwrap();
    let out = Command::new(require("sops").unwrap())
        .args(["updatekeys", "-y", "dev1.yaml"])
        .current_dir(&work)
        .env("SOPS_AGE_KEY_FILE", fleet.identity())
        .env("HOME", fleet.tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let by_sops = fs::read_to_string(work.join("dev1.yaml")).unwrap();
    fleet.run(&["admins", "add", &recipient]);
    let by_rumor = fs::read_to_string(fleet.file("dev1")).unwrap();
    assert_eq!(recipients(&by_rumor), recipients(&by_sops));
    assert_eq!(outside_age_block(&by_rumor), outside_age_block(&by_sops));
    assert_eq!(outside_age_block(&by_rumor), outside_age_block(&original));
    assert_ne!(by_rumor, original);
    // Both give the same plaintext to the new admin.
    let sops_plain = Command::new(require("sops").unwrap())
        .args(["decrypt", "--input-type", "yaml", "--output-type", "json"])
        .arg(work.join("dev1.yaml"))
        .env("SOPS_AGE_KEY_FILE", &second)
        .output()
        .unwrap();
    assert!(sops_plain.status.success());
    assert_eq!(
        serde_json::from_slice::<BTreeMap<String, String>>(&sops_plain.stdout).unwrap(),
        fleet.sops_decrypt("dev1", &second)
    );
}

/// On Vault the store's copy of the device file is rewrapped too, so the
/// next `rumor new` accepts the file in git.
#[test]
fn vault_rewraps_the_store_copy() {
    if !tools() {
        return;
    }
    let Some(bao) = Bao::start() else { return };
    let fleet = Fleet::init(bao.env());
    fleet.run(&["new", "dev1"]);
    let plain = fleet.sops_decrypt("dev1", &fleet.identity());
    let (second, recipient) = age_keygen(fleet.tmp.path(), "second.txt");
    fleet.run(&["admins", "add", &recipient]);
    assert_eq!(fleet.sops_decrypt("dev1", &second), plain);
    let stored = bao.kv_get("secret", "rumor/devices/dev1/current").unwrap();
    assert_eq!(
        stored["device.sops.yaml"].as_str().unwrap().trim_end(),
        fs::read_to_string(fleet.file("dev1")).unwrap().trim_end()
    );
    let settled = fleet.snapshot();
    fleet.run(&["new", "dev1"]);
    assert_eq!(
        fleet.snapshot(),
        settled,
        "new accepts the rewrapped file and changes nothing"
    );
    fleet.run(&["check"]);
}

/// SIGKILL at random points of a rekey of 20 devices (one admin swapped
/// for another), then a re-run: every file opens with exactly the new
/// admin set, no value changed, no temp file left.
#[test]
fn killed_rekeys_converge() {
    if !tools() {
        return;
    }
    let fleet = Fleet::init(vec![]);
    let ids: Vec<String> = (0..20).map(|i| format!("d{i:02}")).collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    fleet.run(&[&["new"][..], &id_refs].concat());
    let operator = fleet.identity();
    let admin = fleet.admin_recipient();
    let (leaving, leaving_r) = age_keygen(fleet.tmp.path(), "leaving.txt");
    let (joining, joining_r) = age_keygen(fleet.tmp.path(), "joining.txt");
    fleet.run(&["admins", "add", &leaving_r]);
    let plain = plaintexts(&fleet, &id_refs, &operator);
    let stored = fleet.run(&["get", "d07", "cloud.api-key"]);
    // By hand, as an operator would: swap the leaving admin for the new one.
    let config = fs::read_to_string(fleet.path("rumor.toml")).unwrap();
    fs::write(
        fleet.path("rumor.toml"),
        config.replace(&leaving_r, &joining_r),
    )
    .unwrap();

    let start = Instant::now();
    let mut child = fleet
        .rumor()
        .arg("rekey")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first run is measured, and killed only if it runs past 5 s.
    while child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    child.wait().unwrap();
    let span = (start.elapsed().as_millis() as u64).max(50);
    // The operator is in every set; each killed run has real work: the
    // store is always re-signed, and the device files move between sets.
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_ad31);
    let mut killed = 0;
    // Until 36 runs were killed mid-way: a run can end before its random
    // kill time (the runs vary around the measured span).
    for i in 0..120 {
        if killed >= 36 {
            break;
        }
        // Alternate the target set, so device files keep changing too.
        let (from, to) = if i % 2 == 0 {
            (&joining_r, &leaving_r)
        } else {
            (&leaving_r, &joining_r)
        };
        let config = fs::read_to_string(fleet.path("rumor.toml")).unwrap();
        fs::write(fleet.path("rumor.toml"), config.replace(from.as_str(), to)).unwrap();
        let mut child = fleet
            .rumor()
            .arg("rekey")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..span)));
        let _ = child.kill();
        if child.wait().unwrap().signal() == Some(9) {
            killed += 1;
        }
    }
    // End on the swapped set and converge.
    let config = fs::read_to_string(fleet.path("rumor.toml")).unwrap();
    fs::write(
        fleet.path("rumor.toml"),
        config.replace(&leaving_r, &joining_r),
    )
    .unwrap();
    fleet.run(&["rekey"]);
    eprintln!("killed {killed} rekeys mid-way; span {span} ms");
    assert!(killed >= 30, "only {killed} rekeys were killed mid-way");
    fleet.run(&["check"]);
    assert!(
        temps(&fleet.dir()).is_empty(),
        "temp files left: {:?}",
        temps(&fleet.dir())
    );
    for id in &id_refs {
        let text = fs::read_to_string(fleet.file(id)).unwrap();
        assert_eq!(
            recipients(&text)[1..],
            [admin.clone(), joining_r.clone()],
            "{id}"
        );
    }
    assert_eq!(
        plaintexts(&fleet, &id_refs, &joining),
        plain,
        "no value changed"
    );
    assert_eq!(fleet.run(&["get", "d07", "cloud.api-key"]), stored);
    opens_all(&fleet, &operator, true);
    opens_all(&fleet, &joining, true);
    opens_all(&fleet, &leaving, false);
}

/// Renewing the device key: the file moves to the new key under a fresh
/// data key, the old key opens nothing, and the image debt is reported
/// until `rumor inject`.
#[test]
fn renew_device_key() {
    if !tools() {
        return;
    }
    let fleet = Fleet::init(vec![]);
    fleet.run(&["new", "dev1", "dev2"]);
    let old_key = fleet.write("old.txt", &fleet.run(&["get", "dev1", "age.key"]));
    let plain = fleet.sops_decrypt("dev1", &old_key);
    let before = fs::read_to_string(fleet.file("dev1")).unwrap();
    let out = fleet.output(&["renew", "dev1", "--secret", "age.key"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("rumor inject dev1"), "{stderr}");
    let new_key = fleet.write("new.txt", &fleet.run(&["get", "dev1", "age.key"]));
    assert_ne!(fs::read(&old_key).unwrap(), fs::read(&new_key).unwrap());
    let after = fs::read_to_string(fleet.file("dev1")).unwrap();
    assert_eq!(
        recipients(&after)[0],
        fleet.run(&["get", "dev1", "age.pub"]).trim()
    );
    assert_eq!(
        recipients(&after)[1..],
        recipients(&before)[1..],
        "the admins stay"
    );
    // A fresh data key: no value keeps its ciphertext.
    let enc = |t: &str| {
        t.lines()
            .filter(|l| l.contains("ENC[") && !l.contains("mac:"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert!(enc(&after).iter().all(|l| !enc(&before).contains(l)));
    // The old key opens nothing; the new key and the admin open it all.
    let out = Command::new(require("sops").unwrap())
        .args(["decrypt"])
        .arg(fleet.file("dev1"))
        .env("SOPS_AGE_KEY_FILE", &old_key)
        .env("HOME", fleet.tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let renewed = fleet.sops_decrypt("dev1", &new_key);
    assert_eq!(renewed, fleet.sops_decrypt("dev1", &fleet.identity()));
    assert_eq!(
        renewed.keys().collect::<Vec<_>>(),
        plain.keys().collect::<Vec<_>>()
    );
    // `check` says the image needs the new key, for dev1 only.
    let out = fleet.output(&["check"]);
    assert_eq!(out.status.code(), Some(5));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("dev1: ") && stdout.contains("rumor inject dev1"),
        "{stdout}"
    );
    // Renewing something else is no new debt; the marker is plain text.
    let out = fleet.output(&["renew", "dev2", "--secret", "wifi.pass"]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("inject"));
    fs::remove_file(fleet.path("devices/dev1.inject-pending")).unwrap(); // what a successful inject does
    fleet.run(&["check"]);
}
