//! A real three-node OpenBao cluster on loopback: integrated storage
//! (raft), TLS from a CA the test makes with openssl, init, unseal, join.
//!
//! By default the nodes keep OpenBao's own default: standbys serve reads
//! from their own copy, which may lag the active node's, and rumor's
//! consistency headers (`X-Vault-Index`) are what keep its reads after its
//! writes. [`Cluster::start_with`] can turn standby reads off
//! (`disable_standby_reads = true`: standbys forward every request).
//!
//! Each node's API and cluster ports sit behind a TCP proxy, and the nodes
//! advertise the proxies, so a test can partition a node (cut both: rumor
//! loses it, and the other nodes cannot open connections to it) as well
//! as kill or seal it. The
//! nodes talk TLS end to end through the proxies.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::proxy::Proxy;
use super::{free_port, require};

/// How long bring-up steps may take before the harness gives up.
const PATIENCE: Duration = Duration::from_secs(90);

/// One node: its process, its real ports, and the proxies in front.
pub struct Node {
    pub name: String,
    child: Option<Child>,
    config: PathBuf,
    log: PathBuf,
    pub api: Proxy,
    pub cluster: Proxy,
}

impl Node {
    /// `https://127.0.0.1:<api proxy>`, what clients and the other nodes use.
    pub fn addr(&self) -> String {
        format!("https://127.0.0.1:{}", self.api.port)
    }
}

/// Three OpenBao nodes in one raft cluster, stopped on drop.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    bao: PathBuf,
    /// The test CA's certificate (PEM), for VAULT_CACERT.
    pub ca: PathBuf,
    pub nodes: Vec<Node>,
    /// The root token.
    pub token: String,
    unseal_key: String,
}

/// Makes a self-signed P-256 CA with openssl: `<name>.crt` and
/// `<name>.key` in `dir`; returns the certificate's path.
pub fn make_ca(openssl: &Path, dir: &Path, name: &str) -> PathBuf {
    let run = |args: &[&str]| {
        let out = Command::new(openssl)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ca = format!("{name}.crt");
    let ca_key = format!("{name}.key");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &ca_key,
        "-out",
        &ca,
        "-days",
        "2",
        "-subj",
        &format!("/CN={name}"),
    ]);
    dir.join(ca)
}

impl Cluster {
    /// Starts, initialises, unseals and joins three nodes with OpenBao's
    /// default configuration (standbys serve reads), and mounts KV v2 at
    /// `secret/`; None where bao or openssl is missing outside CI.
    #[track_caller]
    pub fn start() -> Option<Cluster> {
        Cluster::start_with(true)
    }

