//! A fleet in a temp dir, driven through the built binary.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{fails, ok, require};

/// A fleet in a temp dir with its own HOME (and so its own admin identity).
pub struct Fleet {
    pub tmp: tempfile::TempDir,
    pub env: Vec<(&'static str, String)>,
    /// The XDG_RUNTIME_DIR every rumor it runs gets, if any (otherwise the
    /// caller's is inherited).
    runtime_dir: Option<PathBuf>,
}

impl Fleet {
    /// An empty fleet directory; `env` goes to every rumor it runs.
    pub fn new(env: Vec<(&'static str, String)>) -> Fleet {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("fleet")).unwrap();
        Fleet {
            tmp,
            env,
            runtime_dir: None,
        }
    }

    /// `rumor init` run, for the embedded store (`env` empty) or Vault.
    pub fn init(env: Vec<(&'static str, String)>) -> Fleet {
        let fleet = Fleet::new(env);
        fleet.run(&["init"]);
        fleet
    }

    /// This fleet with its own XDG_RUNTIME_DIR (an empty `xdg` beside the
    /// fleet), so what rumor keeps there can be seen.
    pub fn with_runtime_dir(mut self) -> Fleet {
        let dir = self.tmp.path().join("xdg");
        fs::create_dir_all(&dir).unwrap();
        self.runtime_dir = Some(dir);
        self
    }

    /// The XDG_RUNTIME_DIR of [`Fleet::with_runtime_dir`].
    pub fn runtime_dir(&self) -> &Path {
        self.runtime_dir
            .as_deref()
            .expect("a fleet made with_runtime_dir")
    }

    /// Sets (or replaces) a variable for every rumor it runs from now on.
    pub fn set(&mut self, key: &'static str, value: &str) {
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.to_owned()));
    }

    pub fn dir(&self) -> PathBuf {
        self.tmp.path().join("fleet")
    }

    /// The HOME every rumor it runs gets.
    pub fn home(&self) -> PathBuf {
        self.tmp.path().join(".home")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir().join(rel)
    }

    pub fn identity(&self) -> PathBuf {
        self.home().join(".config/rumor/identity.txt")
    }

    /// The admin's `age1…` recipient.
    pub fn admin_recipient(&self) -> String {
        let text = fs::read_to_string(self.identity()).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("# public key: "))
            .unwrap()
            .trim()
            .to_owned()
    }

    pub fn rumor(&self) -> Command {
        let mut cmd = super::rumor(self.tmp.path());
        cmd.envs(self.env.clone());
        if let Some(dir) = &self.runtime_dir {
            cmd.env("XDG_RUNTIME_DIR", dir);
        }
        cmd.arg("-C").arg(self.dir());
        cmd
    }

    /// Runs rumor; it must succeed. Returns stdout.
    #[track_caller]
    pub fn run(&self, args: &[&str]) -> String {
        ok(self.rumor().args(args))
    }

    /// Runs rumor; it must fail. Returns stderr.
    #[track_caller]
    pub fn fail(&self, args: &[&str]) -> String {
        fails(self.rumor().args(args))
    }

    /// Runs rumor, whatever the outcome.
    pub fn output(&self, args: &[&str]) -> Output {
        super::run(self.rumor().args(args))
    }

    /// Runs rumor, whatever the outcome, without echoing its output (for
    /// commands that print secrets).
    pub fn quiet(&self, args: &[&str]) -> Output {
        self.rumor().args(args).output().unwrap()
    }

    /// The device file of `id` at the default output path.
    pub fn file(&self, id: &str) -> PathBuf {
        self.path(&format!("secrets/{id}.yaml"))
    }

    /// The device file decrypted by the real sops with `key`.
    pub fn sops_decrypt(&self, id: &str, key: &Path) -> BTreeMap<String, String> {
        let out = Command::new(require("sops").unwrap())
            .args(["decrypt", "--input-type", "yaml", "--output-type", "json"])
            .arg(self.file(id))
            .env("SOPS_AGE_KEY_FILE", key)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sops: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The device file's plaintext via `rumor decrypt` with the admin
    /// identity; `None` when there is no file. A file that exists must
    /// decrypt: writes are atomic, so there is never half of one.
    #[track_caller]
    pub fn decrypt(&self, id: &str) -> Option<BTreeMap<String, String>> {
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

    /// The files under secrets/ and their bytes.
    pub fn secrets(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        if let Ok(entries) = fs::read_dir(self.dir().join("secrets")) {
            for e in entries {
                let e = e.unwrap();
                out.insert(
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).unwrap(),
                );
            }
        }
        out
    }

    /// Every stored value of a device, by name (names from `get`'s hint).
    pub fn stored(&self, id: &str) -> BTreeMap<String, String> {
        let out = self.quiet(&["get", id, "no-such-name"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let names = stderr
            .split("stored names: ")
            .nth(1)
            .unwrap_or_else(|| panic!("no names in: {stderr}"));
        names
            .trim()
            .split(", ")
            .map(|name| {
                let out = self.quiet(&["get", id, name]);
                assert!(out.status.success(), "get {id} {name}");
                let value = String::from_utf8(out.stdout).unwrap();
                (
                    name.to_owned(),
                    value.strip_suffix('\n').unwrap_or(&value).to_owned(),
                )
            })
            .collect()
    }

    /// Writes a file beside the fleet (not in it); returns its path.
    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.tmp.path().join(name);
        fs::write(&path, content).unwrap();
        path
    }

    pub fn git(&self, args: &[&str]) -> String {
        ok(Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(self.dir()))
    }

    /// Every file under the fleet directory with its bytes and mode, for
    /// "nothing changed" assertions (lock files excluded: taking a lock
    /// may create one).
    pub fn snapshot(&self) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
        snapshot(&self.dir())
    }
}

/// Every file under `dir` with its bytes and mode (symlinks as their
/// target's name; `.lock` files skipped).
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_symlink() {
                out.insert(
                    path.clone(),
                    (
                        fs::read_link(&path)
                            .unwrap()
                            .to_string_lossy()
                            .into_owned()
                            .into_bytes(),
                        0,
                    ),
                );
            } else if kind.is_file() && path.file_name().is_some_and(|n| n != ".lock") {
                let mode = entry.metadata().unwrap().permissions().mode();
                out.insert(path.clone(), (fs::read(&path).unwrap(), mode));
            } else if !kind.is_file() {
                out.insert(path, (b"<special>".to_vec(), 0));
            }
        }
    }
    out
}

/// A fresh age identity made by the real `age-keygen`: (identity file,
/// recipient).
pub fn age_keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = Command::new(require("age-keygen").unwrap())
        .arg("-o")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = fs::read_to_string(&path).unwrap();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .trim()
        .to_owned();
    (path, recipient)
}

/// The `age1…` recipients a SOPS file lists, in order.
pub fn recipients(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("- recipient: "))
        .map(str::to_owned)
        .collect()
}
