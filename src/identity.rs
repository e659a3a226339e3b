//! age identities and recipients: where rumor finds the keys that open
//! SOPS files and the local store, and the kinds of key an admin may hold.
//!
//! An admin key is one of:
//! - an age X25519 key (`AGE-SECRET-KEY-1…` / `age1…`);
//! - an OpenSSH key, ed25519 or RSA (`~/.ssh/id_ed25519` / `ssh-ed25519 …`),
//!   as agenix and sops (3.10 and later) accept them;
//! - a plugin key (`AGE-PLUGIN-<NAME>-1…` / `age1<name>1…`), such as a
//!   hardware key, opened by the `age-plugin-<name>` program on `PATH`.
//!
//! Device keys are always X25519: rumor generates them.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::SecretString;
use age_core::format::{FileKey, Stanza};
use zeroize::Zeroizing;

use crate::error::Error;

/// A key that can open age files.
#[derive(Clone)]
pub enum Identity {
    /// An age X25519 identity.
    X25519(age::x25519::Identity),
    /// An OpenSSH private key (already decrypted, if it had a passphrase),
    /// with its public key in the form `admins.recipients` holds.
    Ssh(Box<age::ssh::Identity>, String),
    /// A plugin identity, opened by `age-plugin-<name>`.
    Plugin(age::plugin::Identity),
}

impl Identity {
    /// A new random X25519 identity.
    pub fn generate() -> Identity {
        Identity::X25519(age::x25519::Identity::generate())
    }

    /// The recipient this identity opens files for, as a string, when it
    /// can be known without the key's hardware (plugin identities: `None`).
    pub fn recipient(&self) -> Option<String> {
        match self {
            Identity::X25519(id) => Some(id.to_public().to_string()),
            Identity::Ssh(_, public) => Some(public.clone()),
            Identity::Plugin(_) => None,
        }
    }

    /// The X25519 recipient of a test's generated identity.
    #[cfg(test)]
    pub(crate) fn to_public(&self) -> Recipient {
        match self {
            Identity::X25519(id) => Recipient::X25519(id.to_public()),
            _ => unreachable!("tests generate X25519 identities"),
        }
    }
}

impl From<age::x25519::Identity> for Identity {
    fn from(id: age::x25519::Identity) -> Identity {
        Identity::X25519(id)
    }
}

impl age::Identity for Identity {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, age::DecryptError>> {
        self.unwrap_stanzas(std::slice::from_ref(stanza))
    }

    fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, age::DecryptError>> {
        match self {
            Identity::X25519(id) => id.unwrap_stanzas(stanzas),
            Identity::Ssh(id, _) => id.unwrap_stanzas(stanzas),
            // One plugin session per file, as age itself does.
            Identity::Plugin(id) => match age::plugin::IdentityPluginV1::new(
                id.plugin(),
                std::slice::from_ref(id),
                Terminal,
            ) {
                Ok(plugin) => plugin.unwrap_stanzas(stanzas),
                Err(e) => Some(Err(e)),
            },
        }
    }
}

/// A key files are encrypted to.
#[derive(Clone)]
pub enum Recipient {
    /// An age X25519 recipient (`age1…`).
    X25519(age::x25519::Recipient),
    /// An OpenSSH public key (`ssh-ed25519 …`, `ssh-rsa …`).
    Ssh(age::ssh::Recipient),
    /// A plugin recipient (`age1<name>1…`), wrapped by `age-plugin-<name>`.
    Plugin(age::plugin::Recipient),
}

impl From<age::x25519::Recipient> for Recipient {
    fn from(r: age::x25519::Recipient) -> Recipient {
        Recipient::X25519(r)
    }
}

impl FromStr for Recipient {
    type Err = String;

    /// Parses a recipient; the error says what is wrong, without the input.
    fn from_str(s: &str) -> Result<Recipient, String> {
        let s = s.trim();
        if s.starts_with("ssh-") || s.starts_with("ecdsa-") || s.starts_with("sk-") {
            return match age::ssh::Recipient::from_str(s) {
                Ok(r) => Ok(Recipient::Ssh(r)),
                Err(age::ssh::ParseRecipientKeyError::Unsupported(kind)) => Err(format!(
                    "age does not support {kind} keys; use an ssh-ed25519 or ssh-rsa key"
                )),
                Err(age::ssh::ParseRecipientKeyError::RsaModulusTooSmall) => {
                    Err("an ssh-rsa key shorter than 2048 bits is too weak".to_owned())
                }
                Err(age::ssh::ParseRecipientKeyError::RsaModulusTooLarge) => {
                    Err("an ssh-rsa key longer than 4096 bits is not supported".to_owned())
                }
                Err(_) => Err("not a valid SSH public key".to_owned()),
            };
        }
        if let Ok(r) = age::x25519::Recipient::from_str(s) {
            return Ok(Recipient::X25519(r));
        }
        match age::plugin::Recipient::from_str(s) {
            Ok(r) => Ok(Recipient::Plugin(r)),
            Err(_) => Err(
                "not an age recipient (age1…), plugin recipient (age1<name>1…) or SSH public key (ssh-ed25519 …, ssh-rsa …)"
                    .to_owned(),
            ),
        }
    }
}

