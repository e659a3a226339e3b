//! A fleet that runs the original tool today: its 1.x specs, run unchanged
//! against the CA material a 1.x fleet left in Vault, made by the real
//! `openssl` and `nebula-cert`, and checked with the real tools.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Map, Value};
use support::{ok, require, rumor, with_stdin, Bao};

const ORG: &str = "meters";

/// One device of the fleet: its id, overlay address, and whose Wi-Fi it uses.
struct Device {
    id: &'static str,
    ip: &'static str,
    wifi: &'static str,
}

/// m3 shares m1's access point, as a device listed with `wifi` does.
const DEVICES: [Device; 3] = [
    Device {
        id: "m1",
        ip: "10.9.0.11",
        wifi: "m1",
    },
    Device {
        id: "m2",
        ip: "10.9.0.12",
        wifi: "m2",
    },
    Device {
        id: "m3",
        ip: "10.9.0.13",
        wifi: "m1",
    },
];

/// What the device spec generates and keeps between runs (renew unset).
const KEPT: &[&str] = &[
    "pg.key",
    "pg.crt",
    "db.pass.meter",
    "db.pass.ops",
    "db.pass.admin",
    "ap.admin",
    "ap.pass",
    "ap.ssid.tag",
    "ap.ssid",
    "ap.wps",
    "vpn.key",
    "vpn.crt",
    "login.pass",
    "login.hash",
    "login.ssh",
    "login.ssh.pub",
    "cloud.key",
    "device.age",
    "device.age.pub",
];

/// The device file's keys, and the workspace file each holds.
const DEVICE_FILE: &[(&str, &str)] = &[
    ("tls.key", "pg.key"),
    ("tls.crt", "pg.crt"),
    ("init.sql", "db-init.sql"),
    ("nm.env", "ap.env"),
    ("overlay.key", "vpn.key"),
    ("overlay.crt", "vpn.crt"),
    ("overlay.ca", "vpn-ca.crt"),
    ("login.hash", "login.hash"),
    ("login.keys", "login.ssh.pub"),
    ("meter.env", "meter.env"),
];

/// The fixture spec, in the shape the fleet's Nix builds per device.
fn device_spec(device: &Device) -> String {
    fs::read_to_string(support::root().join("tests/fixtures/legacy/meter.spec.json"))
        .unwrap()
        .replace("@ORG@", ORG)
        .replace("@ID@", device.id)
        .replace("@IP@", device.ip)
        .replace("@WIFI@", device.wifi)
}

