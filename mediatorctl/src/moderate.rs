//! The moderation commands: ask before a destructive change when a person is at the terminal
//! (`--yes` skips the question; without a terminal it is required), then call the daemon,
//! which acts as the chat's owner would and records the action in its audit log.

use crate::cli::BlockCmd;
use crate::format::date;
use crate::render::{Cell, Grid, Output};
use anyhow::{bail, Context, Result};
use mediator_control::v1::*;
use mediator_control::ControlClient;
use serde_json::json;
use std::io::{BufRead, IsTerminal, Write};
use tonic::transport::Channel;

/// Asks `question` on the terminal unless `yes`; fails without a terminal and without `yes`.
pub fn confirm(question: &str, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(crate::failure::fail(
            crate::failure::Kind::Invalid,
            format!("{question} Refusing without --yes (no terminal to ask on)"),
        ));
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the answer")?;
    match answer.trim() {
        "y" | "Y" | "yes" | "YES" | "Yes" => Ok(()),
        _ => bail!("cancelled"),
    }
}

/// A 32-byte key from 64 hex characters.
pub fn parse_key(hex_key: &str) -> Result<Vec<u8>> {
    hex::decode(hex_key)
        .ok()
        .filter(|k| k.len() == 32)
        .ok_or_else(|| {
            crate::failure::fail(
                crate::failure::Kind::Invalid,
                format!("'{hex_key}' is not a key (64 hex characters)"),
            )
        })
}

/// The report of a moderation call.
pub fn done(what: &str, changed: bool) -> Output {
    let text = if changed {
        format!("{what}: done")
    } else {
        format!("{what}: nothing to change")
    };
    Output::text(text, json!({ "changed": changed }))
}

/// `keys …` and `sources …`: block, unblock, list.
pub async fn blocks(
    c: &mut ControlClient<Channel>,
    kind: &str,
    cmd: BlockCmd,
) -> Result<Output, tonic::Status> {
    Ok(match cmd {
        BlockCmd::Block {
            value,
            for_secs,
            reason,
        } => {
            let r = c
                .block(BlockRequest {
                    kind: kind.into(),
                    value,
                    for_secs: for_secs.unwrap_or(0),
                    reason,
                })
                .await?
                .into_inner();
            let until = match r.until {
                0 => "until unblocked".to_string(),
                t => format!("until {}", date(t)),
            };
            Output::text(
                format!(
                    "blocked {kind} {} {until}; {} live session(s) ended",
                    r.value, r.sessions_ended
                ),
                json!({
                    "value": r.value,
                    "until": r.until,
                    "sessions_ended": r.sessions_ended,
                }),
            )
        }
        BlockCmd::Unblock { value } => {
            let r = c
                .unblock(UnblockRequest {
                    kind: kind.into(),
                    value,
                })
                .await?
                .into_inner();
            done("unblocked", r.changed)
        }
        BlockCmd::Blocks => {
            let r = c.list_blocks(ListBlocksRequest {}).await?.into_inner();
            let mine: Vec<&BlockEntry> = r.blocks.iter().filter(|b| b.kind == kind).collect();
            let mut t = Grid::new(&[kind, "until", "since", "reason"]);
            for b in &mine {
                t.row(vec![
                    block_value(&b.value),
                    match b.until {
                        0 => "-".to_string(),
                        u => date(u),
                    }
                    .into(),
                    date(b.created_at).into(),
                    b.reason.clone().into(),
                ]);
            }
            Output::table(
                t,
                Some(format!("{} blocks", mine.len())),
                json!(mine
                    .iter()
                    .map(|b| json!({
                        "value": b.value,
                        "until": b.until,
                        "reason": b.reason,
                        "created_at": b.created_at,
                    }))
                    .collect::<Vec<_>>()),
            )
        }
    })
}

/// A blocked value's cell: a key (which a narrow table may shorten) or an address.
fn block_value(value: &str) -> Cell {
    if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Cell::Key(value.to_string())
    } else {
        value.into()
    }
}

/// The report of `sessions kick`.
pub fn kicked(n: u64) -> Output {
    Output::text(
        format!("{n} session(s) ended"),
        json!({ "sessions_ended": n }),
    )
}

pub fn purged(r: &PurgeMessagesReply) -> Output {
    Output::text(
        format!(
            "{} message(s) removed, {} KiB given back to the file system",
            r.removed,
            r.bytes_freed / 1024
        ),
        json!({ "removed": r.removed, "bytes_freed": r.bytes_freed }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_reports() {
        assert_eq!(parse_key(&"ab".repeat(32)).unwrap(), vec![0xab; 32]);
        assert!(parse_key("abcd").is_err());
        assert!(parse_key(&"zz".repeat(32)).is_err());
        assert_eq!(
            done("ban", true)
                .render(crate::render::Format::Table, None)
                .unwrap(),
            "ban: done\n"
        );
        assert_eq!(block_value(&"Ab".repeat(32)), Cell::Key("Ab".repeat(32)));
        assert_eq!(block_value("203.0.113.7"), Cell::Text("203.0.113.7".into()));
        assert_eq!(done("ban", false).json["changed"], false);
    }
}
