//! How the daemon logs: the filter an operator writes (`log = "debug"`) kept about
//! mediatord, and output shaped for where it goes. Under systemd (stderr is the journal's
//! stream, `JOURNAL_STREAM`) lines carry no timestamp (the journal stamps them) and no
//! colour; elsewhere colour only on a terminal. The start-up lines the daemon prints on
//! stdout for scripts and tests (`listening quic …`, `mediatord public key …`) are not
//! printed when stdout is the journal too, where the log already says the same.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use tracing_subscriber::EnvFilter;

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

/// Installs the global subscriber; returns the handle that reloads the filter (SIGHUP).
pub fn init(
    spec: &str,
) -> Result<
    tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>,
    tracing_subscriber::filter::ParseError,
> {
    use tracing_subscriber::layer::{Layer, SubscriberExt};
    use tracing_subscriber::util::SubscriberInitExt;
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter(spec)?);
    let journal = stderr_is_journal();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(!journal && std::io::stderr().is_terminal());
    let fmt = if journal {
        fmt.without_time().boxed()
    } else {
        fmt.boxed()
    };
    tracing_subscriber::registry().with(filter).with(fmt).init();
    Ok(handle)
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
