//! What the daemon is doing, as numbers for Prometheus: the instruments the session code
//! bumps as it goes ([`Instruments`]: commands by code and result with their latency,
//! sessions and connections opened), and a [`Live`] collector that reads the rest at scrape
//! time from where it already lives (the hub's sessions and subscriptions, the limit and
//! authentication counters of [`crate::events`], the sessions' traffic, the store's commit
//! histograms, queue and file sizes, the Yggdrasil node's peers). Nothing is counted twice and
//! nothing here costs more than an atomic add or one short lock on the command path.
//!
//! [`registry`] puts both together; [`http::serve`] answers `GET /metrics` with it when
//! `[metrics] listen` is set. Metric names start with `mediatord_`; the operator guide lists
//! them with the PromQL of the panels an operator needs.

pub mod http;

use crate::events;
use crate::peer::Transport;
use crate::server::Server;
use mediator_wire::frame::Status;
use mediator_wire::Command;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// One label and its value.
type Label = (&'static str, &'static str);

/// Smallest bucket of the command latency histogram, in seconds; each next bucket is twice
/// as large, [`COMMAND_BUCKETS`] buckets in all (25 µs to about 1.6 s).
pub const COMMAND_BUCKET_START: f64 = 25e-6;
/// Buckets of the command latency histogram.
pub const COMMAND_BUCKETS: u16 = 17;

fn command_histogram() -> Histogram {
    Histogram::new(exponential_buckets(
        COMMAND_BUCKET_START,
        2.0,
        COMMAND_BUCKETS,
    ))
}

/// The instruments bumped on the session path. Cheap to clone (every field is shared).
#[derive(Debug, Clone)]
pub struct Instruments {
    /// Requests answered, by command and result ("ok" or "error").
    commands: Family<[Label; 2], Counter>,
    /// Time from a request's last byte to its answer being queued, by command.
    command_seconds: Family<[Label; 1], Histogram>,
    /// Sessions admitted, by transport.
    sessions_opened: Family<[Label; 1], Counter>,
    /// QUIC connections accepted (before their handshake), by transport.
    connections_opened: Family<[Label; 1], Counter>,
    /// QUIC connections open now, by transport.
    connections: Family<[Label; 1], Gauge>,
}

impl Default for Instruments {
    fn default() -> Self {
        Instruments {
            commands: Family::default(),
            command_seconds: Family::new_with_constructor(command_histogram),
            sessions_opened: Family::default(),
            connections_opened: Family::default(),
            connections: Family::default(),
        }
    }
}

/// An open connection, counted in `mediatord_connections` until dropped.
pub struct ConnectionGuard {
    gauge: Gauge,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl Instruments {
    /// A request for `cmd` answered with `answer` (a whole response frame) after `took`.
    pub fn command(&self, cmd: Command, answer: &[u8], took: Duration) {
        let result = if answer.first() == Some(&(Status::Err as u8)) {
            "error"
        } else {
            "ok"
        };
        self.commands
            .get_or_create(&[("command", cmd.name()), ("result", result)])
            .inc();
        self.command_seconds
            .get_or_create(&[("command", cmd.name())])
            .observe(took.as_secs_f64());
    }

    /// A session admitted over `transport`.
    pub fn session_opened(&self, transport: Transport) {
        self.sessions_opened
            .get_or_create(&[("transport", transport.name())])
            .inc();
    }

    /// A connection accepted over `transport`; it counts as open until the guard drops.
    pub fn connection_opened(&self, transport: Transport) -> ConnectionGuard {
        let label = [("transport", transport.name())];
        self.connections_opened.get_or_create(&label).inc();
        let gauge = self.connections.get_or_create_owned(&label);
        gauge.inc();
        ConnectionGuard { gauge }
    }
}

/// The registry `/metrics` encodes: the instruments, the store's histograms and the live
/// collector.
pub fn registry(server: Arc<Server>, node: Option<Arc<yggnode::Node>>) -> Registry {
    let mut r = Registry::with_prefix("mediatord");
    let i = &server.metrics;
    r.register(
        "commands",
        "Requests answered, by command and result (ok or error)",
        i.commands.clone(),
    );
    r.register_with_unit(
        "command_duration",
        "Time from a request's last byte to its answer being queued",
        Unit::Seconds,
        i.command_seconds.clone(),
    );
    r.register(
        "sessions_opened",
        "Sessions admitted, by transport",
        i.sessions_opened.clone(),
    );
    r.register(
        "connections_opened",
        "QUIC connections accepted, by transport",
        i.connections_opened.clone(),
    );
    r.register(
        "connections",
        "QUIC connections open, by transport",
        i.connections.clone(),
    );
    let g = server.store.writer_gauge();
    r.register(
        "store_batch_commands",
        "Commands per group commit",
        g.batch_jobs.clone(),
    );
    r.register_with_unit(
        "store_batch_duration",
        "Time of a group commit from BEGIN to the end of COMMIT",
        Unit::Seconds,
        g.batch_seconds.clone(),
    );
    r.register_with_unit(
        "store_commit_duration",
        "Time of COMMIT alone: the WAL write and its fsync",
        Unit::Seconds,
        g.commit_seconds.clone(),
    );
    r.register(
        "build",
        "The daemon's version",
        Info::new([("version", env!("CARGO_PKG_VERSION"))]),
    );
    r.register(
        "role",
        "What this daemon is in its group (standalone, or active holding the PostgreSQL lease) and where its data lives",
        Info::new([
            ("role", server.store.role().as_str()),
            ("store", server.store.backend()),
        ]),
    );
    r.register_collector(Box::new(Live { server, node }));
    r
}

/// Reads, at each scrape, what other parts of the daemon already keep.
pub struct Live {
    server: Arc<Server>,
    node: Option<Arc<yggnode::Node>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("node", &self.node.is_some())
            .finish_non_exhaustive()
    }
}

