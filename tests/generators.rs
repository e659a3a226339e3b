//! The device-profile generators (`template`, `pbkdf2`, `mkpasswd`,
//! `wpa-psk`, `wps-pin`) and the template filters, checked against the real
//! readers: PostgreSQL, systemd, sh/bash, PyYAML, Python's hashlib and crypt
//! (libxcrypt), mkpasswd, wpa_passphrase and wpa_supplicant.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rumor::generate::{lookup, Args, GenError, Output};
use rumor::template::{env_value, render, shell, yaml};
use rumor::workspace::{File, Visibility, Workspace};
use serde_json::{json, Value};
use support::postgres::Postgres;

/// Values meant to break out of whatever they are rendered into.
const HOSTILE: &[&str] = &[
    "O'Reilly",
    "'; DROP TABLE x; --",
    "\"; DROP TABLE x; --",
    "back\\slash\\ \\n \\\\ trailing\\",
    "$(rm -rf /) `id` ${HOME} $HOME $$ $",
    "line one\nline two\r\nEVIL=1\n",
    "tab\there ; & | > < * ? [ ] { } ~ #",
    ": - # { } [ ] & * ! | > ' \" % @ `",
    "- item",
    "ünïcödé 日本語 🦀",
    "  padded  ",
    "",
];

fn workspace(files: &[(&str, &str)]) -> Workspace {
    let mut ws = Workspace::new();
    for (name, content) in files {
        ws.insert(
            *name,
            File::new(content.as_bytes().to_vec(), Visibility::Private),
        );
    }
    ws
}

/// Runs generator `kind` with `args` over `ws`.
#[track_caller]
fn generate(kind: &str, args: Value, ws: &Workspace) -> Result<Vec<Output>, GenError> {
    generate_with(kind, args, ws, &mut rand::rngs::OsRng)
}

/// Runs generator `kind` with `args` over `ws`, drawing from `rng`; the
/// arguments are checked first, as the engine checks them.
#[track_caller]
fn generate_with(
    kind: &str,
    args: Value,
    ws: &Workspace,
    rng: &mut dyn rumor::generate::CryptoRngCore,
) -> Result<Vec<Output>, GenError> {
    support::generate::declared(kind, &args)?;
    support::generate::generate_with(kind, &args, ws, rng, time::OffsetDateTime::now_utc(), &[])
}

/// The error message of a generation that must fail.
#[track_caller]
fn fails(kind: &str, args: Value, ws: &Workspace) -> String {
    match generate(kind, args, ws) {
        Ok(_) => panic!("{kind} unexpectedly succeeded"),
        Err(e) => e.to_string(),
    }
}

fn only(outputs: Vec<Output>) -> (String, String, Visibility) {
    assert_eq!(outputs.len(), 1);
    let out = &outputs[0];
    (
        out.name.clone(),
        out.file.text().unwrap().to_owned(),
        out.file.visibility,
    )
}

// ---------------------------------------------------------------- template

#[test]
fn template_resolves_files_and_passes_structures() {
    let ws = workspace(&[("db-password", "s3cr'et\n"), ("port", "1234")]);
    let args = json!({
        "name": "init.sql",
        "template": "{{ pw|sql_literal }} {{ literal|shell }} {{ n }} {% for h in hosts %}{{ h }},{% endfor %} {{ m.k }}\n",
        "variables": {"pw": "db-password", "literal": "not-a-file", "n": 5, "hosts": ["a", "b"], "m": {"k": true}},
    });
    let (name, text, visibility) = only(generate("template", args, &ws).unwrap());
    assert_eq!(name, "init.sql");
    assert_eq!(text, "'s3cr''et' 'not-a-file' 5 a,b, true\n");
    // A file's content is trimmed; a literal is kept as written.
    let args = json!({"name": "o", "template": "[{{ a }}][{{ b }}]", "variables": {"a": "db-password", "b": " x "}});
    assert_eq!(
        only(generate("template", args, &ws).unwrap()).1,
        "[s3cr'et][ x ]"
    );
    assert_eq!(visibility, Visibility::Private);
    assert!(lookup("template").unwrap().derived());
}

