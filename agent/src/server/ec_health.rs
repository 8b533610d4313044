//! The periodic light check behind the agent's cold-tier health metrics: every interval the
//! archives in the agent's shard directories are scanned (`coldtier::scan`: manifest copies
//! parse and agree, each names a shard file of the right length; no block is read) and
//! `couchestor_agent_ec_shards_missing{archive}` is set to the number of this agent's shards
//! of each archive that are missing or unusable. A copy seen before that has vanished
//! entirely (manifest and file removed) still counts as missing while another copy of that
//! archive remains on the agent, and so does every copy last seen in a directory that can no
//! longer be listed (dead or unmounted disk) — even when that was the archive's only
//! directory here. An archive whose copies are all gone from readable directories is
//! forgotten (removed on purpose). A directory that cannot be listed sets
//! `couchestor_agent_ec_dir_errors{dir}` to 1 and counts in
//! `couchestor_agent_ec_check_errors_total`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::coldtier::scan;
use crate::metrics::{AgentMetrics, ArchiveHealth, DirHealth};

/// Per archive id: the copies (shard index, directory) seen so far.
type Seen = BTreeMap<String, BTreeSet<(usize, PathBuf)>>;

/// Starts the check loop on the current runtime.
pub fn spawn(dirs: Vec<PathBuf>, interval: Duration, metrics: Arc<AgentMetrics>) {
    tokio::spawn(async move {
        let mut seen: Seen = BTreeMap::new();
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let scan_dirs = dirs.clone();
            let found = match tokio::task::spawn_blocking(move || scan::scan_all(&scan_dirs)).await
            {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!("cold-tier check failed: {e}");
                    metrics.ec_check_failed();
                    continue;
                }
            };
            let (health, dir_health) = check(&dirs, &found, &mut seen);
            metrics.observe_ec(&health, &dir_health);
        }
    });
}

/// One round: the archives' and the directories' health, logged.
fn check(
    dirs: &[PathBuf],
    found: &scan::Scan,
    seen: &mut Seen,
) -> (Vec<ArchiveHealth>, Vec<DirHealth>) {
    let health = assess(found, seen);
    for h in health.iter().filter(|h| h.missing > 0) {
        tracing::warn!(
            archive = %h.archive,
            "cold-tier archive {:?}: {} of this agent's shards missing or unusable: {}",
            h.archive,
            h.missing,
            h.reasons.join("; ")
        );
    }
    let dir_health = dirs
        .iter()
        .map(|dir| {
            let error = found
                .unreadable
                .iter()
                .find(|(d, _)| d == dir)
                .map(|(_, why)| why.clone());
            if let Some(why) = &error {
                tracing::warn!(dir = %dir.display(), "cold-tier check: {why}");
            }
            DirHealth {
                dir: dir.display().to_string(),
                error,
            }
        })
        .collect();
    (health, dir_health)
}