impl fmt::Display for Recipient {
    /// The canonical form (an SSH key without its comment), as sops and
    /// rumor.toml hold it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recipient::X25519(r) => r.fmt(f),
            Recipient::Ssh(r) => r.fmt(f),
            Recipient::Plugin(r) => r.fmt(f),
        }
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({self})")
    }
}

impl PartialEq for Recipient {
    fn eq(&self, other: &Recipient) -> bool {
        self.to_string() == other.to_string()
    }
}

impl age::Recipient for Recipient {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> Result<(Vec<Stanza>, HashSet<String>), age::EncryptError> {
        match self {
            Recipient::X25519(r) => r.wrap_file_key(file_key),
            Recipient::Ssh(r) => r.wrap_file_key(file_key),
            Recipient::Plugin(r) => age::plugin::RecipientPluginV1::new(
                r.plugin(),
                std::slice::from_ref(r),
                &[],
                Terminal,
            )?
            .wrap_file_key(file_key),
        }
    }
}

impl Recipient {
    /// For a plugin recipient, whether its plugin program is on `PATH`;
    /// the error is one line naming the program.
    pub fn check_plugin(&self) -> Result<(), String> {
        match self {
            Recipient::Plugin(r) => plugin_on_path(r.plugin()),
            _ => Ok(()),
        }
    }
}

/// Whether `age-plugin-<name>` is on `PATH`.
fn plugin_on_path(name: &str) -> Result<(), String> {
    let binary = format!("age-plugin-{name}");
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(dir.join(&binary))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    });
    if found {
        Ok(())
    } else {
        Err(format!(
            "the plugin program {binary} is not on PATH; install it (or put it on PATH) to use {name} keys"
        ))
    }
}

/// How plugins and SSH keys talk to the operator: messages on stderr,
/// passphrases and PINs asked on the terminal, never without one.
#[derive(Clone, Copy)]
struct Terminal;

impl age::Callbacks for Terminal {
    fn display_message(&self, message: &str) {
        eprintln!("rumor: {message}");
    }

    fn confirm(&self, _: &str, _: &str, _: Option<&str>) -> Option<bool> {
        None
    }

    fn request_public_string(&self, _: &str) -> Option<String> {
        None
    }

    fn request_passphrase(&self, description: &str) -> Option<SecretString> {
        ask_passphrase(description).ok()
    }
}

/// Reads a passphrase from the controlling terminal with echo off. Fails
/// when there is no terminal (CI, cron, a pipe): nothing is read from stdin.
fn ask_passphrase(prompt: &str) -> std::io::Result<SecretString> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    use std::io::{BufRead, Write};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let saved = tcgetattr(&tty)?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    (&tty).write_all(format!("{prompt} ").as_bytes())?;
    tcsetattr(&tty, OptionalActions::Flush, &quiet)?;
    let mut line = Zeroizing::new(String::new());
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    let _ = tcsetattr(&tty, OptionalActions::Flush, &saved);
    let _ = (&tty).write_all(b"\n");
    read?;
    let passphrase = line.trim_end_matches(['\n', '\r']).to_owned();
    Ok(SecretString::from(passphrase))
}

/// The age X25519 identities among the lines of `text` (a generated
/// `age.key`); other lines are skipped.
pub(crate) fn x25519_in(text: &str) -> impl Iterator<Item = Identity> + '_ {
    text.lines()
        .filter_map(|l| l.trim().parse::<age::x25519::Identity>().ok())
        .map(Identity::X25519)
}

/// Parses an identity file. It holds either one OpenSSH private key
/// (`-----BEGIN OPENSSH PRIVATE KEY-----`), or lines of age identities
/// (`AGE-SECRET-KEY-1…`, `AGE-PLUGIN-…`) with `#` comments and blank
/// lines. `origin` names it in messages (never its content).
pub fn parse(text: &str, origin: &str) -> Result<Vec<Identity>, Error> {
    if text.trim_start().starts_with("-----BEGIN") {
        return parse_ssh(text, origin).map(|id| vec![id]);
    }
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with("AGE-PLUGIN-") {
            let id = age::plugin::Identity::from_str(line).map_err(|_| {
                Error::Input(format!(
                    "{origin}:{}: not a valid plugin identity (AGE-PLUGIN-…)",
                    n + 1
                ))
            })?;
            plugin_on_path(id.plugin())
                .map_err(|e| Error::Input(format!("{origin}:{}: {e}", n + 1)))?;
            out.push(Identity::Plugin(id));
            continue;
        }
        let identity = age::x25519::Identity::from_str(line).map_err(|_| {
            Error::Input(format!(
                "{origin}:{}: not an age identity (AGE-SECRET-KEY-1…, AGE-PLUGIN-…) or OpenSSH private key",
                n + 1
            ))
        })?;
        out.push(Identity::X25519(identity));
    }
    if out.is_empty() {
        return Err(Error::Input(format!("{origin}: holds no age identity")));
    }
    Ok(out)
}

