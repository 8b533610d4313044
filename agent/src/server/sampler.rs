//! The background sampler: one task reads sysfs every interval and publishes the latest
//! per-device rates. Every RPC and the metrics read what it published; nothing else reads
//! sysfs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::aliases;
use crate::metrics::AgentMetrics;
use crate::report::{self, DeviceReport};
use crate::sysfs::{Sample, Sysfs};

/// Rates of every device over one sampling interval.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Unix time (milliseconds) of the second of the two readings.
    pub timestamp_ms: i64,
    /// Time between the two readings, milliseconds.
    pub interval_ms: u64,
    /// One report per device, sorted by name.
    pub devices: Vec<DeviceReport>,
    /// Monotonic time of the second reading.
    pub taken_at: Instant,
    /// Stable `/dev/disk/by-*` names of each device, by kernel name.
    pub aliases: BTreeMap<String, Vec<String>>,
}

/// What the sampler has published so far.
#[derive(Debug, Clone, Default)]
pub struct SamplerState {
    /// The latest snapshot; `None` until one interval has passed.
    pub latest: Option<Arc<Snapshot>>,
    /// The error of the latest reading, `None` when it succeeded.
    pub last_error: Option<String>,
}

/// Handle on the background sampler. Cloning shares the same sampler; the task stops when
/// the last handle is dropped.
#[derive(Debug, Clone)]
pub struct Sampler {
    state: watch::Receiver<SamplerState>,
    interval: Duration,
}

impl Sampler {
    /// Starts sampling `tree` (and the device aliases under `dev_root`) every `interval` on
    /// the current tokio runtime, recording each snapshot in `metrics`.
    pub fn spawn(
        tree: Sysfs,
        dev_root: PathBuf,
        interval: Duration,
        metrics: Arc<AgentMetrics>,
    ) -> Self {
        let (tx, rx) = watch::channel(SamplerState::default());
        tokio::spawn(run(tree, dev_root, interval, tx, metrics));
        Self {
            state: rx,
            interval,
        }
    }

    /// The sampling interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// What the sampler has published so far.
    pub fn state(&self) -> SamplerState {
        self.state.borrow().clone()
    }

    /// A receiver notified at every reading.
    pub fn subscribe(&self) -> watch::Receiver<SamplerState> {
        self.state.clone()
    }

    /// The latest snapshot, waiting for the first one if needed. `None` when the sampler
    /// task is gone.
    pub async fn latest(state: &mut watch::Receiver<SamplerState>) -> Option<Arc<Snapshot>> {
        loop {
            let latest = state.borrow_and_update().latest.clone();
            if latest.is_some() {
                return latest;
            }
            state.changed().await.ok()?;
        }
    }
}

async fn run(
    tree: Sysfs,
    dev_root: PathBuf,
    interval: Duration,
    tx: watch::Sender<SamplerState>,
    metrics: Arc<AgentMetrics>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut previous: Option<Sample> = None;
    while !tx.is_closed() {
        ticker.tick().await;
        let (reader, dev) = (tree.clone(), dev_root.clone());
        let reading = match tokio::task::spawn_blocking(move || {
            let sample = reader.sample()?;
            let names: Vec<&str> = sample
                .devices
                .iter()
                .map(|d| d.info.name.as_str())
                .collect();
            let aliases = aliases::scan(&dev, &reader, &names);
            Ok::<_, crate::sysfs::Error>((sample, aliases))
        })
        .await
        {
            Ok(Ok(sample)) => Ok(sample),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("sysfs reader task failed: {e}")),
        };
        match reading {
            Ok((current, aliases)) => {
                let snapshot = previous.as_ref().map(|prev| build(prev, &current, aliases));
                if let Some(snapshot) = &snapshot {
                    metrics.observe(snapshot);
                }
                tx.send_modify(|state| {
                    state.last_error = None;
                    if let Some(snapshot) = snapshot {
                        state.latest = Some(Arc::new(snapshot));
                    }
                });
                previous = Some(current);
            }
            Err(error) => {
                tracing::warn!(root = %tree.root().display(), "sampling sysfs failed: {error}");
                metrics.sample_failed();
                // Keep the previous reading: the next good one gives rates over the
                // longer span.
                tx.send_modify(|state| state.last_error = Some(error));
            }
        }
    }
}

fn build(previous: &Sample, current: &Sample, aliases: BTreeMap<String, Vec<String>>) -> Snapshot {
    let elapsed = current.taken_at.duration_since(previous.taken_at);
    let timestamp_ms = current
        .wall_clock
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Snapshot {
        timestamp_ms,
        interval_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        devices: report::build(previous, current, elapsed),
        taken_at: current.taken_at,
        aliases,
    }
}
