//! The configuration file (`/etc/mediatord/mediatord.toml` when packaged): one serde struct
//! whose defaults are the documented ones. Unknown keys are rejected with their name;
//! command-line flags override the file.

use crate::limits::Limits;
use mediator_control::defaults;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// UDP address for QUIC when none is configured.
pub const DEFAULT_QUIC_LISTEN: &str = "127.0.0.1:4433";
/// The group whose members may use the control socket, unless configured otherwise.
pub const DEFAULT_CONTROL_GROUP: &str = "mediatord";

/// A configuration file that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory holding mediator.key and mediator.db.
    pub data_dir: PathBuf,
    /// tracing filter, e.g. "info" or "mediatord=debug".
    pub log: String,
    /// Where and how log records go: "auto", "text", "json" or "journald".
    pub log_format: crate::logging::LogFormat,
    pub quic: QuicSection,
    pub yggdrasil: YggdrasilSection,
    pub control: ControlSection,
    pub backup: BackupSection,
    /// `[retention]`: how long messages are kept (see [`crate::retention`]).
    pub retention: RetentionSection,
    /// `[metrics]`: the Prometheus endpoint (see [`crate::metrics`]).
    pub metrics: MetricsSection,
    /// `[store]`: where the data lives (see [`crate::store`]).
    pub store: StoreSection,
    /// `[limits]`: see [`Limits`] for what each one bounds.
    pub limits: Limits,
}

/// `[backup]`: scheduled online backups with rotation (`crate::backups`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupSection {
    /// Directory the backups are written to; none (or an empty path) means no scheduled
    /// backups. Created if missing.
    #[serde(
        deserialize_with = "non_empty_path",
        skip_serializing_if = "Option::is_none"
    )]
    pub dir: Option<PathBuf>,
    /// Seconds between two backups (or a duration such as "12h").
    #[serde(deserialize_with = "secs")]
    pub interval_secs: u64,
    /// Backups kept; older ones are removed after each new one.
    pub keep: u32,
}

impl Default for BackupSection {
    fn default() -> Self {
        BackupSection {
            dir: None,
            interval_secs: 86_400,
            keep: 7,
        }
    }
}

/// `[retention]`: which messages the daemon removes, continuously and in small batches
/// (`crate::retention`). Every field is off by default: messages are kept until a member or
/// the operator deletes them, as the Go mediator keeps them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSection {
    /// Messages older than this are removed: seconds, or a duration such as "90d" or "12h".
    #[serde(
        deserialize_with = "duration_secs",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_age: Option<u64>,
    /// A chat's oldest messages are removed beyond this many.
    #[serde(deserialize_with = "count", skip_serializing_if = "Option::is_none")]
    pub max_messages_per_chat: Option<u64>,
    /// A chat's oldest messages are removed while their bodies take more than this: bytes,
    /// or a size such as "512MiB".
    #[serde(
        deserialize_with = "size_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_bytes_per_chat: Option<u64>,
}

impl RetentionSection {
    /// Whether any limit is set.
    pub fn is_on(&self) -> bool {
        self.max_age.is_some()
            || self.max_messages_per_chat.is_some()
            || self.max_bytes_per_chat.is_some()
    }
}

/// `[metrics]`: an HTTP endpoint serving `/metrics` in the OpenMetrics text format, for
/// Prometheus. Off by default; it tells nothing secret (no keys, no chat ids), but it is meant
/// for a scraper on the same machine or a private network, so give it a loopback address
/// unless a firewall guards it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// TCP address of the endpoint, e.g. "127.0.0.1:9464"; none (or "") means off.
    #[serde(
        deserialize_with = "optional_addr",
        skip_serializing_if = "Option::is_none"
    )]
    pub listen: Option<SocketAddr>,
}

/// `[store]`: the embedded SQLite file in `data_dir` (the default), or a PostgreSQL database
/// shared by a hot-standby group of daemons with the same key: the one that holds the lease
/// serves, the others wait (`crate::store::postgres::lease`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// PostgreSQL connection URL ("postgres://user@host/db") or libpq key=value string; none
    /// (or "") means the SQLite file in `data_dir`. `sslmode` and `sslrootcert` choose TLS
    /// (see `crate::store::postgres::connect`).
    #[serde(
        deserialize_with = "optional_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub url: Option<String>,
}

