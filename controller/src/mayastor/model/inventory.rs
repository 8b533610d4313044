//! Pools and nodes: `Pool`, `PoolSpec`, `PoolState`, `PoolCordonReq`, `Node` and friends.

use serde::{Deserialize, Serialize};

use super::{Labels, NodeStatus, PoolStatus, SpecStatus};

/// `Pool`: spec and state of a pool; either may be missing (e.g. state while the node is down).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    /// Pool id.
    pub id: String,
    /// Desired spec.
    #[serde(default)]
    pub spec: Option<PoolSpec>,
    /// Observed state.
    #[serde(default)]
    pub state: Option<PoolState>,
}

/// `PoolSpec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolSpec {
    /// Pool id.
    pub id: String,
    /// Node of the pool.
    pub node: String,
    /// Claimed disks.
    #[serde(default)]
    pub disks: Vec<String>,
    /// Spec lifecycle.
    #[serde(default)]
    pub status: Option<SpecStatus>,
    /// Current labels: the ones placement reads (not the DiskPool CR's).
    #[serde(default)]
    pub labels: Labels,
    /// Pool cordon state (≥ 2.10). Its JSON shape is not in the v0 spec copy and unconfirmed
    /// upstream, so it is kept raw; the simulator emits `{"cordonedstate": {...PoolCordonReq}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cordondrainstate: Option<serde_json::Value>,
}

/// `PoolState`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolState {
    /// Pool id.
    pub id: String,
    /// Node of the pool.
    pub node: String,
    /// Claimed disks.
    #[serde(default)]
    pub disks: Vec<String>,
    /// Runtime status.
    pub status: PoolStatus,
    /// Size in bytes.
    pub capacity: u64,
    /// Used bytes.
    pub used: u64,
    /// Sum of the sizes of all replicas in the pool.
    #[serde(default)]
    pub committed: Option<u64>,
}

impl Pool {
    /// Current labels (empty when the spec is missing).
    pub fn labels(&self) -> Option<&Labels> {
        self.spec.as_ref().map(|s| &s.labels)
    }

    /// Whether a pool cordon blocks new replicas here (≥ 2.10).
    ///
    /// The JSON shape of `cordondrainstate` is unconfirmed upstream. The simulator's
    /// `{"cordonedstate": {"replicas": bool, ...}}` is read exactly; any other non-empty shape
    /// counts as cordoned, so a pool in a state this client does not understand is neither
    /// chosen as a target nor touched.
    pub fn cordoned_for_replicas(&self) -> bool {
        let Some(state) = self.spec.as_ref().and_then(|s| s.cordondrainstate.as_ref()) else {
            return false;
        };
        match state.get("cordonedstate") {
            Some(cordoned) => cordoned
                .get("replicas")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(true),
            None => state.as_object().is_some_and(|o| !o.is_empty()),
        }
    }
}

impl PoolState {
    /// Free bytes (`capacity − used`), the quantity thick placement compares with the size.
    pub fn free(&self) -> u64 {
        self.capacity.saturating_sub(self.used)
    }
}

/// `Node`: an io-engine node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Node id.
    pub id: String,
    /// Desired spec (labels, cordons).
    #[serde(default)]
    pub spec: Option<NodeSpec>,
    /// Observed state.
    #[serde(default)]
    pub state: Option<NodeState>,
}

impl Node {
    /// The io-engine version the node reports (state first, then spec).
    pub fn version(&self) -> Option<&str> {
        self.state
            .as_ref()
            .and_then(|s| s.version.as_deref())
            .or_else(|| self.spec.as_ref().and_then(|s| s.version.as_deref()))
    }

    /// Cordon labels currently applied to the node (cordoned, draining or drained).
    pub fn cordon_labels(&self) -> Vec<String> {
        let Some(state) = self.spec.as_ref().and_then(|s| s.cordondrainstate.as_ref()) else {
            return Vec::new();
        };
        let draining = state.drainingstate.as_ref().or(state.drainedstate.as_ref());
        match (&state.cordonedstate, draining) {
            (Some(cordoned), _) => cordoned.cordonlabels.clone(),
            (None, Some(drain)) => drain.cordonlabels.clone(),
            (None, None) => Vec::new(),
        }
    }
}

/// `NodeSpec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Node id.
    pub id: String,
    /// gRPC endpoint.
    #[serde(rename = "grpcEndpoint", default)]
    pub grpc_endpoint: String,
    /// Mayastor node labels (not Kubernetes node labels).
    #[serde(default)]
    pub labels: Labels,
    /// Cordon/drain state.
    #[serde(default)]
    pub cordondrainstate: Option<CordonDrainState>,
    /// Host NQN.
    #[serde(default)]
    pub node_nqn: Option<String>,
    /// io-engine version.
    #[serde(default)]
    pub version: Option<String>,
}

/// `CordonDrainState`: exactly one of the three is set upstream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CordonDrainState {
    /// Cordoned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cordonedstate: Option<CordonedState>,
    /// Draining.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drainingstate: Option<DrainState>,
    /// Drained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drainedstate: Option<DrainState>,
}

/// `CordonedState`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CordonedState {
    /// Cordon labels.
    #[serde(default)]
    pub cordonlabels: Vec<String>,
}

/// `DrainState`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DrainState {
    /// Cordon labels.
    #[serde(default)]
    pub cordonlabels: Vec<String>,
    /// Drain labels.
    #[serde(default)]
    pub drainlabels: Vec<String>,
}

/// `NodeState`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    /// Node id.
    pub id: String,
    /// gRPC endpoint.
    #[serde(rename = "grpcEndpoint", default)]
    pub grpc_endpoint: String,
    /// Deemed status.
    pub status: NodeStatus,
    /// Host NQN.
    #[serde(default)]
    pub node_nqn: Option<String>,
    /// io-engine version.
    #[serde(default)]
    pub version: Option<String>,
}

/// `PoolCordonReq` (≥ 2.10): which new resources a pool cordon blocks.
///
/// The flag for imports is `import` in the handler code but `imports` in the design document,
/// so it is serialised under both names (servers ignore the unknown one) and read from either.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "PoolCordonWire")]
pub struct PoolCordonReq {
    /// Block new replicas (what a tier move needs).
    pub replicas: bool,
    /// Block new snapshots.
    pub snapshots: bool,
    /// Block restores.
    pub restores: bool,
    /// Block pool import on io-engine restart.
    pub import: bool,
}

/// `PoolCordonReq` as it may arrive, with either spelling of the import flag.
#[derive(Deserialize)]
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

impl From<PoolCordonWire> for PoolCordonReq {
    fn from(wire: PoolCordonWire) -> Self {
        Self {
            replicas: wire.replicas,
            snapshots: wire.snapshots,
            restores: wire.restores,
            import: wire.import || wire.imports,
        }
    }
}

impl PoolCordonReq {
    /// A cordon that blocks only new replicas.
    pub const REPLICAS: Self = Self {
        replicas: true,
        snapshots: false,
        restores: false,
        import: false,
    };
}

impl Serialize for PoolCordonReq {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("PoolCordonReq", 5)?;
        s.serialize_field("replicas", &self.replicas)?;
        s.serialize_field("snapshots", &self.snapshots)?;
        s.serialize_field("restores", &self.restores)?;
        s.serialize_field("import", &self.import)?;
        s.serialize_field("imports", &self.import)?;
        s.end()
    }
}
