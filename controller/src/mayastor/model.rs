//! Serde types for the Mayastor REST v0 JSON shapes CoucheStor reads and writes.
//!
//! Field names follow `control-plane/rest/openapi-specs/v0_api_spec.yaml` exactly (including the
//! hyphenated `child-status`, `child-status-reason`, `rebuild-progress` keys of
//! `ReplicaTopology` and the camelCase keys of `Nexus`, `Child` and `RebuildRecord`). Unknown
//! fields are ignored, anything the server may leave out is an `Option` or `#[serde(default)]`,
//! and enums keep unknown values (see [`super::enums`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod inventory;
mod rebuild;

pub use inventory::*;
pub use rebuild::*;

pub use super::enums::{
    ChildState, ChildStateReason, ErrorKind, NexusState, NodeStatus, PoolStatus, Protocol,
    RebuildJobState, ReplicaState, SpecStatus, VolumeStatus,
};

/// Labels (`map<string, string>`), ordered for stable output.
pub type Labels = BTreeMap<String, String>;

/// `Volume`: the desired spec and the observed state of one volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    /// What was asked for.
    pub spec: VolumeSpec,
    /// What the control plane observes.
    pub state: VolumeState,
}

/// `Volumes`: one page of `GET /volumes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volumes {
    /// The volumes of this page.
    #[serde(default)]
    pub entries: Vec<Volume>,
    /// Token for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<u64>,
}

/// `VolumeSpec`: user specification of a volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeSpec {
    /// Volume id (the bare UUID that is also the PV's `volumeHandle`).
    pub uuid: String,
    /// Size in bytes.
    pub size: u64,
    /// Number of replicas the volume should have.
    pub num_replicas: u8,
    /// Spec lifecycle.
    pub status: SpecStatus,
    /// Custom labels.
    #[serde(default)]
    pub labels: Labels,
    /// Where the target (nexus) is published, if it is.
    #[serde(default)]
    pub target: Option<VolumeTarget>,
    /// Placement topology, fixed at creation.
    #[serde(default)]
    pub topology: Option<Topology>,
    /// Self-heal policy.
    #[serde(default)]
    pub policy: Option<VolumePolicy>,
    /// Thin provisioned.
    #[serde(default)]
    pub thin: bool,
    /// Converted to thin provisioning.
    #[serde(default)]
    pub as_thin: Option<bool>,
    /// Affinity group (such volumes cannot go below 2 replicas).
    #[serde(default)]
    pub affinity_group: Option<AffinityGroup>,
    /// Number of snapshots.
    #[serde(default)]
    pub num_snapshots: u32,
    /// Snapshot limit.
    #[serde(default)]
    pub max_snapshots: Option<u32>,
    /// Operation in progress, if any.
    #[serde(default)]
    pub operation: Option<VolumeSpecOperation>,
}

/// `VolumeSpec.operation`: record of the operation in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeSpecOperation {
    /// Operation name (`SetReplica`, `Publish`, ...; free text to tolerate new ones).
    pub operation: String,
    /// Result, once known.
    #[serde(default)]
    pub result: Option<bool>,
}

/// `VolumeTarget`: where front-end I/O goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeTarget {
    /// Node hosting the nexus.
    pub node: String,
    /// Share protocol.
    #[serde(default)]
    pub protocol: Option<Protocol>,
    /// Nodes where the workload runs.
    #[serde(default)]
    pub frontend_nodes: Vec<NodeAccessInfo>,
}

/// `NodeAccessInfo`: a front-end node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeAccessInfo {
    /// Node name.
    pub name: String,
    /// Initiator NQN.
    pub nqn: String,
}

/// `Topology`: node and pool placement rules of a volume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Topology {
    /// Node rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_topology: Option<NodeTopology>,
    /// Pool rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_topology: Option<PoolTopology>,
}

/// `NodeTopology`: `{explicit}` or `{labelled}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeTopology {
    /// Explicit node lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explicit: Option<ExplicitNodeTopology>,
    /// Node label rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labelled: Option<LabelledTopology>,
}

/// `ExplicitNodeTopology`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExplicitNodeTopology {
    /// Replicas may only be placed on these nodes.
    #[serde(default)]
    pub allowed_nodes: Vec<String>,
    /// Preferred nodes.
    #[serde(default)]
    pub preferred_nodes: Vec<String>,
}

/// `PoolTopology`: `{labelled}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolTopology {
    /// Pool label rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labelled: Option<LabelledTopology>,
}

