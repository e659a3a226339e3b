//! The engine end to end: specs in the original format, run twice through
//! the built binary against a real OpenBao, checked with the real tools.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{fails, ok, require, rumor, with_stdin, Bao};

fn spec(name: &str) -> PathBuf {
    support::root().join("tests/specs").join(name)
}

fn read(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn run_spec(bao: &Bao, dir: &Path, spec_name: &str) {
    fs::create_dir_all(dir).unwrap();
    ok(rumor(dir)
        .envs(bao.env())
        .arg(spec(spec_name))
        .args(["--stay", "--keep"]));
}

/// The YAML map in a file, as strings.
fn yaml_map(text: &str) -> BTreeMap<String, String> {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).unwrap();
    value
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_owned(),
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| serde_yaml_ng::to_string(v).unwrap()),
            )
        })
        .collect()
}

/// Real sops decrypts the public SOPS output to the private one.
fn check_sops(dir: &Path) -> BTreeMap<String, String> {
    let sops = require("sops").unwrap();
    let out = Command::new(sops)
        .args(["decrypt", "--input-type", "yaml", "--output-type", "yaml"])
        .arg(dir.join("sops.yaml.pub"))
        .env("SOPS_AGE_KEY_FILE", dir.join("age.txt"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sops decrypt: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decrypted = yaml_map(&String::from_utf8(out.stdout).unwrap());
    let private = yaml_map(&read(dir, "sops.yaml"));
    assert_eq!(
        decrypted, private,
        "sops decrypt differs from the private YAML"
    );
    decrypted
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Runs a spec twice in one directory and once in a fresh one; checks that
/// kept values survive through Vault and renewed ones change.
fn twice(spec_name: &str, kept: &[&str], renewed: &[&str]) -> (Bao, PathBuf, tempfile::TempDir) {
    let bao = Bao::start().expect("bao");
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    run_spec(&bao, &a, spec_name);
    let first = check_sops(&a);
    // Stores keep values trimmed, as the original did, so compare trimmed.
    let first_files: BTreeMap<_, _> = kept
        .iter()
        .chain(renewed)
        .map(|n| (*n, read(&a, n).trim().to_owned()))
        .collect();
    run_spec(&bao, &a, spec_name);
    let second = check_sops(&a);
    for name in kept {
        assert_eq!(
            read(&a, name).trim(),
            first_files[name],
            "{spec_name}: {name} must be kept"
        );
    }
    for name in renewed {
        assert_ne!(
            read(&a, name).trim(),
            first_files[name],
            "{spec_name}: {name} must be renewed"
        );
    }
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        second.keys().collect::<Vec<_>>()
    );
    // A fresh directory gets the kept values back from Vault.
    let b = tmp.path().join("b");
    run_spec(&bao, &b, spec_name);
    check_sops(&b);
    for name in kept {
        assert_eq!(
            read(&b, name).trim(),
            read(&a, name).trim(),
            "{spec_name}: {name} must come back from Vault"
        );
    }
    (bao, a, tmp)
}

#[test]
fn ids_passwords_and_keys() {
    if require("bao").is_none() || require("sops").is_none() {
        return;
    }
    let (bao, dir, _tmp) = twice(
        "ids.toml",
        &[
            "id",
            "pin",
            "ssh",
            "ssh.pub",
            "age.txt",
            "age.txt.pub",
            "shared-id",
        ],
        &["short-id", "key", "pass", "pass.hash"],
    );
    assert_eq!(read(&dir, "id").len(), 16);
    assert!(read(&dir, "id").chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(read(&dir, "key").len(), 40);
    assert!(read(&dir, "pin").chars().all(|c| c.is_ascii_digit()) && read(&dir, "pin").len() == 6);
    assert_eq!(mode(&dir.join("id")), 0o644);
    assert_eq!(mode(&dir.join("key")), 0o600);
    assert_eq!(mode(&dir.join("ssh")), 0o600);
    assert_eq!(mode(&dir.join("ssh.pub")), 0o644);
    assert_eq!(mode(&dir.join("sops.yaml")), 0o600);
    assert_eq!(mode(&dir.join("sops.yaml.pub")), 0o644);

    // Vault holds current and a timestamped copy, values trimmed.
    let current = bao.kv_get("secret", "ids/current").unwrap();
    assert_eq!(current["id"].as_str().unwrap(), read(&dir, "id").trim());
    assert!(bao
        .kv_list("secret", "ids/")
        .iter()
        .any(|k| k.len() == 14 && k.chars().all(|c| c.is_ascii_digit())));
    assert_eq!(
        bao.kv_get("secret", "shared/current").unwrap()["shared-id"]
            .as_str()
            .unwrap(),
        read(&dir, "shared-id")
    );

    // ssh-keygen accepts the pair.
    if let Some(ssh_keygen) = require("ssh-keygen") {
        let fp = ok(Command::new(&ssh_keygen)
            .arg("-l")
            .arg("-f")
            .arg(dir.join("ssh.pub")));
        assert!(
            fp.contains("operator@fleet") && fp.contains("(ED25519)"),
            "{fp}"
        );
        let public = ok(Command::new(&ssh_keygen)
            .arg("-y")
            .arg("-f")
            .arg(dir.join("ssh")));
        assert_eq!(
            public.split_whitespace().take(2).collect::<Vec<_>>(),
            read(&dir, "ssh.pub")
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
        );
    }
    // libxcrypt verifies the yescrypt hash.
    let hash = read(&dir, "pass.hash");
    assert!(hash.starts_with("$y$"));
    let verify = |password: &str| {
        let out = ok(Command::new("python3")
            .args([
                "-W",
                "ignore",
                "-c",
                "import crypt,sys; print(crypt.crypt(sys.argv[1], sys.argv[2]) == sys.argv[2])",
            ])
            .arg(password)
            .arg(&hash));
        out.trim() == "True"
    };
    assert!(verify(&read(&dir, "pass")));
    assert!(!verify("wrong-password"));
    // age round trip with the real age.
    if let Some(age) = require("age") {
        let plain = dir.join("plain");
        fs::write(&plain, "round trip").unwrap();
        ok(Command::new(&age)
            .arg("-r")
            .arg(read(&dir, "age.txt.pub").trim())
            .arg("-o")
            .arg(dir.join("c.age"))
            .arg(&plain));
        let out = ok(Command::new(&age)
            .arg("-d")
            .arg("-i")
            .arg(dir.join("age.txt"))
            .arg(dir.join("c.age")));
        assert_eq!(out, "round trip");
    }
}

#[test]
fn templates_in_yaml() {
    if require("bao").is_none() || require("sops").is_none() {
        return;
    }
    let (_bao, dir, _tmp) = twice("templates.yaml", &["id", "age.txt"], &["rotating"]);
    let env = read(&dir, "app.env");
    let lines: Vec<&str> = env.lines().collect();
    assert_eq!(lines[0], format!("ZED=\"{}\"", read(&dir, "id")));
    assert!(lines[1].starts_with("ALPHA=\""));
    assert_eq!(
        lines[2],
        r#"MOTD="Welcome to \"the\" fleet\n  second line \\ backslash""#
    );
    assert_eq!(lines[3], "LITERAL=\"not-a-file\"");
    let greeting = read(&dir, "greeting");
    assert!(
        greeting.starts_with(&format!("id is {}\n", read(&dir, "id"))),
        "{greeting}"
    );
    assert!(greeting.ends_with("custom is custom"), "{greeting}");
}

#[test]
fn structured_values_in_json() {
    if require("bao").is_none() || require("sops").is_none() {
        return;
    }
    let (_bao, dir, _tmp) = twice("structured.json", &["age.txt", "text", "json"], &[]);
    assert_eq!(read(&dir, "text-copy"), "Text!");
    let json: serde_json::Value = serde_json::from_str(&read(&dir, "json")).unwrap();
    assert_eq!(json["list"][1], 2);
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&read(&dir, "yaml")).unwrap();
    assert_eq!(yaml[1]["nested"], serde_yaml_ng::Value::Bool(true));
    let toml: toml::Value = toml::from_str(&read(&dir, "toml")).unwrap();
    assert_eq!(toml["table"]["n"].as_integer(), Some(1));
}

#[test]
fn stdin_and_memory_only() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = r#"{"generations": [{"generator": "key", "arguments": {"name": "k"}}],
        "exports": [{"exporter": "copy", "arguments": {"from": "k", "to": "out/k.txt"}}]}"#;
    let out = with_stdin(rumor(tmp.path()).args(["stdin", "json"]), spec.as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Only the exported file is on disk: the workspace stayed in memory.
    let key = fs::read_to_string(tmp.path().join("out/k.txt")).unwrap();
    assert_eq!(key.len(), 32);
    assert_eq!(mode(&tmp.path().join("out/k.txt")), 0o600);
    let names: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["out"]);
}