#[test]
fn template_errors() {
    let ws = workspace(&[("pw", "hunter2")]);
    let err = fails(
        "template",
        json!({"name": "x", "file": "x.j2", "variables": {}}),
        &ws,
    );
    assert!(err.starts_with("argument \"file\" was not loaded"), "{err}");
    let err = fails("template", json!({"name": "x", "variables": {}}), &ws);
    assert_eq!(err, "missing argument \"template\"");
    let err = fails(
        "template",
        json!({"name": "out", "template": "a\n{{ nope }}", "variables": {"pw": "pw"}}),
        &ws,
    );
    assert!(
        err.contains("template \"out\", line 2") && err.contains("undefined"),
        "{err}"
    );
    let err = fails(
        "template",
        json!({"name": "o", "file": "pg.sql.j2", "template": "{{ pw|sql_ident }}{{ pw + 1 }}", "variables": {"pw": "pw"}}),
        &ws,
    );
    assert!(
        err.contains("\"pg.sql.j2\"") && !err.contains("hunter2"),
        "{err}"
    );
    fails(
        "template",
        json!({"name": "o", "template": "", "variables": []}),
        &ws,
    );
}

// ------------------------------------------------------------- PostgreSQL

fn unhex(text: &str) -> Vec<Vec<u8>> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| hex::decode(l.trim()).unwrap())
        .collect()
}

#[test]
fn sql_filters_hold_against_a_real_postgresql() {
    let Some(pg) = Postgres::start(None) else {
        return;
    };
    let user = "pi\"dgeon'; DROP ROLE postgres; --";
    let db = "meter \"db\"; $(rm -rf /) ü '";
    let pw = "p'a\"s\\s $(rm -rf /)\n'; DROP TABLE x; -- 日本";
    let v = HOSTILE.concat();
    let template = "\
CREATE ROLE {{ user|sql_ident }} LOGIN PASSWORD {{ pw|sql_literal }};
CREATE DATABASE {{ db|sql_ident }} OWNER {{ user|sql_ident }};
SELECT encode(convert_to({{ v|sql_literal }}, 'UTF8'), 'hex');
SET standard_conforming_strings = off;
SELECT encode(convert_to({{ v|sql_literal }}, 'UTF8'), 'hex');
SELECT encode(convert_to({{ pw|sql_literal }}, 'UTF8'), 'hex');
";
    let sql = render(
        template,
        "init.sql",
        &json!({"user": user, "db": db, "pw": pw, "v": v}),
    )
    .unwrap();
    let out = pg.psql("postgres", "postgres", None, &sql);
    assert!(out.status.success(), "the rendered script failed");
    let selected = unhex(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(
        selected,
        vec![
            v.as_bytes().to_vec(),
            v.as_bytes().to_vec(),
            pw.as_bytes().to_vec()
        ]
    );

    let names = |sql: &str| {
        unhex(&String::from_utf8(pg.psql("postgres", "postgres", None, sql).stdout).unwrap())
    };
    assert!(
        names("SELECT encode(convert_to(rolname, 'UTF8'), 'hex') FROM pg_roles;")
            .contains(&user.as_bytes().to_vec())
    );
    assert!(names("SELECT encode(convert_to(rolname, 'UTF8'), 'hex') FROM pg_roles WHERE rolname = 'postgres';").len() == 1);
    let owned = names("SELECT encode(convert_to(datname, 'UTF8'), 'hex') FROM pg_database d JOIN pg_roles r ON d.datdba = r.oid WHERE r.rolname <> 'postgres';");
    assert_eq!(owned, vec![db.as_bytes().to_vec()]);

    // The stored password is the rendered one: log in with it, and not without.
    let login = pg.psql(
        user,
        db,
        Some(pw),
        "SELECT encode(convert_to(current_user || '/' || current_database(), 'UTF8'), 'hex');",
    );
    assert!(login.status.success());
    assert_eq!(
        unhex(&String::from_utf8(login.stdout).unwrap()),
        vec![format!("{user}/{db}").into_bytes()]
    );
    assert!(!pg
        .psql(user, db, Some("wrong"), "SELECT 1;")
        .status
        .success());
}

// ------------------------------------------------------- systemd and shell

/// Decodes the quoting systemd's environment-d-generator prints with
/// (shell_maybe_quote: `"…"` with backslash escapes and C escapes).
fn systemd_unquote(text: &str) -> Vec<u8> {
    let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
        return text.as_bytes().to_vec();
    };
    let bytes = inner.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let c = bytes[i + 1];
        i += 2;
        out.push(match c {
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'a' => 7,
            b'b' => 8,
            b'f' => 12,
            b'v' => 11,
            b'0'..=b'7' => {
                let n = u8::from_str_radix(std::str::from_utf8(&bytes[i - 1..i + 2]).unwrap(), 8)
                    .unwrap();
                i += 2;
                n
            }
            other => other,
        });
    }
    out
}

