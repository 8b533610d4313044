//! Steering Mayastor's placement and removal choices with cordons it already understands.
//!
//! Mayastor has no "put the replica there" or "remove that replica" call. The engine makes
//! only the wanted pool eligible before a scale-up, and makes the old replica the preferred
//! victim before a scale-down:
//! - Mayastor >= 2.10: pool cordons (detected by the client); a replica on a cordoned pool is
//!   preferred for removal.
//! - Mayastor 2.9: node cordons; a replica on a cordoned node is preferred for removal.
//! - Older releases cannot be steered on scale-down, so moves are refused.
//!
//! The release is the lowest io-engine version the nodes report, unless `--mayastor-version`
//! declares one (a disagreement is reported, see [`assess`]).
//!
//! **Ownership.** The engine only ever removes cordons it placed itself, and never touches a
//! pool or node someone else cordoned (such a pool or node is simply not eligible):
//! - node cordons carry labels upstream; the engine's label is `couchestor-<migration>`, and
//!   removing it leaves every other label (and so an admin's cordon) in place;
//! - pool cordons carry no label upstream (a `PoolCordonReq` of flags), so the engine marks
//!   its own with the pool label `couchestor-cordon=couchestor-<migration>`, placed before the
//!   cordon and removed after it. A cordoned pool without that mark is someone else's and is
//!   never uncordoned. (An admin who cordons a pool the engine holds cannot be told apart
//!   upstream; removing the mark label hands the cordon over to the admin.)
//!
//! Every cordon is recorded in the migration's status *before* it is placed and removed in
//! every outcome; all cordon lifetimes run under one lock, so two moves never overlap.

use couchestor_common::migration::{CordonKind, CordonRef, VolumeMigration};
use kube::ResourceExt;

use super::hands::Hands;
use crate::mayastor::Error as MsError;
use crate::mayastor::model::{Node, Pool, PoolCordonReq};
use crate::mayastor::{MayastorVersion, NodeVersions};

/// How this Mayastor can be steered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Steering {
    /// Pool cordons (>= 2.10).
    PoolCordon,
    /// Node cordons (2.9).
    NodeCordon,
}

/// Pool label marking a pool cordon as placed by the engine (value: the migration's label).
pub const POOL_CORDON_MARK: &str = "couchestor-cordon";

/// First release whose scale-down prefers replicas on cordoned nodes.
const NODE_CORDON_STEERING: MayastorVersion = MayastorVersion::new(2, 9, 0);

/// What the engine concluded about the Mayastor it drives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    /// How to steer; `None`: moves are refused.
    pub steering: Option<Steering>,
    /// Why, for the `Steerable` condition and refusals.
    pub message: String,
    /// `--mayastor-version` disagrees with the nodes (or cannot be read): the warning.
    pub mismatch: Option<String>,
    /// Whether a version was known (declared or reported). A move already under way is not
    /// stopped just because the nodes briefly report none.
    pub version_known: bool,
}

/// Assesses the control plane: pool-cordon support and the release the nodes run.
pub async fn assess(ctx: &Hands<'_>) -> Result<Assessment, MsError> {
    let pool_cordon = ctx.mayastor.capabilities().await?.pool_cordon;
    let nodes = ctx.mayastor.engine_versions().await?;
    Ok(decide(pool_cordon, ctx.mayastor_version, &nodes))
}

