//! HTTP endpoints: `/metrics` on the metrics address; `/healthz` and `/readyz` on the health
//! address. `/readyz` is 200 only once the PV/PVC caches have synced.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::metrics::Metrics;

/// Serves `/metrics` until the process ends.
pub async fn serve_metrics(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move { m.render() }),
        )
        .with_state(metrics);
    axum::serve(tokio::net::TcpListener::bind(addr).await?, app).await
}

/// Serves `/healthz` (the process is up) and `/readyz` (caches synced).
pub async fn serve_health(addr: SocketAddr, ready: Arc<AtomicBool>) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(r): State<Arc<AtomicBool>>| async move {
                if r.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
                }
            }),
        )
        .with_state(ready);
    axum::serve(tokio::net::TcpListener::bind(addr).await?, app).await
}
