//! Bounded work and the smaller holes of a fleet repository others can
//! write to: a runaway template, an endless stdin, a run blocked on a
//! server that never answers, an inject mode that exposes the key,
//! control and bidirectional characters in names, a SOPS file from an
//! unknown format version, credentials and newlines in VAULT_ADDR, and a
//! Vault that redirects the request elsewhere.
//!
//! Every refusal is checked the same way as in `hostile.rs`: one `rumor:`
//! line naming what is wrong, the exit code for its class, no panic. The
//! network peers are small test-owned TCP servers on loopback: they play a
//! hung or redirecting Vault, which no real server does on request.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use support::{ok, refused, rumor, with_stdin};

#[track_caller]
fn output(cmd: &mut Command) -> Output {
    support::run(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()))
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn spec_dir(spec: &serde_json::Value) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("s.json"), spec.to_string()).unwrap();
    tmp
}

const RUNAWAY: &str =
    "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}\n";

#[test]
fn a_runaway_template_runs_out_of_fuel() {
    let tmp = spec_dir(&serde_json::json!({
        "generations": [{"generator": "template", "arguments": {"name": "out.txt", "file": "loop.j2"}}]
    }));
    fs::write(tmp.path().join("loop.j2"), RUNAWAY).unwrap();
    let started = Instant::now();
    let out = output(rumor(tmp.path()).args(["run", "s.json", "--stay", "--keep"]));
    refused(
        &out,
        3,
        "template \"loop.j2\", line 1: took more than 10000000 steps",
        "template generator",
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(names(tmp.path()), ["loop.j2", "s.json"]);
}

#[test]
fn a_runaway_device_spec_template_runs_out_of_fuel() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fleet");
    fs::create_dir_all(&dir).unwrap();
    let fleet = |args: &[&str]| {
        let mut cmd = rumor(tmp.path());
        cmd.arg("-C").arg(&dir).args(args);
        cmd
    };
    ok(&mut fleet(&["init"]));
    let template = dir.join("templates/device.spec.toml.j2");
    let shipped = fs::read_to_string(&template).unwrap();
    fs::write(&template, format!("{RUNAWAY}{shipped}")).unwrap();
    let started = Instant::now();
    let out = output(&mut fleet(&["new", "dev1"]));
    // `new` reports progress per device; the failure is one line of it.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let failures: Vec<&str> = stderr.lines().filter(|l| l.contains("fuel")).collect();
    assert_eq!(
        failures,
        ["rumor: dev1: templates/device.spec.toml.j2:1: engine ran out of fuel"],
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    assert!(!dir.join("secrets/dev1.yaml").exists());
}

/// Runs `cmd` with `/dev/zero` as stdin: endless input.
fn from_dev_zero(cmd: &mut Command) -> Output {
    cmd.stdin(fs::File::open("/dev/zero").unwrap());
    output(cmd)
}

#[test]
fn stdin_is_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let out = from_dev_zero(rumor(tmp.path()).args(["stdin", "json"]));
    refused(
        &out,
        3,
        "<stdin>: the spec is larger than 4 MiB",
        "rumor stdin",
    );
    let out = from_dev_zero(rumor(tmp.path()).args([
        "api-key",
        "verify",
        "pbkdf2-sha256$100000$AAAA$AAAA",
    ]));
    refused(
        &out,
        3,
        "<stdin>: the key is larger than 1 MiB",
        "api-key verify",
    );
    // A spec under the limit still runs.
    let out = with_stdin(
        rumor(tmp.path()).args(["stdin", "json"]),
        br#"{"generations": [{"generator": "id", "arguments": {"name": "x"}}]}"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server that accepts connections and never answers, as a hung Vault.
/// Sends on the channel when the first connection arrives.
fn silent_server() -> (u16, mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
            let _ = tx.send(());
        }
    });
    (port, rx)
}

