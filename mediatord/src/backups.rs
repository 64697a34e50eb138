//! Scheduled backups (`[backup]`): every `interval_secs` an online copy of the database is
//! written to `dir` as `mediator-backup-<unix time>.db` (first under a `.partial` name, then
//! renamed, so an interrupted copy never counts), and all but the newest `keep` are removed.

use crate::config::BackupSection;
use crate::server::Server;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Name prefix of scheduled backups.
pub const PREFIX: &str = "mediator-backup-";
/// Name suffix of scheduled backups.
pub const SUFFIX: &str = ".db";

/// Makes a backup every interval until `stop` fires (the first one after one interval).
pub async fn run(server: Arc<Server>, cfg: BackupSection, stop: CancellationToken) {
    let Some(dir) = cfg.dir.clone() else { return };
    let period = Duration::from_secs(cfg.interval_secs.max(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match once(&server, &dir, cfg.keep as usize).await {
            Ok((path, removed)) => {
                tracing::info!(path = %path.display(), removed, "scheduled backup written")
            }
            Err(e) => tracing::error!(dir = %dir.display(), error = %e, "scheduled backup failed"),
        }
    }
}

/// One backup into `dir`, then the rotation; returns the new file and how many went.
pub async fn once(server: &Server, dir: &Path, keep: usize) -> Result<(PathBuf, usize), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let now = server.clock.now_secs();
    let path = dir.join(format!("{PREFIX}{now}{SUFFIX}"));
    let partial = dir.join(format!("{PREFIX}{now}{SUFFIX}.partial"));
    let _ = std::fs::remove_file(&partial);
    let p2 = partial.clone();
    server
        .store
        .read(move |c| Ok(crate::store::sqlite::backup_to(c, &p2)?))
        .await
        .map_err(|e| {
            let _ = std::fs::remove_file(&partial);
            e.to_string()
        })?;
    std::fs::rename(&partial, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((path, rotate(dir, keep)))
}

/// Removes all but the newest `keep` scheduled backups in `dir`; returns how many went.
pub fn rotate(dir: &Path, keep: usize) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut found: Vec<(i64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let t = name
                .strip_prefix(PREFIX)?
                .strip_suffix(SUFFIX)?
                .parse()
                .ok()?;
            Some((t, e.path()))
        })
        .collect();
    found.sort_unstable_by_key(|f| std::cmp::Reverse(f.0));
    let mut removed = 0;
    for (_, p) in found.iter().skip(keep) {
        match std::fs::remove_file(p) {
            Ok(()) => removed += 1,
            Err(e) => {
                tracing::warn!(path = %p.display(), error = %e, "cannot remove an old backup")
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_the_newest_and_nothing_else_of_ours() {
        let dir = tempfile::tempdir().unwrap();
        for t in [5, 100, 20, 7] {
            std::fs::write(dir.path().join(format!("{PREFIX}{t}{SUFFIX}")), b"x").unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        std::fs::write(dir.path().join(format!("{PREFIX}9{SUFFIX}.partial")), b"x").unwrap();
        assert_eq!(rotate(dir.path(), 2), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "mediator-backup-100.db",
                "mediator-backup-20.db",
                "mediator-backup-9.db.partial",
                "notes.txt"
            ]
        );
    }
}
