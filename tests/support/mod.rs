//! Shared test bench: real tools, a real OpenBao dev server, the built binary.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub mod cluster;
pub mod fleet;
pub mod generate;
pub mod postgres;
pub mod proxy;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether this is a CI run, where a missing tool fails the test.
pub fn ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Whether a slow test should skip: `RUMOR_SKIP_SLOW=1` outside CI lets a
/// developer leave out the tests that take minutes; CI always runs them.
pub fn skip_slow(name: &str) -> bool {
    let asked = std::env::var("RUMOR_SKIP_SLOW").is_ok_and(|v| v == "1" || v == "true");
    if asked && !ci() {
        eprintln!("skipping {name}: RUMOR_SKIP_SLOW is set (CI runs it)");
        return true;
    }
    false
}

/// Finds an external checker: the project venv first, then PATH, then sbin.
pub fn tool(name: &str) -> Option<PathBuf> {
    let venv = root().join(".venv/bin").join(name);
    if venv.is_file() {
        return Some(venv);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/sbin", "/sbin", "/usr/lib/postgresql/15/bin"]
                .iter()
                .map(PathBuf::from),
        )
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A checker the test needs. Outside CI a missing one skips the test (None);
/// in CI it is a failure, never a silent skip.
#[track_caller]
pub fn require(name: &str) -> Option<PathBuf> {
    match tool(name) {
        Some(p) => Some(p),
        None if ci() => panic!("{name} is not installed; the test command must install it"),
        None => {
            eprintln!("skipping: {name} is not installed (run the README's test command)");
            None
        }
    }
}

/// A free loopback port for a server the test starts itself; the port
/// after it is free too (a dev server's cluster listener takes it).
///
/// The port is free when this returns but the server binds it later, so a
/// port the kernel hands out could be taken in between: by another test's
/// `bind(0)` or by any outgoing connection's source port. The ports come
/// from below the kernel's ephemeral range instead, where neither draws,
/// and one test process never hands the same pair out twice.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let low = 10_000;
    let pairs = (ephemeral.saturating_sub(low) / 2).max(1);
    // Apart per process, so two test binaries run at once rarely meet.
    let base = std::process::id().wrapping_mul(7_919) % pairs;
    loop {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(n < pairs, "no free loopback port left below {ephemeral}");
        let port = (low + 2 * ((base + n) % pairs)) as u16;
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 1) {
            return port;
        }
    }
}

/// A real OpenBao dev server on a free loopback port, stopped on drop.
pub struct Bao {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    /// The root token.
    pub token: String,
    /// The port.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Bao {
    /// Starts one, or returns None where bao is missing outside CI.
    #[track_caller]
    pub fn start() -> Option<Bao> {
        Bao::start_with("")
    }

    /// [`Bao::start`] with extra server configuration (HCL), such as a
    /// declarative `audit` stanza (OpenBao enables audit devices only so).
    #[track_caller]
    pub fn start_with(config: &str) -> Option<Bao> {
        let bao = require("bao")?;
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let token = "root-test-token".to_string();
        let mut command = Command::new(bao);
        command.args(["server", "-dev", "-dev-no-store-token"]);
        if !config.is_empty() {
            let file = dir.path().join("extra.hcl");
            std::fs::write(&file, config).unwrap();
            command.arg(format!("-config={}", file.display()));
        }
        let child = command
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .arg(format!("-dev-root-token-id={token}"))
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start bao");
        let bao = Bao {
            child,
            addr: format!("http://127.0.0.1:{port}"),
            token,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some((200, _)) = http(port, "GET", "/v1/sys/health", None, None) {
                return Some(bao);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("bao dev server did not come up on port {port}");
    }

    /// [`Bao::start_with`] a file audit device writing to `log`: every
    /// request and response, one JSON line each.
    #[track_caller]
    pub fn start_audited(log: &Path) -> Option<Bao> {
        Bao::start_with(&format!(
            "audit \"file\" \"to-file\" {{\n  options {{\n    file_path = \"{}\"\n  }}\n}}\n",
            log.display()
        ))
    }

    /// A raw API call as root: (status, body).
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        http(self.port, method, path, body, Some(&self.token)).expect("bao answers")
    }

    /// The data of `<mount>/data/<path>`'s current version, as JSON.
    pub fn kv_get(&self, mount: &str, path: &str) -> Option<serde_json::Value> {
        let (status, body) = self.api("GET", &format!("/v1/{mount}/data/{path}"), None);
        if status != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        Some(v["data"]["data"].clone())
    }

    /// The keys under `<mount>/metadata/<path>`.
    pub fn kv_list(&self, mount: &str, path: &str) -> Vec<String> {
        let (status, body) = self.api("LIST", &format!("/v1/{mount}/metadata/{path}"), None);
        if status != 200 {
            return vec![];
        }
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect()
    }

    /// Environment for a rumor process talking to this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("VAULT_ADDR", self.addr.clone()),
            ("VAULT_TOKEN", self.token.clone()),
        ]
    }

    /// Stops the server now.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A minimal HTTP/1.1 client for the test bench (no client crate needed).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let body = body.unwrap_or("");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if let Some(t) = token {
        req.push_str(&format!("X-Vault-Token: {t}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let status: u16 = text.split_whitespace().nth(1)?.parse().ok()?;
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Some((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The built rumor binary with a clean environment: its own HOME, no
/// Vault or SOPS variables from the caller.
pub fn rumor(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rumor"));
    cmd.current_dir(dir);
    for var in [
        "VAULT_ADDR",
        "VAULT_TOKEN",
        "BAO_ADDR",
        "BAO_TOKEN",
        "SOPS_AGE_KEY_FILE",
        "SOPS_AGE_KEY",
        "RUMOR_IDENTITY",
        "VAULT_NAMESPACE",
        "VAULT_CACERT",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", dir.join(".home"));
    cmd.env("NO_COLOR", "1");
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs a command and returns its output, printing it for failed tests.
#[track_caller]
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    eprintln!(
        "$ {:?}\nexit: {:?}\nstdout:\n{}\nstderr:\n{}",
        cmd,
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command that must succeed; returns stdout.
#[track_caller]
pub fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "command failed: {:?}", cmd);
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail; returns stderr.
#[track_caller]
pub fn fails(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        !out.status.success(),
        "command unexpectedly succeeded: {:?}",
        cmd
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    stderr
}

/// A refusal: the exit code, one `rumor:` line naming `expect`, no panic.
#[track_caller]
pub fn refused(out: &Output, code: i32, expect: &str, case: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "{case}: panic: {stderr}");
    assert_eq!(
        out.status.code(),
        Some(code),
        "{case}: exit code; stderr: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{case}: one line on stderr, got {stderr:?}");
    assert!(lines[0].starts_with("rumor: "), "{case}: {stderr}");
    assert!(
        lines[0].contains(expect),
        "{case}: expected {expect:?} in {stderr:?}"
    );
    stderr
}

/// Runs `cmd` with `input` on stdin.
pub fn with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // rumor may stop reading early; a broken pipe is fine.
    let writer = std::thread::spawn(move || drop(stdin.write_all(&input)));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}
