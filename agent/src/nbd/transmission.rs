//! The transmission phase: requests are read in order; reads run on tokio's blocking pool
//! (up to [`MAX_IN_FLIGHT`] per connection) and their replies go out as they complete,
//! matched by cookie (simple replies, or structured ones when negotiated: one `OFFSET_DATA`
//! chunk per read, `NONE` for other successes, `ERROR` for failures). Writes, trims and write-zeroes are refused with
//! EPERM; ranges beyond the end with EINVAL.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{Semaphore, mpsc};

use super::ExportSource;
use super::metrics::NbdMetrics;
use super::proto::*;

/// Reads of one connection that may run at the same time.
pub const MAX_IN_FLIGHT: usize = 16;

/// One reply waiting to be written.
struct Reply {
    cookie: u64,
    error: u32,
    /// `Some(offset)` for a read: the data goes in an `OFFSET_DATA` chunk when structured.
    read_at: Option<u64>,
    data: Vec<u8>,
}

/// How a connection's transmission phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client sent `NBD_CMD_DISC`.
    Disconnect,
    /// The client closed the connection without `NBD_CMD_DISC`.
    Closed,
}

/// Why a connection was dropped during transmission.
#[derive(Debug, thiserror::Error)]
pub enum TransmissionError {
    /// A request header was malformed or the connection failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Writing a reply failed.
    #[error("cannot send a reply: {0}")]
    Write(std::io::Error),
}

/// Serves requests on `stream` until the client disconnects.
pub async fn serve<S>(
    stream: S,
    source: Arc<dyn ExportSource>,
    metrics: Arc<NbdMetrics>,
    peer: SocketAddr,
    structured: bool,
) -> Result<End, TransmissionError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, wr) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel::<Reply>(MAX_IN_FLIGHT * 2);
    let writer = tokio::spawn(write_replies(wr, rx, metrics.clone(), structured));
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let size = source.size();
    let ended = loop {
        let req = match read_request(&mut rd).await {
            Ok(req) => req,
            Err(FrameError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break Ok(End::Closed);
            }
            Err(e) => break Err(TransmissionError::Frame(e)),
        };
        tracing::trace!(%peer, "NBD {} offset={} length={}", command_name(req.kind), req.offset, req.length);
        let immediate = match req.kind {
            CMD_READ => {
                let end = req.offset.checked_add(u64::from(req.length));
                if req.length > MAX_REQUEST_LEN || end.is_none_or(|e| e > size) {
                    tracing::debug!(%peer, "NBD read {}+{} refused (export size {size})", req.offset, req.length);
                    Some(EINVAL)
                } else if req.length == 0 {
                    Some(0)
                } else {
                    let Ok(permit) = in_flight.clone().acquire_owned().await else {
                        break Ok(End::Closed);
                    };
                    let (source, metrics, tx) = (source.clone(), metrics.clone(), tx.clone());
                    tokio::spawn(async move {
                        let (offset, len) = (req.offset, req.length);
                        let read = tokio::task::spawn_blocking(move || {
                            let read = source.read_at(offset, len);
                            metrics.observe_degraded(source.degraded_reads());
                            read
                        })
                        .await;
                        let reply = match read {
                            Ok(Ok(data)) if data.len() == len as usize => Reply {
                                cookie: req.cookie,
                                error: 0,
                                read_at: Some(offset),
                                data,
                            },
                            Ok(Ok(data)) => {
                                tracing::warn!(%peer, "NBD read {offset}+{len}: the source returned {} bytes", data.len());
                                Reply {
                                    cookie: req.cookie,
                                    error: EIO,
                                    read_at: None,
                                    data: Vec::new(),
                                }
                            }
                            Ok(Err(e)) => {
                                tracing::warn!(%peer, "NBD read {offset}+{len} failed: {e}");
                                Reply {
                                    cookie: req.cookie,
                                    error: EIO,
                                    read_at: None,
                                    data: Vec::new(),
                                }
                            }
                            Err(e) => {
                                tracing::warn!(%peer, "NBD read {offset}+{len} failed: the read task died: {e}");
                                Reply {
                                    cookie: req.cookie,
                                    error: EIO,
                                    read_at: None,
                                    data: Vec::new(),
                                }
                            }
                        };
                        // The writer is gone only when the connection already failed.
                        if tx.send(reply).await.is_err() {
                            tracing::debug!(%peer, "reply to a read dropped: connection closed");
                        }
                        drop(permit);
                    });
                    None
                }
            }
            CMD_WRITE => {
                // The payload follows the header: consume it to stay in step, then refuse.
                let mut payload = (&mut rd).take(u64::from(req.length));
                let drained = tokio::io::copy(&mut payload, &mut tokio::io::sink()).await;
                match drained {
                    Ok(n) if n == u64::from(req.length) => {}
                    Ok(_) => break Ok(End::Closed),
                    Err(e) => break Err(TransmissionError::Frame(FrameError::Io(e))),
                }
                tracing::info!(%peer, "NBD write {}+{} refused: the export is read-only", req.offset, req.length);
                Some(EPERM)
            }
            CMD_TRIM | CMD_WRITE_ZEROES => {
                tracing::info!(%peer, "NBD {} refused: the export is read-only", command_name(req.kind));
                Some(EPERM)
            }
            // Nothing is ever written, so there is nothing to flush.
            CMD_FLUSH => Some(0),
            CMD_DISC => break Ok(End::Disconnect),
            other => {
                tracing::info!(%peer, "NBD command {other} ({}) refused: not supported", command_name(other));
                Some(EINVAL)
            }
        };
        if let Some(error) = immediate {
            let reply = Reply {
                cookie: req.cookie,
                error,
                read_at: (req.kind == CMD_READ).then_some(req.offset),
                data: Vec::new(),
            };
            if tx.send(reply).await.is_err() {
                break Ok(End::Closed);
            }
        }
    };
    // Outstanding reads still hold senders: the writer finishes once they are answered.
    drop(tx);
    match writer.await {
        Ok(Ok(())) => ended,
        Ok(Err(e)) => match ended {
            Ok(_) => Err(TransmissionError::Write(e)),
            Err(first) => Err(first),
        },
        Err(e) => Err(TransmissionError::Write(std::io::Error::other(e))),
    }
}

