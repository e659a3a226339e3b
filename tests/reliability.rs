//! Reliability: crash safety, signals, two operators at once, store faults
//! against a real OpenBao, and what is left on disk and in output.
//!
//! Every test drives the built binary. The oracles are the binary's own
//! `decrypt`/`check`/`get` (which compare against the store), the real
//! `sops`, and the OpenBao API; nothing is mocked. Faults are real: SIGKILL
//! and SIGTERM, a stopped server, a revoked token, a read-only policy, a
//! sealed server, and a TCP proxy in front of OpenBao that can be cut.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::Shutdown;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use support::fleet::Fleet;
use support::proxy::Proxy;
use support::{require, Bao};

/// A token no server would hand out, so any trace of it in output is ours.
const TOKEN: &str = "RUMOR-RECOGNISABLE-token-7f3a9c";

/// Pre-creates devices/<id>.toml, as a second operator would have it
/// from git, so concurrent runs do not race on creating it.
fn device_toml(fleet: &Fleet, id: &str, ip: &str) {
    fs::create_dir_all(fleet.dir().join("devices")).unwrap();
    fs::write(
        fleet.dir().join(format!("devices/{id}.toml")),
        format!("name = \"\"\nip = \"{ip}\"\ngroups = [\"pidgeon\"]\n\n[vars]\n"),
    )
    .unwrap();
}

/// Temp files (fsutil's and the local store's) anywhere under `dir`.
fn temps(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_dir() {
            out.extend(temps(&path));
        } else if name.ends_with(".rumor-tmp") || name.ends_with(".tmp") || name.starts_with(".tmp")
        {
            out.push(path);
        }
    }
    out
}

#[track_caller]
fn assert_no_temps(fleet: &Fleet) {
    let left = temps(&fleet.dir());
    assert!(left.is_empty(), "temp files left in the fleet: {left:?}");
}

/// Starts a command with piped stderr; the returned receiver yields its
/// lines, and the handle collects them all.
fn spawn_lines(
    cmd: &mut Command,
) -> (
    Child,
    mpsc::Receiver<String>,
    std::thread::JoinHandle<String>,
) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let all = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            let _ = tx.send(line.clone());
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    (child, rx, all)
}

/// Waits for a stderr line containing `needle`.
#[track_caller]
fn wait_for(rx: &mpsc::Receiver<String>, needle: &str) {
    loop {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) if line.contains(needle) => return,
            Ok(_) => {}
            Err(e) => panic!("no line with {needle:?} on stderr: {e}"),
        }
    }
}

fn signal(child: &Child, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, sig).unwrap();
}

