//! The NixOS side, checked with the real Nix evaluator: every `.nix` file
//! parses, and `nix/secrets.nix` maps a device file to the sops-nix
//! declarations of all eleven keys of its SOPS file; `nix/module.nix` runs
//! pidgeon through pidgeon's own module.
//!
//! Nothing here needs nixpkgs or the network: the secrets function uses
//! builtins only, precisely so it can be checked like this, and the module
//! is evaluated with a small stand-in of the module system.

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
        if [".git", "target", ".venv", "node_modules", "result"]
            .iter()
            .any(|skip| name == *skip)
        {
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
    let Some(tool) = support::require("nix-instantiate") else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    nix_files(&support::root(), &mut files);
    for expected in [
        "flake.nix",
        "nix/module.nix",
        "nix/secrets.nix",
        "nix/image.nix",
    ] {
        assert!(
            files.contains(&support::root().join(expected)),
            "{expected} is missing"
        );
    }
    for file in files {
        support::ok(nix(&tool, state.path()).arg("--parse").arg(&file));
    }
}

#[test]
fn device_secrets_declare_every_key_of_the_device_file() {
    let Some(tool) = support::require("nix-instantiate") else {
        return;
    };
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
    for key in [
        "postgres.sql",
        "postgres.crt",
        "postgres.key",
        "postgres.ca.crt",
    ] {
        assert_eq!(secrets[key]["owner"], "postgres", "{key}");
        assert_eq!(
            secrets[key]["restartUnits"][0], "postgresql.service",
            "{key}"
        );
    }
    // The fixture's [vars] rename the Nebula network and the admin user.
    for key in ["nebula.ca.crt", "nebula.crt", "nebula.key"] {
        assert_eq!(secrets[key]["owner"], "nebula-altibiz", "{key}");
        assert_eq!(
            secrets[key]["restartUnits"][0], "nebula@altibiz.service",
            "{key}"
        );
    }
    assert_eq!(secrets["user.authorized_keys"]["owner"], "ops");
    assert_eq!(
        secrets["user.authorized_keys"]["path"],
        "/etc/ssh/authorized_keys.d/ops"
    );
    assert_eq!(secrets["user.hash"]["owner"], "root");
    assert_eq!(secrets["user.hash"]["neededForUsers"], true);
    assert_eq!(secrets["wifi.env"]["owner"], "root");
    assert_eq!(secrets["pidgeon.env"]["owner"], "pidgeon");
    assert_eq!(secrets["pidgeon.env"]["restartUnits"][0], "pidgeon.service");
}

#[test]
fn device_secrets_take_a_path_and_explicit_users() {
    let Some(tool) = support::require("nix-instantiate") else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let from_path = eval(
        &tool,
        state.path(),
        "import ./nix/secrets.nix { device = ./tests/fixtures/nix/device.toml; }",
    );
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
    let Some(tool) = support::require("nix-instantiate") else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let stderr = support::fails(nix(&tool, state.path()).args([
        "--eval",
        "--strict",
        "--json",
        "-E",
        r#"import ./nix/secrets.nix { device = { name = "Pidgeon 9"; }; }"#,
    ]));
    assert!(
        stderr.contains("rumor: device 'Pidgeon 9' has no ip"),
        "{stderr}"
    );
}

