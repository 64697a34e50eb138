//! The control service: every call of `mediator.control.v1`, after the caller's credentials
//! were checked ([`super::Access`]). It reads and changes the daemon only through the store's
//! operator queries (`crate::store::admin`), the hub and the node; it holds no SQL of its own.
//! Message contents stay opaque: the API exposes counts, keys, roles and times, never message
//! bodies.

use super::{Access, DEFAULT_PAGE, MAX_PAGE};
use crate::server::Server;
use crate::store::admin::{self, ChatFigures};
use crate::store::audit::AuditEntry as AuditRecord;
use crate::store::prelude::*;
use crate::store::Reject;
use mediator_control::v1::*;
use mediator_control::Control;
use std::path::PathBuf;
use std::sync::Arc;
use tonic::{Request, Response, Status};

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

/// Who made a call, from the socket's credentials, for the audit log.
#[derive(Debug, Clone)]
pub struct Caller {
    pub uid: u32,
    /// The uid's user name, or the number when it has none.
    pub user: String,
}

impl Caller {
    pub(super) fn of(uid: u32) -> Caller {
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| uid.to_string());
        Caller { uid, user }
    }
}

impl Service {
    /// Checks the caller's credentials; returns who it is.
    fn check<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        self.access.check(req)
    }
}

impl Service {
    /// Runs the state-changing `change` on the writer and records it in the audit log: in the
    /// same transaction when it succeeds (`done` says what it did), in one of its own when it
    /// fails, so the log holds refused and failed actions too.
    pub(super) async fn audited<T, F, D>(
        &self,
        caller: &Caller,
        action: &str,
        target: String,
        change: F,
        done: D,
    ) -> Result<T, Reject>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Db) -> Result<T, Reject> + Send + 'static,
        D: FnOnce(&T) -> String + Send + 'static,
    {
        let entry = self.entry(caller, action, target, String::new());
        let mut ok = entry.clone();
        let out = self
            .server
            .store
            .write(move |c| {
                let t = change(c)?;
                ok.result = match done(&t) {
                    d if d.is_empty() => "ok".to_string(),
                    d => format!("ok: {d}"),
                };
                c.record(&ok)?;
                Ok(t)
            })
            .await;
        if let Err(e) = &out {
            let mut failed = entry;
            failed.result = format!("failed: {e}");
            self.note(failed).await;
        }
        out
    }

    /// Records `entry` in the audit log in a transaction of its own (for actions that do not
    /// run on the writer, and for failures).
    pub(super) async fn note(&self, entry: AuditRecord) {
        let action = entry.action.clone();
        if let Err(e) = self
            .server
            .store
            .write(move |c| Ok(c.record(&entry)?))
            .await
        {
            tracing::error!(error = %e, action, "cannot record an action in the audit log");
        }
    }

    /// An audit entry by `caller`, stamped now.
    pub(super) fn entry(
        &self,
        caller: &Caller,
        action: &str,
        target: String,
        result: String,
    ) -> AuditRecord {
        AuditRecord {
            id: 0,
            ts: self.server.clock.now_secs(),
            uid: caller.uid,
            user: caller.user.clone(),
            action: action.to_string(),
            target,
            result,
        }
    }
}

