//! Streamed backups (`mediatorctl backup -`): the daemon makes the online copy in its data
//! directory (the only place its sandbox may write), opens it and unlinks it at once (so a
//! crash leaves nothing behind), then streams it to the caller in [`CHUNK`]-byte pieces, as
//! the SQLite file itself or, with the key, as a tar archive (`store::restore`'s format).
//! The stream is bounded ([`STREAM_QUEUE`] chunks in flight): a slow reader slows the copy,
//! it does not fill memory.

use super::service::{Caller, Service};
use crate::datadir::KEY_FILE;
use crate::store::restore::write_archive;
use mediator_control::v1::*;
use std::io::Write;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Response, Status};

/// Bytes per streamed chunk.
pub const CHUNK: usize = 64 * 1024;
/// Chunks queued between the copy and the caller.
pub const STREAM_QUEUE: usize = 4;

/// The stream a backup is sent on.
pub type BackupStream = ReceiverStream<Result<BackupChunk, Status>>;

/// Sends what is written in [`CHUNK`]-byte chunks; fails once the caller has gone.
struct ChunkWriter {
    tx: mpsc::Sender<Result<BackupChunk, Status>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(BackupChunk { data }))
            .map_err(|_| std::io::ErrorKind::BrokenPipe.into())
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = b.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&b[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

impl Service {
    pub(super) async fn stream_backup(
        &self,
        caller: Caller,
        r: BackupStreamRequest,
    ) -> Result<Response<BackupStream>, Status> {
        let tmp = self.data_dir.join(format!(
            ".backup-stream-{}.db",
            hex::encode(rand::random::<[u8; 8]>())
        ));
        let t2 = tmp.clone();
        let target = if r.include_key {
            "stdout, with the key"
        } else {
            "stdout"
        };
        let copied = self
            .server
            .store
            .read(move |c| Ok(crate::store::sqlite::backup_to(c, &t2)?))
            .await;
        let opened = copied.map_err(|e| e.to_string()).and_then(|_| {
            let f = std::fs::File::open(&tmp).map_err(|e| e.to_string())?;
            let len = f.metadata().map_err(|e| e.to_string())?.len();
            Ok((f, len))
        });
        let _ = std::fs::remove_file(&tmp);
        let key = if r.include_key {
            std::fs::read(self.data_dir.join(KEY_FILE))
                .map(Some)
                .map_err(|e| format!("reading the key: {e}"))
        } else {
            Ok(None)
        };
        let ((mut file, len), key) = match opened.and_then(|o| key.map(|k| (o, k))) {
            Ok(v) => v,
            Err(e) => {
                let result = format!("failed: {e}");
                self.note(self.entry(&caller, "backup", target.into(), result))
                    .await;
                return Err(Status::internal(format!("backup failed: {e}")));
            }
        };
        let result = format!("ok: {len} bytes of database");
        self.note(self.entry(&caller, "backup", target.into(), result))
            .await;
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let mtime = self.server.clock.now_secs().max(0) as u64;
        tokio::task::spawn_blocking(move || {
            let mut w = ChunkWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(CHUNK),
            };
            let sent = match key {
                Some(k) => write_archive(&mut w, &mut file, len, &k, mtime).map(|_| ()),
                None => std::io::copy(&mut file, &mut w).map(|_| ()),
            }
            .and_then(|()| w.flush());
            match sent {
                Ok(()) => {}
                // The caller went away: nothing to tell.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => {
                    tracing::error!(error = %e, "streaming a backup failed");
                    let _ = tx.blocking_send(Err(Status::internal(format!(
                        "streaming the backup failed: {e}"
                    ))));
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
