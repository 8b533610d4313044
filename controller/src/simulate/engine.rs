//! `--backend mayastor`: the controller's real move engine against the Mayastor simulator, in
//! virtual time.
//!
//! The simulator (`couchestor-mayastor-sim`, a faithful model of the Mayastor v0 REST API, not
//! Mayastor) serves in-process on a loopback port (127.0.0.1, never another host) with a virtual
//! clock this module moves. Every planning cycle observes pools and volumes over its REST API
//! with the controller's client, classifies pools into tiers by label and volumes by where their
//! replicas are (`observe::tier_capacities`, `TierLayout::volume_tier`), calls `plan::plan`
//! through [`policy::decide`], and starts each planned move as an in-memory
//! [`Migration`] driven by the mover's own step functions. Between samples, every migration is
//! stepped at the times the engine asks for (`mover::drive`: 200 ms after a phase change, 1 s
//! while waiting, 3 s after an error), the clock jumping from one step to the next.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use anyhow::Context as _;
use couchestor_common::Tier;
use couchestor_common::heat::Heat;
use couchestor_common::layout::{TierLayout, common_tier};
use couchestor_common::migration::{MigrationPhase, VolumeMigration};
use couchestor_common::plan;
use couchestor_common::split::LastAbort;
use couchestor_mayastor_sim::{RunningSim, Shared, World};
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

use super::audit;
use super::cluster::Cluster;
use super::migration::{Migration, Stepped};
use super::policy::{self, PolicyConfig, Watermarks};
use super::sim::{SimConfig, T0};
use super::world::{self, PROFILE, volume_uuid};
use crate::mayastor::MayastorClient;
use crate::mayastor::model::{Pool, Volume as MsVolume};
use crate::mover::drive::ERROR_BACKOFF;
use crate::mover::hands::Hands;
use crate::mover::launch;
use crate::observe::{pool_tiers, replica_nodes, replica_tiers, tier_capacities};

/// The StoragePolicy name the simulated migrations carry.
const POLICY: &str = "simulate";

/// The phases a completed move goes through, in order.
const FULL_PATH: [MigrationPhase; 5] = [
    MigrationPhase::Analyzing,
    MigrationPhase::ScalingUp,
    MigrationPhase::WaitingSync,
    MigrationPhase::ScalingDown,
    MigrationPhase::Completed,
];

/// Settings of the Mayastor backend.
#[derive(Clone, Debug, PartialEq)]
pub struct MayastorConfig {
    /// io-engine nodes, each with one NVMe and one SATA pool.
    pub nodes: usize,
    /// `migrationTimeout` of the simulated policy.
    pub migration_timeout: Duration,
}

/// What the engine did, and the audit (JSON key `mayastor`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EngineStats {
    /// Emulated Mayastor release.
    pub profile: String,
    /// Nodes (each with an NVMe and a SATA pool).
    pub nodes: usize,
    /// Rebuild speed of one replica, MiB/s (`--bandwidth-mib`).
    pub rebuild_mib_per_sec: f64,
    /// The policy's migration timeout, minutes.
    pub migration_timeout_minutes: f64,
    /// Volumes the tier model starts on the fast tier that fit on no set of NVMe pools (one
    /// replica per node): they start on the slow tier.
    pub initial_fallbacks: usize,
    /// VolumeMigrations started.
    pub migrations_started: u64,
    /// Ended Completed.
    pub migrations_completed: u64,
    /// Ended Aborted (data kept).
    pub migrations_aborted: u64,
    /// Still running at the end.
    pub migrations_in_flight: u64,
    /// Ended migrations by `storage_operator_migrations_total` status (success, failed,
    /// aborted).
    pub outcomes: BTreeMap<String, u64>,
    /// Aborts by reason (`abortReason`).
    pub abort_reasons: BTreeMap<String, u64>,
    /// The first abort message of each reason, for the record.
    pub abort_examples: BTreeMap<String, String>,
    /// Phase visits, terminal phases included (a multi-replica move visits ScalingUp,
    /// WaitingSync and ScalingDown once per replica it replaces).
    pub phases_visited: BTreeMap<String, u64>,
    /// Completed migrations that went Analyzing → ScalingUp → WaitingSync → ScalingDown →
    /// Completed (all of them, unless the engine skipped a phase).
    pub completed_through_every_phase: u64,
    /// Engine steps run (reconciles).
    pub engine_steps: u64,
    /// Steps that failed on a Mayastor error and were retried.
    pub transient_retries: u64,
    /// Replicas the simulator removed on scale-down.
    pub replica_removals: u64,
    /// Of those, healthy ones (the old, in-sync replica a move replaces).
    pub healthy_removals: u64,
    /// Audit checks of a volume's healthy replicas after an engine step, every one passed (a
    /// volume with fewer healthy replicas than it started with fails the run instead).
    pub audited_volume_steps: u64,
    /// Volumes whose replicas span both tiers at the end (an aborted multi-replica move).
    pub split_volumes_at_end: usize,
    /// Volumes whose tier changed without a completed migration (should be 0).
    pub tier_changes_outside_migrations: u64,
}

