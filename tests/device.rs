//! Device provisioning end to end: `rumor init/new/renew/get/check` on the
//! embedded store and on a real OpenBao, checked with the real tools
//! (sops, nebula-cert, openssl, wpa_passphrase, Python's hashlib,
//! PostgreSQL 15).

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::fleet::Fleet;
use support::postgres::Postgres;
use support::{fails, ok, require, with_stdin, Bao};

/// Values of a systemd EnvironmentFile of `KEY="value"` lines, unescaped
/// the way systemd reads double-quoted values.
fn env_file(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let (key, value) = line.split_once('=').unwrap();
        let inner = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        let mut s = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => s.push('\n'),
                    Some(other) => s.push(other),
                    None => {}
                }
            } else {
                s.push(c);
            }
        }
        out.insert(key.to_owned(), s);
    }
    out
}

fn tools() -> bool {
    ["sops", "nebula-cert", "openssl", "wpa_passphrase", "git"]
        .iter()
        .all(|t| require(t).is_some())
}

/// The whole flow on one store; returns the fleet for more checks.
fn provision_two(fleet: &Fleet) {
    fleet.run(&["init"]);
    assert!(fleet.identity().is_file());
    fleet.run(&[
        "new",
        "pidgeon-1",
        "--ip",
        "10.8.0.10",
        "--name",
        "Pidgeon One",
    ]);
    fleet.run(&["new", "pidgeon-2"]);
    let second = fs::read_to_string(fleet.dir().join("devices/pidgeon-2.toml")).unwrap();
    assert!(
        second.contains("ip = \"10.8.0.11\""),
        "allocated after the highest: {second}"
    );
}

fn check_device_file(fleet: &Fleet, id: &str, ip: &str) {
    let admin = fleet.sops_decrypt(id, &fleet.identity());
    let keys: Vec<&str> = admin.keys().map(String::as_str).collect();
    let mut expected = vec![
        "nebula.ca.crt",
        "nebula.crt",
        "nebula.key",
        "pidgeon.env",
        "postgres.ca.crt",
        "postgres.crt",
        "postgres.key",
        "postgres.sql",
        "user.authorized_keys",
        "user.hash",
        "wifi.env",
    ];
    expected.sort();
    assert_eq!(keys, expected);
    // The device's own key opens it too.
    let device_key = fleet.run(&["get", id, "age.key"]);
    let key_file = fleet.write(&format!("{id}.key"), &device_key);
    assert_eq!(fleet.sops_decrypt(id, &key_file), admin);

    let dir = fleet.tmp.path().join(format!("check-{id}"));
    fs::create_dir_all(&dir).unwrap();
    for (name, value) in &admin {
        fs::write(dir.join(name), value).unwrap();
    }
    // Nebula: nebula-cert accepts the host certificate and shows the IP.
    ok(Command::new(require("nebula-cert").unwrap())
        .args(["verify", "-ca"])
        .arg(dir.join("nebula.ca.crt"))
        .arg("-crt")
        .arg(dir.join("nebula.crt")));
    let printed = ok(Command::new(require("nebula-cert").unwrap())
        .args(["print", "-json", "-path"])
        .arg(dir.join("nebula.crt")));
    assert!(printed.contains(&format!("\"{ip}/16\"")), "{printed}");
    assert!(printed.contains(&format!("\"name\":\"{id}\"")), "{printed}");
    // PostgreSQL: openssl verifies the server certificate and its SANs.
    let openssl = require("openssl").unwrap();
    ok(Command::new(&openssl)
        .args(["verify", "-purpose", "sslserver", "-CAfile"])
        .arg(dir.join("postgres.ca.crt"))
        .arg(dir.join("postgres.crt")));
    let text = ok(Command::new(&openssl)
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(dir.join("postgres.crt")));
    for san in [
        "DNS:localhost",
        "IP Address:127.0.0.1",
        &format!("IP Address:{ip}"),
        &format!("DNS:{id}"),
    ] {
        assert!(text.contains(san), "{san} in {text}");
    }
    // Wi-Fi: the PSK is what wpa_passphrase derives.
    let wifi = env_file(&admin["wifi.env"]);
    let wpa = ok(Command::new(require("wpa_passphrase").unwrap())
        .arg(&wifi["WIFI_SSID"])
        .arg(&wifi["WIFI_PASS"]));
    let psk = wpa
        .lines()
        .find_map(|l| l.trim().strip_prefix("psk="))
        .unwrap();
    assert_eq!(wifi["WIFI_PSK"], psk);
    assert!((8..=63).contains(&wifi["WIFI_PASS"].len()));
    // Cloud: Python's hashlib confirms the API key hash.
    let key = fleet.run(&["get", id, "cloud.api-key"]);
    let hash = fleet.run(&["get", id, "cloud.api-key.hash"]);
    let parts: Vec<&str> = hash.trim().split('$').collect();
    assert_eq!(parts[..2], ["pbkdf2-sha256", "100000"]);
    let script = "import base64,hashlib,sys; s=base64.b64decode(sys.argv[2]); print(base64.b64encode(hashlib.pbkdf2_hmac('sha256', sys.argv[1].encode(), s, 100000, 32)).decode())";
    let computed = ok(Command::new("python3").args(["-c", script, key.trim(), parts[2]]));
    assert_eq!(computed.trim(), parts[3]);
    let env = env_file(&admin["pidgeon.env"]);
    assert_eq!(env["PIDGEON_CLOUD_API_KEY"], key.trim());
    assert_eq!(env["PIDGEON_CLOUD_ID"], id);
    // pidgeon reads presence as HTTPS; the local database needs no TLS.
    assert_eq!(env["PIDGEON_CLOUD_SSL"], "1");
    assert!(
        !env.contains_key("PIDGEON_DB_SSL") && !env.contains_key("PIDGEON_MODBUS_PORT"),
        "{env:?}"
    );
    assert!(
        !admin.values().any(|v| v.contains(&hash.trim().to_string())),
        "the hash stays out of the device file"
    );
    // The API key verifies with the CLI, reading the key from stdin.
    let verify = with_stdin(
        fleet.rumor().args(["api-key", "verify", hash.trim()]),
        key.as_bytes(),
    );
    assert!(verify.status.success());
    let wrong = support::run(
        fleet
            .rumor()
            .args(["api-key", "verify", hash.trim(), "not-the-key"]),
    );
    assert_eq!(wrong.status.code(), Some(1), "a mismatch exits 1");
}

