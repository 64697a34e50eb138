//! The manual: `mediatorctl man` prints the main page, `mediatorctl man --dir DIR` writes it
//! with one page per subcommand (`mediatorctl-chats-list.1`, …), which the main page's
//! SUBCOMMANDS section refers to and the Debian package installs. The main page adds what
//! clap does not know: output formats, exit status, files, environment and examples. Every
//! page another page names is written too (clap's `help` subcommand, which has none, is left
//! out of the pages), except `mediatord(8)`, which `mediatord --man` makes.

use anyhow::{Context, Result};
use std::path::Path;

/// Sections appended to the main page, in roff.
const MAIN_EXTRA: &str = r#".SH OUTPUT
\fB\-\-output\fR chooses the format of what a command prints (errors included, see EXIT
STATUS); \fB\-\-json\fR is \fB\-\-output json\fR.
.TP
\fBtable\fR
The default, on a terminal or not: boxed tables for people. On a terminal, or when
\fBCOLUMNS\fR is set, tables are fitted to its width: long hex keys are shortened to their
first 16 characters and \fI…\fR, then cells wrap. Without a terminal and without
\fBCOLUMNS\fR tables are as wide as their content.
.TP
\fBplain\fR
Tab-separated values for \fBcut\fR(1) and \fBawk\fR(1): one header line, then one line per
row, nothing shortened, no summary line. Tabs, newlines, backslashes and other control
characters in values are written as \fI\\t\fR, \fI\\n\fR, \fI\\\\\fR and \fI\\xHH\fR. Commands
that print a sentence print the same sentence.
.TP
\fBjson\fR
JSON. Ids of chats, sessions and audit entries are strings of decimal digits (chat ids are
random 63\-bit numbers, which jq 1.6 and JavaScript would round as numbers); counts and
sizes are numbers, times are Unix seconds, keys are hex.
.PP
Dates in tables and plain output are UTC, written as \fI2024\-05\-01 12:00:00Z\fR.
.SH "EXIT STATUS"
.TP
\fB0\fR
The command succeeded (for \fBhealth\fR: the daemon runs and nothing is wrong).
.TP
\fB1\fR
The command failed for another reason (a database or I/O error, a cancelled confirmation;
for \fBhealth\fR: the question could not be asked).
.TP
\fB2\fR
Bad arguments, or a request the daemon refused as invalid (also: a destructive command
without \fB\-\-yes\fR and without a terminal).
.TP
\fB3\fR
The daemon is not running (no socket, or nobody answers on it).
.TP
\fB4\fR
\fBhealth\fR only: degraded (database writer stalled, disk nearly full, no Yggdrasil peer up
while peers are configured, or a damaged database).
.TP
\fB5\fR
Permission denied: the caller is not root, the daemon's user or in its control group.
.TP
\fB6\fR
Not found: no such chat, member, message, block or session.
.TP
\fB7\fR
Refused by the protocol's rules (e.g. removing a chat's owner).
.PP
With \fB\-\-output json\fR (or \fB\-\-json\fR) an error is printed on standard output as
\fI{"error": {"kind": ..., "exit": ..., "message": ...}}\fR.
.SH SIGNALS
\fBmediatorctl\fR installs no signal handler: SIGINT (Ctrl\-C) or SIGTERM ends it at once.
What the daemon has already accepted runs to its end there all the same: a moderation action
or a block is committed and audited, \fBmessages purge\fR finishes on a task of its own; a
backup streamed to standard output is left incomplete and must be taken again. To reload or
stop the daemon, signal \fBmediatord\fR (see \fBmediatord\fR(8)).
.SH FILES
.TP
\fI/run/mediatord/control.sock\fR
The control socket of the packaged daemon (mode 0660, group \fBmediatord\fR): root and members
of the group may use it.
.TP
\fI/etc/mediatord/mediatord.toml\fR
The daemon's configuration (\fB[retention]\fR, \fB[backup]\fR, \fB[limits]\fR, ...).
.TP
\fI/var/lib/mediatord/\fR
The daemon's key (\fImediator.key\fR) and database (\fImediator.db\fR).
.SH ENVIRONMENT
.TP
\fBMEDIATORD_CONTROL_SOCKET\fR
The control socket, when \fB\-\-socket\fR is not given.
.TP
\fBCOLUMNS\fR
The width tables are fitted to (\fB\-\-output table\fR), terminal or not.
.SH EXAMPLES
.nf
mediatorctl status
mediatorctl chats list \-\-limit 20
mediatorctl members ban 42 <64\-hex key> \-\-yes
mediatorctl keys block <64\-hex key> \-\-for 7d \-\-reason spam
mediatorctl messages purge \-\-older\-than 30d \-\-yes
mediatorctl backup \- \-\-include\-key > mediator.tar
mediatorctl audit list \-\-json
mediatorctl \-\-output plain chats list | cut \-f1,2
mediatorctl chats show "$(mediatorctl \-\-json chats list \-\-limit 1 | jq \-r '.chats[0].id')"
mediatorctl health || echo "mediatord: exit $?"
.fi
.SH "SEE ALSO"
\fBmediatord\fR(8); one page per subcommand, e.g. \fBmediatorctl\-messages\-purge\fR(1);
/usr/share/doc/mediatord/README.md (the operator guide).
"#;

