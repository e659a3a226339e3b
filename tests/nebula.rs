//! Nebula certificates against the real `nebula-cert` (1.6): golden bytes,
//! byte-for-byte signatures, and each tool accepting the other's files.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use rand::rngs::OsRng;
use rumor::generate::GenError;
use rumor::nebula::{self, CaKey, CaSpec, Certificate, HostKey, HostSpec, NebulaError};
use rumor::workspace::{Visibility, Workspace};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(support::root().join("tests/fixtures/nebula").join(name)).unwrap()
}

fn body(pem_text: &str) -> Vec<u8> {
    nebula::pem::decode(nebula::pem::CERTIFICATE, pem_text)
        .unwrap()
        .to_vec()
}

/// A time at which the fixtures are valid: just after they were made.
fn fixture_now() -> OffsetDateTime {
    let ca = Certificate::from_pem(&fixture("ca.crt")).unwrap();
    OffsetDateTime::from_unix_timestamp(ca.details.not_before + 60).unwrap()
}

#[track_caller]
fn nebula_cert(tool: &Path, dir: &Path, args: &[&str]) -> String {
    support::ok(Command::new(tool).current_dir(dir).args(args))
}

fn print_json(tool: &Path, dir: &Path, file: &str) -> Value {
    serde_json::from_str(&nebula_cert(tool, dir, &["print", "-json", "-path", file])).unwrap()
}

