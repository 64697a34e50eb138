//! Mimir 3.x clients: ygg_stream (the `yggstream` crate) on the embedded Yggdrasil node, with
//! the mediator's key, on `[yggdrasil] stream_port` (42, as the 3.x app dials). The node hands
//! over every session payload that is not one of Yggdrasil's own types (QUIC of 2.x clients
//! keeps its type byte), the endpoint's packets go out as raw payloads, and every accepted
//! connection is a session like a QUIC stream, marked [`Transport::YggStream`] so that its
//! pushes carry status 2 and an unknown command does not end it. A client is named, counted
//! and deduplicated by its node key, as over yggquic.
//!
//! The endpoint's buffers are bounded together by `[limits] stream_buffer_bytes`, with
//! `stream_member_reserve_bytes` more for the connections of chat members: the hub tells the
//! connection when its session becomes a member's ([`MemberHook`]), which also keeps it from
//! giving way when the connection table is full.

use crate::blocks::Kind;
use crate::events::{self, Event};
use crate::peer::{MemberHook, Peer, Transport};
use crate::server::Server;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use yggstream::{Budget, Endpoint, Outbound};

/// The port Mimir 3.x clients connect to.
pub const DEFAULT_STREAM_PORT: u16 = 42;

/// Sends the endpoint's packets as raw session payloads of the node.
struct Raw(Arc<yggnode::Node>);

impl Outbound for Raw {
    fn send(&self, to: [u8; 32], packet: Vec<u8>) {
        // A full send queue drops the packet, as a full UDP buffer would; the connection
        // retransmits it.
        let _ = self.0.try_send_raw(to, packet);
    }
}

/// Serves ygg_stream sessions on `port` until `stop` fires, then ends them.
pub async fn serve(
    server: Arc<Server>,
    node: Arc<yggnode::Node>,
    port: u16,
    stop: CancellationToken,
) {
    let Some(mut raw) = node.take_raw_receiver() else {
        tracing::error!("the node's raw receiver is taken; ygg_stream is not served");
        return;
    };
    let budget = Budget {
        shared: server.limits.stream_buffer_bytes,
        reserve: server.limits.stream_member_reserve_bytes,
    };
    let endpoint = Endpoint::with_budget(Raw(node.clone()), rand::random(), budget);
    let _ = server.stream.set(endpoint.clone());
    let listener = endpoint.listen(port);
    let feed = endpoint.clone();
    let feeder = async move {
        while let Some((from, msg)) = raw.recv().await {
            feed.handle_message(from, &msg);
        }
    };
    let mut sessions = JoinSet::new();
    let accept = async {
        loop {
            let stream = listener.accept().await;
            let Some((key, _)) = stream.peer() else {
                continue;
            };
            let name = hex::encode(key);
            if server
                .blocks
                .blocks(Kind::Source, &name, server.clock.now_secs())
            {
                events::note(
                    Event::ConnectionRefused,
                    &name,
                    "source blocked by the operator",
                );
                stream.abort();
                continue;
            }
            let control = stream.control();
            let peer = Peer {
                remote: name.clone(),
                source: name,
                transport: Transport::YggStream,
                member_hook: Some(MemberHook(Arc::new(move |member| control.protect(member)))),
            };
            let (recv, send) = tokio::io::split(stream);
            sessions.spawn(crate::session::run(server.clone(), recv, send, peer));
            while sessions.try_join_next().is_some() {}
        }
    };
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = feeder => tracing::warn!("the Yggdrasil node stopped delivering ygg_stream packets"),
        _ = accept => {}
    }
    server.hub.kill_all();
    while sessions.join_next().await.is_some() {}
}
