//! Output of each command: a human table and the same data as JSON. Keys are hex, times are
//! Unix seconds in JSON and UTC dates in tables; chat names are shown as text when they are
//! UTF-8. Message contents are never shown: the server cannot read them.

use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use mediator_control::v1::*;
use serde_json::{json, Value};

/// One command's output.
pub struct Output {
    pub text: String,
    pub json: Value,
}

pub(crate) fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    t
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A UTC date and time for a Unix timestamp (0 = "never").
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
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
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

pub fn status(s: &StatusReply) -> Output {
    let mut t = table(&["field", "value"]);
    let rows = [
        ("version", s.version.clone()),
        ("public key", hex::encode(&s.public_key)),
        ("uptime", duration(s.uptime_secs)),
        ("data dir", s.data_dir.clone()),
        ("listeners", s.listeners.join(", ")),
        ("yggdrasil peers", s.yggdrasil_peers.to_string()),
        (
            "yggdrasil root",
            if s.yggdrasil_root.is_empty() {
                "-".to_string()
            } else {
                hex::encode(&s.yggdrasil_root)
            },
        ),
        ("chats", s.chats.to_string()),
        ("users", s.users.to_string()),
        ("sessions", s.sessions.to_string()),
        ("unauthenticated sessions", s.guest_sessions.to_string()),
        ("queued for clients", format!("{} bytes", s.queued_bytes)),
        ("messages", s.messages.to_string()),
        ("pending invites", s.invites.to_string()),
        ("nonces", s.nonces.to_string()),
        ("database size", format!("{} bytes", s.database_bytes)),
    ];
    let events: Vec<(String, String)> = s
        .events
        .iter()
        .map(|e| {
            (
                format!("events: {}", e.name.replace('_', " ")),
                e.count.to_string(),
            )
        })
        .collect();
    let rows = rows
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain(events);
    for (k, v) in rows {
        t.add_row(vec![k.to_string(), v]);
    }
    Output {
        text: t.to_string(),
        json: json!({
            "version": s.version,
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
            "queued_bytes": s.queued_bytes,
            "events": s.events.iter().map(|e| (e.name.clone(), json!(e.count))).collect::<serde_json::Map<_, _>>(),
        }),
    }
}

