//! Steering Mayastor's placement and removal choices with cordons it already understands.
//!
//! Mayastor has no "put the replica there" or "remove that replica" call. The engine makes
//! only the wanted pool eligible before a scale-up, and makes the old replica the preferred
//! victim before a scale-down:
//! - Mayastor >= 2.10: pool cordons (detected by the client); a replica on a cordoned pool is
//!   preferred for removal.
//! - Mayastor 2.9: node cordons (declared with `--mayastor-version 2.9`); a replica on a
//!   cordoned node is preferred for removal.
//! - Older releases cannot be steered on scale-down, so moves are refused.
//!
//! Every cordon is recorded in the migration's status *before* it is placed and removed in
//! every outcome; all cordon lifetimes run under one lock, so two moves never overlap.

use couchestor_common::migration::{CordonKind, CordonRef, VolumeMigration};
use kube::ResourceExt;

use crate::context::Context;
use crate::mayastor::Error as MsError;
use crate::mayastor::model::PoolCordonReq;

/// How this Mayastor can be steered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Steering {
    /// Pool cordons (>= 2.10).
    PoolCordon,
    /// Node cordons (2.9).
    NodeCordon,
}

/// Why moves are refused on this Mayastor.
pub const UNSTEERABLE: &str = "this Mayastor offers no pool cordon (< 2.10) and --mayastor-version is not 2.9 or later: \
     the replica Mayastor removes on scale-down cannot be steered, so moves are refused";

/// The steering this control plane supports, or `None` when moves must be refused.
pub async fn steering(ctx: &Context) -> Result<Option<Steering>, MsError> {
    if ctx.mayastor.capabilities().await?.pool_cordon {
        return Ok(Some(Steering::PoolCordon));
    }
    let node_cordon_ok = ctx
        .settings
        .mayastor_version
        .as_deref()
        .is_some_and(at_least_2_9);
    Ok(node_cordon_ok.then_some(Steering::NodeCordon))
}

fn at_least_2_9(v: &str) -> bool {
    let mut parts = v
        .trim_start_matches('v')
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (2, 9)
}

/// The cordon label naming this migration (slash-free: some REST routes reject '/').
pub fn label(vm: &VolumeMigration) -> String {
    format!("couchestor-{}", vm.name_any())
}

/// The cordon that blocks `pool` (on `node`) for this migration.
pub fn cordon_for(steering: Steering, vm: &VolumeMigration, pool: &str, node: &str) -> CordonRef {
    match steering {
        Steering::PoolCordon => CordonRef {
            kind: CordonKind::Pool,
            id: pool.into(),
            label: label(vm),
        },
        Steering::NodeCordon => CordonRef {
            kind: CordonKind::Node,
            id: node.into(),
            label: label(vm),
        },
    }
}

fn replicas_only() -> PoolCordonReq {
    PoolCordonReq {
        replicas: true,
        ..Default::default()
    }
}

/// Places a cordon.
pub async fn place(ctx: &Context, c: &CordonRef) -> Result<(), MsError> {
    match c.kind {
        CordonKind::Pool => ctx
            .mayastor
            .cordon_pool(&c.id, &replicas_only())
            .await
            .map(drop),
        CordonKind::Node => ctx.mayastor.cordon_node(&c.id, &c.label).await.map(drop),
    }
}

/// Removes a cordon. One that is already gone (or never got placed because the process died
/// between recording and placing it) counts as removed.
pub async fn release(ctx: &Context, c: &CordonRef) -> Result<(), MsError> {
    let r = match c.kind {
        CordonKind::Pool => ctx
            .mayastor
            .uncordon_pool(&c.id, &replicas_only())
            .await
            .map(drop),
        CordonKind::Node => ctx.mayastor.uncordon_node(&c.id, &c.label).await.map(drop),
    };
    match r {
        Err(e) if e.is_not_found() || e.status().is_some_and(|s| s.as_u16() == 412) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_gate() {
        for (v, ok) in [
            ("2.9.0", true),
            ("v2.10.1", true),
            ("3.0", true),
            ("2.8.1", false),
            ("2.7", false),
            ("junk", false),
        ] {
            assert_eq!(super::at_least_2_9(v), ok, "{v}");
        }
    }
}
