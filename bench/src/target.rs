//! The server under test: a `mediatord` the tool spawns with a temporary data directory, the
//! raw quinn baseline server (this same binary run as `raw-server`), or a process attached to
//! by address and PID. Also reads the server's CPU time and memory from `/proc`.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a spawned server may take to print its address and key.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The data directory of a spawned `mediatord`, inside its temporary directory.
pub const DATA_DIR: &str = "data";
/// How long a spawned server gets to exit after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a starting server's peak RSS is sampled.
pub const START_SAMPLE_PERIOD: Duration = Duration::from_millis(20);

/// What kind of server is being measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The real daemon: proofs of work are computed, signatures are checked.
    Mediatord,
    /// The raw quinn baseline: same frames, no mediator logic.
    RawQuinn,
}

/// A server to load.
pub struct Target {
    pub kind: Kind,
    pub addr: SocketAddr,
    /// The process, for `/proc` figures (none when attached without a PID).
    pub pid: Option<u32>,
    /// The largest VmHWM seen while the server started (sampled every
    /// [`START_SAMPLE_PERIOD`]), KiB; 0 when attached.
    pub start_peak_rss_kib: u64,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
    /// The PostgreSQL database created for it (admin URL, name), dropped with it.
    database: Option<(String, String)>,
}

/// CPU time and memory of a process, from `/proc/PID/stat` and `/proc/PID/status`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProcStats {
    /// User plus system CPU time, seconds.
    pub cpu_s: f64,
    /// Resident set size now, KiB.
    pub rss_kib: u64,
    /// Peak resident set size (VmHWM), KiB.
    pub peak_rss_kib: u64,
}

/// Reads [`ProcStats`] for `pid`.
pub fn proc_stats(pid: u32) -> Result<ProcStats> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        Ok(f.get(i)
            .context("short /proc stat")?
            .parse::<u64>()
            .context("bad /proc stat field")? as f64)
    };
    // `rest` starts at field 3 (state), so field n is at index n - 3.
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100)
        .max(1) as f64;
    let cpu_s = (ticks(14 - 3)? + ticks(15 - 3)?) / hz;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(ProcStats {
        cpu_s,
        rss_kib: kib("VmRSS:"),
        peak_rss_kib: kib("VmHWM:"),
    })
}

/// A database name no other run uses: `prefix`, the process id and the time.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )
}

/// Runs `sql` on the server of `admin_url`, from a thread of its own (the caller may be on
/// the benchmark's runtime).
fn admin_statement(admin_url: &str, sql: String) -> Result<()> {
    let admin = admin_url.to_string();
    std::thread::spawn(move || -> Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
                .await
                .context("connecting to the PostgreSQL server")?;
            tokio::spawn(conn);
            client.batch_execute(&sql).await.context(sql.clone())?;
            Ok(())
        })
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the database thread panicked"))?
}

/// Creates database `name` on the server of `admin_url`; returns its URL (`admin_url` with
/// the database name replaced).
pub fn create_database(admin_url: &str, name: &str) -> Result<String> {
    admin_statement(admin_url, format!("CREATE DATABASE {name}"))?;
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url, |(base, _)| base);
    Ok(format!("{base}/{name}"))
}

/// Drops database `name` on the server of `admin_url` (a spawned daemon's, once it has
/// stopped: a sync run leaves over 100 MB in it).
pub fn drop_database(admin_url: &str, name: &str) -> Result<()> {
    admin_statement(
        admin_url,
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )
}

/// The `mediatord` next to this binary (target/release or target/debug), if any.
pub fn default_mediatord() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let here = dir.join("mediatord");
    if here.exists() {
        return Some(here);
    }
    // Test binaries live in target/<profile>/deps.
    let up = dir.parent()?.join("mediatord");
    up.exists().then_some(up)
}

