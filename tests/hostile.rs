//! Hostile input: malformed and malicious specs, garbage on stdin, device
//! names with paths and quotes, template values carrying SQL, shell and
//! TOML metacharacters, broken OpenSSL configs and tampered SOPS files.
//!
//! Every refusal is checked the same way: one `rumor: …` line on stderr
//! naming what is wrong, the exit code for its class (3 input, 5
//! integrity), no panic, and no file written anywhere but where the case
//! itself put one. Escaping is proven with the real readers: PostgreSQL 15
//! loads the rendered SQL, systemd's own EnvironmentFile parser (through
//! its environment.d generator) and bash read the env files back.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::fleet::Fleet;
use support::postgres::Postgres;
use support::{ok, with_stdin};

/// Every path under `dir`, relative, directories included.
fn tree(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            out.insert(path.strip_prefix(dir).unwrap().to_path_buf());
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(path);
            }
        }
    }
    out
}

/// A refusal ([`support::refused`]) with no raw NUL on stderr.
#[track_caller]
fn refused(out: &Output, code: i32, expect: &str, case: &str) {
    let stderr = support::refused(out, code, expect, case);
    assert!(!stderr.contains('\0'), "{case}: raw NUL on stderr");
}

/// The spec fixtures under tests/hostile/specs, with what the one error
/// line must say (argument type errors name only the argument: the schema
/// check and the generator word them differently). Every line must also
/// name the file or the entry. `@ABS@` is replaced by a path outside the workspace.
const SPECS: &[(&str, &str)] = &[
    ("json-truncated.json", ":1: EOF while parsing"),
    ("json-top-list.json", "top level: a spec must be a map"),
    ("json-top-string.json", "top level: a spec must be a map"),
    (
        "json-duplicate-section.json",
        "duplicate key \"generations\"",
    ),
    ("json-duplicate-argument.json", "duplicate key \"name\""),
    ("json-invalid-utf8.json", "is not UTF-8 text"),
    (
        "json-section-not-list.json",
        "generations: must be a list of entries",
    ),
    ("json-trailing-garbage.json", "trailing characters"),
    (
        "yaml-tabs.yaml",
        ":2: found character that cannot start any token",
    ),
    ("yaml-truncated.yaml", "unexpected end of stream"),
    ("yaml-top-list.yaml", "top level: a spec must be a map"),
    (
        "yaml-duplicate-section.yaml",
        "duplicate key \"generations\"",
    ),
    ("yaml-invalid-utf8.yaml", "is not UTF-8 text"),
    ("yaml-tagged.yaml", "generations: must be a list of entries"),
    ("yaml-alias-bomb.yaml", "repetition limit exceeded"),
    ("yaml-deep-flow.yaml", "nested deeper than 256 levels"),
    ("yaml-multi-document.yaml", "more than one document"),
    ("toml-truncated.toml", ":2: invalid basic string"),
    ("toml-duplicate-key.toml", ":3: duplicate key `generator`"),
    (
        "toml-generations-not-array.toml",
        "generations: must be a list of entries",
    ),
    ("toml-invalid-utf8.toml", "is not UTF-8 text"),
    ("toml-deep.toml", "max recursion depth met"),
    (
        "unknown-generator.json",
        "generations[0]: unknown generator \"frobnicate\"; known: copy",
    ),
    (
        "unknown-importer.json",
        "imports[0]: unknown importer \"ftp\"",
    ),
    (
        "unknown-exporter.json",
        "exports[0]: unknown exporter \"ftp\"",
    ),
    (
        "generator-not-string.toml",
        "generations[0]: \"generator\" must be a string",
    ),
    ("name-is-number.json", "argument \"name\""),
    ("name-is-list.yaml", "argument \"name\""),
    (
        "arguments-is-list.json",
        "generations[0] (id): \"arguments\" must be a map",
    ),
    ("variables-is-list.json", "argument \"variables\""),
    ("secrets-is-string.json", "argument \"secrets\""),
    ("length-negative.json", "argument \"length\""),
    ("length-zero.json", "argument \"length\""),
    (
        "length-huge.json",
        "argument \"length\" must be from 1 to 4096",
    ),
    ("length-float.json", "argument \"length\""),
    ("length-string.toml", "argument \"length\""),
    (
        "days-huge.json",
        "argument \"days\" must be from 1 to 2900000",
    ),
    ("days-negative.json", "argument \"days\""),
    ("missing-argument.json", "missing argument \"name\""),
    (
        "output-absolute.json",
        "(id): argument \"name\" \"@ABS@/pwned\" is an absolute path",
    ),
    (
        "output-dotdot.json",
        "(key): argument \"name\" \"../pwned\" contains '..'",
    ),
    (
        "output-nested-dotdot.yaml",
        "(age): argument \"private\" \"a/../../pwned\" contains '..'",
    ),
    ("output-empty.json", "argument \"name\" \"\" is empty"),
    ("output-dot.json", "argument \"name\" \".\" contains '..'"),
    (
        "output-nul.json",
        "argument \"name\" \"a\\0b\" contains a control character",
    ),
    (
        "copy-import-to-dotdot.json",
        "imports[0] (copy): argument \"to\" \"../pwned\" contains '..'",
    ),
    (
        "copy-import-to-absolute.json",
        "imports[0] (copy): argument \"to\" \"@ABS@/pwned\" is an absolute path",
    ),
    (
        "copy-export-from-dotdot.json",
        "exports[0] (copy): argument \"from\" \"../secret\" contains '..'",
    ),
    (
        "copy-export-from-absolute.json",
        "exports[0] (copy): argument \"from\" \"/etc/passwd\" is an absolute path",
    ),
    (
        "copy-generator-to-dotdot.json",
        "generations[0] (copy): argument \"to\" \"../pwned\" contains '..'",
    ),
    (
        "vault-file-dotdot.json",
        "imports[0] (vault-file): argument \"file\" \"../pwned\" contains '..'",
    ),
    (
        "vault-file-absolute.json",
        "exports[0] (vault-file): argument \"file\" \"@ABS@/pwned\" is an absolute path",
    ),
    (
        "openssl-include.json",
        "config \"ca.cnf\", line 1: unsupported directive \".include\"",
    ),
    (
        "openssl-missing-section.json",
        "config \"ca.cnf\", section [v3_ca] is missing",
    ),
    (
        "openssl-garbage.json",
        "config \"ca.cnf\", line 1: key must be",
    ),
    (
        "openssl-unknown-extension.json",
        "unsupported extension \"nameConstraints\"",
    ),
    (
        "openssl-env-variable.json",
        "line 2: variable \"ENV::HOME\" is not defined",
    ),
    (
        "openssl-bad-basic-constraints.json",
        "CA must be true or false",
    ),
    (
        "openssl-unclosed-section.json",
        "section header has no closing ']'",
    ),
    (
        "openssl-leaf-missing-ext.json",
        "generations[3] (openssl): config \"leaf.cnf\", section [ext] is missing",
    ),
];

