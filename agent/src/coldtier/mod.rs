//! The `couchestor.coldtier.v1.ColdTier` service: the controller-facing calls of the cold
//! tier (archive, restore, verify/scrub, status), run by the archive engine
//! ([`crate::erasure`]) on this agent's shard directories and on other agents' stores.
//! Served by `serve` beside `NodeAgent`, behind the same mutual TLS.
//!
//! Long operations run on blocking threads and stream [`proto::Progress`] messages; the
//! last message carries the result, or the stream ends with a status naming the problem
//! (see `convert::status`). Two `Archive` calls, or an `Archive` and a repairing `Verify`,
//! of the same archive id never run at once (`FAILED_PRECONDITION`).

pub mod convert;
pub mod progress;
pub mod scan;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use couchestor_proto::coldtier::v1 as proto;
use futures::Stream;
use proto::cold_tier_server::ColdTier;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::erasure::location::Location;
use crate::erasure::remote::Peers;
use crate::erasure::{self, ArchiveReader, EcError, EncodeParams, Progress};
use progress::StreamProgress;

/// The ColdTier service of one agent.
#[derive(Debug, Clone)]
pub struct ColdTierService {
    dirs: Arc<Vec<PathBuf>>,
    peers: Option<Arc<Peers>>,
    busy: Arc<Mutex<HashSet<String>>>,
}

type EventStream<E> = Pin<Box<dyn Stream<Item = Result<E, Status>> + Send>>;

/// Marks an archive id busy until dropped.
struct Busy {
    set: Arc<Mutex<HashSet<String>>>,
    id: String,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

impl ColdTierService {
    /// A service over the shard directories `dirs` (they must exist), reaching other
    /// agents' stores through `peers` (none: remote locations are refused).
    pub fn new(dirs: &[PathBuf], peers: Option<Arc<Peers>>) -> Result<Self, EcError> {
        let mut canonical = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let c = dir
                .canonicalize()
                .map_err(|_| EcError::MissingShardDir(dir.clone()))?;
            if !c.is_dir() {
                return Err(EcError::MissingShardDir(dir.clone()));
            }
            canonical.push(c);
        }
        Ok(ColdTierService {
            dirs: Arc::new(canonical),
            peers,
            busy: Arc::new(Mutex::new(HashSet::new())),
        })
    }

    /// The shard directories it works in.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Parses request locations: local ones must be configured shard directories; none
    /// given means every configured directory.
    fn locations(&self, texts: &[String]) -> Result<Vec<Location>, Status> {
        if texts.is_empty() {
            return Ok(self.dirs.iter().cloned().map(Location::Dir).collect());
        }
        let mut out = Vec::with_capacity(texts.len());
        for text in texts {
            let loc = Location::parse(text).map_err(|e| convert::status(&e))?;
            match &loc {
                Location::Dir(dir) => {
                    let known = dir.is_absolute()
                        && dir.canonicalize().is_ok_and(|c| self.dirs.contains(&c));
                    if !known {
                        return Err(Status::invalid_argument(format!(
                            "{} is not a shard directory of this agent (configured: {})",
                            dir.display(),
                            join(&self.dirs)
                        )));
                    }
                }
                Location::Agent(_) if self.peers.is_none() => {
                    return Err(convert::status(&EcError::NoPeerIdentity(text.clone())));
                }
                Location::Agent(_) => {}
            }
            out.push(loc);
        }
        Ok(out)
    }

    fn lock(&self, id: &str) -> Result<Busy, Status> {
        let mut set = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        if !set.insert(id.to_string()) {
            return Err(Status::failed_precondition(format!(
                "another operation that writes archive {id:?} is running on this agent"
            )));
        }
        Ok(Busy {
            set: self.busy.clone(),
            id: id.to_string(),
        })
    }
}

fn join(dirs: &[PathBuf]) -> String {
    let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    names.join(", ")
}

fn path_arg(what: &str, text: &str) -> Result<PathBuf, Status> {
    if text.is_empty() {
        return Err(Status::invalid_argument(format!("{what} is empty")));
    }
    Ok(PathBuf::from(text))
}

