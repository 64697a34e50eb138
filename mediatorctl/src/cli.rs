//! The command line: every command, argument and option of mediatorctl, each with its help
//! text (which also makes the man pages and shell completions), and the one choice the options
//! leave open, the output format (`--output`, or `--json` for it).

use crate::health;
use crate::render::Format;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use mediator_control::defaults;
use mediator_control::units::parse_duration;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "mediatorctl",
    version,
    about = "Inspect and steer a running mediatord"
)]
pub struct Cli {
    /// Control socket of the daemon [default: /run/mediatord/control.sock, or
    /// ./mediator-data/control.sock when only that one exists]
    #[arg(long, global = true, env = defaults::SOCKET_ENV, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Output format: table (boxed, for people; the default, on a terminal or not), plain
    /// (tab-separated: a header line, then one line per row) or json (ids as strings). Dates in
    /// tables are UTC, written as 2024-05-01 12:00:00Z.
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<Format>,
    /// Print JSON: the same as --output json.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

impl Cli {
    /// The output format asked for: `--json` is `--output json`; `--json` with another
    /// `--output` is a usage error (exit 2).
    pub fn format(&self) -> Result<Format, clap::Error> {
        match (self.json, self.output) {
            (true, Some(f)) if f != Format::Json => Err(Cli::command().error(
                clap::error::ErrorKind::ArgumentConflict,
                format!("--json means --output json; it cannot be combined with --output {f}"),
            )),
            (true, _) => Ok(Format::Json),
            (false, f) => Ok(f.unwrap_or_default()),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Version, key, uptime, listeners, counts, database size.
    Status,
    /// Chats: list, show, delete.
    #[command(subcommand)]
    Chats(ChatsCmd),
    /// Members of a chat: list, ban, unban, remove, role.
    #[command(subcommand)]
    Members(MembersCmd),
    /// Messages of a chat: delete one, purge old ones.
    #[command(subcommand)]
    Messages(MessagesCmd),
    /// Server-wide blocks of keys: no AUTH, no chat creation, live sessions end.
    #[command(subcommand)]
    Keys(BlockCmd),
    /// Server-wide blocks of sources (IP addresses, IPv6 /64s, Yggdrasil node keys): no
    /// connections, live sessions end.
    #[command(subcommand)]
    Sources(BlockCmd),
    /// Ends live sessions.
    #[command(subcommand)]
    Sessions(SessionsCmd),
    /// Live sessions and the chats they follow.
    #[command(subcommand)]
    Subscribers(SubscribersCmd),
    /// Authentication nonces.
    #[command(subcommand)]
    Nonces(NoncesCmd),
    /// Yggdrasil peers.
    #[command(subcommand)]
    Peers(PeersCmd),
    /// The audit log of state-changing control commands.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// One verdict for monitoring. Exit status: 0 ok; 3 not running (no socket, connection
    /// refused); 4 degraded (database writer stalled, disk nearly full, or no Yggdrasil peer
    /// up while peers are configured); 1 the question could not be asked (e.g. permission
    /// denied); 2 bad arguments.
    Health {
        /// Queued writes on a writer that has not moved for this long count as a stall.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration,
              default_value_t = health::DEFAULT_WRITER_STALL.as_secs())]
        writer_stall: u64,
        /// Less free space than this share of the data directory's file system, in percent,
        /// counts as nearly full.
        #[arg(long, value_name = "PERCENT", default_value_t = health::DEFAULT_MIN_FREE_PERCENT)]
        min_free_percent: f64,
    },
    /// Writes a consistent online copy of the database to PATH (written by the daemon).
    /// With `-`, streams the copy to stdout instead (the caller writes it where it may); with
    /// `--include-key` as an archive of the database and the key, which `mediatord restore`
    /// reads.
    Backup {
        /// Destination file (must not exist; the daemon's user must be able to write it), or
        /// `-` for stdout.
        path: PathBuf,
        /// Stream an archive holding the key too (with `-` only). Keep it as safe as the key.
        #[arg(long)]
        include_key: bool,
    },
    /// Prints shell completions.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Prints the man page (roff), or with --dir writes it and one page per subcommand.
    Man {
        /// Write every page (mediatorctl.1, mediatorctl-chats-list.1, ...) into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChatsCmd {
    /// Lists chats.
    List {
        /// At most this many chats (all when omitted).
        #[arg(long)]
        limit: Option<u64>,
        /// Only chats owned by this key (64 hex characters).
        #[arg(long, value_name = "KEY")]
        owner: Option<String>,
        /// The order of the list (smallest first unless --desc).
        #[arg(long, value_enum, default_value_t = SortBy::Id)]
        sort: SortBy,
        /// Largest first.
        #[arg(long)]
        desc: bool,
    },
    /// Shows one chat.
    Show {
        /// The chat's id (from `chats list`).
        id: i64,
    },
    /// Deletes a chat as its owner would: members get CHAT_DELETED and its rows go.
    Delete {
        /// The chat's id.
        id: i64,
        /// Do not ask (required without a terminal).
        #[arg(long)]
        yes: bool,
    },
}

/// The orders of `chats list`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SortBy {
    /// By chat id.
    Id,
    /// By creation time.
    Created,
    /// By number of members (reads every chat).
    Members,
    /// By number of messages.
    Messages,
    /// By the time of the last message (reads every chat).
    Activity,
}

#[derive(Debug, Subcommand)]
pub enum MembersCmd {
    /// Lists the members of a chat (banned included).
    List {
        /// The chat's id.
        chat_id: i64,
        /// At most this many members (all when omitted).
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Bans a member as the chat's owner would (the member's sessions stop receiving the chat).
    Ban {
        /// The chat's id.
        chat_id: i64,
        /// The member's key (64 hex characters).
        key: String,
        /// Do not ask (required without a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Lifts a member's ban as the chat's owner would.
    Unban {
        /// The chat's id.
        chat_id: i64,
        /// The member's key (64 hex characters).
        key: String,
    },
    /// Removes a member from the chat as if they had left (not the owner; not a banned member).
    Remove {
        /// The chat's id.
        chat_id: i64,
        /// The member's key (64 hex characters).
        key: String,
        /// Do not ask (required without a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Gives a member a role as the chat's owner would.
    Role {
        /// The chat's id.
        chat_id: i64,
        /// The member's key (64 hex characters).
        key: String,
        /// The new role.
        #[arg(value_parser = ["user", "read-only", "moderator", "admin"])]
        role: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum BlockCmd {
    /// Blocks server-wide; the live sessions it covers end at once.
    Block {
        /// A key (64 hex characters); for sources also an IP address or an IPv6 /64.
        value: String,
        /// Lapse after this long, e.g. 90m, 12h, 7d (default: until unblocked).
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
        for_secs: Option<u64>,
        /// Why (kept with the block and in the audit log).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Lifts a block.
    Unblock {
        /// What was blocked, as given to `block` (or as `blocks` lists it).
        value: String,
    },
    /// Lists the blocks in force.
    Blocks,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCmd {
    /// Ends a live session (ids from `subscribers list`), or every session of a key.
    Kick {
        /// The session id.
        #[arg(required_unless_present = "key", conflicts_with = "key")]
        id: Option<u64>,
        /// Every session of this key (64 hex characters).
        #[arg(long)]
        key: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MessagesCmd {
    /// Removes messages older than a duration, in every chat or in one, and gives the space
    /// back to the file system. Members are not told; their apps keep their copies.
    Purge {
        /// e.g. 30d, 12h, 2w (plain numbers are seconds).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        older_than: u64,
        /// Only this chat's messages.
        #[arg(long, value_name = "ID")]
        chat: Option<i64>,
        /// Do not ask (required without a terminal).
        #[arg(long)]
        yes: bool,
    },
    /// Deletes a message as the chat's owner would (members get MESSAGE_DELETED).
    Delete {
        /// The chat's id.
        chat_id: i64,
        /// The message id within the chat.
        message_id: i64,
        /// Do not ask (required without a terminal).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SubscribersCmd {
    /// Every live session.
    List,
}

#[derive(Debug, Subcommand)]
pub enum NoncesCmd {
    /// Deletes nonces older than a duration (default: the daemon's nonce TTL). Safe from cron.
    Purge {
        /// e.g. 90s, 10m, 1h, 2d (plain numbers are seconds).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        older_than: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Lists entries, newest first: who (uid and user), what, when, and how it ended.
    List {
        /// At most this many entries (default 100, at most 1000 per call).
        #[arg(long)]
        limit: Option<u32>,
        /// Only entries older than this id (to page back).
        #[arg(long, value_name = "ID")]
        before: Option<i64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PeersCmd {
    /// Lists Yggdrasil peers.
    List,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every argument and every (sub)command, at any depth, says what it is for: the help, the
    /// man pages and the completions are made from these texts.
    #[test]
    fn every_argument_and_subcommand_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                // clap's own --help and --version describe themselves.
                if matches!(a.get_id().as_str(), "help" | "version") {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path}: argument {}", a.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                let name = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(format!("{name}: no about"));
                }
                walk(sub, &name, missing);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "mediatorctl", &mut missing);
        assert!(missing.is_empty(), "without help: {missing:#?}");
        // The walk reached the leaves.
        let chats = cmd.find_subcommand("chats").expect("chats");
        let show = chats.find_subcommand("show").expect("chats show");
        assert!(show.get_arguments().any(|a| a.get_id() == "id"));
    }

    #[test]
    fn json_is_output_json_and_conflicts_with_other_formats() {
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(args.iter().copied()).expect("parses");
            cli.format()
        };
        assert_eq!(parse(&["m", "status"]).unwrap(), Format::Table);
        assert_eq!(parse(&["m", "--json", "status"]).unwrap(), Format::Json);
        assert_eq!(parse(&["m", "status", "--json"]).unwrap(), Format::Json);
        assert_eq!(
            parse(&["m", "--output", "plain", "chats", "list"]).unwrap(),
            Format::Plain
        );
        assert_eq!(
            parse(&["m", "chats", "list", "--output", "json", "--json"]).unwrap(),
            Format::Json
        );
        for other in ["table", "plain"] {
            let e = parse(&["m", "--json", "--output", other, "status"]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
            assert_eq!(e.exit_code(), 2);
        }
        assert!(Cli::try_parse_from(["m", "--output", "csv", "status"]).is_err());
    }
}
