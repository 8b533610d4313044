//! Between the planner and the engine: start a `VolumeMigration` per planned move, and
//! summarise existing ones for planning (who is migrating, how many run) and for status
//! (history, counters).

use std::collections::{HashMap, HashSet};

use couchestor_common::StoragePolicy;
use couchestor_common::migration::{
    CANCELLED_ANNOTATION, CANCELLED_TO_ANNOTATION, FINALIZER, MigrationPhase, POLICY_LABEL,
    VOLUME_LABEL, VolumeMigration, VolumeMigrationSpec,
};
use couchestor_common::plan::Move;
use couchestor_common::split::LastAbort;
use couchestor_common::storagepolicy::MigrationRecord;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use super::finish::report;
use crate::context::{Context, Error};
use crate::observe::Observation;

/// Most recent migrations kept in a policy's status.
pub const HISTORY_LIMIT: usize = 20;

/// What the existing VolumeMigrations say.
#[derive(Debug, Default)]
pub struct Summary {
    /// PVs with a migration in progress (any policy).
    pub migrating: HashSet<String>,
    /// Per PV, its newest aborted (or cancelled: the PV's
    /// `storage.billyronks.io/migration-cancelled` annotations) migration: retried only after
    /// the policy's cooldown, like a completed move, and where a move that stopped part-way
    /// was going ([`couchestor_common::split`]).
    pub last_abort: HashMap<String, LastAbort>,
    /// Migrations in progress across all policies.
    pub active_total: u32,
    /// Per policy: in progress, completed, aborted, and the newest finished ones first.
    pub per_policy: HashMap<String, PolicyMigrations>,
}

impl Summary {
    /// Records an aborted or cancelled migration of `pv`, keeping the newest per PV.
    fn record_abort(&mut self, pv: &str, abort: LastAbort) {
        self.last_abort
            .entry(pv.to_string())
            .and_modify(|e| *e = e.newest(abort))
            .or_insert(abort);
    }
}

/// One policy's migrations.
#[derive(Debug, Default)]
pub struct PolicyMigrations {
    /// In progress.
    pub active: u32,
    /// Completed.
    pub completed: u32,
    /// Aborted.
    pub failed: u32,
    /// Finished ones, newest first, at most [`HISTORY_LIMIT`].
    pub history: Vec<MigrationRecord>,
}

/// Lists every VolumeMigration and summarises them.
pub async fn summary(ctx: &Context) -> Result<Summary, Error> {
    let all = Api::<VolumeMigration>::all(ctx.client.clone())
        .list(&ListParams::default().labels(&ctx.settings.policy_selector))
        .await?;
    let mut s = Summary::default();
    let mut finished: HashMap<String, Vec<&VolumeMigration>> = HashMap::new();
    for vm in &all.items {
        let phase = vm.status.as_ref().and_then(|s| s.phase);
        let p = s.per_policy.entry(vm.spec.policy.clone()).or_default();
        match phase {
            Some(MigrationPhase::Completed) => p.completed += 1,
            Some(MigrationPhase::Aborted) => p.failed += 1,
            _ => {
                p.active += 1;
                s.active_total += 1;
                s.migrating.insert(vm.spec.volume.clone());
            }
        }
        if phase == Some(MigrationPhase::Aborted)
            && let Some(st) = vm.status.as_ref()
            && let Some(t) = st.finished_at.as_ref()
        {
            s.record_abort(
                &vm.spec.volume,
                LastAbort::aborted(t.0.as_second(), &vm.spec, st),
            );
        }
        if phase.is_some_and(MigrationPhase::is_terminal) {
            finished.entry(vm.spec.policy.clone()).or_default().push(vm);
        }
    }
    // A cancelled migration is deleted: its PV's annotations remember when, and where it was
    // going.
    for pv in ctx.pvs.state() {
        let annotations = pv.annotations();
        let at = annotations
            .get(CANCELLED_ANNOTATION)
            .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok());
        if let Some(at) = at {
            let to = annotations
                .get(CANCELLED_TO_ANNOTATION)
                .and_then(|t| t.parse().ok());
            s.record_abort(
                &pv.name_any(),
                LastAbort {
                    at: at.as_second(),
                    to,
                    timed_out_after: None,
                },
            );
        }
    }
    for (policy, mut vms) in finished {
        vms.sort_by_key(|vm| {
            std::cmp::Reverse(
                vm.status
                    .as_ref()
                    .and_then(|s| s.finished_at.clone())
                    .map(|t| t.0),
            )
        });
        let p = s.per_policy.entry(policy).or_default();
        p.history = vms.into_iter().take(HISTORY_LIMIT).map(record).collect();
    }
    ctx.metrics.active_migrations.set(i64::from(s.active_total));
    Ok(s)
}