/// Runs `op` on a blocking thread, streaming its progress and then its result.
fn run<E, T>(
    call: &'static str,
    wrap_progress: fn(proto::Progress) -> E,
    wrap_result: fn(T) -> E,
    guard: Option<Busy>,
    op: impl FnOnce(&dyn Progress) -> Result<T, EcError> + Send + 'static,
) -> Response<EventStream<E>>
where
    E: Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = mpsc::channel(16);
    tokio::task::spawn_blocking(move || {
        let _guard = guard;
        let progress = StreamProgress::new(tx.clone(), wrap_progress);
        let message = match op(&progress) {
            Ok(result) => {
                tracing::info!("ColdTier {call} done");
                Ok(wrap_result(result))
            }
            Err(e) => {
                tracing::warn!("ColdTier {call} failed: {e}");
                Err(convert::status(&e))
            }
        };
        if tx.blocking_send(message).is_err() {
            tracing::info!("ColdTier {call}: the client left before the result");
        }
    });
    Response::new(Box::pin(ReceiverStream::new(rx)))
}

/// An optional archive id from a request: `None` when empty, else a valid id.
fn optional_id(text: String) -> Result<Option<String>, Status> {
    if text.is_empty() {
        return Ok(None);
    }
    erasure::check_archive_id(&text)
        .map_err(|e| Status::invalid_argument(format!("archive_id {text:?}: {e}")))?;
    Ok(Some(text))
}

fn nonzero(value: u32, default: usize) -> usize {
    if value == 0 { default } else { value as usize }
}

#[tonic::async_trait]
impl ColdTier for ColdTierService {
    type ArchiveStream = EventStream<proto::ArchiveEvent>;

    async fn archive(
        &self,
        request: Request<proto::ArchiveRequest>,
    ) -> Result<Response<Self::ArchiveStream>, Status> {
        let req = request.into_inner();
        let source = path_arg("source_path", &req.source_path)?;
        let locations = self.locations(&req.shard_locations)?;
        if req.shard_locations.is_empty() {
            return Err(Status::invalid_argument(
                "shard_locations is empty: give k + m locations in shard order",
            ));
        }
        let params = EncodeParams {
            k: nonzero(req.k, erasure::DEFAULT_K),
            m: nonzero(req.m, erasure::DEFAULT_M),
            block_size: nonzero(req.block_size, erasure::DEFAULT_BLOCK_SIZE),
            archive_id: (!req.archive_id.is_empty()).then(|| req.archive_id.clone()),
            force: req.force,
        };
        let id = match &params.archive_id {
            Some(id) => id.clone(),
            None => file_name(&source),
        };
        let guard = self.lock(&id)?;
        let peers = self.peers.clone();
        let texts: Vec<String> = locations.iter().map(ToString::to_string).collect();
        tracing::info!(archive = %id, "ColdTier Archive of {} to {}", source.display(), texts.join(", "));
        Ok(run(
            "Archive",
            |p| proto::ArchiveEvent {
                event: Some(proto::archive_event::Event::Progress(p)),
            },
            |info| proto::ArchiveEvent {
                event: Some(proto::archive_event::Event::Result(info)),
            },
            Some(guard),
            move |progress| {
                let done = erasure::encode_at(&source, &locations, &params, progress, peers)?;
                Ok(convert::info(&done.manifest, &texts))
            },
        ))
    }

    type RestoreStream = EventStream<proto::RestoreEvent>;

    async fn restore(
        &self,
        request: Request<proto::RestoreRequest>,
    ) -> Result<Response<Self::RestoreStream>, Status> {
        let req = request.into_inner();
        let target = path_arg("target_path", &req.target_path)?;
        let locations = self.locations(&req.shard_locations)?;
        let peers = self.peers.clone();
        let id = optional_id(req.archive_id)?;
        Ok(run(
            "Restore",
            |p| proto::RestoreEvent {
                event: Some(proto::restore_event::Event::Progress(p)),
            },
            |r| proto::RestoreEvent {
                event: Some(proto::restore_event::Event::Result(r)),
            },
            None,
            move |progress| {
                let r = erasure::restore_at(
                    &locations,
                    id.as_deref(),
                    &target,
                    req.force,
                    progress,
                    peers,
                )?;
                Ok(convert::restored(&r))
            },
        ))
    }

    type VerifyStream = EventStream<proto::VerifyEvent>;

    async fn verify(
        &self,
        request: Request<proto::VerifyRequest>,
    ) -> Result<Response<Self::VerifyStream>, Status> {
        let req = request.into_inner();
        let locations = self.locations(&req.shard_locations)?;
        let id = optional_id(req.archive_id)?;
        // A repair writes: it takes the archive's lock, so it needs the id up front.
        let guard = match (&id, req.repair) {
            (Some(id), true) => Some(self.lock(id)?),
            (None, true) => {
                return Err(Status::invalid_argument(
                    "archive_id is empty: a repairing Verify needs the archive id",
                ));
            }
            (_, false) => None,
        };
        let peers = self.peers.clone();
        Ok(run(
            if req.repair {
                "Verify (repair)"
            } else {
                "Verify"
            },
            |p| proto::VerifyEvent {
                event: Some(proto::verify_event::Event::Progress(p)),
            },
            |h| proto::VerifyEvent {
                event: Some(proto::verify_event::Event::Result(h)),
            },
            guard,
            move |progress| {
                let report = if req.repair {
                    erasure::scrub_at(&locations, id.as_deref(), progress, peers)?
                } else {
                    erasure::verify_at(&locations, id.as_deref(), progress, peers)?
                };
                Ok(convert::health(&report))
            },
        ))
    }

