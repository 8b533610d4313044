//! The in-process simulated cluster: tiers with capacities, volumes on a tier, and moves that
//! take `footprint / bandwidth` seconds, during which the volume stays on (and is served by)
//! its source tier and its target replica already occupies room on the target tier.

use couchestor_common::Tier;

/// Bytes in one GiB.
pub const GIB: u64 = 1 << 30;

/// A move returning a volume to the tier it left less than this many seconds earlier is a
/// ping-pong. Fixed for both policies, whatever their cooldown.
pub const PING_PONG_WINDOW_SECS: i64 = 86_400;

/// A migration in progress.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InFlight {
    /// Target tier.
    pub to: Tier,
    /// Unix seconds at which the copy completes.
    pub finishes_at: i64,
}

/// One simulated volume.
#[derive(Clone, Debug, PartialEq)]
pub struct SimVolume {
    /// PV name.
    pub name: String,
    /// Logical size, bytes.
    pub size_bytes: u64,
    /// Data replicas.
    pub replicas: u8,
    /// The tier serving it (the source tier while a move runs).
    pub tier: Tier,
    /// Completion time of its last move.
    pub last_move: Option<i64>,
    /// The tier it left on its last move, and when.
    pub left: Option<(Tier, i64)>,
    /// The running migration, if any.
    pub in_flight: Option<InFlight>,
}

impl SimVolume {
    /// A one-replica test volume at rest on `tier`.
    #[cfg(test)]
    pub fn at_rest(name: &str, gib: u64, tier: Tier) -> Self {
        Self {
            name: name.into(),
            size_bytes: gib * GIB,
            replicas: 1,
            tier,
            last_move: None,
            left: None,
            in_flight: None,
        }
    }

    /// Bytes it occupies on a tier: size times replicas.
    pub fn footprint(&self) -> u64 {
        self.size_bytes * u64::from(self.replicas.max(1))
    }
}

/// Move counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MoveStats {
    /// Completed moves.
    pub completed: u64,
    /// Bytes copied by completed moves.
    pub bytes_moved: u64,
    /// Completed moves that returned a volume to the tier it left < 24 h earlier.
    pub ping_pongs: u64,
    /// Moves that could not start because the target tier was full.
    pub failed: u64,
}

/// The target tier has no room for the move.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TierFull;

/// Tiers, volumes and migrations.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// Volumes, in API (name) order.
    pub volumes: Vec<SimVolume>,
    /// Tiers hottest first, with their capacity in bytes.
    pub tiers: Vec<(Tier, u64)>,
    /// Copy speed of one move, bytes per second.
    pub bandwidth_bps: f64,
    /// Counters.
    pub stats: MoveStats,
}

impl Cluster {
    /// Capacity of a tier, bytes (0 for a tier the cluster does not have).
    pub fn capacity(&self, tier: Tier) -> u64 {
        self.tiers
            .iter()
            .find(|(t, _)| *t == tier)
            .map_or(0, |(_, c)| *c)
    }

    /// Bytes of the volumes served by a tier.
    pub fn resident_bytes(&self, tier: Tier) -> u64 {
        self.volumes
            .iter()
            .filter(|v| v.tier == tier)
            .map(SimVolume::footprint)
            .sum()
    }

    /// Bytes used on a tier: its residents plus the replicas being copied onto it.
    pub fn used_bytes(&self, tier: Tier) -> u64 {
        let inbound: u64 = self
            .volumes
            .iter()
            .filter(|v| v.in_flight.is_some_and(|m| m.to == tier))
            .map(SimVolume::footprint)
            .sum();
        self.resident_bytes(tier) + inbound
    }

    /// Migrations running now.
    pub fn active_migrations(&self) -> u32 {
        self.volumes
            .iter()
            .filter(|v| v.in_flight.is_some())
            .count() as u32
    }

    /// Starts moving volume `i` to `to` at `now`; fails (and counts a failed move) when the
    /// target tier cannot hold its footprint.
    pub fn start_move(&mut self, i: usize, to: Tier, now: i64) -> Result<(), TierFull> {
        let need = self.volumes[i].footprint();
        if self.used_bytes(to) + need > self.capacity(to) {
            self.stats.failed += 1;
            return Err(TierFull);
        }
        let secs = (need as f64 / self.bandwidth_bps).ceil().max(1.0) as i64;
        self.volumes[i].in_flight = Some(InFlight {
            to,
            finishes_at: now + secs,
        });
        Ok(())
    }

