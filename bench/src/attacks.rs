//! The attack scenarios (`standard --only attacks`): each flood of [`crate::floods`] runs
//! from one attacker source against a freshly spawned `mediatord` with its **default**
//! limits ([`LimitProfile::Defaults`], not the benchmark's raised one-host caps), beside
//! idle honest sessions spread over many sources, while the legitimate user of
//! [`crate::legit`] keeps connecting, authenticating, sending and receiving from a source of
//! its own. A first row runs the same without an attacker.
//!
//! Each row reports the legitimate user's p99 (connect + auth + send + push), its refusals,
//! the daemon's peak VmRSS during the window, and what the attacker got and was refused. A
//! row fails when the legitimate user was refused anything, and (outside `--smoke`) when its
//! p99 is over [`LEGIT_P99_TARGET_MS`] or the peak RSS over [`PEAK_RSS_TARGET_KIB`].

use crate::attacker::{Cost, CostReport};
use crate::floods::{self, Attack, Env};
use crate::legit::{self, LegitReport, Prober, RssSampler};
use crate::standard::StandardArgs;
use crate::target::{LimitProfile, Target};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A row fails when the legitimate user's p99 is over this many milliseconds.
pub const LEGIT_P99_TARGET_MS: f64 = 100.0;
/// A row fails when the daemon's peak VmRSS is over this many KiB (512 MiB).
pub const PEAK_RSS_TARGET_KIB: u64 = 512 * 1024;
/// Idle honest sessions beside each attack at full scale.
pub const BACKGROUND_SESSIONS: usize = 10_000;
/// Slower legitimate figures than this (a 1 MiB round trip, the slowest attempt) are noted
/// under the table; they are not targets.
pub const NOTE_MS: f64 = 1000.0;
/// Pause between the setup and the window, so setup pushes are delivered.
pub const SETTLE: Duration = Duration::from_millis(500);

/// Sizes of the attack scenarios.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AttackSizes {
    /// Seconds each attack (and the legitimate user) runs.
    pub duration_s: f64,
    /// Idle honest sessions beside the attack.
    pub background_sessions: usize,
    /// Connections the attacker tries at first (the default cap is 64).
    pub connections: usize,
    /// Concurrent attacker tasks of the sessions, garbage and invite floods.
    pub workers: usize,
    /// Sessions the budget, unread-answers and nonce floods aim to hold (the default cap
    /// per source is 1,000).
    pub sessions: usize,
    /// Size of the big message (unread answers) and of the member info (member info).
    pub big_blob: usize,
    /// Member keys of the attacker's chat (unread answers).
    pub members: usize,
    /// Attacker members of the legitimate chat (member info), and sessions each.
    pub info_members: usize,
    pub info_sessions_per_member: usize,
    /// Chats the invite spam creates (each with its proof of work).
    pub invite_chats: usize,
}

impl AttackSizes {
    /// Full size, shrunk by `--scale`, or tiny for `--smoke`.
    pub fn new(a: &StandardArgs) -> AttackSizes {
        if a.smoke {
            return AttackSizes {
                duration_s: 1.0,
                background_sessions: 200,
                connections: 8,
                workers: 8,
                sessions: 40,
                big_blob: 2 * 1024 * 1024,
                members: 4,
                info_members: 2,
                info_sessions_per_member: 1,
                invite_chats: 2,
            };
        }
        let s = a.scale.clamp(0.001, 1.0);
        AttackSizes {
            duration_s: a.duration,
            background_sessions: ((BACKGROUND_SESSIONS as f64 * s).round() as usize).max(100),
            connections: 72,
            workers: 64,
            sessions: 900,
            big_blob: 16 * 1024 * 1024,
            members: floods::MAX_UNREAD_PER_CONNECTION,
            info_members: 8,
            info_sessions_per_member: 2,
            invite_chats: 8,
        }
    }
}

/// One row: one attack and what it did.
#[derive(Debug, Clone, Serialize)]
pub struct AttackReport {
    pub attack: Attack,
    pub name: String,
    pub seconds: f64,
    pub background_sessions: usize,
    pub legit: LegitReport,
    /// The daemon's VmRSS before the window and its peak during it, KiB.
    pub rss_before_kib: u64,
    pub peak_rss_kib: u64,
    /// Cores the daemon kept busy during the window.
    pub daemon_cpu_cores: f64,
    /// Datagrams the daemon's UDP socket dropped during the window (its receive buffer was
    /// full): a lost handshake packet costs a legitimate connect a retransmission (a second
    /// or more).
    pub daemon_udp_drops: u64,
    pub attacker: CostReport,
    /// Why the row failed (empty: it passed).
    pub failed: Vec<String>,
}

