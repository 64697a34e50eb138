//! The audit log: every control action that changes state, with who asked (the caller's uid
//! and user name, from the control socket's credentials), what, when and how it ended.
//! Moderation that chat owners do through the protocol is not logged here. Entries are kept
//! in order; [`AUDIT_KEEP`] bounds how many.

use super::queries::DbResult;

/// Entries kept: recording one more drops the oldest past this count.
pub const AUDIT_KEEP: i64 = 100_000;
/// Most entries one listing returns.
pub const AUDIT_PAGE_MAX: u32 = 1_000;

/// One recorded control action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    /// Unix seconds.
    pub ts: i64,
    pub uid: u32,
    /// The uid's user name when the action ran (the number when it had none).
    pub user: String,
    /// The command, e.g. `nonces purge`.
    pub action: String,
    /// What it acted on, e.g. `older than 3600s`; empty when nothing in particular.
    pub target: String,
    /// `ok`, `ok: <what it did>`, or `failed: <error>`.
    pub result: String,
}

/// The audit log on one database connection (or transaction).
pub trait Audit {
    /// Appends an entry (its `id` is ignored) and drops the oldest past [`AUDIT_KEEP`];
    /// returns the new entry's id.
    fn record(&self, e: &AuditEntry) -> DbResult<i64>;

    /// The newest entries first, at most `limit` (capped at [`AUDIT_PAGE_MAX`]), older than
    /// `before` when given.
    fn list(&self, limit: u32, before: Option<i64>) -> DbResult<Vec<AuditEntry>>;
}
