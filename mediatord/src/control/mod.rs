//! The control API of `mediator.control.v1` on a Unix socket, for mediatorctl: this module
//! is the socket and who may use it; `service` is what each call does, `moderate` the
//! moderation calls, `blocks` server-wide blocks and ending sessions, `backup` streamed
//! backups, `retention` purging old messages.
//!
//! The socket is created with mode 0660 and, when the configured group exists, owned by that
//! group. A stale socket file is replaced; a socket on which a daemon still answers is never
//! taken over. Every call checks the caller's credentials (SO_PEERCRED): root, the daemon's
//! own user, and members of the configured group (primary or supplementary: the process's
//! groups from /proc, or the account's from the group database where /proc hides other users'
//! processes, as under the packaged unit) are allowed; anyone else gets PERMISSION_DENIED.

mod backup;
mod blocks;
mod moderate;
mod retention;
mod service;
mod standby;

pub use service::Service;
pub use standby::Standby;

use mediator_control::ControlServer;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

/// Default page size of list calls.
pub const DEFAULT_PAGE: u32 = 100;
/// Largest page a list call returns; callers page with `offset` beyond it.
pub const MAX_PAGE: u32 = 1_000;
/// Mode of the control socket: owner and group may connect.
pub const SOCKET_MODE: u32 = 0o660;

/// Failure to set up the control socket.
#[derive(Debug, Error)]
pub enum ControlError {
    #[error("control socket {0} is in use by a running mediatord")]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket")]
    NotASocket(PathBuf),
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Looks up a group id by name (`None` when there is no such group or the lookup fails).
pub fn group_id(name: &str) -> Option<u32> {
    match nix::unistd::Group::from_name(name) {
        Ok(g) => g.map(|g| g.gid.as_raw()),
        Err(e) => {
            tracing::warn!(group = name, error = %e, "group lookup failed");
            None
        }
    }
}

/// Binds the control socket at `path`: replaces a stale file, refuses a live daemon's socket,
/// sets mode 0660 and the group.
pub fn bind(path: &Path, gid: Option<u32>) -> Result<tokio::net::UnixListener, ControlError> {
    let io = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(ControlError::NotASocket(path.to_path_buf()));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ControlError::InUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(io)?;
        tracing::info!(path = %path.display(), "replaced a stale control socket");
    }
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE)).map_err(io)?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(io)?;
    }
    Ok(listener)
}

/// Who may call, resolved at start.
#[derive(Debug, Clone)]
pub struct Access {
    pub group: String,
    pub gid: Option<u32>,
    pub own_uid: u32,
}

impl Access {
    /// Checks the caller's credentials; returns who it is.
    pub(crate) fn check<T>(
        &self,
        req: &tonic::Request<T>,
    ) -> Result<service::Caller, tonic::Status> {
        let cred = req
            .extensions()
            .get::<tonic::transport::server::UdsConnectInfo>()
            .and_then(|i| i.peer_cred);
        match cred {
            Some(c) if self.allows(c.uid(), c.gid(), c.pid()) => Ok(service::Caller::of(c.uid())),
            Some(c) => {
                tracing::warn!(uid = c.uid(), "control call refused");
                Err(tonic::Status::permission_denied(format!(
                    "permission denied: add yourself to group {}",
                    self.group
                )))
            }
            None => Err(tonic::Status::permission_denied(
                "caller credentials unavailable",
            )),
        }
    }

    pub(crate) fn allows(&self, uid: u32, gid: u32, pid: Option<i32>) -> bool {
        if uid == 0 || uid == self.own_uid {
            return true;
        }
        let Some(group) = self.gid else { return false };
        gid == group || caller_groups(uid, gid, pid).contains(&group)
    }
}

/// The caller's supplementary groups: the process's own, from /proc, when the daemon may
/// read them; otherwise (the packaged unit's `ProtectProc=invisible` hides other users'
/// processes) those the account belongs to in the group database, as a fresh login gets.
fn caller_groups(uid: u32, gid: u32, pid: Option<i32>) -> Vec<u32> {
    if let Some(groups) = pid.and_then(process_groups) {
        return groups;
    }
    account_groups(uid, gid)
}

/// Supplementary groups of a process, from /proc; `None` when it cannot be read.
fn process_groups(pid: i32) -> Option<Vec<u32>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Groups:"))?;
    Some(
        line.split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect(),
    )
}

/// The groups of the account `uid` in the user and group databases (its primary group and
/// those that list it), plus `gid`, the caller's current group.
fn account_groups(uid: u32, gid: u32) -> Vec<u32> {
    use nix::unistd::{getgrouplist, Gid, Uid, User};
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
        return Vec::new();
    };
    let Ok(name) = std::ffi::CString::new(user.name) else {
        return Vec::new();
    };
    let mut groups: Vec<u32> = getgrouplist(&name, user.gid)
        .map(|g| g.into_iter().map(Gid::as_raw).collect())
        .unwrap_or_default();
    groups.push(gid);
    groups
}

/// Serves the control API on `listener` until `stop` fires.
/// Bytes available to the daemon, and the size, of the file system holding `dir` (`health`).
fn disk_space(dir: &Path) -> Result<(u64, u64), tonic::Status> {
    match nix::sys::statvfs::statvfs(dir) {
        Ok(v) => {
            let unit = v.fragment_size();
            Ok((v.blocks_available() * unit, v.blocks() * unit))
        }
        Err(e) => Err(tonic::Status::internal(format!(
            "cannot read the file system of {}: {e}",
            dir.display()
        ))),
    }
}

pub async fn serve<S: mediator_control::Control>(
    service: S,
    listener: tokio::net::UnixListener,
    stop: CancellationToken,
) {
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let res = tonic::transport::Server::builder()
        .add_service(ControlServer::new(service))
        .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
        .await;
    if let Err(e) = res {
        tracing::error!(error = %e, "control server stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_rules() {
        let a = Access {
            group: "g".into(),
            gid: Some(500),
            own_uid: 100,
        };
        assert!(a.allows(0, 0, None));
        assert!(a.allows(100, 1, None));
        assert!(a.allows(7, 500, None));
        assert!(!a.allows(7, 7, None));
        let none = Access { gid: None, ..a };
        assert!(!none.allows(7, 500, None));
    }

    /// Without a readable /proc entry (a process that is gone or hidden by `hidepid`), the
    /// groups come from the group database: root's account lists its primary group.
    #[test]
    fn groups_come_from_the_account_when_proc_is_hidden() {
        assert_eq!(process_groups(i32::MAX), None);
        assert!(caller_groups(0, 0, Some(i32::MAX)).contains(&0));
        assert!(account_groups(0, 0).contains(&0));
        assert!(
            account_groups(u32::MAX - 7, 0).is_empty(),
            "no such account"
        );
        let me = std::process::id() as i32;
        assert!(process_groups(me).is_some());
    }
}