/// The values systemd's own env-file parser reads from `file`, through the
/// environment.d generator (`$XDG_CONFIG_HOME/environment.d/*.conf`).
///
/// Honest limits: EnvironmentFile= and environment.d share systemd's
/// parser (parse_env_file_internal), but environment.d then expands `$VAR`
/// and EnvironmentFile= does not, so values with `$` are left to the shell
/// check below, whose double-quote rules systemd.exec(5) says it follows.
fn systemd_read(generator: &Path, content: &str, keys: &[String]) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("environment.d")).unwrap();
    std::fs::write(dir.path().join("environment.d/rumor.conf"), content).unwrap();
    let out = support::ok(
        Command::new(generator)
            .env_clear()
            .env("XDG_CONFIG_HOME", dir.path()),
    );
    keys.iter()
        .map(|key| {
            let line = out
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("systemd did not read {key}"));
            systemd_unquote(line)
        })
        .collect()
}

#[test]
fn env_filter_reads_back_in_systemd_and_sh() {
    let generator = Path::new(
        "/usr/lib/systemd/user-environment-generators/30-systemd-environment-d-generator",
    );
    let mut values: Vec<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
    values.push("NEXT=\"x\"\nINJECTED=1".into());
    values.push("ctl \u{7f}\u{1}\u{85}\u{2028}".into());
    let keys: Vec<String> = (0..values.len()).map(|i| format!("RUMOR_V{i}")).collect();
    let template: String = keys
        .iter()
        .map(|k| format!("{k}={{{{ {k}|env }}}}\n"))
        .collect();
    let context: serde_json::Map<String, Value> = keys
        .iter()
        .cloned()
        .zip(values.iter().map(|v| json!(v)))
        .collect();
    let file = render(&template, "pidgeon.env", &Value::Object(context)).unwrap();

    if generator.is_file() {
        // The generator also drops `KEY=""` as "invalid syntax" (its push
        // callback gets no value), where EnvironmentFile= sets an empty
        // variable; the empty value is left to the shells as well.
        let plain: Vec<usize> = (0..values.len())
            .filter(|&i| !values[i].contains('$') && !values[i].is_empty())
            .collect();
        let read = systemd_read(
            generator,
            &file,
            &plain.iter().map(|&i| keys[i].clone()).collect::<Vec<_>>(),
        );
        for (i, got) in plain.iter().zip(read) {
            assert_eq!(
                String::from_utf8_lossy(&got),
                values[*i],
                "systemd read {}",
                keys[*i]
            );
        }
    } else if support::ci() {
        panic!("systemd's environment-d-generator is missing");
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pidgeon.env");
    std::fs::write(&path, &file).unwrap();
    for shell_name in ["sh", "bash"] {
        let Some(sh) = support::require(shell_name) else {
            continue;
        };
        for (key, value) in keys.iter().zip(&values) {
            let out = support::ok(
                Command::new(&sh)
                    .args([
                        "-c",
                        &format!("set -a; . \"$1\"; printf %s \"${key}\""),
                        "_",
                    ])
                    .arg(&path),
            );
            assert_eq!(&out, value, "{shell_name} read {key}");
        }
        // Nothing leaked out of a value into a variable of its own.
        let out = support::ok(
            Command::new(&sh)
                .args([
                    "-c",
                    "set -a; . \"$1\"; printf %s \"${INJECTED-unset}${EVIL-unset}\"",
                    "_",
                ])
                .arg(&path),
        );
        assert_eq!(out, "unsetunset");
    }
}

#[test]
fn shell_filter_reads_back_in_sh() {
    let Some(sh) = support::require("sh") else {
        return;
    };
    for value in HOSTILE {
        let script = format!("printf %s {}", shell(value).unwrap());
        assert_eq!(&support::ok(Command::new(&sh).args(["-c", &script])), value);
    }
}

/// A Python that has `module`: Debian's python3-yaml lives in the system
/// Python, not in the project venv.
fn python_with(module: &str) -> Option<PathBuf> {
    let candidates = [
        Some(PathBuf::from("/usr/bin/python3")),
        support::tool("python3"),
    ];
    let found = candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", &format!("import {module}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        assert!(
            !support::ci(),
            "no python3 with {module}; install python3-{module}"
        );
        eprintln!("skipping: no python3 with {module}");
    }
    found
}

