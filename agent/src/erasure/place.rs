//! What encode and scrub do at one shard location — a local directory or another agent's
//! store — through one set of functions: read or write the manifest copy, move a written
//! shard into place, clean up after a failure, list archives.

use std::fs;
use std::io;
use std::path::Path;

use super::EcError;
use super::fsutil::{
    MANIFEST, archive_dir, fsync_dir, remove_quiet, shard_path, tmp_path, write_atomic,
};
use super::location::Location;
use super::manifest::{Manifest, ManifestError};
use super::remote::{Peers, client_error};

/// The peers needed for a remote location, or an error saying they are missing.
pub(crate) fn peers_for<'a>(
    loc: &Location,
    peers: Option<&'a Peers>,
) -> Result<&'a Peers, EcError> {
    peers.ok_or_else(|| EcError::NoPeerIdentity(loc.to_string()))
}

/// The manifest copy of `id` at `loc`: `None` when there is none, `Some(Err)` when it
/// cannot be parsed.
pub(crate) fn read_manifest(
    loc: &Location,
    id: &str,
    peers: Option<&Peers>,
) -> Result<Option<Result<Manifest, ManifestError>>, EcError> {
    Ok(read_manifest_text(loc, id, peers)?.map(|text| Manifest::parse(&text)))
}

