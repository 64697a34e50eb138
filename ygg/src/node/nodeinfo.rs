//! Yggdrasil's protocol packets (yggdrasil-go `core/nodeinfo.go` and
//! `core/proto.go`): session plaintexts whose first byte is `0x02`
//! ([`CORE_TYPE_PROTO`]) carry NodeInfo requests and responses and the
//! debug requests `yggdrasilctl debug_remoteGet*` sends (our key and table
//! size, our peers' keys, the keys in our tree). [`ProtoHandler`] answers
//! them and matches NodeInfo responses to the requests
//! [`Node::get_node_info`](super::Node::get_node_info) made, keeping at
//! most [`MAX_PENDING_NODE_INFO`] outstanding. Replies listing keys are cut
//! to fit one datagram ([`MTU`]), as yggdrasil-go does.

use std::collections::HashMap;

use tokio::sync::oneshot;

use super::{MAX_PENDING_NODE_INFO, MTU};
use crate::router::Router;
use crate::session_wire::CORE_TYPE_PROTO;
use crate::wire::PublicKey;

/// Protocol sub-types inside a `0x02` packet (yggdrasil-go `core/types.go`).
const PROTO_NODEINFO_REQUEST: u8 = 1;
const PROTO_NODEINFO_RESPONSE: u8 = 2;
const PROTO_DEBUG: u8 = 255;
/// Debug sub-types (yggdrasil-go `core/proto.go`); each answer's sub-type
/// is the request's plus one.
const DEBUG_GET_SELF_REQUEST: u8 = 1;
const DEBUG_GET_PEERS_REQUEST: u8 = 3;
const DEBUG_GET_TREE_REQUEST: u8 = 5;

/// Our NodeInfo and the NodeInfo requests waiting for an answer.
pub(super) struct ProtoHandler {
    /// The JSON answered to NodeInfo requests.
    node_info: Vec<u8>,
    /// Outstanding requests by the key asked (at most
    /// [`MAX_PENDING_NODE_INFO`] in all).
    pending: HashMap<PublicKey, Vec<oneshot::Sender<Vec<u8>>>>,
}

impl ProtoHandler {
    /// A handler answering with `node_info` (serialised JSON).
    pub(super) fn new(node_info: Vec<u8>) -> Self {
        Self {
            node_info,
            pending: HashMap::new(),
        }
    }

    /// Registers a request for `key`'s NodeInfo, answered on `tx`, and
    /// returns the request plaintext to send to `key`. Returns `None` (and
    /// drops `tx`, failing the request) when [`MAX_PENDING_NODE_INFO`]
    /// requests are already outstanding.
    pub(super) fn request_node_info(
        &mut self,
        key: PublicKey,
        tx: oneshot::Sender<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        if self.pending_requests() >= MAX_PENDING_NODE_INFO {
            return None;
        }
        self.pending.entry(key).or_default().push(tx);
        Some(vec![CORE_TYPE_PROTO, PROTO_NODEINFO_REQUEST])
    }

    /// Handles the body of a `0x02` packet from `from` (the bytes after the
    /// core type): answers NodeInfo and debug requests, returning the reply
    /// plaintext, and hands NodeInfo responses to their waiting requests.
    /// `self_key` and `router` supply the debug answers.
    pub(super) fn handle(
        &mut self,
        from: PublicKey,
        body: &[u8],
        self_key: PublicKey,
        router: &Router,
    ) -> Option<Vec<u8>> {
        match *body.first()? {
            PROTO_NODEINFO_REQUEST => {
                let mut r = vec![CORE_TYPE_PROTO, PROTO_NODEINFO_RESPONSE];
                r.extend_from_slice(&self.node_info);
                Some(r)
            }
            PROTO_NODEINFO_RESPONSE => {
                for tx in self.pending.remove(&from).unwrap_or_default() {
                    let _ = tx.send(body[1..].to_vec());
                }
                None
            }
            PROTO_DEBUG => {
                let sub = *body.get(1)?;
                let data = match sub {
                    DEBUG_GET_SELF_REQUEST => {
                        let v = serde_json::json!({
                            "key": hex::encode(self_key),
                            "routing_entries": router.tree().len().to_string(),
                        });
                        serde_json::to_vec(&v).ok()?
                    }
                    DEBUG_GET_PEERS_REQUEST => {
                        let keys: Vec<PublicKey> = router.peers().iter().map(|p| p.key).collect();
                        concat_keys(keys)
                    }
                    DEBUG_GET_TREE_REQUEST => {
                        concat_keys(router.tree().iter().map(|e| e.key).collect())
                    }
                    _ => return None,
                };
                let mut r = vec![CORE_TYPE_PROTO, PROTO_DEBUG, sub + 1];
                r.extend_from_slice(&data);
                Some(r)
            }
            _ => None,
        }
    }

    /// Outstanding NodeInfo requests.
    pub(super) fn pending_requests(&self) -> usize {
        self.pending.values().map(Vec::len).sum()
    }

    /// Forgets requests whose caller stopped waiting (timed out or gone).
    pub(super) fn prune(&mut self) {
        self.pending.retain(|_, v| {
            v.retain(|tx| !tx.is_closed());
            !v.is_empty()
        });
    }
}

/// Concatenates as many whole keys as fit in one debug reply.
fn concat_keys(keys: Vec<PublicKey>) -> Vec<u8> {
    // Room for the proto, debug and sub-type bytes, as yggdrasil-go leaves.
    let max = MTU - 3;
    let mut out = Vec::new();
    for k in keys {
        if out.len() + k.len() > max {
            break;
        }
        out.extend_from_slice(&k);
    }
    out
}