#[test]
fn malformed_and_malicious_specs() {
    let dir = support::root().join("tests/hostile/specs");
    let listed: BTreeSet<&str> = SPECS.iter().map(|(f, _)| *f).collect();
    let present: BTreeSet<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        present.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        listed,
        "every fixture has a row and every row a fixture"
    );
    for (file, expect) in SPECS {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("ws");
        fs::create_dir_all(ws.join(".home")).unwrap();
        let abs = tmp.path().join("abs");
        let raw = fs::read(dir.join(file)).unwrap();
        let text = match std::str::from_utf8(&raw) {
            Ok(t) => t.replace("@ABS@", &abs.display().to_string()).into_bytes(),
            Err(_) => raw,
        };
        fs::write(ws.join(file), &text).unwrap();
        let expect = expect.replace("@ABS@", &abs.display().to_string());
        let before = tree(tmp.path());
        let by_file = support::rumor(&ws).arg("run").arg(file).output().unwrap();
        refused(&by_file, 3, &expect, file);
        let said = String::from_utf8_lossy(&by_file.stderr);
        assert!(
            said.contains(file)
                || ["generations[", "imports[", "exports["]
                    .iter()
                    .any(|e| said.contains(e)),
            "{file}: the message names the file or the entry"
        );
        let format = file.rsplit('.').next().unwrap();
        let by_stdin = with_stdin(support::rumor(&ws).args(["stdin", format]), &text);
        refused(&by_stdin, 3, &expect, &format!("{file} on stdin"));
        assert_eq!(tree(tmp.path()), before, "{file}: nothing written");
    }
}

