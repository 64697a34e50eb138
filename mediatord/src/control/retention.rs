//! The control call that purges old messages (`mediatorctl messages purge`): the same batch
//! loop as `[retention]` (`crate::retention`), run to its end on a task of its own and
//! recorded in the audit log with the count it removed, even if the caller has gone.

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
                .read(move |c| Ok(c.chat_exists(id)?))
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
        // On a task of its own, so that a caller who goes away (tonic then drops this
        // future) neither stops the purge half way nor leaves it out of the audit log.
        let server = self.server.clone();
        let mut entry = self.entry(&caller, "messages purge", target, String::new());
        let work = tokio::spawn(async move {
            let stop = CancellationToken::new();
            let store = &server.store;
            let outcome = async {
                let removed = retention::purge_older(store, chat, before, &stop).await?;
                let freed = retention::give_back_space(store, &stop).await?;
                Ok::<_, crate::store::Reject>((removed, freed))
            }
            .await;
            entry.result = match &outcome {
                Ok((removed, _)) => format!("ok: {removed} removed"),
                Err(e) => format!("failed: {e}"),
            };
            if let Err(e) = store.write(move |c| Ok(c.record(&entry)?)).await {
                tracing::error!(error = %e, "cannot record a purge in the audit log");
            }
            outcome
        });
        let outcome = work
            .await
            .map_err(|e| Status::internal(format!("purge task failed: {e}")))?;
        match outcome {
            Ok((removed, freed)) => {
                tracing::info!(removed, bytes_freed = freed, chat, "messages purged");
                Ok(Response::new(PurgeMessagesReply {
                    removed,
                    bytes_freed: freed,
                }))
            }
            Err(e) => Err(Status::internal(format!("database error: {e}"))),
        }
    }
}
