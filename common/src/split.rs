//! Volumes whose replicas span several tiers because a move CoucheStor started was interrupted.
//!
//! A multi-replica move replaces one replica at a time. When it stops part-way (a timeout, no
//! eligible pool for the next replica, a cancellation), the replicas it already replaced stay
//! where they are:
//! nothing is removed to undo it, so no data is at risk, but the volume now sits on two tiers.
//! Such a volume is consolidated on one tier by a later move, which replaces only the replicas
//! that are not there yet. A volume on several tiers for any other reason (a placement
//! CoucheStor did not make) is not described by a [`Split`] and is left alone.

use crate::migration::{VolumeMigrationSpec, VolumeMigrationStatus};
use crate::tier::Tier;

/// Where the replicas of an interrupted move's volume are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// Replicas per tier (every replica on a classified pool, at least two tiers).
    pub replicas_on: Vec<(Tier, u8)>,
    /// Target tier of the newest aborted (or cancelled) migration of the volume.
    pub interrupted_to: Tier,
}

/// The newest aborted or cancelled migration of a volume: when it ended, and where it was
/// going (`None` for a cancellation recorded without its target).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastAbort {
    /// Unix seconds.
    pub at: i64,
    /// The interrupted move's target tier.
    pub to: Option<Tier>,
    /// When it was aborted for running out of time: its timeout per replica copy, seconds
    /// (the migration's `spec.timeoutSeconds`). A move of the same volume would run as long
    /// again, so the engine does not retry it under a timeout no longer than this one.
    pub timed_out_after: Option<u64>,
}

impl LastAbort {
    /// The record of the migration of `spec` that ended aborted at `at` (Unix seconds) in
    /// `status`.
    pub fn aborted(at: i64, spec: &VolumeMigrationSpec, status: &VolumeMigrationStatus) -> Self {
        Self {
            at,
            to: Some(spec.to),
            timed_out_after: spec.timed_out_after(status),
        }
    }

    /// The newer of two records; on a tie, `other` (the one seen later).
    pub fn newest(self, other: Self) -> Self {
        if other.at >= self.at { other } else { self }
    }
}

impl Split {
    /// Describes a volume whose replicas are on `replica_tiers` (one entry per replica, `None`
    /// for a pool in no tier) after a move to `interrupted_to` was aborted or cancelled; `None`
    /// unless every
    /// replica is on a tier and they span at least two.
    pub fn after_abort(replica_tiers: &[Option<Tier>], interrupted_to: Tier) -> Option<Self> {
        let mut replicas_on: Vec<(Tier, u8)> = Vec::new();
        for t in replica_tiers {
            let t = (*t)?;
            match replicas_on.iter_mut().find(|(x, _)| *x == t) {
                Some((_, n)) => *n += 1,
                None => replicas_on.push((t, 1)),
            }
        }
        (replicas_on.len() >= 2).then_some(Self {
            replicas_on,
            interrupted_to,
        })
    }

    /// Replicas not on `tier`: what a move there must place.
    pub fn off(&self, tier: Tier) -> u8 {
        self.replicas_on
            .iter()
            .filter(|(t, _)| *t != tier)
            .map(|(_, n)| n)
            .sum()
    }

    /// The tier other than `tier` holding the most replicas (the move's source).
    pub fn main_other(&self, tier: Tier) -> Option<Tier> {
        self.replicas_on
            .iter()
            .filter(|(t, _)| *t != tier)
            .max_by_key(|(_, n)| *n)
            .map(|(t, _)| *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Tier::{Cold, Hot};

    #[test]
    fn a_split_needs_every_replica_on_a_tier_and_two_tiers() {
        let s = Split::after_abort(&[Some(Cold), Some(Hot), Some(Hot)], Cold).unwrap();
        assert_eq!(s.replicas_on, vec![(Cold, 1), (Hot, 2)]);
        assert_eq!((s.off(Cold), s.off(Hot)), (2, 1));
        assert_eq!(
            (s.main_other(Cold), s.main_other(Hot)),
            (Some(Hot), Some(Cold))
        );
        assert_eq!(Split::after_abort(&[Some(Hot), Some(Hot)], Cold), None);
        assert_eq!(Split::after_abort(&[Some(Hot), None], Cold), None);
    }

    #[test]
    fn the_newest_abort_wins_and_a_tie_goes_to_the_later_record() {
        let old = LastAbort {
            at: 10,
            to: Some(Hot),
            timed_out_after: Some(1800),
        };
        let new = LastAbort {
            at: 20,
            to: None,
            timed_out_after: None,
        };
        assert_eq!(old.newest(new), new);
        assert_eq!(new.newest(old), new);
        let tie = LastAbort {
            at: 20,
            to: Some(Cold),
            timed_out_after: None,
        };
        assert_eq!(new.newest(tie), tie);
    }
}