/// The running backend.
pub struct Engine {
    rt: tokio::runtime::Runtime,
    sim: Option<RunningSim>,
    /// The simulator's state, for the clock and the audit (in-process, no HTTP).
    shared: Shared,
    client: MayastorClient,
    cordon_lock: tokio::sync::Mutex<()>,
    layout: TierLayout,
    active: Vec<Migration>,
    /// Each volume's newest aborted migration.
    last_abort: Vec<Option<LastAbort>>,
    start_replicas: Vec<u8>,
    names: Vec<String>,
    /// Volume index by Mayastor UUID.
    index: HashMap<String, usize>,
    removals_seen: usize,
    stats: EngineStats,
}

/// The policy's tier layout: default selectors, `couchestor-tier=nvme` (hot) and `=sata` (cold).
fn layout() -> anyhow::Result<TierLayout> {
    let spec = serde_json::from_value(serde_json::json!({
        "storageClassName": "simulate",
        "highWatermarkIOPS": 1,
        "lowWatermarkIOPS": 0,
    }))?;
    Ok(TierLayout::from_spec(&spec)?)
}

/// The tier of volume `uuid` from where its replicas are in `world`.
fn world_tier(world: &World, layout: &TierLayout, uuid: &str) -> Option<Tier> {
    let v = world.volumes.get(uuid)?;
    let labels: Option<Vec<_>> = v
        .replicas
        .values()
        .map(|r| world.pools.get(&r.pool).map(|p| &p.labels))
        .collect();
    layout.volume_tier(labels?)
}

impl Engine {
    /// Builds the world for `cluster` (adjusting its initial placement for
    /// [`EngineStats::initial_fallbacks`]) and serves it on 127.0.0.1.
    pub fn start(
        cluster: &mut Cluster,
        cfg: &SimConfig,
        ms: &MayastorConfig,
    ) -> anyhow::Result<Self> {
        crate::cli::install_crypto_provider();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let rate = cfg.bandwidth_bps / (1024.0 * 1024.0);
        let t0 = (T0 as u64) * 1000;
        let built = world::build(cluster, ms.nodes, rate, cfg.seed, t0)?;
        let sim = rt
            .block_on(couchestor_mayastor_sim::spawn(
                built.world,
                ([127, 0, 0, 1], 0).into(),
            ))
            .context("serving the Mayastor simulator on 127.0.0.1")?;
        sim.shared().set_clock(t0)?;
        let client = MayastorClient::new(&sim.base_url())?;
        let shared = sim.shared().clone();
        let n = cluster.volumes.len();
        Ok(Self {
            rt,
            client,
            cordon_lock: tokio::sync::Mutex::new(()),
            layout: layout()?,
            active: Vec::new(),
            last_abort: vec![None; n],
            start_replicas: cluster.volumes.iter().map(|v| v.replicas).collect(),
            names: cluster.volumes.iter().map(|v| v.name.clone()).collect(),
            index: (0..n).map(|i| (volume_uuid(i), i)).collect(),
            removals_seen: 0,
            stats: EngineStats {
                profile: PROFILE.to_string(),
                nodes: ms.nodes,
                rebuild_mib_per_sec: rate,
                migration_timeout_minutes: ms.migration_timeout.as_secs_f64() / 60.0,
                initial_fallbacks: built.fallbacks,
                ..EngineStats::default()
            },
            sim: Some(sim),
            shared,
        })
    }

    /// Migrations running now.
    pub fn active_migrations(&self) -> u32 {
        self.active.len() as u32
    }

