//! The `StoragePolicy` custom resource (`storage.billyronks.io/v1`, cluster-scoped).
//!
//! The CRD is generated from these types (`couchestor-controller crd`); every doc comment below
//! becomes `kubectl explain` text, and every `x_kube(validation)` rule is enforced by the API
//! server, so a bad policy is rejected before the controller ever sees it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::core::Duration;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::tier::Tier;

/// Rule shared by every duration field: Go duration syntax ("90s", "30m", "1h30m", "24h"),
/// strictly positive. CEL's `duration()` accepts exactly what `kube::core::Duration` parses.
const POSITIVE_DURATION: &str = "duration(self) > duration('0s')";

/// Density watermarks come in pairs (the policy's and each tier's).
const DENSITY_PAIR: &str = "has(self.highWatermarkIOPSPerTiB) == has(self.lowWatermarkIOPSPerTiB)";
const DENSITY_PAIR_MESSAGE: &str =
    "set both highWatermarkIOPSPerTiB and lowWatermarkIOPSPerTiB, or neither";
/// ... with the low one below the high one.
const DENSITY_ORDER: &str = "!has(self.lowWatermarkIOPSPerTiB) || !has(self.highWatermarkIOPSPerTiB) || self.lowWatermarkIOPSPerTiB < self.highWatermarkIOPSPerTiB";
const DENSITY_ORDER_MESSAGE: &str =
    "lowWatermarkIOPSPerTiB must be lower than highWatermarkIOPSPerTiB";

/// Desired tiering behaviour for the volumes of one StorageClass.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "storage.billyronks.io",
    version = "v1",
    kind = "StoragePolicy",
    plural = "storagepolicies",
    shortname = "sp",
    status = "StoragePolicyStatus",
    printcolumn = r#"{"name":"HIGH IOPS","type":"integer","jsonPath":".spec.highWatermarkIOPS"}"#,
    printcolumn = r#"{"name":"LOW IOPS","type":"integer","jsonPath":".spec.lowWatermarkIOPS"}"#,
    printcolumn = r#"{"name":"PHASE","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"WATCHED","type":"integer","jsonPath":".status.watchedVolumes"}"#,
    printcolumn = r#"{"name":"MIGRATIONS","type":"integer","jsonPath":".status.activeMigrations"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self.lowWatermarkIOPS < self.highWatermarkIOPS")
    .message("lowWatermarkIOPS must be lower than highWatermarkIOPS")
    .field_path(".lowWatermarkIOPS"))]
#[x_kube(validation = Rule::new("!has(self.heatHalfLife) || duration(self.heatHalfLife) <= duration(self.samplingWindow)")
    .message("heatHalfLife must not be longer than samplingWindow")
    .field_path(".heatHalfLife"))]
#[x_kube(validation = Rule::new(DENSITY_PAIR).message(DENSITY_PAIR_MESSAGE).field_path(".lowWatermarkIOPSPerTiB"))]
#[x_kube(validation = Rule::new(DENSITY_ORDER).message(DENSITY_ORDER_MESSAGE).field_path(".lowWatermarkIOPSPerTiB"))]
#[x_kube(validation = Rule::new("!has(self.sustainedWindow) || duration(self.sustainedWindow) >= duration(self.samplingWindow)")
    .message("sustainedWindow must not be shorter than samplingWindow")
    .field_path(".sustainedWindow"))]
#[serde(rename_all = "camelCase")]
pub struct StoragePolicySpec {
    /// Name of the StorageClass whose volumes this policy manages. Only PersistentVolumes
    /// provisioned from this class (and matching volumeSelector, if set) are considered.
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: String,

    /// Heat (decayed IOPS) above which a volume on a slower tier is promoted to NVMe.
    #[serde(rename = "highWatermarkIOPS")]
    #[schemars(range(min = 1, max = 10_000_000))]
    pub high_watermark_iops: u32,

