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
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use support::{require, Bao};

/// A token no server would hand out, so any trace of it in output is ours.
const TOKEN: &str = "hvs.RUMOR-RECOGNISABLE-token-7f3a9c";

/// A fleet in a temp dir with its own HOME (and so its own admin identity).
struct Fleet {
    tmp: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
}

impl Fleet {
    fn new(env: Vec<(&'static str, String)>) -> Fleet {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("fleet")).unwrap();
        fs::create_dir_all(tmp.path().join("xdg")).unwrap();
        Fleet { tmp, env }
    }

    fn set(&mut self, key: &'static str, value: &str) {
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.to_owned()));
    }

    fn dir(&self) -> PathBuf {
        self.tmp.path().join("fleet")
    }

    fn home(&self) -> PathBuf {
        self.tmp.path().join(".home")
    }

    fn identity(&self) -> PathBuf {
        self.home().join(".config/rumor/identity.txt")
    }

    fn rumor(&self) -> Command {
        let mut cmd = support::rumor(self.tmp.path());
        cmd.envs(self.env.clone())
            .env("XDG_RUNTIME_DIR", self.tmp.path().join("xdg"))
            .arg("-C")
            .arg(self.dir());
        cmd
    }

    #[track_caller]
    fn run(&self, args: &[&str]) -> String {
        support::ok(self.rumor().args(args))
    }

    /// Runs a command that must fail; returns (exit code, stderr).
    #[track_caller]
    fn fail(&self, args: &[&str]) -> (i32, String) {
        let out = support::run(self.rumor().args(args));
        assert!(!out.status.success(), "rumor {args:?} unexpectedly succeeded");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!stderr.contains("panicked"), "panic: {stderr}");
        (out.status.code().unwrap_or(-1), stderr)
    }

    /// Output without echoing it (for commands that print secrets).
    fn quiet(&self, args: &[&str]) -> Output {
        self.rumor().args(args).output().unwrap()
    }

    fn file(&self, id: &str) -> PathBuf {
        self.dir().join(format!("secrets/{id}.yaml"))
    }

    /// The device file's plaintext via `rumor decrypt` with the admin
    /// identity; `None` when there is no file. A file that exists must
    /// decrypt: writes are atomic, so there is never half of one.
    #[track_caller]
    fn decrypt(&self, id: &str) -> Option<BTreeMap<String, String>> {
        if !self.file(id).exists() {
            return None;
        }
        let out = self.quiet(&["decrypt", self.file(id).to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{} does not decrypt: {}",
            self.file(id).display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Some(serde_yaml_ng::from_slice(&out.stdout).unwrap())
    }

    /// The device file decrypted by the real sops.
    fn sops_decrypt(&self, id: &str) -> BTreeMap<String, String> {
        let out = Command::new(require("sops").unwrap())
            .args(["decrypt", "--input-type", "yaml", "--output-type", "json"])
            .arg(self.file(id))
            .env("SOPS_AGE_KEY_FILE", self.identity())
            .output()
            .unwrap();
        assert!(out.status.success(), "sops: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The files under secrets/ and their bytes.
    fn secrets(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        if let Ok(entries) = fs::read_dir(self.dir().join("secrets")) {
            for e in entries {
                let e = e.unwrap();
                out.insert(e.file_name().to_string_lossy().into_owned(), fs::read(e.path()).unwrap());
            }
        }
        out
    }

    /// Every stored value of a device, by name (names from `get`'s hint).
    fn stored(&self, id: &str) -> BTreeMap<String, String> {
        let out = self.quiet(&["get", id, "no-such-name"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let names = stderr.split("stored names: ").nth(1).unwrap_or_else(|| panic!("no names in: {stderr}"));
        names
            .trim()
            .split(", ")
            .map(|name| {
                let out = self.quiet(&["get", id, name]);
                assert!(out.status.success(), "get {id} {name}");
                let value = String::from_utf8(out.stdout).unwrap();
                (name.to_owned(), value.strip_suffix('\n').unwrap_or(&value).to_owned())
            })
            .collect()
    }

    /// Pre-creates devices/<id>.toml, as a second operator would have it
    /// from git, so concurrent runs do not race on creating it.
    fn device_toml(&self, id: &str, ip: &str) {
        fs::create_dir_all(self.dir().join("devices")).unwrap();
        fs::write(self.dir().join(format!("devices/{id}.toml")), format!("name = \"\"\nip = \"{ip}\"\ngroups = [\"pidgeon\"]\n\n[vars]\n")).unwrap();
    }
}

/// Temp files (fsutil's and the local store's) anywhere under `dir`.
fn temps(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_dir() {
            out.extend(temps(&path));
        } else if name.ends_with(".rumor-tmp") || name.ends_with(".tmp") || name.starts_with(".tmp") {
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
fn spawn_lines(cmd: &mut Command) -> (Child, mpsc::Receiver<String>, std::thread::JoinHandle<String>) {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
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
    let span = start.elapsed().as_millis() as u64 * 5 / 4;
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
        let mut child = fleet.rumor().arg("new").args(&ids).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..span)));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.signal() == Some(9) {
            killed += 1;
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
        finals.insert(id.to_string(), fleet.decrypt(id).expect("device file after the re-run"));
    }
    for (id, plain) in &seen {
        let now = &finals[id];
        for (key, value) in plain {
            assert_eq!(now.get(key), Some(value), "{id}: \"{key}\" changed after a killed run");
        }
    }
    assert_eq!(fleet.sops_decrypt("d1"), finals["d1"], "the real sops reads what rumor decrypts");

    eprintln!("new phase done after {:?}", start.elapsed());
    // Renew rotates; after each killed renew the device file may be the
    // old one (the store is ahead), and a re-run must bring them together.
    for _ in 0..renew_kills {
        let mut child = fleet.rumor().args(["renew", "d0", "d1"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..span)));
        let _ = child.kill();
        if child.wait().unwrap().signal() == Some(9) {
            killed += 1;
        }
        for id in ["d0", "d1"] {
            fleet.decrypt(id).expect("a device file survives a killed renew whole");
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
                assert!(plain.values().any(|v| v.contains(value.trim())), "{id}: the device file lacks the store's {name}");
            }
        }
    }
    // Most kill points land mid-run; some may fall after the exit.
    eprintln!("killed {killed} of {} runs mid-way; span {span} ms; took {:?}", new_kills + renew_kills, start.elapsed());
    assert!(killed * 3 >= new_kills + renew_kills, "only {killed} runs were killed mid-way");
}

#[test]
fn kill_local() {
    if require("sops").is_none() {
        return;
    }
    kill_runs(&Fleet::new(vec![]), 0x5eed_0001, 16, 10);
}

#[test]
fn kill_vault() {
    let Some(bao) = Bao::start() else { return };
    if require("sops").is_none() {
        return;
    }
    kill_runs(&Fleet::new(bao.env()), 0x5eed_0002, 16, 10);
}

/// A killed run's temp files (named after a PID that no longer runs) are
/// removed by the next fleet command, in the fleet and in the local store.
#[test]
fn stale_temps_are_removed() {
    let fleet = Fleet::new(vec![]);
    fleet.run(&["init"]);
    fleet.run(&["new", "t1"]);
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let planted = [
        fleet.dir().join(format!("secrets/.t1.yaml.pid{dead}.rumor-tmp")),
        fleet.dir().join(format!("devices/.t1.toml.pid{dead}-2.rumor-tmp")),
        fleet.dir().join(format!("store/secret/rumor/devices/t1/.current.age.pid{dead}-xYz123.rumor-tmp")),
    ];
    for p in &planted {
        fs::write(p, "half a file").unwrap();
    }
    fleet.run(&["new", "t1"]);
    assert_no_temps(&fleet);
    fleet.run(&["check"]);
}

/// SIGTERM mid-run: exit 130, every device file whole and matching the
/// store, no temp file; `rumor run --keep` leaves no workspace behind.
#[test]
fn sigterm_stops_between_steps() {
    let fleet = Fleet::new(vec![]);
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
    let written: Vec<&str> = ids.iter().copied().filter(|id| fleet.file(id).exists()).collect();
    assert!(written.len() < ids.len(), "the run was not interrupted: {stderr}");
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
    let xdg = fleet.tmp.path().join("xdg");
    let shm_before = rumor_dirs(Path::new("/dev/shm"));
    let (child, rx, all) = spawn_lines(support::rumor(fleet.tmp.path()).env("XDG_RUNTIME_DIR", &xdg).args(["run", "-v", "--keep"]).arg(&spec_path));
    wait_for(&rx, ": made ");
    signal(&child, rustix::process::Signal::Term);
    let mut child = child;
    let status = child.wait().unwrap();
    let stderr = all.join().unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert_eq!(fs::read_dir(&xdg).unwrap().count(), 0, "a workspace was kept in {}", xdg.display());
    assert!(rumor_dirs(Path::new("/dev/shm")).is_subset(&shm_before), "a workspace was kept in /dev/shm");
    assert!(!stderr.contains("kept the workspace"), "{stderr}");
}

fn rumor_dirs(dir: &Path) -> BTreeSet<PathBuf> {
    fs::read_dir(dir)
        .map(|es| es.flatten().map(|e| e.path()).filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("rumor-"))).collect())
        .unwrap_or_default()
}