/// Every attack row and the sizes they ran at.
#[derive(Debug, Clone, Serialize)]
pub struct AttacksSummary {
    pub sizes: AttackSizes,
    pub legit_p99_target_ms: f64,
    pub peak_rss_target_kib: u64,
    pub rows: Vec<AttackReport>,
}

/// Runs every attack; each failed row is also added to `failures`.
pub async fn run(
    mediatord: &Path,
    args: &StandardArgs,
    failures: &mut Vec<String>,
) -> Result<AttacksSummary> {
    let sizes = AttackSizes::new(args);
    let picked: Vec<&str> = args
        .only
        .iter()
        .filter_map(|o| o.strip_prefix("attacks:"))
        .collect();
    let mut rows = Vec::new();
    for attack in Attack::ALL {
        if !picked.is_empty() && !picked.contains(&attack.key()) {
            continue;
        }
        eprintln!("== attack: {}", attack.name());
        let row = match one(attack, mediatord, args, sizes).await {
            Ok(r) => r,
            Err(e) => {
                let why = format!("the scenario did not run: {e:#}");
                empty_row(attack, sizes, why)
            }
        };
        for f in &row.failed {
            failures.push(format!("attack {}: {f}", row.name));
        }
        rows.push(row);
    }
    Ok(AttacksSummary {
        sizes,
        legit_p99_target_ms: LEGIT_P99_TARGET_MS,
        peak_rss_target_kib: PEAK_RSS_TARGET_KIB,
        rows,
    })
}

fn empty_row(attack: Attack, sizes: AttackSizes, why: String) -> AttackReport {
    AttackReport {
        attack,
        name: attack.name().into(),
        seconds: 0.0,
        background_sessions: sizes.background_sessions,
        legit: LegitReport::default(),
        rss_before_kib: 0,
        peak_rss_kib: 0,
        daemon_cpu_cores: 0.0,
        daemon_udp_drops: 0,
        attacker: CostReport::default(),
        failed: vec![why],
    }
}

/// One attack against a fresh daemon.
async fn one(
    attack: Attack,
    mediatord: &Path,
    args: &StandardArgs,
    sizes: AttackSizes,
) -> Result<AttackReport> {
    let t =
        Target::spawn_mediatord_with(mediatord, args.tmp_dir.as_deref(), LimitProfile::Defaults)?;
    let legit = legit::create(t.addr).await.context("legit setup")?;
    let started = std::time::Instant::now();
    let bg = legit::background(t.addr, sizes.background_sessions)
        .await
        .context("background sessions")?;
    eprintln!(
        "{} background sessions in {:.1}s",
        bg.sessions,
        started.elapsed().as_secs_f64()
    );
    let env = Env {
        addr: t.addr,
        cost: Arc::new(Cost::default()),
        sizes,
        legit,
    };
    let prepared = floods::prepare(attack, &env)
        .await
        .context("attack setup")?;
    tokio::time::sleep(SETTLE).await;
    let s0 = t.stats();
    let drops0 = udp_drops(t.addr);
    let sampler = RssSampler::start(t.pid);
    let prober = Prober::start(t.addr, &env.legit, attack == Attack::MemberInfo).await?;
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs_f64(sizes.duration_s);
    let flooded = floods::flood(attack, prepared, &env, until).await;
    tokio::time::sleep_until(until).await;
    let seconds = t0.elapsed().as_secs_f64();
    let s1 = t.stats();
    let drops = udp_drops(t.addr).saturating_sub(drops0);
    let legit = prober.finish().await?;
    let peak_rss_kib = sampler.finish();
    drop(bg);
    let mut failed = Vec::new();
    if let Err(e) = flooded {
        failed.push(format!("the attack did not run: {e:#}"));
    }
    let stopped = tokio::task::spawn_blocking(move || t.stop()).await?;
    if let Err(e) = stopped {
        failed.push(format!("the daemon: {e:#}"));
    }
    judge(&legit, peak_rss_kib, args.smoke, &mut failed);
    let (rss_before_kib, daemon_cpu_cores) = match (s0, s1) {
        (Some(a), Some(b)) => (a.rss_kib, (b.cpu_s - a.cpu_s) / seconds),
        _ => (0, 0.0),
    };
    Ok(AttackReport {
        attack,
        name: attack.name().into(),
        seconds,
        background_sessions: sizes.background_sessions,
        legit,
        rss_before_kib,
        peak_rss_kib,
        daemon_cpu_cores,
        daemon_udp_drops: drops,
        attacker: env.cost.report(),
        failed,
    })
}

