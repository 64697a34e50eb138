//! How the daemon logs: the filter an operator writes (`log = "debug"`) kept about
//! mediatord, and output shaped for where it goes ([`LogFormat`]). Under systemd (stderr is
//! the journal's stream, `JOURNAL_STREAM`) records go to journald in its native protocol,
//! with their priority and their fields (`SESSION`, `REMOTE`, `USER`, `CHAT`, `EVENT`, …)
//! as journal fields, so `journalctl -u mediatord SESSION=42` or `-p warning` work; if the
//! journal's socket cannot be reached, lines go to stderr without a timestamp (the journal
//! stamps them) and without colour. Elsewhere lines are text, coloured only on a terminal,
//! or JSON (one object per line, for log shippers). The start-up lines the daemon prints on
//! stdout for scripts and tests (`listening quic …`, `mediatord public key …`) are not
//! printed when stdout is the journal too, where the log already says the same.

use serde::{Deserialize, Serialize};
use std::io::IsTerminal;
use std::os::fd::AsFd;
use tracing_subscriber::EnvFilter;

/// Where and how log records go (`log_format`, `--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// journald when stderr is the journal's stream, else text.
    #[default]
    Auto,
    /// Human-readable lines on stderr (coloured on a terminal).
    Text,
    /// One JSON object per line on stderr, with the session's fields.
    Json,
    /// journald's native protocol, with priorities and fields.
    Journald,
}

/// The journal's identifier for the daemon's records (`journalctl -t mediatord`).
pub const SYSLOG_IDENTIFIER: &str = "mediatord";

/// The logging set up could not be done.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    #[error("cannot reach the journal (log_format = \"journald\"): {0}")]
    Journal(std::io::Error),
}

/// Crates whose debug output is about their own frames and state machines, not about the
/// mediator: a bare `debug` or `trace` filter keeps them at `info` unless the filter names
/// them itself (`log = "debug,h2=debug"`).
pub const QUIET_CRATES: &[&str] = &[
    "h2",
    "hyper",
    "hyper_util",
    "tonic",
    "tower",
    "quinn",
    "quinn_proto",
    "quinn_udp",
    "rustls",
    "mio",
];

/// The filter for an operator's `log` setting (see [`QUIET_CRATES`]).
pub fn filter(spec: &str) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    let mut f = EnvFilter::try_new(spec)?;
    let verbose = spec.split(',').map(str::trim).any(|d| {
        !d.contains('=') && (d.eq_ignore_ascii_case("debug") || d.eq_ignore_ascii_case("trace"))
    });
    if verbose {
        for name in QUIET_CRATES {
            let named = spec
                .split(',')
                .any(|d| d.trim().split(['=', ':', '[']).next() == Some(*name));
            if !named {
                f = f.add_directive(format!("{name}=info").parse()?);
            }
        }
    }
    Ok(f)
}

/// Whether `fd` is the stream `JOURNAL_STREAM` ("device:inode") names.
fn is_stream(fd: impl AsFd, journal_stream: Option<&str>) -> bool {
    let Some((dev, ino)) = journal_stream.and_then(|v| v.split_once(':')) else {
        return false;
    };
    let Ok(st) = nix::sys::stat::fstat(fd.as_fd()) else {
        return false;
    };
    dev.parse() == Ok(st.st_dev) && ino.parse() == Ok(st.st_ino)
}

fn journal_stream() -> Option<String> {
    std::env::var("JOURNAL_STREAM").ok()
}

/// Whether stderr, where the log goes, is the journal.
pub fn stderr_is_journal() -> bool {
    is_stream(std::io::stderr(), journal_stream().as_deref())
}

/// Prints a start-up line on stdout, unless stdout is the journal.
pub fn announce(line: &str) {
    if !is_stream(std::io::stdout(), journal_stream().as_deref()) {
        println!("{line}");
    }
}

/// A connection to journald's socket, with mediatord's identifier and fields unprefixed.
fn journald() -> std::io::Result<tracing_journald::Layer> {
    Ok(tracing_journald::layer()?
        .with_field_prefix(None)
        .with_syslog_identifier(SYSLOG_IDENTIFIER.into()))
}

/// Installs the global subscriber; returns the handle that reloads the filter (SIGHUP) and
/// the format in use (never [`LogFormat::Auto`]).
pub fn init(
    spec: &str,
    format: LogFormat,
) -> Result<
    (
        tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>,
        LogFormat,
    ),
    LogError,
> {
    use tracing_subscriber::layer::{Layer, SubscriberExt};
    use tracing_subscriber::util::SubscriberInitExt;
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter(spec)?);
    let under_journal = stderr_is_journal();
    // Text lines: under the journal without timestamp (it stamps them) and colour.
    let text = || {
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(!under_journal && std::io::stderr().is_terminal());
        if under_journal {
            fmt.without_time().boxed()
        } else {
            fmt.boxed()
        }
    };
    let (layer, used) = match format {
        LogFormat::Journald => (journald().map_err(LogError::Journal)?.boxed(), format),
        LogFormat::Auto if under_journal => match journald() {
            Ok(j) => (j.boxed(), LogFormat::Journald),
            // The stream is there but not the socket (a container's journal): plain lines.
            Err(_) => (text(), LogFormat::Text),
        },
        LogFormat::Json => (
            tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(std::io::stderr)
                .boxed(),
            format,
        ),
        LogFormat::Auto | LogFormat::Text => (text(), LogFormat::Text),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .init();
    Ok((handle, used))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_bare_debug_is_about_mediatord() {
        let f = filter("debug").unwrap().to_string();
        assert!(f.contains("h2=info") && f.contains("tonic=info"), "{f}");
        let f = filter("info").unwrap().to_string();
        assert!(!f.contains("h2="), "{f}");
        let f = filter("trace,h2=debug").unwrap().to_string();
        assert!(f.contains("h2=debug") && !f.contains("h2=info"), "{f}");
        assert!(f.contains("quinn=info"), "{f}");
        let f = filter("mediatord=debug").unwrap().to_string();
        assert!(!f.contains("h2="), "only a global level is capped: {f}");
        assert!(filter("[").is_err());
    }

    #[test]
    fn the_journal_stream_is_recognised_by_device_and_inode() {
        let file = tempfile::tempfile().unwrap();
        let other = tempfile::tempfile().unwrap();
        let md = file.metadata().unwrap();
        let v = format!("{}:{}", md.dev(), md.ino());
        assert!(is_stream(&file, Some(&v)));
        assert!(!is_stream(&other, Some(&v)));
        assert!(!is_stream(&file, None));
        assert!(!is_stream(&file, Some("garbage")));
    }
}
