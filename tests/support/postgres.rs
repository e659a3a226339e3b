//! A throwaway PostgreSQL 15 cluster for tests: its own temp dir, a unix
//! socket there and a free loopback port, optionally TLS; stopped on drop.
//! Run as the `postgres` user when the tests run as root (the server
//! refuses root).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Postgres {
    /// Starts a cluster; `tls` is a server certificate and key (PEM) to
    /// turn `ssl = on`. None skips outside CI when PostgreSQL is missing.
    #[track_caller]
    pub fn start(tls: Option<(&str, &str)>) -> Option<Postgres> {
        // The three must come from one installation.
        let initdb = super::require("initdb")?.canonicalize().unwrap();
        let bin = initdb.parent().unwrap().to_path_buf();
        for tool in ["pg_ctl", "psql"] {
            if !bin.join(tool).is_file() {
                assert!(
                    !super::ci(),
                    "{tool} is missing beside {}",
                    initdb.display()
                );
                eprintln!("skipping: {tool} is missing beside {}", initdb.display());
                return None;
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let mut options = format!(
            "-k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            dir.path().display()
        );
        if let Some((cert, key)) = tls {
            use std::os::unix::fs::PermissionsExt;
            std::fs::write(dir.path().join("server.crt"), cert).unwrap();
            std::fs::write(dir.path().join("server.key"), key).unwrap();
            std::fs::set_permissions(
                dir.path().join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={0}/server.crt -c ssl_key_file={0}/server.key",
                dir.path().display()
            ));
        }
        if is_root() {
            super::ok(
                Command::new("chown")
                    .arg("-R")
                    .arg("postgres:")
                    .arg(dir.path()),
            );
        }
        let port = super::free_port();
        let pg = Postgres { dir, bin, port };
        super::ok(
            pg.cmd("initdb")
                .args([
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-D",
                ])
                .arg(pg.data()),
        );
        // Password logins for everyone but the superuser, on the socket and
        // on TCP, to prove the rendered passwords are the stored ones.
        std::fs::write(
            pg.data().join("pg_hba.conf"),
            "local all postgres trust\nlocal all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();
        let log = pg.dir.path().join("log");
        super::ok(
            pg.cmd("pg_ctl")
                .arg("-D")
                .arg(pg.data())
                .arg("-o")
                .arg(format!("-p {port} {options}"))
                .arg("-l")
                .arg(log)
                .args(["-w", "start"]),
        );
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The cluster's directory (its socket lives here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A PostgreSQL tool, as the postgres user when we are root.
    pub fn cmd(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        cmd.current_dir(self.dir.path());
        cmd
    }

    /// `sql` through psql on the socket as `user` on `db`, stopping at the
    /// first error; unaligned tuples only on stdout.
    pub fn psql(&self, user: &str, db: &str, password: Option<&str>, sql: &str) -> Output {
        let mut cmd = self.cmd("psql");
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string()])
            .arg("-U")
            .arg(user)
            .arg("-d")
            .arg(db);
        match password {
            Some(pw) => cmd.env("PGPASSWORD", pw),
            None => cmd.env_remove("PGPASSWORD"),
        };
        let out = super::with_stdin(&mut cmd, sql.as_bytes());
        eprintln!("psql stderr: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    /// `sql` as the superuser; must succeed; returns stdout.
    #[track_caller]
    pub fn admin(&self, sql: &str) -> String {
        let out = self.psql("postgres", "postgres", None, sql);
        assert!(
            out.status.success(),
            "psql as postgres failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A client psql (as the caller) connecting with `conninfo`.
    pub fn client(&self, conninfo: &str, password: &str) -> Command {
        let mut cmd = Command::new(self.bin.join("psql"));
        cmd.arg(conninfo)
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "10");
        cmd
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .output();
    }
}
