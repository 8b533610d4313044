//! The per-policy pipeline: observe -> decide -> act -> update status.

use std::sync::Arc;
use std::time::Instant;

use couchestor_common::layout::TierLayout;
use couchestor_common::plan::{self, HoldReason, Input, Limits, Plan};
use couchestor_common::storagepolicy::{PlannedMove, PolicyPhase};
use couchestor_common::window::Window;
use couchestor_common::{StoragePolicy, StoragePolicyStatus, Tier};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::core::Selector;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use crate::context::{Context, Error};
use crate::metrics::{PHASES, TIER_LABELS, phase_label};
use crate::mover::launch::{self, PolicyMigrations};
use crate::mover::steer::{self, Assessment};
use crate::observe::{Observation, observe};
use crate::status::{ConditionSet, StatusInputs, build_status};

/// Field manager for everything the controller applies.
pub const MANAGER: &str = "couchestor-controller";

/// Everything decided for one policy in one cycle (also what `explain` prints).
pub struct Decision {
    /// Migrations already known for this policy.
    pub migrations: PolicyMigrations,
    /// What was observed.
    pub observation: Observation,
    /// The plan.
    pub plan: Plan,
    /// Whether moves are only reported.
    pub dry_run: bool,
    /// Whether the migration window is open.
    pub window_open: bool,
    /// How moves would be steered on this Mayastor, or `None` when it could not be assessed
    /// (Mayastor did not answer).
    pub steering: Option<Assessment>,
}

impl Decision {
    /// Why moves are refused on this Mayastor, if they are.
    pub fn moves_refused(&self) -> Option<String> {
        self.steering
            .as_ref()
            .filter(|a| a.steering.is_none())
            .map(|a| a.message.clone())
    }
}

