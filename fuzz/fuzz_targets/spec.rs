//! Any bytes, read as a spec in each of the three formats: an error or a
//! spec, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rumor::spec::{parse, Format};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for format in [Format::Json, Format::Yaml, Format::Toml] {
        if let Ok(spec) = parse(text, format, "<fuzz>") {
            // Labels are built from entries for every message; they must not panic either.
            spec.entries().for_each(|entry| drop(entry.label()));
        }
    }
});