/// A SOPS secret naming a file outside the workspace is a literal value,
/// as in the original: nothing outside is read.
#[test]
fn sops_secret_values_do_not_read_outside() {
    for file in ["../../../../etc/passwd", "/etc/passwd"] {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("ws");
        fs::create_dir_all(&ws).unwrap();
        let spec = serde_json::json!({"generations": [
            {"generator": "age", "arguments": {"private": "a", "public": "a.pub"}},
            {"generator": "sops", "arguments": {"age": "a.pub", "public": "s.pub", "private": "s", "secrets": {"k": file}}}]});
        fs::write(ws.join("spec.json"), spec.to_string()).unwrap();
        ok(support::rumor(&ws).args(["run", "spec.json", "--stay", "--keep"]));
        let plain = fs::read_to_string(ws.join("s")).unwrap();
        assert_eq!(
            plain.trim(),
            format!("k: {file}"),
            "the name is kept as text"
        );
        assert!(!plain.contains("root:"));
        let mut expected: BTreeSet<PathBuf> =
            ["ws", "ws/spec.json", "ws/a", "ws/a.pub", "ws/s", "ws/s.pub"]
                .iter()
                .map(PathBuf::from)
                .collect();
        expected.extend(
            tree(tmp.path())
                .into_iter()
                .filter(|p| p.starts_with("ws/.home")),
        );
        assert_eq!(tree(tmp.path()), expected);
    }
}

/// A small deterministic generator for garbage.
fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[test]
fn garbage_on_stdin() {
    let ten_mb = 10 * 1024 * 1024;
    let mut big_string = b"{\"generations\": \"".to_vec();
    big_string.resize(ten_mb, b'a');
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "random bytes",
            garbage(4096, 0x9e3779b97f4a7c15),
            "is not UTF-8 text",
        ),
        ("NUL bytes", vec![0u8; 4096], ""),
        // Over the 4 MiB stdin limit: refused before it is parsed or decoded.
        (
            "10 MB of random bytes",
            garbage(ten_mb, 42),
            "the spec is larger than 4 MiB",
        ),
        ("10 MB of brackets", vec![b'['; ten_mb], ""),
        ("10 MB of braces", vec![b'{'; ten_mb], ""),
        ("10 MB unterminated string", big_string, ""),
    ];
    for (name, input, expect) in &cases {
        for format in ["json", "yaml", "toml"] {
            let tmp = tempfile::tempdir().unwrap();
            let before = tree(tmp.path());
            let out = with_stdin(support::rumor(tmp.path()).args(["stdin", format]), input);
            refused(
                &out,
                3,
                &format!(
                    "rumor: <stdin>{}",
                    if expect.is_empty() { "" } else { ": " }
                ),
                &format!("{name} as {format}"),
            );
            refused(&out, 3, expect, &format!("{name} as {format}"));
            assert_eq!(tree(tmp.path()), before);
        }
    }
}

