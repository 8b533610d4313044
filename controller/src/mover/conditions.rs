//! The conditions a VolumeMigration reports about the Mayastor it runs against.

use couchestor_common::migration::{
    STEERABLE_CONDITION, VERSION_MATCH_CONDITION, VolumeMigration, VolumeMigrationStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Resource;
use kube::runtime::events::EventType;
use tracing::warn;

use super::steer::{Assessment, Steering};
use crate::context::Context;
use crate::reconcile::publish;
use crate::status::ConditionSet;

/// Sets a condition, keeping its transition time while the status stays. True when the
/// status changed (or the condition is new).
fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> bool {
    let status = if ok { "True" } else { "False" };
    let prev = ConditionSet::from(&*conditions);
    let changed = prev.status(type_) != Some(status);
    let c = prev.condition(
        type_,
        status,
        reason,
        message.chars().take(32_768).collect(),
        generation,
    );
    match conditions.iter().position(|c| c.type_ == type_) {
        Some(i) => conditions[i] = c,
        None => conditions.push(c),
    }
    changed
}

/// Records the assessment as `Steerable` (and, with a declared version, `VersionMatch`), and
/// publishes a Warning Event (and log line) when moves become refused or the declared version
/// starts to disagree with the nodes.
pub async fn record(
    ctx: &Context,
    vm: &VolumeMigration,
    st: &mut VolumeMigrationStatus,
    a: &Assessment,
) {
    let generation = vm.meta().generation;
    let reason = match a.steering {
        Some(Steering::PoolCordon) => "PoolCordon",
        Some(Steering::NodeCordon) => "NodeCordon",
        None => "UnsupportedMayastorVersion",
    };
    let refused = a.steering.is_none();
    let on = vm.object_ref(&());
    if set(
        &mut st.conditions,
        STEERABLE_CONDITION,
        !refused,
        reason,
        &a.message,
        generation,
    ) && refused
    {
        warn!(migration = %vm.spec.volume, message = %a.message, "Mayastor cannot be steered; the move is refused");
        publish(ctx, &on, EventType::Warning, reason, &a.message).await;
    }
    if ctx.settings.mayastor_version.is_none() {
        st.conditions.retain(|c| c.type_ != VERSION_MATCH_CONDITION);
        return;
    }
    let (ok, reason, message) = match &a.mismatch {
        Some(m) => (false, "MayastorVersionMismatch", m.as_str()),
        None => (
            true,
            "DeclaredVersionMatches",
            "--mayastor-version agrees with the io-engine nodes",
        ),
    };
    if set(
        &mut st.conditions,
        VERSION_MATCH_CONDITION,
        ok,
        reason,
        message,
        generation,
    ) && !ok
    {
        warn!(migration = %vm.spec.volume, message, "declared Mayastor version disagrees with the nodes");
        publish(ctx, &on, EventType::Warning, reason, message).await;
    }
}