    async fn get_archive(
        &self,
        request: Request<proto::GetArchiveRequest>,
    ) -> Result<Response<proto::ArchiveStatus>, Status> {
        let req = request.into_inner();
        erasure::check_archive_id(&req.archive_id).map_err(|e| convert::status(&e))?;
        if req.shard_locations.is_empty() {
            let dirs = self.dirs.clone();
            let id = req.archive_id.clone();
            let found = tokio::task::spawn_blocking(move || scan::scan(&dirs).remove(&id))
                .await
                .map_err(|e| Status::internal(format!("scan failed: {e}")))?;
            return match found {
                Some(f) => Ok(Response::new(status_of(&f))),
                None => Err(Status::not_found(format!(
                    "no archive {:?} in this agent's shard directories ({})",
                    req.archive_id,
                    join(&self.dirs)
                ))),
            };
        }
        let locations = self.locations(&req.shard_locations)?;
        let peers = self.peers.clone();
        let status = tokio::task::spawn_blocking(move || {
            let reader = ArchiveReader::open_at(&locations, Some(&req.archive_id), peers)?;
            Ok::<_, EcError>(reader_status(&reader))
        })
        .await
        .map_err(|e| Status::internal(format!("status failed: {e}")))?
        .map_err(|e| convert::status(&e))?;
        Ok(Response::new(status))
    }

    async fn list_archives(
        &self,
        _request: Request<proto::ListArchivesRequest>,
    ) -> Result<Response<proto::ListArchivesResponse>, Status> {
        let dirs = self.dirs.clone();
        let found = tokio::task::spawn_blocking(move || scan::scan(&dirs))
            .await
            .map_err(|e| Status::internal(format!("scan failed: {e}")))?;
        let archives = found.values().map(status_of).collect();
        Ok(Response::new(proto::ListArchivesResponse { archives }))
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn missing(index: Option<usize>, location: &str, reason: String) -> proto::ShardHealth {
    proto::ShardHealth {
        index: index.map(|i| i as u32).unwrap_or(u32::MAX),
        location: location.to_string(),
        state: proto::ShardHealthState::Missing as i32,
        reason,
        ..Default::default()
    }
}

/// Status from the light scan of local directories.
fn status_of(f: &scan::Found) -> proto::ArchiveStatus {
    let mut present: Vec<(usize, String)> = f
        .present
        .iter()
        .map(|(i, d)| (*i, d.display().to_string()))
        .collect();
    present.sort();
    let archive = f.manifest.as_ref().map(|m| {
        let mut info = convert::info(m, &[]);
        info.shards = present
            .iter()
            .map(|(i, l)| proto::ShardLocation {
                index: *i as u32,
                location: l.clone(),
            })
            .collect();
        info
    });
    proto::ArchiveStatus {
        archive,
        state: if f.writing { "writing" } else { "complete" }.into(),
        present_shards: present.iter().map(|(i, _)| *i as u32).collect(),
        missing: f
            .problems
            .iter()
            .map(|(i, d, why)| missing(*i, &d.display().to_string(), why.clone()))
            .collect(),
    }
}

/// Status from an opened archive (manifests read, shard files opened).
fn reader_status(reader: &ArchiveReader) -> proto::ArchiveStatus {
    let m = reader.manifest();
    let n = m.k + m.m;
    let gone = reader.missing_shards();
    let locations: Vec<String> = (0..n)
        .map(|i| reader.shard_location(i).unwrap_or_default())
        .collect();
    let mut info = convert::info(m, &locations);
    info.shards.retain(|s| !s.location.is_empty());
    proto::ArchiveStatus {
        archive: Some(info),
        state: "complete".into(),
        present_shards: (0..n)
            .filter(|i| !gone.contains(i))
            .map(|i| i as u32)
            .collect(),
        missing: gone
            .iter()
            .map(|&i| {
                let why = reader
                    .shard_problem(i)
                    .unwrap_or_else(|| "not readable".into());
                missing(Some(i), &locations[i], why)
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests;
