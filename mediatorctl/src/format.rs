//! Output of each command: rows for the table and plain formats and the same data as JSON
//! (`crate::render` prints them). Keys are hex; times are Unix seconds in JSON and UTC dates
//! (RFC 3339, `2024-05-01 12:00:00Z`) in tables; 64-bit ids (chats, sessions, audit entries)
//! are JSON strings, since jq 1.6 and JavaScript round integers above 2^53; counts and sizes
//! stay numbers. Chat names are shown as text when they are UTF-8. Message contents are never
//! shown: the server cannot read them.

use crate::render::{Cell, Grid, Output};
use mediator_control::v1::*;
use serde_json::{json, Value};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A 64-bit id in JSON: a string of decimal digits, which no JSON reader rounds.
pub fn json_id(id: impl std::fmt::Display) -> Value {
    Value::String(id.to_string())
}

/// A UTC date and time for a Unix timestamp, in RFC 3339 form (`2023-11-14 22:13:20Z`, the `Z`
/// for UTC); 0 or less is "never".
pub fn date(ts: i64) -> String {
    if ts <= 0 {
        return "never".into();
    }
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn duration(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    if d > 0 {
        format!("{d}d {h}h {m}m")
    } else if h > 0 {
        format!("{h}h {m}m {s}s")
    } else {
        format!("{m}m {s}s")
    }
}

/// A key's cell, or "-" when there is none.
fn key_or_dash(k: &[u8]) -> Cell {
    if k.is_empty() {
        "-".into()
    } else {
        Cell::key(k)
    }
}

pub fn status(s: &StatusReply) -> Output {
    let mut t = Grid::new(&["field", "value"]);
    let rows: [(&str, Cell); 18] = [
        ("version", s.version.clone().into()),
        ("role", s.role.clone().into()),
        ("store", s.store.clone().into()),
        ("public key", Cell::key(&s.public_key)),
        ("uptime", duration(s.uptime_secs).into()),
        ("data dir", s.data_dir.clone().into()),
        ("listeners", s.listeners.join(", ").into()),
        ("yggdrasil peers", s.yggdrasil_peers.to_string().into()),
        ("yggdrasil root", key_or_dash(&s.yggdrasil_root)),
        ("chats", s.chats.to_string().into()),
        ("users", s.users.to_string().into()),
        ("sessions", s.sessions.to_string().into()),
        (
            "unauthenticated sessions",
            s.guest_sessions.to_string().into(),
        ),
        (
            "queued for clients",
            format!("{} bytes", s.queued_bytes).into(),
        ),
        ("messages", s.messages.to_string().into()),
        ("pending invites", s.invites.to_string().into()),
        ("nonces", s.nonces.to_string().into()),
        (
            "database size",
            format!("{} bytes", s.database_bytes).into(),
        ),
    ];
    for (k, v) in rows {
        t.row(vec![k.into(), v]);
    }
    for e in &s.sessions_by_transport {
        t.row(vec![
            format!("sessions: {}", e.name.replace('_', " ")).into(),
            e.count.to_string().into(),
        ]);
    }
    for e in &s.events {
        t.row(vec![
            format!("events: {}", e.name.replace('_', " ")).into(),
            e.count.to_string().into(),
        ]);
    }
    Output::table(
        t,
        None,
        json!({
            "version": s.version,
            "role": s.role,
            "store": s.store,
            "public_key": hex::encode(&s.public_key),
            "uptime_secs": s.uptime_secs,
            "data_dir": s.data_dir,
            "listeners": s.listeners,
            "yggdrasil_peers": s.yggdrasil_peers,
            "yggdrasil_root": hex::encode(&s.yggdrasil_root),
            "chats": s.chats,
            "users": s.users,
            "sessions": s.sessions,
            "messages": s.messages,
            "invites": s.invites,
            "nonces": s.nonces,
            "database_bytes": s.database_bytes,
            "guest_sessions": s.guest_sessions,
            "sessions_by_transport": s.sessions_by_transport.iter().map(|e| (e.name.clone(), json!(e.count))).collect::<serde_json::Map<_, _>>(),
            "queued_bytes": s.queued_bytes,
            "events": s.events.iter().map(|e| (e.name.clone(), json!(e.count))).collect::<serde_json::Map<_, _>>(),
        }),
    )
}

fn chat_json(c: &ChatSummary) -> Value {
    json!({
        "id": json_id(c.id),
        "name": text(&c.name),
        "owner": hex::encode(&c.owner),
        "created_at": c.created_at,
        "members": c.members,
        "banned": c.banned,
        "messages": c.messages,
        "last_activity": c.last_activity,
        "subscribers": c.subscribers,
    })
}

pub fn chats(list: &[ChatSummary], total: u64) -> Output {
    let mut t = Grid::new(&[
        "id",
        "name",
        "owner",
        "created",
        "members",
        "messages",
        "last activity",
        "online",
    ]);
    for c in list {
        t.row(vec![
            c.id.to_string().into(),
            text(&c.name).into(),
            Cell::key(&c.owner),
            date(c.created_at).into(),
            c.members.to_string().into(),
            c.messages.to_string().into(),
            date(c.last_activity).into(),
            c.subscribers.to_string().into(),
        ]);
    }
    Output::table(
        t,
        Some(format!("{} of {total} chats", list.len())),
        json!({ "total": total, "chats": list.iter().map(chat_json).collect::<Vec<_>>() }),
    )
}

pub fn chat(r: &ShowChatReply) -> Output {
    let c = r.chat.clone().unwrap_or_default();
    let mut t = Grid::new(&["field", "value"]);
    let roles: Vec<String> = r.roles.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let rows: [(&str, Cell); 11] = [
        ("id", c.id.to_string().into()),
        ("name", text(&c.name).into()),
        ("description", text(&r.description).into()),
        ("owner", Cell::key(&c.owner)),
        ("created", date(c.created_at).into()),
        ("members by role", roles.join(", ").into()),
        ("messages", c.messages.to_string().into()),
        ("last activity", date(c.last_activity).into()),
        ("subscribers now", c.subscribers.to_string().into()),
        ("pending invites", r.pending_invites.to_string().into()),
        ("avatar", format!("{} bytes", r.avatar_bytes).into()),
    ];
    for (k, v) in rows {
        t.row(vec![k.into(), v]);
    }
    let mut j = chat_json(&c);
    j["description"] = json!(text(&r.description));
    j["roles"] = json!(r.roles);
    j["pending_invites"] = json!(r.pending_invites);
    j["avatar_bytes"] = json!(r.avatar_bytes);
    Output::table(t, None, j)
}

pub fn members(list: &[Member]) -> Output {
    let mut t = Grid::new(&[
        "key",
        "role",
        "perms",
        "banned",
        "online",
        "last seen",
        "joined",
    ]);
    for m in list {
        t.row(vec![
            Cell::key(&m.key),
            m.role.clone().into(),
            format!("{:#04x}", m.perms).into(),
            if m.banned { "yes" } else { "no" }.into(),
            if m.online { "yes" } else { "no" }.into(),
            date(m.last_seen).into(),
            date(m.joined_at).into(),
        ]);
    }
    Output::table(
        t,
        None,
        json!(list
            .iter()
            .map(|m| json!({
                "key": hex::encode(&m.key),
                "role": m.role,
                "perms": m.perms,
                "banned": m.banned,
                "online": m.online,
                "last_seen": m.last_seen,
                "joined_at": m.joined_at,
            }))
            .collect::<Vec<_>>()),
    )
}

pub fn subscribers(r: &ListSubscribersReply) -> Output {
    let mut t = Grid::new(&[
        "session",
        "transport",
        "remote",
        "user",
        "chats",
        "connected since",
        "queue",
    ]);
    for s in &r.sessions {
        t.row(vec![
            s.session_id.to_string().into(),
            s.transport.clone().into(),
            s.remote.clone().into(),
            key_or_dash(&s.user),
            s.chats
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(" ")
                .into(),
            date(s.connected_since).into(),
            s.queue_depth.to_string().into(),
        ]);
    }
    Output::table(
        t,
        Some(format!("{} sessions", r.sessions.len())),
        json!(r
            .sessions
            .iter()
            .map(|s| json!({
                "session_id": json_id(s.session_id),
                "transport": s.transport,
                "remote": s.remote,
                "user": hex::encode(&s.user),
                "chats": s.chats.iter().map(json_id).collect::<Vec<_>>(),
                "connected_since": s.connected_since,
                "queue_depth": s.queue_depth,
            }))
            .collect::<Vec<_>>()),
    )
}

pub fn purge(r: &PurgeNoncesReply) -> Output {
    Output::text(
        format!("removed {} nonces ({} remain)", r.removed, r.remaining),
        json!({ "removed": r.removed, "remaining": r.remaining }),
    )
}

/// Yggdrasil peers: live links, then configured peers that are down with the reason.
pub fn peers(r: &ListPeersReply) -> Output {
    let mut t = Grid::new(&["uri", "key", "direction", "state", "uptime", "last error"]);
    for p in &r.peers {
        let (state, error) = if p.up {
            ("up".to_string(), "-".to_string())
        } else {
            let when = match p.last_error_at {
                0 => String::new(),
                t => format!(" at {}", date(t)),
            };
            let tries = match p.failures {
                0 => String::new(),
                n => format!(" ({n} failed attempts)"),
            };
            (
                "down".to_string(),
                match p.last_error.as_str() {
                    "" => "not dialled yet".to_string(),
                    e => format!("{e}{when}{tries}"),
                },
            )
        };
        t.row(vec![
            p.uri.clone().into(),
            key_or_dash(&p.key),
            if p.inbound { "in" } else { "out" }.into(),
            state.into(),
            if p.up {
                duration(p.uptime_secs)
            } else {
                "-".into()
            }
            .into(),
            error.into(),
        ]);
    }
    let json = json!({
            "enabled": r.yggdrasil_enabled,
            "peers": r.peers.iter().map(|p| json!({
                "uri": p.uri, "key": hex::encode(&p.key), "inbound": p.inbound,
                "priority": p.priority, "uptime_secs": p.uptime_secs, "up": p.up,
                "failures": p.failures,
                "last_error": (!p.last_error.is_empty()).then_some(&p.last_error),
                "last_error_at": (p.last_error_at > 0).then_some(p.last_error_at),
            })).collect::<Vec<_>>(),
    });
    if r.yggdrasil_enabled {
        Output::table(t, None, json)
    } else {
        Output::text("the Yggdrasil node is not enabled in this mediatord", json)
    }
}

pub fn backup(path: &std::path::Path, r: &BackupReply) -> Output {
    Output::text(
        format!("backup written to {} ({} bytes)", path.display(), r.bytes),
        json!({ "path": path.display().to_string(), "bytes": r.bytes, "pages": r.pages }),
    )
}

pub fn audit(entries: &[AuditEntry]) -> Output {
    let mut t = Grid::new(&["id", "time", "user", "action", "target", "result"]);
    for e in entries {
        t.row(vec![
            e.id.to_string().into(),
            date(e.ts).into(),
            format!("{} ({})", e.user, e.uid).into(),
            e.action.clone().into(),
            e.target.clone().into(),
            e.result.clone().into(),
        ]);
    }
    Output::table(
        t,
        Some(format!("{} entries", entries.len())),
        json!(entries
            .iter()
            .map(|e| json!({
                "id": json_id(e.id),
                "ts": e.ts,
                "uid": e.uid,
                "user": e.user,
                "action": e.action,
                "target": e.target,
                "result": e.result,
            }))
            .collect::<Vec<_>>()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_and_say_so() {
        assert_eq!(date(0), "never");
        assert_eq!(date(86_400 * 365), "1971-01-01 00:00:00Z");
        assert_eq!(date(1_700_000_000), "2023-11-14 22:13:20Z");
    }

    /// Ids beyond 2^53 (most random chat ids) are strings in JSON, exact to the last digit;
    /// counts stay numbers.
    #[test]
    fn ids_are_json_strings() {
        let id = (1i64 << 62) + 12_345;
        let chat = ChatSummary {
            id,
            owner: vec![7; 32],
            members: 3,
            ..Default::default()
        };
        let list = chats(std::slice::from_ref(&chat), 1).json;
        assert_eq!(list["chats"][0]["id"], id.to_string());
        assert_eq!(list["chats"][0]["members"], 3);
        assert_eq!(list["total"], 1);
        let shown = super::chat(&ShowChatReply {
            chat: Some(chat),
            ..Default::default()
        })
        .json;
        assert_eq!(shown["id"], id.to_string());
        let subs = subscribers(&ListSubscribersReply {
            sessions: vec![Subscriber {
                session_id: u64::MAX,
                chats: vec![id, 5],
                queue_depth: 2,
                ..Default::default()
            }],
        })
        .json;
        assert_eq!(subs[0]["session_id"], u64::MAX.to_string());
        assert_eq!(subs[0]["chats"], json!([id.to_string(), "5"]));
        assert_eq!(subs[0]["queue_depth"], 2);
        let log = audit(&[AuditEntry {
            id: i64::MAX,
            ..Default::default()
        }])
        .json;
        assert_eq!(log[0]["id"], i64::MAX.to_string());
    }
}
