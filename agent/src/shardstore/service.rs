//! The `couchestor.agent.v1.ShardStore` service over a store directory.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use couchestor_proto::agent::v1 as proto;
use futures::{Stream, StreamExt};
use proto::put_shard_chunk::Chunk;
use proto::shard_store_server::ShardStore;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::manifests;
use super::{MAX_SHARD_INDEX, checksum_file, hex, is_sha256_hex, shard_file, staged_file};
use crate::erasure::check_archive_id;
use crate::erasure::location::check_store_name;

/// Largest data chunk accepted in `PutShard` and sent by `GetShard` (1 MiB).
pub const MAX_CHUNK_BYTES: usize = 1 << 20;

/// Why a store directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `--shard-store-dir` does not exist or is not a directory.
    #[error("shard store directory {0} does not exist or is not a directory")]
    NotADirectory(PathBuf),
    /// A store name is invalid or given twice.
    #[error("shard store {0}")]
    BadName(String),
}

/// Name of the store of a `--shard-store-dir DIR` given without a name.
pub const DEFAULT_STORE: &str = "default";

/// The `ShardStore` service, storing shards under one directory per named store.
#[derive(Debug, Clone)]
pub struct ShardStoreService {
    stores: Vec<(String, PathBuf)>,
}

/// Parses a `--shard-store-dir` value: `NAME=DIR` or `DIR` (the store "default").
pub fn parse_store_arg(text: &str) -> (String, PathBuf) {
    match text.split_once('=') {
        Some((name, dir)) if check_store_name(name).is_ok() => (name.to_string(), dir.into()),
        _ => (DEFAULT_STORE.to_string(), text.into()),
    }
}

impl ShardStoreService {
    /// A service storing shards under `root` (the store "default"), an existing directory.
    pub fn new(root: &Path) -> Result<Self, StoreError> {
        Self::with_stores(vec![(DEFAULT_STORE.to_string(), root.to_path_buf())])
    }

    /// A service with several named stores, each an existing directory.
    pub fn with_stores(stores: Vec<(String, PathBuf)>) -> Result<Self, StoreError> {
        for (i, (name, dir)) in stores.iter().enumerate() {
            check_store_name(name).map_err(StoreError::BadName)?;
            if stores[..i].iter().any(|(n, _)| n == name) {
                return Err(StoreError::BadName(format!("{name:?} is given twice")));
            }
            if !dir.is_dir() {
                return Err(StoreError::NotADirectory(dir.clone()));
            }
        }
        Ok(Self { stores })
    }

    /// The directory of the first store.
    pub fn root(&self) -> &Path {
        &self.stores[0].1
    }

    /// Every store: name and directory.
    pub fn stores(&self) -> &[(String, PathBuf)] {
        &self.stores
    }

    /// The directory of store `name` (empty: "default", or the only store).
    pub fn resolve(&self, name: &str) -> Result<PathBuf, Status> {
        let found = if name.is_empty() {
            self.stores
                .iter()
                .find(|(n, _)| n == DEFAULT_STORE)
                .or(if self.stores.len() == 1 {
                    self.stores.first()
                } else {
                    None
                })
        } else {
            self.stores.iter().find(|(n, _)| n == name)
        };
        found.map(|(_, dir)| dir.clone()).ok_or_else(|| {
            let names: Vec<&str> = self.stores.iter().map(|(n, _)| n.as_str()).collect();
            Status::not_found(format!(
                "no shard store {name:?} on this agent (stores: {})",
                names.join(", ")
            ))
        })
    }
}

/// Checks an archive id and a shard index from a request.
pub(super) fn check_target(archive_id: &str, index: u32) -> Result<(), Status> {
    check_archive_id(archive_id).map_err(|e| Status::invalid_argument(e.to_string()))?;
    if index > MAX_SHARD_INDEX {
        return Err(Status::invalid_argument(format!(
            "shard index {index} is out of range (0 to {MAX_SHARD_INDEX})"
        )));
    }
    Ok(())
}

/// Whether `e` says the disk (or the quota) is full.
fn is_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull
        || e.kind() == io::ErrorKind::QuotaExceeded
        || matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// The status of an I/O error while storing into the store directory `store`: a full disk
/// or exhausted quota is RESOURCE_EXHAUSTED naming the store's directory (the proto
/// contract), anything else INTERNAL with the path.
pub(super) fn write_error(what: &str, path: &Path, store: &Path, e: &io::Error) -> Status {
    if is_full(e) {
        tracing::warn!(
            "shard store {}: full, cannot {what} {}: {e}",
            store.display(),
            path.display()
        );
        return Status::resource_exhausted(format!(
            "shard store directory {} is full: cannot {what} {}: {e}",
            store.display(),
            path.display()
        ));
    }
    internal(what, path, e)
}

