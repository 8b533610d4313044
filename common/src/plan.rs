//! The Brain: a pure placement engine.
//!
//! Input: the volumes of one policy (heat, size, current tier, last move, pin), the tiers with
//! their capacity, the watermarks between adjacent tiers, the policy limits and the time.
//! Output: a [`Plan`] that says, for every volume, either the move to start now or why it
//! stays. No I/O happens here; the controller and the simulator feed it the same way.
//!
//! Rules, in order:
//! 1. Nothing moves on a disabled policy, while a volume is already migrating, or when its heat
//!    or current tier is unknown (missing metrics are never "cold").
//! 2. A `couchestor.io/force-tier` pin wins over heat and cooldown. A volume left on two tiers
//!    by an interrupted move is consolidated on one: its pin, else the tier hysteresis picks as
//!    if it were on the interrupted move's target (in band, that move is finished).
//! 3. Hysteresis: promote when both the decayed and the sustained heat are above
//!    `promote_above` (the sustained figure is the smaller of the window's median and the mean
//!    over the policy's sustained window, so neither a short burst nor one busy hour of a
//!    daily cycle promotes); demote below `demote_below`; hold in between. With density
//!    watermarks, promotion also needs the density (IOPS per TiB) above its watermark, and a
//!    density below its own demotes.
//! 4. Cooldown: a volume moved less than `cooldown` ago stays.
//! 5. Capacity: a tier is never filled past `100 - headroom` percent, counting every move
//!    already planned; when the backend reports its pools, the replicas must also fit on pools
//!    of distinct nodes ([`crate::room`]). Promotions go densest first (IOPS per GiB); when the target is full, a
//!    resident volume at most half as dense, itself below the promotion threshold, is demoted
//!    to make room in a later cycle.
//! 6. Concurrency and the migration window gate which planned moves start now.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use crate::heat::Heat;
use crate::room::{self, PoolRoom};
use crate::split::Split;
use crate::tier::Tier;

const GIB: f64 = (1u64 << 30) as f64;

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
}

impl Volume {
    fn footprint(&self) -> u64 {
        self.size_bytes
            .saturating_mul(u64::from(self.replicas.max(1)))
    }