/// An OpenSSH private key, decrypted with a passphrase asked on the
/// terminal when it has one.
fn parse_ssh(text: &str, origin: &str) -> Result<Identity, Error> {
    let bad = |what: &str| Error::Input(format!("{origin}: {what}"));
    // The public half, in the form rumor.toml holds it (no comment).
    let key = ssh_key::PrivateKey::from_openssh(text.as_bytes())
        .map_err(|_| bad("not an OpenSSH private key (-----BEGIN OPENSSH PRIVATE KEY-----)"))?;
    let public = key
        .public_key()
        .to_openssh()
        .map_err(|_| bad("its public key cannot be encoded"))?;
    let public = Recipient::from_str(&public)
        .map_err(|e| bad(&e))?
        .to_string();
    let id = age::ssh::Identity::from_buffer(text.as_bytes(), Some(origin.to_owned()))
        .map_err(|_| bad("not an OpenSSH private key age can use"))?;
    let id = match id {
        age::ssh::Identity::Unencrypted(_) => id,
        age::ssh::Identity::Encrypted(encrypted) => {
            let passphrase = ask_passphrase(&format!("Passphrase for {origin}:")).map_err(|_| {
                bad("the key is passphrase-protected and there is no terminal to ask for it on; use an age identity or a key without a passphrase here")
            })?;
            age::ssh::Identity::Unencrypted(
                encrypted
                    .decrypt(passphrase)
                    .map_err(|_| bad("wrong passphrase"))?,
            )
        }
        age::ssh::Identity::Unsupported(_) => {
            return Err(bad(
                "age does not support this SSH key type; use an ssh-ed25519 or ssh-rsa key",
            ))
        }
    };
    Ok(Identity::Ssh(Box::new(id), public))
}

/// Reads an identity file.
pub(crate) fn read(path: &Path) -> Result<Vec<Identity>, Error> {
    let text = crate::fsutil::read_regular(path, 1 << 20).map_err(|e| Error::read(path, e))?;
    let text = Zeroizing::new(
        String::from_utf8(text)
            .map_err(|_| Error::Input(format!("{}: is not a text file", path.display())))?,
    );
    parse(&text, &path.display().to_string())
}

/// The identities for reading SOPS files, as sops looks for them:
/// `--identity`, then `SOPS_AGE_KEY_FILE`, then `SOPS_AGE_KEY`, then
/// `~/.config/sops/age/keys.txt`, then `SOPS_AGE_SSH_PRIVATE_KEY_FILE`,
/// then rumor's admin identity.
pub(crate) fn for_sops(explicit: Option<&Path>) -> Result<Vec<Identity>, Error> {
    if let Some(path) = explicit {
        return read(path);
    }
    if let Some(path) = std::env::var_os("SOPS_AGE_KEY_FILE") {
        return read(Path::new(&path));
    }
    if let Ok(key) = std::env::var("SOPS_AGE_KEY") {
        let key = Zeroizing::new(key);
        return parse(&key, "SOPS_AGE_KEY");
    }
    if let Some(home) = std::env::var_os("HOME") {
        let path = PathBuf::from(home).join(".config/sops/age/keys.txt");
        if path.is_file() {
            return read(&path);
        }
    }
    if let Some(path) = std::env::var_os("SOPS_AGE_SSH_PRIVATE_KEY_FILE") {
        return read(Path::new(&path));
    }
    if let Some(path) = admin_path().filter(|p| p.is_file()) {
        return read(&path);
    }
    Err(Error::Input(
        "no age identity to decrypt with; pass --identity FILE or set SOPS_AGE_KEY_FILE".into(),
    ))
}

/// Identities that are available without asking, for re-encrypting SOPS
/// files without churn: the same places as [`for_sops`], none required.
pub(crate) fn available() -> Vec<Identity> {
    for_sops(None).unwrap_or_default()
}

/// Where the fleet admin identity lives: `$RUMOR_IDENTITY`, else
/// `~/.config/rumor/identity.txt`, else (when that does not exist)
/// `~/.ssh/id_ed25519` if that does.
pub(crate) fn admin_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("RUMOR_IDENTITY") {
        return Some(PathBuf::from(path));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let config = crate::fsutil::user_dir("XDG_CONFIG_HOME", ".config")?;
    let age = config.join("rumor/identity.txt");
    if !age.exists() {
        if let Some(ssh) = home
            .map(|h| h.join(".ssh/id_ed25519"))
            .filter(|p| p.is_file())
        {
            return Some(ssh);
        }
    }
    Some(age)
}
