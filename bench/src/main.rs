//! `mediator-load`: load generator and standard benchmarks for mediatord.
//!
//! * `run`: one configurable load (users, connections, chats, membership, message size,
//!   open or closed loop) against a spawned daemon (`--spawn`), the raw quinn baseline
//!   (`--raw`) or a running server (`--attach ADDR [--pid PID]`); a progress line each second
//!   on stderr and a JSON summary on stdout.
//! * `standard`: the standard scenarios with their baselines and one table, and the attack
//!   scenarios with theirs (`--smoke` runs them tiny and fails on any error; `--scale`
//!   shrinks them; `--only attacks` runs the attacks alone, `--only chats` the growth with
//!   the number of chats).
//! * `transports`: the Go interop client's `bench` scenario over QUIC inside Yggdrasil and
//!   over ygg_stream, one after the other against a running mediatord (`bench/ygg-vs-udp.sh`);
//!   one JSON line per transport on stdout.
//! * `failover`: the hot standby's takeover time over repeated SIGKILLs of the active, on
//!   PostgreSQL (`--postgres URL`); one JSON object on stdout.
//! * `raw-server`: the raw quinn baseline server (started by the other commands).
//!
//! Build with `--release` for measurements; see the "Benchmarks" section of the README.

mod attacker;
mod attacks;
mod chats;
mod client;
mod failover;
mod floods;
mod legit;
mod load;
mod metrics;
mod raw;
mod report;
mod rounds;
mod sqlite;
mod standard;
mod target;
mod transports;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use target::{Kind, Target};

#[derive(Debug, Parser)]
#[command(
    name = "mediator-load",
    about = "Load generator and benchmarks for mediatord"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// One load run with a JSON summary.
    Run(RunArgs),
    /// The standard scenarios and their baselines, as one table.
    Standard(standard::StandardArgs),
    /// Shorthand for `standard --smoke`.
    Smoke(standard::StandardArgs),
    /// Takeover time of the hot standby on PostgreSQL over repeated failovers.
    Failover(failover::FailoverArgs),
    /// Sequential and closed-loop latency over QUIC in Yggdrasil and over ygg_stream.
    Transports(transports::TransportsArgs),
    /// Serve the raw quinn baseline (used by the other commands).
    RawServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Keep every message in memory and answer GET_MESSAGES_SINCE (the sync baseline).
        #[arg(long)]
        keep_messages: bool,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Start mediatord with a temporary data directory.
    #[arg(long, conflicts_with_all = ["attach", "raw"])]
    spawn: bool,
    /// The mediatord binary for --spawn (default: the one next to this executable).
    #[arg(long)]
    mediatord: Option<PathBuf>,
    /// Parent directory of the temporary data directory.
    #[arg(long)]
    tmp_dir: Option<PathBuf>,
    /// Load the raw quinn baseline server instead.
    #[arg(long, conflicts_with = "attach")]
    raw: bool,
    /// Load a running mediatord at this address.
    #[arg(long)]
    attach: Option<SocketAddr>,
    /// PID of the attached server, for CPU and memory figures.
    #[arg(long, requires = "attach")]
    pid: Option<u32>,
    #[command(flatten)]
    world: load::WorldConfig,
    #[command(flatten)]
    run: load::RunConfig,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        match cli.cmd {
            Cmd::RawServer {
                listen,
                keep_messages,
            } => raw::serve(listen, keep_messages).await,
            Cmd::Run(a) => run(a).await,
            Cmd::Transports(a) => transports::run(a).await,
            Cmd::Failover(a) => failover::run(a).await,
            Cmd::Standard(a) => standard_cmd(a).await,
            Cmd::Smoke(mut a) => {
                a.smoke = true;
                standard_cmd(a).await
            }
        }
    })
}

async fn run(a: RunArgs) -> Result<()> {
    let target = if let Some(addr) = a.attach {
        Target::attach(Kind::Mediatord, addr, a.pid)
    } else if a.raw {
        Target::spawn_raw()?
    } else {
        let bin = match a.mediatord {
            Some(p) => p,
            None => target::default_mediatord()
                .context("no mediatord next to this executable; pass --mediatord")?,
        };
        Target::spawn_mediatord(&bin, a.tmp_dir.as_deref())?
    };
    let mut w = load::World::build(&target, &a.world).await?;
    eprintln!("setup took {:.1}s", w.setup_s);
    let report = w.run(&target, &a.run).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    drop(w);
    tokio::task::spawn_blocking(move || target.stop()).await??;
    Ok(())
}

async fn standard_cmd(a: standard::StandardArgs) -> Result<()> {
    let sum = standard::run(&a).await?;
    print!("{}", report::table(&sum));
    report::write_json(&sum, a.json.as_deref())?;
    report::verdict(&sum)
}