    /// Decayed IOPS per GiB of logical size (sizes under 1 GiB count as 1 GiB).
    fn density(&self) -> f64 {
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
    fn promotes(&self, heat: f64, size_bytes: u64) -> bool {
        heat > self.promote_above
            && self
                .density
                .is_none_or(|d| iops_per_tib(heat, size_bytes) > d.promote_above)
    }

    /// Which demotion watermark a volume below the boundary crossed: heat first.
    fn demotion(&self, heat: f64) -> MoveReason {
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
    fn demotes(&self, heat: f64, size_bytes: u64) -> bool {
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

struct Candidate<'v> {
    vol: &'v Volume,
    from: Tier,
    to: Tier,
    /// Replicas the move places on `to`.
    place: u8,
    reason: MoveReason,
}

/// Decides placement. Pure: same input, same plan.
pub fn plan(input: &Input<'_>) -> Plan {
    let mut out = Plan::default();
    let hold = |out: &mut Plan, v: &Volume, reason| {
        out.holds.push(Hold {
            volume: v.name.clone(),
            reason,
        })
    };
    let order: Vec<Tier> = input.tiers.iter().map(|t| t.tier).collect();
    let index = |t: Tier| order.iter().position(|&x| x == t);

    // Pins and consolidations: booked before the heat-driven moves.
    let mut pinned = Vec::new();
    let mut promotions = Vec::new();
    let mut demotions = Vec::new();
    for v in input.volumes {
        if !input.limits.enabled {
            hold(&mut out, v, HoldReason::PolicyDisabled);
            continue;
        }
        if v.migrating {
            hold(&mut out, v, HoldReason::Migrating);
            continue;
        }
        let Some((from, at)) = v.tier.and_then(|t| Some((t, index(t)?))) else {
            match v.split.as_ref().map(|s| consolidation(v, s, input, &order)) {
                Some(Ok(c)) => pinned.push(c),
                Some(Err(reason)) => hold(&mut out, v, reason),
                None => hold(&mut out, v, HoldReason::UnknownTier),
            }
            continue;
        };
        if let Some(p) = v.pinned.filter(|p| index(*p).is_some()) {
            if p == from {
                hold(&mut out, v, HoldReason::PinnedHere);
            } else {
                pinned.push(Candidate {
                    vol: v,
                    from,
                    to: p,
                    place: v.replicas.max(1),
                    reason: MoveReason::Pinned,
                });
            }
            continue;
        }
        let Some(heat) = v.heat.iops() else {
            hold(&mut out, v, HoldReason::UnknownHeat);
            continue;
        };
        let promote_heat = v.sustained.map_or(heat, |s| s.min(heat));
        let (target, reason) = hysteresis(input.boundaries, at, promote_heat, heat, v.size_bytes);
        let Some(reason) = reason else {
            hold(&mut out, v, HoldReason::InBand { heat });
            continue;
        };
        if let Some(remaining_secs) = cooldown_left(v, input) {
            hold(&mut out, v, HoldReason::Cooldown { remaining_secs });
            continue;
        }
        let c = Candidate {
            vol: v,
            from,
            to: order[target],
            place: v.replicas.max(1),
            reason,
        };
        if target < at {
            promotions.push(c)
        } else {
            demotions.push(c)
        }
    }

    promotions.sort_by(|a, b| {
        b.vol
            .density()
            .total_cmp(&a.vol.density())
            .then(a.vol.name.cmp(&b.vol.name))
    });
    demotions.sort_by(|a, b| {
        let h = |c: &Candidate| c.vol.heat.iops().unwrap_or(0.0);
        h(a).total_cmp(&h(b)).then(a.vol.name.cmp(&b.vol.name))
    });

    let free: HashMap<Tier, i128> = input
        .tiers
        .iter()
        .map(|t| {
            let usable = t.capacity_bytes as i128
                * (100 - i128::from(input.limits.headroom_percent.min(100)))
                / 100;
            (t.tier, usable - t.used_bytes as i128)
        })
        .collect();
    let mut free = Free {
        bytes: free,
        rooms: input
            .tiers
            .iter()
            .filter_map(|t| Some((t.tier, t.pools.clone()?)))
            .collect(),
    };
    let mut accepted: Vec<Candidate> = Vec::new();
    let mut taken: HashSet<&str> = HashSet::new();
    for c in pinned {
        if let Some(c) = reserve(c, &mut free, &mut out) {
            taken.insert(&c.vol.name);
            accepted.push(c);
        }
    }
    let mut residents = Residents::new(input, &order);
    let mut evictions = Vec::new();
    for c in promotions {
        let need = c.vol.footprint() as i128;
        let shortfall = need - free.bytes.get(&c.to).copied().unwrap_or(0);
        if shortfall > 0 {
            // Full: demote residents half as dense or less, not hot themselves, first.
            for v in residents.evict(c.to, c.vol.density(), shortfall) {
                taken.insert(&v.name);
                evictions.push(Candidate {
                    vol: v,
                    from: c.to,
                    to: order[index(c.to).unwrap_or(0) + 1],
                    place: v.replicas.max(1),
                    reason: MoveReason::Evicted {
                        for_volume: c.vol.name.clone(),
                    },
                });
            }
        }
        if let Some(c) = reserve(c, &mut free, &mut out) {
            taken.insert(&c.vol.name);
            accepted.push(c);
        }
    }
    // Evicted volumes were recorded as holding in band; they move instead.
    let evicted: HashSet<&str> = evictions.iter().map(|c| c.vol.name.as_str()).collect();
    if !evicted.is_empty() {
        out.holds.retain(|h| !evicted.contains(h.volume.as_str()));
    }
    let demotions = demotions
        .into_iter()
        .filter(|d| !taken.contains(d.vol.name.as_str()));
    for c in evictions.into_iter().chain(demotions) {
        if let Some(c) = reserve(c, &mut free, &mut out) {
            accepted.push(c);
        }
    }

    let mut slots = input
        .limits
        .max_concurrent
        .saturating_sub(input.limits.active_migrations);
    for c in accepted {
        let reason = if !input.limits.window_open {
            Some(HoldReason::WindowClosed { to: c.to })
        } else if slots == 0 {
            Some(HoldReason::ConcurrencyLimit { to: c.to })
        } else {
            None
        };
        match reason {
            Some(r) => hold(&mut out, c.vol, r),
            None => {
                slots -= 1;
                out.moves.push(Move {
                    volume: c.vol.name.clone(),
                    from: c.from,
                    to: c.to,
                    heat: c.vol.heat.iops().unwrap_or(0.0),
                    reason: c.reason,
                });
            }
        }
    }
    out
}

/// What is left on each tier during planning.
struct Free {
    /// Bytes below the headroom.
    bytes: HashMap<Tier, i128>,
    /// Room per pool, for the tiers whose pools are known.
    rooms: HashMap<Tier, Vec<PoolRoom>>,
}

/// Books the candidate's footprint on its target tier (and its replicas on the tier's pools,
/// when known), or records why it cannot move.
fn reserve<'v>(c: Candidate<'v>, free: &mut Free, out: &mut Plan) -> Option<Candidate<'v>> {
    let f = free.bytes.entry(c.to).or_insert(0);
    let need = c.vol.size_bytes.saturating_mul(u64::from(c.place)) as i128;
    let reason = if *f < need {
        HoldReason::NoCapacity {
            to: c.to,
            needed: need as u64,
            free: (*f).max(0) as u64,
        }
    } else {
        let booked = free.rooms.get_mut(&c.to).map_or(Ok(()), |pools| {
            room::book(pools, c.vol.size_bytes, c.place, &c.vol.nodes)
        });
        match booked {
            Ok(()) => {
                *f -= need;
                return Some(c);
            }
            Err(e) => HoldReason::NoPoolRoom {
                to: c.to,
                replica_bytes: e.replica_bytes,
                replicas: e.replicas,
                largest_free: e.largest_free,
            },
        }
    };
    out.holds.push(Hold {
        volume: c.vol.name.clone(),
        reason,
    });
    None
}

/// Where a volume split across tiers by an interrupted move goes: its pin, else the tier
/// hysteresis picks as if it were on the interrupted move's target. Unknown heat and the
/// cooldown hold it (a pin wins over the cooldown), as for any volume.
fn consolidation<'v>(
    v: &'v Volume,
    split: &Split,
    input: &Input<'_>,
    order: &[Tier],
) -> Result<Candidate<'v>, HoldReason> {
    let index = |t: Tier| order.iter().position(|&x| x == t);
    let at = index(split.interrupted_to).ok_or(HoldReason::UnknownTier)?;
    let to = match v.pinned.filter(|p| index(*p).is_some()) {
        Some(p) => p,
        None => {
            let heat = v.heat.iops().ok_or(HoldReason::UnknownHeat)?;
            if let Some(remaining_secs) = cooldown_left(v, input) {
                return Err(HoldReason::Cooldown { remaining_secs });
            }
            let promote_heat = v.sustained.map_or(heat, |s| s.min(heat));
            order[hysteresis(input.boundaries, at, promote_heat, heat, v.size_bytes).0]
        }
    };
    Ok(Candidate {
        vol: v,
        from: split.main_other(to).ok_or(HoldReason::UnknownTier)?,
        to,
        place: split.off(to),
        reason: MoveReason::Consolidate {
            interrupted_to: split.interrupted_to,
        },
    })
}

