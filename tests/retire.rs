//! `rumor retire`: the Nebula blocklist against `nebula-cert print`, the
//! CRL against `openssl crl -verify` and `openssl verify -crl_check`, the
//! device file removed, the id refused by `rumor new` (by git or by the
//! store), shared Wi-Fi reported and planned for rotation, `rumor list`,
//! `--dry-run`, idempotence and `--reuse-retired`.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::fleet::Fleet;
use support::{ok, require, Bao};

fn tools() -> bool {
    ["sops", "nebula-cert", "openssl"]
        .iter()
        .all(|t| require(t).is_some())
}

/// A stored value of a device, written to a file beside the fleet.
fn stored(fleet: &Fleet, id: &str, name: &str) -> PathBuf {
    let value = fleet.run(&["get", id, name]);
    fleet.write(&format!("{id}.{name}"), &value)
}

fn nebula_fingerprint(cert: &Path) -> String {
    let out = ok(Command::new(require("nebula-cert").unwrap())
        .args(["print", "-json", "-path"])
        .arg(cert));
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    v["fingerprint"].as_str().unwrap().to_owned()
}

fn blocklist(fleet: &Fleet) -> Vec<String> {
    let text = fs::read_to_string(fleet.path("revocations/nebula-blocklist.yaml")).unwrap();
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    v["pki"]["blocklist"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect()
}

/// `openssl verify -crl_check` of a device's certificate: true if accepted.
fn crl_accepts(fleet: &Fleet, ca: &Path, cert: &Path) -> bool {
    let out = support::run(
        Command::new(require("openssl").unwrap())
            .args(["verify", "-crl_check", "-CAfile"])
            .arg(ca)
            .arg("-CRLfile")
            .arg(fleet.path("revocations/postgres.crl"))
            .arg(cert),
    );
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("certificate revoked"), "{text}");
    }
    out.status.success()
}

fn crl_text(fleet: &Fleet, ca: &Path) -> String {
    let out = support::run(
        Command::new(require("openssl").unwrap())
            .args(["crl", "-noout", "-text", "-verify", "-CAfile"])
            .arg(ca)
            .arg("-in")
            .arg(fleet.path("revocations/postgres.crl")),
    );
    assert!(out.status.success(), "openssl crl -verify refuses the CRL");
    let all =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(all.contains("verify OK"), "{all}");
    all
}

fn serial(cert: &Path) -> String {
    let out = ok(Command::new(require("openssl").unwrap())
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(cert));
    out.trim().trim_start_matches("serial=").to_owned()
}

