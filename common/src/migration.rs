//! The `VolumeMigration` custom resource: one move of one volume between tiers, with its
//! progress stored in the cluster so that a controller killed at any instant resumes or cleans
//! up correctly after a restart or a leader change.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::tier::Tier;

/// Label on a VolumeMigration naming the StoragePolicy that planned it.
pub const POLICY_LABEL: &str = "storage.billyronks.io/policy";
/// Label on a VolumeMigration naming the PersistentVolume it moves.
pub const VOLUME_LABEL: &str = "storage.billyronks.io/volume";
/// Finalizer on a VolumeMigration: deleting it mid-move (or deleting its policy) first releases
/// the engine's cordons and removes an unsynced replica the move added; old replicas stay.
pub const FINALIZER: &str = "storage.billyronks.io/migration-cleanup";
/// PV annotation: when a migration of this volume was cancelled (RFC 3339). Counts like an
/// aborted migration for the policy's cooldown, so a deleted migration is not restarted at once.
pub const CANCELLED_ANNOTATION: &str = "storage.billyronks.io/migration-cancelled";
/// PV annotation: the target tier (`hot`, `warm`, `cold`) of the migration cancelled at
/// [`CANCELLED_ANNOTATION`]. A multi-replica move cancelled after some replicas were replaced
/// leaves the volume on two tiers; after the cooldown the planner consolidates it
/// ([`crate::split`]) as it does after an aborted move.
pub const CANCELLED_TO_ANNOTATION: &str = "storage.billyronks.io/migration-cancelled-to";

/// `status.abortReason` of a migration that ran out of its time (`spec.timeoutSeconds` per
/// replica copy).
pub const TIMEOUT_REASON: &str = "Timeout";

/// How the `status.message` of a [`TIMEOUT_REASON`] abort begins when the migration never got
/// past Analyzing (nothing was copied: its copy time says nothing about the next attempt).
pub const NOT_STARTED_PREFIX: &str = "not started within";

/// Condition type on a VolumeMigration: whether this Mayastor's scale-down can be steered
/// (reason `PoolCordon`, `NodeCordon` or `UnsupportedMayastorVersion`).
pub const STEERABLE_CONDITION: &str = "Steerable";
/// Condition type on a VolumeMigration, set when `--mayastor-version` is given: whether it
/// agrees with the versions the io-engine nodes report.
pub const VERSION_MATCH_CONDITION: &str = "VersionMatch";

/// A requested move of one volume to another tier.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "storage.billyronks.io",
    version = "v1",
    kind = "VolumeMigration",
    plural = "volumemigrations",
    shortname = "vmig",
    status = "VolumeMigrationStatus",
    printcolumn = r#"{"name":"VOLUME","type":"string","jsonPath":".spec.volume"}"#,
    printcolumn = r#"{"name":"FROM","type":"string","jsonPath":".spec.from"}"#,
    printcolumn = r#"{"name":"TO","type":"string","jsonPath":".spec.to"}"#,
    printcolumn = r#"{"name":"PHASE","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"PROGRESS","type":"integer","jsonPath":".status.rebuildProgress"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMigrationSpec {
    /// PersistentVolume name (pvc-<uuid>).
    #[schemars(length(min = 1, max = 253))]
    pub volume: String,
    /// Mayastor volume UUID (the PV's CSI volumeHandle).
    #[schemars(length(min = 1, max = 64))]
    pub volume_id: String,
    /// StoragePolicy that planned the move.
    pub policy: String,
    /// Tier the volume is on.
    pub from: Tier,
    /// Tier the volume moves to.
    pub to: Tier,
    /// Mayastor pools of the target tier, as classified when the move was planned.
    #[schemars(length(min = 1))]
    pub target_pools: Vec<String>,
    /// Stop once the new replica is synced and keep the old one.
    #[serde(default)]
    pub preservation_mode: bool,
    /// Abort (keeping the data where it is) if not done within this many seconds per replica
    /// copy the move makes (`status.copies`; one until the preflight has counted them).
    #[schemars(range(min = 60, max = 172_800))]
    pub timeout_seconds: u64,
    /// Why the planner wanted the move.
    #[serde(default)]
    pub reason: String,
}

/// Where a migration is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MigrationPhase {
    /// Preflight checks: volume online and published, steering possible, target space.
    Analyzing,
    /// Adding a replica on the target tier.
    ScalingUp,
    /// Waiting for the new replica to be rebuilt and Online.
    WaitingSync,
    /// Removing one old replica.
    ScalingDown,
    /// Every replica is on the target tier (or, in preservation mode, a synced copy is).
    Completed,
    /// Stopped without losing data; the volume keeps at least the replicas it started with.
    Aborted,
}