    /// Runs every engine step due up to `now` (Unix seconds), in time order, moving the
    /// simulator's clock to each; then updates the scoring tier of the volumes touched.
    pub fn advance_to(&mut self, cluster: &mut Cluster, now: i64) -> anyhow::Result<()> {
        let until = now as u64 * 1000;
        let mut touched = BTreeSet::new();
        while let Some(k) = (0..self.active.len())
            .filter(|&k| self.active[k].due_ms <= until)
            .min_by_key(|&k| (self.active[k].due_ms, k))
        {
            let at = self.active[k].due_ms;
            self.shared.set_clock(at)?;
            let hands = Hands {
                mayastor: &self.client,
                cordon_lock: &self.cordon_lock,
                mayastor_version: None,
            };
            let stamp = Timestamp::from_millisecond(at as i64)?;
            self.stats.engine_steps += 1;
            let volume = self.active[k].volume;
            touched.insert(volume);
            match self.rt.block_on(self.active[k].step(&hands, stamp)) {
                Ok(Stepped::Again(delay)) => self.active[k].due_ms = at + delay.as_millis() as u64,
                // What `mover::error_policy` does with a failed reconcile.
                Err(_) => {
                    self.stats.transient_retries += 1;
                    self.active[k].due_ms = at + ERROR_BACKOFF.as_millis() as u64;
                }
                Ok(Stepped::Finished(c)) => {
                    *self
                        .stats
                        .outcomes
                        .entry(c.status_label.into())
                        .or_default() += 1;
                    let m = self.active.remove(k);
                    self.finished(cluster, m, at)?;
                }
            }
            self.audit(volume, at)?;
        }
        self.shared.set_clock(until)?;
        let inner = self.shared.lock();
        // A volume still migrating switches tier when its migration completes (`finished`).
        let migrating: HashSet<usize> = self.active.iter().map(|m| m.volume).collect();
        for i in touched.into_iter().filter(|i| !migrating.contains(i)) {
            if let Some(t) = world_tier(&inner.world, &self.layout, &volume_uuid(i))
                && t != cluster.volumes[i].tier
            {
                self.stats.tier_changes_outside_migrations += 1;
                cluster.volumes[i].tier = t;
            }
        }
        Ok(())
    }

    /// Books a migration that reached Completed or Aborted at `at_ms`.
    fn finished(&mut self, cluster: &mut Cluster, m: Migration, at_ms: u64) -> anyhow::Result<()> {
        self.stats.transient_retries += m.retries;
        for p in &m.phases {
            *self
                .stats
                .phases_visited
                .entry(format!("{p:?}"))
                .or_default() += 1;
        }
        let at = (at_ms / 1000) as i64;
        match m.saved.phase {
            Some(MigrationPhase::Completed) => {
                let to = m.vm.spec.to;
                let now_on = {
                    let inner = self.shared.lock();
                    world_tier(&inner.world, &self.layout, &m.vm.spec.volume_id)
                };
                anyhow::ensure!(
                    now_on == Some(to),
                    "{} completed a move to {to}, but its replicas are on {now_on:?}",
                    m.vm.spec.volume
                );
                self.stats.migrations_completed += 1;
                let mut path = FULL_PATH.iter().peekable();
                for p in &m.phases {
                    path.next_if_eq(&p);
                }
                self.stats.completed_through_every_phase += u64::from(path.peek().is_none());
                cluster.complete(m.volume, to, at);
            }
            _ => {
                self.stats.migrations_aborted += 1;
                let reason = m
                    .saved
                    .abort_reason
                    .clone()
                    .unwrap_or_else(|| "Unknown".into());
                *self.stats.abort_reasons.entry(reason.clone()).or_default() += 1;
                self.stats
                    .abort_examples
                    .entry(reason)
                    .or_insert_with(|| format!("{}: {}", m.vm.spec.volume, m.saved.message));
                self.last_abort[m.volume] = Some(LastAbort::aborted(at, &m.vm.spec, &m.saved));
            }
        }
        Ok(())
    }

