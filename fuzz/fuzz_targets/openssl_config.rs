//! Any text as an OpenSSL config and as a certificate request from it, with
//! each section named in the text tried as the extensions section.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = rumor::x509::parse_config(text) else { return };
    let sections: Vec<String> = config.section_names().map(str::to_owned).chain(["v3_ca".into(), "ext".into()]).collect();
    for section in sections.iter().take(8) {
        let _ = rumor::x509::read_request(text, section);
    }
});
