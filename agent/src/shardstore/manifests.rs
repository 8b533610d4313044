//! The archive-level calls of a store: manifest copies, committing staged shards, removing
//! shards, listing archives. Blocking file work (run off the async threads).

use std::fs;
use std::io;
use std::path::Path;

use tonic::Status;

use super::service::{check_target, fsync_dir, hash_file, internal, read_checksum, write_error};
use super::{checksum_file, shard_file, staged_file};
use crate::erasure::{Manifest, State, check_archive_id};

/// Name of an archive's manifest copy in a store.
const MANIFEST: &str = "manifest.json";

fn check_id(id: &str) -> Result<(), Status> {
    check_archive_id(id).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// Replaces `ROOT/<id>/manifest.json` atomically with `text`, after checking it: a valid
/// manifest of archive `id`; a `complete` one only when its shard is in place with the
/// length the manifest gives; never one naming a different shard than a complete copy
/// already there (one shard of an archive per store).
pub fn put(root: &Path, id: &str, text: &str) -> Result<(), Status> {
    check_id(id)?;
    let manifest = Manifest::parse(text)
        .map_err(|e| Status::invalid_argument(format!("manifest of {id:?}: {e}")))?;
    if manifest.archive_id != id {
        return Err(Status::invalid_argument(format!(
            "the manifest describes archive {:?}, not {id:?}",
            manifest.archive_id
        )));
    }
    let index = manifest.shard_index as u32;
    let dir = root.join(id);
    let path = dir.join(MANIFEST);
    if let Some(old) = read(&path)?
        && old.shard_index != manifest.shard_index
        && old.state == State::Complete
        && old.created == manifest.created
    {
        return Err(Status::failed_precondition(format!(
            "this store already holds shard {} of archive {id:?}: one shard of an archive per \
             store",
            old.shard_index
        )));
    }
    if manifest.state == State::Complete {
        let shard = shard_file(root, id, index);
        let want = manifest.stripes * manifest.block_size as u64;
        match fs::metadata(&shard) {
            Ok(meta) if meta.len() == want => {}
            Ok(meta) => {
                return Err(Status::failed_precondition(format!(
                    "shard {index} of {id:?} is {} bytes, the manifest says {want}",
                    meta.len()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Status::failed_precondition(format!(
                    "shard {index} of {id:?} is not in place: commit it before a complete manifest"
                )));
            }
            Err(e) => return Err(internal("stat", &shard, e)),
        }
    }
    if !dir.is_dir() {
        fs::create_dir(&dir).map_err(|e| write_error("create", &dir, root, &e))?;
        fsync_dir(root).map_err(|e| write_error("fsync", root, root, &e))?;
    }
    let tmp = tempfile::Builder::new()
        .prefix(".manifest-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| write_error("create a temporary file in", &dir, root, &e))?;
    fs::write(tmp.path(), text)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| write_error("write", tmp.path(), root, &e))?;
    tmp.persist(&path)
        .map_err(|e| write_error("rename into", &path, root, &e.error))?;
    fsync_dir(&dir).map_err(|e| write_error("fsync", &dir, root, &e))
}

/// The manifest copy of `id`, or `None`.
fn read(path: &Path) -> Result<Option<Manifest>, Status> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Manifest::parse(&text).ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(internal("read", path, e)),
    }
}

/// The text of `ROOT/<id>/manifest.json`.
pub fn get(root: &Path, id: &str) -> Result<String, Status> {
    check_id(id)?;
    let path = root.join(id).join(MANIFEST);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Status::not_found(format!(
            "archive {id:?} has no manifest in this store"
        ))),
        Err(e) => Err(internal("read", &path, e)),
    }
}

/// Moves the staged shard and its checksum file into place as a pair, each step made
/// durable (directory fsync) before the next: remove the old checksum file, rename the data,
/// rename the checksum file. A crash leaves the old pair, or a shard without a checksum file
/// (reported by `VerifyShards`; a retried commit finishes it) — never a checksum beside data
/// it does not describe. A staged shard without its checksum file (a put that did not
/// finish) is refused.
pub fn commit(root: &Path, id: &str, index: u32) -> Result<(), Status> {
    check_target(id, index)?;
    let dir = root.join(id);
    let (staged, shard) = (staged_file(root, id, index), shard_file(root, id, index));
    let (staged_sum, sum) = (checksum_file(&staged), checksum_file(&shard));
    let fsync = || fsync_dir(&dir).map_err(|e| internal("fsync", &dir, e));
    let rename = |from: &Path, to: &Path| {
        fs::rename(from, to).map_err(|e| internal("rename", from, e))?;
        fsync()
    };
    match (exists(&staged)?, exists(&staged_sum)?) {
        (true, true) => {}
        (true, false) => {
            return Err(Status::failed_precondition(format!(
                "the staged shard {index} of {id:?} has no checksum file (its put did not \
                 finish): put it again"
            )));
        }
        (false, true) if exists(&shard)? && !exists(&sum)? => {
            // An interrupted commit: the data was moved, its checksum file was not.
            let recorded = read_checksum(&staged).map_err(|e| internal("read", &staged_sum, e))?;
            let actual = hash_file(&shard).map_err(|e| internal("read", &shard, e))?;
            if actual != recorded {
                return Err(Status::failed_precondition(format!(
                    "shard {index} of {id:?} does not match the checksum staged for it: put it \
                     again"
                )));
            }
            return rename(&staged_sum, &sum);
        }
        (false, _) => {
            return Err(Status::failed_precondition(format!(
                "shard {index} of {id:?} has no staged copy to commit"
            )));
        }
    }
    match fs::remove_file(&sum) {
        Ok(()) => fsync()?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(internal("remove", &sum, e)),
    }
    rename(&staged, &shard)?;
    rename(&staged_sum, &sum)
}

/// Whether `path` exists (an error other than "not found" is one).
fn exists(path: &Path) -> Result<bool, Status> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(internal("stat", path, e)),
    }
}

/// Removes shard `index` of `id` (only the staged copy with `staged_only`), the manifest
/// copy if it names that shard, and the archive directory if it is left empty.
pub fn remove(root: &Path, id: &str, index: u32, staged_only: bool) -> Result<(), Status> {
    check_target(id, index)?;
    let staged = staged_file(root, id, index);
    let mut files = vec![checksum_file(&staged), staged];
    let dir = root.join(id);
    if !staged_only {
        let shard = shard_file(root, id, index);
        files.push(checksum_file(&shard));
        files.push(shard);
        let path = dir.join(MANIFEST);
        if read(&path)?.is_some_and(|m| m.shard_index as u32 == index) {
            files.push(path);
        }
    }
    for file in files {
        match fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(internal("remove", &file, e)),
        }
    }
    if dir.is_dir() {
        fsync_dir(&dir).map_err(|e| internal("fsync", &dir, e))?;
        if fs::remove_dir(&dir).is_ok() {
            fsync_dir(root).map_err(|e| internal("fsync", root, e))?;
        }
    }
    Ok(())
}

/// Archive ids with a manifest copy in the store.
pub fn list(root: &Path) -> Result<Vec<String>, Status> {
    let mut ids = Vec::new();
    let entries = fs::read_dir(root).map_err(|e| internal("list", root, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| internal("list", root, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if check_archive_id(name).is_ok() && entry.path().join(MANIFEST).is_file() {
            ids.push(name.to_string());
        }
    }
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests;
