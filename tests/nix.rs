//! The NixOS side, checked with the real Nix evaluator: every `.nix` file
//! parses, and `nix/secrets.nix` maps a device file to the sops-nix
//! declarations of all eleven keys of its SOPS file.
//!
//! Nothing here needs nixpkgs or the network: the secrets function uses
//! builtins only, precisely so it can be checked like this.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The keys of every device's secrets/<id>.yaml.
const DEVICE_KEYS: [&str; 11] = [
    "postgres.sql",
    "postgres.crt",
    "postgres.key",
    "postgres.ca.crt",
    "nebula.ca.crt",
    "nebula.crt",
    "nebula.key",
    "wifi.env",
    "user.hash",
    "user.authorized_keys",
    "pidgeon.env",
];

/// nix-instantiate with its state, cache and home in a temp dir, so it
/// needs no writable /nix/var and no daemon.
fn nix(tool: &Path, state: &Path) -> Command {
    let mut cmd = Command::new(tool);
    cmd.current_dir(support::root())
        .env("HOME", state)
        .env("XDG_CACHE_HOME", state.join("cache"))
        .env("NIX_STATE_DIR", state.join("state"))
        .env("NIX_STORE_DIR", state.join("store"))
        .args(["--option", "substituters", ""]);
    cmd
}

fn nix_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let name = entry.file_name();
        if [".git", "target", ".venv", "node_modules", "result"].iter().any(|skip| name == *skip) {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            nix_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "nix") {
            out.push(path);
        }
    }
}

/// Evaluates `expr` strictly, as JSON.
fn eval(tool: &Path, state: &Path, expr: &str) -> Value {
    let out = support::ok(nix(tool, state).args(["--eval", "--strict", "--json", "-E", expr]));
    serde_json::from_str(&out).unwrap()
}

#[test]
fn every_nix_file_parses() {
    let Some(tool) = support::require("nix-instantiate") else { return };
    let state = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    nix_files(&support::root(), &mut files);
    for expected in ["flake.nix", "nix/module.nix", "nix/secrets.nix", "nix/image.nix"] {
        assert!(files.contains(&support::root().join(expected)), "{expected} is missing");
    }
    for file in files {
        support::ok(nix(&tool, state.path()).arg("--parse").arg(&file));
    }
}

#[test]
fn device_secrets_declare_every_key_of_the_device_file() {
    let Some(tool) = support::require("nix-instantiate") else { return };
    let state = tempfile::tempdir().unwrap();
    let secrets = eval(
        &tool,
        state.path(),
        "import ./nix/secrets.nix { device = builtins.fromTOML (builtins.readFile ./tests/fixtures/nix/device.toml); }",
    );
    let secrets = secrets.as_object().unwrap();
    let mut names: Vec<&str> = secrets.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut expected = DEVICE_KEYS.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);

    for key in DEVICE_KEYS {
        let secret = &secrets[key];
        assert_eq!(secret["key"], key, "{key} reads its own YAML key");
        assert_eq!(secret["mode"], "0400", "{key}");
    }
    for key in ["postgres.sql", "postgres.crt", "postgres.key", "postgres.ca.crt"] {
        assert_eq!(secrets[key]["owner"], "postgres", "{key}");
        assert_eq!(secrets[key]["restartUnits"][0], "postgresql.service", "{key}");
    }
    // The fixture's [vars] rename the Nebula network and the admin user.
    for key in ["nebula.ca.crt", "nebula.crt", "nebula.key"] {
        assert_eq!(secrets[key]["owner"], "nebula-altibiz", "{key}");
        assert_eq!(secrets[key]["restartUnits"][0], "nebula@altibiz.service", "{key}");
    }
    assert_eq!(secrets["user.authorized_keys"]["owner"], "ops");
    assert_eq!(secrets["user.authorized_keys"]["path"], "/etc/ssh/authorized_keys.d/ops");
    assert_eq!(secrets["user.hash"]["owner"], "root");
    assert_eq!(secrets["user.hash"]["neededForUsers"], true);
    assert_eq!(secrets["wifi.env"]["owner"], "root");
    assert_eq!(secrets["pidgeon.env"]["owner"], "pidgeon");
    assert_eq!(secrets["pidgeon.env"]["restartUnits"][0], "pidgeon.service");
}

#[test]
fn device_secrets_take_a_path_and_explicit_users() {
    let Some(tool) = support::require("nix-instantiate") else { return };
    let state = tempfile::tempdir().unwrap();
    let from_path = eval(&tool, state.path(), "import ./nix/secrets.nix { device = ./tests/fixtures/nix/device.toml; }");
    let from_attrs = eval(
        &tool,
        state.path(),
        "import ./nix/secrets.nix { device = builtins.fromTOML (builtins.readFile ./tests/fixtures/nix/device.toml); }",
    );
    assert_eq!(from_path, from_attrs);
    let bare = eval(
        &tool,
        state.path(),
        r#"import ./nix/secrets.nix { device = { name = "Pidgeon 9"; ip = "10.8.0.9"; }; adminUser = "admin2"; }"#,
    );
    assert_eq!(bare["user.authorized_keys"]["owner"], "admin2");
    assert_eq!(bare["nebula.key"]["owner"], "nebula-rumor");
}

#[test]
fn a_device_without_an_ip_is_refused_clearly() {
    let Some(tool) = support::require("nix-instantiate") else { return };
    let state = tempfile::tempdir().unwrap();
    let stderr = support::fails(nix(&tool, state.path()).args([
        "--eval",
        "--strict",
        "--json",
        "-E",
        r#"import ./nix/secrets.nix { device = { name = "Pidgeon 9"; }; }"#,
    ]));
    assert!(stderr.contains("rumor: device 'Pidgeon 9' has no ip"), "{stderr}");
}
