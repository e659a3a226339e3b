//! rumor's SOPS reader and writer against the real sops binary.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use age::secrecy::ExposeSecret;
use age::x25519::Identity;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rumor::sops::{self, SopsError};
use serde_yaml_ng::Value;
use time::macros::datetime;
use time::OffsetDateTime;

const NOW: OffsetDateTime = datetime!(2026-11-23 05:40:49 UTC);
const LATER: OffsetDateTime = datetime!(2026-11-24 06:00:00 UTC);

fn fixtures() -> PathBuf {
    support::root().join("tests/fixtures/sops")
}

fn fixture_identity() -> Identity {
    let text = std::fs::read_to_string(fixtures().join("key.txt")).unwrap();
    text.lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .unwrap()
        .parse()
        .unwrap()
}

fn key_file(dir: &Path, id: &Identity) -> PathBuf {
    let path = dir.join(format!("key-{}.txt", &id.to_public().to_string()[4..14]));
    std::fs::write(&path, format!("{}\n", id.to_string().expose_secret())).unwrap();
    path
}

/// `sops decrypt` of `text` with only `id`'s key; Err(stderr) on failure.
fn sops_decrypt(sops_bin: &Path, text: &str, id: &Identity) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secrets.yaml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(sops_bin)
        .arg("decrypt")
        .arg(&file)
        .env_remove("SOPS_AGE_KEY")
        .env("SOPS_AGE_KEY_FILE", key_file(dir.path(), id))
        .env("HOME", dir.path())
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap()
}

fn encrypt(
    pairs: &[(&str, &str)],
    ids: &[&Identity],
    previous: Option<&str>,
    now: OffsetDateTime,
    seed: u64,
) -> String {
    let recipients: Vec<_> = ids
        .iter()
        .map(|i| rumor::identity::Recipient::from(i.to_public()))
        .collect();
    let owned: Vec<rumor::identity::Identity> = ids.iter().map(|i| (*i).clone().into()).collect();
    sops::encrypt(
        pairs,
        &recipients,
        previous,
        &owned,
        now,
        &mut StdRng::seed_from_u64(seed),
    )
    .unwrap()
}

const TRICKY: &[(&str, &str)] = &[
    ("password", "hunter2"),
    ("multi", "line one\nline two\n"),
    ("strip", "no\nfinal break"),
    ("quotes", "it's \"quoted\": with # and ünïcødé ✓"),
    ("on", "on"),
    ("zip", "00123"),
    ("flag", "true"),
    ("empty", ""),
    ("dash-key.with.dots", "tab\there"),
    ("emoji", "🔑 key"),
    ("pem", "-----BEGIN X-----\nAAAA\n-----END X-----"),
    ("note_unencrypted", "visible"),
];

#[test]
fn rumor_files_decrypt_with_real_sops() {
    let Some(sops_bin) = support::require("sops") else {
        return;
    };
    let id = Identity::generate();
    let text = encrypt(TRICKY, &[&id], None, NOW, 1);
    assert!(
        text.contains("lastmodified: \"2026-11-23T05:40:49Z\"\n"),
        "{text}"
    );
    assert!(text.contains("note_unencrypted: visible\n") && !text.contains("hunter2"));
    let plain = sops_decrypt(&sops_bin, &text, &id).unwrap();
    // sops prints exactly what rumor writes as the private output.
    assert_eq!(plain, sops::plain_yaml(TRICKY));
    let map = yaml(&plain);
    for (k, v) in TRICKY {
        assert_eq!(map.get(*k).and_then(Value::as_str), Some(*v), "{k}");
    }
    let pairs = sops::decrypt(&text, &[id.into()]).unwrap().pairs().unwrap();
    let got: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(got, TRICKY);
}

