//! The light check of the archives in local shard directories: manifest copies parse and
//! agree, and each names a shard file of the right length. No block is read. `GetArchive`,
//! `ListArchives` and the agent's cold-tier health metrics use it.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::erasure::{Manifest, State, check_archive_id};

/// One archive as found in the directories.
#[derive(Debug, Clone)]
pub struct Found {
    /// Archive id.
    pub id: String,
    /// The manifest of the first usable copy.
    pub manifest: Option<Manifest>,
    /// Whether some copy is in state `writing`.
    pub writing: bool,
    /// Shard copies in good order: index and directory.
    pub present: Vec<(usize, PathBuf)>,
    /// Copies with a problem: the index (when known), the directory and what is wrong.
    pub problems: Vec<(Option<usize>, PathBuf, String)>,
}

impl Found {
    /// Shards of this archive that this agent holds (in good order or not).
    pub fn local_indices(&self) -> Vec<usize> {
        let mut all: Vec<usize> = self.present.iter().map(|(i, _)| *i).collect();
        all.extend(self.problems.iter().filter_map(|(i, _, _)| *i));
        all.sort_unstable();
        all.dedup();
        all
    }
}

/// What a light check of the shard directories found.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// Every archive found, by id.
    pub archives: BTreeMap<String, Found>,
    /// Directories that could not be listed (dead disk, unmounted, replaced by a file), and
    /// why: whatever they held is unknown, not gone.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// Every archive in `dirs`, by id (directories that cannot be listed are left out; see
/// [`scan_all`]).
pub fn scan(dirs: &[PathBuf]) -> BTreeMap<String, Found> {
    scan_all(dirs).archives
}

/// Every archive in `dirs`, and the directories that cannot be listed.
pub fn scan_all(dirs: &[PathBuf]) -> Scan {
    let mut out = Scan::default();
    let found = &mut out.archives;
    for dir in dirs {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                let why = format!("cannot list {}: {e}", dir.display());
                out.unreadable.push((dir.clone(), why));
                continue;
            }
        };
        for e in entries.flatten() {
            let Some(id) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if check_archive_id(&id).is_err() || !e.path().is_dir() {
                continue;
            }
            check_copy(entry(found, &id), dir, &e.path());
        }
    }
    out
}

fn entry<'a>(found: &'a mut BTreeMap<String, Found>, id: &str) -> &'a mut Found {
    found.entry(id.to_string()).or_insert_with(|| Found {
        id: id.to_string(),
        manifest: None,
        writing: false,
        present: Vec::new(),
        problems: Vec::new(),
    })
}

/// Checks the copy in `adir` (= `dir/<id>`).
fn check_copy(f: &mut Found, dir: &Path, adir: &Path) {
    let path = adir.join("manifest.json");
    let hint = shard_files(adir);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(&i) = hint.first() {
                let what = "shard file without a manifest copy".to_string();
                f.problems.push((Some(i), dir.to_path_buf(), what));
            }
            return;
        }
        Err(e) => {
            let what = format!("cannot read {}: {e}", path.display());
            f.problems
                .push((hint.first().copied(), dir.to_path_buf(), what));
            return;
        }
    };
    let m = match Manifest::parse(&text) {
        Ok(m) if m.archive_id == f.id => m,
        Ok(m) => {
            let what = format!("manifest names archive {:?}", m.archive_id);
            f.problems
                .push((Some(m.shard_index), dir.to_path_buf(), what));
            return;
        }
        Err(e) => {
            let what = format!("corrupt manifest {}: {e}", path.display());
            f.problems
                .push((hint.first().copied(), dir.to_path_buf(), what));
            return;
        }
    };
    if m.state == State::Writing {
        f.writing = true;
    }
    if let Some(first) = &f.manifest
        && let Some((a, b)) = first.difference(&m)
    {
        let what = format!("manifest disagrees with another copy: {b} (other: {a})");
        f.problems
            .push((Some(m.shard_index), dir.to_path_buf(), what));
        return;
    }
    let shard = adir.join(format!("shard-{}.dat", m.shard_index));
    let want = m.stripes * m.block_size as u64;
    let problem = match fs::metadata(&shard) {
        Ok(meta) if meta.len() == want => None,
        Ok(meta) => Some(format!(
            "{} is {} bytes, the manifest says {want}",
            shard.display(),
            meta.len()
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Some(format!("{} is missing", shard.display()))
        }
        Err(e) => Some(format!("cannot stat {}: {e}", shard.display())),
    };
    match problem {
        None => f.present.push((m.shard_index, dir.to_path_buf())),
        Some(what) => f
            .problems
            .push((Some(m.shard_index), dir.to_path_buf(), what)),
    }
    f.manifest.get_or_insert(m);
}

/// Indices of the `shard-<i>.dat` files in an archive directory.
fn shard_files(adir: &Path) -> Vec<usize> {
    let Ok(entries) = fs::read_dir(adir) else {
        return Vec::new();
    };
    let mut out: Vec<usize> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            name.to_str()?
                .strip_prefix("shard-")?
                .strip_suffix(".dat")?
                .parse()
                .ok()
        })
        .collect();
    out.sort_unstable();
    out
}
