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
//! 4. Cooldown: a volume moved less than `cooldown` ago stays. A volume whose last move ran
//!    out of time stays (pinned ones and consolidations too) while a move would get no more
//!    time per replica copy than that one had: each copy would be as long as the one that ran
//!    out, and be aborted again.
//! 5. Capacity: a tier is never filled past `100 - headroom` percent, counting every move
//!    already planned; when the backend reports its pools, the replicas must also fit on pools
//!    of distinct nodes ([`crate::room`]). Promotions go densest first (IOPS per GiB); when the target is full, a
//!    resident volume at most half as dense, itself below the promotion threshold, is demoted
//!    to make room in a later cycle.
//! 6. Concurrency and the migration window gate which planned moves start now.

use std::collections::{HashMap, HashSet, VecDeque};

mod input;
mod output;

pub use input::*;
pub use output::*;

use crate::room::{self, PoolRoom};
use crate::split::Split;
use crate::tier::Tier;

const GIB: f64 = (1u64 << 30) as f64;

struct Candidate<'v> {
    vol: &'v Volume,
    from: Tier,
    to: Tier,
    /// Replicas the move places on `to`.
    place: u8,
    reason: MoveReason,
}

impl<'v> Candidate<'v> {
    /// A move of every replica of `vol`.
    fn whole(vol: &'v Volume, from: Tier, to: Tier, reason: MoveReason) -> Self {
        let place = vol.replicas.max(1);
        Self {
            vol,
            from,
            to,
            place,
            reason,
        }
    }

    /// Bytes the move books on its target tier.
    fn need(&self) -> i128 {
        i128::from(self.vol.size_bytes) * i128::from(self.place)
    }
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
                Some(Ok(_)) if let Some(reason) = timed_out(v, input) => hold(&mut out, v, reason),
                Some(Ok(c)) => pinned.push(c),
                Some(Err(reason)) => hold(&mut out, v, reason),
                None => hold(&mut out, v, HoldReason::UnknownTier),
            }
            continue;
        };
        if let Some(p) = v.pinned.filter(|p| index(*p).is_some()) {
            if p == from {
                hold(&mut out, v, HoldReason::PinnedHere);
            } else if let Some(reason) = timed_out(v, input) {
                hold(&mut out, v, reason);
            } else {
                pinned.push(Candidate::whole(v, from, p, MoveReason::Pinned));
            }
            continue;
        }
        let Some(heat) = v.heat.iops() else {
            hold(&mut out, v, HoldReason::UnknownHeat);
            continue;
        };
        let (target, reason) = target_of(v, heat, input, at);
        let Some(reason) = reason else {
            hold(&mut out, v, HoldReason::InBand { heat });
            continue;
        };
        if let Some(remaining_secs) = cooldown_left(v, input) {
            hold(&mut out, v, HoldReason::Cooldown { remaining_secs });
            continue;
        }
        if let Some(reason) = timed_out(v, input) {
            hold(&mut out, v, reason);
            continue;
        }
        let c = Candidate::whole(v, from, order[target], reason);
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

    let mut free = Free {
        bytes: input
            .tiers
            .iter()
            .map(|t| {
                let usable = t.capacity_bytes as i128
                    * (100 - i128::from(input.limits.headroom_percent.min(100)))
                    / 100;
                (t.tier, usable - t.used_bytes as i128)
            })
            .collect(),
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
        let shortfall = c.need() - free.bytes.get(&c.to).copied().unwrap_or(0);
        if shortfall > 0 {
            // Full: demote residents half as dense or less, not hot themselves, first.
            for v in residents.evict(c.to, c.vol.density(), shortfall) {
                taken.insert(&v.name);
                evictions.push(Candidate::whole(
                    v,
                    c.to,
                    order[index(c.to).unwrap_or(0) + 1],
                    MoveReason::Evicted {
                        for_volume: c.vol.name.clone(),
                    },
                ));
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
    let need = c.need();
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
            let (target, _) = target_of(v, heat, input, at);
            if let Some(remaining_secs) = cooldown_left(v, input) {
                return Err(HoldReason::Cooldown { remaining_secs });
            }
            order[target]
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

/// Hysteresis for `v`, of decayed heat `heat`, as if it were on tier index `at`: promotion is
/// judged on the smaller of the decayed and the sustained heat.
fn target_of(v: &Volume, heat: f64, input: &Input<'_>, at: usize) -> (usize, Option<MoveReason>) {
    let promote_heat = v.sustained.map_or(heat, |s| s.min(heat));
    hysteresis(input.boundaries, at, promote_heat, heat, v.size_bytes)
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

/// Why `v` may not move again: its last move timed out, and one started now would get no more
/// time per replica copy.
fn timed_out(v: &Volume, input: &Input<'_>) -> Option<HoldReason> {
    let timeout_secs = input.limits.migration_timeout_secs;
    v.timed_out_after
        .filter(|&after| timeout_secs <= after)
        .map(|after_secs| HoldReason::TimedOut {
            after_secs,
            timeout_secs,
        })
}

fn cooldown_left(v: &Volume, input: &Input<'_>) -> Option<u64> {
    let last = v.last_move?;
    let until = last.saturating_add(input.limits.cooldown_secs as i64);
    (until > input.now).then(|| (until - input.now) as u64)
}

/// Per tier, the residents that may be demoted to make room for a denser volume: not
/// migrating, not pinned, out of cooldown, not held by a timed-out move, not above the
/// promotion watermark into that tier. Least dense first; each is handed out at most once.
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
                || timed_out(v, input).is_some()
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
