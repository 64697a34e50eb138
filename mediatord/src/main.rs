//! mediatord: the group-chat mediator for Mimir Messenger 2.x.
//!
//! Start-up: read the configuration (file, then flags), load or create the node key, open and
//! migrate the database, bind the QUIC listeners and the control socket, print the public key,
//! tell systemd READY, and serve until SIGINT or SIGTERM; then stop accepting, let in-flight
//! commands finish and close the database. SIGHUP re-reads the configuration and applies what
//! can change at run time without dropping sessions: the log filter and the Yggdrasil peers
//! (new peers are dialled, removed ones disconnected, unchanged links kept).
//!
//! Beside this file: the commands on a stopped daemon's data ([`offline`]), the background
//! tasks ([`background`]) and the hot standby's wait for the lease ([`hot_standby`]).

#![forbid(unsafe_code)]

mod background;
mod hot_standby;
mod offline;

use anyhow::{Context, Result};
use clap::Parser;
use mediator_control::defaults;
use mediatord::config::Config;
use mediatord::{control, datadir, key, notify, quic, server, store};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::{reload, EnvFilter};

/// How long shutdown waits for sessions to finish before closing the database anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Command-line options; each overrides the configuration file.
#[derive(Debug, Parser)]
#[command(
    name = "mediatord",
    version,
    about = "Group-chat mediator for Mimir Messenger"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Configuration file (TOML). Without it, the built-in defaults apply.
    #[arg(long, env = "MEDIATORD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check_config: bool,
    /// Print the effective configuration (file, then flags, then defaults for the rest) as
    /// TOML and exit; the output is itself a valid configuration file.
    #[arg(long)]
    print_config: bool,
    /// Print the man page (roff) and exit.
    #[arg(long, hide = true)]
    man: bool,
    /// Directory holding mediator.key and mediator.db [default: mediator-data].
    #[arg(long, env = "MEDIATORD_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// UDP address to serve QUIC on (repeatable) [default: 127.0.0.1:4433].
    #[arg(long = "quic-listen", value_name = "ADDR:PORT")]
    quic_listen: Vec<SocketAddr>,
    /// Yggdrasil peer URI to dial, e.g. tcp://host:port (repeatable).
    #[arg(long = "peer", value_name = "URI")]
    peers: Vec<String>,
    /// Yggdrasil listener URI, e.g. tcp://[::]:7743 (repeatable).
    #[arg(long = "listen", value_name = "URI")]
    ygg_listen: Vec<String>,
    /// How long a nonce stays valid, in seconds [default: 600].
    #[arg(long, value_name = "SECONDS")]
    nonce_ttl: Option<u64>,
    /// Unix socket for the control API [default: DATA_DIR/control.sock].
    #[arg(long, env = defaults::SOCKET_ENV, value_name = "PATH")]
    control_socket: Option<PathBuf>,
    /// Group whose members may use the control socket [default: mediatord].
    #[arg(long, value_name = "NAME")]
    control_group: Option<String>,
    /// Log filter, e.g. "info" or "mediatord=debug" [default: info].
    #[arg(long, env = "MEDIATORD_LOG", value_name = "FILTER")]
    log: Option<String>,
    /// Where and how log records go [default: auto: journald under systemd, else text].
    #[arg(long, value_enum, value_name = "FORMAT")]
    log_format: Option<mediatord::logging::LogFormat>,
}

