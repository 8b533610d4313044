//! Progress of an engine operation as messages of a gRPC server stream.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use couchestor_proto::coldtier::v1 as proto;
use tokio::sync::mpsc;
use tonic::Status;

use crate::erasure::Progress;

/// Least time between two progress messages of one phase.
const EVERY: Duration = Duration::from_millis(200);

/// Sends throttled [`proto::Progress`] messages, wrapped by `wrap`, on `tx`. A slow client
/// misses intermediate messages (never the result, which is sent separately).
pub struct StreamProgress<E> {
    tx: mpsc::Sender<Result<E, Status>>,
    wrap: fn(proto::Progress) -> E,
    state: Mutex<State>,
}

struct State {
    phase: String,
    total: u64,
    done: u64,
    last: Option<Instant>,
}

impl<E: Send> StreamProgress<E> {
    /// Progress sent on `tx`.
    pub fn new(tx: mpsc::Sender<Result<E, Status>>, wrap: fn(proto::Progress) -> E) -> Self {
        StreamProgress {
            tx,
            wrap,
            state: Mutex::new(State {
                phase: String::new(),
                total: 0,
                done: 0,
                last: None,
            }),
        }
    }

    fn send(&self, state: &mut State, force: bool) {
        let now = Instant::now();
        if !force && state.last.is_some_and(|t| now - t < EVERY) {
            return;
        }
        state.last = Some(now);
        let message = proto::Progress {
            phase: state.phase.clone(),
            done_bytes: state.done,
            total_bytes: state.total,
        };
        // A full channel means a slow client: it gets a later message instead.
        if self.tx.try_send(Ok((self.wrap)(message))).is_err() {
            tracing::debug!("progress message dropped");
        }
    }
}

impl<E: Send> Progress for StreamProgress<E> {
    fn begin(&self, label: &str, total: u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *state = State {
            phase: label.to_string(),
            total,
            done: 0,
            last: None,
        };
        self.send(&mut state, true);
    }

    fn advance(&self, bytes: u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.done += bytes;
        self.send(&mut state, false);
    }

    fn end(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.done = state.total;
        self.send(&mut state, true);
    }
}
