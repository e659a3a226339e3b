//! X.509 generators checked by the real openssl: configs of the original
//! tool, serial files, DH parameters, CockroachDB and structured certs.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use rumor::workspace::{File, Visibility, Workspace};
use rumor::x509::{self, parse_config, read_request};
use serde_json::{json, Value};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(support::root().join("tests/fixtures/x509").join(name)).unwrap()
}

/// Runs generator `kind` over `ws`, adds its outputs, and returns their
/// names with visibility.
#[track_caller]
fn run(ws: &mut Workspace, kind: &str, args: Value) -> Result<Vec<(String, Visibility)>, String> {
    let outputs = support::generate::generate(kind, &args, ws).map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    for out in outputs {
        names.push((out.name.clone(), out.file.visibility));
        ws.insert(out.name, out.file);
    }
    Ok(names)
}

fn text(ws: &mut Workspace, name: &str, content: &str) {
    ws.insert(name, File::new(content, Visibility::Public));
}

/// Writes every workspace file into `dir`.
fn materialise(ws: &Workspace, dir: &Path) {
    for (name, file) in ws.iter() {
        std::fs::write(dir.join(name), &*file.content).unwrap();
    }
}

#[track_caller]
fn openssl(bin: &Path, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openssl {args:?} failed:\n{all}");
    all
}

fn status(bin: &Path, dir: &Path, args: &[&str]) -> bool {
    Command::new(bin)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
        .status
        .success()
}

/// Checks that the key file holds the private half of the certificate.
#[track_caller]
fn assert_key_matches(bin: &Path, dir: &Path, cert: &str, key: &str) {
    let from_key = openssl(bin, dir, &["pkey", "-in", key, "-pubout"]);
    let from_cert = openssl(bin, dir, &["x509", "-in", cert, "-noout", "-pubkey"]);
    assert_eq!(from_key, from_cert, "{key} does not match {cert}");
}

/// Checks the certificate is valid for more than `min` days but fewer than `max`.
#[track_caller]
fn assert_days(bin: &Path, dir: &Path, cert: &str, min: u64, max: u64) {
    let secs = |d: u64| (d * 86400).to_string();
    assert!(
        status(
            bin,
            dir,
            &["x509", "-in", cert, "-noout", "-checkend", &secs(min)]
        ),
        "{cert} expires before {min} days"
    );
    assert!(
        !status(
            bin,
            dir,
            &["x509", "-in", cert, "-noout", "-checkend", &secs(max)]
        ),
        "{cert} lasts beyond {max} days"
    );
}

fn serial_of(bin: &Path, dir: &Path, cert: &str) -> String {
    openssl(bin, dir, &["x509", "-in", cert, "-noout", "-serial"])
        .trim()
        .trim_start_matches("serial=")
        .to_owned()
}

struct Bench {
    bin: PathBuf,
    dir: tempfile::TempDir,
    ws: Workspace,
}

impl Bench {
    fn new() -> Option<Bench> {
        Some(Bench {
            bin: support::require("openssl")?,
            dir: tempfile::tempdir().unwrap(),
            ws: Workspace::new(),
        })
    }
    fn sync(&self) {
        materialise(&self.ws, self.dir.path());
    }
    #[track_caller]
    fn openssl(&self, args: &[&str]) -> String {
        openssl(&self.bin, self.dir.path(), args)
    }
    #[track_caller]
    fn text_of(&self, cert: &str) -> String {
        self.openssl(&["x509", "-in", cert, "-noout", "-text"])
    }
}