#[tonic::async_trait]
impl Control for Service {
    async fn status(&self, req: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        self.check(&req)?;
        let totals = self
            .server
            .store
            .read(|c| Ok(c.totals()?))
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
        let database_bytes = self.server.store.database_bytes().await.map_err(internal)?;
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
            chats: totals.chats,
            users: totals.users,
            sessions: self.server.hub.session_count() as u64,
            messages: totals.messages,
            database_bytes,
            nonces: self
                .server
                .nonces
                .load(std::sync::atomic::Ordering::Relaxed) as u64,
            invites: totals.invites,
            yggdrasil_peers,
            yggdrasil_root,
            data_dir: self.data_dir.display().to_string(),
            guest_sessions: self.server.hub.guest_count() as u64,
            role: self.server.store.role().as_str().to_string(),
            store: self.server.store.backend().to_string(),
            sessions_by_transport: {
                let census = self.server.hub.census();
                crate::peer::Transport::ALL
                    .iter()
                    .map(|t| EventCount {
                        name: t.name().to_string(),
                        count: census
                            .iter()
                            .filter(|((tr, _), _)| tr == t)
                            .map(|(_, n)| *n as u64)
                            .sum(),
                    })
                    .collect()
            },
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
        let sort = ChatSort::try_from(r.sort).unwrap_or(ChatSort::Id);
        let in_table = match sort {
            ChatSort::Id => Some(admin::ChatOrder::Id),
            ChatSort::Created => Some(admin::ChatOrder::Created),
            ChatSort::Messages => Some(admin::ChatOrder::Messages),
            ChatSort::Members | ChatSort::LastActivity => None,
        };
        if let Some(order) = in_table {
            // The table gives this order: read one page, not every chat.
            let owner = r.owner.clone();
            let (descending, offset, limit) = (r.descending, r.offset, page(r.limit) as u64);
            let (figures, total) = self
                .server
                .store
                .read(move |c| {
                    Ok(c.chat_page(
                        (!owner.is_empty()).then_some(&owner[..]),
                        order,
                        descending,
                        offset,
                        limit,
                    )?)
                })
                .await
                .map_err(internal)?;
            let mut chats: Vec<ChatSummary> = figures.into_iter().map(summary).collect();
            for ch in &mut chats {
                ch.subscribers = self.server.hub.subscribers(ch.id) as u64;
            }
            let next = next_offset(r.offset, chats.len(), total);
            return Ok(Response::new(ListChatsReply {
                chats,
                total,
                next_offset: next,
            }));
        }
        // By members or last activity: every chat's figures, sorted here.
        let owner = r.owner.clone();
        let mut chats: Vec<ChatSummary> = self
            .server
            .store
            .read(move |c| Ok(c.chat_list((!owner.is_empty()).then_some(&owner[..]))?))
            .await
            .map_err(internal)?
            .into_iter()
            .map(summary)
            .collect();
        for ch in &mut chats {
            ch.subscribers = self.server.hub.subscribers(ch.id) as u64;
        }
        match sort {
            ChatSort::Members => chats.sort_by_key(|c| (c.members, c.id)),
            _ => chats.sort_by_key(|c| (c.last_activity, c.id)),
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
        let details = self
            .server
            .store
            .read(move |c| Ok(c.chat_details(id)?))
            .await
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("no chat with id {id}")))?;
        let mut chat = summary(details.figures);
        chat.subscribers = self.server.hub.subscribers(id) as u64;
        let (description, avatar_bytes) = details
            .settings
            .map(|s| (s.desc, s.avatar.map_or(0, |a| a.len() as u64)))
            .unwrap_or_default();
        Ok(Response::new(ShowChatReply {
            chat: Some(chat),
            description,
            avatar_bytes,
            roles: details.roles.into_iter().collect(),
            pending_invites: details.pending_invites,
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
            .read(move |c| Ok(c.chat_members(chat)?))
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
                    role: admin::role_name(m.perms, m.banned).to_string(),
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
                transport: s.transport.name().to_string(),
            })
            .collect();
        Ok(Response::new(ListSubscribersReply { sessions }))
    }

