//! What encode and scrub do at one shard location — a local directory or another agent's
//! store — through one set of functions: read or write the manifest copy, move a written
//! shard into place, clean up after a failure, list archives.

use std::fs;
use std::io;

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
    let text = match loc {
        Location::Dir(dir) => {
            let path = archive_dir(dir, id).join(MANIFEST);
            match fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(EcError::io("read", &path, dir, e)),
            }
        }
        Location::Agent(store) => {
            let peers = peers_for(loc, peers)?;
            let mut client = peers.client(store)?;
            match peers
                .block_on(client.get_manifest(id))
                .map_err(|e| client_error(store, e))?
            {
                Some(text) => text,
                None => return Ok(None),
            }
        }
    };
    Ok(Some(Manifest::parse(&text)))
}

/// Replaces the manifest copy of `manifest.archive_id` at `loc` atomically.
pub(crate) fn write_manifest(
    loc: &Location,
    manifest: &Manifest,
    peers: Option<&Peers>,
) -> Result<(), EcError> {
    let id = &manifest.archive_id;
    match loc {
        Location::Dir(dir) => write_atomic(
            &archive_dir(dir, id).join(MANIFEST),
            manifest.to_json().as_bytes(),
            dir,
        ),
        Location::Agent(store) => {
            let peers = peers_for(loc, peers)?;
            let mut client = peers.client(store)?;
            peers
                .block_on(client.put_manifest(id, &manifest.to_json()))
                .map_err(|e| client_error(store, e))
        }
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
    match loc {
        Location::Dir(dir) => {
            let dat = shard_path(dir, id, index);
            fs::rename(tmp_path(&dat), &dat).map_err(|e| EcError::io("rename", &dat, dir, e))?;
            fsync_dir(&archive_dir(dir, id), dir)
        }
        Location::Agent(store) => {
            let peers = peers_for(loc, peers)?;
            let mut client = peers.client(store)?;
            peers
                .block_on(client.commit_shard(id, index as u32))
                .map_err(|e| client_error(store, e))
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
    match loc {
        Location::Dir(dir) => {
            let adir = archive_dir(dir, id);
            let dat = shard_path(dir, id, index);
            remove_quiet(&tmp_path(&dat));
            remove_quiet(&tmp_path(&adir.join(MANIFEST)));
            if committed {
                remove_quiet(&adir.join(MANIFEST));
                remove_quiet(&dat);
            }
            if adir.is_dir()
                && let Err(e) = fsync_dir(&adir, dir)
            {
                tracing::warn!("after a failed operation: {e}");
            }
        }
        Location::Agent(store) => {
            let Some(peers) = peers else { return };
            let removed = peers.client(store).and_then(|mut client| {
                peers
                    .block_on(client.remove_shard(id, index as u32, !committed))
                    .map_err(|e| client_error(store, e))
            });
            if let Err(e) = removed {
                tracing::warn!("after a failed operation, cannot clean up shard {index}: {e}");
            }
        }
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