/// The text of the manifest copy of `id` at `loc`, or `None` when there is none.
pub(crate) fn read_manifest_text(
    loc: &Location,
    id: &str,
    peers: Option<&Peers>,
) -> Result<Option<String>, EcError> {
    match loc {
        Location::Dir(dir) => {
            let path = archive_dir(dir, id).join(MANIFEST);
            match fs::read_to_string(&path) {
                Ok(text) => Ok(Some(text)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(EcError::io("read", &path, dir, e)),
            }
        }
        Location::Agent(store) => {
            let peers = peers_for(loc, peers)?;
            let mut client = peers.client(store)?;
            peers
                .block_on(client.get_manifest(id))
                .map_err(|e| client_error(store, e))
        }
    }
}

/// Replaces the manifest copy of `manifest.archive_id` at `loc` atomically.
pub(crate) fn write_manifest(
    loc: &Location,
    manifest: &Manifest,
    peers: Option<&Peers>,
) -> Result<(), EcError> {
    put_manifest_text(loc, &manifest.archive_id, &manifest.to_json(), peers)
}

/// Replaces the manifest copy of `id` at `loc` atomically with `text` (a copy read
/// before: a store checks it again).
pub(crate) fn put_manifest_text(
    loc: &Location,
    id: &str,
    text: &str,
    peers: Option<&Peers>,
) -> Result<(), EcError> {
    match loc {
        Location::Dir(dir) => {
            write_atomic(&archive_dir(dir, id).join(MANIFEST), text.as_bytes(), dir)
        }
        Location::Agent(store) => {
            let peers = peers_for(loc, peers)?;
            let mut client = peers.client(store)?;
            peers
                .block_on(client.put_manifest(id, text))
                .map_err(|e| client_error(store, e))
        }
    }
}

/// Removes the manifest copy of `id` at `loc`, which names shard `index`. A store has no
/// call that removes only a copy: there, shard `index` (which no other copy describes) goes
/// with it.
pub(crate) fn remove_manifest(
    loc: &Location,
    id: &str,
    index: usize,
    peers: Option<&Peers>,
) -> Result<(), EcError> {
    match loc {
        Location::Dir(dir) => {
            let adir = archive_dir(dir, id);
            remove_file(&adir.join(MANIFEST), dir)?;
            fsync_dir(&adir, dir)
        }
        Location::Agent(_) => remove(loc, id, index, true, peers),
    }
}

/// Moves the written shard `index` of `id` into place at `loc` (local: rename the tmp file
/// and fsync the directory; remote: `CommitShard`).
pub(crate) fn commit_shard(
    loc: &Location,
    id: &str,
    index: usize,
    peers: Option<&Peers>,
) -> Result<(), EcError> {
    try_commit_shard(loc, id, index, peers).map_err(|(e, _)| e)
}

/// [`commit_shard`], saying on failure whether the shard was moved into place anyway:
/// `Some(false)` no (the local rename failed), `Some(true)` yes (the directory fsync after
/// it failed), `None` unknown (a remote call failed).
pub(crate) fn try_commit_shard(
    loc: &Location,
    id: &str,
    index: usize,
    peers: Option<&Peers>,
) -> Result<(), (EcError, Option<bool>)> {
    match loc {
        Location::Dir(dir) => {
            let dat = shard_path(dir, id, index);
            fs::rename(tmp_path(&dat), &dat)
                .map_err(|e| (EcError::io("rename", &dat, dir, e), Some(false)))?;
            fsync_dir(&archive_dir(dir, id), dir).map_err(|e| (e, Some(true)))
        }
        Location::Agent(store) => {
            let peers = peers_for(loc, peers).map_err(|e| (e, Some(false)))?;
            let mut client = peers.client(store).map_err(|e| (e, Some(false)))?;
            peers
                .block_on(client.commit_shard(id, index as u32))
                .map_err(|e| (client_error(store, e), None))
        }
    }
}

/// Removes what a failed operation wrote for shard `index` of `id` at `loc`: the tmp (or
/// staged) copy, and with `committed` also the shard in place and its manifest copy.
/// Failures are logged, not returned (this runs on an error path).
pub(crate) fn discard(
    loc: &Location,
    id: &str,
    index: usize,
    committed: bool,
    peers: Option<&Peers>,
) {
    if let Location::Dir(dir) = loc {
        remove_quiet(&tmp_path(&archive_dir(dir, id).join(MANIFEST)));
    }
    if let Err(e) = remove(loc, id, index, committed, peers) {
        tracing::warn!("after a failed operation, cannot clean up shard {index}: {e}");
    }
}

/// Removes the tmp (or staged) copy of shard `index` of `id` at `loc`, and with `committed`
/// also the shard in place and the manifest copy (in a store: if it names `index`).
pub(crate) fn remove(
    loc: &Location,
    id: &str,
    index: usize,
    committed: bool,
    peers: Option<&Peers>,
) -> Result<(), EcError> {
    match loc {
        Location::Dir(dir) => {
            let adir = archive_dir(dir, id);
            let dat = shard_path(dir, id, index);
            remove_file(&tmp_path(&dat), dir)?;
            if committed {
                remove_file(&adir.join(MANIFEST), dir)?;
                remove_file(&dat, dir)?;
            }
            if adir.is_dir() {
                fsync_dir(&adir, dir)?;
            }
            Ok(())
        }
        Location::Agent(store) => {
            let peers = peers_for(loc, peers)?;
            let mut client = peers.client(store)?;
            peers
                .block_on(client.remove_shard(id, index as u32, !committed))
                .map_err(|e| client_error(store, e))
        }
    }
}

/// Removes a file; one already gone is fine.
fn remove_file(path: &Path, dir: &Path) -> Result<(), EcError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(EcError::io("remove", path, dir, e)),
    }
}

/// Archive ids at `loc` (directories holding a manifest or a shard file).
pub(crate) fn list_ids(loc: &Location, peers: Option<&Peers>) -> Result<Vec<String>, EcError> {
    match loc {
        Location::Dir(dir) => {
            let mut ids = Vec::new();
            let entries = fs::read_dir(dir).map_err(|e| EcError::io("list", dir, dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| EcError::io("list", dir, dir, e))?;
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if entry.path().join(MANIFEST).is_file()
                    || super::archive::shard_hint(&entry.path()).is_some()
                {
                    ids.push(name);
                }
            }
            Ok(ids)
        }
        Location::Agent(store) => {
            let peers = peers_for(loc, peers)?;
            let mut client = peers.client(store)?;
            peers
                .block_on(client.list_archives())
                .map_err(|e| client_error(store, e))
        }
    }
}
