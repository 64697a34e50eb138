//! Peer and listen URIs in Yggdrasil's form:
//! `tcp://host:port?key=<hex>&password=<text>&priority=<0..255>`
//! (`tls://` is parsed too; see the crate docs for what is implemented).
//!
//! Options follow yggdrasil-go `links.add` / `links.listen`: `key` may repeat
//! and pins the remote handshake key, `password` is at most 64 bytes (the
//! BLAKE2b key size), `priority` is a u8, `maxbackoff` is a Go duration
//! (`90s`, `1h30m`) of at least [`MIN_MAX_BACKOFF`], `sni` names the TLS
//! server. Query values are percent-decoded
//! like Go's `url.ParseQuery` (`+` means space). Unknown options are kept in
//! the raw string but otherwise ignored.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::handshake::MAX_PASSWORD_LEN;
use crate::wire::PublicKey;

/// Smallest accepted `maxbackoff=` (yggdrasil-go 0.5.12
/// `minimumBackoffLimit`).
pub const MIN_MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Parses a Go `time.ParseDuration` string (units ns, us, µs, ms, s, m, h;
/// decimal fractions allowed; no sign).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += num * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Transport schemes understood by the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

/// A parsed peer or listen URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUri {
    /// Transport.
    pub scheme: Scheme,
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `key=` pins; empty means any key is accepted.
    pub pinned_keys: Vec<PublicKey>,
    /// `password=`; empty means none.
    pub password: Vec<u8>,
    /// `priority=`; lower is preferred.
    pub priority: u8,
    /// `sni=` for TLS.
    pub sni: Option<String>,
    /// `maxbackoff=`: cap on the redial backoff for this peer.
    pub max_backoff: Option<Duration>,
    raw: String,
}

/// URI parse errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// No `scheme://`.
    #[error("missing scheme in {0:?}")]
    MissingScheme(String),
    /// A scheme other than tcp/tls.
    #[error("link schema unknown: {0}")]
    UnknownScheme(String),
    /// Host or port missing or malformed.
    #[error("invalid host:port in {0:?}")]
    BadAddress(String),
    /// `key=` is not 64 hex digits.
    #[error("pinned public key is invalid")]
    BadKey,
    /// `priority=` is not 0..=255.
    #[error("priority value is invalid")]
    BadPriority,
    /// `password=` longer than 64 bytes.
    #[error("invalid password supplied")]
    BadPassword,
    /// `maxbackoff=` is not a duration of at least [`MIN_MAX_BACKOFF`].
    #[error("max backoff duration invalid")]
    BadMaxBackoff,
    /// Bad `%xx` escape.
    #[error("invalid percent-encoding")]
    BadEscape,
}

