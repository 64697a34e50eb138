//! A real PostgreSQL server for the tests, from Debian's `postgresql` package: `initdb` in
//! a temporary directory, `postgres` on a free loopback port, stopped and removed when the
//! value is dropped. PostgreSQL refuses to run as root, so when the tests run as root the
//! server runs as the package's `postgres` user. `MEDIATOR_TEST_PG_BIN` names another
//! directory holding `initdb`, `postgres` and `psql`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a new server may take to accept connections.
pub const PG_START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running PostgreSQL server (superuser `postgres`, trust authentication on loopback).
pub struct Postgres {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// The directory of PostgreSQL's programs: the newest `/usr/lib/postgresql/N/bin`.
fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MEDIATOR_TEST_PG_BIN") {
        return PathBuf::from(d);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (apt-get install postgresql; .ci/test does it)")
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .expect("no /usr/lib/postgresql/N/bin/postgres")
        .1
}

/// The `postgres` user's uid and gid, when the tests run as root.
fn server_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .expect("no postgres user (Debian's postgresql package creates it)");
    let f: Vec<&str> = line.split(':').collect();
    Some((f[2].parse().unwrap(), f[3].parse().unwrap()))
}

impl Postgres {
    /// Starts a fresh server; panics with its log if it does not come up.
    pub fn start() -> Postgres {
        Postgres::start_with(&[], &[])
    }

    /// Starts a fresh server that also accepts TLS, with `cert` and `key` (PEM) as its
    /// certificate chain and private key.
    pub fn start_with_tls(cert: &str, key: &str) -> Postgres {
        Postgres::start_with(
            &[
                "ssl=on",
                "ssl_cert_file=server.crt",
                "ssl_key_file=server.key",
            ],
            &[("server.crt", cert), ("server.key", key)],
        )
    }

    /// Starts a fresh server with `settings` (`name=value`, relative paths are in the data
    /// directory) and `files` written into its data directory (readable by the server only).
    pub fn start_with(settings: &[&str], files: &[(&str, &str)]) -> Postgres {
        let user = server_user();
        let dir = tempfile::Builder::new()
            .prefix("mediator-pg")
            .tempdir()
            .expect("tempdir");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        let data = dir.path().join("data");
        let bin = bin_dir();
        let out = Self::command(user, &bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("running initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for (name, text) in files {
            use std::os::unix::fs::PermissionsExt;
            let path = data.join(name);
            std::fs::write(&path, text).expect("writing a server file");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            if let Some((uid, gid)) = user {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown");
            }
        }
        let port = crate::free_tcp_port();
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path().join("server.log"), Some(uid), Some(gid))
                .expect("chown");
        }
        let child = Self::command(user, &bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.path().display()))
            .args(settings.iter().flat_map(|kv| ["-c", kv]))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting postgres");
        let pg = Postgres { child, port, dir };
        let t0 = Instant::now();
        loop {
            let ok = pg.psql("postgres", "SELECT 1").is_ok();
            if ok {
                return pg;
            }
            assert!(
                t0.elapsed() < PG_START_TIMEOUT,
                "postgres did not start: {}",
                std::fs::read_to_string(pg.dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn command(user: Option<(u32, u32)>, program: &Path) -> Command {
        let mut c = Command::new(program);
        if let Some((uid, gid)) = user {
            c.uid(uid).gid(gid).env("HOME", "/tmp");
        }
        c
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs `sql` in `db` with psql; returns its output (unaligned, tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(bin_dir().join("psql"))
            .args([
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url(db),
            ])
            .args(["-c", sql])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Creates database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE {name}"))
            .expect("CREATE DATABASE");
        self.url(name)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGQUIT: immediate shutdown; the data directory goes with the temporary directory.
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGQUIT) };
        let _ = self.child.wait();
    }
}