#[test]
fn hostile_device_names() {
    let fleet = Fleet::init(vec![]);
    let long = "a".repeat(64);
    let names = [
        "../x",
        "a/b",
        "x\"y",
        "'",
        "pidgeon-ü",
        &long,
        "",
        "/etc/passwd",
        "..",
        "-rf",
        "a\nb",
        "A",
    ];
    let before = tree(fleet.tmp.path());
    for name in names {
        for args in [
            vec!["new", "--", name],
            vec!["get", "--", name, "age.key"],
            vec!["spec", "--", name],
            vec!["renew", "--", name],
            vec!["plan", "--", name],
            vec!["retire", "--", name],
        ] {
            let out = fleet.rumor().args(&args).output().unwrap();
            let case = format!("rumor {args:?}");
            let shown: String = name
                .chars()
                .take(80)
                .flat_map(char::escape_default)
                .collect();
            refused(&out, 3, &format!("\"{shown}\" is not a device name"), &case);
            assert!(out.stdout.is_empty(), "{case}: no output");
        }
    }
    assert_eq!(
        tree(fleet.tmp.path()),
        before,
        "no device file, secret or store entry appeared"
    );
}

/// Values that break SQL, shell, systemd, YAML and TOML when unescaped.
const HOSTILE: &[&str] = &[
    "it's \"quoted\"",
    "'; DROP TABLE users; --",
    "x\\'; CREATE ROLE pwned_literal; --",
    "$(touch /tmp/rumor-pwned) `id` \\$HOME",
    "line one\nline two\nFOO=injected",
    "\"\n[[exports]]\nexporter = \"copy\"\narguments = { from = \"age.key\", to = \"/tmp/rumor-pwned\" }\n",
    "tab\there; semicolon # hash",
    "ünïcödé ✓ 𝄞",
    "trailing backslash \\",
];

/// An SSID has at most 32 bytes (rumor refuses longer ones), so it gets
/// the value's first 32 bytes.
fn ssid(value: &str) -> &str {
    let mut cut = value.len().min(32);
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    &value[..cut]
}

/// A value a device var may hold: the hostile ones, with newlines and
/// leading/trailing blanks intact.
/// A device file; each device has its own overlay address (`host`).
fn device_toml(host: u8, name: &str, value: &str, start: &str, end: &str, db: &str) -> String {
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    format!(
        "name = {}\nip = \"10.8.0.{host}\"\ngroups = [\"pidgeon\"]\n\n[vars]\nwifi_ssid = {}\nop_password = {}\ndb_user = {}\nmeter = {{ start = {}, end = {} }}\n",
        q(name),
        q(ssid(value)),
        q(value),
        q(db),
        q(start),
        q(end)
    )
}

/// Values of a systemd EnvironmentFile as systemd itself reads it: the
/// environment.d generator parses `*.conf` files with the same
/// `parse_env_file` code as EnvironmentFile= and prints the result.
/// (environment.d also expands `${VAR}`/`$VAR` afterwards, which
/// EnvironmentFile does not; the hostile values hold no such reference
/// except `\$HOME`, which the parser turns into `$HOME`... so the variables
/// read this way are compared only where they hold no `$`.)
fn systemd_env(text: &str) -> Option<BTreeMap<String, String>> {
    let generator = Path::new(
        "/usr/lib/systemd/user-environment-generators/30-systemd-environment-d-generator",
    );
    if !generator.is_file() {
        assert!(
            !support::ci(),
            "systemd's environment.d generator is missing"
        );
        return None;
    }
    let home = tempfile::tempdir().unwrap();
    fs::create_dir_all(home.path().join("environment.d")).unwrap();
    fs::write(home.path().join("environment.d/50-rumor.conf"), text).unwrap();
    let out = Command::new(generator)
        .env_clear()
        .env("XDG_CONFIG_HOME", home.path())
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "generator: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut vars = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let (key, value) = line.split_once('=').unwrap();
        vars.insert(key.to_owned(), unquote_generator(value));
    }
    Some(vars)
}