/// `[quic]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuicSection {
    /// UDP addresses to serve QUIC on.
    pub listen: Vec<SocketAddr>,
}

/// `[yggdrasil]`: the embedded Yggdrasil node (same key as the mediator). It runs when
/// there is at least one peer or listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct YggdrasilSection {
    /// Outbound peers, like the Go mediator's `-peer`: `tcp://HOST:PORT` or `tls://HOST:PORT`
    /// with optional `?key=HEX&password=…&priority=N&maxbackoff=DURATION`.
    pub peers: Vec<String>,
    /// Inbound listeners, e.g. `tcp://[::]:7743` or `tls://0.0.0.0:7744`.
    pub listen: Vec<String>,
    /// The ygg_stream port Mimir 3.x clients connect to while the node runs; 0 turns it off.
    pub stream_port: u16,
}

impl Default for YggdrasilSection {
    fn default() -> Self {
        YggdrasilSection {
            peers: Vec::new(),
            listen: Vec::new(),
            stream_port: crate::stream::DEFAULT_STREAM_PORT,
        }
    }
}

/// `[control]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlSection {
    /// Unix socket of the control API; none (or an empty path) means DATA_DIR/control.sock.
    #[serde(
        deserialize_with = "non_empty_path",
        skip_serializing_if = "Option::is_none"
    )]
    pub socket: Option<PathBuf>,
    /// Group whose members may use the control socket.
    pub group: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(defaults::DATA_DIR),
            log: "info".into(),
            log_format: Default::default(),
            quic: QuicSection::default(),
            yggdrasil: YggdrasilSection::default(),
            control: ControlSection::default(),
            backup: BackupSection::default(),
            retention: RetentionSection::default(),
            metrics: MetricsSection::default(),
            store: StoreSection::default(),
            limits: Limits::default(),
        }
    }
}

impl Default for QuicSection {
    fn default() -> Self {
        QuicSection {
            listen: vec![DEFAULT_QUIC_LISTEN.parse().expect("valid default")],
        }
    }
}

impl Default for ControlSection {
    fn default() -> Self {
        ControlSection {
            socket: None,
            group: DEFAULT_CONTROL_GROUP.into(),
        }
    }
}

impl Config {
    /// Parses a configuration text (`path` is for messages only) without validating it:
    /// flags may still change it; [`Config::validate`] runs once on the final result.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: match e.span() {
                Some(span) => format!("{}: {}", Place::of(text, span.start), e.message()),
                None => e.message().to_string(),
            },
        })
    }

    /// Parses and validates a configuration text on its own (no flags).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg = Config::from_toml(text, path)?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Reads and parses a configuration file, without validating it (see
    /// [`Config::from_toml`]).
    pub fn read(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(&text, path)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |message: &str| {
            Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: message.to_string(),
            })
        };
        if let Some(problem) = self.limits.problem() {
            return bad(problem);
        }
        for uri in self.yggdrasil.peers.iter().chain(&self.yggdrasil.listen) {
            if let Err(e) = uri.parse::<yggnode::PeerUri>() {
                return bad(&format!("yggdrasil: {uri:?}: {e}"));
            }
        }
        if self.quic.listen.is_empty() {
            return bad("quic.listen needs at least one address");
        }
        if self.backup.dir.is_some() && (self.backup.keep == 0 || self.backup.interval_secs == 0) {
            return bad("backup.keep and backup.interval_secs must be at least 1");
        }
        let r = &self.retention;
        if [r.max_age, r.max_messages_per_chat, r.max_bytes_per_chat].contains(&Some(0)) {
            return bad("retention limits must be at least 1 (leave one out to keep messages)");
        }
        if self.control.group.is_empty() {
            return bad("control.group must not be empty");
        }
        if let Some(problem) = log_problem(&self.log) {
            return bad(&problem);
        }
        if let Some(url) = &self.store.url {
            // The options, and the authorities' file TLS would read (see
            // store::postgres::connect).
            if let Err(e) =
                crate::store::postgres::connect::ConnString::parse(url).and_then(|c| c.connector())
            {
                return bad(&format!("store.url: {e}"));
            }
            if self.backup.dir.is_some() {
                return bad(
                    "backup.dir copies the SQLite file; with store.url, back PostgreSQL up with \
                     its own tools (pg_dump, base backups, a replica)",
                );
            }
        }
        Ok(())
    }

    /// The control socket path.
    pub fn control_socket(&self) -> PathBuf {
        match &self.control.socket {
            Some(p) => p.clone(),
            None => self.data_dir.join(defaults::SOCKET_FILE),
        }
    }
}