    /// Completes every migration due by `now`: the volume switches tier at its exact
    /// completion time, which becomes its `last_move`.
    pub fn complete_due(&mut self, now: i64) {
        for i in 0..self.volumes.len() {
            let Some(m) = self.volumes[i].in_flight.filter(|m| m.finishes_at <= now) else {
                continue;
            };
            self.complete(i, m.to, m.finishes_at);
        }
    }

    /// Volume `i` arrived on `to` at `at`: counts the move (and a ping-pong when it returns to
    /// the tier it left less than [`PING_PONG_WINDOW_SECS`] earlier), switches its tier and
    /// records `at` as its last move.
    pub fn complete(&mut self, i: usize, to: Tier, at: i64) {
        let v = &mut self.volumes[i];
        if let Some((left, when)) = v.left
            && left == to
            && at - when < PING_PONG_WINDOW_SECS
        {
            self.stats.ping_pongs += 1;
        }
        self.stats.completed += 1;
        self.stats.bytes_moved += v.footprint();
        v.left = Some((v.tier, at));
        v.tier = to;
        v.last_move = Some(at);
        v.in_flight = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(hot_gib: u64) -> Cluster {
        let vol = SimVolume::at_rest;
        Cluster {
            volumes: vec![vol("a", 10, Tier::Cold), vol("b", 20, Tier::Cold)],
            tiers: vec![(Tier::Hot, hot_gib * GIB), (Tier::Cold, 1000 * GIB)],
            bandwidth_bps: GIB as f64,
            stats: MoveStats::default(),
        }
    }

    #[test]
    fn moves_take_size_over_bandwidth_and_count_on_both_tiers_meanwhile() {
        let mut c = cluster(100);
        c.start_move(0, Tier::Hot, 1000).unwrap();
        assert_eq!(c.volumes[0].in_flight.unwrap().finishes_at, 1010);
        assert_eq!(c.used_bytes(Tier::Hot), 10 * GIB);
        assert_eq!(c.resident_bytes(Tier::Hot), 0);
        assert_eq!(c.resident_bytes(Tier::Cold), 30 * GIB);
        c.complete_due(1009);
        assert_eq!(c.volumes[0].tier, Tier::Cold);
        c.complete_due(1060);
        assert_eq!(c.volumes[0].tier, Tier::Hot);
        assert_eq!(c.volumes[0].last_move, Some(1010));
        assert_eq!(c.stats.completed, 1);
        assert_eq!(c.stats.bytes_moved, 10 * GIB);
    }

    #[test]
    fn a_move_into_a_full_tier_fails() {
        let mut c = cluster(25);
        c.start_move(0, Tier::Hot, 0).unwrap();
        // 10 GiB inbound already: 20 more do not fit in 25.
        assert_eq!(c.start_move(1, Tier::Hot, 0), Err(TierFull));
        assert_eq!(c.stats.failed, 1);
        assert!(c.volumes[1].in_flight.is_none());
    }

    #[test]
    fn ping_pongs_are_returns_within_24_hours() {
        let mut c = cluster(100);
        let hop = |c: &mut Cluster, i: usize, to, at: i64| {
            c.start_move(i, to, at).unwrap();
            c.complete_due(at + 3600);
        };
        // a: cold -> hot at t=10, back to cold 23 h later: one ping-pong.
        hop(&mut c, 0, Tier::Hot, 0);
        hop(&mut c, 0, Tier::Cold, 23 * 3600);
        assert_eq!(c.stats.ping_pongs, 1);
        // b: cold -> hot, back 25 h later: not a ping-pong.
        hop(&mut c, 1, Tier::Hot, 0);
        hop(&mut c, 1, Tier::Cold, 25 * 3600);
        assert_eq!(c.stats.ping_pongs, 1);
        // a again, hot a few minutes after leaving it: a second ping-pong.
        hop(&mut c, 0, Tier::Hot, 23 * 3600 + 100);
        assert_eq!(c.stats.ping_pongs, 2);
        assert_eq!(c.stats.completed, 5);
    }
}
