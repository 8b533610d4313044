//! What the engine answers: moves to start and the reasons volumes stay, with the wording
//! `explain`, Events and the status show.

use std::fmt;

use super::GIB;
use crate::tier::Tier;

/// A move to start now.
#[derive(Clone, Debug, PartialEq)]
pub struct Move {
    /// PV name.
    pub volume: String,
    /// Current tier.
    pub from: Tier,
    /// Target tier.
    pub to: Tier,
    /// Heat at decision time (0 when unknown and pinned).
    pub heat: f64,
    /// Why.
    pub reason: MoveReason,
}

/// Why a volume moves.
#[derive(Clone, Debug, PartialEq)]
pub enum MoveReason {
    /// Heat (and density, when the boundary has density watermarks) above the promotion
    /// watermark.
    Promote {
        /// The heat watermark crossed, IOPS.
        threshold: f64,
        /// The density watermark crossed as well, IOPS per TiB.
        density_threshold: Option<f64>,
    },
    /// Heat or density below its demotion watermark.
    Demote {
        /// The watermark crossed, in `gauge` units.
        threshold: f64,
        /// Which watermark: heat or density.
        gauge: Gauge,
    },
    /// Demoted to make room for a denser volume.
    Evicted {
        /// The volume that needs the room.
        for_volume: String,
    },
    /// Forced by the PVC annotation.
    Pinned,
    /// Its replicas span several tiers after an interrupted move; the move places the rest.
    Consolidate {
        /// Target tier of the interrupted move.
        interrupted_to: Tier,
    },
}

/// What a watermark measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gauge {
    /// Decayed IOPS.
    Iops,
    /// Decayed IOPS per TiB of logical size.
    IopsPerTib,
}

/// Why a volume stays where it is.
#[derive(Clone, Debug, PartialEq)]
pub enum HoldReason {
    /// spec.enabled is false.
    PolicyDisabled,
    /// A migration is already running.
    Migrating,
    /// Current tier unknown (backend unreachable, or replicas split across tiers).
    UnknownTier,
    /// No metrics: unknown, never cold.
    UnknownHeat,
    /// Pinned to the tier it is on.
    PinnedHere,
    /// Between the watermarks (or already on the right tier).
    InBand {
        /// Heat now.
        heat: f64,
    },
    /// Moved too recently.
    Cooldown {
        /// Seconds until it may move again.
        remaining_secs: u64,
    },
    /// Its last move was aborted for running out of time, and a move started now would get no
    /// more time per replica copy: it would copy as long again and be aborted again.
    TimedOut {
        /// The timeout per replica copy the last move ran out of, seconds.
        after_secs: u64,
        /// The timeout per replica copy a move started now would get, seconds.
        timeout_secs: u64,
    },
    /// Wants to move, but the target tier has no room.
    NoCapacity {
        /// The tier that is full.
        to: Tier,
        /// Bytes needed.
        needed: u64,
        /// Bytes free below the headroom.
        free: u64,
    },
    /// Wants to move; the tier has room in total, but no set of its pools can take the
    /// replicas (one pool per replica, on distinct nodes, the first on a node without one).
    NoPoolRoom {
        /// Target tier.
        to: Tier,
        /// Bytes one replica needs.
        replica_bytes: u64,
        /// Replicas to place.
        replicas: u8,
        /// The most room on one pool of a node without a replica.
        largest_free: u64,
    },
    /// Wants to move; all migration slots are taken.
    ConcurrencyLimit {
        /// Target tier.
        to: Tier,
    },
    /// Wants to move; outside the migration window.
    WindowClosed {
        /// Target tier.
        to: Tier,
    },
}

/// A volume that stays, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Hold {
    /// PV name.
    pub volume: String,
    /// Why.
    pub reason: HoldReason,
}

/// The engine's answer: every input volume appears exactly once, in `moves` or in `holds`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Moves to start now, in priority order.
    pub moves: Vec<Move>,
    /// Volumes that stay, with reasons.
    pub holds: Vec<Hold>,
}

impl Plan {
    /// The decision for one volume.
    pub fn decision(&self, volume: &str) -> Option<Result<&Move, &Hold>> {
        self.moves
            .iter()
            .find(|m| m.volume == volume)
            .map(Ok)
            .or_else(|| self.holds.iter().find(|h| h.volume == volume).map(Err))
    }
}