/// Kills `rumor new` and `rumor renew` with SIGKILL at seeded random
/// points spread over a run, then re-runs to completion, and checks that
/// every device file decrypts and matches the store, that no secret that
/// reached a device file was lost, and that no temp file is left.
fn kill_runs(fleet: &Fleet, seed: u64, new_kills: usize, renew_kills: usize) {
    fleet.run(&["init"]);
    // One measured run sets the span the kill points are drawn from.
    let start = Instant::now();
    fleet.run(&["new", "d0", "d1"]);
    // A kill that lands after the run ended shortens the span: the measured
    // run may have been slow (a loaded machine), the later ones quicker.
    let mut span = (start.elapsed().as_millis() as u64 * 5 / 4).max(2);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // What each device file held after each killed run.
    let mut seen: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    let mut killed = 0;
    let mut devices = BTreeSet::from(["d0".to_owned(), "d1".to_owned()]);
    for i in 0..new_kills {
        // Overlapping pairs: each device is killed in two runs, the second
        // resuming whatever the first left.
        let ids = [format!("d{}", i + 1), format!("d{}", i + 2)];
        devices.extend(ids.iter().cloned());
        let mut child = fleet
            .rumor()
            .arg("new")
            .args(&ids)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..span)));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.signal() == Some(9) {
            killed += 1;
        } else {
            span = (span * 3 / 4).max(2);
        }
        for id in &ids {
            if let Some(plain) = fleet.decrypt(id) {
                seen.push((id.clone(), plain));
            }
        }
    }
    eprintln!("temp files left by killed runs: {:?}", temps(&fleet.dir()));
    // The re-run converges and cleans up after the killed ones.
    let all: Vec<&str> = devices.iter().map(String::as_str).collect();
    let mut args = vec!["new"];
    args.extend(&all);
    fleet.run(&args);
    fleet.run(&["check"]);
    assert_no_temps(fleet);
    // `new` never rotates, so every value any device file ever held is
    // still the store's: nothing that reached a device file was lost.
    let mut finals = BTreeMap::new();
    for id in &all {
        finals.insert(
            id.to_string(),
            fleet.decrypt(id).expect("device file after the re-run"),
        );
    }
    for (id, plain) in &seen {
        let now = &finals[id];
        for (key, value) in plain {
            assert_eq!(
                now.get(key),
                Some(value),
                "{id}: \"{key}\" changed after a killed run"
            );
        }
    }
    assert_eq!(
        fleet.sops_decrypt("d1", &fleet.identity()),
        finals["d1"],
        "the real sops reads what rumor decrypts"
    );

    eprintln!("new phase done after {:?}", start.elapsed());
    // Renew rotates; after each killed renew the device file may be the
    // old one (the store is ahead), and a re-run must bring them together.
    // Extra renew rounds (at most as many again) make up for kills that
    // landed after a run ended.
    let mut round = 0;
    while round < renew_kills || (killed * 3 < new_kills + renew_kills && round < 2 * renew_kills) {
        round += 1;
        let mut child = fleet
            .rumor()
            .args(["renew", "d0", "d1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..span)));
        let _ = child.kill();
        if child.wait().unwrap().signal() == Some(9) {
            killed += 1;
        } else {
            span = (span * 3 / 4).max(2);
        }
        for id in ["d0", "d1"] {
            fleet
                .decrypt(id)
                .expect("a device file survives a killed renew whole");
        }
        fleet.run(&["new", "d0", "d1"]);
        fleet.run(&["check", "d0", "d1"]);
        assert_no_temps(fleet);
        for id in ["d0", "d1"] {
            let plain = fleet.decrypt(id).unwrap();
            for name in ["postgres.password.postgres", "user.hash"] {
                let out = fleet.quiet(&["get", id, name]);
                assert!(out.status.success());
                let value = String::from_utf8(out.stdout).unwrap();
                assert!(
                    plain.values().any(|v| v.contains(value.trim())),
                    "{id}: the device file lacks the store's {name}"
                );
            }
        }
    }
    // Most kill points land mid-run; some may fall after the exit.
    eprintln!(
        "killed {killed} of {} runs mid-way; span at the end {span} ms; took {:?}",
        new_kills + round,
        start.elapsed()
    );
    assert!(
        killed * 3 >= new_kills + renew_kills,
        "only {killed} runs were killed mid-way"
    );
}

#[test]
fn kill_local() {
    if require("sops").is_none() {
        return;
    }
    kill_runs(&Fleet::new(vec![]).with_runtime_dir(), 0x5eed_0001, 16, 10);
}

#[test]
fn kill_vault() {
    let Some(bao) = Bao::start() else { return };
    if require("sops").is_none() {
        return;
    }
    kill_runs(
        &Fleet::new(bao.env()).with_runtime_dir(),
        0x5eed_0002,
        16,
        10,
    );
}

/// A killed run's temp files (named after a PID that no longer runs) are
/// removed by the next fleet command, in the fleet and in the local store.
#[test]
fn stale_temps_are_removed() {
    let fleet = Fleet::new(vec![]).with_runtime_dir();
    fleet.run(&["init"]);
    fleet.run(&["new", "t1"]);
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let planted = [
        fleet
            .dir()
            .join(format!("secrets/.t1.yaml.pid{dead}.rumor-tmp")),
        fleet
            .dir()
            .join(format!("devices/.t1.toml.pid{dead}-2.rumor-tmp")),
        fleet.dir().join(format!(
            "store/secret/rumor/devices/t1/.current.age.pid{dead}-xYz123.rumor-tmp"
        )),
    ];
    for p in &planted {
        fs::write(p, "half a file").unwrap();
    }
    // A run killed while writing to the local store leaves its mark there,
    // made before its first temp file; the next run sweeps and clears it.
    let marker = fleet.dir().join("store/.writing");
    fs::write(&marker, "").unwrap();
    fleet.run(&["new", "t1"]);
    assert_no_temps(&fleet);
    assert!(!marker.exists(), "the mark is cleared after the sweep");
    fleet.run(&["check"]);
}

/// SIGTERM mid-run: exit 130, every device file whole and matching the
/// store, no temp file; `rumor run --keep` leaves no workspace behind.
#[test]
fn sigterm_stops_between_steps() {
    let fleet = Fleet::new(vec![]).with_runtime_dir();
    fleet.run(&["init"]);
    let ids = ["s1", "s2", "s3", "s4", "s5"];
    let (child, rx, all) = spawn_lines(fleet.rumor().args(["new", "-v"]).args(ids));
    // The handler is installed and the run is under way once an entry is made.
    wait_for(&rx, ": made ");
    signal(&child, rustix::process::Signal::Term);
    let mut child = child;
    let status = child.wait().unwrap();
    let stderr = all.join().unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let written: Vec<&str> = ids
        .iter()
        .copied()
        .filter(|id| fleet.file(id).exists())
        .collect();
    assert!(
        written.len() < ids.len(),
        "the run was not interrupted: {stderr}"
    );
    for id in &written {
        fleet.decrypt(id).unwrap();
        fleet.run(&["check", id]);
    }
    assert_no_temps(&fleet);
    fleet.run(&["new", "s1", "s2", "s3", "s4", "s5"]);
    fleet.run(&["check"]);

    // A spec whose steps are slow (yescrypt hashes), run with --keep but
    // without --stay: interrupted before the end, it keeps nothing.
    let mut spec = String::new();
    for i in 0..40 {
        spec.push_str(&format!("[[generations]]\ngenerator = \"mkpasswd\"\narguments = {{ private = \"p{i}\", public = \"h{i}\" }}\n"));
    }
    let spec_path = fleet.tmp.path().join("slow.toml");
    fs::write(&spec_path, spec).unwrap();
    let xdg = fleet.runtime_dir();
    let shm_before = rumor_dirs(Path::new("/dev/shm"));
    let (child, rx, all) = spawn_lines(
        support::rumor(fleet.tmp.path())
            .env("XDG_RUNTIME_DIR", xdg)
            .args(["run", "-v", "--keep"])
            .arg(&spec_path),
    );
    wait_for(&rx, ": made ");
    signal(&child, rustix::process::Signal::Term);
    let mut child = child;
    let status = child.wait().unwrap();
    let stderr = all.join().unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert_eq!(
        fs::read_dir(xdg).unwrap().count(),
        0,
        "a workspace was kept in {}",
        xdg.display()
    );
    assert!(
        rumor_dirs(Path::new("/dev/shm")).is_subset(&shm_before),
        "a workspace was kept in /dev/shm"
    );
    assert!(!stderr.contains("kept the workspace"), "{stderr}");
}

fn rumor_dirs(dir: &Path) -> BTreeSet<PathBuf> {
    fs::read_dir(dir)
        .map(|es| {
            es.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("rumor-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Two operators provisioning one device at once on the local store: the
/// lock makes them take turns, and both end with the store's values.
#[test]
fn two_operators_local() {
    let fleet = Fleet::new(vec![]).with_runtime_dir();
    fleet.run(&["init"]);
    for round in 0..3 {
        let id = format!("c{round}");
        let children: Vec<Child> = (0..2)
            .map(|_| {
                fleet
                    .rumor()
                    .args(["new", &id])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // Two renews at once: one rotation after the other, never a mix.
        let children: Vec<Child> = (0..2)
            .map(|_| {
                fleet
                    .rumor()
                    .args(["renew", &id])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        fleet.run(&["check", &id]);
        same_as_store(&fleet, &id);
    }
    assert_no_temps(&fleet);
}

/// The device file holds the store's current passwords.
#[track_caller]
fn same_as_store(fleet: &Fleet, id: &str) {
    let plain = fleet.decrypt(id).expect("device file");
    for name in ["postgres.password.postgres", "user.hash", "nebula.key"] {
        let out = fleet.quiet(&["get", id, name]);
        assert!(out.status.success());
        let value = String::from_utf8(out.stdout).unwrap();
        assert!(
            plain.values().any(|v| v.contains(value.trim())),
            "{id}: the device file lacks the store's {name}"
        );
    }
}

/// Two operators at once against OpenBao, repeated: check-and-set on
/// `current` lets one win; the other converges or fails saying to run
/// again, and never leaves a second value for a secret.
#[test]
fn two_operators_vault() {
    let Some(bao) = Bao::start() else { return };
    let fleet = Fleet::new(bao.env()).with_runtime_dir();
    fleet.run(&["init"]);
    let mut conflicts = 0;
    for round in 0..10 {
        let id = format!("v{round}");
        device_toml(&fleet, &id, &format!("10.8.0.{}", 20 + round));
        for command in ["new", "renew"] {
            let children: Vec<Child> = (0..2)
                .map(|_| {
                    fleet
                        .rumor()
                        .args([command, &id])
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            for child in children {
                let out = child.wait_with_output().unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr);
                if !out.status.success() {
                    assert_eq!(out.status.code(), Some(4), "{stderr}");
                    assert!(
                        stderr.contains("changed while this run was writing it")
                            && stderr.contains("run again"),
                        "{stderr}"
                    );
                    conflicts += 1;
                }
            }
            // Whoever lost, the device file and the store agree.
            fleet.run(&["check", &id]);
            same_as_store(&fleet, &id);
        }
        let current = bao
            .kv_get("secret", &format!("rumor/devices/{id}/current"))
            .unwrap();
        let plain = fleet.decrypt(&id).unwrap();
        let password = current["postgres.password.postgres"].as_str().unwrap();
        assert!(plain["postgres.sql"].contains(password));
        // One history copy per version of `current`: a loser's copy,
        // written beside its current write, was taken back.
        let (status, body) = bao.api(
            "GET",
            &format!("/v1/secret/metadata/rumor/devices/{id}/current"),
            None,
        );
        assert_eq!(status, 200, "{body}");
        let meta: serde_json::Value = serde_json::from_str(&body).unwrap();
        let versions = meta["data"]["current_version"].as_u64().unwrap();
        let copies = bao
            .kv_list("secret", &format!("rumor/devices/{id}"))
            .into_iter()
            .filter(|name| name.len() == 14 && name.bytes().all(|b| b.is_ascii_digit()))
            .count();
        assert_eq!(copies as u64, versions, "{id}: history copies vs versions");
    }
    eprintln!("{conflicts} runs lost a check-and-set race");
}

/// Makes a token with a recognisable id and the given policies.
fn child_token(bao: &Bao, id: &str, policies: &[&str]) {
    let body = serde_json::json!({ "id": id, "policies": policies, "no_default_policy": false })
        .to_string();
    let (status, text) = bao.api("POST", "/v1/auth/token/create", Some(&body));
    assert_eq!(status, 200, "{text}");
}

/// A store fault's failure: exit 4, one line naming the server and a
/// path, no token anywhere, and secrets/ exactly as before.
#[track_caller]
fn assert_store_fault(fleet: &Fleet, args: &[&str], addr: &str, expect: &str) {
    let before = fleet.secrets();
    let out = support::run(fleet.rumor().args(args));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        !stderr.contains(TOKEN) && !stdout.contains(TOKEN),
        "the token leaked: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.lines().all(|l| l.starts_with("rumor: ")),
        "every error is one line: {stderr}"
    );
    let line = stderr
        .lines()
        .find(|l| l.contains(addr))
        .unwrap_or_else(|| panic!("no line names {addr}: {stderr}"));
    assert!(line.contains("secret/rumor/"), "no path in: {line}");
    assert!(line.contains(expect), "expected {expect:?} in: {line}");
    assert_eq!(fleet.secrets(), before, "secrets/ changed in a failed run");
}

/// Server down before the run, a revoked token, a read-only policy and a
/// sealed server: each fails cleanly, and after the fix a re-run completes.
#[test]
fn vault_faults() {
    let Some(mut bao) = Bao::start() else { return };
    let mut fleet = Fleet::new(bao.env()).with_runtime_dir();
    fleet.set("RUMOR_VAULT_RETRIES", "0");
    fleet.run(&["init"]);
    fleet.run(&["new", "f1"]);
    let addr = bao.addr.clone();

    // A token revoked under the operator's feet.
    child_token(&bao, TOKEN, &["root"]);
    fleet.set("VAULT_TOKEN", TOKEN);
    fleet.run(&["new", "f2"]);
    let (status, text) = support::http(
        bao.port,
        "POST",
        "/v1/auth/token/revoke-self",
        None,
        Some(TOKEN),
    )
    .unwrap();
    assert_eq!(status, 204, "{text}");
    assert_store_fault(&fleet, &["renew", "f1", "f2"], &addr, "denied");
    assert_store_fault(&fleet, &["new", "f3"], &addr, "denied");
    assert!(!fleet.file("f3").exists());

    // A read-only policy: imports work, the first export is refused, and
    // no device file is touched (store first, git second).
    let policy = serde_json::json!({ "policy": "path \"secret/*\" { capabilities = [\"read\", \"list\"] }" }).to_string();
    assert_eq!(
        bao.api("POST", "/v1/sys/policies/acl/readonly", Some(&policy))
            .0,
        204
    );
    let reader = format!("{TOKEN}-ro");
    child_token(&bao, &reader, &["readonly"]);
    fleet.set("VAULT_TOKEN", &reader);
    let before = bao.kv_get("secret", "rumor/devices/f1/current").unwrap();
    assert_store_fault(&fleet, &["renew", "f1"], &addr, "denied");
    assert_eq!(
        bao.kv_get("secret", "rumor/devices/f1/current").unwrap(),
        before
    );
    assert_store_fault(&fleet, &["new", "f3", "f4"], &addr, "denied");
    fleet.run(&["check", "f1", "f2"]);

    // The fix: a token that may write. The re-run completes.
    fleet.set("VAULT_TOKEN", &bao.token);
    fleet.run(&["new", "f3", "f4"]);
    fleet.run(&["renew", "f1"]);
    fleet.run(&["check"]);

    // Sealed: nothing can be read; a new server is the fix for a dev one.
    assert_eq!(bao.api("PUT", "/v1/sys/seal", None).0, 204);
    assert_store_fault(&fleet, &["new", "f5"], &addr, "sealed");
    assert_store_fault(&fleet, &["renew", "f1"], &addr, "sealed");

    // Stopped before the run.
    bao.stop();
    assert_store_fault(&fleet, &["new", "f5"], &addr, "cannot reach");
    assert_store_fault(&fleet, &["renew", "--all"], &addr, "cannot reach");
    let bao = Bao::start().unwrap();
    fleet.set("VAULT_ADDR", &bao.addr);
    fleet.set("VAULT_TOKEN", &bao.token);
    // The new server is empty: the CAs come back with init, and the
    // devices are provisioned again over their old files.
    fleet.run(&["init"]);
    fleet.run(&["new", "f1", "f2", "f3", "f4", "f5"]);
    fleet.run(&["check"]);
}

/// The server goes away in the middle of a multi-device run: the devices
/// that had not stored their secrets write no file; once it is back, a
/// re-run completes. Transient 502s are retried, within the bound.
#[test]
fn vault_goes_away_mid_run() {
    let Some(bao) = Bao::start() else { return };
    let proxy = Proxy::start_with(bao.port, Shutdown::Write);
    let mut fleet = Fleet::new(vec![
        ("VAULT_ADDR", proxy.addr()),
        ("VAULT_TOKEN", bao.token.clone()),
        ("RUMOR_VAULT_RETRIES", "0".into()),
    ])
    .with_runtime_dir();
    fleet.run(&["init"]);
    let ids = ["m1", "m2", "m3", "m4", "m5"];
    let (mut child, rx, all) = spawn_lines(fleet.rumor().args(["new", "-v"]).args(ids));
    wait_for(&rx, ": made ");
    proxy.cut();
    let status = child.wait().unwrap();
    let stderr = all.join().unwrap();
    assert_eq!(status.code(), Some(4), "{stderr}");
    for id in ids {
        let stored = bao
            .kv_get("secret", &format!("rumor/devices/{id}/current"))
            .is_some();
        if fleet.file(id).exists() {
            assert!(
                stored,
                "{id}: a device file without its secrets in the store"
            );
        }
    }
    assert!(
        ids.iter().any(|id| !fleet.file(id).exists()),
        "nothing failed: {stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.contains(&proxy.addr()) && l.contains("secret/rumor/")),
        "{stderr}"
    );
    assert_no_temps(&fleet);
    proxy.restore();
    fleet.run(&["new", "m1", "m2", "m3", "m4", "m5"]);
    fleet.run(&["check"]);

    // Two 502s in a row are retried through (3 retries allowed)...
    fleet.set("RUMOR_VAULT_RETRIES", "3");
    proxy.fail_next.store(2, Ordering::SeqCst);
    fleet.run(&["new", "m6"]);
    assert_eq!(proxy.fail_next.load(Ordering::SeqCst), 0);
    // ...but with retries off, one 502 fails the run cleanly.
    fleet.set("RUMOR_VAULT_RETRIES", "0");
    proxy.fail_next.store(1, Ordering::SeqCst);
    assert_store_fault(&fleet, &["new", "m7"], &proxy.addr(), "502");
    fleet.run(&["new", "m7"]);
    fleet.run(&["check"]);
}

/// The secret values of a device worth searching for: long enough that a
/// match cannot be chance, and for PEM blocks their longest line.
fn needles(values: &BTreeMap<String, String>) -> Vec<(String, String)> {
    values
        .iter()
        .filter(|(name, _)| {
            !name.ends_with(".crt")
                && !name.ends_with(".pub")
                && !name.ends_with("authorized_keys")
                && !name.ends_with(".ssid")
        })
        .filter_map(|(name, v)| {
            let line = v
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .max_by_key(|l| l.len())?
                .trim();
            (line.len() >= 12).then(|| (name.clone(), line.to_owned()))
        })
        .collect()
}

/// Tokens and secrets never reach stderr, nor `--json` stdout, of the main
/// commands.
#[test]
fn no_token_or_secret_in_output() {
    let Some(bao) = Bao::start() else { return };
    child_token(&bao, TOKEN, &["root"]);
    let fleet = Fleet::new(vec![
        ("VAULT_ADDR", bao.addr.clone()),
        ("VAULT_TOKEN", TOKEN.into()),
    ])
    .with_runtime_dir();
    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut record = |args: &[&str], json: bool| {
        let out = fleet.quiet(args);
        assert!(
            out.status.success(),
            "rumor {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push((
            format!("{args:?} stderr"),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            !stdout.contains(TOKEN),
            "the token is in the stdout of {args:?}"
        );
        if json {
            outputs.push((format!("{args:?} stdout"), stdout));
        }
    };
    record(&["init"], false);
    record(&["new", "-v", "o1", "o2"], false);
    record(&["renew", "-v", "o1"], false);
    record(&["renew", "o2", "--secret", "wifi.pass"], false);
    record(&["list", "--json"], true);
    record(&["check", "--json"], true);
    record(&["get", "o1", "nebula.crt"], false);
    record(&["spec", "o1"], false);
    let mut secrets = Vec::new();
    for id in ["o1", "o2"] {
        secrets.extend(needles(&fleet.stored(id)));
    }
    assert!(
        secrets.len() > 10,
        "too few secrets to look for: {}",
        secrets.len()
    );
    for (what, text) in &outputs {
        assert!(!text.contains(TOKEN), "the token is in the {what}");
        for (name, value) in &secrets {
            assert!(!text.contains(value.as_str()), "{name} is in the {what}");
        }
    }
}

/// Regular files under `dir` (not following links), skipping `skip`.
fn files(dir: &Path, skip: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if skip(&path) {
            continue;
        }
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_dir() {
            files(&path, skip, out);
        } else if kind.is_file() {
            out.push(path);
        }
    }
}

/// After a run without --keep, no generated secret is in plaintext in the
/// temp directories, the test HOME or the fleet (outside the encrypted
/// store and SOPS files); and every fleet file has its intended mode.
#[test]
fn hygiene_and_modes() {
    let fleet = Fleet::new(vec![]).with_runtime_dir();
    fleet.run(&["init"]);
    fleet.run(&["new", "h1", "h2"]);
    fleet.run(&["renew", "h1"]);
    fleet.run(&["check"]);
    let mut secrets = Vec::new();
    for id in ["h1", "h2"] {
        secrets.extend(needles(&fleet.stored(id)));
    }
    assert!(secrets.len() > 10);

    let store = fleet.dir().join("store");
    let secrets_dir = fleet.dir().join("secrets");
    let mut scanned = Vec::new();
    let mut roots = vec![
        PathBuf::from("/tmp"),
        PathBuf::from("/dev/shm"),
        fleet.home(),
        fleet.runtime_dir().to_path_buf(),
    ];
    roots.extend(std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from));
    // Other processes' private trees are not ours to judge, only ours.
    let skip = |p: &Path| {
        p == store
            || p.parent() == Some(secrets_dir.as_path())
            || p.starts_with("/tmp/bash_jobs")
            || p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("bash_jobs"))
    };
    for root in &roots {
        files(root, &skip, &mut scanned);
    }
    assert!(
        scanned.iter().any(|p| p.starts_with(fleet.dir())),
        "the fleet was not scanned"
    );
    for path in &scanned {
        let Ok(meta) = fs::metadata(path) else {
            continue;
        };
        if meta.len() > 4 << 20 {
            continue;
        }
        let Ok(bytes) = fs::read(path) else { continue };
        let text = String::from_utf8_lossy(&bytes);
        for (name, value) in &secrets {
            assert!(
                !text.contains(value.as_str()),
                "{name} is in plaintext in {}",
                path.display()
            );
        }
    }

    // Modes: private from the start, public only where meant.
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let mut all = Vec::new();
    files(&fleet.dir(), &|_| false, &mut all);
    for path in &all {
        let m = mode(path);
        assert_eq!(
            m & 0o022,
            0,
            "{} is writable by others: {m:o}",
            path.display()
        );
        if path.starts_with(&store) {
            assert_eq!(m, 0o600, "{}", path.display());
        }
        if path.parent() == Some(secrets_dir.as_path()) {
            assert_eq!(m, 0o644, "{} holds ciphertext for git", path.display());
        }
    }
    let mut dirs = vec![store.clone()];
    while let Some(d) = dirs.pop() {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
        dirs.extend(
            fs::read_dir(&d)
                .unwrap()
                .flatten()
                .filter(|e| e.file_type().unwrap().is_dir())
                .map(|e| e.path()),
        );
    }
    assert_eq!(mode(&secrets_dir), 0o700);
    assert_eq!(mode(&fleet.identity()), 0o600);
    assert_eq!(mode(fleet.identity().parent().unwrap()), 0o700);
    assert!(all
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "age")));
}