/// Offline tasks; without one, mediatord serves.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Convert a database with per-chat tables (Go mediator, or mediatord before schema 5)
    /// to the current schema, keeping the original beside it, or upgrade a newer one in
    /// place. The daemon does this itself at start; this runs it (or, with --check, only
    /// reports it) while the daemon is stopped. With --to, copy the SQLite store into a
    /// PostgreSQL database instead, in one transaction, checking every table's row count;
    /// rerun it to replace the copy.
    Migrate {
        /// Only report what the database holds and what would be done (with --to: copy
        /// everything, check it, and roll back).
        #[arg(long)]
        check: bool,
        /// The database [default: DATA_DIR/mediator.db].
        #[arg(value_name = "DB", conflicts_with_all = ["from", "to"])]
        db: Option<PathBuf>,
        /// The store to copy from, `sqlite:PATH` [default: sqlite:DATA_DIR/mediator.db].
        #[arg(long, value_name = "STORE", requires = "to")]
        from: Option<String>,
        /// The PostgreSQL database to copy into, `postgres://USER@HOST/DB`.
        #[arg(long, value_name = "URL")]
        to: Option<String>,
        /// Copy even over a database a mediatord has served from (what it wrote is lost).
        #[arg(long, requires = "to")]
        replace: bool,
    },
    /// Put a backup in place while the daemon is stopped: a database file (`mediatorctl
    /// backup`) or an archive with the key (`mediatorctl backup - --include-key`). The backup
    /// is checked in full (integrity and schema version) first; the files it replaces are
    /// kept as *.pre-restore-<unix time>.
    Restore {
        /// The backup file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

impl Cli {
    /// The file's configuration with the flags applied on top.
    fn resolve(&self) -> Result<Config> {
        let mut cfg = match &self.config {
            Some(p) => Config::read(p)?,
            None => Config::default(),
        };
        if let Some(d) = &self.data_dir {
            cfg.data_dir = d.clone();
        }
        if !self.quic_listen.is_empty() {
            cfg.quic.listen = self.quic_listen.clone();
        }
        if !self.peers.is_empty() {
            cfg.yggdrasil.peers = self.peers.clone();
        }
        if !self.ygg_listen.is_empty() {
            cfg.yggdrasil.listen = self.ygg_listen.clone();
        }
        if let Some(t) = self.nonce_ttl {
            cfg.limits.nonce_ttl = Duration::from_secs(t);
        }
        if let Some(s) = &self.control_socket {
            cfg.control.socket = Some(s.clone());
        }
        if let Some(g) = &self.control_group {
            cfg.control.group = g.clone();
        }
        if let Some(l) = &self.log {
            cfg.log = l.clone();
        }
        if let Some(f) = self.log_format {
            cfg.log_format = f;
        }
        let origin = self.config.clone().unwrap_or_else(|| "command line".into());
        cfg.validate(&origin)?;
        Ok(cfg)
    }
}

type LogHandle = reload::Handle<EnvFilter, tracing_subscriber::Registry>;

fn main() -> Result<()> {
    let cli = Cli::parse();
    if cli.man {
        use clap::CommandFactory;
        let page = mediatord::manpage::render(Cli::command().name("mediatord"))
            .context("writing the man page")?;
        std::io::Write::write_all(&mut std::io::stdout(), &page).context("writing the man page")?;
        return Ok(());
    }
    let cfg = match cli.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mediatord: {e:#}");
            std::process::exit(2);
        }
    };
    if cli.print_config {
        let text = toml::to_string_pretty(&cfg).context("writing the configuration as TOML")?;
        print!(
            "# mediatord {}: effective configuration\n{text}",
            env!("CARGO_PKG_VERSION")
        );
        return Ok(());
    }
    if cli.check_config {
        // A group the operator chose must exist; the default one may be missing (quick
        // start from a checkout), which only narrows access to root and the daemon's user.
        if control::group_id(&cfg.control.group).is_none() {
            if cfg.control.group != mediatord::config::DEFAULT_CONTROL_GROUP {
                eprintln!(
                    "mediatord: control group {:?} does not exist (create it, or set control.group)",
                    cfg.control.group
                );
                std::process::exit(2);
            }
            eprintln!(
                "mediatord: warning: control group {:?} does not exist: only root and the daemon's user may use mediatorctl",
                cfg.control.group
            );
        }
        println!("configuration OK");
        return Ok(());
    }
    if let Some(Command::Migrate {
        check,
        from,
        to: Some(to),
        replace,
        ..
    }) = &cli.command
    {
        let from = match from {
            Some(f) => f.clone(),
            None => format!("sqlite:{}", cfg.data_dir.join(datadir::DB_FILE).display()),
        };
        return offline::copy_to_postgres(&from, to, *check, *replace);
    }
    if let Some(Command::Migrate { check, db, .. }) = &cli.command {
        let db = db
            .clone()
            .unwrap_or_else(|| cfg.data_dir.join(datadir::DB_FILE));
        return offline::migrate(&db, *check);
    }
    if let Some(Command::Restore { file }) = &cli.command {
        return offline::restore(file, &cfg.data_dir);
    }
    let (log, _) = mediatord::logging::init(&cfg.log, cfg.log_format)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run(cli, cfg, log))
}

