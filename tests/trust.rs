//! A fleet repository that others can write to: every attack here is made
//! by someone who can push to git but holds no key, and each must fail,
//! with one line and nothing written.

mod support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::fleet::{age_keygen, recipients, snapshot, Fleet};
use support::{ok, require, Bao};

fn tools() -> bool {
    ["sops", "age", "age-keygen", "openssl"]
        .iter()
        .all(|t| require(t).is_some())
}

/// Removes the age stanza of `recipient` from a SOPS file; returns the file
/// and the stanza's lines.
fn cut_stanza(text: &str, recipient: &str) -> (String, Vec<String>) {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == format!("- recipient: {recipient}"))
        .expect("stanza");
    let end = start
        + lines[start..]
            .iter()
            .position(|l| l.contains("-----END AGE ENCRYPTED FILE-----"))
            .unwrap();
    let stanza = lines[start..=end].iter().map(|l| l.to_string()).collect();
    let rest: Vec<&str> = lines[..start]
        .iter()
        .chain(&lines[end + 1..])
        .copied()
        .collect();
    (rest.join("\n") + "\n", stanza)
}

/// Puts a stanza back as the first entry of `sops.age`.
fn add_stanza(text: &str, stanza: &[String]) -> String {
    let mut out = Vec::new();
    for line in text.lines() {
        out.push(line.to_owned());
        if line == "    age:" {
            out.extend(stanza.iter().cloned());
        }
    }
    out.join("\n") + "\n"
}

/// `sops decrypt` of `file` with the identity in `key`.
fn sops_decrypt(file: &Path, key: &Path) -> std::process::Output {
    Command::new(require("sops").unwrap())
        .args(["decrypt", "--input-type", "yaml", "--output-type", "yaml"])
        .arg(file)
        .env("SOPS_AGE_KEY_FILE", key)
        .output()
        .unwrap()
}

/// Store state to compare before and after: the local store's files, or
/// every Vault version of the device.
fn store_state(fleet: &Fleet, bao: Option<&Bao>, id: &str) -> String {
    match bao {
        Some(bao) => {
            let (_, meta) = bao.api(
                "GET",
                &format!("/v1/secret/metadata/rumor/devices/{id}/current"),
                None,
            );
            let v: serde_json::Value = serde_json::from_str(&meta).unwrap_or_default();
            format!("{}", v["data"]["current_version"])
        }
        None => format!(
            "{:?}",
            snapshot(&fleet.path("store"))
                .into_iter()
                .map(|(p, (b, _))| (p, b.len()))
                .collect::<Vec<_>>()
        ),
    }
}

