//! `rumor report`: one static page of the fleet's security state, loaded
//! in a real headless Chromium from a fixture fleet with an expired and an
//! expiring certificate, drifted and uncommitted files and a retired
//! device; the page and `--json` hold no stored value.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::fleet::Fleet;

/// Retires a device with `rumor retire`: `[retired]` in its device file,
/// its SOPS file removed, its Nebula fingerprint and certificate serials
/// published in revocations/.
fn retire(fleet: &Fleet, id: &str, reason: &str) {
    fleet.run(&["retire", id, "--reason", reason]);
}

/// Every value the store holds, in every version: the local store's files
/// decrypted by the real `age` with the admin identity. A retired device's
/// `retired` record is left out: its fields (when, why, the certificate
/// fingerprint and serials) are the public record the page must show, as
/// devices/<id>.toml and revocations/ publish them in git.
fn stored_values(fleet: &Fleet) -> Vec<String> {
    let age = support::require("age").unwrap();
    let mut files = Vec::new();
    let mut stack = vec![fleet.path("store")];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "retired.age") {
                continue;
            } else if path.extension().is_some_and(|e| e == "age")
                && !path.file_name().unwrap().to_string_lossy().starts_with('.')
            {
                files.push(path);
            }
        }
    }
    let mut values = Vec::new();
    for file in files {
        let out = Command::new(&age)
            .args(["-d", "-i"])
            .arg(fleet.identity())
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", file.display());
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        for v in doc["data"].as_object().unwrap().values() {
            values.push(v.as_str().unwrap().to_owned());
        }
    }
    assert!(values.len() > 100, "{}", values.len());
    values
}

fn assert_no_value(text: &str, values: &[String], what: &str) {
    for value in values {
        for part in std::iter::once(value.as_str()).chain(value.lines()) {
            // Short parts (a PEM's last line, a PIN) could match by chance.
            let part = part.trim();
            if part.len() >= 12 && !part.starts_with("-----") {
                assert!(!text.contains(part), "{what} holds a stored value");
            }
        }
    }
}