/// The steering for a control plane with or without pool cordons, the declared version (the
/// flag wins over the nodes, with a warning when they disagree) and the nodes' versions.
pub fn decide(pool_cordon: bool, declared: Option<&str>, nodes: &NodeVersions) -> Assessment {
    let mut mismatch = None;
    let declared = match declared.map(|d| (d, d.parse::<MayastorVersion>())) {
        Some((_, Ok(v))) => Some(v),
        Some((raw, Err(e))) => {
            mismatch = Some(format!("--mayastor-version {raw:?} is ignored: {e}"));
            None
        }
        None => None,
    };
    if let (Some(d), Some(n)) = (declared, nodes.lowest)
        && !d.same_release(n)
    {
        mismatch = Some(format!(
            "--mayastor-version {d} disagrees with the io-engine nodes, which report {}; the declared version is used",
            nodes.reported.join(", ")
        ));
    }
    let version = match (declared, nodes.lowest) {
        (Some(d), _) => Some(format!("{d} (from --mayastor-version)")),
        (None, Some(n)) => Some(format!("{n} (lowest reported by the nodes)")),
        (None, None) => None,
    };
    let effective = declared.or(nodes.lowest);
    let described = version.as_deref().unwrap_or("of unknown version");
    let (steering, message) = if pool_cordon {
        (
            Some(Steering::PoolCordon),
            format!(
                "Mayastor {described} has pool cordons: placement and removal are steered with pool cordons"
            ),
        )
    } else if effective.is_some_and(|v| v >= NODE_CORDON_STEERING) {
        (
            Some(Steering::NodeCordon),
            format!(
                "Mayastor {described} has no pool cordon: placement and removal are steered with node cordons"
            ),
        )
    } else if effective.is_some() {
        (
            None,
            format!(
                "Mayastor {described} offers no pool cordon and its scale-down ignores cordons (before 2.9): \
                 the replica Mayastor removes cannot be steered, so moves are refused"
            ),
        )
    } else {
        (
            None,
            "no io-engine node reports its version, the control plane offers no pool cordon and \
             --mayastor-version is not set: the replica Mayastor removes on scale-down cannot be \
             steered, so moves are refused (declare --mayastor-version if the release is 2.9 or later)"
                .to_string(),
        )
    };
    Assessment {
        steering,
        message,
        mismatch,
        version_known: effective.is_some(),
    }
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

/// Who holds a pool's or node's cordons, as seen by one migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// Not cordoned.
    Free,
    /// This migration placed (or is placing) a cordon here.
    Ours,
    /// Someone else cordoned it: never touched, and not eligible as a target.
    Foreign,
}

/// Who holds `pool`'s replica cordon, for the migration labelled `label`.
pub fn pool_holder(pool: &Pool, label: &str) -> Holder {
    let marked = pool
        .labels()
        .and_then(|l| l.get(POOL_CORDON_MARK))
        .is_some_and(|m| m == label);
    match (marked, pool.cordoned_for_replicas()) {
        (true, _) => Holder::Ours,
        (false, true) => Holder::Foreign,
        (false, false) => Holder::Free,
    }
}

/// Who holds `node`'s cordons, for the migration labelled `label`. A node carrying our label
/// is `Ours` even if others cordoned it too: our label must still be removed (theirs stays).
pub fn node_holder(node: &Node, label: &str) -> Holder {
    let labels = node.cordon_labels();
    if labels.iter().any(|l| l == label) {
        Holder::Ours
    } else if labels.is_empty() {
        Holder::Free
    } else {
        Holder::Foreign
    }
}

/// Places a cordon, unless someone else already cordoned that pool or node: then nothing is
/// touched and `false` is returned (the caller drops the record).
pub async fn place(ctx: &Hands<'_>, c: &CordonRef) -> Result<bool, MsError> {
    match c.kind {
        CordonKind::Pool => {
            let pool = ctx.mayastor.get_pool(&c.id).await?;
            if pool_holder(&pool, &c.label) == Holder::Foreign {
                return Ok(false);
            }
            // The mark first: a cordon of ours never exists unmarked.
            ctx.mayastor
                .put_pool_label(&c.id, POOL_CORDON_MARK, &c.label, true)
                .await?;
            ctx.mayastor
                .cordon_pool(&c.id, &PoolCordonReq::REPLICAS)
                .await?;
        }
        CordonKind::Node => {
            let node = ctx.mayastor.get_node(&c.id).await?;
            if node_holder(&node, &c.label) == Holder::Foreign {
                return Ok(false);
            }
            ctx.mayastor.cordon_node(&c.id, &c.label).await?;
        }
    }
    Ok(true)
}

/// Removes a cordon of ours. One that is already gone (or never got placed because the process
/// died between recording and placing it) counts as removed; a pool cordon without our mark is
/// someone else's and stays.
pub async fn release(ctx: &Hands<'_>, c: &CordonRef) -> Result<(), MsError> {
    match c.kind {
        CordonKind::Pool => {
            let pool = match ctx.mayastor.get_pool(&c.id).await {
                Err(e) if e.is_not_found() => return Ok(()),
                other => other?,
            };
            if pool_holder(&pool, &c.label) != Holder::Ours {
                tracing::info!(pool = %c.id, label = %c.label, "pool cordon not marked as ours; left as it is");
                return Ok(());
            }
            gone_ok(
                ctx.mayastor
                    .uncordon_pool(&c.id, &PoolCordonReq::REPLICAS)
                    .await
                    .map(drop),
            )?;
            gone_ok(
                ctx.mayastor
                    .delete_pool_label(&c.id, POOL_CORDON_MARK)
                    .await
                    .map(drop),
            )
        }
        CordonKind::Node => gone_ok(ctx.mayastor.uncordon_node(&c.id, &c.label).await.map(drop)),
    }
}