/// The X25519 public key of a raw private key, computed by openssl: an
/// oracle independent of both rumor and nebula-cert.
fn openssl_x25519_public(dir: &Path, private: &[u8]) -> Option<Vec<u8>> {
    let openssl = support::require("openssl")?;
    let mut der = hex::decode("302e020100300506032b656e04220420").unwrap();
    der.extend_from_slice(private);
    let path = dir.join("x25519.der");
    std::fs::write(&path, der).unwrap();
    let out = support::run(
        Command::new(openssl)
            .args([
                "pkey", "-inform", "DER", "-pubout", "-outform", "DER", "-in",
            ])
            .arg(&path),
    );
    assert!(out.status.success());
    Some(out.stdout[out.stdout.len() - 32..].to_vec())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn host_spec(ip: &str, groups: &[&str]) -> HostSpec {
    HostSpec {
        name: "h".into(),
        ip: ip.parse().unwrap(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        subnets: vec![],
    }
}

#[test]
fn golden_bytes_of_the_worked_example() {
    let ca = Certificate::from_pem(&fixture("ca.crt")).unwrap();
    let raw = body(&fixture("ca.crt"));
    assert_eq!(raw.len(), 152);
    assert_eq!(raw[..2], [0x0a, 0x54]);
    assert_eq!(raw[86..88], [0x12, 0x40]);
    let details = ca.details.to_bytes();
    assert_eq!(details, raw[2..86]);
    #[rustfmt::skip]
    let head = [
        0x0a, 0x01, 0x63,
        0x12, 0x09, 0x80, 0x80, 0x84, 0x50, 0x80, 0x80, 0xfc, 0xff, 0x0f,
        0x1a, 0x0a, 0x80, 0x80, 0xa0, 0x85, 0x0c, 0x80, 0x80, 0xfc, 0xff, 0x0f,
        0x22, 0x03, 0x6f, 0x70, 0x73,
        0x22, 0x03, 0x77, 0x65, 0x62,
        0x28,
    ];
    assert_eq!(details[..head.len()], head);
    assert_eq!(
        details[details.len() - 36..details.len() - 34],
        [0x3a, 0x20]
    );
    assert_eq!(details[details.len() - 2..], [0x40, 0x01]);

    // The same details, built from fields, give nebula-cert's bytes.
    let d = &ca.details;
    let built = nebula::Details {
        name: "c".into(),
        ips: vec!["10.1.0.0/16".parse().unwrap()],
        subnets: vec!["192.168.0.0/16".parse().unwrap()],
        groups: vec!["ops".into(), "web".into()],
        not_before: d.not_before,
        not_after: d.not_after,
        public_key: d.public_key,
        is_ca: true,
        issuer: None,
    };
    assert_eq!(built.to_bytes(), raw[2..86]);

    let host = Certificate::from_pem(&fixture("h1.crt")).unwrap();
    let hraw = body(&fixture("h1.crt"));
    assert_eq!(
        hraw[2..17],
        [
            0x0a, 0x02, 0x68, 0x31, 0x12, 0x09, 0x83, 0x84, 0x84, 0x50, 0x80, 0x80, 0xfc, 0xff,
            0x0f
        ]
    );
    assert_eq!(host.details.issuer, Some(ca.fingerprint()));
    let issuer_at = hraw.len() - 66 - 34;
    assert_eq!(hraw[issuer_at..issuer_at + 2], [0x4a, 0x20]);
}

#[test]
fn fixtures_round_trip_and_match_nebula_cert_print() {
    let (ca_text, host_text) = (fixture("ca.crt"), fixture("h1.crt"));
    let ca = Certificate::from_pem(&ca_text).unwrap();
    let host = Certificate::from_pem(&host_text).unwrap();
    assert_eq!(ca.to_pem(), ca_text);
    assert_eq!(host.to_pem(), host_text);
    let ca_json: Value = serde_json::from_str(&fixture("ca.json")).unwrap();
    let host_json: Value = serde_json::from_str(&fixture("h1.json")).unwrap();
    assert_eq!(ca_json["fingerprint"], ca.fingerprint_hex());
    assert_eq!(host_json["fingerprint"], host.fingerprint_hex());
    assert_eq!(host_json["details"]["issuer"], ca.fingerprint_hex());
    assert_eq!(
        host_json["details"]["subnets"][0],
        host.details.subnets[0].to_string()
    );
    assert_eq!(host_json["signature"], hex::encode(host.signature));

    // Ed25519 is deterministic: re-signing reproduces nebula-cert's bytes.
    let key = CaKey::from_pem(&fixture("ca.key")).unwrap();
    assert_eq!(key.public(), ca.details.public_key);
    assert_eq!(key.sign(&ca.details.to_bytes()), ca.signature);
    assert_eq!(key.sign(&host.details.to_bytes()), host.signature);

    let now = fixture_now();
    host.verify(&ca, now).unwrap();
    assert_eq!(host.expires_at().unix_timestamp(), ca.details.not_after - 1);
    assert!(matches!(
        host.verify(&ca, now + Duration::days(400)),
        Err(NebulaError::CaExpired { .. })
    ));
    assert!(matches!(
        ca.verify(&ca, now),
        Err(NebulaError::WrongIssuer { .. })
    ));
    let hk = HostKey::from_pem(&fixture("h1.key")).unwrap();
    assert_eq!(hk.public(), host.details.public_key);
}

#[test]
fn nebula_cert_ca_resigns_byte_for_byte_and_its_hosts_verify() {
    let Some(tool) = support::require("nebula-cert") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    nebula_cert(
        &tool,
        d,
        &[
            "ca",
            "-name",
            "live",
            "-groups",
            "a,b",
            "-ips",
            "10.20.0.0/16",
        ],
    );
    nebula_cert(
        &tool,
        d,
        &["sign", "-name", "n1", "-ip", "10.20.3.4/24", "-groups", "a"],
    );
    let ca_text = std::fs::read_to_string(d.join("ca.crt")).unwrap();
    let ca = Certificate::from_pem(&ca_text).unwrap();
    let key = CaKey::from_pem(&std::fs::read_to_string(d.join("ca.key")).unwrap()).unwrap();
    assert_eq!(key.sign(&ca.details.to_bytes()), ca.signature);
    assert_eq!(ca.to_pem(), ca_text);

    let host = Certificate::from_pem(&std::fs::read_to_string(d.join("n1.crt")).unwrap()).unwrap();
    host.verify(&ca, OffsetDateTime::now_utc()).unwrap();
    assert_eq!(host.details.ips[0].to_string(), "10.20.3.4/24");
    let host_key = std::fs::read_to_string(d.join("n1.key")).unwrap();
    let raw = nebula::pem::decode(nebula::pem::X25519_PRIVATE, &host_key).unwrap();
    if let Some(public) = openssl_x25519_public(d, &raw) {
        assert_eq!(public, host.details.public_key);
        assert_eq!(
            HostKey::from_pem(&host_key).unwrap().public().to_vec(),
            public
        );
    }
}

#[test]
fn rumor_ca_and_host_pass_nebula_cert() {
    let Some(tool) = support::require("nebula-cert") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let now = OffsetDateTime::now_utc();
    let spec = CaSpec {
        name: "fleet".into(),
        duration: Duration::days(30),
        ips: vec![],
        subnets: vec![],
        groups: vec![],
    };
    let (ca_pem, ca_key) = nebula::new_ca(&spec, now, &mut OsRng).unwrap();
    write(d, "ca.crt", &ca_pem);
    write(d, "ca.key", &ca_key);
    let mut host = host_spec("10.8.0.7/24", &["ops", "web"]);
    host.subnets = vec!["192.168.7.9/24".parse().unwrap()];
    let (crt, key) = nebula::sign_host(&ca_pem, &ca_key, &host, now, &mut OsRng).unwrap();
    write(d, "h.crt", &crt);
    nebula_cert(&tool, d, &["verify", "-ca", "ca.crt", "-crt", "h.crt"]);

    let ca_json = print_json(&tool, d, "ca.crt");
    assert_eq!(ca_json["details"]["isCa"], true);
    assert_eq!(ca_json["details"]["name"], "fleet");
    let fingerprint = Certificate::from_pem(&ca_pem).unwrap().fingerprint_hex();
    assert_eq!(ca_json["fingerprint"], fingerprint);
    let h = print_json(&tool, d, "h.crt");
    assert_eq!(h["details"]["name"], "h");
    assert_eq!(h["details"]["ips"], json!(["10.8.0.7/24"]));
    assert_eq!(h["details"]["subnets"], json!(["192.168.7.0/24"]));
    assert_eq!(h["details"]["groups"], json!(["ops", "web"]));
    assert_eq!(h["details"]["isCa"], false);
    assert_eq!(h["details"]["issuer"], fingerprint);

    // The host key's public half is the certificate's, by openssl's reckoning.
    let raw = nebula::pem::decode(nebula::pem::X25519_PRIVATE, &key).unwrap();
    if let Some(public) = openssl_x25519_public(d, &raw) {
        assert_eq!(h["details"]["publicKey"], hex::encode(public));
    }

    // nebula-cert accepts rumor's CA key file for its own signing.
    nebula_cert(&tool, d, &["sign", "-name", "other", "-ip", "10.8.0.8/24"]);
    nebula_cert(&tool, d, &["verify", "-ca", "ca.crt", "-crt", "other.crt"]);
    let other =
        Certificate::from_pem(&std::fs::read_to_string(d.join("other.crt")).unwrap()).unwrap();
    other
        .verify(
            &Certificate::from_pem(&ca_pem).unwrap(),
            OffsetDateTime::now_utc(),
        )
        .unwrap();

    // Both tools refuse a host checked against another CA.
    let (ca2, _) = nebula::new_ca(&spec, now, &mut OsRng).unwrap();
    write(d, "ca2.crt", &ca2);
    support::fails(
        Command::new(&tool)
            .current_dir(d)
            .args(["verify", "-ca", "ca2.crt", "-crt", "h.crt"]),
    );
    let err = Certificate::from_pem(&crt)
        .unwrap()
        .verify(&Certificate::from_pem(&ca2).unwrap(), now)
        .unwrap_err();
    assert!(matches!(err, NebulaError::WrongIssuer { .. }), "{err}");
}

#[test]
fn constrained_ca() {
    let tool = support::require("nebula-cert");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let now = OffsetDateTime::now_utc();
    let spec = CaSpec {
        name: "limited".into(),
        duration: Duration::days(10),
        ips: vec!["10.8.0.0/16".parse().unwrap()],
        subnets: vec![],
        groups: vec!["ops".into(), "web".into()],
    };
    let (ca_pem, ca_key) = nebula::new_ca(&spec, now, &mut OsRng).unwrap();
    let (crt, _) = nebula::sign_host(
        &ca_pem,
        &ca_key,
        &host_spec("10.8.200.1/24", &["web"]),
        now,
        &mut OsRng,
    )
    .unwrap();
    if let Some(tool) = &tool {
        write(d, "ca.crt", &ca_pem);
        write(d, "in.crt", &crt);
        nebula_cert(tool, d, &["verify", "-ca", "ca.crt", "-crt", "in.crt"]);
        let ca_json = print_json(tool, d, "ca.crt");
        assert_eq!(ca_json["details"]["ips"], json!(["10.8.0.0/16"]));
        assert_eq!(ca_json["details"]["groups"], json!(["ops", "web"]));
        // nebula-cert itself refuses what rumor refuses.
        write(d, "ca.key", &ca_key);
        support::fails(Command::new(tool).current_dir(d).args([
            "sign",
            "-name",
            "x",
            "-ip",
            "10.9.0.1/24",
        ]));
    }

    let err = nebula::sign_host(
        &ca_pem,
        &ca_key,
        &host_spec("10.9.0.1/24", &[]),
        now,
        &mut OsRng,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "ip 10.9.0.1/24 is outside the CA's networks [10.8.0.0/16]; use an address inside them (with a prefix at least as long)"
    );
    let err = nebula::sign_host(
        &ca_pem,
        &ca_key,
        &host_spec("10.8.0.1/8", &[]),
        now,
        &mut OsRng,
    )
    .unwrap_err();
    assert!(matches!(err, NebulaError::IpOutsideCa { .. }), "{err}");
    let err = nebula::sign_host(
        &ca_pem,
        &ca_key,
        &host_spec("10.8.0.1/24", &["db"]),
        now,
        &mut OsRng,
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "group \"db\" is not among the CA's groups [ops, web]; use one of them or a CA without group limits");
}

#[test]
fn parser_never_panics_and_is_strict() {
    let text = fixture("h1.crt");
    let raw = body(&text);
    let good = Certificate::from_bytes(&raw).unwrap();
    for i in 0..raw.len() {
        for bit in 0..8 {
            let mut b = raw.clone();
            b[i] ^= 1 << bit;
            if let Ok(c) = Certificate::from_bytes(&b) {
                assert_ne!(c, good);
            }
        }
        assert!(
            Certificate::from_bytes(&raw[..i]).is_err(),
            "truncated at {i}"
        );
    }
    for i in 0..text.len() {
        let mut t = text.clone().into_bytes();
        t[i] ^= 0x20;
        if let Ok(t) = String::from_utf8(t) {
            let _ = Certificate::from_pem(&t);
        }
        // Dropping only the final newline leaves a complete block.
        if i + 1 < text.len() {
            assert!(
                Certificate::from_pem(&text[..i]).is_err(),
                "truncated at {i}"
            );
        }
    }
    for garbage in [
        "",
        "-----BEGIN NEBULA CERTIFICATE-----\n-----END NEBULA CERTIFICATE-----\n",
        "\u{0}\u{ff}",
        "-----BEGIN",
    ] {
        assert!(Certificate::from_pem(garbage).is_err());
    }
    let mut prng = 0x1234_5678_u32;
    for len in 0..300 {
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                prng ^= prng << 13;
                prng ^= prng >> 17;
                prng ^= prng << 5;
                prng as u8
            })
            .collect();
        let _ = Certificate::from_bytes(&junk);
    }

    // Field 100 (nebula 1.7's curve), even zero, is refused by 1.6 and by rumor.
    let mut details = good.details.to_bytes();
    details.extend_from_slice(&[0xa0, 0x06, 0x00]);
    let mut with_100 = vec![0x0a, details.len() as u8];
    with_100.extend_from_slice(&details);
    with_100.extend_from_slice(&[0x12, 0x40]);
    with_100.extend_from_slice(&good.signature);
    assert_eq!(
        Certificate::from_bytes(&with_100),
        Err(NebulaError::UnknownField { field: 100 })
    );
    let text_100 = nebula::pem::encode(nebula::pem::CERTIFICATE, &with_100);
    assert!(Certificate::from_pem(&text_100).is_err());

    // Non-canonical: a padded varint for IsCA parses in Go, but Go would
    // re-encode it and then reject the signature; rumor says so up front.
    let ca = Certificate::from_pem(&fixture("ca.crt")).unwrap();
    let mut details = ca.details.to_bytes();
    assert_eq!(details.split_off(details.len() - 2), [0x40, 0x01]);
    details.extend_from_slice(&[0x40, 0x81, 0x00]);
    let mut padded = vec![0x0a, details.len() as u8];
    padded.extend_from_slice(&details);
    padded.extend_from_slice(&[0x12, 0x40]);
    padded.extend_from_slice(&ca.signature);
    assert_eq!(
        Certificate::from_bytes(&padded),
        Err(NebulaError::NotCanonical)
    );
}

