//! One `VolumeMigration` of `--backend mayastor`, held in memory instead of the API server and
//! driven by the controller's own engine (`mover::drive` and `mover::steps`, the code the
//! migration controller runs): each step starts from the last *saved* status, as a reconcile
//! starts from the object it reads back, so the engine's persistence discipline is exercised
//! too.

use std::time::Duration;

use couchestor_common::migration::{MigrationPhase, VolumeMigration, VolumeMigrationStatus};
use k8s_openapi::jiff::Timestamp;

use crate::context::Error;
use crate::mover::drive::{self, Settled};
use crate::mover::finish::{self, Conclusion};
use crate::mover::hands::Hands;
use crate::mover::steps::AsyncSave;

/// The status store of one migration: every save replaces it.
struct Memory<'a> {
    saved: &'a mut VolumeMigrationStatus,
}

impl AsyncSave for Memory<'_> {
    async fn save(&mut self, st: &VolumeMigrationStatus) -> Result<(), Error> {
        *self.saved = st.clone();
        Ok(())
    }
}

/// A migration in progress.
pub struct Migration {
    /// The object, as `launch` would have created it.
    pub vm: VolumeMigration,
    /// Index of its volume in the cluster.
    pub volume: usize,
    /// Its status as last saved.
    pub saved: VolumeMigrationStatus,
    /// Virtual time of its next step, ms since the epoch.
    pub due_ms: u64,
    /// Phases it has been stepped in, in order, without repeats.
    pub phases: Vec<MigrationPhase>,
    /// Steps that failed with a transient (Mayastor) error and were retried.
    pub retries: u64,
}

/// What one step did.
pub enum Stepped {
    /// Still running: step again after this delay.
    Again(Duration),
    /// Completed or aborted; the terminal status is saved.
    Finished(Conclusion),
}

impl Migration {
    /// A migration of volume `volume`, first stepped at `due_ms`.
    pub fn new(vm: VolumeMigration, volume: usize, due_ms: u64) -> Self {
        Self {
            vm,
            volume,
            saved: VolumeMigrationStatus::default(),
            due_ms,
            phases: Vec::new(),
            retries: 0,
        }
    }

    /// One reconcile of the migration at `now`, exactly as `mover::reconcile` runs it minus
    /// what needs Kubernetes (finalizers, owner check, conditions, Events, the PV
    /// annotation, metrics): timeout and steering verdict, the phase's step, the outcome
    /// recorded and saved, and on the terminal step the cordon cleanup and terminal status.
    pub async fn step(&mut self, hands: &Hands<'_>, now: Timestamp) -> Result<Stepped, Error> {
        let mut st = self.saved.clone();
        let phase = st.phase.unwrap_or(MigrationPhase::Analyzing);
        if self.phases.last() != Some(&phase) {
            self.phases.push(phase);
        }
        let mut saver = Memory {
            saved: &mut self.saved,
        };
        let timed_out = drive::begin(&self.vm, &mut st, phase, now);
        let stepped = drive::assess_and_step(
            hands,
            &self.vm,
            &mut st,
            phase,
            timed_out,
            &mut saver,
            async |_, _| {},
        )
        .await;
        let step = match stepped {
            Ok(step) => step,
            Err(e) => {
                self.retries += 1;
                return drive::transient(&self.vm, &mut saver, &mut st, e)
                    .await
                    .map(Stepped::Again);
            }
        };
        match drive::settle(&self.vm, &mut st, phase, step, &mut saver).await? {
            Settled::Again(delay) => Ok(Stepped::Again(delay)),
            Settled::Finished(abort) => {
                let c = finish::conclude(hands, &self.vm, &mut st, abort, now).await?;
                saver.save(&st).await?;
                if let Some(terminal) = st.phase {
                    self.phases.push(terminal);
                }
                Ok(Stepped::Finished(c))
            }
        }
    }
}
