//! Provenance and `rumor log`: every version rumor writes says who wrote
//! it and why, on the local store and on a real OpenBao, and the log shows
//! a secret's history by fingerprint, never by value.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};
use support::fleet::Fleet;

fn fingerprint(value: &str) -> String {
    hex::encode(Sha256::digest(value.trim().as_bytes()))[..12].to_owned()
}

fn log_json(fleet: &Fleet, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["log"];
    all.extend_from_slice(args);
    all.push("--json");
    serde_json::from_str(&fleet.run(&all)).unwrap()
}

/// The changes of one secret, oldest first.
fn of<'a>(log: &'a [Value], secret: &str) -> Vec<&'a Value> {
    log.iter().filter(|c| c["secret"] == secret).collect()
}

/// Every stored value of a device, read with `rumor get`.
fn values(fleet: &Fleet, id: &str, log: &[Value]) -> BTreeMap<String, String> {
    let names: std::collections::BTreeSet<&str> =
        log.iter().filter_map(|c| c["secret"].as_str()).collect();
    names
        .into_iter()
        .map(|n| {
            (
                n.to_owned(),
                fleet.run(&["get", id, n]).trim_end().to_owned(),
            )
        })
        .collect()
}

/// new, renew --secret wifi.pass, renew: the log shows each step with its
/// reason and operator, fingerprints that change exactly when the value
/// does, and no value.
fn history_of_a_device(fleet: &Fleet, operator: &str) {
    // Runs within one second take the next free timestamps: no waiting.
    fleet.run(&["new", "dev1"]);
    fleet.run(&["renew", "dev1", "--secret", "wifi.pass"]);
    fleet.run(&["renew", "dev1"]);
    let log = log_json(fleet, &["dev1"]);

    let pass = of(&log, "wifi.pass");
    let steps: Vec<(&str, &str)> = pass
        .iter()
        .map(|c| {
            (
                c["action"].as_str().unwrap(),
                c["provenance"]["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("created", "new"),
            ("rotated", "--secret wifi.pass"),
            ("rotated", "renew")
        ]
    );
    for c in &pass {
        let p = &c["provenance"];
        assert_eq!(p["operator"], operator, "{c}");
        assert_eq!(p["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(p["spec"].as_str().unwrap().len(), 64, "{c}");
        assert!(c["version"].as_str().unwrap().contains("/devices/dev1/"));
    }
    assert_eq!(pass[0]["provenance"]["command"], "new");
    assert_eq!(pass[2]["provenance"]["command"], "renew");
    // Three values, three fingerprints; the last is the current value's.
    let fps: Vec<&str> = pass
        .iter()
        .map(|c| c["fingerprint"].as_str().unwrap())
        .collect();
    assert!(fps[0] != fps[1] && fps[1] != fps[2] && fps[0] != fps[2]);
    let now = values(fleet, "dev1", &log);
    assert_eq!(fps[2], fingerprint(&now["wifi.pass"]));
    // A value nothing rotated has one entry, whose fingerprint is still
    // the current value's: equal values, equal fingerprints.
    let ssid = of(&log, "wifi.ssid");
    assert_eq!(ssid.len(), 1, "{ssid:?}");
    assert_eq!(ssid[0]["fingerprint"], fingerprint(&now["wifi.ssid"]));
    let age_key = of(&log, "age.key");
    assert_eq!(age_key.len(), 1);
    assert_eq!(age_key[0]["fingerprint"], fingerprint(&now["age.key"]));
    // The device file is re-rendered when a value in it rotates.
    let rendered = of(&log, "device.sops.yaml");
    assert_eq!(rendered.last().unwrap()["action"], "re-rendered");

    // One secret only, and the table.
    let one = log_json(fleet, &["dev1", "wifi.pass"]);
    assert_eq!(one.len(), 3);
    assert!(one.iter().all(|c| c["secret"] == "wifi.pass"));
    let table = fleet.run(&["log", "dev1"]);
    for word in [
        "created",
        "rotated",
        "re-rendered",
        "--secret wifi.pass",
        operator,
    ] {
        assert!(table.contains(word), "{word} missing:\n{table}");
    }
    // No value, from the first version to the last, in either output.
    let json = fleet.run(&["log", "dev1", "--json"]);
    for (name, value) in &now {
        for part in std::iter::once(value.as_str()).chain(value.lines()) {
            if part.len() >= 12 {
                assert!(!table.contains(part), "{name} leaks into the log");
                assert!(!json.contains(part), "{name} leaks into --json");
            }
        }
    }

    // Bad input: one line, exit 3.
    for (args, says) in [
        (&["log", "nope"][..], "unknown device"),
        (&["log", "dev1", "no.such"][..], "no \"no.such\""),
        (&["log", "../x"][..], "not a device name"),
    ] {
        let out = fleet.output(args);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn local_store_versions_carry_provenance() {
    if support::require("age").is_none() {
        return;
    }
    let fleet = Fleet::init(vec![]);
    let admin = fleet.admin_recipient();
    history_of_a_device(&fleet, &admin);
    // Provenance is inside the signed entry: the store still verifies.
    fleet.run(&["check", "dev1"]);
}

#[test]
fn openbao_versions_carry_provenance_in_custom_metadata() {
    let Some(bao) = support::Bao::start() else {
        return;
    };
    let mut fleet = Fleet::init(bao.env());
    // The operator is the token's display name: runs as "alice".
    let (status, body) = bao.api(
        "POST",
        "/v1/auth/token/create",
        Some(r#"{"display_name": "alice", "policies": ["root"]}"#),
    );
    assert_eq!(status, 200, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    let alice = created["auth"]["client_token"].as_str().unwrap().to_owned();
    for (name, value) in fleet.env.iter_mut() {
        if *name == "VAULT_TOKEN" {
            *value = alice.clone();
        }
    }
    history_of_a_device(&fleet, "token-alice");

    // What `bao kv metadata get` shows for the newest timestamped path.
    let stamps = bao.kv_list("secret", "rumor/devices/dev1");
    let newest = stamps
        .iter()
        .filter(|s| s.len() == 14)
        .max()
        .unwrap()
        .clone();
    let out = Command::new(support::require("bao").unwrap())
        .args(["kv", "metadata", "get", "-format=json"])
        .arg(format!("secret/rumor/devices/dev1/{newest}"))
        .envs(bao.env())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let custom = &meta["data"]["custom_metadata"];
    assert_eq!(custom["rumor-reason"], "renew", "{meta}");
    assert_eq!(custom["rumor-command"], "renew");
    assert_eq!(custom["rumor-operator"], "token-alice");
    assert_eq!(custom["rumor-version"], env!("CARGO_PKG_VERSION"));
    // The data keeps the original layout: only the secrets.
    let data = bao
        .kv_get("secret", &format!("rumor/devices/dev1/{newest}"))
        .unwrap();
    assert!(data.get("rumor-reason").is_none());
    assert!(data.get("wifi.pass").is_some());

    // A version written by another tool (the original) has none: unknown.
    let body = serde_json::json!({ "data": data }).to_string();
    let (status, _) = bao.api(
        "POST",
        "/v1/secret/data/rumor/devices/dev1/29990101000000",
        Some(&body),
    );
    assert_eq!(status, 200);
    let log = log_json(&fleet, &["dev1"]);
    assert!(log.iter().all(
        |c| c["version"] != "secret/rumor/devices/dev1/29990101000000" || c["provenance"].is_null()
    ));
    // It changed nothing, so it adds no entry; a changed one shows unknown.
    let mut changed = data.clone();
    changed["wifi.admin"] = Value::String("set-by-another-tool".into());
    let body = serde_json::json!({ "data": changed }).to_string();
    bao.api(
        "POST",
        "/v1/secret/data/rumor/devices/dev1/29990101000001",
        Some(&body),
    );
    let log = log_json(&fleet, &["dev1", "wifi.admin"]);
    let last = log.last().unwrap();
    assert_eq!(last["action"], "rotated");
    assert!(last["provenance"].is_null(), "{last}");
    let table = fleet.run(&["log", "dev1", "wifi.admin"]);
    assert!(table.lines().last().unwrap().contains("unknown"), "{table}");
    // The token itself is nowhere: not in the metadata, not in the log.
    let json = fleet.run(&["log", "dev1", "--json"]);
    assert!(!json.contains(&alice) && !meta.to_string().contains(&alice));
}

/// A token that may write secrets and their metadata but not look itself
/// up still writes every version, recorded as by "a Vault token": the
/// refusal is the answer for the run, not a failed write.
#[test]
fn a_token_that_may_not_look_itself_up_still_writes_with_provenance() {
    let Some(bao) = support::Bao::start() else {
        return;
    };
    let mut fleet = Fleet::init(bao.env());
    let policy = r#"{"policy": "path \"secret/*\" { capabilities = [\"create\", \"read\", \"update\", \"list\"] }"}"#;
    let (status, body) = bao.api("PUT", "/v1/sys/policies/acl/writer", Some(policy));
    assert!(status == 204 || status == 200, "{status} {body}");
    let (status, body) = bao.api(
        "POST",
        "/v1/auth/token/create",
        Some(r#"{"display_name": "bob", "policies": ["writer"], "no_default_policy": true}"#),
    );
    assert_eq!(status, 200, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    let bob = created["auth"]["client_token"].as_str().unwrap().to_owned();
    for (name, value) in fleet.env.iter_mut() {
        if *name == "VAULT_TOKEN" {
            *value = bob.clone();
        }
    }
    // The token really is refused its own lookup.
    let out = Command::new(support::require("bao").unwrap())
        .args(["token", "lookup"])
        .envs(fleet.env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(!out.status.success());
    history_of_a_device(&fleet, "a Vault token (auth/token/lookup-self was refused)");
    // The refusal is not taken for an expired token: a fleet run goes on
    // to its next devices, one at a time here so a halt would show.
    fleet.set("RUMOR_JOBS", "1");
    let out = fleet.run(&["new", "dev2", "dev3", "dev4"]);
    for id in ["dev2", "dev3", "dev4"] {
        assert!(
            fleet.dir().join(format!("secrets/{id}.yaml")).is_file(),
            "{id}: {out}"
        );
    }
}