fn run(
    kind: &str,
    args: Value,
    ws: &Workspace,
    now: OffsetDateTime,
) -> Result<Vec<rumor::generate::Output>, GenError> {
    support::generate::generate_with(kind, &args, ws, &mut OsRng, now, &[])
}

#[test]
fn generators_through_the_registry() {
    let now = OffsetDateTime::now_utc();
    let mut ws = Workspace::new();
    let ca_args = json!({"name": "fleet", "public": "ca.crt", "private": "ca.key", "days": 30, "ips": ["10.8.0.0/16"], "groups": ["ops"]});
    let outputs = run("nebula-ca", ca_args, &ws, now).unwrap();
    let names: Vec<_> = outputs
        .iter()
        .map(|o| (o.name.as_str(), o.file.visibility))
        .collect();
    assert_eq!(
        names,
        [
            ("ca.crt", Visibility::Public),
            ("ca.key", Visibility::Private)
        ]
    );
    for o in outputs {
        ws.insert(o.name, o.file);
    }
    let ca = Certificate::from_pem(ws.text("ca.crt").unwrap()).unwrap();
    assert_eq!(
        ca.expires_at(),
        OffsetDateTime::from_unix_timestamp(now.unix_timestamp()).unwrap() + Duration::days(30)
    );

    let host = |ip: &str, groups: Value| json!({"ca_public": "ca.crt", "ca_private": "ca.key", "name": "pi-1", "ip": ip, "public": "pi.crt", "private": "pi.key", "groups": groups});
    let outputs = run("nebula", host("10.8.0.5/16", json!(["ops"])), &ws, now).unwrap();
    assert_eq!(outputs[0].file.visibility.mode(), 0o644);
    assert_eq!(outputs[1].file.visibility.mode(), 0o600);
    let crt = Certificate::from_pem(outputs[0].file.text().unwrap()).unwrap();
    crt.verify(&ca, now).unwrap();
    let key = HostKey::from_pem(outputs[1].file.text().unwrap()).unwrap();
    assert_eq!(key.public(), crt.details.public_key);

    if let Some(tool) = support::require("nebula-cert") {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "ca.crt", ws.text("ca.crt").unwrap());
        write(dir.path(), "pi.crt", outputs[0].file.text().unwrap());
        nebula_cert(
            &tool,
            dir.path(),
            &["verify", "-ca", "ca.crt", "-crt", "pi.crt"],
        );
    }

    ws.insert("pi.key", outputs[1].file.clone());
    let err = |args| run("nebula", args, &ws, now).err().unwrap().to_string();
    assert_eq!(
        err(host("10.8.0.5", json!([]))),
        "argument \"ip\" must be an IPv4 address in CIDR form like 10.8.0.5/16, not \"10.8.0.5\""
    );
    assert!(err(host("10.9.0.5/24", json!([])))
        .contains("10.9.0.5/24 is outside the CA's networks [10.8.0.0/16]"));
    assert!(err(host("10.8.0.5/24", json!(["db"]))).contains("group \"db\""));
    assert_eq!(
        err(json!({"name": "x", "public": "a", "private": "b"})),
        "missing argument \"ip\""
    );
    let mut missing = host("10.8.0.5/24", json!([]));
    missing["ca_public"] = json!("nope.crt");
    assert!(err(missing).contains("\"nope.crt\", which is not in the workspace"));
    let mut swapped = host("10.8.0.5/24", json!([]));
    swapped["ca_private"] = json!("pi.key");
    let text = err(swapped);
    assert!(
        text.starts_with("argument \"ca_private\": \"pi.key\" is not a usable nebula CA key"),
        "{text}"
    );
    assert!(!text.contains(outputs[1].file.text().unwrap().lines().nth(1).unwrap()));
}