fn chat_json(c: &ChatSummary) -> Value {
    json!({
        "id": c.id,
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
    let mut t = table(&[
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
        t.add_row(vec![
            c.id.to_string(),
            text(&c.name),
            hex::encode(&c.owner),
            date(c.created_at),
            c.members.to_string(),
            c.messages.to_string(),
            date(c.last_activity),
            c.subscribers.to_string(),
        ]);
    }
    Output {
        text: format!("{t}\n{} of {total} chats", list.len()),
        json: json!({ "total": total, "chats": list.iter().map(chat_json).collect::<Vec<_>>() }),
    }
}

pub fn chat(r: &ShowChatReply) -> Output {
    let c = r.chat.clone().unwrap_or_default();
    let mut t = table(&["field", "value"]);
    let roles: Vec<String> = r.roles.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    for (k, v) in [
        ("id", c.id.to_string()),
        ("name", text(&c.name)),
        ("description", text(&r.description)),
        ("owner", hex::encode(&c.owner)),
        ("created", date(c.created_at)),
        ("members by role", roles.join(", ")),
        ("messages", c.messages.to_string()),
        ("last activity", date(c.last_activity)),
        ("subscribers now", c.subscribers.to_string()),
        ("pending invites", r.pending_invites.to_string()),
        ("avatar", format!("{} bytes", r.avatar_bytes)),
    ] {
        t.add_row(vec![k.to_string(), v]);
    }
    let mut j = chat_json(&c);
    j["description"] = json!(text(&r.description));
    j["roles"] = json!(r.roles);
    j["pending_invites"] = json!(r.pending_invites);
    j["avatar_bytes"] = json!(r.avatar_bytes);
    Output {
        text: t.to_string(),
        json: j,
    }
}

pub fn members(list: &[Member]) -> Output {
    let mut t = table(&[
        "key",
        "role",
        "perms",
        "banned",
        "online",
        "last seen",
        "joined",
    ]);
    for m in list {
        t.add_row(vec![
            hex::encode(&m.key),
            m.role.clone(),
            format!("{:#04x}", m.perms),
            if m.banned { "yes" } else { "no" }.into(),
            if m.online { "yes" } else { "no" }.into(),
            date(m.last_seen),
            date(m.joined_at),
        ]);
    }
    Output {
        text: t.to_string(),
        json: json!(list
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
    }
}

pub fn subscribers(r: &ListSubscribersReply) -> Output {
    let mut t = table(&[
        "session",
        "remote",
        "user",
        "chats",
        "connected since",
        "queue",
    ]);
    for s in &r.sessions {
        t.add_row(vec![
            s.session_id.to_string(),
            s.remote.clone(),
            if s.user.is_empty() {
                "-".into()
            } else {
                hex::encode(&s.user)
            },
            s.chats
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            date(s.connected_since),
            s.queue_depth.to_string(),
        ]);
    }
    Output {
        text: format!("{t}\n{} sessions", r.sessions.len()),
        json: json!(r
            .sessions
            .iter()
            .map(|s| json!({
                "session_id": s.session_id,
                "remote": s.remote,
                "user": hex::encode(&s.user),
                "chats": s.chats,
                "connected_since": s.connected_since,
                "queue_depth": s.queue_depth,
            }))
            .collect::<Vec<_>>()),
    }
}

pub fn purge(r: &PurgeNoncesReply) -> Output {
    Output {
        text: format!("removed {} nonces ({} remain)", r.removed, r.remaining),
        json: json!({ "removed": r.removed, "remaining": r.remaining }),
    }
}

pub fn peers(r: &ListPeersReply) -> Output {
    let mut t = table(&["uri", "key", "direction", "priority", "uptime"]);
    for p in &r.peers {
        t.add_row(vec![
            p.uri.clone(),
            hex::encode(&p.key),
            if p.inbound { "in" } else { "out" }.into(),
            p.priority.to_string(),
            duration(p.uptime_secs),
        ]);
    }
    let text = if r.yggdrasil_enabled {
        t.to_string()
    } else {
        "the Yggdrasil node is not enabled in this mediatord".to_string()
    };
    Output {
        text,
        json: json!({
            "enabled": r.yggdrasil_enabled,
            "peers": r.peers.iter().map(|p| json!({
                "uri": p.uri, "key": hex::encode(&p.key), "inbound": p.inbound,
                "priority": p.priority, "uptime_secs": p.uptime_secs,
            })).collect::<Vec<_>>(),
        }),
    }
}

pub fn backup(path: &std::path::Path, r: &BackupReply) -> Output {
    Output {
        text: format!("backup written to {} ({} bytes)", path.display(), r.bytes),
        json: json!({ "path": path.display().to_string(), "bytes": r.bytes, "pages": r.pages }),
    }
}

pub fn audit(entries: &[AuditEntry]) -> Output {
    let mut t = table(&["id", "time", "user", "action", "target", "result"]);
    for e in entries {
        t.add_row(vec![
            e.id.to_string(),
            date(e.ts),
            format!("{} ({})", e.user, e.uid),
            e.action.clone(),
            e.target.clone(),
            e.result.clone(),
        ]);
    }
    Output {
        text: format!("{t}\n{} entries", entries.len()),
        json: json!(entries
            .iter()
            .map(|e| json!({
                "id": e.id,
                "ts": e.ts,
                "uid": e.uid,
                "user": e.user,
                "action": e.action,
                "target": e.target,
                "result": e.result,
            }))
            .collect::<Vec<_>>()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::date(0), "never");
        assert_eq!(super::date(86_400 * 365), "1971-01-01 00:00:00");
        assert_eq!(super::date(1_700_000_000), "2023-11-14 22:13:20");
    }
}