pub(super) fn internal(what: &str, path: &Path, e: impl std::fmt::Display) -> Status {
    tracing::warn!("shard store: cannot {what} {}: {e}", path.display());
    Status::internal(format!("cannot {what} {}: {e}", path.display()))
}

/// The recorded checksum of a stored shard: (SHA-256 hex, length).
pub(super) fn read_checksum(shard: &Path) -> io::Result<(String, u64)> {
    let text = fs::read_to_string(checksum_file(shard))?;
    let mut parts = text.split_whitespace();
    let sha = parts.next().filter(|s| is_sha256_hex(s));
    let len = parts.next().and_then(|l| l.parse().ok());
    match (sha, len) {
        (Some(sha), Some(len)) => Ok((sha.to_string(), len)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("malformed checksum file {:?}", text.trim()),
        )),
    }
}

/// SHA-256 and length of a file's content.
pub(super) fn hash_file(path: &Path) -> io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; MAX_CHUNK_BYTES];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hex(ctx.finish().as_ref()), len))
}

/// The identity (SHA-256, length) of a stored shard: its checksum file, or its content
/// when the checksum file is missing. `None` when the shard is not stored.
fn stored_identity(shard: &Path) -> io::Result<Option<(String, u64)>> {
    if !shard.exists() {
        return Ok(None);
    }
    match read_checksum(shard) {
        Ok(id) => Ok(Some(id)),
        Err(_) => hash_file(shard).map(Some),
    }
}

pub(super) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Runs blocking file work off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("file task failed: {e}")))?
}

/// Outcome of storing a received shard.
enum Stored {
    New,
    Identical,
}

type ShardDataStream = Pin<Box<dyn Stream<Item = Result<proto::ShardData, Status>> + Send>>;

