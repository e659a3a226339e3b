//! Hostile variable values (the fuzz input, split on NUL) rendered through
//! the shipped device templates. The spec template must never gain or lose
//! an entry, whatever a device's name or vars hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;

const SPEC: &str = include_str!("../../templates/device.spec.toml.j2");
const FILES: [(&str, &str); 3] = [
    ("wifi.env.j2", include_str!("../../templates/wifi.env.j2")),
    ("pidgeon.env.j2", include_str!("../../templates/pidgeon.env.j2")),
    ("postgres-init.sql.j2", include_str!("../../templates/postgres-init.sql.j2")),
];

fn context(v: &[&str]) -> serde_json::Value {
    let s = |i: usize| v.get(i).copied().unwrap_or("x");
    json!({
        "store": { "mount": "secret", "prefix": "rumor", "base": "secret/rumor", "shared": "secret/rumor/shared" },
        "admins": [s(0)], "network": { "cidr": "10.8.0.0/16", "prefix": 16, "first": "10.8.0.1", "last": "10.8.255.254" },
        "cloud": { "domain": s(1) },
        "device": { "id": s(2), "name": s(3), "ip": s(4), "cidr": s(5), "groups": [s(6)], "wifi": null, "path": s(7), "wifi_path": null, "output": s(8),
            "vars": { "wifi_ssid": s(9), "meter": { "start": s(10), "end": s(11) } } },
        "ssid": s(0), "pass": s(1), "psk": s(2), "db_password": s(3), "api_key": s(4), "postgres_password": s(5), "pidgeon_password": s(6), "operator_password": s(7),
        "db": { "domain": s(8), "port": 5432, "name": s(9), "user": s(10), "operator": s(11) }, "meter": { "start": s(10), "end": s(11) },
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let values: Vec<&str> = text.split('\0').collect();
    let count = |cx: &serde_json::Value| {
        let rendered = rumor::device::render_text(SPEC, "device.spec.toml.j2", cx).expect("the spec template renders any string");
        let spec = rumor::spec::parse(&rendered, rumor::spec::Format::Toml, "rendered").expect("a rendered spec parses");
        spec.entries().count()
    };
    assert_eq!(count(&context(&values)), count(&context(&[])), "a value changed the spec's entries");
    for (name, template) in FILES {
        let _ = rumor::template::render(template, name, &context(&values));
    }
});
