//! Observe: gather what the engine needs for one policy, from the PV/PVC caches, the Mayastor
//! REST API and Prometheus. Every failure here degrades to "unknown", never to a guess.

use std::collections::HashMap;
use std::time::Duration;

use couchestor_common::heat::{self, Heat, default_half_life};
use couchestor_common::layout::{TierLayout, common_tier};
use couchestor_common::plan::{TierCapacity, Volume};
use couchestor_common::room::PoolRoom;
use couchestor_common::{StoragePolicy, Tier};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};
use kube::runtime::reflector::ObjectRef;

use crate::agents::classify::{PoolMedia, label_pools};
use crate::context::Context;
use crate::eyes::{heat_of, sustained_of};
use crate::mayastor::model::{Pool, Volume as MsVolume};

/// PV annotation holding the RFC 3339 time of the last completed move.
pub const LAST_MIGRATION_ANNOTATION: &str = "storage.billyronks.io/last-migration";
/// PVC annotation pinning a volume to a tier (`hot`, `warm` or `cold`).
pub const FORCE_TIER_ANNOTATION: &str = "couchestor.io/force-tier";

/// One watched volume: the engine's view plus what the reporting side needs.
#[derive(Clone, Debug)]
pub struct Watched {
    /// What the engine decides on.
    pub engine: Volume,
    /// The bound claim, `namespace/name`.
    pub claim: Option<(String, String)>,
    /// Pools holding the replicas.
    pub pools: Vec<String>,
    /// The tier of each replica's pool (`None`: no pool, or a pool in no tier).
    pub replica_tiers: Vec<Option<Tier>>,
    /// Mayastor volume UUID (the PV's CSI volumeHandle).
    pub volume_id: Option<String>,
}

/// Everything observed for one policy.
#[derive(Clone, Debug, Default)]
pub struct Observation {
    /// Matched volumes.
    pub volumes: Vec<Watched>,
    /// Tier capacities, hottest first.
    pub tiers: Vec<TierCapacity>,
    /// Pool ids of each tier.
    pub pools_by_tier: HashMap<Tier, Vec<String>>,
    /// Why heat is unknown for every volume, if the query failed.
    pub metrics_error: Option<String>,
    /// Why tiers are unknown for every volume, if Mayastor did not answer.
    pub backend_error: Option<String>,
    /// How each pool got its tier label (its own, or its media as the agents report it).
    pub pool_media: Vec<PoolMedia>,
    /// Whether node agents are configured.
    pub agents_configured: bool,
    /// Why some node agents did not answer, if they did not.
    pub agents_error: Option<String>,
}

/// The sampling window and half-life of a policy.
pub fn heat_window(policy: &StoragePolicy) -> (Duration, Duration) {
    let window: Duration = policy.spec.sampling_window.into();
    let half_life = policy
        .spec
        .heat_half_life
        .map(Duration::from)
        .unwrap_or_else(|| Duration::from_secs(default_half_life(window.as_secs())));
    (window, half_life)
}

/// Observes the volumes and tiers of `policy` at `now` (Unix seconds); `selector` is its
/// parsed `volumeSelector`.
pub async fn observe(
    ctx: &Context,
    policy: &StoragePolicy,
    layout: &TierLayout,
    selector: Option<&Selector>,
    now: i64,
    migrating: &std::collections::HashSet<String>,
) -> Observation {
    let mut obs = Observation::default();
    let pvs = matching_pvs(ctx, policy, selector);

    let backend = match (
        ctx.mayastor.list_volumes().await,
        ctx.mayastor.list_pools().await,
    ) {
        (Ok(v), Ok(p)) => Some((v, p)),
        (Err(e), _) | (_, Err(e)) => {
            obs.backend_error = Some(e.to_string());
            None
        }
    };
    let (ms_volumes, mut pools): (HashMap<String, MsVolume>, Vec<Pool>) = match backend {
        Some((v, p)) => (v.into_iter().map(|v| (v.spec.uuid.clone(), v)).collect(), p),
        None => (HashMap::new(), Vec::new()),
    };
    let agents = ctx.agents.view();
    obs.agents_configured = agents.configured;
    obs.agents_error = agents.problem();
    obs.pool_media = label_pools(&mut pools, &agents);
    let pool_tiers = pool_tiers(layout, &pools);
    (obs.tiers, obs.pools_by_tier) = tier_capacities(layout, &pools);

    let (window, half_life) = heat_window(policy);
    let stale_after = ctx.eyes.stale_after(window);
    let sustained_window = policy.spec.sustained_window();
    match ctx.eyes.backfill_once(sustained_window, now).await {
        Ok(true) => tracing::info!(
            policy = %policy.name_any(),
            window = %humantime::format_duration(sustained_window),
            "loaded the sustained-window heat history from Prometheus"
        ),
        Ok(false) => {}
        Err(e) => tracing::warn!(
            policy = %policy.name_any(),
            window = %humantime::format_duration(sustained_window),
            error = %e,
            "could not load the sustained-window heat history; it fills cycle by cycle"
        ),
    }
    let series = match ctx.eyes.series(window, now).await {
        Ok(s) => Some(s),
        Err(e) => {
            obs.metrics_error = Some(e.to_string());
            None
        }
    };

    for (pv, pvc) in pvs {
        let name = pv.name_any();
        let handle = pv
            .spec
            .as_ref()
            .and_then(|s| s.csi.as_ref())
            .map(|c| c.volume_handle.clone());
        let ms = handle.as_deref().and_then(|h| ms_volumes.get(h));
        let pools_of: Vec<String> = ms
            .map(|v| {
                v.state
                    .replica_topology
                    .values()
                    .filter_map(|r| r.pool.clone())
                    .collect()
            })
            .unwrap_or_default();
        let replica_tiers = ms.map_or_else(Vec::new, |v| replica_tiers(v, &pool_tiers));
        let tier = common_tier(replica_tiers.iter().copied());
        let heat = series.as_ref().map_or(Heat::Unknown, |s| {
            heat_of(s, &name, now, window, half_life, stale_after)
        });
        let sustained = series
            .as_ref()
            .and_then(|s| sustained_of(s, &name, now, window, stale_after))
            .map(|median| {
                heat::sustained(
                    median,
                    ctx.eyes.sustained_mean(&name, now, sustained_window),
                )
            });
        obs.volumes.push(Watched {
            engine: Volume {
                name: name.clone(),
                size_bytes: ms.map_or(0, |v| v.spec.size),
                replicas: ms.map_or(1, |v| v.spec.num_replicas),
                heat,
                sustained,
                tier,
                last_move: last_migration(&pv),
                pinned: pvc.as_ref().and_then(force_tier),
                migrating: migrating.contains(&name),
                nodes: ms.map(replica_nodes).unwrap_or_default(),
                // Set by the caller, which knows the migrations.
                split: None,
                timed_out_after: None,
            },
            claim: pvc
                .as_ref()
                .map(|c| (c.namespace().unwrap_or_default(), c.name_any())),
            pools: pools_of,
            replica_tiers,
            volume_id: handle,
        });
    }
    obs
}

