//! The control service: the gRPC API of `mediator.control.v1` on a Unix socket, for
//! mediatorctl.
//!
//! The socket is created with mode 0660 and, when the configured group exists, owned by that
//! group. A stale socket file is replaced; a socket on which a daemon still answers is never
//! taken over. Every call checks the caller's credentials (SO_PEERCRED): root, the daemon's
//! own user, and members of the configured group (primary or supplementary) are allowed,
//! anyone else gets PERMISSION_DENIED. Message contents stay opaque: the API exposes counts,
//! keys, roles and times, never message bodies.

use crate::server::Server;
use crate::store::queries::{self as q, now_secs};
use crate::store::schema::{messages_table, users_table};
use crate::store::Reject;
use mediator_control::v1::*;
use mediator_control::{Control, ControlServer};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Response, Status};

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

/// Looks up a group id by name.
pub fn group_id(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: getgrnam returns NULL or a pointer to static storage, read at once.
    let g = unsafe { libc::getgrnam(c.as_ptr()) };
    if g.is_null() {
        None
    } else {
        // SAFETY: checked non-null above.
        Some(unsafe { (*g).gr_gid })
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
    fn allows(&self, uid: u32, gid: u32, pid: Option<i32>) -> bool {
        if uid == 0 || uid == self.own_uid {
            return true;
        }
        let Some(group) = self.gid else { return false };
        gid == group || pid.is_some_and(|p| supplementary_groups(p).contains(&group))
    }
}

/// Supplementary groups of a process, from /proc.
fn supplementary_groups(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Groups:")).map(|g| {
                g.split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// The service state.
pub struct Service {
    pub server: Arc<Server>,
    pub access: Access,
    pub listeners: Vec<String>,
    pub data_dir: PathBuf,
    /// The embedded Yggdrasil node, when one runs.
    pub node: Option<Arc<yggnode::Node>>,
}

fn internal(e: Reject) -> Status {
    tracing::error!(error = %e, "control query failed");
    Status::internal(format!("database error: {e}"))
}

fn page(limit: u32) -> usize {
    match limit {
        0 => DEFAULT_PAGE as usize,
        n => n.min(MAX_PAGE) as usize,
    }
}

fn next_offset(offset: u64, returned: usize, total: u64) -> u64 {
    let next = offset + returned as u64;
    if next < total {
        next
    } else {
        0
    }
}

/// A human name for a perms byte.
pub fn role_name(perms: u8, banned: bool) -> &'static str {
    use mediator_wire::codes::perms as p;
    if banned {
        "banned"
    } else if perms & p::OWNER != 0 {
        "owner"
    } else if perms & p::ADMIN != 0 {
        "admin"
    } else if perms & p::MODERATOR != 0 {
        "moderator"
    } else if perms & p::READ_ONLY != 0 {
        "read-only"
    } else {
        "user"
    }
}

/// Per-chat figures (one chat's tables).
fn chat_summary(
    c: &rusqlite::Connection,
    id: i64,
    owner: Vec<u8>,
    created_at: i64,
) -> rusqlite::Result<ChatSummary> {
    let name = q::settings(c, id)?.map(|s| s.name).unwrap_or_default();
    let (members, banned): (i64, i64) = c.query_row(
        &format!(
            "SELECT COUNT(*), IFNULL(SUM(banned != 0), 0) FROM {}",
            users_table(id)
        ),
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (messages, last): (i64, i64) = c.query_row(
        &format!(
            "SELECT COUNT(*), IFNULL(MAX(ts), 0) FROM {}",
            messages_table(id)
        ),
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(ChatSummary {
        id,
        owner,
        created_at,
        name,
        members: (members - banned) as u64,
        messages: messages as u64,
        last_activity: last.max(created_at),
        subscribers: 0,
        banned: banned as u64,
    })
}

fn all_chats(c: &rusqlite::Connection) -> rusqlite::Result<Vec<(i64, Vec<u8>, i64)>> {
    let mut st = c.prepare_cached("SELECT id, owner_pubkey, created_at FROM chats ORDER BY id")?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}

impl Service {
    fn check<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let cred = req
            .extensions()
            .get::<UdsConnectInfo>()
            .and_then(|i| i.peer_cred);
        match cred {
            Some(c) if self.access.allows(c.uid(), c.gid(), c.pid()) => Ok(()),
            Some(c) => {
                tracing::warn!(uid = c.uid(), "control call refused");
                Err(Status::permission_denied(format!(
                    "permission denied: add yourself to group {}",
                    self.access.group
                )))
            }
            None => Err(Status::permission_denied("caller credentials unavailable")),
        }
    }
}

#[tonic::async_trait]
impl Control for Service {
    async fn status(&self, req: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        self.check(&req)?;
        let (chats, users, messages, invites) = self
            .server
            .store
            .read(|c| {
                let ids: Vec<i64> = all_chats(c)?.into_iter().map(|x| x.0).collect();
                let mut keys = std::collections::HashSet::new();
                let mut messages = 0i64;
                for id in &ids {
                    let mut st = c.prepare(&format!("SELECT pubkey FROM {}", users_table(*id)))?;
                    for k in st.query_map([], |r| r.get::<_, Vec<u8>>(0))? {
                        keys.insert(k?);
                    }
                    messages += q::message_count(c, *id)?;
                }
                let invites: i64 = c.query_row("SELECT COUNT(*) FROM invites", [], |r| r.get(0))?;
                Ok((ids.len(), keys.len(), messages, invites))
            })
            .await
            .map_err(internal)?;
        let (yggdrasil_peers, yggdrasil_root) = match &self.node {
            Some(n) => (
                n.peers().len() as u32,
                n.self_info()
                    .await
                    .map(|i| i.root.to_vec())
                    .unwrap_or_default(),
            ),
            None => (0, Vec::new()),
        };
        let db = self.server.store.path();
        let size = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let database_bytes = size(db.to_path_buf()) + size(db.with_extension("db-wal"));
        Ok(Response::new(StatusReply {
            version: env!("CARGO_PKG_VERSION").to_string(),
            public_key: self.server.key.to_vec(),
            uptime_secs: self
                .server
                .started
                .elapsed()
                .map(|d| d.as_secs())
                .unwrap_or(0),
            listeners: self.listeners.clone(),
            chats: chats as u64,
            users: users as u64,
            sessions: self.server.hub.session_count() as u64,
            messages: messages as u64,
            database_bytes,
            nonces: self
                .server
                .nonces
                .load(std::sync::atomic::Ordering::Relaxed) as u64,
            invites: invites as u64,
            yggdrasil_peers,
            yggdrasil_root,
            data_dir: self.data_dir.display().to_string(),
            guest_sessions: self.server.hub.guest_count() as u64,
            queued_bytes: self.server.hub.budget.queued() as u64,
            events: crate::events::counters()
                .into_iter()
                .map(|(name, count)| EventCount {
                    name: name.to_string(),
                    count,
                })
                .collect(),
        }))
    }

    async fn list_chats(
        &self,
        req: Request<ListChatsRequest>,
    ) -> Result<Response<ListChatsReply>, Status> {
        self.check(&req)?;
        let r = req.into_inner();
        if !r.owner.is_empty() && r.owner.len() != 32 {
            return Err(Status::invalid_argument("owner must be a 32-byte key"));
        }
        let owner = r.owner.clone();
        let mut chats = self
            .server
            .store
            .read(move |c| {
                let mut out = Vec::new();
                for (id, o, created) in all_chats(c)? {
                    if owner.is_empty() || o == owner {
                        out.push(chat_summary(c, id, o, created)?);
                    }
                }
                Ok(out)
            })
            .await
            .map_err(internal)?;
        for ch in &mut chats {
            ch.subscribers = self.server.hub.subscribers(ch.id) as u64;
        }
        match ChatSort::try_from(r.sort).unwrap_or(ChatSort::Id) {
            ChatSort::Id => chats.sort_by_key(|c| c.id),
            ChatSort::Created => chats.sort_by_key(|c| (c.created_at, c.id)),
            ChatSort::Members => chats.sort_by_key(|c| (c.members, c.id)),
            ChatSort::Messages => chats.sort_by_key(|c| (c.messages, c.id)),
            ChatSort::LastActivity => chats.sort_by_key(|c| (c.last_activity, c.id)),
        }
        if r.descending {
            chats.reverse();
        }
        let total = chats.len() as u64;
        let page: Vec<ChatSummary> = chats
            .into_iter()
            .skip(r.offset as usize)
            .take(page(r.limit))
            .collect();
        let next = next_offset(r.offset, page.len(), total);
        Ok(Response::new(ListChatsReply {
            chats: page,
            total,
            next_offset: next,
        }))
    }

    async fn show_chat(
        &self,
        req: Request<ShowChatRequest>,
    ) -> Result<Response<ShowChatReply>, Status> {
        self.check(&req)?;
        let id = req.into_inner().id;
        let found = self
            .server
            .store
            .read(move |c| {
                let Some(owner) = q::chat_owner(c, id)? else {
                    return Ok(None);
                };
                let created: i64 =
                    c.query_row("SELECT created_at FROM chats WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })?;
                let summary = chat_summary(c, id, owner, created)?;
                let settings = q::settings(c, id)?;
                let mut roles = BTreeMap::new();
                for m in q::members(c, id, true)? {
                    *roles
                        .entry(role_name(m.perms, m.banned).to_string())
                        .or_insert(0u64) += 1;
                }
                let invites: i64 = c.query_row(
                    "SELECT COUNT(*) FROM invites WHERE chat_id = ?1",
                    [id],
                    |r| r.get(0),
                )?;
                Ok(Some((summary, settings, roles, invites)))
            })
            .await
            .map_err(internal)?;
        let Some((mut chat, settings, roles, invites)) = found else {
            return Err(Status::not_found(format!("no chat with id {id}")));
        };
        chat.subscribers = self.server.hub.subscribers(id) as u64;
        let (description, avatar_bytes) = settings
            .map(|s| (s.desc, s.avatar.map_or(0, |a| a.len() as u64)))
            .unwrap_or_default();
        Ok(Response::new(ShowChatReply {
            chat: Some(chat),
            description,
            avatar_bytes,
            roles: roles.into_iter().collect(),
            pending_invites: invites as u64,
        }))
    }

    async fn list_members(
        &self,
        req: Request<ListMembersRequest>,
    ) -> Result<Response<ListMembersReply>, Status> {
        self.check(&req)?;
        let r = req.into_inner();
        let chat = r.chat_id;
        let rows = self
            .server
            .store
            .read(move |c| {
                if !q::chat_exists(c, chat)? {
                    return Ok(None);
                }
                Ok(Some(q::members(c, chat, true)?))
            })
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("no chat with id {chat}")))?;
        let total = rows.len() as u64;
        let members: Vec<Member> = rows
            .into_iter()
            .skip(r.offset as usize)
            .take(page(r.limit))
            .map(|m| {
                let key: [u8; 32] = m.pubkey.as_slice().try_into().unwrap_or([0; 32]);
                Member {
                    online: self.server.hub.online(chat, &key),
                    role: role_name(m.perms, m.banned).to_string(),
                    key: m.pubkey,
                    perms: u32::from(m.perms),
                    banned: m.banned,
                    last_seen: m.last_seen,
                    joined_at: m.accepted_at,
                }
            })
            .collect();
        let next = next_offset(r.offset, members.len(), total);
        Ok(Response::new(ListMembersReply {
            members,
            total,
            next_offset: next,
        }))
    }

    async fn list_subscribers(
        &self,
        req: Request<ListSubscribersRequest>,
    ) -> Result<Response<ListSubscribersReply>, Status> {
        self.check(&req)?;
        let sessions = self
            .server
            .hub
            .snapshot()
            .into_iter()
            .map(|s| Subscriber {
                session_id: s.id,
                remote: s.remote,
                user: s.user.map(|u| u.to_vec()).unwrap_or_default(),
                chats: s.chats,
                connected_since: s
                    .connected_at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0),
                queue_depth: s.queue_depth as u64,
            })
            .collect();
        Ok(Response::new(ListSubscribersReply { sessions }))
    }

    async fn purge_nonces(
        &self,
        req: Request<PurgeNoncesRequest>,
    ) -> Result<Response<PurgeNoncesReply>, Status> {
        self.check(&req)?;
        let age = match req.into_inner().older_than_secs {
            0 => self.server.limits.nonce_ttl.as_secs(),
            n => n,
        };
        let before = now_secs().saturating_sub(age as i64);
        let (removed, remaining) = self
            .server
            .store
            .write(move |c| Ok((q::purge_nonces(c, before)?, q::nonce_count(c)?)))
            .await
            .map_err(internal)?;
        tracing::info!(removed, age, "nonces purged");
        Ok(Response::new(PurgeNoncesReply {
            removed: removed as u64,
            remaining: remaining as u64,
        }))
    }

    async fn list_peers(
        &self,
        req: Request<ListPeersRequest>,
    ) -> Result<Response<ListPeersReply>, Status> {
        self.check(&req)?;
        let peers = self
            .node
            .as_ref()
            .map(|n| n.peers())
            .unwrap_or_default()
            .into_iter()
            .map(|p| Peer {
                uri: p.uri.unwrap_or_else(|| format!("tcp://{}", p.remote)),
                key: p.key.to_vec(),
                inbound: p.inbound,
                priority: u32::from(p.priority),
                uptime_secs: p.up_since.elapsed().map(|d| d.as_secs()).unwrap_or(0),
            })
            .collect();
        Ok(Response::new(ListPeersReply {
            peers,
            yggdrasil_enabled: self.node.is_some(),
        }))
    }

    async fn backup(&self, req: Request<BackupRequest>) -> Result<Response<BackupReply>, Status> {
        self.check(&req)?;
        let dest = PathBuf::from(req.into_inner().path);
        if dest.as_os_str().is_empty() || !dest.is_absolute() {
            return Err(Status::invalid_argument("backup path must be absolute"));
        }
        if dest.exists() {
            return Err(Status::already_exists(format!(
                "{} exists; choose a new file",
                dest.display()
            )));
        }
        let d2 = dest.clone();
        let pages = self
            .server
            .store
            .read(move |c| {
                let mut out = rusqlite::Connection::open(&d2)?;
                let b = rusqlite::backup::Backup::new(c, &mut out)?;
                b.run_to_completion(256, std::time::Duration::from_millis(1), None)?;
                let pages = b.progress().pagecount;
                drop(b);
                out.execute_batch("PRAGMA journal_mode=DELETE")?;
                Ok(pages)
            })
            .await
            .map_err(|e| {
                let _ = std::fs::remove_file(&dest);
                Status::internal(format!("backup to {} failed: {e}", dest.display()))
            })?;
        let bytes = std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
        tracing::info!(path = %dest.display(), bytes, "backup written");
        Ok(Response::new(BackupReply {
            bytes,
            pages: pages as u64,
        }))
    }
}

/// Serves the control API on `listener` until `stop` fires.
pub async fn serve(service: Service, listener: tokio::net::UnixListener, stop: CancellationToken) {
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

    #[test]
    fn roles() {
        assert_eq!(role_name(0x90, false), "owner");
        assert_eq!(role_name(0x11, true), "banned");
        assert_eq!(role_name(0x08, false), "read-only");
    }
}