/// Observes and decides for one policy. The inner error says why the spec is unusable (the
/// policy goes to phase Error); the outer one is a failed API call, retried like any other.
pub async fn decide(
    ctx: &Context,
    policy: &StoragePolicy,
    now: i64,
) -> Result<Result<Decision, String>, Error> {
    let layout = match TierLayout::from_spec(&policy.spec) {
        Ok(l) => l,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let window_open = match policy.spec.migration_window.as_ref().map(Window::new) {
        Some(Ok(w)) => w.is_open(now),
        Some(Err(e)) => return Ok(Err(e.to_string())),
        None => true,
    };
    let volumes = match volume_selector(policy) {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    let summary = launch::summary(ctx).await?;
    let mut summary_policy = summary.per_policy;
    let migrations = summary_policy
        .remove(&policy.name_any())
        .unwrap_or_default();
    let mut observation = observe(
        ctx,
        policy,
        &layout,
        volumes.as_ref(),
        now,
        &summary.migrating,
    )
    .await;
    for w in &mut observation.volumes {
        if let Some(&abort) = summary.last_abort.get(&w.engine.name) {
            w.engine.after_abort(abort, &w.replica_tiers);
        }
    }
    let volumes: Vec<_> = observation
        .volumes
        .iter()
        .map(|w| w.engine.clone())
        .collect();
    let limits = Limits {
        enabled: policy.spec.enabled,
        cooldown_secs: std::time::Duration::from(policy.spec.cooldown_period).as_secs(),
        // The policy's own limit, and never more than the global budget left over.
        max_concurrent: policy.spec.max_concurrent_migrations.min(
            migrations.active
                + ctx
                    .settings
                    .max_concurrent_migrations
                    .saturating_sub(summary.active_total),
        ),
        active_migrations: migrations.active,
        headroom_percent: policy.spec.fast_tier_headroom_percent,
        migration_timeout_secs: launch::migration_timeout_secs(ctx, policy),
        window_open,
    };
    let plan = plan::plan(&Input {
        volumes: &volumes,
        tiers: &observation.tiers,
        boundaries: &layout.boundaries,
        limits,
        now,
    });
    let steering = match steer::assess(&ctx.hands()).await {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::debug!(error = %e, "cannot assess Mayastor steering this cycle");
            None
        }
    };
    Ok(Ok(Decision {
        migrations,
        observation,
        plan,
        dry_run: policy.spec.dry_run || ctx.settings.dry_run,
        window_open,
        steering,
    }))
}

/// The policy's `volumeSelector`, parsed; `None` selects every claim of the StorageClass. An
/// invalid one is an error naming the field: read as "no selector" it would widen the policy
/// to the whole class.
fn volume_selector(policy: &StoragePolicy) -> Result<Option<Selector>, String> {
    policy
        .spec
        .volume_selector
        .clone()
        .map(|s| Selector::try_from(s).map_err(|e| format!("invalid volumeSelector: {e}")))
        .transpose()
}

/// Reconciles one StoragePolicy.
pub async fn reconcile(policy: Arc<StoragePolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = policy.name_any();
    let started = Instant::now();
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let previous = policy.status.clone().unwrap_or_default();
    if let Some(wait) = too_soon(
        &previous,
        policy.metadata.generation,
        ctx.settings.reconcile_interval,
        now,
    ) {
        return Ok(Action::requeue(wait));
    }
    let prev_conditions = ConditionSet::from(&previous.conditions);
    let obj_ref = policy.object_ref(&());

    let mut launch_error = None;
    let status = match decide(&ctx, &policy, now).await? {
        Err(message) => {
            warn!(policy = %name, %message, "policy cannot be applied");
            ctx.metrics.forget_decision(&name);
            if prev_conditions.status("Ready") != Some("False") {
                publish(
                    &ctx,
                    &obj_ref,
                    EventType::Warning,
                    "InvalidPolicy",
                    &message,
                )
                .await;
            }
            build_status(&policy, &previous, StatusInputs::invalid(message))
        }
        Ok(d) => {
            // A failure to start the moves still reports what was observed, and says so.
            if let Err(e) = act(&ctx, &policy, &previous, &d).await {
                warn!(policy = %name, error = %e, "starting the planned migrations failed");
                if prev_conditions.reason("Ready") != Some("LaunchFailed") {
                    let note = format!("starting the planned migrations failed: {e}");
                    publish(&ctx, &obj_ref, EventType::Warning, "LaunchFailed", &note).await;
                }
                launch_error = Some(e);
            }
            report_transitions(&ctx, &obj_ref, &prev_conditions, &d).await;
            record_metrics(&ctx, &name, &d);
            let message = launch_error.as_ref().map(Error::to_string);
            build_status(
                &policy,
                &previous,
                StatusInputs::from_decision(&d).launch_failed(message),
            )
        }
    };
    let phase = status.phase;
    for p in PHASES {
        ctx.metrics
            .policy_phase
            .with_label_values(&[name.as_str(), phase_label(p)])
            .set(i64::from(phase == Some(p)));
    }
    apply_status(&ctx, &name, status).await?;
    if let Some(e) = launch_error {
        return Err(e); // counted as result="error" and retried by error_policy
    }
    let result = if phase == Some(PolicyPhase::Error) {
        "invalid"
    } else {
        "ok"
    };
    ctx.metrics
        .reconcile_total
        .with_label_values(&[&name, result])
        .inc();
    ctx.metrics
        .reconcile_duration
        .with_label_values(&[&name])
        .observe(started.elapsed().as_secs_f64());
    Ok(Action::requeue(ctx.settings.reconcile_interval))
}

/// How long to wait before reconciling again, when the status was written less than one
/// interval ago for the current spec. Writing the status (its `lastReconcileTime` changes every
/// time) wakes the watch that triggered the reconcile; without this, each reconcile would
/// start the next one at once instead of once per interval. A spec change (new generation)
/// is reconciled at once.
fn too_soon(
    status: &StoragePolicyStatus,
    generation: Option<i64>,
    interval: std::time::Duration,
    now: i64,
) -> Option<std::time::Duration> {
    if status.observed_generation != generation {
        return None;
    }
    let last = status.last_reconcile_time.as_ref()?.0.as_second();
    let age = u64::try_from(now - last).ok()?;
    let interval_secs = interval.as_secs();
    (age < interval_secs).then(|| std::time::Duration::from_secs(interval_secs - age))
}

/// Act: in dry-run, log each planned move and record an Event for it the first time it is
/// planned (not again every cycle while the plan stands: `previous` holds the last plan);
/// otherwise start a VolumeMigration per move (the migration engine runs them).
async fn act(
    ctx: &Context,
    policy: &StoragePolicy,
    previous: &StoragePolicyStatus,
    d: &Decision,
) -> Result<(), Error> {
    let name = policy.name_any();
    if !d.dry_run {
        let started = launch::launch(ctx, policy, &d.plan.moves, &d.observation).await?;
        if started > 0 {
            info!(policy = %name, started, "migrations started");
        }
        return Ok(());
    }
    for m in &d.plan.moves {
        let w = d
            .observation
            .volumes
            .iter()
            .find(|w| w.engine.name == m.volume);
        let text = format!(
            "would move {} from {} to {}: {} (heat {:.0} IOPS)",
            m.volume, m.from, m.to, m.reason, m.heat
        );
        info!(policy = %name, volume = %m.volume, from = %m.from, to = %m.to, heat = m.heat, "DRY-RUN: {text}");
        let known = previous
            .planned_moves
            .iter()
            .any(|p| p.volume == m.volume && p.from == m.from && p.to == m.to);
        if known {
            continue;
        }
        publish(
            ctx,
            &pv_ref(&m.volume),
            EventType::Normal,
            "DryRunMigration",
            &text,
        )
        .await;
        if let Some((ns, claim)) = w.and_then(|w| w.claim.as_ref()) {
            publish(
                ctx,
                &pvc_ref(ns, claim),
                EventType::Normal,
                "DryRunMigration",
                &text,
            )
            .await;
        }
    }
    Ok(())
}

/// Events on the policy when Prometheus or Mayastor go away or come back.
async fn report_transitions(
    ctx: &Context,
    policy_ref: &ObjectReference,
    prev: &ConditionSet<'_>,
    d: &Decision,
) {
    let unknown = "every volume's state is treated as unknown, nothing is demoted";
    let refused = d.moves_refused();
    let checks = [
        (
            "MetricsAvailable",
            &d.observation.metrics_error,
            "PrometheusUnavailable",
            "PrometheusRecovered",
            unknown,
        ),
        (
            "BackendReachable",
            &d.observation.backend_error,
            "BackendUnreachable",
            "BackendRecovered",
            unknown,
        ),
        (
            "AgentsReachable",
            &d.observation.agents_error,
            "AgentUnreachable",
            "AgentsRecovered",
            "pools on those nodes keep the media last reported; tiering continues",
        ),
        (
            "MovesSupported",
            &refused,
            "UnsupportedMayastorVersion",
            "MovesSupported",
            "moves are refused, planning and dry-run reporting continue",
        ),
    ];
    for (cond, error, down, up, consequence) in checks {
        // Mayastor did not answer the version check: support is unknown this cycle, which is
        // no recovery from a refusal (the condition goes Unknown, and no Event).
        if cond == "MovesSupported" && d.steering.is_none() {
            continue;
        }
        match (error, prev.status(cond)) {
            (Some(e), s) if s != Some("False") => {
                let note = format!("{e}; {consequence}");
                publish(ctx, policy_ref, EventType::Warning, down, &note).await;
            }
            (None, Some("False")) => {
                publish(ctx, policy_ref, EventType::Normal, up, "answering again").await
            }
            _ => {}
        }
    }
}

fn record_metrics(ctx: &Context, policy: &str, d: &Decision) {
    let m = &ctx.metrics;
    m.metrics_available
        .with_label_values(&[policy])
        .set(i64::from(d.observation.metrics_error.is_none()));
    m.planned_moves
        .with_label_values(&[policy])
        .set(d.plan.moves.len() as i64);
    m.prometheus_requests.set(ctx.eyes.requests() as i64);
    m.prometheus_query_seconds.set(ctx.eyes.query_seconds());
    m.heat_series.set(ctx.eyes.last_series() as i64);
    let mut counts = [0i64; 4];
    for w in &d.observation.volumes {
        counts[w.engine.tier.map_or(3, |t| t as usize)] += 1;
        if let Some(h) = w.engine.heat.iops() {
            m.volume_heat.with_label_values(&[policy]).observe(h);
        }
    }
    for (tier, n) in TIER_LABELS.iter().zip(counts) {
        m.volumes.with_label_values(&[policy, tier]).set(n);
    }
    let mut held = [0i64; HoldReason::LABELS.len()];
    for h in &d.plan.holds {
        held[h.reason.label_index()] += 1;
    }
    for (reason, n) in HoldReason::LABELS.iter().zip(held) {
        m.held_volumes.with_label_values(&[policy, reason]).set(n);
    }
}

/// Moves the plan wants, including those held only by the window or the concurrency limit.
pub fn planned_moves(d: &Decision) -> Vec<PlannedMove> {
    // One index instead of a scan per entry: a closed window can hold thousands of volumes.
    let watched: std::collections::HashMap<&str, &crate::observe::Watched> = d
        .observation
        .volumes
        .iter()
        .map(|w| (w.engine.name.as_str(), w))
        .collect();
    let claim = |v: &str| {
        let w = watched.get(v)?;
        w.claim.as_ref().map(|(ns, n)| format!("{ns}/{n}"))
    };
    let mut out: Vec<PlannedMove> = d
        .plan
        .moves
        .iter()
        .map(|m| PlannedMove {
            volume: m.volume.clone(),
            claim: claim(&m.volume),
            from: m.from,
            to: m.to,
            heat_iops: m.heat.round() as u64,
            reason: m.reason.to_string(),
        })
        .collect();
    for h in &d.plan.holds {
        if let HoldReason::WindowClosed { to } | HoldReason::ConcurrencyLimit { to } = h.reason
            && let Some(w) = watched.get(h.volume.as_str())
        {
            out.push(PlannedMove {
                volume: h.volume.clone(),
                claim: claim(&h.volume),
                // Window and concurrency holds only happen to volumes with a known tier.
                from: w.engine.tier.unwrap_or(Tier::Cold),
                to,
                heat_iops: w.engine.heat.iops().unwrap_or(0.0).round() as u64,
                reason: h.reason.to_string(),
            });
        }
    }
    out
}

async fn apply_status(ctx: &Context, name: &str, status: StoragePolicyStatus) -> Result<(), Error> {
    let api = Api::<StoragePolicy>::all(ctx.client.clone());
    let patch = serde_json::json!({
        "apiVersion": "storage.billyronks.io/v1",
        "kind": "StoragePolicy",
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// Records an Event; a failure to record is logged, never fatal.
pub async fn publish(
    ctx: &Context,
    on: &ObjectReference,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1024).collect()),
        action: "Tiering".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, on).await {
        warn!(reason, object = ?on.name, error = %e, "could not record event");
    }
}

/// A reference to a PersistentVolume, for Events.
pub fn pv_ref(name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolume".into()),
        name: Some(name.into()),
        ..Default::default()
    }
}