/// Finding 1: a forged device file (the device's and the admin's public
/// recipients, plus the attacker's, whose stanza is then deleted) must not
/// make rumor encrypt the device's secrets under the attacker's data key.
fn forged_device_file(fleet: &Fleet, bao: Option<&Bao>) {
    fleet.run(&["new", "dev1"]);
    fleet.run(&["check"]);
    let genuine = fs::read_to_string(fleet.file("dev1")).unwrap();
    let (attacker_key, attacker) = age_keygen(fleet.tmp.path(), "attacker.txt");
    let mut wanted = recipients(&genuine);
    assert_eq!(wanted.len(), 2, "device and admin");
    wanted.push(attacker.clone());
    let plain = fleet.write("small.yaml", "hello: world\n");
    let out = Command::new(require("sops").unwrap())
        .args([
            "encrypt",
            "--input-type",
            "yaml",
            "--output-type",
            "yaml",
            "--age",
            &wanted.join(","),
        ])
        .arg(&plain)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (forged, stanza) = cut_stanza(&String::from_utf8(out.stdout).unwrap(), &attacker);
    fs::write(fleet.file("dev1"), &forged).unwrap();

    let before = fleet.snapshot();
    let store_before = store_state(fleet, bao, "dev1");
    let out = fleet.output(&["new", "dev1"]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "an unvouched device file is an integrity failure"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr.lines().count(),
        2,
        "one line for the device and the summary: {stderr}"
    );
    assert!(
        stderr.contains("secrets/dev1.yaml") && stderr.contains("--reencrypt"),
        "{stderr}"
    );
    assert_eq!(fleet.snapshot(), before, "nothing written in the fleet");
    assert_eq!(
        store_state(fleet, bao, "dev1"),
        store_before,
        "nothing written in the store"
    );

    // `rumor check` lists it.
    let out = fleet.output(&["check", "--json"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stdout).contains("secrets/dev1.yaml"));

    // The attack's last step, had rumor written the file: the attacker's
    // stanza put back into whatever is in git now opens nothing.
    fleet.run(&["new", "dev1", "--reencrypt"]);
    let fresh = fs::read_to_string(fleet.file("dev1")).unwrap();
    assert_ne!(fresh, forged);
    let replanted = fleet.write("replanted.yaml", &add_stanza(&fresh, &stanza));
    let out = sops_decrypt(&replanted, &attacker_key);
    assert!(
        !out.status.success(),
        "the attacker's key must open nothing"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("PIDGEON_DB_PASSWORD"));
    // The device still opens it (real sops, the device key from the store),
    // and the fleet checks out again.
    let device_key = fleet.write("device.txt", &fleet.run(&["get", "dev1", "age.key"]));
    assert!(fleet
        .sops_decrypt("dev1", &device_key)
        .contains_key("pidgeon.env"));
    fleet.run(&["check"]);
    // Unvouched means also unchanged by rumor: a plain re-run now changes nothing.
    let settled = fleet.snapshot();
    fleet.run(&["new", "dev1"]);
    assert_eq!(fleet.snapshot(), settled);

    // A file one version behind the store (a run killed between writing
    // the store and the file, or an older commit) is one rumor wrote: it is
    // brought up to date, not refused.
    let older = fs::read(fleet.file("dev1")).unwrap();
    fleet.run(&["renew", "dev1", "--secret", "wifi.pass"]);
    let current = fs::read(fleet.file("dev1")).unwrap();
    fs::write(fleet.file("dev1"), &older).unwrap();
    fleet.run(&["new", "dev1"]);
    assert_eq!(fs::read(fleet.file("dev1")).unwrap(), current);
    fleet.run(&["check"]);
}

#[test]
fn forged_device_file_local_store() {
    if !tools() {
        return;
    }
    forged_device_file(&Fleet::init(vec![]), None);
}

#[test]
fn forged_device_file_vault() {
    if !tools() {
        return;
    }
    let Some(bao) = Bao::start() else { return };
    forged_device_file(&Fleet::init(bao.env()), Some(&bao));
}

/// Finding 2: a symlink at `devices/.allocations` must not copy the file it
/// points to into the repository.
#[test]
fn planted_symlinks_are_not_followed_out() {
    if !tools() {
        return;
    }
    let fleet = Fleet::init(vec![]);
    fleet.run(&["new", "dev1"]);
    let identity = fs::read_to_string(fleet.identity()).unwrap();
    let secret = identity
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .unwrap()
        .to_owned();
    let ledger = fleet.path("devices/.allocations");
    let ledger_text = fs::read_to_string(&ledger).unwrap();
    for target in [fleet.identity(), PathBuf::from("/proc/self/environ")] {
        fs::remove_file(&ledger).unwrap();
        symlink(&target, &ledger).unwrap();
        let before = fleet.snapshot();
        let mut cmd = fleet.rumor();
        cmd.env("VAULT_TOKEN", "hvs.canary-token-value")
            .args(["new", "dev7"]);
        let out = support::run(&mut cmd);
        assert_eq!(out.status.code(), Some(3), "{target:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(".allocations") && stderr.contains("outside"),
            "{stderr}"
        );
        assert_eq!(fleet.snapshot(), before);
        for (path, (bytes, _)) in fleet.snapshot() {
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(&secret) && !text.contains("canary-token"),
                "{} leaks",
                path.display()
            );
        }
        fs::remove_file(&ledger).unwrap();
        fs::write(&ledger, &ledger_text).unwrap();
    }

    // A symlinked secrets/ directory cannot send a device file elsewhere,
    // and a template cannot be a link to a file outside.
    let outside = tempfile::tempdir().unwrap();
    fs::rename(fleet.path("secrets"), fleet.tmp.path().join("secrets.real")).unwrap();
    symlink(outside.path(), fleet.path("secrets")).unwrap();
    let stderr = fleet.fail(&["new", "dev1"]);
    assert!(stderr.contains("outside"), "{stderr}");
    assert_eq!(
        fs::read_dir(outside.path()).unwrap().count(),
        0,
        "nothing written through the link"
    );
    fs::remove_file(fleet.path("secrets")).unwrap();
    fs::rename(fleet.tmp.path().join("secrets.real"), fleet.path("secrets")).unwrap();

    let template = fleet.path("templates/wifi.env.j2");
    let saved = fs::read(&template).unwrap();
    for target in [fleet.identity(), PathBuf::from("/dev/zero")] {
        fs::remove_file(&template).unwrap();
        symlink(&target, &template).unwrap();
        let out = fleet.output(&["new", "dev1"]);
        assert_eq!(out.status.code(), Some(3), "{target:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("wifi.env.j2"));
    }
    fs::remove_file(&template).unwrap();
    fs::write(&template, saved).unwrap();
    fleet.run(&["new", "dev1"]);
}