impl VolumeMigrationSpec {
    /// Seconds a migration in `status` may run before it is aborted: `timeoutSeconds` for each
    /// replica copy it makes, so that every rebuild gets the policy's `migrationTimeout` however
    /// many replicas the volume has (one copy until the preflight has counted them).
    pub fn deadline_seconds(&self, status: &VolumeMigrationStatus) -> u64 {
        self.timeout_seconds * u64::from(status.copies.unwrap_or(1).max(1))
    }

    /// The timeout per replica copy (`timeoutSeconds`) of a migration aborted in `status` for
    /// running out of time while copying; `None` for any other end, and for a timeout before
    /// it started (nothing was copied: the next attempt may well start).
    pub fn timed_out_after(&self, status: &VolumeMigrationStatus) -> Option<u64> {
        let copying = !status.message.starts_with(NOT_STARTED_PREFIX);
        (status.abort_reason.as_deref() == Some(TIMEOUT_REASON) && copying)
            .then_some(self.timeout_seconds)
    }

    /// How far a migration in `status` got within its deadline, and what that pace means for
    /// the timeout: the copies done (whole ones plus the current rebuild's percentage) and the
    /// `migrationTimeout` per copy, in whole minutes rounded up, that the pace extrapolates to.
    /// `None` before the preflight counted the copies or while nothing has been copied.
    pub fn pace(&self, status: &VolumeMigrationStatus) -> Option<Pace> {
        let copies = status.copies?.max(1);
        // `remaining` still lists the old replica whose replacement is being copied.
        let left = (status.remaining.len() as u64).clamp(1, u64::from(copies));
        let whole = u64::from(copies) - left;
        let percent = whole * 100 + u64::from(status.rebuild_progress.unwrap_or(0).min(100));
        if percent == 0 {
            return None;
        }
        let needed = self.deadline_seconds(status) * u64::from(copies) * 100 / percent;
        Some(Pace {
            copies_done: percent as f64 / 100.0,
            copies,
            minutes_per_copy: needed.div_ceil(u64::from(copies)).div_ceil(60),
        })
    }
}

/// What [`VolumeMigrationSpec::pace`] found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pace {
    /// Replica copies done, the current one counted by its rebuild progress.
    pub copies_done: f64,
    /// Replica copies the migration makes.
    pub copies: u8,
    /// `migrationTimeout` per copy, whole minutes, at which the pace would have finished.
    pub minutes_per_copy: u64,
}

impl MigrationPhase {
    /// Completed or Aborted.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Aborted)
    }
}

/// One replica as the migration knows it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaRef {
    /// Replica UUID (key of the volume's replica_topology).
    pub uuid: String,
    /// Pool holding it.
    pub pool: String,
    /// Node of that pool.
    pub node: String,
}

/// Kind of cordon the engine placed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum CordonKind {
    /// A Mayastor pool cordon (2.10 and later).
    Pool,
    /// A Mayastor node cordon.
    Node,
}

/// A cordon placed by this migration. Recorded before it is placed, removed in every outcome.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CordonRef {
    /// Pool or node.
    pub kind: CordonKind,
    /// Pool or node id.
    pub id: String,
    /// Identifies this migration: the node cordon's label, or the value of the
    /// `couchestor-cordon` pool label that marks a pool cordon as the engine's own.
    pub label: String,
}