/// `nix/module.nix` evaluated with a stand-in module system
/// (tests/fixtures/nix/modules.nix, no nixpkgs needed) for one host, with
/// pidgeon's own module (a stand-in declaring its options as pidgeon's
/// pidgeonCli.nix does), or without it and the fallback unit.
const PIDGEON_EVAL: &str = r#"
let
  lib = import ./tests/fixtures/nix/modules.nix;
  host = pidgeon: { ... }: {
    services.rumor-device = {
      enable = true;
      device = "pidgeon-1";
      deviceFile = ./tests/fixtures/nix/device.toml;
      secretsFile = ./tests/fixtures/nix/device.toml;
      pidgeon = { configPath = "/etc/pidgeon/config.toml"; debug = true; } // pidgeon;
    };
    # The path sops-nix gives the declaration.
    sops.secrets."pidgeon.env".path = "/run/secrets/pidgeon.env";
  };
  package = { name = "pidgeon"; outPath = "/nix/store/0000-pidgeon"; meta.mainProgram = "pidgeon-cli"; };
  eval = modules: (lib.evalModules { inherit modules; }).config;
  own = eval [ ./nix/module.nix ./tests/fixtures/nix/pidgeon-module.nix (host { }) ];
  fallback = eval [ ./nix/module.nix (host { useModule = false; inherit package; }) ];
  missing = eval [ ./nix/module.nix (host { }) ];
  unit = c: {
    description = c.systemd.services.pidgeon.description;
    exec = c.systemd.services.pidgeon.serviceConfig.ExecStart;
    env = c.systemd.services.pidgeon.serviceConfig.EnvironmentFile;
    user = c.systemd.services.pidgeon.serviceConfig.User;
    after = c.systemd.services.pidgeon.after;
    hardened = c.systemd.services.pidgeon.serviceConfig ? ProtectSystem;
  };
  failed = c: map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
  undeclared = builtins.tryEval (builtins.deepSeq (eval [ ./tests/fixtures/nix/pidgeon-module.nix { services.pidgeon.envFile = "x"; } ]).services.pidgeon null);
in
{
  own = {
    pidgeon = { inherit (own.services.pidgeon) enable envPath configPath debug; };
    groups = own.users.users.pidgeon.extraGroups;
    unit = unit own;
    failed = failed own;
  };
  fallback = {
    unit = unit fallback;
    groups = fallback.users.users.pidgeon.extraGroups;
    services = builtins.attrNames fallback.services;
    failed = failed fallback;
  };
  missing = failed missing;
  standInRefusesUndeclared = !undeclared.success;
}
"#;

#[test]
fn pidgeon_runs_through_its_own_module() {
    let Some(tool) = support::require("nix-instantiate") else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let v = eval(&tool, state.path(), PIDGEON_EVAL);
    assert_eq!(
        v["standInRefusesUndeclared"], true,
        "the stand-in checks option names as NixOS does"
    );

    // With pidgeon's module: its options are set, and the unit is its own.
    let own = &v["own"];
    assert_eq!(own["pidgeon"]["enable"], true);
    assert_eq!(
        own["pidgeon"]["envPath"], "/run/secrets/pidgeon.env",
        "the decrypted pidgeon.env from sops-nix"
    );
    assert_eq!(own["pidgeon"]["configPath"], "/etc/pidgeon/config.toml");
    assert_eq!(own["pidgeon"]["debug"], true);
    assert!(
        own["groups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g == "dialout")
            && !own["groups"].as_array().unwrap().is_empty()
    );
    let unit = &own["unit"];
    assert_eq!(
        unit["description"], "pidgeon stand-in unit",
        "no second unit beside pidgeon's"
    );
    assert_eq!(
        unit["exec"],
        "/stand-in/pidgeon-cli --debug --config '/etc/pidgeon/config.toml'"
    );
    assert_eq!(unit["env"], "/run/secrets/pidgeon.env");
    assert_eq!(
        unit["hardened"], false,
        "the fallback's settings stay out of pidgeon's unit"
    );
    let after: Vec<&str> = unit["after"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        after.contains(&"postgresql.service") && after.contains(&"network.target"),
        "{after:?}"
    );
    assert_eq!(own["failed"], serde_json::json!([]));

    // Without a module, the fallback unit runs the package the same way.
    let fallback = &v["fallback"];
    assert!(
        !fallback["services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "pidgeon"),
        "services.pidgeon is only set where declared"
    );
    assert_eq!(
        fallback["unit"]["exec"],
        "/nix/store/0000-pidgeon/bin/pidgeon-cli --debug --config /etc/pidgeon/config.toml"
    );
    assert_eq!(fallback["unit"]["env"], "/run/secrets/pidgeon.env");
    assert_eq!(fallback["unit"]["user"], "pidgeon");
    assert_eq!(fallback["unit"]["hardened"], true);
    assert_eq!(fallback["groups"], serde_json::json!(["dialout"]));
    assert_eq!(fallback["failed"], serde_json::json!([]));

    // Asking for the module without importing it is one clear assertion.
    let missing = v["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 1);
    assert!(
        missing[0].as_str().unwrap().starts_with(
            "rumor: services.rumor-device.pidgeon.useModule needs pidgeon's NixOS module"
        ),
        "{missing:?}"
    );
}