/// The command as the pages describe it: without clap's `help` subcommand, which has no page
/// of its own (`--help` is on every page).
fn for_pages(cmd: clap::Command) -> clap::Command {
    cmd.disable_help_subcommand(true)
}

/// The main page, as roff.
pub fn main_page(cmd: clap::Command) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(for_pages(cmd))
        .render(&mut buf)
        .context("rendering the man page")?;
    buf.extend_from_slice(MAIN_EXTRA.as_bytes());
    Ok(buf)
}

/// Writes the main page and one per subcommand into `dir`; returns how many.
pub fn write_all(cmd: clap::Command, dir: &Path) -> Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(for_pages(cmd.clone()), dir)
        .with_context(|| format!("writing man pages to {}", dir.display()))?;
    let main = dir.join("mediatorctl.1");
    std::fs::write(&main, main_page(cmd)?)
        .with_context(|| format!("writing {}", main.display()))?;
    Ok(std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".1"))
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every subcommand the main page names has its own page.
    #[test]
    fn every_subcommand_has_a_page() {
        let dir = tempfile::tempdir().unwrap();
        let n = write_all(crate::cli::Cli::command(), dir.path()).unwrap();
        let main = std::fs::read_to_string(dir.path().join("mediatorctl.1")).unwrap();
        assert!(main.contains("EXIT STATUS") && main.contains("EXAMPLES"));
        assert!(main.contains(".SH SIGNALS") && main.contains(".SH FILES"));
        for page in [
            "mediatorctl-status.1",
            "mediatorctl-messages-purge.1",
            "mediatorctl-members-ban.1",
            "mediatorctl-keys-block.1",
            "mediatorctl-health.1",
        ] {
            let text = std::fs::read_to_string(dir.path().join(page))
                .unwrap_or_else(|_| panic!("{page} missing"));
            assert!(text.starts_with(".ie"), "{page} is roff");
        }
        // Every (sub)command, at any depth, has its page.
        fn walk(cmd: &clap::Command, prefix: &str, dir: &Path) {
            for sub in cmd.get_subcommands() {
                let name = format!("{prefix}-{}", sub.get_name());
                assert!(dir.join(format!("{name}.1")).exists(), "no page for {name}");
                walk(sub, &name, dir);
            }
        }
        walk(&crate::cli::Cli::command(), "mediatorctl", dir.path());
        assert!(n > 30, "{n} pages");
    }

    /// The pages named in `text` as `name(section)` (roff escapes and fonts removed).
    fn references(text: &str) -> Vec<String> {
        let plain = text
            .replace("\\-", "-")
            .replace("\\fB", "")
            .replace("\\fR", "")
            .replace("\\fI", "");
        let mut out = Vec::new();
        for (i, _) in plain.match_indices('(') {
            let section = plain[i + 1..].split(')').next().unwrap_or("");
            if section.len() != 1 || !section.chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            let name: String = plain[..i]
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if !name.is_empty() {
                out.push(format!("{name}({section})"));
            }
        }
        out
    }

    /// No page names a page that is not written (SEE ALSO, SUBCOMMANDS), except the
    /// daemon's and standard tools'.
    #[test]
    fn no_page_refers_to_a_missing_page() {
        /// Pages named that other programs provide: the daemon's (`mediatord --man`, in the
        /// same package) and standard tools'.
        const EXTERNAL_PAGES: &[&str] = &["mediatord(8)", "cut(1)", "awk(1)"];
        let dir = tempfile::tempdir().unwrap();
        write_all(crate::cli::Cli::command(), dir.path()).unwrap();
        let mut checked = 0;
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for r in references(&text) {
                if EXTERNAL_PAGES.contains(&r.as_str()) {
                    continue;
                }
                let (name, section) = r.trim_end_matches(')').split_once('(').unwrap();
                assert!(
                    dir.path().join(format!("{name}.{section}")).exists(),
                    "{} names {r}, which is not written",
                    path.display()
                );
                checked += 1;
            }
        }
        assert!(checked > 30, "only {checked} references checked");
        assert_eq!(
            references("see \\fBmediatorctl\\-chats\\-list\\fR(1) and mediatorctl\\-help(1)."),
            ["mediatorctl-chats-list(1)", "mediatorctl-help(1)"]
        );
    }
}
