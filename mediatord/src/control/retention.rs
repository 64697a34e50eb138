//! The control call that purges old messages (`mediatorctl messages purge`): the same batch
//! loop as `[retention]` (`crate::retention`), recorded in the audit log once it is done
//! with the count it removed.

use super::service::{Caller, Service};
use crate::retention;
use mediator_control::v1::*;
use tokio_util::sync::CancellationToken;
use tonic::{Response, Status};

impl Service {
    pub(super) async fn purge_old_messages(
        &self,
        caller: Caller,
        r: PurgeMessagesRequest,
    ) -> Result<Response<PurgeMessagesReply>, Status> {
        if r.older_than_secs == 0 {
            return Err(Status::invalid_argument(
                "an age of 0 would remove every message; give one, e.g. 30d",
            ));
        }
        let chat = r.chat_id;
        if let Some(id) = chat {
            let exists = self
                .server
                .store
                .read(move |c| Ok(crate::store::queries::chat_exists(c, id)?))
                .await
                .map_err(|e| Status::internal(format!("database error: {e}")))?;
            if !exists {
                return Err(Status::not_found(format!("no chat {id}")));
            }
        }
        let age = i64::try_from(r.older_than_secs).unwrap_or(i64::MAX);
        let before = self.server.clock.now_secs().saturating_sub(age);
        let target = match chat {
            Some(id) => format!("chat {id}, older than {}s", r.older_than_secs),
            None => format!("every chat, older than {}s", r.older_than_secs),
        };
        // Not cancelled from here: a caller that goes away stops the loop between batches
        // (tonic drops this future), keeping what was removed.
        let stop = CancellationToken::new();
        let store = &self.server.store;
        let outcome = async {
            let removed = retention::purge_older(store, chat, before, &stop).await?;
            let freed = retention::give_back_space(store, &stop).await?;
            Ok::<_, crate::store::Reject>((removed, freed))
        }
        .await;
        let mut entry = self.entry(&caller, "messages purge", target, String::new());
        match outcome {
            Ok((removed, freed)) => {
                entry.result = format!("ok: {removed} removed");
                self.note(entry).await;
                tracing::info!(removed, bytes_freed = freed, chat, "messages purged");
                Ok(Response::new(PurgeMessagesReply {
                    removed,
                    bytes_freed: freed,
                }))
            }
            Err(e) => {
                entry.result = format!("failed: {e}");
                self.note(entry).await;
                Err(Status::internal(format!("database error: {e}")))
            }
        }
    }
}