fn pvc_ref(ns: &str, name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        namespace: Some(ns.into()),
        name: Some(name.into()),
        ..Default::default()
    }
}

/// Error policy: log with context and retry after a short delay.
pub fn error_policy(policy: Arc<StoragePolicy>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(policy = %policy.name_any(), %error, "reconcile failed");
    ctx.metrics
        .reconcile_total
        .with_label_values(&[&policy.name_any(), "error"])
        .inc();
    Action::requeue(std::time::Duration::from_secs(15))
}

#[cfg(test)]
mod pacing_tests {
    use std::time::Duration;

    use couchestor_common::StoragePolicyStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    use super::too_soon;

    #[test]
    fn a_fresh_status_for_the_current_spec_waits_out_the_interval() {
        let written = |secs_ago: i64, generation: i64| StoragePolicyStatus {
            observed_generation: Some(generation),
            last_reconcile_time: Some(Time(Timestamp::from_second(1000 - secs_ago).unwrap())),
            ..Default::default()
        };
        let every = Duration::from_secs(60);
        assert_eq!(
            too_soon(&written(10, 3), Some(3), every, 1000),
            Some(Duration::from_secs(50))
        );
        assert_eq!(too_soon(&written(60, 3), Some(3), every, 1000), None);
        // The spec changed since: at once.
        assert_eq!(too_soon(&written(10, 3), Some(4), every, 1000), None);
        // Never reconciled, or a clock that went backwards: at once.
        assert_eq!(
            too_soon(&StoragePolicyStatus::default(), Some(1), every, 1000),
            None
        );
        assert_eq!(too_soon(&written(-30, 3), Some(3), every, 1000), None);
    }
}