/// Undoes the generator's output quoting (systemd's shell_maybe_quote:
/// `"…"` with `\` before ``"\`$`` and C escapes for control characters).
fn unquote_generator(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_owned();
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(u8::from_str_radix(&hex, 16).unwrap() as char);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// The same file sourced by bash (`set -a; . file`), which reads the
/// double-quoted values by the POSIX rules systemd.exec(5) also follows.
fn bash_env(text: &str, keys: &[&str]) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("env");
    fs::write(&file, text).unwrap();
    let script = format!(
        "set -a; . {}; for k in {}; do printf '%s=%s\\0' \"$k\" \"${{!k}}\"; done",
        file.display(),
        keys.join(" ")
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &script])
        .env_clear()
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(tree(dir.path()).len(), 1, "sourcing ran nothing");
    String::from_utf8(out.stdout)
        .unwrap()
        .split('\0')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// The decrypted device file, as a map.
fn decrypted(fleet: &Fleet, id: &str) -> BTreeMap<String, String> {
    let file = fleet.dir().join(format!("secrets/{id}.yaml"));
    let yaml = ok(fleet
        .rumor()
        .args(["decrypt"])
        .arg(&file)
        .arg("-i")
        .arg(fleet.identity()));
    serde_yaml_ng::from_str(&yaml).unwrap()
}