/// Per archive: shards missing or unusable, and present, on this agent.
fn assess(scan: &scan::Scan, seen: &mut Seen) -> Vec<ArchiveHealth> {
    let found = &scan.archives;
    let unreadable: BTreeMap<&PathBuf, &str> = scan
        .unreadable
        .iter()
        .map(|(d, why)| (d, why.as_str()))
        .collect();
    let lost = |dir: &PathBuf, i: usize| match unreadable.get(dir) {
        Some(why) => format!("{}: shard {i} unknown, {why}", dir.display()),
        None => format!("{}: shard {i} vanished", dir.display()),
    };
    let mut out = Vec::new();
    for f in found.values() {
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
                reasons.push(lost(dir, *i));
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
    // Archives not found in any readable directory: those last seen in an unreadable one are
    // unknown there, not removed — their shards there stay missing; the rest are forgotten.
    seen.retain(|id, before| {
        if found.contains_key(id) {
            return true;
        }
        before.retain(|(_, d)| unreadable.contains_key(d));
        if before.is_empty() {
            return false;
        }
        let indices: BTreeSet<usize> = before.iter().map(|(i, _)| *i).collect();
        out.push(ArchiveHealth {
            archive: id.clone(),
            missing: indices.len(),
            present: 0,
            reasons: before.iter().map(|(i, d)| lost(d, *i)).collect(),
        });
        true
    });
    out.sort_by(|a, b| a.archive.cmp(&b.archive));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::erasure::{self, EncodeParams};

    /// Encodes a 2+1 archive `id` with one shard in each of `dirs`.
    fn archive(tmp: &std::path::Path, id: &str, dirs: &[PathBuf]) {
        let source = tmp.join(format!("{id}.src"));
        std::fs::write(&source, vec![7u8; 20_000]).unwrap();
        let params = EncodeParams {
            k: 2,
            m: 1,
            block_size: 4096,
            archive_id: Some(id.into()),
            force: false,
        };
        erasure::encode(&source, dirs, &params).unwrap();
    }

    fn missing(health: &[ArchiveHealth], id: &str) -> Option<usize> {
        health.iter().find(|h| h.archive == id).map(|h| h.missing)
    }

    /// A dead disk (its directory cannot be listed — replaced by a file here, which fails
    /// `read_dir` even as root): the archives last seen on it keep their series, with its
    /// shards missing, and the directory is reported; listing again clears it.
    #[test]
    fn an_unreadable_directory_keeps_its_archives_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = (0..4).map(|i| tmp.path().join(format!("d{i}"))).collect();
        for d in &dirs {
            std::fs::create_dir(d).unwrap();
        }
        // "spread" has a shard on each of d0, d1, d2; "lonely" has this agent's only shard on
        // d3 (its other copies, made on d1 and d2, belong to other agents: removed).
        archive(tmp.path(), "spread", &dirs[0..3]);
        archive(
            tmp.path(),
            "lonely",
            &[dirs[3].clone(), dirs[1].clone(), dirs[2].clone()],
        );
        for d in &dirs[1..3] {
            std::fs::remove_dir_all(d.join("lonely")).unwrap();
        }
        let mut seen = Seen::new();
        let (health, dir_health) = check(&dirs, &scan::scan_all(&dirs), &mut seen);
        assert_eq!(missing(&health, "spread"), Some(0), "{health:?}");
        assert_eq!(missing(&health, "lonely"), Some(0), "{health:?}");
        assert!(
            dir_health.iter().all(|d| d.error.is_none()),
            "{dir_health:?}"
        );

        // d0 and d3 die.
        for d in [&dirs[0], &dirs[3]] {
            std::fs::remove_dir_all(d).unwrap();
            std::fs::write(d, b"not a directory").unwrap();
        }
        for _ in 0..2 {
            let (health, dir_health) = check(&dirs, &scan::scan_all(&dirs), &mut seen);
            assert_eq!(missing(&health, "spread"), Some(1), "{health:?}");
            let lonely = health.iter().find(|h| h.archive == "lonely");
            let lonely = lonely.unwrap_or_else(|| panic!("lonely dropped out: {health:?}"));
            assert_eq!((lonely.missing, lonely.present), (1, 0), "{lonely:?}");
            assert!(lonely.reasons[0].contains("cannot list"), "{lonely:?}");
            let bad: Vec<&str> = dir_health
                .iter()
                .filter(|d| d.error.is_some())
                .map(|d| d.dir.as_str())
                .collect();
            let want = [dirs[0].display().to_string(), dirs[3].display().to_string()];
            assert_eq!(bad, want, "{dir_health:?}");
        }

        // d3 comes back empty (disk replaced): lonely is gone from here, forgotten.
        std::fs::remove_file(&dirs[3]).unwrap();
        std::fs::create_dir(&dirs[3]).unwrap();
        let (health, dir_health) = check(&dirs, &scan::scan_all(&dirs), &mut seen);
        assert_eq!(missing(&health, "lonely"), None, "{health:?}");
        assert_eq!(missing(&health, "spread"), Some(1), "{health:?}");
        assert_eq!(dir_health.iter().filter(|d| d.error.is_some()).count(), 1);
    }
}