    /// Heat (decayed IOPS) below which a volume on NVMe is demoted to SATA. Must be lower than
    /// highWatermarkIOPS; volumes in between stay where they are (hysteresis).
    #[serde(rename = "lowWatermarkIOPS")]
    #[schemars(range(min = 0, max = 10_000_000))]
    pub low_watermark_iops: u32,

    /// I/O density (heat per TiB of volume size) above which a volume may be promoted to NVMe.
    /// Optional; set together with lowWatermarkIOPSPerTiB. A byte of NVMe is worth most under
    /// the densest volumes, so with density watermarks a promotion needs both the heat above
    /// highWatermarkIOPS and the density above this, and a volume is demoted when its heat
    /// falls below lowWatermarkIOPS or its density below lowWatermarkIOPSPerTiB. Volumes
    /// under 1 GiB count as 1 GiB. Example: 2048 (2 IOPS per GiB).
    #[serde(
        default,
        rename = "highWatermarkIOPSPerTiB",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 1_000_000_000))]
    pub high_watermark_iops_per_tib: Option<u32>,

    /// I/O density (heat per TiB of volume size) below which a volume on NVMe is demoted.
    /// Must be lower than highWatermarkIOPSPerTiB; set both or neither.
    #[serde(
        default,
        rename = "lowWatermarkIOPSPerTiB",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0, max = 1_000_000_000))]
    pub low_watermark_iops_per_tib: Option<u32>,

    /// How much history the heat score looks at, as a Go duration ("1h", "30m").
    /// Between 5m and 168h.
    #[serde(default = "default_sampling_window")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('5m') && duration(self) <= duration('168h')")
        .message("samplingWindow must be a duration between 5m and 168h, e.g. \"1h\""))]
    pub sampling_window: Duration,

    /// Half-life of the exponential decay applied to IOPS samples inside samplingWindow.
    /// Recent I/O weighs more. Defaults to a quarter of samplingWindow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(POSITIVE_DURATION).message("heatHalfLife must be a positive duration, e.g. \"15m\""))]
    pub heat_half_life: Option<Duration>,

    /// A longer window over which a volume must also have been hot, on average, to be
    /// promoted: promotion needs the mean IOPS over this window above the watermark as well,
    /// so a volume that is busy for one hour of a daily cycle does not take NVMe room it would
    /// then hold for a whole cooldown. Between samplingWindow and 72h; defaults to
    /// cooldownPeriod within those bounds. The controller keeps this history itself, hourly:
    /// one coarse query over the window when it starts, then every regular heat query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('5m') && duration(self) <= duration('72h')")
        .message("sustainedWindow must be a duration between 5m and 72h, e.g. \"24h\""))]
    pub sustained_window: Option<Duration>,

    /// Minimum time between two moves of the same volume ("24h"). Prevents ping-pong.
    /// Recorded on the PV as annotation storage.billyronks.io/last-migration.
    #[serde(default = "default_cooldown")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('0s') && duration(self) <= duration('8760h')")
        .message("cooldownPeriod must be a duration between 0s and 8760h, e.g. \"24h\""))]
    pub cooldown_period: Duration,

    /// Label selector over Mayastor pool labels (GET /v0/pools spec.labels) choosing the fast
    /// (NVMe) tier. Defaults to pools labelled couchestor-tier=nvme.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvme_pool_selector: Option<LabelSelector>,

    /// Label selector over Mayastor pool labels choosing the capacity (SATA) tier.
    /// Defaults to pools labelled couchestor-tier=sata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sata_pool_selector: Option<LabelSelector>,

    /// Optional ordered tier list, hottest first, for three-tier setups (hot, warm, cold).
    /// When set it replaces nvmePoolSelector/sataPoolSelector and the top-level watermarks
    /// decide only between the first two tiers unless a tier sets its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 3))]
    #[x_kube(validation = Rule::new("self.all(t, self.exists_one(u, u.name == t.name))")
        .message("tier names must be unique"))]
    #[x_kube(validation = Rule::new("self.size() < 2 || self[0].name == 'hot'")
        .message("the first tier must be 'hot'"))]
    #[x_kube(validation = Rule::new("!has(self[self.size() - 1].highWatermarkIOPS) && !has(self[self.size() - 1].lowWatermarkIOPS) && !has(self[self.size() - 1].highWatermarkIOPSPerTiB) && !has(self[self.size() - 1].lowWatermarkIOPSPerTiB)")
        .message("the coldest (last) tier takes no watermarks: volumes leave it by the watermarks of the tier above"))]
    pub tiers: Option<Vec<TierSpec>>,

    /// Selects which PersistentVolumeClaims (by their labels) this policy manages within
    /// storageClassName. Empty means all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_selector: Option<LabelSelector>,

    /// When set, migrations only start inside this window. Planning and dry-run reporting
    /// continue outside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration_window: Option<MigrationWindow>,

    /// Upper bound of migrations this policy runs at the same time.
    #[serde(default = "default_max_concurrent")]
    #[schemars(range(min = 1, max = 50))]
    pub max_concurrent_migrations: u32,

    /// Time each replica copy of a migration may take: a migration that has not completed
    /// within this time for every replica it copies (three for a 3-replica volume, one in
    /// preservation mode) is aborted, keeping the data. The volume is then not moved again
    /// until this allows more time per copy than the aborted migration had (or that
    /// VolumeMigration is deleted), including to consolidate a volume the abort left on two
    /// tiers. Between 1m and 48h.
    #[serde(default = "default_migration_timeout")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1m') && duration(self) <= duration('48h')")
        .message("migrationTimeout must be a duration between 1m and 48h, e.g. \"30m\""))]
    pub migration_timeout: Duration,

    /// Master switch. A disabled policy keeps reporting status but plans and moves nothing.
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// Plan and report (status.plannedMoves, Events, DRY-RUN log lines) without moving data.
    #[serde(default)]
    pub dry_run: bool,

    /// Copy to the target tier but keep the old replica: the move stops once the new replica
    /// is synced. Use while building trust in a new cluster.
    #[serde(default)]
    pub preservation_mode: bool,

    /// Share of each fast tier's capacity kept free; the planner never fills a tier past
    /// (100 - headroom) percent.
    #[serde(default = "default_headroom")]
    #[schemars(range(min = 0, max = 90))]
    pub fast_tier_headroom_percent: u8,
}

