//! `rumor plan` and `--dry-run`: a plan writes nothing (every fleet file
//! and every store entry, local and OpenBao, hashed before and after), and
//! what it lists is exactly what the real command then changes, for a
//! seeded random mix of new devices, `renew --secret`, `renew` and
//! `renew --expiring`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use support::fleet::{snapshot, Fleet};
use support::{require, Bao};

/// Every store entry on OpenBao under the fleet's prefix, with its
/// metadata (versions) and current data.
fn bao_state(bao: &Bao) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec!["rumor/".to_owned()];
    while let Some(dir) = stack.pop() {
        for key in bao.kv_list("secret", dir.trim_end_matches('/')) {
            let path = format!("{dir}{key}");
            if key.ends_with('/') {
                stack.push(path);
            } else {
                let (_, meta) = bao.api("GET", &format!("/v1/secret/metadata/{path}"), None);
                let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
                let data = bao.kv_get("secret", &path).unwrap_or_default();
                out.insert(
                    format!("secret/{path}"),
                    format!("{} {}", meta["data"]["versions"], data),
                );
            }
        }
    }
    out
}

/// The fleet directory and the store, as one comparable state.
struct State {
    files: BTreeMap<PathBuf, (Vec<u8>, u32)>,
    bao: BTreeMap<String, String>,
}

fn state(fleet: &Fleet, bao: Option<&Bao>) -> State {
    State {
        files: snapshot(&fleet.dir()),
        bao: bao.map(bao_state).unwrap_or_default(),
    }
}

/// What changed between two states: fleet files (relative, outside the
/// local store) and store entries written (logical paths).
fn diff(fleet: &Fleet, a: &State, b: &State) -> (BTreeSet<String>, BTreeSet<String>) {
    let dir = fleet.dir();
    let keys: BTreeSet<&PathBuf> = a.files.keys().chain(b.files.keys()).collect();
    let mut files = BTreeSet::new();
    let mut store = BTreeSet::new();
    for k in keys {
        if a.files.get(k) == b.files.get(k) {
            continue;
        }
        let rel = k.strip_prefix(&dir).unwrap().to_string_lossy().into_owned();
        match rel.strip_prefix("store/") {
            Some(entry) => {
                store.insert(entry.strip_suffix(".age").unwrap_or(entry).to_owned());
            }
            None => {
                files.insert(rel);
            }
        }
    }
    let keys: BTreeSet<&String> = a.bao.keys().chain(b.bao.keys()).collect();
    for k in keys {
        if a.bao.get(k) != b.bao.get(k) {
            store.insert(k.clone());
        }
    }
    (files, store)
}

/// Splits store paths into the `current` ones and a count of the others
/// (timestamped copies, whose second may differ between plan and run).
fn split_store(paths: &BTreeSet<String>) -> (BTreeSet<String>, usize) {
    let current: BTreeSet<String> = paths
        .iter()
        .filter(|p| p.ends_with("/current"))
        .cloned()
        .collect();
    (current.clone(), paths.len() - current.len())
}