/// Lines that differ between two texts.
fn changed_lines(a: &str, b: &str) -> Vec<String> {
    a.lines()
        .zip(b.lines())
        .filter(|(x, y)| x != y)
        .map(|(x, _)| x.split(':').next().unwrap_or("").trim().to_owned())
        .collect()
}

fn idempotence_and_renew(fleet: &Fleet) {
    fleet.git(&["init", "-q"]);
    fleet.git(&["add", "-A"]);
    fleet.git(&["commit", "-qm", "provisioned"]);
    fleet.run(&["new", "pidgeon-1", "pidgeon-2"]);
    assert_eq!(
        fleet.git(&["status", "--porcelain"]),
        "",
        "a re-run must change no byte"
    );
    fleet.run(&["check"]);

    // Rotating one secret changes only its dependants' lines.
    let before = fs::read_to_string(fleet.file("pidgeon-1")).unwrap();
    let old_pass = fleet.run(&["get", "pidgeon-1", "wifi.pass"]);
    fleet.run(&["renew", "pidgeon-1", "--secret", "wifi.pass"]);
    assert_ne!(fleet.run(&["get", "pidgeon-1", "wifi.pass"]), old_pass);
    let after = fs::read_to_string(fleet.file("pidgeon-1")).unwrap();
    assert_eq!(
        changed_lines(&before, &after),
        ["wifi.env", "lastmodified", "mac"]
    );
    assert_eq!(
        fs::read_to_string(fleet.file("pidgeon-2")).unwrap(),
        fleet.git(&["show", "HEAD:secrets/pidgeon-2.yaml"])
    );
    fleet.run(&["check"]);

    // `renew` rotates what the profile marks, and the hash follows its key.
    let key = fleet.run(&["get", "pidgeon-2", "cloud.api-key"]);
    let hash = fleet.run(&["get", "pidgeon-2", "cloud.api-key.hash"]);
    let nebula = fleet.run(&["get", "pidgeon-2", "nebula.crt"]);
    fleet.run(&["renew", "pidgeon-2"]);
    assert_ne!(fleet.run(&["get", "pidgeon-2", "cloud.api-key"]), key);
    assert_ne!(fleet.run(&["get", "pidgeon-2", "cloud.api-key.hash"]), hash);
    assert_eq!(
        fleet.run(&["get", "pidgeon-2", "nebula.crt"]),
        nebula,
        "certificates rotate only when named"
    );
    fleet.run(&["check", "--json"]);

    // A tampered device file is reported by check.
    let text = fs::read_to_string(fleet.file("pidgeon-2")).unwrap();
    fs::write(
        fleet.file("pidgeon-2"),
        text.replacen("ENC[AES256_GCM,data:", "ENC[AES256_GCM,data:AA", 1),
    )
    .unwrap();
    let out = support::run(fleet.rumor().args(["check", "--json"]));
    assert!(!out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report[0]["ok"], true);
    assert_eq!(report[1]["ok"], false);
}