/// One tier of an ordered `tiers` list.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.lowWatermarkIOPS) || !has(self.highWatermarkIOPS) || self.lowWatermarkIOPS < self.highWatermarkIOPS")
    .message("lowWatermarkIOPS must be lower than highWatermarkIOPS")
    .field_path(".lowWatermarkIOPS"))]
#[x_kube(validation = Rule::new(DENSITY_PAIR).message(DENSITY_PAIR_MESSAGE).field_path(".lowWatermarkIOPSPerTiB"))]
#[x_kube(validation = Rule::new(DENSITY_ORDER).message(DENSITY_ORDER_MESSAGE).field_path(".lowWatermarkIOPSPerTiB"))]
#[serde(rename_all = "camelCase")]
pub struct TierSpec {
    /// Tier name: hot (NVMe), warm (SATA) or cold (SATA or the erasure-coded cold tier).
    pub name: Tier,
    /// Label selector over Mayastor pool labels choosing this tier's pools.
    pub pool_selector: LabelSelector,
    /// Heat above which a volume on a colder tier is promoted into this tier.
    /// Defaults to the policy's highWatermarkIOPS for the first tier.
    #[serde(
        default,
        rename = "highWatermarkIOPS",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 10_000_000))]
    pub high_watermark_iops: Option<u32>,
    /// Heat below which a volume on this tier is demoted to the next colder tier.
    /// Defaults to the policy's lowWatermarkIOPS for the first tier.
    #[serde(
        default,
        rename = "lowWatermarkIOPS",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0, max = 10_000_000))]
    pub low_watermark_iops: Option<u32>,
    /// Density (IOPS per TiB of volume size) above which a volume on a colder tier may be
    /// promoted into this tier; set together with lowWatermarkIOPSPerTiB. Defaults to the
    /// policy's highWatermarkIOPSPerTiB for the first tier.
    #[serde(
        default,
        rename = "highWatermarkIOPSPerTiB",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 1_000_000_000))]
    pub high_watermark_iops_per_tib: Option<u32>,
    /// Density below which a volume on this tier is demoted to the next colder tier.
    #[serde(
        default,
        rename = "lowWatermarkIOPSPerTiB",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0, max = 1_000_000_000))]
    pub low_watermark_iops_per_tib: Option<u32>,
}