#[test]
fn real_sops_files_read_by_rumor() {
    let Some(sops_bin) = support::require("sops") else {
        return;
    };
    let id = fixture_identity();
    for name in ["nested", "regex", "maconly"] {
        let text = std::fs::read_to_string(fixtures().join(format!("{name}.sops.yaml"))).unwrap();
        let ours =
            sops::decrypt(&text, &[id.clone().into()]).unwrap_or_else(|e| panic!("{name}: {e}"));
        let theirs = sops_decrypt(&sops_bin, &text, &id).unwrap();
        assert_eq!(yaml(&ours.yaml()), yaml(&theirs), "{name}");
        // Same text too, but for comments, which rumor does not keep.
        let uncommented: String = theirs
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(ours.yaml().as_str(), uncommented, "{name}");
        // And the plaintext sops was given.
        let source = std::fs::read_to_string(fixtures().join(format!("{name}.yaml"))).unwrap();
        assert_eq!(
            sops::recipients_of(&text).unwrap(),
            [id.to_public().to_string()]
        );
        if name != "nested" {
            assert_eq!(yaml(&ours.yaml()), yaml(&source), "{name}");
        }
    }
}

#[test]
fn worked_example_mac_input() {
    use sha2::{Digest, Sha512};
    // §9 of the format note: the MAC covers the leaf bytes only, no keys.
    let digest = hex::encode_upper(Sha512::digest(b"world42"));
    assert_eq!(
        digest,
        "0FEC59E6DFF3D8067E138BC8F10FE1A6A9ACE313604902D18B2B5DDB0942A473EC4F5CEE47EE26E30E647A39D6813E3CFFEB7DBE024A29E94C9962E7FC9FE739"
    );
    // rumor writes the same input for the same values: a MAC over anything
    // else would fail sops' check (tested above) and rumor's own.
    let id = Identity::generate();
    let text = encrypt(&[("hello", "world"), ("num", "42")], &[&id], None, NOW, 2);
    assert!(sops::decrypt(&text, &[id.into()]).is_ok());
}

fn lines_differing(a: &str, b: &str) -> Vec<String> {
    assert_eq!(a.lines().count(), b.lines().count());
    a.lines()
        .zip(b.lines())
        .filter(|(x, y)| x != y)
        .map(|(x, _)| x.split(':').next().unwrap().trim().to_owned())
        .collect()
}

