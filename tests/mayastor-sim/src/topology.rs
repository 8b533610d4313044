//! Volume placement topology (`Topology`, `NodeTopology`, `PoolTopology`, `LabelledTopology`)
//! and the upstream label-matching rule.

use serde::{Deserialize, Serialize};

use crate::world::Labels;

/// Volume topology as in `CreateVolumeBody.topology` (`Topology`).
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeTopology {
    /// Explicit node lists.
    Explicit(ExplicitNodeTopology),
    /// Node label rules.
    Labelled(LabelledTopology),
}

/// `ExplicitNodeTopology`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExplicitNodeTopology {
    /// Allowed nodes.
    #[serde(default)]
    pub allowed_nodes: Vec<String>,
    /// Preferred nodes (not used for placement by the simulator).
    #[serde(default)]
    pub preferred_nodes: Vec<String>,
}

/// `PoolTopology`: `{labelled}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolTopology {
    /// Pool label rules.
    Labelled(LabelledTopology),
}

/// `LabelledTopology`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelledTopology {
    /// Required labels (empty value: key only).
    #[serde(default)]
    pub inclusion: Labels,
    /// Exclusion labels (ignored for pools, as upstream).
    #[serde(default)]
    pub exclusion: Labels,
    /// Affinity keys (stored, not interpreted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub affinity_key: Vec<String>,
}

impl Topology {
    /// The pool inclusion labels, if the volume has any.
    pub fn pool_inclusion(&self) -> Option<&Labels> {
        match &self.pool_topology {
            Some(PoolTopology::Labelled(labelled)) => Some(&labelled.inclusion),
            None => None,
        }
    }
}

/// Upstream `qualifies_label_criteria`: every inclusion key is present in `labels`, with an
/// equal value unless the inclusion value is empty.
pub fn qualifies(labels: &Labels, inclusion: &Labels) -> bool {
    inclusion.iter().all(|(key, wanted)| {
        labels
            .get(key)
            .is_some_and(|have| wanted.is_empty() || have == wanted)
    })
}
