//! The two stores against real oracles: an OpenBao dev server for Vault,
//! the `age` CLI for the local store's files.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use age::x25519::{Identity, Recipient};
use rumor::store::local::{parse_pin, LocalStore};
use rumor::store::vault::{Vault, VaultConfig};
use rumor::store::{Data, Store, StoreError};
use secrecy::ExposeSecret;
use serde_json::json;
use zeroize::Zeroizing;

fn data(pairs: &[(&str, &str)]) -> Data {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Zeroizing::new(v.to_string())))
        .collect()
}

#[track_caller]
fn failed<T>(result: Result<T, StoreError>) -> StoreError {
    match result {
        Err(e) => e,
        Ok(_) => panic!("expected an error"),
    }
}

fn pairs(data: &Data) -> Vec<(String, String)> {
    data.iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect()
}

fn vault(bao: &support::Bao, token: &str) -> Vault {
    let mut config = VaultConfig::new(&bao.addr, token);
    config.retries = 1;
    Vault::connect(&config).unwrap()
}

/// A token limited to `policy` (HCL), made through the API as root.
fn token_with_policy(bao: &support::Bao, name: &str, policy: &str) -> String {
    let (status, body) = bao.api(
        "PUT",
        &format!("/v1/sys/policies/acl/{name}"),
        Some(&json!({ "policy": policy }).to_string()),
    );
    assert!(status == 204 || status == 200, "{status} {body}");
    let (status, body) = bao.api(
        "POST",
        "/v1/auth/token/create",
        Some(&json!({ "policies": [name] }).to_string()),
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["auth"]["client_token"].as_str().unwrap().to_owned()
}

#[test]
fn vault_round_trip_order_versions_and_cas() {
    let Some(bao) = support::Bao::start() else {
        return;
    };
    let store = vault(&bao, &bao.token);
    assert_eq!(store.describe(), format!("Vault at {}", bao.addr));
    assert!(store.read("secret/rumor/x/current").unwrap().is_none());

    let first = data(&[("zeta", "1"), ("alpha", "two\nlines"), ("mid", "")]);
    store
        .write("secret/rumor/x/current", &first, Some(0))
        .unwrap();
    let read = store.read("/secret/rumor/x/current/").unwrap().unwrap();
    assert_eq!(read.version, 1);
    // The server keeps a Go map and answers with the keys sorted; rumor
    // keeps exactly the order the server gives.
    let raw = bao.kv_get("secret", "rumor/x/current").unwrap();
    let raw: Vec<(String, String)> = raw
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(pairs(&read.data), raw);
    assert_eq!(
        raw,
        vec![
            ("alpha".into(), "two\nlines".into()),
            ("mid".into(), "".into()),
            ("zeta".into(), "1".into())
        ]
    );

    let err = store
        .write("secret/rumor/x/current", &data(&[("a", "b")]), Some(0))
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    store
        .write("secret/rumor/x/current", &data(&[("a", "b")]), Some(1))
        .unwrap();
    assert_eq!(
        store
            .read("secret/rumor/x/current")
            .unwrap()
            .unwrap()
            .version,
        2
    );
    store
        .write("secret/rumor/x/current", &data(&[("a", "c")]), None)
        .unwrap();
    assert_eq!(
        bao.kv_get("secret", "rumor/x/current").unwrap(),
        json!({"a": "c"})
    );

    assert!(matches!(
        store.read("secret"),
        Err(StoreError::BadPath { .. })
    ));
}

#[test]
fn vault_reads_json_values_as_text_and_lists() {
    let Some(bao) = support::Bao::start() else {
        return;
    };
    let body = json!({"data": {"n": 5, "o": {"a": [1, true]}, "s": "x"}}).to_string();
    assert_eq!(
        bao.api("POST", "/v1/secret/data/other/json", Some(&body)).0,
        200
    );
    let store = vault(&bao, &bao.token);
    let read = store.read("secret/other/json").unwrap().unwrap();
    assert_eq!(
        pairs(&read.data),
        vec![
            ("n".into(), "5".into()),
            ("o".into(), r#"{"a":[1,true]}"#.into()),
            ("s".into(), "x".into())
        ]
    );

    // One client shared by several threads.
    std::thread::scope(|scope| {
        for p in [
            "p/devices/a/current",
            "p/devices/a/20240101000000",
            "p/devices/b/current",
            "p/top",
        ] {
            let store = &store;
            scope.spawn(move || {
                store
                    .write(&format!("secret/{p}"), &data(&[("k", p)]), None)
                    .unwrap()
            });
        }
    });
    assert_eq!(
        bao.kv_get("secret", "p/devices/b/current").unwrap(),
        json!({"k": "p/devices/b/current"})
    );
    assert_eq!(store.list("secret/p").unwrap(), vec!["devices/", "top"]);
    assert_eq!(
        store.list("secret/p/devices/a/").unwrap(),
        vec!["20240101000000", "current"]
    );
    assert_eq!(
        store.list("secret/p/devices/a").unwrap(),
        bao.kv_list("secret", "p/devices/a")
    );
    assert!(store.list("secret/nothing/here").unwrap().is_empty());
}

#[test]
fn vault_denied_and_unreachable_never_show_the_token() {
    let Some(mut bao) = support::Bao::start() else {
        return;
    };
    let limited = token_with_policy(
        &bao,
        "reader",
        r#"path "secret/data/open/*" { capabilities = ["read"] }"#,
    );
    let store = vault(&bao, &limited);
    assert!(!format!("{store:?}").contains(&limited));
    let config = VaultConfig::new(&bao.addr, limited.clone());
    assert!(!format!("{config:?}").contains(&limited));

    assert!(store.read("secret/open/nothing").unwrap().is_none());
    let err = store
        .write("secret/open/x", &data(&[("k", "v")]), None)
        .unwrap_err();
    assert!(matches!(err, StoreError::Denied { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&bao.addr) && message.contains("secret/open/x"),
        "{message}"
    );
    assert!(!message.contains(&limited) && !format!("{err:?}").contains(&limited));
    assert!(matches!(
        store.read("secret/closed/x"),
        Err(StoreError::Denied { .. })
    ));

    bao.stop();
    let err = failed(store.read("secret/open/x"));
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&bao.addr) && message.contains("connection refused"),
        "{message}"
    );
    assert!(!message.contains(&limited) && !format!("{err:?}").contains(&limited));
}

#[test]
fn vault_sealed() {
    let Some(bao) = support::Bao::start() else {
        return;
    };
    let store = vault(&bao, &bao.token);
    store
        .write("secret/a/current", &data(&[("k", "v")]), None)
        .unwrap();
    assert_eq!(bao.api("PUT", "/v1/sys/seal", None).0, 204);
    let err = failed(store.read("secret/a/current"));
    assert!(matches!(err, StoreError::Sealed { .. }), "{err}");
    assert!(err.to_string().contains("unseal"), "{err}");
}

#[test]
fn vault_approle_login() {
    let Some(bao) = support::Bao::start() else {
        return;
    };
    assert_eq!(
        bao.api(
            "POST",
            "/v1/sys/auth/approle",
            Some(r#"{"type":"approle"}"#)
        )
        .0,
        204
    );
    let policy = r#"path "secret/*" { capabilities = ["create", "read", "update", "list"] }"#;
    assert_eq!(
        bao.api(
            "PUT",
            "/v1/sys/policies/acl/rumor",
            Some(&json!({ "policy": policy }).to_string())
        )
        .0,
        204
    );
    assert_eq!(
        bao.api(
            "POST",
            "/v1/auth/approle/role/rumor",
            Some(r#"{"token_policies":["rumor"]}"#)
        )
        .0,
        204
    );
    let (_, body) = bao.api("GET", "/v1/auth/approle/role/rumor/role-id", None);
    let role_id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, body) = bao.api("POST", "/v1/auth/approle/role/rumor/secret-id", None);
    let secret_id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let vars = [
        ("VAULT_ADDR", bao.addr.clone()),
        ("VAULT_ROLE_ID", role_id.clone()),
        ("VAULT_SECRET_ID", secret_id.clone()),
    ];
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    };
    let config = VaultConfig::from_vars(lookup, None).unwrap();
    assert!(!format!("{config:?}").contains(&secret_id));
    let store = Vault::connect(&config).unwrap();
    store
        .write("secret/approle/current", &data(&[("k", "v")]), Some(0))
        .unwrap();
    assert_eq!(
        pairs(&store.read("secret/approle/current").unwrap().unwrap().data),
        vec![("k".into(), "v".into())]
    );
    assert_eq!(
        bao.kv_get("secret", "approle/current").unwrap(),
        json!({"k": "v"})
    );

    let mut store = vault(&bao, "");
    let err = store
        .login_approle("approle", &role_id, "00000000-0000-0000-0000-000000000000")
        .unwrap_err();
    assert!(matches!(err, StoreError::Denied { .. }), "{err}");
    let message = failed(store.login_approle("nope", &role_id, &secret_id)).to_string();
    assert!(
        message.contains("auth/nope/login") && !message.contains(&secret_id),
        "{message}"
    );
}

fn keypair() -> (Identity, Recipient) {
    let identity = Identity::generate();
    let recipient = identity.to_public();
    (identity, recipient)
}

/// Decrypts a store file with the real age CLI.
fn age_decrypt(identity: &Identity, file: &Path) -> Option<serde_json::Value> {
    let age = support::require("age")?;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.txt");
    std::fs::write(&key, identity.to_string().expose_secret()).unwrap();
    let out = Command::new(age)
        .arg("-d")
        .arg("-i")
        .arg(&key)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn local_round_trip_versions_and_age_parity() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let (id, r) = keypair();
    let store = local_store(&root, vec![r.clone()], vec![id.clone()]).unwrap();
    assert_eq!(
        store.describe(),
        format!("local store at {}", root.display())
    );
    assert!(store.read("kv/fleet/devices/a/current").unwrap().is_none());

    let first = data(&[("zeta", "1"), ("alpha", "two\nlines")]);
    store
        .write("kv/fleet/devices/a/current", &first, Some(0))
        .unwrap();
    let read = store.read("kv/fleet/devices/a/current").unwrap().unwrap();
    assert_eq!((read.version, pairs(&read.data)), (1, pairs(&first)));
    let file = root.join("kv/fleet/devices/a/current.age");
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
    if let Some(mut doc) = age_decrypt(&id, &file) {
        // Signed with the store key (see the trust tests); the rest is
        // plain JSON that `age -d` shows.
        assert!(doc
            .as_object_mut()
            .unwrap()
            .remove("sig")
            .is_some_and(|s| s.is_string()));
        assert_eq!(
            doc.to_string(),
            r#"{"version":1,"data":{"zeta":"1","alpha":"two\nlines"}}"#
        );
    }

    let err = store
        .write("kv/fleet/devices/a/current", &data(&[("k", "v")]), Some(0))
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    store
        .write("kv/fleet/devices/a/current", &data(&[("k", "v")]), Some(1))
        .unwrap();
    store
        .write(
            "kv/fleet/devices/a/20240101000000",
            &data(&[("k", "v")]),
            None,
        )
        .unwrap();
    assert_eq!(
        store
            .read("kv/fleet/devices/a/current")
            .unwrap()
            .unwrap()
            .version,
        2
    );
    assert_eq!(
        store.list("kv/fleet/devices/a").unwrap(),
        vec!["20240101000000", "current"]
    );
    assert_eq!(store.list("kv/fleet").unwrap(), vec!["devices/"]);
    assert!(store.list("kv/none").unwrap().is_empty());

    // A file the age CLI wrote in the same shape is anyone's to write (the
    // admin recipient is public): without the store key's signature it is
    // refused, never believed (the repository-trust issue, finding 3).
    if let Some(age) = support::require("age") {
        let plain = dir.path().join("plain.json");
        std::fs::write(&plain, r#"{"version":7,"data":{"b":"2","a":"1"}}"#).unwrap();
        let out = Command::new(age)
            .args(["-a", "-r", &r.to_string(), "-o"])
            .arg(root.join("kv/cli.age"))
            .arg(&plain)
            .output()
            .unwrap();
        assert!(out.status.success());
        let err = failed(store.read("kv/cli"));
        assert!(
            matches!(err, StoreError::Forged { .. }) && err.to_string().contains("no signature"),
            "{err}"
        );
    }
}

#[test]
fn local_identical_write_changes_no_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (id, r) = keypair();
    let store = local_store(dir.path(), vec![r], vec![id]).unwrap();
    store
        .write("kv/x", &data(&[("a", "1"), ("b", "2")]), None)
        .unwrap();
    let file = dir.path().join("kv/x.age");
    let (bytes, meta) = (
        std::fs::read(&file).unwrap(),
        std::fs::metadata(&file).unwrap(),
    );
    store
        .write("kv/x", &data(&[("a", "1"), ("b", "2")]), None)
        .unwrap();
    store
        .write("kv/x", &data(&[("a", "1"), ("b", "2")]), Some(1))
        .unwrap();
    let after = std::fs::metadata(&file).unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
    assert_eq!(
        (after.mtime(), after.mtime_nsec(), after.ino()),
        (meta.mtime(), meta.mtime_nsec(), meta.ino())
    );
    // The same pairs in another order are a different entry.
    store
        .write("kv/x", &data(&[("b", "2"), ("a", "1")]), None)
        .unwrap();
    assert_eq!(store.read("kv/x").unwrap().unwrap().version, 2);
}

#[test]
fn local_modes_and_no_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("new/store");
    let (id, r) = keypair();
    let store = local_store(&root, vec![r], vec![id]).unwrap();
    for i in 0..3 {
        store
            .write("kv/a/b/current", &data(&[("n", &i.to_string())]), None)
            .unwrap();
    }
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for d in [
        root.clone(),
        root.join("kv"),
        root.join("kv/a"),
        root.join("kv/a/b"),
    ] {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }
    assert_eq!(mode(&root.join("kv/a/b/current.age")), 0o600);
    assert_eq!(mode(&root.join(".lock")), 0o600);
    let mut names: Vec<String> = std::fs::read_dir(root.join("kv/a/b"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["current.age"], "no temporary files are left");
}

#[test]
fn local_rejects_bad_paths() {
    let dir = tempfile::tempdir().unwrap();
    let (id, r) = keypair();
    let store = local_store(dir.path().join("s"), vec![r], vec![id]).unwrap();
    for bad in [
        "kv/../x", "../kv/x", "kv//x", "kv", "kv/a b", "kv/.lock", "kv/x/..", "", "kv/ü",
    ] {
        assert!(
            matches!(
                store.write(bad, &data(&[("k", "v")]), None),
                Err(StoreError::BadPath { .. })
            ),
            "{bad}"
        );
        assert!(
            matches!(store.read(bad), Err(StoreError::BadPath { .. })),
            "{bad}"
        );
    }
    assert!(!dir.path().join("x.age").exists() && !dir.path().join("kv").exists());
}

#[test]
fn local_multiple_recipients_and_wrong_identity() {
    let dir = tempfile::tempdir().unwrap();
    let ((a, ra), (b, rb), (c, _)) = (keypair(), keypair(), keypair());
    let writer = local_store(dir.path(), vec![ra, rb.clone()], vec![a.clone()]).unwrap();
    writer
        .write("kv/shared", &data(&[("k", "v")]), None)
        .unwrap();
    for id in [a.clone(), b.clone()] {
        let reader = local_store(dir.path(), vec![rb.clone()], vec![id.clone()]).unwrap();
        assert_eq!(
            pairs(&reader.read("kv/shared").unwrap().unwrap().data),
            vec![("k".into(), "v".into())]
        );
        if let Some(doc) = age_decrypt(&id, &dir.path().join("kv/shared.age")) {
            assert_eq!(doc["data"]["k"], "v");
        }
    }
    let stranger = local_store(dir.path(), vec![rb], vec![c]).unwrap();
    let message = failed(stranger.read("kv/shared")).to_string();
    assert!(
        message.contains("cannot decrypt")
            && message.contains("shared.age")
            && message.contains("RUMOR_IDENTITY"),
        "{message}"
    );
    assert!(
        stranger
            .write("kv/shared", &data(&[("k", "w")]), None)
            .is_err(),
        "never overwrite what cannot be read"
    );
}

#[test]
fn local_concurrent_cas_writers_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (id, r) = keypair();
    let store = Arc::new(local_store(dir.path(), vec![r], vec![id]).unwrap());
    store
        .write("kv/counter", &data(&[("n", "0")]), Some(0))
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for _ in 0..10 {
                    loop {
                        let cur = store.read("kv/counter").unwrap().unwrap();
                        let n: u64 = cur.data["n"].parse().unwrap();
                        match store.write(
                            "kv/counter",
                            &data(&[("n", &(n + 1).to_string())]),
                            Some(cur.version),
                        ) {
                            Ok(()) => break,
                            Err(StoreError::Conflict { .. }) => continue,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let last = store.read("kv/counter").unwrap().unwrap();
    assert_eq!((last.data["n"].as_str(), last.version), ("40", 41));
}

#[test]
fn local_lock_guard_excludes_others_but_not_its_own_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (id, r) = keypair();
    let store = local_store(dir.path(), vec![r], vec![id]).unwrap();
    let guard = store.lock().unwrap();
    assert!(
        store.lock().is_err(),
        "a second guard in one process is refused, not a deadlock"
    );
    store.write("kv/x", &data(&[("k", "v")]), None).unwrap();
    let probe = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.path().join(".lock"))
        .unwrap();
    assert!(
        fs4::fs_std::FileExt::try_lock_exclusive(&probe).is_err(),
        "others must wait while the guard lives"
    );
    drop(guard);
    fs4::fs_std::FileExt::try_lock_exclusive(&probe).unwrap();
    fs4::fs_std::FileExt::unlock(&probe).unwrap();
    store.write("kv/x", &data(&[("k", "w")]), Some(1)).unwrap();
    drop(store.lock().unwrap());
}

/// A bao dev server with its own TLS CA, stopped on drop.
struct TlsBao(std::process::Child);

impl Drop for TlsBao {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn vault_over_tls_with_vault_cacert() {
    let Some(bao) = support::require("bao") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let child = Command::new(bao)
        .args([
            "server",
            "-dev",
            "-dev-tls",
            "-dev-no-store-token",
            "-dev-root-token-id=tls-root-token",
        ])
        .arg(format!("-dev-tls-cert-dir={}", dir.path().display()))
        .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
        .env("HOME", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _server = TlsBao(child);
    let addr = format!("https://127.0.0.1:{port}");
    let mut config = VaultConfig::new(&addr, "tls-root-token");
    config.retries = 0;
    config.ca_cert = Some(dir.path().join("vault-ca.pem"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let store = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "bao -dev-tls did not come up"
        );
        if config.ca_cert.as_ref().unwrap().exists() {
            if let Ok(store) = Vault::connect(&config) {
                if store.read("secret/tls/current").is_ok() {
                    break store;
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    store
        .write("secret/tls/current", &data(&[("k", "v")]), Some(0))
        .unwrap();
    assert_eq!(
        pairs(&store.read("secret/tls/current").unwrap().unwrap().data),
        vec![("k".into(), "v".into())]
    );

    config.ca_cert = None;
    let untrusting = Vault::connect(&config).unwrap();
    let message = failed(untrusting.read("secret/tls/current")).to_string();
    assert!(
        message.contains(&addr) && message.to_lowercase().contains("certificate"),
        "{message}"
    );
}

/// VAULT_CACERT naming a FIFO is refused at once, naming the variable:
/// opening the store reads the CA file as a regular file within a bound,
/// never waiting on a writer.
#[test]
fn vault_cacert_fifo_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("ca.pem");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let mut config = VaultConfig::new("https://127.0.0.1:1", "root-test-token");
    config.ca_cert = Some(fifo.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(Vault::connect(&config).err().map(|e| e.to_string()));
    });
    let Ok(message) = rx.recv_timeout(std::time::Duration::from_secs(20)) else {
        // Let the blocked reader go before failing.
        let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
        panic!("opening the store waited on a FIFO at VAULT_CACERT");
    };
    let message = message.expect("a FIFO is not a CA certificate");
    assert!(
        message.contains("VAULT_CACERT") && message.contains("FIFO"),
        "{message}"
    );
}

/// Opens the local store in `dir`, making its store key on first use. The
/// pin, which a fleet keeps in rumor.toml, is kept in `dir/.pin` here.
fn local_store(
    dir: impl AsRef<Path>,
    recipients: Vec<Recipient>,
    identities: Vec<Identity>,
) -> Result<LocalStore, StoreError> {
    let dir = dir.as_ref();
    let recipients: Vec<rumor::identity::Recipient> =
        recipients.into_iter().map(Into::into).collect();
    let identities: Vec<rumor::identity::Identity> =
        identities.into_iter().map(Into::into).collect();
    let pin = match std::fs::read_to_string(dir.join(".pin")) {
        Ok(pin) => pin,
        Err(_) => {
            let store = LocalStore::open(dir, recipients.clone(), identities.clone(), None)?;
            let pin = store.create_signer()?;
            std::fs::write(dir.join(".pin"), &pin).unwrap();
            pin
        }
    };
    LocalStore::open(dir, recipients, identities, parse_pin(&pin))
}

/// `remove` takes a secret with all its versions away, and removing what
/// is not there is not an error; on OpenBao and on the local store.
#[test]
fn remove_takes_every_version_and_tolerates_nothing_there() {
    let dir = tempfile::tempdir().unwrap();
    let (id, r) = keypair();
    let local = local_store(dir.path(), vec![r], vec![id]).unwrap();
    let bao = support::Bao::start();
    let vault = bao.as_ref().map(|bao| vault(bao, &bao.token));
    let mut stores: Vec<(&str, &dyn Store)> = vec![("local", &local)];
    if let Some(vault) = &vault {
        stores.push(("vault", vault));
    }
    for (name, store) in stores {
        let path = "secret/rumor/d/20261207031121";
        let other = "secret/rumor/d/current";
        store.write(path, &data(&[("a", "1")]), Some(0)).unwrap();
        store.write(path, &data(&[("a", "2")]), Some(1)).unwrap();
        store.write(other, &data(&[("b", "1")]), Some(0)).unwrap();
        store.remove(path).unwrap();
        assert!(store.read(path).unwrap().is_none(), "{name}");
        // Gone with its versions: a fresh write is version 1 again.
        store.write(path, &data(&[("a", "3")]), Some(0)).unwrap();
        assert_eq!(store.read(path).unwrap().unwrap().version, 1, "{name}");
        store.remove(path).unwrap();
        store.remove(path).unwrap();
        store.remove("secret/rumor/never/written").unwrap();
        // Its neighbour stays.
        assert_eq!(
            pairs(&store.read(other).unwrap().unwrap().data),
            [("b".to_owned(), "1".to_owned())],
            "{name}"
        );
        assert!(
            !store
                .list("secret/rumor/d")
                .unwrap()
                .contains(&"20261207031121".to_owned()),
            "{name}"
        );
    }
}
