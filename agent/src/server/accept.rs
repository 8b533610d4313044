//! The mutual-TLS accept loop in front of the gRPC server.
//!
//! Handshakes run here rather than inside tonic so that every refused connection (no
//! client certificate, one from another CA, a plain-text client, a stalled handshake) is
//! logged with the peer's address.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

/// A handshake not finished within this time is abandoned.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections still in their handshake beyond this number are dropped on arrival.
pub const MAX_PENDING_HANDSHAKES: usize = 256;

/// Accepts TCP connections on `listener` and yields those whose TLS handshake succeeds.
/// The loop stops when the returned stream is dropped.
pub fn incoming(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> impl Stream<Item = io::Result<TlsStream<TcpStream>>> + Send + 'static {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(accept_loop(listener, acceptor, tx));
    ReceiverStream::new(rx).map(Ok)
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<TlsStream<TcpStream>>,
) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = tx.closed() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(connection) => connection,
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                tracing::warn!("accepting a gRPC connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = pending.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "dropping connection from {peer}: too many TLS handshakes in progress");
            continue;
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(%peer, "cannot set TCP_NODELAY: {e}");
        }
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            let Some(tls) = handshake(&acceptor, tcp, peer).await else {
                return;
            };
            drop(permit);
            if tx.send(tls).await.is_err() {
                tracing::debug!(%peer, "server shut down before serving {peer}");
            }
        });
    }
}

async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => {
            if tracing::enabled!(tracing::Level::DEBUG) {
                let client = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|certs| certs.first())
                    .and_then(|cert| crate::tls::CertSummary::parse(cert).ok())
                    .map(|summary| summary.subject)
                    .unwrap_or_default();
                tracing::debug!(%peer, %client, "mutual TLS connection from {peer} accepted");
            }
            Some(tls)
        }
        Ok(Err(e)) => {
            tracing::warn!(%peer, "TLS handshake with {peer} refused: {e}");
            None
        }
        Err(_) => {
            tracing::warn!(
                %peer,
                "TLS handshake with {peer} refused: not completed within {} s",
                HANDSHAKE_TIMEOUT.as_secs()
            );
            None
        }
    }
}
