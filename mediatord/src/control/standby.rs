//! The control API of a standby (`[store] url`, waiting for the PostgreSQL lease): it holds
//! no data, so it answers `status` (its role, key and uptime) and `health` (its disk; a
//! standby that answers is a healthy standby, so monitoring does not page for it), and
//! refuses everything else with "unavailable", naming where the data is served from. The
//! same access rules as the active daemon's apply.

use super::Access;
use mediator_control::v1::*;
use mediator_control::Control;
use std::path::PathBuf;
use tonic::{Request, Response, Status};

/// What a standby tells a caller of anything but `status`.
pub const STANDBY_REFUSAL: &str = "this mediatord is a standby: it waits for the PostgreSQL \
     lease and serves nothing until it takes over; ask the active one";

/// The standby's control service.
pub struct Standby {
    pub access: Access,
    pub public_key: [u8; 32],
    pub started: std::time::Instant,
    pub data_dir: PathBuf,
}

/// The standby's `Control` implementation: `status`, and every method in the list refused
/// (method, request, reply). One macro writes the whole impl, so that `async_trait` sees the
/// refused methods written out.
macro_rules! standby_control {
    ($(($name:ident, $req:ty, $reply:ty)),* $(,)?) => {
        #[tonic::async_trait]
        impl Control for Standby {
            async fn status(
                &self,
                req: Request<StatusRequest>,
            ) -> Result<Response<StatusReply>, Status> {
                self.access.check(&req)?;
                Ok(Response::new(StatusReply {
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    public_key: self.public_key.to_vec(),
                    uptime_secs: self.started.elapsed().as_secs(),
                    data_dir: self.data_dir.display().to_string(),
                    role: "standby".to_string(),
                    store: "postgresql".to_string(),
                    ..Default::default()
                }))
            }

            async fn health(
                &self,
                req: Request<HealthRequest>,
            ) -> Result<Response<HealthReply>, Status> {
                self.access.check(&req)?;
                let (disk_free_bytes, disk_total_bytes) = super::disk_space(&self.data_dir)?;
                Ok(Response::new(HealthReply {
                    disk_free_bytes,
                    disk_total_bytes,
                    database_check: "standby: waiting for the PostgreSQL lease".to_string(),
                    role: "standby".to_string(),
                    ..Default::default()
                }))
            }

            type BackupStreamStream = super::backup::BackupStream;

            $(
                async fn $name(&self, req: Request<$req>) -> Result<Response<$reply>, Status> {
                    self.access.check(&req)?;
                    Err(Status::unavailable(STANDBY_REFUSAL))
                }
            )*
        }
    };
}

standby_control!(
    (list_chats, ListChatsRequest, ListChatsReply),
    (show_chat, ShowChatRequest, ShowChatReply),
    (list_members, ListMembersRequest, ListMembersReply),
    (
        list_subscribers,
        ListSubscribersRequest,
        ListSubscribersReply
    ),
    (purge_nonces, PurgeNoncesRequest, PurgeNoncesReply),
    (list_peers, ListPeersRequest, ListPeersReply),
    (backup, BackupRequest, BackupReply),
    (
        backup_stream,
        BackupStreamRequest,
        super::backup::BackupStream
    ),
    (list_audit, ListAuditRequest, ListAuditReply),
    (delete_chat, DeleteChatRequest, ModerationReply),
    (ban_member, MemberRequest, ModerationReply),
    (unban_member, MemberRequest, ModerationReply),
    (remove_member, MemberRequest, ModerationReply),
    (set_role, SetRoleRequest, ModerationReply),
    (delete_message, DeleteMessageRequest, ModerationReply),
    (block, BlockRequest, BlockReply),
    (unblock, UnblockRequest, ModerationReply),
    (list_blocks, ListBlocksRequest, ListBlocksReply),
    (kick_sessions, KickRequest, KickReply),
    (purge_messages, PurgeMessagesRequest, PurgeMessagesReply),
);