/// Replaces this process with a fresh start of the same program and arguments (exec: the
/// PID stays, so systemd and the data directory's lock see one daemon). Used after an
/// import: reading a legacy file's per-chat schema took memory in proportion to its tables
/// (~150 MiB for 20,000 chats) that the allocator would keep for the daemon's whole life.
/// If exec fails (the binary was replaced meanwhile), the daemon goes on as it is.
fn restart_in_place() {
    use std::os::unix::process::CommandExt;
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            tracing::warn!(error = %e, "cannot restart in place after the import; going on");
            return;
        }
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    tracing::info!("import done; restarting in place to give back the memory it used");
    let err = std::process::Command::new(&exe)
        .arg0(arg0)
        .args(args)
        .exec();
    tracing::warn!(error = %err, exe = %exe.display(), "cannot restart in place; going on");
}

async fn run(cli: Cli, cfg: Config, log: LogHandle) -> Result<()> {
    // Before anything else, and long before READY: a SIGTERM or SIGHUP that arrives while
    // starting must not take its default action (terminate at once).
    let signals = Signals::new()?;
    let data_dir = datadir::DataDir::open(&cfg.data_dir)?;
    let signing = key::load_or_create(&data_dir.key_path())?;
    let public = *signing.verifying_key().as_bytes();
    let mut signals = signals;
    let store = match &cfg.store.url {
        None => {
            let db_path = data_dir.db_path();
            let imported = store::import::import(&db_path, &mut store::import::ServiceProgress)
                .with_context(|| format!("importing database {}", db_path.display()))?;
            if imported.is_some() {
                restart_in_place();
            }
            store::Store::open(&db_path)
                .with_context(|| format!("opening database {}", db_path.display()))?
        }
        Some(url) => match hot_standby::standby(url, &cfg, public, &mut signals).await? {
            Some(store) => store,
            None => return Ok(()),
        },
    };
    let server = Arc::new(server::Server::new(
        store.clone(),
        public,
        cfg.limits.clone(),
    ));
    let now = server.clock.now_secs();
    let blocks = store
        .read(move |c| Ok(c.active_blocks(now)?))
        .await
        .context("reading the blocks")?;
    if !blocks.is_empty() {
        tracing::info!(blocks = blocks.len(), "server-wide blocks in force");
    }
    server.blocks.load(&blocks);

    let stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut listeners = Vec::new();
    for addr in &cfg.quic.listen {
        let endpoint = quic::bind(&signing.to_bytes(), *addr)?;
        let bound = endpoint.local_addr().context("QUIC local address")?;
        tracing::info!(%bound, "listening for QUIC");
        mediatord::logging::announce(&format!("listening quic {bound}"));
        listeners.push(format!("quic://{bound}"));
        tasks.spawn(quic::serve(
            server.clone(),
            endpoint,
            stop.clone(),
            quic::by_address(),
        ));
    }
    let lease_lost = CancellationToken::new();
    if cfg.store.url.is_some() {
        let (store, lost) = (store.clone(), lease_lost.clone());
        tasks.spawn(async move {
            let why = store::postgres::lease::hold(&store).await;
            tracing::error!(error = %why, "stopping at once: another mediatord may take over");
            lost.cancel();
        });
    }
    tasks.spawn(mediatord::deleted_chats::sweeper(
        server.store.clone(),
        server.deleted_chats.clone(),
        stop.clone(),
    ));
    tasks.spawn(background::janitor(
        server.clone(),
        cfg.retention.clone(),
        stop.clone(),
    ));
    tasks.spawn(mediatord::backups::run(
        server.clone(),
        cfg.backup.clone(),
        stop.clone(),
    ));

    let node = background::start_yggdrasil(&cfg, &signing.to_bytes()).await?;
    if let Some(node) = &node {
        for (uri, addr) in cfg.yggdrasil.listen.iter().zip(node.listen_addrs()) {
            let scheme = uri.split("://").next().unwrap_or("tcp");
            mediatord::logging::announce(&format!("listening yggdrasil {scheme}://{addr}"));
            listeners.push(format!("yggdrasil {scheme}://{addr}"));
        }
        tasks.spawn(background::log_yggdrasil(node.clone(), stop.clone()));
        let port = cfg.yggdrasil.stream_port;
        if port != 0 {
            tracing::info!(port, "serving ygg_stream (Mimir 3.x) over Yggdrasil");
            mediatord::logging::announce(&format!("listening ygg_stream port {port}"));
            listeners.push(format!("ygg_stream {}:{port}", hex::encode(public)));
            tasks.spawn(mediatord::stream::serve(
                server.clone(),
                node.clone(),
                port,
                stop.clone(),
            ));
        }
        let (endpoint, name) = quic::bind_yggdrasil(&signing.to_bytes(), node.clone())?;
        tracing::info!("serving QUIC over Yggdrasil");
        listeners.push(format!("quic over yggdrasil {}", hex::encode(public)));
        tasks.spawn(quic::serve(server.clone(), endpoint, stop.clone(), name));
    }

    if let Some(addr) = cfg.metrics.listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the metrics endpoint on {addr}"))?;
        let bound = listener.local_addr().context("metrics local address")?;
        if !bound.ip().is_loopback() {
            tracing::warn!(%bound, "the metrics endpoint is reachable from other machines; keep it behind a firewall");
        }
        tracing::info!(%bound, "serving metrics");
        mediatord::logging::announce(&format!("listening metrics http://{bound}/metrics"));
        let registry = mediatord::metrics::registry(server.clone(), node.clone());
        tasks.spawn(mediatord::metrics::http::serve(
            listener,
            registry,
            stop.clone(),
        ));
    }

    let socket_path = cfg.control_socket();
    let gid = control::group_id(&cfg.control.group);
    if gid.is_none() {
        tracing::warn!(group = %cfg.control.group, "control group does not exist; only root and the daemon's user may use mediatorctl");
    }
    let listener = control::bind(&socket_path, gid)?;
    let service = control::Service {
        server: server.clone(),
        access: control_access(&cfg),
        listeners,
        data_dir: cfg.data_dir.clone(),
        node: node.clone(),
    };
    tasks.spawn(control::serve(service, listener, stop.clone()));
    tracing::info!(path = %socket_path.display(), "control socket ready");
    mediatord::logging::announce(&format!("control socket {}", socket_path.display()));
    if let Some(period) = notify::watchdog_period() {
        tasks.spawn(background::watchdog(server.clone(), period, stop.clone()));
    }

    tracing::info!(key = %hex::encode(public), "mediatord started");
    mediatord::logging::announce(&format!("mediatord public key {}", hex::encode(public)));
    let status = background::status_text(&server, node.as_deref()).await;
    notify::notify(&[
        notify::State::Ready,
        notify::State::MainPid(std::process::id()),
        notify::State::Status(&status),
    ]);
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        tasks.spawn(background::report_status(
            server.clone(),
            node.clone(),
            stop.clone(),
        ));
    }

    wait_for_shutdown(signals, &cli, &log, node.as_deref(), &lease_lost).await?;
    if lease_lost.is_cancelled() {
        // Fencing: another daemon may hold the lease now. Serve nothing more, not even for
        // a grace period: the process ends here (its writes could not commit anyway), and the
        // service manager starts it again as a standby.
        notify::notify(&[notify::State::Stopping]);
        let _ = std::fs::remove_file(&socket_path);
        std::process::exit(hot_standby::EXIT_LEASE_LOST);
    }
    notify::notify(&[notify::State::Stopping]);
    tracing::info!("shutting down");
    stop.cancel();
    if tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!("sessions did not finish in time");
        tasks.abort_all();
    }
    drop(server);
    if let Some(node) = node {
        // The QUIC endpoint's socket may still hold the node; stop it all the same.
        node.stop().await;
    }
    let _ = std::fs::remove_file(&socket_path);
    tokio::task::spawn_blocking(move || store.shutdown()).await?;
    drop(data_dir);
    tracing::info!("stopped");
    Ok(())
}