/// Limits of a spawned `mediatord`: the benchmark's thousands of clients all come from one
/// host (127.0.0.1) and each sends as fast as the server answers, so the per-source caps and
/// the rate limits, which would rightly treat them as one flooding host, are raised; every
/// other limit keeps its default.
pub const ONE_HOST_LIMITS: &str = "[limits]
max_sessions_per_source = 1000000
max_guest_sessions_per_source = 1000000
max_guest_sessions = 1000000
max_connections_per_source = 1000000
rate_nonce_per_source = { per_sec = 1e9, burst = 1e9 }
rate_create_chat_per_key = { per_sec = 1e9, burst = 1e9 }
rate_create_chat_per_source = { per_sec = 1e9, burst = 1e9 }
rate_send_message_per_key = { per_sec = 1e9, burst = 1e9 }
rate_subscribe_per_key = { per_sec = 1e9, burst = 1e9 }
rate_upload_bytes_per_source = { per_sec = 1e12, burst = 1e12 }
max_request_bytes_per_source = 268435456
max_queued_bytes_per_source = 268435456
";

/// Which limits a spawned `mediatord` runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitProfile {
    /// [`ONE_HOST_LIMITS`]: per-source caps raised for the benchmark's one host.
    OneHost,
    /// The daemon's defaults, as a deployment runs: the attack scenarios measure them.
    Defaults,
}

/// The configuration file of [`LimitProfile::Defaults`]: no `[limits]` section at all.
pub const DEFAULT_LIMITS: &str = "# mediator-load: the daemon's default limits\n";

/// Log level of a daemon spawned with [`LimitProfile::OneHost`].
pub const ONE_HOST_LOG_LEVEL: &str = "warn";

/// Log level of a daemon spawned with [`LimitProfile::Defaults`]: the attack scenarios trip
/// its limits on purpose, and its rate-limited warnings would bury the table.
pub const DEFAULTS_LOG_LEVEL: &str = "error";

impl Target {
    /// Spawns `mediatord` from `bin` with a fresh data directory under `tmp_parent` (or the
    /// system temporary directory) and [`ONE_HOST_LIMITS`].
    pub fn spawn_mediatord(bin: &Path, tmp_parent: Option<&Path>) -> Result<Target> {
        Self::spawn_mediatord_with(bin, tmp_parent, LimitProfile::OneHost)
    }

    /// Spawns `mediatord` like [`Target::spawn_mediatord`] with the limits of `profile`.
    pub fn spawn_mediatord_with(
        bin: &Path,
        tmp_parent: Option<&Path>,
        profile: LimitProfile,
    ) -> Result<Target> {
        let tmp = match tmp_parent {
            Some(p) => tempfile::tempdir_in(p),
            None => tempfile::tempdir(),
        }
        .context("creating a temporary data directory")?;
        Self::spawn_mediatord_in(bin, tmp, profile, START_TIMEOUT)
    }

    /// Spawns `mediatord` like [`Target::spawn_mediatord`], serving from a fresh database
    /// created on the PostgreSQL server of `admin_url` (a database there the tool may create
    /// databases from).
    pub fn spawn_mediatord_on_postgres(
        bin: &Path,
        tmp_parent: Option<&Path>,
        admin_url: &str,
    ) -> Result<Target> {
        let tmp = match tmp_parent {
            Some(p) => tempfile::tempdir_in(p),
            None => tempfile::tempdir(),
        }
        .context("creating a temporary data directory")?;
        let name = unique_name("mediator_load");
        let url = create_database(admin_url, &name)?;
        let store = format!("{ONE_HOST_LIMITS}\n[store]\nurl = \"{url}\"\n");
        let config = tmp.path().join("mediatord.toml");
        std::fs::write(&config, store).context("writing the benchmark configuration")?;
        let mut t =
            Self::spawn_mediatord_at(bin, &tmp.path().join(DATA_DIR), &config, START_TIMEOUT)?;
        t._tmp = Some(tmp);
        t.database = Some((admin_url.to_owned(), name));
        Ok(t)
    }

    /// Spawns `mediatord` on the data directory [`DATA_DIR`] of `tmp` (created by the daemon
    /// if the caller did not prepare one there) with the limits of `profile`, giving it
    /// `start_timeout` to print its address and key; `tmp` is removed with the target.
    pub fn spawn_mediatord_in(
        bin: &Path,
        tmp: tempfile::TempDir,
        profile: LimitProfile,
        start_timeout: Duration,
    ) -> Result<Target> {
        let config = tmp.path().join("mediatord.toml");
        let (limits, log) = match profile {
            LimitProfile::OneHost => (ONE_HOST_LIMITS, ONE_HOST_LOG_LEVEL),
            LimitProfile::Defaults => (DEFAULT_LIMITS, DEFAULTS_LOG_LEVEL),
        };
        std::fs::write(&config, limits).context("writing the benchmark configuration")?;
        let mut cmd = Command::new(bin);
        cmd.arg("--data-dir")
            .arg(tmp.path().join(DATA_DIR))
            .arg("--config")
            .arg(&config)
            .args(["--quic-listen", "127.0.0.1:0", "--log", log]);
        let mut t = Self::spawn(cmd, Kind::Mediatord, start_timeout)
            .with_context(|| format!("starting {}", bin.display()))?;
        t._tmp = Some(tmp);
        Ok(t)
    }