/// `LabelledTopology`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelledTopology {
    /// Every key must be present on the pool; the value must match unless it is empty.
    #[serde(default)]
    pub inclusion: Labels,
    /// Exclusion rules (ignored by upstream pool placement).
    #[serde(default)]
    pub exclusion: Labels,
    /// Affinity keys (≥ 2.8).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub affinity_key: Vec<String>,
}

/// `VolumePolicy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumePolicy {
    /// Whether the control plane replaces failed replicas by itself.
    #[serde(default)]
    pub self_heal: bool,
}

/// `AffinityGroup`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AffinityGroup {
    /// Group id.
    pub id: String,
}

/// `VolumeState`: runtime state of a volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeState {
    /// Volume id.
    pub uuid: String,
    /// Size in bytes.
    pub size: u64,
    /// Runtime status.
    pub status: VolumeStatus,
    /// The nexus; absent while the volume is unpublished.
    #[serde(default)]
    pub target: Option<Nexus>,
    /// Replicas keyed by replica UUID.
    #[serde(default)]
    pub replica_topology: BTreeMap<String, ReplicaTopology>,
    /// Space usage.
    #[serde(default)]
    pub usage: Option<VolumeUsage>,
}

/// `VolumeUsage` (bytes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VolumeUsage {
    /// Capacity.
    pub capacity: u64,
    /// Allocated by the largest healthy replica, including snapshots.
    pub allocated: u64,
    /// Allocated by the largest healthy replica, excluding snapshots.
    pub allocated_replica: u64,
    /// Snapshot allocation.
    pub allocated_snapshots: u64,
    /// Allocation including parent snapshots.
    pub allocated_all_snapshots: u64,
    /// Sum over all replicas, including snapshots.
    pub total_allocated: u64,
    /// Sum over all replicas, excluding snapshots.
    pub total_allocated_replicas: u64,
    /// Sum of all snapshot allocations.
    pub total_allocated_snapshots: u64,
}

/// `ReplicaTopology`: one replica of a volume.
///
/// `child-status` and `rebuild-progress` come from the nexus child, so they are present only
/// while the volume is published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaTopology {
    /// Node of the replica.
    #[serde(default)]
    pub node: Option<String>,
    /// Pool of the replica.
    #[serde(default)]
    pub pool: Option<String>,
    /// Replica state (the only required field).
    pub state: ReplicaState,
    /// State of the matching nexus child.
    #[serde(
        rename = "child-status",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub child_status: Option<ChildState>,
    /// Why the child is in that state.
    #[serde(
        rename = "child-status-reason",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub child_status_reason: Option<ChildStateReason>,
    /// Space usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ReplicaUsage>,
    /// Rebuild progress in percent while the child rebuilds.
    #[serde(
        rename = "rebuild-progress",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub rebuild_progress: Option<u8>,
}

/// `ReplicaUsage` (bytes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplicaUsage {
    /// Capacity.
    pub capacity: u64,
    /// Allocated.
    pub allocated: u64,
    /// Allocated by snapshots.
    pub allocated_snapshots: u64,
    /// Allocated by snapshots and predecessors.
    pub allocated_all_snapshots: u64,
}

/// `Nexus`: the volume target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nexus {
    /// Nexus UUID (not the volume UUID).
    pub uuid: String,
    /// Node hosting it.
    pub node: String,
    /// State.
    pub state: NexusState,
    /// Children (one per replica in the nexus).
    #[serde(default)]
    pub children: Vec<Child>,
    /// Device URI; missing and empty mean the same.
    #[serde(rename = "deviceUri", default)]
    pub device_uri: String,
    /// Number of rebuild jobs.
    #[serde(default)]
    pub rebuilds: u32,
    /// Share protocol.
    #[serde(default)]
    pub protocol: Option<Protocol>,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
}

/// `Child`: one nexus child.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Child {
    /// Child URI (`bdev:///<replica>?uuid=…` when local, `nvmf://…:<replica>?uuid=…` when remote).
    pub uri: String,
    /// Child state.
    pub state: ChildState,
    /// Reason for the state.
    #[serde(default)]
    pub state_reason: Option<ChildStateReason>,
    /// Rebuild progress in percent.
    #[serde(rename = "rebuildProgress", default)]
    pub rebuild_progress: Option<u8>,
}

/// `RestJsonError`: the body of every 4xx/5xx answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestJsonError {
    /// Detailed error (the full upstream error chain).
    #[serde(default)]
    pub details: String,
    /// Last reported error (upstream: the internal error name, e.g. `SvcError :: LastReplica`).
    #[serde(default)]
    pub message: String,
    /// Error class.
    pub kind: ErrorKind,
}
