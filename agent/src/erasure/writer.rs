//! Shard writes of encode and scrub: block `index` of every stripe buffer goes to shard
//! `index`. Local shard files get one [`Batch`] per stripe through the I/O [`Engine`], several
//! stripes in flight; a shard on another agent is streamed to its store as a staged
//! `PutShard` (committed later with the manifests).

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::EcError;
use super::fsutil::AlignedBuf;
use super::location::Location;
use super::remote::{Peers, client_error};
use super::uring::{Batch, DIRECT_UNIT, Engine, FileSpec, IoStats, Kind, Mode, Op};
use crate::shardstore::ClientError;

/// One shard to write.
#[derive(Debug, Clone)]
pub struct ShardTarget {
    /// Shard index: which block of each stripe buffer goes to it.
    pub index: usize,
    /// Where it goes.
    pub location: Location,
    /// The local file (a `*.tmp` path; created or truncated); `None` for a remote store.
    pub path: Option<PathBuf>,
}

/// A shard being streamed to another agent.
struct Stream {
    index: usize,
    location: Location,
    tx: Option<mpsc::Sender<Vec<u8>>>,
    call: Option<JoinHandle<Result<String, ClientError>>>,
}

/// Writes the blocks of successive stripes to their shards.
pub struct ShardWriter {
    engine: Engine,
    /// Shard index of each engine file.
    local: Vec<usize>,
    streams: Vec<Stream>,
    targets: Vec<ShardTarget>,
    block: usize,
    depth: usize,
    peers: Option<Arc<Peers>>,
}

impl ShardWriter {
    /// Creates (truncates) the local target files and starts the remote puts of archive `id`
    /// (each shard `shard_len` bytes). O_DIRECT is tried when `block` is a multiple of 512
    /// bytes; a file system that refuses it (at open or at the first writes) gets buffered
    /// I/O for that file, with a log line. Up to `depth` stripes are in flight.
    pub fn create(
        targets: Vec<ShardTarget>,
        block: usize,
        depth: usize,
        id: &str,
        shard_len: u64,
        peers: Option<Arc<Peers>>,
    ) -> Result<Self, EcError> {
        let mut specs = Vec::new();
        let mut local = Vec::new();
        let mut streams = Vec::new();
        for t in &targets {
            match (&t.location, &t.path) {
                (Location::Dir(dir), Some(path)) => {
                    specs.push(FileSpec {
                        path: path.clone(),
                        dir: dir.clone(),
                        mode: Mode::Create,
                        direct: block.is_multiple_of(DIRECT_UNIT),
                    });
                    local.push(t.index);
                }
                (Location::Agent(store), _) => {
                    let p = super::place::peers_for(&t.location, peers.as_deref())?;
                    let mut client = p.client(store)?;
                    let (tx, rx) = mpsc::channel(4);
                    let (id, index) = (id.to_string(), t.index as u32);
                    let call =
                        p.spawn(async move { client.put_staged(&id, index, shard_len, rx).await });
                    streams.push(Stream {
                        index: t.index,
                        location: t.location.clone(),
                        tx: Some(tx),
                        call: Some(call),
                    });
                }
                (Location::Dir(dir), None) => {
                    return Err(EcError::Codec(format!(
                        "no file to write in {}",
                        dir.display()
                    )));
                }
            }
        }
        let engine = Engine::new(specs, depth, local.len())?;
        Ok(ShardWriter {
            engine,
            local,
            streams,
            targets,
            block,
            depth: depth.max(1),
            peers,
        })
    }

    /// Whether local shard writes go through io_uring (false: pwrite fallback).
    pub fn uses_io_uring(&self) -> bool {
        self.engine.uses_io_uring()
    }

    /// Sends block `index` of `buf` (a whole stripe) to each remote shard, and queues one
    /// write per local shard file at offset `stripe * block` as one batch; then waits until
    /// at most `depth` stripes are in flight. Returns the buffers of completed stripes.
    pub fn submit(&mut self, stripe: u64, buf: AlignedBuf) -> Result<Vec<AlignedBuf>, EcError> {
        let block = self.block;
        for i in 0..self.streams.len() {
            let data = buf[self.streams[i].index * block..][..block].to_vec();
            let sent = match &self.streams[i].tx {
                Some(tx) => tx.blocking_send(data).is_ok(),
                None => false,
            };
            if !sent {
                // The call ended early: its result says why.
                return Err(self.end_stream(i).err().unwrap_or_else(|| {
                    EcError::Codec("a remote shard stream ended early".into())
                }));
            }
        }
        let ops = self
            .local
            .iter()
            .enumerate()
            .map(|(f, &index)| Op::new(f, Kind::Write, index * block, block, stripe * block as u64))
            .collect();
        self.engine.submit(Batch::new(stripe, buf, ops))?;
        Ok(self
            .engine
            .reap(self.depth)?
            .into_iter()
            .map(|b| b.buf)
            .collect())
    }

    /// Closes remote stream `i` and waits for its call's result.
    fn end_stream(&mut self, i: usize) -> Result<(), EcError> {
        let s = &mut self.streams[i];
        s.tx = None;
        let Some(call) = s.call.take() else {
            return Ok(());
        };
        let Location::Agent(store) = &s.location else {
            return Ok(());
        };
        let Some(peers) = &self.peers else {
            return Ok(());
        };
        match peers.block_on(call) {
            Ok(Ok(_sha)) => Ok(()),
            Ok(Err(e)) => Err(client_error(store, e)),
            Err(e) => Err(EcError::Codec(format!("a remote shard stream failed: {e}"))),
        }
    }

    /// Waits for every write, fsyncs every local file, ends every remote put (the shards are
    /// then staged there), and returns the targets and what the I/O engine did.
    pub fn finish(mut self) -> Result<(Vec<ShardTarget>, IoStats), EcError> {
        let mut first = None;
        for i in 0..self.streams.len() {
            if let Err(e) = self.end_stream(i) {
                first.get_or_insert(e);
            }
        }
        let stats = self.engine.finish()?;
        match first {
            Some(e) => Err(e),
            None => Ok((self.targets, stats)),
        }
    }
}
