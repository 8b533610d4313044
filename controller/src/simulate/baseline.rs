//! The baseline policy: plain watermark thresholds, as a first-cut controller would write it.
//!
//! Walks volumes in API (name) order; promotes a slow-tier volume whose heat is above
//! `promote_above`, demotes a fast-tier volume whose heat is below `demote_below`. No capacity
//! awareness (it never checks the target's free space before deciding), no cooldown, no density
//! ordering, no eviction. It does respect the same concurrency limit. When the target tier is
//! actually full at the moment a move would start, the move fails and counts in
//! `failed_moves`; the volume tries again next cycle.

use couchestor_common::Tier;
use couchestor_common::heat::Heat;

use super::cluster::Cluster;
use super::policy::{PolicyConfig, Watermarks};

/// One baseline planning cycle: starts moves on the cluster directly (the capacity check
/// happens at start time) and returns how many started.
pub fn baseline(
    cluster: &mut Cluster,
    heats: &[Heat],
    wm: Watermarks,
    cfg: &PolicyConfig,
    now: i64,
) -> u32 {
    let mut slots = cfg
        .max_concurrent
        .saturating_sub(cluster.active_migrations());
    let mut started = 0;
    let hottest = cluster.tiers.first().map(|t| t.0);
    let coldest = cluster.tiers.last().map(|t| t.0);
    let (Some(hot), Some(cold)) = (hottest, coldest) else {
        return 0;
    };
    for (i, heat) in heats.iter().enumerate().take(cluster.volumes.len()) {
        if slots == 0 {
            break;
        }
        let v = &cluster.volumes[i];
        let Some(h) = heat.iops() else { continue };
        if v.in_flight.is_some() {
            continue;
        }
        let to: Option<Tier> = if v.tier != hot && h > wm.promote_above {
            Some(hot)
        } else if v.tier == hot && h < wm.demote_below {
            Some(cold)
        } else {
            None
        };
        if let Some(to) = to
            && cluster.start_move(i, to, now).is_ok()
        {
            slots -= 1;
            started += 1;
        }
    }
    started
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::cluster::{GIB, MoveStats, SimVolume};

    #[test]
    fn thresholds_in_api_order_and_failed_moves_when_full() {
        let vol = |name: &str, tier| SimVolume::at_rest(name, 10, tier);
        let mut c = Cluster {
            volumes: vec![
                vol("a", Tier::Cold),
                vol("b", Tier::Cold),
                vol("c", Tier::Hot),
                vol("d", Tier::Cold),
            ],
            tiers: vec![(Tier::Hot, 20 * GIB), (Tier::Cold, 100 * GIB)],
            bandwidth_bps: GIB as f64,
            stats: MoveStats::default(),
        };
        let wm = Watermarks {
            promote_above: 100.0,
            demote_below: 25.0,
            density: None,
        };
        let heats = [
            Heat::Known(150.0),
            Heat::Known(900.0),
            Heat::Known(50.0),
            Heat::Known(10.0),
        ];
        let cfg = PolicyConfig {
            max_concurrent: 3,
            ..PolicyConfig::default()
        };
        // a (150) takes the last 10 GiB; b (900, denser!) then finds the tier full and fails;
        // c is in band; d is cold and stays.
        assert_eq!(baseline(&mut c, &heats, wm, &cfg, 0), 1);
        assert_eq!(c.volumes[0].in_flight.map(|m| m.to), Some(Tier::Hot));
        assert!(c.volumes[1].in_flight.is_none());
        assert_eq!(c.stats.failed, 1);
        // No cooldown: once a has arrived and cooled down, it goes straight back.
        c.complete_due(100);
        let cold = [
            Heat::Known(1.0),
            Heat::Known(900.0),
            Heat::Known(50.0),
            Heat::Known(10.0),
        ];
        assert_eq!(baseline(&mut c, &cold, wm, &cfg, 200), 1);
        assert_eq!(c.volumes[0].in_flight.map(|m| m.to), Some(Tier::Cold));
        assert_eq!(c.stats.failed, 2);
    }
}