#[test]
fn sigterm_stops_a_run_blocked_on_a_silent_vault() {
    for signal in ["TERM", "INT"] {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(
            tmp.path().join("s.toml"),
            "[[imports]]\nimporter = \"vault\"\narguments.path = \"secret/x\"\n",
        )
        .unwrap();
        let (port, connected) = silent_server();
        let mut child = rumor(tmp.path())
            .env("VAULT_ADDR", format!("http://127.0.0.1:{port}"))
            .env("VAULT_TOKEN", "s.supersecrettoken")
            .env("RUMOR_VAULT_RETRIES", "0")
            .args(["run", "s.toml", "--keep"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // rumor is now inside the request, which would wait 30 s for an answer.
        connected
            .recv_timeout(Duration::from_secs(30))
            .expect("rumor connected");
        std::thread::sleep(Duration::from_millis(200));
        let sent = Instant::now();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let code = child.wait().unwrap().code();
        let elapsed = sent.elapsed();
        // A liveness bound, not a benchmark: the deadline is half a second.
        assert!(
            elapsed < Duration::from_secs(5),
            "SIG{signal}: took {elapsed:?}"
        );
        assert_eq!(code, Some(130), "SIG{signal}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "SIG{signal}: {stderr:?}");
        assert!(
            stderr.starts_with("rumor: interrupted"),
            "SIG{signal}: {stderr}"
        );
        assert!(!stderr.contains("supersecrettoken"));
        assert_eq!(
            names(tmp.path()),
            ["s.toml"],
            "SIG{signal}: nothing left behind"
        );
    }
}

#[test]
fn inject_mode_gives_the_key_to_its_owner_only() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("disk.img"), b"not an image").unwrap();
    for mode in [
        "0440", "0404", "0644", "4400", "2400", "1400", "0777", "0010",
    ] {
        let out = output(rumor(tmp.path()).args(["inject", "dev1", "disk.img", "--mode", mode]));
        refused(
            &out,
            3,
            &format!("inject: mode {mode} gives the group or others access"),
            mode,
        );
    }
    // An owner-only mode passes this check and fails later, on the missing fleet.
    for mode in ["0400", "0600", "400"] {
        let out = output(rumor(tmp.path()).args(["inject", "dev1", "disk.img", "--mode", mode]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("mode"), "{mode}: {stderr}");
    }
    assert_eq!(
        fs::read(tmp.path().join("disk.img")).unwrap(),
        b"not an image"
    );
}

#[test]
fn control_and_bidi_characters_are_refused_in_names() {
    let ca = |extra: serde_json::Value| {
        let mut args = serde_json::json!({"public": "ca.crt", "private": "ca.key", "subject": {"CN": "Fleet CA"}});
        args.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::json!({"generations": [{"generator": "x509-ca", "arguments": args}]})
    };
    let nebula = |name: &str, groups: &[&str]| {
        serde_json::json!({"generations": [
            {"generator": "nebula-ca", "arguments": {"name": "fleet", "public": "n.crt", "private": "n.key"}},
            {"generator": "nebula", "arguments": {"ca_public": "n.crt", "ca_private": "n.key", "name": name, "ip": "10.8.0.5/16", "groups": groups, "public": "h.crt", "private": "h.key"}},
        ]})
    };
    let cases = [
        (
            "subject CN with RLO",
            ca(serde_json::json!({"subject": {"CN": "db\u{202e}gpj.exe"}})),
            "subject field \"CN\" contains a Unicode bidirectional",
        ),
        (
            "subject O with NUL",
            ca(serde_json::json!({"subject": {"CN": "x", "O": "a\u{0}b"}})),
            "subject field \"O\" contains a control character",
        ),
        (
            "SAN with newline",
            ca(serde_json::json!({"sans": ["db.local\nevil.local"]})),
            "subjectAltName DNS:\"db.local\\nevil.local\" contains a control character",
        ),
        (
            "SAN with isolate",
            ca(serde_json::json!({"sans": ["a@b\u{2066}c"]})),
            "contains a Unicode bidirectional",
        ),
        (
            "nebula CA name",
            serde_json::json!({"generations": [{"generator": "nebula-ca", "arguments": {"name": "fleet\u{200f}", "public": "n.crt", "private": "n.key"}}]}),
            "name \"fleet\\u{200f}\" contains a Unicode bidirectional",
        ),
        (
            "nebula host name",
            nebula("h\u{1b}[31m", &[]),
            "name \"h\\u{1b}[31m\" contains a control character",
        ),
        (
            "nebula group",
            nebula("h", &["ops\u{202a}"]),
            "group \"ops\\u{202a}\" contains a Unicode bidirectional",
        ),
        (
            "workspace name",
            serde_json::json!({"generations": [{"generator": "id", "arguments": {"name": "id\u{202e}txt"}}]}),
            "contains a Unicode bidirectional",
        ),
    ];
    for (case, spec, expect) in cases {
        let tmp = spec_dir(&spec);
        let out = output(rumor(tmp.path()).args(["run", "s.json", "--stay", "--keep"]));
        let stderr = refused(&out, 3, expect, case);
        assert!(
            !stderr.contains('\u{202e}') && !stderr.contains('\0'),
            "{case}: raw character echoed: {stderr:?}"
        );
        assert_eq!(names(tmp.path()), ["s.json"], "{case}: nothing written");
    }
}

#[test]
fn a_sops_file_of_an_unknown_major_version_is_refused() {
    let tmp = spec_dir(&serde_json::json!({"generations": [
        {"generator": "age", "arguments": {"private": "age.key", "public": "age.pub"}},
        {"generator": "sops", "arguments": {"age": "age.pub", "private": "d.yaml", "public": "d.sops.yaml", "secrets": {"pw": "hunter2"}}},
    ]}));
    ok(rumor(tmp.path()).args(["run", "s.json", "--stay", "--keep"]));
    let file = tmp.path().join("d.sops.yaml");
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.contains("version: 3.11.0"), "{text}");
    ok(rumor(tmp.path()).args(["decrypt", "d.sops.yaml", "--identity", "age.key"]));
    for version in ["4.0.0", "2.3.1", "\"30.1\""] {
        fs::write(
            &file,
            text.replace("version: 3.11.0", &format!("version: {version}")),
        )
        .unwrap();
        let out =
            output(rumor(tmp.path()).args(["decrypt", "d.sops.yaml", "--identity", "age.key"]));
        let stderr = refused(&out, 3, "sops metadata field \"version\" is \"", version);
        assert!(stderr.contains(version.trim_matches('"')), "{stderr}");
        assert!(
            out.stdout.is_empty() && !stderr.contains("hunter2"),
            "{version}: plaintext printed"
        );
    }
}

#[test]
fn vault_addr_credentials_are_redacted_and_newlines_refused() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join("s.toml"),
        "[[imports]]\nimporter = \"vault\"\narguments.path = \"secret/x\"\n",
    )
    .unwrap();
    let port = support::free_port();
    let out = output(
        rumor(tmp.path())
            .env(
                "VAULT_ADDR",
                format!("http://alice:pa55word@127.0.0.1:{port}"),
            )
            .env("VAULT_TOKEN", "s.supersecrettoken")
            .env("RUMOR_VAULT_RETRIES", "0")
            .args(["run", "s.toml"]),
    );
    let stderr = refused(
        &out,
        4,
        &format!("http://<redacted>@127.0.0.1:{port}"),
        "credentials",
    );
    assert!(
        !stderr.contains("pa55word")
            && !stderr.contains("alice")
            && !stderr.contains("supersecrettoken"),
        "{stderr}"
    );
    for addr in [
        format!("http://127.0.0.1:{port}\nrumor: all secrets verified"),
        format!("http://alice:pa55word@127.0.0.1:{port}\r"),
    ] {
        let out = output(
            rumor(tmp.path())
                .env("VAULT_ADDR", &addr)
                .env("VAULT_TOKEN", "s.supersecrettoken")
                .args(["run", "s.toml"]),
        );
        let stderr = refused(&out, 3, "VAULT_ADDR: \"http://", "control character");
        assert!(
            stderr.contains("control character") && !stderr.contains("pa55word"),
            "{stderr}"
        );
    }
}