/// A recurring window in which migrations may start.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MigrationWindow {
    /// Standard 5-field cron expression (minute hour day-of-month month day-of-week), in UTC,
    /// at which the window opens, e.g. "0 22 * * *" for 22:00 every day.
    #[schemars(length(min = 9, max = 100))]
    #[x_kube(validation = Rule::new("self.split(' ').filter(f, f != '').size() == 5")
        .message("schedule must be a 5-field cron expression such as \"0 22 * * *\""))]
    pub schedule: String,
    /// How long the window stays open after each opening, e.g. "4h".
    #[x_kube(validation = Rule::new("duration(self) >= duration('1m') && duration(self) <= duration('168h')")
        .message("duration must be between 1m and 168h"))]
    pub duration: Duration,
}

/// Lifecycle phase of a policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PolicyPhase {
    /// Accepted but not reconciled yet.
    Pending,
    /// Reconciling and (unless dry-run) migrating.
    Active,
    /// spec.enabled is false.
    Disabled,
    /// The policy cannot be applied; see the Ready condition.
    Error,
}

/// Observed state of a StoragePolicy, written by the controller with server-side apply.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoragePolicyStatus {
    /// Pending, Active, Disabled or Error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<PolicyPhase>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard conditions: Ready, MetricsAvailable, BackendReachable, AgentsReachable and
    /// MovesSupported (only Ready while the policy is in phase Error).
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Volumes matched by this policy.
    #[serde(default)]
    pub watched_volumes: u32,
    /// Matched volumes currently on the hot tier.
    #[serde(default)]
    pub hot_volumes: u32,
    /// Matched volumes currently on the warm tier.
    #[serde(default)]
    pub warm_volumes: u32,
    /// Matched volumes currently on the cold tier.
    #[serde(default)]
    pub cold_volumes: u32,
    /// Matched volumes whose heat or current tier is unknown (no metrics, no backend answer).
    #[serde(default)]
    pub unknown_volumes: u32,
    /// Migrations in progress.
    #[serde(default)]
    pub active_migrations: u32,
    /// Completed VolumeMigrations of this policy that still exist (deleting finished ones
    /// lowers it; `storage_operator_migrations_total` counts every outcome and never goes
    /// down).
    #[serde(default)]
    pub total_migrations: u32,
    /// Failed or aborted VolumeMigrations of this policy that still exist (deleting them after
    /// a look, as the runbooks suggest, lowers it; `storage_operator_migrations_total` keeps
    /// the count).
    #[serde(default)]
    pub failed_migrations: u32,
    /// When the controller last finished a reconcile of this policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconcile_time: Option<Time>,
    /// Most recent migrations, newest first (bounded).
    #[serde(default)]
    pub migration_history: Vec<MigrationRecord>,
    /// In dry-run: the moves the controller would make now, in order, with reasons.
    #[serde(default)]
    pub planned_moves: Vec<PlannedMove>,
}

/// One finished (or aborted) migration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationRecord {
    /// PersistentVolume name.
    pub volume: String,
    /// Tier the volume left.
    pub from: Tier,
    /// Tier the volume moved to.
    pub to: Tier,
    /// When the migration started.
    pub started_at: Time,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// Succeeded, Failed or Aborted.
    pub result: String,
    /// Why it moved, or why it failed.
    pub message: String,
}

/// A move the planner would make.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlannedMove {
    /// PersistentVolume name.
    pub volume: String,
    /// Claim namespace/name, when the PV is bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    /// Current tier.
    pub from: Tier,
    /// Target tier.
    pub to: Tier,
    /// Heat (decayed IOPS) that drove the decision, rounded.
    pub heat_iops: u64,
    /// Human-readable reason.
    pub reason: String,
}