/// `rumor stdin json --stay` in `dir`, as the fleet's script runs it.
fn stdin_run(bao: &Bao, dir: &Path, spec: &str) -> Output {
    fs::create_dir_all(dir).unwrap();
    let out = with_stdin(
        rumor(dir).envs(bao.env()).args(["stdin", "json", "--stay"]),
        spec.as_bytes(),
    );
    eprintln!(
        "rumor stdin in {}: {:?}\n{}",
        dir.display(),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn tool(name: &str) -> PathBuf {
    require(name).unwrap()
}

/// Runs a real tool in `dir`; it must succeed.
fn real(dir: &Path, name: &str, args: &[&str]) -> String {
    ok(Command::new(tool(name)).current_dir(dir).args(args))
}

fn enable_kv(bao: &Bao) {
    let (status, body) = bao.api(
        "POST",
        "/v1/sys/mounts/kv",
        Some(r#"{"type":"kv","options":{"version":"2"}}"#),
    );
    assert!(status == 204 || status == 200, "{status}: {body}");
}

fn kv_put(bao: &Bao, path: &str, data: &Map<String, Value>) {
    let body = json!({ "data": data }).to_string();
    let (status, body) = bao.api("POST", &format!("/v1/kv/data/{path}"), Some(&body));
    assert_eq!(status, 200, "{body}");
}

fn kv(bao: &Bao, path: &str) -> Map<String, Value> {
    bao.kv_get("kv", &format!("{path}/current"))
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_else(|| panic!("nothing at kv/{path}/current"))
}

fn text(data: &Map<String, Value>, key: &str) -> String {
    data.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no \"{key}\""))
        .to_owned()
}

/// The shared path a 1.x fleet has: an Ed25519 PostgreSQL CA from
/// `openssl genpkey` + `req -x509`, a `nebula-cert ca`, and a serial file
/// (here lower-case hex, as an operator may have written it by hand).
/// Values trimmed, as the original stored them.
fn seed_shared(bao: &Bao, dir: &Path) -> Map<String, Value> {
    seed_shared_as(
        bao,
        dir,
        ORG,
        [
            "pg-ca.key",
            "pg-ca.crt",
            "pg-ca.srl",
            "vpn-ca.key",
            "vpn-ca.crt",
        ],
    )
}

/// [`seed_shared`] under `org`, with the names a fleet's spec uses for the
/// PostgreSQL CA key, certificate and serial and the Nebula CA key and
/// certificate.
fn seed_shared_as(bao: &Bao, dir: &Path, org: &str, names: [&str; 5]) -> Map<String, Value> {
    let [key, crt, srl, vkey, vcrt] = names;
    real(
        dir,
        "openssl",
        &["genpkey", "-algorithm", "ed25519", "-out", "pg-ca.key"],
    );
    real(
        dir,
        "openssl",
        &[
            "req",
            "-x509",
            "-key",
            "pg-ca.key",
            "-out",
            "pg-ca.crt",
            "-subj",
            "/CN=meters-pg",
            "-days",
            "3650",
        ],
    );
    real(
        dir,
        "nebula-cert",
        &[
            "ca",
            "-name",
            "meters-vpn",
            "-duration",
            "87600h",
            "-out-crt",
            "vpn-ca.crt",
            "-out-key",
            "vpn-ca.key",
        ],
    );
    let mut shared = Map::new();
    for (name, file) in [
        (key, "pg-ca.key"),
        (crt, "pg-ca.crt"),
        (vkey, "vpn-ca.key"),
        (vcrt, "vpn-ca.crt"),
    ] {
        shared.insert(
            name.into(),
            fs::read_to_string(dir.join(file)).unwrap().trim().into(),
        );
    }
    shared.insert(srl.into(), "3f1aa0c2e9".into());
    kv_put(bao, &format!("{org}/shared/current"), &shared);
    shared
}

/// Values a 1.x run left at a device's path (its Wi-Fi, its database
/// password, its cloud key), as that run's `vault` export stored them.
fn seed_device(bao: &Bao, id: &str) -> Map<String, Value> {
    let mut data = Map::new();
    for (name, value) in [
        ("ap.ssid", format!("meter-1x-{id}")),
        ("ap.ssid.tag", format!("1x-{id}")),
        ("ap.pass", format!("1x wifi passphrase of {id}")),
        ("db.pass.meter", format!("1x-db-password-{id}")),
        ("cloud.key", format!("1x-cloud-key-{id}")),
    ] {
        data.insert(name.into(), value.into());
    }
    kv_put(bao, &format!("{ORG}/pidgeon/{id}/current"), &data);
    data
}

/// A certificate's serial as `openssl x509 -serial` prints it.
fn serial(dir: &Path, cert: &str) -> String {
    let path = dir.join("serial-check.crt");
    fs::write(&path, format!("{cert}\n")).unwrap();
    real(
        dir,
        "openssl",
        &["x509", "-noout", "-serial", "-in", path.to_str().unwrap()],
    )
    .trim()
    .trim_start_matches("serial=")
    .to_ascii_uppercase()
}

/// Writes `value` to `dir/name` with its final newline, for the real tools.
fn put(dir: &Path, name: &str, value: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, format!("{}\n", value.trim_end())).unwrap();
    path
}

