//! Choosing where the new replica goes, and which pools or nodes to cordon so that Mayastor
//! puts it there.

use std::collections::BTreeSet;

use couchestor_common::migration::VolumeMigration;

use super::hands::Hands;
use super::steer::{self, Holder, Steering};
use crate::context::Error;
use crate::mayastor::model::{Node, Pool, Volume};

/// Pools and nodes, read once per step.
pub struct Inventory {
    /// Every pool.
    pub pools: Vec<Pool>,
    /// Every io-engine node.
    pub nodes: Vec<Node>,
}

impl Inventory {
    /// Reads pools and nodes from Mayastor.
    pub async fn read(ctx: &Hands<'_>) -> Result<Self, Error> {
        Ok(Self {
            pools: ctx.mayastor.list_pools().await?,
            nodes: ctx.mayastor.list_nodes().await?,
        })
    }

    fn node_holder(&self, node: &str, label: &str) -> Holder {
        self.nodes
            .iter()
            .find(|n| n.id == node)
            .map_or(Holder::Free, |n| steer::node_holder(n, label))
    }
}

fn pool_node(p: &Pool) -> Option<&str> {
    p.state
        .as_ref()
        .map(|s| s.node.as_str())
        .or_else(|| p.spec.as_ref().map(|s| s.node.as_str()))
}

/// A target-tier pool `(pool, node)` that is Online, has room, sits on a node that holds no
/// replica, and that nobody else cordoned (pool or node). With node-cordon steering the node
/// is what gets chosen, so a node that also hosts a pool outside the target tier is not a safe
/// target (Mayastor could pick that pool instead). `Err` lists why each pool was passed over.
pub fn pick(
    vm: &VolumeMigration,
    v: &Volume,
    steering: Steering,
    inv: &Inventory,
) -> Result<(String, String), String> {
    let label = steer::label(vm);
    let used_nodes: BTreeSet<&str> = v
        .state
        .replica_topology
        .values()
        .filter_map(|r| r.node.as_deref())
        .collect();
    let mixed_nodes: BTreeSet<&str> = inv
        .pools
        .iter()
        .filter(|p| !vm.spec.target_pools.contains(&p.id))
        .filter_map(pool_node)
        .collect();
    let mut best: Option<(u64, String, String)> = None;
    let mut why = Vec::new();
    for p in inv
        .pools
        .iter()
        .filter(|p| vm.spec.target_pools.contains(&p.id))
    {
        let Some(state) = &p.state else {
            why.push(format!("{}: no state (node down?)", p.id));
            continue;
        };
        let node = state.node.as_str();
        if state.status.as_str() != "Online" {
            why.push(format!("{}: {}", p.id, state.status.as_str()));
        } else if steer::pool_holder(p, &label) == Holder::Foreign {
            why.push(format!("{}: cordoned (not by CoucheStor)", p.id));
        } else if inv.node_holder(node, &label) == Holder::Foreign {
            why.push(format!(
                "{}: node {node} is cordoned (not by CoucheStor)",
                p.id
            ));
        } else if used_nodes.contains(node) {
            why.push(format!("{}: node {node} already holds a replica", p.id));
        } else if steering == Steering::NodeCordon && mixed_nodes.contains(node) {
            why.push(format!(
                "{}: node {node} also hosts pools of other tiers, which node cordons (Mayastor < 2.10) cannot exclude",
                p.id
            ));
        } else if state.free() <= v.spec.size {
            why.push(format!(
                "{}: {} bytes free, volume needs {}",
                p.id,
                state.free(),
                v.spec.size
            ));
        } else if best.as_ref().is_none_or(|b| state.free() > b.0) {
            best = Some((state.free(), p.id.clone(), node.to_string()));
        }
    }
    best.map(|(_, p, n)| (p, n))
        .ok_or_else(|| format!("no eligible target pool: {}", why.join("; ")))
}

/// What to cordon so that only `(pool, node)` can receive the new replica: every other pool
/// (pool cordons) or the node of every other pool (node cordons) — except those someone else
/// already cordoned, which are left untouched (they are closed to new replicas anyway), and
/// pools whose node is down.
/// Returned as `(pool, node)` pairs for [`steer::cordon_for`].
pub fn to_cordon(
    vm: &VolumeMigration,
    steering: Steering,
    (pool, node): (&str, &str),
    inv: &Inventory,
) -> Vec<(String, String)> {
    let label = steer::label(vm);
    // Pools without a state (node down) cannot receive a replica: nothing to cordon there.
    inv.pools
        .iter()
        .filter_map(|p| p.state.as_ref().map(|s| (p, s.node.as_str())))
        .filter(|(p, n)| match steering {
            Steering::PoolCordon => {
                p.id != pool && steer::pool_holder(p, &label) != Holder::Foreign
            }
            Steering::NodeCordon => *n != node && inv.node_holder(n, &label) != Holder::Foreign,
        })
        .map(|(p, n)| (p.id.clone(), n.to_string()))
        .collect()
}
