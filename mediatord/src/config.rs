//! The configuration file (`/etc/mediatord/mediatord.toml` when packaged): one serde struct
//! whose defaults are the documented ones. Unknown keys are rejected with their name;
//! command-line flags override the file.

use crate::limits::Limits;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// UDP address for QUIC when none is configured.
pub const DEFAULT_QUIC_LISTEN: &str = "127.0.0.1:4433";

/// A configuration file that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
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
    pub quic: QuicSection,
    pub yggdrasil: YggdrasilSection,
    pub control: ControlSection,
    pub limits: LimitsSection,
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct YggdrasilSection {
    /// Outbound peers, like the Go mediator's `-peer`: `tcp://HOST:PORT` or `tls://HOST:PORT`
    /// with optional `?key=HEX&password=…&priority=N&maxbackoff=DURATION`.
    pub peers: Vec<String>,
    /// Inbound listeners, e.g. `tcp://[::]:7743` or `tls://0.0.0.0:7744`.
    pub listen: Vec<String>,
}

/// `[control]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlSection {
    /// Unix socket of the control API; empty means DATA_DIR/control.sock.
    pub socket: PathBuf,
    /// Group whose members may use the control socket.
    pub group: String,
}

/// `[limits]`: see [`Limits`] for what each one bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    pub nonce_ttl_secs: u64,
    pub nonces_per_key: u32,
    pub max_nonces: u32,
    pub invite_ttl_secs: u64,
    pub max_blob_bytes: usize,
    pub max_chats_per_user: u32,
    pub max_invites_per_user: u32,
    pub max_subscriptions_per_session: usize,
    pub max_sessions: usize,
    pub max_sessions_per_remote: usize,
    pub session_queue: usize,
    pub idle_timeout_secs: u64,
    pub max_sync_bytes: usize,
    pub janitor_period_secs: u64,
    pub request_budget_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("mediator-data"),
            log: "info".into(),
            quic: QuicSection::default(),
            yggdrasil: YggdrasilSection::default(),
            control: ControlSection::default(),
            limits: LimitsSection::default(),
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
            socket: PathBuf::new(),
            group: "mediatord".into(),
        }
    }
}

impl Default for LimitsSection {
    fn default() -> Self {
        let l = Limits::default();
        LimitsSection {
            nonce_ttl_secs: l.nonce_ttl.as_secs(),
            nonces_per_key: l.nonces_per_key,
            max_nonces: l.max_nonces,
            invite_ttl_secs: l.invite_ttl.as_secs(),
            max_blob_bytes: l.max_blob_bytes,
            max_chats_per_user: l.max_chats_per_user,
            max_invites_per_user: l.max_invites_per_user,
            max_subscriptions_per_session: l.max_subscriptions_per_session,
            max_sessions: l.max_sessions,
            max_sessions_per_remote: l.max_sessions_per_remote,
            session_queue: l.session_queue,
            idle_timeout_secs: l.idle_timeout.as_secs(),
            max_sync_bytes: l.max_sync_bytes,
            janitor_period_secs: l.janitor_period.as_secs(),
            request_budget_bytes: l.request_budget_bytes,
        }
    }
}

impl LimitsSection {
    /// The limits the daemon runs with.
    pub fn to_limits(&self) -> Limits {
        Limits {
            nonce_ttl: Duration::from_secs(self.nonce_ttl_secs),
            nonces_per_key: self.nonces_per_key,
            max_nonces: self.max_nonces,
            invite_ttl: Duration::from_secs(self.invite_ttl_secs),
            max_blob_bytes: self.max_blob_bytes,
            max_chats_per_user: self.max_chats_per_user,
            max_invites_per_user: self.max_invites_per_user,
            max_subscriptions_per_session: self.max_subscriptions_per_session,
            max_sessions: self.max_sessions,
            max_sessions_per_remote: self.max_sessions_per_remote,
            session_queue: self.session_queue,
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_sync_bytes: self.max_sync_bytes,
            janitor_period: Duration::from_secs(self.janitor_period_secs),
            request_budget_bytes: self.request_budget_bytes,
        }
    }
}

impl Config {
    /// Parses a configuration text (`path` is for messages only) and validates it.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |message: &str| {
            Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: message.to_string(),
            })
        };
        let l = &self.limits;
        if l.nonce_ttl_secs == 0 {
            return bad("limits.nonce_ttl_secs must be at least 1");
        }
        if l.nonces_per_key == 0 || l.max_nonces == 0 {
            return bad("limits.nonces_per_key and limits.max_nonces must be at least 1");
        }
        if l.request_budget_bytes < mediator_wire::frame::MAX_REQUEST_PAYLOAD as usize {
            return bad(
                "limits.request_budget_bytes must be at least 33554432 (the largest request)",
            );
        }
        if l.session_queue < 4 {
            return bad("limits.session_queue must be at least 4");
        }
        if l.idle_timeout_secs == 0 || l.janitor_period_secs == 0 {
            return bad(
                "limits.idle_timeout_secs and limits.janitor_period_secs must be at least 1",
            );
        }
        if l.max_sessions == 0 || l.max_sessions_per_remote == 0 {
            return bad(
                "limits.max_sessions and limits.max_sessions_per_remote must be at least 1",
            );
        }
        for uri in self.yggdrasil.peers.iter().chain(&self.yggdrasil.listen) {
            if let Err(e) = uri.parse::<yggnode::PeerUri>() {
                return bad(&format!("yggdrasil: {uri:?}: {e}"));
            }
        }
        if self.quic.listen.is_empty() {
            return bad("quic.listen needs at least one address");
        }
        if self.control.group.is_empty() {
            return bad("control.group must not be empty");
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log).is_err() {
            return bad("log is not a valid filter (e.g. \"info\" or \"mediatord=debug\")");
        }
        Ok(())
    }

    /// The control socket path.
    pub fn control_socket(&self) -> PathBuf {
        if self.control.socket.as_os_str().is_empty() {
            self.data_dir.join("control.sock")
        } else {
            self.control.socket.clone()
        }
    }
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
    }
}