#[test]
fn local_store_fleet() {
    if !tools() {
        return;
    }
    let fleet = Fleet::new(vec![]);
    provision_two(&fleet);
    let config = fs::read_to_string(fleet.dir().join("rumor.toml")).unwrap();
    assert!(config.contains("kind = \"local\""));
    check_device_file(&fleet, "pidgeon-1", "10.8.0.10");
    check_device_file(&fleet, "pidgeon-2", "10.8.0.11");
    // Device runs skip the JSON Schema for speed; the default template's
    // output must still satisfy it.
    let rendered = fleet.run(&["spec", "pidgeon-1"]);
    rumor::spec::parse(&rendered, rumor::spec::Format::Toml, "rendered").unwrap();
    // The store holds no plaintext.
    for entry in walk(&fleet.dir().join("store")) {
        let text = fs::read_to_string(&entry).unwrap_or_default();
        assert!(
            entry.ends_with(".lock") || text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"),
            "{}",
            entry.display()
        );
    }
    idempotence_and_renew(&fleet);
    // Certificates close to expiry: check reports them, renew --expiring
    // rotates exactly those.
    let out =
        support::run(
            fleet
                .rumor()
                .args(["check", "pidgeon-1", "--days", "100000", "--json"]),
        );
    assert_eq!(out.status.code(), Some(5));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems: Vec<&str> = report[0]["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("\"nebula.crt\" expires in")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("\"postgres.crt\" expires in")),
        "{problems:?}"
    );
    let before: Vec<String> = ["nebula.crt", "postgres.crt", "user.hash"]
        .iter()
        .map(|n| fleet.run(&["get", "pidgeon-1", n]))
        .collect();
    fleet.run(&["renew", "pidgeon-1", "--expiring", "100000"]);
    let after: Vec<String> = ["nebula.crt", "postgres.crt", "user.hash"]
        .iter()
        .map(|n| fleet.run(&["get", "pidgeon-1", n]))
        .collect();
    assert_ne!(before[0], after[0], "nebula.crt expires within the window");
    assert_ne!(
        before[1], after[1],
        "postgres.crt expires within the window"
    );
    assert_eq!(before[2], after[2], "no other secret rotates");
    fleet.run(&["check", "pidgeon-1"]);
    let list = fleet.run(&["list", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["device"], "pidgeon-1");
    assert_eq!(list[0]["ip"], "10.8.0.10");
    assert_eq!(list[0]["provisioned"], true);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn vault_fleet() {
    if !tools() {
        return;
    }
    let Some(bao) = Bao::start() else { return };
    let fleet = Fleet::new(bao.env());
    provision_two(&fleet);
    let config = fs::read_to_string(fleet.dir().join("rumor.toml")).unwrap();
    assert!(
        config.contains("kind = \"vault\""),
        "VAULT_ADDR set at init selects Vault: {config}"
    );
    assert!(bao.kv_get("secret", "rumor/shared/current").unwrap()["nebula-ca.crt"].is_string());
    let stored = bao
        .kv_get("secret", "rumor/devices/pidgeon-1/current")
        .unwrap();
    assert!(stored["age.key"]
        .as_str()
        .unwrap()
        .starts_with("AGE-SECRET-KEY-1"));
    check_device_file(&fleet, "pidgeon-1", "10.8.0.10");
    let versions = |p: &str| bao.api("GET", &format!("/v1/secret/metadata/{p}"), None).1;
    let meta = |p: &str| {
        serde_json::from_str::<serde_json::Value>(&versions(p)).unwrap()["data"]["current_version"]
            .clone()
    };
    let v1 = meta("rumor/devices/pidgeon-1/current");
    let out = fleet.output(&["new", "pidgeon-1"]);
    assert!(out.status.success());
    // The summary of a run that had nothing to do says so: nothing
    // changed, nothing written.
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("rumor: pidgeon-1: 0 store writes, secrets/pidgeon-1.yaml unchanged"),
        "{said}"
    );
    assert_eq!(
        meta("rumor/devices/pidgeon-1/current"),
        v1,
        "a re-run makes no new version"
    );
    idempotence_and_renew(&fleet);
}

