//! Building a policy's status from a decision: phase, conditions, counts, planned moves.

use couchestor_common::Tier;
use couchestor_common::storagepolicy::PolicyPhase;
use couchestor_common::{StoragePolicy, StoragePolicyStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::mover::steer::Steering;
use crate::reconcile::{Decision, planned_moves};

/// Previous conditions, for keeping transition times and detecting transitions.
pub struct ConditionSet<'a>(&'a [Condition]);

impl<'a> From<&'a Vec<Condition>> for ConditionSet<'a> {
    fn from(c: &'a Vec<Condition>) -> Self {
        Self(c)
    }
}

impl ConditionSet<'_> {
    /// Reason of a condition type, if present.
    pub fn reason(&self, type_: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| c.reason.as_str())
    }

    /// Status ("True"/"False"/"Unknown") of a condition type, if present.
    pub fn status(&self, type_: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| c.status.as_str())
    }

    fn transition_time(&self, type_: &str, status: &str) -> Time {
        self.0
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| Time(Timestamp::now()))
    }

    /// A condition of `type_` with `status`, keeping the previous transition time while the
    /// status stays.
    pub fn condition(
        &self,
        type_: &str,
        status: &str,
        reason: &str,
        message: String,
        generation: Option<i64>,
    ) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message,
            last_transition_time: self.transition_time(type_, status),
            observed_generation: generation,
        }
    }
}

/// What a status is built from.
pub struct StatusInputs<'d> {
    decision: Option<&'d Decision>,
    invalid: Option<String>,
    launch_error: Option<String>,
}

impl<'d> StatusInputs<'d> {
    /// A policy that cannot be applied.
    pub fn invalid(message: String) -> Self {
        Self {
            decision: None,
            invalid: Some(message),
            launch_error: None,
        }
    }

    /// A decided policy.
    pub fn from_decision(d: &'d Decision) -> Self {
        Self {
            decision: Some(d),
            invalid: None,
            launch_error: None,
        }
    }

    /// The decision's moves could not be started (creating their VolumeMigrations failed):
    /// Ready is False with `LaunchFailed` and the error, the rest of the status as decided.
    pub fn launch_failed(mut self, error: Option<String>) -> Self {
        self.launch_error = error;
        self
    }
}

/// The full status to apply. Counters of finished migrations and the history carry over.
pub fn build_status(
    policy: &StoragePolicy,
    previous: &StoragePolicyStatus,
    input: StatusInputs<'_>,
) -> StoragePolicyStatus {
    let prev = ConditionSet(&previous.conditions);
    let generation = policy.metadata.generation;
    let cond_with = |type_: &str, status: &str, reason: &str, message: String| {
        prev.condition(type_, status, reason, message, generation)
    };
    let cond = |type_: &str, ok: bool, reason: &str, message: String| {
        cond_with(type_, if ok { "True" } else { "False" }, reason, message)
    };
    let mut s = StoragePolicyStatus {
        observed_generation: generation,
        last_reconcile_time: Some(Time(Timestamp::now())),
        active_migrations: previous.active_migrations,
        total_migrations: previous.total_migrations,
        failed_migrations: previous.failed_migrations,
        migration_history: previous.migration_history.clone(),
        ..Default::default()
    };
    if let Some(d) = input.decision {
        s.active_migrations = d.migrations.active;
        s.total_migrations = d.migrations.completed;
        s.failed_migrations = d.migrations.failed;
        s.migration_history = d.migrations.history.clone();
    }
    let Some(d) = input.decision else {
        let message = input.invalid.unwrap_or_default();
        s.phase = Some(PolicyPhase::Error);
        s.conditions = vec![cond("Ready", false, "InvalidPolicy", message)];
        return s;
    };
    let obs = &d.observation;
    for w in &obs.volumes {
        match w.engine.tier {
            Some(Tier::Hot) => s.hot_volumes += 1,
            Some(Tier::Warm) => s.warm_volumes += 1,
            Some(Tier::Cold) => s.cold_volumes += 1,
            None => s.unknown_volumes += 1,
        }
        if w.engine.tier.is_some() && w.engine.heat.iops().is_none() {
            s.unknown_volumes += 1;
        }
    }
    s.watched_volumes = obs.volumes.len() as u32;
    s.phase = Some(if policy.spec.enabled {
        PolicyPhase::Active
    } else {
        PolicyPhase::Disabled
    });
    let planned = planned_moves(d);
    let wanted = planned.len();
    s.planned_moves = if d.dry_run { planned } else { Vec::new() };
    let ready_msg = match (policy.spec.enabled, d.dry_run) {
        (false, _) => "policy is disabled: nothing is planned or moved".to_string(),
        (true, true) => format!(
            "dry-run: {} volumes watched, {wanted} moves planned (see status.plannedMoves)",
            s.watched_volumes
        ),
        (true, false) => format!(
            "{} volumes watched, {} migrations running, {wanted} more planned",
            s.watched_volumes, s.active_migrations
        ),
    };
    s.conditions = vec![
        match &input.launch_error {
            None => cond(
                "Ready",
                true,
                if d.dry_run { "DryRun" } else { "Reconciled" },
                ready_msg,
            ),
            Some(e) => cond(
                "Ready",
                false,
                "LaunchFailed",
                format!("starting the planned migrations failed: {e}; retried in 15 s"),
            ),
        },
        match &obs.metrics_error {
            None => cond(
                "MetricsAvailable",
                true,
                "QuerySucceeded",
                "heat query answered".into(),
            ),
            Some(e) => cond(
                "MetricsAvailable",
                false,
                "PrometheusUnavailable",
                format!("{e}; heat is unknown, nothing is demoted"),
            ),
        },
        match &obs.backend_error {
            None => cond(
                "BackendReachable",
                true,
                "MayastorAnswered",
                "Mayastor REST API answered".into(),
            ),
            Some(e) => cond(
                "BackendReachable",
                false,
                "MayastorUnreachable",
                format!("{e}; tiers are unknown, nothing moves"),
            ),
        },
        match (&obs.agents_error, obs.agents_configured) {
            (_, false) => cond_with(
                "AgentsReachable",
                "Unknown",
                "NotConfigured",
                "node agents are not configured (--agent-tls-dir): pools are classified by their labels only".into(),
            ),
            (None, true) => cond(
                "AgentsReachable",
                true,
                "AgentsAnswered",
                "every node agent answered".into(),
            ),
            (Some(e), true) => cond(
                "AgentsReachable",
                false,
                "AgentUnreachable",
                format!("{e}; their pools keep the media last reported, tiering continues"),
            ),
        },
        match &d.steering {
            None => cond_with(
                "MovesSupported",
                "Unknown",
                "MayastorUnreachable",
                "Mayastor did not answer: cannot tell whether moves can be steered".into(),
            ),
            Some(a) => match a.steering {
                Some(how) => cond(
                    "MovesSupported",
                    true,
                    match how {
                        Steering::PoolCordon => "PoolCordon",
                        Steering::NodeCordon => "NodeCordon",
                    },
                    a.message.clone(),
                ),
                None => cond(
                    "MovesSupported",
                    false,
                    "UnsupportedMayastorVersion",
                    format!(
                        "{}; moves are refused, planning and dry-run reporting continue",
                        a.message
                    ),
                ),
            },
        },
    ];
    s
}
