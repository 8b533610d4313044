//! A `ShardStore` client: push a shard file to another agent, pull one (or a range of one)
//! back, and ask it to verify what it stores. Connections use the agents' mutual TLS.

use std::path::Path;
use std::time::Duration;

use couchestor_proto::agent::v1 as proto;
use futures::StreamExt;
use proto::put_shard_chunk::Chunk;
use proto::shard_store_client::ShardStoreClient as Raw;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use super::{MAX_CHUNK_BYTES, MAX_MESSAGE_BYTES, hex};

/// Why a shard transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint is not a valid URI, or its TLS settings are unusable.
    #[error("cannot use endpoint {endpoint:?}: {source}")]
    Endpoint {
        /// The endpoint given.
        endpoint: String,
        /// Why.
        source: tonic::transport::Error,
    },
    /// The connection could not be made (refused, TLS handshake failed, ...).
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// Why.
        source: tonic::transport::Error,
    },
    /// The remote agent refused the call.
    #[error("{call} failed: {}: {}", .status.code(), .status.message())]
    Remote {
        /// Which call.
        call: &'static str,
        /// The status it returned.
        status: tonic::Status,
    },
    /// A local file could not be read or written.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The remote agent sent data that does not fit the request.
    #[error("GetShard sent {got} at offset {offset}, expected offset {expected}")]
    OutOfOrder {
        /// Offset received.
        offset: u64,
        /// Offset expected.
        expected: u64,
        /// Bytes received in that chunk.
        got: usize,
    },
}

/// A connection to another agent's `ShardStore`, addressing one of its stores.
#[derive(Debug, Clone)]
pub struct ShardStoreClient {
    raw: Raw<Channel>,
    store: String,
}

impl ShardStoreClient {
    /// Connects to `endpoint` (`https://host:port`) with `tls` (see
    /// [`crate::tls::client_config`]).
    pub async fn connect(endpoint: &str, tls: ClientTlsConfig) -> Result<Self, ClientError> {
        let bad = |source| ClientError::Endpoint {
            endpoint: endpoint.to_string(),
            source,
        };
        let channel = Endpoint::from_shared(endpoint.to_string())
            .map_err(bad)?
            .tls_config(tls)
            .map_err(bad)?
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await
            .map_err(|source| ClientError::Connect {
                endpoint: endpoint.to_string(),
                source,
            })?;
        Ok(Self::new(channel))
    }

    /// A client on an existing channel.
    pub fn new(channel: Channel) -> Self {
        Self {
            raw: Raw::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            store: String::new(),
        }
    }

    /// The same connection, addressing store `name` (empty: the agent's default store).
    pub fn with_store(mut self, name: &str) -> Self {
        self.store = name.to_string();
        self
    }

    fn remote(call: &'static str) -> impl Fn(tonic::Status) -> ClientError {
        move |status| ClientError::Remote { call, status }
    }