/// Datagrams dropped so far by the IPv4 UDP socket bound to `addr` (the last column of
/// `/proc/net/udp`), 0 when it cannot be read.
fn udp_drops(addr: std::net::SocketAddr) -> u64 {
    let std::net::SocketAddr::V4(a) = addr else {
        return 0;
    };
    // The kernel prints the address as the hex of its in-memory (network order) u32.
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(a.ip().octets()),
        a.port()
    );
    let Ok(table) = std::fs::read_to_string("/proc/net/udp") else {
        return 0;
    };
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(1) == Some(&local.as_str()))
        .and_then(|f| f.last()?.parse().ok())
        .unwrap_or(0)
}

/// Adds the reasons a row fails to `failed`.
fn judge(l: &LegitReport, peak_rss_kib: u64, smoke: bool, failed: &mut Vec<String>) {
    if l.ok == 0 {
        failed.push("no legitimate attempt succeeded".into());
    }
    if l.refusals > 0 {
        failed.push(format!(
            "{} legitimate refusal(s) in {} attempts (closed subscribed sessions count too; \
             first: {})",
            l.refusals,
            l.attempts,
            l.first_refusal.as_deref().unwrap_or("-")
        ));
    }
    if l.large_failed > 0 {
        failed.push(format!(
            "{} of {} legitimate 1 MiB round trips failed (first: {})",
            l.large_failed,
            l.large,
            l.large_first_failure.as_deref().unwrap_or("-")
        ));
    }
    if smoke {
        return;
    }
    if l.latency.p99_ms > LEGIT_P99_TARGET_MS {
        failed.push(format!(
            "legitimate p99 {:.1} ms > {LEGIT_P99_TARGET_MS} ms",
            l.latency.p99_ms
        ));
    }
    if peak_rss_kib > PEAK_RSS_TARGET_KIB {
        failed.push(format!(
            "peak RSS {} MiB > {} MiB",
            peak_rss_kib / 1024,
            PEAK_RSS_TARGET_KIB / 1024
        ));
    }
}

/// A byte count for the table.
fn bytes(b: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if b as f64 >= MIB {
        format!("{:.1} MiB", b as f64 / MIB)
    } else {
        format!("{:.0} KiB", b as f64 / 1024.0)
    }
}

/// What the attacker got, for the table.
fn got(c: &CostReport) -> String {
    let mut parts = vec![format!(
        "held {} sess/{} conn",
        c.sessions_held_max, c.connections
    )];
    parts.push(format!("{} req", c.requests));
    parts.push(format!("{} sent", bytes(c.bytes_sent)));
    if c.datagrams > 0 {
        parts.push(format!("{} UDP", c.datagrams));
    }
    parts.join(", ")
}

/// What the attacker was refused, for the table.
fn refused(c: &CostReport) -> String {
    format!(
        "{} conn, {} sess, {} closed, {} ERR",
        c.connections_refused, c.sessions_refused, c.sessions_closed, c.answers_err
    )
}

/// The attack table as text.
pub fn table(sum: &AttacksSummary) -> String {
    let header = [
        "attack",
        "legit p99 ms",
        "legit refusals",
        "peak RSS MiB",
        "attacker sent/held",
        "attacker refused",
        "1 MiB max ms",
        "result",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in &sum.rows {
        rows.push(vec![
            r.name.clone(),
            format!("{:.1}", r.legit.latency.p99_ms),
            format!("{} ({} tries)", r.legit.refusals, r.legit.attempts),
            format!("{:.0}", r.peak_rss_kib as f64 / 1024.0),
            got(&r.attacker),
            refused(&r.attacker),
            if r.legit.large_failed > 0 {
                format!("{} failed", r.legit.large_failed)
            } else {
                format!("{:.0}", r.legit.large_max_ms)
            },
            if r.failed.is_empty() { "ok" } else { "FAILED" }.into(),
        ]);
    }
    let mut out = crate::report::text_table(&rows, &[1, 3, 6]);
    for r in &sum.rows {
        for f in &r.failed {
            out.push_str(&format!("{}: {f}\n", r.name));
        }
        let l = &r.legit;
        if l.large_max_ms > NOTE_MS {
            out.push_str(&format!(
                "{}: note: a legitimate 1 MiB send + read back took up to {:.1} s\n",
                r.name,
                l.large_max_ms / 1000.0
            ));
        }
        if l.latency.max_ms > NOTE_MS {
            out.push_str(&format!(
                "{}: note: the slowest legitimate attempt took {:.0} ms (p99.9 {:.0} ms); the \
                 daemon's UDP socket dropped {} datagrams meanwhile\n",
                r.name, l.latency.max_ms, l.latency.p999_ms, r.daemon_udp_drops
            ));
        }
    }
    out
}