async fn write_replies<W: AsyncWrite + Unpin>(
    wr: W,
    mut rx: mpsc::Receiver<Reply>,
    metrics: Arc<NbdMetrics>,
    structured: bool,
) -> std::io::Result<()> {
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    while let Some(reply) = rx.recv().await {
        let len = reply.data.len();
        if !structured {
            wr.write_all(&simple_reply(reply.error, reply.cookie))
                .await?;
            if reply.error == 0 {
                wr.write_all(&reply.data).await?;
            }
        } else if reply.error != 0 {
            // Error chunk: errno, then an empty message.
            let header = structured_reply(REPLY_FLAG_DONE, REPLY_TYPE_ERROR, reply.cookie, 6);
            wr.write_all(&header).await?;
            wr.write_all(&reply.error.to_be_bytes()).await?;
            wr.write_all(&0u16.to_be_bytes()).await?;
        } else if let Some(offset) = reply.read_at.filter(|_| len > 0) {
            // `len` is at most MAX_REQUEST_LEN, so the chunk length fits.
            let chunk = (8 + len) as u32;
            let header =
                structured_reply(REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA, reply.cookie, chunk);
            wr.write_all(&header).await?;
            wr.write_all(&offset.to_be_bytes()).await?;
            wr.write_all(&reply.data).await?;
        } else {
            let header = structured_reply(REPLY_FLAG_DONE, REPLY_TYPE_NONE, reply.cookie, 0);
            wr.write_all(&header).await?;
        }
        if reply.error == 0 {
            metrics.read_bytes(len as u64);
        }
        if rx.is_empty() {
            wr.flush().await?;
        }
    }
    wr.flush().await?;
    wr.shutdown().await
}