    /// Stages shard `index` of `archive_id` (`length` bytes) from the chunks arriving on
    /// `chunks`, sending their SHA-256 in a trailer; the remote agent keeps it as
    /// `shard-<index>.dat.tmp` until [`ShardStoreClient::commit_shard`]. Returns the SHA-256.
    pub async fn put_staged(
        &mut self,
        archive_id: &str,
        index: u32,
        length: u64,
        mut chunks: tokio::sync::mpsc::Receiver<Vec<u8>>,
    ) -> Result<String, ClientError> {
        let header = proto::PutShardChunk {
            chunk: Some(Chunk::Header(proto::ShardHeader {
                archive_id: archive_id.to_string(),
                shard_index: index,
                length,
                sha256: String::new(),
                store: self.store.clone(),
                staged: true,
            })),
        };
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let feeder = tokio::spawn(async move {
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            if tx.send(header).await.is_err() {
                return None;
            }
            while let Some(data) = chunks.recv().await {
                ctx.update(&data);
                for piece in data.chunks(MAX_CHUNK_BYTES) {
                    let chunk = proto::PutShardChunk {
                        chunk: Some(Chunk::Data(piece.to_vec())),
                    };
                    if tx.send(chunk).await.is_err() {
                        return None;
                    }
                }
            }
            let sha = hex(ctx.finish().as_ref());
            let trailer = proto::PutShardChunk {
                chunk: Some(Chunk::Trailer(proto::ShardTrailer {
                    sha256: sha.clone(),
                })),
            };
            tx.send(trailer).await.ok()?;
            Some(sha)
        });
        let result = self
            .raw
            .put_shard(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await;
        let sha = feeder.await.ok().flatten();
        result.map_err(Self::remote("PutShard"))?;
        sha.ok_or_else(|| ClientError::Io {
            op: "stream",
            path: "the shard data".into(),
            source: std::io::Error::other("the shard data ended early"),
        })
    }

    /// Replaces the store's manifest copy of `archive_id` with `manifest_json`.
    pub async fn put_manifest(
        &mut self,
        archive_id: &str,
        manifest_json: &str,
    ) -> Result<(), ClientError> {
        let request = proto::PutManifestRequest {
            store: self.store.clone(),
            archive_id: archive_id.to_string(),
            manifest_json: manifest_json.to_string(),
        };
        self.raw
            .put_manifest(request)
            .await
            .map_err(Self::remote("PutManifest"))?;
        Ok(())
    }

    /// The store's manifest copy of `archive_id` (`None` if it has none).
    pub async fn get_manifest(&mut self, archive_id: &str) -> Result<Option<String>, ClientError> {
        let request = proto::GetManifestRequest {
            store: self.store.clone(),
            archive_id: archive_id.to_string(),
        };
        match self.raw.get_manifest(request).await {
            Ok(r) => Ok(Some(r.into_inner().manifest_json)),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(Self::remote("GetManifest")(status)),
        }
    }

    /// Moves the staged shard `index` of `archive_id` into place.
    pub async fn commit_shard(&mut self, archive_id: &str, index: u32) -> Result<(), ClientError> {
        let request = proto::CommitShardRequest {
            store: self.store.clone(),
            archive_id: archive_id.to_string(),
            shard_index: index,
        };
        self.raw
            .commit_shard(request)
            .await
            .map_err(Self::remote("CommitShard"))?;
        Ok(())
    }

    /// Removes shard `index` of `archive_id` (only its staged copy with `staged_only`).
    pub async fn remove_shard(
        &mut self,
        archive_id: &str,
        index: u32,
        staged_only: bool,
    ) -> Result<(), ClientError> {
        let request = proto::RemoveShardRequest {
            store: self.store.clone(),
            archive_id: archive_id.to_string(),
            shard_index: index,
            staged_only,
        };
        self.raw
            .remove_shard(request)
            .await
            .map_err(Self::remote("RemoveShard"))?;
        Ok(())
    }

    /// Archive ids with a manifest copy in the store.
    pub async fn list_archives(&mut self) -> Result<Vec<String>, ClientError> {
        let request = proto::ListStoreArchivesRequest {
            store: self.store.clone(),
        };
        let response = self
            .raw
            .list_store_archives(request)
            .await
            .map_err(Self::remote("ListStoreArchives"))?;
        Ok(response.into_inner().archive_ids)
    }

    /// Pushes `length` bytes from `reader` as shard `index` of `archive_id`, announcing
    /// `sha256` (hex); the remote agent stores it only if the data matches. Returns the
    /// bytes the remote wrote (0 when it already held an identical shard).
    pub async fn put_reader<R>(
        &mut self,
        archive_id: &str,
        index: u32,
        length: u64,
        sha256: &str,
        mut reader: R,
    ) -> Result<u64, ClientError>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let header = proto::PutShardChunk {
            chunk: Some(Chunk::Header(proto::ShardHeader {
                archive_id: archive_id.to_string(),
                shard_index: index,
                length,
                sha256: sha256.to_string(),
                store: self.store.clone(),
                staged: false,
            })),
        };
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let feeder = tokio::spawn(async move {
            if tx.send(header).await.is_err() {
                return Ok(());
            }
            loop {
                let mut buf = vec![0u8; MAX_CHUNK_BYTES];
                let n = read_full(&mut reader, &mut buf).await?;
                if n == 0 {
                    return Ok(());
                }
                buf.truncate(n);
                let chunk = proto::PutShardChunk {
                    chunk: Some(Chunk::Data(buf)),
                };
                // The call ended early (refused): stop reading.
                if tx.send(chunk).await.is_err() {
                    return Ok(());
                }
            }
        });
        let result = self
            .raw
            .put_shard(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await;
        let fed: std::io::Result<()> = feeder
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        let response = result.map_err(|status| ClientError::Remote {
            call: "PutShard",
            status,
        })?;
        fed.map_err(|source| ClientError::Io {
            op: "read",
            path: "the shard source".into(),
            source,
        })?;
        Ok(response.into_inner().bytes_written)
    }

    /// Pushes the file `path` as shard `index` of `archive_id` (its SHA-256 is computed
    /// first). Returns the bytes the remote wrote.
    pub async fn put_file(
        &mut self,
        archive_id: &str,
        index: u32,
        path: &Path,
    ) -> Result<u64, ClientError> {
        let io = |op, source| ClientError::Io {
            op,
            path: path.display().to_string(),
            source,
        };
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| io("open", e))?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; MAX_CHUNK_BYTES];
        let mut length = 0u64;
        loop {
            let n = file.read(&mut buf).await.map_err(|e| io("read", e))?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
            length += n as u64;
        }
        let sha = hex(ctx.finish().as_ref());
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| io("open", e))?;
        self.put_reader(archive_id, index, length, &sha, file.take(length))
            .await
    }

    /// Reads `length` bytes (0: to the end) of shard `index` of `archive_id` from `offset`.
    pub async fn get_range(
        &mut self,
        archive_id: &str,
        index: u32,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, ClientError> {
        let mut out = Vec::new();
        self.get_into(archive_id, index, offset, length, &mut out)
            .await?;
        Ok(out)
    }

    /// Pulls the whole shard `index` of `archive_id` into the file `path` (created or
    /// truncated, fsynced). Returns its length.
    pub async fn get_file(
        &mut self,
        archive_id: &str,
        index: u32,
        path: &Path,
    ) -> Result<u64, ClientError> {
        let io = |op, source| ClientError::Io {
            op,
            path: path.display().to_string(),
            source,
        };
        let mut file = tokio::fs::File::create(path)
            .await
            .map_err(|e| io("create", e))?;
        let n = self.get_into(archive_id, index, 0, 0, &mut file).await?;
        file.sync_all().await.map_err(|e| io("fsync", e))?;
        Ok(n)
    }

    async fn get_into<W>(
        &mut self,
        archive_id: &str,
        index: u32,
        offset: u64,
        length: u64,
        out: &mut W,
    ) -> Result<u64, ClientError>
    where
        W: tokio::io::AsyncWrite + Unpin,
    {
        let request = proto::GetShardRequest {
            archive_id: archive_id.to_string(),
            shard_index: index,
            offset,
            length,
            store: self.store.clone(),
        };
        let remote = |status| ClientError::Remote {
            call: "GetShard",
            status,
        };
        let mut stream = self
            .raw
            .get_shard(request)
            .await
            .map_err(remote)?
            .into_inner();
        let mut expected = offset;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(remote)?;
            if chunk.offset != expected {
                return Err(ClientError::OutOfOrder {
                    offset: chunk.offset,
                    expected,
                    got: chunk.data.len(),
                });
            }
            out.write_all(&chunk.data)
                .await
                .map_err(|source| ClientError::Io {
                    op: "write",
                    path: "the shard destination".into(),
                    source,
                })?;
            expected += chunk.data.len() as u64;
        }
        Ok(expected - offset)
    }

    /// Asks the remote agent to check every shard of `archive_id` it stores.
    pub async fn verify(
        &mut self,
        archive_id: &str,
    ) -> Result<Vec<proto::ShardState>, ClientError> {
        let request = proto::VerifyShardsRequest {
            archive_id: archive_id.to_string(),
            store: self.store.clone(),
        };
        let response =
            self.raw
                .verify_shards(request)
                .await
                .map_err(|status| ClientError::Remote {
                    call: "VerifyShards",
                    status,
                })?;
        Ok(response.into_inner().shards)
    }
}

/// Reads until `buf` is full or the reader ends; returns the bytes read.
async fn read_full<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = reader.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}
