//! rumor against a production-shaped Vault: a three-node OpenBao raft
//! cluster with TLS (a node killed, sealed or partitioned mid-run, a wrong
//! CA), tokens that expire mid-run (AppRole and static), and rate-limit
//! quotas. Every server is real and started here, on loopback.
//!
//! The cluster tests take minutes; `RUMOR_SKIP_SLOW=1` skips them outside
//! CI.

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::cluster::{make_ca, Cluster};
use support::fleet::Fleet;
use support::{require, skip_slow, Bao};

/// A few stored values per device, to compare across runs: new never
/// rotates, so once a value is in the store it must stay.
const WATCHED: [&str; 3] = ["postgres.password.postgres", "wifi.pass", "cloud.api-key"];

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn args<'a>(command: &'a str, ids: &'a [String]) -> Vec<&'a str> {
    std::iter::once(command)
        .chain(ids.iter().map(String::as_str))
        .collect()
}

/// The watched values of a device's `current` on the active node, if it
/// has one.
fn stored(cluster: &Cluster, id: &str) -> Option<BTreeMap<String, String>> {
    stored_at(cluster, cluster.leader(), id)
}

/// [`stored`] on node `at`.
fn stored_at(cluster: &Cluster, at: usize, id: &str) -> Option<BTreeMap<String, String>> {
    let data = cluster.kv_get_at(at, &format!("rumor/devices/{id}/current"))?;
    Some(
        WATCHED
            .iter()
            .filter_map(|k| Some((k.to_string(), data[*k].as_str()?.to_owned())))
            .collect(),
    )
}

/// The device file, decrypted by the real sops, holds the store's values.
#[track_caller]
fn file_matches_store(fleet: &Fleet, cluster: &Cluster, id: &str) {
    let plain = fleet.sops_decrypt(id, &fleet.identity());
    let store = stored(cluster, id).expect("a stored device");
    assert_eq!(store.len(), WATCHED.len(), "{id}: {store:?}");
    for (name, value) in &store {
        assert!(
            plain.values().any(|v| v.contains(value.as_str())),
            "{id}: the device file lacks the store's {name}"
        );
    }
}

/// A run that a fault hit: it finished, or it stopped with exit 4 and
/// only one-line `rumor:` messages.
#[track_caller]
fn finished_or_stopped(code: Option<i32>, stderr: &str) {
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.lines().all(|l| l.starts_with("rumor: ")),
        "every message is one rumor: line: {stderr}"
    );
    match code {
        Some(0) => {}
        Some(4) => assert!(
            stderr
                .lines()
                .any(|l| l.contains("Vault at https://127.0.0.1:")),
            "a store fault names the server: {stderr}"
        ),
        other => panic!("exit {other:?} after a fault: {stderr}"),
    }
}

/// Runs `rumor new` of 30 fresh devices per point and strikes the cluster
/// at that fraction of a run's length; then repairs it, re-runs, checks,
/// and compares store and git. Returns how many runs finished on their
/// own despite the fault.
fn strike(
    cluster: &mut Cluster,
    fleet: &Fleet,
    tag: &str,
    points: &[u32],
    span: Duration,
    fault: &dyn Fn(&mut Cluster) -> usize,
    repair: &dyn Fn(&mut Cluster, usize),
) -> usize {
    let mut finished = 0;
    let mut hit = 0;
    for (round, percent) in points.iter().enumerate() {
        let batch = ids(&format!("{tag}{round}x"), 30);
        let mut child = fleet
            .rumor()
            .args(args("new", &batch))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        });
        std::thread::sleep(span * *percent / 100);
        let struck = fault(cluster);
        let status = child.wait().unwrap();
        let stderr = reader.join().unwrap();
        eprintln!(
            "{tag} at {percent}%: node {struck} struck; exit {:?}; {} lines",
            status.code(),
            stderr.lines().count()
        );
        finished_or_stopped(status.code(), &stderr);
        if status.success() {
            finished += 1;
        }
        // A fault that lands after the run is no test of anything.
        if stderr.contains("requests retried") || !status.success() {
            hit += 1;
        }
        let t = Instant::now();
        // What the struck run left in the store must survive the re-run
        // (read once the cluster is whole again: a cut leader answers no
        // one).
        repair(cluster, struck);
        let t1 = t.elapsed();
        let leader = cluster.leader();
        let before: BTreeMap<String, BTreeMap<String, String>> = batch
            .iter()
            .step_by(3)
            .filter_map(|id| Some((id.clone(), stored_at(cluster, leader, id)?)))
            .collect();
        let t2 = t.elapsed();
        fleet.run(&args("new", &batch));
        fleet.run(&args("check", &batch));
        eprintln!(
            "{tag}{round}: repaired {t1:?}, read back {t2:?}, re-run and check {:?}",
            t.elapsed()
        );
        let leader = cluster.leader();
        for (id, values) in &before {
            assert_eq!(
                &stored_at(cluster, leader, id).unwrap(),
                values,
                "{id}: a stored secret changed after the fault"
            );
        }
        for id in batch.iter().step_by(10) {
            file_matches_store(fleet, cluster, id);
        }
    }
    assert!(
        hit * 2 >= points.len(),
        "only {hit} of {} faults landed mid-run",
        points.len()
    );
    finished
}

