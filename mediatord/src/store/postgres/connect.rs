//! Connecting to PostgreSQL, in clear or over TLS, from the connection string the operator
//! wrote (`[store] url`, `mediatord migrate --to`).
//!
//! The string is libpq's, as a URL (`postgres://user@host/db?sslmode=verify-full`) or as
//! `key=value` pairs. The driver understands only part of libpq's TLS options, so mediatord
//! takes two of them out and handles them itself:
//!
//! * `sslmode`: `disable`, `allow`, `prefer` (libpq's default) or none connect in clear;
//!   `require`, `verify-ca` and `verify-full` connect over TLS and always verify the server's
//!   certificate chain **and** its host name (so `require` and `verify-ca` are as strict as
//!   `verify-full`: a certificate that is not checked protects nothing against an active
//!   attacker, and the connection carries every message).
//! * `sslrootcert`: a PEM file of the certificate authorities to trust, or `system` (the
//!   default) for the system's store (`/etc/ssl/certs` on Debian).
//!
//! Client certificates (`sslcert`, `sslkey`) are not supported; the driver refuses them as
//! unknown options.

use crate::store::StoreError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Where the trusted certificate authorities come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// The system's store.
    System,
    /// A PEM file.
    File(PathBuf),
}

/// A parsed connection string: the driver's configuration and, when TLS is asked for, the
/// authorities to verify the server with.
#[derive(Clone)]
pub struct ConnString {
    pub config: tokio_postgres::Config,
    pub tls: Option<Roots>,
}

impl std::fmt::Debug for ConnString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The driver's Debug hides the password.
        f.debug_struct("ConnString")
            .field("config", &self.config)
            .field("tls", &self.tls)
            .finish()
    }
}

fn bad(what: String) -> StoreError {
    StoreError::Postgres(what)
}

/// Decodes `%XX` escapes (a URL's query value).
fn percent_decode(s: &str) -> Result<String, StoreError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad(format!("a bad %-escape in {s:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad(format!("{s:?} is not UTF-8 once decoded")))
}

/// Takes `sslmode` and `sslrootcert` out of `s`; returns the rest and their values.
fn take_tls_options(s: &str) -> Result<(String, Option<String>, Option<String>), StoreError> {
    let (mut mode, mut root) = (None, None);
    let is_url = s.starts_with("postgres://") || s.starts_with("postgresql://");
    if is_url {
        let Some((base, query)) = s.split_once('?') else {
            return Ok((s.to_owned(), None, None));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", v)) => mode = Some(percent_decode(v)?),
                Some(("sslrootcert", v)) => root = Some(percent_decode(v)?),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, mode, root));
    }
    let mut kept = Vec::new();
    for word in s.split_whitespace() {
        match word.split_once('=') {
            Some(("sslmode", v)) => mode = Some(v.to_owned()),
            Some(("sslrootcert", v)) => root = Some(v.to_owned()),
            _ => kept.push(word),
        }
    }
    if (mode.is_some() || root.is_some()) && s.contains('\'') {
        return Err(bad(
            "a key=value connection string with quoted values and sslmode or sslrootcert: \
             write it as a postgres:// URL"
                .into(),
        ));
    }
    Ok((kept.join(" "), mode, root))
}