/// Who may use the control socket (see `control::Access`).
fn control_access(cfg: &Config) -> control::Access {
    control::Access {
        group: cfg.control.group.clone(),
        gid: control::group_id(&cfg.control.group),
        // SAFETY: geteuid has no preconditions.
        own_uid: nix::unistd::geteuid().as_raw(),
    }
}

/// The signals the daemon handles, registered once at start-up; a signal that arrives before
/// [`wait_for_shutdown`] runs is kept until then.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("SIGINT handler")?,
            hup: signal(SignalKind::hangup()).context("SIGHUP handler")?,
        })
    }
}

/// Waits for SIGINT or SIGTERM; on SIGHUP reloads the configuration (see [`reload`]).
async fn wait_for_shutdown(
    signals: Signals,
    cli: &Cli,
    log: &LogHandle,
    node: Option<&yggnode::Node>,
    lease_lost: &CancellationToken,
) -> Result<()> {
    let Signals {
        mut term,
        mut int,
        mut hup,
    } = signals;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = lease_lost.cancelled() => return Ok(()),
            _ = hup.recv() => {
                notify::notify(&[notify::State::Reloading]);
                match reload(cli, log, node) {
                    Ok(()) => {}
                    Err(e) => tracing::error!(error = %format!("{e:#}"), "reload failed, keeping the current configuration"),
                }
                notify::notify(&[notify::State::Ready]);
            }
        }
    }
}