#[test]
fn original_ssl_spec() {
    let Some(mut b) = Bench::new() else { return };
    text(&mut b.ws, "openssl-ca-config", &fixture("ca-original.cnf"));
    text(
        &mut b.ws,
        "openssl-server-config",
        &fixture("server-original.cnf"),
    );
    text(
        &mut b.ws,
        "openssl-client-config",
        &fixture("client-original.cnf"),
    );
    let outs = run(&mut b.ws, "openssl-ca", json!({"config": "openssl-ca-config", "public": "openssl-ca-pub", "private": "openssl-ca-priv"})).unwrap();
    assert_eq!(
        outs,
        [
            ("openssl-ca-pub".into(), Visibility::Public),
            ("openssl-ca-priv".into(), Visibility::Private)
        ]
    );
    for (config, public, private) in [
        (
            "openssl-server-config",
            "openssl-server-pub",
            "openssl-server-priv",
        ),
        (
            "openssl-client-config",
            "openssl-client-pub",
            "openssl-client-priv",
        ),
    ] {
        let args = json!({"ca_public": "openssl-ca-pub", "ca_private": "openssl-ca-priv", "serial": "openssl-srl",
                          "config": config, "public": public, "private": private, "renew": true});
        let outs = run(&mut b.ws, "openssl", args).unwrap();
        assert_eq!(outs.len(), 3);
        assert_eq!(outs[2], ("openssl-srl".into(), Visibility::Private));
    }
    b.sync();
    assert!(b
        .ws
        .text("openssl-ca-priv")
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----\n"));

    let ca = b.text_of("openssl-ca-pub");
    for needle in [
        "Subject: CN = ca",
        "Issuer: CN = ca",
        "X509v3 Basic Constraints: critical\n                CA:TRUE",
        "X509v3 Key Usage: critical\n                Digital Signature, Certificate Sign, CRL Sign",
        "X509v3 Subject Key Identifier",
        "DirName:/CN=ca",
        "ASN1 OID: prime256v1",
        "ecdsa-with-SHA256",
    ] {
        assert!(ca.contains(needle), "CA lacks {needle:?}:\n{ca}");
    }
    assert_days(&b.bin, b.dir.path(), "openssl-ca-pub", 3649, 3651);
    assert_key_matches(&b.bin, b.dir.path(), "openssl-ca-pub", "openssl-ca-priv");
    // A self-signed CA is its own trust anchor.
    b.openssl(&[
        "verify",
        "-x509_strict",
        "-CAfile",
        "openssl-ca-pub",
        "openssl-ca-pub",
    ]);

    let server = b.text_of("openssl-server-pub");
    for needle in [
        "Subject: CN = server-cert",
        "Issuer: CN = ca",
        "X509v3 Basic Constraints: critical\n                CA:FALSE",
        "Netscape Comment: \n                Server Certificate (Generated by My PKI)",
        "X509v3 Key Usage: critical\n                Digital Signature, Key Encipherment",
        "X509v3 Extended Key Usage: \n                TLS Web Server Authentication",
        "DirName:/CN=ca",
    ] {
        assert!(
            server.contains(needle),
            "server lacks {needle:?}:\n{server}"
        );
    }
    let client = b.text_of("openssl-client-pub");
    assert!(
        client.contains("TLS Web Client Authentication")
            && client.contains("Subject: CN = client-cert"),
        "{client}"
    );
    for leaf in ["openssl-server-pub", "openssl-client-pub"] {
        let out = b.openssl(&["verify", "-x509_strict", "-CAfile", "openssl-ca-pub", leaf]);
        assert!(out.contains(": OK"), "{out}");
    }
    assert_key_matches(
        &b.bin,
        b.dir.path(),
        "openssl-server-pub",
        "openssl-server-priv",
    );
    assert_key_matches(
        &b.bin,
        b.dir.path(),
        "openssl-client-pub",
        "openssl-client-priv",
    );
    // Two leaves through one serial file: distinct, consecutive serials, and
    // the file holds the last one, as openssl -CAserial leaves it.
    let (s1, s2) = (
        serial_of(&b.bin, b.dir.path(), "openssl-server-pub"),
        serial_of(&b.bin, b.dir.path(), "openssl-client-pub"),
    );
    assert_ne!(s1, s2);
    assert_eq!(b.ws.text("openssl-srl").unwrap().trim(), s2);
    assert!(s1.len() <= 40, "serial {s1} is over 159 bits");
    assert!(u8::from_str_radix(&s1[..2], 16).unwrap() < 0x80);
}

#[test]
fn rich_config() {
    let Some(mut b) = Bench::new() else { return };
    text(&mut b.ws, "ca.cnf", &fixture("ca-rich.cnf"));
    run(
        &mut b.ws,
        "openssl-ca",
        json!({"config": "ca.cnf", "public": "ca.pem", "private": "ca.key", "days": 30}),
    )
    .unwrap();
    b.sync();
    let ca = b.text_of("ca.pem");
    for needle in [
        "Subject: CN = Fleet Root CA, O = Example Fleet, OU = Edge Devices, C = HR, ST = Grad Zagreb, L = Zagreb, emailAddress = pki@example.com",
        "X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:1",
        "X509v3 Key Usage: \n                Certificate Sign, CRL Sign",
        "X509v3 Extended Key Usage: critical\n                TLS Web Server Authentication, TLS Web Client Authentication, OCSP Signing",
        "DNS:ca.example.com, IP Address:10.0.0.1, DNS:pki.example.com, IP Address:FD00:0:0:0:0:0:0:1, email:ops@example.com, URI:https://example.com/ca",
        "Netscape Comment: \n                Fleet CA, made by rumor",
    ] {
        assert!(ca.contains(needle), "CA lacks {needle:?}:\n{ca}");
    }
    assert!(
        !ca.contains("DirName"),
        "keyid:always alone must not add the issuer name:\n{ca}"
    );
    assert_days(&b.bin, b.dir.path(), "ca.pem", 29, 31);
    assert_key_matches(&b.bin, b.dir.path(), "ca.pem", "ca.key");
}

#[test]
fn serial_file_increments_and_is_created() {
    let Some(mut b) = Bench::new() else { return };
    text(&mut b.ws, "ca.cnf", &fixture("ca-original.cnf"));
    text(&mut b.ws, "leaf.cnf", &fixture("server-original.cnf"));
    run(
        &mut b.ws,
        "openssl-ca",
        json!({"config": "ca.cnf", "public": "ca.pem", "private": "ca.key"}),
    )
    .unwrap();
    text(&mut b.ws, "srl", "01\n");
    let leaf = |serial: &str, public: &str| json!({"ca_public": "ca.pem", "ca_private": "ca.key", "serial": serial, "config": "leaf.cnf", "public": public, "private": format!("{public}.key")});
    run(&mut b.ws, "openssl", leaf("srl", "a.pem")).unwrap();
    assert_eq!(b.ws.text("srl"), Some("02\n"));
    run(&mut b.ws, "openssl", leaf("new-srl", "b.pem")).unwrap();
    b.sync();
    assert_eq!(serial_of(&b.bin, b.dir.path(), "a.pem"), "02");
    let created = b.ws.text("new-srl").unwrap().trim().to_owned();
    assert_eq!(serial_of(&b.bin, b.dir.path(), "b.pem"), created);
    assert!(
        created.len() >= 16 && created.len() <= 40,
        "random serial {created} has an odd size"
    );
    assert!(
        u8::from_str_radix(&created[..2], 16).unwrap() < 0x80,
        "serial {created} would be negative or over 159 bits"
    );
    for leaf in ["a.pem", "b.pem"] {
        b.openssl(&["verify", "-CAfile", "ca.pem", leaf]);
        assert!(
            x509::verify_signed_by(b.ws.text(leaf).unwrap(), b.ws.text("ca.pem").unwrap()).unwrap()
        );
    }
    // The library's expiry and signature helpers agree with openssl.
    let other_ca = b.ws.text("a.pem").unwrap().to_owned();
    assert!(!x509::verify_signed_by(b.ws.text("b.pem").unwrap(), &other_ca).unwrap());
    let expiry = x509::not_after(b.ws.text("a.pem").unwrap()).unwrap();
    let days = (expiry - time::OffsetDateTime::now_utc()).whole_days();
    assert!((3649..=3650).contains(&days), "{days}");
}

#[test]
fn dhparam_is_ffdhe2048() {
    let Some(mut b) = Bench::new() else { return };
    let outs = run(&mut b.ws, "openssl-dhparam", json!({"name": "dh.pem"})).unwrap();
    assert_eq!(outs, [("dh.pem".into(), Visibility::Private)]);
    b.sync();
    let out = b.openssl(&["dhparam", "-check", "-in", "dh.pem", "-noout"]);
    assert!(out.contains("DH parameters appear to be ok"), "{out}");
    let reference = b.openssl(&[
        "genpkey",
        "-genparam",
        "-algorithm",
        "DH",
        "-pkeyopt",
        "group:ffdhe2048",
    ]);
    assert_eq!(b.ws.text("dh.pem").unwrap(), reference);
}

#[test]
fn cockroach() {
    let Some(mut b) = Bench::new() else { return };
    run(
        &mut b.ws,
        "cockroach-ca",
        json!({"name": "ca", "public": "ca.crt", "private": "ca.key"}),
    )
    .unwrap();
    run(&mut b.ws, "cockroach", json!({"ca_public": "ca.crt", "ca_private": "ca.key", "hosts": "localhost, 10.0.0.5,db.local", "public": "node.crt", "private": "node.key"})).unwrap();
    run(&mut b.ws, "cockroach", json!({"ca_public": "ca.crt", "ca_private": "ca.key", "hosts": ["::1"], "public": "node2.crt", "private": "node2.key"})).unwrap();
    run(&mut b.ws, "cockroach-client", json!({"ca_public": "ca.crt", "ca_private": "ca.key", "user": "root", "public": "client.root.crt", "private": "client.root.key"})).unwrap();
    b.sync();
    let ca = b.text_of("ca.crt");
    for needle in [
        "Subject: O = Cockroach, CN = Cockroach CA",
        "Public-Key: (2048 bit)",
        "CA:TRUE, pathlen:0",
        "Certificate Sign",
    ] {
        assert!(ca.contains(needle), "CA lacks {needle:?}:\n{ca}");
    }
    assert_days(&b.bin, b.dir.path(), "ca.crt", 3649, 3651);
    let node = b.text_of("node.crt");
    for needle in [
        "Subject: O = Cockroach, CN = node",
        "DNS:localhost, IP Address:10.0.0.5, DNS:db.local",
        "TLS Web Server Authentication, TLS Web Client Authentication",
    ] {
        assert!(node.contains(needle), "node lacks {needle:?}:\n{node}");
    }
    assert!(b
        .text_of("node2.crt")
        .contains("IP Address:0:0:0:0:0:0:0:1"));
    let client = b.text_of("client.root.crt");
    assert!(
        client.contains("Subject: O = Cockroach, CN = root")
            && client.contains("TLS Web Client Authentication"),
        "{client}"
    );
    assert!(!client.contains("Server Authentication"), "{client}");
    assert_days(&b.bin, b.dir.path(), "client.root.crt", 1824, 1826);
    for (cert, key) in [
        ("ca.crt", "ca.key"),
        ("node.crt", "node.key"),
        ("client.root.crt", "client.root.key"),
    ] {
        assert!(
            b.ws.text(key)
                .unwrap()
                .starts_with("-----BEGIN RSA PRIVATE KEY-----\n"),
            "{key}"
        );
        b.openssl(&["rsa", "-check", "-noout", "-in", key]);
        assert_key_matches(&b.bin, b.dir.path(), cert, key);
        b.openssl(&["verify", "-x509_strict", "-CAfile", "ca.crt", cert]);
    }
}

#[test]
fn structured_x509() {
    let Some(mut b) = Bench::new() else { return };
    for key_type in ["p256", "ed25519", "rsa"] {
        let (ca, ca_key, leaf, leaf_key) = (
            format!("{key_type}-ca.pem"),
            format!("{key_type}-ca.key"),
            format!("{key_type}.pem"),
            format!("{key_type}.key"),
        );
        run(&mut b.ws, "x509-ca", json!({"public": ca, "private": ca_key, "key_type": key_type, "subject": {"CN": "Root", "O": "Fleet", "C": "HR"}})).unwrap();
        run(&mut b.ws, "x509", json!({
            "ca_public": ca, "ca_private": ca_key, "public": leaf, "private": leaf_key, "key_type": key_type, "serial": format!("{key_type}.srl"),
            "subject": {"CN": "api", "OU": "Edge"}, "sans": ["api.local", "192.168.1.10", "email:ops@example.com", "uri:spiffe://fleet/api"],
            "extended_key_usages": ["serverAuth"],
        })).unwrap();
        b.sync();
        b.openssl(&["verify", "-x509_strict", "-CAfile", &ca, &leaf]);
        assert_key_matches(&b.bin, b.dir.path(), &leaf, &leaf_key);
        assert_key_matches(&b.bin, b.dir.path(), &ca, &ca_key);
        let text = b.text_of(&leaf);
        for needle in [
            "Subject: CN = api, OU = Edge",
            "Issuer: CN = Root, O = Fleet, C = HR",
            "DNS:api.local, IP Address:192.168.1.10, email:ops@example.com, URI:spiffe://fleet/api",
            "Digital Signature, Key Encipherment",
            "TLS Web Server Authentication",
        ] {
            assert!(
                text.contains(needle),
                "{key_type} leaf lacks {needle:?}:\n{text}"
            );
        }
        assert_days(&b.bin, b.dir.path(), &leaf, 824, 826);
        assert!(b.text_of(&ca).contains("Certificate Sign, CRL Sign"));
        assert_eq!(
            serial_of(&b.bin, b.dir.path(), &leaf),
            b.ws.text(&format!("{key_type}.srl")).unwrap().trim()
        );
    }
    assert!(b.text_of("ed25519.pem").contains("ED25519"));
    assert!(b.text_of("rsa.pem").contains("sha256WithRSAEncryption"));
    let err = run(
        &mut b.ws,
        "x509-ca",
        json!({"public": "x", "private": "y", "key_type": "dsa", "subject": {"CN": "x"}}),
    )
    .unwrap_err();
    assert_eq!(
        err,
        "argument \"key_type\" must be p256, ed25519 or rsa, not \"dsa\""
    );
}

#[test]
fn bad_configs_name_the_problem() {
    let mut ws = Workspace::new();
    let ca = fixture("ca-original.cnf");
    let cases = [
        (ca.replace("keyUsage ", "certificatePolicies = 1.2.3\nkeyUsage "), "config \"bad\", section [v3_ca]: unsupported extension \"certificatePolicies\" (line 13)"),
        (ca.replace("prompt ", "copy_extensions = copy\nprompt "), "config \"bad\", section [req]: unsupported directive \"copy_extensions\" (line 3)"),
        (ca.replace("[ req_distinguished_name ]", "[ dn ]"), "config \"bad\", section [req_distinguished_name] is missing; [ req ] distinguished_name names it; add it with at least CN"),
        (ca.replace("CN = ca", "nonsense line"), "config \"bad\", line 7: expected \"key = value\""),
        (ca.replace("[ v3_ca ]", "[ v3 ]"), "config \"bad\", section [v3_ca] is missing; rumor reads the certificate's extensions from [ v3_ca ]; add it"),
        (ca.replace("cRLSign", "cRLSign\nsubjectAltName = @sans"), "config \"bad\", section [v3_ca]: subjectAltName references [sans], which does not exist; add it (line 14)"),
        (ca.replace("CN = ca", "XX = ca"), "config \"bad\", section [req_distinguished_name]: unknown subject field \"XX\" (use CN, O, OU, C, ST, L, emailAddress, …) (line 7)"),
        (ca.replace("prompt             = no\n", ""), "config \"bad\", section [req]: rumor cannot prompt; add prompt = no"),
        (ca.replace("keyid:always", "keyid:sometimes"), "config \"bad\", section [v3_ca]: unsupported authorityKeyIdentifier value \"keyid:sometimes\" (line 11)"),
        (".include other.cnf\n".to_owned() + &ca, "config \"bad\", line 1: unsupported directive \".include\"; inline the settings instead"),
    ];
    for (config, expected) in cases {
        text(&mut ws, "bad", &config);
        let err = run(
            &mut ws,
            "openssl-ca",
            json!({"config": "bad", "public": "p", "private": "k"}),
        )
        .unwrap_err();
        assert_eq!(err, expected);
        assert!(!err.contains('\n'));
    }
    let err = run(
        &mut ws,
        "openssl-ca",
        json!({"config": "absent", "public": "p", "private": "k"}),
    )
    .unwrap_err();
    assert!(
        err.contains("\"absent\", which is not in the workspace"),
        "{err}"
    );
}

#[test]
fn parser_never_panics_on_truncations() {
    let text = fixture("ca-rich.cnf")
        + &fixture("server-original.cnf")
        + "x = \"a\\\\b\" ${org} $dn::O '\n[ z \n\\";
    for end in 0..=text.len() {
        if let Some(prefix) = text.get(..end) {
            let _ = parse_config(prefix);
            let _ = read_request(prefix, "v3_ca");
            let _ = read_request(prefix, "ext");
        }
    }
    for garbage in [
        "[",
        "]",
        "=",
        "$",
        "${",
        "a=${",
        "\\",
        "\"",
        "[a]\nb=$a::",
        "\u{0}=\u{ffff}",
        "[a]\nsubjectAltName=@a",
    ] {
        let _ = parse_config(garbage);
        let _ = read_request(garbage, "a");
    }
}