#[test]
fn yaml_filter_reads_back_in_pyyaml() {
    let Some(python) = python_with("yaml") else {
        return;
    };
    let mut values: Vec<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
    values.extend(
        [
            "yes",
            "null",
            "~",
            "0x10",
            "1e3",
            "@at",
            "*alias",
            "&anchor",
            "!tag",
            "%dir",
            "? q",
            "\u{85}\u{2028}\u{2029}\u{7f}\u{feff}",
        ]
        .map(String::from),
    );
    let doc: String = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("k{i}: {}\n", yaml(v).unwrap()))
        .collect();
    let mut child = Command::new(python)
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(doc.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "PyYAML could not read:\n{doc}");
    let parsed: Value = serde_json::from_slice(&out.stdout).unwrap();
    for (i, v) in values.iter().enumerate() {
        assert_eq!(parsed[format!("k{i}")], json!(v), "k{i}");
    }
}

#[test]
fn env_filter_keeps_newlines_inside_the_quotes() {
    assert_eq!(env_value("a\nB=1").unwrap(), "\"a\nB=1\"");
}

// ------------------------------------------------------------------ pbkdf2

#[test]
fn pbkdf2_matches_python_hashlib_and_verifies() {
    let ws = workspace(&[("api-key", "Zr4nd0mAp1K3y\n")]);
    let args = json!({"key": "api-key", "name": "api-key.hash", "iterations": 1000});
    let (name, hash, visibility) = only(generate("pbkdf2", args.clone(), &ws).unwrap());
    assert_eq!(
        (name.as_str(), visibility),
        ("api-key.hash", Visibility::Private)
    );
    assert_eq!(
        lookup("pbkdf2")
            .unwrap()
            .inputs(&Args::new(args.as_object().unwrap())),
        vec!["api-key".to_owned()]
    );
    assert!(!lookup("pbkdf2").unwrap().derived());
    let fields: Vec<&str> = hash.split('$').collect();
    assert_eq!(fields[..2], ["pbkdf2-sha256", "1000"]);
    assert_eq!((fields[2].len(), fields[3].len()), (24, 44));

    if let Some(python) = support::require("python3") {
        let script = "import sys, base64, hashlib; s = base64.b64decode(sys.argv[2], validate=True); \
                      print(base64.b64encode(hashlib.pbkdf2_hmac('sha256', sys.argv[1].encode(), s, int(sys.argv[3]), 32)).decode())";
        let out = support::ok(Command::new(python).args([
            "-c",
            script,
            "Zr4nd0mAp1K3y",
            fields[2],
            fields[1],
        ]));
        assert_eq!(out.trim(), fields[3]);
    }

    use rumor::generate::pbkdf2::{verify, Pbkdf2Error};
    assert_eq!(verify(&hash, b"Zr4nd0mAp1K3y"), Ok(true));
    assert_eq!(verify(&hash, b"Zr4nd0mAp1K3z"), Ok(false));
    assert_eq!(verify(&hash, b"Zr4nd0mAp1K3y\n"), Ok(false));
    assert_eq!(
        verify("bcrypt$1$AAAAAAAAAAA=$AAAA", b"x"),
        Err(Pbkdf2Error::Scheme)
    );
    assert_eq!(verify("Zr4nd0mAp1K3y", b"x"), Err(Pbkdf2Error::Shape));

    // A fresh salt each time.
    let (_, again, _) = only(generate("pbkdf2", args, &ws).unwrap());
    assert_ne!(hash, again);
    assert_eq!(verify(&again, b"Zr4nd0mAp1K3y"), Ok(true));
}

#[test]
fn pbkdf2_argument_errors() {
    let ws = workspace(&[("empty", " \n")]);
    let err = fails("pbkdf2", json!({"key": "nope", "name": "h"}), &ws);
    assert!(
        err.contains("\"nope\", which is not in the workspace"),
        "{err}"
    );
    assert!(fails("pbkdf2", json!({"key": "empty", "name": "h"}), &ws).contains("is empty"));
    let err = fails(
        "pbkdf2",
        json!({"key": "empty", "name": "h", "iterations": 0}),
        &ws,
    );
    assert!(err.contains("\"iterations\""), "{err}");
}

