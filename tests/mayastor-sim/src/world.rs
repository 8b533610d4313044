//! The simulated cluster: nodes, pools, volumes and their replicas.
//!
//! The whole world is plain serde data, so `/sim/state` can dump it and `--state FILE.json` can
//! load it. Runtime views (replica health, child states, rebuild progress) are derived from it
//! at read time by [`crate::view`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::IdSource;
use crate::profile::Profile;
pub use crate::topology::{
    ExplicitNodeTopology, LabelledTopology, NodeTopology, PoolTopology, Topology, qualifies,
};

/// Labels, ordered for stable output.
pub type Labels = BTreeMap<String, String>;

/// Default rebuild speed (MiB/s): fast enough that tests finish in seconds.
pub const DEFAULT_REBUILD_MIB_PER_SEC: f64 = 1024.0;

/// Everything the simulator knows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct World {
    /// Emulated release.
    pub profile: Profile,
    /// Rebuild speed in MiB per second of the simulator's clock (wall or virtual).
    #[serde(default = "default_rate")]
    pub rebuild_mib_per_sec: f64,
    /// If set, the next rebuild that starts fails when it reaches this percentage.
    #[serde(default)]
    pub fail_next_rebuild_at: Option<u8>,
    /// Fault: placement ignores node and pool cordons (a control plane that does not honour
    /// them), so a steered replica can land outside the intended pools.
    #[serde(default)]
    pub ignore_cordons: bool,
    /// io-engine nodes by id.
    #[serde(default)]
    pub nodes: BTreeMap<String, SimNode>,
    /// Pools by id.
    #[serde(default)]
    pub pools: BTreeMap<String, SimPool>,
    /// Volumes by UUID.
    #[serde(default)]
    pub volumes: BTreeMap<String, SimVolume>,
    /// Audit log of every replica removed by a scale-down, for data-safety assertions
    /// (not part of Mayastor; visible in `GET /sim/state`).
    #[serde(default)]
    pub removals: Vec<RemovalRecord>,
    /// Source of new UUIDs: random unless the embedder (or `--id-seed`) seeds it. Not part
    /// of a dump: a loaded world draws random UUIDs until seeded.
    #[serde(skip)]
    pub ids: IdSource,
}

/// One replica removed by `replica_count` going down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovalRecord {
    /// Volume UUID.
    pub volume: String,
    /// Removed replica UUID.
    pub replica: String,
    /// Its pool.
    pub pool: String,
    /// Whether the removed replica was healthy (in sync and reachable).
    pub was_healthy: bool,
    /// Healthy replicas of the volume just before the removal.
    pub healthy_before: usize,
    /// Healthy replicas just after.
    pub healthy_after: usize,
    /// Milliseconds since the epoch, by the simulator's clock (see [`crate::clock`]).
    pub at_ms: u64,
}

fn default_rate() -> f64 {
    DEFAULT_REBUILD_MIB_PER_SEC
}

/// Reachability of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeStatus {
    /// Reachable.
    Online,
    /// Unreachable: its pools lose their state and its replicas become `Unknown`.
    Offline,
}

/// An io-engine node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimNode {
    /// Node id.
    pub id: String,
    /// Address used for the gRPC endpoint and NVMe-oF URIs (never contacted).
    pub ip: String,
    /// Reachability.
    pub status: NodeStatus,
    /// Mayastor node labels.
    #[serde(default)]
    pub labels: Labels,
    /// Cordon labels; the node is cordoned while any is present.
    #[serde(default)]
    pub cordon_labels: Vec<String>,
}

/// Health of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PoolStatus {
    /// Healthy.
    Online,
    /// Degraded but usable.
    Degraded,
    /// Failed: not usable; its replicas are faulted.
    Faulted,
    /// Unknown: not usable; its replicas are unknown.
    Unknown,
}

impl PoolStatus {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "Online",
            Self::Degraded => "Degraded",
            Self::Faulted => "Faulted",
            Self::Unknown => "Unknown",
        }
    }

    /// Usable for placement (upstream: not Faulted/Unknown).
    pub fn usable(self) -> bool {
        matches!(self, Self::Online | Self::Degraded)
    }
}

/// Pool cordon flags (`PoolCordonReq`, ≥ 2.10).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "PoolCordonWire")]
pub struct PoolCordon {
    /// No new replicas.
    #[serde(default)]
    pub replicas: bool,
    /// No new snapshots.
    #[serde(default)]
    pub snapshots: bool,
    /// No restores.
    #[serde(default)]
    pub restores: bool,
    /// No import (accepted as `import` or `imports`, see [`PoolCordonWire`]).
    #[serde(default)]
    pub import: bool,
}

/// `PoolCordonReq` as received. The import flag is `import` in the upstream handler code and
/// `imports` in the design document; clients may send either or both, so both are read.
#[derive(Debug, Deserialize)]
struct PoolCordonWire {
    #[serde(default)]
    replicas: bool,
    #[serde(default)]
    snapshots: bool,
    #[serde(default)]
    restores: bool,
    #[serde(default)]
    import: bool,
    #[serde(default)]
    imports: bool,
}

impl From<PoolCordonWire> for PoolCordon {
    fn from(wire: PoolCordonWire) -> Self {
        Self {
            replicas: wire.replicas,
            snapshots: wire.snapshots,
            restores: wire.restores,
            import: wire.import || wire.imports,
        }
    }
}

impl PoolCordon {
    /// Any flag set.
    pub fn any(self) -> bool {
        self.replicas || self.snapshots || self.restores || self.import
    }
}