/// PVs of the policy's StorageClass whose claim matches `selector` (its volumeSelector), with
/// the claim.
fn matching_pvs(
    ctx: &Context,
    policy: &StoragePolicy,
    selector: Option<&Selector>,
) -> Vec<(
    std::sync::Arc<PersistentVolume>,
    Option<std::sync::Arc<PersistentVolumeClaim>>,
)> {
    let mut out: Vec<_> = ctx
        .pvs
        .state()
        .into_iter()
        .filter(|pv| {
            pv.spec
                .as_ref()
                .and_then(|s| s.storage_class_name.as_deref())
                == Some(policy.spec.storage_class_name.as_str())
        })
        .map(|pv| {
            let claim = pv
                .spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .and_then(|r| {
                    ctx.pvcs
                        .get(&ObjectRef::new(r.name.as_deref()?).within(r.namespace.as_deref()?))
                });
            (pv, claim)
        })
        .filter(|(_, pvc)| match selector {
            None => true,
            Some(s) => pvc.as_ref().is_some_and(|c| s.matches(c.labels())),
        })
        .collect();
    out.sort_by_key(|(pv, _)| pv.name_any());
    out
}

/// Classifies every pool once: each tier's summed capacity and usage (pools that are not
/// Online count as full), and each tier's pool ids (pools without state included, so a move
/// planned to that tier knows them).
pub fn tier_capacities(
    layout: &TierLayout,
    pools: &[Pool],
) -> (Vec<TierCapacity>, HashMap<Tier, Vec<String>>) {
    let mut caps: Vec<TierCapacity> = layout
        .tiers
        .iter()
        .map(|(t, _)| TierCapacity {
            tier: *t,
            capacity_bytes: 0,
            used_bytes: 0,
            pools: Some(Vec::new()),
        })
        .collect();
    let mut by_tier: HashMap<Tier, Vec<String>> = HashMap::new();
    for p in pools {
        let Some(tier) = p.spec.as_ref().and_then(|s| layout.classify(&s.labels)) else {
            continue;
        };
        by_tier.entry(tier).or_default().push(p.id.clone());
        let (Some(state), Some(c)) = (&p.state, caps.iter_mut().find(|c| c.tier == tier)) else {
            continue;
        };
        let online = state.status.as_str() == "Online";
        c.capacity_bytes += state.capacity;
        c.used_bytes += if online { state.used } else { state.capacity };
        c.pools.get_or_insert_default().push(PoolRoom {
            node: state.node.clone(),
            free_bytes: if online { state.free() } else { 0 },
        });
    }
    (caps, by_tier)
}

/// The tier of every pool that is in one, by id (each pool's labels matched once per cycle,
/// not once per replica).
pub fn pool_tiers<'p>(layout: &TierLayout, pools: &'p [Pool]) -> HashMap<&'p str, Tier> {
    pools
        .iter()
        .filter_map(|p| Some((p.id.as_str(), layout.classify(&p.spec.as_ref()?.labels)?)))
        .collect()
}

/// The tier of each replica of `v` (`None`: no pool, or a pool in no tier).
pub fn replica_tiers(v: &MsVolume, pool_tiers: &HashMap<&str, Tier>) -> Vec<Option<Tier>> {
    v.state
        .replica_topology
        .values()
        .map(|r| pool_tiers.get(r.pool.as_deref()?).copied())
        .collect()
}

/// The nodes holding a Mayastor volume's replicas.
pub fn replica_nodes(v: &MsVolume) -> Vec<String> {
    v.state
        .replica_topology
        .values()
        .filter_map(|r| r.node.clone())
        .collect()
}

fn last_migration(pv: &PersistentVolume) -> Option<i64> {
    pv.annotations()
        .get(LAST_MIGRATION_ANNOTATION)?
        .parse::<k8s_openapi::jiff::Timestamp>()
        .ok()
        .map(|t| t.as_second())
}

fn force_tier(pvc: &std::sync::Arc<PersistentVolumeClaim>) -> Option<Tier> {
    let v = pvc.annotations().get(FORCE_TIER_ANNOTATION)?;
    v.to_ascii_lowercase().parse().ok()
}