/// Two operators provisioning one device at once on the local store: the
/// lock makes them take turns, and both end with the store's values.
#[test]
fn two_operators_local() {
    let fleet = Fleet::new(vec![]);
    fleet.run(&["init"]);
    for round in 0..3 {
        let id = format!("c{round}");
        let (a, b) = (fleet.rumor().args(["new", &id]).output(), fleet.rumor().args(["new", &id]).output());
        let _ = (a, b);
        let children: Vec<Child> = (0..2).map(|_| fleet.rumor().args(["new", &id]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()).collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        // Two renews at once: one rotation after the other, never a mix.
        let children: Vec<Child> = (0..2).map(|_| fleet.rumor().args(["renew", &id]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()).collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
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
        assert!(plain.values().any(|v| v.contains(value.trim())), "{id}: the device file lacks the store's {name}");
    }
}

/// Two operators at once against OpenBao, repeated: check-and-set on
/// `current` lets one win; the other converges or fails saying to run
/// again, and never leaves a second value for a secret.
#[test]
fn two_operators_vault() {
    let Some(bao) = Bao::start() else { return };
    let fleet = Fleet::new(bao.env());
    fleet.run(&["init"]);
    let mut conflicts = 0;
    for round in 0..10 {
        let id = format!("v{round}");
        fleet.device_toml(&id, &format!("10.8.0.{}", 20 + round));
        for command in ["new", "renew"] {
            let children: Vec<Child> = (0..2).map(|_| fleet.rumor().args([command, &id]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()).collect();
            for child in children {
                let out = child.wait_with_output().unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr);
                if !out.status.success() {
                    assert_eq!(out.status.code(), Some(4), "{stderr}");
                    assert!(stderr.contains("changed while this run was writing it") && stderr.contains("run again"), "{stderr}");
                    conflicts += 1;
                }
            }
            // Whoever lost, the device file and the store agree.
            fleet.run(&["check", &id]);
            same_as_store(&fleet, &id);
        }
        let current = bao.kv_get("secret", &format!("rumor/devices/{id}/current")).unwrap();
        let plain = fleet.decrypt(&id).unwrap();
        let password = current["postgres.password.postgres"].as_str().unwrap();
        assert!(plain["postgres.sql"].contains(password));
    }
    eprintln!("{conflicts} runs lost a check-and-set race");
}