    /// [`Cluster::start`], with standby reads on (OpenBao's default) or
    /// off (`disable_standby_reads = true`).
    #[track_caller]
    pub fn start_with(standby_reads: bool) -> Option<Cluster> {
        let bao = require("bao")?;
        let openssl = require("openssl")?;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ca = make_ca(&openssl, d, "test-ca");
        let run = |args: &[&str]| {
            let out = Command::new(&openssl)
                .args(args)
                .current_dir(d)
                .output()
                .unwrap();
            assert!(out.status.success(), "openssl {args:?}");
        };
        run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "node.key",
            "-out",
            "node.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(
            d.join("ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "node.csr",
            "-CA",
            "test-ca.crt",
            "-CAkey",
            "test-ca.key",
            "-CAcreateserial",
            "-out",
            "node.crt",
            "-days",
            "2",
            "-extfile",
            "ext",
        ]);
        // Ports first: every node's config names every node's proxy.
        let real: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let mut nodes: Vec<Node> = real
            .iter()
            .enumerate()
            .map(|(i, (api, cluster))| Node {
                name: format!("n{i}"),
                child: None,
                config: d.join(format!("n{i}.hcl")),
                log: d.join(format!("n{i}.log")),
                api: Proxy::start(*api),
                cluster: Proxy::start(*cluster),
            })
            .collect();
        let joins: String = nodes
            .iter()
            .map(|n| {
                format!(
                    "  retry_join {{\n    leader_api_addr = \"{}\"\n    leader_ca_cert_file = \"{}\"\n  }}\n",
                    n.addr(),
                    ca.display()
                )
            })
            .collect();
        for (node, (api, cluster)) in nodes.iter().zip(&real) {
            let data = d.join(&node.name);
            std::fs::create_dir_all(&data).unwrap();
            let config = format!(
                "storage \"raft\" {{\n  path = \"{data}\"\n  node_id = \"{name}\"\n  performance_multiplier = 1\n{joins}}}\n\
                 listener \"tcp\" {{\n  address = \"127.0.0.1:{api}\"\n  cluster_address = \"127.0.0.1:{cluster}\"\n  tls_cert_file = \"{dir}/node.crt\"\n  tls_key_file = \"{dir}/node.key\"\n}}\n\
                 api_addr = \"{addr}\"\ncluster_addr = \"https://127.0.0.1:{cport}\"\ndisable_mlock = true\nui = false\ndisable_standby_reads = {no_reads}\n",
                data = data.display(),
                name = node.name,
                dir = d.display(),
                addr = node.addr(),
                cport = node.cluster.port,
                no_reads = !standby_reads,
            );
            std::fs::write(&node.config, config).unwrap();
        }
        let mut cluster = Cluster {
            dir,
            bao,
            ca,
            nodes: Vec::new(),
            token: String::new(),
            unseal_key: String::new(),
        };
        for node in &mut nodes {
            spawn(&cluster.bao, cluster.dir.path(), node);
        }
        cluster.nodes = nodes;
        // Init on the first node once it answers.
        let init = cluster.until("the first node answers init", || {
            let out = cluster.bao_at(
                0,
                &[
                    "operator",
                    "init",
                    "-key-shares=1",
                    "-key-threshold=1",
                    "-format=json",
                ],
            );
            out.status.success().then_some(out.stdout)
        });
        let init: serde_json::Value = serde_json::from_slice(&init).unwrap();
        cluster.unseal_key = init["unseal_keys_b64"][0].as_str().unwrap().to_owned();
        cluster.token = init["root_token"].as_str().unwrap().to_owned();
        for i in 0..3 {
            cluster.unseal(i);
        }
        cluster.until("three voters", || {
            let out = cluster.bao_at(0, &["operator", "raft", "list-peers", "-format=json"]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            let servers = v["data"]["config"]["servers"].as_array()?;
            (servers.len() == 3 && servers.iter().all(|s| s["voter"] == true)).then_some(())
        });
        let leader = cluster.leader();
        let out = cluster.bao_at(leader, &["secrets", "enable", "-path=secret", "kv-v2"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Every node serves the mount before the test starts.
        for i in 0..3 {
            cluster.until("the mount on every node", || {
                let out = cluster.bao_at(i, &["kv", "list", "-mount=secret", "/"]);
                let said = String::from_utf8_lossy(&out.stderr);
                (out.status.success() || said.contains("No value found")).then_some(())
            });
        }
        Some(cluster)
    }

    /// Polls `f` until it gives a value; panics with the nodes' logs after
    /// [`PATIENCE`].
    #[track_caller]
    pub fn until<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > deadline {
                for n in &self.nodes {
                    let log = std::fs::read_to_string(&n.log).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(15).collect();
                    eprintln!(
                        "--- {} ---\n{}",
                        n.name,
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    );
                }
                panic!("the cluster never reached: {what}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The bao CLI against node `i`, as root.
    pub fn bao_at(&self, i: usize, args: &[&str]) -> std::process::Output {
        Command::new(&self.bao)
            .args(args)
            .env("VAULT_ADDR", self.nodes[i].addr())
            .env("VAULT_CACERT", &self.ca)
            .env("VAULT_TOKEN", &self.token)
            .env("HOME", self.dir.path())
            .env_remove("VAULT_NAMESPACE")
            .output()
            .unwrap()
    }

    /// The bao CLI against the active node; must succeed; stdout.
    #[track_caller]
    pub fn bao(&self, args: &[&str]) -> String {
        let out = self.bao_at(self.leader(), args);
        assert!(
            out.status.success(),
            "bao {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Unseals node `i`, retrying while it has not joined yet.
    pub fn unseal(&self, i: usize) {
        self.until(&format!("{} unsealed", self.nodes[i].name), || {
            let out = self.bao_at(i, &["operator", "unseal", "-format=json", &self.unseal_key]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            (v["sealed"] == false).then_some(())
        });
    }

    /// Which node is active, asking any live node that knows.
    #[track_caller]
    pub fn leader(&self) -> usize {
        self.until("an active node", || {
            (0..3).find_map(|i| {
                let out = self.bao_at(i, &["read", "-format=json", "sys/leader"]);
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
                let addr = v["data"]["leader_address"].as_str()?;
                let at = self.nodes.iter().position(|n| n.addr() == addr)?;
                // The leader itself must agree: a dead one cannot.
                let out = self.bao_at(at, &["read", "-format=json", "sys/leader"]);
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
                (v["data"]["is_self"] == true).then_some(at)
            })
        })
    }

    /// SIGKILLs node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` again (after a kill), unseals it, and waits until
    /// the cluster has an active node and three voters again.
    pub fn restart(&mut self, i: usize) {
        if self.nodes[i].child.is_none() {
            let home = self.dir.path().to_path_buf();
            spawn(&self.bao, &home, &mut self.nodes[i]);
        }
        self.unseal(i);
        self.settle();
    }

    /// Waits until every node is unsealed and the active node sees three
    /// healthy voters.
    pub fn settle(&self) {
        self.until("a healthy cluster of three", || {
            let leader = self.leader();
            let out = self.bao_at(
                leader,
                &["operator", "raft", "autopilot", "state", "-format=json"],
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            let servers = v["Servers"].as_object()?;
            (v["Healthy"] == true && servers.len() == 3).then_some(())
        });
    }

    /// Seals node `i` (the active node steps down).
    #[track_caller]
    pub fn seal(&self, i: usize) {
        let out = self.bao_at(i, &["operator", "seal"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Cuts node `i` off: its API, and the other nodes' connections to its
    /// cluster port (its own outbound raft traffic still flows).
    pub fn partition(&self, i: usize) {
        self.nodes[i].api.cut();
        self.nodes[i].cluster.cut();
    }

    /// Undoes [`Cluster::partition`].
    pub fn heal(&self, i: usize) {
        self.nodes[i].api.restore();
        self.nodes[i].cluster.restore();
    }

    /// Environment for rumor: the first node as VAULT_ADDR, the others as
    /// RUMOR_VAULT_NODES, the test CA and the root token; rumor's default
    /// retries.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        self.env_from(0)
    }

    /// [`Cluster::env`] with node `first` as VAULT_ADDR.
    pub fn env_from(&self, first: usize) -> Vec<(&'static str, String)> {
        vec![
            ("VAULT_ADDR", self.nodes[first].addr()),
            (
                "RUMOR_VAULT_NODES",
                (1..3)
                    .map(|i| self.nodes[(first + i) % 3].addr())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("VAULT_CACERT", self.ca.display().to_string()),
            ("VAULT_TOKEN", self.token.clone()),
        ]
    }

    /// The data of `secret/<path>`'s current version on the active node,
    /// as JSON.
    pub fn kv_get(&self, path: &str) -> Option<serde_json::Value> {
        self.kv_get_at(self.leader(), path)
    }

    /// [`Cluster::kv_get`] on node `i`.
    pub fn kv_get_at(&self, i: usize, path: &str) -> Option<serde_json::Value> {
        let out = self.bao_at(i, &["kv", "get", "-format=json", "-mount=secret", path]);
        if !out.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        Some(v["data"]["data"].clone())
    }
}

/// Starts a node's server process, its output in its log.
fn spawn(bao: &Path, home: &Path, node: &mut Node) {
    let log = std::fs::File::create(&node.log).unwrap();
    let child = Command::new(bao)
        .args(["server", "-config"])
        .arg(&node.config)
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start bao server");
    node.child = Some(child);
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