/// A FIFO, a device node or an oversized file where rumor expects a file
/// is refused at once, without hanging while holding the store lock.
#[test]
fn odd_file_types_are_refused() {
    if !tools() {
        return;
    }
    let fleet = Fleet::init(vec![]);
    fleet.run(&["new", "dev1", "dev2"]);
    let run_bounded = |args: &[&str]| {
        let mut child = fleet
            .rumor()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let out = child.wait_with_output().unwrap();
                return (
                    status.code(),
                    String::from_utf8_lossy(&out.stdout).into_owned()
                        + &String::from_utf8_lossy(&out.stderr),
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("rumor {args:?} hung on a FIFO");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    fs::remove_file(fleet.file("dev1")).unwrap();
    rustix_mkfifo(&fleet.file("dev1"));
    let (code, text) = run_bounded(&["new", "dev1"]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("FIFO"), "{text}");
    let (code, text) = run_bounded(&["check", "dev1"]);
    assert_eq!(code, Some(5), "{text}");
    assert!(text.contains("FIFO"), "{text}");
    fs::remove_file(fleet.file("dev1")).unwrap();

    // A device node where a device's TOML belongs.
    let dev2 = fs::read_to_string(fleet.path("devices/dev2.toml")).unwrap();
    fs::remove_file(fleet.path("devices/dev2.toml")).unwrap();
    symlink("/dev/zero", fleet.path("devices/dev2.toml")).unwrap();
    let (code, text) = run_bounded(&["new", "dev2"]);
    assert_eq!(code, Some(3), "{text}");
    fs::remove_file(fleet.path("devices/dev2.toml")).unwrap();
    // An oversized one.
    fs::write(fleet.path("devices/dev2.toml"), vec![b'#'; 17 << 20]).unwrap();
    let (code, text) = run_bounded(&["new", "dev2"]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("larger than"), "{text}");
    // A FIFO in the store.
    let entry = fleet.path("store/secret/rumor/devices/dev2/current.age");
    fs::remove_file(&entry).unwrap();
    rustix_mkfifo(&entry);
    fs::write(fleet.path("devices/dev2.toml"), &dev2).unwrap();
    let (code, text) = run_bounded(&["new", "dev2"]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("FIFO"), "{text}");
}

fn rustix_mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

/// Finding 3: an entry encrypted to the admins by someone else is not
/// believed: a forged device entry, a forged fleet CA, an entry moved from
/// another device, a replaced store key.
#[test]
fn forged_store_entries_are_refused() {
    if !tools() {
        return;
    }
    let fleet = Fleet::init(vec![]);
    fleet.run(&["new", "dev1", "dev2"]);
    let admin = fleet.admin_recipient();
    let (_, attacker) = age_keygen(fleet.tmp.path(), "attacker.txt");
    let (attacker_key, _) = age_keygen(fleet.tmp.path(), "attacker-device.txt");
    let attacker_secret = fs::read_to_string(&attacker_key)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET"))
        .unwrap()
        .to_owned();
    let forge = |rel: &str, json: &str| {
        let path = fleet.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let plain = fleet.write("entry.json", json);
        let out = Command::new(require("age").unwrap())
            .args(["-a", "-r", &admin, "-o"])
            .arg(&path)
            .arg(&plain)
            .output()
            .unwrap();
        assert!(out.status.success());
    };
    let expect_forged = |args: &[&str], file: &str| {
        let before = fleet.snapshot();
        let out = fleet.output(args);
        assert_eq!(out.status.code(), Some(5), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains(file) && stderr.contains("not signed"),
            "{stderr}"
        );
        assert!(!stderr.contains(&attacker_secret));
        assert_eq!(fleet.snapshot(), before, "nothing written");
        let out = fleet.output(&["check", "--json"]);
        assert_eq!(out.status.code(), Some(5));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(file),
            "check lists {file}"
        );
    };

    let dev9 = "store/secret/rumor/devices/dev9/current.age";
    forge(
        dev9,
        &format!(
            r#"{{"version":1,"data":{{"age.key":"{attacker_secret}","age.pub":"{attacker}","wifi.pass":"chosen-by-attacker"}}}}"#
        ),
    );
    expect_forged(&["new", "dev9"], "dev9/current.age");
    assert!(!fleet.path("devices/dev9.toml").exists());
    fs::remove_dir_all(fleet.path("store/secret/rumor/devices/dev9")).unwrap();

    // A fleet CA the attacker controls.
    let shared = "store/secret/rumor/shared/current.age";
    let saved = fs::read(fleet.path(shared)).unwrap();
    forge(
        shared,
        r#"{"version":9,"data":{"nebula-ca.key":"x","nebula-ca.crt":"y"}}"#,
    );
    expect_forged(&["new", "dev3"], "shared/current.age");
    fs::write(fleet.path(shared), &saved).unwrap();

    // A genuine entry moved to another device's path.
    let (one, two) = (
        "store/secret/rumor/devices/dev1/current.age",
        "store/secret/rumor/devices/dev2/current.age",
    );
    let saved = fs::read(fleet.path(two)).unwrap();
    fs::copy(fleet.path(one), fleet.path(two)).unwrap();
    expect_forged(&["new", "dev2"], "dev2/current.age");
    fs::write(fleet.path(two), &saved).unwrap();

    // A store key of the attacker's, encrypted to the admin: rumor signs
    // with nothing but the key rumor.toml pins.
    let signer = fleet.path("store/.signer.age");
    let saved = fs::read(&signer).unwrap();
    let pem =
        ok(Command::new(require("openssl").unwrap()).args(["genpkey", "-algorithm", "ed25519"]));
    let pem_file = fleet.write("attacker-signer.pem", &pem);
    let out = Command::new(require("age").unwrap())
        .args(["-a", "-r", &admin, "-o"])
        .arg(&signer)
        .arg(&pem_file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let before = fleet.snapshot();
    let stderr = fleet.fail(&["renew", "dev1", "--secret", "wifi.pass"]);
    assert!(
        stderr.contains(".signer.age") && stderr.contains("pins"),
        "{stderr}"
    );
    assert_eq!(fleet.snapshot(), before);
    fs::write(&signer, saved).unwrap();
    fleet.run(&["check"]);
}

/// Paths in rumor.toml and specs cannot lead rumor to read or write
/// outside the fleet (or, for a spec's template, its directory).
#[test]
fn paths_stay_inside() {
    if !tools() {
        return;
    }
    let fleet = Fleet::init(vec![]);
    let config = fs::read_to_string(fleet.path("rumor.toml")).unwrap();
    for bad in ["../x/{device}.yaml", "/tmp/x/{device}.yaml"] {
        fs::write(
            fleet.path("rumor.toml"),
            config.replace("secrets/{device}.yaml", bad),
        )
        .unwrap();
        let out = fleet.output(&["new", "dev1"]);
        assert_eq!(out.status.code(), Some(3), "{bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("output.devices"));
    }
    fs::write(fleet.path("rumor.toml"), &config).unwrap();
    assert!(!fleet.tmp.path().join("x").exists());

    // The template generator's `file` reads only below the spec's directory.
    let dir = tempfile::tempdir().unwrap();
    for file in ["/etc/passwd", "../../../../etc/passwd"] {
        let spec = format!("[[generations]]\ngenerator = \"template\"\narguments = {{ name = \"out\", file = \"{file}\" }}\n");
        fs::write(dir.path().join("spec.toml"), spec).unwrap();
        let out = support::run(support::rumor(dir.path()).args(["run", "spec.toml"]));
        assert_eq!(out.status.code(), Some(3), "{file}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains("argument \"file\"") && !stderr.contains("root:"),
            "{stderr}"
        );
    }
}

/// Overlay addresses are unique and valid, and `check` sees certificates
/// that disagree with their device file.
#[test]
fn overlay_addresses() {
    if !tools() {
        return;
    }
    let fleet = Fleet::init(vec![]);
    fleet.run(&["new", "dev1", "dev2"]);
    let ip1 = fs::read_to_string(fleet.path("devices/dev1.toml"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("ip = "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    for (ip, why) in [
        (ip1.as_str(), "already dev1's"),
        ("10.8.0.1", "lighthouse"),
        ("10.8.0.0", "network address"),
        ("10.8.255.255", "broadcast"),
    ] {
        let before = fleet.snapshot();
        let out = fleet.output(&["new", "dev3", "--ip", ip]);
        assert_eq!(out.status.code(), Some(3), "{ip}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(why), "{ip}: {stderr}");
        assert_eq!(fleet.snapshot(), before);
    }
    // A hand-edited duplicate.
    let dev2 = fleet.path("devices/dev2.toml");
    let saved = fs::read_to_string(&dev2).unwrap();
    let ip2 = saved
        .lines()
        .find_map(|l| l.strip_prefix("ip = "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    fs::write(&dev2, saved.replace(&ip2, &ip1)).unwrap();
    let stderr = fleet.fail(&["new", "dev2"]);
    assert!(stderr.contains("already dev1's"), "{stderr}");
    let out = fleet.output(&["check", "--json"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stdout).contains("already dev1's"));
    fs::write(&dev2, &saved).unwrap();
    // Groups of the editor's choosing: the certificate keeps the old ones,
    // and check says so.
    fs::write(
        &dev2,
        saved.replace(
            "groups = [\"pidgeon\"]",
            "groups = [\"pidgeon\", \"admin\"]",
        ),
    )
    .unwrap();
    let out = fleet.output(&["check", "dev2", "--json"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("has groups [pidgeon] but the device file says [admin, pidgeon]"));
    fleet.run(&["renew", "dev2", "--secret", "nebula.crt"]);
    fleet.run(&["check", "dev2"]);
}

/// A store made before entries were signed is refused until an admin
/// vouches for it once; rekeying also brings in a new admin.
#[test]
fn unsigned_store_and_rekey() {
    if !tools() {
        return;
    }
    let fleet = Fleet::init(vec![]);
    fleet.run(&["new", "dev1"]);
    let value = fleet.run(&["get", "dev1", "wifi.pass"]);
    // Strip every signature, as an older rumor wrote them, and the pin.
    let identity = fleet.identity();
    let admin = fleet.admin_recipient();
    for (path, _) in snapshot(&fleet.path("store")) {
        if path.extension().is_none_or(|e| e != "age")
            || path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        let plain = ok(Command::new(require("age").unwrap())
            .args(["-d", "-i"])
            .arg(&identity)
            .arg(&path));
        let mut doc: serde_json::Value = serde_json::from_str(&plain).unwrap();
        doc.as_object_mut().unwrap().remove("sig");
        let plain = fleet.write("plain.json", &doc.to_string());
        ok(Command::new(require("age").unwrap())
            .args(["-a", "-r", &admin, "-o"])
            .arg(&path)
            .arg(&plain));
    }
    let config = fs::read_to_string(fleet.path("rumor.toml")).unwrap();
    fs::write(
        fleet.path("rumor.toml"),
        config
            .lines()
            .filter(|l| !l.starts_with("signer"))
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let out = fleet.output(&["new", "dev1"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rekey --trust-unsigned"));
    fleet.fail(&["rekey"]);
    fleet.run(&["rekey", "--trust-unsigned"]);
    assert!(fs::read_to_string(fleet.path("rumor.toml"))
        .unwrap()
        .contains("signer = \"ed25519:"));
    fleet.run(&["check"]);
    assert_eq!(
        fleet.run(&["get", "dev1", "wifi.pass"]),
        value,
        "rekeying rotates nothing"
    );

    // A second admin, added by hand and rekeyed in, reads the store.
    let (second, recipient) = age_keygen(fleet.tmp.path(), "second.txt");
    let config = fs::read_to_string(fleet.path("rumor.toml")).unwrap();
    fs::write(
        fleet.path("rumor.toml"),
        config.replace(
            &format!("recipients = [\"{admin}\"]"),
            &format!("recipients = [\"{admin}\", \"{recipient}\"]"),
        ),
    )
    .unwrap();
    fleet.run(&["rekey"]);
    let mut cmd = fleet.rumor();
    cmd.env("RUMOR_IDENTITY", &second)
        .args(["get", "dev1", "wifi.pass"]);
    assert_eq!(ok(&mut cmd), value);
}