/// A cluster (standby reads on, OpenBao's default, or off) and a fleet on
/// it with 30 devices; the time that took.
fn cluster_fleet(standby_reads: bool) -> Option<(Cluster, Fleet, Duration)> {
    require("sops")?;
    let cluster = Cluster::start_with(standby_reads)?;
    let fleet = Fleet::init(cluster.env());
    let start = Instant::now();
    fleet.run(&args("new", &ids("base", 30)));
    Some((cluster, fleet, start.elapsed()))
}

/// The active node SIGKILLed at ten points of a 30-device run, on a
/// cluster with OpenBao's default configuration (standbys serve reads) and
/// rumor's default retries: each run finishes on the new leader or stops
/// with exit 4; a re-run converges, `rumor check` passes, and no secret
/// has two values across store and git. A wrong CA first: one line naming
/// the server, no retry storm.
#[test]
fn leader_killed_at_ten_points() {
    if skip_slow("leader_killed_at_ten_points") {
        return;
    }
    let Some((mut cluster, mut fleet, span)) = cluster_fleet(true) else {
        return;
    };

    // A CA that did not sign the nodes: refused at the handshake, once.
    let other = make_ca(&require("openssl").unwrap(), cluster.dir.path(), "other-ca");
    let env = fleet.env.clone();
    fleet.env.retain(|(k, _)| *k != "VAULT_CACERT");
    fleet
        .env
        .push(("VAULT_CACERT", other.display().to_string()));
    let before: usize = cluster
        .nodes
        .iter()
        .map(|n| n.api.accepted.load(std::sync::atomic::Ordering::SeqCst))
        .sum();
    let out = fleet.output(&["new", "wrong-ca"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains(&cluster.nodes[0].addr()))
        .unwrap_or_else(|| panic!("no line names the server: {stderr}"));
    assert!(
        line.contains("certificate") && line.contains("VAULT_CACERT"),
        "{line}"
    );
    let after: usize = cluster
        .nodes
        .iter()
        .map(|n| n.api.accepted.load(std::sync::atomic::Ordering::SeqCst))
        .sum();
    assert!(
        after - before <= 2,
        "a wrong CA is not retried: {} connections",
        after - before
    );
    assert!(!stderr.contains("requests retried"), "{stderr}");
    fleet.env = env;
    fleet.run(&["new", "wrong-ca"]);

    let points: Vec<u32> = (0..10).map(|i| 5 + i * 10).collect();
    let finished = strike(
        &mut cluster,
        &fleet,
        "k",
        &points,
        span,
        &|c| {
            let leader = c.leader();
            c.kill(leader);
            leader
        },
        &|c, node| c.restart(node),
    );
    eprintln!(
        "{finished} of {} runs finished on the new leader",
        points.len()
    );
    fleet.run(&["check"]);
}

/// Standbys serve reads (OpenBao's default), rumor talks to one, and that
/// one lags: what the active node sends it arrives 2 s late. Commands
/// run back to back (`new`, `renew` of the same devices, `check`) each
/// read what the one before wrote, through the consistency headers and the
/// position the last command left, and finish the first time. Without the
/// headers, or with them but without the position carried over, `check`
/// read the standby's older `current` and called the files just renewed
/// "changed outside rumor, or planted" (exit 5).
#[test]
fn back_to_back_runs_on_a_lagging_standby() {
    if skip_slow("back_to_back_runs_on_a_lagging_standby") || require("sops").is_none() {
        return;
    }
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let standby = (cluster.leader() + 1) % 3;
    let fleet = Fleet::init(cluster.env_from(standby));
    cluster.nodes[standby].cluster.slow(Duration::from_secs(2));
    let batch = ids("lag", 10);
    for _ in 0..3 {
        fleet.run(&args("new", &batch));
        fleet.run(&args("renew", &batch));
        fleet.run(&args("check", &batch));
    }
    // The standby did lag: a write on the active node is not there yet.
    let leader = cluster.leader();
    let out = cluster.bao_at(leader, &["kv", "put", "-mount=secret", "lagged", "v=1"]);
    assert!(out.status.success());
    assert_eq!(
        cluster.kv_get_at(standby, "lagged"),
        None,
        "the standby was not behind"
    );
    assert!(cluster.kv_get_at(leader, "lagged").is_some());
    for id in batch.iter().step_by(3) {
        file_matches_store(&fleet, &cluster, id);
    }
}

/// The active node sealed, and a node partitioned away (its listeners
/// cut, to clients and to the other nodes), mid-run: the same outcome as
/// a kill. This cluster has standby reads off (`disable_standby_reads =
/// true`, every request forwarded to the active node), the other
/// configuration operators run.
#[test]
fn node_sealed_or_partitioned_mid_run() {
    if skip_slow("node_sealed_or_partitioned_mid_run") {
        return;
    }
    let Some((mut cluster, fleet, span)) = cluster_fleet(false) else {
        return;
    };
    strike(
        &mut cluster,
        &fleet,
        "s",
        &[20, 60],
        span,
        &|c| {
            let leader = c.leader();
            c.seal(leader);
            leader
        },
        &|c, node| {
            c.unseal(node);
            c.settle();
        },
    );
    // The partitioned node is the one rumor talks to first, then the
    // active one.
    strike(
        &mut cluster,
        &fleet,
        "p",
        &[30, 50],
        span,
        &|c| {
            c.partition(0);
            0
        },
        &|c, node| {
            c.heal(node);
            c.settle();
        },
    );
    // Two points, as for the others: at one, a run faster than the
    // calibrating one may be past its last request when the cut lands.
    strike(
        &mut cluster,
        &fleet,
        "q",
        &[20, 40],
        span,
        &|c| {
            let leader = c.leader();
            c.partition(leader);
            leader
        },
        &|c, node| {
            c.heal(node);
            c.settle();
        },
    );
    fleet.run(&["check"]);
}

/// A JSON API call as root on the dev server; asserts a 2xx.
#[track_caller]
fn api(bao: &Bao, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
    let (status, text) = bao.api(method, path, Some(&body.to_string()));
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {text}"
    );
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

/// A policy that may do what rumor does under `secret/`.
fn rumor_policy(bao: &Bao) {
    let policy = r#"path "secret/*" { capabilities = ["create", "read", "update", "list"] }"#;
    api(
        bao,
        "PUT",
        "/v1/sys/policies/acl/rumor",
        serde_json::json!({ "policy": policy }),
    );
}

/// An AppRole token that lives 3 s, and a run (up to 200 devices) that
/// outlasts it: rumor logs in again (the audit log shows more than one login) and
/// the run finishes. A static token that expires mid-run stops the run
/// with one line saying so, exit 4, and a fresh token converges.
#[test]
fn tokens_that_expire_mid_run() {
    if skip_slow("tokens_that_expire_mid_run") {
        return;
    }
    let audit = tempfile::tempdir().unwrap();
    let log = audit.path().join("audit.log");
    let Some(bao) = Bao::start_audited(&log) else {
        return;
    };
    if require("sops").is_none() {
        return;
    }
    rumor_policy(&bao);
    api(
        &bao,
        "POST",
        "/v1/sys/auth/approle",
        serde_json::json!({ "type": "approle" }),
    );
    api(
        &bao,
        "POST",
        "/v1/auth/approle/role/rumor",
        serde_json::json!({ "token_ttl": "3s", "token_max_ttl": "3s", "token_policies": ["rumor"] }),
    );
    let role_id = api(
        &bao,
        "GET",
        "/v1/auth/approle/role/rumor/role-id",
        serde_json::json!({}),
    )["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_id = api(
        &bao,
        "POST",
        "/v1/auth/approle/role/rumor/secret-id",
        serde_json::json!({}),
    )["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut fleet = Fleet::init(bao.env());
    // How long a device takes on this machine sizes the runs below so
    // each outlasts its token several times over (on a fast machine, 200
    // devices; under load, fewer). Nothing asserts on the time.
    let start = Instant::now();
    fleet.run(&args("new", &ids("c", 10)));
    let per_device = start.elapsed() / 10;
    let outlasting = |ttl: Duration| {
        (ttl.as_millis() * 4 / per_device.as_millis().max(1)).clamp(20, 200) as usize
    };

    fleet.env = vec![
        ("VAULT_ADDR", bao.addr.clone()),
        ("VAULT_ROLE_ID", role_id),
        ("VAULT_SECRET_ID", secret_id.clone()),
    ];
    let batch = ids("a", outlasting(Duration::from_secs(3)));
    let out = fleet.output(&args("new", &batch));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains(&secret_id));
    let logins = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"type\":\"request\"") && l.contains("auth/approle/login"))
        .count();
    eprintln!("{logins} AppRole logins during the run");
    assert!(logins >= 2, "rumor never logged in again: {logins} logins");
    fleet.run(&args("check", &batch));

    // A static token with 6 s to live, explicitly capped: no renewal.
    let token = api(
        &bao,
        "POST",
        "/v1/auth/token/create",
        serde_json::json!({ "ttl": "6s", "explicit_max_ttl": "6s", "policies": ["rumor"] }),
    )["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    fleet.env = vec![
        ("VAULT_ADDR", bao.addr.clone()),
        ("VAULT_TOKEN", token.clone()),
    ];
    let batch = ids("t", outlasting(Duration::from_secs(6)));
    let out = fleet.output(&args("new", &batch));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(!stderr.contains(&token), "the token leaked");
    let expired: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("token has expired"))
        .collect();
    assert!(
        !expired.is_empty() && expired.iter().all(|l| l.contains(&bao.addr)),
        "{stderr}"
    );
    assert!(stderr.lines().all(|l| l.starts_with("rumor: ")), "{stderr}");
    assert!(
        batch.iter().any(|id| fleet.file(id).exists()),
        "the token expired mid-run, after some devices were done: {stderr}"
    );
    fleet.env = bao.env();
    fleet.run(&args("new", &batch));
    fleet.run(&["check"]);
}