/// Runs `rumor plan ARGS --json`: the exit code and the parsed plan.
fn plan(fleet: &Fleet, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["plan"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = fleet.output(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let code = out.status.code().unwrap();
    assert!(code == 0 || code == 2, "plan failed ({code}): {stderr}");
    (code, serde_json::from_slice(&out.stdout).unwrap())
}

/// The files, `current` store entries and count of timestamped copies a
/// plan lists.
fn listed(plan: &serde_json::Value) -> (BTreeSet<String>, (BTreeSet<String>, usize)) {
    let mut files = BTreeSet::new();
    let mut store = BTreeSet::new();
    for device in plan.as_array().unwrap() {
        for f in device["files"].as_array().unwrap() {
            files.insert(f.as_str().unwrap().to_owned());
        }
        for s in device["store_writes"].as_array().unwrap() {
            store.insert(s.as_str().unwrap().to_owned());
        }
    }
    (files, split_store(&store))
}

/// One step of the mix: the plan arguments and the command they plan.
fn step(rng: &mut impl Rng, existing: &[String], next: &mut usize) -> Vec<String> {
    let pick = |rng: &mut dyn rand::RngCore| existing[rng.gen_range(0..existing.len())].clone();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match rng.gen_range(0..6) {
        0 | 1 => {
            *next += 1;
            let mut ids = vec![format!("d{next}")];
            if rng.gen_bool(0.5) {
                *next += 1;
                ids.push(format!("d{next}"));
            }
            let mut v = s(&["new"]);
            v.extend(ids);
            if rng.gen_bool(0.5) {
                v.push(pick(rng));
            }
            v
        }
        2 => {
            let secrets = [
                "wifi.pass",
                "cloud.api-key",
                "user.password",
                "postgres.password.pidgeon",
                "age.key",
                "nebula.key",
            ];
            let secret = secrets[rng.gen_range(0..secrets.len())];
            s(&["renew", &pick(rng), "--secret", secret])
        }
        3 => s(&["renew", &pick(rng), "--expiring", "1000"]),
        4 => s(&["renew", &pick(rng)]),
        _ => s(&["new", &pick(rng)]),
    }
}

/// The plan's arguments for a command line.
fn plan_args(command: &[String]) -> Vec<String> {
    let mut args: Vec<String> = command[1..].to_vec();
    if command[0] == "renew" && !args.iter().any(|a| a.starts_with("--")) {
        args.push("--renew".into());
    }
    args
}

fn plan_agrees_with_run(fleet: &Fleet, bao: Option<&Bao>) {
    let seed: u64 = std::env::var("RUMOR_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    eprintln!("seed: {seed} (RUMOR_TEST_SEED={seed} repeats this run)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    fleet.run(&["new", "d0", "d1"]);
    let mut existing = vec!["d0".to_owned(), "d1".to_owned()];
    let mut next = 1;
    for round in 0..6 {
        let command = step(&mut rng, &existing, &mut next);
        let args = plan_args(&command);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        eprintln!("round {round}: rumor {}", command.join(" "));
        let before = state(fleet, bao);
        let (code, planned) = plan(fleet, &args);
        // The plan wrote nothing: no file, no store entry, no version.
        let after_plan = state(fleet, bao);
        let (f, s) = diff(fleet, &before, &after_plan);
        assert!(f.is_empty() && s.is_empty(), "plan wrote {f:?} {s:?}");
        assert!(before.files == after_plan.files && before.bao == after_plan.bao);
        // The same through --dry-run on the command itself.
        let mut dry: Vec<&str> = command.iter().map(String::as_str).collect();
        dry.extend(["--dry-run", "--json"]);
        let out = fleet.output(&dry);
        assert_eq!(out.status.code(), Some(code), "--dry-run agrees with plan");
        let dry_plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(listed(&dry_plan), listed(&planned));
        let after_dry = state(fleet, bao);
        assert!(before.files == after_dry.files && before.bao == after_dry.bao);

        let run: Vec<&str> = command.iter().map(String::as_str).collect();
        fleet.run(&run);
        let after = state(fleet, bao);
        let (changed_files, changed_store) = diff(fleet, &before, &after);
        let (plan_files, (plan_current, plan_copies)) = listed(&planned);
        assert_eq!(changed_files, plan_files, "files: run vs plan");
        let (run_current, run_copies) = split_store(&changed_store);
        assert_eq!(run_current, plan_current, "store entries: run vs plan");
        assert_eq!(run_copies, plan_copies, "timestamped copies: run vs plan");
        assert_eq!(
            code == 2,
            !changed_files.is_empty() || !changed_store.is_empty(),
            "exit code 2 exactly when the run changes something"
        );
        // Every secret the plan says changes did change in the store, and
        // those it keeps did not.
        for device in planned.as_array().unwrap() {
            let id = device["device"].as_str().unwrap();
            if device["create"].is_string() {
                existing.push(id.to_owned());
            }
        }
        // After the run, planning `new` again finds nothing to do.
        let ids: Vec<&str> = planned
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["device"].as_str().unwrap())
            .collect();
        let (code, again) = plan(fleet, &ids);
        assert_eq!(code, 0, "nothing left to do: {again}");
    }
}

/// Reasons and per-secret actions, on one device.
fn reasons(fleet: &Fleet) {
    fleet.run(&["new", "r1"]);
    let (code, p) = plan(fleet, &["r1", "--secret", "wifi.pass"]);
    assert_eq!(code, 2);
    let changes = p[0]["changes"].as_array().unwrap();
    let find = |name: &str| {
        changes
            .iter()
            .find(|c| c["secrets"].as_array().unwrap().iter().any(|s| s == name))
            .unwrap_or_else(|| panic!("{name} not in {p}"))
            .clone()
    };
    assert_eq!(find("wifi.pass")["action"], "rotate");
    assert_eq!(find("wifi.pass")["reason"]["kind"], "secret");
    assert_eq!(find("wifi.psk")["reason"]["kind"], "inputs-rotated");
    assert_eq!(find("wifi.env")["action"], "rerender");
    assert!(p[0]["keep"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k == "cloud.api-key"));
    let (_, p) = plan(fleet, &["r1", "--expiring", "1000"]);
    let changes = p[0]["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c["reason"]["kind"] == "expiring" && c["reason"]["days"] == 1000),
        "{p}"
    );
    let (_, p) = plan(fleet, &["r1", "--renew"]);
    assert!(
        p[0]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["reason"]["kind"] == "marked-renew"),
        "{p}"
    );
    let (code, p) = plan(fleet, &["r9"]);
    assert_eq!(code, 2);
    assert!(p[0]["create"].is_string());
    assert!(p[0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["action"] == "generate" && c["reason"]["kind"] == "missing"));
    // Another admin: every device file is re-encrypted (recipients changed).
    let (_, recipient) = support::fleet::age_keygen(fleet.tmp.path(), "second.txt");
    let toml = std::fs::read_to_string(fleet.path("rumor.toml")).unwrap();
    let first = fleet.admin_recipient();
    std::fs::write(
        fleet.path("rumor.toml"),
        toml.replace(
            &format!("\"{first}\""),
            &format!("\"{first}\", \"{recipient}\""),
        ),
    )
    .unwrap();
    let (code, p) = plan(fleet, &["r1"]);
    assert_eq!(code, 2);
    assert!(
        p[0]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["reason"]["kind"] == "recipients-changed"),
        "{p}"
    );
    std::fs::write(fleet.path("rumor.toml"), toml).unwrap();
    // The human form: grouped per device, one line per change.
    let out = fleet.output(&["plan", "r1", "--secret", "wifi.pass"]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("r1:\n"), "{text}");
    assert!(text.contains("  rotate wifi.pass (--secret)\n"), "{text}");
    assert!(text.contains("  write secrets/r1.yaml\n"), "{text}");
    // Bad input: one line, the documented code.
    let out = fleet.output(&["plan", "../x"]);
    assert_eq!(out.status.code(), Some(3));
    let out = fleet.output(&["plan", "nosuch", "--renew"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

fn tools() -> bool {
    ["sops", "age-keygen"].iter().all(|t| require(t).is_some())
}

#[test]
fn plan_agrees_with_run_on_the_local_store() {
    if !tools() {
        return;
    }
    let fleet = Fleet::init(vec![]);
    plan_agrees_with_run(&fleet, None);
    reasons(&fleet);
}

#[test]
fn plan_agrees_with_run_on_openbao() {
    if !tools() {
        return;
    }
    let Some(bao) = Bao::start() else { return };
    let fleet = Fleet::init(bao.env());
    plan_agrees_with_run(&fleet, Some(&bao));
}