#[test]
fn hostile_template_values_come_out_escaped() {
    let fleet = Fleet::init(vec![]);
    let devices = fleet.dir().join("devices");
    fs::create_dir_all(&devices).unwrap();
    // The fleet's own spec template takes the database user from a device
    // var too, so hostile text reaches sql_ident as well as sql_literal.
    let template_path = fleet.dir().join("templates/device.spec.toml.j2");
    let template = fs::read_to_string(&template_path).unwrap();
    let patched = template
        .replace(
            "db = { name = \"pidgeon\", user = \"pidgeon\", operator = \"operator\" }",
            "db = { name = \"pidgeon\", user = {{ device.vars.db_user | toml }}, operator = \"operator\" }",
        )
        .replace(
            "[[generations]]\ngenerator = \"key\"\narguments = { name = \"postgres.password.operator\", length = 32, renew = true }",
            "[[generations]]\ngenerator = \"text\"\narguments = { name = \"postgres.password.operator\", text = {{ device.vars.op_password | toml }} }",
        );
    assert_ne!(patched, template);
    fs::write(&template_path, &patched).unwrap();

    let benign_spec = {
        fs::write(
            devices.join("plain.toml"),
            device_toml(
                20,
                "Plain",
                "plain-ssid",
                "192.168.1.1",
                "192.168.1.9",
                "pidgeon",
            ),
        )
        .unwrap();
        fleet.run(&["spec", "plain"])
    };
    let entries = |text: &str| {
        let spec: toml::Table = toml::from_str(text).unwrap();
        ["imports", "generations", "exports"]
            .map(|k| spec.get(k).and_then(|v| v.as_array()).map_or(0, Vec::len))
    };
    let sql_users = ["weird\"user'; DROP ROLE postgres; --", "ünï \\ ` $(id)"];
    for (n, value) in HOSTILE.iter().enumerate() {
        let id = format!("h{n}");
        let db_user = sql_users[n % sql_users.len()];
        fs::write(
            devices.join(format!("{id}.toml")),
            device_toml(
                21 + n as u8,
                value,
                value,
                value,
                &format!("end {value}"),
                db_user,
            ),
        )
        .unwrap();
        // The rendered spec has the same entries as a plain device's.
        let rendered = fleet.run(&["spec", &id]);
        assert_eq!(
            entries(&rendered),
            entries(&benign_spec),
            "{value:?} changed the spec"
        );
    }
    // Provision them all; nothing lands outside the fleet.
    let outside = tree(fleet.tmp.path().parent().unwrap());
    let ids: Vec<String> = (0..HOSTILE.len()).map(|n| format!("h{n}")).collect();
    ok(fleet.rumor().arg("new").args(&ids));
    assert!(!Path::new("/tmp/rumor-pwned").exists());
    let mut now = tree(fleet.tmp.path().parent().unwrap());
    now.retain(|p| !p.starts_with(fleet.tmp.path().file_name().unwrap()));
    let mut was = outside;
    was.retain(|p| !p.starts_with(fleet.tmp.path().file_name().unwrap()));
    assert!(now
        .difference(&was)
        .all(|p| !p.to_string_lossy().contains("pwned")));

    let keys = [
        "WIFI_SSID",
        "PIDGEON_NETWORK_IP_RANGE_START",
        "PIDGEON_NETWORK_IP_RANGE_END",
        "PIDGEON_CLOUD_ID",
        "PIDGEON_DB_USER",
    ];
    let mut sql = Vec::new();
    for (n, value) in HOSTILE.iter().enumerate() {
        let id = format!("h{n}");
        let files = decrypted(&fleet, &id);
        let wifi = &files["wifi.env"];
        let pidgeon = &files["pidgeon.env"];
        let expected: BTreeMap<&str, String> = [
            ("WIFI_SSID", ssid(value).to_owned()),
            ("PIDGEON_NETWORK_IP_RANGE_START", value.to_string()),
            ("PIDGEON_NETWORK_IP_RANGE_END", format!("end {value}")),
            ("PIDGEON_CLOUD_ID", id.clone()),
        ]
        .into_iter()
        .collect();
        let both = format!("{wifi}{pidgeon}");
        // Stores and SOPS keep values trimmed, as the original did.
        let trimmed = |s: &str| s.trim().to_owned();
        let bash = bash_env(&both, &keys);
        for (key, want) in &expected {
            assert_eq!(
                trimmed(&bash[*key]),
                trimmed(want),
                "bash reads {key} of {id} back"
            );
        }
        if let Some(systemd) = systemd_env(&both) {
            for (key, want) in &expected {
                if want.contains('$') {
                    continue; // environment.d expands `$NAME`; EnvironmentFile does not.
                }
                assert_eq!(
                    trimmed(&systemd[*key]),
                    trimmed(want),
                    "systemd reads {key} of {id} back"
                );
            }
            let injected: Vec<&String> = systemd.keys().filter(|k| k.as_str() == "FOO").collect();
            assert!(injected.is_empty(), "a value added a variable");
        }
        sql.push((
            id,
            files["postgres.sql"].clone(),
            sql_users[n % sql_users.len()],
            value.trim().to_owned(),
        ));
    }
    postgres_loads(&sql);
}

/// Loads each rendered postgres.sql into a throwaway PostgreSQL 15 and
/// checks that the hostile role names and passwords arrived as data.
fn postgres_loads(scripts: &[(String, String, &str, String)]) {
    let Some(pg) = Postgres::start(None) else {
        return;
    };
    for (id, script, user, operator_password) in scripts {
        // Fresh names each time: the script creates roles and a database.
        pg.admin("DROP DATABASE IF EXISTS pidgeon");
        for role in [*user, "operator"] {
            pg.admin(&format!(
                "DROP ROLE IF EXISTS \"{}\"",
                role.replace('"', "\"\"")
            ));
        }
        let applied = pg.psql("postgres", "postgres", None, script);
        assert!(
            applied.status.success(),
            "{id}: the rendered postgres.sql applies"
        );
        let owner =
            pg.admin("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'pidgeon'");
        assert_eq!(
            owner.trim_end_matches('\n'),
            *user,
            "{id}: the owner is the hostile name, verbatim"
        );
        let roles =
            pg.admin("SELECT string_agg(rolname, ',') FROM pg_roles WHERE rolname LIKE '%pwned%'");
        assert_eq!(roles.trim(), "", "{id}: no injected role");
        // The operator's password is the hostile text, verbatim.
        let login = pg
            .client(
                &format!(
                    "host=127.0.0.1 port={} user=operator dbname=pidgeon",
                    pg.port
                ),
                operator_password,
            )
            .args(["-tAc", "SELECT current_user"])
            .output()
            .unwrap();
        assert!(
            login.status.success(),
            "{id}: operator logs in with the hostile password: {}",
            String::from_utf8_lossy(&login.stderr)
        );
    }
}

