//! Any text, decrypted as a SOPS file with the fixture identity: an error
//! (never a panic), or a MAC-verified plaintext.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn identity() -> &'static [rumor::identity::Identity] {
    static ID: OnceLock<Vec<rumor::identity::Identity>> = OnceLock::new();
    ID.get_or_init(|| rumor::identity::parse(include_str!("../../tests/fixtures/sops/key.txt"), "key.txt").unwrap_or_default())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(decrypted) = rumor::sops::decrypt(text, identity()) {
        drop(decrypted.yaml());
        drop(decrypted.pairs());
    }
    let _ = rumor::sops::recipients_of(text);
});
