//! `mediatorctl health`: one verdict for monitoring, from the daemon's figures (the database
//! writer and integrity check, the disk, the Yggdrasil peers) judged against thresholds given on the command
//! line. The exit code carries the verdict (see [`ExitCode`]); the output says why.

use crate::render::Output;
use mediator_control::v1::HealthReply;
use serde_json::json;
use std::time::Duration;

/// The exit codes of `mediatorctl health` (documented in its help and the man page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Running and nothing is wrong.
    Ok = 0,
    /// The question could not be asked (permission denied, a bad answer); clap's usage
    /// errors exit 2.
    Error = 1,
    /// No daemon answers on the socket (no socket, connection refused).
    NotRunning = 3,
    /// Running, with at least one problem: writer stalled, disk nearly full, no Yggdrasil
    /// peer up, database damaged.
    Degraded = 4,
}

/// What counts as a problem.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Work waiting on a writer that has not moved for longer than this: stalled.
    pub writer_stall: Duration,
    /// Less free space than this share of the file system (percent): nearly full.
    pub min_free_percent: f64,
}

/// Default of `--writer-stall`: far above any commit (milliseconds), short enough to page.
pub const DEFAULT_WRITER_STALL: Duration = Duration::from_secs(10);
/// Default of `--min-free-percent`.
pub const DEFAULT_MIN_FREE_PERCENT: f64 = 5.0;

/// The problems in `h`, each one line; none means healthy.
pub fn problems(h: &HealthReply, t: &Thresholds) -> Vec<String> {
    let mut out = Vec::new();
    let since = Duration::from_millis(h.writer_since_progress_ms);
    if (h.writer_busy || h.writer_queued > 0) && since > t.writer_stall {
        out.push(format!(
            "database writer stalled: no progress for {:.1}s with {} write(s) queued",
            since.as_secs_f64(),
            h.writer_queued
        ));
    }
    if h.disk_total_bytes > 0 {
        let pct = 100.0 * h.disk_free_bytes as f64 / h.disk_total_bytes as f64;
        if pct < t.min_free_percent {
            out.push(format!(
                "disk nearly full: {} MiB free ({pct:.1}% of {} MiB, threshold {}%)",
                h.disk_free_bytes >> 20,
                h.disk_total_bytes >> 20,
                t.min_free_percent
            ));
        }
    }
    if h.database_check.starts_with("damaged") || h.database_check.starts_with("failed") {
        out.push(format!(
            "database integrity check {}: restore from a backup",
            h.database_check
        ));
    }
    if h.yggdrasil_enabled && h.yggdrasil_peers_configured > 0 && h.yggdrasil_peers_up == 0 {
        out.push(format!(
            "no Yggdrasil peer up ({} configured)",
            h.yggdrasil_peers_configured
        ));
    }
    out
}

/// The report of a running daemon and its exit code.
pub fn report(h: &HealthReply, t: &Thresholds) -> (Output, ExitCode) {
    let problems = problems(h, t);
    let (status, code) = if problems.is_empty() {
        ("ok", ExitCode::Ok)
    } else {
        ("degraded", ExitCode::Degraded)
    };
    let mut text = status.to_string();
    if h.role == "standby" {
        text.push_str(" (standby: waiting for the PostgreSQL lease)");
    }
    for p in &problems {
        text.push_str("\n  ");
        text.push_str(p);
    }
    let out = Output::text(
        text,
        json!({
            "status": status,
            "problems": problems,
            "writer_queued": h.writer_queued,
            "writer_busy": h.writer_busy,
            "writer_since_progress_ms": h.writer_since_progress_ms,
            "disk_free_bytes": h.disk_free_bytes,
            "disk_total_bytes": h.disk_total_bytes,
            "yggdrasil_enabled": h.yggdrasil_enabled,
            "yggdrasil_peers_configured": h.yggdrasil_peers_configured,
            "yggdrasil_peers_up": h.yggdrasil_peers_up,
            "database_check": h.database_check,
            "role": h.role,
        }),
    );
    (out, code)
}

/// The report when no daemon answers.
pub fn not_running(reason: &str) -> Output {
    Output::text(
        format!("not running: {reason}"),
        json!({ "status": "not running", "problems": [reason] }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Format;

    fn healthy() -> HealthReply {
        HealthReply {
            writer_queued: 0,
            writer_busy: false,
            writer_since_progress_ms: 3_600_000,
            disk_free_bytes: 50 << 30,
            disk_total_bytes: 100 << 30,
            yggdrasil_enabled: true,
            yggdrasil_peers_configured: 2,
            yggdrasil_peers_up: 1,
            database_check: "ok".into(),
            role: "standalone".into(),
        }
    }

    const T: Thresholds = Thresholds {
        writer_stall: DEFAULT_WRITER_STALL,
        min_free_percent: DEFAULT_MIN_FREE_PERCENT,
    };

    #[test]
    fn an_idle_daemon_with_room_and_a_peer_is_ok() {
        let (out, code) = report(&healthy(), &T);
        assert_eq!(code, ExitCode::Ok);
        assert_eq!(out.render(Format::Plain, None).unwrap(), "ok\n");
        assert_eq!(out.json["status"], "ok");
    }

    #[test]
    fn a_standby_is_healthy_and_says_what_it_is() {
        let h = HealthReply {
            disk_free_bytes: 50 << 30,
            disk_total_bytes: 100 << 30,
            database_check: "standby: waiting for the PostgreSQL lease".into(),
            role: "standby".into(),
            ..Default::default()
        };
        let (out, code) = report(&h, &T);
        assert_eq!(code, ExitCode::Ok);
        assert_eq!(
            out.render(Format::Plain, None).unwrap(),
            "ok (standby: waiting for the PostgreSQL lease)\n"
        );
        assert_eq!(out.json["role"], "standby");
    }

    #[test]
    fn each_problem_degrades() {
        let mut h = healthy();
        h.writer_queued = 5;
        h.writer_since_progress_ms = 11_000;
        let p = problems(&h, &T);
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("writer stalled"), "{p:?}");
        // Queued work on a writer that moved recently is fine.
        h.writer_since_progress_ms = 200;
        assert!(problems(&h, &T).is_empty());

        let mut h = healthy();
        h.disk_free_bytes = 4 << 30;
        assert!(problems(&h, &T)[0].contains("disk nearly full"));

        let mut h = healthy();
        h.yggdrasil_peers_up = 0;
        assert!(problems(&h, &T)[0].contains("no Yggdrasil peer up"));
        // No node, or a node without outbound peers: nothing to be up.
        h.yggdrasil_peers_configured = 0;
        assert!(problems(&h, &T).is_empty());

        let mut h = healthy();
        h.database_check = "checking".into();
        assert!(problems(&h, &T).is_empty());
        h.database_check = "damaged: Tree 2 page 9 cell 0: invalid page number".into();
        assert!(problems(&h, &T)[0].contains("integrity check damaged"));

        let mut h = healthy();
        h.writer_busy = true;
        h.writer_since_progress_ms = 60_000;
        h.disk_free_bytes = 0;
        h.yggdrasil_peers_up = 0;
        let (out, code) = report(&h, &T);
        assert_eq!(code, ExitCode::Degraded);
        assert_eq!(out.json["problems"].as_array().map(Vec::len), Some(3));
        let text = out.render(Format::Table, None).unwrap();
        assert!(text.starts_with("degraded\n  "), "{text}");
    }
}