impl ConnString {
    /// Parses `s` (see the module docs). Checks the options, not the files they name.
    pub fn parse(s: &str) -> Result<ConnString, StoreError> {
        let (rest, mode, root) = take_tls_options(s)?;
        let tls = match mode.as_deref() {
            None | Some("disable" | "allow" | "prefer") => false,
            Some("require" | "verify-ca" | "verify-full") => true,
            Some(other) => {
                return Err(bad(format!(
                    "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, \
                     verify-full"
                )))
            }
        };
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e| bad(format!("not a PostgreSQL connection string: {e}")))?;
        let roots = match root.as_deref() {
            _ if !tls && root.is_some() => {
                return Err(bad(
                    "sslrootcert is set but sslmode does not ask for TLS (use verify-full)".into(),
                ))
            }
            None | Some("system") => Roots::System,
            Some(path) => Roots::File(PathBuf::from(path)),
        };
        config.ssl_mode(if tls {
            SslMode::Require
        } else {
            SslMode::Disable
        });
        Ok(ConnString {
            config,
            tls: tls.then_some(roots),
        })
    }

    /// The TLS connector for this string (reading the authorities' file or the system's
    /// store now); `None` for a connection in clear.
    pub fn connector(&self) -> Result<Option<MakeRustlsConnect>, StoreError> {
        let Some(roots) = &self.tls else {
            return Ok(None);
        };
        let mut store = rustls::RootCertStore::empty();
        let certs: Vec<CertificateDer<'static>> = match roots {
            Roots::System => {
                let found = rustls_native_certs::load_native_certs();
                if found.certs.is_empty() {
                    return Err(bad(format!(
                        "sslmode asks for TLS but the system has no certificate authorities \
                         ({:?}); name a file with sslrootcert",
                        found.errors
                    )));
                }
                found.certs
            }
            Roots::File(path) => CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| bad(format!("sslrootcert {}: {e}", path.display())))?,
        };
        let (added, _ignored) = store.add_parsable_certificates(certs);
        if added == 0 {
            return Err(bad(match roots {
                Roots::File(p) => format!("sslrootcert {}: no certificate in it", p.display()),
                Roots::System => "no usable certificate authority in the system's store".into(),
            }));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(format!("TLS: {e}")))?
            .with_root_certificates(store)
            .with_no_client_auth();
        Ok(Some(MakeRustlsConnect::new(config)))
    }

    /// Whether the connection is encrypted.
    pub fn encrypted(&self) -> bool {
        self.tls.is_some()
    }

    /// The hosts this string reaches over a network in clear (not over TLS, not on this
    /// machine: a Unix socket, `localhost` or a loopback address), for a warning.
    pub fn in_clear_over_network(&self) -> Vec<String> {
        if self.encrypted() {
            return Vec::new();
        }
        self.config
            .get_hosts()
            .iter()
            .filter_map(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => {
                    let local = name == "localhost"
                        || name
                            .parse::<std::net::IpAddr>()
                            .is_ok_and(|ip| ip.is_loopback());
                    (!local).then(|| name.clone())
                }
                tokio_postgres::config::Host::Unix(_) => None,
            })
            .collect()
    }

    /// Connects a blocking client (on a thread that is not the daemon runtime's) with `tls`,
    /// this string's [`ConnString::connector`] (made once for several connections).
    pub fn connect_blocking(
        &self,
        tls: &Option<MakeRustlsConnect>,
    ) -> Result<postgres::Client, StoreError> {
        let config = postgres::Config::from(self.config.clone());
        Ok(match tls {
            Some(tls) => config.connect(tls.clone())?,
            None => config.connect(tokio_postgres::NoTls)?,
        })
    }

    /// Connects an asynchronous client; its connection runs on a task of the runtime.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, StoreError> {
        let client = match self.connector()? {
            Some(tls) => {
                let (client, conn) = self.config.connect(tls).await?;
                tokio::spawn(conn);
                client
            }
            None => {
                let (client, conn) = self.config.connect(tokio_postgres::NoTls).await?;
                tokio::spawn(conn);
                client
            }
        };
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_options_are_taken_out_of_urls_and_pairs() {
        let c = ConnString::parse(
            "postgres://u@db.example:5433/m?application_name=x&sslmode=verify-full\
             &sslrootcert=%2Fetc%2Fca%20file.pem",
        )
        .unwrap();
        assert_eq!(c.tls, Some(Roots::File("/etc/ca file.pem".into())));
        assert_eq!(c.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(c.config.get_application_name(), Some("x"));
        assert_eq!(c.config.get_dbname(), Some("m"));

        let c = ConnString::parse("host=db.example dbname=m sslmode=require").unwrap();
        assert_eq!(c.tls, Some(Roots::System));
        let c = ConnString::parse("postgres://u@h/m?sslmode=verify-ca&sslrootcert=system").unwrap();
        assert_eq!(c.tls, Some(Roots::System));

        // In clear: libpq's default and the modes that allow it.
        for s in [
            "postgres://u@h/m",
            "postgres://u@h/m?sslmode=prefer",
            "postgres://u@h/m?sslmode=disable",
            "host=h sslmode=allow",
        ] {
            let c = ConnString::parse(s).unwrap();
            assert_eq!(c.tls, None, "{s}");
            assert_eq!(c.config.get_ssl_mode(), SslMode::Disable, "{s}");
        }
    }

    #[test]
    fn contradictions_and_unknown_modes_are_refused() {
        for (s, says) in [
            ("postgres://u@h/m?sslmode=sometimes", "sslmode=sometimes"),
            ("postgres://u@h/m?sslrootcert=/ca.pem", "sslrootcert is set"),
            (
                "host=h sslmode=require password='a b'",
                "write it as a postgres:// URL",
            ),
            ("postgres://u@h/m?sslmode=%zz", "%-escape"),
            (
                "postgres://u@h/m?sslcert=/c.pem&sslmode=require",
                "not a PostgreSQL",
            ),
        ] {
            let e = ConnString::parse(s).unwrap_err().to_string();
            assert!(e.contains(says), "{s}: {e}");
        }
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let c = ConnString::parse(&format!(
            "postgres://u@h/m?sslmode=verify-full&sslrootcert={}",
            path.display()
        ))
        .unwrap();
        let e = c.connector().err().unwrap().to_string();
        assert!(e.contains("no certificate in it"), "{e}");
        let c = ConnString::parse(
            "postgres://u@h/m?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        )
        .unwrap();
        let e = c.connector().err().unwrap().to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn hosts_reached_in_clear_are_named() {
        let hosts = |s: &str| ConnString::parse(s).unwrap().in_clear_over_network();
        assert_eq!(
            hosts("host=db.example,127.0.0.1,localhost,::1,/run/postgresql"),
            ["db.example"]
        );
        assert!(hosts("postgres://u@db.example/m?sslmode=verify-full").is_empty());
        assert_eq!(hosts("postgres://u@10.0.0.5/m"), ["10.0.0.5"]);
    }
}