/// Encodes one unlabelled metric.
fn one(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: &impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    metric.encode(e.encode_descriptor(name, help, unit, metric.metric_type())?)
}

/// Encodes a family of gauges or counters from (labels, value) pairs.
fn family(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: &[(Vec<Label>, u64)],
) -> Result<(), std::fmt::Error> {
    let mut m = e.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in rows {
        let f = m.encode_family(labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(*v).encode(f)?,
            _ => ConstGauge::new(*v as i64).encode(f)?,
        }
    }
    Ok(())
}

impl Collector for Live {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.server;
        let census = s.hub.census();
        let mut sessions = Vec::new();
        for t in Transport::ALL {
            for (authed, state) in [(true, "authenticated"), (false, "guest")] {
                let n = census.get(&(t, authed)).copied().unwrap_or(0);
                sessions.push((vec![("transport", t.name()), ("state", state)], n as u64));
            }
        }
        family(
            &mut e,
            "sessions",
            "Sessions open, by transport and state.",
            MetricType::Gauge,
            &sessions,
        )?;
        let subs = ConstGauge::new(s.hub.subscription_total() as i64);
        one(
            &mut e,
            "subscriptions",
            "Chat subscriptions of all sessions.",
            None,
            &subs,
        )?;
        let counters = events::counters();
        let hits: Vec<(Vec<Label>, u64)> = counters
            .iter()
            .map(|(kind, n)| (vec![("kind", *kind)], *n))
            .collect();
        family(
            &mut e,
            "limit_hits",
            "Limits hit and authentications failed, by kind.",
            MetricType::Counter,
            &hits,
        )?;
        let slow = counters
            .iter()
            .find(|(k, _)| *k == events::Event::SlowConsumer.name())
            .map_or(0, |(_, n)| *n);
        one(
            &mut e,
            "slow_consumer_disconnects",
            "Sessions disconnected because they did not read their pushes.",
            None,
            &ConstCounter::new(slow),
        )?;
        let t = &s.hub.budget.traffic;
        one(
            &mut e,
            "pushes",
            "Pushes queued for sessions.",
            None,
            &ConstCounter::new(t.pushes.load(Relaxed)),
        )?;
        one(
            &mut e,
            "pushes_dropped",
            "Pushes a full session queue could not take (the session is disconnected).",
            None,
            &ConstCounter::new(t.pushes_dropped.load(Relaxed)),
        )?;
        let bytes = [
            (vec![("direction", "in")], t.bytes_in.load(Relaxed)),
            (vec![("direction", "out")], t.bytes_out.load(Relaxed)),
        ];
        family(
            &mut e,
            "session_bytes",
            "Protocol bytes read from and written to sessions.",
            MetricType::Counter,
            &bytes,
        )?;
        one(
            &mut e,
            "queued_bytes",
            "Bytes waiting in all session queues.",
            None,
            &ConstGauge::new(s.hub.budget.queued() as i64),
        )?;
        let writer = s.store.writer_state();
        one(
            &mut e,
            "store_queue_jobs",
            "Write jobs waiting for the database writer.",
            None,
            &ConstGauge::new(writer.queued as i64),
        )?;
        let (db, wal) = s.store.file_bytes();
        one(
            &mut e,
            "store_database_bytes",
            "Size of the SQLite database file; on PostgreSQL, pg_database_size as of the janitor's last pass.",
            None,
            &ConstGauge::new(db as i64),
        )?;
        one(
            &mut e,
            "store_wal_bytes",
            "Size of the SQLite write-ahead log (0 on PostgreSQL).",
            None,
            &ConstGauge::new(wal as i64),
        )?;
        let started = s
            .started
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        one(
            &mut e,
            "start_time_seconds",
            "When the daemon started, in Unix seconds.",
            None,
            &ConstGauge::new(started as i64),
        )?;
        if let Some(stream) = s.stream.get() {
            one(
                &mut e,
                "ygg_stream_connections",
                "ygg_stream connections in the table, half-open and closing ones included.",
                None,
                &ConstGauge::new(stream.connections() as i64),
            )?;
            one(
                &mut e,
                "ygg_stream_buffered_bytes",
                "Bytes all ygg_stream connections hold (received and not read, written and not acknowledged).",
                None,
                &ConstGauge::new(stream.buffered() as i64),
            )?;
        }
        if let Some(node) = &self.node {
            one(
                &mut e,
                "yggdrasil_peers_up",
                "Yggdrasil peers connected.",
                None,
                &ConstGauge::new(node.peers().len() as i64),
            )?;
        }
        Ok(())
    }
}
