//! The moderation commands: ask before a destructive change when a person is at the terminal
//! (`--yes` skips the question; without a terminal it is required), then call the daemon,
//! which acts as the chat's owner would and records the action in its audit log.

use crate::format::Output;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::io::{BufRead, IsTerminal, Write};

/// Asks `question` on the terminal unless `yes`; fails without a terminal and without `yes`.
pub fn confirm(question: &str, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("{question} Refusing without --yes (no terminal to ask on)");
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
        .with_context(|| format!("'{hex_key}' is not a key (64 hex characters)"))
}

/// The report of a moderation call.
pub fn done(what: &str, changed: bool) -> Output {
    Output {
        text: if changed {
            format!("{what}: done")
        } else {
            format!("{what}: nothing to change")
        },
        json: json!({ "changed": changed }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_reports() {
        assert_eq!(parse_key(&"ab".repeat(32)).unwrap(), vec![0xab; 32]);
        assert!(parse_key("abcd").is_err());
        assert!(parse_key(&"zz".repeat(32)).is_err());
        assert_eq!(done("ban", true).text, "ban: done");
        assert_eq!(done("ban", false).json["changed"], false);
    }
}