/// A 404 or 412 (nothing to remove) counts as done.
fn gone_ok(r: Result<(), MsError>) -> Result<(), MsError> {
    match r {
        Err(e) if e.is_not_found() || e.status().is_some_and(|s| s.as_u16() == 412) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mayastor::NodeVersions;

    fn nodes(versions: &[&str]) -> NodeVersions {
        let nodes: Vec<Node> = versions
            .iter()
            .enumerate()
            .map(|(i, v)| {
                serde_json::from_value(serde_json::json!({
                    "id": format!("n{i}"),
                    "spec": {"id": format!("n{i}"), "version": v},
                }))
                .unwrap()
            })
            .collect();
        NodeVersions::of(&nodes)
    }

    #[test]
    fn steering_follows_pool_cordons_then_the_version() {
        let d = decide(true, None, &nodes(&["v2.10.0"]));
        assert_eq!((d.steering, d.mismatch), (Some(Steering::PoolCordon), None));
        let d = decide(false, None, &nodes(&["v2.9.0", "v2.10.0"]));
        assert_eq!(d.steering, Some(Steering::NodeCordon));
        assert!(
            d.message.contains("2.9.0 (lowest reported by the nodes)"),
            "{}",
            d.message
        );
        let d = decide(false, None, &nodes(&["v2.7.1", "v2.9.0"]));
        assert_eq!(d.steering, None, "the lowest node decides");
        assert!(d.message.contains("moves are refused"), "{}", d.message);
        let d = decide(false, None, &nodes(&[]));
        assert_eq!(d.steering, None);
        assert!(
            d.message.contains("no io-engine node reports"),
            "{}",
            d.message
        );
    }

    #[test]
    fn a_declared_version_wins_and_a_disagreement_is_reported() {
        let d = decide(false, Some("2.9.0"), &nodes(&["v2.7.1"]));
        assert_eq!(d.steering, Some(Steering::NodeCordon));
        let m = d.mismatch.unwrap();
        assert!(m.contains("2.9.0 disagrees") && m.contains("v2.7.1"), "{m}");
        let d = decide(false, Some("2.9.3"), &nodes(&["v2.9.0"]));
        assert_eq!(d.mismatch, None, "patch releases agree");
        let d = decide(false, Some("2.7"), &nodes(&[]));
        assert_eq!((d.steering, d.mismatch), (None, None));
        let d = decide(false, Some("junk"), &nodes(&["v2.9.0"]));
        assert_eq!(
            d.steering,
            Some(Steering::NodeCordon),
            "falls back to the nodes"
        );
        assert!(d.mismatch.unwrap().contains("is ignored"));
    }

    #[test]
    fn only_our_marked_cordons_are_ours() {
        let pool = |labels: serde_json::Value, cordoned: bool| -> Pool {
            let mut spec = serde_json::json!({"id": "p", "node": "n", "labels": labels});
            if cordoned {
                spec["cordondrainstate"] =
                    serde_json::json!({"cordonedstate": {"replicas": true, "snapshots": false}});
            }
            serde_json::from_value(serde_json::json!({"id": "p", "spec": spec})).unwrap()
        };
        let me = "couchestor-m1";
        assert_eq!(
            pool_holder(&pool(serde_json::json!({}), false), me),
            Holder::Free
        );
        assert_eq!(
            pool_holder(&pool(serde_json::json!({}), true), me),
            Holder::Foreign
        );
        let other = serde_json::json!({POOL_CORDON_MARK: "couchestor-m2"});
        assert_eq!(pool_holder(&pool(other, true), me), Holder::Foreign);
        let mine = serde_json::json!({POOL_CORDON_MARK: me});
        assert_eq!(pool_holder(&pool(mine.clone(), true), me), Holder::Ours);
        assert_eq!(
            pool_holder(&pool(mine, false), me),
            Holder::Ours,
            "a leftover mark is ours to remove"
        );

        let node = |labels: &[&str]| -> Node {
            serde_json::from_value(serde_json::json!({"id": "n", "spec": {"id": "n",
                "cordondrainstate": {"cordonedstate": {"cordonlabels": labels}}}}))
            .unwrap()
        };
        assert_eq!(node_holder(&node(&[]), me), Holder::Free);
        assert_eq!(node_holder(&node(&["admin"]), me), Holder::Foreign);
        assert_eq!(node_holder(&node(&["admin", me]), me), Holder::Ours);
    }
}