/// Re-reads the configuration (file, then the same flags) and applies the log filter and the
/// Yggdrasil peer list. Nothing is applied unless the whole configuration is valid; every other
/// setting takes effect at the next start.
fn reload(cli: &Cli, log: &LogHandle, node: Option<&yggnode::Node>) -> Result<()> {
    let cfg = cli.resolve()?;
    let filter = mediatord::logging::filter(&cfg.log).context("log filter")?;
    let peers: Vec<yggnode::PeerUri> = cfg
        .yggdrasil
        .peers
        .iter()
        .map(|u| u.parse().with_context(|| format!("yggdrasil URI {u:?}")))
        .collect::<Result<_>>()?;
    let _ = log.reload(filter);
    match node {
        Some(node) => {
            let (added, removed) = node.set_peers(&peers);
            tracing::info!(
                log = %cfg.log,
                peers = peers.len(),
                added,
                removed,
                "configuration reloaded (log filter, yggdrasil peers); other settings apply at restart"
            );
        }
        None => {
            if !peers.is_empty() {
                tracing::warn!(
                    "yggdrasil peers configured but the node was not started (no peers or listeners at start); restart mediatord to enable it"
                );
            }
            tracing::info!(log = %cfg.log, "configuration reloaded (log filter); other settings apply at restart");
        }
    }
    Ok(())
}