/// Crude text of an HTML document: tags dropped, entities left.
fn text_of(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn chromium(args: &[&str], home: &Path) -> std::process::Output {
    let out = Command::new(support::require("chromium").unwrap())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
        ])
        .arg(format!(
            "--user-data-dir={}",
            home.join("chromium").display()
        ))
        .args(args)
        .env("HOME", home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn report_shows_each_state_in_a_real_browser() {
    for tool in ["chromium", "age", "nebula-cert", "git"] {
        if support::require(tool).is_none() {
            return;
        }
    }
    let fleet = Fleet::init(vec![]);
    // Certificates valid for 10 and 45 days, through the fleet's own
    // template: the report, made as of 30 days from now, finds one
    // expired and one expiring within its 30 days.
    let template = fleet.path("templates/device.spec.toml.j2");
    let text = fs::read_to_string(&template).unwrap();
    assert!(text.contains("days = 825"));
    fs::write(
        &template,
        text.replace(
            "days = 825",
            "days = {{ device.vars.cert_days if device.vars.cert_days is defined else 825 }}",
        ),
    )
    .unwrap();
    fs::create_dir_all(fleet.path("devices")).unwrap();
    for (id, ip, days) in [("alpha", "10.8.0.10", 10), ("bravo", "10.8.0.11", 45)] {
        fs::write(
            fleet.path(&format!("devices/{id}.toml")),
            format!("ip = \"{ip}\"\ngroups = [\"pidgeon\"]\n\n[vars]\ncert_days = {days}\n"),
        )
        .unwrap();
    }
    fleet.run(&["new", "alpha", "bravo", "charlie", "delta", "echo"]);
    fleet.git(&["init", "-q"]);
    fleet.git(&["add", "-A"]);
    fleet.git(&["commit", "-qm", "provision"]);
    retire(&fleet, "echo", "stolen from the substation");
    fleet.git(&["add", "-A"]);
    fleet.git(&["commit", "-qm", "retire echo"]);
    // charlie: the store moves on, git's device file is put back: the file
    // differs from the store, and the store is newer than git.
    fleet.run(&["renew", "charlie", "--secret", "wifi.pass"]);
    fleet.git(&["checkout", "--", "secrets/charlie.yaml"]);
    // delta: renewed and not committed.
    fleet.run(&["renew", "delta", "--secret", "wifi.pass"]);

    let at = (time::OffsetDateTime::now_utc() + time::Duration::days(30)).date();
    let at = format!(
        "{:04}-{:02}-{:02}",
        at.year(),
        u8::from(at.month()),
        at.day()
    );
    let page = fleet.tmp.path().join("out/report.html");
    fs::create_dir_all(page.parent().unwrap()).unwrap();
    let before = fleet.snapshot();
    fleet.run(&["report", "--at", &at, "-o", page.to_str().unwrap()]);
    let json: Value = serde_json::from_str(&fleet.run(&["report", "--at", &at, "--json"])).unwrap();
    // A report writes nothing in the fleet.
    assert_eq!(before, fleet.snapshot());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&page).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }
    let html = fs::read_to_string(&page).unwrap();
    // Self-contained: nothing to run, nothing fetched.
    let lower = html.to_ascii_lowercase();
    for banned in ["<script", "<link", "@import", "url(", "src=", "href="] {
        assert!(!lower.contains(banned), "the page has {banned}");
    }
    assert!(lower.contains("<svg"));
    let values = stored_values(&fleet);
    assert_no_value(&html, &values, "the page");
    assert_no_value(&json.to_string(), &values, "--json");

    // The JSON has each state.
    let cert = |device: &str, name: &str| {
        json["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["device"] == device && c["name"] == name)
            .unwrap_or_else(|| panic!("{device} {name}"))
            .clone()
    };
    assert_eq!(cert("alpha", "postgres.crt")["state"], "expired");
    assert_eq!(cert("bravo", "postgres.crt")["state"], "expiring");
    assert_eq!(cert("charlie", "postgres.crt")["state"], "ok");
    let drift: Vec<(String, String)> = json["drift"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["file"].as_str().unwrap().to_owned(),
                d["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let has = |file: &str, kind: &str| drift.contains(&(file.to_owned(), kind.to_owned()));
    assert!(
        has("secrets/charlie.yaml", "differs-from-store"),
        "{drift:?}"
    );
    assert!(
        has("secrets/charlie.yaml", "store-newer-than-git"),
        "{drift:?}"
    );
    assert!(has("secrets/delta.yaml", "not-committed"), "{drift:?}");
    assert!(
        has("secrets/delta.yaml", "store-newer-than-git"),
        "{drift:?}"
    );
    assert!(
        !drift
            .iter()
            .any(|(f, _)| f.contains("alpha") || f.contains("bravo")),
        "{drift:?}"
    );
    let retired = &json["retired"]["devices"][0];
    assert_eq!(retired["id"], "echo");
    let nebula = retired["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "nebula.crt")
        .unwrap();
    assert_eq!(nebula["revoked"], true);
    // `rumor retire` published the CRL too: the report finds the device's
    // PostgreSQL certificate in it.
    let postgres = retired["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "postgres.crt")
        .unwrap();
    assert_eq!(postgres["revoked"], true, "{retired}");
    let keys = json["access"]["files"].as_array().unwrap();
    assert_eq!(keys.len(), 4);
    assert!(keys
        .iter()
        .all(|f| f["admins"] == serde_json::json!([true]) && f["device_key"] == true));
    let changes = json["changes"].as_array().unwrap();
    assert!(changes
        .iter()
        .any(|c| c["provenance"]["reason"] == "--secret wifi.pass"));

    // The browser renders each state.
    let artifacts = support::root().join("target/test-artifacts");
    fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("report.png");
    let _ = fs::remove_file(&shot);
    let url = format!("file://{}", page.display());
    let home = fleet.tmp.path().join("browser");
    fs::create_dir_all(&home).unwrap();
    chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,3000",
            &url,
        ],
        &home,
    );
    let png = fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{}",
        png.len()
    );
    let dom = String::from_utf8(chromium(&["--dump-dom", &url], &home).stdout).unwrap();
    let text = text_of(&dom);
    for shown in [
        "alpha postgres.crt x509",
        "expired",
        "bravo postgres.crt x509",
        "expiring",
        "secrets/charlie.yaml differs from the store",
        "secrets/charlie.yaml store newer than git",
        "secrets/delta.yaml not committed",
        "echo (retired)",
        "stolen from the substation",
        "revoked",
        "--secret wifi.pass",
    ] {
        assert!(
            text.contains(shown),
            "the rendered page lacks \"{shown}\":\n{text}"
        );
    }
    let _: PathBuf = shot;
}

#[test]
fn report_bad_input_is_one_line() {
    let fleet = Fleet::init(vec![]);
    fleet.run(&["new", "dev1"]);
    // No git repository: one line, exit 3, nothing written.
    let page = fleet.tmp.path().join("report.html");
    let out = fleet.output(&["report", "-o", page.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not in a git repository"), "{err}");
    assert!(!page.exists());
    // --no-git leaves git out.
    fleet.run(&["report", "--no-git", "-o", page.to_str().unwrap()]);
    assert!(fs::read_to_string(&page).unwrap().contains("not compared"));
    let out = fleet.output(&["report", "--no-git", "--at", "tomorrow"]);
    assert_eq!(out.status.code(), Some(2));
}

/// The git index is read natively in each version git writes (2 by
/// default, 3 with extended flags, 4 with path compression): the same
/// files come out committed, changed and untracked in each.
#[test]
fn drift_reads_every_index_version() {
    if support::require("git").is_none() {
        return;
    }
    let fleet = Fleet::init(vec![]);
    fleet.run(&["new", "dev1", "dev2"]);
    fleet.git(&["init", "-q"]);
    fleet.git(&["add", "-A"]);
    fleet.git(&["commit", "-qm", "provision"]);
    fs::write(fleet.path("templates/extra.j2"), "new\n").unwrap();
    let toml = fleet.path("devices/dev2.toml");
    let mut text = fs::read_to_string(&toml).unwrap();
    text.push_str("name = \"Two\"\n");
    fs::write(&toml, text).unwrap();
    let mut seen = Vec::new();
    for version in ["2", "3", "4"] {
        fleet.git(&["update-index", "--index-version", version]);
        if version == "3" {
            // An extended-flags entry (intent to add) makes git keep v3.
            fs::write(fleet.path("devices/notes.txt"), "n\n").unwrap();
            fleet.git(&["add", "-N", "devices/notes.txt"]);
        }
        let json: Value = serde_json::from_str(&fleet.run(&["report", "--json"])).unwrap();
        let mut drift: Vec<(String, String)> = json["drift"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["file"].as_str().unwrap().to_owned(),
                    d["kind"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        drift.sort();
        drift.retain(|(f, _)| f != "devices/notes.txt");
        seen.push(drift);
    }
    let want = vec![
        ("devices/dev2.toml".to_owned(), "not-committed".to_owned()),
        ("templates/extra.j2".to_owned(), "untracked".to_owned()),
    ];
    for drift in &seen {
        assert_eq!(drift, &want);
    }
}