#[test]
fn keep_without_stay_uses_a_private_dir() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join("s.yaml"),
        "generations:\n  - generator: id\n    arguments: {name: id}\n",
    )
    .unwrap();
    let out = support::run(rumor(tmp.path()).args(["run", "s.yaml", "--keep"]));
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let dir = stderr
        .lines()
        .find_map(|l| l.strip_prefix("rumor: kept the workspace in "))
        .unwrap();
    let dir = Path::new(dir.split(" (").next().unwrap());
    assert_eq!(mode(dir), 0o700);
    assert_eq!(fs::read_to_string(dir.join("id")).unwrap().len(), 16);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn errors_are_one_clear_line() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("missing.toml", "[[generations]]\ngenerator = \"id\"\narguments.length = 3\n", "generations[0] (id): missing argument \"name\""),
        ("unknown.yaml", "generations:\n  - generator: nope\n", "unknown generator \"nope\""),
        ("syntax.toml", "[[generations]]\ngenerator = \n", "syntax.toml:2:"),
        ("syntax.json", "{\"generations\": [}", "syntax.json:1:"),
        ("abs.toml", "[[generations]]\ngenerator = \"id\"\narguments.name = \"/etc/passwd\"\n", "is an absolute path"),
        ("dots.toml", "[[generations]]\ngenerator = \"key\"\narguments.name = \"../x\"\n", "contains '..'"),
        ("length.toml", "[[generations]]\ngenerator = \"pin\"\narguments = { name = \"p\", length = -1 }\n", "argument \"length\""),
        ("huge.toml", "[[generations]]\ngenerator = \"pin\"\narguments = { name = \"p\", length = 100000000 }\n", "argument \"length\""),
        ("type.yaml", "generations:\n  - generator: key\n    arguments: {name: [1]}\n", "generations[0] (key)"),
        ("input.toml", "[[generations]]\ngenerator = \"copy\"\narguments = { from = \"nothing\", to = \"x\" }\n", "\"nothing\", which is not in the workspace"),
        ("spec.txt", "", "cannot tell the spec format"),
        // Only the JSON Schema catches this one (checked beside the run).
        ("schema.toml", "[[generations]]\ngenerator = \"id\"\narguments.name = \"x\"\nrenew = \"yes\"\n[[exports]]\nexporter = \"copy\"\narguments = { from = \"x\", to = \"x.out\" }\n", "generations[0] (id): must be of type boolean"),
    ];
    for (name, text, expected) in cases {
        fs::write(tmp.path().join(name), text).unwrap();
        let stderr = fails(rumor(tmp.path()).args(["run", name]));
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert!(stderr.starts_with("rumor: "), "{name}: {stderr}");
        let errors = stderr
            .lines()
            .filter(|l| !l.starts_with("rumor: warning:"))
            .count();
        assert_eq!(errors, 1, "{name}: {stderr}");
    }
    // Nothing was written.
    let names: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), cases.len());
}

