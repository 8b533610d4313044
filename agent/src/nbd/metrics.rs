//! Prometheus metrics of `nbd serve`, served on `GET /metrics` when `--metrics-addr` is given.
//!
//! | metric | type | labels |
//! |--------|------|--------|
//! | `couchestor_agent_nbd_connections` | gauge: open client connections | |
//! | `couchestor_agent_nbd_connections_total` | counter: connections accepted | |
//! | `couchestor_agent_nbd_read_bytes_total` | counter: bytes sent in read replies | |
//! | `couchestor_agent_ec_degraded_reads_total` | counter: stripes read that rebuilt a missing or corrupt block (same meaning as in `serve`, see `crate::metrics`) | |
//! | `couchestor_agent_ec_shards_missing` | gauge: shard files missing when the archive was opened | archive |

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus::{Encoder, IntCounter, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

/// The metrics of one NBD export.
#[derive(Debug)]
pub struct NbdMetrics {
    registry: Registry,
    connections: IntGauge,
    connections_total: IntCounter,
    read_bytes: IntCounter,
    degraded_reads: IntCounter,
    /// Highest degraded-read count the source reported; the counter follows it.
    degraded_seen: AtomicU64,
    shards_missing: IntGaugeVec,
}

impl NbdMetrics {
    /// Registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let connections = IntGauge::new(
            "couchestor_agent_nbd_connections",
            "Open NBD client connections.",
        )?;
        let connections_total = IntCounter::new(
            "couchestor_agent_nbd_connections_total",
            "NBD client connections accepted.",
        )?;
        let read_bytes = IntCounter::new(
            "couchestor_agent_nbd_read_bytes_total",
            "Bytes sent to NBD clients in read replies.",
        )?;
        let degraded_reads = IntCounter::new(
            "couchestor_agent_ec_degraded_reads_total",
            crate::metrics::DEGRADED_READS_HELP,
        )?;
        let shards_missing = IntGaugeVec::new(
            Opts::new(
                "couchestor_agent_ec_shards_missing",
                "Shard files of the archive missing when it was opened.",
            ),
            &["archive"],
        )?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(connections_total.clone()))?;
        registry.register(Box::new(read_bytes.clone()))?;
        registry.register(Box::new(degraded_reads.clone()))?;
        registry.register(Box::new(shards_missing.clone()))?;
        Ok(Self {
            registry,
            connections,
            connections_total,
            read_bytes,
            degraded_reads,
            degraded_seen: AtomicU64::new(0),
            shards_missing,
        })
    }

    /// A connection was accepted.
    pub fn connection_opened(&self) {
        self.connections.inc();
        self.connections_total.inc();
    }

    /// A connection ended.
    pub fn connection_closed(&self) {
        self.connections.dec();
    }

    /// `bytes` were sent in a read reply.
    pub fn read_bytes(&self, bytes: u64) {
        self.read_bytes.inc_by(bytes);
    }

    /// The source has now seen `total` degraded reads (monotonic; concurrent callers with
    /// stale totals do not count twice).
    pub fn observe_degraded(&self, total: u64) {
        let before = self.degraded_seen.fetch_max(total, Ordering::Relaxed);
        if total > before {
            self.degraded_reads.inc_by(total - before);
        }
    }

    /// Records how many shards of `archive` were missing when it was opened.
    pub fn set_shards_missing(&self, archive: &str, missing: usize) {
        self.shards_missing
            .with_label_values(&[archive])
            .set(missing as i64);
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut text = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut text)?;
        String::from_utf8(text).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

impl crate::metrics::Exposition for NbdMetrics {
    fn render(&self) -> Result<String, prometheus::Error> {
        NbdMetrics::render(self)
    }
}

/// Serves `GET /metrics` on `listener` (plain HTTP/1.1) until `shutdown` completes.
pub use crate::metrics::serve;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degraded_reads_follow_the_highest_total() {
        let m = NbdMetrics::new().unwrap();
        m.observe_degraded(3);
        m.observe_degraded(2);
        m.observe_degraded(5);
        m.set_shards_missing("vol", 2);
        let text = m.render().unwrap();
        assert!(
            text.contains("couchestor_agent_ec_degraded_reads_total 5"),
            "{text}"
        );
        assert!(
            text.contains("couchestor_agent_ec_shards_missing{archive=\"vol\"} 2"),
            "{text}"
        );
    }
}
