//! One step of a running migration: the timeout, the steering verdict, the phase's step, and
//! what the outcome does to the status. Shared by the controller's reconcile ([`super::reconcile`])
//! and by `simulate --backend mayastor`, which calls the same functions in virtual time.

use std::time::Duration;

use couchestor_common::migration::{
    MigrationPhase, NOT_STARTED_PREFIX, TIMEOUT_REASON, VolumeMigration, VolumeMigrationStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use tracing::{info, warn};

use super::hands::Hands;
use super::steer::{self, Assessment};
use super::steps::{self, AsyncSave, Step};
use super::undo;
use crate::context::Error;

/// Look again this long after a step that waits (e.g. for a rebuild).
pub const WAIT: Duration = Duration::from_secs(1);
/// Step again this long after a phase change.
pub const NEXT: Duration = Duration::from_millis(200);
/// Retry this long after a transient error.
pub const RETRY: Duration = Duration::from_secs(3);
/// Retry this long after a reconcile that failed outright (the controller's error policy).
pub const ERROR_BACKOFF: Duration = Duration::from_secs(5);

/// How a step left the migration.
#[derive(Debug)]
pub enum Settled {
    /// Still running: step again after this delay.
    Again(Duration),
    /// At its end: finish it, completed (`None`) or aborted with `(reason, message)`.
    Finished(Option<(&'static str, String)>),
}

/// Starts a step of a non-terminal migration at `now`: records the start on the first step and
/// the phase. True when the migration has run longer than its timeout (per replica copy, see
/// [`couchestor_common::migration::VolumeMigrationSpec::deadline_seconds`]).
pub fn begin(
    vm: &VolumeMigration,
    st: &mut VolumeMigrationStatus,
    phase: MigrationPhase,
    now: Timestamp,
) -> bool {
    let started = st.started_at.get_or_insert(Time(now)).0;
    st.phase = Some(phase);
    now.as_second() - started.as_second() > vm.spec.deadline_seconds(st) as i64
}

/// The deadline of a migration, for its messages: "1800s", or "5400s (1800s for each of 3
/// replica copies)".
fn deadline(vm: &VolumeMigration, st: &VolumeMigrationStatus) -> String {
    let total = vm.spec.deadline_seconds(st);
    match st.copies {
        Some(n) if n > 1 => format!(
            "{total}s ({}s for each of {n} replica copies)",
            vm.spec.timeout_seconds
        ),
        _ => format!("{total}s"),
    }
}

/// What a timed-out migration's pace says about its timeout, for the abort message: ", with
/// 1.5 of 3 copies done: at this pace a copy needs about 60 min (migrationTimeout 60m or more
/// would let it finish)", or nothing when no progress is known.
fn pace_note(vm: &VolumeMigration, st: &VolumeMigrationStatus) -> String {
    match vm.spec.pace(st) {
        Some(p) if p.minutes_per_copy * 60 > vm.spec.timeout_seconds => {
            let (done, n, m) = (p.copies_done, p.copies, p.minutes_per_copy);
            let copies = if n == 1 { "copy" } else { "copies" };
            format!(
                ", with {done:.2} of {n} {copies} done: at this pace a copy needs about {m} min \
                 (migrationTimeout {m}m or more would let it finish)"
            )
        }
        _ => String::new(),
    }
}

/// Runs one step of `phase`: a timed-out or unsteerable migration is stopped (dropping a replica
/// it added only while that one is unsynced), otherwise the phase's step runs.
pub async fn step(
    ctx: &Hands<'_>,
    vm: &VolumeMigration,
    st: &mut VolumeMigrationStatus,
    phase: MigrationPhase,
    assessment: &Assessment,
    timed_out: bool,
    saver: &mut impl AsyncSave,
) -> Result<Step, Error> {
    match (phase, assessment.steering) {
        (MigrationPhase::Analyzing, _) if timed_out => Ok(Step::Abort(
            TIMEOUT_REASON,
            format!(
                "{NOT_STARTED_PREFIX} {}s; nothing had been changed",
                vm.spec.timeout_seconds
            ),
        )),
        (_, _) if timed_out => {
            let within = deadline(vm, st);
            let pace = pace_note(vm, st);
            undo::drop_unsynced_extra(ctx, vm, st).await.map(|note| {
                Step::Abort(
                    TIMEOUT_REASON,
                    format!("not done within {within}: timed out in {phase:?}{pace}; {note}"),
                )
            })
        }
        (MigrationPhase::Analyzing, None) => Ok(Step::Abort(
            "UnsupportedMayastorVersion",
            assessment.message.clone(),
        )),
        (_, None) if !assessment.version_known => Ok(Step::Wait),
        (_, None) => undo::drop_unsynced_extra(ctx, vm, st).await.map(|note| {
            Step::Abort(
                "UnsupportedMayastorVersion",
                format!("{}; {note}", assessment.message),
            )
        }),
        (MigrationPhase::Analyzing, Some(s)) => steps::analyze(ctx, vm, st, s).await,
        (MigrationPhase::ScalingUp, Some(s)) => steps::scale_up(ctx, vm, st, s, saver).await,
        (MigrationPhase::WaitingSync, Some(_)) => steps::wait_sync(ctx, vm, st).await,
        (MigrationPhase::ScalingDown, Some(s)) => steps::scale_down(ctx, vm, st, s, saver).await,
        (MigrationPhase::Completed | MigrationPhase::Aborted, _) => Ok(Step::Wait),
    }
}

/// Assesses steering, lets `observe` see the verdict (the controller records its conditions
/// there), then runs the phase's [`step`]: the part of a step between [`begin`] and [`settle`]
/// that both hosts share. An error is transient: the host retries (see [`transient`]).
pub async fn assess_and_step(
    ctx: &Hands<'_>,
    vm: &VolumeMigration,
    st: &mut VolumeMigrationStatus,
    phase: MigrationPhase,
    timed_out: bool,
    saver: &mut impl AsyncSave,
    observe: impl AsyncFnOnce(&mut VolumeMigrationStatus, &Assessment),
) -> Result<Step, Error> {
    let assessment = steer::assess(ctx).await?;
    observe(st, &assessment).await;
    step(ctx, vm, st, phase, &assessment, timed_out, saver).await
}

/// Records what a step decided in the status (saving it while the migration keeps running) and
/// says what comes next.
pub async fn settle(
    vm: &VolumeMigration,
    st: &mut VolumeMigrationStatus,
    phase: MigrationPhase,
    step: Step,
    saver: &mut impl AsyncSave,
) -> Result<Settled, Error> {
    match step {
        Step::Wait => {
            st.message = format!("{phase:?}");
            saver.save(st).await?;
            Ok(Settled::Again(WAIT))
        }
        Step::Next(next) => {
            info!(migration = %vm.name_any(), volume = %vm.spec.volume, from = ?phase, to = ?next, "migration phase");
            st.phase = Some(next);
            st.message = format!("{next:?}");
            saver.save(st).await?;
            Ok(Settled::Again(NEXT))
        }
        Step::Done => Ok(Settled::Finished(None)),
        Step::Abort(reason, message) => Ok(Settled::Finished(Some((reason, message)))),
    }
}

/// A Mayastor or API error mid-step: keep the phase, report, retry after [`RETRY`]. Cordons
/// stay recorded.
pub async fn transient(
    vm: &VolumeMigration,
    saver: &mut impl AsyncSave,
    st: &mut VolumeMigrationStatus,
    e: Error,
) -> Result<Duration, Error> {
    warn!(migration = %vm.name_any(), volume = %vm.spec.volume, error = %e, "migration step failed; retrying");
    st.message = format!("retrying after error: {e}");
    saver.save(st).await?;
    Ok(RETRY)
}