fn yaml_map(text: &str) -> BTreeMap<String, String> {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).unwrap();
    value
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_owned(),
                v.as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_1x_fleet_runs_unchanged_and_keeps_its_values() {
    for name in ["bao", "sops", "openssl", "nebula-cert"] {
        if require(name).is_none() {
            return;
        }
    }
    let bao = Bao::start().expect("bao");
    enable_kv(&bao);
    let tmp = tempfile::tempdir().unwrap();
    let seed = tmp.path().join("seed");
    fs::create_dir_all(&seed).unwrap();
    let shared = seed_shared(&bao, &seed);
    // m1 and m2 were provisioned by 1.x; m3 is new and uses m1's Wi-Fi.
    let provisioned: BTreeMap<&str, Map<String, Value>> = ["m1", "m2"]
        .into_iter()
        .map(|id| (id, seed_device(&bao, id)))
        .collect();

    // Twice over the fleet, each run in a fresh directory, as the fleet's
    // script does (rm -rf artifacts; cd artifacts; rumor stdin json --stay).
    let mut rounds: Vec<BTreeMap<&str, Map<String, Value>>> = Vec::new();
    for round in 0..2 {
        let mut seen = BTreeMap::new();
        for device in &DEVICES {
            let dir = tmp.path().join(format!("work/{}-{round}", device.id));
            let out = stdin_run(&bao, &dir, &device_spec(device));
            assert!(
                out.status.success(),
                "{}: {}",
                device.id,
                String::from_utf8_lossy(&out.stderr)
            );
            let stderr = String::from_utf8(out.stderr).unwrap();
            let warnings: Vec<&str> = stderr
                .lines()
                .filter(|l| l.starts_with("rumor: warning:"))
                .collect();
            assert_eq!(
                warnings,
                [
                    r#"rumor: warning: generations[0] (openssl): "name" is the 1.x form; 2.x uses "config" (made as 1.x did: an Ed25519 key, subject CN=<name>)"#
                ],
                "one warning per legacy entry"
            );
            // Nothing but the exported device file is left on disk.
            assert_eq!(
                fs::read_dir(&dir).unwrap().count(),
                0,
                "the workspace stayed in memory"
            );
            seen.insert(device.id, kv(&bao, &format!("{ORG}/pidgeon/{}", device.id)));
        }
        rounds.push(seen);
    }

    // The CAs in Vault are the ones the fleet had; only the serial moved.
    let shared_now = kv(&bao, &format!("{ORG}/shared"));
    for name in ["pg-ca.key", "pg-ca.crt", "vpn-ca.key", "vpn-ca.crt"] {
        assert_eq!(
            shared_now[name], shared[name],
            "{name} must be the 1.x fleet's"
        );
    }

    let check = tmp.path().join("check");
    fs::create_dir_all(&check).unwrap();
    let pg_ca = put(&check, "pg-ca.crt", &text(&shared, "pg-ca.crt"));
    let vpn_ca = put(&check, "vpn-ca.crt", &text(&shared, "vpn-ca.crt"));
    let mut serials = BTreeSet::new();
    for device in &DEVICES {
        let (first, second) = (&rounds[0][device.id], &rounds[1][device.id]);
        for (name, value) in provisioned.get(device.id).into_iter().flatten() {
            assert_eq!(
                &second[name], value,
                "{}: the 1.x value of {name} must be kept",
                device.id
            );
        }
        for name in KEPT {
            assert_eq!(
                second.get(*name),
                first.get(*name),
                "{}: {name} must be kept",
                device.id
            );
        }
        // The PostgreSQL leaf: signed by the 1.x CA, as 1.x made it.
        let crt = put(
            &check,
            &format!("{}-pg.crt", device.id),
            &text(second, "pg.crt"),
        );
        real(
            &check,
            "openssl",
            &[
                "verify",
                "-CAfile",
                pg_ca.to_str().unwrap(),
                crt.to_str().unwrap(),
            ],
        );
        let subject = real(
            &check,
            "openssl",
            &["x509", "-noout", "-subject", "-in", crt.to_str().unwrap()],
        );
        assert!(
            subject.contains(&format!("CN = {}", device.ip)),
            "{subject}"
        );
        let key = put(
            &check,
            &format!("{}-pg.key", device.id),
            &text(second, "pg.key"),
        );
        let key_text = real(
            &check,
            "openssl",
            &["pkey", "-noout", "-text", "-in", key.to_str().unwrap()],
        );
        assert!(
            key_text.contains("ED25519 Private-Key"),
            "1.x made Ed25519 leaf keys"
        );
        assert!(
            serials.insert(serial(&check, &text(second, "pg.crt"))),
            "{}: serial reused",
            device.id
        );
        // The Nebula host: signed by the CA nebula-cert made.
        let host = put(
            &check,
            &format!("{}-vpn.crt", device.id),
            &text(second, "vpn.crt"),
        );
        real(
            &check,
            "nebula-cert",
            &[
                "verify",
                "-ca",
                vpn_ca.to_str().unwrap(),
                "-crt",
                host.to_str().unwrap(),
            ],
        );

        // The real sops opens the device file with the device key from Vault.
        let age_key = put(
            &check,
            &format!("{}.age", device.id),
            &text(second, "device.age"),
        );
        let file = tmp.path().join(format!("work/secrets/{}.yaml", device.id));
        let out = Command::new(tool("sops"))
            .args(["decrypt", "--input-type", "yaml", "--output-type", "yaml"])
            .arg(&file)
            .env_remove("SOPS_AGE_KEY")
            .env("SOPS_AGE_KEY_FILE", &age_key)
            .env("HOME", &check)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: sops decrypt: {}",
            device.id,
            String::from_utf8_lossy(&out.stderr)
        );
        let decrypted = yaml_map(&String::from_utf8(out.stdout).unwrap());
        let keys: BTreeSet<&str> = decrypted.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            DEVICE_FILE.iter().map(|(k, _)| *k).collect(),
            "{}",
            device.id
        );
        for (key, file) in DEVICE_FILE {
            assert_eq!(
                decrypted[*key].trim(),
                text(second, file).trim(),
                "{}: {key}",
                device.id
            );
        }
    }
    // Serials count up from the 1.x file, one per device, and stay put on
    // the second round, which signed nothing.
    let expected: BTreeSet<String> = (1..=3u64)
        .map(|n| format!("{:X}", 0x3f1aa0c2e9u64 + n))
        .collect();
    assert_eq!(serials, expected);
    assert_eq!(
        text(&shared_now, "pg-ca.srl"),
        format!("{:X}", 0x3f1aa0c2e9u64 + 3)
    );

    // m3 uses m1's access point; m2 has its own.
    let (m1, m2, m3) = (&rounds[1]["m1"], &rounds[1]["m2"], &rounds[1]["m3"]);
    for name in ["ap.ssid", "ap.pass"] {
        assert_eq!(m3[name], m1[name], "{name} is shared");
        assert_eq!(
            m1[name], provisioned["m1"][name],
            "{name} is still the 1.x one"
        );
        assert_ne!(m2[name], m1[name], "{name} is m2's own");
    }
    assert!(text(m3, "ap.env").contains(&text(m1, "ap.pass")));
}