fn age_blocks(text: &str) -> String {
    text.lines()
        .filter(|l| l.starts_with("            "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn no_churn() {
    let Some(sops_bin) = support::require("sops") else {
        return;
    };
    let (a, b) = (Identity::generate(), Identity::generate());
    let first = encrypt(TRICKY, &[&a, &b], None, NOW, 3);
    // Same input: the very same bytes, whatever the clock and randomness say.
    let again = encrypt(TRICKY, &[&a, &b], Some(&first), LATER, 4);
    assert_eq!(again, first);
    // Recipients in another order are the same set.
    assert_eq!(encrypt(TRICKY, &[&b, &a], Some(&first), LATER, 4), first);

    // One changed value: that line, lastmodified and mac.
    let mut changed = TRICKY.to_vec();
    changed[0].1 = "correct horse";
    let second = encrypt(&changed, &[&a, &b], Some(&first), LATER, 5);
    assert_eq!(
        lines_differing(&first, &second),
        ["password", "lastmodified", "mac"]
    );
    assert_eq!(
        yaml(&sops_decrypt(&sops_bin, &second, &b).unwrap()),
        yaml(&sops::plain_yaml(&changed))
    );

    // Without an identity the previous file cannot be opened: fresh file.
    let blind = sops::encrypt(
        &changed,
        &[a.to_public().into(), b.to_public().into()],
        Some(&first),
        &[],
        LATER,
        &mut StdRng::seed_from_u64(6),
    )
    .unwrap();
    assert_ne!(age_blocks(&blind), age_blocks(&first));

    // A new recipient set: new data key, every value re-encrypted.
    let c = Identity::generate();
    let third = encrypt(&changed, &[&a, &c], Some(&second), LATER, 7);
    let changed_lines = lines_differing(
        &second[..second.find("sops:").unwrap()],
        &third[..third.find("sops:").unwrap()],
    );
    let encrypted_keys = changed
        .iter()
        .filter(|(k, v)| !v.is_empty() && !k.ends_with("_unencrypted"))
        .count();
    assert_eq!(changed_lines.len(), encrypted_keys, "{changed_lines:?}");
    for id in [&a, &c] {
        assert_eq!(
            yaml(&sops_decrypt(&sops_bin, &third, id).unwrap()),
            yaml(&sops::plain_yaml(&changed))
        );
    }
    let err = sops::decrypt(&third, &[b.clone().into()]).err().unwrap();
    assert!(matches!(err, SopsError::NoMatchingIdentity { .. }), "{err}");
    assert!(
        sops_decrypt(&sops_bin, &third, &b).is_err(),
        "the removed recipient is out"
    );
}

#[test]
fn multiple_recipients_each_decrypt() {
    let Some(sops_bin) = support::require("sops") else {
        return;
    };
    let ids: Vec<Identity> = (0..3).map(|_| Identity::generate()).collect();
    let text = encrypt(TRICKY, &ids.iter().collect::<Vec<_>>(), None, NOW, 8);
    assert_eq!(text.matches("- recipient: age1").count(), 3);
    for id in &ids {
        assert_eq!(
            sops_decrypt(&sops_bin, &text, id).unwrap(),
            sops::plain_yaml(TRICKY)
        );
        assert!(sops::decrypt(&text, &[id.clone().into()]).is_ok());
    }
    let stranger = Identity::generate();
    let msg = sops::decrypt(&text, &[stranger.into()])
        .err()
        .unwrap()
        .to_string();
    for id in &ids {
        assert!(msg.contains(&id.to_public().to_string()), "{msg}");
    }
    assert!(
        msg.contains("SOPS_AGE_KEY_FILE") && msg.contains("--identity"),
        "{msg}"
    );
    assert_eq!(
        sops::recipients_of(&text).unwrap(),
        ids.iter()
            .map(|i| i.to_public().to_string())
            .collect::<Vec<_>>()
    );
}

/// Replaces the first line starting with `prefix` (after indentation).
fn edit(text: &str, prefix: &str, f: impl Fn(&str) -> String) -> String {
    let mut done = false;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if !done && l.trim_start().starts_with(prefix) {
                done = true;
                f(l)
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert!(done, "no line {prefix}");
    out.join("\n") + "\n"
}

#[test]
fn tampering_is_refused_without_leaking() {
    let Some(sops_bin) = support::require("sops") else {
        return;
    };
    let id = Identity::generate();
    let text = encrypt(TRICKY, &[&id], None, NOW, 9);
    let flip = |l: &str| {
        let i = l.find("data:").unwrap() + 5;
        let c = if &l[i..i + 1] == "A" { "B" } else { "A" };
        format!("{}{}{}", &l[..i], c, &l[i + 1..])
    };
    let password_enc = text.lines().find(|l| l.starts_with("password:")).unwrap()[10..].to_owned();
    let cases: Vec<(&str, String, &str, bool)> = vec![
        (
            "flipped ciphertext",
            edit(&text, "password:", flip),
            "failed to decrypt",
            true,
        ),
        (
            "removed mac",
            edit(&text, "mac:", |_| String::new()),
            "no MAC",
            true,
        ),
        (
            "edited lastmodified",
            edit(&text, "lastmodified:", |_| {
                "    lastmodified: \"2026-11-23T05:40:50Z\"".into()
            }),
            "MAC does not decrypt",
            true,
        ),
        (
            "edited unencrypted value",
            edit(&text, "note_unencrypted:", |_| {
                "note_unencrypted: edited".into()
            }),
            "MAC mismatch",
            true,
        ),
        (
            "integer for ciphertext",
            edit(&text, "password:", |_| "password: 12345".into()),
            "is a number",
            false,
        ),
        (
            "plaintext for ciphertext",
            edit(&text, "password:", |_| "password: hunter2".into()),
            "a plain string",
            true,
        ),
        (
            "moved ciphertext",
            edit(&text, "strip:", |_| format!("strip: {password_enc}")),
            "failed to decrypt",
            true,
        ),
        (
            "missing version",
            edit(&text, "version:", |_| String::new()),
            "\"version\"",
            true,
        ),
    ];
    for (what, tampered, expect, sops_refuses_too) in cases {
        let msg = match sops::decrypt(&tampered, &[id.clone().into()]) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => e.to_string(),
        };
        assert!(msg.contains(expect), "{what}: {msg}");
        for (_, v) in TRICKY.iter().filter(|(_, v)| v.len() > 2) {
            assert!(!msg.contains(v), "{what} leaks a value: {msg}");
        }
        assert!(!msg.contains("hunter2"), "{what}: {msg}");
        if sops_refuses_too {
            assert!(
                sops_decrypt(&sops_bin, &tampered, &id).is_err(),
                "{what}: real sops accepted it"
            );
        }
    }
}

#[test]
fn refuses_bad_input() {
    let id = Identity::generate();
    let r = [rumor::identity::Recipient::from(id.to_public())];
    let mut rng = StdRng::seed_from_u64(10);
    let mut err = |pairs: &[(&str, &str)]| {
        sops::encrypt(pairs, &r, None, &[], NOW, &mut rng)
            .err()
            .unwrap()
            .to_string()
    };
    assert!(err(&[("sops", "x")]).contains("reserved"));
    assert!(err(&[("a", "x"), ("a", "y")]).contains("twice"));
    assert!(err(&[("a\nb", "x")]).contains("line break"));
    let none = sops::encrypt(
        &[("a", "b")],
        &[],
        None,
        &[],
        NOW,
        &mut StdRng::seed_from_u64(1),
    )
    .err()
    .unwrap();
    assert!(matches!(none, SopsError::NoRecipients));
}

mod generator {
    use super::*;
    use rumor::generate::{lookup, Args, Output};
    use rumor::workspace::{File, Visibility, Workspace};
    use serde_json::json;

    fn run(
        ws: &Workspace,
        args: &serde_json::Value,
        ids: &[Identity],
        seed: u64,
    ) -> Result<Vec<Output>, String> {
        support::generate::generate_with(
            "sops",
            args,
            ws,
            &mut StdRng::seed_from_u64(seed),
            NOW,
            &ids.iter().cloned().map(Into::into).collect::<Vec<_>>(),
        )
        .map_err(|e| e.to_string())
    }

    fn apply(ws: &mut Workspace, outputs: Vec<Output>) {
        for o in outputs {
            ws.insert(o.name, o.file);
        }
    }

    #[test]
    fn generates_private_and_public() {
        let Some(sops_bin) = support::require("sops") else {
            return;
        };
        let device = Identity::generate();
        let admin = Identity::generate();
        let mut ws = Workspace::new();
        ws.insert(
            "age.pub",
            File::new(format!("{}\n", device.to_public()), Visibility::Public),
        );
        ws.insert(
            "age.key",
            File::new(
                format!("{}\n", device.to_string().expose_secret()),
                Visibility::Private,
            ),
        );
        ws.insert(
            "db-password",
            File::new("  s3cret pass\n", Visibility::Private),
        );
        ws.insert(
            "admins",
            File::new(
                format!("# ops\n{}\n", admin.to_public()),
                Visibility::Public,
            ),
        );
        let args = json!({
            "age": "age.pub", "private": "secrets.yaml", "public": "secrets.sops.yaml",
            "secrets": {"db": "db-password", "literal": "  on  ", "port": 5432},
            "recipients": ["admins"],
        });
        let generator = lookup("sops").unwrap();
        assert!(generator.derived());
        assert_eq!(
            generator
                .outputs(&Args::new(args.as_object().unwrap()))
                .unwrap(),
            ["secrets.yaml", "secrets.sops.yaml"]
        );

        let outputs = run(&ws, &args, &[], 1).unwrap();
        assert_eq!(outputs.len(), 2);
        assert_eq!(
            (outputs[0].name.as_str(), outputs[0].file.visibility),
            ("secrets.yaml", Visibility::Private)
        );
        assert_eq!(
            (outputs[1].name.as_str(), outputs[1].file.visibility),
            ("secrets.sops.yaml", Visibility::Public)
        );
        let private = outputs[0].file.text().unwrap().to_owned();
        let public = outputs[1].file.text().unwrap().to_owned();
        assert_eq!(
            private,
            "db: s3cret pass\nliteral: \"on\"\nport: \"5432\"\n"
        );
        for id in [&device, &admin] {
            assert_eq!(sops_decrypt(&sops_bin, &public, id).unwrap(), private);
        }

        // Re-run with the outputs in the workspace: the device key found in
        // the workspace re-opens the file, so nothing changes.
        apply(&mut ws, outputs);
        let again = run(&ws, &args, &[], 2).unwrap();
        assert_eq!(again[1].file.text().unwrap(), public);

        // Missing inputs and bad recipients are named.
        let mut bad = args.clone();
        bad["age"] = json!("nope.pub");
        assert!(run(&ws, &bad, &[], 3)
            .err()
            .unwrap()
            .contains("\"nope.pub\""));
        let mut bad = args.clone();
        bad["recipients"] = json!(["not-a-key"]);
        assert!(run(&ws, &bad, &[], 3)
            .err()
            .unwrap()
            .contains("\"not-a-key\""));
        let mut bad = args.clone();
        bad["age"] = json!("db-password");
        let msg = run(&ws, &bad, &[], 3).err().unwrap();
        assert!(
            msg.contains("age recipients") && !msg.contains("s3cret"),
            "{msg}"
        );
    }
}

/// A device file in the shape sops 3.9.1 wrote (pidgeon's committed files):
/// empty `kms`/`gcp_kms`/`azure_kv`/`hc_vault`/`pgp` lists, the suffix
/// rule, `version: 3.9.1`. Made by sops 3.11 with its metadata block then
/// rewritten to that shape; the block is outside the MAC, so the file is
/// what 3.9.1 would have written for the same data key.
#[test]
fn sops_3_9_1_device_files_decrypt_with_the_key_only() {
    let file = fixtures().join("v391.sops.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    for field in [
        "kms: []",
        "gcp_kms: []",
        "azure_kv: []",
        "hc_vault: []",
        "pgp: []",
        "unencrypted_suffix: _unencrypted",
        "version: 3.9.1",
    ] {
        assert!(text.contains(&format!("\n    {field}\n")), "{field}");
    }
    let source = yaml(&std::fs::read_to_string(fixtures().join("v391.yaml")).unwrap());
    let id = fixture_identity();
    if let Some(sops_bin) = support::require("sops") {
        assert_eq!(
            yaml(&sops_decrypt(&sops_bin, &text, &id).unwrap()),
            source,
            "the real sops opens the fixture"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), &id);
    let out = support::ok(
        support::rumor(dir.path())
            .arg("decrypt")
            .arg(&file)
            .arg("--identity")
            .arg(&key),
    );
    assert_eq!(yaml(&out), source);

    // Another key: one integrity line, exit 5, no plaintext.
    let other = key_file(dir.path(), &Identity::generate());
    let run = support::run(
        support::rumor(dir.path())
            .arg("decrypt")
            .arg(&file)
            .arg("--identity")
            .arg(&other),
    );
    assert_eq!(run.status.code(), Some(5));
    assert!(run.stdout.is_empty());
    let stderr = String::from_utf8(run.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("rumor: {}: ", file.display())),
        "{stderr}"
    );
    assert!(
        !stderr.contains("fixture passphrase") && !stderr.contains("meter-7"),
        "{stderr}"
    );
}