    /// Spawns the raw quinn baseline server (this executable, `raw-server`).
    pub fn spawn_raw() -> Result<Target> {
        Self::spawn_raw_with(&[])
    }

    /// Spawns the raw quinn baseline server with extra arguments (`--keep-messages`).
    pub fn spawn_raw_with(extra: &[&str]) -> Result<Target> {
        let exe = std::env::current_exe().context("locating mediator-load")?;
        let mut cmd = Command::new(exe);
        cmd.args(["raw-server", "--listen", "127.0.0.1:0"])
            .args(extra);
        Self::spawn(cmd, Kind::RawQuinn, START_TIMEOUT)
    }

    /// Uses an already running server.
    pub fn attach(kind: Kind, addr: SocketAddr, pid: Option<u32>) -> Target {
        Target {
            start_peak_rss_kib: 0,
            kind,
            addr,
            pid,
            child: None,
            _tmp: None,
            database: None,
        }
    }

    fn spawn(mut cmd: Command, kind: Kind, start_timeout: Duration) -> Result<Target> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + start_timeout;
        let mut addr = None;
        let mut key = false;
        let mut start_peak_rss_kib = 0;
        while addr.is_none() || !key {
            // The peak is sampled while starting: a daemon that imports a database restarts
            // in place afterwards (exec), which resets its VmHWM.
            if let Ok(s) = proc_stats(child.id()) {
                start_peak_rss_kib = start_peak_rss_kib.max(s.peak_rss_kib);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left.min(START_SAMPLE_PERIOD)) {
                Ok(line) => line,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) if !left.is_zero() => continue,
                Err(_) => {
                    let _ = child.kill();
                    bail!("server did not start within {start_timeout:?}");
                }
            };
            if let Some(a) = line.strip_prefix("listening quic ") {
                addr = Some(a.trim().parse().context("listen address")?);
            } else if line.starts_with("mediatord public key ") {
                key = true;
            }
        }
        Ok(Target {
            kind,
            addr: addr.context("no address")?,
            pid: Some(child.id()),
            start_peak_rss_kib,
            child: Some(child),
            _tmp: None,
            database: None,
        })
    }

    /// CPU and memory of the server process, if known.
    pub fn stats(&self) -> Option<ProcStats> {
        self.pid.and_then(|p| proc_stats(p).ok())
    }

    /// Spawns `mediatord` on `data_dir` with the configuration file `config`, giving it
    /// `start_timeout` to serve (a standby serves only once it holds the lease).
    pub fn spawn_mediatord_at(
        bin: &Path,
        data_dir: &Path,
        config: &Path,
        start_timeout: Duration,
    ) -> Result<Target> {
        let mut cmd = Command::new(bin);
        cmd.arg("--data-dir")
            .arg(data_dir)
            .arg("--config")
            .arg(config)
            .args(["--quic-listen", "127.0.0.1:0", "--log", ONE_HOST_LOG_LEVEL]);
        Self::spawn(cmd, Kind::Mediatord, start_timeout)
            .with_context(|| format!("starting {}", bin.display()))
    }

    /// Kills a spawned server with SIGKILL (a crash) and reaps it.
    pub fn kill(mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Stops a spawned server with SIGTERM; fails if it exits unsuccessfully.
    pub fn stop(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(st) = child.try_wait()? {
                if !st.success() {
                    bail!("server exited with {st}");
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("server did not exit within {STOP_TIMEOUT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some((admin, name)) = self.database.take() {
            if let Err(e) = drop_database(&admin, &name) {
                eprintln!("dropping the benchmark's database {name}: {e:#}");
            }
        }
    }
}
