//! A software stand-in for a hardware key, for rumor's tests: an age
//! plugin (`age-plugin-rumortest`) that speaks the real plugin protocol.
//!
//! Its keys are X25519 keys in plugin clothing: the recipient is
//! `age1rumortest1…` and the identity `AGE-PLUGIN-RUMORTEST-1…`, and its
//! stanzas carry the tag `rumortest`, so only this plugin opens them.
//!
//! ```text
//! age-plugin-rumortest --generate      print a new identity and recipient
//! age-plugin-rumortest --age-plugin=…  run a protocol state machine (age calls this)
//! ```
//!
//! The tests build it with `cargo build --example age-plugin-rumortest`
//! and put `target/debug/examples` on `PATH`.

use std::collections::{HashMap, HashSet};
use std::io;
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use age_core::format::{FileKey, Stanza};
use age_plugin::identity::{self, IdentityPluginV1};
use age_plugin::recipient::{self, RecipientPluginV1};
use age_plugin::{run_state_machine, Callbacks, PluginHandler};
use bech32::ToBase32;

const NAME: &str = "rumortest";
const TAG: &str = "rumortest";

fn x25519_recipient(bytes: &[u8]) -> Option<age::x25519::Recipient> {
    let text = bech32::encode("age", bytes.to_base32(), bech32::Variant::Bech32).ok()?;
    age::x25519::Recipient::from_str(&text).ok()
}

fn x25519_identity(bytes: &[u8]) -> Option<age::x25519::Identity> {
    let text = bech32::encode(
        "age-secret-key-",
        bytes.to_base32(),
        bech32::Variant::Bech32,
    )
    .ok()?
    .to_uppercase();
    age::x25519::Identity::from_str(&text).ok()
}

#[derive(Default)]
struct Wrap {
    recipients: Vec<age::x25519::Recipient>,
}

impl RecipientPluginV1 for Wrap {
    fn add_recipient(
        &mut self,
        index: usize,
        _: &str,
        bytes: &[u8],
    ) -> Result<(), recipient::Error> {
        let r = x25519_recipient(bytes).ok_or(recipient::Error::Recipient {
            index,
            message: "not a rumortest recipient".into(),
        })?;
        self.recipients.push(r);
        Ok(())
    }

    fn add_identity(&mut self, index: usize, _: &str, _: &[u8]) -> Result<(), recipient::Error> {
        Err(recipient::Error::Identity {
            index,
            message: "encrypting to identities is not supported".into(),
        })
    }

    fn labels(&mut self) -> HashSet<String> {
        HashSet::new()
    }

    fn wrap_file_keys(
        &mut self,
        file_keys: Vec<FileKey>,
        _: impl Callbacks<recipient::Error>,
    ) -> io::Result<Result<Vec<Vec<Stanza>>, Vec<recipient::Error>>> {
        let mut out = Vec::new();
        for key in &file_keys {
            let mut stanzas = Vec::new();
            for r in &self.recipients {
                let (wrapped, _) = age::Recipient::wrap_file_key(r, key)
                    .map_err(|e| io::Error::other(e.to_string()))?;
                stanzas.extend(wrapped.into_iter().map(|mut s| {
                    s.tag = TAG.into();
                    s
                }));
            }
            out.push(stanzas);
        }
        Ok(Ok(out))
    }
}

#[derive(Default)]
struct Unwrap {
    identities: Vec<age::x25519::Identity>,
}

impl IdentityPluginV1 for Unwrap {
    fn add_identity(&mut self, index: usize, _: &str, bytes: &[u8]) -> Result<(), identity::Error> {
        let id = x25519_identity(bytes).ok_or(identity::Error::Identity {
            index,
            message: "not a rumortest identity".into(),
        })?;
        self.identities.push(id);
        Ok(())
    }

    fn unwrap_file_keys(
        &mut self,
        files: Vec<Vec<Stanza>>,
        _: impl Callbacks<identity::Error>,
    ) -> io::Result<HashMap<usize, Result<FileKey, Vec<identity::Error>>>> {
        let mut out = HashMap::new();
        for (index, stanzas) in files.into_iter().enumerate() {
            let ours: Vec<Stanza> = stanzas
                .into_iter()
                .filter(|s| s.tag == TAG)
                .map(|mut s| {
                    s.tag = "X25519".into();
                    s
                })
                .collect();
            for id in &self.identities {
                if let Some(Ok(key)) = age::Identity::unwrap_stanzas(id, &ours) {
                    out.insert(index, Ok(key));
                    break;
                }
            }
        }
        Ok(out)
    }
}

struct Handler;

impl PluginHandler for Handler {
    type RecipientV1 = Wrap;
    type IdentityV1 = Unwrap;

    fn recipient_v1(self) -> io::Result<Wrap> {
        Ok(Wrap::default())
    }

    fn identity_v1(self) -> io::Result<Unwrap> {
        Ok(Unwrap::default())
    }
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some(arg) if arg.starts_with("--age-plugin=") => {
            run_state_machine(&arg["--age-plugin=".len()..], Handler)
        }
        Some("--generate") => {
            let id = age::x25519::Identity::generate();
            let secret = id.to_string();
            let (_, data, _) = bech32::decode(secret.expose_secret())
                .map_err(|e| io::Error::other(e.to_string()))?;
            let secret = bech32::FromBase32::from_base32(&data)
                .map_err(|e: bech32::Error| io::Error::other(e.to_string()))?;
            let (_, data, _) = bech32::decode(&id.to_public().to_string())
                .map_err(|e| io::Error::other(e.to_string()))?;
            let public: Vec<u8> = bech32::FromBase32::from_base32(&data)
                .map_err(|e: bech32::Error| io::Error::other(e.to_string()))?;
            let secret: Vec<u8> = secret;
            age_plugin::print_new_identity(NAME, &secret, &public);
            Ok(())
        }
        _ => Err(io::Error::other(
            "usage: age-plugin-rumortest --generate | --age-plugin=<state machine>",
        )),
    }
}