fn retiring(fleet: &Fleet) {
    fleet.run(&["new", "a", "c"]);
    fleet.run(&["new", "--wifi", "a", "b"]);
    let ca = fleet.write(
        "ca.crt",
        &fleet.sops_decrypt("a", &fleet.identity())["postgres.ca.crt"],
    );
    let a_crt = stored(fleet, "a", "postgres.crt");
    let c_crt = stored(fleet, "c", "postgres.crt");
    let a_nebula = stored(fleet, "a", "nebula.crt");
    let a_ip = fleet.run(&["list", "--json"]);
    let a_ip: serde_json::Value = serde_json::from_str(&a_ip).unwrap();
    let a_ip = a_ip[0]["ip"].as_str().unwrap().to_owned();

    // --dry-run: lists the work, writes nothing, exit 2.
    let before = fleet.snapshot();
    let out = fleet.output(&["retire", "a", "--dry-run"]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("would remove secrets/a.yaml"), "{text}");
    assert_eq!(before, fleet.snapshot(), "retire --dry-run wrote something");

    let out = fleet.run(&["retire", "a", "--reason", "stolen from site 12"]);
    assert!(out.contains("shared with b: "), "{out}");
    assert!(out.contains("wifi.pass"), "{out}");
    // Nebula: the fingerprint nebula-cert prints, in a pki.blocklist fragment.
    assert_eq!(blocklist(fleet), vec![nebula_fingerprint(&a_nebula)]);
    // The CRL: signed by the fleet CA, revokes a's certificate only.
    let text = crl_text(fleet, &ca);
    assert!(text.contains(&serial(&a_crt)), "{text}");
    assert!(!crl_accepts(fleet, &ca, &a_crt));
    assert!(crl_accepts(fleet, &ca, &c_crt));
    // The device file is gone; devices/a.toml and the ledger keep the rest.
    assert!(!fleet.file("a").exists());
    let toml = fs::read_to_string(fleet.path("devices/a.toml")).unwrap();
    assert!(
        toml.contains("[retired]") && toml.contains("stolen from site 12"),
        "{toml}"
    );
    let ledger = fs::read_to_string(fleet.path("devices/.allocations")).unwrap();
    assert!(ledger.contains(&format!("{a_ip} a")), "{ledger}");
    // Its store data stays, as history.
    assert!(!fleet.run(&["get", "a", "age.key"]).is_empty());
    // No write of any kind on a second retire.
    let before = fleet.snapshot();
    fleet.run(&["retire", "a"]);
    assert_eq!(
        before,
        fleet.snapshot(),
        "a second retire changed something"
    );

    // The retired id: new and renew refuse with one line, exit 3.
    for args in [&["new", "a"][..], &["renew", "a"], &["plan", "a"]] {
        let out = fleet.output(args);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("a was retired at") && err.contains("--reuse-retired"),
            "{err}"
        );
    }
    // Its image gets no key: inject refuses before launching anything.
    let out = fleet.output(&["inject", "a", "/nonexistent/a.img"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("a was retired at") && err.contains("no key"),
        "{err}"
    );
    // --all leaves it out.
    fleet.run(&["new", "--all"]);
    assert!(!fleet.file("a").exists());
    // list: apart.
    let list = fleet.run(&["list"]);
    let (active, retired) = list.split_once("RETIRED").unwrap();
    assert!(!active.contains("\na "), "{list}");
    assert!(
        retired.contains("a ") && retired.contains("stolen"),
        "{list}"
    );
    // b shares a's Wi-Fi: plan shows it due.
    let out = fleet.output(&["plan", "b"]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("due for rotation wifi.pass (retired device a knew it)"),
        "{text}"
    );
    assert!(!text.contains("wifi.ssid"), "{text}");

    // A second retirement: the CRL keeps the first and takes the next number.
    let first = fs::read_to_string(fleet.path("revocations/postgres.crl")).unwrap();
    fleet.run(&["retire", "c"]);
    let text = crl_text(fleet, &ca);
    assert!(
        text.contains(&serial(&a_crt)) && text.contains(&serial(&c_crt)),
        "{text}"
    );
    assert!(first.contains("X509 CRL"));
    let number = |t: &str| {
        t.lines()
            .skip_while(|l| !l.contains("CRL Number"))
            .nth(1)
            .unwrap()
            .trim()
            .to_owned()
    };
    let one = fleet.write("first.crl", &first);
    let first_text = ok(Command::new(require("openssl").unwrap())
        .args(["crl", "-noout", "-text", "-in"])
        .arg(&one));
    assert_eq!(number(&first_text), "1");
    assert_eq!(number(&text), "2");
    assert!(!crl_accepts(fleet, &ca, &a_crt));
    assert!(!crl_accepts(fleet, &ca, &c_crt));
    assert_eq!(blocklist(fleet).len(), 2);

    // Git is untrusted: with [retired] removed from its device file, the
    // store still says c is retired.
    let toml = fs::read_to_string(fleet.path("devices/c.toml")).unwrap();
    let cut = toml.split("[retired]").next().unwrap().to_owned();
    fs::write(fleet.path("devices/c.toml"), cut).unwrap();
    let err = fleet.fail(&["new", "c"]);
    assert!(err.contains("c was retired at"), "{err}");

    // --reuse-retired: every secret anew, a new address, the old reserved.
    let old_key = fleet.run(&["get", "a", "age.key"]);
    fleet.run(&["new", "a", "--reuse-retired"]);
    assert!(fleet.file("a").exists());
    assert_ne!(old_key, fleet.run(&["get", "a", "age.key"]));
    let list: serde_json::Value = serde_json::from_str(&fleet.run(&["list", "--json"])).unwrap();
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["device"] == "a")
        .unwrap();
    assert_ne!(row["ip"].as_str().unwrap(), a_ip);
    assert!(row["retired"].is_null());
    let ledger = fs::read_to_string(fleet.path("devices/.allocations")).unwrap();
    assert!(ledger.contains(&format!("{a_ip} a")), "{ledger}");
    fleet.run(&["new", "a"]);

    // Bad input: unknown device, a path; one line, exit 3.
    for args in [&["retire", "nosuch"][..], &["retire", "../x"]] {
        let out = fleet.output(args);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    }
}

#[test]
fn retiring_on_the_local_store() {
    if !tools() {
        return;
    }
    retiring(&Fleet::init(vec![]));
}

#[test]
fn retiring_on_openbao() {
    if !tools() {
        return;
    }
    let Some(bao) = Bao::start() else { return };
    retiring(&Fleet::init(bao.env()));
}