fn record(vm: &VolumeMigration) -> MigrationRecord {
    let st = vm.status.clone().unwrap_or_default();
    MigrationRecord {
        volume: vm.spec.volume.clone(),
        from: vm.spec.from,
        to: vm.spec.to,
        started_at: st
            .started_at
            .or_else(|| vm.metadata.creation_timestamp.clone())
            .unwrap_or(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
        finished_at: st.finished_at,
        result: if st.phase == Some(MigrationPhase::Completed) {
            "Succeeded".into()
        } else {
            "Aborted".into()
        },
        message: st.message,
    }
}

/// Timeout per replica copy of a migration `policy` starts now, whole seconds: its
/// `migrationTimeout`, capped by `--migration-timeout-minutes`.
pub fn migration_timeout_secs(ctx: &Context, policy: &StoragePolicy) -> u64 {
    let timeout: std::time::Duration = policy.spec.migration_timeout.into();
    timeout_secs(timeout.min(ctx.settings.migration_timeout))
}

/// `timeout` in whole seconds, at least 60 (the CRD's minimum).
pub fn timeout_secs(timeout: std::time::Duration) -> u64 {
    timeout.as_secs().max(60)
}

/// The name of the migration of `m` started at `now` (Unix seconds).
pub fn migration_name(m: &Move, now: i64) -> String {
    format!("{}-{now}", m.volume)
}

/// The spec of the migration carrying out `m`: Mayastor volume `volume_id`, the target tier's
/// pools, and the timeout per replica copy in seconds ([`timeout_secs`]).
pub fn spec_for(
    m: &Move,
    policy: &str,
    volume_id: String,
    target_pools: Vec<String>,
    preservation_mode: bool,
    timeout_seconds: u64,
) -> VolumeMigrationSpec {
    VolumeMigrationSpec {
        volume: m.volume.clone(),
        volume_id,
        policy: policy.to_string(),
        from: m.from,
        to: m.to,
        target_pools,
        preservation_mode,
        timeout_seconds,
        reason: m.reason.to_string(),
    }
}

/// Creates a VolumeMigration for each move (the engine picks them up). Under the launch lock
/// and against a fresh listing: a volume that already has a migration in progress (started by
/// any policy) is skipped, and the global concurrency cap is never exceeded.
pub async fn launch(
    ctx: &Context,
    policy: &StoragePolicy,
    moves: &[Move],
    obs: &Observation,
) -> Result<u32, Error> {
    if moves.is_empty() {
        return Ok(0); // nothing to start: no second list of every migration, no lock
    }
    let _serial = ctx.launch_lock.lock().await;
    let fresh = summary(ctx).await?;
    let mut budget = ctx
        .settings
        .max_concurrent_migrations
        .saturating_sub(fresh.active_total);
    let api = Api::<VolumeMigration>::all(ctx.client.clone());
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let mut started = 0;
    for m in moves
        .iter()
        .filter(|m| !fresh.migrating.contains(&m.volume))
    {
        if budget == 0 {
            break;
        }
        let Some(w) = obs.volumes.iter().find(|w| w.engine.name == m.volume) else {
            continue;
        };
        let Some(volume_id) = w.volume_id.clone() else {
            continue;
        };
        let target_pools = obs.pools_by_tier.get(&m.to).cloned().unwrap_or_default();
        if target_pools.is_empty() {
            continue;
        }
        let mut vm = VolumeMigration::new(
            &migration_name(m, now),
            spec_for(
                m,
                &policy.name_any(),
                volume_id,
                target_pools,
                policy.spec.preservation_mode || ctx.settings.preservation_mode,
                migration_timeout_secs(ctx, policy),
            ),
        );
        let labels = vm.labels_mut();
        labels.extend(policy.labels().clone());
        labels.insert(POLICY_LABEL.into(), policy.name_any());
        labels.insert(VOLUME_LABEL.into(), m.volume.clone());
        vm.owner_references_mut()
            .push(policy.controller_owner_ref(&()).expect("policy has a uid"));
        vm.finalizers_mut().push(FINALIZER.into());
        match api.create(&PostParams::default(), &vm).await {
            Ok(created) => {
                started += 1;
                budget -= 1;
                let note = format!(
                    "moving {} from {} to {}: {}",
                    m.volume, m.from, m.to, m.reason
                );
                report(ctx, &created, EventType::Normal, "MigrationStarted", &note).await;
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(started)
}