    /// The data-safety audit after a step of volume `i` at `at_ms` ([`audit`]).
    fn audit(&mut self, i: usize, at_ms: u64) -> anyhow::Result<()> {
        let inner = self.shared.lock();
        let world = &inner.world;
        audit::check_volume(
            world,
            &volume_uuid(i),
            &self.names[i],
            self.start_replicas[i],
            at_ms,
        )?;
        let (removed, healthy) =
            audit::check_removals(&world.removals[self.removals_seen..], |v| {
                self.index.get(v).map(|&i| self.start_replicas[i])
            })?;
        self.removals_seen = world.removals.len();
        self.stats.audited_volume_steps += 1;
        self.stats.replica_removals += removed;
        self.stats.healthy_removals += healthy;
        Ok(())
    }

    /// One planning cycle at `now`: observe over REST, `plan::plan`, start a migration per
    /// move (within the concurrency limit), and run the steps due right away.
    #[allow(clippy::too_many_arguments)]
    pub fn plan_cycle(
        &mut self,
        cluster: &mut Cluster,
        heats: &[Heat],
        sustained: &[Option<f64>],
        wm: Watermarks,
        cfg: &PolicyConfig,
        now: i64,
    ) -> anyhow::Result<()> {
        let client = &self.client;
        let (ms_volumes, pools): (Vec<MsVolume>, Vec<Pool>) = self.rt.block_on(async {
            Ok::<_, crate::mayastor::Error>((
                client.list_volumes().await?,
                client.list_pools().await?,
            ))
        })?;
        let (tiers, pools_by_tier) = tier_capacities(&self.layout, &pools);
        let pool_tiers = pool_tiers(&self.layout, &pools);
        let mut by_index: Vec<Option<&MsVolume>> = vec![None; cluster.volumes.len()];
        for v in &ms_volumes {
            if let Some(&i) = self.index.get(&v.spec.uuid) {
                by_index[i] = Some(v);
            }
        }
        let migrating: HashSet<usize> = self.active.iter().map(|m| m.volume).collect();
        let volumes: Vec<plan::Volume> = cluster
            .volumes
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let ms = by_index[i];
                // As `observe`: the tier holding every replica's pool, unknown otherwise.
                let replica_tiers = ms.map_or_else(Vec::new, |ms| replica_tiers(ms, &pool_tiers));
                let tier = common_tier(replica_tiers.iter().copied());
                let mut volume = plan::Volume {
                    name: v.name.clone(),
                    size_bytes: ms.map_or(0, |m| m.spec.size),
                    replicas: ms.map_or(1, |m| m.spec.num_replicas),
                    heat: heats[i],
                    sustained: sustained[i],
                    tier,
                    last_move: v.last_move,
                    pinned: None,
                    migrating: migrating.contains(&i),
                    nodes: ms.map(replica_nodes).unwrap_or_default(),
                    split: None,
                    timed_out_after: None,
                };
                // As `reconcile::decide`.
                if let Some(abort) = self.last_abort[i] {
                    volume.after_abort(abort, &replica_tiers);
                }
                volume
            })
            .collect();
        // `plan::plan` holds migrating volumes and starts at most `max_concurrent - active`.
        let active = self.active_migrations();
        for (i, m) in policy::decide(&volumes, &tiers, wm, cfg, active, now) {
            let target_pools = pools_by_tier.get(&m.to).cloned().unwrap_or_default();
            if target_pools.is_empty() {
                continue;
            }
            let vm = VolumeMigration::new(
                &launch::migration_name(&m, now),
                launch::spec_for(
                    &m,
                    POLICY,
                    volume_uuid(i),
                    target_pools,
                    false,
                    cfg.migration_timeout_secs,
                ),
            );
            self.active.push(Migration::new(vm, i, now as u64 * 1000));
            self.stats.migrations_started += 1;
        }
        self.advance_to(cluster, now)
    }

    /// Stops the simulator; the final figures.
    pub fn finish(mut self) -> anyhow::Result<EngineStats> {
        let mut stats = std::mem::take(&mut self.stats);
        stats.migrations_in_flight = self.active.len() as u64;
        for m in &self.active {
            stats.transient_retries += m.retries;
        }
        let sim = self.sim.take().expect("the simulator runs until finish");
        {
            let inner = sim.shared().lock();
            stats.split_volumes_at_end = (0..self.names.len())
                .filter(|&i| world_tier(&inner.world, &self.layout, &volume_uuid(i)).is_none())
                .count();
        }
        self.rt.block_on(sim.shutdown())?;
        Ok(stats)
    }
}
