//! The periodic light check behind the agent's cold-tier health metrics: every interval the
//! archives in the agent's shard directories are scanned (`coldtier::scan`: manifest copies
//! parse and agree, each names a shard file of the right length; no block is read) and
//! `couchestor_agent_ec_shards_missing{archive}` is set to the number of this agent's shards
//! of each archive that are missing or unusable. A copy seen before that has vanished
//! entirely (manifest and file removed) still counts as missing while another copy of that
//! archive remains on the agent; an archive whose copies are all gone is forgotten (removed
//! on purpose, or its disks reported as unreadable directories).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::coldtier::scan;
use crate::metrics::{AgentMetrics, ArchiveHealth};

/// Starts the check loop on the current runtime.
pub fn spawn(dirs: Vec<PathBuf>, interval: Duration, metrics: Arc<AgentMetrics>) {
    tokio::spawn(async move {
        let mut seen: BTreeMap<String, BTreeSet<(usize, PathBuf)>> = BTreeMap::new();
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let scan_dirs = dirs.clone();
            let found = match tokio::task::spawn_blocking(move || scan::scan(&scan_dirs)).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!("cold-tier check failed: {e}");
                    metrics.ec_check_failed();
                    continue;
                }
            };
            let health = assess(&found, &mut seen);
            for h in health.iter().filter(|h| h.missing > 0) {
                tracing::warn!(
                    archive = %h.archive,
                    "cold-tier archive {:?}: {} of this agent's shards missing or unusable: {}",
                    h.archive,
                    h.missing,
                    h.reasons.join("; ")
                );
            }
            metrics.observe_ec(&health);
        }
    });
}

/// Per archive: shards missing or unusable, and present, on this agent.
fn assess(
    found: &BTreeMap<String, scan::Found>,
    seen: &mut BTreeMap<String, BTreeSet<(usize, PathBuf)>>,
) -> Vec<ArchiveHealth> {
    let mut out = Vec::new();
    for f in found.values() {
        if f.id.is_empty() {
            for (_, dir, why) in &f.problems {
                tracing::warn!("cold-tier check: {}: {why}", dir.display());
            }
            continue;
        }
        let mut missing: BTreeSet<usize> = BTreeSet::new();
        let mut reasons = Vec::new();
        let mut anonymous = 0;
        for (index, dir, why) in &f.problems {
            match index {
                Some(i) => {
                    missing.insert(*i);
                }
                None => anonymous += 1,
            }
            reasons.push(format!("{}: {why}", dir.display()));
        }
        let now: BTreeSet<(usize, PathBuf)> = f
            .present
            .iter()
            .cloned()
            .chain(
                f.problems
                    .iter()
                    .filter_map(|(i, d, _)| i.map(|i| (i, d.clone()))),
            )
            .collect();
        let before = seen.entry(f.id.clone()).or_default();
        for (i, dir) in before.difference(&now) {
            if missing.insert(*i) {
                reasons.push(format!("{}: shard {i} vanished", dir.display()));
            }
        }
        before.extend(now);
        // A copy rewritten elsewhere (scrub) replaces a vanished one of the same index.
        let present: BTreeSet<usize> = f.present.iter().map(|(i, _)| *i).collect();
        before.retain(|(i, d)| !present.contains(i) || f.present.contains(&(*i, d.clone())));
        let missing_now = missing.difference(&present).count() + anonymous;
        out.push(ArchiveHealth {
            archive: f.id.clone(),
            missing: missing_now,
            present: present.len(),
            reasons,
        });
    }
    seen.retain(|id, _| found.contains_key(id));
    out
}
