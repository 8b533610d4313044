//! The simulator's notion of "now".
//!
//! Every state change of the world takes an explicit `now` (milliseconds since the Unix
//! epoch); the clock only decides what the HTTP layer passes. The binary uses the wall clock.
//! An embedding process that fast-forwards time (`couchestor-controller simulate --backend
//! mayastor`) switches to a virtual clock and moves it itself, through
//! [`Shared::set_clock`](crate::Shared::set_clock) or `PUT /sim/clock`; rebuilds then progress
//! with virtual time only.

use serde::Serialize;

use crate::ids::now_ms;

/// Wall or virtual time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", content = "now_ms", rename_all = "lowercase")]
pub enum Clock {
    /// The system clock.
    #[default]
    Wall,
    /// A clock that stands still until the embedder moves it (ms since the epoch).
    Virtual(u64),
}

/// A virtual clock may not go backwards: rebuild progress and removal times would run back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockBackwards {
    /// The virtual time now.
    pub current_ms: u64,
    /// The earlier time asked for.
    pub requested_ms: u64,
}

impl std::fmt::Display for ClockBackwards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the virtual clock cannot go backwards: it is at {} ms, {} ms was asked",
            self.current_ms, self.requested_ms
        )
    }
}

impl std::error::Error for ClockBackwards {}

impl Clock {
    /// Milliseconds since the epoch according to this clock.
    pub fn now_ms(self) -> u64 {
        match self {
            Self::Wall => now_ms(),
            Self::Virtual(ms) => ms,
        }
    }

    /// Moves to virtual time `ms`. From the wall clock any time is accepted (rebuilds started
    /// under the wall clock keep their start time); a virtual clock only moves forward.
    pub fn set_virtual(&mut self, ms: u64) -> Result<(), ClockBackwards> {
        if let Self::Virtual(current) = *self
            && ms < current
        {
            return Err(ClockBackwards {
                current_ms: current,
                requested_ms: ms,
            });
        }
        *self = Self::Virtual(ms);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_virtual_clock_stands_still_and_only_moves_forward() {
        let mut clock = Clock::default();
        assert!(clock.now_ms() > 1_700_000_000_000, "wall time");
        clock.set_virtual(5_000).unwrap();
        assert_eq!(clock.now_ms(), 5_000);
        clock.set_virtual(5_000).unwrap();
        clock.set_virtual(9_000).unwrap();
        let err = clock.set_virtual(8_999).unwrap_err();
        assert_eq!(
            (err.current_ms, err.requested_ms, clock.now_ms()),
            (9_000, 8_999, 9_000)
        );
        assert!(err.to_string().contains("cannot go backwards"), "{err}");
    }
}