/// Tampering with a device file: decrypt and check fail with exit 5 and
/// print no plaintext.
#[test]
fn tampered_sops_files() {
    let fleet = Fleet::init(vec![]);
    fleet.run(&["new", "t1"]);
    let file = fleet.dir().join("secrets/t1.yaml");
    let original = fs::read_to_string(&file).unwrap();
    let plain = decrypted(&fleet, "t1");
    // Values long and specific enough that a match means a leak.
    let secrets: Vec<String> = plain
        .values()
        .flat_map(|v| v.lines().map(str::to_owned).collect::<Vec<_>>())
        .filter(|l| l.len() >= 20 && !l.starts_with("-----"))
        .collect();
    assert!(secrets.len() > 5);
    let first_value = original
        .lines()
        .find(|l| l.contains("ENC[AES256_GCM,data:") && !l.trim_start().starts_with("mac:"))
        .unwrap();
    let flip = |s: &str| {
        let at = s.find("data:").unwrap() + 5;
        let mut bytes = s.as_bytes().to_vec();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    };
    let mac_line = original
        .lines()
        .find(|l| l.trim_start().starts_with("mac:"))
        .unwrap();
    let modified_line = original
        .lines()
        .find(|l| l.trim_start().starts_with("lastmodified:"))
        .unwrap();
    let (key, _) = first_value.split_once(':').unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "flipped ciphertext byte",
            original.replacen(first_value, &flip(first_value), 1),
            "",
        ),
        ("MAC removed", original.replacen(mac_line, "", 1), "mac"),
        (
            "MAC flipped",
            original.replacen(mac_line, &flip(mac_line), 1),
            "",
        ),
        (
            "lastmodified edited",
            original.replacen(
                modified_line,
                "    lastmodified: \"2001-01-01T00:00:00Z\"",
                1,
            ),
            "",
        ),
        (
            "value type edited",
            original.replacen(first_value, &first_value.replacen(":str]", ":int]", 1), 1),
            "",
        ),
        (
            "ciphertext replaced by an integer",
            original.replacen(first_value, &format!("{key}: 12345"), 1),
            "",
        ),
        (
            "value dropped",
            original.replacen(&format!("{first_value}\n"), "", 1),
            "",
        ),
    ];
    for (name, text, expect) in &cases {
        assert_ne!(text, &original, "{name}: the case changes the file");
        fs::write(&file, text).unwrap();
        let before = tree(fleet.tmp.path());
        for args in [
            vec![
                "decrypt",
                file.to_str().unwrap(),
                "-i",
                fleet.identity().to_str().unwrap(),
            ],
            vec!["check"],
        ] {
            let out = fleet.rumor().args(&args).output().unwrap();
            let case = format!("{name}: rumor {}", args[0]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!stderr.contains("panicked"), "{case}: {stderr}");
            assert_eq!(out.status.code(), Some(5), "{case}: {stderr}");
            assert!(stderr.starts_with("rumor: "), "{case}: {stderr}");
            assert!(
                args[0] != "decrypt" || stderr.to_lowercase().contains(expect),
                "{case}: {stderr}"
            );
            let stdout = String::from_utf8_lossy(&out.stdout);
            for secret in &secrets {
                assert!(
                    !stdout.contains(secret.as_str()) && !stderr.contains(secret.as_str()),
                    "{case}: plaintext leaked"
                );
            }
            if args[0] == "decrypt" {
                assert!(stdout.is_empty(), "{case}: no output");
                assert_eq!(stderr.lines().count(), 1, "{case}: one line");
                assert!(stderr.contains("t1.yaml"), "{case}: names the file");
            }
        }
        assert_eq!(tree(fleet.tmp.path()), before, "{name}: nothing written");
    }
    fs::write(&file, &original).unwrap();
    fleet.run(&["check"]);
}