/// Targets a bare word in `log` may name (everything else bare must be a level): a filter
/// such as `log = "verbose"` parses, but enables a target that logs nothing.
const LOG_TARGETS: &[&str] = &["mediatord", "yggnode", "mediator_wire", "mediator_quic"];

/// Levels a bare word in `log` may be.
const LOG_LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

/// Why `log` would not log what the operator meant, if it would not.
fn log_problem(spec: &str) -> Option<String> {
    let example = "e.g. \"info\" or \"info,mediatord=debug\"";
    if crate::logging::filter(spec).is_err() {
        return Some(format!("log {spec:?} is not a valid filter ({example})"));
    }
    for d in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let bare = !d.contains(['=', '[', ':']);
        let known = LOG_LEVELS.iter().any(|l| d.eq_ignore_ascii_case(l))
            || LOG_TARGETS.contains(&d)
            || crate::logging::QUIET_CRATES.contains(&d);
        if bare && !known {
            return Some(format!(
                "log: {d:?} is neither a level ({}) nor a known target; write target=level ({example})",
                LOG_LEVELS.join(", ")
            ));
        }
    }
    None
}

/// Where in a configuration text a problem is: line and column (from 1) and, when the
/// line holds one, the key with its section (`limits.janitor_period_secs`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Place {
    line: usize,
    column: usize,
    key: Option<String>,
}

impl Place {
    fn of(text: &str, offset: usize) -> Place {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line_text = text[line_start..].lines().next().unwrap_or("");
        let section = before[..line_start]
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('[') && !l.starts_with("[["))
            .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
        let key = line_text
            .split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"').to_string())
            .filter(|k| !k.is_empty() && !k.starts_with('#'))
            .map(|k| match &section {
                Some(s) => format!("{s}.{k}"),
                None => k,
            });
        Place {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
            key,
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)?;
        match &self.key {
            Some(k) => write!(f, ", {k}"),
            None => Ok(()),
        }
    }
}

/// An optional path where an empty string, as older configuration files wrote, means none.
fn non_empty_path<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let p = Option::<PathBuf>::deserialize(d)?;
    Ok(p.filter(|p| !p.as_os_str().is_empty()))
}

/// A text where "" means none.
fn optional_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

fn optional_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!(
                "{s:?} is not an address with a port, such as \"127.0.0.1:9464\" or \"[::1]:9464\""
            ))
        }),
    }
}

/// An integer or a text in the given units (`mediator_control::units`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Amount {
    Number(u64),
    Text(String),
}

fn amount<'de, D: serde::Deserializer<'de>>(
    d: D,
    parse: fn(&str) -> Result<u64, String>,
) -> Result<Option<u64>, D::Error> {
    match Option::<Amount>::deserialize(d)? {
        None => Ok(None),
        Some(Amount::Number(n)) => Ok(Some(n)),
        Some(Amount::Text(t)) if t.trim().is_empty() => Ok(None),
        Some(Amount::Text(t)) => parse(&t).map(Some).map_err(serde::de::Error::custom),
    }
}

/// Seconds, or a duration such as "90d"; an empty text means none.
fn duration_secs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    amount(d, mediator_control::units::parse_duration)
}

/// Seconds, or a duration such as "12h" (required).
fn secs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    duration_secs(d)?.ok_or_else(|| serde::de::Error::custom("a duration is required"))
}

