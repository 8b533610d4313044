//! Phases 2–4 of an encode — manifest copies `writing`, shards into place, copies
//! `complete` — and the rollback of a failure in phase 2 or 3.
//!
//! The rollback puts back, at every location, the manifest copy that was there before,
//! except where phase 3 replaced that copy's own shard: such a location is emptied (the
//! previous archive lost that shard, and the error says which). Staged copies are removed by
//! the caller. A failure in phase 4 is not rolled back: every shard of the new archive is in
//! place, and the copies still `writing` make it read as incomplete until the encode is run
//! again. A failed rollback step leaves a `writing` copy, which has the same effect.

use crate::erasure::EcError;
use crate::erasure::location::Location;
use crate::erasure::manifest::{Manifest, State};
use crate::erasure::place;
use crate::erasure::remote::Peers;

/// How far the commit got at one location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Only the staged shard was written.
    Staged,
    /// A `writing` manifest copy was (or may have been) written; the shard is not in place.
    Marked,
    /// The shard is in place.
    Committed,
    /// The commit call failed without saying whether it took effect (a remote store).
    Unsure,
}

/// The commit of one encode.
pub(super) struct Commit<'a> {
    /// The shard locations, in shard order.
    pub locations: &'a [Location],
    /// The archive id.
    pub id: &'a str,
    /// How remote locations are reached.
    pub peers: Option<&'a Peers>,
    /// The (parseable) manifest copy of `id` at each location before the encode, as text.
    pub old: Vec<Option<String>>,
}

impl Commit<'_> {
    /// Commits `manifest`; on failure, rolls back what can be and returns
    /// [`EcError::CommitFailed`] saying what state the archive is in.
    pub(super) fn run(&self, manifest: &Manifest) -> Result<(), EcError> {
        let mut steps = vec![Step::Staged; self.locations.len()];
        let Err(cause) = self.phases(manifest, &mut steps) else {
            return Ok(());
        };
        let outcome = if steps.iter().all(|s| *s == Step::Committed) {
            "every shard is in place but not every manifest copy is complete: the archive \
             reads as incomplete until the encode is run again"
                .to_string()
        } else {
            self.rollback(&steps)
        };
        tracing::warn!(
            "encode of {:?} failed while committing: {cause}; {outcome}",
            self.id
        );
        Err(EcError::CommitFailed {
            id: self.id.to_string(),
            cause: Box::new(cause),
            outcome,
        })
    }

    fn phases(&self, manifest: &Manifest, steps: &mut [Step]) -> Result<(), EcError> {
        let (id, peers) = (self.id, self.peers);
        // Phase 2: every copy says `writing`, so no mix of shards ever reads as complete.
        for (index, loc) in self.locations.iter().enumerate() {
            steps[index] = Step::Marked;
            place::write_manifest(loc, &manifest.for_shard(index, State::Writing), peers)?;
        }
        // Phase 3: shard files into place.
        for (index, loc) in self.locations.iter().enumerate() {
            if let Err((e, moved)) = place::try_commit_shard(loc, id, index, peers) {
                steps[index] = match moved {
                    Some(true) => Step::Committed,
                    Some(false) => Step::Marked,
                    None => Step::Unsure,
                };
                return Err(e);
            }
            steps[index] = Step::Committed;
        }
        // Phase 4: complete manifest copies.
        for (index, loc) in self.locations.iter().enumerate() {
            place::write_manifest(loc, &manifest.for_shard(index, State::Complete), peers)?;
        }
        Ok(())
    }

    /// Undoes phases 2 and 3 and says what became of the previous archive.
    fn rollback(&self, steps: &[Step]) -> String {
        let (mut lost, mut unsure, mut failed) = (Vec::new(), Vec::new(), Vec::new());
        let mut old_m = None;
        for (index, loc) in self.locations.iter().enumerate() {
            let old = self.old[index].as_deref();
            let old_manifest = old.and_then(|t| Manifest::parse(t).ok());
            old_m = old_m.or(old_manifest.as_ref().map(|m| m.m));
            let replaced = old_manifest.is_some_and(|m| m.shard_index == index);
            let undone = match steps[index] {
                Step::Staged => Ok(()),
                Step::Marked => self.put_back(loc, index, old),
                Step::Unsure => {
                    if replaced {
                        unsure.push(format!("shard {index} at {loc}"));
                    }
                    self.put_back(loc, index, old)
                }
                Step::Committed => {
                    place::remove(loc, self.id, index, true, self.peers).and_then(|()| {
                        if replaced {
                            lost.push(index);
                            Ok(())
                        } else {
                            self.put_back(loc, index, old)
                        }
                    })
                }
            };
            if let Err(e) = undone {
                failed.push(format!("{loc}: {e}"));
            }
        }
        if !failed.is_empty() {
            return format!(
                "the rollback failed ({}): the archive reads as incomplete until the encode is \
                 run again",
                failed.join("; ")
            );
        }
        let Some(m) = old_m else {
            return "no previous archive was there; nothing of the new one was kept".into();
        };
        let unsure = if unsure.is_empty() {
            String::new()
        } else {
            format!(
                " ({} may have been replaced: a verify shows it)",
                unsure.join(", ")
            )
        };
        match lost.len() {
            0 => format!("the previous archive is kept unchanged{unsure}"),
            n if n <= m => format!(
                "the previous archive is kept, but its shards {lost:?} had been replaced and are \
                 lost{unsure}: a repairing verify rebuilds them"
            ),
            _ => format!(
                "the previous archive is lost: its shards {lost:?} had been replaced, more than \
                 its {m} parity shards{unsure}; encode it again from its source"
            ),
        }
    }

    /// Puts the copy `old` back at `loc` (if it is not there still), or removes the copy this
    /// encode wrote there when there was none before.
    fn put_back(&self, loc: &Location, index: usize, old: Option<&str>) -> Result<(), EcError> {
        let current = place::read_manifest_text(loc, self.id, self.peers)?;
        match (old, current) {
            (Some(old), Some(current)) if old == current => Ok(()),
            (Some(old), _) => place::put_manifest_text(loc, self.id, old, self.peers),
            (None, Some(_)) => place::remove_manifest(loc, self.id, index, self.peers),
            (None, None) => Ok(()),
        }
    }
}