// ---------------------------------------------------------------- mkpasswd

#[test]
fn mkpasswd_is_libxcrypt_yescrypt_as_mkpasswd_makes_it() {
    use rand::SeedableRng;
    let ws = Workspace::new();
    let args = json!({"private": "pw", "public": "pw.hash", "length": 16});
    let texts = |outputs: Vec<Output>| {
        outputs
            .iter()
            .map(|o| o.file.text().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let pinned = || rand::rngs::StdRng::seed_from_u64(16);
    // The RNG passed in is the only source: the salt comes from it, not
    // from libxcrypt's own getrandom.
    let first = texts(generate_with("mkpasswd", args.clone(), &ws, &mut pinned()).unwrap());
    assert_eq!(
        first,
        texts(generate_with("mkpasswd", args.clone(), &ws, &mut pinned()).unwrap())
    );
    let (password, hash) = (&first[0], &first[1]);
    assert_eq!(password.len(), 16);

    // Same method, cost and field sizes as the real mkpasswd.
    let shape = |h: &str| h.split('$').map(str::len).collect::<Vec<_>>();
    let params = |h: &str| h.split('$').take(3).collect::<Vec<_>>().join("$");
    if let Some(mkpasswd) = support::require("mkpasswd") {
        let theirs = support::ok(Command::new(mkpasswd).args(["-m", "yescrypt", "some-password"]));
        let theirs = theirs.trim();
        assert_eq!(
            (params(hash), shape(hash)),
            (params(theirs), shape(theirs)),
            "{hash} vs {theirs}"
        );
    }
    assert!(hash.starts_with("$y$j9T$"), "{hash}");

    // libxcrypt, through Python's crypt, verifies it.
    if let Some(python) = support::require("python3") {
        let verify = |pw: &str| {
            let script =
                "import crypt, sys; print(crypt.crypt(sys.argv[1], sys.argv[2]) == sys.argv[2])";
            support::ok(Command::new(&python).args(["-W", "ignore", "-c", script, pw, hash])).trim()
                == "True"
        };
        assert!(verify(password));
        assert!(!verify("wrong-password"));
    }

    // Past libxcrypt's limit the device could not check the password: an
    // argument error, not a failed hash.
    let long = texts(
        generate(
            "mkpasswd",
            json!({"private": "p", "public": "h", "length": 511}),
            &ws,
        )
        .unwrap(),
    );
    assert_eq!(long[0].len(), 511);
    let err = fails(
        "mkpasswd",
        json!({"private": "p", "public": "h", "length": 512}),
        &ws,
    );
    assert!(err.contains("\"length\"") && err.contains("511"), "{err}");
}

// ---------------------------------------------------------------- wpa-psk

#[test]
fn wpa_psk_matches_wpa_passphrase() {
    let Some(tool) = support::require("wpa_passphrase") else {
        return;
    };
    let cases = [
        ("HomeNet", "correct horse battery staple"),
        ("Meter Room 2.4 GHz", "p@ss \"w0rd\" $(x) 'q'"),
        ("Kuća 日本 🦀", "12345678"),
        ("x", &"~".repeat(63)),
        (&"S".repeat(32), "  spaces at both ends  "),
    ];
    for (ssid, passphrase) in cases {
        let ws = workspace(&[("wifi-pass", &format!("{passphrase}\n"))]);
        let args = json!({"ssid": ssid, "passphrase": "wifi-pass", "name": "psk"});
        let (_, psk, visibility) = only(generate("wpa-psk", args, &ws).unwrap());
        assert_eq!(visibility, Visibility::Private);
        let out = support::ok(Command::new(&tool).arg(ssid).arg(passphrase));
        let expected = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("psk="))
            .unwrap();
        assert_eq!(psk, expected, "ssid {ssid:?}");
        assert_eq!(psk.len(), 64);
    }
}

#[test]
fn wpa_psk_reads_the_ssid_from_a_file_and_checks_inputs() {
    let ws = workspace(&[
        ("ssid", "FromFile\n"),
        ("pass", "password1"),
        ("short", "hunter7"),
        ("long-ssid", &"s".repeat(33)),
    ]);
    let from_file = only(
        generate(
            "wpa-psk",
            json!({"ssid": "ssid", "passphrase": "pass", "name": "p"}),
            &ws,
        )
        .unwrap(),
    )
    .1;
    let literal = only(
        generate(
            "wpa-psk",
            json!({"ssid": "FromFile", "passphrase": "pass", "name": "p"}),
            &ws,
        )
        .unwrap(),
    )
    .1;
    assert_eq!(from_file, literal);
    // Kept in the store, remade when the passphrase or the SSID changes.
    let generator = lookup("wpa-psk").unwrap();
    assert!(!generator.derived());
    let args = json!({"ssid": "ssid", "passphrase": "pass", "name": "p"});
    assert_eq!(
        generator.inputs(&rumor::generate::Args::new(args.as_object().unwrap())),
        ["pass", "ssid"]
    );

    let err = fails(
        "wpa-psk",
        json!({"ssid": "x", "passphrase": "short", "name": "p"}),
        &ws,
    );
    assert!(
        err.contains("\"short\"") && err.contains("8 to 63") && !err.contains("hunter7"),
        "{err}"
    );
    let err = fails(
        "wpa-psk",
        json!({"ssid": "long-ssid", "passphrase": "pass", "name": "p"}),
        &ws,
    );
    assert!(err.contains("\"ssid\"") && err.contains("1 to 32"), "{err}");
    let err = fails(
        "wpa-psk",
        json!({"ssid": "x", "passphrase": "missing", "name": "p"}),
        &ws,
    );
    assert!(
        err.contains("\"missing\", which is not in the workspace"),
        "{err}"
    );
}

// ---------------------------------------------------------------- wps-pin

/// A wpa_supplicant on `lo` with the `none` driver, whose control socket
/// answers `wps_check_pin`; stopped on drop.
struct Supplicant {
    dir: tempfile::TempDir,
    cli: PathBuf,
}

impl Supplicant {
    fn start() -> Option<Supplicant> {
        let daemon = support::require("wpa_supplicant")?;
        let cli = support::require("wpa_cli")?;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("conf"),
            format!("ctrl_interface={}\n", dir.path().join("ctl").display()),
        )
        .unwrap();
        let out = support::run(
            Command::new(daemon)
                .args(["-D", "none", "-i", "lo", "-B", "-c"])
                .arg(dir.path().join("conf"))
                .arg("-P")
                .arg(dir.path().join("pid")),
        );
        if !out.status.success() {
            assert!(!support::ci(), "wpa_supplicant did not start");
            eprintln!("skipping: wpa_supplicant cannot run here");
            return None;
        }
        Some(Supplicant { dir, cli })
    }

    fn check(&self, pin: &str) -> String {
        support::ok(
            Command::new(&self.cli)
                .arg("-p")
                .arg(self.dir.path().join("ctl"))
                .args(["-i", "lo", "wps_check_pin", pin]),
        )
        .trim()
        .to_owned()
    }
}