/// Sets up a rate-limit quota on the KV mount with the response headers
/// on (Retry-After comes with them).
fn quota(bao: &Bao, rate: u32) {
    api(
        bao,
        "PUT",
        "/v1/sys/quotas/config",
        serde_json::json!({ "enable_rate_limit_response_headers": true }),
    );
    api(
        bao,
        "PUT",
        "/v1/sys/quotas/rate-limit/kv",
        serde_json::json!({ "path": "secret/", "rate": rate, "interval": "1s" }),
    );
}

/// The summary's retry counts: (retried, rate-limited).
fn retry_counts(stderr: &str) -> Option<(u64, u64)> {
    let line = stderr.lines().find(|l| l.contains("requests retried"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "requests")?;
    let retried = words[at - 1].parse().ok()?;
    let limited = words
        .iter()
        .position(|w| *w == "rate-limited;" || *w == "rate-limited)")
        .and_then(|i| words[i - 1].trim_start_matches('(').parse().ok())
        .unwrap_or(0);
    Some((retried, limited))
}

/// A quota low enough that a fleet run hits it: rumor backs off on the
/// 429s, lowers how many requests it has in flight, finishes, and says
/// how many requests it retried.
#[test]
fn rate_limited_run_finishes() {
    let Some(bao) = Bao::start() else { return };
    if require("sops").is_none() {
        return;
    }
    let fleet = Fleet::init(bao.env());
    quota(&bao, 5);
    let batch = ids("r", 16);
    let out = fleet.output(&args("new", &batch));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let (retried, limited) = retry_counts(&stderr).unwrap_or_else(|| panic!("{stderr}"));
    assert!(limited > 0 && retried >= limited, "{stderr}");
    assert!(stderr.contains("in flight"), "{stderr}");
    fleet.run(&args("check", &batch));
    // A re-run with nothing to do changes nothing, quota or not.
    let before = fleet.snapshot();
    fleet.run(&args("new", &batch));
    assert_eq!(fleet.snapshot(), before);
}

/// `cargo test --test cluster -- --ignored rate_limit_bench --nocapture`:
/// the same 60-device run with and without a quota.
#[test]
#[ignore = "a benchmark: prints the slowdown a rate limit causes"]
fn rate_limit_bench() {
    let time = |rate: Option<u32>| {
        let bao = Bao::start().unwrap();
        let fleet = Fleet::init(bao.env());
        if let Some(rate) = rate {
            quota(&bao, rate);
        }
        let start = Instant::now();
        let out = fleet.output(&args("new", &ids("b", 60)));
        assert!(out.status.success());
        let counts = retry_counts(&String::from_utf8_lossy(&out.stderr)).unwrap_or((0, 0));
        (start.elapsed(), counts)
    };
    let (free, _) = time(None);
    let (limited, (retried, _)) = time(Some(5));
    println!(
        "bench: rumor new, 60 devices: {:.1} s without a quota, {:.1} s at 5 requests/s ({:.1}x, {retried} retries)",
        free.as_secs_f64(),
        limited.as_secs_f64(),
        limited.as_secs_f64() / free.as_secs_f64()
    );
}