/// An entry of the pidgeon-shaped spec with one argument removed.
fn without(spec: &str, entry: usize, arg: &str) -> String {
    let mut value: Value = serde_json::from_str(spec).unwrap();
    value["generations"][entry]["arguments"]
        .as_object_mut()
        .unwrap()
        .remove(arg);
    value.to_string()
}

#[test]
fn bad_legacy_input_is_one_line_and_writes_nothing() {
    for name in ["bao", "openssl", "nebula-cert"] {
        if require(name).is_none() {
            return;
        }
    }
    let bao = Bao::start().expect("bao");
    enable_kv(&bao);
    let tmp = tempfile::tempdir().unwrap();
    let seed = tmp.path().join("seed");
    fs::create_dir_all(&seed).unwrap();
    seed_shared(&bao, &seed);
    let m1 = seed_device(&bao, "m1");
    let spec = device_spec(&DEVICES[0]);

    let mut cases = vec![
        (
            without(&spec, 0, "name"),
            r#"generations[0] (openssl): missing argument "config" (2.x form) or "name" (1.x form)"#,
        ),
        (
            without(&spec, 0, "serial"),
            r#"generations[0] (openssl): missing argument "serial""#,
        ),
    ];
    // A CA key of a type rumor does not sign with: Ed448, from openssl.
    let mut shared = kv(&bao, &format!("{ORG}/shared"));
    real(
        &seed,
        "openssl",
        &["genpkey", "-algorithm", "ed448", "-out", "ed448.key"],
    );
    real(
        &seed,
        "openssl",
        &[
            "req",
            "-x509",
            "-key",
            "ed448.key",
            "-out",
            "ed448.crt",
            "-subj",
            "/CN=odd",
            "-days",
            "30",
        ],
    );
    shared.insert(
        "pg-ca.key".into(),
        fs::read_to_string(seed.join("ed448.key"))
            .unwrap()
            .trim()
            .into(),
    );
    shared.insert(
        "pg-ca.crt".into(),
        fs::read_to_string(seed.join("ed448.crt"))
            .unwrap()
            .trim()
            .into(),
    );
    kv_put(&bao, &format!("{ORG}/odd/current"), &shared);
    cases.push((
        spec.replace(&format!("kv/{ORG}/shared"), &format!("kv/{ORG}/odd")),
        r#"generations[0] (openssl): argument "ca_private": "pg-ca.key" private key is not a P-256, Ed25519 or RSA private key"#,
    ));

    for (i, (text, expected)) in cases.iter().enumerate() {
        let dir = tmp.path().join(format!("bad-{i}"));
        let out = stdin_run(&bao, &dir, text);
        assert_eq!(out.status.code(), Some(3), "{expected}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.starts_with("rumor: warning:"))
            .collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(
            errors[0].starts_with("rumor: <stdin>") || errors[0].starts_with("rumor: generations["),
            "{stderr}"
        );
        assert!(errors[0].contains(expected), "{stderr}");
    }
    // Nothing written: the device path and the serial as seeded, no device file.
    assert_eq!(kv(&bao, &format!("{ORG}/pidgeon/m1")), m1);
    assert!(!tmp.path().join("secrets").exists());
    assert_eq!(
        text(&kv(&bao, &format!("{ORG}/shared")), "pg-ca.srl"),
        "3f1aa0c2e9"
    );
}

/// A 1.x spec's CA, leaf and pre-1.3 cockroach client, in a directory
/// that already holds a P-256 CA from `openssl genpkey` and a serial file.
#[test]
fn every_legacy_form_makes_what_its_release_made() {
    let Some(openssl) = require("openssl") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    real(
        dir,
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "p256-ca.key",
        ],
    );
    real(
        dir,
        "openssl",
        &[
            "req",
            "-x509",
            "-key",
            "p256-ca.key",
            "-out",
            "p256-ca.crt",
            "-subj",
            "/CN=p256",
            "-days",
            "30",
        ],
    );
    // Upper case with a newline, as `-CAserial` writes it.
    fs::write(dir.join("p256-ca.srl"), "0FFF\n").unwrap();
    fs::write(
        dir.join("legacy.json"),
        json!({
            "generations": [
                {"generator": "openssl-ca", "arguments": {"name": "Fleet CA", "public": "ca.crt", "private": "ca.key", "days": 400}},
                {"generator": "openssl", "arguments": {"ca_public": "ca.crt", "ca_private": "ca.key", "serial": "ca.srl", "name": "db.local", "public": "db.crt", "private": "db.key"}},
                {"generator": "openssl", "arguments": {"ca_public": "p256-ca.crt", "ca_private": "p256-ca.key", "serial": "p256-ca.srl", "name": "10.9.0.40", "public": "p.crt", "private": "p.key"}},
                {"generator": "cockroach-ca", "arguments": {"public": "crdb-ca.crt", "private": "crdb-ca.key"}},
                {"generator": "cockroach-client", "arguments": {"ca_public": "crdb-ca.crt", "ca_private": "crdb-ca.key", "public": "client.crt", "private": "client.key"}}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let out = support::run(rumor(dir).args(["run", "legacy.json", "--stay", "--keep"]));
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("rumor: warning:"))
        .collect();
    assert_eq!(warnings.len(), 4, "{stderr}");
    for (entry, form) in [
        (
            "generations[0] (openssl-ca)",
            "\"name\" is the 1.x form; 2.x uses \"config\"",
        ),
        (
            "generations[4] (cockroach-client)",
            "no \"user\" is the 1.2 form",
        ),
    ] {
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with(&format!("rumor: warning: {entry}: {form}"))),
            "{stderr}"
        );
    }

    let x509 = |file: &str, what: &[&str]| {
        let mut args = vec!["x509", "-noout", "-in", file];
        args.extend_from_slice(what);
        real(dir, "openssl", &args)
    };
    // The CA: Ed25519, CN=<name>, `days`, and OpenSSL's default v3_ca.
    let ca = x509("ca.crt", &["-text"]);
    assert!(
        ca.contains("Subject: CN = Fleet CA") && ca.contains("Issuer: CN = Fleet CA"),
        "{ca}"
    );
    assert!(ca.contains("Public Key Algorithm: ED25519"), "{ca}");
    assert!(
        ca.contains("X509v3 Basic Constraints: critical\n                CA:TRUE"),
        "{ca}"
    );
    assert!(
        ca.contains("X509v3 Subject Key Identifier")
            && ca.contains("X509v3 Authority Key Identifier"),
        "{ca}"
    );
    let dates = x509("ca.crt", &["-startdate", "-enddate"]);
    let year = |prefix: &str| -> i32 {
        let line = dates.lines().find(|l| l.starts_with(prefix)).unwrap();
        line.split_whitespace()
            .rev()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        (1..=2).contains(&(year("notAfter") - year("notBefore"))),
        "400 days: {dates}"
    );
    ok(Command::new(&openssl)
        .current_dir(dir)
        .args(["verify", "-CAfile", "ca.crt", "db.crt"]));
    assert!(x509("db.crt", &["-subject"]).contains("CN = db.local"));
    // No serial file before: a random serial, written back as `-CAcreateserial` does.
    let db_serial = x509("db.crt", &["-serial"]);
    assert_eq!(
        db_serial.trim().trim_start_matches("serial="),
        fs::read_to_string(dir.join("ca.srl")).unwrap().trim()
    );

    // The P-256 CA from openssl signs on; its serial file counts up.
    ok(Command::new(&openssl)
        .current_dir(dir)
        .args(["verify", "-CAfile", "p256-ca.crt", "p.crt"]));
    assert_eq!(x509("p.crt", &["-serial"]).trim(), "serial=1000");
    assert_eq!(
        fs::read_to_string(dir.join("p256-ca.srl")).unwrap(),
        "1000\n"
    );

    // cockroach-client without "user": the certificate 1.2 made, for "client".
    ok(Command::new(&openssl).current_dir(dir).args([
        "verify",
        "-CAfile",
        "crdb-ca.crt",
        "client.crt",
    ]));
    assert!(
        x509("client.crt", &["-subject"]).contains("CN = client"),
        "cockroach 1.2 made client.client.crt"
    );
}

/// The original tool's fleet, as the pidgeon fleet runs it (its spec in the
/// original profile's names: `tests/fixtures/legacy/original.spec.json`),
/// taken over by rumor's fleet commands: `init --profile original` and
/// `adopt` its device list, then `new --all` rotates nothing, writes no
/// version in Vault and changes no byte in git, and `check` passes.
#[test]
fn adopting_a_1x_fleet_rotates_nothing() {
    for name in ["bao", "sops", "openssl", "nebula-cert"] {
        if require(name).is_none() {
            return;
        }
    }
    let bao = Bao::start().expect("bao");
    enable_kv(&bao);
    let fleet = support::fleet::Fleet::new(bao.env());
    let org = "ozds";
    let seed = fleet.tmp.path().join("seed");
    fs::create_dir_all(&seed).unwrap();
    seed_shared_as(
        &bao,
        &seed,
        org,
        [
            "postgres-ca-priv",
            "postgres-ca-pub",
            "postgres-ca-srl",
            "nebula-ca-priv",
            "nebula-ca-pub",
        ],
    );
    // Ids as the fleet has them (mixed case); the third is new and uses the
    // first's Wi-Fi. The first two were provisioned before.
    let devices = [
        ("Kx81aQ", "10.9.0.12", "Kx81aQ"),
        ("p0TzV3", "10.9.0.11", "p0TzV3"),
        ("Wq7Hn2", "10.9.0.15", "Kx81aQ"),
    ];
    for (id, _, _) in &devices[..2] {
        let mut data = Map::new();
        data.insert("wifi.ssid.pub".into(), format!("pidgeon-1x-{id}").into());
        data.insert(
            "wifi.pass".into(),
            format!("1x wifi passphrase of {id}").into(),
        );
        data.insert("key".into(), format!("1x-cloud-key-{id}").into());
        kv_put(&bao, &format!("{org}/pidgeon/{id}/current"), &data);
    }
    let template =
        fs::read_to_string(support::root().join("tests/fixtures/legacy/original.spec.json"))
            .unwrap();
    let spec = |id: &str, ip: &str, wifi: &str| {
        template
            .replace("@ORG@", org)
            .replace("@ID@", id)
            .replace("@IP@", ip)
            .replace("@WIFI@", wifi)
            .replace("@DOMAIN@", "cloud.example.com")
    };
    // The fleet's own script, twice: rm -rf artifacts; cd artifacts;
    // rumor stdin json --stay (the device files land in assets/secrets/).
    for _ in 0..2 {
        for (id, ip, wifi) in &devices {
            let dir = fleet.path("artifacts");
            let _ = fs::remove_dir_all(&dir);
            let out = stdin_run(&bao, &dir, &spec(id, ip, wifi));
            assert!(
                out.status.success(),
                "{id}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    fs::remove_dir_all(fleet.path("artifacts")).unwrap();

    // Everything rumor could change: every version of every path in Vault,
    // and every file in the repository.
    let paths: Vec<String> = devices
        .iter()
        .map(|(id, _, _)| format!("{org}/pidgeon/{id}"))
        .chain([format!("{org}/shared")])
        .collect();
    let vault = || {
        paths
            .iter()
            .map(|p| {
                let meta: Value = serde_json::from_str(
                    &bao.api("GET", &format!("/v1/kv/metadata/{p}/current"), None)
                        .1,
                )
                .unwrap();
                let history = bao.kv_list("kv", p);
                (
                    p.clone(),
                    (
                        meta["data"]["current_version"].clone(),
                        history,
                        kv(&bao, p),
                    ),
                )
            })
            .collect::<BTreeMap<_, _>>()
    };
    let before = vault();
    let files = || support::fleet::snapshot(&fleet.path("assets"));
    let git_before = files();
    assert_eq!(git_before.len(), 3);

    fleet.run(&[
        "init",
        "--profile",
        "original",
        "--device-path",
        &format!("kv/{org}/pidgeon/{{device}}"),
        "--shared-path",
        &format!("kv/{org}/shared"),
        "--output",
        "assets/secrets/{device}.yaml",
    ]);
    let config = fs::read_to_string(fleet.path("rumor.toml")).unwrap();
    fs::write(
        fleet.path("rumor.toml"),
        config.replace("10.8.0.0/16", "10.9.0.0/16"),
    )
    .unwrap();
    let list: Vec<Value> = devices
        .iter()
        .enumerate()
        .map(|(n, (id, ip, wifi))| {
            let mut e = json!({ "id": id, "ip": ip, "wifi": wifi });
            if n != 1 {
                e["name"] = format!("Meter {n}").into();
            }
            e
        })
        .collect();
    let list_file = fleet.write(
        "pidgeons.json",
        &serde_json::to_string_pretty(&list).unwrap(),
    );
    fleet.run(&["adopt", list_file.to_str().unwrap()]);
    assert!(fs::read_to_string(fleet.path("rumor.toml"))
        .unwrap()
        .contains("mixed_case = true"));
    assert_eq!(
        fs::read_to_string(fleet.path("devices/Wq7Hn2.toml"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("wifi")),
        Some("wifi = \"Kx81aQ\"")
    );
    let ledger = fs::read_to_string(fleet.path("devices/.allocations")).unwrap();
    assert!(
        devices
            .iter()
            .all(|(id, ip, _)| ledger.contains(&format!("{ip} {id}"))),
        "{ledger}"
    );
    // Adopting again changes nothing.
    let adopted = support::fleet::snapshot(&fleet.path("devices"));
    fleet.run(&["adopt", list_file.to_str().unwrap()]);
    assert_eq!(support::fleet::snapshot(&fleet.path("devices")), adopted);

    fleet.run(&["new", "--all"]);
    let after = vault();
    for (path, (version, history, data)) in &after {
        let (v0, h0, d0) = &before[path];
        let changed: Vec<&String> = data
            .keys()
            .chain(d0.keys())
            .filter(|k| data.get(*k) != d0.get(*k))
            .collect();
        assert!(
            version == v0 && history == h0 && changed.is_empty(),
            "{path}: version {v0} -> {version}, changed keys {changed:?}"
        );
    }
    assert_eq!(files(), git_before, "no byte changed in the device files");
    fleet.run(&["check"]);

    // From here rumor's commands work as on any fleet: renew rotates the
    // marked secrets, the device file follows, check passes.
    let old_key = fleet.run(&["get", "p0TzV3", "key"]);
    fleet.run(&["renew", "p0TzV3"]);
    assert_ne!(fleet.run(&["get", "p0TzV3", "key"]), old_key);
    assert_ne!(files(), git_before);
    fleet.run(&["check"]);
}

#[test]
fn a_bad_device_list_is_one_line_and_writes_nothing() {
    let fleet = support::fleet::Fleet::init(vec![]);
    let before = fleet.snapshot();
    for (list, expected) in [
        (
            r#"[{"id": "a1", "ip": "10.8.0.2"}, {"id": "a2", "ip": "10.8.0.2"}]"#,
            r#"[1] ("a2") ip: 10.8.0.2 is also "a1"'s in the list"#,
        ),
        (
            r#"[{"id": "a1", "ip": "10.9.0.2"}]"#,
            r#"[0] ("a1") ip: 10.9.0.2 is outside the overlay network"#,
        ),
        (r#"[{"id": "a1", "ip": "10.8.0.1"}]"#, "lighthouse"),
        (
            r#"[{"id": "a1", "ip": "10.8.0.2"}, {"id": "a1", "ip": "10.8.0.3"}]"#,
            r#"[1] ("a1") id: appears twice"#,
        ),
        (
            r#"[{"id": "a1", "ip": "10.8.0.2", "wifi": "zz"}]"#,
            r#"[0] ("a1") wifi: "zz" is neither in the list"#,
        ),
        (
            r#"[{"id": "../x", "ip": "10.8.0.2"}]"#,
            "is not a device name",
        ),
        (
            r#"[{"id": "a1", "ipp": "10.8.0.2"}]"#,
            "unknown field `ipp`",
        ),
        (r#"{"id": "a1"}"#, "pidgeons.json:1"),
    ] {
        let file = fleet.write("pidgeons.json", list);
        let out = fleet.output(&["adopt", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(3), "{list}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("pidgeons.json") && stderr.contains(expected),
            "{expected}: {stderr}"
        );
        assert_eq!(fleet.snapshot(), before, "nothing written");
    }
}