impl Drop for Supplicant {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

#[test]
fn wps_pins_are_valid() {
    use rumor::generate::wifi::wps_checksum_valid;
    assert!(wps_checksum_valid("12345670"));
    assert!(!wps_checksum_valid("12345671"));
    let ws = Workspace::new();
    let mut pins = std::collections::BTreeSet::new();
    for _ in 0..1000 {
        let (_, pin, visibility) = only(generate("wps-pin", json!({"name": "wps"}), &ws).unwrap());
        assert_eq!(visibility, Visibility::Private);
        assert!(
            pin.len() == 8 && pin.bytes().all(|b| b.is_ascii_digit()),
            "{pin}"
        );
        assert!(wps_checksum_valid(&pin), "{pin}");
        pins.insert(pin);
    }
    // Seven random digits: a thousand draws almost never collide much.
    assert!(pins.len() > 990, "only {} distinct pins", pins.len());

    let Some(supplicant) = Supplicant::start() else {
        return;
    };
    for pin in pins.iter().take(100) {
        assert_eq!(supplicant.check(pin), *pin, "wpa_supplicant rejects {pin}");
        // Any other last digit fails the checksum, in both.
        let wrong = format!("{}{}", &pin[..7], (pin.as_bytes()[7] - b'0' + 1) % 10);
        assert_eq!(supplicant.check(&wrong), "FAIL-CHECKSUM", "{wrong}");
        assert!(!wps_checksum_valid(&wrong));
    }
}
