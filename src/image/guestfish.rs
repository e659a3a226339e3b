//! One guestfish process, driven over stdin/stdout with echoed markers.
//!
//! Launching the libguestfs appliance is the slow part (10–30 s under TCG),
//! so an image gets exactly one: commands go to the process's stdin in
//! batches, each batch followed by `echo <marker>`; its output is whatever
//! stdout carries up to the marker line. That lets rumor read
//! `list-filesystems`, decide, and continue in the same appliance.
//!
//! guestfish reading a non-terminal stdin exits at the first failing
//! command, so a failure shows up as end-of-file before the marker; the
//! last stderr line then says why. A non-terminal stdin also means no
//! readline and no history file, so what is written here (the key, in
//! [`write_file`](Session::write_file)) is never saved to disk by guestfish.
//!
//! `LIBGUESTFS_BACKEND` and `LIBGUESTFS_BACKEND_SETTINGS` pass through from
//! the environment: machines without KVM need `direct` and `force_tcg`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread::JoinHandle;

use rand::RngCore;
use zeroize::Zeroizing;

use super::error::ImageError;

/// The guestfish binary on PATH, if any.
pub(crate) fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("guestfish"))
        .find(|p| p.is_file())
}

/// A running guestfish with one read-write raw disk attached.
pub(crate) struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Pipe,
    stderr: Option<JoinHandle<String>>,
    image: PathBuf,
    nonce: String,
    batch: u32,
    /// Text that must never be quoted from stderr (the key).
    redact: Vec<Zeroizing<String>>,
}

impl Session {
    /// Starts guestfish on `image` and launches the appliance (`run`).
    pub(crate) fn launch(binary: &Path, image: &Path) -> Result<Session, ImageError> {
        Session::start(binary, image, "--rw")
    }

    /// [`Session::launch`] with the disk attached read-only: nothing the
    /// session does can change the image.
    pub(crate) fn launch_read_only(binary: &Path, image: &Path) -> Result<Session, ImageError> {
        Session::start(binary, image, "--ro")
    }