/// What a recording server saw: whether any request came, and whether it
/// carried the token.
#[derive(Default)]
struct Seen {
    requests: usize,
    token: bool,
}

/// Reads one HTTP request: the head and a body of Content-Length bytes
/// (an unread body would make the close a reset, which rumor would
/// rightly retry as a network error).
fn read_request(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let complete = |raw: &[u8]| {
        let text = String::from_utf8_lossy(raw).to_ascii_lowercase();
        let Some(end) = text.find("\r\n\r\n") else {
            return false;
        };
        let length = text[..end]
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(0);
        raw.len() >= end + 4 + length
    };
    while !complete(&raw) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&raw).to_string()
}

/// A server that answers every request with `answer` and records it.
fn server(answer: impl Fn(&str) -> String + Send + 'static) -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let request = read_request(&mut stream);
            {
                let mut seen = record.lock().unwrap();
                seen.requests += 1;
                seen.token |= request.to_ascii_lowercase().contains("x-vault-token");
            }
            let _ = stream.write_all(answer(&request).as_bytes());
        }
    });
    (port, seen)
}

/// A Vault that redirects every request to `to` with `status`, keeping the path.
fn redirecting(status: u16, to: String) -> (u16, Arc<Mutex<Seen>>) {
    server(move |request| {
        let path = request.split_whitespace().nth(1).unwrap_or("/");
        format!("HTTP/1.1 {status} Redirect\r\nLocation: {to}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    })
}

const NOT_FOUND: &str = "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{\"errors\":[]}";

#[test]
fn a_redirect_to_another_host_receives_nothing() {
    let specs = [
        ("read", "[[imports]]\nimporter = \"vault\"\narguments.path = \"secret/x\"\n"),
        ("write", "[[generations]]\ngenerator = \"key\"\narguments.name = \"pw\"\n[[exports]]\nexporter = \"vault\"\narguments.path = \"secret/x\"\n"),
    ];
    for (case, spec) in specs {
        for status in [307, 308, 302, 301] {
            let (target, target_seen) = server(|_| NOT_FOUND.to_owned());
            let (vault, vault_seen) = redirecting(status, format!("http://127.0.0.1:{target}"));
            let tmp = tempfile::tempdir().unwrap();
            fs::write(tmp.path().join("s.toml"), spec).unwrap();
            let out = output(
                rumor(tmp.path())
                    .env("VAULT_ADDR", format!("http://127.0.0.1:{vault}"))
                    .env("VAULT_TOKEN", "s.supersecrettoken")
                    .env("RUMOR_VAULT_RETRIES", "3")
                    .args(["run", "s.toml"]),
            );
            let label = format!("{case} {status}");
            let stderr = refused(&out, 4, &format!("the server at http://127.0.0.1:{vault} redirected the request to http://127.0.0.1:{target}"), &label);
            assert!(!stderr.contains("supersecrettoken"), "{label}: {stderr}");
            assert_eq!(
                target_seen.lock().unwrap().requests,
                0,
                "{label}: the other host received a request"
            );
            // Refused once, not retried.
            assert_eq!(vault_seen.lock().unwrap().requests, 1, "{label}");
        }
    }
}

#[test]
fn a_redirect_to_a_listed_node_is_followed() {
    let (node, node_seen) = server(|_| NOT_FOUND.to_owned());
    let (vault, _) = redirecting(307, format!("http://127.0.0.1:{node}"));
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join("s.toml"),
        "[[imports]]\nimporter = \"vault\"\narguments.path = \"secret/x\"\n",
    )
    .unwrap();
    let out = output(
        rumor(tmp.path())
            .env("VAULT_ADDR", format!("http://127.0.0.1:{vault}"))
            .env("VAULT_TOKEN", "s.supersecrettoken")
            .env("RUMOR_VAULT_NODES", format!("http://127.0.0.1:{node}"))
            .args(["run", "s.toml"]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("redirected"), "{stderr}");
    let seen = node_seen.lock().unwrap();
    assert_eq!(seen.requests, 1, "{stderr}");
    // reqwest strips Authorization on a cross-host hop but not
    // X-Vault-Token: a standby's redirect reaches the active node with the
    // token, which is why only listed nodes may be redirected to.
    assert!(seen.token, "{stderr}");
}
