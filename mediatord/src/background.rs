//! The daemon's background tasks (part of the mediatord binary, not of the library): the
//! embedded Yggdrasil node's start and its log of peers and root, the systemd watchdog fed
//! only while the database writer answers, the status line `systemctl status` shows, and
//! the janitor (expired invites, old nonces, lapsed blocks, `[retention]`). Each runs until
//! its cancellation token fires.

use anyhow::{Context, Result};
use mediatord::config::Config;
use mediatord::{notify, server};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Starts the embedded Yggdrasil node when peers or listeners are configured.
pub async fn start_yggdrasil(cfg: &Config, seed: &[u8; 32]) -> Result<Option<Arc<yggnode::Node>>> {
    let y = &cfg.yggdrasil;
    if y.peers.is_empty() && y.listen.is_empty() {
        return Ok(None);
    }
    let parse = |list: &[String]| -> Result<Vec<yggnode::PeerUri>> {
        list.iter()
            .map(|u| u.parse().with_context(|| format!("yggdrasil URI {u:?}")))
            .collect()
    };
    let mut node_info = serde_json::Map::new();
    node_info.insert("name".into(), "mediatord".into());
    node_info.insert("version".into(), env!("CARGO_PKG_VERSION").into());
    let node = yggnode::Node::start(
        *seed,
        yggnode::NodeConfig {
            peers: parse(&y.peers)?,
            listen: parse(&y.listen)?,
            node_info,
            ..Default::default()
        },
    )
    .await
    .context("starting the Yggdrasil node")?;
    tracing::info!(
        peers = y.peers.len(),
        listeners = y.listen.len(),
        "yggdrasil node started"
    );
    Ok(Some(Arc::new(node)))
}

/// How often the Yggdrasil peers and root are compared with their last logged state.
const YGG_LOG_PERIOD: Duration = Duration::from_secs(5);

/// Logs Yggdrasil peers coming up or going down, and root changes.
pub async fn log_yggdrasil(node: Arc<yggnode::Node>, stop: CancellationToken) {
    let mut known: std::collections::BTreeMap<u64, yggnode::PeerInfo> = Default::default();
    let mut root = None;
    let mut tick = tokio::time::interval(YGG_LOG_PERIOD);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now: std::collections::BTreeMap<u64, yggnode::PeerInfo> =
            node.peers().into_iter().map(|p| (p.link, p)).collect();
        for (id, p) in &now {
            if !known.contains_key(id) {
                tracing::info!(key = %hex::encode(p.key), remote = %p.remote, inbound = p.inbound, "yggdrasil peer up");
            }
        }
        for (id, p) in &known {
            if !now.contains_key(id) {
                tracing::info!(key = %hex::encode(p.key), remote = %p.remote, "yggdrasil peer down");
            }
        }
        known = now;
        if let Ok(info) = node.self_info().await {
            if root != Some(info.root) {
                tracing::info!(root = %hex::encode(info.root), coords = ?info.coords, "yggdrasil tree root");
                root = Some(info.root);
            }
        }
    }
}

/// Feeds the systemd watchdog only while the database writer answers: a stuck writer stops
/// the pings and systemd restarts the service.
pub async fn watchdog(server: Arc<server::Server>, period: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(period / 2);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let probe = server.store.write(|_| Ok(()));
        match tokio::time::timeout(period / 2, probe).await {
            Ok(Ok(())) => notify::notify(&[notify::State::Watchdog]),
            _ => tracing::error!("database writer did not answer; not feeding the watchdog"),
        }
    }
}

/// How often the one-line status `systemctl status` shows is refreshed.
const STATUS_PERIOD: Duration = Duration::from_secs(30);

/// The one-line status for systemd: sessions, chats, Yggdrasil peers.
pub async fn status_text(server: &server::Server, node: Option<&yggnode::Node>) -> String {
    let chats = server
        .store
        .read(|c| Ok(c.totals_chats()?))
        .await
        .map_or_else(|_| "? chats".to_string(), |n| format!("{n} chats"));
    let peers = match node {
        Some(n) => format!(", {} Yggdrasil peers up", n.peers().len()),
        None => String::new(),
    };
    format!("{} sessions, {chats}{peers}", server.hub.session_count())
}

/// Refreshes the status line every [`STATUS_PERIOD`] (only under systemd).
pub async fn report_status(
    server: Arc<server::Server>,
    node: Option<Arc<yggnode::Node>>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(STATUS_PERIOD);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let text = status_text(&server, node.as_deref()).await;
        notify::notify(&[notify::State::Status(&text)]);
    }
}

/// Purges expired invites periodically, expired nonces left in the database by versions
/// before nonces moved into sessions, and lapsed blocks; applies `[retention]`; on
/// PostgreSQL, refreshes the database size the metrics show.
pub async fn janitor(
    server: Arc<server::Server>,
    retention: mediatord::config::RetentionSection,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(server.limits.janitor_period);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = server.clock.now_secs();
        let nonces_before = now - server.limits.nonce_ttl.as_secs() as i64;
        let invites_before = now - server.limits.invite_ttl.as_secs() as i64;
        let res = server
            .store
            .write(move |c| {
                let (n, i) = c.expire(nonces_before, Some(invites_before))?;
                Ok((n, i, c.purge_lapsed_blocks(now)?))
            })
            .await;
        match res {
            Ok((n, i, b)) if n + i + b > 0 => {
                tracing::info!(nonces = n, invites = i, blocks = b, "purged expired")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "janitor"),
        }
        if server.store.path().is_none() {
            if let Err(e) = server.store.database_bytes().await {
                tracing::warn!(error = %e, "janitor: database size");
            }
        }
        if retention.is_on() {
            match mediatord::retention::apply(&server.store, &retention, now, &stop).await {
                Ok(done) if done.messages() + done.bytes_freed > 0 => tracing::info!(
                    by_age = done.by_age,
                    by_limit = done.by_limit,
                    bytes_freed = done.bytes_freed,
                    "retention removed messages"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention"),
            }
        }
    }
}
