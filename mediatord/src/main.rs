//! mediatord: the group-chat mediator for Mimir Messenger 2.x.
//!
//! Start-up: load or create the node key, open and migrate the database, bind the QUIC
//! listeners, print the public key, serve until SIGINT or SIGTERM, then stop accepting,
//! let in-flight commands finish and close the database.

use mediatord::{control, handlers, hub, key, limits, quic, store};

use anyhow::{Context, Result};
use clap::Parser;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Default UDP address for QUIC when none is configured.
const DEFAULT_QUIC_LISTEN: &str = "127.0.0.1:4433";
/// How long shutdown waits for sessions to finish before closing the database anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "mediatord",
    version,
    about = "Group-chat mediator for Mimir Messenger"
)]
struct Cli {
    /// Directory holding mediator.key and mediator.db (created with mode 0700).
    #[arg(long, env = "MEDIATORD_DATA_DIR", default_value = "mediator-data")]
    data_dir: PathBuf,
    /// UDP address to serve QUIC on (repeatable). Default: 127.0.0.1:4433.
    #[arg(long = "quic-listen", value_name = "ADDR:PORT")]
    quic_listen: Vec<SocketAddr>,
    /// How long a nonce stays valid, in seconds.
    #[arg(long, default_value_t = 600)]
    nonce_ttl: u64,
    /// Unix socket for the control API (mediatorctl). Default: DATA_DIR/control.sock.
    #[arg(long, env = "MEDIATORD_CONTROL_SOCKET", value_name = "PATH")]
    control_socket: Option<PathBuf>,
    /// Group whose members may use the control socket (besides root and the daemon's user).
    #[arg(long, default_value = "mediatord", value_name = "NAME")]
    control_group: String,
    /// Log filter (tracing EnvFilter syntax), e.g. "info" or "mediatord=debug".
    #[arg(long, env = "MEDIATORD_LOG", default_value = "info")]
    log: String,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log).context("--log")?)
        .with_writer(std::io::stderr)
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    if !cli.data_dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&cli.data_dir)
            .with_context(|| format!("creating data dir {}", cli.data_dir.display()))?;
    }
    let signing = key::load_or_create(&cli.data_dir.join("mediator.key"))?;
    let public = *signing.verifying_key().as_bytes();
    let db_path = cli.data_dir.join("mediator.db");
    let store = store::Store::open(&db_path)
        .with_context(|| format!("opening database {}", db_path.display()))?;
    let limits = limits::Limits {
        nonce_ttl: Duration::from_secs(cli.nonce_ttl),
        ..Default::default()
    };
    let server = Arc::new(handlers::Server {
        store: store.clone(),
        hub: hub::Hub::default(),
        key: public,
        limits,
        started: std::time::SystemTime::now(),
    });

    let listen = if cli.quic_listen.is_empty() {
        vec![DEFAULT_QUIC_LISTEN.parse().expect("valid default address")]
    } else {
        cli.quic_listen.clone()
    };
    let stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut listeners = Vec::new();
    for addr in listen {
        let endpoint = quic::bind(&signing.to_bytes(), addr)?;
        let bound = endpoint.local_addr().context("QUIC local address")?;
        tracing::info!(%bound, "listening for QUIC");
        println!("listening quic {bound}");
        listeners.push(format!("quic://{bound}"));
        tasks.spawn(quic::serve(server.clone(), endpoint, stop.clone()));
    }
    tasks.spawn(janitor(server.clone(), stop.clone()));

    let socket_path = cli
        .control_socket
        .clone()
        .unwrap_or_else(|| cli.data_dir.join("control.sock"));
    let gid = control::group_id(&cli.control_group);
    let listener = control::bind(&socket_path, gid)?;
    // SAFETY: geteuid has no preconditions.
    let own_uid = unsafe { libc::geteuid() };
    let service = control::Service {
        server: server.clone(),
        access: control::Access {
            group: cli.control_group.clone(),
            gid,
            own_uid,
        },
        listeners: listeners.clone(),
        data_dir: cli.data_dir.clone(),
    };
    tasks.spawn(control::serve(service, listener, stop.clone()));
    tracing::info!(path = %socket_path.display(), "control socket ready");
    println!("control socket {}", socket_path.display());
    tracing::info!(key = %hex::encode(public), "mediatord started");
    println!("mediatord public key {}", hex::encode(public));

    shutdown_signal().await?;
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
    let _ = std::fs::remove_file(&socket_path);
    tokio::task::spawn_blocking(move || store.shutdown()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Purges expired nonces and invites periodically.
async fn janitor(server: Arc<handlers::Server>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(server.limits.janitor_period);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let l = server.limits.clone();
        let res = server
            .store
            .write(move |c| {
                let now = store::queries::now_secs();
                let n = store::queries::purge_nonces(c, now - l.nonce_ttl.as_secs() as i64)?;
                let total = store::queries::nonce_count(c)?;
                let excess = total - i64::from(l.max_nonces);
                if excess > 0 {
                    c.execute(
                        "DELETE FROM nonces WHERE (pubkey, nonce) IN
                            (SELECT pubkey, nonce FROM nonces ORDER BY ts LIMIT ?1)",
                        [excess],
                    )?;
                }
                let i = store::queries::purge_invites(c, now - l.invite_ttl.as_secs() as i64)?;
                Ok((n, i))
            })
            .await;
        match res {
            Ok((n, i)) if n + i > 0 => tracing::info!(nonces = n, invites = i, "purged expired"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "janitor"),
        }
    }
}

async fn shutdown_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
