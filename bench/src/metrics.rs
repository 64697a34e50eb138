//! Lock-free counters and latency histograms shared by every load task.
//!
//! Latencies are recorded in microseconds into a log-linear histogram of atomic buckets:
//! exact below [`LINEAR_LIMIT_US`] µs, then [`SUB_BUCKETS`] buckets per power of two (about
//! 1.6 % resolution), so millions of samples cost no memory and any task can record without a
//! lock. The maximum is tracked exactly.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Values below this many microseconds get one bucket each.
pub const LINEAR_LIMIT_US: u64 = 128;
/// Buckets per power of two above [`LINEAR_LIMIT_US`].
pub const SUB_BUCKETS: u64 = 64;
/// Powers of two covered above the linear range (up to 2^48 µs, far beyond any run).
const OCTAVES: u64 = 42;
const BUCKETS: usize = (LINEAR_LIMIT_US + OCTAVES * SUB_BUCKETS) as usize;

/// An atomic log-linear histogram of microsecond values.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }
}

fn index_of(v: u64) -> usize {
    if v < LINEAR_LIMIT_US {
        return v as usize;
    }
    let e = 63 - u64::from(v.leading_zeros()); // >= 7
    let shift = e - 6;
    let idx = LINEAR_LIMIT_US + (e - 7) * SUB_BUCKETS + ((v >> shift) - SUB_BUCKETS);
    (idx as usize).min(BUCKETS - 1)
}

/// The upper edge of bucket `i` (a conservative value for percentiles).
fn value_of(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR_LIMIT_US {
        return i;
    }
    let e = (i - LINEAR_LIMIT_US) / SUB_BUCKETS + 7;
    let m = (i - LINEAR_LIMIT_US) % SUB_BUCKETS + SUB_BUCKETS;
    ((m + 1) << (e - 6)) - 1
}

/// Percentiles of a histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Histogram {
    /// Records one value in microseconds.
    pub fn record(&self, us: u64) {
        self.buckets[index_of(us)].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.max.fetch_max(us, Relaxed);
    }

    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// Clears every bucket (between phases).
    pub fn reset(&self) {
        for b in self.buckets.iter() {
            b.store(0, Relaxed);
        }
        self.count.store(0, Relaxed);
        self.max.store(0, Relaxed);
    }

    /// The value (µs) at or below which a fraction `q` of the samples fall.
    pub fn quantile_us(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return value_of(i).min(self.max.load(Relaxed));
            }
        }
        self.max.load(Relaxed)
    }

    /// p50, p99, p99.9 and max in milliseconds.
    pub fn percentiles(&self) -> Percentiles {
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: self.count(),
            p50_ms: ms(self.quantile_us(0.50)),
            p99_ms: ms(self.quantile_us(0.99)),
            p999_ms: ms(self.quantile_us(0.999)),
            max_ms: ms(self.max.load(Relaxed)),
        }
    }
}

/// Everything the load tasks count.
#[derive(Default)]
pub struct Metrics {
    /// SEND_MESSAGE frames written.
    pub sent: AtomicU64,
    /// SEND_MESSAGE answered OK.
    pub acked: AtomicU64,
    /// GOT_MESSAGE pushes carrying a benchmark blob.
    pub pushes: AtomicU64,
    /// Pushes we expect from the acknowledged messages (subscribers other than the sender).
    pub expected_pushes: AtomicU64,
    /// Other pushes (system messages, online events, member-info requests).
    pub other_pushes: AtomicU64,
    /// Error responses, protocol surprises and failed requests.
    pub errors: AtomicU64,
    /// Sessions that ended while the run was still going.
    pub disconnects: AtomicU64,
    /// send → ack latency.
    pub ack_latency: Histogram,
    /// send → push latency, one sample per receiving session.
    pub push_latency: Histogram,
    /// The first error text, for the report.
    pub first_error: Mutex<Option<String>>,
}

impl Metrics {
    /// Counts an error and keeps its text if it is the first.
    pub fn error(&self, text: impl Into<String>) {
        self.errors.fetch_add(1, Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(text.into());
        }
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> Counters {
        Counters {
            sent: self.sent.load(Relaxed),
            acked: self.acked.load(Relaxed),
            pushes: self.pushes.load(Relaxed),
            errors: self.errors.load(Relaxed),
            disconnects: self.disconnects.load(Relaxed),
        }
    }
}

/// A point-in-time copy of the counters of [`Metrics`].
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counters {
    pub sent: u64,
    pub acked: u64,
    pub pushes: u64,
    pub errors: u64,
    pub disconnects: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_trip_within_two_percent() {
        for v in [0u64, 1, 127, 128, 129, 1000, 65_432, 1 << 30] {
            let i = index_of(v);
            let hi = value_of(i);
            assert!(hi >= v, "{v} -> {hi}");
            assert!(hi as f64 <= v as f64 * 1.02 + 1.0, "{v} -> {hi}");
        }
    }

    #[test]
    fn quantiles() {
        let h = Histogram::default();
        for v in 1..=1000 {
            h.record(v);
        }
        assert!((500..=510).contains(&h.quantile_us(0.5)));
        assert!(h.quantile_us(0.99) >= 990);
        assert_eq!(h.percentiles().max_ms, 1.0);
    }
}
