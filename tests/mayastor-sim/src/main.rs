//! `couchestor-mayastor-sim --listen ADDR --profile 2.7|2.9|2.10 [--state FILE.json]`

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use clap::Parser;
use couchestor_mayastor_sim::{DEFAULT_REBUILD_MIB_PER_SEC, Profile, Shared, World, router};

/// In-memory simulator of the Mayastor control-plane REST API (v0 subset).
#[derive(Debug, Parser)]
#[command(name = "couchestor-mayastor-sim", version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Mayastor release to emulate: 2.7, 2.9 or 2.10 (overrides the one in --state).
    #[arg(long)]
    profile: Option<Profile>,
    /// Initial world, as dumped by `GET /sim/state`.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Rebuild speed in MiB/s of wall-clock time (overrides the one in --state).
    #[arg(long)]
    rebuild_mib_per_sec: Option<f64>,
    /// Draw new UUIDs from a ChaCha stream with this seed instead of at random, so the same
    /// requests give the same ids (also `PUT /sim/ids`).
    #[arg(long)]
    id_seed: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let mut world = match &args.state {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --state {}", path.display()))?;
            serde_json::from_str::<World>(&text)
                .with_context(|| format!("parsing --state {}", path.display()))?
        }
        None => World::new(Profile::V2_10, DEFAULT_REBUILD_MIB_PER_SEC),
    };
    if let Some(profile) = args.profile {
        world.profile = profile;
    }
    if let Some(rate) = args.rebuild_mib_per_sec {
        anyhow::ensure!(
            rate.is_finite() && rate > 0.0,
            "--rebuild-mib-per-sec must be > 0"
        );
        world.rebuild_mib_per_sec = rate;
    }
    if let Some(seed) = args.id_seed {
        world.ids = couchestor_mayastor_sim::ids::IdSource::seeded(seed);
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!(
        "couchestor-mayastor-sim (profile {}) listening on http://{addr}/v0",
        world.profile
    );
    axum::serve(listener, router(Shared::new(world)))
        .with_graceful_shutdown(async {
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::error!(%error, "cannot wait for Ctrl-C; stopping");
            }
        })
        .await
        .context("serving")
}