fn percent_decode(s: &str) -> Result<Vec<u8>, UriError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3).ok_or(UriError::BadEscape)?;
                let s = std::str::from_utf8(hex).map_err(|_| UriError::BadEscape)?;
                out.push(u8::from_str_radix(s, 16).map_err(|_| UriError::BadEscape)?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

impl FromStr for PeerUri {
    type Err = UriError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| UriError::MissingScheme(s.to_string()))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "tcp" => Scheme::Tcp,
            "tls" => Scheme::Tls,
            other => return Err(UriError::UnknownScheme(other.to_string())),
        };
        let (authority, query) = match rest.split_once('?') {
            Some((a, q)) => (a, q),
            None => (rest, ""),
        };
        let authority = authority.trim_end_matches('/');
        let bad = || UriError::BadAddress(s.to_string());
        let (host, port) = if let Some(stripped) = authority.strip_prefix('[') {
            let (h, p) = stripped.split_once("]:").ok_or_else(bad)?;
            (h.to_string(), p)
        } else {
            let (h, p) = authority.rsplit_once(':').ok_or_else(bad)?;
            if h.contains(':') {
                return Err(bad());
            }
            (h.to_string(), p)
        };
        if host.is_empty() {
            return Err(bad());
        }
        let port: u16 = port.parse().map_err(|_| bad())?;
        let mut uri = PeerUri {
            scheme,
            host,
            port,
            pinned_keys: Vec::new(),
            password: Vec::new(),
            priority: 0,
            sni: None,
            max_backoff: None,
            raw: s.to_string(),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_decode(k)?;
            let v = percent_decode(v)?;
            match k.as_slice() {
                b"key" => {
                    let key: PublicKey = hex::decode(&v)
                        .ok()
                        .and_then(|k| k.try_into().ok())
                        .ok_or(UriError::BadKey)?;
                    uri.pinned_keys.push(key);
                }
                b"priority" if !v.is_empty() => {
                    uri.priority = std::str::from_utf8(&v)
                        .ok()
                        .and_then(|p| p.parse().ok())
                        .ok_or(UriError::BadPriority)?;
                }
                b"password" if !v.is_empty() => {
                    if v.len() > MAX_PASSWORD_LEN {
                        return Err(UriError::BadPassword);
                    }
                    uri.password = v;
                }
                b"maxbackoff" if !v.is_empty() => {
                    let d = std::str::from_utf8(&v)
                        .ok()
                        .and_then(parse_go_duration)
                        .filter(|d| *d >= MIN_MAX_BACKOFF)
                        .ok_or(UriError::BadMaxBackoff)?;
                    uri.max_backoff = Some(d);
                }
                b"sni" if !v.is_empty() => {
                    uri.sni = Some(String::from_utf8_lossy(&v).into_owned());
                }
                _ => {}
            }
        }
        Ok(uri)
    }
}

impl PeerUri {
    /// `host:port` suitable for `TcpStream::connect` / `TcpListener::bind`.
    pub fn socket_addr_string(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The URI without its query (passwords are never shown).
    pub fn redacted(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Tcp => "tcp",
            Scheme::Tls => "tls",
        };
        format!("{scheme}://{}", self.socket_addr_string())
    }

    /// The URI exactly as given.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl fmt::Display for PeerUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_options() {
        let k = "c4aa114d93bb985dae3eb7766bf4c5d0a6bba1d78e4bf208a38f4c013f003b41";
        let u: PeerUri = format!("tcp://127.0.0.1:1234?key={k}&password=a%20b+c&priority=3")
            .parse()
            .unwrap();
        assert_eq!(u.scheme, Scheme::Tcp);
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, 1234);
        assert_eq!(hex::encode(u.pinned_keys[0]), k);
        assert_eq!(u.password, b"a b c");
        assert_eq!(u.priority, 3);
        assert_eq!(u.to_string(), "tcp://127.0.0.1:1234");
    }

    #[test]
    fn parses_ipv6_and_tls() {
        let u: PeerUri = "tcp://a.b:1?maxbackoff=1m30s".parse().unwrap();
        assert_eq!(u.max_backoff, Some(Duration::from_secs(90)));
        assert_eq!(
            "tcp://a.b:1?maxbackoff=10s".parse::<PeerUri>(),
            Err(UriError::BadMaxBackoff)
        );
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("2h45m"), Some(Duration::from_secs(9900)));
        assert_eq!(parse_go_duration("x"), None);
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_go_duration("5"), None);
        let u: PeerUri = "tls://[::1]:443?sni=example.org".parse().unwrap();
        assert_eq!(u.scheme, Scheme::Tls);
        assert_eq!(u.host, "::1");
        assert_eq!(u.socket_addr_string(), "[::1]:443");
        assert_eq!(u.sni.as_deref(), Some("example.org"));
    }

    #[test]
    fn rejects_bad() {
        for bad in [
            "127.0.0.1:1",
            "quic://1.2.3.4:5",
            "tcp://1.2.3.4",
            "tcp://::1:5",
            "tcp://h:99999",
            "tcp://h:1?key=zz",
            "tcp://h:1?priority=256",
            "tcp://h:1?password=%zz",
        ] {
            assert!(bad.parse::<PeerUri>().is_err(), "{bad}");
        }
        let long = format!("tcp://h:1?password={}", "a".repeat(65));
        assert_eq!(long.parse::<PeerUri>(), Err(UriError::BadPassword));
    }
}