/// Target tier index by hysteresis around the current index, and the reason if it differs.
fn hysteresis(
    boundaries: &[Boundary],
    at: usize,
    promote_heat: f64,
    heat: f64,
    size_bytes: u64,
) -> (usize, Option<MoveReason>) {
    let mut i = at;
    while i > 0 && boundaries[i - 1].promotes(promote_heat, size_bytes) {
        i -= 1;
    }
    if i < at {
        return (
            i,
            Some(MoveReason::Promote {
                threshold: boundaries[i].promote_above,
                density_threshold: boundaries[i].density.map(|d| d.promote_above),
            }),
        );
    }
    while i < boundaries.len() && boundaries[i].demotes(heat, size_bytes) {
        i += 1;
    }
    if i > at {
        return (i, Some(boundaries[i - 1].demotion(heat)));
    }
    (at, None)
}

fn cooldown_left(v: &Volume, input: &Input<'_>) -> Option<u64> {
    let last = v.last_move?;
    let until = last.saturating_add(input.limits.cooldown_secs as i64);
    (until > input.now).then(|| (until - input.now) as u64)
}

/// Per tier, the residents that may be demoted to make room for a denser volume: not
/// migrating, not pinned, out of cooldown, not above the promotion watermark into that tier.
/// Least dense first; each is handed out at most once.
struct Residents<'v> {
    by_tier: HashMap<Tier, VecDeque<&'v Volume>>,
}

impl<'v> Residents<'v> {
    fn new(input: &Input<'v>, order: &[Tier]) -> Self {
        let mut by_tier: HashMap<Tier, Vec<&'v Volume>> = HashMap::new();
        for v in input.volumes {
            let Some(at) = v.tier.and_then(|t| order.iter().position(|&x| x == t)) else {
                continue;
            };
            if at + 1 >= order.len()
                || v.migrating
                || v.pinned.is_some()
                || cooldown_left(v, input).is_some()
            {
                continue;
            }
            if v.heat
                .iops()
                .is_some_and(|h| !input.boundaries[at].promotes(h, v.size_bytes))
            {
                by_tier.entry(order[at]).or_default().push(v);
            }
        }
        let by_tier = by_tier
            .into_iter()
            .map(|(t, mut vs)| {
                vs.sort_by(|a, b| {
                    a.density()
                        .total_cmp(&b.density())
                        .then(a.name.cmp(&b.name))
                });
                (t, vs.into())
            })
            .collect();
        Self { by_tier }
    }

    /// The least dense residents of `tier`, each at most half of `density`, whose footprints
    /// cover `shortfall` bytes, or nothing if they cannot. (No resident is ever a pinned or
    /// promoted volume: pins are excluded, and a volume being promoted out of a tier is above
    /// that tier's own, lower, promotion watermark.)
    fn evict(&mut self, tier: Tier, density: f64, shortfall: i128) -> Vec<&'v Volume> {
        let Some(queue) = self.by_tier.get_mut(&tier) else {
            return Vec::new();
        };
        let (mut freed, mut n) = (0i128, 0);
        for v in queue.iter() {
            if freed >= shortfall || v.density() * 2.0 > density {
                break;
            }
            freed += v.footprint() as i128;
            n += 1;
        }
        if freed < shortfall {
            return Vec::new();
        }
        queue.drain(..n).collect()
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