#[test]
fn bad_names_and_broken_templates() {
    let fleet = Fleet::new(vec![]);
    fleet.run(&["init"]);
    for bad in ["../etc", "Pidgeon", "a/b", "x\"y", "-rf", "a b"] {
        let err = fleet.fail(&["new", "--", bad]);
        assert!(err.contains("is not a device name"), "{bad}: {err}");
    }
    assert!(!fleet.dir().join("devices/Pidgeon.toml").exists());
    let err = fleet.fail(&["get", "nope", "age.key"]);
    assert!(err.contains("unknown device \"nope\""), "{err}");
    // A broken template: one clear line naming the template and line.
    let template = fleet.dir().join("templates/device.spec.toml.j2");
    let good = fs::read_to_string(&template).unwrap();
    fs::write(&template, format!("{good}\n{{% if %}}\n")).unwrap();
    let err = fleet.fail(&["new", "pidgeon-1"]);
    assert!(err.contains("device.spec.toml.j2:"), "{err}");
    assert_eq!(
        err.lines()
            .filter(|l| l.contains("device.spec.toml.j2"))
            .count(),
        1,
        "{err}"
    );
    assert!(
        err.lines()
            .last()
            .unwrap()
            .contains("1 of 1 devices failed: pidgeon-1"),
        "{err}"
    );
    assert!(!fleet.file("pidgeon-1").exists(), "nothing half-written");
    fs::write(&template, &good).unwrap();
    fs::write(
        fleet.dir().join("templates/pidgeon.env.j2"),
        "X={{ undefined_variable | env }}\n",
    )
    .unwrap();
    let err = fleet.fail(&["new", "pidgeon-1"]);
    assert!(
        err.contains("pidgeon.env") && err.contains("undefined"),
        "{err}"
    );
    assert!(!fleet.file("pidgeon-1").exists(), "nothing half-written");
    // An address outside the overlay is refused.
    let err = fleet.fail(&["new", "pidgeon-9", "--ip", "192.168.0.1"]);
    assert!(err.contains("outside the overlay network"), "{err}");
}

