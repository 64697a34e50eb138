//! `mediatord --man`: the mediatord(8) page, as clap describes the options, followed by what
//! clap does not know: signals, exit status, files, environment, examples.

/// Sections appended to clap's page, in roff.
const EXTRA: &str = r#".SH SIGNALS
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
Stop: no new sessions, running commands finish, the database is checkpointed and closed,
then the process exits with status 0. Sent by \fBsystemctl stop\fR.
.TP
\fBSIGHUP\fR
Re-read the configuration file and apply the log filter and the Yggdrasil \fBpeers\fR list
without dropping sessions; other settings apply at the next start. An invalid file is
refused as a whole and logged; the packaged unit runs \fB\-\-check\-config\fR first, so
\fBsystemctl reload\fR fails on it.
.SH "EXIT STATUS"
.TP
\fB0\fR
Stopped by a signal, or \fB\-\-check\-config\fR / \fB\-\-print\-config\fR succeeded.
.TP
\fB1\fR
Could not start or serve (data directory locked by another daemon, database error, address
in use, ...); the reason is the last log line.
.TP
\fB2\fR
Bad arguments or an invalid configuration file (the message names the file, line, column
and key).
.TP
\fB3\fR
An active daemon of a hot-standby group (\fB[store] url\fR) lost its PostgreSQL lease
(its database session ended, or answered no ping for 5 seconds): it stopped serving at
once, since another daemon may have taken over. The packaged unit starts it again, and it
waits as a standby.
.SH FILES
.TP
\fI/etc/mediatord/mediatord.toml\fR
The configuration of the packaged daemon; every setting is listed there with its default.
.TP
\fI/var/lib/mediatord/mediator.key\fR
The mediator's Ed25519 key (64 bytes, as the Go mediator writes it): its identity, in every
chat and on Yggdrasil. Created once, never overwritten; a package purge keeps it.
.TP
\fI/var/lib/mediatord/mediator.db\fR
The SQLite database (with \fI\-wal\fR and \fI\-shm\fR beside it while it runs).
.TP
\fI/run/mediatord/control.sock\fR
The control socket \fBmediatorctl\fR(1) talks to.
.SH ENVIRONMENT
.TP
\fBMEDIATORD_CONFIG\fR, \fBMEDIATORD_LOG\fR, \fBMEDIATORD_CONTROL_SOCKET\fR
Defaults for \fB\-\-config\fR, \fB\-\-log\fR and \fB\-\-control\-socket\fR.
.TP
\fBNOTIFY_SOCKET\fR, \fBWATCHDOG_USEC\fR, \fBJOURNAL_STREAM\fR
Set by systemd: readiness, status and watchdog notifications; with \fBlog_format = "auto"\fR
records go to the journal with their fields when standard error is the journal's stream.
.SH EXAMPLES
.nf
mediatord \-\-config /etc/mediatord/mediatord.toml \-\-check\-config
mediatord \-\-config /etc/mediatord/mediatord.toml \-\-print\-config
mediatord \-\-data\-dir ./mediator\-data \-\-quic\-listen 127.0.0.1:4433
mediatord migrate \-\-check /var/lib/mediatord/mediator.db
mediatord restore /var/backups/mediator.tar
.fi
.SH "SEE ALSO"
\fBmediatorctl\fR(1), \fBsystemd.service\fR(5), \fBjournalctl\fR(1);
/usr/share/doc/mediatord/README.md (the operator guide).
"#;

/// The whole page for `cmd` (mediatord's clap command), as roff.
pub fn render(cmd: clap::Command) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd).section("8").render(&mut buf)?;
    buf.extend_from_slice(EXTRA.as_bytes());
    Ok(buf)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_has_the_sections_clap_lacks() {
        let cmd = clap::Command::new("mediatord").arg(clap::arg!(--config <FILE> "config"));
        let page = String::from_utf8(super::render(cmd).unwrap()).unwrap();
        for s in [
            ".SH SIGNALS",
            ".SH \"EXIT STATUS\"",
            ".SH FILES",
            ".SH EXAMPLES",
        ] {
            assert!(page.contains(s), "{s} missing");
        }
        assert!(page.contains("\\-\\-config"));
    }
}
