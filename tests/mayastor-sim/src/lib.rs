//! `couchestor-mayastor-sim`: an in-memory simulator of the Mayastor control-plane REST API
//! (v0 subset) for CoucheStor's tests.
//!
//! It serves under `/v0` the routes CoucheStor uses — volumes (paged list, get, create via
//! `CreateVolumeBody`, delete, `replica_count`, `rebuild-history`, publish/unpublish `target`),
//! pools (list, `?volume_id=`, get, labels, cordon on the 2.10 profile) and nodes (list, get,
//! cordons, labels) — with the JSON shapes of the upstream OpenAPI spec and the behaviour
//! described in `shared/notes/mayastor.md`:
//!
//! * placement of a new replica ([`placement`]): one replica per node, cordons, pool health,
//!   free space, inclusion labels, best free space first;
//! * `replica_count` ±1 rules with the upstream errors (`ReplicaChangeCount`, `LastReplica`,
//!   `ReplicaIncrease`, `ReplicaCountAchieved` as 412 `FailedPrecondition`; no pool as 507);
//! * scale-up starts an asynchronous rebuild that progresses with the simulator's clock at
//!   `rebuild_mib_per_sec` ([`view`]); scale-down removes replicas in the order of the emulated
//!   release ([`removal`], [`profile`]);
//! * fault injection and test fixtures under `/sim` (see the `api::admin` module docs).
//!
//! Time and identifiers: every operation takes an explicit `now`; the HTTP layer passes the
//! [`Clock`]'s — the wall clock by default, or a virtual clock the embedder moves
//! ([`Shared::set_clock`], `PUT /sim/clock`). New UUIDs come from the world's
//! [`ids::IdSource`]: random by default, a seeded ChaCha stream on request
//! ([`World::ids`], `--id-seed`, `PUT /sim/ids`), so a run can be reproduced bit for bit.
//!
//! Start it in-process with [`spawn`] or as the `couchestor-mayastor-sim` binary.

pub mod clock;
pub mod error;
pub mod faults;
pub mod ids;
pub mod ops;
pub mod placement;
pub mod profile;
pub mod removal;
pub mod render;
pub mod topology;
pub mod view;
pub mod world;

mod api;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub use clock::{Clock, ClockBackwards};
pub use profile::Profile;
pub use world::{DEFAULT_REBUILD_MIB_PER_SEC, World};

/// Mutable simulator state.
#[derive(Debug)]
pub struct Inner {
    /// The simulated cluster.
    pub world: World,
    /// HTTP fault injection.
    pub faults: faults::Faults,
    /// What "now" is for requests.
    pub clock: Clock,
}

/// Shared handle on the simulator state.
#[derive(Debug, Clone)]
pub struct Shared(Arc<Mutex<Inner>>);

impl Shared {
    /// A handle on `world` with no faults.
    pub fn new(world: World) -> Self {
        Self(Arc::new(Mutex::new(Inner {
            world,
            faults: faults::Faults::default(),
            clock: Clock::Wall,
        })))
    }

    /// Switches to (or moves) the virtual clock; see [`Clock::set_virtual`].
    pub fn set_clock(&self, now_ms: u64) -> Result<(), ClockBackwards> {
        self.lock().clock.set_virtual(now_ms)
    }

    /// Locks the state. A panic while locked cannot leave it half-updated in a way that
    /// matters to a test double, so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The axum router serving `/v0` and `/sim` over `shared`.
pub fn router(shared: Shared) -> axum::Router {
    api::router(shared)
}

/// A simulator serving in the background.
#[derive(Debug)]
pub struct RunningSim {
    addr: SocketAddr,
    shared: Shared,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningSim {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/v0`, the base URL a Mayastor client needs.
    pub fn base_url(&self) -> String {
        format!("http://{}/v0", self.addr)
    }

    /// `http://ADDR/sim`, the admin API.
    pub fn admin_url(&self) -> String {
        format!("http://{}/sim", self.addr)
    }

    /// Direct access to the state (for assertions that bypass HTTP).
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Stops serving and waits for the server task.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            // The receiver is gone only if the server already stopped; its result follows.
            tx.send(()).ok();
        }
        (&mut self.task).await.map_err(std::io::Error::other)?
    }
}

/// Binds `addr` (e.g. `127.0.0.1:0`) and serves `world` in a background task.
pub async fn spawn(world: World, addr: SocketAddr) -> std::io::Result<RunningSim> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let shared = Shared::new(world);
    let app = router(shared.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                // Either a shutdown request or the handle being dropped stops the server.
                rx.await.ok();
            })
            .await
    });
    Ok(RunningSim {
        addr,
        shared,
        shutdown: Some(tx),
        task,
    })
}