/// The device's PostgreSQL secrets work in a real PostgreSQL 15: the
/// server runs with the device certificate, the init script applies, and
/// the daemon logs in with verify-full TLS and the password from
/// pidgeon.env.
#[test]
fn postgres_end_to_end() {
    if require("sops").is_none() {
        return;
    }
    let fleet = Fleet::new(vec![]);
    fleet.run(&["init"]);
    fleet.run(&["new", "pidgeon-1"]);
    let secrets = fleet.sops_decrypt("pidgeon-1", &fleet.identity());
    let Some(pg) = Postgres::start(Some((&secrets["postgres.crt"], &secrets["postgres.key"])))
    else {
        return;
    };
    let applied = pg.psql("postgres", "postgres", None, &secrets["postgres.sql"]);
    assert!(applied.status.success(), "postgres.sql applies");

    let ca = fleet.write("ca.crt", &secrets["postgres.ca.crt"]);
    let env = env_file(&secrets["pidgeon.env"]);
    let login = |password: &str| {
        let conninfo = format!(
            "host=localhost port={} user={} dbname={} sslmode=verify-full sslrootcert={}",
            pg.port,
            env["PIDGEON_DB_USER"],
            env["PIDGEON_DB_NAME"],
            ca.display()
        );
        let mut cmd = pg.client(&conninfo, password);
        cmd.args([
            "-tAc",
            "SELECT current_user || ' ' || ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ]);
        cmd
    };
    let out = ok(&mut login(&env["PIDGEON_DB_PASSWORD"]));
    assert_eq!(out.trim(), "pidgeon true");
    let err = fails(&mut login("wrong-password"));
    assert!(err.contains("password authentication failed"), "{err}");
}

/// Two operators creating devices at once on Vault (which has no fleet
/// lock) never hand out one address twice.
#[test]
fn parallel_new_allocates_distinct_addresses() {
    if !tools() {
        return;
    }
    let Some(bao) = Bao::start() else { return };
    let fleet = Fleet::new(bao.env());
    fleet.run(&["init"]);
    for round in 0..3 {
        let a = format!("a-{round}");
        let b = format!("b-{round}");
        let mut first = fleet.rumor();
        first
            .args(["new", &a])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut second = fleet.rumor();
        second
            .args(["new", &b])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let (mut x, mut y) = (first.spawn().unwrap(), second.spawn().unwrap());
        assert!(x.wait().unwrap().success() && y.wait().unwrap().success());
    }
    let mut ips = Vec::new();
    for entry in fs::read_dir(fleet.dir().join("devices")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = fs::read_to_string(&path).unwrap();
            ips.push(
                text.lines()
                    .find(|l| l.starts_with("ip = "))
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    let unique: std::collections::BTreeSet<_> = ips.iter().collect();
    assert_eq!(ips.len(), 6);
    assert_eq!(unique.len(), 6, "{ips:?}");
    fleet.run(&["check"]);
}

/// A device's store reads go out at once, and each path once: a device
/// that shares another's Wi-Fi imports four files from that device's
/// path in one read, not four in a row. The audit log counts them.
#[test]
fn each_store_path_is_read_once_per_device() {
    if require("sops").is_none() {
        return;
    }
    let audit = tempfile::tempdir().unwrap();
    let log = audit.path().join("audit.log");
    let Some(bao) = Bao::start_audited(&log) else {
        return;
    };
    let fleet = Fleet::init(bao.env());
    fleet.run(&["new", "a"]);
    let before = fs::read_to_string(&log).unwrap().len();
    fleet.run(&["new", "--wifi", "a", "b"]);
    let text = fs::read_to_string(&log).unwrap();
    let reads = |path: &str| {
        text[before..]
            .lines()
            .filter(|l| l.contains("\"type\":\"request\""))
            .filter(|l| l.contains("\"operation\":\"read\""))
            .filter(|l| l.contains(&format!("\"path\":\"secret/data/rumor/{path}\"")))
            .count()
    };
    assert_eq!(reads("devices/a/current"), 1, "the shared Wi-Fi's path");
    assert_eq!(reads("devices/b/current"), 1, "the device's own path");
    assert_eq!(reads("shared/current"), 1, "the fleet CAs");
    // b got a's Wi-Fi, so the reads fed the imports.
    assert_eq!(
        fleet.run(&["get", "b", "wifi.pass"]),
        fleet.run(&["get", "a", "wifi.pass"])
    );
}

/// An address stays its device's after the device's files are removed by
/// hand: the ledger still holds it, so the next device gets the one above.
#[test]
fn a_removed_devices_address_is_not_handed_out_again() {
    let fleet = Fleet::init(vec![]);
    fleet.run(&["new", "a", "b"]);
    let ip = |id: &str| {
        let text = fs::read_to_string(fleet.dir().join(format!("devices/{id}.toml"))).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("ip = "))
            .unwrap()
            .trim_matches('"')
            .to_owned()
    };
    assert_eq!((ip("a"), ip("b")), ("10.8.0.2".into(), "10.8.0.3".into()));
    fs::remove_file(fleet.dir().join("devices/b.toml")).unwrap();
    fs::remove_file(fleet.file("b")).unwrap();
    fleet.run(&["new", "c"]);
    assert_eq!(ip("c"), "10.8.0.4");
    // Nor to a device created in the same run as others.
    fleet.run(&["new", "d", "e"]);
    assert_eq!((ip("d"), ip("e")), ("10.8.0.5".into(), "10.8.0.6".into()));
}
