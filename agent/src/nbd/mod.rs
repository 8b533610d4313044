//! A read-only NBD server exporting one erasure-coded archive (`couchestor-agent nbd serve`).
//!
//! Protocol (upstream `doc/proto.md` of NetworkBlockDevice/nbd): fixed newstyle handshake
//! with `NBD_OPT_EXPORT_NAME`, `NBD_OPT_GO`, `NBD_OPT_INFO`, `NBD_OPT_LIST` and
//! `NBD_OPT_ABORT` ([`handshake`]); simple or structured replies; commands READ, FLUSH and DISC, with
//! WRITE/TRIM/WRITE_ZEROES refused with EPERM ([`transmission`]). The export is read through
//! an [`ExportSource`]: an [`ArchiveReader`] today, the block cache's archive later.
//!
//! No maintained async NBD *server* crate fits (the `nbd` crate is synchronous, answers
//! `NBD_OPT_GO`/`NBD_OPT_INFO` with "unsupported" and does not refuse writes), so the
//! protocol is implemented here.

pub mod handshake;
pub mod metrics;
pub mod proto;
pub mod transmission;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::erasure::{ArchiveReader, EcError};
use handshake::{ExportInfo, Outcome};
use metrics::NbdMetrics;
use transmission::End;

/// A handshake not finished within this time is abandoned.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Client connections served at the same time; further ones are closed on arrival.
pub const MAX_CONNECTIONS: usize = 128;

/// Why a read of an export failed (the client gets EIO).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The range does not lie within the export.
    #[error("range {offset}+{len} is beyond the end of the export ({size} bytes)")]
    Range {
        /// Start of the range.
        offset: u64,
        /// Its length.
        len: u32,
        /// Export size.
        size: u64,
    },
    /// The archive could not be read (e.g. fewer than k intact shards for a stripe).
    #[error(transparent)]
    Archive(#[from] EcError),
    /// Any other failure of the source (e.g. the block cache).
    #[error("{0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What an NBD export reads from: a fixed-size, read-only byte range.
pub trait ExportSource: Send + Sync + 'static {
    /// Size of the export in bytes.
    fn size(&self) -> u64;
    /// Reads exactly `len` bytes at `offset`; the server only asks for ranges within
    /// [`ExportSource::size`]. Runs on a blocking thread.
    fn read_at(&self, offset: u64, len: u32) -> Result<Vec<u8>, ExportError>;
    /// Stripes read so far that had to rebuild a missing or corrupt block (0 if the source
    /// cannot tell); exported as `couchestor_agent_ec_degraded_reads_total`, which `serve`
    /// exports with the same meaning for its restores and scrubs.
    fn degraded_reads(&self) -> u64 {
        0
    }
}

impl ExportSource for ArchiveReader {
    fn size(&self) -> u64 {
        self.manifest().source_size
    }

    fn read_at(&self, offset: u64, len: u32) -> Result<Vec<u8>, ExportError> {
        let size = self.size();
        if offset
            .checked_add(u64::from(len))
            .is_none_or(|end| end > size)
        {
            return Err(ExportError::Range { offset, len, size });
        }
        Ok(self.read_range(offset, u64::from(len))?)
    }

    fn degraded_reads(&self) -> u64 {
        ArchiveReader::degraded_reads(self)
    }
}

/// Reads through the block cache: L1 (memory), then L2 (local disk), then the shards.
impl ExportSource for crate::cache::CachedArchive {
    fn size(&self) -> u64 {
        crate::cache::CachedArchive::size(self)
    }

    fn read_at(&self, offset: u64, len: u32) -> Result<Vec<u8>, ExportError> {
        let size = ExportSource::size(self);
        if offset
            .checked_add(u64::from(len))
            .is_none_or(|end| end > size)
        {
            return Err(ExportError::Range { offset, len, size });
        }
        self.read_range(offset, u64::from(len))
            .map_err(|e| ExportError::Other(Box::new(e)))
    }

    fn degraded_reads(&self) -> u64 {
        self.reader().degraded_reads()
    }
}

/// One export served by [`serve`].
#[derive(Clone)]
pub struct Export {
    /// Name clients ask for (the empty name selects it too).
    pub name: String,
    /// Description sent to clients that ask (`nbdinfo` shows it).
    pub description: String,
    /// Where the data comes from.
    pub source: Arc<dyn ExportSource>,
}

impl std::fmt::Debug for Export {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Export")
            .field("name", &self.name)
            .field("size", &self.source.size())
            .finish()
    }
}

impl Export {
    fn info(&self) -> ExportInfo {
        ExportInfo {
            name: self.name.clone(),
            description: self.description.clone(),
            size: self.source.size(),
            flags: proto::TFLAG_HAS_FLAGS
                | proto::TFLAG_READ_ONLY
                | proto::TFLAG_SEND_FLUSH
                | proto::TFLAG_CAN_MULTI_CONN,
        }
    }
}

/// Accepts NBD clients on `listener` and serves `export` to each, concurrently, until
/// `shutdown` completes (open connections are then dropped).
pub async fn serve(
    listener: TcpListener,
    export: Export,
    metrics: Arc<NbdMetrics>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let info = Arc::new(export.info());
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (tcp, peer) = match accepted {
            Ok(connection) => connection,
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                tracing::warn!("accepting an NBD connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "NBD connection from {peer} dropped: {MAX_CONNECTIONS} connections already open");
            continue;
        };
        let (info, source, metrics) = (info.clone(), export.source.clone(), metrics.clone());
        tokio::spawn(async move {
            metrics.connection_opened();
            connection(tcp, peer, &info, source, metrics.clone()).await;
            metrics.connection_closed();
            drop(permit);
        });
    }
    tracing::info!("NBD server stopped accepting connections");
}

async fn connection(
    mut tcp: TcpStream,
    peer: SocketAddr,
    info: &ExportInfo,
    source: Arc<dyn ExportSource>,
    metrics: Arc<NbdMetrics>,
) {
    tracing::info!(%peer, "NBD connection from {peer}");
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(%peer, "cannot set TCP_NODELAY: {e}");
    }
    let negotiated =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake::negotiate(&mut tcp, info)).await;
    let structured = match negotiated {
        Ok(Ok(Outcome::Transmission { structured })) => structured,
        Ok(Ok(Outcome::Aborted)) => {
            tracing::info!(%peer, "NBD client {peer} ended the handshake (NBD_OPT_ABORT)");
            return;
        }
        Ok(Err(e)) => {
            tracing::warn!(%peer, "NBD handshake with {peer} failed: {e}");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, "NBD handshake with {peer} failed: not completed within {} s", HANDSHAKE_TIMEOUT.as_secs());
            return;
        }
    };
    tracing::info!(%peer, "NBD client {peer} opened export {:?}", info.name);
    match transmission::serve(tcp, source, metrics, peer, structured).await {
        Ok(End::Disconnect) => tracing::info!(%peer, "NBD client {peer} disconnected"),
        Ok(End::Closed) => {
            tracing::info!(%peer, "NBD client {peer} closed the connection without NBD_CMD_DISC")
        }
        Err(e) => tracing::warn!(%peer, "NBD connection with {peer} dropped: {e}"),
    }
}