#[tonic::async_trait]
impl ShardStore for ShardStoreService {
    async fn put_shard(
        &self,
        request: Request<Streaming<proto::PutShardChunk>>,
    ) -> Result<Response<proto::PutShardResponse>, Status> {
        let peer = request.remote_addr();
        let mut stream = request.into_inner();
        let header = match stream.next().await {
            Some(Ok(proto::PutShardChunk {
                chunk: Some(Chunk::Header(h)),
            })) => h,
            Some(Ok(_)) => {
                return Err(Status::invalid_argument(
                    "the first PutShard message must carry the header",
                ));
            }
            Some(Err(status)) => return Err(status),
            None => return Err(Status::invalid_argument("PutShard stream is empty")),
        };
        let (id, index, length) = (header.archive_id.clone(), header.shard_index, header.length);
        check_target(&id, index)?;
        let root = self.resolve(&header.store)?;
        let trailer = header.staged && header.sha256.is_empty();
        if !trailer && !is_sha256_hex(&header.sha256) {
            return Err(Status::invalid_argument(format!(
                "sha256 {:?} is not 64 lowercase hex digits",
                header.sha256
            )));
        }
        let shard = if header.staged {
            staged_file(&root, &id, index)
        } else {
            shard_file(&root, &id, index)
        };
        let dir = root.join(&id);
        // An existing, different shard is refused before any data is read (a staged copy
        // is simply replaced).
        let existing = if header.staged {
            None
        } else {
            let shard = shard.clone();
            blocking(move || stored_identity(&shard).map_err(|e| internal("read", &shard, e)))
                .await?
        };
        if let Some((sha, len)) = &existing
            && (sha != &header.sha256 || *len != length)
        {
            return Err(Status::already_exists(format!(
                "shard {index} of archive {id:?} is already stored with a different content \
                 (sha256 {sha}, {len} bytes)"
            )));
        }

        // Receive into a temporary file in the archive's directory.
        let (created_dir, tmp) = {
            let (dir, root) = (dir.clone(), root.clone());
            blocking(move || {
                let created = !dir.exists();
                if created {
                    fs::create_dir(&dir)
                        .or_else(|e| {
                            if e.kind() == io::ErrorKind::AlreadyExists {
                                Ok(())
                            } else {
                                Err(e)
                            }
                        })
                        .map_err(|e| write_error("create", &dir, &root, &e))?;
                    fsync_dir(&root).map_err(|e| write_error("fsync", &root, &root, &e))?;
                }
                let tmp = tempfile::Builder::new()
                    .prefix(".put-")
                    .suffix(".tmp")
                    .tempfile_in(&dir)
                    .map_err(|e| write_error("create a temporary file in", &dir, &root, &e))?;
                Ok((created, tmp))
            })
            .await?
        };
        let cleanup_dir = move |dir: PathBuf| async move {
            if created_dir {
                // Only removes the directory if it is still empty.
                if let Err(e) = tokio::fs::remove_dir(&dir).await {
                    tracing::debug!("shard store: {} kept: {e}", dir.display());
                }
            }
        };
        let (std_file, tmp_path) = tmp.into_parts();
        let received = receive(&mut stream, std_file, &header, &root).await;
        if let Err(status) = &received {
            let status = status.clone();
            drop(tmp_path);
            cleanup_dir(dir).await;
            tracing::warn!(
                ?peer,
                "PutShard {id:?}/{index} refused: {}",
                status.message()
            );
            return Err(status);
        }

        let sha = received.unwrap_or_default();
        let staged = header.staged;
        let stored = {
            let (shard, dir, root) = (shard.clone(), dir.clone(), root.clone());
            blocking(move || {
                let persisted = if staged {
                    tmp_path.persist(&shard).map_err(|e| e.error)
                } else {
                    tmp_path.persist_noclobber(&shard).map_err(|e| e.error)
                };
                match persisted {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        // Another put of this shard won the race: fine if identical.
                        let other =
                            stored_identity(&shard).map_err(|e| internal("read", &shard, e))?;
                        return match other {
                            Some((s, l)) if s == sha && l == length => Ok(Stored::Identical),
                            _ => Err(Status::already_exists(format!(
                                "shard {} was stored concurrently with a different content",
                                shard.display()
                            ))),
                        };
                    }
                    Err(e) => return Err(write_error("rename into", &shard, &root, &e)),
                }
                let sums = tempfile::Builder::new()
                    .prefix(".sum-")
                    .suffix(".tmp")
                    .tempfile_in(&dir)
                    .map_err(|e| write_error("create a temporary file in", &dir, &root, &e))?;
                fs::write(sums.path(), format!("{sha} {length}\n"))
                    .and_then(|()| sums.as_file().sync_all())
                    .map_err(|e| write_error("write", sums.path(), &root, &e))?;
                let target = checksum_file(&shard);
                sums.persist(&target)
                    .map_err(|e| write_error("rename into", &target, &root, &e.error))?;
                fsync_dir(&dir).map_err(|e| write_error("fsync", &dir, &root, &e))?;
                Ok(Stored::New)
            })
            .await
        };
        match stored {
            Ok(Stored::New) => {
                tracing::info!(?peer, "PutShard {id:?}/{index}: {length} bytes stored");
                Ok(Response::new(proto::PutShardResponse {
                    bytes_written: length,
                }))
            }
            Ok(Stored::Identical) => {
                Ok(Response::new(proto::PutShardResponse { bytes_written: 0 }))
            }
            Err(status) => {
                cleanup_dir(dir).await;
                Err(status)
            }
        }
    }

    type GetShardStream = ShardDataStream;

    async fn get_shard(
        &self,
        request: Request<proto::GetShardRequest>,
    ) -> Result<Response<Self::GetShardStream>, Status> {
        let req = request.into_inner();
        check_target(&req.archive_id, req.shard_index)?;
        let root = self.resolve(&req.store)?;
        let shard = shard_file(&root, &req.archive_id, req.shard_index);
        let (file, size) = {
            let shard = shard.clone();
            let (id, index) = (req.archive_id.clone(), req.shard_index);
            blocking(move || {
                let file = File::open(&shard).map_err(|e| {
                    if e.kind() == io::ErrorKind::NotFound {
                        Status::not_found(format!(
                            "shard {index} of archive {id:?} is not stored here"
                        ))
                    } else {
                        internal("open", &shard, e)
                    }
                })?;
                let size = file
                    .metadata()
                    .map_err(|e| internal("stat", &shard, e))?
                    .len();
                Ok((file, size))
            })
            .await?
        };
        let end = if req.length == 0 {
            Some(size)
        } else {
            req.offset.checked_add(req.length)
        };
        let end = match end {
            Some(end) if req.offset <= size && end <= size => end,
            _ => {
                return Err(Status::out_of_range(format!(
                    "range {}+{} is beyond the end of shard {} of archive {:?} ({size} bytes)",
                    req.offset, req.length, req.shard_index, req.archive_id
                )));
            }
        };
        let (tx, rx) = mpsc::channel(4);
        let start = req.offset;
        tokio::task::spawn_blocking(move || {
            let mut pos = start;
            while pos < end {
                let n = (end - pos).min(MAX_CHUNK_BYTES as u64) as usize;
                let mut data = vec![0u8; n];
                let item = match file.read_exact_at(&mut data, pos) {
                    Ok(()) => Ok(proto::ShardData { offset: pos, data }),
                    Err(e) => Err(internal("read", &shard, e)),
                };
                let failed = item.is_err();
                if tx.blocking_send(item).is_err() || failed {
                    return;
                }
                pos += n as u64;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn verify_shards(
        &self,
        request: Request<proto::VerifyShardsRequest>,
    ) -> Result<Response<proto::VerifyShardsResponse>, Status> {
        let req = request.into_inner();
        let id = req.archive_id;
        check_archive_id(&id).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let root = self.resolve(&req.store)?;
        let shards = blocking(move || verify(&root, &id)).await?;
        Ok(Response::new(proto::VerifyShardsResponse { shards }))
    }

    async fn put_manifest(
        &self,
        request: Request<proto::PutManifestRequest>,
    ) -> Result<Response<proto::PutManifestResponse>, Status> {
        let req = request.into_inner();
        let root = self.resolve(&req.store)?;
        blocking(move || manifests::put(&root, &req.archive_id, &req.manifest_json)).await?;
        Ok(Response::new(proto::PutManifestResponse {}))
    }

    async fn get_manifest(
        &self,
        request: Request<proto::GetManifestRequest>,
    ) -> Result<Response<proto::GetManifestResponse>, Status> {
        let req = request.into_inner();
        let root = self.resolve(&req.store)?;
        let manifest_json = blocking(move || manifests::get(&root, &req.archive_id)).await?;
        Ok(Response::new(proto::GetManifestResponse { manifest_json }))
    }

    async fn commit_shard(
        &self,
        request: Request<proto::CommitShardRequest>,
    ) -> Result<Response<proto::CommitShardResponse>, Status> {
        let req = request.into_inner();
        let root = self.resolve(&req.store)?;
        blocking(move || manifests::commit(&root, &req.archive_id, req.shard_index)).await?;
        Ok(Response::new(proto::CommitShardResponse {}))
    }

    async fn remove_shard(
        &self,
        request: Request<proto::RemoveShardRequest>,
    ) -> Result<Response<proto::RemoveShardResponse>, Status> {
        let req = request.into_inner();
        let root = self.resolve(&req.store)?;
        blocking(move || {
            manifests::remove(&root, &req.archive_id, req.shard_index, req.staged_only)
        })
        .await?;
        Ok(Response::new(proto::RemoveShardResponse {}))
    }

    async fn list_store_archives(
        &self,
        request: Request<proto::ListStoreArchivesRequest>,
    ) -> Result<Response<proto::ListStoreArchivesResponse>, Status> {
        let root = self.resolve(&request.into_inner().store)?;
        let archive_ids = blocking(move || manifests::list(&root)).await?;
        Ok(Response::new(proto::ListStoreArchivesResponse {
            archive_ids,
        }))
    }
}

/// Streams the data chunks after the header into `file`, checking sizes and the SHA-256
/// (the header's, or a trailer's), and fsyncs it. Returns the SHA-256. A full disk under the
/// store directory `store` is RESOURCE_EXHAUSTED.
async fn receive(
    stream: &mut Streaming<proto::PutShardChunk>,
    file: File,
    header: &proto::ShardHeader,
    store: &Path,
) -> Result<String, Status> {
    let shard = format!(
        "shard {} of archive {:?}",
        header.shard_index, header.archive_id
    );
    let failed = |what: &str, e: io::Error| write_error(what, Path::new(&shard), store, &e);
    let mut file = tokio::fs::File::from_std(file);
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut received = 0u64;
    let mut expected = header.sha256.clone();
    let mut trailer_seen = false;
    while let Some(message) = stream.next().await {
        if trailer_seen {
            return Err(Status::invalid_argument(
                "PutShard carries a message after the trailer",
            ));
        }
        let data = match message?.chunk {
            Some(Chunk::Trailer(t)) if expected.is_empty() && is_sha256_hex(&t.sha256) => {
                expected = t.sha256;
                trailer_seen = true;
                continue;
            }
            Some(Chunk::Trailer(t)) => {
                return Err(Status::invalid_argument(format!(
                    "unexpected trailer (sha256 {:?}): only a staged put without a header \
                     SHA-256 ends with one, carrying 64 lowercase hex digits",
                    t.sha256
                )));
            }
            Some(Chunk::Data(data)) => data,
            Some(Chunk::Header(_)) => {
                return Err(Status::invalid_argument(
                    "PutShard carries a second header; only the first message may",
                ));
            }
            None => continue,
        };
        if data.len() > MAX_CHUNK_BYTES {
            return Err(Status::invalid_argument(format!(
                "a chunk of {} bytes exceeds the {MAX_CHUNK_BYTES}-byte limit",
                data.len()
            )));
        }
        received += data.len() as u64;
        if received > header.length {
            return Err(Status::invalid_argument(format!(
                "more data than the announced length of {} bytes",
                header.length
            )));
        }
        ctx.update(&data);
        file.write_all(&data)
            .await
            .map_err(|e| failed("write", e))?;
    }
    if received != header.length {
        return Err(Status::invalid_argument(format!(
            "the stream ended after {received} of the announced {} bytes",
            header.length
        )));
    }
    if expected.is_empty() {
        return Err(Status::invalid_argument(
            "the stream ended without the trailer carrying the SHA-256",
        ));
    }
    let sha = hex(ctx.finish().as_ref());
    if sha != expected {
        return Err(Status::data_loss(format!(
            "SHA-256 of the received data is {sha}, the sender says {expected}: shard {} of \
             archive {:?} not stored",
            header.shard_index, header.archive_id
        )));
    }
    file.flush().await.map_err(|e| failed("write", e))?;
    file.sync_all().await.map_err(|e| failed("fsync", e))?;
    Ok(sha)
}

/// Checks every shard of `id` stored under `root` against its recorded SHA-256.
fn verify(root: &Path, id: &str) -> Result<Vec<proto::ShardState>, Status> {
    let dir = root.join(id);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Status::not_found(format!(
                "archive {id:?} is not stored here"
            )));
        }
        Err(e) => return Err(internal("list", &dir, e)),
    };
    let mut indices = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let index = name
            .strip_prefix("shard-")
            .and_then(|n| {
                n.strip_suffix(".dat")
                    .or_else(|| n.strip_suffix(".dat.sha256"))
            })
            .and_then(|n| n.parse::<u32>().ok());
        if let Some(i) = index
            && !indices.contains(&i)
        {
            indices.push(i);
        }
    }
    indices.sort_unstable();
    let mut states = Vec::with_capacity(indices.len());
    for index in indices {
        let shard = shard_file(root, id, index);
        let state = |present, checksum_ok, detail: String| proto::ShardState {
            shard_index: index,
            present,
            checksum_ok,
            detail,
        };
        if !shard.exists() {
            states.push(state(
                false,
                false,
                "shard file missing (checksum file left)".into(),
            ));
            continue;
        }
        let recorded = match read_checksum(&shard) {
            Ok(r) => r,
            Err(e) => {
                states.push(state(true, false, format!("no usable checksum: {e}")));
                continue;
            }
        };
        match hash_file(&shard) {
            Ok(actual) if actual == recorded => {
                states.push(state(
                    true,
                    true,
                    format!("{} bytes, sha256 {}", actual.1, actual.0),
                ));
            }
            Ok((sha, len)) => states.push(state(
                true,
                false,
                format!(
                    "content is {len} bytes with sha256 {sha}, recorded {} bytes with sha256 {}",
                    recorded.1, recorded.0
                ),
            )),
            Err(e) => states.push(state(true, false, format!("cannot read: {e}"))),
        }
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::path::Path;

    use tonic::Code;

    use super::write_error;

    #[test]
    fn a_full_disk_is_resource_exhausted_naming_the_store_directory() {
        let store = Path::new("/var/lib/couchestor/store-a");
        let shard = store.join("vol/shard-2.dat");
        for e in [
            io::Error::from_raw_os_error(libc::ENOSPC),
            io::Error::from_raw_os_error(libc::EDQUOT),
            io::Error::from(io::ErrorKind::StorageFull),
            io::Error::from(io::ErrorKind::QuotaExceeded),
        ] {
            let status = write_error("write", &shard, store, &e);
            assert_eq!(status.code(), Code::ResourceExhausted, "{e}: {status:?}");
            assert!(
                status
                    .message()
                    .contains("/var/lib/couchestor/store-a is full"),
                "{status:?}"
            );
            assert!(status.message().contains("shard-2.dat"), "{status:?}");
        }
        for e in [
            io::Error::from_raw_os_error(libc::EIO),
            io::Error::from(io::ErrorKind::PermissionDenied),
        ] {
            let status = write_error("write", &shard, store, &e);
            assert_eq!(status.code(), Code::Internal, "{e}: {status:?}");
            assert!(status.message().contains("shard-2.dat"), "{status:?}");
        }
    }
}