impl fmt::Display for MoveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MoveReason::Promote {
                threshold,
                density_threshold: None,
            } => write!(f, "heat above the promotion watermark {threshold:.0} IOPS"),
            MoveReason::Promote {
                threshold,
                density_threshold: Some(d),
            } => write!(
                f,
                "heat above the promotion watermark {threshold:.0} IOPS and density above {d:.0} IOPS/TiB"
            ),
            MoveReason::Demote {
                threshold,
                gauge: Gauge::Iops,
            } => write!(f, "heat below the demotion watermark {threshold:.0} IOPS"),
            MoveReason::Demote {
                threshold,
                gauge: Gauge::IopsPerTib,
            } => write!(
                f,
                "density below the demotion watermark {threshold:.0} IOPS/TiB"
            ),
            MoveReason::Evicted { for_volume } => {
                write!(f, "making room for the denser volume {for_volume}")
            }
            MoveReason::Pinned => f.write_str("pinned by the couchestor.io/force-tier annotation"),
            MoveReason::Consolidate { interrupted_to } => write!(
                f,
                "replicas on several tiers after an interrupted move to {interrupted_to}: placing the rest"
            ),
        }
    }
}

impl HoldReason {
    /// Every value of [`HoldReason::label`], in declaration order (indexed by
    /// [`HoldReason::label_index`]).
    pub const LABELS: [&'static str; 12] = [
        "disabled",
        "migrating",
        "unknown_tier",
        "unknown_heat",
        "pinned_here",
        "in_band",
        "cooldown",
        "timed_out",
        "no_capacity",
        "no_pool_room",
        "concurrency_limit",
        "window_closed",
    ];

    /// The reason's `reason` label on `storage_operator_held_volumes`.
    pub fn label(&self) -> &'static str {
        Self::LABELS[self.label_index()]
    }

    /// Where [`HoldReason::label`] is in [`HoldReason::LABELS`].
    pub fn label_index(&self) -> usize {
        match self {
            HoldReason::PolicyDisabled => 0,
            HoldReason::Migrating => 1,
            HoldReason::UnknownTier => 2,
            HoldReason::UnknownHeat => 3,
            HoldReason::PinnedHere => 4,
            HoldReason::InBand { .. } => 5,
            HoldReason::Cooldown { .. } => 6,
            HoldReason::TimedOut { .. } => 7,
            HoldReason::NoCapacity { .. } => 8,
            HoldReason::NoPoolRoom { .. } => 9,
            HoldReason::ConcurrencyLimit { .. } => 10,
            HoldReason::WindowClosed { .. } => 11,
        }
    }
}

impl fmt::Display for HoldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HoldReason::PolicyDisabled => f.write_str("policy is disabled"),
            HoldReason::Migrating => f.write_str("a migration is already in progress"),
            HoldReason::UnknownTier => f.write_str(
                "current tier unknown (backend unreachable or replicas on several tiers)",
            ),
            HoldReason::UnknownHeat => {
                f.write_str("no metrics: heat unknown, treated as unknown and never as cold")
            }
            HoldReason::PinnedHere => {
                f.write_str("pinned to its current tier by couchestor.io/force-tier")
            }
            HoldReason::InBand { heat } => write!(
                f,
                "heat {heat:.0} IOPS is within the watermarks for its tier"
            ),
            HoldReason::Cooldown { remaining_secs } => {
                write!(f, "in cooldown for another {}s", remaining_secs)
            }
            HoldReason::TimedOut {
                after_secs,
                timeout_secs,
            } => write!(
                f,
                "its last move timed out after {after_secs}s per replica copy and a move now \
                 would get {timeout_secs}s: not retried until migrationTimeout (and \
                 --migration-timeout-minutes) allow more, or its Aborted VolumeMigration is \
                 deleted"
            ),
            HoldReason::NoCapacity { to, needed, free } => {
                write!(
                    f,
                    "tier {to} has no room: needs {:.1} GiB, {:.1} GiB free below headroom",
                    *needed as f64 / GIB,
                    *free as f64 / GIB
                )
            }
            HoldReason::NoPoolRoom {
                to,
                replica_bytes,
                replicas,
                largest_free,
            } => write!(
                f,
                "tier {to} has room in total, but no {replicas} pool(s) on distinct nodes can take a {:.1} GiB replica each (most room on a node without one: {:.1} GiB)",
                *replica_bytes as f64 / GIB,
                *largest_free as f64 / GIB
            ),
            HoldReason::ConcurrencyLimit { to } => {
                write!(f, "would move to {to}; all migration slots are busy")
            }
            HoldReason::WindowClosed { to } => {
                write!(f, "would move to {to}; outside the migration window")
            }
        }
    }
}