/// A disk pool.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimPool {
    /// Pool id.
    pub id: String,
    /// Node it lives on.
    pub node: String,
    /// Claimed disk.
    pub disk: String,
    /// Pool UUID (appears in the state's disk URI).
    pub uuid: String,
    /// Capacity in bytes.
    pub capacity: u64,
    /// Bytes used by things other than simulated replicas.
    #[serde(default)]
    pub base_used: u64,
    /// Health.
    pub status: PoolStatus,
    /// Current labels (the ones placement reads).
    #[serde(default)]
    pub labels: Labels,
    /// Cordon flags (only honoured by the 2.10 profile).
    #[serde(default)]
    pub cordon: PoolCordon,
}

/// A published volume's target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimTarget {
    /// Node hosting the nexus.
    pub node: String,
    /// Nexus UUID.
    pub nexus_uuid: String,
}

/// Stored condition of a replica (runtime faults of its node/pool are applied on top).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "condition")]
pub enum ReplicaCondition {
    /// In sync.
    Synced,
    /// Created while the volume was unpublished: holds no data until a nexus rebuilds it.
    Stale,
    /// Being rebuilt by the nexus.
    Rebuilding {
        /// Start, milliseconds since the Unix epoch.
        started_ms: u64,
        /// Child URI being rebuilt.
        child_uri: String,
        /// Source child URI.
        src_uri: String,
        /// Fail when progress reaches this percentage (fault injection).
        #[serde(default)]
        fail_at: Option<u8>,
    },
    /// The last rebuild failed; the nexus child is faulted.
    Failed,
}

/// A replica of a volume.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimReplica {
    /// Replica UUID.
    pub uuid: String,
    /// Node.
    pub node: String,
    /// Pool.
    pub pool: String,
    /// Stored condition.
    pub condition: ReplicaCondition,
}

/// A finished (completed, failed or stopped) rebuild job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RebuildEvent {
    /// Child URI.
    pub child_uri: String,
    /// Source URI.
    pub src_uri: String,
    /// `Completed`, `Failed` or `Stopped`.
    pub state: String,
    /// Bytes to copy.
    pub total_bytes: u64,
    /// Bytes copied.
    pub recovered_bytes: u64,
    /// Start, ms since the epoch.
    pub start_ms: u64,
    /// End, ms since the epoch.
    pub end_ms: u64,
}

/// A volume.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimVolume {
    /// Volume UUID.
    pub uuid: String,
    /// Size in bytes.
    pub size: u64,
    /// Wanted replica count.
    pub num_replicas: u8,
    /// Thin flag (accounted like thick by the simulator).
    #[serde(default)]
    pub thin: bool,
    /// Self-heal policy flag (stored, not acted upon).
    #[serde(default)]
    pub self_heal: bool,
    /// Custom labels.
    #[serde(default)]
    pub labels: Labels,
    /// Placement topology, fixed at creation.
    #[serde(default)]
    pub topology: Option<Topology>,
    /// Max snapshots (stored only).
    #[serde(default)]
    pub max_snapshots: Option<u32>,
    /// Target while published.
    #[serde(default)]
    pub target: Option<SimTarget>,
    /// Last nexus UUID (kept after unpublish for the rebuild history).
    #[serde(default)]
    pub last_nexus_uuid: Option<String>,
    /// Replicas by UUID.
    #[serde(default)]
    pub replicas: BTreeMap<String, SimReplica>,
    /// Finished rebuild jobs, oldest first.
    #[serde(default)]
    pub rebuild_history: Vec<RebuildEvent>,
}

impl World {
    /// An empty world.
    pub fn new(profile: Profile, rebuild_mib_per_sec: f64) -> Self {
        Self {
            profile,
            rebuild_mib_per_sec,
            fail_next_rebuild_at: None,
            ignore_cordons: false,
            nodes: BTreeMap::new(),
            pools: BTreeMap::new(),
            volumes: BTreeMap::new(),
            removals: Vec::new(),
            ids: IdSource::default(),
        }
    }

    /// A new UUID from the world's [`IdSource`].
    pub fn new_uuid(&mut self) -> String {
        self.ids.next_uuid()
    }

    /// Node exists and is online.
    pub fn node_online(&self, node: &str) -> bool {
        self.nodes
            .get(node)
            .is_some_and(|n| n.status == NodeStatus::Online)
    }

    /// Node carries at least one cordon label.
    pub fn node_cordoned(&self, node: &str) -> bool {
        self.nodes
            .get(node)
            .is_some_and(|n| !n.cordon_labels.is_empty())
    }

    /// Pool is cordoned for new replicas (only meaningful with the 2.10 profile).
    pub fn pool_cordoned(&self, pool: &str) -> bool {
        self.profile.has_pool_cordon() && self.pools.get(pool).is_some_and(|p| p.cordon.replicas)
    }

    /// Bytes used in `pool`: its base usage plus every replica placed on it (thick).
    pub fn pool_used(&self, pool: &str) -> u64 {
        let base = self.pools.get(pool).map_or(0, |p| p.base_used);
        let replicas: u64 = self
            .volumes
            .values()
            .map(|v| v.size * v.replicas.values().filter(|r| r.pool == pool).count() as u64)
            .sum();
        base + replicas
    }

    /// Free bytes in `pool`.
    pub fn pool_free(&self, pool: &str) -> u64 {
        self.pools
            .get(pool)
            .map_or(0, |p| p.capacity.saturating_sub(self.pool_used(pool)))
    }
}