    fn start(binary: &Path, image: &Path, access: &str) -> Result<Session, ImageError> {
        // The format is given so qemu never probes a raw image's content.
        let mut child = Command::new(binary)
            .args([access, "--no-progress-bars", "--format=raw", "-a"])
            .arg(image)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => ImageError::GuestfishMissing,
                _ => ImageError::Guestfish {
                    image: image.to_path_buf(),
                    detail: format!("cannot start guestfish: {e}"),
                },
            })?;
        let broken = || ImageError::Guestfish {
            image: image.to_path_buf(),
            detail: "guestfish has no standard streams".into(),
        };
        let stdin = child.stdin.take().ok_or_else(broken)?;
        let stdout = Pipe::new(child.stdout.take().ok_or_else(broken)?);
        let mut stderr_pipe = child.stderr.take().ok_or_else(broken)?;
        // Drained on a thread so a chatty stderr can never block guestfish
        // while we wait on stdout.
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr_pipe.read_to_string(&mut text);
            text
        });
        let mut nonce = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut session = Session {
            child,
            stdin: Some(stdin),
            stdout,
            stderr: Some(stderr),
            image: image.to_path_buf(),
            nonce: hex::encode(nonce),
            batch: 0,
            redact: Vec::new(),
        };
        session.exchange("run\n")?;
        Ok(session)
    }

    /// Never quote `text` from guestfish's stderr.
    pub(crate) fn redact(&mut self, text: Zeroizing<String>) {
        self.redact.push(text);
    }

    /// Sends `script` (newline-terminated commands) and returns their
    /// stdout, up to this batch's marker.
    pub(crate) fn exchange(&mut self, script: &str) -> Result<String, ImageError> {
        self.batch += 1;
        let marker = format!("@@rumor-{}-{}@@", self.nonce, self.batch);
        self.send(script.as_bytes())?;
        self.send(format!("echo {marker}\n").as_bytes())?;
        self.until_marker(&marker, String::new())
    }

    /// Collects stdout lines into `output` up to the line `marker`.
    fn until_marker(&mut self, marker: &str, mut output: String) -> Result<String, ImageError> {
        loop {
            let mut line = String::new();
            let read = self.stdout.read_line(&mut line);
            match read {
                Ok(0) | Err(_) => return Err(self.failure()),
                Ok(_) if line.trim_end() == marker => return Ok(output),
                Ok(_) => output.push_str(&line),
            }
        }
    }

    /// Reads the guest file `path`, which is `size` bytes long (from
    /// `lstatns`), through `download … -`: the bytes come over the stdout
    /// pipe straight into a buffer that is wiped when dropped, never into a
    /// file. Anything but exactly `size` bytes followed by the batch marker
    /// is an error.
    pub(crate) fn read_file(
        &mut self,
        path: &str,
        size: usize,
    ) -> Result<Zeroizing<Vec<u8>>, ImageError> {
        self.batch += 1;
        let marker = format!("@@rumor-{}-{}@@", self.nonce, self.batch);
        self.send(format!("download {} -\necho {marker}\n", quote(path)).as_bytes())?;
        let mut content = Zeroizing::new(vec![0u8; size]);
        if self.stdout.read_exact(&mut content).is_err() {
            return Err(self.failure());
        }
        let rest = self.until_marker(&marker, String::new())?;
        if !rest.is_empty() {
            return Err(self.error(format!("{path} changed size while it was read; run again")));
        }
        Ok(content)
    }

    /// Writes `content` to `path` in the guest through `write`, every byte
    /// as a `\xHH` escape: the bytes go through the stdin pipe only, never
    /// a command line or a file, and no byte can break guestfish's quoting.
    pub(crate) fn write_file(&mut self, path: &str, content: &[u8]) -> Result<(), ImageError> {
        let mut command = Zeroizing::new(String::with_capacity(
            content.len() * 4 + path.len() * 4 + 16,
        ));
        command.push_str("write ");
        command.push_str(&quote(path));
        command.push_str(" \"");
        // Pushed char by char into the pre-sized buffer: no temporary
        // string and no reallocation leaves a copy of the key behind.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for byte in content {
            command.push('\\');
            command.push('x');
            command.push(char::from(HEX[usize::from(byte >> 4)]));
            command.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        command.push_str("\"\n");
        self.send(command.as_bytes())?;
        self.exchange("").map(drop)
    }

    /// Ends the session: unmounts, syncs, exits, and checks the exit status.
    pub(crate) fn finish(mut self) -> Result<(), ImageError> {
        self.exchange("umount-all\nsync\n")?;
        self.send(b"exit\n")?;
        // Closing stdin lets guestfish finish even if `exit` was not read.
        self.stdin = None;
        let status = self
            .child
            .wait()
            .map_err(|e| self.error(format!("waiting for guestfish: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(self.failure())
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), ImageError> {
        let written = match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(bytes).and_then(|()| stdin.flush()),
            None => return Err(self.error("guestfish input is closed".into())),
        };
        written.map_err(|_| self.failure())
    }

    /// The error for a guestfish that stopped answering: its exit and the
    /// last line of its stderr.
    fn failure(&mut self) -> ImageError {
        self.stdin = None;
        let _ = self.child.kill();
        let status = self.child.wait().ok();
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let mut detail = stderr
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .to_string();
        for secret in &self.redact {
            if !secret.is_empty() {
                detail = detail.replace(secret.as_str(), "<redacted>");
            }
        }
        if detail.is_empty() {
            detail = match status.and_then(|s| s.code()) {
                Some(code) => format!("exited with status {code} and no message"),
                None => "stopped without a message".to_string(),
            };
        }
        self.error(detail)
    }

    fn error(&self, detail: String) -> ImageError {
        ImageError::Guestfish {
            image: self.image.clone(),
            detail,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // A session abandoned on an error path must not leave qemu running.
        if self.stdin.take().is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// guestfish's stdout, read through a fixed buffer that is wiped as it is
/// consumed and when dropped: [`Session::read_file`] carries a key through
/// it, and a `BufReader` would keep a copy in memory it never clears.
struct Pipe {
    inner: ChildStdout,
    buf: Zeroizing<Vec<u8>>,
    start: usize,
    end: usize,
}

impl Pipe {
    fn new(inner: ChildStdout) -> Pipe {
        Pipe {
            inner,
            buf: Zeroizing::new(vec![0; 8192]),
            start: 0,
            end: 0,
        }
    }

    /// Makes sure some unread bytes are buffered; false at end of file.
    fn fill(&mut self) -> std::io::Result<bool> {
        if self.start < self.end {
            return Ok(true);
        }
        let n = loop {
            match self.inner.read(&mut self.buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        self.start = 0;
        self.end = n;
        Ok(n > 0)
    }

    /// Hands out up to `n` buffered bytes through `take`, then wipes them.
    fn consume(&mut self, n: usize, take: impl FnOnce(&[u8])) {
        let range = self.start..self.start + n;
        take(&self.buf[range.clone()]);
        self.buf[range].fill(0);
        self.start += n;
    }

    /// Appends one line (with its newline, if any) to `line`; the number
    /// of bytes read, 0 at end of file.
    fn read_line(&mut self, line: &mut String) -> std::io::Result<usize> {
        let mut bytes = Vec::new();
        while self.fill()? {
            let chunk = &self.buf[self.start..self.end];
            let (n, done) = match chunk.iter().position(|b| *b == b'\n') {
                Some(at) => (at + 1, true),
                None => (chunk.len(), false),
            };
            self.consume(n, |b| bytes.extend_from_slice(b));
            if done {
                break;
            }
        }
        line.push_str(&String::from_utf8_lossy(&bytes));
        Ok(bytes.len())
    }

    /// Fills `out` completely, or fails at end of file.
    fn read_exact(&mut self, out: &mut [u8]) -> std::io::Result<()> {
        let mut at = 0;
        while at < out.len() {
            if !self.fill()? {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let n = (self.end - self.start).min(out.len() - at);
            self.consume(n, |b| out[at..at + n].copy_from_slice(b));
            at += n;
        }
        Ok(())
    }
}

/// A guestfish double-quoted argument. Callers pass validated paths; the
/// escaping is belt and braces.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii_graphic() || c == ' ' => out.push(c),
            c => {
                let mut buf = [0u8; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\x{byte:02x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

/// The value of `field` (e.g. `st_mode`) in `lstatns` output.
pub(crate) fn stat_field(output: &str, field: &str) -> Option<u64> {
    output.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name.trim() == field)
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_for_guestfish() {
        assert_eq!(quote("/root/host.scrt.key"), "\"/root/host.scrt.key\"");
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\x0a\"");
    }

    #[test]
    fn reads_lstatns_fields() {
        let out = "st_dev: 2050\nst_mode: 33024\nst_uid: 0\nst_gid: 0\n";
        assert_eq!(stat_field(out, "st_mode"), Some(0o100400));
        assert_eq!(stat_field(out, "st_uid"), Some(0));
        assert_eq!(stat_field(out, "st_size"), None);
    }
}