/// Files that are not SOPS files at all, given to `rumor decrypt`.
#[test]
fn decrypt_garbage() {
    let key = support::root().join("tests/fixtures/sops/key.txt");
    let real =
        fs::read_to_string(support::root().join("tests/fixtures/sops/nested.sops.yaml")).unwrap();
    let cases: Vec<(&str, Vec<u8>, i32, &str)> = vec![
        ("empty", vec![], 5, "the file is empty"),
        ("random bytes", garbage(4096, 7), 3, "is not a text file"),
        (
            "10 MB of brackets",
            vec![b'['; 10 * 1024 * 1024],
            5,
            "nested deeper than 256 levels",
        ),
        (
            "plain YAML",
            b"a: b\n".to_vec(),
            5,
            "no \"sops\" metadata block",
        ),
        (
            "a list",
            b"- a\n- b\n".to_vec(),
            5,
            "document 0 is not a map",
        ),
        (
            "sops block of the wrong type",
            b"a: b\nsops: 3\n".to_vec(),
            5,
            "sops",
        ),
        (
            "no age stanza",
            real.lines()
                .filter(|l| !l.contains("age"))
                .collect::<Vec<_>>()
                .join("\n")
                .into_bytes(),
            5,
            "t.yaml: ",
        ),
    ];
    for (name, bytes, code, expect) in cases {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("t.yaml"), &bytes).unwrap();
        let before = tree(tmp.path());
        let out = support::rumor(tmp.path())
            .args(["decrypt", "t.yaml", "-i"])
            .arg(&key)
            .output()
            .unwrap();
        refused(&out, code, expect, name);
        assert!(out.stdout.is_empty(), "{name}: no output");
        assert_eq!(tree(tmp.path()), before);
    }
}

/// Regression (found by the `template` fuzz target): a DEL character in a
/// device field came out raw from the `toml` filter, which TOML refuses,
/// so the device's spec did not parse.
#[test]
fn del_character_in_a_device_field() {
    let template =
        fs::read_to_string(support::root().join("templates/device.spec.toml.j2")).unwrap();
    let hostile = "Pidgeo\u{7f}rts]]\nexport\0\0c= \"P TABLE x; --";
    let context = serde_json::json!({
        "store": { "mount": "secret", "prefix": "rumor", "base": "secret/rumor", "shared": "secret/rumor/shared" },
        "admins": ["age1x"], "network": { "cidr": "10.8.0.0/16", "prefix": 16, "first": "10.8.0.1", "last": "10.8.255.254" },
        "cloud": { "domain": hostile },
        "device": { "id": "d", "name": hostile, "ip": "10.8.0.2", "cidr": "10.8.0.2/16", "groups": [hostile], "wifi": null,
            "path": "secret/rumor/devices/d", "wifi_path": null, "output": "secrets/d.yaml",
            "vars": { "wifi_ssid": hostile, "meter": { "start": hostile, "end": hostile } } },
    });
    let rendered = rumor::device::render_text(&template, "device.spec.toml.j2", &context).unwrap();
    let spec: toml::Table = toml::from_str(&rendered).unwrap();
    let text = spec["generations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["generator"].as_str() == Some("text"))
        .unwrap();
    assert_eq!(
        text["arguments"]["text"].as_str(),
        Some(hostile),
        "the value arrives verbatim"
    );
    assert_eq!(
        rumor::spec::parse(&rendered, rumor::spec::Format::Toml, "rendered")
            .unwrap()
            .exports
            .len(),
        2
    );
}