/// Observed progress of a migration, written by the controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMigrationStatus {
    /// Current phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<MigrationPhase>,
    /// Replica count when the migration started; never gone below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_replicas: Option<u8>,
    /// Old replicas still to be replaced, in order.
    #[serde(default)]
    pub remaining: Vec<ReplicaRef>,
    /// Replica copies this migration makes: the old replicas off the target tier at the
    /// preflight (one in preservation mode). The timeout is `spec.timeoutSeconds` per copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<u8>,
    /// Every replica this migration has seen (old ones and the ones it added).
    #[serde(default)]
    pub known: Vec<ReplicaRef>,
    /// The replica being added now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_replica: Option<ReplicaRef>,
    /// Rebuild progress of the new replica, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuild_progress: Option<u8>,
    /// Cordons currently placed by this migration.
    #[serde(default)]
    pub cordons: Vec<CordonRef>,
    /// Scale-downs that removed the wrong replica and were retried.
    #[serde(default)]
    pub retries: u32,
    /// When the migration started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When it reached Completed or Aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// Human-readable state or reason.
    #[serde(default)]
    pub message: String,
    /// Machine-readable reason of an abort (e.g. Unpublished, NoEligibleTarget, WrongPlacement,
    /// RebuildFailed, CannotSteer, Timeout, Cancelled, UnsupportedMayastorVersion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_reason: Option<String>,
    /// `Steerable`: whether this Mayastor's scale-down can be steered (reason `PoolCordon`,
    /// `NodeCordon` or `UnsupportedMayastorVersion`). `VersionMatch` (only with
    /// `--mayastor-version`): whether the declared version agrees with the io-engine nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(timeout_seconds: u64) -> VolumeMigrationSpec {
        VolumeMigrationSpec {
            volume: "pvc-v".into(),
            volume_id: "v".into(),
            policy: "p".into(),
            from: Tier::Hot,
            to: Tier::Cold,
            target_pools: vec!["sata-0".into()],
            preservation_mode: false,
            timeout_seconds,
            reason: String::new(),
        }
    }

    #[test]
    fn only_a_timeout_while_copying_is_remembered_with_its_timeout() {
        let spec = spec(600);
        let aborted = |reason: &str, message: &str| VolumeMigrationStatus {
            phase: Some(MigrationPhase::Aborted),
            abort_reason: Some(reason.into()),
            message: message.into(),
            ..Default::default()
        };
        let copying = aborted(
            TIMEOUT_REASON,
            "not done within 600s: timed out in WaitingSync",
        );
        assert_eq!(spec.timed_out_after(&copying), Some(600));
        let not_started = aborted(
            TIMEOUT_REASON,
            &format!("{NOT_STARTED_PREFIX} 600s; nothing had been changed"),
        );
        assert_eq!(spec.timed_out_after(&not_started), None);
        assert_eq!(spec.timed_out_after(&aborted("RebuildFailed", "x")), None);
    }

    #[test]
    fn the_deadline_is_the_timeout_once_per_replica_copy() {
        let spec = spec(1800);
        let counted = |copies| VolumeMigrationStatus {
            copies,
            ..Default::default()
        };
        // Before the preflight has counted the copies: one timeout.
        assert_eq!(spec.deadline_seconds(&counted(None)), 1800);
        assert_eq!(spec.deadline_seconds(&counted(Some(1))), 1800);
        assert_eq!(spec.deadline_seconds(&counted(Some(3))), 5400);
        // Nothing to copy still leaves one timeout for the preflight.
        assert_eq!(spec.deadline_seconds(&counted(Some(0))), 1800);
    }

    #[test]
    fn the_pace_extrapolates_copies_done_to_the_timeout_each_copy_needed() {
        let spec = spec(1800);
        let old = |n: usize| {
            (0..n)
                .map(|i| ReplicaRef {
                    uuid: format!("r{i}"),
                    pool: format!("nvme-{i}"),
                    node: format!("n{i}"),
                })
                .collect::<Vec<_>>()
        };
        let at = |copies, remaining, progress| VolumeMigrationStatus {
            copies,
            remaining: old(remaining),
            rebuild_progress: progress,
            ..Default::default()
        };
        // One copy, 60 % rebuilt in 30 min: 50 min for the copy.
        let p = spec.pace(&at(Some(1), 1, Some(60))).unwrap();
        assert_eq!((p.copies_done, p.copies, p.minutes_per_copy), (0.6, 1, 50));
        // Three copies in 90 min: one done, the second 50 % rebuilt (two old ones left).
        // 1.5 of 3 in 5400 s: 10,800 s for the move, 60 min per copy.
        let p = spec.pace(&at(Some(3), 2, Some(50))).unwrap();
        assert_eq!((p.copies_done, p.minutes_per_copy), (1.5, 60));
        // Between copies the progress is unset: the whole copies still count.
        let p = spec.pace(&at(Some(2), 1, None)).unwrap();
        assert_eq!((p.copies_done, p.minutes_per_copy), (1.0, 60));
        // Rounded up to whole minutes: 7 % in 1800 s is 25,714 s, 428.6 min.
        assert_eq!(
            spec.pace(&at(Some(1), 1, Some(7)))
                .unwrap()
                .minutes_per_copy,
            429
        );
        // Nothing copied, or not counted yet: no pace.
        assert_eq!(spec.pace(&at(Some(1), 1, Some(0))), None);
        assert_eq!(spec.pace(&at(Some(2), 2, None)), None);
        assert_eq!(spec.pace(&at(None, 0, Some(50))), None);
    }
}