    async fn purge_nonces(
        &self,
        req: Request<PurgeNoncesRequest>,
    ) -> Result<Response<PurgeNoncesReply>, Status> {
        let caller = self.check(&req)?;
        let age = match req.into_inner().older_than_secs {
            0 => self.server.limits.nonce_ttl.as_secs(),
            n => n,
        };
        let before = self.server.clock.now_secs().saturating_sub(age as i64);
        let (removed, remaining) = self
            .audited(
                &caller,
                "nonces purge",
                format!("older than {age}s"),
                move |c| {
                    let (removed, _) = c.expire(before, None)?;
                    Ok((removed, c.nonce_count()?))
                },
                |(removed, _)| format!("{removed} removed"),
            )
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
        let (up, dials) = self
            .node
            .as_ref()
            .map(|n| (n.peers(), n.dial_status()))
            .unwrap_or_default();
        let mut peers: Vec<Peer> = up
            .into_iter()
            .map(|p| Peer {
                uri: p.uri.unwrap_or_else(|| format!("tcp://{}", p.remote)),
                key: p.key.to_vec(),
                inbound: p.inbound,
                priority: u32::from(p.priority),
                uptime_secs: p.up_since.elapsed().map(|d| d.as_secs()).unwrap_or(0),
                up: true,
                ..Default::default()
            })
            .collect();
        // Configured peers without a live link, with what their dialer last saw.
        for d in dials {
            if peers.iter().any(|p| p.uri == d.uri && !p.inbound) {
                continue;
            }
            peers.push(Peer {
                uri: d.uri,
                failures: d.failures,
                last_error: d.last_error.unwrap_or_default(),
                last_error_at: d.last_error_at.map_or(0, |t| {
                    t.duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs() as i64)
                }),
                ..Default::default()
            });
        }
        Ok(Response::new(ListPeersReply {
            peers,
            yggdrasil_enabled: self.node.is_some(),
        }))
    }

    async fn backup(&self, req: Request<BackupRequest>) -> Result<Response<BackupReply>, Status> {
        let caller = self.check(&req)?;
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
        let copied = self
            .server
            .store
            .read(move |c| Ok(crate::store::sqlite::backup_to(c, &d2)?))
            .await;
        let target = dest.display().to_string();
        let pages = match copied {
            Ok(pages) => pages,
            Err(e) => {
                let _ = std::fs::remove_file(&dest);
                let result = format!("failed: {e}");
                self.note(self.entry(&caller, "backup", target, result))
                    .await;
                return Err(Status::internal(format!(
                    "backup to {} failed: {e}",
                    dest.display()
                )));
            }
        };
        let bytes = std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
        tracing::info!(path = %dest.display(), bytes, "backup written");
        let result = format!("ok: {bytes} bytes");
        self.note(self.entry(&caller, "backup", target, result))
            .await;
        Ok(Response::new(BackupReply {
            bytes,
            pages: pages as u64,
        }))
    }

    type BackupStreamStream = super::backup::BackupStream;

    async fn backup_stream(
        &self,
        req: Request<BackupStreamRequest>,
    ) -> Result<Response<Self::BackupStreamStream>, Status> {
        let caller = self.check(&req)?;
        self.stream_backup(caller, req.into_inner()).await
    }

    async fn list_audit(
        &self,
        req: Request<ListAuditRequest>,
    ) -> Result<Response<ListAuditReply>, Status> {
        self.check(&req)?;
        let r = req.into_inner();
        let limit = page(r.limit) as u32;
        let before = (r.before > 0).then_some(r.before);
        let entries = self
            .server
            .store
            .read(move |c| Ok(c.list(limit, before)?))
            .await
            .map_err(internal)?
            .into_iter()
            .map(|e| AuditEntry {
                id: e.id,
                ts: e.ts,
                uid: e.uid,
                user: e.user,
                action: e.action,
                target: e.target,
                result: e.result,
            })
            .collect();
        Ok(Response::new(ListAuditReply { entries }))
    }

    async fn delete_chat(
        &self,
        req: Request<DeleteChatRequest>,
    ) -> Result<Response<ModerationReply>, Status> {
        let caller = self.check(&req)?;
        self.delete_chat_as_owner(caller, req.into_inner()).await
    }

    async fn ban_member(
        &self,
        req: Request<MemberRequest>,
    ) -> Result<Response<ModerationReply>, Status> {
        let caller = self.check(&req)?;
        self.moderate_member(caller, "members ban", req.into_inner())
            .await
    }

    async fn unban_member(
        &self,
        req: Request<MemberRequest>,
    ) -> Result<Response<ModerationReply>, Status> {
        let caller = self.check(&req)?;
        self.moderate_member(caller, "members unban", req.into_inner())
            .await
    }

    async fn remove_member(
        &self,
        req: Request<MemberRequest>,
    ) -> Result<Response<ModerationReply>, Status> {
        let caller = self.check(&req)?;
        self.moderate_member(caller, "members remove", req.into_inner())
            .await
    }

    async fn set_role(
        &self,
        req: Request<SetRoleRequest>,
    ) -> Result<Response<ModerationReply>, Status> {
        let caller = self.check(&req)?;
        self.set_role_as_owner(caller, req.into_inner()).await
    }

    async fn delete_message(
        &self,
        req: Request<DeleteMessageRequest>,
    ) -> Result<Response<ModerationReply>, Status> {
        let caller = self.check(&req)?;
        self.delete_message_by_id(caller, req.into_inner()).await
    }

    async fn purge_messages(
        &self,
        req: Request<PurgeMessagesRequest>,
    ) -> Result<Response<PurgeMessagesReply>, Status> {
        let caller = self.check(&req)?;
        self.purge_old_messages(caller, req.into_inner()).await
    }

    async fn block(&self, req: Request<BlockRequest>) -> Result<Response<BlockReply>, Status> {
        let caller = self.check(&req)?;
        self.set_block(caller, req.into_inner()).await
    }

    async fn unblock(
        &self,
        req: Request<UnblockRequest>,
    ) -> Result<Response<ModerationReply>, Status> {
        let caller = self.check(&req)?;
        self.lift_block(caller, req.into_inner()).await
    }

    async fn list_blocks(
        &self,
        req: Request<ListBlocksRequest>,
    ) -> Result<Response<ListBlocksReply>, Status> {
        self.check(&req)?;
        self.blocks_in_force().await
    }

    async fn kick_sessions(
        &self,
        req: Request<KickRequest>,
    ) -> Result<Response<KickReply>, Status> {
        let caller = self.check(&req)?;
        self.kick(caller, req.into_inner()).await
    }

    async fn health(&self, req: Request<HealthRequest>) -> Result<Response<HealthReply>, Status> {
        self.check(&req)?;
        let w = self.server.store.writer_state();
        let (disk_free_bytes, disk_total_bytes) = super::disk_space(&self.data_dir)?;
        Ok(Response::new(HealthReply {
            writer_queued: w.queued as u64,
            writer_busy: w.busy,
            writer_since_progress_ms: w.since_progress.as_millis() as u64,
            disk_free_bytes,
            disk_total_bytes,
            yggdrasil_enabled: self.node.is_some(),
            yggdrasil_peers_configured: self
                .node
                .as_ref()
                .map_or(0, |n| n.configured_peers().len() as u32),
            yggdrasil_peers_up: self.node.as_ref().map_or(0, |n| n.peers().len() as u32),
            database_check: self.server.store.integrity().describe(),
            role: self.server.store.role().as_str().to_string(),
        }))
    }
}

/// The control message for a chat's figures (subscribers are the hub's, filled in after).
fn summary(f: ChatFigures) -> ChatSummary {
    ChatSummary {
        id: f.id,
        owner: f.owner,
        created_at: f.created_at,
        name: f.name,
        members: f.members,
        messages: f.messages,
        last_activity: f.last_activity,
        subscribers: 0,
        banned: f.banned,
    }
}
