//! The mediatord binary's commands that work on a stopped daemon's data (part of the
//! binary, not of the library): `mediatord restore FILE`, `mediatord migrate [--check] DB`
//! (a legacy or older SQLite file brought to the current schema) and `mediatord migrate
//! --from sqlite:PATH --to postgres://…` (the SQLite store copied into PostgreSQL). Each
//! takes the data directory's lock first, so none runs beside a daemon, and prints what it
//! did on stdout.

use anyhow::{Context, Result};
use mediatord::{datadir, store};

/// `mediatord restore FILE`: under the data directory's lock (so never beside a running
/// daemon), checks the backup and puts it in place.
pub fn restore(file: &std::path::Path, dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let _lock = datadir::lock_dir(dir)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let r = store::restore::restore(file, dir, now)
        .with_context(|| format!("restoring {}", file.display()))?;
    let what = if r.key {
        "database and key"
    } else {
        "database (the key stays)"
    };
    println!(
        "restored {what} from {} into {}: schema version {}, {} chats{}",
        file.display(),
        dir.display(),
        r.version,
        r.chats,
        if r.messages >= 0 {
            format!(", {} messages", r.messages)
        } else {
            " (per-chat layout: imported at the next start)".into()
        }
    );
    for k in &r.kept {
        println!("kept the replaced {}", k.display());
    }
    Ok(())
}

/// The directory holding `db` (its lock file lives there).
fn dir_of(db: &std::path::Path) -> &std::path::Path {
    match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    }
}

/// `mediatord migrate [--check] DB`: reports the database's schema and, unless `check`,
/// imports a legacy one (under the data directory's lock, so never beside a running daemon).
pub fn migrate(db: &std::path::Path, check: bool) -> Result<()> {
    use store::import;
    use store::schema::{Found, SCHEMA_VERSION};
    if !db.exists() {
        anyhow::bail!("{}: no such file", db.display());
    }
    let (found, survey) = import::plan(db).with_context(|| format!("reading {}", db.display()))?;
    let Some(s) = survey else {
        match found {
            Found::Current => println!(
                "{}: schema version {SCHEMA_VERSION}, up to date: nothing to do",
                db.display()
            ),
            Found::Upgrade(from) if check => println!(
                "{}: schema version {from}: would be upgraded in place to {SCHEMA_VERSION} \
                 (adds {})",
                db.display(),
                store::schema::upgrade_steps(from).join(", ")
            ),
            Found::Upgrade(from) => {
                let _lock = datadir::lock_dir(dir_of(db))?;
                store::schema::prepare_file(db)
                    .with_context(|| format!("upgrading {}", db.display()))?;
                println!(
                    "{}: upgraded from schema version {from} to {SCHEMA_VERSION} (added {})",
                    db.display(),
                    store::schema::upgrade_steps(from).join(", ")
                );
            }
            _ => println!(
                "{}: no tables yet: the daemon creates schema version {SCHEMA_VERSION} at start",
                db.display()
            ),
        }
        return Ok(());
    };
    let origin = if s.version == 0 {
        "the Go mediator's layout".to_string()
    } else {
        format!("mediatord's per-chat layout, version {}", s.version)
    };
    println!("{}: {origin}", db.display());
    println!(
        "  chats {}, members {} ({} banned), messages {} ({} without a body), invites {}, nonces {}",
        s.chats, s.members, s.banned, s.messages, s.bodiless, s.invites, s.nonces
    );
    if s.orphan_tables > 0 {
        println!(
            "  {} per-chat tables belong to no chat and are left in the backup",
            s.orphan_tables
        );
    }
    if s.incomplete_chats > 0 {
        println!(
            "  {} chats lack one of their tables and are imported with what they have",
            s.incomplete_chats
        );
    }
    let backup = import::backup_path(db, s.version);
    if check {
        println!(
            "would import into schema version {SCHEMA_VERSION} in one transaction (about {} MiB of free space needed) and keep the original as {}",
            s.bytes.div_ceil(1 << 20),
            backup.display()
        );
        return Ok(());
    }
    let _lock = datadir::lock_dir(dir_of(db))?;
    let done = import::import(db, &mut PrintProgress)
        .with_context(|| format!("importing {}", db.display()))?;
    match done {
        Some(i) => println!(
            "imported in {:.1} s; the original is kept as {} until you remove it",
            i.elapsed.as_secs_f64(),
            i.backup.display()
        ),
        None => println!("nothing to do"),
    }
    Ok(())
}

/// `mediatord migrate --from sqlite:PATH --to postgres://…`: copies the SQLite store into
/// PostgreSQL (under the data directory's lock, so that no daemon writes to the source
/// meanwhile), printing each table.
pub fn copy_to_postgres(from: &str, to: &str, check: bool, replace: bool) -> Result<()> {
    use store::postgres::copy::{copy_sqlite_to_postgres, CopyOptions};
    let Some(path) = from.strip_prefix("sqlite:") else {
        anyhow::bail!("--from {from}: only a SQLite store (sqlite:PATH) can be copied");
    };
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        anyhow::bail!("--to {to}: a PostgreSQL URL (postgres://USER@HOST/DB) is expected");
    }
    let path = std::path::Path::new(path);
    if !path.exists() {
        anyhow::bail!("{}: no such file", path.display());
    }
    let _lock = datadir::lock_dir(dir_of(path))
        .context("a running mediatord holds the source's data directory: stop it first")?;
    let opts = CopyOptions {
        replace,
        dry_run: check,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime
        .block_on(copy_sqlite_to_postgres(path, to, &opts, |t| {
            println!(
                "  {}: {} rows in {:.2} s",
                t.table,
                t.rows,
                t.elapsed.as_secs_f64()
            )
        }))
        .with_context(|| format!("copying {} into PostgreSQL", path.display()))?;
    let rows: u64 = report.tables.iter().map(|t| t.rows).sum();
    let verb = match (report.committed, report.replaced) {
        (false, _) => "would copy (checked, rolled back)",
        (true, true) => "copied, replacing the previous copy,",
        (true, false) => "copied",
    };
    println!(
        "{verb} {rows} rows ({} MiB of message bodies) in {:.1} s; every table's row count matches",
        report.body_bytes >> 20,
        report.elapsed.as_secs_f64()
    );
    Ok(())
}

/// Progress of `mediatord migrate`, on stdout.
struct PrintProgress;

impl store::import::Observer for PrintProgress {
    fn progress(&mut self, p: &store::import::Progress) {
        println!(
            "  {} of {} chats, {} messages, {:.1} s",
            p.chats_done,
            p.chats_total,
            p.messages_done,
            p.elapsed.as_secs_f64()
        );
    }
}