/// A number, also as a text; an empty text means none.
fn count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    amount(d, |t| {
        t.trim()
            .parse()
            .map_err(|_| format!("'{t}' is not a whole number"))
    })
}

/// Bytes, or a size such as "512MiB"; an empty text means none.
fn size_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    amount(d, mediator_control::units::parse_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key path of a TOML value, like "limits.max_sessions".
    fn keys(v: &toml::Value, prefix: &str, out: &mut Vec<String>) {
        if let toml::Value::Table(t) = v {
            for (k, v) in t {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if v.is_table() {
                    keys(v, &p, out);
                } else {
                    out.push(p);
                }
            }
        }
    }

    #[test]
    fn shipped_example_parses_and_names_every_setting() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/mediatord.toml");
        let text = std::fs::read_to_string(&path).expect("packaging/mediatord.toml");
        Config::parse(&text, &path).expect("the shipped example is valid");
        let mut shipped = Vec::new();
        keys(&toml::from_str(&text).unwrap(), "", &mut shipped);
        let mut all = Vec::new();
        keys(
            &toml::Value::try_from(Config::default()).unwrap(),
            "",
            &mut all,
        );
        // Settings whose default is "none" are absent from the serialised defaults.
        all.push("control.socket".to_string());
        all.push("backup.dir".to_string());
        all.push("metrics.listen".to_string());
        all.push("store.url".to_string());
        for k in ["max_age", "max_messages_per_chat", "max_bytes_per_chat"] {
            all.push(format!("retention.{k}"));
        }
        shipped.sort();
        all.sort();
        assert_eq!(shipped, all, "the example must set every setting");
    }

    #[test]
    fn defaults_round_trip_and_unknown_keys_are_named() {
        let text = toml::to_string(&Config::default()).unwrap();
        assert_eq!(
            Config::parse(&text, Path::new("x")).unwrap(),
            Config::default()
        );
        let err = Config::parse("[limits]\nmax_sesions = 3\n", Path::new("f.toml")).unwrap_err();
        assert!(err.to_string().contains("max_sesions"), "{err}");
        let err = Config::parse("colour = 1\n", Path::new("f.toml")).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
        let err = Config::parse("[limits]\nsession_queue = 1\n", Path::new("f.toml")).unwrap_err();
        assert!(err.to_string().contains("session_queue"), "{err}");
        let err = Config::parse("[limits]\nrequest_budget_bytes = 1000000\n", Path::new("f"))
            .unwrap_err();
        assert!(err.to_string().contains("request_budget_bytes"), "{err}");
        assert_eq!(
            Config::parse("", Path::new("e")).unwrap(),
            Config::default()
        );
        // Names from before the per-source limits still work.
        let old = "[limits]\nnonces_per_key = 3\nmax_sessions_per_remote = 5\n";
        let cfg = Config::parse(old, Path::new("old")).unwrap();
        assert_eq!(cfg.limits.nonces_per_session, 3);
        assert_eq!(cfg.limits.max_sessions_per_source, 5);
    }

    #[test]
    fn store_urls_are_checked_with_their_tls_files() {
        let check = |url: &str| {
            Config::parse(&format!("[store]\nurl = \"{url}\"\n"), Path::new("f"))
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert!(check("postgres://m@db.example/m?sslmode=verify-full").is_ok());
        assert!(check("postgres://m@localhost/m").is_ok());
        let e = check("postgres://m@db/m?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
            .unwrap_err();
        assert!(
            e.contains("store.url") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
        let e = check("postgres://m@db/m?sslmode=verify-ful").unwrap_err();
        assert!(e.contains("sslmode=verify-ful"), "{e}");
    }

    #[test]
    fn log_filters_that_would_log_nothing_are_refused() {
        for ok in [
            "info",
            "warn,mediatord=debug",
            "debug",
            "mediatord",
            "info,h2=debug",
        ] {
            assert_eq!(log_problem(ok), None, "{ok}");
        }
        for bad in ["verbose", "info,loud", "[", "mediatord=loud"] {
            assert!(log_problem(bad).is_some(), "{bad}");
        }
        let e = Config::parse("log = \"verbose\"\n", Path::new("m")).unwrap_err();
        assert!(
            e.to_string().contains("\"verbose\" is neither a level"),
            "{e}"
        );
    }

    /// Each mistake names its line, column and key; durations take units.
    #[test]
    fn errors_say_where() {
        let at = |text: &str| {
            Config::parse(text, Path::new("m.toml"))
                .unwrap_err()
                .to_string()
        };
        let e = at("log = \"info\"\n[limits]\njanitor_period_secs = \"10x\"\n");
        assert!(
            e.starts_with("m.toml: line 3, column 23, limits.janitor_period_secs: "),
            "{e}"
        );
        assert!(e.contains("unknown unit 'x'"), "{e}");
        let e = at("[quic]\nlisten = [\"nope\"]\n");
        assert!(e.contains("line 2, column 11, quic.listen: "), "{e}");
        let e = at("[limits]\n# a comment\nmax_sesions = 3\n");
        assert!(
            e.contains("line 3, column 1, limits.max_sesions: unknown field"),
            "{e}"
        );
        let e = at("data_dir = 5\n");
        assert!(
            e.contains("line 1, column 12, data_dir: invalid type"),
            "{e}"
        );
        let e = at("[retention]\nmax_age = \"3ä\"\n");
        assert!(e.contains("line 2, column 11, retention.max_age: "), "{e}");
        let cfg =
            Config::parse("[limits]\njanitor_period_secs = \"10m\"\n", Path::new("m")).unwrap();
        assert_eq!(
            cfg.limits.janitor_period,
            std::time::Duration::from_secs(600)
        );
        let cfg = Config::parse("[limits]\njanitor_period_secs = 30\n", Path::new("m")).unwrap();
        assert_eq!(
            cfg.limits.janitor_period,
            std::time::Duration::from_secs(30)
        );
        let cfg = Config::parse("[backup]\ninterval_secs = \"12h\"\n", Path::new("m")).unwrap();
        assert_eq!(cfg.backup.interval_secs, 43_200);
    }

    #[test]
    fn retention_takes_units_numbers_or_nothing() {
        let cfg = Config::parse(
            "[retention]\nmax_age = \"90d\"\nmax_messages_per_chat = 5000\nmax_bytes_per_chat = \"64MiB\"\n",
            Path::new("r"),
        )
        .unwrap();
        assert_eq!(cfg.retention.max_age, Some(90 * 86_400));
        assert_eq!(cfg.retention.max_messages_per_chat, Some(5000));
        assert_eq!(cfg.retention.max_bytes_per_chat, Some(64 << 20));
        assert!(cfg.retention.is_on());
        let cfg = Config::parse(
            "[retention]\nmax_age = 3600\nmax_bytes_per_chat = \"\"\n",
            Path::new("r"),
        )
        .unwrap();
        assert_eq!(cfg.retention.max_age, Some(3600));
        assert_eq!(cfg.retention.max_bytes_per_chat, None);
        assert!(!Config::default().retention.is_on());
        let text = toml::to_string(&cfg).unwrap();
        assert_eq!(Config::parse(&text, Path::new("r")).unwrap(), cfg);
        let err = Config::parse("[retention]\nmax_age = \"3y\"\n", Path::new("r")).unwrap_err();
        assert!(err.to_string().contains("unknown unit 'y'"), "{err}");
        let err =
            Config::parse("[retention]\nmax_messages_per_chat = 0\n", Path::new("r")).unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");
    }

    #[test]
    fn the_control_socket_is_optional_and_empty_means_none() {
        let cfg = Config::parse("", Path::new("e")).unwrap();
        assert_eq!(cfg.control.socket, None);
        assert_eq!(
            cfg.control_socket(),
            Path::new(defaults::DATA_DIR).join(defaults::SOCKET_FILE)
        );
        let cfg = Config::parse("[control]\nsocket = \"\"\n", Path::new("e")).unwrap();
        assert_eq!(cfg.control.socket, None);
        let cfg = Config::parse("[control]\nsocket = \"/run/x.sock\"\n", Path::new("e")).unwrap();
        assert_eq!(cfg.control_socket(), Path::new("/run/x.sock"));
    }
}