/// Upper bound of `sustainedWindow`, and of its default.
pub const MAX_SUSTAINED_WINDOW_SECS: u64 = 72 * 3600;

impl StoragePolicySpec {
    /// The sustained window in effect: `sustainedWindow`, or `cooldownPeriod` clamped to
    /// `[samplingWindow, 72h]`.
    pub fn sustained_window(&self) -> std::time::Duration {
        let sampling = std::time::Duration::from(self.sampling_window);
        self.sustained_window.map(Into::into).unwrap_or_else(|| {
            std::time::Duration::from(self.cooldown_period)
                .min(std::time::Duration::from_secs(MAX_SUSTAINED_WINDOW_SECS))
                .max(sampling)
        })
    }
}

fn default_sampling_window() -> Duration {
    "1h".parse().expect("valid literal")
}
fn default_cooldown() -> Duration {
    "24h".parse().expect("valid literal")
}
fn default_migration_timeout() -> Duration {
    "30m".parse().expect("valid literal")
}
fn default_max_concurrent() -> u32 {
    2
}
fn default_headroom() -> u8 {
    10
}
fn default_true() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn defaults_fill_in_from_minimal_json() {
        let spec: StoragePolicySpec = serde_json::from_value(serde_json::json!({
            "storageClassName": "mayastor",
            "highWatermarkIOPS": 5000,
            "lowWatermarkIOPS": 500
        }))
        .unwrap();
        assert_eq!(spec.high_watermark_iops, 5000);
        assert_eq!(spec.low_watermark_iops, 500);
        assert_eq!(
            std::time::Duration::from(spec.sampling_window).as_secs(),
            3600
        );
        assert_eq!(
            std::time::Duration::from(spec.cooldown_period).as_secs(),
            86_400
        );
        assert_eq!(spec.max_concurrent_migrations, 2);
        assert!(spec.enabled && !spec.dry_run && !spec.preservation_mode);
    }

    #[test]
    fn sustained_window_defaults_to_the_cooldown_within_bounds() {
        let spec = |extra: serde_json::Value| -> StoragePolicySpec {
            let mut v = serde_json::json!({
                "storageClassName": "sc", "highWatermarkIOPS": 10, "lowWatermarkIOPS": 1
            });
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            serde_json::from_value(v).unwrap()
        };
        let secs = |s: StoragePolicySpec| s.sustained_window().as_secs();
        assert_eq!(secs(spec(serde_json::json!({}))), 86_400);
        assert_eq!(
            secs(spec(serde_json::json!({"cooldownPeriod": "720h"}))),
            72 * 3600
        );
        assert_eq!(
            secs(spec(
                serde_json::json!({"cooldownPeriod": "10m", "samplingWindow": "2h"})
            )),
            7200
        );
        assert_eq!(
            secs(spec(serde_json::json!({"sustainedWindow": "6h"}))),
            6 * 3600
        );
    }

    #[test]
    fn field_names_users_type_are_kept_exactly() {
        let crd = serde_json::to_value(StoragePolicy::crd()).unwrap();
        let props = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"];
        for f in [
            "storageClassName",
            "highWatermarkIOPS",
            "lowWatermarkIOPS",
            "samplingWindow",
            "cooldownPeriod",
            "nvmePoolSelector",
            "sataPoolSelector",
            "maxConcurrentMigrations",
            "migrationTimeout",
            "enabled",
            "dryRun",
            "tiers",
            "volumeSelector",
            "migrationWindow",
            "highWatermarkIOPSPerTiB",
            "lowWatermarkIOPSPerTiB",
            "sustainedWindow",
        ] {
            assert!(props.get(f).is_some(), "CRD lacks spec.{f}");
            assert!(
                props[f]["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "spec.{f} has no description for kubectl explain"
            );
        }
        assert_eq!(crd["spec"]["scope"], "Cluster");
    }
}
