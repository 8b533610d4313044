//! What the engine decides from: volumes, tiers, watermarks, limits.

use super::{GIB, Gauge, MoveReason};
use crate::heat::Heat;
use crate::room::PoolRoom;
use crate::split::{LastAbort, Split};
use crate::tier::Tier;

/// What the engine knows about one volume.
#[derive(Clone, Debug, PartialEq)]
pub struct Volume {
    /// PersistentVolume name (`pvc-<uuid>`).
    pub name: String,
    /// Logical size in bytes.
    pub size_bytes: u64,
    /// Data replicas; the volume occupies `size_bytes * replicas` on its tier.
    pub replicas: u8,
    /// Decayed IOPS, or unknown.
    pub heat: Heat,
    /// Sustained heat, if known: the smaller of the median IOPS over the sampling window and
    /// the mean IOPS over the sustained window. Promotion needs both this and `heat` above the
    /// watermark; demotion and ordering use `heat` alone.
    pub sustained: Option<f64>,
    /// Tier holding all its replicas; `None` when unknown or split across tiers.
    pub tier: Option<Tier>,
    /// Unix seconds of the last completed move (PV annotation), if any.
    pub last_move: Option<i64>,
    /// Tier forced by the PVC annotation `couchestor.io/force-tier`.
    pub pinned: Option<Tier>,
    /// A migration of this volume is in progress.
    pub migrating: bool,
    /// io-engine nodes holding its replicas (empty when unknown): a move's first new replica
    /// goes on another node.
    pub nodes: Vec<String>,
    /// Set (with `tier: None`) when its replicas span several tiers after a move CoucheStor
    /// started was interrupted: the engine consolidates it on one tier ([`crate::split`]).
    pub split: Option<Split>,
    /// Set when its newest move since the last completed one was aborted for running out of
    /// time: that move's timeout per replica copy, seconds. The engine does not move the
    /// volume again while the policy's timeout is no longer ([`super::HoldReason::TimedOut`]).
    pub timed_out_after: Option<u64>,
}

impl Volume {
    /// Takes in the volume's newest aborted or cancelled migration: it counts for the cooldown
    /// like a completed move, a volume it left with replicas on several tiers (given per
    /// replica in `replica_tiers`) is to be consolidated ([`crate::split`]), and a timeout
    /// not followed by a completed move is remembered (`timed_out_after`).
    pub fn after_abort(&mut self, abort: LastAbort, replica_tiers: &[Option<Tier>]) {
        let since_last_move = self.last_move.is_none_or(|done| abort.at >= done);
        self.timed_out_after = abort.timed_out_after.filter(|_| since_last_move);
        self.last_move = self.last_move.max(Some(abort.at));
        self.split = abort
            .to
            .and_then(|to| Split::after_abort(replica_tiers, to));
    }

    pub(super) fn footprint(&self) -> u64 {
        self.size_bytes
            .saturating_mul(u64::from(self.replicas.max(1)))
    }

    /// Decayed IOPS per GiB of logical size (sizes under 1 GiB count as 1 GiB).
    pub(super) fn density(&self) -> f64 {
        per_gib(self.heat.iops().unwrap_or(0.0), self.size_bytes)
    }
}

/// IOPS per GiB of `size_bytes`, sizes under 1 GiB counting as 1 GiB.
fn per_gib(iops: f64, size_bytes: u64) -> f64 {
    iops / (size_bytes as f64 / GIB).max(1.0)
}

/// IOPS per TiB of `size_bytes` (the unit of the density watermarks), sizes under 1 GiB
/// counting as 1 GiB.
pub fn iops_per_tib(iops: f64, size_bytes: u64) -> f64 {
    per_gib(iops, size_bytes) * 1024.0
}

/// Capacity of one tier, as summed over its pools.
#[derive(Clone, Debug, PartialEq)]
pub struct TierCapacity {
    /// Which tier.
    pub tier: Tier,
    /// Total bytes of the tier's pools.
    pub capacity_bytes: u64,
    /// Bytes already used (including replicas of in-flight moves).
    pub used_bytes: u64,
    /// Room on each of the tier's pools, when the backend reports pools; `None` checks the
    /// tier total only.
    pub pools: Option<Vec<PoolRoom>>,
}

/// Watermarks between a tier and the next colder one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Boundary {
    /// Heat above which a volume on the colder tier is promoted.
    pub promote_above: f64,
    /// Heat below which a volume on the hotter tier is demoted.
    pub demote_below: f64,
    /// Optional I/O-density watermarks. When set, a promotion needs both the heat and the
    /// density above their watermarks, and a volume is demoted when either falls below its own.
    pub density: Option<DensityBand>,
}

/// I/O-density watermarks, in IOPS per TiB of logical size ([`iops_per_tib`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DensityBand {
    /// Density above which a volume on the colder tier may be promoted.
    pub promote_above: f64,
    /// Density below which a volume on the hotter tier is demoted.
    pub demote_below: f64,
}

impl Boundary {
    /// Watermarks on heat alone.
    pub const fn iops(promote_above: f64, demote_below: f64) -> Self {
        Self {
            promote_above,
            demote_below,
            density: None,
        }
    }

    /// Whether a volume of `size_bytes` at this heat belongs above the boundary.
    pub(super) fn promotes(&self, heat: f64, size_bytes: u64) -> bool {
        heat > self.promote_above
            && self
                .density
                .is_none_or(|d| iops_per_tib(heat, size_bytes) > d.promote_above)
    }

    /// Which demotion watermark a volume below the boundary crossed: heat first.
    pub(super) fn demotion(&self, heat: f64) -> MoveReason {
        match self.density {
            Some(d) if heat >= self.demote_below => MoveReason::Demote {
                threshold: d.demote_below,
                gauge: Gauge::IopsPerTib,
            },
            _ => MoveReason::Demote {
                threshold: self.demote_below,
                gauge: Gauge::Iops,
            },
        }
    }

    /// Whether a volume of `size_bytes` at this heat belongs below the boundary.
    pub(super) fn demotes(&self, heat: f64, size_bytes: u64) -> bool {
        heat < self.demote_below
            || self
                .density
                .is_some_and(|d| iops_per_tib(heat, size_bytes) < d.demote_below)
    }
}

/// Policy limits and context.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// spec.enabled.
    pub enabled: bool,
    /// Minimum seconds between two moves of one volume.
    pub cooldown_secs: u64,
    /// Maximum migrations running at once.
    pub max_concurrent: u32,
    /// Migrations running now.
    pub active_migrations: u32,
    /// Percent of every tier kept free.
    pub headroom_percent: u8,
    /// Timeout per replica copy a move started now gets, seconds (the policy's
    /// `migrationTimeout`, capped by the controller's `--migration-timeout-minutes`).
    pub migration_timeout_secs: u64,
    /// Whether the migration window is open now.
    pub window_open: bool,
}

/// Everything the engine decides from.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    /// The policy's volumes.
    pub volumes: &'a [Volume],
    /// Tiers, hottest first.
    pub tiers: &'a [TierCapacity],
    /// `boundaries[i]` separates `tiers[i]` from `tiers[i + 1]`.
    pub boundaries: &'a [Boundary],
    /// Limits.
    pub limits: Limits,
    /// Unix seconds.
    pub now: i64,
}