#[test]
fn vault_unreachable_names_the_address_not_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join("s.toml"),
        "[[imports]]\nimporter = \"vault\"\narguments.path = \"secret/x\"\n",
    )
    .unwrap();
    let port = support::free_port();
    let stderr = fails(
        rumor(tmp.path())
            .env("VAULT_ADDR", format!("http://127.0.0.1:{port}"))
            .env("VAULT_TOKEN", "s.supersecrettoken")
            .env("RUMOR_VAULT_RETRIES", "0")
            .args(["run", "s.toml"]),
    );
    assert!(stderr.contains("imports[0] (vault)"), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(!stderr.contains("supersecrettoken"), "{stderr}");
    let stderr = fails(rumor(tmp.path()).args(["run", "s.toml"]));
    assert!(stderr.contains("VAULT_ADDR"), "{stderr}");
}

#[test]
fn schema_is_printed_and_accepts_the_specs() {
    let tmp = tempfile::tempdir().unwrap();
    let schema = ok(rumor(tmp.path()).arg("schema"));
    let value: serde_json::Value = serde_json::from_str(&schema).unwrap();
    assert_eq!(value["title"], "rumor spec");
    assert_eq!(
        schema,
        fs::read_to_string(support::root().join("schema.json")).unwrap()
    );
}

#[test]
fn certificates_twice_through_vault() {
    let (Some(openssl), Some(nebula_cert)) = (require("openssl"), require("nebula-cert")) else {
        return;
    };
    if require("bao").is_none() || require("sops").is_none() {
        return;
    }
    let (_bao, dir, _tmp) = twice(
        "certs.toml",
        &[
            "ca.crt",
            "ca.key",
            "nebula-ca.crt",
            "nebula-ca.key",
            "cockroach-ca.crt",
            "x-ca.crt",
            "dhparam.pem",
        ],
        &[
            "server.crt",
            "server.key",
            "nebula.crt",
            "nebula.key",
            "node.crt",
            "client.root.crt",
            "x.crt",
        ],
    );
    let verify = |ca: &str, leaf: &str| {
        ok(Command::new(&openssl)
            .args(["verify", "-CAfile"])
            .arg(dir.join(ca))
            .arg(dir.join(leaf)));
    };
    verify("ca.crt", "server.crt");
    verify("cockroach-ca.crt", "node.crt");
    verify("cockroach-ca.crt", "client.root.crt");
    verify("x-ca.crt", "x.crt");
    // The serial file counts up across runs, as -CAserial does.
    let serial = ok(Command::new(&openssl)
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(dir.join("server.crt")));
    assert_eq!(
        serial
            .trim()
            .trim_start_matches("serial=")
            .to_ascii_lowercase(),
        read(&dir, "ca.srl").trim().to_ascii_lowercase()
    );
    ok(Command::new(&openssl)
        .args(["dhparam", "-check", "-noout", "-in"])
        .arg(dir.join("dhparam.pem")));
    ok(Command::new(&nebula_cert)
        .args(["verify", "-ca"])
        .arg(dir.join("nebula-ca.crt"))
        .arg("-crt")
        .arg(dir.join("nebula.crt")));
    assert!(read(&dir, "node.key").starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let text = ok(Command::new(&openssl)
        .args([
            "x509",
            "-noout",
            "-subject",
            "-ext",
            "subjectAltName",
            "-in",
        ])
        .arg(dir.join("node.crt")));
    assert!(
        text.contains("CN = node")
            && text.contains("DNS:node-1")
            && text.contains("IP Address:127.0.0.1"),
        "{text}"
    );
}
